"""GSCLO: which frames of a window to upload (the rest send only the pose) and at what power, so that
the uplink energy is least while every frame meets its latency and the mean shown quality meets a
threshold. The formulation is written out in docs/gsrmr.md ("GSCLO and APO")."""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from mixed_reality.uplink.channel import Channel

QUALITY_TOLERANCE = 1e-4
"""Mean quality (dB or SSIM units) by which a solution may miss the threshold and still count as
feasible: above HiGHS's feasibility tolerances (1e-6 of the required gain), far below any visible change."""


@dataclass
class GscloInstance:
    """One window of T frames. Arrays are (T,); pose_bits may be a scalar.

    Derived on construction, per frame (T,): image_power, image_energy (least power meeting the
    latency and its energy, energy +inf where that power exceeds p_max), pose_power, pose_energy
    (at p_max where even the pose is late), pose_late, upload_feasible, quality_gain (Delta Q_t =
    Q^img_t - Q^gs_t), candidates (upload feasible and Delta Q_t > 0: the only frames worth
    uploading); and required_gain G, the sum of Delta Q over the uploads that the constraint needs.
    """

    image_bits: np.ndarray
    """Compressed image size I_t, bits."""
    pose_bits: np.ndarray | float
    """Pose message size S, bits (scalar or per frame)."""
    gains: np.ndarray
    """Channel power gain g_t (path loss and fading), linear."""
    image_quality: np.ndarray
    """Q^img_t: quality of the decoded compressed image against the true frame (PSNR dB or SSIM)."""
    render_quality: np.ndarray
    """Q^gs_t: quality of the Gaussian-splatting render against the true frame (same unit)."""
    latency: float
    """Per-frame latency budget tau, seconds."""
    quality_threshold: float
    """Q_th: least mean shown quality over the window."""
    channel: Channel = field(default_factory=Channel)
    """Bandwidth, noise power and p_max of the uplink."""
    quality_credit: float = 0.0
    """Quality summed over frames outside the window beyond the threshold (the receding policy's
    past frames); the constraint is (sum_t q_t + quality_credit) / T >= Q_th."""

    def __post_init__(self) -> None:
        self.image_bits = np.asarray(self.image_bits, dtype=np.float64)
        frames = self.image_bits.shape
        if self.image_bits.ndim != 1 or not frames[0]:
            raise ValueError(f"image_bits: must be a non-empty 1-D array, got shape {frames}")
        self.pose_bits = np.broadcast_to(np.asarray(self.pose_bits, dtype=np.float64), frames).copy()
        self.gains = np.asarray(self.gains, dtype=np.float64)
        self.image_quality = np.asarray(self.image_quality, dtype=np.float64)
        self.render_quality = np.asarray(self.render_quality, dtype=np.float64)
        for name in ("gains", "image_quality", "render_quality"):
            if getattr(self, name).shape != frames:
                raise ValueError(f"{name}: must have the shape of image_bits {frames}, got {getattr(self, name).shape}")
        for name in ("image_bits", "pose_bits", "gains"):
            if not np.all(getattr(self, name) > 0.0):
                raise ValueError(f"{name}: must be > 0 everywhere")
        if not (np.all(np.isfinite(self.image_quality)) and np.all(np.isfinite(self.render_quality))):
            raise ValueError("image_quality, render_quality: must be finite")
        if not (self.latency > 0.0 and math.isfinite(self.latency)):
            raise ValueError(f"latency: must be > 0 s, got {self.latency}")
        if not (math.isfinite(self.quality_threshold) and math.isfinite(self.quality_credit)):
            raise ValueError("quality_threshold, quality_credit: must be finite")

        self.image_power, self.image_energy, image_late = self._least_energy(self.image_bits)
        self.pose_power, self.pose_energy, self.pose_late = self._least_energy(self.pose_bits)
        self.upload_feasible = ~image_late
        self.image_energy = np.where(self.upload_feasible, self.image_energy, np.inf)
        self.quality_gain = self.image_quality - self.render_quality
        self.required_gain = (self.frames * self.quality_threshold - self.render_quality.sum()
                              - self.quality_credit)
        # Uploading any other frame is impossible, or adds energy and no quality.
        self.candidates = self.upload_feasible & (self.quality_gain > 0.0)

    @property
    def frames(self) -> int:
        """T."""
        return self.image_bits.shape[0]

    @property
    def extra_energy(self) -> np.ndarray:
        """Delta E_t = E^img_t - E^pose_t, J (inf where uploading is infeasible)."""
        return self.image_energy - self.pose_energy

    @property
    def has_feasible_solution(self) -> bool:
        """Whether uploading every candidate frame meets the quality constraint."""
        return bool(self.quality_gain[self.candidates].sum() >= self.required_gain - self.frames * QUALITY_TOLERANCE)

    def _least_energy(self, bits: np.ndarray):
        """(power W, energy J, late) of the energy-minimal transmission of `bits` per frame: the least
        power meeting the latency, or p_max (late: the latency is missed) where that exceeds p_max."""
        p_max = self.channel.config.max_power
        least = self.channel.min_power(bits, self.latency, self.gains)
        late = least > p_max
        power = np.minimum(least, p_max)
        # At the least power the airtime is exactly the latency; only late frames need the rate.
        energy = power * self.latency
        if late.any():
            energy[late] = p_max * self.channel.airtime(bits[late], p_max, self.gains[late])
        return power, energy, late


@dataclass
class UplinkSolution:
    """A switching vector of one GSCLO window and what it costs and shows (built by `evaluate`)."""

    upload: np.ndarray
    """x_t, bool (T,)."""
    power: np.ndarray
    """Transmit power p_t, W (T,)."""
    energy: np.ndarray
    """Radiated energy E_t = p_t D_t / R_t(p_t), J (T,)."""
    quality: np.ndarray
    """Shown quality q_t (T,)."""
    total_energy: float
    """Sum of energy, J."""
    mean_quality: float
    """Mean of quality over the window (the quality credit not included)."""
    feasible: bool
    """Whether the quality constraint is met (within QUALITY_TOLERANCE)."""
    latency_violations: int
    """Frames whose payload misses the latency even at p_max (sent at p_max)."""
    solve_time: float = 0.0
    """Seconds the method took."""
    iterations: int = 0
    """Iterations of the method (0 for the direct ones)."""
    method: str = ""
    """Name of the method that chose the switching vector."""

    @property
    def upload_count(self) -> int:
        """Frames uploaded."""
        return int(self.upload.sum())


def trivial_upload(instance: GscloInstance) -> np.ndarray | None:
    """The switching vector when there is nothing to optimise: no upload where the renders alone meet
    the threshold, every candidate where even that falls short (infeasible); otherwise None."""
    if instance.required_gain <= instance.frames * QUALITY_TOLERANCE:
        return np.zeros(instance.frames, dtype=bool)
    if not instance.has_feasible_solution:
        return instance.candidates.copy()
    return None


def evaluate(instance: GscloInstance, upload, *, power=None, method: str = "", solve_time: float = 0.0,
             iterations: int = 0) -> UplinkSolution:
    """Cost and quality of a switching vector, each frame at its least-energy power or at `power` (T,).
    Uploading a frame whose image cannot meet the latency at p_max is refused (ValueError)."""
    upload = np.asarray(upload, dtype=bool)
    if upload.shape != (instance.frames,):
        raise ValueError(f"upload: must have shape ({instance.frames},), got {upload.shape}")
    if np.any(upload & ~instance.upload_feasible):
        raise ValueError(f"upload: frames {np.flatnonzero(upload & ~instance.upload_feasible).tolist()} "
                         "cannot meet the latency even at p_max")
    if power is None:
        power = np.where(upload, instance.image_power, instance.pose_power)
        energy = np.where(upload, instance.image_energy, instance.pose_energy)
        late = ~upload & instance.pose_late
    else:
        power = np.broadcast_to(np.asarray(power, dtype=np.float64), upload.shape).copy()
        bits = np.where(upload, instance.image_bits, instance.pose_bits)
        if np.any(power <= 0.0) or np.any(power > instance.channel.config.max_power * (1.0 + 1e-12)):
            raise ValueError("power: must be in (0, p_max]")
        airtime = instance.channel.airtime(bits, power, instance.gains)
        energy = power * airtime
        late = airtime > instance.latency * (1.0 + 1e-9)
    quality = np.where(upload, instance.image_quality, instance.render_quality)
    quality_sum = float(quality.sum())
    feasible = (quality_sum + instance.quality_credit
                >= instance.frames * (instance.quality_threshold - QUALITY_TOLERANCE))
    return UplinkSolution(upload=upload, power=power, energy=energy, quality=quality,
                          total_energy=float(energy.sum()), mean_quality=quality_sum / instance.frames,
                          feasible=bool(feasible), latency_violations=int(late.sum()), solve_time=solve_time,
                          iterations=iterations, method=method)


def random_instance(frames: int, rng: np.random.Generator, *, channel: Channel | None = None,
                    latency: float = 0.1, quality_threshold: float | None = None,
                    frame_interval: float = 0.1) -> GscloInstance:
    """A window as the simulated street gives it: the robot drives along a lane past the access point
    (start 0-300 m, 4-12 m/s, one fading draw per frame), JPEG sizes 15-45 kB drifting with the scene,
    Q^img 35-42 dB, Q^gs 24-30 dB with drops to 15-21 dB while vehicles are in view, pose 100 bytes.
    Without a threshold, Q_th is drawn between the mean render quality and the best achievable mean."""
    channel = channel or Channel()
    steps = np.arange(frames)
    x = rng.uniform(0.0, 300.0) + rng.uniform(4.0, 12.0) * frame_interval * steps
    y = rng.choice([-1.75, -5.25, -8.75])
    gains = channel.gain(channel.distance(x, y), rng)

    drift = np.cumsum(rng.normal(0.0, 1.0, frames))
    drift = (drift - drift.mean()) / max(np.ptp(drift), 1e-9)
    image_kb = np.clip(rng.uniform(22.0, 38.0) + 12.0 * drift + rng.normal(0.0, 2.0, frames), 15.0, 45.0)
    image_quality = np.clip(rng.uniform(37.0, 40.0) - 3.0 * drift + rng.normal(0.0, 0.7, frames), 35.0, 42.0)

    render_quality = rng.uniform(24.0, 30.0) + rng.normal(0.0, 1.0, frames)
    in_view = np.zeros(frames, dtype=bool)
    for _ in range(rng.poisson(frames / 25.0)):
        start = rng.integers(frames)
        in_view[start:start + rng.integers(5, 21)] = True
    render_quality = np.where(in_view, rng.uniform(15.0, 21.0, frames), render_quality)
    render_quality = np.clip(render_quality, 15.0, 30.0)

    if quality_threshold is None:
        best = np.maximum(image_quality, render_quality).mean()
        quality_threshold = render_quality.mean() + rng.uniform(0.1, 0.9) * (best - render_quality.mean())
    return GscloInstance(image_bits=8000.0 * image_kb, pose_bits=800.0, gains=gains,
                         image_quality=image_quality, render_quality=render_quality, latency=latency,
                         quality_threshold=float(quality_threshold), channel=channel)
