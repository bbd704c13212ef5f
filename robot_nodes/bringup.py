"""Pip-only bringup: the launch files' node set composed in one process, the way an edge box runs
composed nodes (an executor thread per node, or one MultiThreadedExecutor). `bringup --help` lists
the options.

A node that dies (a callback raised and ended its executor thread, or one of its own threads ended
on an exception) is destroyed and created again from its NodeSpec after a back-off (RestartPolicy),
while the others keep running; AFTER_RESTART says what of each node survives. Past its restart
budget the bringup gives up on the node and spin_until returns, as it did before restarts."""
from __future__ import annotations

import argparse
import collections
import sys
import threading
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

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
from sim.validation import check_ranges


EXECUTORS = ("per-node", "multi-threaded")
"""per-node: a SingleThreadedExecutor thread for each node. multi-threaded: one rclpy
MultiThreadedExecutor for all. rclpy's MultiThreadedExecutor costs so much Python time per
callback that, on 2 cores, replaying the main job's bag at rate 4 ran at 0.95x real time on it and
at 4x per node, and the simulated world with its recorder made 10 simulated s in 21 s on it and in
12 s per node; hence the default."""


RECORDER_GRACE_S = 0.3
"""Wall seconds a bag recorder goes on after the other nodes stopped, for their last messages."""


@dataclass(frozen=True)
class RestartPolicy:
    """How the bringup restarts a node that died (with per-node executors; with the multi-threaded
    executor a callback's exception cannot be told apart per node, so spin_until returns)."""

    first_delay_s: float = field(default=0.5, metadata={"range": (0.0, 60.0)})
    """Wall seconds between a node's death and its first restart."""
    max_delay_s: float = field(default=8.0, metadata={"range": (0.0, 600.0)})
    """The back-off doubles with each restart of the same node up to this, wall seconds."""
    max_restarts: int = field(default=5, metadata={"range": (0, 1000)})
    """Restarts per node in one run; at its next death the bringup gives up on it (0: never restart)."""

    def __post_init__(self) -> None:
        check_ranges(self)
        if self.max_delay_s < self.first_delay_s:
            raise ValueError(f"max_delay_s ({self.max_delay_s}) must be >= first_delay_s ({self.first_delay_s})")

    def delay_s(self, restarts_so_far: int) -> float:
        """The back-off before the next restart of a node restarted `restarts_so_far` times."""
        return min(self.first_delay_s * 2.0 ** restarts_so_far, self.max_delay_s)


@dataclass
class Outage:
    """One death of a node and what followed."""

    node: str
    why: str
    died_s: float
    """time.monotonic() when the bringup found it dead."""
    restarted_s: float | None = None
    """time.monotonic() when its new instance was created; None while it waits, or when given up."""


def _continue_track_ids(dead, restarted) -> str:
    restarted.tracker.next_id = dead.tracker.next_id
    return f"tracks and histories start afresh; track ids go on from {restarted.tracker.next_id} (none reused)"


AFTER_RESTART: dict[str, Callable[[object, object], str]] = {
    "trajectory_predictor": _continue_track_ids,
    "gsrmr_uplink": lambda dead, restarted: "the uplink window, its running quality and a waiting frame are reset",
}
"""Node name → what of the dead instance the restarted one takes over (called before it spins; it
returns what it did, for the restarted node's log). Every other node starts afresh from its
parameters: the detector, the planner (its plan and target), mr_server (its render queue), the
language model. The processing counts go on in every node's statistics (with the input it died on
counted as failed), so a run's last NodeStatistics still covers the whole run."""


class Bringup:
    """Nodes from specs, composed in one process with their own rclpy context, on the environment's
    ROS_DOMAIN_ID and discovery range (set_up_ros_access: LOCALHOST unless set)."""

    def __init__(self, specs: list[graph.NodeSpec], executor: str = "per-node", threads: int = 4,
                 restart_policy: RestartPolicy = RestartPolicy()) -> None:
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
        self.restart_policy = restart_policy
        self.restarts: collections.Counter[str] = collections.Counter()
        """Restarts so far per node name."""
        self.given_up: list[str] = []
        """Nodes the bringup gave up on (spin_until returned)."""
        self.outages: list[Outage] = []
        """Every death of a node so far, in order."""
        self._specs: list[graph.NodeSpec | None] = []
        """Per node, the spec it is restarted from (None: added by add_node, not restarted)."""
        self._names: list[str] = []
        """Per node, its name (a destroyed node no longer says it)."""
        self._restart_due: dict[int, float] = {}
        """Node index → monotonic time of its restart, for the destroyed nodes waiting for one."""
        self._died_threads: set[threading.Thread] = set()
        self._previous_excepthook = threading.excepthook
        threading.excepthook = self._on_thread_exception
        self._logger = rclpy.logging.get_logger("bringup")
        try:
            for spec in specs:
                self.add_node(spec.create(context=self.context), spec)
        except BaseException:
            self.shutdown()
            raise
        self._sim_time = 0.0
        clock_monitor = rclpy.create_node("bringup_clock_monitor", context=self.context)
        clock_monitor.create_subscription(Clock, topics.CLOCK, self._on_clock, 10)
        self.add_node(clock_monitor)

    def add_node(self, node, spec: graph.NodeSpec | None = None) -> None:
        """Compose one more node (created with this bringup's context); it spins from spin_until on.
        With its `spec`, the node is restarted from it when it dies."""
        self.nodes.append(node)
        self._specs.append(spec)
        self._names.append(node.get_name())
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
        return self.nodes[self._names.index(name)]

    def spin_until(self, done, poll_s: float = 0.05) -> None:
        """Spin every executor in a background thread until done() is true or shutdown, restarting
        the nodes that die; returns early when the bringup gives up on a node (see given_up)."""
        for executor in self.executors[len(self._spinners):]:
            self._spinners.append(self._start_spinner(executor))
        while self._supervise() and not done():
            time.sleep(poll_s)

    def _start_spinner(self, executor) -> threading.Thread:
        spinner = threading.Thread(target=self._spin, args=(executor,), daemon=True)
        spinner.start()
        return spinner

    def _spin(self, executor) -> None:
        try:
            executor.spin()
        except ExternalShutdownException:
            pass
        except Exception:  # a callback raised: _supervise restarts its node
            names = ", ".join(node.get_name() for node in executor.get_nodes())
            self._logger.error(f"{names}: a callback raised, its executor stopped:\n{traceback.format_exc()}")

    def _on_thread_exception(self, arguments) -> None:
        """threading.excepthook while the bringup runs: a thread of one of its nodes is logged and
        noted for _supervise; any other goes to the hook there was before."""
        owners = [name for name, node in zip(self._names, self.nodes)
                  if any(value is arguments.thread for value in vars(node).values())]
        if not owners:
            self._previous_excepthook(arguments)
            return
        self._died_threads.add(arguments.thread)
        trace = "".join(traceback.format_exception(arguments.exc_type, arguments.exc_value, arguments.exc_traceback))
        self._logger.error(f"{owners[0]}: its thread {arguments.thread.name} ended on an exception:\n{trace}")

    def _why_dead(self, index: int) -> str | None:
        """Why the node at `index` no longer runs, or None while it does."""
        if index < len(self._spinners) and not self._spinners[index].is_alive() and self.context.ok():
            return "a callback raised"
        died = [value for value in vars(self.nodes[index]).values()
                if isinstance(value, threading.Thread) and value in self._died_threads]
        return f"its thread {died[0].name} ended on an exception" if died else None

    def _supervise(self) -> bool:
        """Destroy the nodes that died, restart those whose back-off is over; False once one is given
        up, or once rclpy was shut down (Ctrl-C: its signal handler shuts the context down)."""
        if not self.context.ok():
            return False
        if self._shared_executor:
            return all(spinner.is_alive() for spinner in self._spinners)
        now = time.monotonic()
        for index in range(len(self.nodes)):
            if index in self._restart_due:
                if now >= self._restart_due[index] and not self._restart(index):
                    return False
                continue
            why = self._why_dead(index)
            if why is not None and not self._schedule_restart(index, why):
                return False
        return True

    def _schedule_restart(self, index: int, why: str) -> bool:
        """Stop and destroy the dead node, keeping it for AFTER_RESTART; False when it is not restarted."""
        node = self.nodes[index]
        self.outages.append(Outage(self._names[index], why, time.monotonic()))
        self.executors[index].shutdown()
        self._died_threads.difference_update(value for value in vars(node).values()
                                             if isinstance(value, threading.Thread))
        try:
            node.destroy_node()
        except Exception as error:  # what is left of a dead node may fail to stop; it is gone all the same
            self._logger.warning(f"{self._names[index]}: destroying the dead node failed "
                                 f"({type(error).__name__}: {error})")
        return self._back_off(index, why)

    def _back_off(self, index: int, why: str) -> bool:
        """Set the destroyed node's restart time; False (and given up) past its budget or without a spec."""
        name, spec = self._names[index], self._specs[index]
        if spec is None or self.restarts[name] >= self.restart_policy.max_restarts:
            self.given_up.append(name)
            self._logger.error(f"{name} died ({why}) and is not restarted: "
                               + ("it was not composed from a NodeSpec" if spec is None else
                                  f"it was restarted {self.restarts[name]} times already "
                                  f"(RestartPolicy.max_restarts {self.restart_policy.max_restarts}); giving up on it"))
            self._restart_due[index] = float("inf")
            return False
        delay = self.restart_policy.delay_s(self.restarts[name])
        self._logger.error(f"{name} died ({why}); restart {self.restarts[name] + 1} of at most "
                           f"{self.restart_policy.max_restarts} in {delay:.2f} s, the other nodes keep running")
        self._restart_due[index] = time.monotonic() + delay
        return True

    def _restart(self, index: int) -> bool:
        """Create the node again from its spec, hand it what survives (AFTER_RESTART) and spin it;
        False when its start failed once too often."""
        dead, spec, name = self.nodes[index], self._specs[index], self._names[index]
        self.restarts[name] += 1
        del self._restart_due[index]
        try:
            node = spec.create(context=self.context)
        except Exception as error:  # counts as another death: the back-off goes on
            return self._back_off(index, f"restart {self.restarts[name]} failed: {type(error).__name__}: {error}")
        survived = AFTER_RESTART.get(name, lambda dead, restarted: "it starts afresh from its parameters")(dead, node)
        statistics = getattr(node, "statistics", None)
        if statistics is not None and getattr(dead, "statistics", None) is not None:
            statistics.continue_from(dead.statistics, failed=1)
        node.get_logger().warning(f"restarted by the bringup ({self.restarts[name]} of at most "
                                  f"{self.restart_policy.max_restarts}): {survived}")
        executor = SingleThreadedExecutor(context=self.context)
        executor.add_node(node)
        self.nodes[index], self.executors[index] = node, executor
        self._spinners[index] = self._start_spinner(executor)
        next(outage for outage in reversed(self.outages) if outage.node == name).restarted_s = time.monotonic()
        return True

    def shutdown(self) -> None:
        """Stop and destroy every node; a bag recorder (with an executor of its own) last, so it
        records what the others publish while they stop (their final statistics)."""
        if threading.excepthook == self._on_thread_exception:
            threading.excepthook = self._previous_excepthook
        recorders = [] if self._shared_executor else [
            (node, executor) for index, (node, executor) in enumerate(zip(self.nodes, self.executors))
            if self._names[index] == "bag_recorder" and index not in self._restart_due]
        # Stop the executors first so no callback runs on a node being destroyed.
        for executor in self.executors:
            if all(executor is not recorder_executor for _, recorder_executor in recorders):
                executor.shutdown()
        for index, node in enumerate(self.nodes):
            if index not in self._restart_due and all(node is not recorder for recorder, _ in recorders):
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
