"""CROA: clutter-resilient occlusion avoidance (after Li et al., ICASSP 2025, arXiv 2412.18453).

Each cycle runs the convex-concave procedure: linearise the bicycle, the lane and every bilinear
dual term at the previous iterate, solve the convex subproblem (planners.croa.problem), repeat
until the cost stops improving. The collision-only MPC and the greedy-viewpoint tracker are the same
planner with the occlusion term off (and a goal for the latter). A failed or infeasible solve, a
non-finite solution and a cycle past config.time_budget give a braking plan along the lane and say why.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np

from perception.objects import corners_bev
from planners.croa.config import CroaConfig, VehicleConfig
from planners.croa.geometry import (FACE_SIGNS, best_face_duals, body_halfspaces, outline_samples,
                                    rectangle_halfspaces, rotation, segments_hit_polytopes)
from planners.croa.problem import CroaProblem, Linearisation, PairData
from planners.croa.scene import Corridor, EgoState, Obstacle, Plan, PlanningScene
from sim.geometry import rectangles_overlap
from sim.transforms import wrap_angle

SOLVED = ("optimal", "optimal_inaccurate")
"""cvxpy statuses whose solution is used."""
OCCLUDER_MIN_HEIGHT = 1.2
"""Objects lower than this (m) do not hide a target from a roof lidar in the planar model."""
PURE_PURSUIT_LOOKAHEAD = 8.0
"""Look-ahead of the start-up and fallback rollouts along the lane, metres."""
COLLISION_RANGE = 30.0
"""Obstacles further than this from every planned position (minus their size) get no constraint, metres."""
STANDSTILL_SPEED = 0.1
"""A start point no faster than this (m/s) anywhere is replaced by a pull-away rollout: linearised
at standstill the bicycle's heading does not depend on its steering, so the only plan in reach is
straight ahead, and a robot stopped facing an obstacle would stand there for good."""
STALLED_TRAVEL = 0.5
"""A plan whose last position is nearer than this to its first (m) goes nowhere (CroaConfig.back_out_after)."""
BACKED_OUT = 0.1
"""Backing out ends this close to its distance (m): the last centimetres are crept at the braking limit."""
BACKING_OUT = "backing out"
"""How the reason of a plan that backs out begins (the PlannerStatus messages carry only the reason)."""


@dataclass
class PlannerOptions:
    """Which parts of the planner are on (the baselines switch them off)."""

    occlusion: bool = True
    """Score the target's sight lines (CROA); off: collision-avoidance MPC only."""
    predicted_motion: bool = True
    """Obstacles move along their predicted paths; off: they stay where they are now."""


class CroaPlanner:
    """Plans with the problem compiled once; keeps the previous plan to start the next cycle from."""

    def __init__(self, config: CroaConfig | None = None, vehicle: VehicleConfig | None = None,
                 options: PlannerOptions | None = None) -> None:
        self.config = config or CroaConfig()
        self.vehicle = vehicle or VehicleConfig()
        self.options = options or PlannerOptions()
        self.problem = CroaProblem(self.config, self.vehicle)
        self._body = body_halfspaces(self.vehicle.length, self.vehicle.width, self.vehicle.rear_overhang)
        self._previous: Plan | None = None
        self._stalled_cycles = 0
        self._back_out_start: np.ndarray | None = None
        """Where backing out began (map), while it lasts."""
        self._back_out_cycles = 0

    def reset(self) -> None:
        """Forget the previous plan and any stall (a new episode)."""
        self._previous, self._stalled_cycles, self._back_out_start = None, 0, None

    # --- one cycle -----------------------------------------------------------------------------

    def plan(self, scene: PlanningScene) -> Plan:
        started = time.perf_counter()
        config, problem = self.config, self.problem
        origin = np.array([scene.ego.x, scene.ego.y])
        obstacles = scene.obstacles if self.options.predicted_motion else [_frozen(obstacle)
                                                                            for obstacle in scene.obstacles]
        target = scene.target
        if target is not None and not self.options.predicted_motion:
            target = _frozen(target)
        point = self._start_point(scene, origin)
        problem.initial_state.value = np.array([0.0, 0.0, scene.ego.yaw, max(scene.ego.speed, 0.0)])
        problem.initial_steering.value = float(np.clip(scene.ego.steering, -self.vehicle.max_steering,
                                                       self.vehicle.max_steering))
        problem.reference_speed.value = config.reference_speed
        problem.set_goal(None if scene.goal is None else np.asarray(scene.goal, dtype=np.float64) - origin,
                         config.goal_weight)
        half_width = self.vehicle.width / 2.0 + config.road_margin
        problem.lateral_low.value = scene.corridor.right + half_width
        problem.lateral_high.value = scene.corridor.left - half_width
        _, lateral_now, _, tangent_now = scene.corridor.project(origin[None])
        problem.corridor_allowance.value = float(max(0.0, problem.lateral_low.value - lateral_now[0],
                                                     lateral_now[0] - problem.lateral_high.value))
        lane_yaw = math.atan2(tangent_now[0, 1], tangent_now[0, 0])
        heading_now = abs(math.remainder(scene.ego.yaw - lane_yaw, 2 * math.pi))
        problem.heading_allowance.value = max(0.0, heading_now - config.max_heading_offset)
        problem.lateral_reference.value = scene.corridor.reference_offset

        best_cost, iterations, obstacle_ids, status = math.inf, 0, [], "not run"
        solution = None
        budget = config.time_budget if problem.compiled else math.inf  # compiling is not planning
        for iterations in range(1, config.ccp_iterations + 1):
            obstacle_ids = self._set_data(scene, obstacles, target, origin, point)
            left = budget - (time.perf_counter() - started)
            try:
                status = problem.solve(time_limit=max(left, 0.0) if math.isfinite(left) else None)
            except Exception as error:  # solver failure: the cycle must still answer
                status = f"solver error: {type(error).__name__}: {error}"
            if time.perf_counter() - started > budget:
                status = f"over the time budget ({config.time_budget:g} s) in iteration {iterations} (status {status})"
                solution = None  # a plan this late is not followed
                break
            if status in SOLVED and not (np.all(np.isfinite(problem.states.value))
                                         and np.all(np.isfinite(problem.controls.value))):
                status = f"numerical trouble: {status} with a non-finite solution"
            if status not in SOLVED:
                break
            solution = Linearisation(problem.states.value.copy(), problem.controls.value[:, 1].copy())
            controls = problem.controls.value.copy()
            cost = float(problem.problem.value)
            moved = float(np.max(np.linalg.norm(solution.states[:, :2] - point.states[:, :2], axis=1)))
            point = solution
            improved = best_cost - cost
            best_cost = min(best_cost, cost)
            # Converged: the plan stays where it was linearised (every DC split is exact there), or
            # the cost stopped improving.
            if moved <= config.ccp_position_tolerance or improved <= config.ccp_tolerance * max(abs(cost), 1e-9):
                break
        collision = None if solution is None else self._first_contact(solution, origin, obstacles)
        if solution is None:
            plan = self._fallback(scene, origin, f"solver: {status}")
        elif collision is not None:
            plan = self._fallback(scene, origin, collision)
        else:
            plan = self._plan_from(solution, controls, origin, iterations, obstacle_ids)
        plan = self._unless_stalled(scene, origin, obstacles, plan, lane_yaw, heading_now)
        plan.occlusion_ratio, plan.occlusion_ratio_now, plan.sight_lines, plan.sight_blocked = self._occlusion(
            plan, scene.ego, obstacles, target)
        plan.solve_time = time.perf_counter() - started
        self._previous = None if plan.fallback or plan.backing_out else plan
        return plan

    # --- linearisation point -------------------------------------------------------------------

    def _start_point(self, scene: PlanningScene, origin: np.ndarray) -> Linearisation:
        """The previous plan shifted by one step when the ego is where it predicted, else a rollout
        along the lane at the current speed; a standstill plan is replaced by one pulling away."""
        point = self._shifted_previous(scene, origin)
        if point is not None and np.max(point.states[:, 3]) > STANDSTILL_SPEED:
            return point
        pulling_away = scene.ego.speed <= STANDSTILL_SPEED  # true too of a standstill plan: it starts at this speed
        states, controls = self._rollout(scene.ego, scene.corridor,
                                         speed_change=self.vehicle.max_acceleration if pulling_away else 0.0)
        states[:, :2] -= origin
        return Linearisation(states, controls[:, 1])

    def _shifted_previous(self, scene: PlanningScene, origin: np.ndarray) -> Linearisation | None:
        previous = self._previous
        if previous is not None:
            states = previous.states.copy()
            expected = states[1]
            if (np.hypot(expected[0] - scene.ego.x, expected[1] - scene.ego.y) < 1.0
                    and abs(math.remainder(expected[2] - scene.ego.yaw, 2 * math.pi)) < 0.2):
                states = np.vstack([states[1:], states[-1:]])
                states[-1, :2] += self.config.time_step * states[-1, 3] * np.array(
                    [math.cos(states[-1, 2]), math.sin(states[-1, 2])])
                states[0] = [scene.ego.x, scene.ego.y, scene.ego.yaw, scene.ego.speed]
                states[:, 2] = scene.ego.yaw + np.unwrap(states[:, 2] - scene.ego.yaw)
                states[:, :2] -= origin
                steering = np.append(previous.controls[1:, 1], previous.controls[-1, 1])
                return Linearisation(states, steering)
        return None

    def _rollout(self, ego: EgoState, corridor: Corridor, speed_change: float,
                 lateral: float | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Pure pursuit along the corridor at `lateral` (default: the reference lane) with constant
        acceleration `speed_change`; states (T + 1, 4) in the planning frame, controls (T, 2)."""
        config, vehicle = self.config, self.vehicle
        lateral = corridor.reference_offset if lateral is None else lateral
        states = np.zeros((config.horizon + 1, 4))
        controls = np.zeros((config.horizon, 2))
        states[0] = [ego.x, ego.y, ego.yaw, max(ego.speed, 0.0)]
        for step in range(config.horizon):
            x, y, yaw, speed = states[step]
            arc, _, _, _ = corridor.project(np.array([[x, y]]))
            goal = corridor.point_at(arc + PURE_PURSUIT_LOOKAHEAD, lateral)[0] - (x, y)
            left = -math.sin(yaw) * goal[0] + math.cos(yaw) * goal[1]
            curvature = 2.0 * left / max(goal @ goal, 1e-6)
            steering = float(np.clip(math.atan(curvature * vehicle.wheelbase), -vehicle.max_steering,
                                     vehicle.max_steering))
            acceleration = float(np.clip(speed_change, -vehicle.max_deceleration, vehicle.max_acceleration))
            new_speed = max(speed + acceleration * config.time_step, 0.0)
            states[step + 1] = [x + config.time_step * speed * math.cos(yaw), y + config.time_step * speed * math.sin(yaw),
                                yaw + config.time_step * speed * math.tan(steering) / vehicle.wheelbase, new_speed]
            controls[step] = [acceleration, steering]
        return states, controls

    def _unless_stalled(self, scene: PlanningScene, origin: np.ndarray, obstacles: list[Obstacle], plan: Plan,
                        lane_yaw: float, heading_off_lane: float) -> Plan:
        """The plan, or one backing out (straightening towards the lane) once the ego has planned
        to go nowhere while askew to its lane for config.back_out_after cycles in a row, until it
        has backed config.back_out_distance."""
        config = self.config
        if self._back_out_start is None:
            stalled = (np.linalg.norm(plan.states[-1, :2] - plan.states[0, :2]) < STALLED_TRAVEL
                       and heading_off_lane >= config.back_out_heading)
            self._stalled_cycles = self._stalled_cycles + 1 if stalled else 0
            if config.back_out_after == 0 or self._stalled_cycles < config.back_out_after:
                return plan
            self._back_out_start, self._back_out_cycles = origin.copy(), 0
        left = config.back_out_distance - float(np.linalg.norm(origin - self._back_out_start))
        self._back_out_cycles += 1
        # Long enough to back the distance at the limits three times over: a robot that does not
        # move (its base refuses to reverse) stops trying.
        patience = 3.0 * (config.back_out_distance / config.back_out_speed
                          + 2.0 * config.back_out_speed / self.vehicle.max_acceleration) / config.time_step
        states, controls = self._reverse_rollout(scene.ego, lane_yaw, left)
        # The way back keeps safety_distance from everything, bar what is that close already (the
        # car it faces): that must not be touched.
        near = self._overlaps(states[:, :3], obstacles, margin=config.safety_distance)
        blocked = (near & ~near[:, :1]) | self._overlaps(states[:, :3], obstacles)
        backed_out = left < BACKED_OUT and scene.ego.speed >= -STANDSTILL_SPEED
        if backed_out or blocked.any() or self._back_out_cycles > patience:
            if blocked.any():
                index, step = np.argwhere(blocked)[0]
                plan.reason = (f"stalled for {self._stalled_cycles} cycles and cannot back out: within "
                               f"{config.safety_distance:g} m of obstacle {obstacles[index].object_id} "
                               f"at {step * config.time_step:.1f} s")
            self._back_out_start, self._stalled_cycles = None, 0
            return plan
        speed = float(states[1, 3])
        return Plan(states=states, controls=controls, linear_velocity=speed,
                    angular_velocity=speed * math.tan(float(controls[0, 1])) / self.vehicle.wheelbase,
                    fallback=False, solve_time=0.0, iterations=0, occlusion_ratio=0.0, occlusion_ratio_now=0.0,
                    reason=(f"{BACKING_OUT}: planned under {STALLED_TRAVEL:g} m for {self._stalled_cycles} cycles "
                            f"{heading_off_lane:.2f} rad off the lane; {left:.1f} m to go"),
                    backing_out=True)

    def _reverse_rollout(self, ego: EgoState, lane_yaw: float, distance: float) -> tuple[np.ndarray, np.ndarray]:
        """Reversing `distance` metres at up to back_out_speed and stopping there, steering the
        heading towards lane_yaw within the steering limits; states (T + 1, 4) in map, controls (T, 2)."""
        config, vehicle = self.config, self.vehicle
        dt = config.time_step
        states = np.zeros((config.horizon + 1, 4))
        controls = np.zeros((config.horizon, 2))
        states[0] = [ego.x, ego.y, ego.yaw, min(ego.speed, 0.0)]
        steering, travelled = float(ego.steering), 0.0
        for step in range(config.horizon):
            x, y, yaw, speed = states[step]
            left = max(distance - travelled, 0.0)
            # Reversing turns the heading the other way: steer against the heading error, by the
            # curvature that removes it over what is left to go.
            wanted = -math.atan(math.remainder(lane_yaw - yaw, 2 * math.pi) * vehicle.wheelbase / max(left, 0.5))
            steering = float(np.clip(wanted, max(steering - vehicle.max_steering_rate * dt, -vehicle.max_steering),
                                     min(steering + vehicle.max_steering_rate * dt, vehicle.max_steering)))
            # Brakes to stop at the distance (and covers no more than what is left in one step).
            target_speed = -min(config.back_out_speed, math.sqrt(2.0 * vehicle.max_acceleration * left), left / dt)
            acceleration = float(np.clip((target_speed - speed) / dt, -vehicle.max_acceleration,
                                         vehicle.max_acceleration))
            states[step + 1] = [x + dt * speed * math.cos(yaw), y + dt * speed * math.sin(yaw),
                                yaw + dt * speed * math.tan(steering) / vehicle.wheelbase, speed + acceleration * dt]
            controls[step] = [acceleration, steering]
            travelled += dt * abs(speed)
        return states, controls

    # --- problem data --------------------------------------------------------------------------

    def _set_data(self, scene: PlanningScene, obstacles: list[Obstacle], target: Obstacle | None,
                  origin: np.ndarray, point: Linearisation) -> list[int]:
        config, problem = self.config, self.problem
        problem.set_linearisation(point)
        positions = point.states[1:, :2]
        _, _, feet, tangents = scene.corridor.project(positions + origin)
        problem.lane_normals.value = np.column_stack([-tangents[:, 1], tangents[:, 0]])
        problem.lane_offsets.value = np.einsum("ti,ti->t", problem.lane_normals.value, feet - origin)
        lane_yaw = np.arctan2(tangents[:, 1], tangents[:, 0])
        problem.lane_headings.value = point.states[1:, 2] + wrap_angle(lane_yaw - point.states[1:, 2])
        problem.previous_positions.value = positions
        chosen = self._nearest_obstacles(obstacles, point, origin)
        problem.set_collision_pairs(*self._collision_pairs(chosen, point, origin))
        problem.set_occlusion_pairs(*self._occlusion_pairs(obstacles, target, point, origin))
        scored = problem.occlusion_steps
        scored_normals = problem.lane_normals.value[scored - 1]
        sensor_offsets = np.einsum("sij,j->si", rotation(point.states[scored, 2]), self.vehicle.sensor_mount)
        targets = (target.poses[scored, :2] - origin) if target is not None else np.zeros((len(scored), 2))
        weights = np.zeros(len(scored))
        if self.options.occlusion and target is not None:
            # Returns per m^2 fall with the squared range a^2 + l^2 (a ahead, l across): closing the
            # lateral gap pays in proportion to l^2 / r^2, little for a far target, where the pull
            # only fights the occlusion term (the way past a row of parked cars is wide of it); so
            # it fades with the range at the iterate.
            ranges = np.linalg.norm(targets - point.states[scored, :2] - sensor_offsets, axis=1)
            weights[:] = config.target_lateral_weight * np.minimum(
                1.0, (config.target_lateral_range / np.maximum(ranges, 1e-6)) ** 2)
        problem.set_target_gap(scored_normals, targets, sensor_offsets, weights)
        return [obstacle.object_id for obstacle in chosen]

    def _nearest_obstacles(self, obstacles: list[Obstacle], point: Linearisation,
                           origin: np.ndarray) -> list[Obstacle]:
        if not obstacles:
            return []
        positions = point.states[:, :2] + origin
        gaps = np.array([np.min(np.linalg.norm(obstacle.poses[:, :2] - positions, axis=1))
                         - 0.5 * math.hypot(obstacle.length, obstacle.width) for obstacle in obstacles])
        order = [index for index in np.argsort(gaps) if gaps[index] < COLLISION_RANGE]
        return [obstacles[index] for index in order[:self.config.max_obstacles]]

    def _collision_pairs(self, chosen: list[Obstacle], point: Linearisation,
                         origin: np.ndarray) -> tuple[PairData, np.ndarray, np.ndarray, np.ndarray]:
        steps, slots = self.config.horizon, self.config.max_obstacles
        count = steps * slots
        normals = np.tile(FACE_SIGNS, (count, 1, 1))
        offsets = np.ones((count, 4))
        active = np.zeros(count, dtype=bool)
        pair_steps = np.repeat(np.arange(1, steps + 1), slots)
        ego_positions = point.states[pair_steps, :2]
        ego_yaws = point.states[pair_steps, 2]
        headways = np.zeros(count)
        front = self.vehicle.length - self.vehicle.rear_overhang
        for slot, obstacle in enumerate(chosen):
            rows = np.arange(slot, count, slots)
            poses = obstacle.poses[1:steps + 1]
            normals[rows], offsets[rows] = rectangle_halfspaces(poses[:, :2] - origin, obstacle.length,
                                                                obstacle.width, poses[:, 2])
            active[rows] = True
            # Following distance: an obstacle wholly ahead of the front bumper, across the body's
            # width, gets a speed-dependent gap (one beside the body does not: passing a parked car
            # close by is no reason to keep a following distance from it).
            relative = poses[:, :2] - origin - ego_positions[rows]
            cos, sin = np.cos(ego_yaws[rows]), np.sin(ego_yaws[rows])
            ahead = relative[:, 0] * cos + relative[:, 1] * sin
            across = -relative[:, 0] * sin + relative[:, 1] * cos
            facing = poses[:, 2] - ego_yaws[rows]
            reach = 0.5 * (obstacle.length * np.abs(np.cos(facing)) + obstacle.width * np.abs(np.sin(facing)))
            in_path = ((ahead - reach > front)
                       & (np.abs(across) < 0.5 * (obstacle.width + self.vehicle.width) + 0.3))
            headways[rows] = np.where(in_path, self.config.time_headway, 0.0)
        body_normals, body_offsets = self._body
        corners = _body_corners(body_offsets)
        corner_sets = [ego_positions + np.einsum("pij,j->pi", rotation(ego_yaws), corner) for corner in corners]
        faces = best_face_duals(normals, offsets, *corner_sets)
        duals = normals[np.arange(count), faces]
        return (PairData(normals, offsets, duals, ego_positions, active), ego_yaws,
                np.full(count, self.config.safety_distance), headways)

    def _occlusion_pairs(self, obstacles: list[Obstacle], target: Obstacle | None, point: Linearisation,
                         origin: np.ndarray):
        config, problem = self.config, self.problem
        samples_per_pose, slots = config.target_samples, config.max_occluders
        count = problem.occlusion_pairs
        normals = np.tile(FACE_SIGNS, (count, 1, 1))
        offsets = np.ones((count, 4))
        active = np.zeros(count, dtype=bool)
        samples = np.zeros((count, 2))
        sensor_offsets = np.zeros((count, 2))
        sensor_starts = np.zeros((count, 2))
        scored = self.options.occlusion and target is not None
        weights = np.full(count, config.occlusion_weight / (len(problem.occlusion_steps) * samples_per_pose)
                          if scored else 0.0)
        mount = self.vehicle.sensor_mount
        for pose_index, step in enumerate(problem.occlusion_steps):
            rows = slice(pose_index * samples_per_pose * slots, (pose_index + 1) * samples_per_pose * slots)
            offset = rotation(point.states[step, 2]) @ mount
            sensor = point.states[step, :2] + offset
            sensor_offsets[rows] = offset
            sensor_starts[rows] = sensor
            if target is None:
                continue
            target_pose = target.poses[step]
            target_samples = outline_samples(target_pose[:2] - origin, target.length, target.width, target_pose[2],
                                             sensor, samples_per_pose)
            occluders = _occluders(obstacles, target, step, sensor, target_pose[:2] - origin, origin, slots)
            for sample_index, sample in enumerate(target_samples):
                for slot, (occluder_normals, occluder_offsets) in enumerate(occluders):
                    row = rows.start + sample_index * slots + slot
                    normals[row], offsets[row], active[row] = occluder_normals, occluder_offsets, True
                samples[rows.start + sample_index * slots:rows.start + (sample_index + 1) * slots] = sample
        faces = best_face_duals(normals, offsets, sensor_starts, samples)
        duals = normals[np.arange(count), faces]
        return PairData(normals, offsets, duals, sensor_starts, active), samples, sensor_offsets, weights

    # --- results -------------------------------------------------------------------------------

    def _first_contact(self, solution: Linearisation, origin: np.ndarray, obstacles: list[Obstacle]) -> str | None:
        """Why the plan is refused: its body overlaps an obstacle at some step (exact rectangles), or None."""
        touching = self._overlaps(solution.states[:, :3] + np.append(origin, 0.0), obstacles)
        if not touching.any():
            return None
        index, step = np.argwhere(touching)[0]
        return (f"no collision-free plan: touches obstacle {obstacles[index].object_id} "
                f"at {step * self.config.time_step:.1f} s")

    def _overlaps(self, poses: np.ndarray, obstacles: list[Obstacle], margin: float = 0.0) -> np.ndarray:
        """Whether the body at each base_link pose (T + 1, 3) in map, grown by `margin` on every
        side, overlaps each obstacle at the same step (exact rectangles), (obstacles, T + 1)."""
        steps = len(poses)
        if not obstacles:
            return np.zeros((0, steps), dtype=bool)
        body = self.vehicle.body_boxes(poses)
        body[:, 3:5] += 2.0 * margin
        others = np.zeros((len(obstacles), steps, 7))
        for index, obstacle in enumerate(obstacles):
            others[index, :, :2] = obstacle.poses[:steps, :2]
            others[index, :, 3:5] = obstacle.length, obstacle.width
            others[index, :, 6] = obstacle.poses[:steps, 2]
        body_corners = np.broadcast_to(corners_bev(body), (len(obstacles), steps, 4, 2)).reshape(-1, 4, 2)
        return rectangles_overlap(body_corners, corners_bev(others.reshape(-1, 7))).reshape(len(obstacles), steps)

    def _plan_from(self, solution: Linearisation, controls: np.ndarray, origin: np.ndarray, iterations: int,
                   obstacle_ids: list[int]) -> Plan:
        states = solution.states.copy()
        states[:, :2] += origin
        states[:, 2] = wrap_angle(states[:, 2])
        speed = float(max(states[1, 3], 0.0))
        angular = speed * math.tan(float(controls[0, 1])) / self.vehicle.wheelbase
        return Plan(states=states, controls=controls, linear_velocity=speed, angular_velocity=angular,
                    fallback=False, reason="", solve_time=0.0, iterations=iterations, occlusion_ratio=0.0,
                    occlusion_ratio_now=0.0, obstacle_ids=obstacle_ids)

    def _fallback(self, scene: PlanningScene, origin: np.ndarray, reason: str) -> Plan:
        """Brake at the vehicle's planned deceleration limit along the current lateral offset."""
        _, lateral, _, _ = scene.corridor.project(np.array([[scene.ego.x, scene.ego.y]]))
        states, controls = self._rollout(scene.ego, scene.corridor, -self.vehicle.max_deceleration,
                                         float(lateral[0]))
        states[:, 2] = wrap_angle(states[:, 2])
        speed = float(states[1, 3])
        angular = speed * math.tan(float(controls[0, 1])) / self.vehicle.wheelbase
        return Plan(states=states, controls=controls, linear_velocity=speed, angular_velocity=angular,
                    fallback=True, reason=reason, solve_time=0.0, iterations=0, occlusion_ratio=0.0,
                    occlusion_ratio_now=0.0)

    def _occlusion(self, plan: Plan, ego: EgoState, obstacles: list[Obstacle], target: Obstacle | None):
        """Planar occlusion ratios of the target from the last planned and from the current sensor
        position, and the last pose's sight lines with whether each is blocked."""
        if target is None:
            return 0.0, 0.0, np.zeros((0, 2, 2)), np.zeros(0, dtype=bool)
        hiding = occluders_of(obstacles, target.object_id)
        results = []
        for step, pose in ((self.config.horizon, plan.states[-1]), (0, np.array([ego.x, ego.y, ego.yaw]))):
            sensor = pose[:2] + rotation(pose[2]) @ self.vehicle.sensor_mount
            samples, blocked = blocked_sight_lines(sensor, target, step, *halfspaces_at(hiding, step),
                                                   self.config.target_samples)
            lines = np.stack([np.broadcast_to(sensor, samples.shape), samples], axis=1)
            results.append((float(blocked.mean()), lines, blocked))
        (planned, lines, blocked), (now, _, _) = results
        return planned, now, lines, blocked


def occluders_of(obstacles: list[Obstacle], target_id: int, min_height: float = OCCLUDER_MIN_HEIGHT) -> list[Obstacle]:
    """The obstacles that can hide the target in the planar model: tall enough, not the target."""
    return [obstacle for obstacle in obstacles if obstacle.object_id != target_id and obstacle.height >= min_height]


def halfspaces_at(obstacles: list[Obstacle], step: int) -> tuple[np.ndarray, np.ndarray]:
    """(A (K, 4, 2), b (K, 4)) of the obstacles' rectangles at horizon index `step`."""
    poses = np.array([obstacle.poses[step] for obstacle in obstacles]).reshape(-1, 3)
    return rectangle_halfspaces(poses[:, :2], [o.length for o in obstacles], [o.width for o in obstacles], poses[:, 2])


def blocked_sight_lines(viewpoint: np.ndarray, target: Obstacle, step: int, normals: np.ndarray, offsets: np.ndarray,
                        count: int) -> tuple[np.ndarray, np.ndarray]:
    """`count` points on the target's outline facing the viewpoint at horizon index `step` (count, 2),
    and whether the sight line to each meets one of the polytopes (K, 4, 2), (K, 4) (count,)."""
    pose = target.poses[step]
    samples = outline_samples(pose[:2], target.length, target.width, pose[2], viewpoint, count)
    if len(normals) == 0:
        return samples, np.zeros(len(samples), dtype=bool)
    blocked = segments_hit_polytopes(np.broadcast_to(viewpoint, samples.shape), samples, normals, offsets)
    return samples, blocked.any(axis=1)


def _frozen(obstacle: Obstacle) -> Obstacle:
    """The obstacle held at its current pose over the horizon (prediction switched off)."""
    return Obstacle(obstacle.length, obstacle.width, obstacle.height,
                    np.tile(obstacle.poses[0], (len(obstacle.poses), 1)), obstacle.object_id)


def _body_corners(body_offsets: np.ndarray) -> np.ndarray:
    """The ego body's corners in base_link from its face offsets (front, left, back, right)."""
    front, left, back, right = body_offsets
    return np.array([[front, left], [-back, left], [-back, -right], [front, -right]])


def _occluders(obstacles: list[Obstacle], target: Obstacle, step: int, sensor: np.ndarray, target_center: np.ndarray,
               origin: np.ndarray, slots: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Half-spaces (relative to origin) of the `slots` occluders nearest to the sight line from the
    sensor to the target's centre at horizon step `step`."""
    candidates = occluders_of(obstacles, target.object_id)
    if not candidates:
        return []
    centers = np.array([obstacle.poses[step, :2] for obstacle in candidates]) - origin
    line = target_center - sensor
    fraction = np.clip((centers - sensor) @ line / max(line @ line, 1e-9), 0.0, 1.0)
    gaps = (np.linalg.norm(centers - (sensor + fraction[:, None] * line), axis=1)
            - 0.5 * np.hypot([o.length for o in candidates], [o.width for o in candidates]))
    chosen = np.argsort(gaps)[:slots]
    return [rectangle_halfspaces(centers[index], candidates[index].length, candidates[index].width,
                                 candidates[index].poses[step, 2]) for index in chosen]
