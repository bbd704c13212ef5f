"""record-sim: drive the simulated world with the lane-keeping controller and write the topic
contract straight into a rosbag2 bag, faster than real time (no ROS graph involved)."""
from __future__ import annotations

import argparse
import dataclasses
import math
import multiprocessing
import sys
import time
from multiprocessing.connection import Connection
from dataclasses import dataclass
from pathlib import Path

from geometry_msgs.msg import Twist
from rclpy.serialization import serialize_message
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


def drive(sim_config: SimWorldConfig, drive_config: LaneKeepingNodeConfig, duration: float):
    """Run one lane-keeping episode; yields (step, world, messages, new command or None) after each
    step. Deterministic: every caller with the same configs sees the same episode."""
    world = World(load_scenario(resolve(sim_config.scenario)), seed=sim_config.seed)
    messages = SimMessages(world, sim_config)
    controller = LaneKeepingController(world.lane_centerlines, LaneKeepingConfig())
    command, last_tick = Twist(), -1
    yield 0, world, messages, None
    for step in range(1, round(duration * sim_config.physics_rate) + 1):
        new_command = None
        # Control ticks at control_rate in simulated time, whatever the physics rate.
        tick = math.floor((step - 1) * drive_config.control_rate / sim_config.physics_rate)
        if tick > last_tick:
            last_tick = tick
            x, y, yaw, speed, _ = odometry_to_se2(messages.odometry())
            command = new_command = Twist()
            command.linear.x, command.angular.z = controller.command((x, y, yaw), speed, drive_config.target_speed)
        world.step(1.0 / sim_config.physics_rate, command.linear.x, command.angular.z)
        yield step, world, messages, new_command


def worker_renders(step: int, camera_every: int) -> bool:
    """Whether the camera frame of this step (if any) is rendered by the worker process."""
    return bool(step and camera_every and step % camera_every == 0 and (step // camera_every) % 2 == 0)


def render_camera(sim_config: SimWorldConfig, drive_config: LaneKeepingNodeConfig, duration: float,
                  connection: Connection) -> None:
    """Worker process: replays the same episode and sends the serialised camera messages of every
    other camera frame, so ray casting runs on both cores (the recorder renders the rest itself)."""
    camera_only = dataclasses.replace(sim_config, lidar_rate=0.0, publish_ground_truth=False)
    for step, _, messages, _ in drive(camera_only, drive_config, duration):
        if worker_renders(step, messages.camera_every):
            image, info = messages.camera()
            connection.send((serialize_message(image), serialize_message(info)))
    connection.close()


def record_simulation(bag: Path, duration: float, sim_config: SimWorldConfig, drive_config: LaneKeepingNodeConfig,
                      storage: str = "mcap", progress: bool = True) -> RecordingSummary:
    """Run the world for `duration` simulated seconds under lane keeping and record every topic."""
    counts = dict.fromkeys(topics.SIMULATED_SENSOR_TOPICS, 0)
    del counts[topics.CLOCK]  # the player makes /clock from the bag's timestamps
    without_camera = dataclasses.replace(sim_config, camera_rate=0.0)
    camera_every = sim_config.steps_between(sim_config.camera_rate)
    started = time.perf_counter()
    worker = None
    if camera_every:
        spawn = multiprocessing.get_context("spawn")  # fork would copy Open3D's thread pools mid-use
        camera_frames, worker_end = spawn.Pipe(duplex=False)
        worker = spawn.Process(target=render_camera, args=(sim_config, drive_config, duration, worker_end),
                               daemon=True)
        worker.start()
        worker_end.close()
    steps = round(duration * sim_config.physics_rate)
    try:
        with BagWriter(bag, storage=storage) as writer:
            for topic in counts:
                writer.add_topic(topic, topics.CONTRACT[topic])
            for step, world, messages, command in tqdm(drive(without_camera, drive_config, duration), total=steps + 1,
                                                       desc=f"recording {bag.name}", unit="step", disable=not progress):
                stamp_ns = int(round(world.time * 1e9))
                due = {topics.TF_STATIC: messages.static_transforms()} if step == 0 else messages.due(step)
                if command is not None:
                    due[topics.CMD_VEL] = command
                for topic, message in due.items():
                    writer.write_message(topic, stamp_ns, message)
                    counts[topic] += 1
                if step and camera_every and step % camera_every == 0:
                    if worker_renders(step, camera_every):
                        image, info = camera_frames.recv()
                    else:
                        image, info = (serialize_message(message) for message in messages.camera())
                    writer.write(topics.CAMERA_IMAGE, stamp_ns, image)
                    writer.write(topics.CAMERA_INFO, stamp_ns, info)
                    counts[topics.CAMERA_IMAGE] += 1
                    counts[topics.CAMERA_INFO] += 1
    finally:
        if worker is not None:
            worker.join(timeout=10.0)
            if worker.is_alive():
                worker.terminate()
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
