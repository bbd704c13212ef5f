"""record-sim: drive the simulated world with the lane-keeping controller and write the topic
contract straight into a rosbag2 bag, faster than real time (no ROS graph involved)."""
from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from geometry_msgs.msg import Twist
from tqdm import tqdm

from robot_nodes import topics
from robot_nodes.bags import BagWriter
from robot_nodes.conversions import odometry_to_se2
from robot_nodes.lane_keeping_controller import LaneKeepingNodeConfig
from robot_nodes.parameters import ParameterError, config_from_parameter_file
from robot_nodes.paths import resolve, share_path
from robot_nodes.sim_messages import SimMessages, SimWorldConfig
from sim.controller import LaneKeepingConfig, LaneKeepingController
from sim.scenario import ScenarioError, load_scenario
from sim.world import World


@dataclass
class RecordingSummary:
    """What record_simulation wrote."""

    bag: Path
    """The bag folder."""
    simulated_seconds: float
    """Simulated time covered."""
    wall_seconds: float
    """Time it took."""
    messages: dict[str, int]
    """Messages written per topic."""

    @property
    def real_time_factor(self) -> float:
        return self.simulated_seconds / self.wall_seconds if self.wall_seconds > 0 else float("inf")


def record_simulation(bag: Path, duration: float, sim_config: SimWorldConfig, drive_config: LaneKeepingNodeConfig,
                      storage: str = "mcap", progress: bool = True) -> RecordingSummary:
    """Run the world for `duration` simulated seconds under lane keeping and record every topic."""
    world = World(load_scenario(resolve(sim_config.scenario)), seed=sim_config.seed)
    messages = SimMessages(world, sim_config)
    controller = LaneKeepingController(world.lane_centerlines, LaneKeepingConfig())
    dt = 1.0 / sim_config.physics_rate
    control_every = max(1, round(sim_config.physics_rate / drive_config.control_rate))
    steps = round(duration * sim_config.physics_rate)
    counts = dict.fromkeys(topics.SIMULATED_SENSOR_TOPICS, 0)
    del counts[topics.CLOCK]  # the player makes /clock from the bag's timestamps
    started = time.perf_counter()
    with BagWriter(bag, storage=storage) as writer:
        for topic in counts:
            writer.add_topic(topic, topics.CONTRACT[topic])

        def write(topic: str, message) -> None:
            writer.write_message(topic, int(round(world.time * 1e9)), message)
            counts[topic] += 1

        write(topics.TF_STATIC, messages.static_transforms())
        command = Twist()
        for step in tqdm(range(1, steps + 1), desc=f"recording {bag.name}", unit="step", disable=not progress):
            if (step - 1) % control_every == 0:
                x, y, yaw, speed, _ = odometry_to_se2(messages.odometry())
                command = Twist()
                command.linear.x, command.angular.z = controller.command((x, y, yaw), speed, drive_config.target_speed)
                write(topics.CMD_VEL, command)
            world.step(dt, command.linear.x, command.angular.z)
            for topic, message in messages.due(step).items():
                write(topic, message)
    return RecordingSummary(bag, world.time, time.perf_counter() - started, counts)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, required=True, help="bag folder to create (must not exist)")
    parser.add_argument("--duration", type=float, default=20.0, help="simulated seconds")
    parser.add_argument("--scenario", help="scenario YAML (default: config/sim_world.param.yaml's)")
    parser.add_argument("--seed", type=int)
    parser.add_argument("--storage", choices=["mcap", "sqlite3"], default="mcap")
    options = parser.parse_args(argv)
    overrides = {name: value for name, value in (("scenario", options.scenario), ("seed", options.seed))
                 if value is not None}
    try:
        sim_config = config_from_parameter_file(
            SimWorldConfig, share_path("config", "sim_world.param.yaml"), "sim_world", overrides)
        drive_config = config_from_parameter_file(
            LaneKeepingNodeConfig, share_path("config", "lane_keeping_controller.param.yaml"),
            "lane_keeping_controller", {"scenario": sim_config.scenario})
        summary = record_simulation(options.output, options.duration, sim_config, drive_config, options.storage)
    except (ParameterError, ScenarioError, FileNotFoundError, FileExistsError) as error:
        print(f"record-sim: {error}", file=sys.stderr)
        return 2
    print(f"wrote {summary.bag}: {summary.simulated_seconds:.1f} simulated s in {summary.wall_seconds:.1f} s "
          f"({summary.real_time_factor:.1f}x real time), {sum(summary.messages.values())} messages")
    return 0


if __name__ == "__main__":
    sys.exit(main())
