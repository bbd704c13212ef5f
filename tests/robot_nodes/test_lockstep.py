"""sim_world in lockstep over real rclpy: simulated time waits for the acknowledgements, goes on
after the timeout (counted), and a run with a lockstep driver gives the same drive however slow the
acknowledging node is."""
from __future__ import annotations

import threading
import time

import pytest
from nav_msgs.msg import Odometry
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import qos_profile_sensor_data
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import PointCloud2

from edge_robot_msgs.msg import DetectedObjects
from robot_nodes import graph, topics
from robot_nodes.conversions import stamp_ns
from robot_nodes.sim_messages import LockstepConfig
from ros_helpers import spinning, wait_until


class ScanAcknowledger(Node):
    """Answers each lidar scan with an empty DetectedObjects stamped as it, `delay_s` later, while
    `answering` is set; keeps the newest /clock and the odometry it hears."""

    def __init__(self, context, delay_s: float = 0.0) -> None:
        super().__init__("scan_acknowledger", context=context)
        self.delay_s = delay_s
        self.answering = threading.Event()
        self.answering.set()
        self.clock_ns = 0
        self.odometry: list[tuple[int, float, float, float]] = []
        self.pub = self.create_publisher(DetectedObjects, topics.DETECTED_OBJECTS, 10)
        self.create_subscription(PointCloud2, topics.LIDAR_POINTS, self.on_scan, qos_profile_sensor_data)
        self.create_subscription(Clock, topics.CLOCK, self.on_clock, 100)
        self.create_subscription(Odometry, topics.ODOMETRY, self.on_odometry, 100)

    def on_scan(self, message: PointCloud2) -> None:
        if not self.answering.is_set():
            return
        time.sleep(self.delay_s)
        self.pub.publish(DetectedObjects(header=message.header))

    def on_clock(self, message: Clock) -> None:
        self.clock_ns = stamp_ns(message.clock)

    def on_odometry(self, message: Odometry) -> None:
        pose = message.pose.pose
        self.odometry.append((stamp_ns(message.header.stamp), pose.position.x, pose.position.y, pose.orientation.z))


def lockstep_world(context, acknowledgements: list[str], timeout: float):
    # As in the main job: the world waits for its subscribers and its driver before it starts.
    spec = graph.sim_world(real_time_factor=0.0, wait_for_subscribers=10.0,
                           wait_for_command=10.0 if f"{topics.CMD_VEL}:odometry" in acknowledgements else 0.0,
                           lockstep_acknowledgements=acknowledgements)
    return spec.create(context=context, parameter_overrides=[
        Parameter("lockstep.timeout", value=timeout), Parameter("camera_rate", value=0.0)])


def test_simulated_time_waits_for_the_acknowledgement(context):
    acknowledger = ScanAcknowledger(context)
    acknowledger.answering.clear()
    world = lockstep_world(context, [f"{topics.DETECTED_OBJECTS}:lidar"], timeout=60.0)
    with spinning(context, world, acknowledger):
        assert wait_until(lambda: acknowledger.clock_ns >= 100_000_000)
        time.sleep(1.0)  # unanswered: the world stands at its first scan
        assert acknowledger.clock_ns == 100_000_000
        acknowledger.answering.set()
        # The held scan is lost to the acknowledger; answering from the next on lets time run on
        # only once the world's wait ends, so answer it by hand.
        acknowledger.pub.publish(DetectedObjects(header=world.messages.header(world.config.frames.lidar)))
        assert wait_until(lambda: acknowledger.clock_ns >= 1_000_000_000)
    assert not world.lockstep_timeouts


def test_lockstep_goes_on_after_the_timeout_and_counts_it(context):
    world = lockstep_world(context, [f"{topics.DETECTED_OBJECTS}:lidar"], timeout=0.2)
    with spinning(context, world):
        assert wait_until(lambda: world.messages.world.time >= 0.35)
    assert world.lockstep_timeouts[topics.DETECTED_OBJECTS] >= 3


def drive(context, delay_s: float, seconds: float = 1.5) -> list[tuple[int, float, float, float]]:
    """Odometry of a lockstep drive by the lane-keeping controller with a scan acknowledger that
    takes `delay_s` per scan."""
    acknowledger = ScanAcknowledger(context, delay_s)
    world = lockstep_world(context, [f"{topics.CMD_VEL}:odometry", f"{topics.DETECTED_OBJECTS}:lidar"], timeout=30.0)
    controller = graph.lane_keeping_controller(lockstep=True).create(context=context)
    with spinning(context, world, controller, acknowledger):
        assert wait_until(lambda: world.messages.world.time >= seconds, timeout_s=60.0)
    assert not world.lockstep_timeouts
    # Stamp 0: the start's odometry, repeated while the world waits for the first command.
    return [entry for entry in acknowledger.odometry if 0 < entry[0] <= int(seconds * 1e9)]


@pytest.mark.timeout(180)
def test_a_lockstep_drive_does_not_depend_on_how_slow_the_stack_is(context):
    fast, slow = drive(context, 0.0), drive(context, 0.05)
    assert len(fast) >= 70 and fast == slow
    assert fast[-1][1] > fast[0][1] + 1.0  # the robot did drive


def test_acknowledgements_are_checked():
    with pytest.raises(ValueError, match="topic:sensor"):
        LockstepConfig(acknowledgements=["/cmd_vel:radar"])
    with pytest.raises(ValueError, match="topic:sensor"):
        LockstepConfig(acknowledgements=["/not/in/the/contract:lidar"])
    assert LockstepConfig(acknowledgements=[f"{topics.CMD_VEL}:odometry"]).by_sensor()["odometry"] == [topics.CMD_VEL]
