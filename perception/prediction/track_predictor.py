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
        positions = np.full((len(object_ids), self.steps, 2), np.nan)
        headings = np.full((len(object_ids), self.steps), np.nan)
        for row, object_id in enumerate(object_ids):
            samples = np.array(self._samples[object_id])
            seen = (times >= samples[0, 0] - 1e-6) & (times <= samples[-1, 0] + 1e-6)
            for column in range(2):
                positions[row, seen, column] = np.interp(times[seen], samples[:, 0], samples[:, column + 1])
            headings[row, seen] = np.interp(times[seen], samples[:, 0], np.unwrap(samples[:, 3]))
            before = times < samples[0, 0] - 1e-6
            positions[row, before] = samples[0, 1:3] + (times[before] - samples[0, 0])[:, None] * self._velocities[object_id]
            headings[row, before] = samples[0, 3]
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
        return [PredictedObject(track, [
            PredictedPath(means[index, mode], _path_yaws(track.box.yaw, history[index, -1], means[index, mode]),
                          self.time_step, float(probabilities[index, mode]),
                          None if covariances is None else covariances[index, mode])
            for mode in range(means.shape[1])]) for index, track in enumerate(tracks)]


def _path_yaws(start_yaw: float, start: np.ndarray, path: np.ndarray) -> np.ndarray:
    """Heading along a path: the direction of each step, the previous heading while standing still."""
    steps = np.diff(np.vstack([start, path]), axis=0)
    yaws = np.empty(len(path))
    previous = start_yaw
    for index, (dx, dy) in enumerate(steps):
        previous = math.atan2(dy, dx) if math.hypot(dx, dy) > 0.05 else previous
        yaws[index] = previous
    return yaws
