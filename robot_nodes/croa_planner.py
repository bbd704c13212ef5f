"""croa_planner: occlusion-aware planning (CROA) on the predicted objects; drives the robot.

~/input/predicted_objects (PredictedObjects, in the planning frame), ~/input/odometry (Odometry, in
the planning frame) and ~/input/target_id (std_msgs/Int64: a track id to see better; negative, or
nothing received: automatic choice, planners.croa.targets.select_target) → on a timer at
planning_rate (ROS time) one planning cycle (planners.croa.planner.CroaPlanner) in the corridor of
every lane of the ego's driving direction (from the scenario's road) → ~/output/path (nav_msgs/Path),
~/output/cmd_vel (Twist), ~/output/markers and ~/output/status (edge_robot_msgs/PlannerStatus).

No plan is made without a current picture of the road users: until the first predictions arrive,
and whenever the newest are older than prediction_timeout, the robot brakes at stop_deceleration
along its lane (pure pursuit) to a standstill; the status says why (fallback, reason). Odometry
older than odom_timeout gives a zero command. A cycle whose optimisation fails brakes along the lane
(the planner's own fallback) and logs the reason, throttled.
"""
from __future__ import annotations

import collections
import math
import time
from dataclasses import dataclass, field

import numpy as np
from geometry_msgs.msg import Twist
from nav_msgs.msg import Odometry, Path
from rclpy.node import Node
from rclpy.time import Time
from std_msgs.msg import Header, Int64
from visualization_msgs.msg import MarkerArray

from edge_robot_msgs.msg import PlannerStatus, PredictedObjects
from perception.objects import Box3D, ObjectClass, PredictedObject
from planners.croa.config import CroaConfig, VehicleConfig
from planners.croa.planner import CroaPlanner, PlannerOptions
from planners.croa.scene import Corridor, EgoState, Obstacle, Plan, PlanningScene
from planners.croa.targets import TargetSelectionConfig, corridor_for_lane, select_target
from robot_nodes.conversions import (MalformedMessageError, msg_to_predicted_objects, odometry_to_se2,
                                     stamp_to_seconds)
from robot_nodes.conversions.planning import plan_to_markers, plan_to_path
from robot_nodes.input_guard import InputGuard
from robot_nodes.parameters import declare_config
from robot_nodes.paths import resolve
from robot_nodes.runner import StartupError, run_node
from sim.controller import LaneKeepingController
from sim.road import RoadGeometry
from sim.scenario import ScenarioError, load_scenario
from sim.validation import check_ranges

LOG_PERIOD_S = 5.0
"""Least wall seconds between two repeated warnings of one kind."""
SCENE_RADIUS = 80.0
"""Predicted objects further than this from the ego are left out of the scene, metres."""
CORRIDOR_BEHIND = 30.0
"""Corridor kept behind the ego, metres."""
CORRIDOR_AHEAD = 150.0
"""Corridor kept ahead of the ego, metres (more than the planner's horizon ever covers)."""
STEERING_MIN_SPEED = 0.5
"""Below this speed (m/s) the steering angle is not inferred from the yaw rate (taken as 0)."""
PLANNING_TIMES_KEPT = 10000
"""Planning times kept for the statistics (the newest)."""


@dataclass
class CroaPlannerNodeConfig:
    """Parameters of the croa_planner node."""

    scenario: str = "config/scenarios/urban_default.yaml"
    """Scenario YAML whose road gives the lanes, read in the planning frame (the simulated world's
    map, which is its odom: its odometry does not drift). Relative paths: from the share directory."""
    planning_frame: str = "odom"
    """Frame of the predictions and odometry planned on (messages in another frame are rejected);
    path and markers are published in it."""
    planning_rate: float = field(default=10.0, metadata={"range": (0.5, 100.0)})
    """Planning cycles per second (ROS time, so simulated seconds under use_sim_time)."""
    odom_timeout: float = field(default=0.5, metadata={"range": (0.01, 10.0)})
    """Seconds without odometry after which the planner commands a stop (zero twist)."""
    prediction_timeout: float = field(default=1.0, metadata={"range": (0.05, 30.0)})
    """Predictions older than this (s, by their stamp) are not planned on: the robot brakes along its lane."""
    stop_deceleration: float = field(default=3.0, metadata={"range": (0.1, 12.0)})
    """Braking used while there are no current predictions, m/s^2."""
    occlusion: bool = True
    """Score the target's sight lines (CROA); false: collision-avoidance MPC only."""
    predicted_motion: bool = True
    """Obstacles move along their most probable predicted path; false: they stand where they are now."""
    croa: CroaConfig = field(default_factory=CroaConfig)
    """The planner's problem (croa.*)."""
    vehicle: VehicleConfig = field(default_factory=VehicleConfig)
    """The ego vehicle as the planner models it (vehicle.*; sensor_x/sensor_y: the lidar's position)."""
    target: TargetSelectionConfig = field(default_factory=TargetSelectionConfig)
    """The automatic target choice (target.*)."""

    def __post_init__(self) -> None:
        check_ranges(self)
        if not self.planning_frame:
            raise ValueError("planning_frame must not be empty")


@dataclass
class PlannerCounters:
    """What the planning timer did: cycles = planned + waited + stopped."""

    cycles: int = 0
    """Timer cycles."""
    planned: int = 0
    """Cycles that ran the planner (fallbacks included)."""
    fallbacks: int = 0
    """Planner runs whose optimisation failed (the command brakes along the lane)."""
    waited_for_predictions: int = 0
    """Cycles without current predictions (braking along the lane)."""
    stopped_without_odometry: int = 0
    """Cycles without current odometry (zero command)."""
    with_target: int = 0
    """Planner runs that had a target."""
    resets: int = 0
    """Resets because ROS time went backwards."""


class CroaPlannerNode(Node):
    def __init__(self, **node_options) -> None:
        super().__init__("croa_planner", **node_options)
        self.config = declare_config(self, CroaPlannerNodeConfig)
        path = resolve(self.config.scenario)
        try:
            road = RoadGeometry(load_scenario(path).road)
        except (ScenarioError, FileNotFoundError) as error:
            raise StartupError(f"croa_planner: cannot load scenario {path}: {error} (parameter scenario)") from None
        self.lanes = road.centerlines()
        self.lane_width = float(road.config.lane_width)
        self.lane_directions = [int(direction) for direction in road.lane_directions]
        self.lane_keeping = LaneKeepingController(self.lanes)
        options = PlannerOptions(occlusion=self.config.occlusion, predicted_motion=self.config.predicted_motion)
        started = time.perf_counter()
        try:
            self.planner = CroaPlanner(self.config.croa, self.config.vehicle, options)
            self._warm_up()
        except Exception as error:  # e.g. a solver that is not installed
            raise StartupError(f"croa_planner: the planner cannot be built: {error}") from None
        self.warm_up_s = time.perf_counter() - started
        self.counters = PlannerCounters()
        self.planning_times_ms: collections.deque[float] = collections.deque(maxlen=PLANNING_TIMES_KEPT)
        """Milliseconds per planning cycle that ran the planner (scene, plan, messages out)."""
        self.inputs = InputGuard(self)
        self._odometry: tuple[float, float, float, float, float] | None = None
        self._odometry_time: Time | None = None
        self._predictions: list[PredictedObject] | None = None
        self._prediction_stamp = 0.0
        self._requested_target = -1
        self._automatic_target: int | None = None
        self._last_cycle: Time | None = None
        self.last_plan: Plan | None = None
        """The newest plan (None before the first planner run)."""

        self.pub_path = self.create_publisher(Path, "~/output/path", 10)
        self.pub_cmd = self.create_publisher(Twist, "~/output/cmd_vel", 10)
        self.pub_markers = self.create_publisher(MarkerArray, "~/output/markers", 10)
        self.pub_status = self.create_publisher(PlannerStatus, "~/output/status", 10)
        self.create_subscription(PredictedObjects, "~/input/predicted_objects",
                                 self.inputs.wrap("~/input/predicted_objects", self.on_predictions), 10)
        self.create_subscription(Odometry, "~/input/odometry", self.inputs.wrap("~/input/odometry", self.on_odometry),
                                 10)
        self.create_subscription(Int64, "~/input/target_id", self.inputs.wrap("~/input/target_id", self.on_target), 10)
        self.create_timer(1.0 / self.config.planning_rate, self.cycle)
        self.get_logger().info(
            f"CROA planner ({'occlusion-aware' if options.occlusion else 'collision avoidance only'}), "
            f"{self.config.croa.horizon} steps of {self.config.croa.time_step:g} s at {self.config.planning_rate:g} Hz "
            f"in {self.config.planning_frame}, {len(self.lanes)} lanes from {path.name}; "
            f"built and warmed up in {self.warm_up_s:.1f} s")

    def _warm_up(self) -> None:
        """One plan on a made-up scene (a truck hiding a car), so the first real cycle does not pay
        for cvxpy's compilation; then the planner forgets it."""
        centerline = np.column_stack([np.linspace(-20.0, 120.0, 71), np.zeros(71)])
        steps = self.config.croa.horizon
        truck = Obstacle.standing(Box3D((20.0, -3.5, 1.75), (9.0, 2.5, 3.5), 0.0), steps, 0)
        car = Obstacle.standing(Box3D((30.0, -4.0, 0.8), (4.5, 1.9, 1.6), 0.0), steps, 1)
        self.planner.plan(PlanningScene(EgoState(0.0, 0.0, 0.0, min(5.0, self.config.croa.reference_speed)),
                                        Corridor(centerline, -1.75, 5.25), [truck, car], car))
        self.planner.reset()

    # --- inputs ---------------------------------------------------------------------------------

    def _check_frame(self, what: str, frame_id: str) -> None:
        if frame_id != self.config.planning_frame:
            raise MalformedMessageError(f"{what} are in {frame_id!r}, the planning frame is "
                                        f"{self.config.planning_frame!r}")

    def on_predictions(self, message: PredictedObjects) -> None:
        self._check_frame("predictions", message.header.frame_id)
        predictions = msg_to_predicted_objects(message)
        self._predictions = predictions
        self._prediction_stamp = stamp_to_seconds(message.header.stamp)

    def on_odometry(self, message: Odometry) -> None:
        self._check_frame("odometry poses", message.header.frame_id)
        self._odometry = odometry_to_se2(message)
        self._odometry_time = self.get_clock().now()

    def on_target(self, message: Int64) -> None:
        self._requested_target = int(message.data)
        self.get_logger().info(f"target: #{message.data}" if message.data >= 0 else "target: automatic choice")

    # --- one cycle ------------------------------------------------------------------------------

    def cycle(self) -> None:
        started = time.perf_counter()
        now = self.get_clock().now()
        if self._last_cycle is not None and now < self._last_cycle:
            self.counters.resets += 1
            self.get_logger().warning(f"time went backwards (bag loop or simulator reset): planner reset "
                                      f"({self.counters.resets} so far)")
            self.planner.reset()
            self._odometry = self._odometry_time = self._predictions = None
            self._automatic_target = None
        self._last_cycle = now
        self.counters.cycles += 1
        header = Header(stamp=now.to_msg(), frame_id=self.config.planning_frame)
        now_s = now.nanoseconds * 1e-9
        fresh_odometry = (self._odometry is not None
                          and (now - self._odometry_time).nanoseconds * 1e-9 <= self.config.odom_timeout)
        if not fresh_odometry:
            self.counters.stopped_without_odometry += 1
            self._publish_stop(header, Twist(), "no odometry" if self._odometry is None else
                               f"odometry older than {self.config.odom_timeout:g} s", -1.0)
            return
        age = now_s - self._prediction_stamp if self._predictions is not None else -1.0
        if self._predictions is None or age > self.config.prediction_timeout:
            self.counters.waited_for_predictions += 1
            reason = ("waiting for the first predictions" if self._predictions is None else
                      f"predictions {age:.2f} s old (prediction_timeout {self.config.prediction_timeout:g} s)")
            self._publish_stop(header, self._brake_along_lane(), reason, age)
            return
        self._plan(header, max(age, 0.0))
        self.planning_times_ms.append(1e3 * (time.perf_counter() - started))

    def _ego(self) -> EgoState:
        x, y, yaw, speed, yaw_rate = self._odometry
        wheelbase = self.config.vehicle.wheelbase
        steering = math.atan(yaw_rate * wheelbase / speed) if speed > STEERING_MIN_SPEED else 0.0
        return EgoState(x, y, yaw, speed, steering)

    def _obstacles(self, ego: EgoState, age: float) -> list[Obstacle]:
        """The predicted objects near the ego over the horizon from now: each prediction is
        followed from its stamp, shifted by the predictions' age (whole planner steps)."""
        steps, step = self.config.croa.horizon, self.config.croa.time_step
        shift = int(round(age / step))
        obstacles = []
        for predicted in self._predictions:
            if np.hypot(*(predicted.track.box.center[:2] - (ego.x, ego.y))) > SCENE_RADIUS:
                continue
            obstacle = Obstacle.from_prediction(predicted, steps + shift, step)
            obstacle.poses = obstacle.poses[shift:]
            obstacles.append(obstacle)
        return obstacles

    def _target(self, ego: EgoState, obstacles: list[Obstacle], corridor: Corridor) -> tuple[Obstacle | None, bool]:
        """(the target obstacle or None, whether it was chosen automatically)."""
        by_id = {obstacle.object_id: obstacle for obstacle in obstacles}
        if self._requested_target >= 0:
            target = by_id.get(self._requested_target)
            if target is None:
                self.get_logger().warning(f"target #{self._requested_target} is not among the predicted objects "
                                          "near the robot: planning without a target",
                                          throttle_duration_sec=LOG_PERIOD_S)
            return target, False
        labels: dict[int, ObjectClass] = {p.track.object_id: p.track.label for p in self._predictions}
        self._automatic_target = select_target(
            ego, obstacles, corridor, labels, self.config.target,
            mount=(self.config.vehicle.sensor_x, self.config.vehicle.sensor_y), current=self._automatic_target)
        return by_id.get(self._automatic_target), True

    def _plan(self, header: Header, age: float) -> None:
        ego = self._ego()
        corridor = corridor_for_lane(self.lanes, self.lane_width, self.lane_directions, ego.x, ego.y, ego.yaw,
                                     CORRIDOR_BEHIND, CORRIDOR_AHEAD)
        obstacles = self._obstacles(ego, age)
        target, automatic = self._target(ego, obstacles, corridor)
        plan = self.planner.plan(PlanningScene(ego, corridor, obstacles, target))
        self.last_plan = plan
        self.counters.planned += 1
        self.counters.with_target += target is not None
        if plan.fallback:
            self.counters.fallbacks += 1
            self.get_logger().warning(f"planning failed, braking along the lane: {plan.reason} "
                                      f"({self.counters.fallbacks} of {self.counters.planned} cycles so far)",
                                      throttle_duration_sec=LOG_PERIOD_S)
        command = Twist()
        command.linear.x, command.angular.z = float(plan.linear_velocity), float(plan.angular_velocity)
        self.pub_cmd.publish(command)
        self.pub_path.publish(plan_to_path(plan, header, self.config.croa.time_step))
        self.pub_markers.publish(plan_to_markers(plan, header, self.get_name(), obstacles, target, corridor))
        self.pub_status.publish(PlannerStatus(
            header=header, target_id=-1 if target is None else int(target.object_id), target_automatic=automatic,
            occlusion_ratio=float(plan.occlusion_ratio), occlusion_ratio_now=float(plan.occlusion_ratio_now),
            solve_time=float(plan.solve_time), iterations=int(plan.iterations), fallback=bool(plan.fallback),
            reason=plan.reason, obstacle_count=len(obstacles), constrained_obstacle_count=len(plan.obstacle_ids),
            linear_velocity=command.linear.x, angular_velocity=command.angular.z, prediction_age=float(age)))

    # --- no plan --------------------------------------------------------------------------------

    def _brake_along_lane(self) -> Twist:
        """Slowing down at stop_deceleration, steered along the nearest lane (pure pursuit)."""
        x, y, yaw, speed, _ = self._odometry
        slower = max(speed - self.config.stop_deceleration / self.config.planning_rate, 0.0)
        command = Twist()
        command.linear.x, command.angular.z = self.lane_keeping.command((x, y, yaw), speed, slower)
        return command

    def _publish_stop(self, header: Header, command: Twist, reason: str, age: float) -> None:
        self.get_logger().warning(f"not planning: {reason}; {'braking' if command.linear.x else 'stop'}",
                                  throttle_duration_sec=LOG_PERIOD_S)
        self.pub_cmd.publish(command)
        self.pub_status.publish(PlannerStatus(
            header=header, target_id=-1, target_automatic=self._requested_target < 0, fallback=True, reason=reason,
            linear_velocity=float(command.linear.x), angular_velocity=float(command.angular.z),
            prediction_age=float(age)))


def main(args: list[str] | None = None) -> int:
    return run_node(CroaPlannerNode, args)
