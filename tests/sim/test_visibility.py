"""Ground-truth visibility: box surface samples, sight lines against the world, occlusion ratios."""
import math
import time
from dataclasses import replace

import numpy as np
import pytest

from perception.objects import Box3D
from sim.scenario import EgoConfig, ParkedConfig, PedestrianConfig, Scenario, StagedObject, TrafficConfig
from sim.transforms import MountPose, planar_pose_matrix
from sim.visibility import SURFACE_OFFSET, Visibility, box_surface_samples, point_density, target_visibility
from sim.world import World

CAR = StagedObject(label="car", ahead=30.0, d=-5.25, target=True)
WALL_TRUCK = StagedObject(label="truck", ahead=15.0, d=-5.25, size=[10.0, 2.55, 4.0])


def _quiet(staged, **overrides) -> Scenario:
    """Nothing but the road, scenery and the staged objects."""
    settings = dict(road=replace(Scenario().road, length=300.0), parked=ParkedConfig(fill=0.0),
                    traffic=TrafficConfig(count=0), pedestrians=PedestrianConfig(count=0),
                    ego=EgoConfig(lane=1, start_s=40.0), staged=list(staged))
    settings.update(overrides)
    return Scenario(**settings)


def test_samples_cover_the_faces_that_face_the_origin():
    box = Box3D([10.0, 2.0, 0.75], [4.5, 1.8, 1.5], 0.0)
    # In front (-x of the box), to its right (-y) and above: the rear face, the right face and the top.
    points, areas = box_surface_samples(box, np.array([0.0, 0.0, 1.73]), spacing=0.3)
    local = points - box.center
    half = box.size / 2.0 + SURFACE_OFFSET
    on_rear = np.isclose(local[:, 0], -half[0])
    on_right = np.isclose(local[:, 1], -half[1])
    on_top = np.isclose(local[:, 2], half[2])
    assert np.all(on_rear ^ on_right ^ on_top)
    assert areas[on_rear].sum() == pytest.approx(1.8 * 1.5)
    assert areas[on_right].sum() == pytest.approx(4.5 * 1.5)
    assert areas[on_top].sum() == pytest.approx(4.5 * 1.8)
    assert np.all(areas <= 0.3 * 0.3 + 1e-12)
    assert len(points) == len(areas) == 6 * 5 + 15 * 5 + 15 * 6  # 0.3 m cells: rear, side, top
    # Below the top face and level with the box: only vertical faces; from inside: none.
    points, _ = box_surface_samples(box, np.array([0.0, 2.0, 0.5]))
    assert np.allclose(points[:, 0] - box.center[0], -half[0])
    assert len(box_surface_samples(box, box.center)[0]) == 0


def test_samples_follow_the_box_yaw_and_small_boxes_get_several_per_edge():
    box = Box3D([0.0, 0.0, 0.9], [0.6, 0.6, 1.8], math.pi / 4)
    origin = np.array([-10.0, 0.0, 1.73])
    points, areas = box_surface_samples(box, origin)
    assert len(points) == 2 * 4 * 6  # two vertical faces (0.6 m wide: 4 columns, 1.8 m tall: 6 rows)
    assert areas.sum() == pytest.approx(2 * 0.6 * 1.8)
    rotation = np.array([[math.cos(box.yaw), -math.sin(box.yaw)], [math.sin(box.yaw), math.cos(box.yaw)]])
    local = (points[:, :2] - box.center[:2]) @ rotation
    assert np.all(np.isclose(np.abs(local), 0.3 + SURFACE_OFFSET).any(axis=1))
    assert np.all(np.abs(local) <= 0.3 + SURFACE_OFFSET + 1e-9)


def test_lidar_origin_is_the_mount_on_base_link():
    scenario = _quiet([], road=replace(Scenario().road, length=300.0, curvature=0.003),
                      lidar=replace(Scenario().lidar, mount=MountPose(x=1.2, y=0.3, z=1.9)))
    world = World(scenario, seed=0)
    x, y, yaw = world.ego_pose
    assert abs(yaw) > 0.1  # on the bend, so the mount offset has to be turned
    expected = planar_pose_matrix(x, y, yaw) @ [1.2, 0.3, 1.9, 1.0]
    np.testing.assert_allclose(world.lidar_origin(), expected[:3], atol=1e-12)


def test_unobstructed_box_is_visible_and_gets_lidar_points():
    world = World(_quiet([CAR]), seed=0)
    visibility = target_visibility(world, world.target_id)
    assert visibility.occlusion_ratio < 0.02
    box = world.object_box(world.target_id)
    _, areas = box_surface_samples(box, world.lidar_origin())
    assert visibility.visible_area == pytest.approx(areas.sum(), rel=0.03)
    assert visibility.sample_count == len(areas) > 100  # rear and top faces
    assert visibility.point_count == 0 and visibility.density == 0.0  # no scan yet
    world.lidar_scan()
    visibility = target_visibility(world, world.target_id)
    assert visibility.point_count > 50
    assert visibility.density == pytest.approx(visibility.point_count / visibility.visible_area)


def test_box_behind_a_wall_like_truck_is_hidden():
    world = World(_quiet([WALL_TRUCK, CAR]), seed=0)
    visibility = target_visibility(world, world.target_id)
    assert visibility.occlusion_ratio > 0.97
    assert visibility.visible_area < 0.5
    assert world.lidar_scan().object_point_counts[world.target_id] == 0
    # From beside the truck (one lane to the left, above it) the car shows again.
    origin = world.lidar_origin() + [0.0, 7.0, 3.0]
    assert target_visibility(world, world.target_id, origin).occlusion_ratio < 0.3


def test_sight_lines_ignore_the_object_itself_and_see_moving_agents():
    world = World(_quiet([WALL_TRUCK, CAR]), seed=0)
    truck_id, car_id = world.staged_ids
    truck = world.object_box(truck_id)
    origin = world.lidar_origin()
    before, inside, beyond = (truck.center + [offset, 0.0, 0.0] for offset in (-6.0, 0.0, 6.0))
    points = np.array([before, inside, beyond])
    np.testing.assert_array_equal(world.sight_blocked(origin, points, car_id), [False, True, True])
    np.testing.assert_array_equal(world.sight_blocked(origin, points, truck_id), [False, False, False])

    busy = World(_quiet([], traffic=TrafficConfig(count=20)), seed=2)
    origin = busy.lidar_origin()
    vehicles = [obj for obj in busy.ground_truth() if not obj.is_static
                and 8.0 < np.linalg.norm(obj.box.center[:2] - origin[:2]) < 40.0]
    assert vehicles
    vehicle = vehicles[0]
    direction = vehicle.box.center - origin
    direction /= np.linalg.norm(direction)
    behind = vehicle.box.center + 6.0 * direction
    assert busy.sight_blocked(origin, behind[None], -99)[0]
    assert not busy.sight_blocked(origin, behind[None], vehicle.object_id)[0]


def test_point_density():
    assert point_density(120, 4.0) == 30.0
    assert point_density(7, 0.0) == 0.0
    assert Visibility(0.5, 2.0, 10, 50).density == 25.0


def test_visibility_of_a_target_takes_a_few_milliseconds():
    world = World(_quiet([WALL_TRUCK, CAR], traffic=TrafficConfig(count=12)), seed=0)
    target_visibility(world, world.target_id)  # builds the agents' scene once
    durations = []
    for _ in range(7):
        start = time.perf_counter()
        visibility = target_visibility(world, world.target_id)
        durations.append(time.perf_counter() - start)
    assert visibility.sample_count > 100
    assert np.median(durations) < 0.02  # about 1 ms alone; generous for a busy machine
