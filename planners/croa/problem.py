"""The CROA convex subproblem, built once in cvxpy with Parameters (DPP) and re-solved every
convex-concave iteration with new data. docs/croa.md writes the formulation out; the names here
follow it.

Positions are relative to an origin (the ego's position when the cycle starts), so the numbers the
solver sees stay small wherever the robot is.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass

import cvxpy as cp
import numpy as np

from planners.croa.config import CroaConfig, VehicleConfig
from planners.croa.geometry import body_halfspaces

FACES = 4
"""Faces of every polytope (rectangles)."""
HEADING_SLACK = 0.15
"""Radians by which a plan may exceed the heading bound, at the corridor's price: turning back
takes a few steps at the steering-rate limit, which a hard bound would make infeasible."""
INACTIVE_MARGIN = -1e3
"""Right-hand side of an unused pair's separation constraint: always satisfiable."""


@dataclass
class Linearisation:
    """The point every non-convex part is linearised about (the previous iterate)."""

    states: np.ndarray
    """(T + 1, 4) x, y (relative to the origin), yaw (unwrapped), speed."""
    steering: np.ndarray
    """(T,) steering angles."""


@dataclass
class PairData:
    """Dual-form separation pairs: a moving polytope (the ego's body or a sight segment's sensor
    end) against a fixed rectangle {z : A z <= b}, with the CCP linearisation point."""

    normals: np.ndarray
    """A, (P, 4, 2)."""
    offsets: np.ndarray
    """b, (P, 4) (relative to the origin)."""
    dual_start: np.ndarray
    """a_bar = A^T lambda_bar, (P, 2): the previous iterate's dual direction."""
    position_start: np.ndarray
    """p_bar, (P, 2): the previous iterate's position of the moving end."""
    active: np.ndarray
    """(P,) bool: unused slots get a constraint that always holds."""


class CroaProblem:
    """The parametrised convex problem of one CCP iteration (see docs/croa.md)."""

    def __init__(self, config: CroaConfig, vehicle: VehicleConfig) -> None:
        self.config, self.vehicle = config, vehicle
        steps = config.horizon
        self.collision_pairs = steps * config.max_obstacles
        self.occlusion_pairs = config.occlusion_poses * config.target_samples * config.max_occluders
        self.occlusion_steps = np.linspace(steps, 0, config.occlusion_poses, endpoint=False)[::-1].round().astype(int)
        """Horizon indices of the poses from which sight lines are scored, ascending, the last = T."""
        self.compiled = False
        """Whether a solve has run: cvxpy compiles the problem on the first (seconds)."""
        self._build()

    # --- construction ------------------------------------------------------------------------

    def _build(self) -> None:
        config, vehicle = self.config, self.vehicle
        steps, dt = config.horizon, config.time_step
        self.states = cp.Variable((steps + 1, 4), name="states")
        self.controls = cp.Variable((steps, 2), name="controls")
        x, y, yaw, speed = (self.states[:, index] for index in range(4))
        acceleration, steering = self.controls[:, 0], self.controls[:, 1]

        self.initial_state = cp.Parameter(4, name="initial_state")
        self.initial_steering = cp.Parameter(name="initial_steering")
        # Linearised bicycle: each product of the linearisation point enters as one Parameter (DPP).
        names = ("cos_dt", "sin_dt", "speed_sin_dt", "speed_cos_dt", "x_offset", "y_offset",
                 "tan_dt", "speed_secant_dt", "yaw_offset")
        self.dynamics = {name: cp.Parameter(steps, name=name) for name in names}
        d = self.dynamics
        constraints = [
            self.states[0] == self.initial_state,
            x[1:] == x[:-1] + cp.multiply(d["cos_dt"], speed[:-1]) - cp.multiply(d["speed_sin_dt"], yaw[:-1])
            + d["x_offset"],
            y[1:] == y[:-1] + cp.multiply(d["sin_dt"], speed[:-1]) + cp.multiply(d["speed_cos_dt"], yaw[:-1])
            + d["y_offset"],
            yaw[1:] == yaw[:-1] + cp.multiply(d["tan_dt"], speed[:-1]) + cp.multiply(d["speed_secant_dt"], steering)
            + d["yaw_offset"],
            speed[1:] == speed[:-1] + dt * acceleration,
            speed >= 0.0, speed <= vehicle.max_speed,
            acceleration >= -vehicle.max_deceleration, acceleration <= vehicle.max_acceleration,
            cp.abs(steering) <= vehicle.max_steering,
            cp.abs(cp.diff(steering)) <= vehicle.max_steering_rate * dt,
            cp.abs(steering[0] - self.initial_steering) <= vehicle.max_steering_rate * dt,
        ]

        # Corridor and costs along the reference lane, linearised at the previous positions.
        self.lane_normals = cp.Parameter((steps, 2), name="lane_normals")
        self.lane_offsets = cp.Parameter(steps, name="lane_offsets")
        """n_t^T r_t of each step's centre-line point r_t (a product of Parameters, so given as one)."""
        self.lane_headings = cp.Parameter(steps, name="lane_headings")
        self.lateral_low = cp.Parameter(name="lateral_low")
        self.lateral_high = cp.Parameter(name="lateral_high")
        self.lateral_reference = cp.Parameter(name="lateral_reference")
        self.reference_speed = cp.Parameter(nonneg=True, name="reference_speed")
        self.previous_positions = cp.Parameter((steps, 2), name="previous_positions")
        positions = self.states[1:, :2]
        lateral = cp.sum(cp.multiply(self.lane_normals, positions), axis=1) - self.lane_offsets
        # The corridor and the heading off the lane are hard, widened only by how far the ego is
        # outside them now (`*_allowance`, so it can always come back), plus a slack within the
        # road margin at a high price.
        self.corridor_allowance = cp.Parameter(nonneg=True, name="corridor_allowance")
        self.heading_allowance = cp.Parameter(nonneg=True, name="heading_allowance")
        self.corridor_slack = cp.Variable(steps, nonneg=True, name="corridor_slack")
        heading_offsets = yaw[1:] - self.lane_headings
        self.heading_slack = cp.Variable(steps, nonneg=True, name="heading_slack")
        constraints += [lateral >= self.lateral_low - self.corridor_allowance - self.corridor_slack,
                        lateral <= self.lateral_high + self.corridor_allowance + self.corridor_slack,
                        self.corridor_slack <= config.road_margin,
                        cp.abs(heading_offsets) <= config.max_heading_offset + self.heading_allowance
                        + self.heading_slack,
                        self.heading_slack <= HEADING_SLACK]

        # DPP allows no product of Parameters: a weighted goal enters as sqrt(w) and sqrt(w) * goal.
        self.goal_root_weight = cp.Parameter(nonneg=True, name="goal_root_weight")
        self.weighted_goal = cp.Parameter(2, name="weighted_goal")
        steering_changes = cp.hstack([steering[0] - self.initial_steering, cp.diff(steering)])
        cost = (config.speed_weight * cp.sum_squares(speed[1:] - self.reference_speed)
                + config.lateral_weight * cp.sum_squares(lateral - self.lateral_reference)
                + config.heading_weight * cp.sum_squares(heading_offsets)
                + config.acceleration_weight * cp.sum_squares(acceleration)
                + config.steering_weight * cp.sum_squares(steering)
                + config.steering_rate_weight * cp.sum_squares(steering_changes)
                + config.trust_weight * cp.sum_squares(positions - self.previous_positions)
                + config.corridor_weight * cp.sum(self.corridor_slack + self.heading_slack)
                + cp.sum_squares(self.goal_root_weight * self.states[steps, :2] - self.weighted_goal))

        # Collision avoidance (dual form) for every horizon step and obstacle slot.
        pair_steps = np.repeat(np.arange(1, steps + 1), config.max_obstacles)
        ego_positions = self._rows(pair_steps)
        body_normals, body_offsets = body_halfspaces(vehicle.length, vehicle.width, vehicle.rear_overhang)
        self.collision = _DualPairs("collision", self.collision_pairs, ego_positions, config.ccp_scale)
        self.collision_rotated_normals = [cp.Parameter((self.collision_pairs, 2), name=f"collision_rotated_{face}")
                                          for face in range(FACES)]
        self.body_dual = cp.Variable((self.collision_pairs, FACES), nonneg=True, name="body_dual")
        rotated_dual = sum(cp.multiply(self.collision_rotated_normals[face], _columns(self.collision.dual, face))
                           for face in range(FACES))
        self.safety_distance = cp.Parameter(self.collision_pairs, name="safety_distance")
        self.headway = cp.Parameter(self.collision_pairs, nonneg=True, name="headway")
        """Seconds of following distance per pair at its step's planned speed (0: not in the ego's path)."""
        pair_speeds = _selection(pair_steps, steps + 1) @ speed
        constraints += self.collision.constraints()
        # Penalty CCP (Lipp and Boyd): the safety distance has a slack at a high price, so a start
        # the restriction cannot leave (an obstacle perception now places on the previous plan)
        # still gives a solution; the planner then checks the plan's true clearance.
        self.safety_slack = cp.Variable(self.collision_pairs, nonneg=True, name="safety_slack")
        constraints += [
            rotated_dual + self.body_dual @ body_normals == 0,
            self.collision.separation_lower_bound() - self.body_dual @ body_offsets
            >= self.safety_distance + cp.multiply(self.headway, pair_speeds) - self.safety_slack,
        ]
        cost += config.safety_slack_weight * cp.sum(self.safety_slack)

        # Occlusion: separation of each scored sight segment from each occluder, by its dual.
        pair_steps = np.repeat(self.occlusion_steps, config.target_samples * config.max_occluders)
        self.occlusion = _DualPairs("occlusion", self.occlusion_pairs, self._rows(pair_steps), config.ccp_scale,
                                    with_position_offsets=True)
        self.sample_margins = cp.Parameter((self.occlusion_pairs, FACES), name="sample_margins")
        """A q_j - b of each pair's target sample: lambda^T (A q_j - b) is the sample end's separation."""
        self.separations = cp.Variable(self.occlusion_pairs, name="separations")
        self.pair_weights = cp.Parameter(self.occlusion_pairs, nonneg=True, name="pair_weights")
        """Each pair's share of the cost, the occlusion weight included."""
        # sum(lambda) >= 1 keeps the bound tight for separated pairs (the optimal dual of a rectangle
        # has unit norm on at most two orthogonal faces) and makes it negative, with a useful
        # gradient, for a sight line that passes through an occluder (where max over lambda would be 0).
        constraints += self.occlusion.constraints() + [cp.sum(self.occlusion.dual, axis=1) >= 1.0]
        constraints += [
            self.separations <= cp.sum(cp.multiply(self.sample_margins, self.occlusion.dual), axis=1),
            self.separations <= self.occlusion.separation_lower_bound(),
        ]
        occlusion_probabilities = cp.square(cp.pos(1.0 - self.separations / config.occlusion_length_scale))
        cost += self.pair_weights @ occlusion_probabilities
        # Lateral gap between each scored sensor position and the target, across the road.
        scored = len(self.occlusion_steps)
        self.target_normals = cp.Parameter((scored, 2), name="target_normals")
        """Lane normal at each scored pose times sqrt(weight) (zero without a target)."""
        self.target_offsets = cp.Parameter(scored, name="target_offsets")
        """The same normals times (target centre - sensor mount offset)."""
        scored_positions = self._rows(self.occlusion_steps)
        cost += cp.sum_squares(cp.sum(cp.multiply(self.target_normals, scored_positions), axis=1)
                               - self.target_offsets)

        self.problem = cp.Problem(cp.Minimize(cost), constraints)
        if not self.problem.is_dcp(dpp=True):  # a programming error, caught by the tests
            offending = [str(term)[:80] for term in [cost, *constraints] if not term.is_dcp(dpp=True)]
            raise AssertionError(f"the CROA subproblem must be DPP; not DPP: {offending}")

    def _rows(self, steps: np.ndarray) -> cp.Expression:
        """Positions at the given horizon indices, (len(steps), 2)."""
        return _selection(steps, self.config.horizon + 1) @ self.states[:, :2]

    # --- data ----------------------------------------------------------------------------------

    def set_linearisation(self, point: Linearisation) -> None:
        """Dynamics, lane terms are set by the caller; this fills the bicycle's Jacobians at `point`."""
        dt, wheelbase = self.config.time_step, self.vehicle.wheelbase
        yaw, speed = point.states[:-1, 2], point.states[:-1, 3]
        steering = point.steering
        cos, sin = np.cos(yaw), np.sin(yaw)
        secant_squared = 1.0 / np.cos(steering) ** 2
        values = {
            "cos_dt": dt * cos, "sin_dt": dt * sin,
            "speed_sin_dt": dt * speed * sin, "speed_cos_dt": dt * speed * cos,
            "x_offset": dt * speed * sin * yaw, "y_offset": -dt * speed * cos * yaw,
            "tan_dt": dt * np.tan(steering) / wheelbase, "speed_secant_dt": dt * speed * secant_squared / wheelbase,
            "yaw_offset": -dt * speed * secant_squared * steering / wheelbase,
        }
        for name, value in values.items():
            self.dynamics[name].value = value

    def set_collision_pairs(self, pairs: PairData, body_yaws: np.ndarray, safety_distances: np.ndarray,
                            headways: np.ndarray) -> None:
        """Collision pairs, the ego's heading at each pair's step (its body's rotation R_bar), each
        pair's safety distance and its time headway (s, on the planned speed)."""
        self.collision.set(pairs)
        cos, sin = np.cos(body_yaws), np.sin(body_yaws)
        for face in range(FACES):
            normal = pairs.normals[:, face]
            # Rows of A R_bar: the obstacle's face normals in the ego's body frame.
            self.collision_rotated_normals[face].value = np.column_stack(
                [normal[:, 0] * cos + normal[:, 1] * sin, -normal[:, 0] * sin + normal[:, 1] * cos])
        self.safety_distance.value = np.where(pairs.active, safety_distances, INACTIVE_MARGIN)
        self.headway.value = np.where(pairs.active, headways, 0.0)

    def set_goal(self, goal: np.ndarray | None, weight: float) -> None:
        """A viewpoint (relative to the origin) for the last planned position, or None for none."""
        root = float(np.sqrt(weight)) if goal is not None else 0.0
        self.goal_root_weight.value = root
        self.weighted_goal.value = root * np.asarray(goal, dtype=np.float64) if goal is not None else np.zeros(2)

    def set_occlusion_pairs(self, pairs: PairData, samples: np.ndarray, sensor_offsets: np.ndarray,
                            weights: np.ndarray) -> None:
        """Occlusion pairs with each pair's target sample (P, 2), sensor offset R_bar m (P, 2) and cost
        weight (the occlusion weight times the pair's share)."""
        self.occlusion.set(pairs)
        self.sample_margins.value = np.einsum("pfi,pi->pf", pairs.normals, samples) - pairs.offsets
        self.occlusion.set_position_offsets(sensor_offsets)
        self.pair_weights.value = np.where(pairs.active, weights, 0.0)

    def set_target_gap(self, normals: np.ndarray, targets: np.ndarray, sensor_offsets: np.ndarray,
                       weights: np.ndarray) -> None:
        """Lane normals (S, 2) at the scored poses, the target centre (S, 2) and the sensor mount's
        offset (S, 2) there, all relative to the origin, and each pose's weight (S,); 0 switches it off."""
        root = np.sqrt(np.asarray(weights, dtype=np.float64))
        self.target_normals.value = root[:, None] * normals
        self.target_offsets.value = root * np.einsum("si,si->s", normals, targets - sensor_offsets)

    def solve(self, time_limit: float | None = None) -> str:
        """Solve with the configured solver, stopped after `time_limit` wall seconds when given
        (status user_limit); returns cvxpy's status. A new solver each time: cvxpy's warm_start only
        reuses Clarabel's allocation, and the answers then depend on what it solved before, so a
        closed-loop run would not repeat (the CCP starts from the previous plan instead)."""
        tolerance = self.config.solver_tolerance
        options = (dict(tol_gap_abs=tolerance, tol_gap_rel=tolerance, tol_feas=tolerance / 10.0)
                   if self.config.solver == "CLARABEL" else dict(eps_abs=tolerance, eps_rel=tolerance))
        if time_limit is not None:
            options["time_limit" if self.config.solver == "CLARABEL" else "time_limit_secs"] = time_limit
        with warnings.catch_warnings():  # 'solution may be inaccurate': the status says so
            warnings.simplefilter("ignore", UserWarning)
            self.problem.solve(solver=self.config.solver, warm_start=False, **options)
        self.compiled = True
        return self.problem.status


class _DualPairs:
    """Dual variables of P separation pairs and the CCP-restricted lower bound of
    lambda^T (A p - b) = a^T p - lambda^T b, with a = A^T lambda and the bilinear a^T p split as
    |k a + p/k|^2 / 4 - |k a - p/k|^2 / 4 whose concave part is linearised at (a_bar, p_bar)."""

    def __init__(self, name: str, count: int, positions: cp.Expression, scale: float,
                 with_position_offsets: bool = False) -> None:
        """positions: the moving ends' positions (P, 2) in the variables; with_position_offsets adds
        a Parameter (P, 2) to them (the sensor's mount, rotated by the previous iterate's heading)."""
        self.count, self.scale = count, scale
        self.position_offsets = cp.Parameter((count, 2), name=f"{name}_position_offsets") \
            if with_position_offsets else None
        self.anchor_times_offsets = cp.Parameter(count, name=f"{name}_anchor_times_offsets") \
            if with_position_offsets else None
        self._variable_positions = positions
        self.positions = positions + self.position_offsets if with_position_offsets else positions
        self.dual = cp.Variable((count, FACES), nonneg=True, name=f"{name}_dual")
        self.normals = [cp.Parameter((count, 2), name=f"{name}_normals_{face}") for face in range(FACES)]
        self.offsets = cp.Parameter((count, FACES), name=f"{name}_offsets")
        self.normals_times_anchor = cp.Parameter((count, FACES), name=f"{name}_normals_times_anchor")
        """A g with g = k a_bar + p_bar / k, per pair: g^T (k a) = k (A g)^T lambda keeps the problem DPP."""
        self.anchor = cp.Parameter((count, 2), name=f"{name}_anchor")
        self.anchor_square = cp.Parameter(count, name=f"{name}_anchor_square")
        self.direction = sum(cp.multiply(self.normals[face], _columns(self.dual, face)) for face in range(FACES))
        """a = A^T lambda, (P, 2)."""

    def constraints(self) -> list:
        return [cp.norm(self.direction, 2, axis=1) <= 1.0]

    def separation_lower_bound(self) -> cp.Expression:
        k = self.scale
        anchor_times_positions = cp.sum(cp.multiply(self.anchor, self._variable_positions), axis=1)
        if self.anchor_times_offsets is not None:
            anchor_times_positions = anchor_times_positions + self.anchor_times_offsets
        linear = 0.5 * (k * cp.sum(cp.multiply(self.normals_times_anchor, self.dual), axis=1)
                        + anchor_times_positions / k)
        concave = 0.25 * cp.sum(cp.square(k * self.direction - self.positions / k), axis=1)
        return (linear - self.anchor_square - concave
                - cp.sum(cp.multiply(self.offsets, self.dual), axis=1))

    def set(self, pairs: PairData) -> None:
        k = self.scale
        for face in range(FACES):
            self.normals[face].value = pairs.normals[:, face]
        self.offsets.value = pairs.offsets
        anchor = k * pairs.dual_start + pairs.position_start / k
        self.anchor.value = anchor
        self.normals_times_anchor.value = np.einsum("pfi,pi->pf", pairs.normals, anchor)
        self.anchor_square.value = 0.25 * np.einsum("pi,pi->p", anchor, anchor)

    def set_position_offsets(self, offsets: np.ndarray) -> None:
        """The Parameter part of the moving ends' positions (after `set`, which fixes the anchor)."""
        self.position_offsets.value = offsets
        self.anchor_times_offsets.value = np.einsum("pi,pi->p", self.anchor.value, offsets)


def _selection(steps: np.ndarray, count: int) -> np.ndarray:
    """The constant (len(steps), count) matrix picking rows `steps` of a (count, ...) expression."""
    selection = np.zeros((len(steps), count))
    selection[np.arange(len(steps)), steps] = 1.0
    return selection


def _columns(matrix: cp.Expression, column: int) -> cp.Expression:
    """Column `column` of a (P, F) expression repeated into (P, 2)."""
    return matrix[:, column:column + 1] @ np.ones((1, 2))
