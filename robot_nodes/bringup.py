"""Pip-only bringup: the launch files' node set composed in one process, the way an edge box runs
composed nodes (an executor thread per node, or one MultiThreadedExecutor). `bringup --help` lists
the options."""
from __future__ import annotations

import argparse
import sys
import threading
import time
from pathlib import Path

import rclpy
from rclpy.context import Context
from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor, SingleThreadedExecutor
from rosgraph_msgs.msg import Clock

from robot_nodes import graph, topics
from robot_nodes.conversions import stamp_to_seconds
from robot_nodes.parameters import ParameterError, config_from_parameter_file
from robot_nodes.paths import resolve, share_path
from robot_nodes.runner import StartupError, set_up_ros_access
from robot_nodes.sim_messages import SimWorldConfig


EXECUTORS = ("per-node", "multi-threaded")
"""per-node: a SingleThreadedExecutor thread for each node. multi-threaded: one rclpy
MultiThreadedExecutor for all. rclpy's MultiThreadedExecutor costs so much Python time per
callback that, on 2 cores, replaying the main job's bag at rate 4 ran at 0.95x real time on it and
at 4x per node, and the simulated world with its recorder made 10 simulated s in 21 s on it and in
12 s per node; hence the default."""


RECORDER_GRACE_S = 0.3
"""Wall seconds a bag recorder goes on after the other nodes stopped, for their last messages."""


class Bringup:
    """Nodes from specs, composed in one process with their own rclpy context, on the environment's
    ROS_DOMAIN_ID and discovery range (set_up_ros_access: LOCALHOST unless set)."""

    def __init__(self, specs: list[graph.NodeSpec], executor: str = "per-node", threads: int = 4) -> None:
        if executor not in EXECUTORS:
            raise ValueError(f"executor must be one of {EXECUTORS}, got {executor!r}")
        set_up_ros_access()
        self.context = Context()
        rclpy.init(context=self.context)
        self.nodes = []
        self.executors = []
        self._shared_executor = (MultiThreadedExecutor(num_threads=threads, context=self.context)
                                 if executor == "multi-threaded" else None)
        if self._shared_executor:
            self.executors.append(self._shared_executor)
        self._spinners: list[threading.Thread] = []
        try:
            for spec in specs:
                self.add_node(spec.create(context=self.context))
        except BaseException:
            self.shutdown()
            raise
        self._sim_time = 0.0
        clock_monitor = rclpy.create_node("bringup_clock_monitor", context=self.context)
        clock_monitor.create_subscription(Clock, topics.CLOCK, self._on_clock, 10)
        self.add_node(clock_monitor)

    def add_node(self, node) -> None:
        """Compose one more node (created with this bringup's context); it spins from spin_until on."""
        self.nodes.append(node)
        if self._shared_executor:
            self._shared_executor.add_node(node)
        else:
            executor = SingleThreadedExecutor(context=self.context)
            executor.add_node(node)
            self.executors.append(executor)

    def _on_clock(self, message: Clock) -> None:
        self._sim_time = stamp_to_seconds(message.clock)

    @property
    def sim_time(self) -> float:
        """The newest /clock value seen, seconds."""
        return self._sim_time

    def node(self, name: str):
        return next(node for node in self.nodes if node.get_name() == name)

    def spin_until(self, done, poll_s: float = 0.05) -> None:
        """Spin every executor in a background thread until done() is true or shutdown."""
        for executor in self.executors[len(self._spinners):]:
            spinner = threading.Thread(target=self._spin, args=(executor,), daemon=True)
            spinner.start()
            self._spinners.append(spinner)
        while all(spinner.is_alive() for spinner in self._spinners) and not done():
            time.sleep(poll_s)

    @staticmethod
    def _spin(executor) -> None:
        try:
            executor.spin()
        except ExternalShutdownException:
            pass

    def shutdown(self) -> None:
        """Stop and destroy every node; a bag recorder (with an executor of its own) last, so it
        records what the others publish while they stop (their final statistics)."""
        recorders = [] if self._shared_executor else [
            (node, executor) for node, executor in zip(self.nodes, self.executors) if node.get_name() == "bag_recorder"]
        # Stop the executors first so no callback runs on a node being destroyed.
        for executor in self.executors:
            if all(executor is not recorder_executor for _, recorder_executor in recorders):
                executor.shutdown()
        for node in self.nodes:
            if all(node is not recorder for recorder, _ in recorders):
                node.destroy_node()
        if recorders:
            time.sleep(RECORDER_GRACE_S)
        for recorder, executor in recorders:
            executor.shutdown()
            recorder.destroy_node()
        rclpy.try_shutdown(context=self.context)


SCENE_SECONDS = 60.0
"""Driving time a Gaussian-splatting scene built for an open-ended bringup covers, s."""


def simulation_scene(scenario: str | None, seed: int | None, duration: float) -> Path:
    """The Gaussian-splatting scene of the world sim_world will run (its parameter file's scenario
    and seed unless given) for `duration` simulated seconds (0: SCENE_SECONDS), built on first use
    and kept (training.scene_cache)."""
    from training.scene_cache import cached_scene  # here: building pulls in the world and torch

    overrides = {name: value for name, value in {"scenario": scenario, "seed": seed}.items() if value is not None}
    config = config_from_parameter_file(SimWorldConfig, share_path("config", "sim_world.param.yaml"), "sim_world",
                                        overrides)
    return cached_scene(resolve(config.scenario), config.seed, duration or SCENE_SECONDS).resolve()


def model_hint(error: Exception) -> str:
    """A pointer to the options after a node's start-up failure (the nodes' errors start with their names)."""
    if str(error).startswith("croa_planner:"):
        return "\n(or let the lane-keeping controller drive: --planner lane_keeping)"
    if str(error).startswith("lidar_detector:"):
        return "\n(give a checkpoint with --detector-model PATH, or run without the detector: --no-detector)"
    if str(error).startswith(("gsrmr_uplink:", "mr_server:")):
        return "\n(give a scene with --mixed-reality-scene PLY, or run without the uplink: --no-mixed-reality)"
    if str(error).startswith("trajectory_predictor:"):
        return "\n(give a model with --predictor-model PATH, or run without the predictor: --no-predictor)"
    if str(error).startswith("onboard_llm:"):
        return "\n(give a model with --llm-model PATH, or run without the language model: leave out --llm)"
    return ""


def add_mixed_reality_arguments(parser: argparse.ArgumentParser) -> None:
    """--no-mixed-reality, --mixed-reality-scene (bringup and the main job)."""
    parser.add_argument("--no-mixed-reality", action="store_true",
                        help="leave the mixed-reality uplink and its server out")
    parser.add_argument("--mixed-reality-scene", metavar="PLY", type=Path,
                        help="Gaussian-splatting scene of the world (default: built for the scenario and seed, "
                             "kept in out/gaussian_scenes)")


def mixed_reality_scene(options: argparse.Namespace) -> str | None:
    """The scene file the options ask for (built on first use), or None with --no-mixed-reality."""
    if options.no_mixed_reality:
        return None
    return str(options.mixed_reality_scene.resolve() if options.mixed_reality_scene
               else simulation_scene(options.scenario, options.seed, options.duration))


def add_llm_arguments(parser: argparse.ArgumentParser, default: bool = False) -> None:
    """--llm / --no-llm (on by `default`), --llm-model, --llm-cache (bringup and the main job)."""
    parser.add_argument("--llm", action=argparse.BooleanOptionalAction, default=default,
                        help=f"run the on-device language model (onboard_llm; default {'on' if default else 'off'}). "
                             "It loads its onnxruntime sessions at start-up (about 14 s on 2 busy cores) and, the "
                             "first time, builds its variants (3-4 minutes, 1.5 GB in out/llm)")
    parser.add_argument("--llm-model", metavar="PATH", type=Path,
                        help="Llama checkpoint for --llm (default: config/onboard_llm.param.yaml's, SmolLM2-135M-Instruct)")
    parser.add_argument("--llm-cache", metavar="DIR", type=Path,
                        help="where the language model's built variants are (default: the parameter file's, out/llm)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", help="scenario YAML (default: the sim_world parameter file's)")
    parser.add_argument("--seed", type=int)
    parser.add_argument("--real-time-factor", type=float, help="simulated s per wall s; 0 = as fast as possible")
    parser.add_argument("--duration", type=float, default=0.0, help="stop after this many simulated s (0: run until Ctrl-C)")
    parser.add_argument("--record", metavar="BAG", help="also record the simulated topics to this bag folder")
    parser.add_argument("--executor", choices=EXECUTORS, default="per-node", help="how the nodes are spun")
    parser.add_argument("--detector-model", metavar="PATH", type=Path,
                        help="lidar detector checkpoint (default: config/lidar_detector.param.yaml's model_path)")
    parser.add_argument("--no-detector", action="store_true", help="leave the lidar detector (and the predictor) out")
    parser.add_argument("--predictor-model", metavar="PATH", type=Path,
                        help="prediction model (default: config/trajectory_predictor.param.yaml's model_path)")
    parser.add_argument("--no-predictor", action="store_true", help="leave the tracker and predictor out")
    parser.add_argument("--planner", choices=graph.PLANNERS, default="lane_keeping",
                        help="what drives the robot (default lane_keeping; croa needs the detector and predictor)")
    parser.add_argument("--planning-rate", type=float,
                        help="CROA planning cycles per simulated s (default: config/croa_planner.param.yaml's)")
    add_mixed_reality_arguments(parser)
    add_llm_arguments(parser)
    options = parser.parse_args(argv)
    if options.planner == "croa" and (options.no_detector or options.no_predictor):
        parser.error("--planner croa plans on the predictions: it needs the detector and the predictor")
    scene = mixed_reality_scene(options)

    specs = graph.simulation_graph(options.scenario, options.seed, options.real_time_factor,
                                   wait_for_subscribers=10.0 if options.record else None,
                                   detector=not options.no_detector,
                                   detector_model=str(options.detector_model.resolve()) if options.detector_model else None,
                                   predictor=not options.no_predictor,
                                   predictor_model=str(options.predictor_model.resolve()) if options.predictor_model else None,
                                   planner=options.planner, planning_rate=options.planning_rate,
                                   mixed_reality_scene=scene, llm=options.llm,
                                   llm_model=str(options.llm_model.resolve()) if options.llm_model else None,
                                   llm_cache=str(options.llm_cache.resolve()) if options.llm_cache else None)
    if options.record:
        specs.append(graph.bag_recorder(options.record, graph.recorded_topics(specs), use_sim_time=True))
    try:
        bringup = Bringup(specs, executor=options.executor)
    except (ParameterError, StartupError) as error:
        print(f"bringup: {error}{model_hint(error)}", file=sys.stderr)
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
