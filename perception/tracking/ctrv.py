"""The constant-turn-rate-and-velocity (CTRV) motion model, batched over tracks.

State per track: (x, y, yaw, speed, yaw_rate), metres, radians, m/s, rad/s; speed is signed
along the heading. Over dt the object drives an arc of turn `yaw_rate * dt`; written with the
half-turn a = yaw_rate * dt / 2 and S(a) = sin(a) / a,

    x' = x + speed * dt * cos(yaw + a) * S(a),   y' = y + speed * dt * sin(yaw + a) * S(a),

which equals the textbook (speed / yaw_rate) * (sin(yaw + 2a) - sin(yaw)) form and stays exact and
smooth as yaw_rate -> 0 (straight line), so neither the motion nor its Jacobian needs a branch
on a divide by the yaw rate.
"""
from __future__ import annotations

import numpy as np

STATE_SIZE = 5
"""Filter state length: x, y, yaw, speed, yaw_rate."""
X, Y, YAW, SPEED, YAW_RATE = range(STATE_SIZE)
"""Indices into the state vector."""

SERIES_BELOW = 1e-3
"""|a| under which dS/da is taken from its Taylor series (the closed form cancels badly there)."""


def _half_turn_terms(states: np.ndarray, dt: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The mid-arc heading yaw + a, S(a) and dS/da for each state."""
    half_turn = 0.5 * states[:, YAW_RATE] * dt
    sinc = np.sinc(half_turn / np.pi)  # numpy's sinc is sin(pi x) / (pi x)
    small = np.abs(half_turn) < SERIES_BELOW
    safe = np.where(small, 1.0, half_turn)
    sinc_slope = np.where(small, -half_turn / 3.0 + half_turn ** 3 / 30.0, (np.cos(safe) - sinc) / safe)
    return states[:, YAW] + half_turn, sinc, sinc_slope


def predict_states(states: np.ndarray, dt: float) -> np.ndarray:
    """States (N, 5) moved dt seconds along their arcs (yaw not wrapped)."""
    heading, sinc, _ = _half_turn_terms(states, dt)
    travel = states[:, SPEED] * dt * sinc
    moved = states.copy()
    moved[:, X] += travel * np.cos(heading)
    moved[:, Y] += travel * np.sin(heading)
    moved[:, YAW] += states[:, YAW_RATE] * dt
    return moved


def transition_jacobians(states: np.ndarray, dt: float) -> np.ndarray:
    """d predict_states / d state at each state, shape (N, 5, 5)."""
    heading, sinc, sinc_slope = _half_turn_terms(states, dt)
    cos, sin = np.cos(heading), np.sin(heading)
    speed = states[:, SPEED]
    jacobians = np.broadcast_to(np.eye(STATE_SIZE), (len(states), STATE_SIZE, STATE_SIZE)).copy()
    jacobians[:, X, YAW] = -speed * dt * sin * sinc
    jacobians[:, Y, YAW] = speed * dt * cos * sinc
    jacobians[:, X, SPEED] = dt * cos * sinc
    jacobians[:, Y, SPEED] = dt * sin * sinc
    # d/d yaw_rate through both the mid-arc heading and S(a), each with da/d yaw_rate = dt / 2.
    jacobians[:, X, YAW_RATE] = 0.5 * speed * dt * dt * (cos * sinc_slope - sin * sinc)
    jacobians[:, Y, YAW_RATE] = 0.5 * speed * dt * dt * (sin * sinc_slope + cos * sinc)
    jacobians[:, YAW, YAW_RATE] = dt
    return jacobians


def process_noise(states: np.ndarray, dt: float, acceleration_std: np.ndarray,
                  yaw_acceleration_std: np.ndarray) -> np.ndarray:
    """Covariance (N, 5, 5) added over dt by white longitudinal and yaw accelerations of the given
    standard deviations (per track), entering as G diag(var) G^T."""
    cos, sin = np.cos(states[:, YAW]), np.sin(states[:, YAW])
    half_dt2 = 0.5 * dt * dt
    inputs = np.zeros((len(states), STATE_SIZE, 2))
    inputs[:, X, 0] = half_dt2 * cos
    inputs[:, Y, 0] = half_dt2 * sin
    inputs[:, SPEED, 0] = dt
    inputs[:, YAW, 1] = half_dt2
    inputs[:, YAW_RATE, 1] = dt
    variances = np.stack([np.square(acceleration_std), np.square(yaw_acceleration_std)], axis=-1)
    return (inputs * variances[:, None, :]) @ inputs.transpose(0, 2, 1)


def predict(states: np.ndarray, covariances: np.ndarray, dt: float, acceleration_std: np.ndarray,
            yaw_acceleration_std: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The EKF prediction of every track over dt: states (N, 5) and covariances (N, 5, 5)."""
    jacobians = transition_jacobians(states, dt)
    covariances = (jacobians @ covariances @ jacobians.transpose(0, 2, 1)
                   + process_noise(states, dt, acceleration_std, yaw_acceleration_std))
    return predict_states(states, dt), covariances
