"""evaluate-gsrmr: the GSRMR uplink methods on simulated drives with moving traffic, one table and
its plots (docs/gsrmr_evaluation.md and .json, docs/images/gsrmr_*.png).

    evaluate-gsrmr [--scenarios urban_default dense_clutter] [--seeds 1000 1001] [--duration 30]

Each drive is recorded once (evaluation.gsrmr_run.record_drive, with the scenario's Gaussian-splatting
scene built by training.gaussian_scene); every method then runs on the same frames and channel.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch
from matplotlib.figure import Figure

from evaluation.detector_report import machine_description
from evaluation.gsrmr_run import (OFFLINE_METHODS, ONLINE, DriveConfig, DriveFrames, MethodRun, channel_gains,
                                  record_drive, run_offline, run_online)
from mixed_reality.uplink.channel import Channel
from sim.scenario import load_scenario
from sim.world import World
from mixed_reality.gaussians import GaussianModel
from training.scene_cache import SCENE_CACHE, cached_scene

SCENARIO_DIR = Path("config/scenarios")
METHOD_LABELS = {"apo": "GSCLO, APO", "exact": "GSCLO, exact (HiGHS)", ONLINE: "APO on-line (the node)",
                 "always_upload": "always upload (RoboMR)", "never_upload": "never upload (GS only)",
                 "threshold": "threshold on predicted quality", "random": "random, APO's upload count",
                 "apo_max_power": "APO's switching at p_max"}
SWEPT_METHODS = ("apo", "exact", "threshold", "random", ONLINE)
"""Methods run at every threshold of the sweep (always- and never-upload do not depend on it)."""


@dataclass
class GsrmrReportConfig:
    """What evaluate-gsrmr runs and where it writes."""

    scenarios: tuple[str, ...] = ("urban_default", "dense_clutter")
    """Scenario names (config/scenarios/<name>.yaml) with moving traffic."""
    seeds: tuple[int, ...] = (1000, 1001)
    """World seeds (the render-quality predictor's calibration is its own defaults, not fitted here)."""
    drive: DriveConfig = field(default_factory=DriveConfig)
    """Drive length, stream, window and the headline quality threshold."""
    thresholds: tuple[float, ...] = (26.0, 28.0, 30.0, 32.0, 34.0, 36.0)
    """Quality thresholds of the energy-quality sweep, dB."""
    output: Path = Path("docs")
    """Folder of gsrmr_evaluation.md/.json; plots go to <output>/images/."""
    scene_cache: Path = SCENE_CACHE
    """Where the built scenes are kept between runs."""


@dataclass
class MethodSummary:
    """One method pooled over every drive."""

    method: str
    energy_j: float
    """Total uplink energy, J."""
    energy_per_frame_mj: float
    psnr: float
    """Mean PSNR of the shown stream, dB."""
    ssim: float
    uploads_per_s: float
    windows_met: float
    """Share of windows whose shown mean PSNR met the threshold."""
    planned_feasible: float
    """Share of windows the method's solution met the constraint on the predicted qualities (offline)."""
    solve_ms_median: float
    solve_ms_p90: float
    latency_violations: int


def summarise(runs: list[MethodRun], frames: list[DriveFrames]) -> MethodSummary:
    seconds = sum(float(f.stamps[-1] - f.stamps[0]) + 0.1 for f in frames)
    energy = float(sum(run.energy.sum() for run in runs))
    count = sum(len(f) for f in frames)
    solve = 1e3 * np.concatenate([run.solve_times for run in runs])
    feasible = [value for run in runs for value in run.planned_feasible]
    return MethodSummary(
        runs[0].method, energy, 1e3 * energy / count,
        float(np.concatenate([run.shown_psnr for run in runs]).mean()),
        float(np.concatenate([run.shown_ssim for run in runs]).mean()),
        float(sum(run.upload.sum() for run in runs)) / seconds,
        float(np.mean([value for run in runs for value in run.met_threshold])),
        float(np.mean(feasible)) if feasible else float("nan"),
        float(np.median(solve)), float(np.percentile(solve, 90)),
        int(sum(run.latency_violations for run in runs)))


def run_methods(drives: list[DriveFrames], channel: Channel, config: DriveConfig,
                threshold: float, methods) -> dict[str, list[MethodRun]]:
    runs: dict[str, list[MethodRun]] = {method: [] for method in methods}
    for frames in drives:
        gains = channel_gains(frames, channel, config)
        for method in methods:
            runs[method].append(run_online(frames, gains, channel, config, threshold) if method == ONLINE
                                else run_offline(frames, gains, method, channel, config, threshold))
    return runs


def record_drives(config: GsrmrReportConfig, progress: bool) -> list[DriveFrames]:
    drives = []
    for scenario in config.scenarios:
        for seed in config.seeds:
            path = SCENARIO_DIR / f"{scenario}.yaml"
            scene = GaussianModel.load_ply(cached_scene(path, seed, config.drive.duration, config.scene_cache, progress))
            drives.append(record_drive(World(load_scenario(path), seed), scenario, scene, config.drive, progress))
    return drives


def plot_energy_vs_threshold(sweep: dict[float, dict[str, MethodSummary]], always: MethodSummary,
                             path: Path) -> None:
    figure = Figure(figsize=(10, 4))
    energy_axes, quality_axes = figure.subplots(1, 2)
    thresholds = sorted(sweep)
    for method in SWEPT_METHODS:
        energy_axes.plot(thresholds, [sweep[t][method].energy_j for t in thresholds], marker="o",
                         label=METHOD_LABELS[method])
        quality_axes.plot(thresholds, [sweep[t][method].psnr for t in thresholds], marker="o",
                          label=METHOD_LABELS[method])
    energy_axes.axhline(always.energy_j, color="black", linestyle="--", label=METHOD_LABELS["always_upload"])
    energy_axes.set(yscale="log", xlabel="quality threshold (mean PSNR, dB)", ylabel="uplink energy (J)",
                    title="energy against the quality threshold")
    quality_axes.plot(thresholds, thresholds, color="gray", linestyle=":", label="threshold")
    quality_axes.axhline(always.psnr, color="black", linestyle="--", label=METHOD_LABELS["always_upload"])
    quality_axes.set(xlabel="quality threshold (mean PSNR, dB)", ylabel="shown PSNR (dB)",
                     title="quality the remote side shows")
    energy_axes.legend(fontsize=7)
    quality_axes.legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=110)


def plot_decisions(frames: DriveFrames, runs: dict[str, MethodRun], threshold: float, path: Path) -> None:
    figure = Figure(figsize=(11, 5))
    quality_axes, upload_axes = figure.subplots(2, 1, sharex=True, height_ratios=[3, 1])
    time_s = frames.stamps - frames.stamps[0]
    quality_axes.plot(time_s, frames.render_psnr, color="tab:red", label="GS render (true)")
    quality_axes.plot(time_s, frames.predicted_psnr, color="tab:orange", linestyle="--", label="GS render (predicted)")
    quality_axes.plot(time_s, frames.image_psnr, color="tab:green", label="uploaded JPEG")
    quality_axes.axhline(threshold, color="gray", linestyle=":", label="threshold")
    share_axes = quality_axes.twinx()
    share_axes.fill_between(time_s, frames.dynamic_share, color="tab:blue", alpha=0.2, step="mid")
    share_axes.set(ylabel="moving road users in view (share)", ylim=(0, 1))
    quality_axes.set(ylabel="PSNR (dB)", title=f"{frames.scenario}, seed {frames.seed}: per-frame decisions")
    quality_axes.legend(fontsize=7, loc="lower left")
    for row, method in enumerate(("exact", "apo", ONLINE, "threshold")):
        uploads = time_s[runs[method].upload]
        upload_axes.scatter(uploads, np.full(len(uploads), row), marker="|", s=80)
    upload_axes.set(yticks=range(4), yticklabels=[METHOD_LABELS[m] for m in ("exact", "apo", ONLINE, "threshold")],
                    xlabel="time (s)", title="uploads")
    upload_axes.tick_params(axis="y", labelsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=110)


def predictor_accuracy(drives: list[DriveFrames]) -> dict:
    true = np.concatenate([f.render_psnr for f in drives])
    predicted = np.concatenate([f.predicted_psnr for f in drives])
    true_ssim = np.concatenate([f.render_ssim for f in drives])
    predicted_ssim = np.concatenate([f.predicted_ssim for f in drives])
    return {"psnr_mae_db": float(np.abs(predicted - true).mean()),
            "psnr_correlation": float(np.corrcoef(predicted, true)[0, 1]),
            "ssim_mae": float(np.abs(predicted_ssim - true_ssim).mean()),
            "ssim_correlation": float(np.corrcoef(predicted_ssim, true_ssim)[0, 1])}


def markdown(config: GsrmrReportConfig, drives: list[DriveFrames], headline: dict[str, MethodSummary],
             sweep: dict[float, dict[str, MethodSummary]], accuracy: dict, command: str, wall_s: float,
             machine: dict) -> str:
    always = headline["always_upload"]
    frames = sum(len(f) for f in drives)
    render = np.concatenate([f.render_ms for f in drives])
    predict = np.concatenate([f.predict_ms for f in drives])
    lines = [f"# GSRMR uplink evaluation ({datetime.now(timezone.utc):%Y-%m-%d})", "",
             f"`{command}` — {len(drives)} drives ({', '.join(config.scenarios)} × seeds "
             f"{', '.join(map(str, config.seeds))}, {config.drive.duration:g} s each, {frames} camera frames at 10 Hz, "
             f"stream {640 // config.drive.stream_scale}×{480 // config.drive.stream_scale}, JPEG quality "
             f"{config.drive.jpeg_quality}), {wall_s / 60:.1f} min on {machine['cpu']} "
             f"({machine['cores']} cores, torch {machine['torch']}, {machine['torch_threads']} threads).", "",
             f"Windows of {config.drive.window} frames, latency {config.drive.latency:g} s per frame, quality threshold "
             f"{config.drive.quality_threshold:g} dB mean PSNR per window. Methods decide on the predicted render "
             "quality and are scored on the true one (see evaluation/gsrmr_run.py and docs/gsrmr.md).", "",
             "| method | energy (J) | vs always-upload | PSNR (dB) | SSIM | uploads/s | windows ≥ threshold | "
             "solve ms (median / p90) |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for method, summary in headline.items():
        ratio = always.energy_j / summary.energy_j if summary.energy_j > 0 else float("inf")
        lines.append(f"| {METHOD_LABELS[method]} | {summary.energy_j:.3g} | {ratio:.1f}× less | {summary.psnr:.2f} | "
                     f"{summary.ssim:.3f} | {summary.uploads_per_s:.2f} | {summary.windows_met:.0%} | "
                     f"{summary.solve_ms_median:.2f} / {summary.solve_ms_p90:.2f} |")
    lines += ["", "## Energy against the quality threshold", "",
              "![energy vs threshold](images/gsrmr_energy_vs_threshold.png)", "",
              "| threshold (dB) | " + " | ".join(f"{METHOD_LABELS[m]}: J, PSNR" for m in SWEPT_METHODS) + " |",
              "| ---: | " + " | ".join("---:" for _ in SWEPT_METHODS) + " |"]
    for threshold, summaries in sorted(sweep.items()):
        lines.append(f"| {threshold:g} | " + " | ".join(
            f"{summaries[m].energy_j:.3g}, {summaries[m].psnr:.1f}" for m in SWEPT_METHODS) + " |")
    lines += ["", f"Always upload: {always.energy_j:.3g} J at {always.psnr:.2f} dB.", "",
              "## Per-frame decisions", "", "![decisions](images/gsrmr_decisions.png)", "",
              "## The render and its predictor", "",
              f"- GS render of the true pose against the camera frame: PSNR {np.mean([f.render_psnr.mean() for f in drives]):.2f} dB, "
              f"SSIM {np.mean([f.render_ssim.mean() for f in drives]):.3f} on average; uploaded JPEG: "
              f"PSNR {np.mean([f.image_psnr.mean() for f in drives]):.2f} dB",
              f"- render time {np.median(render):.0f} ms median, {np.percentile(render, 90):.0f} ms p90 "
              f"({render.size} renders); prediction {np.median(predict):.1f} ms median",
              f"- predictor: PSNR MAE {accuracy['psnr_mae_db']:.2f} dB, correlation {accuracy['psnr_correlation']:.2f}; "
              f"SSIM MAE {accuracy['ssim_mae']:.3f}, correlation {accuracy['ssim_correlation']:.2f}", ""]
    return "\n".join(lines)


def write_report(config: GsrmrReportConfig, command: str, progress: bool = True) -> Path:
    started = time.perf_counter()
    torch.set_num_threads(2)
    drives = record_drives(config, progress)
    channel = Channel(config.drive.channel)
    methods = OFFLINE_METHODS + (ONLINE,)
    headline_runs = run_methods(drives, channel, config.drive, config.drive.quality_threshold, methods)
    headline = {method: summarise(runs, drives) for method, runs in headline_runs.items()}
    sweep = {threshold: {method: summarise(runs, drives) for method, runs in
                         run_methods(drives, channel, config.drive, threshold, SWEPT_METHODS).items()}
             for threshold in config.thresholds}
    accuracy = predictor_accuracy(drives)
    images = config.output / "images"
    images.mkdir(parents=True, exist_ok=True)
    plot_energy_vs_threshold(sweep, headline["always_upload"], images / "gsrmr_energy_vs_threshold.png")
    plot_decisions(drives[0], {method: runs[0] for method, runs in headline_runs.items()},
                   config.drive.quality_threshold, images / "gsrmr_decisions.png")
    report = config.output / "gsrmr_evaluation.md"
    machine = machine_description(torch.device("cpu"))
    report.write_text(markdown(config, drives, headline, sweep, accuracy, command, time.perf_counter() - started,
                               machine))
    (config.output / "gsrmr_evaluation.json").write_text(json.dumps({
        "command": command, "machine": machine,
        "headline": {method: asdict(summary) for method, summary in headline.items()},
        "sweep": {str(t): {m: asdict(s) for m, s in summaries.items()} for t, summaries in sweep.items()},
        "predictor": accuracy,
        "drives": [{"scenario": f.scenario, "seed": f.seed, "frames": len(f),
                    "render_psnr": float(f.render_psnr.mean()), "image_psnr": float(f.image_psnr.mean()),
                    "image_kbytes": float(f.image_bits.mean() / 8e3), "dynamic_share": float(f.dynamic_share.mean())}
                   for f in drives]}, indent=1))
    return report


def parse_arguments(argv: list[str]) -> tuple[GsrmrReportConfig, bool]:
    defaults = GsrmrReportConfig()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenarios", nargs="+", default=list(defaults.scenarios))
    parser.add_argument("--seeds", nargs="+", type=int, default=list(defaults.seeds))
    parser.add_argument("--duration", type=float, default=defaults.drive.duration, help="simulated s per drive")
    parser.add_argument("--threshold", type=float, default=defaults.drive.quality_threshold,
                        help="headline quality threshold, mean PSNR dB")
    parser.add_argument("--thresholds", nargs="+", type=float, default=list(defaults.thresholds))
    parser.add_argument("--output", type=Path, default=defaults.output)
    parser.add_argument("--scene-cache", type=Path, default=defaults.scene_cache)
    parser.add_argument("--no-progress", action="store_true")
    options = parser.parse_args(argv)
    config = GsrmrReportConfig(tuple(options.scenarios), tuple(options.seeds),
                               DriveConfig(duration=options.duration, quality_threshold=options.threshold),
                               tuple(options.thresholds), options.output, options.scene_cache)
    return config, not options.no_progress


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    config, progress = parse_arguments(argv)
    try:
        report = write_report(config, " ".join(["evaluate-gsrmr", *argv]), progress)
    except (OSError, ValueError, RuntimeError) as error:
        print(f"evaluate-gsrmr: {error}", file=sys.stderr)
        return 2
    print(f"report written to {report}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
