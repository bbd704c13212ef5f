"""sim_world and lane_keeping_controller over real rclpy: the topic contract, frames, /clock,
driving by /cmd_vel, reset, and malformed input rejected while the node keeps serving."""
from __future__ import annotations

import math
import threading

import pytest
from geometry_msgs.msg import Twist
from nav_msgs.msg import Odometry
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import DurabilityPolicy, QoSProfile, qos_profile_sensor_data
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import CameraInfo, Image, PointCloud2
from tf2_msgs.msg import TFMessage

from edge_robot_msgs.msg import GroundTruthObjects
from edge_robot_msgs.srv import ResetSimulation
from robot_nodes import graph, topics
from robot_nodes.conversions import (intrinsics_from_camera_info, make_odometry, msg_to_ground_truth_objects,
                                     odometry_to_se2, pointcloud2_to_xyzi, seconds_to_stamp, stamp_to_seconds)
from robot_nodes.lane_keeping_controller import LaneKeepingControllerNode
from robot_nodes.parameters import ParameterError
from robot_nodes.paths import resolve
from robot_nodes.runner import StartupError
from ros_helpers import spinning, wait_until
from sim.road import RoadGeometry
from sim.scenario import load_scenario

LATCHED = QoSProfile(depth=1, durability=DurabilityPolicy.TRANSIENT_LOCAL)


class Listener(Node):
    """Keeps the newest messages of each contract topic the simulated world publishes."""

    def __init__(self, context) -> None:
        super().__init__("listener", context=context)
        self.messages: dict[str, list] = {}
        self._lock = threading.Lock()
        for topic, message_type, qos in [
            (topics.LIDAR_POINTS, PointCloud2, qos_profile_sensor_data),
            (topics.CAMERA_IMAGE, Image, qos_profile_sensor_data),
            (topics.CAMERA_INFO, CameraInfo, qos_profile_sensor_data),
            (topics.ODOMETRY, Odometry, 50), (topics.TF, TFMessage, 50), (topics.TF_STATIC, TFMessage, LATCHED),
            (topics.CLOCK, Clock, 100), (topics.GROUND_TRUTH_OBJECTS, GroundTruthObjects, 10),
            (topics.CMD_VEL, Twist, 10),
        ]:
            self.create_subscription(message_type, topic, lambda message, topic=topic: self._keep(topic, message), qos)

    def _keep(self, topic: str, message) -> None:
        with self._lock:
            self.messages.setdefault(topic, []).append(message)

    def of(self, topic: str) -> list:
        with self._lock:
            return list(self.messages.get(topic, []))


def sim_node(context, **parameters):
    spec = graph.sim_world(real_time_factor=parameters.pop("real_time_factor", 0.0))
    node = spec.create(context=context, parameter_overrides=[Parameter(k, value=v) for k, v in parameters.items()])
    return node


def test_sim_world_publishes_the_topic_contract(context):
    sim, listener = sim_node(context, wait_for_subscribers=5.0), Listener(context)
    with spinning(context, sim, listener):
        assert wait_until(lambda: len(listener.of(topics.LIDAR_POINTS)) >= 2 and listener.of(topics.CAMERA_IMAGE)
                          and listener.of(topics.GROUND_TRUTH_OBJECTS) and listener.of(topics.TF_STATIC))
        cloud = listener.of(topics.LIDAR_POINTS)[0]
        points, dropped = pointcloud2_to_xyzi(cloud)
        image = listener.of(topics.CAMERA_IMAGE)[0]
        info = listener.of(topics.CAMERA_INFO)[0]
        truth = listener.of(topics.GROUND_TRUTH_OBJECTS)[0]
        clocks = [stamp_to_seconds(message.clock) for message in listener.of(topics.CLOCK)]
        static = {t.child_frame_id: t.header.frame_id for t in listener.of(topics.TF_STATIC)[0].transforms}
        dynamic = {t.child_frame_id: t.header.frame_id for t in listener.of(topics.TF)[0].transforms}

    assert cloud.header.frame_id == "lidar" and [f.name for f in cloud.fields] == ["x", "y", "z", "intensity"]
    assert 90_000 < len(points) < 140_000 and dropped == 0
    assert image.encoding == "rgb8" and (image.width, image.height) == (640, 480)
    assert image.header.frame_id == info.header.frame_id == "camera_optical"
    K, width, height = intrinsics_from_camera_info(info)
    assert (width, height) == (640, 480) and K[0, 0] > 0
    # Ground truth carries the point counts of the scan with the same stamp.
    assert any(stamp_to_seconds(c.header.stamp) == stamp_to_seconds(truth.header.stamp)
               for c in listener.of(topics.LIDAR_POINTS))
    assert truth.header.frame_id == "map" and len(msg_to_ground_truth_objects(truth)) > 0
    assert clocks == sorted(clocks) and clocks[0] > 0
    assert static == {"lidar": "base_link", "camera": "base_link", "camera_optical": "camera"}
    assert dynamic == {"odom": "map", "base_link": "odom"}


def test_cmd_vel_drives_the_robot_and_malformed_commands_are_rejected(context):
    sim, listener = sim_node(context, real_time_factor=5.0), Listener(context)
    commander = Node("commander", context=context)
    publisher = commander.create_publisher(Twist, topics.CMD_VEL, 10)
    bad, good = Twist(), Twist()
    bad.linear.x = math.nan
    good.linear.x = 5.0
    with spinning(context, sim, listener, commander):
        assert wait_until(lambda: publisher.get_subscription_count() > 0)
        publisher.publish(bad)
        assert wait_until(lambda: sim.inputs.rejected["~/input/cmd_vel"] == 1)
        assert "non-finite" in sim.inputs.last_reason["~/input/cmd_vel"]

        def speed() -> float:
            odometry = listener.of(topics.ODOMETRY)
            return odometry_to_se2(odometry[-1])[3] if odometry else 0.0

        def keep_commanding() -> bool:
            publisher.publish(good)
            return speed() > 4.0
        assert wait_until(keep_commanding)
        assert sim.inputs.rejected["~/input/cmd_vel"] == 1


def test_without_commands_the_robot_brakes_to_a_stop(context):
    sim, listener = sim_node(context, cmd_vel_timeout=0.1), Listener(context)
    with spinning(context, sim, listener):
        assert wait_until(lambda: sim.world.time > 3.0)
        x, y, yaw, speed, _ = odometry_to_se2(listener.of(topics.ODOMETRY)[-1])
    assert speed == pytest.approx(0.0, abs=1e-6)


def test_reset_service_restarts_the_world(context):
    sim = sim_node(context)
    client_node = Node("client", context=context)
    client = client_node.create_client(ResetSimulation, "/sim_world/reset")
    with spinning(context, sim, client_node):
        assert wait_until(lambda: sim.world.time > 0.5)
        assert client.wait_for_service(timeout_sec=10.0)
        response = client.call(ResetSimulation.Request(scenario="", seed=3), timeout_sec=10.0)
        assert response.success, response.message
        assert sim.world.seed == 3 and sim.world.time < 0.5
        refused = client.call(ResetSimulation.Request(scenario="/no/such/scenario.yaml", seed=-1), timeout_sec=10.0)
        assert not refused.success and "/no/such/scenario.yaml" in refused.message


def test_bad_parameters_and_scenarios_fail_at_start(context, tmp_path):
    with pytest.raises(ParameterError, match="camera_rate"):
        sim_node(context, camera_rate=7.0)  # does not divide the 50 Hz physics rate
    with pytest.raises(StartupError, match="no_such.yaml"):
        sim_node(context, scenario=str(tmp_path / "no_such.yaml"))
    broken = tmp_path / "broken.yaml"
    broken.write_text("road: [unclosed\n")
    with pytest.raises(StartupError, match="broken.yaml"):
        sim_node(context, scenario=str(broken))


def test_lane_keeping_controller_steers_back_to_the_lane(context):
    controller = graph.lane_keeping_controller().create(context=context)  # runs on /clock (use_sim_time)
    driver = Node("driver", context=context)
    odometry_publisher = driver.create_publisher(Odometry, topics.ODOMETRY, 10)
    clock_publisher = driver.create_publisher(Clock, topics.CLOCK, 10)
    commands = []
    driver.create_subscription(Twist, topics.CMD_VEL, commands.append, 10)
    bad = Odometry()
    bad.pose.pose.orientation.w = 0.0  # not a unit quaternion
    centre_y = RoadGeometry(load_scenario(resolve(controller.config.scenario)).road).centerlines()[0][0, 1]
    sim_time = [1.0]

    def drive_half_a_metre_right_of_the_lane() -> bool:
        sim_time[0] += 0.05
        clock_publisher.publish(Clock(clock=seconds_to_stamp(sim_time[0])))
        odometry_publisher.publish(make_odometry(seconds_to_stamp(sim_time[0]), "odom", "base_link",
                                                 20.0, centre_y - 0.5, 0.0, 8.0, 0.0))
        return bool(commands) and commands[-1].angular.z > 0.0  # steering left, back to the centre

    with spinning(context, controller, driver):
        assert wait_until(lambda: odometry_publisher.get_subscription_count() > 0)
        odometry_publisher.publish(bad)
        assert wait_until(lambda: controller.inputs.rejected["~/input/odom"] == 1)
        assert wait_until(drive_half_a_metre_right_of_the_lane)
    assert 0.0 < commands[-1].linear.x < 20.0


def test_lane_keeping_controller_refuses_a_missing_scenario(context, tmp_path):
    with pytest.raises(StartupError, match="missing.yaml"):
        LaneKeepingControllerNode(context=context, parameter_overrides=[
            Parameter("scenario", value=str(tmp_path / "missing.yaml"))])
