"""evaluate-tracker: how well the multi-object tracker follows the simulated road users.

Each episode is a scenario of config/scenarios/ with a world seed, driven by the lane-keeping
controller and sampled at 10 Hz (one lidar scan per frame). The tracker runs in map (= odom: the
simulated odometry has no drift) on one of two detection sources, each with its own tracker:

- detector: the trained lidar detector on the simulated scan; its boxes (lidar frame) are moved
  into map with the ego pose and the lidar mount;
- noise: the visible ground truth turned into detections by a seeded noise model (DetectionNoise:
  misses, position, heading and size noise, heading flips, false positives), so the tracker can be
  studied apart from the detector.

Scored ground truth is what the detector could see: box centre inside its point range (lidar
frame) and at least `min_points` lidar returns; every other object is ignored (a track on it is
neither a hit nor a false track). Scores come from evaluation.tracking_metrics; the report
(docs/tracking_evaluation.md) holds the tables, the exact command, seeds, machine and date, and a
bird's-eye picture of ground-truth and track trajectories of one episode.
"""
from __future__ import annotations

import argparse
import math
import os
import sys
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch
from matplotlib.figure import Figure
from tqdm import tqdm

from evaluation.detection_run import DEFAULT_MIN_POINTS, inside_point_range, truth_in_frame
from evaluation.detector_report import machine_description
from evaluation.tracking_metrics import (TrackingEvalConfig, TrackingEvalResult, TrackingFrame, combine_results,
                                         evaluate_tracking)
from perception.detection import DetectorOptions, LidarDetector, load_checkpoint
from perception.objects import Box3D, DetectedObject, GroundTruthObject, ObjectClass, boxes_into_frame, boxes_to_array
from perception.tracking import MultiObjectTracker, TrackerConfig
from sim.controller import LaneKeepingController, drive_along_lane
from sim.scenario import load_scenario
from sim.world import World
from training.detection_data import lidar_pose_in_map

MODES = ("detector", "noise")
"""Detection sources, in report order."""

SCENARIO_DIR = Path("config/scenarios")
"""Where the scenario files are (relative to the working directory, the repository root)."""


@dataclass
class DetectionNoise:
    """How the noise mode turns visible ground truth (lidar frame) into detections."""

    detection_probability: float = 0.9
    """Chance that a visible object is detected in a frame."""
    position_std: float = 0.2
    """Gaussian noise of the box centre, x and y, metres."""
    yaw_std: float = 0.05
    """Gaussian noise of the heading, radians."""
    flip_probability: float = 0.1
    """Chance that a detection's heading is turned by pi (the detector's front/back ambiguity)."""
    size_std: float = 0.1
    """Gaussian noise of length, width and height, metres."""
    false_positives_per_frame: float = 1.0
    """Mean of the Poisson number of false detections per frame, placed uniformly in the point range."""
    true_score: tuple[float, float] = (0.5, 1.0)
    """Uniform range of a true detection's score."""
    false_score: tuple[float, float] = (0.3, 0.6)
    """Uniform range of a false detection's score."""

    def describe(self) -> str:
        return (f"each visible object is detected with probability {self.detection_probability:g}; centre noise "
                f"σ = {self.position_std:g} m, heading σ = {self.yaw_std:g} rad, size σ = {self.size_std:g} m; "
                f"heading turned by π with probability {self.flip_probability:g}; scores uniform in "
                f"{self.true_score}; Poisson({self.false_positives_per_frame:g}) false detections per frame, "
                f"uniform over the point range, 70 % cars / 30 % pedestrians, scores uniform in {self.false_score}")


def noisy_detections(visible: Sequence[GroundTruthObject], point_range: Sequence[float], ground_z: float,
                     noise: DetectionNoise, rng: np.random.Generator) -> list[DetectedObject]:
    """Detections (lidar frame, like `visible`) drawn from the visible ground truth by the noise
    model; false ones stand on the road, `ground_z` in that frame."""
    detections = []
    for obj in visible:
        if rng.random() >= noise.detection_probability:
            continue
        center = obj.box.center + np.array([*rng.normal(0.0, noise.position_std, 2), 0.0])
        size = np.maximum(obj.box.size + rng.normal(0.0, noise.size_std, 3), 0.1)
        yaw = obj.box.yaw + rng.normal(0.0, noise.yaw_std) + (math.pi if rng.random() < noise.flip_probability else 0.0)
        detections.append(DetectedObject(label=obj.label, score=float(rng.uniform(*noise.true_score)),
                                         box=Box3D(center, size, yaw)))
    low, high = np.asarray(point_range[:2]), np.asarray(point_range[3:5])
    for _ in range(rng.poisson(noise.false_positives_per_frame)):
        label = ObjectClass.CAR if rng.random() < 0.7 else ObjectClass.PEDESTRIAN
        size = (4.5, 1.8, 1.5) if label == ObjectClass.CAR else (0.6, 0.6, 1.7)
        x, y = rng.uniform(low, high)
        detections.append(DetectedObject(label=label, score=float(rng.uniform(*noise.false_score)),
                                         box=Box3D((x, y, ground_z + size[2] / 2), size, rng.uniform(-math.pi, math.pi))))
    return detections


def detections_into_map(detections: Sequence[DetectedObject], lidar_in_map: np.ndarray) -> list[DetectedObject]:
    """Detections in the lidar frame, expressed in map (the lidar's 4x4 pose there)."""
    if not detections:
        return []
    boxes = boxes_into_frame(boxes_to_array([d.box for d in detections]),
                             np.linalg.inv(lidar_in_map))
    return [DetectedObject(label=d.label, score=d.score, box=Box3D(box[:3], box[3:6], box[6]), num_points=d.num_points)
            for d, box in zip(detections, boxes)]


@dataclass
class ReportConfig:
    """What evaluate-tracker runs and where it writes."""

    model: Path = Path("models/lidar_detector.pt")
    """Detector checkpoint (its point range also bounds the noise mode)."""
    output_dir: Path = Path("docs")
    """tracking_evaluation.md goes here, its picture into <output_dir>/images/."""
    scenarios: tuple[str, ...] = ("urban_default", "dense_clutter", "parked_trucks")
    """Scenario names (files in config/scenarios/)."""
    seeds: tuple[int, ...] = (300000, 300001)
    """World seeds, one episode per scenario and seed (training used seeds 0-239)."""
    duration: float = 20.0
    """Simulated seconds per episode."""
    rate: float = 10.0
    """Frames (scans) per simulated second."""
    modes: tuple[str, ...] = MODES
    """Detection sources to evaluate."""
    device: str = "cpu"
    """Where the detector runs: 'cpu', 'cuda', 'cuda:N' or 'auto'."""
    threads: int = 1
    """torch CPU threads (1 is fastest on a busy 2-core machine); 0: torch's choice."""
    min_points: int = DEFAULT_MIN_POINTS
    """Ground truth with fewer lidar returns is ignored."""
    noise: DetectionNoise = field(default_factory=DetectionNoise)
    """The noise mode's detection model."""
    noise_seed: int = 0
    """Seed of the noise mode's generator (with the world seed)."""
    tracker: TrackerConfig = field(default_factory=TrackerConfig)
    """Tracker parameters (the defaults, as the node ships them)."""
    plot_scenario: str = "urban_default"
    """Scenario of the bird's-eye picture (its first seed)."""

    def __post_init__(self) -> None:
        unknown = [mode for mode in self.modes if mode not in MODES]
        if unknown or not self.modes:
            raise ValueError(f"modes: must be some of {', '.join(MODES)}, got {list(self.modes)}")
        missing = [name for name in self.scenarios if not self.scenario_path(name).is_file()]
        if missing or not self.scenarios:
            raise ValueError(f"scenarios: no file {', '.join(str(self.scenario_path(n)) for n in missing)}"
                             if missing else "scenarios: need at least one")
        if not self.seeds:
            raise ValueError("seeds: need at least one")
        if not self.duration > 0.0 or not self.rate > 0.0:
            raise ValueError(f"duration and rate must be > 0, got {self.duration}, {self.rate}")
        if self.threads < 0 or self.min_points < 0:
            raise ValueError("threads and min_points must be >= 0")

    @staticmethod
    def scenario_path(name: str) -> Path:
        return SCENARIO_DIR / f"{name}.yaml"

    @property
    def frames_per_episode(self) -> int:
        return max(1, round(self.duration * self.rate))


@dataclass
class Episode:
    """One scenario and seed through the tracker, for every mode."""

    scenario: str
    """Scenario name."""
    seed: int
    """World seed."""
    frames: dict[str, list[TrackingFrame]]
    """Mode -> scored frames (map)."""
    ego_path: np.ndarray
    """(F, 2) ego positions in map."""
    timings_ms: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    """Stage ("scan", "detect", "track <mode>") -> wall milliseconds per frame."""


def run_episode(scenario: str, seed: int, config: ReportConfig, point_range: Sequence[float],
                detector: LidarDetector | None, progress: tqdm | None = None) -> Episode:
    """Drive one episode and track with every mode (see the module docstring)."""
    world = World(load_scenario(config.scenario_path(scenario)), seed=seed)
    controller = LaneKeepingController(world.lane_centerlines)
    target_speed = world.scenario.ego.speed
    trackers = {mode: MultiObjectTracker(config.tracker) for mode in config.modes}
    rng = np.random.default_rng([seed, config.noise_seed])
    episode = Episode(scenario, seed, {mode: [] for mode in config.modes}, np.zeros((0, 2)))
    ego_path = []
    ground_z = -world.lidar_config.mount.z
    period = 1.0 / config.rate
    for _ in range(config.frames_per_episode):
        drive_along_lane(world, controller, target_speed, 1, period)
        started = time.perf_counter()
        scan = world.lidar_scan()
        episode.timings_ms["scan"].append(1e3 * (time.perf_counter() - started))
        truth = world.ground_truth()
        lidar_in_map = lidar_pose_in_map(world)
        visible_in_lidar = [o for o in inside_point_range(truth_in_frame(truth, lidar_in_map), point_range)
                            if o.num_lidar_points >= config.min_points]
        visible_ids = {o.object_id for o in visible_in_lidar}
        counted = [o for o in truth if o.object_id in visible_ids]
        ignored = [o for o in truth if o.object_id not in visible_ids]
        ego_path.append(world.ego_pose[:2])
        for mode, tracker in trackers.items():
            if mode == "detector":
                started = time.perf_counter()
                detections = detector.detect(scan.points).objects
                episode.timings_ms["detect"].append(1e3 * (time.perf_counter() - started))
            else:
                detections = noisy_detections(visible_in_lidar, point_range, ground_z, config.noise, rng)
            in_map = detections_into_map(detections, lidar_in_map)
            started = time.perf_counter()
            tracks = tracker.update(in_map, world.time)
            episode.timings_ms[f"track {mode}"].append(1e3 * (time.perf_counter() - started))
            episode.frames[mode].append(TrackingFrame(counted, tracks, ignored))
        if progress is not None:
            progress.update(1)
    episode.ego_path = np.array(ego_path)
    return episode


def plot_trajectories(episode: Episode, path: Path) -> Path:
    """Bird's-eye view per mode: scored ground-truth trajectories (grey) and confirmed track
    trajectories coloured by track id, with the ego's path."""
    modes = list(episode.frames)
    figure = Figure(figsize=(13.0, 0.6 + 3.4 * len(modes)))  # roads are long and narrow: one panel per row
    for axes, mode in zip(np.atleast_1d(figure.subplots(len(modes), 1)), modes):
        truth_paths, track_paths = defaultdict(list), defaultdict(list)
        for frame in episode.frames[mode]:
            for obj in frame.truth:
                truth_paths[obj.object_id].append(obj.box.center[:2])
            for track in frame.tracks:
                track_paths[track.object_id].append(track.box.center[:2])
        for points in truth_paths.values():
            points = np.array(points)
            axes.plot(points[:, 0], points[:, 1], color="0.6", linewidth=4.0, alpha=0.5, solid_capstyle="round")
        palette = [f"C{index}" for index in range(10)]
        for track_id, points in track_paths.items():
            points = np.array(points)
            colour = palette[track_id % len(palette)]
            axes.plot(points[:, 0], points[:, 1], color=colour, linewidth=1.2)
            axes.plot(points[-1, 0], points[-1, 1], "o", color=colour, markersize=2.5)
        axes.plot(episode.ego_path[:, 0], episode.ego_path[:, 1], "k--", linewidth=1.0, label="ego")
        axes.set(aspect="equal", adjustable="datalim", xlabel="x in map (m)", ylabel="y in map (m)",
                 title=f"{mode}: {len(truth_paths)} scored objects (grey), {len(track_paths)} tracks (by id)")
        axes.grid(alpha=0.3)
        axes.legend(loc="upper right", fontsize=8)
    figure.suptitle(f"{episode.scenario}, seed {episode.seed}: ground truth and confirmed tracks")
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    return path


@dataclass
class ReportOutputs:
    """What a report run wrote and found."""

    report: Path
    """The Markdown report."""
    picture: Path
    """The bird's-eye PNG."""
    results: dict[str, dict[str, TrackingEvalResult]]
    """Mode -> scenario -> scores (seeds combined); scenario "all" combines every scenario."""


def evaluate_episodes(episodes: Sequence[Episode], modes: Sequence[str],
                      metrics_config: TrackingEvalConfig) -> dict[str, dict[str, TrackingEvalResult]]:
    """Scores per mode and scenario (seeds combined), and over all scenarios."""
    results: dict[str, dict[str, TrackingEvalResult]] = {}
    for mode in modes:
        per_episode = [(episode.scenario, evaluate_tracking(episode.frames[mode], metrics_config))
                       for episode in episodes]
        scenarios = list(dict.fromkeys(name for name, _ in per_episode))
        results[mode] = {name: combine_results([r for n, r in per_episode if n == name]) for name in scenarios}
        results[mode]["all"] = combine_results([r for _, r in per_episode])
    return results


def _timing_line(name: str, values: Sequence[float]) -> str:
    return f"{name} median {np.median(values):.1f} ms, p99 {np.percentile(values, 99):.1f} ms"


def write_report(config: ReportConfig, command: str = "evaluate-tracker", progress: bool = True) -> ReportOutputs:
    """Run every episode, score it and write the report and its picture."""
    started = time.perf_counter()
    if config.threads:
        torch.set_num_threads(config.threads)
    detector_config = load_checkpoint(config.model)[0]
    point_range = detector_config.voxel.point_range
    detector = (LidarDetector.from_checkpoint(config.model, DetectorOptions(device=config.device))
                if "detector" in config.modes else None)
    jobs = [(scenario, seed) for scenario in config.scenarios for seed in config.seeds]
    bar = tqdm(total=len(jobs) * config.frames_per_episode, desc="tracking", unit="frame", disable=not progress)
    episodes = [run_episode(scenario, seed, config, point_range, detector, bar) for scenario, seed in jobs]
    bar.close()
    metrics_config = TrackingEvalConfig()
    results = evaluate_episodes(episodes, config.modes, metrics_config)
    plotted = next((e for e in episodes if e.scenario == config.plot_scenario), episodes[0])
    picture = plot_trajectories(plotted, config.output_dir / "images" / f"tracking_bev_{plotted.scenario}.png")
    wall = time.perf_counter() - started

    machine = machine_description(detector.device if detector else torch.device("cpu"))
    timings: dict[str, list[float]] = defaultdict(list)
    for episode in episodes:
        for stage, values in episode.timings_ms.items():
            timings[stage] += values
    distances = ", ".join(f"{name} {value:g} m" for name, value in metrics_config.match_distance.items())
    tracker = config.tracker
    lines = [
        "# Multi-object tracker evaluation", "",
        f"Written by `{command}` on {datetime.now(timezone.utc).isoformat(timespec='seconds')} in {wall:.0f} s.", "",
        f"- Machine: {machine['cpu']}, {machine['cores']} cores (torch threads: {machine['torch_threads']}), "
        f"{machine['os']}; Python {machine['python']}, torch {machine['torch']}; detector on {machine['device']}"
        + (f" ({machine['gpu']})" if "gpu" in machine else "") + ".",
        f"- Episodes: scenarios {', '.join(f'`{s}`' for s in config.scenarios)} × world seeds "
        f"{', '.join(str(s) for s in config.seeds)}, {config.duration:g} simulated s each at {config.rate:g} Hz "
        f"({config.frames_per_episode} frames per episode, {len(episodes) * config.frames_per_episode} in all); "
        "the ego follows its lane with the lane-keeping controller.",
        f"- Modes: **detector** = `{config.model}` on the simulated scans, boxes moved into map with the ego pose "
        f"and the lidar mount; **noise** = ground truth through the noise model (seed {config.noise_seed} with the "
        f"world seed): {config.noise.describe()}.",
        f"- Scored ground truth: box centre inside the detector's point range {tuple(point_range)} (lidar frame) "
        f"and at least {config.min_points} lidar returns; all other objects are ignored (a track on one is "
        "neither a hit nor a false track).",
        f"- Matching: centre distance ≤ {distances}, CLEAR MOT (earlier matches kept while within the distance, "
        "Hungarian for the rest), IDF1 by a global id matching; MT / PT / ML: tracked in ≥ 80 %, 20–80 %, ≤ 20 % "
        "of the frames an object is scored. Velocity error: mean |v_track − v_truth| over matches.",
        f"- Tracker: `TrackerConfig()` defaults: gate {tracker.gate_probability:g} (χ², 3 dof), birth score "
        f"≥ {tracker.birth_score:g}, confirmed after {tracker.confirm_hits} hits in {tracker.confirm_window} "
        f"frames, deleted after {tracker.max_coast_time:g} s without a detection.",
        "- Time per frame: " + "; ".join(_timing_line(stage, values) for stage, values in timings.items()) + ".", ""]
    for mode in config.modes:
        lines += [f"## {mode}", ""]
        for index, (scenario, result) in enumerate(results[mode].items()):
            label = "**all scenarios**" if scenario == "all" else f"`{scenario}`"
            lines.append(result.to_markdown(labels=[("scenario", label)], header=index == 0))
        lines.append("")
    lines += [f"![ground truth and tracks, {plotted.scenario}]({os.path.relpath(picture, config.output_dir)})", ""]
    report = config.output_dir / "tracking_evaluation.md"
    config.output_dir.mkdir(parents=True, exist_ok=True)
    report.write_text("\n".join(lines))
    return ReportOutputs(report, picture, results)


def parse_arguments(argv: list[str] | None) -> tuple[ReportConfig, bool]:
    defaults = ReportConfig()
    parser = argparse.ArgumentParser(prog="evaluate-tracker", description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=defaults.model, help=f"detector (default {defaults.model})")
    parser.add_argument("--output-dir", type=Path, default=defaults.output_dir,
                        help="report folder; the picture goes to its images/ (default docs)")
    parser.add_argument("--scenarios", nargs="+", default=list(defaults.scenarios),
                        help=f"scenario names in {SCENARIO_DIR} (default: all three)")
    parser.add_argument("--seeds", nargs="+", type=int, default=list(defaults.seeds),
                        help="world seeds, one episode per scenario and seed (default 300000 300001)")
    parser.add_argument("--duration", type=float, default=defaults.duration,
                        help="simulated seconds per episode (default 20)")
    parser.add_argument("--modes", nargs="+", default=list(defaults.modes), choices=MODES,
                        help="detection sources (default both)")
    parser.add_argument("--device", default=defaults.device, help="detector device (default cpu)")
    parser.add_argument("--threads", type=int, default=defaults.threads,
                        help="torch CPU threads (default 1; 0: torch's choice)")
    parser.add_argument("--noise-seed", type=int, default=defaults.noise_seed, help="noise mode seed (default 0)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    options = parser.parse_args(argv)
    try:
        config = ReportConfig(model=options.model, output_dir=options.output_dir, scenarios=tuple(options.scenarios),
                              seeds=tuple(options.seeds), duration=options.duration, modes=tuple(options.modes),
                              device=options.device, threads=options.threads, noise_seed=options.noise_seed)
    except ValueError as error:
        parser.error(str(error))
    return config, not options.no_progress


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    config, progress = parse_arguments(argv)
    try:
        outputs = write_report(config, " ".join(["evaluate-tracker", *argv]), progress)
    except (OSError, ValueError, RuntimeError) as error:  # ModelFileError among them
        print(f"evaluate-tracker: {error}", file=sys.stderr)
        return 2
    print(f"report written to {outputs.report}, picture {outputs.picture}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
