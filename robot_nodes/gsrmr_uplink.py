"""gsrmr_uplink: the robot side of the green mixed-reality uplink (GSRMR).

~/input/image (Image rgb8 or bgr8), ~/input/camera_info, ~/input/odometry and ~/input/tf_static
(the camera's mount on base_link) → per camera frame:
  the frame downscaled to the stream's resolution and JPEG-coded (its size is what an upload sends),
  the quality of the decoded JPEG and the predicted quality of the remote side's Gaussian-splatting
  render at the camera's pose (mixed_reality.discrepancy, a small render of the same scene),
  the channel of this frame (path loss to the access point, simulated fading),
  and the receding-window GSCLO decision (mixed_reality.uplink.policy: APO by default) →
~/output/decision (UplinkDecision, every frame), ~/output/uplink (CompressedImage, uploaded frames),
~/output/pose (PoseStamped of the camera's optical frame, frames left to the render) and
~/output/camera_info (the stream's CameraInfo, latched).

The scene is in the odometry frame's coordinates (map = odom in the simulated world; on a robot,
localise in the scene's map and give that pose as odometry). Frames without a pose, or before the
camera info, are skipped and counted; malformed messages are rejected with the reason.

Decisions run in a worker thread fed by a one-slot mailbox, so the executor keeps taking odometry
while a frame is decided (served in the same thread, a slow decision left the odometry of the
next frames queued behind it and 75 of 199 frames found no pose); a frame that replaces one still
waiting is counted in `dropped_frames`. A frame whose solve fails (mixed_reality.uplink.policy: a
solver error, a window with a non-finite gain or energy, no convergence, over policy.time_budget)
is uploaded at the channel's maximum power; its decision has fallback = true and the reason
(docs/reliability.md).
"""
from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass, field

import numpy as np
from geometry_msgs.msg import PoseStamped
from nav_msgs.msg import Odometry
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from rclpy.serialization import serialize_message
from sensor_msgs.msg import CameraInfo, CompressedImage, Image
from std_msgs.msg import Header
from tf2_msgs.msg import TFMessage

from edge_robot_msgs.msg import UplinkDecision
from mixed_reality.discrepancy import DiscrepancyConfig, DiscrepancyPredictor
from mixed_reality.gaussians import GaussianModel, GaussianModelError
from mixed_reality.quality import psnr, ssim
from mixed_reality.render import GaussianRenderer, RenderConfig
from mixed_reality.stream import StreamFrameError, decode_image, downscale, encode_jpeg, scaled_intrinsics
from mixed_reality.uplink.channel import Channel, ChannelConfig
from mixed_reality.uplink.policy import RecedingWindowPolicy, UplinkPolicyConfig
from robot_nodes.conversions import (MalformedMessageError, camera_info_from_intrinsics, image_to_numpy,
                                     intrinsics_from_camera_info, se3_to_pose, stamp_to_seconds)
from robot_nodes.frame_poses import FramePoses
from robot_nodes.node_statistics import NodeStatisticsPublisher, ProcessingCounts, measured, publish_final_statistics
from robot_nodes.parameters import declare_config
from robot_nodes.paths import resolve
from robot_nodes.runner import StartupError, run_node
from sim.validation import check_ranges

LOG_PERIOD_S = 5.0
"""Least wall seconds between two repeated warnings of one kind."""
POSE_WAIT_S = 0.2
"""A frame newer than the newest odometry waits this many wall seconds at most for it to come."""
LATCHED = QoSProfile(depth=1, durability=DurabilityPolicy.TRANSIENT_LOCAL)
CAMERA_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=10, reliability=ReliabilityPolicy.BEST_EFFORT,
                        durability=DurabilityPolicy.VOLATILE)
"""Sensor-data QoS, as the camera publishes (a reliable subscription would not match it), with room
for a burst of frames while one is being decided."""


@dataclass
class GsrmrUplinkConfig:
    """Parameters of the gsrmr_uplink node."""

    model_path: str = ""
    """The Gaussian-splatting scene (.ply, 3DGS layout) the remote side renders from, in the odometry
    frame's coordinates; `build-gaussian-scene` makes one for a simulated world. Relative paths are
    taken from the package share directory."""
    odometry_frame: str = "odom"
    """Frame of the odometry, and of the scene and the published poses."""
    stream_scale: int = field(default=2, metadata={"range": (1, 8)})
    """The stream is the camera image downscaled by this whole factor (block average)."""
    jpeg_quality: int = field(default=90, metadata={"range": (1, 95)})
    """JPEG quality of uploaded frames."""
    max_pose_gap: float = field(default=0.2, metadata={"range": (0.001, 10.0)})
    """A frame is placed with odometry at most this far from its stamp, seconds."""
    fading_seed: int = field(default=0, metadata={"range": (0, 2**31 - 1)})
    """Seed of the simulated small-scale fading (the radio's channel estimate on a robot)."""
    channel: ChannelConfig = field(default_factory=ChannelConfig)
    """The wireless uplink (channel.*)."""
    policy: UplinkPolicyConfig = field(default_factory=UplinkPolicyConfig)
    """The receding-window decision (policy.*)."""
    predictor: DiscrepancyConfig = field(default_factory=DiscrepancyConfig)
    """The render-quality predictor (predictor.*)."""
    render: RenderConfig = field(default_factory=RenderConfig)
    """The predictor's renderer (render.*)."""

    def __post_init__(self) -> None:
        if not self.model_path:
            raise ValueError("model_path is required: a Gaussian-splatting scene (build-gaussian-scene makes one)")
        if not self.odometry_frame:
            raise ValueError("odometry_frame must not be empty")
        check_ranges(self)


@dataclass
class UplinkCounters:
    """What became of the camera frames: received = rejected + dropped + skipped + decided + failed,
    plus at most one waiting and one being decided."""

    received: int = 0
    """Camera frames that arrived."""
    decided: int = 0
    """Frames with a published decision."""
    uploaded: int = 0
    """Decided frames whose image was uploaded."""
    rejected: int = 0
    """Malformed frames (encoding, size), logged with the reason."""
    dropped_frames: int = 0
    """Frames replaced in the mailbox by a newer one before the worker took them."""
    skipped_without_camera_info: int = 0
    """Frames before the first camera info."""
    skipped_without_pose: int = 0
    """Frames with no odometry or camera mount at their stamp."""
    failed_frames: int = 0
    """Frames on which deciding raised (logged); nothing was published for them."""
    fallbacks: int = 0
    """Decided frames whose solve failed: the safe decision went out (the image at p_max), with the reason."""
    resets: int = 0
    """Resets because the odometry went back in time (the window and the running quality start afresh)."""


def load_scene(path_parameter: str, node_name: str) -> GaussianModel:
    """The scene named by a model_path parameter, or StartupError saying which file and what to do."""
    try:
        return GaussianModel.load_ply(resolve(path_parameter))
    except GaussianModelError as error:
        raise StartupError(f"{node_name}: {error} (parameter model_path)") from None


class GsrmrUplinkNode(Node):
    def __init__(self, **node_options) -> None:
        super().__init__("gsrmr_uplink", **node_options)
        self._lock = threading.Condition()
        self._mailbox: tuple | None = None
        self._reset_policy = False
        """Time went backwards: the worker resets the policy before its next decision."""
        self._stop = False
        self._worker: threading.Thread | None = None
        self.config = declare_config(self, GsrmrUplinkConfig)
        scene = load_scene(self.config.model_path, "gsrmr_uplink")
        self.predictor = DiscrepancyPredictor(GaussianRenderer(scene, self.config.render), self.config.predictor)
        self.channel = Channel(self.config.channel)
        self.policy = RecedingWindowPolicy(self.config.policy, self.channel)
        self._fading = np.random.default_rng(self.config.fading_seed)
        self.frame_poses = FramePoses(self.config.odometry_frame, self.config.max_pose_gap)
        self.pose_bits = 8 * len(serialize_message(PoseStamped(header=Header(frame_id=self.config.odometry_frame))))
        """Size of a skipped frame's payload (its PoseStamped, serialised), bits."""
        self._stream_camera: tuple[np.ndarray, int, int] | None = None
        """(K, width, height) of the stream."""
        self.counters = UplinkCounters()
        self.statistics = NodeStatisticsPublisher(self, self._processing_counts, self._lock)
        self.inputs = self.statistics.inputs

        self.pub_decision = self.create_publisher(UplinkDecision, "~/output/decision", 10)
        self.pub_uplink = self.create_publisher(CompressedImage, "~/output/uplink", 10)
        self.pub_pose = self.create_publisher(PoseStamped, "~/output/pose", 10)
        self.pub_camera_info = self.create_publisher(CameraInfo, "~/output/camera_info", LATCHED)
        self.create_subscription(Odometry, "~/input/odometry",
                                 self.inputs.wrap("~/input/odometry", self.on_odometry), 100)
        self.create_subscription(TFMessage, "~/input/tf_static", self.inputs.wrap("~/input/tf_static", self.on_tf_static),
                                 QoSProfile(depth=100, durability=DurabilityPolicy.TRANSIENT_LOCAL))
        self.create_subscription(CameraInfo, "~/input/camera_info",
                                 self.inputs.wrap("~/input/camera_info", self.on_camera_info), CAMERA_QOS)
        self.create_subscription(Image, "~/input/image", self.inputs.wrap("~/input/image", self.on_image), CAMERA_QOS)
        self._worker = threading.Thread(target=self._run, name="gsrmr_uplink_worker", daemon=True)
        self._worker.start()
        self.get_logger().info(
            f"scene {resolve(self.config.model_path)} ({len(scene)} Gaussians), stream 1/{self.config.stream_scale} "
            f"of the camera, JPEG quality {self.config.jpeg_quality}, {self.config.policy.method} over "
            f"{self.config.policy.window} frames, mean PSNR >= {self.config.policy.quality_threshold:g} dB")

    def _processing_counts(self) -> ProcessingCounts:
        counters = self.counters
        return ProcessingCounts(counters.received, counters.decided, counters.dropped_frames, counters.failed_frames)

    def on_odometry(self, message: Odometry) -> None:
        with self._lock:
            if self.frame_poses.add_odometry(message):  # time went backwards: its odometry is forgotten
                self.counters.resets += 1
                self.counters.dropped_frames += self._mailbox is not None  # a frame of the old time line
                self._mailbox = None
                self._reset_policy = True
                self.get_logger().warning(f"odometry went back in time (bag loop or simulator reset): the uplink "
                                          f"window, the running quality and a waiting frame reset "
                                          f"({self.counters.resets} so far)")
            self._lock.notify_all()

    def on_tf_static(self, message: TFMessage) -> None:
        with self._lock:
            self.frame_poses.add_static(message)

    def on_camera_info(self, message: CameraInfo) -> None:
        intrinsics, width, height = intrinsics_from_camera_info(message)
        scale = self.config.stream_scale
        if width % scale or height % scale:
            raise MalformedMessageError(f"a {width}x{height} camera cannot be streamed at 1/{scale} (whole blocks only)")
        stream = (scaled_intrinsics(intrinsics, scale), width // scale, height // scale)
        if self._stream_camera is None or not np.array_equal(stream[0], self._stream_camera[0]) \
                or stream[1:] != self._stream_camera[1:]:
            self._stream_camera = stream
            self.pub_camera_info.publish(camera_info_from_intrinsics(*stream, message.header))

    def on_image(self, message: Image) -> None:
        started = time.perf_counter()
        self.counters.received += 1
        try:
            stamp_to_seconds(message.header.stamp)  # the worker needs it: a bad stamp is rejected here
            rgb = image_to_numpy(message)
            if message.encoding not in ("rgb8", "bgr8"):
                raise MalformedMessageError(f"Image: encoding '{message.encoding}' is not a colour image (rgb8, bgr8)")
            stream = downscale(rgb[..., ::-1] if message.encoding == "bgr8" else rgb, self.config.stream_scale)
        except (MalformedMessageError, StreamFrameError) as error:
            self.counters.rejected += 1
            raise MalformedMessageError(str(error)) from None
        if self._stream_camera is None:
            self.counters.skipped_without_camera_info += 1
            self.get_logger().warning("frame skipped: no camera info yet", throttle_duration_sec=LOG_PERIOD_S)
            return
        intrinsics, width, height = self._stream_camera
        if stream.shape[:2] != (height, width):
            self.counters.rejected += 1
            raise MalformedMessageError(f"Image: {message.width}x{message.height} does not match the camera info's "
                                        f"{width * self.config.stream_scale}x{height * self.config.stream_scale}")
        with self._lock:
            if self._mailbox is not None:
                self.counters.dropped_frames += 1
                self.get_logger().warning(f"deciding is slower than the camera: dropped a frame "
                                          f"({self.counters.dropped_frames} so far)", throttle_duration_sec=LOG_PERIOD_S)
            self._mailbox = (message.header, stream, intrinsics, started)
            self._lock.notify_all()

    def _run(self) -> None:
        while True:
            with self._lock:
                self._lock.wait_for(lambda: self._stop or self._mailbox is not None)
                if self._stop:
                    return
                frame, self._mailbox = self._mailbox, None
                reset, self._reset_policy = self._reset_policy, False
            if reset:
                self.policy.reset()
            try:
                self._decide(*frame)
            except Exception as error:  # a failure must not end the worker
                with self._lock:
                    self.counters.failed_frames += 1
                self.get_logger().error(f"deciding a frame failed ({type(error).__name__}: {error})",
                                        throttle_duration_sec=LOG_PERIOD_S)

    def _camera_pose(self, header: Header) -> tuple[np.ndarray | None, str]:
        """The camera's pose at the frame's stamp, waiting up to POSE_WAIT_S for newer odometry."""
        stamp_ns = int(round(stamp_to_seconds(header.stamp) * 1e9))
        deadline = time.monotonic() + POSE_WAIT_S
        with self._lock:
            while True:
                pose, why = self.frame_poses.pose(header.frame_id, stamp_ns)
                newest = self.frame_poses.newest_odometry_ns
                waiting = pose is None and (newest is None or newest < stamp_ns) and time.monotonic() < deadline
                if not waiting or self._stop:
                    return pose, why
                self._lock.wait(timeout=max(0.0, deadline - time.monotonic()))

    @measured
    def _decide(self, header: Header, stream: np.ndarray, intrinsics: np.ndarray, started: float) -> None:
        camera_pose, why = self._camera_pose(header)
        if camera_pose is None:
            with self._lock:
                self.counters.skipped_without_pose += 1
            self.get_logger().warning(f"frame skipped: {why} ({self.counters.skipped_without_pose} so far)",
                                      throttle_duration_sec=LOG_PERIOD_S)
            return

        jpeg = encode_jpeg(stream, self.config.jpeg_quality)
        decoded = decode_image(jpeg)
        image_psnr, image_ssim = psnr(decoded, stream), ssim(decoded, stream)
        render_psnr, render_ssim = self.predictor.predict(stream, camera_pose, intrinsics)
        gain = float(self.channel.gain(self.channel.distance(camera_pose[0, 3], camera_pose[1, 3]), self._fading))
        decision = self.policy.decide(8 * len(jpeg), self.pose_bits, gain, image_psnr, render_psnr)
        if decision.fallback:
            with self._lock:
                self.counters.fallbacks += 1
            self.get_logger().warning(f"uplink solve failed, uploading the image at full power: {decision.reason} "
                                      f"({self.counters.fallbacks} frames so far)", throttle_duration_sec=LOG_PERIOD_S)

        self.pub_decision.publish(UplinkDecision(
            header=header, upload=decision.upload, transmit_power=decision.power,
            payload_bits=decision.payload_bits, energy=decision.energy,
            predicted_psnr=image_psnr if decision.upload else render_psnr,
            predicted_ssim=image_ssim if decision.upload else render_ssim,
            image_bits=8 * len(jpeg), image_energy=decision.image_energy, image_psnr=image_psnr,
            image_ssim=image_ssim, render_psnr_predicted=render_psnr, render_ssim_predicted=render_ssim,
            channel_gain_db=10.0 * math.log10(gain) if gain > 0.0 else math.nan,
            decision_time=time.perf_counter() - started, fallback=decision.fallback, reason=decision.reason))
        if decision.upload:
            self.pub_uplink.publish(CompressedImage(header=header, format="jpeg", data=jpeg))
        else:
            self.pub_pose.publish(PoseStamped(header=Header(stamp=header.stamp, frame_id=self.config.odometry_frame),
                                              pose=se3_to_pose(camera_pose)))
        with self._lock:
            self.counters.uploaded += decision.upload
            self.counters.decided += 1
            self.statistics.record(header.stamp, 1e3 * (time.perf_counter() - started))

    def destroy_node(self) -> None:
        with self._lock:
            self._stop = True
            self._lock.notify_all()
        if self._worker is not None and self._worker.is_alive() and threading.current_thread() is not self._worker:
            self._worker.join()  # lets a decision in progress finish and publish first
        publish_final_statistics(self)
        super().destroy_node()


def main(args: list[str] | None = None) -> int:
    return run_node(GsrmrUplinkNode, args)
