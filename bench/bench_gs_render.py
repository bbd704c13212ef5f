"""Gaussian-splatting scene of urban_default: build time, render time at the GSRMR stream's 320 x 240,
render quality on static views and with traffic, and the robot's discrepancy predictor.

Run by hand from the repository root: `python bench/bench_gs_render.py [--poses 60] [--model out.ply]`.
Builds the scene as build-gaussian-scene does by default (or loads --model), then drives the ego
with lane keeping for --poses frames 0.5 s apart. At each pose it times the full render and the
predictor (80 x 60 render + PSNR/SSIM, after a few warm-up calls), and scores the render against
the camera frame with traffic and against the static world's frame. The predictor is calibrated
on the first half of the drive and its accuracy reported on the second half (and the calibration
from the whole drive is printed, for DiscrepancyConfig's defaults). Torch runs on --threads (2).
Prints the machine, the date and Markdown rows for docs/benchmarks.md.

On a machine whose other core is busy, OpenMP's default active waiting makes 2 torch threads far
slower than 1 (measured 1.8 s against 61 ms a view); OMP_WAIT_POLICY=PASSIVE avoids it (69 ms).
"""
from __future__ import annotations

import argparse
import datetime
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from mixed_reality.discrepancy import CalibrationSample, DiscrepancyPredictor  # noqa: E402 - needs the root on sys.path
from mixed_reality.gaussians import GaussianModel  # noqa: E402
from mixed_reality.quality import psnr, ssim  # noqa: E402
from mixed_reality.render import GaussianRenderer  # noqa: E402
from sim.controller import LaneKeepingController  # noqa: E402
from sim.scenario import load_scenario  # noqa: E402
from sim.world import World  # noqa: E402
from training.gaussian_scene import DRIVE_SPEED, build_scene, stream_view  # noqa: E402

SCENARIO = REPO_ROOT / "config" / "scenarios" / "urban_default.yaml"
PERIOD = 0.5
"""Simulated seconds between the drive's frames."""
WARM_UP = 5
"""Untimed calls before the timed ones (allocator, thread pools)."""
TRAFFIC_SHARE = 0.01
"""A frame counts as one with traffic when moving road users cover at least this share of it."""


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def timed(call) -> tuple[object, float]:
    start = time.perf_counter()
    result = call()
    return result, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--poses", type=int, default=60, help="frames of the drive to time (at least 50)")
    parser.add_argument("--model", type=Path, help="load this scene instead of building it")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    if args.model:
        model, build_seconds = GaussianModel.load_ply(args.model), float("nan")
    else:
        model, build_seconds = timed(lambda: build_scene(SCENARIO, args.seed, progress=False))
    renderer, renderer_seconds = timed(lambda: GaussianRenderer(model))
    predictor = DiscrepancyPredictor(renderer)

    world = World(load_scenario(SCENARIO), seed=args.seed)
    controller = LaneKeepingController(world.lane_centerlines)
    rows = []
    for index in range(WARM_UP + max(args.poses, 50)):
        for _ in range(round(PERIOD / 0.1)):
            world.step(0.1, *controller.command(world.ego_pose, world.ego_velocity[0], DRIVE_SPEED))
        stream, ids, camera_to_map, intrinsics = stream_view(world)
        static = stream_view(world, static=True)[0]
        rendered, render_seconds = timed(lambda: renderer.render(camera_to_map, intrinsics, 320, 240))
        (low_psnr, low_ssim), predict_seconds = timed(lambda: predictor.measure(stream, camera_to_map, intrinsics))
        if index < WARM_UP:
            continue
        moving = [obj.object_id for obj in world.ground_truth() if not obj.is_static]
        rows.append(dict(render=render_seconds, predict=predict_seconds, drawn=rendered.drawn,
                         moving_share=float(np.isin(ids, moving).mean()),
                         psnr=psnr(rendered.rgb, stream), ssim=ssim(rendered.rgb, stream),
                         static_psnr=psnr(rendered.rgb, static), static_ssim=ssim(rendered.rgb, static),
                         sample=CalibrationSample(low_psnr, low_ssim, psnr(rendered.rgb, stream), ssim(rendered.rgb, stream))))

    def column(name: str) -> np.ndarray:
        return np.array([row[name] for row in rows])

    half = len(rows) // 2
    predictor.calibrate([row["sample"] for row in rows[:half]])
    test = [row["sample"] for row in rows[half:]]
    config = predictor.config
    predicted_psnr = np.array([config.psnr_slope * s.low_psnr + config.psnr_intercept for s in test])
    predicted_ssim = np.array([config.ssim_slope * s.low_ssim + config.ssim_intercept for s in test])
    true_psnr, true_ssim = np.array([s.full_psnr for s in test]), np.array([s.full_ssim for s in test])
    whole = DiscrepancyPredictor(renderer).calibrate([row["sample"] for row in rows])

    render_ms, predict_ms = column("render") * 1e3, column("predict") * 1e3
    traffic = column("moving_share") >= TRAFFIC_SHARE
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(f"## Gaussian-splatting scene benchmark: {SCENARIO.relative_to(REPO_ROOT)}, seed {args.seed}\n")
    print(f"- machine: {cpu_model()}, {cores} cores usable ({os.cpu_count()} online), "
          f"{platform.system()} {platform.release()}, torch {torch.__version__} on {torch.get_num_threads()} threads, "
          f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', 'unset')}")
    print(f"- date: {datetime.datetime.now().astimezone().isoformat(timespec='seconds')}")
    print(f"- scene: {len(model):,} Gaussians, built in {build_seconds:.1f} s (survey + build, no fitting); "
          f"renderer set-up {renderer_seconds:.1f} s")
    print(f"- drive: {len(rows)} poses {PERIOD} s apart with lane keeping at {DRIVE_SPEED} m/s; "
          f"{int(traffic.sum())} with moving road users on ≥ {TRAFFIC_SHARE:.0%} of the frame (mean share "
          f"{column('moving_share').mean():.1%}); {column('drawn').mean():,.0f} Gaussians drawn per view\n")
    print("| what | median | p90 | notes |")
    print("|---|---:|---:|---|")
    print(f"| GS render 320×240 | {np.median(render_ms):.1f} ms | {np.percentile(render_ms, 90):.1f} ms | "
          f"{len(rows)} poses, goal ≤ 100 ms |")
    print(f"| discrepancy predictor (80×60 render + PSNR/SSIM) | {np.median(predict_ms):.1f} ms | "
          f"{np.percentile(predict_ms, 90):.1f} ms | {np.median(predict_ms) / np.median(render_ms):.0%} of a full render |")
    print(f"| PSNR / SSIM vs the static world's frame | {np.median(column('static_psnr')):.2f} dB / "
          f"{np.median(column('static_ssim')):.3f} | | mean {column('static_psnr').mean():.2f} dB / "
          f"{column('static_ssim').mean():.3f} |")
    for name, frames in ((f"≥ {TRAFFIC_SHARE:.0%} moving road users", traffic),
                         (f"< {TRAFFIC_SHARE:.0%} moving road users", ~traffic)):
        if frames.any():
            print(f"| PSNR / SSIM vs the camera, {name} | {np.median(column('psnr')[frames]):.2f} dB / "
                  f"{np.median(column('ssim')[frames]):.3f} | | {int(frames.sum())} frames |")
    print(f"| predictor accuracy (calibrated on the first {half} poses, tested on {len(test)}) | "
          f"PSNR MAE {np.abs(predicted_psnr - true_psnr).mean():.2f} dB, r {np.corrcoef(predicted_psnr, true_psnr)[0, 1]:.3f} | "
          f"SSIM MAE {np.abs(predicted_ssim - true_ssim).mean():.3f}, r {np.corrcoef(predicted_ssim, true_ssim)[0, 1]:.3f} | "
          f"uncalibrated low-res PSNR r {np.corrcoef([s.low_psnr for s in test], true_psnr)[0, 1]:.3f} |")
    print(f"\nDiscrepancyConfig calibration on the whole drive: psnr_slope={whole.psnr_slope:.4f}, "
          f"psnr_intercept={whole.psnr_intercept:.4f}, ssim_slope={whole.ssim_slope:.4f}, "
          f"ssim_intercept={whole.ssim_intercept:.4f}")
    print("\nRow for docs/benchmarks.md:\n")
    print(f"| GS render of urban_default at 320×240, {len(model):,} Gaussians (median of {len(rows)} poses) | "
          f"`python bench/bench_gs_render.py` | **{np.median(render_ms):.1f} ms** (p90 {np.percentile(render_ms, 90):.1f}) "
          f"| ≤ 100 ms |")


if __name__ == "__main__":
    main()
