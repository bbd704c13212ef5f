"""trajectory_predictor: tracks the detector's objects and predicts where each one goes.

~/input/objects (DetectedObjects, any frame that /tf_static and odometry lead to) → the multi-object
tracker (perception.tracking) in the tracking frame (odom) → ~/output/tracks (TrackedObjects) →
the HiT-style predictor (perception.prediction, onnxruntime) → ~/output/predicted_objects
(PredictedObjects, modes most probable first), ~/output/markers (boxes, ids and a line per mode)
and ~/debug/processing_time_ms.

Detections are moved into the tracking frame with the odometry pose at their stamp (interpolated)
and the sensor's mount from ~/input/tf_static. Time going backwards (a bag loop, a simulator reset)
resets the tracker and the histories, with a logged reason.
"""
from __future__ import annotations

import collections
import time
from dataclasses import dataclass, field

import numpy as np
from nav_msgs.msg import Odometry
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, QoSProfile
from std_msgs.msg import Float64, Header
from tf2_msgs.msg import TFMessage
from visualization_msgs.msg import MarkerArray

from edge_robot_msgs.msg import DetectedObjects, PredictedObjects, TrackedObjects
from perception.model_files import ModelFileError
from perception.objects import Box3D, DetectedObject, boxes_into_frame, boxes_to_array
from perception.prediction.predictor import TrajectoryPredictor
from perception.prediction.track_predictor import METHODS, TrackPredictionConfig, TrackPredictor
from perception.tracking import MultiObjectTracker, TrackerConfig, TrackerInputError
from robot_nodes.conversions import (MalformedMessageError, msg_to_detected_objects, predicted_objects_to_msg,
                                     stamp_to_seconds, tracked_objects_to_msg)
from robot_nodes.conversions.markers import predicted_objects_to_markers
from robot_nodes.frame_poses import FramePoses
from robot_nodes.node_statistics import NodeStatisticsPublisher, ProcessingCounts, publish_final_statistics
from robot_nodes.parameters import declare_config
from robot_nodes.paths import resolve
from robot_nodes.runner import StartupError, run_node
from sim.validation import check_ranges

LOG_PERIOD_S = 5.0
"""Least wall seconds between two repeated warnings of one kind."""
PROCESSING_TIMES_KEPT = 10000
"""Processing times kept for the statistics (the newest)."""


@dataclass
class TrajectoryPredictorConfig:
    """Parameters of the trajectory_predictor node."""

    model_path: str = "models/trajectory_predictor_apolloscape.onnx"
    """Prediction model (`train-predictor` writes one); relative paths are taken from the package
    share directory. Not read when method is a baseline."""
    method: str = "model"
    """model (the trained network), constant_velocity or constant_turn_rate."""
    horizon: float = field(default=3.0, metadata={"range": (0.1, 60.0)})
    """Seconds predicted; cut to the model's own horizon."""
    modes: int = field(default=3, metadata={"range": (1, 64)})
    """Futures published per track, most probable first."""
    standing_speed: float = field(default=1.0, metadata={"range": (0.0, 10.0)})
    """m/s: tracks slower than this, and within one standard deviation of standing, are predicted
    standing (one mode); 0 turns this off."""
    tracking_frame: str = "odom"
    """Fixed frame the tracker works in and tracks and predictions are published in."""
    max_pose_gap: float = field(default=0.2, metadata={"range": (0.001, 10.0)})
    """Detections are placed with odometry interpolated between samples at most this far apart, seconds."""
    threads: int = field(default=1, metadata={"range": (1, 64)})
    """onnxruntime threads of the predictor."""
    tracker: TrackerConfig = field(default_factory=TrackerConfig)
    """The tracker's parameters (tracker.*)."""

    def __post_init__(self) -> None:
        check_ranges(self)
        if self.method not in METHODS:
            raise ValueError(f"method must be one of {', '.join(METHODS)}, got {self.method!r}")
        if not self.tracking_frame:
            raise ValueError("tracking_frame must not be empty")


@dataclass
class PredictorCounters:
    """What became of the detection messages: received = rejected + skipped + processed."""

    received: int = 0
    """Detection messages that arrived."""
    processed: int = 0
    """Messages whose tracks and predictions were published."""
    rejected: int = 0
    """Malformed messages or objects (NaN, bad layout), logged with the reason."""
    skipped_without_pose: int = 0
    """Messages that could not be placed in the tracking frame (no odometry or mount yet)."""
    resets: int = 0
    """Tracker resets because time went backwards."""


class TrajectoryPredictorNode(Node):
    def __init__(self, **node_options) -> None:
        super().__init__("trajectory_predictor", **node_options)
        self.config = declare_config(self, TrajectoryPredictorConfig)
        model = None
        if self.config.method == "model":
            path = resolve(self.config.model_path)
            try:
                model = TrajectoryPredictor.from_file(path, self.config.threads)
            except ModelFileError as error:
                raise StartupError(f"trajectory_predictor: {error} (parameter model_path)") from None
        self.tracker = MultiObjectTracker(self.config.tracker)
        self.predictor = TrackPredictor(TrackPredictionConfig(method=self.config.method, horizon=self.config.horizon,
                                                              modes=self.config.modes,
                                                              standing_speed=self.config.standing_speed), model)
        self.counters = PredictorCounters()
        self.processing_times_ms: collections.deque[float] = collections.deque(maxlen=PROCESSING_TIMES_KEPT)
        self.frame_poses = FramePoses(self.config.tracking_frame, self.config.max_pose_gap)
        self._last_stamp: float | None = None
        # Counted in the executor's callbacks only, which never run alongside the statistics timer: no lock.
        self.statistics = NodeStatisticsPublisher(
            self, lambda: ProcessingCounts(self.counters.received, self.counters.processed))
        self.inputs = self.statistics.inputs

        self.pub_tracks = self.create_publisher(TrackedObjects, "~/output/tracks", 10)
        self.pub_predicted = self.create_publisher(PredictedObjects, "~/output/predicted_objects", 10)
        self.pub_markers = self.create_publisher(MarkerArray, "~/output/markers", 10)
        self.pub_processing_time = self.create_publisher(Float64, "~/debug/processing_time_ms", 10)
        self.create_subscription(DetectedObjects, "~/input/objects",
                                 self.inputs.wrap("~/input/objects", self.on_objects), 10)
        self.create_subscription(Odometry, "~/input/odometry", self.inputs.wrap("~/input/odometry", self.on_odometry), 100)
        self.create_subscription(TFMessage, "~/input/tf_static", self.inputs.wrap("~/input/tf_static", self.on_tf_static),
                                 QoSProfile(depth=100, durability=DurabilityPolicy.TRANSIENT_LOCAL))
        source = f"model {path}" if model else self.config.method
        self.get_logger().info(f"{source}, {self.predictor.predicted_steps} steps of {self.predictor.time_step:g} s, "
                               f"{self.config.modes} modes, tracking in {self.config.tracking_frame}")

    # --- frames ---------------------------------------------------------------------------------

    def on_odometry(self, message: Odometry) -> None:
        self.frame_poses.add_odometry(message)  # time going backwards: on_objects resets the tracker

    def on_tf_static(self, message: TFMessage) -> None:
        self.frame_poses.add_static(message)

    # --- detections → tracks → predictions ------------------------------------------------------

    def on_objects(self, message: DetectedObjects) -> None:
        received_at = time.perf_counter()
        self.counters.received += 1
        try:
            detections = msg_to_detected_objects(message)
        except MalformedMessageError:
            self.counters.rejected += 1
            raise
        stamp = stamp_to_seconds(message.header.stamp)
        if self._last_stamp is not None and stamp <= self._last_stamp:
            self.counters.resets += 1
            self.get_logger().warning(
                f"detections stamped {stamp:.3f} s, not after the previous {self._last_stamp:.3f} s (bag loop or "
                f"simulator reset): tracks and histories reset ({self.counters.resets} so far)")
            self.tracker.reset()
            self.predictor.reset()
        self._last_stamp = stamp
        frame_pose, why = self.frame_poses.pose(message.header.frame_id, int(round(stamp * 1e9)))
        if frame_pose is None:
            self.counters.skipped_without_pose += 1
            self.get_logger().warning(f"detections skipped: {why} ({self.counters.skipped_without_pose} so far)",
                                      throttle_duration_sec=LOG_PERIOD_S)
            return
        try:
            detections = _into_frame(detections, frame_pose)
        except ValueError as error:  # a sensor frame that rolls or pitches against the tracking frame (camera_optical)
            self.counters.rejected += 1
            raise MalformedMessageError(f"detections in {message.header.frame_id!r}: {error}") from None
        try:
            tracks = self.tracker.update(detections, stamp)
        except TrackerInputError as error:
            self.counters.rejected += 1
            raise MalformedMessageError(str(error)) from None
        predicted = self.predictor.update(stamp, tracks)
        header = Header(stamp=message.header.stamp, frame_id=self.config.tracking_frame)
        self.pub_tracks.publish(tracked_objects_to_msg(tracks, header))
        self.pub_predicted.publish(predicted_objects_to_msg(predicted, header))
        elapsed_ms = 1e3 * (time.perf_counter() - received_at)
        self.pub_markers.publish(predicted_objects_to_markers(predicted, header, self.get_name()))
        self.pub_processing_time.publish(Float64(data=elapsed_ms))
        self.counters.processed += 1
        self.processing_times_ms.append(elapsed_ms)
        self.statistics.record(message.header.stamp, elapsed_ms)

    def destroy_node(self) -> None:
        publish_final_statistics(self)
        super().destroy_node()


def _into_frame(detections: list[DetectedObject], frame_pose: np.ndarray) -> list[DetectedObject]:
    if not detections or np.array_equal(frame_pose, np.eye(4)):
        return detections
    # boxes_into_frame expresses parent-frame boxes in a child; the tracking frame is the sensor frame's parent.
    boxes = boxes_into_frame(boxes_to_array([d.box for d in detections]),
                             np.linalg.inv(frame_pose))
    return [DetectedObject(d.label, d.score, Box3D(box[:3], box[3:6], box[6]), d.num_points)
            for d, box in zip(detections, boxes)]


def main(args: list[str] | None = None) -> int:
    return run_node(TrajectoryPredictorNode, args)
