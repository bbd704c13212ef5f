"""Lane keeping by pure pursuit on the nearest lane centre line, giving /cmd_vel-like commands."""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from sim.validation import check_ranges


@dataclass
class LaneKeepingConfig:
    """Pure-pursuit tuning."""

    lookahead_time: float = field(default=0.9, metadata={"range": (0.0, 10.0)})
    """Look-ahead distance per unit speed, s."""
    lookahead_min: float = field(default=5.0, metadata={"range": (0.5, 100.0)})
    """Shortest look-ahead distance, metres."""
    lookahead_max: float = field(default=25.0, metadata={"range": (0.5, 100.0)})
    """Longest look-ahead distance, metres."""
    max_curvature: float = field(default=0.2, metadata={"range": (0.001, 2.0)})
    """Largest commanded path curvature (angular / linear velocity), 1/m."""
    lane_switch_margin: float = field(default=0.5, metadata={"range": (0.0, 10.0)})
    """Another lane is taken over only when it is nearer than the current one by this, metres."""

    def __post_init__(self) -> None:
        check_ranges(self)
        if self.lookahead_min > self.lookahead_max:
            raise ValueError(f"lookahead_max: must be >= lookahead_min ({self.lookahead_min}), "
                             f"got {self.lookahead_max}")


class _Polyline:
    """A lane centre line with arc-length lookup."""

    def __init__(self, points: np.ndarray) -> None:
        self.points = np.asarray(points, dtype=np.float64)
        self.segments = np.diff(self.points, axis=0)
        lengths = np.linalg.norm(self.segments, axis=1)
        self.arc = np.concatenate([[0.0], np.cumsum(lengths)])
        """Arc length at each point, metres."""

    def project(self, point: np.ndarray) -> tuple[float, float, np.ndarray]:
        """(arc length of the nearest point, distance to it, unit tangent there)."""
        offsets = point - self.points[:-1]
        fraction = np.clip(np.einsum("ij,ij->i", offsets, self.segments)
                           / np.maximum(np.einsum("ij,ij->i", self.segments, self.segments), 1e-12), 0.0, 1.0)
        distances = np.linalg.norm(offsets - fraction[:, None] * self.segments, axis=1)
        nearest = int(np.argmin(distances))
        tangent = self.segments[nearest] / max(np.linalg.norm(self.segments[nearest]), 1e-12)
        arc = self.arc[nearest] + fraction[nearest] * (self.arc[nearest + 1] - self.arc[nearest])
        return float(arc), float(distances[nearest]), tangent

    def point_at(self, arc: float) -> np.ndarray:
        """Point at an arc length (clamped to the ends)."""
        arc = float(np.clip(arc, 0.0, self.arc[-1]))
        return np.array([np.interp(arc, self.arc, self.points[:, 0]), np.interp(arc, self.arc, self.points[:, 1])])


class LaneKeepingController:
    """Follows the nearest lane centre line in the direction the ego faces."""

    def __init__(self, centerlines: list[np.ndarray], config: LaneKeepingConfig | None = None) -> None:
        if not centerlines:
            raise ValueError("centerlines: need at least one lane")
        self.config = config or LaneKeepingConfig()
        self._lanes = [_Polyline(line) for line in centerlines]
        self.lane_index: int | None = None
        """Lane followed by the latest command (index into the centre lines), None before the first."""

    def command(self, ego_pose: tuple[float, float, float], ego_speed: float,
                target_speed: float) -> tuple[float, float]:
        """(linear m/s, angular rad/s) to drive at target_speed along the nearest lane."""
        x, y, yaw = ego_pose
        position = np.array([x, y])
        projections = [lane.project(position) for lane in self._lanes]
        distances = np.array([distance for _, distance, _ in projections])
        nearest = int(np.argmin(distances))
        if (self.lane_index is None
                or distances[nearest] < distances[self.lane_index] - self.config.lane_switch_margin):
            self.lane_index = nearest
        arc, _, tangent = projections[self.lane_index]
        direction = 1.0 if tangent @ np.array([math.cos(yaw), math.sin(yaw)]) >= 0.0 else -1.0
        lookahead = float(np.clip(self.config.lookahead_time * abs(ego_speed),
                                  self.config.lookahead_min, self.config.lookahead_max))
        target = self._lanes[self.lane_index].point_at(arc + direction * lookahead) - position
        forward = math.cos(yaw) * target[0] + math.sin(yaw) * target[1]
        left = -math.sin(yaw) * target[0] + math.cos(yaw) * target[1]
        curvature = 2.0 * left / max(forward ** 2 + left ** 2, 1e-6)
        curvature = float(np.clip(curvature, -self.config.max_curvature, self.config.max_curvature))
        return float(target_speed), float(target_speed) * curvature


def drive_along_lane(world, controller: LaneKeepingController, target_speed: float, steps: int,
                     period: float) -> None:
    """Advance a sim.world.World by `steps` control periods of `period` seconds, the controller
    steering its ego along the lane at target_speed."""
    for _ in range(steps):
        linear, angular = controller.command(world.ego_pose, world.ego_velocity[0], target_speed)
        world.step(period, linear, angular)
