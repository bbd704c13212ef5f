"""Rotated-box IoU (perception.box_iou) and KITTI-style 40-point AP (evaluation.detection_metrics)."""
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from evaluation.detection_metrics import RECALL_POINTS, DetectionEvalConfig, average_precision, evaluate_detections
from perception.box_iou import bev_corners, bev_iou_matrix, iou_3d_matrix
from perception.objects import Box3D, DetectedObject, GroundTruthObject, ObjectClass, boxes_to_array


def box(x=10.0, y=0.0, z=0.0, length=4.0, width=2.0, height=1.5, yaw=0.0) -> Box3D:
    return Box3D(center=(x, y, z), size=(length, width, height), yaw=yaw)


def detection(label=ObjectClass.CAR, score=0.9, **box_args) -> DetectedObject:
    return DetectedObject(label=label, score=score, box=box(**box_args))


def truth(label=ObjectClass.CAR, points=100, **box_args) -> GroundTruthObject:
    return GroundTruthObject(object_id=0, label=label, box=box(**box_args), velocity=np.zeros(2),
                             num_lidar_points=points)


def car_result(frames, band=None, **config_args):
    return evaluate_detections(frames, DetectionEvalConfig(**config_args)).get("car", band)


# --- reference geometry: plain Sutherland-Hodgman clipping, one pair at a time -------------------

def reference_clip_area(subject: np.ndarray, clip: np.ndarray) -> float:
    polygon = [tuple(point) for point in subject]
    for start, end in zip(clip, np.roll(clip, -1, axis=0)):
        def side(point):
            return (end[0] - start[0]) * (point[1] - start[1]) - (end[1] - start[1]) * (point[0] - start[0])

        def inside(point):
            return side(point) >= -1e-12  # points on a shared edge stay in

        def crossing(p, q):
            fraction = side(p) / (side(p) - side(q))
            return (p[0] + fraction * (q[0] - p[0]), p[1] + fraction * (q[1] - p[1]))

        clipped = []
        for index, current in enumerate(polygon):
            previous = polygon[index - 1]
            if inside(current):
                if not inside(previous):
                    clipped.append(crossing(previous, current))
                clipped.append(current)
            elif inside(previous):
                clipped.append(crossing(previous, current))
        polygon = clipped
        if not polygon:
            return 0.0
    points = np.array(polygon)
    return 0.5 * abs(np.sum(points[:, 0] * np.roll(points[:, 1], -1) - np.roll(points[:, 0], -1) * points[:, 1]))


def reference_bev_iou(a: Box3D, b: Box3D) -> float:
    intersection = reference_clip_area(bev_corners([a])[0], bev_corners([b])[0])
    return intersection / (a.size[0] * a.size[1] + b.size[0] * b.size[1] - intersection)


boxes_strategy = st.builds(
    lambda x, y, length, width, yaw: box(x=x, y=y, length=length, width=width, yaw=yaw),
    st.floats(-3.0, 3.0), st.floats(-3.0, 3.0), st.floats(0.5, 5.0), st.floats(0.5, 5.0),
    st.floats(-math.pi, math.pi))


# --- IoU ------------------------------------------------------------------------------------------

def test_corners_match_box3d():
    boxes = [box(x=1.0, y=2.0, yaw=0.7), box(length=1.0, width=3.0, yaw=-2.0)]
    np.testing.assert_allclose(bev_corners(boxes), np.stack([b.corners_bev() for b in boxes]))


def test_boxes_to_array_accepts_boxes_and_arrays():
    array = boxes_to_array([box(x=1.0, y=2.0, z=3.0, length=4.0, width=5.0, height=6.0, yaw=0.5)])
    np.testing.assert_array_equal(array, [[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 0.5]])
    np.testing.assert_array_equal(boxes_to_array(array[0]), array)
    assert boxes_to_array([]).shape == (0, 7)
    assert bev_iou_matrix([], array).shape == (0, 1)


def test_identical_boxes_have_iou_one():
    boxes = [box(yaw=0.3), box(x=-5.0, length=1.0, width=0.6, yaw=-2.5)]
    np.testing.assert_allclose(np.diag(bev_iou_matrix(boxes, boxes)), 1.0, atol=1e-12)
    np.testing.assert_allclose(np.diag(iou_3d_matrix(boxes, boxes)), 1.0, atol=1e-12)


def test_disjoint_boxes_have_iou_zero():
    assert bev_iou_matrix([box(x=0.0)], [box(x=5.0)])[0, 0] == 0.0  # 4 m long, 5 m apart
    assert bev_iou_matrix([box(x=0.0)], [box(x=4.0)])[0, 0] == pytest.approx(0.0, abs=1e-12)  # touching
    assert iou_3d_matrix([box(z=0.0)], [box(z=2.0)])[0, 0] == 0.0  # 1.5 m tall, 2 m apart


@pytest.mark.parametrize("other, expected", [
    (box(x=11.0), 6.0 / 10.0),                     # 3 x 2 overlap of two 4 x 2 boxes
    (box(x=11.0, y=1.0), 3.0 / 13.0),              # 3 x 1 overlap
    (box(length=2.0, width=1.0), 2.0 / 8.0),       # contained
    (box(x=10.5, length=1.0, width=4.0), 2.0 / 10.0),  # cross shape: 1 x 2 overlap, 8 + 4 - 2 union
])
def test_axis_aligned_bev_iou_matches_hand_computed(other, expected):
    assert bev_iou_matrix([box()], [other])[0, 0] == pytest.approx(expected, abs=1e-12)


def test_rotated_box_with_swapped_size_is_the_same_box():
    assert bev_iou_matrix([box(yaw=0.2)], [box(length=2.0, width=4.0, yaw=0.2 + math.pi / 2)])[0, 0] == \
        pytest.approx(1.0, abs=1e-12)


def test_diamond_inside_square_hand_computed():
    # A 2 x 2 square and the same square turned by 45 degrees overlap in a regular octagon: the
    # square minus 4 corner triangles cut by the lines x + y = sqrt(2), legs 2 - sqrt(2).
    leg = 2.0 - math.sqrt(2.0)
    intersection = 4.0 - 4.0 * leg ** 2 / 2.0
    iou = bev_iou_matrix([box(length=2.0, width=2.0)], [box(length=2.0, width=2.0, yaw=math.pi / 4)])[0, 0]
    assert iou == pytest.approx(intersection / (8.0 - intersection), abs=1e-12)


def test_3d_iou_with_vertical_offset():
    # Half the height overlaps: 8 m^2 x 0.75 m in, 2 x 12 - 6 m^3 union.
    assert iou_3d_matrix([box()], [box(z=0.75)])[0, 0] == pytest.approx(6.0 / 18.0, abs=1e-12)
    # With a BEV shift as well: 6 m^2 x 0.75 m in.
    assert iou_3d_matrix([box()], [box(x=11.0, z=0.75)])[0, 0] == pytest.approx(4.5 / 19.5, abs=1e-12)


@settings(max_examples=50, deadline=None)
@given(st.lists(boxes_strategy, min_size=1, max_size=4), st.lists(boxes_strategy, min_size=1, max_size=4))
def test_iou_is_symmetric(boxes_a, boxes_b):
    np.testing.assert_allclose(bev_iou_matrix(boxes_a, boxes_b), bev_iou_matrix(boxes_b, boxes_a).T, atol=1e-9)
    np.testing.assert_allclose(iou_3d_matrix(boxes_a, boxes_b), iou_3d_matrix(boxes_b, boxes_a).T, atol=1e-9)


@settings(max_examples=150, deadline=None)
@given(boxes_strategy, boxes_strategy)
def test_bev_iou_matches_reference_clipping(a, b):
    assert bev_iou_matrix([a], [b])[0, 0] == pytest.approx(reference_bev_iou(a, b), abs=1e-6)


def test_bev_iou_matrix_matches_reference_on_many_random_pairs():
    rng = np.random.default_rng(0)
    boxes = [box(x=x, y=y, length=length, width=width, yaw=yaw)
             for x, y, length, width, yaw in zip(rng.uniform(-4, 4, 30), rng.uniform(-4, 4, 30),
                                                 rng.uniform(0.3, 6, 30), rng.uniform(0.3, 6, 30),
                                                 rng.uniform(-np.pi, np.pi, 30))]
    expected = np.array([[reference_bev_iou(a, b) for b in boxes] for a in boxes])
    np.testing.assert_allclose(bev_iou_matrix(boxes, boxes), expected, atol=1e-6)


# --- average precision -----------------------------------------------------------------------------

def test_average_precision_interpolates_at_40_points():
    # TP, FP, TP over 2 ground truth: precision 1 up to recall 0.5, then 2/3 up to recall 1.
    ap, precision, recall, interpolated = average_precision([0.9, 0.8, 0.7], [True, False, True], 2)
    np.testing.assert_allclose(precision, [1.0, 0.5, 2.0 / 3.0])
    np.testing.assert_allclose(recall, [0.5, 0.5, 1.0])
    np.testing.assert_allclose(interpolated, np.where(RECALL_POINTS <= 0.5, 1.0, 2.0 / 3.0))
    assert ap == pytest.approx((20 * 1.0 + 20 * 2.0 / 3.0) / 40)


def test_perfect_detections_give_ap_one():
    frames = [([detection(x=10.0 * i, y=3.0, score=0.5 + 0.1 * i)], [truth(x=10.0 * i, y=3.0)]) for i in range(4)]
    result = car_result(frames)
    assert result.average_precision == 1.0
    assert (result.true_positives, result.false_positives, result.num_ground_truth) == (4, 0, 4)


def test_no_detections_give_ap_zero():
    result = car_result([([], [truth()])])
    assert result.average_precision == 0.0 and result.num_ground_truth == 1


def test_no_ground_truth_gives_nan_ap():
    assert math.isnan(car_result([([detection()], [])]).average_precision)


def test_half_found_with_perfect_precision_gives_exactly_half():
    ground_truth = [truth(x=10.0 * (i + 1)) for i in range(4)]
    detections = [detection(x=10.0), detection(x=20.0, score=0.8)]
    result = car_result([(detections, ground_truth)])
    assert result.average_precision == 20 / 40  # precision 1 at recall levels 1/40 .. 20/40, 0 beyond
    np.testing.assert_array_equal(result.interpolated_precision, (RECALL_POINTS <= 0.5).astype(float))


def test_highest_scoring_false_positive_lowers_ap_by_expected_amount():
    ground_truth = [truth(x=10.0), truth(x=20.0)]
    detections = [detection(x=50.0, score=0.95), detection(x=10.0, score=0.9), detection(x=20.0, score=0.8)]
    # Precision 0, 1/2, 2/3 at recall 0, 1/2, 1: the best precision at any recall level is 2/3.
    assert car_result([(detections, ground_truth)]).average_precision == pytest.approx(2.0 / 3.0)


def test_iou_just_below_threshold_is_a_miss():
    # A 4 m box shifted by d along x overlaps (4 - d) / (4 + d); 0.7 is reached at d = 12 / 17.
    at_threshold = 12.0 / 17.0
    below = car_result([([detection(x=10.0 + at_threshold + 1e-6)], [truth()])])
    above = car_result([([detection(x=10.0 + at_threshold - 1e-6)], [truth()])])
    assert (below.true_positives, below.false_positives, below.average_precision) == (0, 1, 0.0)
    assert (above.true_positives, above.average_precision) == (1, 1.0)


def test_ground_truth_is_matched_once():
    result = car_result([([detection(score=0.9), detection(score=0.8, x=10.1)], [truth()])])
    assert (result.true_positives, result.false_positives) == (1, 1)
    np.testing.assert_allclose(result.precision, [1.0, 0.5])
    assert result.mean_center_error == pytest.approx(0.0)  # the higher-scoring one matched


def test_detection_takes_the_best_overlapping_ground_truth():
    ground_truth = [truth(x=10.5), truth(x=10.1)]
    result = car_result([([detection(), detection(x=10.6, score=0.8)], ground_truth)])
    # The first detection takes the closer ground truth at 10.1, leaving 10.5 for the second.
    assert result.true_positives == 2
    assert result.mean_center_error == pytest.approx((0.1 + 0.1) / 2)


def test_metric_choice_bev_versus_3d():
    frames = [([detection(z=0.6)], [truth()])]  # BEV identical, 3D IoU 0.9 / 2.1 < 0.7
    assert car_result(frames, metric="bev").average_precision == 1.0
    assert car_result(frames, metric="3d").average_precision == 0.0


def test_configurable_thresholds():
    frames = [([detection(x=11.0)], [truth()])]  # BEV IoU 0.6
    assert car_result(frames, metric="bev").average_precision == 0.0
    thresholds = {"car": 0.5, "truck_bus": 0.7, "pedestrian": 0.5, "cyclist": 0.5}
    assert car_result(frames, metric="bev", iou_thresholds=thresholds).average_precision == 1.0


def test_default_pedestrian_threshold_is_half():
    pedestrian = dict(label=ObjectClass.PEDESTRIAN, length=1.0, width=1.0, height=1.8)
    frames = [([detection(x=10.4, **pedestrian)], [truth(**pedestrian)])]  # IoU 0.6 / 1.4 < 0.5
    frames_close = [([detection(x=10.3, **pedestrian)], [truth(**pedestrian)])]  # IoU 0.7 / 1.3 > 0.5
    assert evaluate_detections(frames).get("pedestrian").average_precision == 0.0
    assert evaluate_detections(frames_close).get("pedestrian").average_precision == 1.0


def test_distance_bands():
    ground_truth = [truth(x=10.0), truth(x=30.0), truth(x=0.0, y=-50.0)]
    detections = [detection(x=10.0), detection(x=0.0, y=-50.0, score=0.8), detection(x=35.0, score=0.7)]
    config = DetectionEvalConfig(distance_bands=((0.0, 20.0), (20.0, 40.0), (40.0, math.inf)))
    result = evaluate_detections([(detections, ground_truth)], config)
    near, middle, far = (result.get("car", band) for band in config.distance_bands)
    assert (near.num_ground_truth, near.true_positives, near.false_positives) == (1, 1, 0)
    assert (middle.num_ground_truth, middle.true_positives, middle.false_positives) == (1, 0, 1)
    assert (far.num_ground_truth, far.true_positives, far.false_positives) == (1, 1, 0)
    assert result.get("car").num_ground_truth == 3
    assert result.mean_average_precision((0.0, 20.0)) == 1.0


def test_detection_matched_to_ground_truth_outside_the_band_is_not_counted():
    # Ground truth at 40.5 m, detection at 39.5 m: inside the 20-40 band but its match lies outside.
    frames = [([detection(x=39.5, length=4.0)], [truth(x=40.5, length=6.0)])]
    middle = car_result(frames, band=(20.0, 40.0), metric="bev",
                        iou_thresholds={"car": 0.5, "truck_bus": 0.7, "pedestrian": 0.5, "cyclist": 0.5})
    assert (middle.num_ground_truth, middle.true_positives, middle.false_positives) == (0, 0, 0)


def test_default_class_mapping_groups_vans_with_cars_and_trucks_with_buses():
    frames = [([detection(label=ObjectClass.CAR), detection(label=ObjectClass.BUS, x=30.0, length=12.0)],
               [truth(label=ObjectClass.VAN), truth(label=ObjectClass.TRUCK, x=30.0, length=12.0)])]
    result = evaluate_detections(frames)
    assert result.get("car").average_precision == 1.0
    assert result.get("truck_bus").average_precision == 1.0
    assert result.get("pedestrian").num_ground_truth == 0


def test_custom_class_mapping():
    config = DetectionEvalConfig(class_groups={"car": frozenset({ObjectClass.CAR})}, iou_thresholds={"car": 0.7})
    result = evaluate_detections([([detection(label=ObjectClass.CAR)], [truth(label=ObjectClass.VAN)])], config)
    assert [r.class_name for r in result.results] == ["car"] * 4
    car = result.get("car")
    assert (car.num_ground_truth, car.false_positives) == (0, 1)


def test_ground_truth_with_too_few_points_is_ignored():
    frames = [([detection(x=20.0)], [truth(x=10.0, points=0), truth(x=20.0, points=5)])]
    assert car_result(frames).average_precision == 1.0
    assert car_result(frames).num_ground_truth == 1
    assert car_result(frames, min_points=0).average_precision == 0.5
    # Detecting an unseen object is neither a hit nor a false positive.
    seen_anyway = car_result([([detection(x=10.0)], [truth(x=10.0, points=0)])])
    assert (seen_anyway.true_positives, seen_anyway.false_positives) == (0, 0)


def test_ground_truth_without_point_count_is_kept():
    class Labelled:
        def __init__(self, label, box):
            self.label, self.box = label, box

    frames = [([detection()], [Labelled(ObjectClass.CAR, box())])]
    assert car_result(frames).average_precision == 1.0


def test_centre_and_yaw_errors_on_known_offsets():
    frames = [([detection(x=10.06, y=0.08, yaw=0.1)], [truth(yaw=0.0)]),
              ([detection(x=20.0, yaw=math.pi - 0.2)], [truth(x=20.0, yaw=0.0)]),
              ([detection(x=30.0, yaw=-math.pi + 0.05)], [truth(x=30.0, yaw=math.pi - 0.05)])]
    result = car_result(frames, metric="bev")
    assert result.true_positives == 3
    assert result.mean_center_error == pytest.approx(0.1 / 3)
    assert result.mean_yaw_error == pytest.approx((0.1 + (math.pi - 0.2) + 0.1) / 3)
    assert result.mean_yaw_error_folded == pytest.approx((0.1 + 0.2 + 0.1) / 3)


def test_no_matches_give_nan_errors():
    result = car_result([([], [truth()])])
    assert math.isnan(result.mean_center_error) and math.isnan(result.mean_yaw_error_folded)


def test_markdown_table_lists_every_class_and_band():
    table = evaluate_detections([([detection()], [truth()])]).to_markdown()
    assert "| car | all | 1.0000 | 1 | 1 | 0 |" in table
    assert "| cyclist | 40+ |" in table and "| truck_bus | 20-40 |" in table


@pytest.mark.parametrize("config_args", [
    {"metric": "2d"},
    {"class_groups": {"bike": frozenset({ObjectClass.CYCLIST})}},
    {"iou_thresholds": {"car": 1.5, "truck_bus": 0.7, "pedestrian": 0.5, "cyclist": 0.5}},
    {"distance_bands": ((20.0, 10.0),)},
    {"min_points": -1},
])
def test_config_rejects_bad_values(config_args):
    with pytest.raises(ValueError):
        DetectionEvalConfig(**config_args)
