"""Clock jumps over real rclpy: each node that keeps time-dependent state is driven on /clock (or on
stamped inputs) with inputs, then time jumps back (a bag loop, a simulator reset) and forward (a
seek); the node resets that state explicitly, logs one warning per jump, raises nothing and serves
the next messages. The bag recorder has nothing to reset: it records on, each message at the
clock of its reception (a looped /clock gives a bag whose times go back). The trajectory predictor's reset on detections going back is in
test_trajectory_predictor.py (test_time_going_backwards_resets_the_tracks)."""
from __future__ import annotations

from geometry_msgs.msg import PoseStamped, Twist
from nav_msgs.msg import Odometry
from rclpy.node import Node
from rosgraph_msgs.msg import Clock
from std_msgs.msg import Header, String

import test_gsrmr_nodes
import test_lidar_detector
import test_onboard_llm_node
from mixed_reality.stream import scaled_intrinsics
from perception.objects import Box3D, DetectedObject, ObjectClass
from robot_nodes import graph, topics
from robot_nodes.bags import BagReader
from robot_nodes.conversions import (camera_info_from_intrinsics, detected_objects_to_msg, make_odometry,
                                     numpy_to_image, se3_to_pose, seconds_to_stamp, stamp_to_seconds)
from ros_helpers import spinning, wait_until
from test_croa_planner_node import CAR, EGO_Y, Harness as PlannerHarness, planner_node, predicted
from test_gsrmr_nodes import (CAMERA, RemoteHarness, RobotHarness, camera_to_odom, server_node, settled, true_frame,
                              uplink_node)
from test_lidar_detector import Harness as CloudHarness, cloud, detector_node, points_in_range

scene_file = test_gsrmr_nodes.scene_file
untrained_model = test_lidar_detector.untrained_model
cache = test_onboard_llm_node.cache

JUMP_BACK_TO = 1.0
"""Where /clock jumps back to: the start of a looped bag."""
JUMP_FORWARD_S = 30.0
"""How far /clock jumps forward: more than robot_nodes.time_jumps.FORWARD_JUMP_S."""


class ClockDriver(Node):
    """Publishes /clock."""

    def __init__(self, context) -> None:
        super().__init__("clock_driver", context=context)
        self.publisher = self.create_publisher(Clock, topics.CLOCK, 10)
        self.now = 10.0

    def set(self, seconds: float, node: Node) -> None:
        """/clock to `seconds`, once the node's clock shows it."""
        self.now = seconds
        self.publisher.publish(Clock(clock=seconds_to_stamp(seconds)))
        assert wait_until(lambda: abs(node.get_clock().now().nanoseconds - seconds * 1e9) < 1e3)


def warnings_about(capfd, text: str) -> int:
    """How many lines of the nodes' log so far contain `text` (rcutils logs to stderr)."""
    return sum(text in line for line in capfd.readouterr().err.splitlines())


def test_the_detector_drops_the_waiting_cloud_and_detects_after_each_jump(context, untrained_model, capfd):
    detector, harness, clock = detector_node(context, untrained_model), CloudHarness(context), ClockDriver(context)
    with spinning(context, detector, harness, clock):
        assert wait_until(lambda: harness.connected(detector) and clock.publisher.get_subscription_count() > 0)
        for jump, expected_resets in ((None, 0), (JUMP_BACK_TO, 1), (JUMP_BACK_TO + JUMP_FORWARD_S, 2)):
            clock.set(jump or clock.now, detector)
            answered = len(harness.objects)
            harness.publisher.publish(cloud(points_in_range(300), seconds=clock.now))
            assert wait_until(lambda: harness.answered(answered + 1), timeout_s=test_lidar_detector.FIRST_DETECTION_TIMEOUT_S)
            assert detector.counters.resets == expected_resets
    assert detector.counters.failed_frames == 0 and detector.counters.processed == 3
    log = capfd.readouterr().err
    assert log.count("ROS time jumped back") == 1 and log.count("ROS time jumped forward") == 1
    assert "the waiting cloud reset" in log


class OdometryDriver(Node):
    """Publishes odometry and keeps the commands."""

    def __init__(self, context) -> None:
        super().__init__("odometry_driver", context=context)
        self.odometry = self.create_publisher(Odometry, topics.ODOMETRY, 10)
        self.commands: list[Twist] = []
        self.create_subscription(Twist, topics.CMD_VEL, self.commands.append, 10)

    def drive(self, seconds: float) -> None:
        self.odometry.publish(make_odometry(seconds_to_stamp(seconds), "odom", "base_link", 50.0, EGO_Y, 0.0, 5.0, 0.0))


def test_lane_keeping_forgets_its_odometry_on_each_jump_and_drives_on_the_next(context, capfd):
    node = graph.lane_keeping_controller().create(context=context)
    driver, clock = OdometryDriver(context), ClockDriver(context)
    with spinning(context, node, driver, clock):
        assert wait_until(lambda: driver.odometry.get_subscription_count() > 0
                          and clock.publisher.get_subscription_count() > 0 and node.pub_cmd.get_subscription_count() > 0)
        for jump, expected_resets in ((None, 0), (JUMP_BACK_TO, 1), (JUMP_BACK_TO + JUMP_FORWARD_S, 2)):
            clock.set(jump or clock.now, node)
            assert node.resets == expected_resets
            assert node._state is None  # none yet, or the old time line's forgotten
            driver.drive(clock.now)
            assert wait_until(lambda: node._state is not None)
            count = len(driver.commands)
            for _ in range(3):  # three control periods on the new time line
                clock.set(clock.now + 0.05, node)
            assert wait_until(lambda: len(driver.commands) > count and driver.commands[-1].linear.x > 0.0)
    assert warnings_about(capfd, "the newest odometry reset") == 2


def test_the_croa_planner_resets_when_time_goes_back_and_plans_again_after_either_jump(context, capfd):
    node = planner_node(context)
    harness = PlannerHarness(context, node)
    car = [predicted(1, ObjectClass.CAR, harness.ego_x + 30.0, EGO_Y, CAR, speed=6.0)]
    with spinning(context, node, harness):
        assert wait_until(lambda: harness.connected(node))
        assert harness.run_until(lambda: not harness.statuses[-1].fallback, car)
        for jump, expected_resets in ((JUMP_BACK_TO, 1), (JUMP_BACK_TO + JUMP_FORWARD_S, 1)):
            harness.now = jump
            # A plan of the new time line (a timer's first period there passes without a cycle).
            assert harness.run_until(lambda: not harness.statuses[-1].fallback
                                     and jump <= stamp_to_seconds(harness.statuses[-1].header.stamp) < jump + 3.0,
                                     car, limit_s=3.0)
            assert node.counters.resets == expected_resets
    assert node.counters.planner_errors == 0
    assert warnings_about(capfd, "time went backwards (bag loop or simulator reset): planner reset") == 1


def test_the_uplink_resets_its_window_when_the_odometry_goes_back_and_decides_on(context, scene_file, capfd):
    node = uplink_node(context, scene_file, **{"policy.window": 4})
    harness = RobotHarness(context)
    frame = true_frame(scene_file)
    with spinning(context, node, harness):
        assert wait_until(lambda: harness.image.get_subscription_count() > 0)
        harness.publish_mount()
        assert wait_until(lambda: node.frame_poses.has_mount("base_link", "camera_optical"))
        for start, expected_resets in ((10.0, 0), (JUMP_BACK_TO, 1), (JUMP_BACK_TO + JUMP_FORWARD_S, 1)):
            for index in range(3):
                received = node.counters.received
                harness.publish_frame(start + 0.1 * index, frame)
                assert wait_until(lambda: node.counters.received > received and settled(node))
            assert wait_until(lambda: node.counters.resets == expected_resets)
            if start == JUMP_BACK_TO:
                assert node.policy.frames == 3  # the running quality restarted with the reset
    assert node.counters.failed_frames == 0 and node.counters.skipped_without_pose == 0
    assert node.counters.decided >= 8
    assert warnings_about(capfd, "the uplink window, the running quality and a waiting frame reset") == 1


def test_the_server_forgets_its_render_queue_and_scoring_buffers_on_each_jump(context, scene_file, capfd):
    node = server_node(context, scene_file, use_sim_time=True)
    harness, clock = RemoteHarness(context), ClockDriver(context)
    truth = true_frame(scene_file)
    with spinning(context, node, harness, clock):
        assert wait_until(lambda: harness.pose.get_subscription_count() > 0 and clock.publisher.get_subscription_count())
        harness.info.publish(camera_info_from_intrinsics(scaled_intrinsics(CAMERA.intrinsics(), 2), 80, 60,
                                                         Header(frame_id="camera_optical")))
        assert wait_until(lambda: node._stream_camera is not None)
        for jump, expected_resets in ((None, 0), (JUMP_BACK_TO, 1), (JUMP_BACK_TO + JUMP_FORWARD_S, 2)):
            clock.set(jump or clock.now, node)
            assert node.counters.resets == expected_resets and not node._shown and not node._true
            header = Header(stamp=seconds_to_stamp(clock.now), frame_id="camera_optical")
            scored = len(harness.quality)
            harness.truth.publish(numpy_to_image(truth, "rgb8", header))
            harness.pose.publish(PoseStamped(header=Header(stamp=header.stamp, frame_id="odom"),
                                             pose=se3_to_pose(camera_to_odom())))
            assert wait_until(lambda: len(harness.quality) > scored)
            assert harness.quality[-1].psnr > 22.0
            # A true frame left waiting for its shown frame: the jump must clear it.
            harness.truth.publish(numpy_to_image(
                truth, "rgb8", Header(stamp=seconds_to_stamp(clock.now + 0.5), frame_id="camera_optical")))
            assert wait_until(lambda: len(node._true) == 1)
    assert node.counters.failed_renders == 0 and node.counters.scored == 3
    assert warnings_about(capfd, "the render queue and the frames waiting to be scored reset") == 2


def test_the_language_model_forgets_the_scene_on_each_jump_and_answers_the_next_question(context, cache, capfd):
    node = test_onboard_llm_node.llm_node(context, cache, use_sim_time=True)
    harness, clock = test_onboard_llm_node.Harness(context), ClockDriver(context)
    car = DetectedObject(ObjectClass.CAR, 0.9, Box3D((12.0, 0.0, 0.8), CAR, 0.0))
    with spinning(context, node, harness, clock):
        assert wait_until(lambda: harness.questions.get_subscription_count() > 0
                          and clock.publisher.get_subscription_count() > 0)
        for jump, expected_resets in ((None, 0), (JUMP_BACK_TO, 1), (JUMP_BACK_TO + JUMP_FORWARD_S, 2)):
            clock.set(jump or clock.now, node)
            assert node.resets == expected_resets and node._detections is None
            harness.detections.publish(detected_objects_to_msg(
                [car], Header(stamp=seconds_to_stamp(clock.now), frame_id="base_link")))
            assert wait_until(lambda: node._detections is not None)
            answers = len(harness.answers)
            harness.questions.publish(String(data="Lily saw a car"))
            assert wait_until(lambda: len(harness.answers) > answers, timeout_s=60.0)
            assert harness.answers[-1].strip()
    assert node.failed == 0
    assert warnings_about(capfd, "the scene picture reset") == 2



def test_the_recorder_records_on_across_the_jumps_at_the_clock_of_reception(context, tmp_path):
    bag = tmp_path / "looped"
    recorder = graph.bag_recorder(str(bag), ["/looped"], use_sim_time=True).create(context=context)
    source, clock = Node("source", context=context), ClockDriver(context)
    publisher = source.create_publisher(String, "/looped", 10)
    with spinning(context, recorder, source, clock):
        assert wait_until(lambda: recorder.subscribed_topics == {"/looped"} and publisher.get_subscription_count())
        for jump in (None, JUMP_BACK_TO, JUMP_BACK_TO + JUMP_FORWARD_S):
            clock.set(jump or clock.now, recorder)
            count = recorder.message_counts["/looped"]
            publisher.publish(String(data=f"at {clock.now:g} s"))
            assert wait_until(lambda: recorder.message_counts["/looped"] == count + 1)
    assert recorder.finished.is_set()
    with BagReader(bag) as reader:
        times = sorted(round(stamp * 1e-9, 3) for _, _, stamp, _ in reader.messages())
    assert times == [JUMP_BACK_TO, 10.0, JUMP_BACK_TO + JUMP_FORWARD_S]
