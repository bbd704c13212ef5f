"""Solver failures injected at the solver boundary of the CROA planner and the GSRMR uplink (APO),
over real rclpy with the real nodes and solvers: each injected kind, several cycles in a row, gives
the safe fallback in the same cycle with the reason named, and the nodes serve normally again once
the solver is healthy.

CROA: a test-only subclass of the real CroaProblem (the cvxpy problem and Clarabel) raises
cvxpy.SolverError, answers infeasible / infeasible_inaccurate / unbounded / user_limit, leaves a NaN
solution or solves past croa.time_budget. The planner brakes along the lane: PlannerStatus fallback
with the reason, a braking plan and braking commands.

APO: the policy's GSCLO method is a wrapper of the real solve_apo that raises, returns a fractional
switching vector (not converged), NaN energies or runs past policy.time_budget; or the channel is a
subclass of the real Channel whose gain or least power is NaN. The uplink sends the frame's image at
the channel's p_max: UplinkDecision fallback with the reason, upload, the image on ~/output/uplink.
"""
from __future__ import annotations

import dataclasses
import math
import time

import cvxpy as cp
import numpy as np
import pytest

import test_gsrmr_nodes
from mixed_reality.uplink.apo import solve_apo
from mixed_reality.uplink.channel import Channel
from mixed_reality.uplink.policy import RecedingWindowPolicy, UplinkPolicyConfig, solution_fault
from mixed_reality.uplink.problem import evaluate, random_instance
from perception.objects import Box3D, ObjectClass
from planners.croa.config import CroaConfig
from planners.croa.planner import CroaPlanner
from planners.croa.problem import CroaProblem
from planners.croa.scene import Corridor, EgoState, Obstacle, PlanningScene
from robot_nodes.conversions import seconds_to_stamp
from ros_helpers import spinning, wait_until
from test_croa_planner_node import EGO_SPEED, EGO_Y, TRUCK, Harness, planner_node, predicted
from test_gsrmr_nodes import RobotHarness, settled, true_frame, uplink_node

scene_file = test_gsrmr_nodes.scene_file

CYCLES_PER_FAULT = 5
"""Planning cycles (camera frames) in a row with each fault injected."""
PLANNER_BUDGET_S = 1.0
"""croa.time_budget in these tests; a fallback cycle must be answered within it."""
UPLINK_BUDGET_S = 0.2
"""policy.time_budget in these tests."""
CAMERA_PERIOD_S = 0.1
"""The simulated camera's 10 Hz: the uplink's cycle."""


class InjectedCroaProblem(CroaProblem):
    """The real CROA problem and solver, failing as `fault` says (None: healthy)."""

    fault: str | None = None

    def solve(self, time_limit: float | None = None) -> str:
        if self.fault == "solver error":
            raise cp.SolverError("injected: Clarabel stopped with a numerical error")
        if self.fault in ("infeasible", "infeasible_inaccurate", "unbounded", "user_limit"):
            return self.fault
        if self.fault == "solve past the budget":
            time.sleep(1.2 * PLANNER_BUDGET_S)
        status = super().solve(time_limit)
        if self.fault == "NaN solution":
            self.states.save_value(np.full(self.states.shape, np.nan))
        return status


PLANNER_FAULTS = {
    "solver error": "SolverError: injected",
    "infeasible": "solver: infeasible",
    "infeasible_inaccurate": "solver: infeasible_inaccurate",
    "unbounded": "solver: unbounded",
    "user_limit": "solver: user_limit",
    "NaN solution": "numerical trouble: optimal with a non-finite solution",
    "solve past the budget": f"over the time budget ({PLANNER_BUDGET_S:g} s)",
}
"""Injected fault: what the status's reason must contain."""


def test_every_injected_croa_solver_failure_brakes_in_its_cycle_and_says_why(context):
    node = planner_node(context, **{"croa.time_budget": PLANNER_BUDGET_S})
    problem = InjectedCroaProblem(node.config.croa, node.config.vehicle)
    node.planner.problem = problem
    harness = Harness(context, node)
    truck = [predicted(7, ObjectClass.TRUCK, harness.ego_x + 25.0, EGO_Y, TRUCK)]

    def answered() -> bool:
        """The newest status is the current cycle's (stamped at the clock's time)."""
        return bool(harness.statuses) and stamp_seconds(harness.statuses[-1]) >= harness.now - 1e-6

    def cycle():
        """One planning cycle on the truck: (its status, wall seconds from the clock tick to it)."""
        harness.publish_predictions(truck)
        started = time.monotonic()
        harness.tick()
        assert wait_until(answered, timeout_s=10.0)
        return harness.statuses[-1], time.monotonic() - started

    with spinning(context, node, harness):
        assert wait_until(lambda: harness.connected(node))
        assert harness.run_until(lambda: not harness.statuses[-1].fallback, truck)  # healthy, compiled
        for fault, reason in PLANNER_FAULTS.items():
            problem.fault = fault
            commands = len(harness.commands)
            for _ in range(CYCLES_PER_FAULT):
                status, latency = cycle()
                assert status.fallback and reason in status.reason, (fault, status.reason)
                assert status.obstacle_count == 1 and status.linear_velocity < EGO_SPEED  # a braking plan
                bound = PLANNER_BUDGET_S * (2.0 if fault == "solve past the budget" else 1.0)
                assert latency < bound, (fault, latency)
            cycle()  # the commands that follow the last cycle's plan
            assert wait_until(lambda: len(harness.commands) > commands + CYCLES_PER_FAULT)
            assert all(0.0 <= command.linear.x < EGO_SPEED for command in harness.commands[commands + 1:]), fault
        problem.fault = None
        assert harness.run_until(lambda: not harness.statuses[-1].fallback, truck, limit_s=2.0)
    assert node.counters.fallbacks >= len(PLANNER_FAULTS) * (CYCLES_PER_FAULT + 1)
    assert node.counters.planner_errors == 0  # every failure was answered by the planner's own fallback


def test_a_real_clarabel_solve_cut_by_the_time_budget_gives_the_braking_plan():
    config = CroaConfig(horizon=12)
    planner = CroaPlanner(config)
    centerline = np.column_stack([np.linspace(-20.0, 120.0, 71), np.zeros(71)])
    truck = Obstacle.standing(Box3D((20.0, -3.5, 1.75), TRUCK, 0.0), config.horizon, 7)
    scene = PlanningScene(EgoState(0.0, 0.0, 0.0, EGO_SPEED), Corridor(centerline, -1.75, 5.25), [truck], None)
    assert not planner.plan(scene).fallback  # compiled, healthy
    config.time_budget = 0.01  # less than one solve takes
    plan = planner.plan(scene)
    assert plan.fallback and "over the time budget (0.01 s)" in plan.reason
    assert plan.linear_velocity < EGO_SPEED and plan.solve_time < 0.5


def stamp_seconds(status) -> float:
    return status.header.stamp.sec + 1e-9 * status.header.stamp.nanosec


class NanGainChannel(Channel):
    """The real channel whose gain estimate comes out NaN (a radio reporting garbage)."""

    def gain(self, distance, rng):
        return np.full(np.shape(distance), np.nan)


class NanPowerChannel(Channel):
    """The real channel whose least transmit power comes out NaN (an overflow in the link budget)."""

    def min_power(self, bits, latency, gain):
        return np.full(np.shape(np.broadcast_arrays(bits, gain)[0]), np.nan)


def raising_apo(instance, rng):
    raise FloatingPointError("injected: overflow in the penalty iterations")


def fractional_apo(instance, rng):
    """APO stopped before its penalty made x binary: the relaxed vector."""
    return dataclasses.replace(solve_apo(instance), upload=np.full(instance.frames, 0.5))


def nan_energy_apo(instance, rng):
    solution = solve_apo(instance)
    return dataclasses.replace(solution, energy=np.full(instance.frames, np.nan))


def slow_apo(instance, rng):
    time.sleep(1.5 * UPLINK_BUDGET_S)
    return solve_apo(instance)


UPLINK_FAULTS = {
    "solver error": (raising_apo, Channel, "solver error: FloatingPointError: injected"),
    "not converged": (fractional_apo, Channel, "not converged: the switching vector is not binary"),
    "NaN energies in the solution": (nan_energy_apo, Channel, "numerical trouble: non-finite power or energy"),
    "solve past the budget": (slow_apo, Channel, f"s > {UPLINK_BUDGET_S:g} s"),
    "NaN channel gain": (None, NanGainChannel, "window refused: gains: must be > 0"),
    "NaN transmit energies": (None, NanPowerChannel, "non-finite transmit energies"),
}
"""Injected fault: (the GSCLO method, None: APO; the channel class; what the reason must contain)."""


def test_every_injected_uplink_solver_failure_uploads_the_image_at_full_power_and_says_why(context, scene_file):
    node = uplink_node(context, scene_file, **{"policy.window": 4, "policy.time_budget": UPLINK_BUDGET_S})
    harness = RobotHarness(context)
    frame = true_frame(scene_file, vehicle=True)
    p_max = node.config.channel.max_power
    stamp = [1.0]

    def decide(count: int) -> list:
        """Send `count` frames one after another; their decisions, each checked to be its frame's."""
        first, stamps = len(harness.decisions), []
        for _ in range(count):
            decided = node.counters.decided
            stamp[0] += CAMERA_PERIOD_S
            stamps.append(seconds_to_stamp(stamp[0]))
            harness.publish_frame(stamp[0], frame)
            assert wait_until(lambda: node.counters.decided > decided)
        assert wait_until(lambda: len(harness.decisions) == first + count)
        assert [decision.header.stamp for decision in harness.decisions[first:]] == stamps
        return harness.decisions[first:]

    def use(solve, channel_class) -> None:
        node.channel = channel_class(node.config.channel)
        node.policy = RecedingWindowPolicy(node.config.policy, node.channel, solve)

    with spinning(context, node, harness):
        assert wait_until(lambda: harness.image.get_subscription_count() > 0)
        harness.publish_mount()
        assert wait_until(lambda: node.frame_poses.has_mount("base_link", "camera_optical"))
        harness.publish_frame(stamp[0], frame)  # may come before its camera info: skipped
        assert wait_until(lambda: node.counters.received == 1 and settled(node))
        assert wait_until(lambda: len(harness.decisions) == node.counters.decided)
        healthy = decide(3)
        assert not any(decision.fallback for decision in healthy)
        for fault, (solve, channel_class, reason) in UPLINK_FAULTS.items():
            use(solve, channel_class)
            uploads = len(harness.uploads)
            decisions = decide(CYCLES_PER_FAULT)
            for decision in decisions:
                assert decision.fallback and reason in decision.reason, (fault, decision.reason)
                assert decision.upload and decision.transmit_power == pytest.approx(p_max)
                assert decision.payload_bits == decision.image_bits and decision.energy > 0.0
            # The whole decision (JPEG, render prediction, solve) within the camera's period; the
            # median, as a busy machine delays a frame now and then.
            bound = CAMERA_PERIOD_S + (1.5 * UPLINK_BUDGET_S if fault == "solve past the budget" else 0.0)
            times = [decision.decision_time for decision in decisions]
            assert np.median(times) < bound, (fault, times)
            assert wait_until(lambda: len(harness.uploads) == uploads + CYCLES_PER_FAULT), fault
        use(None, Channel)
        assert not any(decision.fallback for decision in decide(3))
    assert node.counters.fallbacks == len(UPLINK_FAULTS) * CYCLES_PER_FAULT and node.counters.failed_frames == 0


def test_a_choice_that_misses_a_reachable_quality_threshold_is_a_fault_and_apo_never_makes_one():
    rng = np.random.default_rng(3)
    instances = [random_instance(int(rng.integers(2, 60)), rng) for _ in range(300)]
    assert not any(solution_fault(instance, solve_apo(instance)) for instance in instances)
    needing_uploads = [instance for instance in instances if instance.has_feasible_solution
                       and instance.required_gain > 0.0 and instance.candidates.any()]
    assert needing_uploads
    for instance in needing_uploads:
        nothing = evaluate(instance, np.zeros(instance.frames, dtype=bool), method="apo", iterations=40)
        assert "misses the quality threshold after 40 iterations" in solution_fault(instance, nothing)


def test_the_policy_answers_a_nan_gain_with_the_image_at_p_max_and_keeps_its_forecast_clean():
    channel = Channel()
    policy = RecedingWindowPolicy(UplinkPolicyConfig(window=4), channel)
    healthy = policy.decide(30e3, 800.0, 1e-11, 38.0, 28.0)
    broken = policy.decide(30e3, 800.0, math.nan, 38.0, 28.0)
    assert not healthy.fallback and broken.fallback and broken.upload
    assert broken.power == channel.config.max_power and broken.latency_violation
    assert broken.energy == pytest.approx(channel.config.max_power * policy.config.latency)
    assert not policy.decide(30e3, 800.0, 1e-11, 38.0, 28.0).fallback  # the NaN frame is not in the window
    assert policy.frames == 3
