"""evaluate: every metric of the stack from a rosbag2 bag, as a report (report.md, report.html,
report.json): detection AP, tracking counts, prediction ADE/FDE, the CROA planner's occlusion and
target scores, the GSRMR uplink's energy and stream quality, the language model's latency and
energy, and per node its processing time, CPU share and drops (from /node_statistics).

The bag is either a run of the stack (the main job records one) and is read as it is, or (with
--replay) any bag with lidar scans, such as one from kitti-to-bag: it is played through the lidar
detector and the tracker/predictor, their outputs are recorded beside it and that bag is scored.
Ground truth comes from the bag (/simulation/ground_truth/objects); without it the metrics that
need it are skipped with a note. A run.json beside the bag (the main job writes one) gives the
run's configuration: scenario, seed, mode, planner.
"""
from __future__ import annotations

import argparse
import collections
import json
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from evaluation import report_plots
from evaluation.detection_run import DEFAULT_MIN_POINTS, inside_point_range, pose_at, score_detection_run, truth_in_frame
from evaluation.prediction_run import MATCH_DISTANCE, score_prediction_run
from evaluation.report import Figure, Report, Section, machine_metadata, markdown_table, write_report
from evaluation.tracking_metrics import TrackingFrame, evaluate_tracking
from evaluation.tracking_report import detections_into_map
from perception.objects import Box3D, boxes_to_array, corners_bev, points_in_box_mask
from planners.croa.planner import BACKING_OUT
from robot_nodes import graph, topics
from robot_nodes.bag_contents import BagContents
from robot_nodes.bags import BagError, BagReader
from robot_nodes.conversions import stamp_ns
from robot_nodes.bringup import Bringup
from robot_nodes.paths import resolve, share_path
from robot_nodes.runner import StartupError
from robot_nodes.parameters import ParameterError
from sim.geometry import rectangles_overlap
from sim.road import RoadGeometry
from sim.scenario import EgoConfig, ScenarioError, load_scenario
from sim.transforms import planar_pose_matrix

RUN_INFO = "run.json"
"""The run's configuration, written beside its bag by the main job."""

TARGET_MATCH_DISTANCE = 2.5
"""A track or detection within this many metres of a true object's centre is that object."""

SENSOR_PERIOD_MS = 100.0
"""The simulated lidar's and camera's period (10 Hz): the processing budget drawn in the histograms."""


@dataclass
class RunInfo:
    """What the bag alone does not say about a run (run.json)."""

    scenario: str | None = None
    """Scenario YAML of a simulated run (its road and the robot's body), or None."""
    seed: int | None = None
    mode: str = "unknown"
    """'lockstep' (simulated time waited for the stack), 'real time', 'replay' or 'unknown'."""
    planner: str | None = None
    point_range: list[float] | None = None
    """The detector's volume (lidar frame); None: from the detector's parameter file and model."""
    extra: dict = field(default_factory=dict)
    """Anything else the run recorded (shown in the report's configuration)."""

    @classmethod
    def beside(cls, bag: Path) -> RunInfo:
        path = Path(bag) / RUN_INFO
        if not path.is_file():
            return cls()
        try:
            values = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as error:
            raise BagError(bag, RUN_INFO, f"unreadable run configuration: {error}") from None
        known = {name: values.pop(name) for name in ("scenario", "seed", "mode", "planner", "point_range")
                 if name in values}
        return cls(**known, extra=values)

    def write(self, bag: Path) -> None:
        values = {"scenario": self.scenario, "seed": self.seed, "mode": self.mode, "planner": self.planner,
                  "point_range": self.point_range, **self.extra}
        (Path(bag) / RUN_INFO).write_text(json.dumps(values, indent=2) + "\n")


def detector_point_range() -> list[float]:
    """The detection volume the lidar_detector node uses: its parameter file's, else its model's."""
    from perception.detection.detector import load_checkpoint  # torch: only when a bag needs it
    from robot_nodes.lidar_detector import LidarDetectorConfig
    from robot_nodes.parameters import config_from_parameter_file

    config = config_from_parameter_file(LidarDetectorConfig, share_path("config", "lidar_detector.param.yaml"),
                                        "lidar_detector")
    return config.point_range or list(load_checkpoint(resolve(config.model_path))[0].voxel.point_range)


# --- per node ------------------------------------------------------------------------------------

@dataclass
class NodeFigures:
    """One node's totals from its last statistics message and its processing times over the run."""

    name: str
    received: int
    processed: int
    dropped: int
    rejected: int
    failed: int
    cpu_share: float
    """CPU seconds of its processing per wall second (1.0 = one core busy)."""
    times_ms: np.ndarray

    @classmethod
    def of(cls, name: str, messages: list) -> NodeFigures:
        last = messages[-1]
        times = np.concatenate([np.asarray(m.processing_times_ms, dtype=float) for m in messages])
        return cls(name, last.received, last.processed, last.dropped, last.rejected, last.failed,
                   last.cpu_time / last.wall_time if last.wall_time > 0 else math.nan, times)

    @property
    def dropped_share(self) -> float:
        return self.dropped / self.received if self.received else 0.0


def nodes_section(contents: BagContents, report: Report) -> Section:
    section = Section("Nodes")
    if not contents.node_statistics:
        section.markdown = f"Not scored: no `{topics.NODE_STATISTICS}` in the bag."
        return section
    nodes = [NodeFigures.of(name, messages) for name, messages in sorted(contents.node_statistics.items())]
    rows = []
    for node in nodes:
        times = node.times_ms
        timing = ([f"{np.median(times):.1f}", f"{np.percentile(times, 99):.1f}", f"{times.max():.1f}"]
                  if len(times) else ["–"] * 3)
        rows.append([f"`{node.name}`", str(node.received), str(node.processed),
                     f"{node.dropped} ({node.dropped_share:.1%})", str(node.rejected), str(node.failed), *timing,
                     f"{node.cpu_share:.0%}"])
        key = f"nodes.{node.name}"
        report.metrics.update({f"{key}.dropped_share": node.dropped_share, f"{key}.cpu_share": node.cpu_share,
                               f"{key}.rejected": node.rejected, f"{key}.failed": node.failed})
        if len(times):
            report.metrics.update({f"{key}.median_ms": float(np.median(times)),
                                   f"{key}.p99_ms": float(np.percentile(times, 99))})
    worst = max(nodes, key=lambda node: node.dropped_share)
    section.markdown = "\n".join([
        "Processing time: wall milliseconds from an input's arrival to its outputs going out (for the planner "
        "a planning cycle, for the language model a whole answer). CPU share: CPU seconds of the node's "
        "processing per wall second (100% = one core).", "",
        markdown_table(["node", "received", "processed", "dropped", "rejected", "failed", "median ms", "p99 ms",
                        "max ms", "CPU"], rows, right_aligned=range(1, 10)), "",
        f"Most drops: `{worst.name}`, {worst.dropped_share:.1%} of its inputs." if worst.dropped else
        "No node dropped an input."])
    limits = {node.name: SENSOR_PERIOD_MS for node in nodes if node.name != "onboard_llm"}
    section.figures.append(Figure("latency_histograms", "Processing time per node, with median, 99th percentile "
                                  f"and the {SENSOR_PERIOD_MS:g} ms sensor period.",
                                  report_plots.latency_histograms({n.name: list(n.times_ms) for n in nodes}, limits)))
    return section


# --- perception ----------------------------------------------------------------------------------

def lidar_mount(contents: BagContents) -> np.ndarray | None:
    return contents.static_transform(contents.base_frame, contents.detection_frame or "lidar")


def detection_section(contents: BagContents, point_range: list[float], report: Report) -> Section:
    section = Section("Lidar detection")
    mount = lidar_mount(contents)
    if not contents.detections or mount is None or not contents.ground_truth:
        why = ("no detections in the bag" if not contents.detections else "no ground truth in the bag"
               if not contents.ground_truth else f"no {contents.base_frame} → {contents.detection_frame} on /tf_static")
        section.markdown = f"AP not scored: {why}."
        return section
    result = score_detection_run(contents.detections, contents.ground_truth, contents.poses, mount, point_range)
    skipped = result.frames_without_truth + result.frames_without_pose
    for name in result.classes:
        report.metrics[f"detection.ap_bev_{name}"] = result.bev.get(name).average_precision
        report.metrics[f"detection.ap_3d_{name}"] = result.three_d.get(name).average_precision
    report.metrics["detection.map_bev"] = result.bev.mean_average_precision()
    report.metrics["detection.map_3d"] = result.three_d.mean_average_precision()
    errors = []
    for name in result.classes:
        scores = result.bev.get(name)
        if scores.true_positives:
            report.metrics[f"detection.center_error_{name}"] = scores.mean_center_error
            errors.append([name, str(scores.true_positives), str(scores.false_positives),
                           str(scores.num_ground_truth - scores.true_positives), f"{scores.mean_center_error:.2f}",
                           f"{math.degrees(scores.mean_yaw_error_folded):.1f}"])
    section.markdown = "\n".join([
        f"AP (%) on {result.frames_scored} scans" + (f" ({skipped} more without ground truth or pose, not scored)"
                                                   if skipped else "")
        + ": 40 recall points, IoU 0.7 for car and truck_bus, 0.5 for pedestrian and cyclist; ground truth inside "
        f"the detector's volume {[round(v, 2) for v in point_range]} with at least {DEFAULT_MIN_POINTS} lidar points.",
        "", result.to_markdown(), "",
        "Errors of the detections matched at the BEV IoU threshold (yaw error with front/back flips folded):", "",
        markdown_table(["class", "matched", "false", "missed", "centre error (m)", "yaw error (°)"], errors,
                       right_aligned=range(1, 6))])
    return section


def lidar_poses(contents: BagContents, stamps) -> dict[int, np.ndarray]:
    """4x4 pose of the lidar in map at each stamp that has odometry near it."""
    mount = lidar_mount(contents)
    poses = sorted(contents.poses)
    found = {}
    for stamp in stamps:
        pose = pose_at(poses, stamp) if mount is not None else None
        if pose is not None:
            found[stamp] = planar_pose_matrix(*pose) @ mount
    return found


def tracking_section(contents: BagContents, point_range: list[float], report: Report) -> Section:
    section = Section("Tracking")
    truth = dict(contents.ground_truth)
    frames_in = [(stamp, tracks) for stamp, tracks in contents.tracks if stamp in truth]
    in_map = lidar_poses(contents, [stamp for stamp, _ in frames_in])
    if not frames_in or not in_map:
        section.markdown = ("Not scored: " + ("no tracks in the bag" if not contents.tracks else
                                              "no ground truth (or no lidar pose) at the tracks' stamps") + ".")
        return section
    frames = []
    for stamp, tracks in frames_in:
        if stamp not in in_map:
            continue
        objects = truth[stamp]
        visible = {o.object_id for o in inside_point_range(truth_in_frame(objects, in_map[stamp]), point_range)
                   if o.num_lidar_points >= DEFAULT_MIN_POINTS}
        frames.append(TrackingFrame([o for o in objects if o.object_id in visible], tracks,
                                    [o for o in objects if o.object_id not in visible]))
    result = evaluate_tracking(frames)
    overall = result.overall
    report.metrics.update({"tracking.mota": overall.mota, "tracking.idf1": overall.idf1,
                           "tracking.id_switches": overall.id_switches, "tracking.misses": overall.misses,
                           "tracking.false_tracks": overall.false_positives})
    section.markdown = "\n".join([
        f"CLEAR MOT and identity scores on {result.frames} scans (tracks in the odometry frame, the simulated map); "
        f"scored: true objects the detector could see (inside its volume, at least {DEFAULT_MIN_POINTS} lidar points), "
        "the others ignored.", "", result.to_markdown()])
    return section


def prediction_section(contents: BagContents, report: Report) -> Section:
    section = Section("Prediction")
    if not contents.predictions or not contents.ground_truth:
        section.markdown = "ADE/FDE not scored: no " + ("predictions" if not contents.predictions else "ground truth") \
            + " in the bag."
        return section
    result = score_prediction_run(contents.predictions, contents.ground_truth)
    if not result.errors:
        section.markdown = (f"ADE/FDE not scored: no prediction matched a true object within {MATCH_DISTANCE:g} m "
                            "with its whole horizon in the run.")
        return section
    for agent_type, errors in result.errors.items():
        model = np.stack(errors)
        report.metrics[f"prediction.ade_{agent_type.name.lower()}"] = float(model.mean())
        report.metrics[f"prediction.fde_{agent_type.name.lower()}"] = float(model[:, -1].mean())
    section.markdown = "\n".join([
        f"ADE/FDE (m) of the most likely mode against the ground truth (tracks matched to the true object within "
        f"{MATCH_DISTANCE:g} m); not scored: {result.parked} predictions of parked objects, {result.unmatched} of false "
        f"tracks and {result.incomplete} whose horizon ran past the run or the object's life.", "",
        result.to_markdown()])
    return section


# --- planning ------------------------------------------------------------------------------------

def visible_face_area(box: Box3D, sensor: np.ndarray) -> float:
    """Area of the box's faces that face the sensor (m^2), occlusion left aside."""
    length, width, height = box.size
    offset = np.asarray(sensor, dtype=float) - box.center
    cos, sin = math.cos(box.yaw), math.sin(box.yaw)
    along, across = offset[0] * cos + offset[1] * sin, -offset[0] * sin + offset[1] * cos
    area = (width * height if abs(along) > length / 2 else 0.0) + (length * height if abs(across) > width / 2 else 0.0)
    return area + (length * width if offset[2] > height / 2 else 0.0)


@dataclass
class TargetScan:
    """The planner's target at one scan, against ground truth."""

    time_s: float
    points: int
    density: float
    """Lidar points on it per m^2 of its faces that face the sensor."""
    center_error: float | None
    """Distance from the nearest detection to its true centre, m; None when none was within reach."""


def target_scans(contents: BagContents, statuses: list) -> list[TargetScan]:
    """Each scan at which the planner had a target that matches a true object."""
    tracks = dict(contents.tracks)
    truth = dict(contents.ground_truth)
    detections = dict(contents.detections)
    wanted = {}
    for status in statuses:
        # The scan the cycle planned on: its predictions' (and tracks') stamp.
        planned_on = stamp_ns(status.header.stamp) - round(max(status.prediction_age, 0.0) * 1e9)
        stamp = min(tracks, key=lambda candidate: abs(candidate - planned_on), default=None)
        if stamp is None or stamp not in truth or stamp not in detections:
            continue
        track = next((t for t in tracks[stamp] if t.object_id == status.target_id), None)
        if track is None:
            continue
        distances = [(np.linalg.norm(o.box.center[:2] - track.box.center[:2]), o) for o in truth[stamp]]
        distance, target = min(distances, key=lambda pair: pair[0], default=(math.inf, None))
        if distance <= TARGET_MATCH_DISTANCE:
            wanted[stamp] = target
    clouds = contents.clouds(set(wanted))
    in_map = lidar_poses(contents, wanted)
    scans = []
    for stamp, target in sorted(wanted.items()):
        if stamp not in clouds or stamp not in in_map:
            continue
        box = truth_in_frame([target], in_map[stamp])[0].box
        points = int(points_in_box_mask(clouds[stamp][:, :3], box.as_array()).sum())
        area = visible_face_area(box, np.zeros(3))
        errors = [np.linalg.norm(d.box.center - box.center) for d in detections[stamp]]
        nearest = min(errors, default=math.inf)
        scans.append(TargetScan(contents.seconds_since_start(stamp), points, points / area if area else 0.0,
                                float(nearest) if nearest <= TARGET_MATCH_DISTANCE else None))
    return scans


def planning_section(contents: BagContents, report: Report) -> Section:
    section = Section("CROA planning")
    statuses = contents.planner_statuses
    if not statuses:
        section.markdown = f"Not scored: no `{topics.CROA_PLANNER_STATUS}` in the bag (another driver)."
        return section
    times = np.array([contents.seconds_since_start(stamp_ns(s.header.stamp)) for s in statuses])
    fallback = np.array([s.fallback for s in statuses])
    with_target = [s for s in statuses if not s.fallback and s.target_id >= 0]
    reasons = collections.Counter(s.reason for s in statuses if s.fallback)
    lines = [f"- {len(statuses)} planning cycles, {int(fallback.sum())} fell back"
             + (" (" + "; ".join(f"{reason} ×{count}" for reason, count in reasons.most_common()) + ")" if reasons else "")]
    backing = np.array([not s.fallback and s.reason.startswith(BACKING_OUT) for s in statuses])
    back_outs = int(np.sum(backing[1:] & ~backing[:-1]) + (len(backing) > 0 and backing[0]))
    if back_outs:
        lines.append(f"- backed out of a stall {back_outs} times ({int(backing.sum())} cycles)")
    report.metrics.update({"croa.cycles": len(statuses), "croa.fallbacks": int(fallback.sum()),
                           "croa.back_outs": back_outs})
    solved = [s for s, backs in zip(statuses, backing) if not s.fallback and not backs]
    if solved:
        lines.append(f"- optimised cycles: median {np.median([s.iterations for s in solved]):.0f} convex-concave "
                     f"iterations, solve time median {1e3 * np.median([s.solve_time for s in solved]):.0f} ms, "
                     f"{np.mean([s.obstacle_count for s in solved]):.1f} obstacles "
                     f"({np.mean([s.constrained_obstacle_count for s in solved]):.1f} constrained)")
    if with_target:
        report.metrics.update({"croa.occlusion_ratio_now": float(np.mean([s.occlusion_ratio_now for s in with_target])),
                               "croa.occlusion_ratio_planned": float(np.mean([s.occlusion_ratio for s in with_target]))})
        lines.append(f"- a target in {len(with_target)} of {len(solved)} optimised cycles "
                     f"({len({s.target_id for s in with_target})} distinct): hidden "
                     f"{report.metrics['croa.occlusion_ratio_now']:.0%} on average from the pose now, "
                     f"{report.metrics['croa.occlusion_ratio_planned']:.0%} from the planned last pose (planar test)")
        target_times = np.array([t for t, s in zip(times, statuses) if not s.fallback and s.target_id >= 0])
        section.figures.append(Figure("occlusion_ratio", "The target's hidden fraction of sight lines, from the pose "
                                      "at each cycle and from the plan's last pose.", report_plots.time_series(
                                          {"from the pose now": (target_times, np.array([s.occlusion_ratio_now for s in with_target])),
                                           "from the planned last pose": (target_times, np.array([s.occlusion_ratio for s in with_target]))},
                                          "occlusion ratio", "Occlusion of the planner's target")))
    scans = target_scans(contents, with_target)
    if scans:
        errors = [scan.center_error for scan in scans if scan.center_error is not None]
        report.metrics.update({"croa.target_points": float(np.mean([s.points for s in scans])),
                               "croa.target_density": float(np.mean([s.density for s in scans])),
                               "croa.target_center_error": float(np.mean(errors)) if errors else None})
        lines.append(f"- the target against ground truth at {len(scans)} scans: {report.metrics['croa.target_points']:.0f} "
                     f"lidar points on it, {report.metrics['croa.target_density']:.1f} points per m² of its faces "
                     "towards the lidar (no ray casting: a bag holds no world), detected in "
                     f"{len(errors)} of them with centre error {np.mean(errors) if errors else math.nan:.2f} m")
    elif with_target:
        lines.append("- the target was not matched to a true object at any scan with its cloud in the bag")
    section.markdown = "\n".join(lines)
    return section


# --- mixed reality -------------------------------------------------------------------------------

def mixed_reality_section(contents: BagContents, report: Report) -> Section:
    section = Section("Mixed-reality uplink (GSRMR)")
    decisions = contents.uplink_decisions
    if not decisions:
        section.markdown = f"Not scored: no `{topics.UPLINK_DECISION}` in the bag."
        return section
    energy = np.array([d.energy for d in decisions], dtype=float)
    # A frame that could not have been uploaded within its latency costs what it did.
    always = np.array([d.image_energy if math.isfinite(d.image_energy) else d.energy for d in decisions], dtype=float)
    uploads = int(sum(d.upload for d in decisions))
    seconds = (stamp_ns(decisions[-1].header.stamp) - stamp_ns(decisions[0].header.stamp)) * 1e-9
    report.metrics.update({"gsrmr.energy_j": float(energy.sum()), "gsrmr.always_upload_energy_j": float(always.sum()),
                           "gsrmr.energy_saving": float(always.sum() / energy.sum()) if energy.sum() else None,
                           "gsrmr.upload_share": uploads / len(decisions)})
    lines = [f"- {len(decisions)} camera frames decided over {seconds:.1f} s, {uploads} uploaded; uplink energy "
             f"{energy.sum():.3g} J, always uploading {always.sum():.3g} J ({always.sum() / energy.sum():.1f}x more)"]
    fallbacks = collections.Counter(d.reason for d in decisions if d.fallback)
    report.metrics["gsrmr.fallbacks"] = fallback_count = fallbacks.total()
    lines.append(f"- policy fallbacks (the image uploaded at full power): {fallback_count}"
                 + "".join(f"; {count} x {reason}" for reason, count in fallbacks.most_common(3)))
    times = np.array([contents.seconds_since_start(stamp_ns(d.header.stamp)) for d in decisions])
    section.figures.append(Figure("uplink", "Per camera frame: upload or pose only, and the cumulative uplink "
                                  "energy against uploading every frame.", report_plots.uplink_timeline(
                                      times, np.array([d.upload for d in decisions]), energy, always)))
    qualities = contents.stream_qualities
    if qualities:
        psnr, ssim = np.array([q.psnr for q in qualities]), np.array([q.ssim for q in qualities])
        report.metrics.update({"gsrmr.stream_psnr_db": float(psnr.mean()), "gsrmr.stream_ssim": float(ssim.mean()),
                               "gsrmr.always_upload_psnr_db": float(np.mean([d.image_psnr for d in decisions]))})
        lines.append(f"- the remote stream against the true frames ({len(qualities)} scored): PSNR {psnr.mean():.2f} dB, "
                     f"SSIM {ssim.mean():.3f}; always uploading: PSNR {report.metrics['gsrmr.always_upload_psnr_db']:.2f} dB, "
                     f"SSIM {np.mean([d.image_ssim for d in decisions]):.3f}")
        quality_times = np.array([contents.seconds_since_start(stamp_ns(q.header.stamp)) for q in qualities])
        rendered = np.array([q.rendered for q in qualities])
        series = {"uploaded frames": (quality_times[~rendered], psnr[~rendered]),
                  "rendered from the pose": (quality_times[rendered], psnr[rendered])}
        section.figures.append(Figure("stream_psnr", "PSNR of each frame the remote side showed against the true "
                                      "camera frame.", report_plots.time_series(series, "PSNR (dB)",
                                                                                 "Remote stream quality")))
    section.markdown = "\n".join(lines)
    return section


# --- language model ------------------------------------------------------------------------------

def llm_section(contents: BagContents, report: Report) -> Section:
    section = Section("On-device language model")
    answers = contents.llm_answers
    if not answers:
        section.markdown = f"Not scored: no `{topics.LLM_ANSWER_RECORDS}` in the bag."
        return section
    answered = [a for a in answers if a.succeeded]
    with_target = [a for a in answered if a.latency_target > 0]
    met = [a for a in with_target if a.total_time <= a.latency_target]
    if answered:
        report.metrics.update({"llm.ttft_ms": 1e3 * float(np.median([a.time_to_first_token for a in answered])),
                               "llm.tpot_ms": 1e3 * float(np.median([a.time_per_output_token for a in answered])),
                               "llm.energy_j": float(sum(a.energy for a in answered))})
    report.metrics["llm.targets_met"] = f"{len(met)}/{len(with_target)}"
    rows = [[a.question, f"{a.latency_target:g} s" if a.latency_target > 0 else "–",
             a.variant or "–", f"{1e3 * a.time_to_first_token:.0f}", f"{1e3 * a.time_per_output_token:.1f}",
             f"{a.total_time:.2f}", f"{a.energy:.2f} ({a.energy_source})", " ".join(a.answer.split())]
            for a in answers]
    section.markdown = "\n".join([
        f"{len(answers)} questions, {len(answered)} answered; latency targets met {len(met)} of {len(with_target)}.", "",
        markdown_table(["question", "target", "variant", "TTFT ms", "TPOT ms", "total s", "energy J", "answer"], rows,
                       right_aligned=(3, 4, 5))])
    return section


# --- driving -------------------------------------------------------------------------------------

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
    gaps = np.minimum(corner_edge(ego, others), np.array([corner_edge(other, ego[None])[0] for other in others]))
    return np.where(overlapping, 0.0, gaps)


def body_corners(ego: EgoConfig, x: float, y: float, yaw: float) -> np.ndarray:
    """The robot's footprint (4, 2) at base_link pose (x, y, yaw)."""
    forward = ego.length / 2.0 - ego.rear_overhang
    return corners_bev(np.array([[x + forward * math.cos(yaw), y + forward * math.sin(yaw), 0.0, ego.length,
                                  ego.width, ego.height, yaw]]))[0]


def driving_section(contents: BagContents, ego: EgoConfig | None, road: RoadGeometry | None,
                    report: Report) -> Section:
    """Whether the robot hit a road user or left the road (buildings, walls and poles are not in
    the ground truth)."""
    section = Section("Driving")
    if not contents.poses:
        section.markdown = "Not checked: no odometry in the bag."
        return section
    xy = np.array([pose[1:3] for pose in contents.poses])
    distance = float(np.sum(np.linalg.norm(np.diff(xy, axis=0), axis=1)))
    report.metrics.update({"driving.distance_m": distance, "driving.mean_speed": float(np.mean(contents.speeds))})
    lines = [f"- {distance:.1f} m driven, mean speed {np.mean(contents.speeds):.2f} m/s"]
    if ego is None or road is None or not contents.ground_truth:
        section.markdown = "\n".join(lines + ["- collisions not checked: " + (
            "no ground truth in the bag" if not contents.ground_truth else "the run's scenario is not known (run.json)")])
        return section
    poses = sorted(contents.poses)
    hits: set[int] = set()
    collision_frames = off_road_frames = checked = 0
    closest = (math.inf, None)
    for stamp, objects in contents.ground_truth:
        pose = pose_at(poses, stamp)
        if pose is None:
            continue
        checked += 1
        body = body_corners(ego, *pose)
        _, lateral = road.to_frenet(body[:, 0], body[:, 1])
        off_road_frames += bool(np.any(np.abs(lateral) > road.half_width))
        near = [o for o in objects if math.hypot(o.box.center[0] - pose[0], o.box.center[1] - pose[1]) < 40.0]
        if not near:
            continue
        gaps = _gaps(body, corners_bev(boxes_to_array([o.box for o in near])))
        collision_frames += bool(np.any(gaps <= 0.0))
        hits.update(o.object_id for o, gap in zip(near, gaps) if gap <= 0.0)
        nearest = int(np.argmin(gaps))
        if gaps[nearest] < closest[0]:
            closest = (float(gaps[nearest]), near[nearest].object_id)
    report.metrics.update({"driving.collisions": len(hits), "driving.off_road_frames": off_road_frames,
                           "driving.closest_approach_m": closest[0] if closest[1] is not None else None})
    lines.append(f"- collisions with road users: {len(hits)} object(s) hit, in {collision_frames} of {checked} "
                 "ground-truth frames" + (f" (ids {sorted(hits)})" if hits else ""))
    lines.append(f"- frames with the body beyond the kerbs: {off_road_frames}")
    if closest[1] is not None:
        lines.append(f"- closest approach to a road user: {closest[0]:.2f} m (object {closest[1]})")
    section.markdown = "\n".join(lines)
    return section


# --- the scene -----------------------------------------------------------------------------------

def scene_figure(contents: BagContents, road: RoadGeometry | None) -> Figure | None:
    """A bird's-eye view at the scan where the planner last had a target (else mid-run): true and
    detected boxes, 3 s of track history, predicted paths and the plan."""
    if not contents.poses or not contents.ground_truth:
        return None
    truth = dict(contents.ground_truth)
    targeted = [s for s in contents.planner_statuses if s.target_id >= 0 and not s.fallback]
    if targeted:
        wanted = stamp_ns(targeted[-1].header.stamp)
    else:
        wanted = contents.ground_truth[len(contents.ground_truth) // 2][0]
    stamp = min(truth, key=lambda candidate: abs(candidate - wanted))
    path = np.array([pose[1:3] for pose in contents.poses if pose[0] <= stamp])
    truth_boxes = boxes_to_array([o.box for o in truth[stamp]])
    detections = dict(contents.detections)
    in_map = lidar_poses(contents, [stamp])
    detected = None
    if stamp in detections and stamp in in_map:
        detected = boxes_to_array([o.box for o in detections_into_map(detections[stamp], in_map[stamp])])
    history: dict[int, list] = collections.defaultdict(list)
    for track_stamp, tracks in contents.tracks:
        if stamp - 3_000_000_000 <= track_stamp <= stamp:
            for track in tracks:
                history[track.object_id].append(track.box.center[:2])
    predictions = dict(contents.predictions)
    predicted = [max(p.paths, key=lambda path: path.probability).positions[:, :2]
                 for p in predictions.get(stamp, []) if p.paths]
    plans = [(plan_stamp, plan) for plan_stamp, plan in contents.planned_paths if plan_stamp <= stamp]
    edges = None
    if road is not None:
        stations = np.linspace(0.0, road.length, 400)
        edges = [road.to_map(stations, side * road.half_width) for side in (-1.0, 1.0)]
    seconds = contents.seconds_since_start(stamp)
    return Figure("scene", f"The scene at {seconds:.1f} s from above (map): true boxes, detections, 3 s of tracks, "
                  "the most likely predicted paths and the planned path.", report_plots.bird_eye_view(
                      path, truth_boxes, detected, {key: np.array(value) for key, value in history.items()},
                      predicted, plans[-1][1][:, :2] if plans else None, edges, f"Scene at {seconds:.1f} s"))


# --- the report ----------------------------------------------------------------------------------

def scenario_parts(info: RunInfo) -> tuple[EgoConfig | None, RoadGeometry | None]:
    if not info.scenario:
        return None, None
    try:
        scenario = load_scenario(resolve(info.scenario))
    except (ScenarioError, FileNotFoundError):
        return None, None
    return scenario.ego, RoadGeometry(scenario.road)


def parameter_files(node_names) -> dict[str, str]:
    """The parameter files of the nodes (the run's overrides are in run.json and the node logs)."""
    files = {}
    for name in node_names:
        path = share_path("config", f"{name}.param.yaml")
        if path.is_file():
            files[f"config/{name}.param.yaml"] = path.read_text()
    return files


def evaluate_bag(bag: Path, info: RunInfo | None = None, title: str | None = None) -> Report:
    """The report of one bag (a BagError says what is wrong with an unreadable one)."""
    info = info or RunInfo.beside(bag)
    contents = BagContents.read(bag)
    point_range = info.point_range or detector_point_range()
    ego, road = scenario_parts(info)
    report = Report(title or f"Run report: {Path(bag).name}")
    steps = [lambda: nodes_section(contents, report), lambda: detection_section(contents, point_range, report),
             lambda: tracking_section(contents, point_range, report), lambda: prediction_section(contents, report),
             lambda: planning_section(contents, report), lambda: mixed_reality_section(contents, report),
             lambda: llm_section(contents, report), lambda: driving_section(contents, ego, road, report)]
    sections = [step() for step in tqdm(steps, desc="evaluating", unit="section")]
    overview = Section("Run", "\n".join([
        f"- bag `{bag}`: {sum(contents.counts.values())} messages over {contents.duration_s:.1f} s",
        f"- mode: {info.mode}" + {"lockstep": " (simulated time waited for the stack: the same result on any machine)",
                                   "real time": " (the world kept its pace: a slower machine drops more frames)",
                                   }.get(info.mode, ""),
        "", markdown_table(["topic", "messages", "rate (Hz)"],
                           [[f"`{topic}`", str(count), f"{count / contents.duration_s:.1f}" if contents.duration_s else "–"]
                            for topic, count in sorted(contents.counts.items())], right_aligned=(1, 2))]))
    figure = scene_figure(contents, road)
    if figure:
        overview.figures.append(figure)
    report.sections = [overview, *sections]
    report.metadata = {"bag": str(bag), "mode": info.mode, "scenario": str(info.scenario), "seed": str(info.seed),
                       "planner": str(info.planner), **{key: str(value) for key, value in info.extra.items()},
                       **parameter_files(["sim_world", *contents.node_statistics]), **machine_metadata()}
    report.overview = [key for key in ("detection.map_bev", "tracking.mota", "tracking.idf1", "prediction.ade_vehicle",
                                       "prediction.fde_vehicle", "croa.occlusion_ratio_now", "croa.target_density",
                                       "gsrmr.energy_saving", "gsrmr.stream_psnr_db", "llm.targets_met",
                                       "driving.collisions") if key in report.metrics]
    return report


def replay_through_perception(bag: Path, output: Path, rate: float) -> Path:
    """Play `bag` through the lidar detector and the tracker/predictor and record everything the
    graph carries to output/replayed_bag; returns that bag."""
    replayed = output / "replayed_bag"
    specs = graph.replay_graph(str(bag), rate=rate, wait_for_nodes=["bag_recorder"])
    with BagReader(bag) as reader:
        played = set(reader.topics()) - set(graph.PERCEPTION_OUTPUTS)
        duration = reader.duration
    recorded = sorted(played | {topics.DETECTED_OBJECTS, topics.TRACKED_OBJECTS, topics.PREDICTED_OBJECTS,
                                topics.NODE_STATISTICS})
    specs.insert(0, graph.bag_recorder(str(replayed), recorded, use_sim_time=True))
    bringup = Bringup(specs)
    player = bringup.node("bag_player")
    try:
        with tqdm(total=duration, desc="replaying through perception", unit="bag s",
                  bar_format="{l_bar}{bar}| {n:.1f}/{total:.1f} bag s") as bar:
            def done() -> bool:
                bar.update(min(bringup.sim_time, duration) - bar.n)
                return player.finished.is_set()
            bringup.spin_until(done)
            time.sleep(1.0)  # the last scans' detections are still on their way
    finally:
        bringup.shutdown()
    return replayed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bag", type=Path, help="rosbag2 bag folder")
    parser.add_argument("--output", type=Path, help="report folder (default: <bag>/../report)")
    parser.add_argument("--replay", action="store_true",
                        help="play the bag through the detector and the tracker/predictor first (for bags of sensor "
                             "data such as kitti-to-bag's)")
    parser.add_argument("--rate", type=float, default=0.5, help="replay speed with --replay (default 0.5)")
    parser.add_argument("--scenario", help="the run's scenario YAML when run.json does not give it")
    parser.add_argument("--title", help="report title")
    options = parser.parse_args(argv)
    if not (options.rate > 0 and math.isfinite(options.rate)):
        parser.error("--rate must be a positive number")
    output = options.output or options.bag.resolve().parent / "report"
    try:
        info = RunInfo.beside(options.bag)
        if options.scenario:
            info.scenario = options.scenario
        bag = options.bag
        if options.replay:
            output.mkdir(parents=True, exist_ok=True)
            bag = replay_through_perception(options.bag, output, options.rate)
            info.mode = "replay"
        files = write_report(evaluate_bag(bag, info, options.title), output)
    except (BagError, ParameterError, StartupError) as error:
        print(f"evaluate: {error}", file=sys.stderr)
        return 2
    print(f"report: {files.html} (and {files.markdown.name}, {files.json.name})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
