"""edge-demo, the main job: run the simulated world under the lane-keeping controller with the
lidar detector and the tracker/predictor over ROS, record every topic to a rosbag2 bag, replay the
bag through a bag_player, check that nothing was lost, score the replayed detections and
predictions against the simulated ground truth, and print a summary (also written to
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
from rclpy.node import Node
from rclpy.qos import QoSProfile
from rclpy.serialization import deserialize_message
from tqdm import tqdm

from edge_robot_msgs.msg import DetectedObjects, GroundTruthObjects, PredictedObjects
from nav_msgs.msg import Odometry
from tf2_msgs.msg import TFMessage

from evaluation.detection_run import DetectionRunResult, score_detection_run
from evaluation.prediction_run import MATCH_DISTANCE, score_prediction_run
from robot_nodes import graph, topics
from robot_nodes.bags import BagError, BagReader, BagTopic, adapted_qos, message_class
from robot_nodes.bringup import Bringup, model_hint
from robot_nodes.conversions import (msg_to_detected_objects, msg_to_ground_truth_objects, msg_to_predicted_objects,
                                     odometry_to_se2, transform_to_se3)
from robot_nodes.parameters import ParameterError
from robot_nodes.runner import StartupError

SUMMARY_TOPICS = (topics.ODOMETRY, topics.GROUND_TRUTH_OBJECTS, topics.DETECTED_OBJECTS, topics.TF_STATIC,
                  topics.PREDICTED_OBJECTS)
"""Topics whose replayed messages are kept (raw) and decoded for the summary after the replay."""


def stamp_ns(stamp) -> int:
    """A builtin_interfaces/Time as integer nanoseconds (exact, for matching stamps)."""
    return stamp.sec * 1_000_000_000 + stamp.nanosec


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
                        predictor: bool = True, predictor_model: str | None = None
                        ) -> tuple[collections.Counter, float, DetectorRun | None, PredictorRun | None]:
    """Run the simulation graph plus a recorder; returns the published counts (sim_world's, the
    detector's objects and the predictor's), wall seconds and what the detector and the predictor
    did (None without them)."""
    # The world waits for the recorder's subscriptions so the bag starts with the first step.
    specs = graph.simulation_graph(scenario, seed, real_time_factor, wait_for_subscribers=10.0, detector=detector,
                                   detector_model=detector_model, predictor=predictor, predictor_model=predictor_model)
    running = {spec.name for spec in specs}
    predictor = "trajectory_predictor" in running
    recorded = topics.SIMULATED_SENSOR_TOPICS + ([topics.DETECTED_OBJECTS] if detector else []) + (
        [topics.TRACKED_OBJECTS, topics.PREDICTED_OBJECTS] if predictor else [])
    specs.append(graph.bag_recorder(str(bag), recorded, use_sim_time=True))
    bringup = Bringup(specs)
    detector_run, predictor_run, node, predictor_node = None, None, None, None
    started = time.perf_counter()
    with tqdm(total=duration, desc="simulating + recording", unit="sim s", bar_format="{l_bar}{bar}| {n:.1f}/{total:.0f} sim s") as bar:
        def done() -> bool:
            bar.update(min(bringup.sim_time, duration) - bar.n)
            return bringup.sim_time > duration  # past it, so the last step has published everything
        try:
            bringup.spin_until(done)
            published = collections.Counter(bringup.node("sim_world").published)
            node = bringup.node("lidar_detector") if detector else None
            predictor_node = bringup.node("trajectory_predictor") if predictor else None
        finally:
            bringup.shutdown()  # lets a detection in progress finish (and publish: counted, not recorded)
    if node is not None:
        published[topics.DETECTED_OBJECTS] = node.counters.processed
        detector_run = DetectorRun(tuple(node.point_range), dataclasses.asdict(node.counters),
                                   list(node.processing_times_ms))
    if predictor_node is not None:
        published[topics.TRACKED_OBJECTS] = published[topics.PREDICTED_OBJECTS] = predictor_node.counters.processed
        predictor_run = PredictorRun(dataclasses.asdict(predictor_node.counters),
                                     list(predictor_node.processing_times_ms))
    return published, time.perf_counter() - started, detector_run, predictor_run


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


def summary_markdown(bag: Path, duration: float, record_wall: float, replay_wall: float,
                     recorded: collections.Counter, recorded_digests: dict, tally: ReplayTally,
                     published: collections.Counter, detector_run: DetectorRun | None = None,
                     predictor_run: PredictorRun | None = None) -> str:
    lines = [f"# edge-demo summary ({datetime.now(timezone.utc):%Y-%m-%d %H:%M UTC})", "",
             f"- bag: `{bag}` ({sum(recorded.values())} messages, {duration:.1f} simulated s)",
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
    options = parser.parse_args(argv)
    if not (options.duration > 0 and math.isfinite(options.duration)):
        parser.error("--duration must be a positive number of seconds")

    run_dir = options.output / datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    run_dir.mkdir(parents=True)
    bag = run_dir / "sim_bag"
    try:
        published, record_wall, detector_run, predictor_run = simulate_and_record(
            bag, options.duration, options.scenario, options.seed, options.real_time_factor,
            detector=not options.no_detector,
            detector_model=str(options.detector_model.resolve()) if options.detector_model else None,
            predictor=not options.no_predictor,
            predictor_model=str(options.predictor_model.resolve()) if options.predictor_model else None)
        recorded, recorded_digests = bag_digests(bag)
        tally, replay_wall = replay(bag, options.replay_rate)
    except (ParameterError, StartupError, BagError) as error:
        print(f"edge-demo: {error}{model_hint(error)}", file=sys.stderr)
        return 2
    summary = summary_markdown(bag, options.duration, record_wall, replay_wall, recorded, recorded_digests, tally,
                               published, detector_run, predictor_run)
    (run_dir / "summary.md").write_text(summary)
    print(summary)
    print(f"summary written to {run_dir / 'summary.md'}")
    lost = sum(recorded.values()) - sum(tally.counts[t] for t in recorded)
    return 0 if lost == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
