"""Prediction over a tracker's output: each track's recent states resampled onto the model's time
grid, then the trained model (or a kinematic baseline) gives every track its K futures."""
from __future__ import annotations

import collections
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from perception.objects import ObjectClass, PredictedObject, PredictedPath, TrackedObject
from perception.prediction.baselines import constant_turn_rate, constant_velocity
from perception.prediction.predictor import TrajectoryPredictor
from perception.prediction.recordings import AgentType
from sim.validation import check_ranges

AGENT_TYPES = {ObjectClass.CAR: AgentType.VEHICLE, ObjectClass.VAN: AgentType.VEHICLE,
               ObjectClass.TRUCK: AgentType.VEHICLE, ObjectClass.BUS: AgentType.VEHICLE,
               ObjectClass.PEDESTRIAN: AgentType.PEDESTRIAN, ObjectClass.CYCLIST: AgentType.CYCLIST,
               ObjectClass.UNKNOWN: AgentType.OTHER}
"""Object class → the agent group the predictor was trained with."""
METHODS = ("model", "constant_velocity", "constant_turn_rate")


@dataclass
class TrackPredictionConfig:
    """What is predicted for the tracks."""

    method: str = "model"
    """model (the trained network), constant_velocity or constant_turn_rate."""
    horizon: float = field(default=3.0, metadata={"range": (0.1, 60.0)})
    """Seconds predicted; at most the model's own horizon (longer is cut to it)."""
    modes: int = field(default=3, metadata={"range": (1, 64)})
    """Most probable futures kept per track (at most the model's K); probabilities are renormalised."""
    time_step: float = field(default=0.5, metadata={"range": (0.05, 5.0)})
    """Seconds between predicted poses for the baselines (the model uses its own)."""
    observed_steps: int = field(default=6, metadata={"range": (2, 50)})
    """History steps the baselines read (the model uses its own)."""
    standing_speed: float = field(default=1.0, metadata={"range": (0.0, 10.0)})
    """m/s: a track slower than this whose speed is also within one standard deviation of zero (the
    tracker's own speed variance) is predicted standing where it is, one mode. Parked cars otherwise
    drift along whatever the detection noise in their history suggests. 0 turns this off."""

    def __post_init__(self) -> None:
        check_ranges(self)
        if self.method not in METHODS:
            raise ValueError(f"method: must be one of {', '.join(METHODS)}, got {self.method!r}")


class TrackHistory:
    """Recent (stamp, x, y, yaw) of each track, kept for as long as the model looks back, and each
    track's newest velocity."""

    def __init__(self, time_step: float, steps: int) -> None:
        self.time_step = time_step
        self.steps = steps
        self._samples: dict[int, collections.deque] = {}
        self._velocities: dict[int, np.ndarray] = {}

    def reset(self) -> None:
        self._samples.clear()
        self._velocities.clear()

    def add(self, stamp: float, tracks: Sequence[TrackedObject]) -> None:
        keep_after = stamp - self.time_step * self.steps - 1e-6
        for track in tracks:
            samples = self._samples.setdefault(track.object_id, collections.deque())
            samples.append((stamp, track.box.center[0], track.box.center[1], track.box.yaw))
            self._velocities[track.object_id] = np.asarray(track.velocity, dtype=np.float64)
        for object_id in list(self._samples):
            samples = self._samples[object_id]
            while samples and samples[0][0] < keep_after and (len(samples) < 2 or samples[1][0] <= keep_after):
                samples.popleft()  # keeps one sample before the window, to interpolate its first step
            if not samples or samples[-1][0] < keep_after:
                del self._samples[object_id], self._velocities[object_id]

    def resampled(self, stamp: float, object_ids: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
        """Positions (A, steps, 2) and headings (A, steps) at stamp − (steps − 1 − k)·time_step,
        interpolated. Before a track's first sample its positions are extrapolated back from there
        with its current velocity: a track is confirmed a few scans after it is born, while the model
        was trained on agents seen for the whole history."""
        times = stamp - self.time_step * np.arange(self.steps - 1, -1, -1)
        tracks = [np.array(self._samples[object_id]) for object_id in object_ids]
        # One padded (A, S, 4) array of (stamp, x, y, unwrapped yaw), interpolated for all tracks at once.
        samples = np.full((len(tracks), max(len(t) for t in tracks), 4), np.inf)
        for row, track_samples in enumerate(tracks):
            samples[row, :len(track_samples)] = track_samples
            samples[row, :len(track_samples), 3] = np.unwrap(track_samples[:, 3])
        counts = np.array([len(t) for t in tracks])
        rows = np.arange(len(tracks))[:, None]
        after = np.clip((samples[:, None, :, 0] <= times[None, :, None] + 1e-6).sum(axis=2), 1, None)
        after = np.minimum(after, counts[:, None] - 1)  # a single sample: both ends are it
        before = np.maximum(after - 1, 0)
        start, end = samples[rows, before], samples[rows, after]
        span = end[..., 0] - start[..., 0]
        share = np.clip(np.divide(times[None] - start[..., 0], span, out=np.zeros_like(span), where=span > 0), 0.0, 1.0)
        values = start[..., 1:] + share[..., None] * (end[..., 1:] - start[..., 1:])
        first, last = samples[:, 0], samples[rows[:, 0], counts - 1]
        # Before a track's first sample: back along its velocity; the newest sample is never passed.
        earlier = times[None] < first[:, None, 0] - 1e-6
        velocities = np.array([self._velocities[object_id] for object_id in object_ids])
        back = first[:, None, 1:3] + (times[None] - first[:, None, 0])[..., None] * velocities[:, None]
        positions = np.where(earlier[..., None], back, values[..., :2])
        headings = np.where(earlier, first[:, None, 3], values[..., 2])
        positions[times[None] > last[:, None, 0] + 1e-6] = np.nan
        return positions, headings


class TrackPredictor:
    """update(stamp, tracks) → the tracks with their predicted futures, most probable first."""

    def __init__(self, config: TrackPredictionConfig, model: TrajectoryPredictor | None = None) -> None:
        if config.method == "model" and model is None:
            raise ValueError("method 'model' needs a trained model")
        self.config = config
        self.model = model if config.method == "model" else None
        network = self.model.network_config if self.model else None
        self.time_step = network.time_step if network else config.time_step
        observed = network.observed_steps if network else config.observed_steps
        available = network.predicted_steps if network else math.ceil(config.horizon / config.time_step - 1e-9)
        self.predicted_steps = max(1, min(available, int(round(config.horizon / self.time_step + 1e-9))))
        self.history = TrackHistory(self.time_step, observed)

    def reset(self) -> None:
        self.history.reset()

    def update(self, stamp: float, tracks: Sequence[TrackedObject]) -> list[PredictedObject]:
        self.history.add(stamp, tracks)
        if not tracks:
            return []
        ids = [track.object_id for track in tracks]
        history, headings = self.history.resampled(stamp, ids)
        steps = self.predicted_steps
        if self.model is not None:
            types = np.array([AGENT_TYPES[track.label] for track in tracks], dtype=np.int64)
            prediction = self.model.predict(history, headings, types)
            modes = min(self.config.modes, prediction.means.shape[1])
            means = prediction.means[:, :modes, :steps]
            covariances = prediction.covariances[:, :modes, :steps]
            probabilities = prediction.probabilities[:, :modes] / prediction.probabilities[:, :modes].sum(1, keepdims=True)
        else:
            baseline = constant_velocity if self.config.method == "constant_velocity" else constant_turn_rate
            means = baseline(history, steps, self.time_step)[:, None]
            covariances, probabilities = None, np.ones((len(tracks), 1))
        yaws = _path_yaws(np.array([track.box.yaw for track in tracks]), history[:, -1], means)
        return [PredictedObject(track, [self._standing_path(track)] if self._is_standing(track) else [
            PredictedPath(means[index, mode], yaws[index, mode], self.time_step, float(probabilities[index, mode]),
                          None if covariances is None else covariances[index, mode])
            for mode in range(means.shape[1])]) for index, track in enumerate(tracks)]

    def _is_standing(self, track: TrackedObject) -> bool:
        speed = float(np.hypot(*track.velocity))
        return speed < self.config.standing_speed and speed ** 2 <= track.velocity_covariance[0, 0]

    def _standing_path(self, track: TrackedObject) -> PredictedPath:
        """Where the track is, at every step, with its position covariance."""
        steps = self.predicted_steps
        return PredictedPath(np.tile(track.box.center[:2], (steps, 1)), np.full(steps, track.box.yaw), self.time_step,
                             1.0, np.tile(track.pose_covariance[:2, :2], (steps, 1, 1)))


def _path_yaws(start_yaws: np.ndarray, starts: np.ndarray, paths: np.ndarray) -> np.ndarray:
    """Heading along paths (A, K, T, 2) from starts (A, 2): the direction of each step, the previous
    heading (first: the track's) while standing still."""
    steps = np.diff(np.concatenate([np.broadcast_to(starts[:, None, None], (*paths.shape[:2], 1, 2)), paths], axis=2),
                    axis=2)
    moving = np.linalg.norm(steps, axis=-1) > 0.05
    directions = np.arctan2(steps[..., 1], steps[..., 0])
    # Carry the last moving step's direction forward (index of the latest moving step so far).
    latest = np.maximum.accumulate(np.where(moving, np.arange(paths.shape[2]), -1), axis=2)
    carried = np.take_along_axis(directions, np.maximum(latest, 0), axis=2)
    return np.where(latest >= 0, carried, start_yaws[:, None, None])
