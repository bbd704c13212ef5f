"""Trajectory prediction metrics: ADE/FDE of the most likely mode and best-of-K, RMSE at fixed
horizons, per agent type."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


def displacement_errors(predicted: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """L2 error per step: predicted (..., T, 2) against truth (..., T, 2) → (..., T)."""
    return np.linalg.norm(predicted - truth, axis=-1)


def error_at_time(errors: np.ndarray, time_step: float, seconds: float) -> np.ndarray:
    """Per-agent error at `seconds` after the last observation, interpolated between steps;
    errors (N, T) at times (i + 1) * time_step."""
    times = time_step * np.arange(1, errors.shape[1] + 1)
    if not times[0] - 1e-9 <= seconds <= times[-1] + 1e-9:
        raise ValueError(f"{seconds} s is outside the predicted horizon {times[0]:g}..{times[-1]:g} s")
    return np.array([np.interp(seconds, times, row) for row in errors])


@dataclass
class PredictionScores:
    """Accumulated errors of one predictor on one agent group."""

    time_step: float
    """Seconds between predicted steps."""
    most_likely: list[np.ndarray] = field(default_factory=list)
    """Per agent: (T,) errors of the most probable mode."""
    best_of: list[np.ndarray] = field(default_factory=list)
    """Per agent: (K, T) errors of every mode or sample (for best-of-K)."""

    def add(self, modes: np.ndarray, probabilities: np.ndarray, truth: np.ndarray) -> None:
        """modes (N, K, T, 2), probabilities (N, K), truth (N, T, 2) of N agents."""
        errors = displacement_errors(modes, truth[:, None])
        self.most_likely.extend(errors[np.arange(len(errors)), np.argmax(probabilities, axis=1)])
        self.best_of.extend(errors)

    @property
    def count(self) -> int:
        return len(self.most_likely)

    def summary(self, rmse_seconds: tuple[float, ...] = ()) -> dict[str, float]:
        """ADE/FDE (most likely and best-of-K; K as given to add), and RMSE of the most likely mode
        at the horizons asked for that lie inside the prediction."""
        if not self.count:
            return {"count": 0}
        most_likely, best_of = np.stack(self.most_likely), np.stack(self.best_of)
        result = {"count": self.count, "ade": float(most_likely.mean()), "fde": float(most_likely[:, -1].mean()),
                  "min_ade": float(best_of.mean(axis=2).min(axis=1).mean()),
                  "min_fde": float(best_of[:, :, -1].min(axis=1).mean()), "modes": int(best_of.shape[1])}
        horizon = self.time_step * most_likely.shape[1]
        for seconds in rmse_seconds:
            if seconds <= horizon + 1e-9:
                at = error_at_time(most_likely, self.time_step, seconds)
                result[f"rmse_{seconds:g}s"] = float(np.sqrt(np.mean(at ** 2)))
        return result
