"""The motion-assisted-detection baselines CROA is compared with, on the planner's own code paths.

- collision_mpc: the CROA MPC without the occlusion term (an RDA-like collision-avoidance MPC).
- greedy_viewpoint: sample viewpoints the ego can reach by the end of the horizon, take the least
  occluded collision-free one, and let the collision MPC drive there (goal term, no occlusion term).
- croa_static: CROA with every obstacle held where it is now (predicted motion switched off).
(lane keeping, 'no motion assistance', is the simulator's pure-pursuit driver: sim.controller.)
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from planners.croa.config import CroaConfig, VehicleConfig
from perception.objects import corners_bev
from planners.croa.geometry import polygon_distance, rectangle_corners, rotation
from planners.croa.planner import CroaPlanner, PlannerOptions, blocked_sight_lines, halfspaces_at, occluders_of
from planners.croa.scene import Obstacle, Plan, PlanningScene
from sim.validation import check_ranges

PLANNER_METHODS = ("croa", "croa_static", "collision_mpc", "greedy_viewpoint")
"""Methods that run on the CROA problem (the evaluation adds 'lane_keeping')."""


@dataclass
class ViewpointSamplingConfig:
    """Candidate viewpoints of the greedy baseline."""

    lateral_step: float = field(default=0.5, metadata={"range": (0.05, 5.0)})
    """Spacing of candidate lateral offsets across the corridor, metres."""
    distance_fractions: list[float] = field(default_factory=lambda: [0.6, 0.8, 1.0, 1.2],
                                            metadata={"range": (0.0, 5.0)})
    """Candidate distances ahead, as fractions of the distance covered at the reference speed over the horizon."""

    def __post_init__(self) -> None:
        check_ranges(self)
        if not self.distance_fractions:
            raise ValueError("distance_fractions: need at least one")


class GreedyViewpointPlanner:
    """Greedy viewpoint selection, tracked by the collision MPC."""

    def __init__(self, config: CroaConfig | None = None, vehicle: VehicleConfig | None = None,
                 sampling: ViewpointSamplingConfig | None = None) -> None:
        self.mpc = CroaPlanner(config, vehicle, PlannerOptions(occlusion=False))
        self.config, self.vehicle = self.mpc.config, self.mpc.vehicle
        self.sampling = sampling or ViewpointSamplingConfig()
        self.viewpoint: np.ndarray | None = None
        """The viewpoint chosen in the latest cycle, (x, y) or None."""

    def reset(self) -> None:
        self.mpc.reset()
        self.viewpoint = None

    def plan(self, scene: PlanningScene) -> Plan:
        self.viewpoint = self.choose_viewpoint(scene) if scene.target is not None else None
        return self.mpc.plan(PlanningScene(scene.ego, scene.corridor, scene.obstacles, scene.target, self.viewpoint))

    def choose_viewpoint(self, scene: PlanningScene) -> np.ndarray | None:
        """The least occluded candidate (ties: nearest to the reference lane) whose body, facing
        along the road, keeps the safety distance from every obstacle at the end of the horizon."""
        config, vehicle, corridor, target = self.config, self.vehicle, scene.corridor, scene.target
        steps = config.horizon
        arc, _, _, _ = corridor.project(np.array([[scene.ego.x, scene.ego.y]]))
        reach = config.reference_speed * steps * config.time_step
        half_width = vehicle.width / 2.0 + config.road_margin
        laterals = np.arange(corridor.right + half_width, corridor.left - half_width + 1e-9, self.sampling.lateral_step)
        normals, offsets = halfspaces_at(occluders_of(scene.obstacles, target.object_id), steps)
        best, best_key = None, None
        for fraction in self.sampling.distance_fractions:
            along = arc + fraction * reach
            ahead = corridor.point_at(along + 1.0, 0.0)[0] - corridor.point_at(along, 0.0)[0]
            yaw = math.atan2(ahead[1], ahead[0])
            for lateral in laterals:
                position = corridor.point_at(along, float(lateral))[0]
                if not self._clear(position, yaw, scene.obstacles, steps):
                    continue
                sensor = position + rotation(yaw) @ vehicle.sensor_mount
                _, blocked = blocked_sight_lines(sensor, target, steps, normals, offsets, config.target_samples)
                key = (float(blocked.mean()),
                       abs(lateral - corridor.reference_offset), abs(fraction - 1.0))
                if best_key is None or key < best_key:
                    best, best_key = position, key
        return best

    def _clear(self, position: np.ndarray, yaw: float, obstacles: list[Obstacle], step: int) -> bool:
        vehicle = self.vehicle
        box = vehicle.body_boxes([*position, yaw])[0]
        center, body = box[:2], corners_bev(box[None])[0]
        reach = math.hypot(vehicle.length, vehicle.width) / 2.0 + self.config.safety_distance
        return all(polygon_distance(body, rectangle_corners(o.poses[step, :2], o.length, o.width, o.poses[step, 2]))
                   >= self.config.safety_distance for o in obstacles
                   if np.linalg.norm(o.poses[step, :2] - center) < reach + math.hypot(o.length, o.width) / 2.0)


def make_planner(method: str, config: CroaConfig | None = None, vehicle: VehicleConfig | None = None):
    """A planner with .plan(scene) -> Plan and .reset() for one of PLANNER_METHODS."""
    if method == "croa":
        return CroaPlanner(config, vehicle, PlannerOptions(occlusion=True, predicted_motion=True))
    if method == "croa_static":
        return CroaPlanner(config, vehicle, PlannerOptions(occlusion=True, predicted_motion=False))
    if method == "collision_mpc":
        return CroaPlanner(config, vehicle, PlannerOptions(occlusion=False))
    if method == "greedy_viewpoint":
        return GreedyViewpointPlanner(config, vehicle)
    raise ValueError(f"method: must be one of {', '.join(PLANNER_METHODS)}, got {method!r}")
