"""Restarts by the bringup over real rclpy: a node that raises in a callback, or whose own thread ends
on an exception, is destroyed and created again from its NodeSpec after a doubling back-off while
the simulated world keeps publishing, until its restart budget; the trajectory predictor's track ids
go on across its restart and its statistics go on counting."""
from __future__ import annotations

import threading
import time
from contextlib import contextmanager
from dataclasses import replace

from geometry_msgs.msg import Twist
from nav_msgs.msg import Odometry
from rclpy.node import Node
from std_msgs.msg import String

from faulty_nodes import FAULT_TOPIC, faulty
from robot_nodes import graph, topics
from robot_nodes.bringup import Bringup, RestartPolicy
from robot_nodes.conversions import msg_to_tracked_objects
from ros_helpers import wait_until
from test_trajectory_predictor import Harness

POLICY = RestartPolicy(first_delay_s=0.5, max_delay_s=1.0, max_restarts=2)
"""Back-offs of 0.5 s and 1.0 s (capped), then the bringup gives up."""
SCHEDULING_SLACK_S = 3.0
"""How much later than its back-off a restart may come on a busy machine (the node's start-up included)."""


class FaultSender(Node):
    """Sends faults and notes when odometry and commands arrive (wall monotonic seconds)."""

    def __init__(self, context) -> None:
        super().__init__("fault_sender", context=context)
        self.faults = self.create_publisher(String, FAULT_TOPIC, 10)
        self.odometry_times: list[float] = []
        self.command_times: list[float] = []
        self.create_subscription(Odometry, topics.ODOMETRY, lambda _: self.odometry_times.append(time.monotonic()), 100)
        self.create_subscription(Twist, topics.CMD_VEL, lambda _: self.command_times.append(time.monotonic()), 100)

    def send_until(self, fault: str, happened) -> bool:
        """Send `fault` every 0.2 s until happened() (a new subscriber may not have matched yet)."""
        return wait_until(lambda: happened() or (self.faults.publish(String(data=fault)) or time.sleep(0.2)))


@contextmanager
def supervised(bringup: Bringup):
    """The bringup's spin_until on a background thread (yielded) until the block ends; then shut down."""
    stop = threading.Event()
    spinner = threading.Thread(target=bringup.spin_until, args=(stop.is_set,), daemon=True)
    spinner.start()
    try:
        yield spinner
    finally:
        stop.set()
        spinner.join()
        bringup.shutdown()


def test_a_dead_node_is_restarted_with_a_doubling_back_off_while_the_world_runs_until_its_budget():
    world = graph.sim_world(real_time_factor=1.0)
    world = replace(world, parameters={**world.parameters, "camera_rate": 0.0, "lidar_rate": 1.0})
    bringup = Bringup([world, faulty(graph.lane_keeping_controller())], restart_policy=POLICY)
    sender = FaultSender(bringup.context)
    bringup.add_node(sender)
    name = "lane_keeping_controller"
    with supervised(bringup) as spinner:
        for restart, fault in enumerate(("callback", "thread")):
            assert wait_until(lambda: sender.command_times and sender.command_times[-1] > time.monotonic() - 0.5)
            instance = bringup.node(name)
            assert sender.send_until(f"{name}:{fault}", lambda: len(bringup.outages) > restart)
            outage = bringup.outages[restart]
            assert outage.node == name and fault in outage.why
            assert wait_until(lambda: outage.restarted_s is not None)
            back_off = POLICY.delay_s(restart)
            assert back_off <= outage.restarted_s - outage.died_s < back_off + SCHEDULING_SLACK_S
            assert bringup.node(name) is not instance and bringup.restarts[name] == restart + 1
            # The world went on while the controller was down, and the new controller drives it.
            assert any(outage.died_s < arrival < outage.restarted_s for arrival in sender.odometry_times)
            assert wait_until(lambda: sender.command_times[-1] > outage.restarted_s)
        assert POLICY.delay_s(0) == 0.5 and POLICY.delay_s(1) == POLICY.delay_s(5) == 1.0
        assert sender.send_until(f"{name}:callback", lambda: not spinner.is_alive())  # spin_until returned
    assert bringup.given_up == [name] and bringup.restarts == {name: 2}
    assert len(bringup.outages) == 3 and bringup.outages[-1].restarted_s is None


def test_track_ids_go_on_across_a_restart_of_the_trajectory_predictor():
    predictor = graph.trajectory_predictor()
    predictor = replace(predictor, parameters={**predictor.parameters, "method": "constant_velocity"})
    bringup = Bringup([faulty(predictor)], restart_policy=POLICY)
    harness, sender = Harness(bringup.context), FaultSender(bringup.context)
    bringup.add_node(harness)
    bringup.add_node(sender)

    def track_ids(messages) -> set[int]:
        return {track.object_id for message in messages for track in msg_to_tracked_objects(message)}

    def play(times) -> None:
        node = bringup.node("trajectory_predictor")
        assert wait_until(lambda: harness.connected(node))
        harness.publish_mount()
        assert wait_until(lambda: node.frame_poses.has_mount("base_link", "lidar"))
        for seconds in times:
            harness.publish_frame(seconds, node)
        assert wait_until(lambda: node.counters.processed == len(times))

    with supervised(bringup):
        play([0.1 * step for step in range(1, 16)])
        assert wait_until(lambda: len(harness.tracks) == 15)
        before = track_ids(harness.tracks)
        tracked = len(harness.tracks)
        assert sender.send_until("trajectory_predictor:callback",
                                 lambda: bringup.outages and bringup.outages[0].restarted_s is not None)
        play([0.1 * step for step in range(16, 31)])  # stamps go on, as a live stack's do
        after = track_ids(harness.tracks[tracked:])
        statistics = bringup.node("trajectory_predictor").statistics.totals()
    assert before and after and min(after) > max(before)
    assert statistics.processed == 30 and statistics.failed == 1
