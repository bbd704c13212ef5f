"""The on-line GSCLO policy the robot runs per camera frame: a receding window of the current frame
and the last window - 1 frames' observations as the forecast of the next ones, solved with a chosen
method, of which only the current frame's decision is applied (docs/gsrmr.md). A solve that fails gives the safe decision instead (docs/reliability.md)."""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np

from mixed_reality.uplink.baselines import METHODS, Method
from mixed_reality.uplink.channel import Channel
from mixed_reality.uplink.problem import GscloInstance, UplinkSolution
from sim.validation import check_ranges


@dataclass
class UplinkPolicyConfig:
    """The receding-window uplink policy."""

    window: int = field(default=50, metadata={"range": (1, 1000)})
    """T: frames in each GSCLO window (the current one and window - 1 forecast from the past)."""
    latency: float = field(default=0.1, metadata={"range": (1e-3, 10.0)})
    """Per-frame latency budget tau, seconds."""
    quality_threshold: float = field(default=30.0, metadata={"range": (-1.0, 100.0)})
    """Q_th: least running mean of the shown quality (PSNR dB, or SSIM), since the start or reset()."""
    method: str = "apo"
    """GSCLO method by name: apo, exact, or a baseline of mixed_reality.uplink.baselines.METHODS."""
    keep_running_average: bool = True
    """Upload the current frame whenever sending only the pose would put the running mean below Q_th
    (and the image can be sent), whatever the window's plan relies on later."""
    seed: int = field(default=0, metadata={"range": (0, 2**31 - 1)})
    """Seed of the random generator that randomised methods draw from."""
    time_budget: float = field(default=1.0, metadata={"range": (1e-3, 60.0)})
    """Wall seconds one frame's solve may take; a solve that runs past it gives the safe decision
    (the frame's image at p_max), as do one that raises and one whose answer is unusable. Generous
    by default: APO takes milliseconds, the exact solver rarely more than a few hundred."""

    def __post_init__(self) -> None:
        check_ranges(self)
        if self.method not in METHODS:
            raise ValueError(f"method: must be one of {', '.join(METHODS)}, got {self.method!r}")


@dataclass
class FrameDecision:
    """What to send for the current frame."""

    upload: bool
    """True: the compressed image; false: only the pose."""
    power: float
    """Transmit power, W."""
    payload_bits: int
    """Bits sent."""
    energy: float
    """Expected radiated energy, J."""
    expected_quality: float
    """Quality expected on the remote side: the image's when uploaded, the predicted render's otherwise."""
    image_energy: float
    """Least energy that uploading would have cost, J (inf where the image cannot meet the latency)."""
    latency_violation: bool
    """The payload misses the latency even at p_max (sent at p_max)."""
    running_quality: float
    """Mean expected quality over the frames since the start (or reset()), this one included."""
    fallback: bool = False
    """The solve failed (reason) and this is the safe decision: the image uploaded at p_max."""
    reason: str = ""
    """Why the solve failed ('' when it did not)."""


_OBSERVATIONS = ("image_bits", "pose_bits", "gains", "image_quality", "render_quality")
"""GscloInstance fields kept per frame, in the order of the history's rows."""


class RecedingWindowPolicy:
    """decide() once per frame; keeps the last window - 1 observations and the running quality sum."""

    def __init__(self, config: UplinkPolicyConfig, channel: Channel, solve: Method | None = None) -> None:
        """solve: the GSCLO method to use instead of config.method's (a solver under test)."""
        self.config = config
        self.channel = channel
        self._solve = solve or METHODS[config.method]
        self._rng = np.random.default_rng(config.seed)
        self._history = np.empty((len(_OBSERVATIONS), config.window), dtype=np.float64)
        self.reset()

    def reset(self) -> None:
        """Forget the past: the running mean and the forecast start afresh."""
        self._stored = 0
        self._next_slot = 0
        self.frames = 0
        self.quality_sum = 0.0

    def decide(self, image_bits: float, pose_bits: float, gain: float, image_quality: float,
               predicted_render_quality: float) -> FrameDecision:
        """The current frame's upload decision and power; the frame is then counted as sent. A solve
        that raises (or a window the problem refuses, e.g. a NaN gain), that runs past time_budget or
        whose answer is unusable (solution_fault) gives the safe decision instead, with the reason."""
        current = np.array([image_bits, pose_bits, gain, image_quality, predicted_render_quality],
                           dtype=np.float64)
        started = time.perf_counter()
        instance, reason = self._window(current)
        if instance is not None:
            try:
                solution = self._solve(instance, self._rng)
                reason = solution_fault(instance, solution)
            except Exception as error:  # the cycle must still answer
                reason = f"solver error: {type(error).__name__}: {error}"
        elapsed = time.perf_counter() - started
        if not reason and elapsed > self.config.time_budget:
            reason = f"over the time budget ({elapsed:.3f} s > {self.config.time_budget:g} s)"
        if reason:
            return self._safe_decision(image_bits, gain, image_quality, reason)
        threshold = self.config.quality_threshold
        upload = bool(solution.upload[0])
        pose_only_mean = (self.quality_sum + predicted_render_quality) / (self.frames + 1)
        if (self.config.keep_running_average and not upload and pose_only_mean < threshold
                and instance.upload_feasible[0] and image_quality > predicted_render_quality):
            upload = True

        late = not upload and bool(instance.pose_late[0])
        quality = image_quality if upload else predicted_render_quality
        self.frames += 1
        self.quality_sum += quality
        if self.config.window > 1:
            self._history[:, self._next_slot] = current
            self._next_slot = (self._next_slot + 1) % (self.config.window - 1)
            self._stored = min(self._stored + 1, self.config.window - 1)
        return FrameDecision(
            upload=upload,
            power=float(instance.image_power[0] if upload else instance.pose_power[0]),
            payload_bits=int(round(image_bits if upload else pose_bits)),
            energy=float(instance.image_energy[0] if upload else instance.pose_energy[0]),
            expected_quality=float(quality), image_energy=float(instance.image_energy[0]),
            latency_violation=late, running_quality=self.quality_sum / self.frames)

    def _window(self, current: np.ndarray) -> tuple[GscloInstance | None, str]:
        """(the window of the current frame and the remembered ones, '') or (None, why the problem
        refuses it: a gain that is not a positive number, non-finite energies)."""
        self._history[:, self.config.window - 1] = current  # the last column holds the current frame
        # The problem does not depend on frame order, so the ring buffer is used as it lies.
        columns = np.r_[self.config.window - 1, :self._stored]
        window = dict(zip(_OBSERVATIONS, self._history[:, columns]))
        threshold = self.config.quality_threshold
        try:
            instance = GscloInstance(**window, latency=self.config.latency, quality_threshold=threshold,
                                     channel=self.channel, quality_credit=self.quality_sum - self.frames * threshold)
        except ValueError as error:
            return None, f"window refused: {error}"
        if not (np.all(np.isfinite(instance.pose_energy))
                and np.all(np.isfinite(instance.image_energy[instance.upload_feasible]))):
            return None, "window refused: numerical trouble, non-finite transmit energies from the channel"
        return instance, ""

    def _safe_decision(self, image_bits: float, gain: float, image_quality: float, reason: str) -> FrameDecision:
        """The frame's image at p_max: the remote side shows the camera's own picture (no render whose
        quality was only predicted), sent at the most power the channel allows (the likeliest to meet
        the latency). Energy: p_max over the image's airtime at the frame's gain, or over the whole
        latency budget where the gain is not a positive number. The frame stays out of the forecast
        window (its observations may be what broke the solve); a finite image quality counts in the
        running mean."""
        p_max, latency = self.channel.config.max_power, self.config.latency
        airtime = float(self.channel.airtime(image_bits, p_max, gain)) if gain > 0.0 else math.inf
        energy = p_max * (airtime if math.isfinite(airtime) else latency)
        if math.isfinite(image_quality):
            self.frames += 1
            self.quality_sum += image_quality
        return FrameDecision(
            upload=True, power=p_max, payload_bits=int(round(image_bits)), energy=energy,
            expected_quality=float(image_quality), image_energy=energy, latency_violation=not airtime <= latency,
            running_quality=self.quality_sum / max(self.frames, 1), fallback=True, reason=reason)


def solution_fault(instance: GscloInstance, solution: UplinkSolution) -> str:
    """'' when `solution` is a usable answer to `instance`, else what is wrong with it: a switching
    vector of the wrong length, one that is not binary (a relaxation stopped before its penalty made
    x 0/1), non-finite powers or energies, or a vector that misses the quality threshold although
    uploading every candidate would meet it."""
    upload = np.asarray(solution.upload)
    if upload.shape != (instance.frames,):
        return f"malformed switching vector: shape {upload.shape}, the window has {instance.frames} frames"
    if upload.dtype != bool:
        return (f"not converged: the switching vector is not binary ({upload.dtype}, x in "
                f"[{float(np.min(upload)):.3g}, {float(np.max(upload)):.3g}])")
    if not (np.all(np.isfinite(solution.power)) and np.all(np.isfinite(solution.energy))):
        return "numerical trouble: non-finite power or energy"
    if not solution.feasible and instance.has_feasible_solution:
        return (f"not converged: {solution.method or 'the method'}'s choice misses the quality threshold "
                f"after {solution.iterations} iterations although a feasible one exists")
    return ""
