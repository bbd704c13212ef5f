"""Road users as other agents see them (extents along and across the road) and as ground truth sees them."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sim.geometry import BoxSet
from sim.road import RoadGeometry

@dataclass
class AgentState:
    """Ground-truth view of active moving agents, in map."""

    ids: np.ndarray
    """Object ids (K,)."""
    classes: np.ndarray
    """ObjectClass values (K,)."""
    boxes: BoxSet
    """Boxes (K)."""
    velocities: np.ndarray
    """(vx, vy), m/s (K, 2)."""
    yaw_rates: np.ndarray
    """rad/s (K,)."""
    colors: np.ndarray
    """Camera colour, uint8 (K, 3)."""


OVERLAP_TOLERANCE = 1e-3
"""Lateral intervals that merely touch (adjacent lanes) do not overlap, metres."""


@dataclass
class Obstacles:
    """M road users, each an interval along s and an interval across the road."""

    s: np.ndarray
    """Centre along the road, metres (M,)."""
    half_length: np.ndarray
    """Half extent along s, metres (M,)."""
    d_low: np.ndarray
    """Lowest lateral offset claimed (body, or also the target lane while changing lanes), metres (M,)."""
    d_high: np.ndarray
    """Highest lateral offset claimed, metres (M,)."""
    speed: np.ndarray
    """Velocity along +s, m/s (M,)."""

    def __len__(self) -> int:
        return len(self.s)

    @staticmethod
    def concatenate(parts: list[Obstacles]) -> Obstacles:
        return Obstacles(*(np.concatenate([getattr(part, name) for part in parts])
                           for name in ("s", "half_length", "d_low", "d_high", "speed")))

    @staticmethod
    def of_boxes(road: RoadGeometry, boxes: BoxSet, velocities: np.ndarray) -> Obstacles:
        """Frenet extents of map boxes (from their footprint corners) moving with map velocities (K, 2)."""
        corners = boxes.corners_bev()
        s, d = road.to_frenet(corners[..., 0], corners[..., 1])
        center_s = 0.5 * (s.min(axis=1) + s.max(axis=1))
        tangent, _ = road.tangent_normal(center_s)
        return Obstacles(center_s, 0.5 * (s.max(axis=1) - s.min(axis=1)), d.min(axis=1), d.max(axis=1),
                         np.einsum("ij,ij->i", tangent.reshape(-1, 2), velocities.reshape(-1, 2)))

    def overlapping(self, low: np.ndarray, high: np.ndarray) -> np.ndarray:
        """Whether each query interval [low, high] (K,) overlaps each obstacle, boolean (K, M)."""
        low, high = np.atleast_1d(low)[:, None], np.atleast_1d(high)[:, None]
        return (low < self.d_high[None, :] - OVERLAP_TOLERANCE) & (self.d_low[None, :] < high - OVERLAP_TOLERANCE)

    def nearest(self, s: np.ndarray, half_length: np.ndarray, direction: np.ndarray, low: np.ndarray,
                high: np.ndarray, ahead: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """For K movers heading `direction` (+1/-1 along s) in lateral corridors [low, high]: the
        bumper-to-bumper gap to the nearest obstacle ahead (or behind) in the corridor, inf if none,
        and that obstacle's index (-1 if none). A mover never sees itself (it is not ahead of itself)."""
        along = direction[:, None] * (self.s[None, :] - s[:, None])
        if not ahead:
            along = -along
        gaps = along - half_length[:, None] - self.half_length[None, :]
        gaps = np.where(self.overlapping(low, high) & (along > 0.0), gaps, np.inf)
        if gaps.shape[1] == 0:
            return np.full(len(s), np.inf), np.full(len(s), -1)
        index = np.argmin(gaps, axis=1)
        gap = gaps[np.arange(len(s)), index]
        return gap, np.where(np.isfinite(gap), index, -1)


def idm_acceleration(speed, desired_speed, gap, leader_speed, max_acceleration, comfortable_deceleration,
                     time_headway: float, min_gap: float) -> np.ndarray:
    """Intelligent Driver Model acceleration, m/s^2 (gap = inf for a free road)."""
    closing = speed - leader_speed
    desired_gap = min_gap + np.maximum(
        0.0, speed * time_headway + speed * closing / (2.0 * np.sqrt(max_acceleration * comfortable_deceleration)))
    free_road = 1.0 - (speed / desired_speed) ** 4
    interaction = (desired_gap / np.maximum(gap, 0.1)) ** 2
    return max_acceleration * (free_road - interaction)
