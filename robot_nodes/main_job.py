"""edge-demo, the main job: run the simulated world with the lidar detector and the
tracker/predictor and the mixed-reality uplink (GSRMR) over ROS, driven by the CROA planner on the
predictions (or the lane-keeping controller), record every topic to a rosbag2 bag, replay the bag
through a bag_player, check that nothing was lost, score the replayed detections and predictions
against the simulated ground truth, the uplink's energy and the remote stream's quality against
always uploading, report the planner's cycles and whether the robot hit anything, with --llm ask the on-device language
model a few questions about the scene while it runs, and print a summary (also written to
<output>/summary.md)."""
from __future__ import annotations

import argparse
import collections
import dataclasses
import hashlib
import math
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
from action_msgs.msg import GoalStatus
from rclpy.action import ActionClient
from rclpy.node import Node
from rclpy.qos import QoSProfile
from rclpy.serialization import deserialize_message
from tqdm import tqdm

from edge_robot_msgs.action import Ask
from edge_robot_msgs.msg import (DetectedObjects, GroundTruthObjects, PlannerStatus, PredictedObjects, StreamQuality,
                                 UplinkDecision)
from nav_msgs.msg import Odometry
from tf2_msgs.msg import TFMessage

from evaluation.detection_run import DetectionRunResult, pose_at, score_detection_run
from evaluation.prediction_run import MATCH_DISTANCE, score_prediction_run
from perception.objects import corners_bev
from robot_nodes import graph, topics
from robot_nodes.bags import BagError, BagReader, BagTopic, adapted_qos, message_class
from robot_nodes.bringup import (Bringup, add_llm_arguments, add_mixed_reality_arguments, mixed_reality_scene,
                                 model_hint)
from robot_nodes.conversions import (msg_to_detected_objects, msg_to_ground_truth_objects, msg_to_predicted_objects,
                                     odometry_to_se2, stamp_ns, transform_to_se3)
from robot_nodes.parameters import ParameterError
from robot_nodes.runner import StartupError
from sim.geometry import rectangles_overlap
from sim.road import RoadGeometry
from sim.scenario import EgoConfig

SUMMARY_TOPICS = (topics.ODOMETRY, topics.GROUND_TRUTH_OBJECTS, topics.DETECTED_OBJECTS, topics.TF_STATIC,
                  topics.PREDICTED_OBJECTS, topics.CROA_PLANNER_STATUS, topics.UPLINK_DECISION,
                  topics.MR_STREAM_QUALITY)
"""Topics whose replayed messages are kept (raw) and decoded for the summary after the replay."""


DEFAULT_PLANNER = "lane_keeping"
"""What drives the robot unless --planner says otherwise. Measured on urban_default (seed 0, 20 s,
everything in this one process on 2 shared CPU cores, December 2026): the lane-keeping controller
drives at 8 m/s in its lane without touching anything; in 5 runs driven by the CROA planner (5 and
10 Hz; node and planner were changing between them) each plan took 0.4-0.65 s of wall time, the
world slowed to 0.29-0.34x real time (0.40x under lane keeping), the robot averaged 3.4-4.5 m/s,
turned up to 20-56 degrees off the road's direction and touched a road user in 4 of them
(rear-ending a car that braked against its prediction, or parked cars while turning to see a hidden
one). After the planner's fixes (hard corridor and heading bound, following distance, penalty-CCP
safety slack) one CROA run had no fallback and no collision, 22 degrees off the road at most, but
came within 0.10 m of a road user, at 0.2 s of wall time per plan. So the CROA planner is chosen
with --planner croa."""


@dataclass
class DetectorRun:
    """What the lidar detector did during the simulation."""

    point_range: tuple[float, ...]
    """Its detection volume, lidar frame."""
    counters: dict
    """Its DetectorCounters, as a dict."""
    processing_times_ms: list[float]
    """Milliseconds from a cloud's arrival to its objects going out, per processed cloud."""


@dataclass
class PredictorRun:
    """What the trajectory_predictor did during the simulation."""

    counters: dict
    """Its PredictorCounters, as a dict."""
    processing_times_ms: list[float]
    """Milliseconds from a detections message's arrival to its predictions going out."""


@dataclass
class PlannerRun:
    """What the croa_planner did during the simulation."""

    counters: dict
    """Its PlannerCounters, as a dict."""
    planning_times_ms: list[float]
    """Milliseconds per cycle that ran the planner (scene, plan, messages out)."""
    warm_up_s: float
    """Seconds to build the planner and run its warm-up plan at start-up."""
    planning_rate: float
    """Its planning_rate parameter, Hz."""


@dataclass
class MixedRealityRun:
    """What the gsrmr_uplink and the mr_server did during the simulation."""

    uplink_counters: dict
    """The uplink's UplinkCounters, as a dict."""
    server_counters: dict
    """The server's ServerCounters, as a dict."""
    render_times_ms: list[float]
    """The server's wall milliseconds per render."""
    scene: str
    """The Gaussian-splatting scene file both used."""
    quality_threshold: float
    """The uplink's quality threshold (running mean PSNR), dB."""


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

GOAL_STATUS = {GoalStatus.STATUS_SUCCEEDED: "succeeded", GoalStatus.STATUS_CANCELED: "canceled",
               GoalStatus.STATUS_ABORTED: "aborted"}


@dataclass
class LlmAnswer:
    """One question and the Ask action's result."""

    question: SceneQuestion
    asked_at_s: float
    """Simulated seconds when the goal was sent."""
    status: str
    """'succeeded', 'aborted' (the answer then says why), 'canceled' or 'not accepted'."""
    result: Ask.Result


@dataclass
class LlmRun:
    """What the onboard_llm node answered during the simulation."""

    answers: list[LlmAnswer]
    unanswered: list[str]
    """Questions without a result when the run ended (LLM_ANSWER_TIMEOUT_S after its duration)."""
    refused: int
    """Requests the node refused (its queue was full)."""
    truncated_prompts: int
    """Prompts the node cut to fit its context."""


class SceneQuestioner(Node):
    """Sends `questions` to the onboard_llm node's Ask action one at a time, the first once
    `sim_time()` reaches `start_s`, and keeps the results."""

    def __init__(self, context, questions: tuple[SceneQuestion, ...], start_s: float, sim_time) -> None:
        super().__init__("scene_questioner", context=context)
        self._client = ActionClient(self, Ask, topics.LLM_ASK_ACTION)
        self._waiting = list(questions)
        self._asking: SceneQuestion | None = None
        self._start_s, self._sim_time = start_s, sim_time
        self.answers: list[LlmAnswer] = []
        self.create_timer(0.1, self._ask_next)

    @property
    def finished(self) -> bool:
        return not self._waiting and self._asking is None

    def unanswered(self) -> list[str]:
        return [question.text for question in ([self._asking] if self._asking else []) + self._waiting]

    def _ask_next(self) -> None:
        if self._asking or not self._waiting or self._sim_time() < self._start_s or not self._client.server_is_ready():
            return
        question = self._asking = self._waiting.pop(0)
        asked_at = self._sim_time()
        sent = self._client.send_goal_async(Ask.Goal(question=question.text, latency_target=question.latency_target))
        sent.add_done_callback(lambda future: self._on_goal(future.result(), question, asked_at))

    def _on_goal(self, handle, question: SceneQuestion, asked_at: float) -> None:
        if not handle.accepted:
            self._finish(LlmAnswer(question, asked_at, "not accepted", Ask.Result()))
            return
        handle.get_result_async().add_done_callback(lambda future: self._finish(LlmAnswer(
            question, asked_at, GOAL_STATUS.get(future.result().status, str(future.result().status)),
            future.result().result)))

    def _finish(self, answer: LlmAnswer) -> None:
        self.answers.append(answer)
        self._asking = None


@dataclass
class SimulationRun:
    """What simulate_and_record gives back."""

    published: collections.Counter
    """Messages published per topic (sim_world's, the detector's, the predictor's, the planner's)."""
    wall_s: float
    """Wall seconds of the simulation and recording."""
    ego: EgoConfig
    """The simulated robot's body."""
    road: RoadGeometry
    """The simulated road."""
    simulated_s: float = 0.0
    """Simulated seconds reached (less than asked when a node's executor died and the run stopped early)."""
    detector: DetectorRun | None = None
    predictor: PredictorRun | None = None
    planner: PlannerRun | None = None
    mixed_reality: MixedRealityRun | None = None
    llm: LlmRun | None = None


@dataclass
class ReplayTally:
    """What a subscriber saw of a replayed bag."""

    counts: collections.Counter = field(default_factory=collections.Counter)
    """Messages per topic."""
    digests: dict = field(default_factory=lambda: collections.defaultdict(hashlib.sha256))
    """Running sha256 over each topic's raw messages, in arrival order."""
    raw_for_summary: dict = field(default_factory=lambda: collections.defaultdict(list))
    """Raw messages of the SUMMARY_TOPICS, decoded for the summary after the replay."""

    def _decoded(self, topic: str, message_type: type) -> list:
        return [deserialize_message(raw, message_type) for raw in self.raw_for_summary[topic]]

    def odometry(self) -> list[tuple[float, float, float, float, float]]:
        """(x, y, yaw, speed, yaw_rate) per odometry message."""
        return [odometry_to_se2(message) for message in self._decoded(topics.ODOMETRY, Odometry)]

    def stamped_poses(self) -> list[tuple[int, float, float, float]]:
        """(stamp_ns, x, y, yaw) of base_link per odometry message."""
        return [(stamp_ns(message.header.stamp), *odometry_to_se2(message)[:3])
                for message in self._decoded(topics.ODOMETRY, Odometry)]

    def ground_truth(self) -> list[list]:
        """The ground-truth objects of each message."""
        return [objects for _, objects in self.stamped_ground_truth()]

    def stamped_ground_truth(self) -> list[tuple[int, list]]:
        """(stamp_ns, objects in map) per ground-truth message."""
        return [(stamp_ns(message.header.stamp), msg_to_ground_truth_objects(message))
                for message in self._decoded(topics.GROUND_TRUTH_OBJECTS, GroundTruthObjects)]

    def stamped_detections(self) -> tuple[list[tuple[int, list]], str | None]:
        """(stamp_ns, objects) per detections message, and the frame they are in (None without any)."""
        messages = self._decoded(topics.DETECTED_OBJECTS, DetectedObjects)
        frame = messages[0].header.frame_id if messages else None
        return [(stamp_ns(message.header.stamp), msg_to_detected_objects(message)) for message in messages], frame

    def stamped_predictions(self) -> list[tuple[int, list]]:
        """(stamp_ns, predicted objects) per predictions message."""
        return [(stamp_ns(message.header.stamp), msg_to_predicted_objects(message))
                for message in self._decoded(topics.PREDICTED_OBJECTS, PredictedObjects)]

    def uplink_decisions(self) -> list[UplinkDecision]:
        return self._decoded(topics.UPLINK_DECISION, UplinkDecision)

    def stream_qualities(self) -> list[StreamQuality]:
        return self._decoded(topics.MR_STREAM_QUALITY, StreamQuality)

    def planner_statuses(self) -> list[PlannerStatus]:
        """The croa_planner's status per cycle."""
        return self._decoded(topics.CROA_PLANNER_STATUS, PlannerStatus)

    def static_transform(self, parent: str, child: str) -> np.ndarray | None:
        """The 4x4 pose of `child` in `parent` from the replayed /tf_static, or None."""
        for message in self._decoded(topics.TF_STATIC, TFMessage):
            for transform in message.transforms:
                if transform.header.frame_id == parent and transform.child_frame_id == child:
                    return transform_to_se3(transform.transform)
        return None


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
        if topic in SUMMARY_TOPICS:
            self.tally.raw_for_summary[topic].append(raw)


def simulate_and_record(bag: Path, duration: float, scenario: str | None, seed: int | None,
                        real_time_factor: float, detector: bool = True, detector_model: str | None = None,
                        predictor: bool = True, predictor_model: str | None = None, planner: str = "lane_keeping",
                        planning_rate: float | None = None, mixed_reality_scene: str | None = None,
                        llm: bool = False, llm_model: str | None = None, llm_cache: str | None = None) -> SimulationRun:
    """Run the simulation graph plus a recorder (and, with `llm`, the onboard_llm node and a client
    asking it SCENE_QUESTIONS; the run goes on past `duration` until they are answered); returns the
    published counts (sim_world's, the detector's objects, the predictor's and the planner's), wall
    seconds, the robot's body and road, and what the detector, the predictor, the planner, the
    mixed-reality nodes and the language model did (None without them)."""
    # The world waits for the recorder's subscriptions so the bag starts with the first step.
    specs = graph.simulation_graph(scenario, seed, real_time_factor, wait_for_subscribers=10.0, detector=detector,
                                   detector_model=detector_model, predictor=predictor, predictor_model=predictor_model,
                                   planner=planner, planning_rate=planning_rate,
                                   mixed_reality_scene=mixed_reality_scene, llm=llm, llm_model=llm_model,
                                   llm_cache=llm_cache)
    running = {spec.name for spec in specs}
    predictor = "trajectory_predictor" in running
    croa = "croa_planner" in running
    recorded = topics.SIMULATED_SENSOR_TOPICS + ([topics.DETECTED_OBJECTS] if detector else []) + (
        [topics.TRACKED_OBJECTS, topics.PREDICTED_OBJECTS] if predictor else []) + (
        [topics.PLANNED_PATH, topics.CROA_PLANNER_STATUS] if croa else []) + (
        list(graph.MIXED_REALITY_OUTPUTS) if mixed_reality_scene else []) + [topics.NODE_STATISTICS]
    specs.append(graph.bag_recorder(str(bag), recorded, use_sim_time=True))
    bringup = Bringup(specs)
    questioner = None
    if llm:
        questioner = SceneQuestioner(bringup.context, SCENE_QUESTIONS, min(LLM_ASK_AT_S, duration / 2),
                                     lambda: bringup.sim_time)
        bringup.add_node(questioner)
    node, predictor_node, planner_node, uplink_node, server_node, llm_node = None, None, None, None, None, None
    started = time.perf_counter()
    past_duration: dict[str, float] = {}
    with tqdm(total=duration, desc="simulating + recording", unit="sim s", bar_format="{l_bar}{bar}| {n:.1f}/{total:.0f} sim s") as bar:
        def done() -> bool:
            bar.update(min(bringup.sim_time, duration) - bar.n)
            if bringup.sim_time <= duration:  # past it, so the last step has published everything
                return False
            if questioner is None or questioner.finished:
                return True
            past_duration.setdefault("wall", time.monotonic())
            return time.monotonic() - past_duration["wall"] > LLM_ANSWER_TIMEOUT_S
        try:
            bringup.spin_until(done)  # also returns when an executor thread died (a node raised)
            simulated = bringup.sim_time
            world = bringup.node("sim_world").world
            published = collections.Counter(bringup.node("sim_world").published)
            node = bringup.node("lidar_detector") if detector else None
            predictor_node = bringup.node("trajectory_predictor") if predictor else None
            planner_node = bringup.node("croa_planner") if croa else None
            if mixed_reality_scene:
                uplink_node, server_node = bringup.node("gsrmr_uplink"), bringup.node("mr_server")
            llm_node = bringup.node("onboard_llm") if llm else None
        finally:
            bringup.shutdown()  # lets a detection in progress finish (and publish: counted, not recorded)
    run = SimulationRun(published, time.perf_counter() - started, world.scenario.ego, world.road, simulated)
    if node is not None:
        published[topics.DETECTED_OBJECTS] = node.counters.processed
        run.detector = DetectorRun(tuple(node.point_range), dataclasses.asdict(node.counters),
                                   list(node.processing_times_ms))
    if predictor_node is not None:
        published[topics.TRACKED_OBJECTS] = published[topics.PREDICTED_OBJECTS] = predictor_node.counters.processed
        run.predictor = PredictorRun(dataclasses.asdict(predictor_node.counters),
                                     list(predictor_node.processing_times_ms))
    if planner_node is not None:
        published[topics.PLANNED_PATH] = planner_node.counters.planned
        published[topics.CROA_PLANNER_STATUS] = planner_node.counters.cycles
        run.planner = PlannerRun(dataclasses.asdict(planner_node.counters), list(planner_node.planning_times_ms),
                                 planner_node.warm_up_s, planner_node.config.planning_rate)
    if uplink_node is not None:
        published[topics.UPLINK_DECISION] = uplink_node.counters.decided
        published[topics.MR_STREAM_QUALITY] = server_node.counters.scored
        run.mixed_reality = MixedRealityRun(dataclasses.asdict(uplink_node.counters),
                                            dataclasses.asdict(server_node.counters),
                                            list(server_node.render_times_ms), mixed_reality_scene,
                                            uplink_node.config.policy.quality_threshold)
    if llm_node is not None:
        run.llm = LlmRun(list(questioner.answers), questioner.unanswered(), llm_node.refused, llm_node.truncated_prompts)
    return run


def replay(bag: Path, rate: float) -> tuple[ReplayTally, float]:
    """Replay the bag through a bag_player to a monitor; returns the tally and wall seconds."""
    reader = BagReader(bag)
    player_spec = graph.bag_player(str(bag), rate=rate)
    bringup = Bringup([player_spec])
    monitor = ReplayMonitor(reader.topics(), bringup.context)
    bringup.add_node(monitor)
    player = bringup.node("bag_player")
    started = time.perf_counter()
    total = sum(info.count for info in reader.topics().values())
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
    for topic, _, _, raw in BagReader(bag).messages():
        counts[topic] += 1
        digests[topic].update(raw)
    return counts, digests


def detection_markdown(tally: ReplayTally, run: DetectorRun, recorded: int) -> list[str]:
    """The detector's frame counts, processing time and AP on the replayed run (summary lines);
    `recorded`: detections messages in the bag."""
    counts = run.counters
    lines = ["", "## Lidar detection", "",
             f"- clouds: {counts['received']} received, {counts['processed']} processed, "
             f"{counts['dropped_frames']} dropped (detector busy), {counts['rejected']} rejected, "
             f"{counts['failed_frames']} failed; {counts['nan_points_dropped']} non-finite points dropped, "
             f"{counts['subsampled_frames']} clouds subsampled"]
    if counts["processed"] > recorded:
        lines.append(f"- {counts['processed'] - recorded} detections message(s) went out while the run shut down, "
                     "after the recorder had stopped: not in the bag")
    times = np.array(run.processing_times_ms)
    if len(times):
        lines.append(f"- processing time (cloud in → objects out): median {np.median(times):.0f} ms, "
                     f"90th percentile {np.percentile(times, 90):.0f} ms, max {times.max():.0f} ms")
    detections, frame = tally.stamped_detections()
    poses = tally.stamped_poses()
    base_frame = deserialize_message(tally.raw_for_summary[topics.ODOMETRY][0], Odometry).child_frame_id \
        if poses else "base_link"
    mount = tally.static_transform(base_frame, frame) if frame else None
    if not detections or mount is None:
        why = "no detections in the bag" if not detections else f"no {base_frame} → {frame} transform on /tf_static"
        return lines + [f"- AP not scored: {why}"]
    result: DetectionRunResult = score_detection_run(detections, tally.stamped_ground_truth(), poses, mount,
                                                     run.point_range)
    skipped = result.frames_without_truth + result.frames_without_pose
    lines += [f"- AP (%) on the {result.frames_scored} processed scans"
              + (f" ({skipped} more without ground truth or pose, not scored)" if skipped else "")
              + f": 40 recall points, IoU 0.7 car and truck_bus, 0.5 pedestrian and cyclist; ground truth in the "
              f"point range {[round(value, 2) for value in run.point_range]} with at least "
              f"{result.bev.config.min_points} lidar points", "", result.to_markdown()]
    return lines


def prediction_markdown(tally: ReplayTally, run: PredictorRun) -> list[str]:
    """The predictor's message counts, processing time and ADE/FDE against the ground truth (summary lines)."""
    counts = run.counters
    lines = ["", "## Tracking and prediction", "",
             f"- detections messages: {counts['received']} received, {counts['processed']} processed, "
             f"{counts['rejected']} rejected, {counts['skipped_without_pose']} skipped without a pose, "
             f"{counts['resets']} tracker resets"]
    times = np.array(run.processing_times_ms)
    if len(times):
        lines.append(f"- processing time (detections in → predictions out): median {np.median(times):.1f} ms, "
                     f"90th percentile {np.percentile(times, 90):.1f} ms, max {times.max():.1f} ms")
    predictions = tally.stamped_predictions()
    if not predictions:
        return lines + ["- ADE/FDE not scored: no predictions in the bag"]
    result = score_prediction_run(predictions, tally.stamped_ground_truth())
    if not result.errors:
        return lines + [f"- ADE/FDE not scored: no prediction matched a true object within {MATCH_DISTANCE:g} m "
                        "with its whole horizon in the run"]
    lines += [f"- ADE/FDE (m) of the most likely mode against the simulated ground truth (tracks matched to "
              f"the true object within {MATCH_DISTANCE:g} m; not scored: {result.parked} predictions of parked objects, "
              f"{result.unmatched} of false tracks and {result.incomplete} whose horizon ran past the run or the "
              "object's life):", "",
              result.to_markdown()]
    return lines


def _gaps(ego: np.ndarray, others: np.ndarray) -> np.ndarray:
    """Distance between the ego's rectangle (4, 2) and each other rectangle (K, 4, 2), 0 where they
    overlap: the least corner-to-edge distance either way (exact for disjoint convex polygons)."""
    def corner_edge(corners: np.ndarray, polygons: np.ndarray) -> np.ndarray:
        starts, ends = polygons, np.roll(polygons, -1, axis=-2)  # (K, 4, 2) edges
        edge = ends - starts
        offsets = corners[:, None, None, :] - starts[None]  # (C, K, 4, 2)
        along = np.clip(np.einsum("ckei,kei->cke", offsets, edge) / np.maximum(np.einsum("kei,kei->ke", edge, edge),
                                                                             1e-12), 0.0, 1.0)
        return np.linalg.norm(offsets - along[..., None] * edge[None], axis=-1).min(axis=(0, 2))

    if not len(others):
        return np.zeros(0)
    overlapping = rectangles_overlap(ego[None], others)
    gaps = np.minimum(corner_edge(ego, others),
                      np.array([corner_edge(other, ego[None])[0] for other in others]))
    return np.where(overlapping, 0.0, gaps)


def driving_markdown(tally: ReplayTally, ego: EgoConfig, road: RoadGeometry) -> list[str]:
    """Whether the robot hit a road user or left the road, from the replayed odometry and ground truth
    (the simulated map = odom; buildings, walls and poles are not in the ground truth)."""
    poses = tally.stamped_poses()
    truth = tally.stamped_ground_truth()
    lines = ["", "## Driving", ""]
    if not poses or not truth:
        return lines + ["- not checked: no odometry or ground truth in the bag"]
    forward = ego.length / 2.0 - ego.rear_overhang
    hits: set[int] = set()
    collision_frames = off_road_frames = checked = 0
    closest = (math.inf, None)
    for stamp, objects in truth:
        pose = pose_at(poses, stamp)
        if pose is None:
            continue
        checked += 1
        x, y, yaw = pose
        body = corners_bev(np.array([[x + forward * math.cos(yaw), y + forward * math.sin(yaw), 0.0, ego.length,
                                      ego.width, ego.height, yaw]]))[0]
        _, lateral = road.to_frenet(body[:, 0], body[:, 1])
        off_road_frames += bool(np.any(np.abs(lateral) > road.half_width))
        if not objects:
            continue
        boxes = np.array([[*o.box.center, *o.box.size, o.box.yaw] for o in objects])
        near = np.hypot(boxes[:, 0] - x, boxes[:, 1] - y) < 40.0
        if not near.any():
            continue
        gaps = _gaps(body, corners_bev(boxes[near]))
        ids = [o.object_id for o, close in zip(objects, near) if close]
        collision_frames += bool(np.any(gaps <= 0.0))
        hits.update(object_id for object_id, gap in zip(ids, gaps) if gap <= 0.0)
        nearest = int(np.argmin(gaps))
        if gaps[nearest] < closest[0]:
            closest = (float(gaps[nearest]), ids[nearest])
    lines.append(f"- collisions with road users: {len(hits)} object(s) hit, in {collision_frames} of {checked} "
                 f"ground-truth frames" + (f" (ids {sorted(hits)})" if hits else ""))
    lines.append(f"- frames with the body beyond the kerbs: {off_road_frames}")
    xy_yaw = np.array([pose[1:] for pose in poses])
    s, d = road.to_frenet(xy_yaw[:, 0], xy_yaw[:, 1])
    off_heading = np.abs(np.remainder(xy_yaw[:, 2] - road.heading(s) + math.pi, 2 * math.pi) - math.pi)
    off_heading = np.minimum(off_heading, math.pi - off_heading)  # either driving direction
    lines.append(f"- base_link across the road: d from {d.min():.1f} to {d.max():.1f} m (lane centres at "
                 f"{', '.join(f'{offset:g}' for offset in road.lane_offsets)}); heading off the road's direction "
                 f"at most {math.degrees(off_heading.max()):.0f} degrees")
    if closest[1] is not None:
        lines.append(f"- closest approach to a road user: {closest[0]:.2f} m (object {closest[1]})")
    return lines


def planning_markdown(tally: ReplayTally, run: PlannerRun) -> list[str]:
    """The planner's cycle counts, fallbacks and their reasons, run time and targets (summary lines)."""
    counts = run.counters
    lines = ["", "## CROA planning", "",
             f"- {counts['cycles']} cycles at {run.planning_rate:g} Hz of simulated time: {counts['planned']} planned "
             f"({counts['fallbacks']} fallbacks, {counts['planner_errors']} planner errors), {counts['replaced']} "
             f"replaced by a newer one before the planner was free, {counts['waited_for_predictions']} without "
             f"current predictions, {counts['stopped_without_odometry']} without odometry; {counts['resets']} resets",
             f"- {counts['commands']} cmd_vel commands: {counts['followed']} following a plan, {counts['braked']} "
             f"braking along the lane without a current plan, {counts['stopped']} stops without odometry",
             f"- built and warmed up in {run.warm_up_s:.1f} s"]
    times = np.array(run.planning_times_ms)
    if len(times):
        lines.append(f"- time per planning cycle (scene, plan, messages): median {np.median(times):.0f} ms, "
                     f"90th percentile {np.percentile(times, 90):.0f} ms, max {times.max():.0f} ms "
                     f"(the period is {1e3 / run.planning_rate:.0f} ms)")
    statuses = tally.planner_statuses()
    if statuses:
        reasons = collections.Counter(status.reason for status in statuses if status.fallback)
        if reasons:
            lines.append("- fallback reasons (recorded cycles): " + "; ".join(
                f"{reason} ×{count}" for reason, count in reasons.most_common()))
    solved = [status for status in statuses if not status.fallback]
    if solved:
        lines.append(f"- optimised cycles: median {np.median([s.iterations for s in solved]):.0f} convex-concave "
                     f"iterations, solve time median {1e3 * np.median([s.solve_time for s in solved]):.0f} ms, "
                     f"{np.mean([s.obstacle_count for s in solved]):.1f} obstacles in the scene "
                     f"({np.mean([s.constrained_obstacle_count for s in solved]):.1f} constrained)")
        with_target = [status for status in solved if status.target_id >= 0]
        if with_target:
            lines.append(f"- a target in {len(with_target)} of {len(solved)} optimised cycles "
                         f"({len({s.target_id for s in with_target})} distinct): hidden "
                         f"{np.mean([s.occlusion_ratio_now for s in with_target]):.0%} on average from the pose now, "
                         f"{np.mean([s.occlusion_ratio for s in with_target]):.0%} from the planned last pose")
    return lines


def mixed_reality_markdown(tally: ReplayTally, run: MixedRealityRun) -> list[str]:
    """The uplink's energy and the remote stream's quality, against uploading every frame (summary lines)."""
    uplink, server = run.uplink_counters, run.server_counters
    lines = ["", "## Mixed-reality uplink (GSRMR)", "",
             f"- scene `{run.scene}`; camera frames: {uplink['received']} received, {uplink['decided']} decided "
             f"({uplink['uploaded']} uploaded), {uplink['rejected']} rejected, {uplink['dropped_frames']} dropped "
             f"(deciding behind the camera), "
             f"{uplink['skipped_without_camera_info'] + uplink['skipped_without_pose']} skipped without camera info or pose",
             f"- server: {server['shown_uploads']} uploads shown, {server['rendered']} poses rendered, "
             f"{server['dropped_renders']} dropped (renderer behind), {server['rejected']} rejected, "
             f"{server['scored']} frames scored against the true frame"]
    times = np.array(run.render_times_ms)
    if len(times):
        lines.append(f"- render time: median {np.median(times):.0f} ms, 90th percentile {np.percentile(times, 90):.0f} ms")
    decisions = tally.uplink_decisions()
    if not decisions:
        return lines + ["- energy not scored: no decisions in the bag"]
    energy = sum(d.energy for d in decisions)
    uploadable = [d for d in decisions if math.isfinite(d.image_energy)]
    always_energy = sum(d.image_energy for d in uploadable) + sum(d.energy for d in decisions
                                                                    if not math.isfinite(d.image_energy))
    seconds = len(decisions) / 10.0
    lines.append(f"- uplink energy: {energy:.3g} J for {len(decisions)} frames, {sum(d.upload for d in decisions)} "
                 f"uploads ({sum(d.upload for d in decisions) / seconds:.1f}/s at 10 Hz); always uploading: "
                 f"{always_energy:.3g} J ({always_energy / energy:.1f}x more)"
                 + (f"; {len(decisions) - len(uploadable)} frames could not have been uploaded within the latency"
                    if len(uploadable) < len(decisions) else ""))
    qualities = tally.stream_qualities()
    if qualities:
        rendered = [q for q in qualities if q.rendered]
        lines.append(f"- the remote stream against the true frames ({len(qualities)} scored): PSNR "
                     f"{np.mean([q.psnr for q in qualities]):.2f} dB, SSIM {np.mean([q.ssim for q in qualities]):.3f} "
                     f"(threshold {run.quality_threshold:g} dB); always uploading: PSNR "
                     f"{np.mean([d.image_psnr for d in decisions]):.2f} dB, SSIM "
                     f"{np.mean([d.image_ssim for d in decisions]):.3f}")
        if rendered:
            predicted = {stamp_ns(d.header.stamp): d.render_psnr_predicted for d in decisions}
            errors = [predicted[stamp_ns(q.header.stamp)] - q.psnr for q in rendered
                      if stamp_ns(q.header.stamp) in predicted]
            lines.append(f"- rendered frames: PSNR {np.mean([q.psnr for q in rendered]):.2f} dB, SSIM "
                         f"{np.mean([q.ssim for q in rendered]):.3f}; the robot's prediction of their PSNR was off by "
                         f"{np.mean(np.abs(errors)):.2f} dB on average")
    return lines


def _one_line(text: str) -> str:
    return " ".join(text.split())


def llm_markdown(run: LlmRun) -> list[str]:
    """Each question with its answer, timings, the variant that answered and its energy (summary lines)."""
    lines = ["", "## On-device language model", "",
             f"- {len(run.answers)} questions asked over `{topics.LLM_ASK_ACTION}` while the world ran, one at a time, "
             f"grounded in the latest detections, predictions and plan status; {run.refused} refused (queue full), "
             f"{run.truncated_prompts} prompts cut to the context"]
    if run.unanswered:
        lines.append(f"- **no answer within {LLM_ANSWER_TIMEOUT_S:g} s after the run's end**: "
                     + "; ".join(f"\"{text}\"" for text in run.unanswered))
    for answer in run.answers:
        question, result = answer.question, answer.result
        target = (f"target {question.latency_target:g} s, "
                  f"{'met' if result.total_time <= question.latency_target else 'missed'}"
                  if question.latency_target > 0 else "no target")
        lines.append(f"- Q (at {answer.asked_at_s:.1f} simulated s, {target}): {question.text}")
        if answer.status != "succeeded":
            lines.append(f"  - {answer.status}: {_one_line(result.answer) or '(no answer)'}")
            continue
        lines.append(f"  - A: {_one_line(result.answer)}")
        lines.append(f"  - {result.variant}: TTFT {result.time_to_first_token * 1e3:.0f} ms, TPOT "
                     f"{result.time_per_output_token * 1e3:.1f} ms, total {result.total_time:.2f} s "
                     f"({result.prompt_tokens} prompt + {result.generated_tokens} generated tokens); energy "
                     f"{result.energy:.2f} J ({result.energy_source})")
    return lines


def summary_markdown(bag: Path, duration: float, record_wall: float, replay_wall: float,
                     recorded: collections.Counter, recorded_digests: dict, tally: ReplayTally,
                     published: collections.Counter, detector_run: DetectorRun | None = None,
                     predictor_run: PredictorRun | None = None, planner_run: PlannerRun | None = None,
                     driver: str = "lane_keeping", ego: EgoConfig | None = None,
                     road: RoadGeometry | None = None, mixed_reality_run: MixedRealityRun | None = None,
                     llm_run: LlmRun | None = None) -> str:
    lines = [f"# edge-demo summary ({datetime.now(timezone.utc):%Y-%m-%d %H:%M UTC})", "",
             f"- bag: `{bag}` ({sum(recorded.values())} messages, {duration:.1f} simulated s)",
             f"- driven by: {'the CROA planner' if driver == 'croa' else 'the lane-keeping controller'}",
             f"- simulation + recording: {record_wall:.1f} wall s ({duration / record_wall:.2f}x real time)",
             f"- replay: {replay_wall:.1f} wall s ({duration / replay_wall:.2f}x real time)", "",
             "| topic | published | recorded | rate (Hz) | replayed | bytes identical |",
             "| --- | ---: | ---: | ---: | ---: | --- |"]
    for topic in sorted(recorded):
        same = recorded_digests[topic].hexdigest() == tally.digests[topic].hexdigest()
        lines.append(f"| `{topic}` | {published.get(topic, '–')} | {recorded[topic]} | {recorded[topic] / duration:.1f} | "
                     f"{tally.counts[topic]} | {'yes' if same else 'NO'} |")
    lost = sum(recorded.values()) - sum(tally.counts[t] for t in recorded)
    lines += ["", f"- messages lost in replay: {lost}"]
    odometry = tally.odometry()
    if odometry:
        xy = np.array([(state[0], state[1]) for state in odometry])
        speeds = np.array([state[3] for state in odometry])
        lines.append(f"- ego: {np.sum(np.linalg.norm(np.diff(xy, axis=0), axis=1)):.1f} m driven, "
                     f"mean speed {speeds.mean():.2f} m/s, final pose ({xy[-1, 0]:.1f}, {xy[-1, 1]:.1f}) m")
    scans = tally.ground_truth()
    if scans:
        visible = collections.Counter(o.label.name.lower() for objects in scans for o in objects if o.num_lidar_points)
        per_scan = {name: count / len(scans) for name, count in sorted(visible.items())}
        lines.append(f"- ground truth: {np.mean([len(objects) for objects in scans]):.1f} objects per scan; "
                     "seen by the lidar per scan: " + ", ".join(f"{name} {value:.1f}" for name, value in per_scan.items()))
    if detector_run is not None:
        lines += detection_markdown(tally, detector_run, recorded[topics.DETECTED_OBJECTS])
    if predictor_run is not None:
        lines += prediction_markdown(tally, predictor_run)
    if planner_run is not None:
        lines += planning_markdown(tally, planner_run)
    if mixed_reality_run is not None:
        lines += mixed_reality_markdown(tally, mixed_reality_run)
    if ego is not None and road is not None:
        lines += driving_markdown(tally, ego, road)
    if llm_run is not None:
        lines += llm_markdown(llm_run)
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=20.0, help="simulated seconds to run (default 20)")
    parser.add_argument("--scenario", help="scenario YAML (default: config/sim_world.param.yaml's)")
    parser.add_argument("--seed", type=int, help="world seed (default: the parameter file's)")
    parser.add_argument("--real-time-factor", type=float, default=1.0,
                        help="simulated s per wall s while recording; 0 = as fast as possible (default 1)")
    parser.add_argument("--replay-rate", type=float, default=4.0, help="replay speed factor (default 4)")
    parser.add_argument("--output", type=Path, default=Path("out/demo"), help="folder for the run (default out/demo)")
    parser.add_argument("--detector-model", metavar="PATH", type=Path,
                        help="lidar detector checkpoint (default: config/lidar_detector.param.yaml's model_path, "
                             "models/lidar_detector.pt)")
    parser.add_argument("--no-detector", action="store_true", help="run without the lidar detector (and predictor)")
    parser.add_argument("--predictor-model", metavar="PATH", type=Path,
                        help="prediction model (default: config/trajectory_predictor.param.yaml's model_path, "
                             "models/trajectory_predictor_apolloscape.onnx)")
    parser.add_argument("--no-predictor", action="store_true", help="run without the tracker and predictor")
    parser.add_argument("--planner", choices=graph.PLANNERS, default=DEFAULT_PLANNER,
                        help=f"what drives the robot (default {DEFAULT_PLANNER}; croa needs the detector and predictor)")
    parser.add_argument("--planning-rate", type=float,
                        help="CROA planning cycles per simulated s (default: config/croa_planner.param.yaml's, 10; "
                             "the planner plans back to back when it is slower, a lower rate only plans on staler inputs)")
    add_mixed_reality_arguments(parser)
    add_llm_arguments(parser)
    options = parser.parse_args(argv)
    if not (options.duration > 0 and math.isfinite(options.duration)):
        parser.error("--duration must be a positive number of seconds")
    if options.planner == "croa" and (options.no_detector or options.no_predictor):
        parser.error("--planner croa plans on the predictions: it needs the detector and the predictor "
                     "(use --planner lane_keeping with --no-detector or --no-predictor)")

    run_dir = options.output / datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    run_dir.mkdir(parents=True)
    bag = run_dir / "sim_bag"
    try:
        scene = mixed_reality_scene(options)
        run = simulate_and_record(
            bag, options.duration, options.scenario, options.seed, options.real_time_factor,
            detector=not options.no_detector,
            detector_model=str(options.detector_model.resolve()) if options.detector_model else None,
            predictor=not options.no_predictor,
            predictor_model=str(options.predictor_model.resolve()) if options.predictor_model else None,
            planner=options.planner, planning_rate=options.planning_rate, mixed_reality_scene=scene,
            llm=options.llm, llm_model=str(options.llm_model.resolve()) if options.llm_model else None,
            llm_cache=str(options.llm_cache.resolve()) if options.llm_cache else None)
        recorded, recorded_digests = bag_digests(bag)
        tally, replay_wall = replay(bag, options.replay_rate)
    except (ParameterError, StartupError, BagError) as error:
        print(f"edge-demo: {error}{model_hint(error)}", file=sys.stderr)
        return 2
    stopped_early = run.simulated_s < options.duration
    # With the language model the world runs on until its last answer: report what was simulated.
    summary = summary_markdown(bag, run.simulated_s if stopped_early or run.llm else options.duration,
                               run.wall_s, replay_wall, recorded, recorded_digests, tally, run.published,
                               run.detector, run.predictor, run.planner, options.planner, run.ego, run.road,
                               run.mixed_reality, run.llm)
    if stopped_early:
        summary = summary.replace("\n\n", f"\n\n**The run stopped early, at {run.simulated_s:.1f} of {options.duration:g} "
                                  "simulated s: a node raised (its traceback is in the log above).**\n\n", 1)
    (run_dir / "summary.md").write_text(summary)
    print(summary)
    print(f"summary written to {run_dir / 'summary.md'}")
    if stopped_early:
        print(f"edge-demo: the run stopped early, at {run.simulated_s:.1f} of {options.duration:g} simulated s",
              file=sys.stderr)
    lost = sum(recorded.values()) - sum(tally.counts[t] for t in recorded)
    unanswered = run.llm is not None and (run.llm.unanswered or any(a.status != "succeeded" for a in run.llm.answers))
    if unanswered:
        print("edge-demo: the language model did not answer every question (see the summary)", file=sys.stderr)
    return 0 if lost == 0 and not stopped_early and not unanswered else 1


if __name__ == "__main__":
    sys.exit(main())
