"""One closed-loop CROA episode: the simulated world, the real lidar detector, the tracker and the
trajectory predictor in the loop, and one driving method; scored per scan as in the CROA paper.

Per control period (0.1 s) the method commands the ego; every perception period the world is
scanned, the detector's boxes go through the tracker and predictor (in map = odom), and the target
is scored against ground truth: lidar points on it, points per m^2 of its visible surface, the
fraction of sight rays to its surface samples that are blocked (3-D ray casting in the world), and
the detector's centre and yaw error on it. The planner sees only what perception reports; the
target is named by its ground-truth box at the start (as an operator or an earlier sighting would)
and followed by the track that matches it from then on.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np

from evaluation.tracking_report import detections_into_map
from perception.detection import LidarDetector
from perception.objects import GroundTruthObject
from perception.prediction.track_predictor import TrackPredictor
from perception.tracking import MultiObjectTracker
from perception.tracking.config import GROUP_OF_LABEL
from planners.croa.baselines import make_planner
from planners.croa.config import CroaConfig, VehicleConfig
from planners.croa.geometry import polygon_distance, rectangle_corners
from planners.croa.scene import EgoState, Obstacle, PlanningScene
from planners.croa.targets import corridor_for_lane
from sim.controller import LaneKeepingController
from sim.visibility import target_visibility
from sim.world import World
from training.detection_data import lidar_pose_in_map

METHODS = ("lane_keeping", "collision_mpc", "greedy_viewpoint", "croa_static", "croa")
"""Baselines 1-3, CROA without predicted motion, CROA (the issue's order: 1, 3, 2, 5, 4)."""
TARGET_MATCH_DISTANCE = 2.5
"""A detection or track within this many metres of the target's true centre is the target."""
CLEARANCE_RANGE = 25.0
"""Objects further than this from the ego are left out of the clearance, metres."""


@dataclass
class EpisodeConfig:
    """How an episode is run."""

    duration: float = 6.0
    """Simulated seconds."""
    control_period: float = 0.1
    """Seconds between commands (the planner's rate, 10 Hz)."""
    perception_period: float = 0.2
    """Seconds between lidar scans through detector, tracker and predictor (5 Hz)."""
    detection_score: float = 0.3
    """Detections below this confidence are dropped before tracking and scoring."""


@dataclass
class ScanRecord:
    """The target as seen at one scan."""

    time: float
    """Simulated seconds."""
    distance: float
    """Target centre ahead of the lidar along the ego's heading, metres."""
    occlusion_ratio: float
    """Fraction of sight rays to the target's surface samples that are blocked (ground truth, 3-D)."""
    visible_area: float
    """Target surface seen, m^2."""
    point_count: int
    """Lidar returns on the target."""
    detected: bool
    """A detection lies within TARGET_MATCH_DISTANCE of the target."""
    center_error: float
    """Bird's-eye centre error of that detection, metres (nan when not detected)."""
    yaw_error: float
    """Heading error of that detection, radians, modulo pi (nan when not detected)."""
    viewing_angle: float
    """Angle between the target's heading axis and its line of sight to the lidar, folded into
    0 .. pi/2 radians (0: seen end-on, pi/2: broadside)."""
    lateral: float
    """Target centre left (+) or right (-) of the lidar across the ego's heading, metres."""
    detection: tuple[float, float, float] | None
    """The matched detection's centre x, y and yaw in map (None when not detected)."""

    @property
    def density(self) -> float:
        return self.point_count / self.visible_area if self.visible_area > 0.0 else 0.0


@dataclass
class EpisodeResult:
    """What one method did in one scenario and seed."""

    scenario: str
    seed: int
    method: str
    scans: list[ScanRecord] = field(default_factory=list)
    """Scored scans (target ahead of the lidar)."""
    ego_path: np.ndarray = field(default_factory=lambda: np.zeros((0, 3)))
    """(x, y, yaw) per control step."""
    target_box: np.ndarray = field(default_factory=lambda: np.zeros(7))
    """The target's true box (x, y, z, l, w, h, yaw) at the start."""
    scene_boxes: np.ndarray = field(default_factory=lambda: np.zeros((0, 7)))
    """Static objects' boxes near the route (for the picture)."""
    collisions: int = 0
    """Control steps with the ego in collision."""
    min_clearance: float = math.inf
    """Smallest gap between the ego's body and any road user, metres."""
    path_length: float = 0.0
    """Metres driven."""
    solve_times: list[float] = field(default_factory=list)
    """Seconds per planning cycle (empty for lane keeping)."""
    fallbacks: int = 0
    """Planning cycles that fell back to braking."""
    fallback_reasons: dict[str, int] = field(default_factory=dict)
    """Why they fell back, with counts."""
    back_outs: int = 0
    """Times the planner backed out of a stall (CroaConfig.back_out_after)."""
    wall_time: float = 0.0
    """Seconds the episode took."""


def vehicle_of(world: World) -> VehicleConfig:
    """The planner's vehicle model of the world's ego (its body, limits and lidar mount)."""
    ego = world.scenario.ego
    mount = world.lidar_config.mount
    return VehicleConfig(wheelbase=ego.wheelbase, length=ego.length, width=ego.width, rear_overhang=ego.rear_overhang,
                         max_speed=min(ego.max_speed, 15.0), max_steering=min(ego.max_steering, 0.5),
                         max_steering_rate=min(ego.max_steering_rate, 1.0),
                         max_acceleration=min(ego.max_acceleration, 2.5),
                         max_deceleration=min(ego.max_deceleration, 5.0), sensor_x=mount.x, sensor_y=mount.y)


class EpisodeRunner:
    """Holds the detector, the predictor model and one planner per method, built once."""

    def __init__(self, detector: LidarDetector, track_predictor: TrackPredictor, config: EpisodeConfig,
                 planner_config: CroaConfig | None = None) -> None:
        self.detector, self.track_predictor, self.config = detector, track_predictor, config
        self.planner_config = planner_config or CroaConfig()
        self._planners: dict[tuple[str, tuple], object] = {}

    def _planner(self, method: str, vehicle: VehicleConfig):
        key = (method, tuple(vars(vehicle).values()))
        if key not in self._planners:
            self._planners[key] = make_planner(method, self.planner_config, vehicle)
        planner = self._planners[key]
        planner.reset()
        return planner

    def run(self, world: World, scenario: str, method: str) -> EpisodeResult:
        started = time.perf_counter()
        config, planner_config = self.config, self.planner_config
        target_id = world.target_id
        if target_id is None:
            raise ValueError(f"scenario {scenario}: no staged target")
        truth = {o.object_id: o for o in world.ground_truth()}
        target_truth = truth[target_id]
        result = EpisodeResult(scenario, world.seed, method, target_box=target_truth.box.as_array())
        result.scene_boxes = np.array([o.box.as_array() for o in truth.values() if o.is_static
                                       and np.linalg.norm(o.box.center[:2] - world.ego_pose[:2]) < 120.0])
        vehicle = vehicle_of(world)
        lane_keeping = LaneKeepingController(world.lane_centerlines) if method == "lane_keeping" else None
        planner = None if lane_keeping else self._planner(method, vehicle)
        tracker = MultiObjectTracker()
        self.track_predictor.reset()
        predictions, target_track_id = [], None
        lane_width = world.scenario.road.lane_width
        steps = round(config.duration / config.control_period)
        scan_every = max(1, round(config.perception_period / config.control_period))
        path = [world.ego_pose]
        plan = None
        for step in range(steps):
            if step % scan_every == 0:
                predictions, target_track_id = self._perceive(world, tracker, target_truth, result)
            x, y, yaw = world.ego_pose
            speed, yaw_rate = world.ego_velocity
            if lane_keeping is not None:
                linear, angular = lane_keeping.command((x, y, yaw), speed, world.scenario.ego.speed)
            else:
                steering = math.atan(yaw_rate * vehicle.wheelbase / speed) if abs(speed) > 0.1 else 0.0
                ego = EgoState(x, y, yaw, speed, steering)
                corridor = corridor_for_lane(world.lane_centerlines, lane_width, world.lane_directions, x, y, yaw)
                obstacles = [Obstacle.from_prediction(p, planner_config.horizon, planner_config.time_step)
                             for p in predictions]
                target = next((o for o in obstacles if o.object_id == target_track_id), None)
                if target is None:  # not (yet) tracked: the box it was named by
                    target = Obstacle.standing(target_truth.box, planner_config.horizon, -1)
                backing_out = plan is not None and plan.backing_out
                plan = planner.plan(PlanningScene(ego, corridor, obstacles, target))
                linear, angular = plan.linear_velocity, plan.angular_velocity
                result.back_outs += plan.backing_out and not backing_out
                result.solve_times.append(plan.solve_time)
                if plan.fallback:
                    result.fallbacks += 1
                    result.fallback_reasons[plan.reason] = result.fallback_reasons.get(plan.reason, 0) + 1
            world.step(config.control_period, linear, angular)
            result.collisions += world.in_collision()
            result.min_clearance = min(result.min_clearance, _clearance(world))
            path.append(world.ego_pose)
        result.ego_path = np.array(path)
        result.path_length = float(np.sum(np.linalg.norm(np.diff(result.ego_path[:, :2], axis=0), axis=1)))
        result.wall_time = time.perf_counter() - started
        return result

    def _perceive(self, world: World, tracker: MultiObjectTracker, target: GroundTruthObject, result: EpisodeResult):
        """Scan, detect, track, predict; score the target. Returns (predictions, the target's track id)."""
        scan = world.lidar_scan()
        lidar_in_map = lidar_pose_in_map(world)
        detections = [d for d in self.detector.detect(scan.points).objects if d.score >= self.config.detection_score]
        in_map = detections_into_map(detections, lidar_in_map)
        tracks = tracker.update(in_map, world.time)
        predictions = self.track_predictor.update(world.time, tracks)
        target_id, target_box = target.object_id, world.object_box(target.object_id)
        center = target_box.center[:2]
        target_track = _nearest(center, [(p.track.box.center[:2], p.track.label, p.track.object_id)
                                         for p in predictions], target.label)
        origin = lidar_in_map[:3, 3]
        heading = np.array([math.cos(world.ego_pose[2]), math.sin(world.ego_pose[2])])
        distance = float((center - origin[:2]) @ heading)
        if distance > 0.0:
            visibility = target_visibility(world, target_id, origin)
            detection = _nearest(center, [(d.box.center[:2], d.label, index) for index, d in enumerate(in_map)],
                                 target.label)
            if detection is None:
                center_error = yaw_error = math.nan
                matched = None
            else:
                box = in_map[detection].box
                center_error = float(np.linalg.norm(box.center[:2] - center))
                yaw_error = abs(math.remainder(box.yaw - target_box.yaw, math.pi))
                matched = (float(box.center[0]), float(box.center[1]), float(box.yaw))
            sight = origin[:2] - center
            viewing_angle = abs(math.remainder(math.atan2(sight[1], sight[0]) - target_box.yaw, math.pi))
            lateral = float((center - origin[:2]) @ [-heading[1], heading[0]])
            result.scans.append(ScanRecord(world.time, distance, visibility.occlusion_ratio, visibility.visible_area,
                                           int(scan.object_point_counts.get(target_id, 0)), detection is not None,
                                           center_error, yaw_error, viewing_angle,
                                           lateral, matched))
        return predictions, target_track


def _nearest(center: np.ndarray, candidates: list, label) -> int | None:
    """The id of the candidate (position, label, id) of the target's class group nearest to center,
    within TARGET_MATCH_DISTANCE, or None."""
    group = GROUP_OF_LABEL[int(label)]
    best, best_distance = None, TARGET_MATCH_DISTANCE
    for position, candidate_label, identifier in candidates:
        distance = float(np.linalg.norm(position - center))
        if GROUP_OF_LABEL[int(candidate_label)] == group and distance <= best_distance:
            best, best_distance = identifier, distance
    return best


def _clearance(world: World) -> float:
    """Smallest gap between the ego's body and the road users near it, metres (0 when touching)."""
    ego = world.ego_box()
    body = rectangle_corners(ego.center[:2], ego.size[0], ego.size[1], ego.yaw)
    gaps = [polygon_distance(body, rectangle_corners(o.box.center[:2], o.box.size[0], o.box.size[1], o.box.yaw))
            for o in world.ground_truth() if np.linalg.norm(o.box.center[:2] - ego.center[:2]) < CLEARANCE_RANGE]
    return min(gaps, default=math.inf)
