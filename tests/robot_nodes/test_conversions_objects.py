"""edge_robot_msgs object lists ⇄ perception.objects: round trips, velocity frames, located rejects."""
from __future__ import annotations

import math
from typing import Callable

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from hypothesis.extra import numpy as hnp
from rclpy.serialization import deserialize_message, serialize_message
from std_msgs.msg import Header

from perception.objects import (Box3D, DetectedObject, GroundTruthObject, ObjectClass, PredictedObject,
                                PredictedPath, TrackedObject)
from robot_nodes.conversions import (MalformedMessageError, detected_objects_to_msg, ground_truth_objects_to_msg,
                                     msg_to_detected_objects, msg_to_ground_truth_objects, msg_to_predicted_objects,
                                     msg_to_tracked_objects, predicted_objects_to_msg, tracked_objects_to_msg)

HEADER = Header(frame_id="map")
FLOAT32_RELATIVE = 2.0 ** -23

coordinates = st.floats(-1e3, 1e3)
speeds = st.floats(-50.0, 50.0)
yaws = st.floats(-math.pi, math.pi)
probabilities = st.floats(0.0, 1.0)
labels = st.sampled_from(ObjectClass)
object_ids = st.integers(0, 2 ** 64 - 1)


def vectors(length: int, elements=coordinates):
    return hnp.arrays(np.float64, length, elements=elements)


boxes = st.builds(Box3D, center=vectors(3), size=vectors(3, st.floats(0.0, 30.0)), yaw=yaws)
covariances = hnp.arrays(np.float64, (6, 6), elements=st.floats(-1e3, 1e3))
detections = st.builds(DetectedObject, label=labels, score=probabilities, box=boxes,
                       num_points=st.integers(0, 2 ** 32 - 1))


def tracks_aged(ages: st.SearchStrategy[float]) -> st.SearchStrategy[TrackedObject]:
    return st.builds(TrackedObject, object_id=object_ids, label=labels, score=probabilities, box=boxes,
                     velocity=vectors(2, speeds), yaw_rate=st.floats(-5, 5), pose_covariance=covariances,
                     velocity_covariance=covariances, age=ages)


tracks = tracks_aged(st.floats(0.0, 1e4))
truths = st.builds(GroundTruthObject, object_id=object_ids, label=labels, box=boxes, velocity=vectors(2, speeds),
                   yaw_rate=st.floats(-5, 5), num_lidar_points=st.integers(0, 2 ** 32 - 1), is_static=st.booleans())


@st.composite
def paths(draw) -> PredictedPath:
    steps = draw(st.integers(0, 6))
    covariance = None if steps == 0 or draw(st.booleans()) else draw(
        hnp.arrays(np.float64, (steps, 2, 2), elements=st.floats(-1e3, 1e3, width=32)))
    return PredictedPath(positions=draw(hnp.arrays(np.float64, (steps, 2), elements=coordinates)),
                         yaws=draw(hnp.arrays(np.float64, steps, elements=yaws)),
                         time_step=draw(st.floats(0.01, 2.0)), probability=draw(probabilities),
                         position_covariance=covariance)


predictions = st.builds(PredictedObject, track=tracks_aged(st.just(0.0)),  # PredictedObject carries no age
                        paths=st.lists(paths(), max_size=3))


def over_the_wire(msg):
    """The message as a subscriber receives it: float32 fields rounded, integer fields range-checked."""
    return deserialize_message(serialize_message(msg), type(msg))


def assert_float32_equal(actual: float, expected: float) -> None:
    assert actual == float(np.float32(expected))


def assert_angles_close(actual, expected) -> None:
    np.testing.assert_allclose(np.remainder(np.subtract(actual, expected) + np.pi, 2 * np.pi) - np.pi, 0.0,
                               atol=1e-12)


def assert_boxes_close(actual: Box3D, expected: Box3D) -> None:
    np.testing.assert_array_equal(actual.center, expected.center)
    np.testing.assert_array_equal(actual.size, expected.size)
    assert_angles_close(actual.yaw, expected.yaw)


def assert_tracks_close(actual: TrackedObject, expected: TrackedObject) -> None:
    assert (actual.object_id, actual.label) == (expected.object_id, expected.label)
    assert_float32_equal(actual.score, expected.score)
    assert_boxes_close(actual.box, expected.box)
    # Through the object frame and back: exact up to the rounding of two rotations of speeds ≤ 50 m/s.
    np.testing.assert_allclose(actual.velocity, expected.velocity, rtol=0, atol=1e-10)
    assert actual.yaw_rate == expected.yaw_rate
    np.testing.assert_array_equal(actual.pose_covariance, expected.pose_covariance)
    np.testing.assert_array_equal(actual.velocity_covariance, expected.velocity_covariance)
    assert_float32_equal(actual.age, expected.age)


@settings(max_examples=200, deadline=None)
@given(objects=st.lists(detections, max_size=4))
def test_detected_round_trip(objects: list[DetectedObject]) -> None:
    msg = over_the_wire(detected_objects_to_msg(objects, HEADER))
    assert msg.header.frame_id == "map"
    back = msg_to_detected_objects(msg)
    assert len(back) == len(objects)
    for actual, expected in zip(back, objects):
        assert (actual.label, actual.num_points) == (expected.label, expected.num_points)
        assert_float32_equal(actual.score, expected.score)
        assert_boxes_close(actual.box, expected.box)


@settings(max_examples=200, deadline=None)
@given(objects=st.lists(tracks, max_size=4))
def test_tracked_round_trip(objects: list[TrackedObject]) -> None:
    back = msg_to_tracked_objects(over_the_wire(tracked_objects_to_msg(objects, HEADER)))
    assert len(back) == len(objects)
    for actual, expected in zip(back, objects):
        assert_tracks_close(actual, expected)


@settings(max_examples=200, deadline=None)
@given(track=tracks)
def test_tracked_twist_is_the_velocity_in_the_object_frame(track: TrackedObject) -> None:
    twist = tracked_objects_to_msg([track], HEADER).objects[0].twist.twist
    heading = np.array([math.cos(track.box.yaw), math.sin(track.box.yaw)])
    left = np.array([-heading[1], heading[0]])
    np.testing.assert_allclose([twist.linear.x, twist.linear.y], [track.velocity @ heading, track.velocity @ left],
                               atol=1e-10)
    assert twist.angular.z == track.yaw_rate


def test_tracked_twist_example() -> None:
    track = TrackedObject(object_id=1, label=ObjectClass.CAR, score=1.0, box=Box3D((0, 0, 0), (4, 2, 1.5), math.pi / 2),
                          velocity=np.array([0.0, 2.0]))
    linear = tracked_objects_to_msg([track], HEADER).objects[0].twist.twist.linear
    np.testing.assert_allclose([linear.x, linear.y], [2.0, 0.0], atol=1e-15)


@settings(max_examples=200, deadline=None)
@given(objects=st.lists(predictions, max_size=3))
def test_predicted_round_trip(objects: list[PredictedObject]) -> None:
    msg = over_the_wire(predicted_objects_to_msg(objects, HEADER))
    back = msg_to_predicted_objects(msg)
    assert len(back) == len(objects)
    for actual, expected, wire in zip(back, objects, msg.objects):
        assert_tracks_close(actual.track, expected.track)
        assert len(actual.paths) == len(expected.paths)
        for actual_path, expected_path, wire_path in zip(actual.paths, expected.paths, wire.predicted_paths):
            assert all(pose.position.z == expected.track.box.center[2] for pose in wire_path.path)
            np.testing.assert_array_equal(actual_path.positions, expected_path.positions)
            assert_angles_close(actual_path.yaws, expected_path.yaws)
            assert abs(actual_path.time_step - expected_path.time_step) <= 0.5e-9 + 1e-15
            assert_float32_equal(actual_path.probability, expected_path.probability)
            if expected_path.position_covariance is None:
                assert actual_path.position_covariance is None and len(wire_path.position_covariance) == 0
            else:
                np.testing.assert_array_equal(actual_path.position_covariance, expected_path.position_covariance)


@settings(max_examples=200, deadline=None)
@given(objects=st.lists(truths, max_size=4))
def test_ground_truth_round_trip(objects: list[GroundTruthObject]) -> None:
    back = msg_to_ground_truth_objects(over_the_wire(ground_truth_objects_to_msg(objects, HEADER)))
    assert len(back) == len(objects)
    for actual, expected in zip(back, objects):
        assert (actual.object_id, actual.label, actual.num_lidar_points, actual.is_static) == (
            expected.object_id, expected.label, expected.num_lidar_points, expected.is_static)
        assert_boxes_close(actual.box, expected.box)
        np.testing.assert_array_equal(actual.velocity, expected.velocity)  # container frame on the wire too
        assert actual.yaw_rate == expected.yaw_rate


def test_the_most_probable_hypothesis_wins() -> None:
    msg = detected_objects_to_msg([DetectedObject(ObjectClass.CAR, 0.8, Box3D((0, 0, 0), (1, 1, 1), 0.0))], HEADER)
    hypotheses = msg.objects[0].classification
    hypotheses[0].probability = 0.3
    hypotheses.append(type(hypotheses[0])(label=int(ObjectClass.VAN), probability=0.7))
    assert msg_to_detected_objects(msg)[0].label == ObjectClass.VAN


# ---- malformed messages: the error names the container, the object index and the field ---------

def sample_box(index: int) -> Box3D:
    return Box3D(center=(index, 2.0, 0.5), size=(4.0, 2.0, 1.5), yaw=0.3 * index)


def sample_track(index: int) -> TrackedObject:
    return TrackedObject(object_id=index, label=ObjectClass.CAR, score=0.9, box=sample_box(index),
                         velocity=np.array([1.0, 0.5]), pose_covariance=np.eye(6), velocity_covariance=np.eye(6))


def sample_path() -> PredictedPath:
    return PredictedPath(positions=np.arange(6.0).reshape(3, 2), yaws=np.zeros(3), time_step=0.5, probability=0.5,
                         position_covariance=np.tile(np.eye(2), (3, 1, 1)))


SAMPLES = {
    "DetectedObjects": (lambda: detected_objects_to_msg(
        [DetectedObject(ObjectClass.PEDESTRIAN, 0.7, sample_box(i), 10) for i in range(3)], HEADER),
        msg_to_detected_objects),
    "TrackedObjects": (lambda: tracked_objects_to_msg([sample_track(i) for i in range(3)], HEADER),
                       msg_to_tracked_objects),
    "PredictedObjects": (lambda: predicted_objects_to_msg(
        [PredictedObject(sample_track(i), [sample_path(), sample_path()]) for i in range(3)], HEADER),
        msg_to_predicted_objects),
    "GroundTruthObjects": (lambda: ground_truth_objects_to_msg(
        [GroundTruthObject(i, ObjectClass.BUS, sample_box(i), np.array([1.0, 0.0])) for i in range(3)], HEADER),
        msg_to_ground_truth_objects),
}


def set_field(path: str, value) -> Callable:
    """A corruption that sets a dotted field path such as "predicted_paths[1].path[0].position.x"."""
    *parents, last = path.split(".")

    def corrupt(item) -> None:
        for part in parents:
            name, _, index = part.partition("[")
            item = getattr(item, name)[int(index[:-1])] if index else getattr(item, name)
        name, _, index = last.partition("[")
        if index:
            getattr(item, name)[int(index[:-1])] = value
        else:
            setattr(item, name, value)
    return corrupt


def truncate_covariance(item) -> None:
    item.predicted_paths[1].position_covariance = item.predicted_paths[1].position_covariance[:7]


SHARED_CLASSIFICATION_CORRUPTIONS = [
    (set_field("classification[0].label", 9), r"classification\[0\]\.label = 9 is not a known label \(0 UNKNOWN, "),
    (set_field("classification[0].probability", 1.5), r"classification\[0\]\.probability = 1.5 is not a probability"),
    (set_field("classification", []), r"classification is empty"),
]
CORRUPTIONS = {
    "DetectedObjects": SHARED_CLASSIFICATION_CORRUPTIONS + [
        (set_field("existence_probability", math.nan), r"existence_probability = nan is not a probability"),
        (set_field("bbox.size.y", -1.0), r"bbox\.size = \[4\.0, -1\.0, 1\.5\] has a negative extent"),
        (set_field("bbox.size.z", math.inf), r"bbox\.size is not finite"),
        (set_field("bbox.center.position.x", math.nan), r"bbox\.center: position is not finite"),
        (set_field("bbox.center.orientation.w", 0.5), r"bbox\.center: orientation \(x, y, z, w\) = .* has norm"),
    ],
    "TrackedObjects": SHARED_CLASSIFICATION_CORRUPTIONS + [
        (set_field("existence_probability", -0.25), r"existence_probability = -0.25 is not a probability"),
        (set_field("age", math.inf), r"age is not finite"),
        (set_field("size.x", -2.0), r"size = \[-2\.0, 2\.0, 1\.5\] has a negative extent"),
        (set_field("pose.pose.orientation.z", 0.9), r"pose\.pose: orientation .* has norm"),
        (set_field("pose.covariance[7]", math.nan), r"pose\.covariance\[1\] is not finite"),
        (set_field("twist.covariance[35]", math.inf), r"twist\.covariance\[5\] is not finite"),
        (set_field("twist.twist.linear.x", math.inf), r"twist\.twist \(linear, angular\) is not finite"),
    ],
    "PredictedObjects": SHARED_CLASSIFICATION_CORRUPTIONS + [
        (set_field("initial_pose.pose.position.y", math.nan), r"initial_pose\.pose: position is not finite"),
        (set_field("initial_twist.twist.angular.z", math.nan), r"initial_twist\.twist \(linear, angular\) is not"),
        (set_field("size.z", -0.1), r"size = .* has a negative extent"),
        (truncate_covariance, r"predicted_paths\[1\]: position_covariance has 7 values; "
                              r"expected 4 \* len\(path\) = 12 or none"),
        (set_field("predicted_paths[1].position_covariance[5]", math.nan),
         r"predicted_paths\[1\]: position_covariance is not finite"),
        (set_field("predicted_paths[0].path[2].orientation.w", 0.5), r"predicted_paths\[0\]: path: orientation\[2\]"),
        (set_field("predicted_paths[1].path[1].position.x", math.inf),
         r"predicted_paths\[1\]: path\[1\] is not finite"),
        (set_field("predicted_paths[0].confidence", 2.0), r"predicted_paths\[0\]: confidence = 2.0 is not a probab"),
        (set_field("predicted_paths[1].time_step.nanosec", 0),
         r"predicted_paths\[1\]: time_step = 0.0 s is not positive"),
        (set_field("predicted_paths[1].time_step.nanosec", 10 ** 9), r"predicted_paths\[1\]: time_step: Duration: nanosec 1000000000"),
    ],
    "GroundTruthObjects": [
        (set_field("label", 7), r"label = 7 is not a known label"),
        (set_field("twist.angular.z", math.nan), r"twist \(linear, angular\) is not finite"),
        (set_field("bbox.size.x", -1.0), r"bbox\.size = .* has a negative extent"),
        (set_field("bbox.center.orientation.x", 0.2), r"bbox\.center: orientation .* has norm"),
    ],
}


@pytest.mark.parametrize("container, corrupt, reason", [
    (container, corrupt, reason) for container, cases in CORRUPTIONS.items() for corrupt, reason in cases])
@pytest.mark.parametrize("index", [0, 2])
def test_malformed_objects_are_rejected_naming_index_and_field(container: str, corrupt: Callable, reason: str,
                                                               index: int) -> None:
    build, read = SAMPLES[container]
    msg = build()
    read(msg)  # the untouched sample is valid
    corrupt(msg.objects[index])
    with pytest.raises(MalformedMessageError, match=rf"^{container}: objects\[{index}\]: {reason}"):
        read(msg)
