"""trajectory_predictor over real rclpy: detections in the lidar frame become tracks with stable ids
in odom and predicted futures from the shipped model; NaN objects are rejected while the node keeps
serving; time going backwards resets the tracks; empty frames coast; start-up failures."""
from __future__ import annotations

import math
from contextlib import contextmanager

import numpy as np
import pytest
from nav_msgs.msg import Odometry
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import DurabilityPolicy, QoSProfile
from std_msgs.msg import Header
from tf2_msgs.msg import TFMessage
from visualization_msgs.msg import Marker, MarkerArray

from edge_robot_msgs.msg import DetectedObjects, PredictedObjects, TrackedObjects
from perception.objects import Box3D, DetectedObject, ObjectClass
from robot_nodes import graph, topics
from robot_nodes.conversions import (detected_objects_to_msg, make_odometry, make_transform, msg_to_predicted_objects,
                                     msg_to_tracked_objects, seconds_to_stamp)
from robot_nodes.runner import StartupError
from robot_nodes.trajectory_predictor import TrajectoryPredictorNode
from ros_helpers import spinning, wait_until

LIDAR_MOUNT = (1.0, 0.0, 1.8)
"""The lidar in base_link, metres (no rotation)."""
EGO_SPEED = 5.0
"""The robot drives along +x of odom."""
CAR_SPEED = 8.0
"""The tracked car drives along +x of odom, 10 m to the left of the robot."""


def predictor_node(context, **parameters) -> TrajectoryPredictorNode:
    overrides = [Parameter(name, value=value) for name, value in parameters.items()]
    return graph.trajectory_predictor().create(context=context, parameter_overrides=overrides)


class Harness(Node):
    """Plays odometry, the lidar mount and detections; keeps the node's outputs."""

    def __init__(self, context) -> None:
        super().__init__("harness", context=context)
        self.detections = self.create_publisher(DetectedObjects, topics.DETECTED_OBJECTS, 10)
        self.odometry = self.create_publisher(Odometry, topics.ODOMETRY, 100)
        self.tf_static = self.create_publisher(TFMessage, topics.TF_STATIC,
                                               QoSProfile(depth=1, durability=DurabilityPolicy.TRANSIENT_LOCAL))
        self.tracks: list[TrackedObjects] = []
        self.predicted: list[PredictedObjects] = []
        self.markers: list[MarkerArray] = []
        self.create_subscription(TrackedObjects, topics.TRACKED_OBJECTS, self.tracks.append, 100)
        self.create_subscription(PredictedObjects, topics.PREDICTED_OBJECTS, self.predicted.append, 100)
        self.create_subscription(MarkerArray, topics.TRAJECTORY_PREDICTOR_MARKERS, self.markers.append, 100)

    def connected(self, node: TrajectoryPredictorNode) -> bool:
        return (self.detections.get_subscription_count() > 0 and self.odometry.get_subscription_count() > 0
                and node.pub_predicted.get_subscription_count() > 0 and node.pub_tracks.get_subscription_count() > 0
                and node.pub_markers.get_subscription_count() > 0)

    def publish_mount(self) -> None:
        self.tf_static.publish(TFMessage(transforms=[make_transform(seconds_to_stamp(0.0), "base_link", "lidar",
                                                                    LIDAR_MOUNT, yaw=0.0)]))

    def publish_frame(self, seconds: float, node: TrajectoryPredictorNode, with_car: bool = True,
                      car_box: Box3D | None = None) -> None:
        """Odometry at `seconds` (once the node has it), then the car (if any) as the lidar sees it."""
        ego_x = EGO_SPEED * seconds
        self.odometry.publish(make_odometry(seconds_to_stamp(seconds), "odom", "base_link", ego_x, 0.0, 0.0,
                                            EGO_SPEED, 0.0))
        assert wait_until(lambda: node.frame_poses.newest_odometry_ns == round(seconds * 1e9))
        car_x = 5.0 + CAR_SPEED * seconds
        box = car_box or Box3D((car_x - ego_x - LIDAR_MOUNT[0], 10.0, -1.0), (4.5, 1.9, 1.6), 0.0)
        objects = [DetectedObject(ObjectClass.CAR, 0.9, box)] if with_car else []
        self.detections.publish(detected_objects_to_msg(objects, Header(stamp=seconds_to_stamp(seconds),
                                                                        frame_id="lidar")))


@contextmanager
def serving(context, node, harness):
    """Spin the node and the harness, connected, with the lidar mount known to the node."""
    with spinning(context, node, harness):
        assert wait_until(lambda: harness.connected(node))
        harness.publish_mount()
        assert wait_until(lambda: node.frame_poses.has_mount("base_link", "lidar"))
        yield


def run_frames(context, node, harness, times, **frame_options) -> None:
    with serving(context, node, harness):
        for seconds in times:
            before = node.counters.received
            harness.publish_frame(seconds, node, **frame_options)
            assert wait_until(lambda: node.counters.received > before)
        counters = node.counters
        # `received` counts a message as its callback starts; wait until the last one is handled too.
        assert wait_until(lambda: counters.processed + counters.rejected + counters.skipped_without_pose == len(times))
        assert wait_until(lambda: min(len(harness.predicted), len(harness.tracks), len(harness.markers))
                          >= counters.processed)


def test_detections_become_tracks_in_odom_with_predicted_futures(context):
    node, harness = predictor_node(context), Harness(context)
    run_frames(context, node, harness, [0.1 * step for step in range(1, 41)])
    assert node.counters.processed == 40 and node.counters.rejected == 0
    tracks = msg_to_tracked_objects(harness.tracks[-1])
    assert harness.tracks[-1].header.frame_id == "odom" and len(tracks) == 1
    assert len({o.object_id for message in harness.tracks for o in msg_to_tracked_objects(message)}) == 1  # stable id
    track = tracks[0]
    np.testing.assert_allclose(track.box.center[:2], [5.0 + CAR_SPEED * 4.0, 10.0], atol=0.3)
    np.testing.assert_allclose(track.velocity, [CAR_SPEED, 0.0], atol=0.5)
    predicted = msg_to_predicted_objects(harness.predicted[-1])[0]
    assert len(predicted.paths) == 3 and predicted.paths[0].time_step == pytest.approx(0.5)
    assert sum(path.probability for path in predicted.paths) == pytest.approx(1.0, abs=1e-5)
    assert len(predicted.paths[0].positions) == 6  # 3 s at the model's 2 Hz
    # The most likely future of a car cruising straight at 8 m/s ends near 24 m ahead.
    end = predicted.paths[0].positions[-1]
    assert abs(end[0] - (track.box.center[0] + 3.0 * CAR_SPEED)) < 4.0 and abs(end[1] - 10.0) < 2.0
    markers = harness.markers[-1].markers
    assert markers[0].action == Marker.DELETEALL
    assert len([m for m in markers if m.type == Marker.LINE_STRIP]) == 3
    assert node.processing_times_ms and max(node.processing_times_ms) < 5000.0


def test_nan_objects_are_rejected_and_the_next_frame_is_served(context):
    node, harness = predictor_node(context, method="constant_velocity"), Harness(context)
    with serving(context, node, harness):
        harness.publish_frame(0.1, node, car_box=Box3D((math.nan, 10.0, -1.0), (4.5, 1.9, 1.6), 0.0))
        assert wait_until(lambda: node.counters.received == 1)
        harness.publish_frame(0.2, node)
        assert wait_until(lambda: node.counters.processed == 1)
    assert node.inputs.rejected["~/input/objects"] == 1 and node.counters.rejected == 1
    assert "nan" in node.inputs.last_reason["~/input/objects"].lower()


def test_time_going_backwards_resets_the_tracks(context):
    node, harness = predictor_node(context, method="constant_velocity"), Harness(context)
    times = [0.1 * step for step in range(1, 11)]
    run_frames(context, node, harness, times + times)  # a bag played twice
    assert node.counters.resets == 1 and node.counters.processed == 20
    first_ids = {o.object_id for m in harness.tracks[:10] for o in msg_to_tracked_objects(m)}
    second_ids = {o.object_id for m in harness.tracks[10:] for o in msg_to_tracked_objects(m)}
    assert first_ids and second_ids and not first_ids & second_ids
    # Right after the reset nothing is confirmed yet: the tracker starts over.
    assert not msg_to_tracked_objects(harness.tracks[10])


def test_empty_frames_coast_then_delete_the_track(context):
    node, harness = predictor_node(context, method="constant_velocity"), Harness(context)
    with serving(context, node, harness):
        for step in range(1, 31):
            before = node.counters.received
            harness.publish_frame(0.1 * step, node, with_car=step <= 10)
            assert wait_until(lambda: node.counters.received > before)
        assert wait_until(lambda: len(harness.tracks) == 30)
    counts = [len(m.objects) for m in harness.tracks]
    assert counts[9] == 1 and counts[12] == 1  # coasting through a short gap
    assert counts[-1] == 0  # deleted after max_coast_time (1 s)


def test_detections_before_odometry_are_skipped_with_a_reason(context):
    node, harness = predictor_node(context, method="constant_velocity"), Harness(context)
    with spinning(context, node, harness):
        assert wait_until(lambda: harness.connected(node))
        harness.detections.publish(detected_objects_to_msg([], Header(stamp=seconds_to_stamp(1.0), frame_id="lidar")))
        assert wait_until(lambda: node.counters.received == 1)
    assert node.counters.skipped_without_pose == 1 and node.counters.processed == 0


def test_a_missing_model_fails_at_start_up_naming_the_file(context):
    with pytest.raises(StartupError, match=r"/no/such/model\.onnx: no such file.*model_path"):
        predictor_node(context, model_path="/no/such/model.onnx")


def test_a_doubled_detection_does_not_give_a_second_track(context):
    """Detections carry no ids: a detector that reports one car twice must not make two tracks."""
    node, harness = predictor_node(context, method="constant_velocity"), Harness(context)
    original = harness.detections.publish

    def doubled(message):
        message.objects = list(message.objects) * 2
        original(message)
    harness.detections.publish = doubled
    run_frames(context, node, harness, [0.1 * step for step in range(1, 11)])
    ids = {o.object_id for message in harness.tracks for o in msg_to_tracked_objects(message)}
    assert len(ids) == 1 and node.tracker.counters.duplicate_detections > 0
