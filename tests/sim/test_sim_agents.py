"""Traffic, pedestrians and lane keeping over tens of seconds of simulated time."""
import math

import numpy as np
import pytest

from sim.controller import LaneKeepingConfig, LaneKeepingController
from sim.ego import EgoVehicle
from sim.geometry import BoxSet, rectangles_overlap
from sim.scenario import EgoConfig
from sim.world import World
from sim_fixtures import SCENARIO_NAMES, scenario


def _overlapping_pairs(objects) -> list[tuple[int, int]]:
    boxes = BoxSet(np.array([obj.box.center for obj in objects]), np.array([obj.box.size for obj in objects]),
                   np.array([obj.box.yaw for obj in objects]))
    first, second = np.triu_indices(len(objects), 1)
    reach = 0.5 * np.linalg.norm(boxes.sizes[:, :2], axis=1)
    close = np.linalg.norm(boxes.centers[first, :2] - boxes.centers[second, :2], axis=1) < reach[first] + reach[second]
    first, second = first[close], second[close]
    corners = boxes.corners_bev()
    overlap = rectangles_overlap(corners[first], corners[second])
    return [(objects[a].object_id, objects[b].object_id) for a, b in zip(first[overlap], second[overlap])]


@pytest.mark.parametrize("name", SCENARIO_NAMES)
def test_agents_never_overlap_and_stay_populated(name):
    world = World(scenario(name), seed=0)
    controller = LaneKeepingController(world.lane_centerlines)
    lane_changes = 0
    for _ in range(300):  # 30 s
        lanes_before = world._traffic.lanes.copy()
        world.step(0.1, *controller.command(world.ego_pose, world.ego_velocity[0], 9.0))
        lane_changes += np.count_nonzero(world._traffic.active & (world._traffic.lanes != lanes_before))
        truth = world.ground_truth()
        assert _overlapping_pairs(truth) == [], world.time
    moving = [obj for obj in truth if not obj.is_static]
    assert len({obj.object_id for obj in truth}) == len(truth)
    # A vehicle or pedestrian whose entry spot is taken waits a step or two before it reappears.
    assert world.scenario.traffic.count - 2 <= sum(obj.label.name != "PEDESTRIAN" for obj in moving) <= world.scenario.traffic.count
    assert world.scenario.pedestrians.count - 2 <= sum(obj.label.name == "PEDESTRIAN" for obj in moving) <= world.scenario.pedestrians.count
    speeds = [np.hypot(*obj.velocity) for obj in moving if obj.label.name != "PEDESTRIAN"]
    assert np.mean(speeds) > 3.0
    assert lane_changes > 0


def test_pedestrians_cross_the_road():
    world = World(scenario("parked_trucks"), seed=0)
    sides: dict[int, set[int]] = {}
    for _ in range(400):
        world.step(0.1, 0.0, 0.0)  # the ego stops
        for obj in world.ground_truth():
            if obj.label.name == "PEDESTRIAN":
                _, lateral = world.road.to_frenet(*obj.box.center[:2])
                if abs(lateral) > world.road.half_width:
                    sides.setdefault(obj.object_id, set()).add(int(np.sign(lateral)))
                else:
                    assert obj.box.center[2] == pytest.approx(obj.box.size[2] / 2)  # on the road surface
    assert sum(len(seen) == 2 for seen in sides.values()) >= 3


def test_lane_keeping_stays_in_lane_on_a_curved_road():
    world = World(scenario("parked_trucks"), seed=0)  # bends left
    assert world.road.curvature > 0
    controller = LaneKeepingController(world.lane_centerlines, LaneKeepingConfig())
    lane = world.scenario.ego.lane
    for _ in range(300):
        world.step(0.1, *controller.command(world.ego_pose, world.ego_velocity[0], 10.0))
        _, lateral = world.road.to_frenet(*world.ego_pose[:2])
        assert abs(lateral - world.road.lane_offsets[lane]) < 0.3, world.time
    assert controller.lane_index == lane
    assert world.road.to_frenet(*world.ego_pose[:2])[0] > world.scenario.ego.start_s + 250


def test_lane_keeping_recovers_from_an_offset_start():
    world = World(scenario("urban_default"), seed=0)
    centerlines = world.lane_centerlines
    ego = EgoVehicle(EgoConfig(), 30.0, centerlines[1][0, 1] + 1.2, 0.08, 8.0)
    controller = LaneKeepingController(centerlines)
    for _ in range(400):  # 20 s at 20 Hz
        ego.step(0.05, *controller.command((ego.x, ego.y, ego.yaw), ego.speed, 8.0))
    assert controller.lane_index == 1
    assert ego.y == pytest.approx(centerlines[1][0, 1], abs=0.05)
    assert abs(math.remainder(ego.yaw, 2 * math.pi)) < 0.01


def test_lane_keeping_follows_a_lane_against_increasing_s():
    world = World(scenario("urban_default"), seed=0)
    centerlines = world.lane_centerlines
    ego = EgoVehicle(EgoConfig(), 500.0, centerlines[4][0, 1] - 0.5, math.pi, 8.0)
    controller = LaneKeepingController(centerlines)
    for _ in range(200):
        ego.step(0.05, *controller.command((ego.x, ego.y, ego.yaw), ego.speed, 8.0))
    assert controller.lane_index == 4 and world.lane_directions[4] == -1
    assert ego.x < 500.0 - 70.0 and ego.y == pytest.approx(centerlines[4][0, 1], abs=0.1)


def test_traffic_stays_around_the_ego_for_minutes():
    world = World(scenario("urban_default"), seed=0)
    controller = LaneKeepingController(world.lane_centerlines)
    for _ in range(1100):  # 110 s, over 1 km
        world.step(0.1, *controller.command(world.ego_pose, world.ego_velocity[0], 10.0))
    ego_s = world.road.to_frenet(*world.ego_pose[:2])[0]
    moving = [obj for obj in world.ground_truth() if not obj.is_static]
    along = np.array([world.road.to_frenet(*obj.box.center[:2])[0] for obj in moving]) - ego_s
    assert len(moving) >= world.scenario.traffic.count + world.scenario.pedestrians.count - 2
    assert np.all((along > -world.scenario.spawn.behind - 1) & (along < world.scenario.spawn.ahead + 1))
    assert np.count_nonzero(np.abs(along) < 60) >= 5


def test_ground_truth_ids_are_stable_and_velocities_match_motion():
    world = World(scenario("urban_default"), seed=4)
    for _ in range(20):
        world.step(0.1, 8.0, 0.0)
    before = {obj.object_id: obj for obj in world.ground_truth()}
    world.step(0.1, 8.0, 0.0)
    after = {obj.object_id: obj for obj in world.ground_truth()}
    kept = [object_id for object_id in before if object_id in after]
    assert len(kept) >= len(before) - 2  # only agents leaving the window are replaced
    for object_id in kept:
        old, new = before[object_id], after[object_id]
        assert new.label == old.label and new.is_static == old.is_static
        np.testing.assert_allclose(new.box.size, old.box.size)
        moved = (new.box.center[:2] - old.box.center[:2]) / 0.1
        np.testing.assert_allclose(moved, (old.velocity + new.velocity) / 2.0, atol=0.3)
        if new.is_static:
            assert np.all(new.velocity == 0.0)
    labels = {obj.label.name for obj in after.values()}
    assert {"CAR", "PEDESTRIAN"} <= labels


def test_lane_centerlines_and_directions():
    world = World(scenario("urban_default"), seed=0)
    lines, directions = world.lane_centerlines, world.lane_directions
    assert len(lines) == 6 and directions == [1, 1, 1, -1, -1, -1]
    for line, expected_y in zip(lines, [-8.75, -5.25, -1.75, 1.75, 5.25, 8.75]):
        assert line.shape[1] == 2 and np.all(np.diff(line[:, 0]) > 0)
        np.testing.assert_allclose(line[:, 1], expected_y)
