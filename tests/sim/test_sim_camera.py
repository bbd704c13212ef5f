"""The simulated camera: image format, intrinsics, where objects appear and how far they are."""
import math

import numpy as np
import pytest

from sim.geometry import BoxSet
from sim.transforms import planar_pose_matrix


@pytest.fixture(scope="module")
def frame(urban_world):
    return urban_world.camera_frame()


def _optical_to_map(world) -> np.ndarray:
    return planar_pose_matrix(*world.ego_pose) @ world.camera_config.optical_to_base_link()


def test_image_format_and_intrinsics(frame, urban_world):
    assert frame.rgb.shape == (480, 640, 3) and frame.rgb.dtype == np.uint8
    assert frame.depth.shape == (480, 640) and frame.depth.dtype == np.float32
    assert frame.object_ids.shape == (480, 640)
    assert frame.stamp == urban_world.time
    intrinsics = urban_world.camera_intrinsics
    assert intrinsics.shape == (3, 3)
    assert intrinsics[0, 0] == pytest.approx(320.0 / math.tan(math.radians(45.0)))
    assert intrinsics[0, 2] == pytest.approx(319.5) and intrinsics[1, 2] == pytest.approx(239.5)


def test_sky_has_infinite_depth_and_road_is_below_the_horizon(frame, urban_world):
    sky = np.isinf(frame.depth)
    assert sky[0, 320] and not sky[-1, 320]
    assert np.all(frame.rgb[sky] == urban_world.camera_config.sky_color)
    assert np.all(frame.depth[~sky] > 0.0)
    # The road under the camera: depth of the bottom centre pixel from the mount height and K.
    height, fy, cy = urban_world.camera_config.mount.z, urban_world.camera_intrinsics[1, 1], urban_world.camera_intrinsics[1, 2]
    assert frame.depth[479, 320] == pytest.approx(height * fy / (479 - cy), rel=0.01)


def test_optical_frame_looks_forward_with_x_right_and_y_down(urban_world):
    optical_to_base = urban_world.camera_config.optical_to_base_link()
    np.testing.assert_allclose(optical_to_base[:3, :3] @ [0, 0, 1], [1, 0, 0], atol=1e-12)
    np.testing.assert_allclose(optical_to_base[:3, :3] @ [1, 0, 0], [0, -1, 0], atol=1e-12)
    np.testing.assert_allclose(optical_to_base[:3, :3] @ [0, 1, 0], [0, 0, -1], atol=1e-12)


def _projected_rectangles(world):
    """Object id -> (u_min, v_min, u_max, v_max) of its box, for boxes fully in front of the camera."""
    map_to_optical = np.linalg.inv(_optical_to_map(world))
    rectangles = {}
    for obj in world.ground_truth():
        corners = BoxSet(obj.box.center, obj.box.size, [obj.box.yaw]).corners()[0]
        optical = corners @ map_to_optical[:3, :3].T + map_to_optical[:3, 3]
        if np.all(optical[:, 2] > 1.0):
            pixels = optical @ world.camera_intrinsics.T
            pixels = pixels[:, :2] / pixels[:, 2:]
            rectangles[obj.object_id] = (*pixels.min(axis=0), *pixels.max(axis=0))
    return rectangles


def test_vehicles_appear_where_their_projected_boxes_say(frame, urban_world):
    rectangles = _projected_rectangles(urban_world)
    ids, pixel_counts = np.unique(frame.object_ids[frame.object_ids >= 0], return_counts=True)
    assert len(ids) >= 3
    for object_id in ids:
        if object_id not in rectangles:
            continue  # partly behind the camera
        rows, columns = np.nonzero(frame.object_ids == object_id)
        u_min, v_min, u_max, v_max = rectangles[object_id]
        assert columns.min() >= u_min - 1 and columns.max() <= u_max + 1, object_id
        assert rows.min() >= v_min - 1 and rows.max() <= v_max + 1, object_id
    # The most visible object fills much of its projected rectangle (it is not merely inside it).
    largest = ids[np.argmax(pixel_counts)]
    u_min, v_min, u_max, v_max = np.clip(rectangles[largest], 0, [639, 479, 639, 479])
    assert pixel_counts.max() > 0.4 * (u_max - u_min) * (v_max - v_min)


def test_depth_agrees_with_lidar_range_to_the_same_object(frame, urban_world):
    """Lidar returns projected into the image land on their object, at the camera's depth there."""
    scan = urban_world.lidar_scan()
    lidar_to_optical = (np.linalg.inv(_optical_to_map(urban_world)) @ planar_pose_matrix(*urban_world.ego_pose)
                        @ urban_world.lidar_config.mount.matrix())
    on_objects = scan.point_object_ids >= 0
    optical = scan.points[on_objects, :3] @ lidar_to_optical[:3, :3].T + lidar_to_optical[:3, 3]
    pixels = optical @ urban_world.camera_intrinsics.T
    in_front = optical[:, 2] > 1.0
    columns = np.round(pixels[:, 0] / np.where(in_front, pixels[:, 2], 1.0)).astype(int)
    rows = np.round(pixels[:, 1] / np.where(in_front, pixels[:, 2], 1.0)).astype(int)
    inside = in_front & (columns >= 0) & (columns < 640) & (rows >= 0) & (rows < 480)
    columns, rows, lidar_depth = columns[inside], rows[inside], optical[inside, 2]
    same_object = frame.object_ids[rows, columns] == scan.point_object_ids[on_objects][inside]
    assert same_object.sum() > 500
    assert same_object.mean() > 0.9  # the rest fall on edges and on what the lidar sees over or under
    difference = np.abs(frame.depth[rows, columns] - lidar_depth)[same_object]
    assert np.median(difference) < 0.05
    assert np.percentile(difference, 90) < 0.3
