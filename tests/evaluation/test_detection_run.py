"""Scoring a run's detections against ground truth given in map: frames, range filter, poses."""
import math

import numpy as np
import pytest

from evaluation.detection_run import inside_point_range, pose_at, score_detection_run, truth_in_frame
from perception.objects import Box3D, DetectedObject, GroundTruthObject, ObjectClass
from sim.transforms import MountPose, planar_pose_matrix

POINT_RANGE = (0.0, -40.96, -3.0, 71.68, 40.96, 1.0)
LIDAR_MOUNT = MountPose(z=1.73).matrix()
EGO = (100.0, 50.0, 0.5)  # base_link in map: x, y, yaw
SECOND = 1_000_000_000


def in_map(offset_forward: float, offset_left: float, label=ObjectClass.CAR, points=100, yaw=0.2,
           size=(4.2, 1.8, 1.5)) -> GroundTruthObject:
    """Ground truth in map, placed relative to the ego (on the road, z = half its height)."""
    x, y, heading = EGO
    centre = (x + offset_forward * math.cos(heading) - offset_left * math.sin(heading),
              y + offset_forward * math.sin(heading) + offset_left * math.cos(heading), size[2] / 2)
    return GroundTruthObject(object_id=0, label=label, box=Box3D(centre, size, heading + yaw),
                             velocity=np.array([math.cos(heading), math.sin(heading)]) * 5.0,
                             num_lidar_points=points)


def lidar_in_map() -> np.ndarray:
    return planar_pose_matrix(*EGO) @ LIDAR_MOUNT


def perfect_detections(truth: list[GroundTruthObject]) -> list[DetectedObject]:
    return [DetectedObject(label=o.label, score=0.9, box=o.box) for o in truth_in_frame(truth, lidar_in_map())]


def test_truth_in_the_lidar_frame():
    moved = truth_in_frame([in_map(20.0, 3.0)], lidar_in_map())[0]
    np.testing.assert_allclose(moved.box.center, [20.0, 3.0, 0.75 - 1.73], atol=1e-9)
    assert moved.box.yaw == pytest.approx(0.2)
    np.testing.assert_allclose(moved.velocity, [5.0, 0.0], atol=1e-9)  # driving along with the ego


def test_perfect_detections_score_full_ap_and_truth_outside_the_range_is_left_out():
    truth = [in_map(15.0, 2.0), in_map(35.0, -5.0, label=ObjectClass.TRUCK, size=(9.0, 2.5, 3.2)),
             in_map(8.0, 4.0, label=ObjectClass.PEDESTRIAN, size=(0.7, 0.7, 1.8), yaw=1.0)]
    behind = in_map(-12.0, 0.0)  # behind the lidar: outside the x range, not a miss
    unseen = in_map(25.0, 10.0, points=2)  # too few lidar points: neither hit nor miss
    frames = [(stamp * SECOND // 10, perfect_detections(truth)) for stamp in range(3)]
    ground_truth = [(stamp * SECOND // 10, truth + [behind, unseen]) for stamp in range(3)]
    poses = [(stamp * SECOND // 50, *EGO) for stamp in range(20)]
    result = score_detection_run(frames, ground_truth, poses, LIDAR_MOUNT, POINT_RANGE)
    assert result.frames_scored == 3 and result.frames_without_truth == result.frames_without_pose == 0
    for scores in (result.bev, result.three_d):
        assert scores.get("car").average_precision == pytest.approx(1.0)
        assert scores.get("car").num_ground_truth == 3  # one car per frame: `behind` and `unseen` not counted
        assert scores.get("truck_bus").average_precision == pytest.approx(1.0)
        assert scores.get("pedestrian").average_precision == pytest.approx(1.0)
        assert math.isnan(scores.get("cyclist").average_precision)
    table = result.to_markdown()
    assert "| car | 3 | 3 | 100.0 | 100.0 |" in table and "| cyclist | 0 | 0 | – | – |" in table
    assert "| **mean** | | | 100.0 | 100.0 |" in table


def test_a_box_off_by_a_metre_is_a_bev_and_3d_miss_and_frames_without_truth_or_pose_are_counted():
    truth = [in_map(15.0, 2.0)]
    shifted = perfect_detections(truth)
    shifted[0].box.center[0] += 1.0  # IoU about 0.6 < 0.7
    ground_truth = [(SECOND, truth)]
    poses = [(SECOND - SECOND // 50, *EGO), (SECOND, *EGO)]
    frames = [(SECOND, shifted), (2 * SECOND, shifted), (3 * SECOND, shifted)]
    ground_truth.append((3 * SECOND, truth))  # a stamp with truth but far from any odometry
    result = score_detection_run(frames, ground_truth, poses, LIDAR_MOUNT, POINT_RANGE)
    assert (result.frames_scored, result.frames_without_truth, result.frames_without_pose) == (1, 1, 1)
    assert result.bev.get("car").average_precision == 0.0 and result.three_d.get("car").false_positives == 1


def test_pose_at_a_stamp_is_exact_or_interpolated_between_close_samples():
    poses = [(0, 0.0, 0.0, math.pi - 0.1), (20_000_000, 1.0, 2.0, -math.pi + 0.1)]
    assert pose_at(poses, 0) == (0.0, 0.0, math.pi - 0.1)
    x, y, yaw = pose_at(poses, 10_000_000)
    assert (x, y) == pytest.approx((0.5, 1.0)) and math.cos(yaw) == pytest.approx(-1.0)  # across the ±pi seam
    assert pose_at(poses, -1) is None and pose_at(poses, 20_000_001) is None
    assert pose_at([(0, 0.0, 0.0, 0.0), (SECOND, 1.0, 0.0, 0.0)], SECOND // 2) is None  # samples too far apart


def test_inside_point_range_uses_the_box_centre():
    boxes = [DetectedObject(ObjectClass.CAR, 0.5, Box3D(centre, (4.0, 2.0, 1.5), 0.0))
             for centre in [(0.0, 0.0, -1.0), (71.68, 0.0, -1.0), (10.0, -41.0, -1.0), (10.0, 0.0, 1.5)]]
    assert inside_point_range(boxes, POINT_RANGE) == boxes[:1]
