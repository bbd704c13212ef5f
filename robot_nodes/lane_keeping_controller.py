"""lane_keeping_controller: keeps the robot in its lane at a target speed (pure pursuit on the
scenario's lane centre lines). The simple driver of the simulated robot until a planner drives."""
from __future__ import annotations

import time
from dataclasses import dataclass, field

from geometry_msgs.msg import Twist
from nav_msgs.msg import Odometry
from rclpy.node import Node

from robot_nodes.conversions import odometry_to_se2
from robot_nodes.node_statistics import NodeStatisticsPublisher, ProcessingCounts, measured, publish_final_statistics
from robot_nodes.parameters import declare_config
from robot_nodes.paths import resolve
from robot_nodes.runner import StartupError, run_node
from robot_nodes.time_jumps import watch_time_jumps
from sim.controller import LaneKeepingConfig, LaneKeepingController
from sim.road import RoadGeometry
from sim.scenario import ScenarioError, load_scenario


@dataclass
class LaneKeepingNodeConfig:
    """Parameters of the lane_keeping_controller node."""

    scenario: str = "config/scenarios/urban_default.yaml"
    """Scenario YAML whose road gives the lane centre lines (relative: from the share directory)."""
    target_speed: float = field(default=8.0, metadata={"range": (0.0, 40.0)})
    """Cruise speed, m/s."""
    control_rate: float = field(default=20.0, metadata={"range": (1.0, 200.0)})
    """Commands per second (ROS time, so simulated seconds under use_sim_time)."""
    odom_timeout: float = field(default=0.5, metadata={"range": (0.01, 10.0)})
    """Seconds without odometry after which the controller commands a stop."""
    lockstep: bool = False
    """Command once per odometry message, as soon as it arrives, instead of at control_rate: for the
    simulated world's lockstep, which waits for each step's command."""


class LaneKeepingControllerNode(Node):
    def __init__(self, **node_options) -> None:
        super().__init__("lane_keeping_controller", **node_options)
        self.config = declare_config(self, LaneKeepingNodeConfig)
        path = resolve(self.config.scenario)
        try:
            lanes = RoadGeometry(load_scenario(path).road).centerlines()
        except (ScenarioError, FileNotFoundError) as error:
            raise StartupError(f"lane_keeping_controller: cannot load scenario {path}: {error}") from None
        self.controller = LaneKeepingController(lanes, LaneKeepingConfig())
        self.commands = 0
        """cmd_vel commands published."""
        # Per command; counted in the executor's callbacks, which never run alongside the statistics timer.
        self.statistics = NodeStatisticsPublisher(self, lambda: ProcessingCounts(self.commands, self.commands))
        self.inputs = self.statistics.inputs
        self._state = None
        self._state_time = None
        self.resets = 0
        """Resets because ROS time jumped (the odometry is forgotten: zero commands until the next)."""
        self._time_jumps = watch_time_jumps(self, self._forget_odometry, "the newest odometry")
        self.pub_cmd = self.create_publisher(Twist, "~/output/cmd_vel", 10)
        self.create_subscription(Odometry, "~/input/odom", self.inputs.wrap("~/input/odom", self.on_odom), 10)
        if not self.config.lockstep:
            self.create_timer(1.0 / self.config.control_rate, self.control)

    def on_odom(self, message: Odometry) -> None:
        self._state = odometry_to_se2(message)
        self._state_time = self.get_clock().now()
        if self.config.lockstep:
            self.control()

    def _forget_odometry(self) -> None:
        self._state = self._state_time = None
        self.resets += 1

    @measured
    def control(self) -> None:
        started, stamp = time.perf_counter(), self.get_clock().now().to_msg()
        command = Twist()
        fresh = (self._state is not None and
                 (self.get_clock().now() - self._state_time).nanoseconds * 1e-9 <= self.config.odom_timeout)
        if fresh:
            x, y, yaw, speed, _ = self._state
            command.linear.x, command.angular.z = self.controller.command((x, y, yaw), speed, self.config.target_speed)
        self.pub_cmd.publish(command)
        self.commands += 1
        self.statistics.record(stamp, 1e3 * (time.perf_counter() - started))

    def destroy_node(self) -> None:
        publish_final_statistics(self)
        super().destroy_node()


def main(args: list[str] | None = None) -> int:
    return run_node(LaneKeepingControllerNode, args)
