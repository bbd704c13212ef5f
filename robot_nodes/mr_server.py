"""mr_server: the remote side of the green mixed-reality uplink (GSRMR).

~/input/uplink (CompressedImage: uploaded frames), ~/input/pose (PoseStamped of the camera's optical
frame: frames left to the render) and ~/input/camera_info (the stream's, latched) → ~/output/stream
(Image rgb8 at the stream's resolution, stamped with the camera frame): the decoded upload, or the
Gaussian-splatting scene rendered at the pose.

With `evaluate`, each shown frame is also scored against the true camera frame of the same stamp
(~/input/true_image, the camera's full-resolution image, downscaled as the robot does) →
~/output/quality (StreamQuality: PSNR, SSIM, rendered or not).

Rendering runs in a worker thread fed by a short queue: when renders fall behind, the oldest
waiting pose is dropped (counted), so the stream shows the newest views.
"""
from __future__ import annotations

import collections
import threading
import time
from dataclasses import dataclass, field

import numpy as np
from geometry_msgs.msg import PoseStamped
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, QoSProfile
from sensor_msgs.msg import CameraInfo, CompressedImage, Image
from std_msgs.msg import Header

from edge_robot_msgs.msg import StreamQuality
from mixed_reality.quality import psnr, ssim
from mixed_reality.render import GaussianRenderer, RenderConfig
from mixed_reality.stream import StreamFrameError, decode_image, downscale
from robot_nodes.conversions import (MalformedMessageError, image_to_numpy, intrinsics_from_camera_info,
                                     numpy_to_image, pose_to_se3, stamp_ns)
from robot_nodes.gsrmr_uplink import CAMERA_QOS, load_scene
from robot_nodes.node_statistics import NodeStatisticsPublisher, ProcessingCounts, measured, publish_final_statistics
from robot_nodes.parameters import declare_config
from robot_nodes.runner import run_node
from robot_nodes.time_jumps import watch_time_jumps
from sim.validation import check_ranges

LOG_PERIOD_S = 5.0
"""Least wall seconds between two repeated warnings of one kind."""


@dataclass
class MrServerConfig:
    """Parameters of the mr_server node."""

    model_path: str = ""
    """The Gaussian-splatting scene (.ply, 3DGS layout), the same the robot's gsrmr_uplink uses.
    Relative paths are taken from the package share directory."""
    render: RenderConfig = field(default_factory=RenderConfig)
    """The renderer (render.*)."""
    render_queue: int = field(default=3, metadata={"range": (1, 100)})
    """Poses waiting for the renderer at most; a newer one drops the oldest."""
    evaluate: bool = False
    """Score each shown frame against the true frame on ~/input/true_image."""
    frames_kept: int = field(default=30, metadata={"range": (1, 1000)})
    """Shown or true frames waiting for their counterpart at most (evaluation); the oldest is forgotten."""

    def __post_init__(self) -> None:
        if not self.model_path:
            raise ValueError("model_path is required: a Gaussian-splatting scene (build-gaussian-scene makes one)")
        check_ranges(self)


@dataclass
class ServerCounters:
    """What became of the frames: every upload is shown or rejected; every pose is rendered,
    dropped, failed, waiting or rejected."""

    uploads: int = 0
    """Uploaded frames that arrived."""
    poses: int = 0
    """Poses that arrived."""
    shown_uploads: int = 0
    """Uploads decoded and shown."""
    rendered: int = 0
    """Poses rendered and shown."""
    dropped_renders: int = 0
    """Poses dropped because the renderer was behind."""
    failed_renders: int = 0
    """Poses whose render raised (logged); nothing was shown for them."""
    rejected: int = 0
    """Undecodable uploads, bad poses, poses before the stream's camera info (logged with the reason)."""
    scored: int = 0
    """Shown frames scored against their true frame (evaluation)."""
    unmatched: int = 0
    """Shown or true frames forgotten without their counterpart (evaluation)."""
    resets: int = 0
    """Resets because ROS time jumped: the poses waiting for the renderer (counted in dropped_renders)
    and the frames waiting to be scored (counted in unmatched) are of the old time line."""


class MrServerNode(Node):
    def __init__(self, **node_options) -> None:
        super().__init__("mr_server", **node_options)
        self._lock = threading.Condition()
        self._stop = False
        self._worker: threading.Thread | None = None
        self.config = declare_config(self, MrServerConfig)
        scene = load_scene(self.config.model_path, "mr_server")
        self.renderer = GaussianRenderer(scene, self.config.render)
        self.counters = ServerCounters()
        self.render_times_ms: list[float] = []
        """Wall milliseconds per render."""
        self.statistics = NodeStatisticsPublisher(self, self._processing_counts, self._lock)
        self.inputs = self.statistics.inputs
        self._stream_camera: tuple[np.ndarray, int, int] | None = None
        self._poses: collections.deque[tuple[PoseStamped, float]] = collections.deque()
        """Poses waiting for the renderer, with their time.perf_counter() at arrival."""
        self._shown: collections.OrderedDict[int, tuple] = collections.OrderedDict()
        self._true: collections.OrderedDict[int, np.ndarray] = collections.OrderedDict()

        self.pub_stream = self.create_publisher(Image, "~/output/stream", 10)
        self.pub_quality = self.create_publisher(StreamQuality, "~/output/quality", 10)
        self.create_subscription(CompressedImage, "~/input/uplink", self.inputs.wrap("~/input/uplink", self.on_upload), 10)
        self.create_subscription(PoseStamped, "~/input/pose", self.inputs.wrap("~/input/pose", self.on_pose), 10)
        self.create_subscription(CameraInfo, "~/input/camera_info",
                                 self.inputs.wrap("~/input/camera_info", self.on_camera_info),
                                 QoSProfile(depth=1, durability=DurabilityPolicy.TRANSIENT_LOCAL))
        if self.config.evaluate:
            self.create_subscription(Image, "~/input/true_image",
                                     self.inputs.wrap("~/input/true_image", self.on_true_image), CAMERA_QOS)
        self._time_jumps = watch_time_jumps(self, self._forget_old_time_line,
                                            "the render queue and the frames waiting to be scored")
        self._worker = threading.Thread(target=self._render_loop, name="mr_server_renderer", daemon=True)
        self._worker.start()
        self.get_logger().info(f"scene of {len(scene)} Gaussians on {self.renderer.device}"
                               + (", scoring against the true frames" if self.config.evaluate else ""))

    def _processing_counts(self) -> ProcessingCounts:
        """Per shown frame: uploads and poses."""
        counters = self.counters
        return ProcessingCounts(counters.uploads + counters.poses, counters.shown_uploads + counters.rendered,
                                counters.dropped_renders, counters.failed_renders)

    def _forget_old_time_line(self) -> None:
        with self._lock:
            self.counters.resets += 1
            self.counters.dropped_renders += len(self._poses)
            self.counters.unmatched += len(self._shown) + len(self._true)
            self._poses.clear()
            self._shown.clear()
            self._true.clear()

    def on_camera_info(self, message: CameraInfo) -> None:
        with self._lock:
            self._stream_camera = intrinsics_from_camera_info(message)

    def on_upload(self, message: CompressedImage) -> None:
        arrived = time.perf_counter()
        self.counters.uploads += 1
        try:
            rgb = decode_image(message.data)
        except StreamFrameError as error:
            self.counters.rejected += 1
            raise MalformedMessageError(f"CompressedImage: {error}") from None
        self._show(message.header, rgb, rendered=False, render_time=0.0)
        with self._lock:
            self.counters.shown_uploads += 1
            self.statistics.record(message.header.stamp, 1e3 * (time.perf_counter() - arrived))

    def on_pose(self, message: PoseStamped) -> None:
        arrived = time.perf_counter()
        with self._lock:
            self.counters.poses += 1
            if self._stream_camera is None:
                self.counters.rejected += 1
                raise MalformedMessageError("pose before the stream's camera info: nothing to render with")
        try:
            pose_to_se3(message.pose)  # a malformed pose is rejected here, with the reason
        except MalformedMessageError:
            with self._lock:
                self.counters.rejected += 1
            raise
        with self._lock:
            if len(self._poses) >= self.config.render_queue:
                self._poses.popleft()
                self.counters.dropped_renders += 1
                self.get_logger().warning(f"renderer behind: dropped a pose ({self.counters.dropped_renders} so far)",
                                          throttle_duration_sec=LOG_PERIOD_S)
            self._poses.append((message, arrived))
            self._lock.notify()

    def _render_loop(self) -> None:
        while True:
            with self._lock:
                self._lock.wait_for(lambda: self._stop or self._poses)
                if self._stop:
                    return
                message, arrived = self._poses.popleft()
                camera = self._stream_camera
            self._render_and_show(message, arrived, *camera)

    @measured
    def _render_and_show(self, message: PoseStamped, arrived: float, intrinsics: np.ndarray, width: int,
                         height: int) -> None:
        """Render the pose, show the frame (the renderer's worker thread)."""
        started = time.perf_counter()
        try:
            rgb = self.renderer.render(pose_to_se3(message.pose), intrinsics, width, height).rgb
        except Exception as error:  # a render failure must not end the worker
            with self._lock:
                self.counters.failed_renders += 1
            self.get_logger().error(f"render failed ({type(error).__name__}: {error})",
                                    throttle_duration_sec=LOG_PERIOD_S)
            return
        render_time = time.perf_counter() - started
        self._show(message.header, rgb, rendered=True, render_time=render_time)
        with self._lock:
            self.counters.rendered += 1
            self.render_times_ms.append(1e3 * render_time)
            self.statistics.record(message.header.stamp, 1e3 * (time.perf_counter() - arrived))

    def _show(self, header: Header, rgb: np.ndarray, rendered: bool, render_time: float) -> None:
        self.pub_stream.publish(numpy_to_image(rgb, "rgb8", header))
        if not self.config.evaluate:
            return
        with self._lock:
            self._shown[stamp_ns(header.stamp)] = (header.stamp, rgb, rendered, render_time)
            self._score_matches()

    def on_true_image(self, message: Image) -> None:
        rgb = image_to_numpy(message)
        if message.encoding not in ("rgb8", "bgr8"):
            raise MalformedMessageError(f"Image: encoding '{message.encoding}' is not a colour image (rgb8, bgr8)")
        with self._lock:
            camera = self._stream_camera
        if camera is not None and not _whole_multiple(rgb, *camera[1:]):
            raise MalformedMessageError(f"true image {rgb.shape[1]}x{rgb.shape[0]} is not a whole multiple of the "
                                        f"stream's {camera[1]}x{camera[2]}")
        # Kept at full size: the first frame can come before the stream's camera info (its size).
        with self._lock:
            self._true[stamp_ns(message.header.stamp)] = rgb[..., ::-1] if message.encoding == "bgr8" else rgb
            self._score_matches()

    def _score_matches(self) -> None:
        """Score every shown frame whose true frame is here; forget the oldest beyond frames_kept (lock held)."""
        for key in [key for key in self._shown if key in self._true]:
            stamp, rgb, rendered, render_time = self._shown.pop(key)
            full = self._true.pop(key)
            if not _whole_multiple(full, rgb.shape[1], rgb.shape[0]):
                self.counters.unmatched += 1
                continue
            truth = downscale(full, full.shape[1] // rgb.shape[1])
            self.pub_quality.publish(StreamQuality(
                header=Header(stamp=stamp), rendered=rendered, psnr=psnr(rgb, truth),
                ssim=ssim(rgb, truth), render_time=render_time))
            self.counters.scored += 1
        for waiting in (self._shown, self._true):
            while len(waiting) > self.config.frames_kept:
                waiting.popitem(last=False)
                self.counters.unmatched += 1

    def destroy_node(self) -> None:
        with self._lock:
            self._stop = True
            self._lock.notify()
        if self._worker is not None and self._worker.is_alive() and threading.current_thread() is not self._worker:
            self._worker.join()
        publish_final_statistics(self)
        super().destroy_node()


def _whole_multiple(image: np.ndarray, width: int, height: int) -> bool:
    """Whether `image` is the stream's width x height scaled up by a whole factor."""
    return image.shape[1] % width == 0 and image.shape[1] // width * height == image.shape[0]


def main(args: list[str] | None = None) -> int:
    return run_node(MrServerNode, args)
