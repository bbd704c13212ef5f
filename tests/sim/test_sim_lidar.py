"""The simulated lidar in urban_default: beam layout, point count, ranges, ground height,
intensities, and per-object point counts against the ground-truth boxes."""
import numpy as np
import pytest

from sim.geometry import BoxSet
from sim.transforms import planar_pose_matrix


@pytest.fixture(scope="module")
def scan(urban_world):
    return urban_world.lidar_scan()


def _points_in_map(world, points: np.ndarray) -> np.ndarray:
    lidar_to_map = planar_pose_matrix(*world.ego_pose) @ world.lidar_config.mount.matrix()
    return points[:, :3].astype(np.float64) @ lidar_to_map[:3, :3].T + lidar_to_map[:3, 3]


def test_points_are_float32_xyz_intensity(scan, urban_world):
    assert scan.points.dtype == np.float32 and scan.points.ndim == 2 and scan.points.shape[1] == 4
    assert scan.stamp == urban_world.time
    assert np.all((scan.points[:, 3] >= 0.0) & (scan.points[:, 3] <= 1.0))
    assert np.ptp(scan.points[:, 3]) > 0.3  # intensity depends on material and incidence


def test_about_120k_points_from_64_beams(scan, urban_world):
    assert 100_000 <= len(scan.points) <= 130_000
    elevations = np.degrees(np.arctan2(scan.points[:, 2], np.hypot(scan.points[:, 0], scan.points[:, 1])))
    distinct = np.unique(np.round(elevations, 2))
    assert 60 <= len(distinct) <= 64
    assert distinct.max() == pytest.approx(2.0, abs=0.02)
    assert distinct.min() == pytest.approx(-24.9, abs=0.02)


def test_ranges_within_limits(scan, urban_world):
    config = urban_world.lidar_config
    ranges = np.linalg.norm(scan.points[:, :3], axis=1)
    slack = 6 * config.range_noise_std
    assert ranges.min() >= config.min_range - slack
    assert ranges.max() <= config.max_range + slack


def test_road_ahead_lies_1_73_m_below_the_sensor(scan):
    near_road = ((scan.point_object_ids < 0) & (np.abs(scan.points[:, 1]) < 3.0)
                 & (np.abs(scan.points[:, 0]) > 4.0) & (np.abs(scan.points[:, 0]) < 15.0))
    heights = scan.points[near_road, 2]
    assert near_road.sum() > 500
    assert np.median(heights) == pytest.approx(-1.73, abs=0.01)
    assert np.all(np.abs(heights + 1.73) < 0.1)


def test_object_point_counts_match_points_inside_ground_truth_boxes(scan, urban_world):
    truth = {obj.object_id: obj for obj in urban_world.ground_truth()}
    assert set(scan.object_point_counts) == set(truth)
    assert all(obj.num_lidar_points == scan.object_point_counts[obj.object_id] for obj in truth.values())
    assert sum(scan.object_point_counts.values()) == np.count_nonzero(scan.point_object_ids >= 0)

    seen = [object_id for object_id, count in scan.object_point_counts.items() if count > 0]
    assert len(seen) >= 10
    boxes = [truth[object_id].box for object_id in seen]
    points = _points_in_map(urban_world, scan.points)
    margin = 0.1  # range noise
    centers = np.array([box.center for box in boxes])
    sizes = np.array([box.size for box in boxes])
    yaws = np.array([box.yaw for box in boxes])
    grown = BoxSet(centers, sizes + 2 * margin, yaws).contains(points)
    # Boxes stand on the road: with the floor raised 5 cm, road points under a vehicle stay out.
    floor_raise = 0.05
    raised = BoxSet(centers + [0.0, 0.0, (margin + floor_raise) / 2], sizes + [2 * margin, 2 * margin, margin - floor_raise],
                    yaws).contains(points)
    for row, object_id in enumerate(seen):
        count = scan.object_point_counts[object_id]
        own = scan.point_object_ids == object_id
        assert np.all(grown[row][own]), object_id
        lowest_hits = np.count_nonzero(own & ~raised[row])  # tyre returns near the road
        assert np.count_nonzero(raised[row]) == pytest.approx(count - lowest_hits, abs=max(3, 0.02 * count)), object_id
