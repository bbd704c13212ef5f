"""croa_planner: occlusion-aware planning (CROA) on the predicted objects; drives the robot.

~/input/predicted_objects (PredictedObjects, in the planning frame), ~/input/odometry (Odometry, in
the planning frame) and ~/input/target_id (std_msgs/Int64: a track id to see better; negative, or
nothing received: automatic choice, planners.croa.targets.select_target) → at planning_rate (ROS
time) one planning cycle (planners.croa.planner.CroaPlanner) in the corridor of every lane of the
ego's driving direction (from the scenario's road) → ~/output/path (nav_msgs/Path),
~/output/markers and ~/output/status (edge_robot_msgs/PlannerStatus); at command_rate
~/output/cmd_vel (Twist) following the newest plan.

Planning runs in a worker thread fed by a one-slot mailbox (a cycle that finds the previous one
still waiting replaces it, counted); the worker takes the newest odometry and predictions when it
starts a cycle, and the executor keeps taking messages and commanding while the optimisation runs. The command follows the newest plan along its time axis (speed and steering at
the time since the plan's start), not only its first step: a plan that took a few hundred
milliseconds to make is still followed from where the robot is meant to be now.

No plan is made without a current picture of the road users: until the first predictions arrive,
whenever the newest are older than prediction_timeout, and once the newest plan is older than its
horizon, the robot brakes at stop_deceleration along its lane (pure pursuit) to a standstill; the
status says why (fallback, reason). Odometry older than odom_timeout gives a zero command. A cycle
whose optimisation fails gives the planner's own braking plan and logs the reason, throttled; so
does a planner that raises (a bug must not take the driver down with it). Failures are a solver
error, a status other than optimal (infeasible, unbounded, user_limit), a non-finite solution, or a
cycle past croa.time_budget; the status of that cycle has fallback = true and the reason
(docs/reliability.md). A robot that has planned to go nowhere while askew to its lane for
croa.back_out_after cycles backs out (negative speeds on cmd_vel, logged; the status's reason
says so).
"""
from __future__ import annotations

import collections
import math
import threading
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
from robot_nodes.conversions import MalformedMessageError, msg_to_predicted_objects, odometry_to_se2, stamp_ns
from robot_nodes.conversions.planning import plan_to_markers, plan_to_path
from robot_nodes.node_statistics import NodeStatisticsPublisher, ProcessingCounts, measured, publish_final_statistics
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
    """Planning cycles per second (ROS time, so simulated seconds under use_sim_time); a cycle that
    finds the previous one not yet started replaces it."""
    command_rate: float = field(default=20.0, metadata={"range": (1.0, 200.0)})
    """cmd_vel commands per second (ROS time), each following the newest plan at its age."""
    odom_timeout: float = field(default=0.5, metadata={"range": (0.01, 10.0)})
    """Seconds without odometry after which the planner commands a stop (zero twist)."""
    prediction_timeout: float = field(default=1.0, metadata={"range": (0.05, 30.0)})
    """Predictions older than this (s, by their stamp) are not planned on: the robot brakes along its lane."""
    stop_deceleration: float = field(default=3.0, metadata={"range": (0.1, 12.0)})
    """Braking used while there is no current plan, m/s^2."""
    occlusion: bool = True
    """Score the target's sight lines (CROA); false: collision-avoidance MPC only."""
    predicted_motion: bool = True
    """Obstacles move along their most probable predicted path; false: they stand where they are now."""
    lockstep: bool = False
    """Plan once per predictions message and command once per odometry message, as soon as they
    arrive, instead of on the planning_rate and command_rate timers, and take the time of each from
    the message's stamp instead of the clock: for the simulated world's lockstep, which waits for
    each scan's plan status and each step's command."""
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
    """What the node did: cycles = planned + replaced + went_stale + waited_for_predictions +
    stopped_without_odometry (+ the one in progress); commands = followed + braked + stopped."""

    cycles: int = 0
    """Planning timer cycles."""
    planned: int = 0
    """Cycles that ran the planner (fallbacks included)."""
    replaced: int = 0
    """Cycles replaced in the mailbox by a newer one before the worker took them (planning slower than planning_rate)."""
    went_stale: int = 0
    """Cycles whose inputs were no longer current when the worker took them (not planned)."""
    fallbacks: int = 0
    """Planner runs whose optimisation failed or that raised (their plan brakes along the lane)."""
    planner_errors: int = 0
    """Planner runs that raised an exception (counted as fallbacks too)."""
    waited_for_predictions: int = 0
    """Cycles without current predictions (no plan; the command brakes along the lane)."""
    stopped_without_odometry: int = 0
    """Cycles without current odometry (no plan; zero command)."""
    with_target: int = 0
    """Planner runs that had a target."""
    resets: int = 0
    """Resets because ROS time went backwards."""
    commands: int = 0
    """cmd_vel messages published."""
    followed: int = 0
    """Commands that followed a current plan."""
    braked: int = 0
    """Commands braking along the lane for want of a current plan or predictions."""
    stopped: int = 0
    """Zero commands for want of odometry."""


@dataclass
class _Cycle:
    """What one planning cycle plans on, taken when the worker starts it."""

    header: Header
    """The cycle's stamp (ROS time when it started) and the planning frame."""
    start_ns: int
    """The cycle's ROS time, nanoseconds: the commands follow its plan from here."""
    odometry: tuple[float, float, float, float, float]
    """(x, y, yaw, speed, yaw rate) of the newest odometry."""
    predictions: list[PredictedObject]
    """The newest predictions."""
    age: float
    """Seconds from the predictions' stamp to the cycle."""
    requested_target: int
    """The id named on ~/input/target_id (negative: automatic)."""


def command_at(plan: Plan, elapsed: float, time_step: float, wheelbase: float) -> tuple[float, float]:
    """(linear m/s, angular rad/s) that follow `plan` `elapsed` seconds after its start: the speed
    planned for the end of the current step and the step's steering as a yaw rate at that speed
    (at elapsed = 0 exactly the plan's own linear_velocity and angular_velocity)."""
    steps = len(plan.controls)
    index = int(np.clip(math.floor(elapsed / time_step + 1e-9), 0, steps - 1))
    times = np.arange(steps + 1) * time_step
    speed = float(np.interp(min(elapsed, steps * time_step) + time_step, times, plan.states[:, 3]))  # < 0: backing out
    return speed, speed * math.tan(float(plan.controls[index, 1])) / wheelbase


class CroaPlannerNode(Node):
    def __init__(self, **node_options) -> None:
        super().__init__("croa_planner", **node_options)
        self._lock = threading.Condition()
        self._stop = False
        self._worker: threading.Thread | None = None
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
        """Milliseconds per planner run, from the cycle's hand-over to its messages going out."""
        self.statistics = NodeStatisticsPublisher(self, self._processing_counts, self._lock)
        self.inputs = self.statistics.inputs
        self._odometry: tuple[float, float, float, float, float] | None = None
        self._odometry_ns = 0
        self._odometry_stamp_ns = 0
        self._predictions: list[PredictedObject] | None = None
        self._prediction_stamp_ns = 0
        self._requested_target = -1
        self._automatic_target: int | None = None  # the worker's
        self._last_cycle_ns: int | None = None
        self._plan: tuple[Plan, int] | None = None
        """The newest plan and its start (ROS time, ns), which the commands follow."""
        self.last_plan: Plan | None = None
        """The newest plan (None before the first planner run)."""
        self._mailbox = False
        """A cycle is waiting for the worker (which takes the newest inputs when it starts it)."""
        self._reset_requested = False

        self.pub_path = self.create_publisher(Path, "~/output/path", 10)
        self.pub_cmd = self.create_publisher(Twist, "~/output/cmd_vel", 10)
        self.pub_markers = self.create_publisher(MarkerArray, "~/output/markers", 10)
        self.pub_status = self.create_publisher(PlannerStatus, "~/output/status", 10)
        self.create_subscription(PredictedObjects, "~/input/predicted_objects",
                                 self.inputs.wrap("~/input/predicted_objects", self.on_predictions), 10)
        self.create_subscription(Odometry, "~/input/odometry", self.inputs.wrap("~/input/odometry", self.on_odometry),
                                 10)
        self.create_subscription(Int64, "~/input/target_id", self.inputs.wrap("~/input/target_id", self.on_target), 10)
        self._worker = threading.Thread(target=self._run, name="croa_planner_worker", daemon=True)
        self._worker.start()
        if not self.config.lockstep:
            self.create_timer(1.0 / self.config.planning_rate, self.cycle)
            self.create_timer(1.0 / self.config.command_rate, self.command)
        self.get_logger().info(
            f"CROA planner ({'occlusion-aware' if options.occlusion else 'collision avoidance only'}), "
            f"{self.config.croa.horizon} steps of {self.config.croa.time_step:g} s at {self.config.planning_rate:g} Hz, "
            f"commands at {self.config.command_rate:g} Hz, in {self.config.planning_frame}, {len(self.lanes)} lanes "
            f"from {path.name}; built and warmed up in {self.warm_up_s:.1f} s")

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

    def _processing_counts(self) -> ProcessingCounts:
        """Per planning cycle (processed: planned, counted when the planner starts, so it may include
        the cycle in progress; failed: the planner raised)."""
        counters = self.counters
        return ProcessingCounts(counters.cycles, counters.planned - counters.planner_errors, counters.replaced,
                                counters.planner_errors)

    # --- executor thread: inputs ----------------------------------------------------------------

    def _check_frame(self, what: str, frame_id: str) -> None:
        if frame_id != self.config.planning_frame:
            raise MalformedMessageError(f"{what} are in {frame_id!r}, the planning frame is "
                                        f"{self.config.planning_frame!r}")

    def on_predictions(self, message: PredictedObjects) -> None:
        self._check_frame("predictions", message.header.frame_id)
        predictions = msg_to_predicted_objects(message)
        self._predictions, self._prediction_stamp_ns = predictions, stamp_ns(message.header.stamp)
        if self.config.lockstep:
            self.cycle()

    def on_odometry(self, message: Odometry) -> None:
        self._check_frame("odometry poses", message.header.frame_id)
        self._odometry = odometry_to_se2(message)
        self._odometry_stamp_ns = stamp_ns(message.header.stamp)
        self._odometry_ns = self._now_ns(self._odometry_stamp_ns)
        if self.config.lockstep:
            self.command()

    def on_target(self, message: Int64) -> None:
        self._requested_target = int(message.data)
        self.get_logger().info(f"target: #{message.data}" if message.data >= 0 else "target: automatic choice")

    # --- executor thread: cycles and commands ---------------------------------------------------

    def _now_ns(self, stamp_ns: int) -> int:
        """The time of a cycle or command: the clock's, but in lockstep the stamp of the message that
        triggered it, so that it does not depend on whether the newest /clock message was taken in
        before the worker thread woke (two lockstep runs then repeat exactly)."""
        return stamp_ns if self.config.lockstep else self.get_clock().now().nanoseconds

    def _why_not(self, now_ns: int) -> tuple[str, float]:
        """('' or why no plan can be made or followed now, the predictions' age in s or -1 before any)."""
        if self._odometry is None:
            return "no odometry", -1.0
        if (now_ns - self._odometry_ns) * 1e-9 > self.config.odom_timeout:
            return f"odometry older than {self.config.odom_timeout:g} s", -1.0
        if self._predictions is None:
            return "waiting for the first predictions", -1.0
        age = (now_ns - self._prediction_stamp_ns) * 1e-9
        if age > self.config.prediction_timeout:
            return f"predictions {age:.2f} s old (prediction_timeout {self.config.prediction_timeout:g} s)", age
        return "", age

    def _time_went_backwards(self, now_ns: int) -> bool:
        if self._last_cycle_ns is None or now_ns >= self._last_cycle_ns:
            return False
        self.counters.resets += 1
        self.get_logger().warning(f"time went backwards (bag loop or simulator reset): planner reset "
                                  f"({self.counters.resets} so far)")
        self._odometry = self._predictions = None
        with self._lock:
            self._mailbox, self._plan, self._reset_requested = False, None, True
        return True

    @measured
    def cycle(self) -> None:
        now_ns = self._now_ns(self._prediction_stamp_ns)
        self._time_went_backwards(now_ns)
        self._last_cycle_ns = now_ns
        self.counters.cycles += 1
        header = Header(stamp=Time(nanoseconds=now_ns).to_msg(), frame_id=self.config.planning_frame)
        why, age = self._why_not(now_ns)
        if why:
            if self._odometry is None or why.startswith("odometry"):
                self.counters.stopped_without_odometry += 1
            else:
                self.counters.waited_for_predictions += 1
            self.get_logger().warning(f"not planning: {why}", throttle_duration_sec=LOG_PERIOD_S)
            self.pub_status.publish(PlannerStatus(header=header, target_id=-1, fallback=True, reason=why,
                                                  target_automatic=self._requested_target < 0, prediction_age=age))
            return
        with self._lock:
            if self._mailbox:
                self.counters.replaced += 1
                self.get_logger().warning(f"planning is slower than planning_rate: a cycle was replaced by a newer "
                                          f"one ({self.counters.replaced} of {self.counters.cycles} so far)",
                                          throttle_duration_sec=LOG_PERIOD_S)
            self._mailbox = True
            self._lock.notify()

    def _snapshot(self) -> _Cycle | None:
        """The newest inputs for the worker, taken when it starts a cycle (the freshest state to plan
        from); None when they stopped being usable since the cycle was posted."""
        now_ns = self._now_ns(self._prediction_stamp_ns)
        why, age = self._why_not(now_ns)
        if why:
            return None
        return _Cycle(Header(stamp=Time(nanoseconds=now_ns).to_msg(), frame_id=self.config.planning_frame), now_ns,
                      self._odometry, self._predictions, max(age, 0.0), self._requested_target)

    @measured
    def command(self) -> None:
        now_ns = self._now_ns(self._odometry_stamp_ns)
        command = Twist()
        why, _ = self._why_not(now_ns)
        with self._lock:
            newest = self._plan
        elapsed = (now_ns - newest[1]) * 1e-9 if newest is not None else math.inf
        horizon_s = self.config.croa.horizon * self.config.croa.time_step
        if self._odometry is None or why.startswith("odometry"):
            self.counters.stopped += 1  # zero twist: where the robot is is not known
        elif why or not 0.0 <= elapsed <= horizon_s:
            self.counters.braked += 1
            command = self._brake_along_lane()
        else:
            self.counters.followed += 1
            command.linear.x, command.angular.z = command_at(newest[0], elapsed, self.config.croa.time_step,
                                                             self.config.vehicle.wheelbase)
        self.counters.commands += 1
        self.pub_cmd.publish(command)

    def _brake_along_lane(self) -> Twist:
        """Slowing down at stop_deceleration, steered along the nearest lane (pure pursuit)."""
        x, y, yaw, speed, _ = self._odometry
        slower = max(speed - self.config.stop_deceleration / self.config.command_rate, 0.0)
        command = Twist()
        command.linear.x, command.angular.z = self.lane_keeping.command((x, y, yaw), speed, slower)
        return command

    # --- worker thread: plan and publish --------------------------------------------------------

    def _run(self) -> None:
        while True:
            with self._lock:
                self._lock.wait_for(lambda: self._stop or self._mailbox)
                if self._stop:
                    return
                self._mailbox = False
                reset, self._reset_requested = self._reset_requested, False
            if reset:
                self.planner.reset()
                self._automatic_target = None
            started = time.perf_counter()
            try:
                job = self._snapshot()
                if job is None:
                    self.counters.went_stale += 1
                    continue
                if self._plan_cycle(job):
                    self.statistics.record(job.header.stamp, 1e3 * (time.perf_counter() - started))
            except Exception as error:  # the worker must go on (the commands brake without a plan)
                self.get_logger().error(f"planning cycle failed ({type(error).__name__}: {error})",
                                        throttle_duration_sec=LOG_PERIOD_S)
            self.planning_times_ms.append(1e3 * (time.perf_counter() - started))

    def _ego(self, odometry: tuple[float, float, float, float, float]) -> EgoState:
        x, y, yaw, speed, yaw_rate = odometry
        wheelbase = self.config.vehicle.wheelbase
        steering = math.atan(yaw_rate * wheelbase / speed) if abs(speed) > STEERING_MIN_SPEED else 0.0
        return EgoState(x, y, yaw, speed, steering)

    def _obstacles(self, ego: EgoState, predictions: list[PredictedObject], age: float) -> list[Obstacle]:
        """The predicted objects near the ego over the horizon from the cycle's time: each prediction
        is followed from its stamp, shifted by the predictions' age (whole planner steps)."""
        steps, step = self.config.croa.horizon, self.config.croa.time_step
        shift = int(round(age / step))
        obstacles = []
        for predicted in predictions:
            if np.hypot(*(predicted.track.box.center[:2] - (ego.x, ego.y))) > SCENE_RADIUS:
                continue
            obstacle = Obstacle.from_prediction(predicted, steps + shift, step)
            obstacle.poses = obstacle.poses[shift:]
            obstacles.append(obstacle)
        return obstacles

    def _target(self, job: _Cycle, ego: EgoState, obstacles: list[Obstacle],
                corridor: Corridor) -> tuple[Obstacle | None, bool]:
        """(the target obstacle or None, whether it was chosen automatically)."""
        by_id = {obstacle.object_id: obstacle for obstacle in obstacles}
        if job.requested_target >= 0:
            target = by_id.get(job.requested_target)
            if target is None:
                self.get_logger().warning(f"target #{job.requested_target} is not among the predicted objects "
                                          "near the robot: planning without a target",
                                          throttle_duration_sec=LOG_PERIOD_S)
            return target, False
        labels: dict[int, ObjectClass] = {p.track.object_id: p.track.label for p in job.predictions}
        self._automatic_target = select_target(
            ego, obstacles, corridor, labels, self.config.target,
            mount=(self.config.vehicle.sensor_x, self.config.vehicle.sensor_y), current=self._automatic_target)
        return by_id.get(self._automatic_target), True

    @measured
    def _plan_cycle(self, job: _Cycle) -> bool:
        """Plan and publish; whether a plan went out (not after a planner error)."""
        ego = self._ego(job.odometry)
        corridor = corridor_for_lane(self.lanes, self.lane_width, self.lane_directions, ego.x, ego.y, ego.yaw,
                                     CORRIDOR_BEHIND, CORRIDOR_AHEAD)
        obstacles = self._obstacles(ego, job.predictions, job.age)
        target, automatic = self._target(job, ego, obstacles, corridor)
        self.counters.planned += 1
        try:
            plan = self.planner.plan(PlanningScene(ego, corridor, obstacles, target))
        except Exception as error:  # a bug or a solver crash: the commands brake along the lane
            self.planner.reset()
            self.counters.fallbacks += 1
            self.counters.planner_errors += 1
            reason = f"planner error: {type(error).__name__}: {error}"
            self.get_logger().error(f"{reason}; braking along the lane ({self.counters.planner_errors} errors so far)",
                                    throttle_duration_sec=LOG_PERIOD_S)
            with self._lock:
                self._plan = None
            self.pub_status.publish(PlannerStatus(header=job.header, target_id=-1, target_automatic=automatic,
                                                  fallback=True, reason=reason, obstacle_count=len(obstacles),
                                                  prediction_age=job.age))
            return False
        with self._lock:
            if not self._reset_requested:  # a reset while planning: this plan belongs to the old time line
                self._plan = (plan, job.start_ns)
        if plan.backing_out and not (self.last_plan is not None and self.last_plan.backing_out):
            self.get_logger().info(plan.reason)
        self.last_plan = plan
        self.counters.with_target += target is not None
        if plan.fallback:
            self.counters.fallbacks += 1
            self.get_logger().warning(f"planning failed, braking along the lane: {plan.reason} "
                                      f"({self.counters.fallbacks} of {self.counters.planned} cycles so far)",
                                      throttle_duration_sec=LOG_PERIOD_S)
        self.pub_path.publish(plan_to_path(plan, job.header, self.config.croa.time_step))
        self.pub_markers.publish(plan_to_markers(plan, job.header, self.get_name(), obstacles, target, corridor))
        self.pub_status.publish(PlannerStatus(
            header=job.header, target_id=-1 if target is None else int(target.object_id), target_automatic=automatic,
            occlusion_ratio=float(plan.occlusion_ratio), occlusion_ratio_now=float(plan.occlusion_ratio_now),
            solve_time=float(plan.solve_time), iterations=int(plan.iterations), fallback=bool(plan.fallback),
            reason=plan.reason, obstacle_count=len(obstacles), constrained_obstacle_count=len(plan.obstacle_ids),
            linear_velocity=float(plan.linear_velocity), angular_velocity=float(plan.angular_velocity),
            prediction_age=float(job.age)))
        return True

    def destroy_node(self) -> None:
        with self._lock:
            self._stop = True
            self._lock.notify()
        if self._worker is not None and self._worker.is_alive() and threading.current_thread() is not self._worker:
            self._worker.join()  # lets a cycle in progress finish and publish first
        publish_final_statistics(self)
        super().destroy_node()


def main(args: list[str] | None = None) -> int:
    return run_node(CroaPlannerNode, args)
