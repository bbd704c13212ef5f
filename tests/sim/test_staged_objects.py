"""Staged objects: placed where the scenario says, in ground truth, ray casting and collisions,
clearing the parked vehicles in their way, standing obstacles for traffic, and validated."""
from dataclasses import replace

import numpy as np
import pytest

from perception.objects import ObjectClass
from sim.geometry import BoxSet, rectangles_overlap
from sim.layout import STAGED_CLEARANCE
from sim.materials import Material
from sim.object_models import OBJECT_MODELS
from sim.scenario import (EgoConfig, ParkedConfig, PedestrianConfig, Scenario, ScenarioError,
                          StagedObject, TrafficConfig, load_scenario)
from sim.world import World

TRUCK = StagedObject(label="truck", ahead=20.0, d=-11.8, size=[9.0, 2.5, 3.5])
TARGET = StagedObject(label="car", ahead=30.0, d=-12.1, target=True)
WALKER = StagedObject(label="pedestrian", ahead=12.0, d=-14.5, yaw=np.pi / 2)
STOPPED_VAN = StagedObject(label="van", ahead=45.0, d=-1.75, yaw=0.1)


def _scenario(staged, **overrides) -> Scenario:
    settings = dict(name="staged_test", road=replace(Scenario().road, length=400.0), parked=ParkedConfig(fill=0.6),
                    traffic=TrafficConfig(count=8), pedestrians=PedestrianConfig(count=3),
                    ego=EgoConfig(lane=1, start_s=60.0, speed=7.0), staged=list(staged))
    settings.update(overrides)
    return Scenario(**settings)


@pytest.fixture(scope="module")
def world() -> World:
    return World(_scenario([TRUCK, TARGET, WALKER, STOPPED_VAN]), seed=0)


def _truth(world):
    return {obj.object_id: obj for obj in world.ground_truth()}


def test_staged_objects_stand_where_the_scenario_says(world):
    truth = _truth(world)
    assert len(world.staged_ids) == 4
    assert world.target_id == world.staged_ids[1]
    road = world.road
    for object_id, staged in zip(world.staged_ids, world.scenario.staged):
        obj = truth[object_id]
        label = ObjectClass[staged.label.upper()]
        assert obj.label == label and obj.is_static and np.all(obj.velocity == 0.0)
        model = OBJECT_MODELS[label]
        expected_size = staged.size or np.add(model.size_min, model.size_max) / 2.0
        np.testing.assert_allclose(obj.box.size, expected_size)
        s = world.scenario.ego.start_s + staged.ahead
        np.testing.assert_allclose(obj.box.center[:2], road.to_map(s, staged.d), atol=1e-9)
        ground = road.config.kerb_height if abs(staged.d) > road.half_width else 0.0
        assert obj.box.center[2] == pytest.approx(ground + obj.box.size[2] / 2.0)
        assert obj.box.yaw == pytest.approx(float(road.heading(s)) + staged.yaw)


def test_ids_follow_the_parked_ones_and_precede_the_moving_agents(world):
    truth = _truth(world)
    parked = [obj.object_id for obj in truth.values() if obj.is_static and obj.object_id not in world.staged_ids]
    moving = [obj.object_id for obj in truth.values() if not obj.is_static]
    assert parked and moving
    assert world.staged_ids == list(range(max(parked) + 1, max(parked) + 5))
    assert min(moving) > max(world.staged_ids)
    assert World(_scenario([TRUCK]), seed=0).target_id is None


def test_lidar_hits_staged_objects_and_pedestrians_use_their_mesh(world):
    scan = world.lidar_scan()
    truck, target, walker, van = world.staged_ids
    assert scan.object_point_counts[truck] > 100
    assert scan.object_point_counts[walker] > 10
    assert scan.object_point_counts[van] > 50
    assert all(_truth(world)[i].num_lidar_points == scan.object_point_counts[i] for i in world.staged_ids)
    # Every return on a staged object lies in its box (grown by the range noise).
    lidar_to_map = np.eye(4)
    x, y, yaw = world.ego_pose
    lidar_to_map[:2, :2] = [[np.cos(yaw), -np.sin(yaw)], [np.sin(yaw), np.cos(yaw)]]
    lidar_to_map[:3, 3] = world.lidar_origin()
    for object_id in (truck, walker, van):
        box = world.object_box(object_id)
        points = scan.points[scan.point_object_ids == object_id, :3] @ lidar_to_map[:3, :3].T + lidar_to_map[:3, 3]
        assert np.all(BoxSet(box.center, box.size + 0.2, [box.yaw]).contains(points)), object_id
    soup = world._layout.triangles(world.road, 40.0)
    walker_triangles = soup.object_ids == walker
    assert np.count_nonzero(walker_triangles) == len(OBJECT_MODELS[ObjectClass.PEDESTRIAN].mesh.triangles)
    assert np.all(soup.materials[walker_triangles] == Material.PEDESTRIAN)
    assert np.all(soup.materials[soup.object_ids == van] == Material.VEHICLE)


def test_parked_vehicles_in_the_way_are_left_out():
    plain = World(_scenario([], parked=ParkedConfig(fill=1.0)), seed=3)
    staged = World(_scenario([TRUCK, TARGET], parked=ParkedConfig(fill=1.0)), seed=3)
    before, after = plain._layout.parked, staged._layout.parked
    staged_boxes = staged._layout.staged
    grown = BoxSet(staged_boxes.centers, staged_boxes.sizes + [2 * STAGED_CLEARANCE, 2 * STAGED_CLEARANCE, 0.0],
                   staged_boxes.yaws).corners_bev()
    in_the_way = np.array([np.any(rectangles_overlap(np.repeat(corners[None], len(grown), 0), grown))
                           for corners in before.corners_bev()])
    assert 2 <= np.count_nonzero(in_the_way) <= 6  # a full kerb row: a few vehicles where the truck and car stand
    np.testing.assert_array_equal(after.centers, before.centers[~in_the_way])
    np.testing.assert_array_equal(staged._layout.parked_colors, plain._layout.parked_colors[~in_the_way])
    np.testing.assert_array_equal(staged._layout.parked_ids, np.arange(1, len(after) + 1))
    assert len(staged._layout.scenery) >= len(plain._layout.scenery) - 2  # at most the poles in the way


def test_placing_the_ego_into_a_staged_object_is_a_collision():
    quiet = dict(parked=ParkedConfig(fill=0.0), traffic=TrafficConfig(count=0), pedestrians=PedestrianConfig(count=0))
    assert not World(_scenario([], **quiet), seed=0).in_collision()
    in_the_way = StagedObject(label="car", ahead=3.0, d=-5.25)
    assert World(_scenario([in_the_way], **quiet), seed=0).in_collision()
    world = World(_scenario([replace(in_the_way, ahead=12.0)], **quiet), seed=0)
    assert not world.in_collision()
    for _ in range(20):  # drive into it
        world.step(0.1, 7.0, 0.0)
    assert world.in_collision()


def test_traffic_stops_for_or_passes_staged_objects_in_its_lanes():
    stopped = [StagedObject(label="truck", ahead=60.0, d=-8.75), StagedObject(label="bus", ahead=90.0, d=-1.75)]
    world = World(_scenario(stopped, traffic=TrafficConfig(count=24, speed_min=7.0, speed_max=11.0),
                            ego=EgoConfig(lane=1, start_s=20.0)), seed=0)
    staged_s = [world.scenario.staged_s(staged) for staged in stopped]
    staged_corners = world._layout.staged.corners_bev()
    traffic = world._traffic
    overlaps, approached, passed = 0, set(), set()
    for _ in range(200):  # 20 s; the ego waits
        world.step(0.1, 0.0, 0.0)
        moving = [obj for obj in world.ground_truth() if not obj.is_static]
        corners = BoxSet(np.array([obj.box.center for obj in moving]), np.array([obj.box.size for obj in moving]),
                         np.array([obj.box.yaw for obj in moving])).corners_bev()
        for staged in staged_corners:
            overlaps += int(np.count_nonzero(rectangles_overlap(corners, np.repeat(staged[None], len(corners), 0))))
        for slot in np.flatnonzero(traffic.active):
            vehicle = int(traffic.ids[slot])
            for s, lane in zip(staged_s, (0, 2)):
                if traffic.lanes[slot] == lane and s - 20.0 < traffic.s[slot] < s - 4.0:
                    approached.add(vehicle)
                if traffic.directions[slot] > 0 and traffic.s[slot] > s + 10.0 and vehicle in approached:
                    passed.add(vehicle)
    assert overlaps == 0
    assert len(approached) >= 2 and len(passed) >= 1  # they came up behind one and went round it


def test_same_scenario_and_seed_give_the_same_world():
    def run(world):
        outputs = []
        for _ in range(10):
            world.step(0.1, 7.0, 0.0)
        scan = world.lidar_scan()
        outputs += [scan.points.tobytes(), scan.point_object_ids.tobytes()]
        outputs += [repr((obj.object_id, obj.label, obj.num_lidar_points)).encode() + obj.box.center.tobytes()
                    for obj in world.ground_truth()]
        return outputs
    scenario = _scenario([TRUCK, TARGET, WALKER, STOPPED_VAN])
    assert run(World(scenario, seed=5)) == run(World(scenario, seed=5))


def _error(tmp_path, text: str) -> str:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ScenarioError) as caught:
        load_scenario(path)
    return str(caught.value)


@pytest.mark.parametrize("text, expected", [
    ("staged:\n  - {label: bicycle, ahead: 30, d: -12}\n",
     "staged[0].label: must be one of car, van, truck, bus, pedestrian, got 'bicycle'"),
    ("staged:\n  - {ahead: 30, d: -12}\n", "staged[0].label: must be one of car, van, truck, bus, pedestrian, got ''"),
    ("staged:\n  - {label: car, ahead: 30, d: -12, target: true}\n  - {label: van, ahead: 40, d: -12}\n"
     "  - {label: car, ahead: 50, d: -12, target: true}\n",
     "staged: at most one staged object may be the target, got 2 (staged[0], staged[2])"),
    ("staged:\n  - {label: car, ahead: 30, d: -12, size: [4.5, 1.8]}\n",
     "staged[0].size: must be empty or [length, width, height], got 2 values"),
    ("staged:\n  - {label: car, ahead: 30, d: -12, size: [4.5, 0.0, 1.5]}\n",
     "staged[0].size: must be >= 0.1, got 0.0"),
    ("staged:\n  - {label: car, ahead: 30, d: -12, colour: red}\n", "staged[0].colour: unknown key"),
    ("staged:\n  - {label: car, ahead: thirty, d: -12}\n", "staged[0].ahead: must be a number"),
    ("staged:\n  - {label: car, ahead: -50, d: -12}\n", "staged[0].ahead: puts the object at s = -10"),
    ("staged:\n  - {label: car, ahead: 30, d: -25}\n",
     "staged[0].d: must be within the sidewalks (|d| <= 16.7), got -25.0"),
    ("staged: {label: car}\n", "staged: must be a list of StagedObject"),
])
def test_bad_staged_objects_name_the_field(tmp_path, text, expected):
    message = _error(tmp_path, "ego: {start_s: 40.0}\n" + text)
    assert message.startswith(f"{tmp_path / 'bad.yaml'}: ") and expected in message, message


def test_staged_object_validates_when_built_directly():
    with pytest.raises(ValueError, match="label: must be one of"):
        StagedObject(label="Car")
    with pytest.raises(ValueError, match="staged: at most one"):
        Scenario(staged=[replace(TARGET), replace(TARGET, ahead=10.0)])
