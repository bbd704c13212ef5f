"""sim_world: the embedded simulated world as a ROS node, standing in for Gazebo or the robot.

Publishes the topic contract (lidar, camera, odometry, /tf, /tf_static, /clock, ground truth) and
drives the ego robot from ~/input/cmd_vel. Simulated time is the clock of the whole graph: every
other node runs with use_sim_time.
"""
from __future__ import annotations

import collections
import math
import threading
import time

from geometry_msgs.msg import Twist
from nav_msgs.msg import Odometry
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, QoSProfile, qos_profile_sensor_data
from rosgraph_msgs.msg import Clock as ClockMessage
from sensor_msgs.msg import CameraInfo, Image, PointCloud2
from tf2_msgs.msg import TFMessage

from edge_robot_msgs.msg import GroundTruthObjects
from edge_robot_msgs.srv import ResetSimulation
from robot_nodes import topics
from robot_nodes.bags import message_class
from robot_nodes.conversions import MalformedMessageError, stamp_ns
from robot_nodes.input_guard import InputGuard
from robot_nodes.parameters import declare_config
from robot_nodes.paths import resolve
from robot_nodes.runner import StartupError, run_node
from robot_nodes.sim_messages import SimMessages, SimWorldConfig
from sim.scenario import ScenarioError, load_scenario
from sim.world import World


MAX_LAG_S = 0.5
"""Wall seconds the world may fall behind its pace and still catch up (sensor steps cost more
than a physics step's share of wall time; the cheap steps in between make up for them)."""
COMMAND_POLL_S = 0.05
"""While waiting for the driver's first command, the start's clock and odometry go out this often, wall s."""
SENSOR_OF_TOPIC = {topics.ODOMETRY: "odometry", topics.LIDAR_POINTS: "lidar", topics.CAMERA_IMAGE: "camera"}
"""The published topic whose message each kind of lockstep acknowledgement follows."""


class Acknowledgements:
    """What the stack has answered to the world's publications, for lockstep: per acknowledgement
    topic, the newest header stamp (ns) and how many messages arrived. Filled by subscription
    callbacks in the executor; waited on by the stepper thread. A topic the node takes in itself
    (`fed`: the world's own command input) gets no subscription of its own here: the node passes each
    message on with `on_message` once it has used it, so that the stepper never wakes on a command
    before the world holds it (a second subscription raced the world's and stepped with the old one)."""

    def __init__(self, node: Node, topic_names: set[str], fed: set[str] = frozenset()) -> None:
        self._changed = threading.Condition()
        self._newest_ns = {topic: -1 for topic in topic_names}
        self._counts = {topic: 0 for topic in topic_names}
        self._stamped = set()
        for topic in topic_names:
            message_type = message_class(topics.CONTRACT[topic])
            if "header" in message_type.get_fields_and_field_types():
                self._stamped.add(topic)
            if topic not in fed:
                node.create_subscription(message_type, topic,
                                         lambda message, topic=topic: self.on_message(topic, message), 10)

    def on_message(self, topic: str, message) -> None:
        with self._changed:
            self._counts[topic] += 1
            if topic in self._stamped:
                self._newest_ns[topic] = max(self._newest_ns[topic], stamp_ns(message.header.stamp))
            self._changed.notify_all()

    def forget_stamps(self) -> None:
        """After a reset time starts again: stamps of the old time line acknowledge nothing."""
        with self._changed:
            self._newest_ns = dict.fromkeys(self._newest_ns, -1)

    def counts(self) -> dict[str, int]:
        with self._changed:
            return dict(self._counts)

    def wait(self, topic_names: list[str], stamp: int, counts_before: dict[str, int], timeout: float,
             stop: threading.Event) -> list[str]:
        """Wait until each topic has a message stamped `stamp` or later (for types without a header:
        a message since `counts_before`); returns the topics still missing after `timeout` wall s."""
        def missing() -> list[str]:
            return [topic for topic in topic_names if (self._newest_ns[topic] < stamp if topic in self._stamped
                                                       else self._counts[topic] <= counts_before[topic])]
        deadline = time.monotonic() + timeout
        with self._changed:
            while missing() and not stop.is_set():
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._changed.wait(min(left, 0.1))
            return missing()


class SimWorldNode(Node):
    def __init__(self, **node_options) -> None:
        super().__init__("sim_world", **node_options)
        self._stop = threading.Event()
        self._stepper: threading.Thread | None = None
        self.config = declare_config(self, SimWorldConfig)
        self.inputs = InputGuard(self)
        self.world = self._load_world(self.config.scenario, self.config.seed)
        self.messages = self._messages_for(self.world)
        self._command = (0.0, 0.0)
        self._command_time = -math.inf
        self._step_count = 0
        self.published: collections.Counter[str] = collections.Counter()
        """Messages published per contract topic."""

        sensor_qos = qos_profile_sensor_data
        self.publishers_by_topic = {
            topics.LIDAR_POINTS: self.create_publisher(PointCloud2, "~/output/pointcloud", sensor_qos),
            topics.CAMERA_IMAGE: self.create_publisher(Image, "~/output/image", sensor_qos),
            topics.CAMERA_INFO: self.create_publisher(CameraInfo, "~/output/camera_info", sensor_qos),
            topics.ODOMETRY: self.create_publisher(Odometry, "~/output/odom", 10),
            topics.GROUND_TRUTH_OBJECTS: self.create_publisher(GroundTruthObjects, "~/output/ground_truth", 10),
            topics.TF: self.create_publisher(TFMessage, topics.TF, 100),
        }
        self.pub_tf_static = self.create_publisher(
            TFMessage, topics.TF_STATIC, QoSProfile(depth=1, durability=DurabilityPolicy.TRANSIENT_LOCAL))
        self.pub_clock = self.create_publisher(ClockMessage, topics.CLOCK, 10)
        self.create_subscription(Twist, "~/input/cmd_vel", self.inputs.wrap("~/input/cmd_vel", self.on_cmd_vel), 10)
        self.create_service(ResetSimulation, "~/reset", self.on_reset)
        lockstep = self.config.lockstep
        self.acknowledgements_by_sensor = lockstep.by_sensor() if lockstep.enabled else {}
        acknowledged = {topic for names in self.acknowledgements_by_sensor.values() for topic in names}
        command_topic = self.resolve_topic_name("~/input/cmd_vel")
        self._acknowledged_command = command_topic if command_topic in acknowledged else None
        self.acknowledgements = Acknowledgements(self, acknowledged, fed={command_topic} & acknowledged)
        self.lockstep_timeouts: collections.Counter[str] = collections.Counter()
        """Lockstep waits that ran out, per acknowledgement topic missing."""

        self.pub_tf_static.publish(self.messages.static_transforms())
        # The world is the clock source: it steps in its own thread, paced by wall time, so its
        # rate does not depend on how busy the executor is with the other nodes' callbacks.
        self._world_lock = threading.Lock()
        self._stepper = threading.Thread(target=self._run, name="sim_world_stepper", daemon=True)
        self._stepper.start()
        self.get_logger().info(
            f"scenario {self.config.scenario} seed {self.config.seed}, {self.config.physics_rate:g} Hz physics, "
            f"real-time factor {self.config.real_time_factor:g}, "
            + (f"in lockstep with {', '.join(lockstep.acknowledgements) or 'nothing'}" if lockstep.enabled
               else "free-running"))

    def _run(self) -> None:
        step_wall = 1.0 / (self.config.physics_rate * self.config.real_time_factor) if self.config.real_time_factor else 0.0
        self._wait_for_subscribers()
        self._wait_for_command()
        next_step = time.monotonic()
        while not self._stop.is_set() and self.context.ok():
            self.step()
            next_step += step_wall
            delay = next_step - time.monotonic()
            if delay > 0:
                self._stop.wait(delay)
            elif delay < -MAX_LAG_S:
                next_step = time.monotonic()  # far behind: give up the lag instead of bursting to catch up

    def _wait_for_subscribers(self) -> None:
        """Until every output has a subscriber and (in lockstep) every acknowledgement a publisher."""
        deadline = time.monotonic() + self.config.wait_for_subscribers
        outputs = [*self.publishers_by_topic.values(), self.pub_clock]
        acknowledgements = {topic for names in self.acknowledgements_by_sensor.values() for topic in names}
        while time.monotonic() < deadline and not self._stop.is_set():
            if (all(publisher.get_subscription_count() > 0 for publisher in outputs)
                    and all(self.count_publishers(topic) > 0 for topic in acknowledgements)):
                return
            self._stop.wait(0.01)

    def _wait_for_command(self) -> None:
        deadline = time.monotonic() + self.config.wait_for_command
        while time.monotonic() < deadline and not self._stop.is_set() and self._command_time == -math.inf:
            with self._world_lock:
                self.pub_clock.publish(self.messages.clock())
                self.publishers_by_topic[topics.ODOMETRY].publish(self.messages.odometry())
                self.published[topics.CLOCK] += 1
                self.published[topics.ODOMETRY] += 1
            self._stop.wait(COMMAND_POLL_S)

    def destroy_node(self) -> None:
        self._stop.set()
        if self._stepper is not None and self._stepper.is_alive() and threading.current_thread() is not self._stepper:
            self._stepper.join()
        super().destroy_node()

    def _messages_for(self, world: World) -> SimMessages:
        return SimMessages(world, self.config)

    def _load_world(self, scenario: str, seed: int) -> World:
        path = resolve(scenario)
        try:
            return World(load_scenario(path), seed=seed)
        except (ScenarioError, FileNotFoundError) as error:
            raise StartupError(f"sim_world: cannot load scenario {path}: {error}") from None

    def on_cmd_vel(self, message: Twist) -> None:
        linear, angular = message.linear.x, message.angular.z
        if not (math.isfinite(linear) and math.isfinite(angular)):
            raise MalformedMessageError(f"Twist: non-finite command linear.x={linear} angular.z={angular}")
        self._command = (linear, angular)
        self._command_time = self.world.time
        if self._acknowledged_command is not None:
            self.acknowledgements.on_message(self._acknowledged_command, message)

    def on_reset(self, request: ResetSimulation.Request, response: ResetSimulation.Response):
        scenario = request.scenario or self.config.scenario
        seed = request.seed if request.seed >= 0 else self.config.seed
        try:
            world = self._load_world(scenario, seed)
        except StartupError as error:
            response.success, response.message = False, str(error)
            return response
        with self._world_lock:
            self.world = world
            self.messages = self._messages_for(world)
            self._command, self._command_time, self._step_count = (0.0, 0.0), -math.inf, 0
            self.acknowledgements.forget_stamps()
            self.pub_tf_static.publish(self.messages.static_transforms())
        response.success, response.message = True, f"reset to {scenario} seed {seed}"
        self.get_logger().info(response.message)
        return response

    def step(self) -> None:
        """Advance the world one physics step and publish what is due."""
        with self._world_lock:
            self._step_locked()

    def _step_locked(self) -> None:
        stale = self.world.time - self._command_time > self.config.cmd_vel_timeout
        linear, angular = (0.0, 0.0) if stale else self._command
        self.world.step(1.0 / self.config.physics_rate, linear, angular)
        self._step_count += 1
        self.pub_clock.publish(self.messages.clock())
        self.published[topics.CLOCK] += 1
        due = self.messages.due(self._step_count)
        # Odometry (and what follows it, the driver's command) before the sensors: in lockstep the
        # command of this step is then decided before the sensors' consequences reach the driver.
        odometry = {topic: due.pop(topic) for topic in (topics.ODOMETRY, topics.TF)}
        self._publish_and_wait(odometry)
        self._publish_and_wait(due)

    def _publish_and_wait(self, messages: dict) -> None:
        """Publish `messages` and, in lockstep, wait for the acknowledgements of what they contain."""
        counts_before = self.acknowledgements.counts()
        for topic, message in messages.items():
            self.publishers_by_topic[topic].publish(message)
            self.published[topic] += 1
        expected = [topic for published in messages if published in SENSOR_OF_TOPIC
                    for topic in self.acknowledgements_by_sensor.get(SENSOR_OF_TOPIC[published], ())]
        if not expected:
            return
        stamp = stamp_ns(self.messages.stamp())
        missing = self.acknowledgements.wait(expected, stamp, counts_before, self.config.lockstep.timeout, self._stop)
        if missing and not self._stop.is_set():
            self.lockstep_timeouts.update(missing)
            self.get_logger().warning(
                f"lockstep: no {', '.join(missing)} for t={stamp * 1e-9:.2f} s within "
                f"{self.config.lockstep.timeout:g} s; going on ({sum(self.lockstep_timeouts.values())} waits "
                "timed out so far)", throttle_duration_sec=5.0)


def main(args: list[str] | None = None) -> int:
    return run_node(SimWorldNode, args)
