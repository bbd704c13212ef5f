"""The mapping drive of the static world (sim.survey, World.static_camera_frame)."""
import math

import numpy as np
import pytest

from sim.scenario import load_scenario
from sim.survey import SurveyConfig, survey_frames, survey_poses
from sim.world import World

SCENARIO = "config/scenarios/urban_default.yaml"


@pytest.fixture(scope="module")
def world() -> World:
    world = World(load_scenario(SCENARIO), seed=0)
    for _ in range(20):
        world.step(0.1, 8.0, 0.0)
    return world


def test_static_frames_leave_out_traffic_and_pedestrians_and_the_agents_come_back(world):
    moving = [obj.object_id for obj in world.ground_truth() if not obj.is_static]
    static = {obj.object_id for obj in world.ground_truth() if obj.is_static}
    before = world.camera_frame()
    assert np.isin(before.object_ids, moving).any()  # traffic is in view
    frame = world.static_camera_frame(world.ego_pose)
    seen = set(np.unique(frame.object_ids).tolist()) - {-1}
    assert seen and seen <= static  # parked vehicles stay, moving ones are gone
    assert not np.array_equal(frame.rgb, before.rgb)
    after = world.camera_frame()
    np.testing.assert_array_equal(after.rgb, before.rgb)
    np.testing.assert_array_equal(after.object_ids, before.object_ids)


def test_poses_run_along_the_lanes_of_the_ego_direction_with_each_yaw_offset(world):
    config = SurveyConfig(spacing=10.0, yaw_offsets=(-0.3, 0.0, 0.3))
    poses = np.array(survey_poses(world, (40.0, 80.0), config))
    stations, lanes = 5, world.scenario.road.lanes_per_direction
    assert poses.shape == (stations * lanes * 3, 3)
    offsets = world.road.lane_offsets[world.road.lane_directions == 1]
    np.testing.assert_allclose(np.unique(poses[:, 0]), [40.0, 50.0, 60.0, 70.0, 80.0])
    np.testing.assert_allclose(np.unique(poses[:, 1]), np.sort(offsets))
    np.testing.assert_allclose(np.unique(poses[:, 2]), [-0.3, 0.0, 0.3], atol=1e-12)
    clipped = survey_poses(world, (-50.0, 5.0), config)
    assert min(pose[0] for pose in clipped) == 0.0


def test_frames_are_posed_rgbd_at_the_survey_resolution(world):
    frames = survey_frames(world, (40.0, 48.0), SurveyConfig(spacing=8.0, width=160, height=120))
    assert len(frames) == 2 * 3 * 3
    frame = frames[4]
    assert frame.rgb.shape == (120, 160, 3) and frame.depth.shape == (120, 160)
    assert frame.intrinsics[0, 0] == pytest.approx(80.0 / math.tan(math.radians(45.0)))
    assert frame.intrinsics[0, 2] == pytest.approx(79.5)
    # The bottom centre pixel sees the road: back-projected, it lies on z = 0, ahead of the camera.
    depth = frame.depth[119, 80]
    point = frame.camera_to_map @ np.array([(80 - 79.5) / frame.intrinsics[0, 0] * depth,
                                            (119 - frame.intrinsics[1, 2]) / frame.intrinsics[1, 1] * depth, depth, 1.0])
    assert point[2] == pytest.approx(0.0, abs=0.02)
    pose = frames.poses[4]
    assert frame.camera_to_map[:2, 3] == pytest.approx(np.array(pose[:2]) + 1.5 * np.array([math.cos(pose[2]),
                                                                                           math.sin(pose[2])]))
    assert np.isinf(frame.depth[0]).any()  # the sky
