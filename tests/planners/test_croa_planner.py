"""The CROA planner on small hand-made scenes: the real cvxpy problem and solver, no mocks."""
from __future__ import annotations


import numpy as np
import pytest

from perception.objects import Box3D, ObjectClass, PredictedObject, PredictedPath, TrackedObject, corners_bev
from planners.croa.baselines import GreedyViewpointPlanner, make_planner
from planners.croa.config import CroaConfig, VehicleConfig
from planners.croa.geometry import polygon_distance, rectangle_corners
from planners.croa.planner import BACKING_OUT, CroaPlanner, PlannerOptions
from planners.croa.scene import Corridor, EgoState, Obstacle, PlanningScene

STEPS = CroaConfig().horizon
LANE_WIDTH = 3.5
EGO_LANE_Y = -5.25  # the middle of three lanes driving +x (lanes centred at -8.75, -5.25, -1.75)


def three_lane_corridor() -> Corridor:
    centerline = np.column_stack([np.linspace(-50.0, 400.0, 226), np.full(226, EGO_LANE_Y)])
    return Corridor(centerline, right=-1.5 * LANE_WIDTH, left=1.5 * LANE_WIDTH)


def drive(planner, scene_at, cycles: int, ego: EgoState = EgoState(0.0, EGO_LANE_Y, 0.0, 7.0)):
    """Closed loop: the ego moves to each plan's next state. Returns the plans and the ego states."""
    plans, egos = [], []
    for _ in range(cycles):
        plan = planner.plan(scene_at(ego))
        plans.append(plan)
        egos.append(ego)
        x, y, yaw, speed = plan.states[1]
        ego = EgoState(x, y, yaw, speed, float(plan.controls[0, 1]))
    return plans, egos


def body_corners(state, vehicle: VehicleConfig) -> np.ndarray:
    return corners_bev(vehicle.body_boxes(state[:3]))[0]


def clearance(plan, obstacle: Obstacle, vehicle: VehicleConfig) -> float:
    """Smallest exact gap between the planned body and the obstacle at the same time."""
    return min(polygon_distance(body_corners(state, vehicle),
                                rectangle_corners(obstacle.poses[step, :2], obstacle.length, obstacle.width,
                                                  obstacle.poses[step, 2]))
               for step, state in enumerate(plan.states))


@pytest.fixture(scope="module")
def croa() -> CroaPlanner:
    return make_planner("croa")


@pytest.fixture(scope="module")
def collision_mpc() -> CroaPlanner:
    return make_planner("collision_mpc")


def occluding_truck_scene():
    """A truck stopped in the right lane hides a car stopped behind it."""
    truck = Obstacle.standing(Box3D([28.0, -8.75, 1.75], [10.0, 2.5, 3.5], 0.0), STEPS, 1)
    car = Obstacle.standing(Box3D([38.0, -8.75, 0.75], [4.5, 1.8, 1.5], 0.0), STEPS, 2)
    corridor = three_lane_corridor()
    return lambda ego: PlanningScene(ego, corridor, [truck, car], car)


def test_problem_is_compiled_once_and_reused(croa):
    scene = occluding_truck_scene()(EgoState(0.0, EGO_LANE_Y, 0.0, 7.0))
    croa.reset()
    croa.plan(scene)
    program = croa.problem.problem._cache.param_prog
    croa.plan(scene)
    assert program is not None and croa.problem.problem._cache.param_prog is program
    assert croa.problem.problem.is_dcp(dpp=True)


def test_a_cycle_repeats_exactly_whatever_was_solved_before():
    """Episodes must not depend on the ones planned before them (worker order in evaluate-croa)."""
    planner = make_planner("croa")  # its very first solve, then the same data after others
    scene_at = occluding_truck_scene()
    scene = scene_at(EgoState(2.0, EGO_LANE_Y + 0.3, 0.05, 6.0))
    first = planner.plan(scene)
    drive(planner, scene_at, 3)
    planner.reset()
    again = planner.plan(scene)
    np.testing.assert_array_equal(again.states, first.states)
    assert again.occlusion_ratio == first.occlusion_ratio


def test_croa_moves_for_a_better_view_than_the_collision_mpc(croa, collision_mpc):
    croa.reset()
    collision_mpc.reset()
    scene_at = occluding_truck_scene()
    croa_plans, croa_egos = drive(croa, scene_at, 20)
    mpc_plans, mpc_egos = drive(collision_mpc, scene_at, 20)
    assert not any(plan.fallback for plan in croa_plans + mpc_plans)
    croa_occlusion = np.mean([plan.occlusion_ratio_now for plan in croa_plans])
    mpc_occlusion = np.mean([plan.occlusion_ratio_now for plan in mpc_plans])
    assert croa_occlusion < mpc_occlusion
    # It moves away from the truck's side of the road (left), the MPC keeps its lane.
    assert croa_egos[-1].y > EGO_LANE_Y + 1.0
    assert abs(mpc_egos[-1].y - EGO_LANE_Y) < 0.2
    assert croa_plans[-1].occlusion_ratio <= croa_plans[0].occlusion_ratio


def test_pull_towards_the_target_fades_beyond_its_range(croa):
    """target_lateral_weight counts in full up to target_lateral_range and falls with the squared range beyond."""
    corridor = three_lane_corridor()
    weights = {}
    for ahead in (12.0, 60.0):
        car = Obstacle.standing(Box3D([ahead, -8.75, 0.75], [4.5, 1.8, 1.5], 0.0), STEPS, 2)
        croa.reset()
        croa.plan(PlanningScene(EgoState(0.0, EGO_LANE_Y, 0.0, 7.0), corridor, [car], car))
        # The lane normals are unit vectors scaled by sqrt(weight) per scored pose.
        weights[ahead] = np.sum(croa.problem.target_normals.value ** 2, axis=1)
    full = croa.config.target_lateral_weight
    assert weights[12.0] == pytest.approx(np.full(2, full))
    assert np.all(weights[60.0] < 0.15 * full) and weights[60.0][0] < weights[60.0][1]


def test_stopped_truck_in_the_lane_keeps_the_safety_distance(collision_mpc):
    collision_mpc.reset()
    truck = Obstacle.standing(Box3D([22.0, EGO_LANE_Y, 1.75], [10.0, 2.5, 3.5], 0.0), STEPS, 7)
    corridor = three_lane_corridor()
    plans, egos = drive(collision_mpc, lambda ego: PlanningScene(ego, corridor, [truck]), 30)
    vehicle = collision_mpc.vehicle
    for plan in plans:
        assert not plan.fallback
        assert clearance(plan, truck, vehicle) >= collision_mpc.config.safety_distance - 0.1
        _, lateral, _, _ = corridor.project(plan.states[:, :2])
        assert np.all(lateral >= corridor.right + vehicle.width / 2)
        assert np.all(lateral <= corridor.left - vehicle.width / 2)
    assert 7 in plans[0].obstacle_ids


def test_predicted_motion_keeps_clear_of_a_vehicle_cutting_in(croa):
    """A van in the left lane moves into the ego's lane ahead; planning with its predicted path keeps
    the safety distance from where it will be, planning with it frozen does not."""
    times = np.arange(STEPS + 1) * 0.1
    van_poses = np.column_stack([14.0 + 3.0 * times, EGO_LANE_Y + 3.5 - 3.5 * np.minimum(times / 1.2, 1.0),
                                 np.zeros_like(times)])
    van = Obstacle(5.2, 2.0, 2.2, van_poses, 3)
    scene = PlanningScene(EgoState(0.0, EGO_LANE_Y, 0.0, 9.0), three_lane_corridor(), [van])
    static = CroaPlanner(options=PlannerOptions(occlusion=True, predicted_motion=False))
    croa.reset()
    moving_plan, static_plan = croa.plan(scene), static.plan(scene)
    assert clearance(moving_plan, van, croa.vehicle) >= croa.config.safety_distance - 0.1
    assert clearance(static_plan, van, croa.vehicle) < croa.config.safety_distance - 0.1


def stalled_askew_scene(extra: list[Obstacle]):
    """The main job's stall (2026-12-04): stopped in the kerb lane heading 0.3 rad towards the kerb,
    a parked car in the parking lane ahead within reach of the body's corner, a target beyond it."""
    start = EgoState(0.0, -8.17, -0.3, 0.0)
    parked = Obstacle.standing(Box3D([6.0, -11.85, 0.75], [4.5, 1.8, 1.5], 0.0), STEPS, 11)
    target = Obstacle.standing(Box3D([30.0, -12.0, 0.9], [0.6, 0.6, 1.8], 0.0), STEPS, 12)
    corridor = three_lane_corridor()
    return start, parked, lambda ego: PlanningScene(ego, corridor, [parked, *extra], target)


def test_a_robot_stalled_askew_facing_a_parked_car_backs_out_and_drives_round_it(croa):
    """Forwards it can only creep at the car (too close to turn past it within the horizon): after
    back_out_after cycles it reverses, straightening, then drives on past the car."""
    croa.reset()
    start, parked, scene_at = stalled_askew_scene([])
    plans, egos = drive(croa, scene_at, 70, start)
    backing = [index for index, plan in enumerate(plans) if plan.backing_out]
    assert backing and backing[0] >= croa.config.back_out_after, backing
    assert backing == list(range(backing[0], backing[-1] + 1))  # one manoeuvre
    assert all(plan.linear_velocity <= 0.0 and plan.reason.startswith(BACKING_OUT) for plan in plans if plan.backing_out)
    assert not any(plan.fallback for plan in plans), [plan.reason for plan in plans if plan.fallback]
    assert min(clearance(plan, parked, croa.vehicle) for plan in plans) > 0.0
    reversed_to = egos[backing[-1] + 1]
    assert abs(reversed_to.yaw) < 0.1  # straightened
    assert np.hypot(reversed_to.x - egos[backing[0]].x, reversed_to.y - egos[backing[0]].y) \
        <= croa.config.back_out_distance + 0.25  # braking from 1 m/s at 2.5 m/s^2 in steps of 0.1 s
    assert plans[-1].linear_velocity > 2.0 and egos[-1].x > start.x


def test_a_stalled_robot_does_not_back_into_a_car_behind(croa):
    croa.reset()
    behind = Obstacle.standing(Box3D([-4.6, -8.0, 0.75], [4.5, 1.8, 1.5], 0.0), STEPS, 13)
    start, _, scene_at = stalled_askew_scene([behind])
    plans, egos = drive(croa, scene_at, 30, start)
    assert not any(plan.backing_out for plan in plans)
    assert min(clearance(plan, behind, croa.vehicle) for plan in plans) > 0.0
    assert any("cannot back out: within 0.6 m of obstacle 13" in plan.reason for plan in plans), \
        [plan.reason for plan in plans]


def test_a_robot_queued_behind_a_stopped_car_waits(croa):
    """Aligned with its lane behind a standing car, every lane ahead blocked: it stops and waits
    (backing out would not help)."""
    croa.reset()
    jam = [Obstacle.standing(Box3D([12.0, EGO_LANE_Y + lane * LANE_WIDTH, 0.75], [4.5, 1.8, 1.5], 0.0), STEPS, 20 + lane)
           for lane in (-1, 0, 1)]
    corridor = three_lane_corridor()
    plans, egos = drive(croa, lambda ego: PlanningScene(ego, corridor, jam), 40, EgoState(0.0, EGO_LANE_Y, 0.0, 3.0))
    assert egos[-1].speed < 0.2  # stopped behind the jam
    assert not any(plan.backing_out or plan.fallback for plan in plans)
    assert min(clearance(plan, car, croa.vehicle) for plan in plans for car in jam) > 0.0


def test_from_prediction_follows_the_most_likely_path():
    track = TrackedObject(4, ObjectClass.CAR, 0.9, Box3D([10.0, 0.0, 0.8], [4.5, 1.8, 1.6], 0.0), np.array([5.0, 0.0]))
    likely = PredictedPath(np.column_stack([10.0 + 2.5 * np.arange(1, 7), np.zeros(6)]), np.zeros(6), 0.5, 0.7)
    unlikely = PredictedPath(np.column_stack([10.0 + np.arange(1, 7), np.arange(1, 7)]), np.ones(6), 0.5, 0.3)
    obstacle = Obstacle.from_prediction(PredictedObject(track, [likely, unlikely]), 20, 0.1)
    assert obstacle.poses.shape == (21, 3)
    np.testing.assert_allclose(obstacle.poses[:, 0], 10.0 + 5.0 * np.arange(21) * 0.1)
    np.testing.assert_allclose(obstacle.poses[:, 1:], 0.0)
    assert obstacle.object_id == 4 and obstacle.length == 4.5


def test_boxed_in_ego_falls_back_to_braking_with_a_reason(collision_mpc):
    collision_mpc.reset()
    corridor = three_lane_corridor()
    wall = [Obstacle.standing(Box3D([6.0, EGO_LANE_Y + offset, 1.5], [2.0, 3.0, 3.0], 0.0), STEPS, 20 + index)
            for index, offset in enumerate((-3.5, 0.0, 3.5))]
    ego = EgoState(0.0, EGO_LANE_Y, 0.0, 12.0)
    plan = collision_mpc.plan(PlanningScene(ego, corridor, wall))
    assert plan.fallback
    assert plan.reason.startswith(("solver: ", "no collision-free plan"))
    assert plan.linear_velocity < ego.speed
    assert np.all(np.diff(plan.states[:, 3]) <= 0.0)


def test_greedy_viewpoint_picks_a_clear_reachable_viewpoint():
    planner = GreedyViewpointPlanner()
    scene = occluding_truck_scene()(EgoState(0.0, EGO_LANE_Y, 0.0, 7.0))
    viewpoint = planner.choose_viewpoint(scene)
    assert viewpoint is not None
    _, lateral, _, _ = scene.corridor.project(viewpoint[None])
    assert lateral[0] > 0.0  # left of the ego's lane, away from the truck
    plan = planner.plan(scene)
    assert not plan.fallback and np.allclose(planner.viewpoint, viewpoint)


@pytest.mark.parametrize("changes, message", [
    (dict(solver="ECOS"), "solver"),
    (dict(occlusion_poses=30), "occlusion_poses"),
    (dict(horizon=1), "horizon"),
])
def test_bad_config_is_refused_with_the_field_name(changes, message):
    with pytest.raises(ValueError, match=message):
        CroaConfig(**changes)


def test_corridor_rejects_a_reference_outside_it():
    with pytest.raises(ValueError, match="reference_offset"):
        Corridor(np.array([[0.0, 0.0], [10.0, 0.0]]), right=-1.0, left=1.0, reference_offset=2.0)
