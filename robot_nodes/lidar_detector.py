"""lidar_detector: 3D objects in each lidar scan (perception.detection's CenterPoint-style detector).

~/input/pointcloud (PointCloud2 x, y, z, intensity) → ~/output/objects (DetectedObjects, the cloud's
header), ~/output/markers (a box and a "class score" label per object) and
~/debug/processing_time_ms (wall milliseconds from the cloud's arrival to its objects going out).

Detection runs in a worker thread that takes the newest cloud from a one-slot mailbox, so the node
keeps up with the lidar by dropping the oldest unprocessed scans: a cloud that replaces one still
waiting is counted in `counters.dropped_frames`, and drops are logged (throttled).
"""
from __future__ import annotations

import collections
import math
import threading
import time
from dataclasses import dataclass, field

import numpy as np
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import PointCloud2
from std_msgs.msg import Float64, Header
from visualization_msgs.msg import MarkerArray

from edge_robot_msgs.msg import DetectedObjects
from perception.detection import DetectorOptions, LidarDetector, ModelFileError
from robot_nodes.conversions import (MalformedMessageError, detected_objects_to_markers, detected_objects_to_msg,
                                     pointcloud2_to_xyzi)
from robot_nodes.node_statistics import NodeStatisticsPublisher, ProcessingCounts, measured, publish_final_statistics
from robot_nodes.parameters import declare_config
from robot_nodes.paths import resolve
from robot_nodes.runner import StartupError, run_node
from robot_nodes.time_jumps import watch_time_jumps
from sim.validation import check_ranges

DEVICES = ("auto", "cpu", "cuda")
"""Values of the device parameter."""

LOG_PERIOD_S = 5.0
"""Least wall seconds between two repeated warnings of one kind (drops, NaN points, subsampling)."""

PROCESSING_TIMES_KEPT = 10000
"""Processing times the node keeps for its statistics (the newest ones)."""

CLOUD_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=5, reliability=ReliabilityPolicy.BEST_EFFORT,
                       durability=DurabilityPolicy.VOLATILE)
"""Sensor-data QoS. The callback only decodes the cloud into the one-slot mailbox (about a
millisecond), so a short queue lets every cloud reach it, and every cloud that detection cannot
keep up with is dropped there, explicitly and counted; with depth 1 the middleware would overwrite
clouds unseen (a replay at 2x lost 31 of 80 that way, uncounted)."""


@dataclass
class LidarDetectorConfig:
    """Parameters of the lidar_detector node."""

    model_path: str = "models/lidar_detector.pt"
    """Detector checkpoint (`train-detector` writes one); a relative path is taken from the package
    share directory."""
    score_threshold: float = field(default=0.3, metadata={"range": (0.0, 1.0)})
    """Least score of a published detection."""
    point_range: list[float] = field(default_factory=list)
    """Detection volume in the lidar frame, metres: [x_min, y_min, z_min, x_max, y_max, z_max].
    Empty: the model's own. The x and y extents must be whole multiples of 8 voxels of the model,
    and z_min, z_max must equal the model's (its height layers are part of the weights)."""
    device: str = "auto"
    """Where the network runs: 'auto' (CUDA when present, else CPU), 'cpu' or 'cuda'."""
    max_points: int = field(default=150000, metadata={"range": (1000, 5000000)})
    """Point budget per scan inside the detection volume; a scan with more is subsampled at random
    (and counted in subsampled_frames)."""
    threads: int = field(default=0, metadata={"range": (0, 64)})
    """CPU threads of the network (torch's setting is for the whole process); 0: torch's default.
    1 gives bitwise-repeatable detections (the main job's lockstep sets it)."""

    def __post_init__(self) -> None:
        if not self.model_path:
            raise ValueError("model_path is required: the detector checkpoint")
        if self.device not in DEVICES:
            raise ValueError(f"device must be one of {', '.join(DEVICES)}, got {self.device!r}")
        check_ranges(self)
        self.point_range = [float(value) for value in self.point_range]
        if self.point_range:
            if len(self.point_range) != 6 or not all(math.isfinite(value) for value in self.point_range):
                raise ValueError(f"point_range must be empty or 6 finite numbers "
                                 f"[x_min, y_min, z_min, x_max, y_max, z_max], got {self.point_range}")
            if any(self.point_range[axis] >= self.point_range[axis + 3] for axis in range(3)):
                raise ValueError(f"point_range must have min < max on x, y and z, got {self.point_range}")


@dataclass
class DetectorCounters:
    """What became of the clouds the node received: received = rejected + dropped_frames +
    processed + failed_frames, plus at most one waiting and one being processed."""

    received: int = 0
    """Clouds that arrived, well-formed or not."""
    processed: int = 0
    """Clouds whose objects were published."""
    dropped_frames: int = 0
    """Clouds replaced in the mailbox by a newer one before the worker took them (or of the old time
    line when ROS time jumped)."""
    resets: int = 0
    """Resets because ROS time jumped (a waiting cloud of the old time line dropped)."""
    rejected: int = 0
    """Malformed clouds (wrong or missing fields, bad layout), logged with the reason."""
    failed_frames: int = 0
    """Clouds on which the detector raised (logged); nothing was published for them."""
    nan_points_dropped: int = 0
    """Points with a NaN or infinite coordinate or intensity, left out before detection."""
    subsampled_frames: int = 0
    """Clouds with more points in the detection volume than max_points."""


@dataclass
class _Frame:
    """A converted cloud waiting for the worker."""

    header: Header
    points: np.ndarray
    received_at: float
    """time.perf_counter() when the cloud arrived."""


class LidarDetectorNode(Node):
    def __init__(self, **node_options) -> None:
        super().__init__("lidar_detector", **node_options)
        self._mailbox: _Frame | None = None
        self._mailbox_changed = threading.Condition()
        self._stop = False
        self._worker: threading.Thread | None = None
        self.config = declare_config(self, LidarDetectorConfig)
        path = resolve(self.config.model_path)
        options = DetectorOptions(device=self.config.device, max_points=self.config.max_points,
                                  decode_overrides={"score_threshold": self.config.score_threshold},
                                  threads=self.config.threads)
        try:
            self.detector = LidarDetector.from_checkpoint(path, options, self.config.point_range)
        except ModelFileError as error:
            raise StartupError(f"lidar_detector: {error} (parameter model_path)") from None
        except ValueError as error:
            raise StartupError(f"lidar_detector: {error}") from None
        self.point_range: tuple[float, ...] = self.detector.config.voxel.point_range
        """The detection volume in use (x_min, y_min, z_min, x_max, y_max, z_max), lidar frame."""
        self.counters = DetectorCounters()
        self.processing_times_ms: collections.deque[float] = collections.deque(maxlen=PROCESSING_TIMES_KEPT)
        """Milliseconds from arrival to publication of the newest processed clouds."""
        self.statistics = NodeStatisticsPublisher(self, self._processing_counts, self._mailbox_changed)
        self.inputs = self.statistics.inputs

        self.pub_objects = self.create_publisher(DetectedObjects, "~/output/objects", 10)
        self.pub_markers = self.create_publisher(MarkerArray, "~/output/markers", 10)
        self.pub_processing_time = self.create_publisher(Float64, "~/debug/processing_time_ms", 10)
        self.create_subscription(PointCloud2, "~/input/pointcloud",
                                 self.inputs.wrap("~/input/pointcloud", self.on_cloud), CLOUD_QOS)
        self._time_jumps = watch_time_jumps(self, self._drop_waiting_cloud, "the waiting cloud")
        self._worker = threading.Thread(target=self._run, name="lidar_detector_worker", daemon=True)
        self._worker.start()
        self.get_logger().info(
            f"model {path} on {self.detector.device}, classes {', '.join(self.detector.config.classes)}, "
            f"point range {list(self.point_range)}, score threshold {self.config.score_threshold:g}, "
            f"max points {self.config.max_points}")

    def _processing_counts(self) -> ProcessingCounts:
        counters = self.counters
        return ProcessingCounts(counters.received, counters.processed, counters.dropped_frames, counters.failed_frames)

    # --- executor thread: convert and post ------------------------------------------------------

    def _drop_waiting_cloud(self) -> None:
        with self._mailbox_changed:
            self.counters.resets += 1
            self.counters.dropped_frames += self._mailbox is not None
            self._mailbox = None

    def on_cloud(self, message: PointCloud2) -> None:
        received_at = time.perf_counter()
        with self._mailbox_changed:
            self.counters.received += 1
        try:
            points, non_finite = pointcloud2_to_xyzi(message)
        except MalformedMessageError:
            with self._mailbox_changed:
                self.counters.rejected += 1
            raise
        frame = _Frame(message.header, points, received_at)
        with self._mailbox_changed:
            if non_finite:
                self.counters.nan_points_dropped += non_finite
                self.get_logger().warning(
                    f"dropped {non_finite} non-finite points of a cloud "
                    f"({self.counters.nan_points_dropped} so far)", throttle_duration_sec=LOG_PERIOD_S)
            if self._mailbox is not None:
                self.counters.dropped_frames += 1
                self.get_logger().warning(
                    f"detection is slower than the lidar: dropped an unprocessed cloud "
                    f"({self.counters.dropped_frames} of {self.counters.received} so far)",
                    throttle_duration_sec=LOG_PERIOD_S)
            self._mailbox = frame
            self._mailbox_changed.notify()

    # --- worker thread: detect and publish ------------------------------------------------------

    def _run(self) -> None:
        while True:
            with self._mailbox_changed:
                self._mailbox_changed.wait_for(lambda: self._stop or self._mailbox is not None)
                if self._stop:
                    return
                frame, self._mailbox = self._mailbox, None
            try:
                self._process(frame)
            except Exception as error:  # a detector failure must not end the worker
                with self._mailbox_changed:
                    self.counters.failed_frames += 1
                self.get_logger().error(f"detection failed ({type(error).__name__}: {error}); "
                                        f"{self.counters.failed_frames} clouds failed so far",
                                        throttle_duration_sec=LOG_PERIOD_S)

    @measured
    def _process(self, frame: _Frame) -> None:
        detection = self.detector.detect(frame.points)
        self.pub_objects.publish(detected_objects_to_msg(detection.objects, frame.header))
        elapsed_ms = 1e3 * (time.perf_counter() - frame.received_at)
        self.pub_markers.publish(detected_objects_to_markers(detection.objects, frame.header, self.get_name()))
        self.pub_processing_time.publish(Float64(data=elapsed_ms))
        with self._mailbox_changed:
            self.counters.processed += 1
            self.processing_times_ms.append(elapsed_ms)
            self.statistics.record(frame.header.stamp, elapsed_ms)
            if detection.points.subsampled:
                self.counters.subsampled_frames += 1
                self.get_logger().warning(
                    f"{len(detection.points.points) + detection.points.subsampled} points in the detection volume "
                    f"exceed max_points {self.config.max_points}; subsampled "
                    f"({self.counters.subsampled_frames} clouds so far)", throttle_duration_sec=LOG_PERIOD_S)

    def destroy_node(self) -> None:
        with self._mailbox_changed:
            self._stop = True
            self._mailbox_changed.notify()
        if self._worker is not None and self._worker.is_alive() and threading.current_thread() is not self._worker:
            self._worker.join()  # lets a detection in progress finish and publish first
        publish_final_statistics(self)
        super().destroy_node()


def main(args: list[str] | None = None) -> int:
    return run_node(LidarDetectorNode, args)
