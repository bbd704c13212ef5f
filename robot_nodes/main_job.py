"""edge-demo, the main job: the whole stack on the simulated world — lidar detector, tracker and
predictor, the CROA planner driving the robot, the GSRMR uplink and its remote server, the on-device
language model answering questions about the scene — recorded to a rosbag2 bag, replayed to check
nothing was lost, and evaluated from the bag (robot_nodes.evaluate) into a report: report.html
(one self-contained page), report.md and report.json in the run's folder.

By default the world runs in lockstep (simulated time waits for the stack, so the result is the same
on a fast or a slow machine); --real-time keeps the world's pace as on a robot."""
from __future__ import annotations

import argparse
import collections
import hashlib
import math
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from action_msgs.msg import GoalStatus
from rclpy.action import ActionClient
from rclpy.node import Node
from rclpy.qos import QoSProfile
from tqdm import tqdm

from edge_robot_msgs.action import Ask
from evaluation.report import Report, Section, format_metric, markdown_table, write_report
from robot_nodes import graph, topics
from robot_nodes.bags import BagError, BagReader, BagTopic, adapted_qos, message_class
from robot_nodes.bringup import (Bringup, add_llm_arguments, add_mixed_reality_arguments, mixed_reality_scene,
                                 model_hint)
from robot_nodes.evaluate import RunInfo, evaluate_bag
from robot_nodes.parameters import ParameterError
from robot_nodes.runner import StartupError

DEFAULT_PLANNER = "croa"
"""What drives the robot unless --planner says otherwise: the CROA planner on the predictions (the
lane-keeping controller with --planner lane_keeping)."""


@dataclass(frozen=True)
class SceneQuestion:
    """A question the main job asks the onboard_llm node while the world runs."""

    text: str
    latency_target: float
    """Whole-answer latency target, seconds (0: none)."""


SCENE_QUESTIONS = (
    SceneQuestion("What is around the robot, and what is nearest?", 0.0),
    SceneQuestion("Is any road user moving near the robot?", 4.0),
    SceneQuestion("Should the robot slow down? Answer in one sentence.", 2.0),
)
"""Asked one after another (each once the previous one is answered), so each answer sees the scene
when it was asked; the targets span none, loose and tight, so the controller's choices show."""

LLM_ASK_AT_S = 3.0
"""Simulated seconds before the first question (half the run when shorter): by then the detector and
the predictor have published, and the answer is grounded in them."""

LLM_ANSWER_TIMEOUT_S = 120.0
"""Wall seconds the run goes on past its duration for answers still being generated."""

STATISTICS_SETTLE_S = 1.5
"""Wall seconds the nodes run on after the end, so their last statistics (once a wall second) are
recorded with the last inputs counted."""


class SceneQuestioner(Node):
    """Sends `questions` to the onboard_llm node's Ask action one at a time, the first once
    `sim_time()` reaches `start_s`; the node records each answer on its answer records topic."""

    def __init__(self, context, questions: tuple[SceneQuestion, ...], start_s: float, sim_time) -> None:
        super().__init__("scene_questioner", context=context)
        self._client = ActionClient(self, Ask, topics.LLM_ASK_ACTION)
        self._waiting = list(questions)
        self._asking: SceneQuestion | None = None
        self._start_s, self._sim_time = start_s, sim_time
        self.failed: list[str] = []
        """Questions that were not answered (refused, aborted or canceled)."""
        self.create_timer(0.1, self._ask_next)

    @property
    def finished(self) -> bool:
        return not self._waiting and self._asking is None

    def unanswered(self) -> list[str]:
        return [question.text for question in ([self._asking] if self._asking else []) + self._waiting] + self.failed

    def _ask_next(self) -> None:
        if self._asking or not self._waiting or self._sim_time() < self._start_s or not self._client.server_is_ready():
            return
        question = self._asking = self._waiting.pop(0)
        sent = self._client.send_goal_async(Ask.Goal(question=question.text, latency_target=question.latency_target))
        sent.add_done_callback(lambda future: self._on_goal(future.result(), question))

    def _on_goal(self, handle, question: SceneQuestion) -> None:
        if not handle.accepted:
            self._finish(question, succeeded=False)
            return
        handle.get_result_async().add_done_callback(
            lambda future: self._finish(question, future.result().status == GoalStatus.STATUS_SUCCEEDED))

    def _finish(self, question: SceneQuestion, succeeded: bool) -> None:
        if not succeeded:
            self.failed.append(question.text)
        self._asking = None


@dataclass
class SimulationRun:
    """What simulate_and_record gives back (everything else is in the bag)."""

    published: collections.Counter
    """Messages sim_world published per topic."""
    wall_s: float
    """Wall seconds of the simulation and recording."""
    simulated_s: float
    """Simulated seconds reached (less than asked when the bringup gave up on a node and the run stopped early)."""
    info: RunInfo
    """The run's configuration, for the evaluation."""
    unanswered: list[str] = field(default_factory=list)
    """Questions to the language model without an answer."""


def simulate_and_record(bag: Path, duration: float, scenario: str | None, seed: int | None, lockstep: bool,
                        real_time_factor: float, planner: str = DEFAULT_PLANNER, detector: bool = True,
                        detector_model: str | None = None, predictor: bool = True,
                        predictor_model: str | None = None, planning_rate: float | None = None,
                        mixed_reality_scene: str | None = None, llm: bool = True, llm_model: str | None = None,
                        llm_cache: str | None = None) -> SimulationRun:
    """Run the simulation graph plus a recorder of everything it carries (and, with `llm`, a client
    asking the language model SCENE_QUESTIONS; the run goes on past `duration` until they are answered)."""
    # The world waits for the recorder's subscriptions so the bag starts with the first step.
    specs = graph.simulation_graph(scenario, seed, real_time_factor, wait_for_subscribers=10.0, detector=detector,
                                   detector_model=detector_model, predictor=predictor, predictor_model=predictor_model,
                                   planner=planner, planning_rate=planning_rate,
                                   mixed_reality_scene=mixed_reality_scene, llm=llm, llm_model=llm_model,
                                   llm_cache=llm_cache, lockstep=lockstep)
    specs.append(graph.bag_recorder(str(bag), graph.recorded_topics(specs), use_sim_time=True))
    bringup = Bringup(specs)
    questioner = None
    if llm:
        questioner = SceneQuestioner(bringup.context, SCENE_QUESTIONS, min(LLM_ASK_AT_S, duration / 2),
                                     lambda: bringup.sim_time)
        bringup.add_node(questioner)
    started = time.perf_counter()
    past_duration: dict[str, float] = {}
    with tqdm(total=duration, desc="simulating + recording", unit="sim s",
              bar_format="{l_bar}{bar}| {n:.1f}/{total:.0f} sim s [{elapsed}<{remaining}]") as bar:
        def done() -> bool:
            bar.update(min(bringup.sim_time, duration) - bar.n)
            if bringup.sim_time <= duration:  # past it, so the last step has published everything
                return False
            past = time.monotonic() - past_duration.setdefault("wall", time.monotonic())
            answered = questioner is None or questioner.finished
            return (answered and past > STATISTICS_SETTLE_S) or past > LLM_ANSWER_TIMEOUT_S
        try:
            bringup.spin_until(done)  # also returns when the bringup gave up on a node that kept dying
            simulated = bringup.sim_time
            world = bringup.node("sim_world")
            detector_node = bringup.node("lidar_detector") if detector else None
        finally:
            bringup.shutdown()  # lets work in progress finish (and publish: counted, not recorded)
    # After the shutdown: the world may have stepped once more since `done`.
    info = RunInfo(scenario=world.config.scenario, seed=world.config.seed,
                   mode="lockstep" if lockstep else "real time", planner=planner,
                   point_range=list(detector_node.point_range) if detector_node else None,
                   extra={"duration": duration, "lockstep timeouts": dict(world.lockstep_timeouts),
                          "real-time factor": real_time_factor,
                          "mixed-reality scene": mixed_reality_scene or "none (uplink off)",
                          "language model": "on" if llm else "off",
                          "node restarts": dict(bringup.restarts) or "none"})
    published = collections.Counter(world.published)
    return SimulationRun(published, time.perf_counter() - started, simulated, info,
                         questioner.unanswered() if questioner else [])


@dataclass
class ReplayTally:
    """What a subscriber saw of a replayed bag."""

    counts: collections.Counter = field(default_factory=collections.Counter)
    """Messages per topic."""
    digests: dict = field(default_factory=lambda: collections.defaultdict(hashlib.sha256))
    """Running sha256 over each topic's raw messages, in arrival order."""


class ReplayMonitor(Node):
    """Subscribes raw to every topic of a bag and tallies what arrives."""

    def __init__(self, bag_topics: dict[str, BagTopic], context) -> None:
        super().__init__("replay_monitor", context=context)
        self.tally = ReplayTally()
        for topic, info in bag_topics.items():
            # The player offers the bag's QoS; match it, with a queue deep enough for bursts.
            qos = adapted_qos([info.qos_profile], depth=1000) if info.qos_profile else QoSProfile(depth=1000)
            self.create_subscription(message_class(info.msgtype), topic,
                                     lambda raw, topic=topic: self.on_message(topic, raw), qos, raw=True)

    def on_message(self, topic: str, raw: bytes) -> None:
        # Only cheap work here: a slow callback makes the player's bounded queues drop messages.
        self.tally.counts[topic] += 1
        self.tally.digests[topic].update(raw)


def replay(bag: Path, rate: float) -> tuple[ReplayTally, float]:
    """Replay the bag through a bag_player to a monitor; returns the tally and wall seconds."""
    with BagReader(bag) as reader:
        bag_topics = reader.topics()
    bringup = Bringup([graph.bag_player(str(bag), rate=rate)])
    monitor = ReplayMonitor(bag_topics, bringup.context)
    bringup.add_node(monitor)
    player = bringup.node("bag_player")
    started = time.perf_counter()
    total = sum(info.count for info in bag_topics.values())
    with tqdm(total=total, desc="replaying", unit="msg") as bar:
        def received_all_or_gave_up() -> bool:
            bar.update(sum(monitor.tally.counts.values()) - bar.n)
            if not player.finished.is_set():
                return False
            # The last messages may still be in flight when the player finishes.
            finished_at.setdefault("t", time.monotonic())
            return sum(monitor.tally.counts.values()) >= total or time.monotonic() - finished_at["t"] > 2.0

        finished_at: dict[str, float] = {}
        try:
            bringup.spin_until(received_all_or_gave_up)
        finally:
            bringup.shutdown()
    return monitor.tally, time.perf_counter() - started


def bag_digests(bag: Path) -> tuple[collections.Counter, dict]:
    counts, digests = collections.Counter(), collections.defaultdict(hashlib.sha256)
    with BagReader(bag) as reader:
        for topic, _, _, raw in reader.messages():
            counts[topic] += 1
            digests[topic].update(raw)
    return counts, digests


def recording_section(run: SimulationRun, recorded: collections.Counter, recorded_digests: dict,
                      tally: ReplayTally, replay_wall: float, report: Report) -> Section:
    """How long the run took, what was published, recorded and replayed, and whether replay lost anything."""
    lost = sum(recorded.values()) - sum(tally.counts[topic] for topic in recorded)
    timeouts = run.info.extra.get("lockstep timeouts", {})
    report.metrics.update({"run.wall_s": run.wall_s, "run.real_time_factor": run.simulated_s / run.wall_s,
                           "run.replay_lost_messages": lost, "run.lockstep_timeouts": sum(timeouts.values())})
    rows = [[f"`{topic}`", str(run.published.get(topic, "–")), str(recorded[topic]), str(tally.counts[topic]),
             "yes" if recorded_digests[topic].hexdigest() == tally.digests[topic].hexdigest() else "**NO**"]
            for topic in sorted(recorded)]
    lines = [f"- simulation + recording: {run.simulated_s:.1f} simulated s in {run.wall_s:.1f} wall s "
             f"({run.simulated_s / run.wall_s:.2f}x real time), {run.info.mode}"
             + (f"; waits for the stack that timed out: {timeouts}" if timeouts else
                ("; the world never went on without the stack" if run.info.mode == "lockstep" else "")),
             f"- replay of the bag: {replay_wall:.1f} wall s; messages lost in replay: {lost}", "",
             markdown_table(["topic", "published by the world", "recorded", "replayed", "bytes identical"], rows,
                            right_aligned=(1, 2, 3))]
    if run.unanswered:
        lines.insert(1, "- **the language model did not answer**: " + "; ".join(f'"{q}"' for q in run.unanswered))
    return Section("Recording and replay", "\n".join(lines))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=20.0, help="simulated seconds to run (default 20)")
    parser.add_argument("--scenario", help="scenario YAML (default: config/sim_world.param.yaml's)")
    parser.add_argument("--seed", type=int, help="world seed (default: the parameter file's)")
    parser.add_argument("--real-time", action="store_true",
                        help="keep the world's pace (--real-time-factor) instead of lockstep; slow nodes then drop frames")
    parser.add_argument("--real-time-factor", type=float,
                        help="simulated s per wall s; 0 = as fast as possible (default: 1 with --real-time, "
                             "else 0: lockstep as fast as the stack goes)")
    parser.add_argument("--replay-rate", type=float, default=4.0, help="replay speed factor (default 4)")
    parser.add_argument("--output", type=Path, default=Path("out/demo"), help="folder for the run (default out/demo)")
    parser.add_argument("--planner", choices=graph.PLANNERS, default=DEFAULT_PLANNER,
                        help=f"what drives the robot (default {DEFAULT_PLANNER}; croa needs the detector and predictor)")
    parser.add_argument("--planning-rate", type=float,
                        help="CROA planning cycles per simulated s in real time (default: the parameter file's, 10; "
                             "in lockstep the planner plans on every scan)")
    parser.add_argument("--detector-model", metavar="PATH", type=Path,
                        help="lidar detector checkpoint (default: config/lidar_detector.param.yaml's, "
                             "models/lidar_detector.pt)")
    parser.add_argument("--no-detector", action="store_true", help="run without the lidar detector (and predictor)")
    parser.add_argument("--predictor-model", metavar="PATH", type=Path,
                        help="prediction model (default: config/trajectory_predictor.param.yaml's, "
                             "models/trajectory_predictor_apolloscape.onnx)")
    parser.add_argument("--no-predictor", action="store_true", help="run without the tracker and predictor")
    add_mixed_reality_arguments(parser)
    add_llm_arguments(parser, default=True)
    options = parser.parse_args(argv)
    if not (options.duration > 0 and math.isfinite(options.duration)):
        parser.error("--duration must be a positive number of seconds")
    if options.planner == "croa" and (options.no_detector or options.no_predictor):
        parser.error("--planner croa plans on the predictions: it needs the detector and the predictor "
                     "(use --planner lane_keeping with --no-detector or --no-predictor)")
    real_time_factor = options.real_time_factor if options.real_time_factor is not None else (
        1.0 if options.real_time else 0.0)

    run_dir = options.output / datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    run_dir.mkdir(parents=True)
    bag = run_dir / "sim_bag"
    try:
        scene = mixed_reality_scene(options)
        run = simulate_and_record(
            bag, options.duration, options.scenario, options.seed, not options.real_time, real_time_factor,
            planner=options.planner, detector=not options.no_detector,
            detector_model=str(options.detector_model.resolve()) if options.detector_model else None,
            predictor=not options.no_predictor,
            predictor_model=str(options.predictor_model.resolve()) if options.predictor_model else None,
            planning_rate=options.planning_rate, mixed_reality_scene=scene, llm=options.llm,
            llm_model=str(options.llm_model.resolve()) if options.llm_model else None,
            llm_cache=str(options.llm_cache.resolve()) if options.llm_cache else None)
        run.info.write(bag)
        recorded, recorded_digests = bag_digests(bag)
        tally, replay_wall = replay(bag, options.replay_rate)
        report = evaluate_bag(bag, run.info, f"edge-demo run {run_dir.name}")
    except (ParameterError, StartupError, BagError) as error:
        print(f"edge-demo: {error}{model_hint(error)}", file=sys.stderr)
        return 2
    report.sections.insert(1, recording_section(run, recorded, recorded_digests, tally, replay_wall, report))
    stopped_early = run.simulated_s < options.duration
    if stopped_early:
        report.summary = (f"**The run stopped early, at {run.simulated_s:.1f} of {options.duration:g} simulated s: "
                          "a node kept dying and the bringup gave up on it (its tracebacks are in the log).**")
    files = write_report(report, run_dir)
    print("\n".join(f"{key}: {format_metric(report.metrics[key])}" for key in report.overview))
    print(f"report: {files.html} (and {files.markdown.name}); bag: {bag}")
    lost = report.metrics["run.replay_lost_messages"]
    if stopped_early:
        print(f"edge-demo: the run stopped early, at {run.simulated_s:.1f} of {options.duration:g} simulated s",
              file=sys.stderr)
    if run.unanswered:
        print("edge-demo: the language model did not answer every question (see the report)", file=sys.stderr)
    return 0 if lost == 0 and not stopped_early and not run.unanswered else 1


if __name__ == "__main__":
    sys.exit(main())
