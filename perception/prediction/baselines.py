"""Kinematic baselines in the same terms as the learned model: from observed positions (world
frame) to future positions."""
from __future__ import annotations

import numpy as np


def _last_displacements(history: np.ndarray, count: int) -> np.ndarray:
    """The last `count` one-step displacements, (A, count, 2); NaN where a step is missing."""
    return np.diff(history[:, -(count + 1):], axis=1)


def constant_velocity(history: np.ndarray, steps: int, time_step: float) -> np.ndarray:
    """(A, steps, 2): each agent keeps its last observed velocity (one-step difference; zero when the
    previous frame is missing)."""
    velocity = np.nan_to_num(_last_displacements(history, 1)[:, 0]) / time_step
    horizon = time_step * np.arange(1, steps + 1)
    return history[:, -1, None, :] + horizon[None, :, None] * velocity[:, None, :]


def constant_turn_rate(history: np.ndarray, steps: int, time_step: float) -> np.ndarray:
    """(A, steps, 2): each agent keeps its last speed and turn rate (from its last two displacements;
    falls back to constant velocity without them)."""
    displacements = np.nan_to_num(_last_displacements(history, 2))
    previous, last = displacements[:, 0], displacements[:, 1]
    chord = np.linalg.norm(last, axis=1)
    heading = np.arctan2(last[:, 1], last[:, 0])
    cross = previous[:, 0] * last[:, 1] - previous[:, 1] * last[:, 0]
    turn = np.arctan2(cross, np.einsum("ij,ij->i", previous, last))
    # A turn is only defined when both displacements are real motion.
    moving = (np.linalg.norm(previous, axis=1) > 1e-3) & (chord > 1e-3)
    turn = np.where(moving, turn, 0.0)
    # On a circle every step is a chord of the same length, turned by the same angle as the last.
    step_headings = heading[:, None] + turn[:, None] * np.arange(1, steps + 1)[None, :]
    step = chord[:, None, None] * np.stack([np.cos(step_headings), np.sin(step_headings)], axis=-1)
    return history[:, -1, None, :] + np.cumsum(step, axis=1)
