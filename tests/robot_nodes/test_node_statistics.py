"""Node statistics over real rclpy: what a node publishes on /node_statistics accounts for every
input it was sent (counts, one processing time and stamp per processed input, CPU time), a last
message comes from destroy_node, and the wall-clock timer keeps publishing while simulated time
stands still."""
from __future__ import annotations

import math
import os
import threading

import numpy as np
import pytest
from rclpy.node import Node
from rclpy.parameter import Parameter
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import PointField

from edge_robot_msgs.msg import NodeStatistics
from perception.objects import Box3D
from robot_nodes import graph, node_statistics, topics
from robot_nodes.conversions import seconds_to_stamp, stamp_to_seconds
from robot_nodes.node_statistics import STATISTICS_QOS, NodeStatisticsPublisher
from ros_helpers import spinning, wait_until
from test_lidar_detector import FIRST_DETECTION_TIMEOUT_S, cloud, detector_node, points_in_range, untrained_model
from test_lidar_detector import Harness as CloudHarness
from test_trajectory_predictor import Harness as DetectionsHarness
from test_trajectory_predictor import predictor_node, serving

__all__ = ["untrained_model"]  # a fixture, used by name


class StatisticsListener(Node):
    """Keeps every NodeStatistics message, per node."""

    def __init__(self, context) -> None:
        super().__init__("statistics_listener", context=context)
        self._lock = threading.Lock()
        self._messages: list[NodeStatistics] = []
        self.subscription = self.create_subscription(NodeStatistics, topics.NODE_STATISTICS, self._keep,
                                                     STATISTICS_QOS)

    def _keep(self, message: NodeStatistics) -> None:
        with self._lock:
            self._messages.append(message)

    def of(self, node: str) -> list[NodeStatistics]:
        with self._lock:
            return [message for message in self._messages if message.node == node]

    def hears(self, statistics: NodeStatisticsPublisher) -> bool:
        return self.subscription.get_publisher_count() > 0 and statistics.publisher.get_subscription_count() > 0


@pytest.fixture
def final_message_only(monkeypatch):
    """Nodes created from here on publish their statistics only from destroy_node."""
    monkeypatch.setattr(node_statistics, "PUBLISH_PERIOD_S", 3600.0)


def samples(messages: list[NodeStatistics]) -> tuple[list[float], list[float]]:
    """(processing times in ms, input stamps in s) of all the messages, in order."""
    return ([time for message in messages for time in message.processing_times_ms],
            [stamp_to_seconds(stamp) for message in messages for stamp in message.input_stamps])


def assert_cpu_time_plausible(message: NodeStatistics) -> None:
    assert 0.0 < message.cpu_time <= message.wall_time * os.cpu_count()


CLOUDS = 6
MALFORMED_CLOUD = 2


def test_a_detectors_final_statistics_account_for_every_cloud(context, untrained_model, final_message_only):
    detector, harness, listener = detector_node(context, untrained_model), CloudHarness(context), \
        StatisticsListener(context)
    stamps = [1.0 + 0.1 * index for index in range(CLOUDS)]
    with spinning(context, listener):
        with spinning(context, detector, harness):
            assert wait_until(lambda: harness.connected(detector) and listener.hears(detector.statistics))
            for index, seconds in enumerate(stamps):
                message = cloud(points_in_range(500, seed=index), seconds)
                if index == MALFORMED_CLOUD:
                    message.fields = [PointField(name=name, offset=4 * field, datatype=PointField.FLOAT32, count=1)
                                      for field, name in enumerate(("x", "y", "z", "ring"))]
                before = detector.counters.received
                harness.publisher.publish(message)
                assert wait_until(lambda: detector.counters.received > before)
            counters = detector.counters
            assert wait_until(lambda: counters.processed + counters.dropped_frames == CLOUDS - 1,
                              timeout_s=FIRST_DETECTION_TIMEOUT_S)
            assert listener.of("lidar_detector") == []
        assert wait_until(lambda: listener.of("lidar_detector"))  # published by destroy_node
    [final] = listener.of("lidar_detector")
    assert (final.received, final.rejected, final.failed) == (CLOUDS, 1, 0)
    assert final.processed + final.dropped == CLOUDS - 1 and final.processed >= 1
    assert (final.processed, final.dropped) == (counters.processed, counters.dropped_frames)
    times, input_stamps = samples([final])
    assert len(times) == len(input_stamps) == final.processed
    np.testing.assert_allclose(times, list(detector.processing_times_ms), rtol=1e-6)
    well_formed = [seconds for index, seconds in enumerate(stamps) if index != MALFORMED_CLOUD]
    assert input_stamps[-1] == pytest.approx(well_formed[-1])  # the newest cloud is never dropped
    assert all(seconds in well_formed for seconds in input_stamps) and input_stamps == sorted(input_stamps)
    if final.dropped == 0:
        assert input_stamps == pytest.approx(well_formed)
    assert_cpu_time_plausible(final)


def test_a_predictors_final_statistics_account_for_every_detections_message(context, final_message_only):
    node, harness, listener = predictor_node(context, method="constant_velocity"), DetectionsHarness(context), \
        StatisticsListener(context)
    stamps = [0.1, 0.2, 0.3, 0.4]
    with spinning(context, listener):
        with serving(context, node, harness):
            assert wait_until(lambda: listener.hears(node.statistics))
            for index, seconds in enumerate(stamps):
                nan_box = Box3D((math.nan, 10.0, -1.0), (4.5, 1.9, 1.6), 0.0) if index == 1 else None
                harness.publish_frame(seconds, node, car_box=nan_box)
                assert wait_until(lambda: node.counters.processed + node.counters.rejected == index + 1)
        assert wait_until(lambda: listener.of("trajectory_predictor"))
    [final] = listener.of("trajectory_predictor")
    assert (final.received, final.processed, final.rejected, final.dropped, final.failed) == (4, 3, 1, 0, 0)
    times, input_stamps = samples([final])
    assert input_stamps == pytest.approx([0.1, 0.3, 0.4])
    np.testing.assert_allclose(times, list(node.processing_times_ms), rtol=1e-6)
    assert_cpu_time_plausible(final)


def test_statistics_come_every_wall_second_while_simulated_time_stands_still(context):
    controller = graph.lane_keeping_controller().create(
        context=context, parameter_overrides=[Parameter("use_sim_time", value=True)])
    listener = StatisticsListener(context)
    clock = listener.create_publisher(Clock, topics.CLOCK, 10)
    with spinning(context, listener):
        with spinning(context, controller):
            assert wait_until(lambda: listener.hears(controller.statistics))
            # No /clock yet: simulated time stands at 0, the ROS-time control timer never fires.
            assert wait_until(lambda: len(listener.of("lane_keeping_controller")) >= 2, timeout_s=5.0)
            standing = listener.of("lane_keeping_controller")
            assert all(stamp_to_seconds(m.header.stamp) == 0.0 and m.received == 0 for m in standing)
            assert 0.5 < standing[1].wall_time - standing[0].wall_time < 2.0
            assert wait_until(lambda: clock.get_subscription_count() > 0)
            for step in range(1, 21):
                clock.publish(Clock(clock=seconds_to_stamp(0.05 * step)))
                assert wait_until(lambda: controller.get_clock().now().nanoseconds >= round(0.05 * step * 1e9))
            assert wait_until(lambda: controller.commands >= 5)
        commands = controller.commands
        assert wait_until(lambda: listener.of("lane_keeping_controller")[-1].processed == commands)
    messages = listener.of("lane_keeping_controller")
    final = messages[-1]
    assert final.received == final.processed == commands and final.rejected == final.dropped == final.failed == 0
    assert stamp_to_seconds(final.header.stamp) == pytest.approx(1.0)
    times, input_stamps = samples(messages)
    assert len(times) == len(input_stamps) == commands
    assert all(0.0 < seconds <= 1.0 for seconds in input_stamps) and input_stamps == sorted(input_stamps)
    assert all(time > 0.0 for time in times)
    assert_cpu_time_plausible(final)
