"""Pip-only bringup: the launch files' node set composed in one process on a MultiThreadedExecutor,
the way an edge box runs composed nodes. `bringup --help` lists the options."""
from __future__ import annotations

import argparse
import sys
import threading
import time

import rclpy
from rclpy.context import Context
from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor
from rosgraph_msgs.msg import Clock

from robot_nodes import graph, topics
from robot_nodes.conversions import stamp_to_seconds
from robot_nodes.parameters import ParameterError
from robot_nodes.runner import StartupError


class Bringup:
    """Nodes from specs, composed in one process with their own rclpy context."""

    def __init__(self, specs: list[graph.NodeSpec], threads: int = 4) -> None:
        self.context = Context()
        rclpy.init(context=self.context)
        self.nodes = []
        try:
            for spec in specs:
                self.nodes.append(spec.create(context=self.context))
        except BaseException:
            self.shutdown()
            raise
        self.executor = MultiThreadedExecutor(num_threads=threads, context=self.context)
        for node in self.nodes:
            self.executor.add_node(node)
        self._sim_time = 0.0
        self._clock_monitor = rclpy.create_node("bringup_clock_monitor", context=self.context)
        self._clock_monitor.create_subscription(Clock, topics.CLOCK, self._on_clock, 10)
        self.executor.add_node(self._clock_monitor)

    def _on_clock(self, message: Clock) -> None:
        self._sim_time = stamp_to_seconds(message.clock)

    @property
    def sim_time(self) -> float:
        """The newest /clock value seen, seconds."""
        return self._sim_time

    def node(self, name: str):
        return next(node for node in self.nodes if node.get_name() == name)

    def spin_until(self, done, poll_s: float = 0.05) -> None:
        """Spin the executor in a background thread until done() is true or shutdown."""
        spinner = threading.Thread(target=self._spin, daemon=True)
        spinner.start()
        while spinner.is_alive() and not done():
            time.sleep(poll_s)

    def _spin(self) -> None:
        try:
            self.executor.spin()
        except ExternalShutdownException:
            pass

    def shutdown(self) -> None:
        # Stop the executor first so no callback runs on a node being destroyed.
        if hasattr(self, "executor"):
            self.executor.shutdown()
        for node in getattr(self, "nodes", []):
            node.destroy_node()
        rclpy.try_shutdown(context=self.context)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", help="scenario YAML (default: the sim_world parameter file's)")
    parser.add_argument("--seed", type=int)
    parser.add_argument("--real-time-factor", type=float, help="simulated s per wall s; 0 = as fast as possible")
    parser.add_argument("--duration", type=float, default=0.0, help="stop after this many simulated s (0: run until Ctrl-C)")
    parser.add_argument("--record", metavar="BAG", help="also record the simulated topics to this bag folder")
    options = parser.parse_args(argv)

    specs = graph.simulation_graph(options.scenario, options.seed, options.real_time_factor,
                                   wait_for_subscribers=10.0 if options.record else None)
    if options.record:
        specs.append(graph.bag_recorder(options.record, topics.SIMULATED_SENSOR_TOPICS, use_sim_time=True))
    try:
        bringup = Bringup(specs)
    except (ParameterError, StartupError) as error:
        print(f"bringup: {error}", file=sys.stderr)
        return 2
    try:
        bringup.spin_until(lambda: options.duration and bringup.sim_time > options.duration)
    except KeyboardInterrupt:
        pass
    finally:
        bringup.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
