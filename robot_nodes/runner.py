"""Running a node as its own process (`ros2 run` / console script)."""
from __future__ import annotations

import os
import sys
from typing import Callable

import rclpy
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.impl.implementation_singleton import rclpy_implementation as _rclpy
from rclpy.node import Node

from robot_nodes.parameters import ParameterError


SHUTDOWN_POLL_S = 0.5
"""Longest a node process waits in the executor before checking whether rclpy was shut down."""


class StartupError(RuntimeError):
    """A node cannot start: a bad parameter, a missing or corrupt file. The text says what to do."""


MAX_DOMAIN_ID = 232
"""Fast DDS's ports are 7400 + 250 × domain id + offsets: above 232 they pass 65535."""


def set_up_ros_access() -> None:
    """Before rclpy.init in every entry point (node processes, bringup, edge-demo, evaluate): discovery
    stays on this host (ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST) unless the environment says
    otherwise, also under `ros2 launch` on a robot, whose ROS default is SUBNET; the domain is the
    environment's ROS_DOMAIN_ID (0 unless set), and a value that is not an integer 0..232 is a
    StartupError saying so, in place of rcl's error from deep inside or Fast DDS's port error."""
    os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    value = os.environ.get("ROS_DOMAIN_ID", "").strip()
    if value and not (value.isdigit() and int(value) <= MAX_DOMAIN_ID):
        raise StartupError(f"ROS_DOMAIN_ID={value!r}: the ROS domain id must be an integer 0..{MAX_DOMAIN_ID} "
                           "(see README, Networking and security)")


def run_node(node_factory: Callable[[], Node], args: list[str] | None = None) -> int:
    """Create the node, spin it until shutdown and return the process exit code.

    Start-up failures are logged as one clear line and give exit code 2 instead of a traceback.
    """
    node = None
    try:
        set_up_ros_access()
        try:
            rclpy.init(args=sys.argv if args is None else args)
        except _rclpy.RCLError as error:  # e.g. a parameter file rcl cannot parse; its text names the file
            raise StartupError(f"cannot start: {str(error).split(', at /')[0]}") from None
        node = node_factory()
        executor = SingleThreadedExecutor()
        executor.add_node(node)
        # Waits are bounded: a shutdown by signal whose wake-up the executor misses (seen as a rare
        # hang of sim_world on SIGTERM) ends the loop within SHUTDOWN_POLL_S all the same.
        while node.context.ok():
            executor.spin_once(timeout_sec=SHUTDOWN_POLL_S)
    except (ParameterError, StartupError) as error:
        rclpy.logging.get_logger("startup").fatal(str(error))
        return 2
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown()
    return 0
