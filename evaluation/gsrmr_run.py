"""GSRMR evaluation: drives through the simulated world recorded frame by frame, then every uplink
method on the same frames and channel.

A drive: the lane-keeping controller drives the ego through a scenario with moving traffic; each
camera frame is downscaled to the stream, JPEG-coded (its size is an upload's payload, the decoded
image's PSNR/SSIM against the stream frame is an upload's quality) and the static scene's
Gaussian-splatting render at the camera's true pose is scored against it (a skipped frame's true
quality), beside the robot's prediction of that quality (mixed_reality.discrepancy).

The methods decide on what the robot knows — image sizes, decoded-image quality, the predicted
render quality and the channel of each frame (path loss to the access point, one Rayleigh draw per
frame, the same draws for every method) — and are scored on what the remote side shows: uploaded
frames at their image quality, skipped frames at the render's true quality. Offline methods solve
consecutive windows of `window` frames, each with its quality constraint (as GSCLO is posed);
`online` is the robot node's receding-window policy run frame by frame.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
from tqdm import tqdm

from mixed_reality.discrepancy import DiscrepancyPredictor
from mixed_reality.gaussians import GaussianModel
from mixed_reality.quality import psnr, ssim
from mixed_reality.render import GaussianRenderer
from mixed_reality.stream import decode_image, downscale, encode_jpeg, scaled_intrinsics
from mixed_reality.uplink.baselines import METHODS
from mixed_reality.uplink.channel import Channel, ChannelConfig
from mixed_reality.uplink.policy import RecedingWindowPolicy, UplinkPolicyConfig
from mixed_reality.uplink.problem import GscloInstance
from sim.controller import LaneKeepingController
from sim.transforms import planar_pose_matrix
from sim.validation import check_ranges
from sim.world import World

POSE_BITS = 8 * 96
"""A skipped frame's payload: a serialised geometry_msgs/PoseStamped with a short frame id, bits
(what gsrmr_uplink measures with rclpy's serialiser)."""
OFFLINE_METHODS = ("apo", "exact", "always_upload", "never_upload", "threshold", "random", "apo_max_power")
"""The window methods of mixed_reality.uplink.baselines.METHODS that the evaluation runs."""
ONLINE = "online"
"""The receding-window policy of the robot node, frame by frame."""


@dataclass
class DriveConfig:
    """One evaluation drive and the uplink it is scored with."""

    duration: float = field(default=30.0, metadata={"range": (0.1, 3600.0)})
    """Simulated seconds driven."""
    stream_scale: int = field(default=2, metadata={"range": (1, 8)})
    """The stream is the camera image downscaled by this factor (gsrmr_uplink's stream_scale)."""
    jpeg_quality: int = field(default=90, metadata={"range": (1, 95)})
    """JPEG quality of uploads."""
    window: int = field(default=50, metadata={"range": (1, 1000)})
    """Frames per GSCLO window (5 s at the camera's 10 Hz)."""
    latency: float = field(default=0.1, metadata={"range": (1e-3, 10.0)})
    """Per-frame latency budget, s."""
    quality_threshold: float = field(default=30.0, metadata={"range": (0.0, 100.0)})
    """Least mean PSNR of the remote stream over a window, dB."""
    fading_seed: int = field(default=0, metadata={"range": (0, 2**31 - 1)})
    """Seed of the channel's fading draws (mixed with the world's seed)."""
    channel: ChannelConfig = field(default_factory=ChannelConfig)
    """The uplink channel."""

    def __post_init__(self) -> None:
        check_ranges(self)


@dataclass
class DriveFrames:
    """What one drive's camera frames give the uplink, frame by frame (N frames)."""

    scenario: str
    seed: int
    stamps: np.ndarray
    """World time of each frame, s (N,)."""
    positions: np.ndarray
    """Camera position in map, metres (N, 2)."""
    image_bits: np.ndarray
    """JPEG size, bits (N,)."""
    image_psnr: np.ndarray
    """Decoded JPEG against the stream frame, dB (N,)."""
    image_ssim: np.ndarray
    render_psnr: np.ndarray
    """Gaussian-splatting render at the true pose against the stream frame, dB (N,): a skipped frame's quality."""
    render_ssim: np.ndarray
    predicted_psnr: np.ndarray
    """The robot's prediction of render_psnr (N,)."""
    predicted_ssim: np.ndarray
    dynamic_share: np.ndarray
    """Share of the frame's pixels on moving road users (absent from the static scene) (N,)."""
    render_ms: np.ndarray
    """Wall milliseconds of each full render (N,)."""
    predict_ms: np.ndarray
    """Wall milliseconds of each prediction (N,)."""

    def __len__(self) -> int:
        return len(self.stamps)


def record_drive(world: World, scenario: str, scene: GaussianModel, config: DriveConfig,
                 progress: bool = True) -> DriveFrames:
    """Drive the world for config.duration with the lane-keeping controller, scoring every camera frame."""
    renderer = GaussianRenderer(scene)
    predictor = DiscrepancyPredictor(renderer)
    controller = LaneKeepingController(world.lane_centerlines)
    intrinsics = scaled_intrinsics(world.camera_intrinsics, config.stream_scale)
    width = world.camera_config.width // config.stream_scale
    height = world.camera_config.height // config.stream_scale
    optical_to_base_link = world.camera_config.optical_to_base_link()
    period = 1.0 / world.camera_config.rate_hz
    columns = {name: [] for name in ("stamps", "positions", "image_bits", "image_psnr", "image_ssim", "render_psnr",
                                     "render_ssim", "predicted_psnr", "predicted_ssim", "dynamic_share",
                                     "render_ms", "predict_ms")}
    count = round(config.duration / period)
    for _ in tqdm(range(count), desc=f"{scenario} seed {world.seed}", unit="frame", disable=not progress):
        frame = world.camera_frame()
        camera_to_map = planar_pose_matrix(*world.ego_pose) @ optical_to_base_link
        stream = downscale(frame.rgb, config.stream_scale)
        jpeg = encode_jpeg(stream, config.jpeg_quality)
        decoded = decode_image(jpeg)
        started = time.perf_counter()
        render = renderer.render(camera_to_map, intrinsics, width, height).rgb
        render_ms = 1e3 * (time.perf_counter() - started)
        started = time.perf_counter()
        predicted = predictor.predict(stream, camera_to_map, intrinsics)
        predict_ms = 1e3 * (time.perf_counter() - started)
        moving = [o.object_id for o in world.ground_truth() if not o.is_static]
        values = (frame.stamp, camera_to_map[:2, 3], 8 * len(jpeg), psnr(decoded, stream), ssim(decoded, stream),
                  psnr(render, stream), ssim(render, stream), *predicted,
                  float(np.isin(frame.object_ids, moving).mean()), render_ms, predict_ms)
        for name, value in zip(columns, values):
            columns[name].append(value)
        x, y, yaw = world.ego_pose
        world.step(period, *controller.command((x, y, yaw), world.ego_velocity[0], world.scenario.ego.speed))
    return DriveFrames(scenario, world.seed, **{name: np.array(values) for name, values in columns.items()})


@dataclass
class MethodRun:
    """One method over one drive's frames."""

    method: str
    upload: np.ndarray
    """Upload decision per frame (N,)."""
    energy: np.ndarray
    """Uplink energy per frame, J (N,)."""
    shown_psnr: np.ndarray
    """PSNR of what the remote side shows per frame, dB (N,)."""
    shown_ssim: np.ndarray
    planned_feasible: list[bool] = field(default_factory=list)
    """Per window: whether the method's solution met the constraint on the predicted qualities."""
    met_threshold: list[bool] = field(default_factory=list)
    """Per window: whether the shown mean PSNR met the threshold."""
    solve_times: list[float] = field(default_factory=list)
    """Seconds per window (offline) or per frame (online)."""
    latency_violations: int = 0


def channel_gains(frames: DriveFrames, channel: Channel, config: DriveConfig) -> np.ndarray:
    """Each frame's channel gain: path loss at its position and one fading draw, seeded by the drive."""
    rng = np.random.default_rng([config.fading_seed, frames.seed])
    return np.asarray(channel.gain(channel.distance(frames.positions[:, 0], frames.positions[:, 1]), rng))


def window_instance(frames: DriveFrames, gains: np.ndarray, window: slice, channel: Channel,
                    config: DriveConfig, quality_threshold: float | None = None) -> GscloInstance:
    """The GSCLO instance of a window as the robot sees it (predicted render quality)."""
    return GscloInstance(image_bits=frames.image_bits[window].astype(np.float64), pose_bits=float(POSE_BITS),
                         gains=gains[window], image_quality=frames.image_psnr[window],
                         render_quality=frames.predicted_psnr[window], latency=config.latency,
                         quality_threshold=config.quality_threshold if quality_threshold is None else quality_threshold,
                         channel=channel)


def run_offline(frames: DriveFrames, gains: np.ndarray, method: str, channel: Channel, config: DriveConfig,
                quality_threshold: float | None = None) -> MethodRun:
    """`method` on consecutive windows of the drive (a shorter last window included)."""
    threshold = config.quality_threshold if quality_threshold is None else quality_threshold
    rng = np.random.default_rng([config.fading_seed, frames.seed, 1])
    upload = np.zeros(len(frames), dtype=bool)
    energy = np.zeros(len(frames))
    run = MethodRun(method, upload, energy, np.zeros(len(frames)), np.zeros(len(frames)))
    for start in range(0, len(frames), config.window):
        window = slice(start, min(start + config.window, len(frames)))
        solution = METHODS[method](window_instance(frames, gains, window, channel, config, threshold), rng)
        upload[window], energy[window] = solution.upload, solution.energy
        run.planned_feasible.append(solution.feasible)
        run.solve_times.append(solution.solve_time)
        run.latency_violations += solution.latency_violations
    _score(run, frames, threshold, config.window)
    return run


def run_online(frames: DriveFrames, gains: np.ndarray, channel: Channel, config: DriveConfig,
               quality_threshold: float | None = None) -> MethodRun:
    """The robot node's receding-window policy (APO), frame by frame in the drive's order."""
    threshold = config.quality_threshold if quality_threshold is None else quality_threshold
    policy = RecedingWindowPolicy(UplinkPolicyConfig(window=config.window, latency=config.latency,
                                                     quality_threshold=threshold, method="apo"), channel)
    run = MethodRun(ONLINE, np.zeros(len(frames), dtype=bool), np.zeros(len(frames)), np.zeros(len(frames)),
                    np.zeros(len(frames)))
    for index in range(len(frames)):
        started = time.perf_counter()
        decision = policy.decide(frames.image_bits[index], POSE_BITS, gains[index], frames.image_psnr[index],
                                 frames.predicted_psnr[index])
        run.solve_times.append(time.perf_counter() - started)
        run.upload[index], run.energy[index] = decision.upload, decision.energy
        run.latency_violations += decision.latency_violation
    _score(run, frames, threshold, config.window)
    return run


def _score(run: MethodRun, frames: DriveFrames, threshold: float, window: int) -> None:
    """What the remote side shows, and per window whether its mean PSNR met the threshold."""
    run.shown_psnr[:] = np.where(run.upload, frames.image_psnr, frames.render_psnr)
    run.shown_ssim[:] = np.where(run.upload, frames.image_ssim, frames.render_ssim)
    run.met_threshold = [bool(run.shown_psnr[start:start + window].mean() >= threshold)
                         for start in range(0, len(frames), window)]
