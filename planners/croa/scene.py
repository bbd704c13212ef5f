"""What the CROA planner is given each cycle: the ego's state, the drivable corridor, obstacles over
the horizon and the target; and what it returns. All in one planar frame (map or odom), metres, radians."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from perception.objects import Box3D, PredictedObject


@dataclass
class EgoState:
    """base_link (rear-axle centre) in the planning frame."""

    x: float
    """Metres."""
    y: float
    """Metres."""
    yaw: float
    """Radians."""
    speed: float
    """Forward speed, m/s."""
    steering: float = 0.0
    """Front-wheel angle now, radians (from the yaw rate: atan(yaw_rate * wheelbase / speed))."""


@dataclass
class Obstacle:
    """A road user or piece of clutter as a rectangle moving over the planning horizon."""

    length: float
    """Metres."""
    width: float
    """Metres."""
    height: float
    """Metres (objects lower than the occluder height never hide the target)."""
    poses: np.ndarray
    """(x, y, yaw) at the planner's times 0, dt, ..., T dt, shape (T + 1, 3)."""
    object_id: int = -1
    """Track or ground-truth id; the target's own id is never an obstacle to its sight lines."""

    @staticmethod
    def standing(box: Box3D, steps: int, object_id: int = -1) -> Obstacle:
        """An obstacle that stays where the box is for steps + 1 poses."""
        pose = np.array([box.center[0], box.center[1], box.yaw])
        return Obstacle(float(box.size[0]), float(box.size[1]), float(box.size[2]), np.tile(pose, (steps + 1, 1)),
                        object_id)

    @staticmethod
    def from_prediction(predicted: PredictedObject, steps: int, time_step: float) -> Obstacle:
        """The object moving along its most probable predicted path (linear interpolation between
        the prediction's points, constant beyond its end); standing when it has no path."""
        track = predicted.track
        if not predicted.paths:
            return Obstacle.standing(track.box, steps, track.object_id)
        path = predicted.paths[0]
        known_times = np.arange(len(path.positions) + 1) * path.time_step
        positions = np.vstack([track.box.center[:2], path.positions])
        yaws = np.unwrap(np.concatenate([[track.box.yaw], path.yaws]))
        times = np.arange(steps + 1) * time_step
        poses = np.column_stack([np.interp(times, known_times, positions[:, 0]),
                                 np.interp(times, known_times, positions[:, 1]),
                                 np.interp(times, known_times, yaws)])
        size = track.box.size
        return Obstacle(float(size[0]), float(size[1]), float(size[2]), poses, track.object_id)


class Corridor:
    """The drivable area: lateral offsets [right, left] from a reference centre line (the lanes
    that the ego may use, e.g. those of its driving direction), and the lane it returns to."""

    def __init__(self, centerline: np.ndarray, right: float, left: float, reference_offset: float = 0.0) -> None:
        centerline = np.asarray(centerline, dtype=np.float64)
        if centerline.ndim != 2 or centerline.shape[1] != 2 or len(centerline) < 2:
            raise ValueError(f"centerline: need (M >= 2, 2) points, got shape {centerline.shape}")
        if not right < left:
            raise ValueError(f"left: must be > right ({right}), got {left}")
        if not right <= reference_offset <= left:
            raise ValueError(f"reference_offset: must lie in [{right}, {left}], got {reference_offset}")
        self.centerline = centerline
        self.right, self.left, self.reference_offset = float(right), float(left), float(reference_offset)
        segments = np.diff(centerline, axis=0)
        self._segment_lengths = np.linalg.norm(segments, axis=1)
        if np.any(self._segment_lengths <= 0.0):
            raise ValueError("centerline: consecutive points must differ")
        self._tangents = segments / self._segment_lengths[:, None]
        self._arc = np.concatenate([[0.0], np.cumsum(self._segment_lengths)])

    def project(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """For points (N, 2): arc length, signed lateral offset (left positive), the centre-line
        point and the unit tangent there, each per point."""
        points = np.asarray(points, dtype=np.float64).reshape(-1, 2)
        offsets = points[:, None, :] - self.centerline[None, :-1, :]
        along = np.clip(np.einsum("nsi,si->ns", offsets, self._tangents), 0.0, self._segment_lengths[None])
        feet = self.centerline[None, :-1, :] + along[..., None] * self._tangents[None]
        nearest = np.argmin(np.linalg.norm(points[:, None, :] - feet, axis=2), axis=1)
        rows = np.arange(len(points))
        foot, tangent = feet[rows, nearest], self._tangents[nearest]
        normal = np.column_stack([-tangent[:, 1], tangent[:, 0]])
        lateral = np.einsum("ni,ni->n", points - foot, normal)
        return self._arc[nearest] + along[rows, nearest], lateral, foot, tangent

    def point_at(self, arc: np.ndarray, lateral: float) -> np.ndarray:
        """Points (N, 2) at arc lengths along the centre line (clamped to its ends), `lateral` to the left."""
        arc = np.clip(np.asarray(arc, dtype=np.float64), 0.0, self._arc[-1])
        index = np.clip(np.searchsorted(self._arc, arc, side="right") - 1, 0, len(self._tangents) - 1)
        tangent = self._tangents[index]
        normal = np.column_stack([-tangent[:, 1], tangent[:, 0]])
        return self.centerline[index] + (arc - self._arc[index])[:, None] * tangent + lateral * normal


@dataclass
class PlanningScene:
    """Everything one planning cycle needs."""

    ego: EgoState
    """The ego now."""
    corridor: Corridor
    """Where the ego may drive."""
    obstacles: list[Obstacle] = field(default_factory=list)
    """Road users and clutter over the horizon (the target included: it must not be hit either)."""
    target: Obstacle | None = None
    """The object to see better, or None (then the planner only drives safely)."""
    goal: np.ndarray | None = None
    """A viewpoint (x, y) for the last planned position (the greedy baseline), or None."""


@dataclass
class Plan:
    """One planning cycle's answer."""

    states: np.ndarray
    """Planned (x, y, yaw, speed) at 0, dt, ..., T dt, shape (T + 1, 4)."""
    controls: np.ndarray
    """Planned (acceleration m/s^2, steering rad) per step, shape (T, 2)."""
    linear_velocity: float
    """The /cmd_vel command now: forward speed, m/s."""
    angular_velocity: float
    """The /cmd_vel command now: yaw rate, rad/s."""
    fallback: bool
    """True when the optimisation failed and the plan brakes along the lane."""
    reason: str
    """Why the plan fell back or backs out ('' otherwise)."""
    solve_time: float
    """Seconds spent in the cycle (all convex-concave iterations)."""
    iterations: int
    """Convex-concave iterations run."""
    occlusion_ratio: float
    """Fraction of the target's sight lines blocked from the last planned pose (planar test; 0 without a target)."""
    occlusion_ratio_now: float
    """The same from the current pose."""
    sight_lines: np.ndarray = field(default_factory=lambda: np.zeros((0, 2, 2)))
    """Sight lines from the last planned sensor position to the target's samples, (M, 2, 2)."""
    sight_blocked: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))
    """Whether each sight line meets an occluder, (M,)."""
    obstacle_ids: list[int] = field(default_factory=list)
    """Ids of the obstacles given collision constraints this cycle."""
    backing_out: bool = False
    """True when the plan reverses out of a stall (CroaConfig.back_out_after); its speeds are negative."""
