"""build-gaussian-scene: the static world of a scenario as a 3D Gaussian-splatting model (.ply).

    build-gaussian-scene --scenario config/scenarios/urban_default.yaml --seed 0 --out out/gs_urban_default.ply
    build-gaussian-scene ... --fit-steps 300                   # then fit it to the survey's images
    build-gaussian-scene ... --figure docs/images/gsrmr_renders.png   # camera | render | difference

A mapping drive (sim.survey: the world without traffic or pedestrians, along the lanes of the ego's
driving direction) gives posed RGB-D frames; mixed_reality.build turns them into Gaussians and,
with --fit-steps, mixed_reality.fit optimises them against the same frames. By default the drive
covers what the ego can see in an episode: from DRIVE_BEHIND metres behind its start over the
distance it can drive in --duration seconds at its top speed, plus the renderer's view range.
"""
from __future__ import annotations

import argparse
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from matplotlib.figure import Figure
from tqdm import tqdm

from mixed_reality.build import BuildConfig, gaussians_from_rgbd
from mixed_reality.fit import FitConfig, fit_to_images
from mixed_reality.gaussians import GaussianModel
from mixed_reality.quality import psnr, ssim
from mixed_reality.render import GaussianRenderer, RenderConfig
from mixed_reality.stream import downscale, scaled_intrinsics
from sim.controller import LaneKeepingController
from sim.scenario import Scenario, ScenarioError, load_scenario
from sim.survey import SurveyConfig, survey_frames
from sim.transforms import planar_pose_matrix
from sim.world import World

DRIVE_BEHIND = 10.0
"""The mapping drive starts this far behind the ego's start, metres (the camera sees sideways too)."""
EPISODE_SECONDS = 20.0
"""Default episode length the drive covers, s (edge-demo's default --duration)."""
DRIVE_SPEED = 8.0
"""Speed of the figure's lane-keeping drive, m/s (lane_keeping_controller's default target)."""
FIGURE_PERIOD = 0.5
"""The figure's drive offers a frame every this many seconds, s."""
STREAM_FACTOR = 2
"""The GSRMR stream is the camera downscaled by this (640 × 480 → 320 × 240)."""


@dataclass
class SceneConfig:
    """Everything build_scene does, with the defaults of build-gaussian-scene."""

    survey: SurveyConfig = field(default_factory=SurveyConfig)
    """Where the mapping drive takes its frames."""
    build: BuildConfig = field(default_factory=BuildConfig)
    """How the frames become Gaussians."""
    fit: FitConfig = field(default_factory=lambda: FitConfig(steps=0))
    """Fitting to the survey's frames afterwards (steps 0: none)."""


def default_s_range(scenario: Scenario, duration: float = EPISODE_SECONDS,
                    view_range: float = RenderConfig.max_distance) -> tuple[float, float]:
    """(low, high) s of the mapping drive for an episode of `duration` seconds: from DRIVE_BEHIND
    behind the ego's start over duration × its top speed plus view_range ahead, in its lanes'
    direction, within the road."""
    direction = 1.0 if scenario.ego.lane < scenario.road.lanes_per_direction else -1.0
    start = scenario.ego.start_s
    ahead = start + direction * (duration * scenario.ego.max_speed + view_range)
    behind = start - direction * DRIVE_BEHIND
    return max(0.0, min(ahead, behind)), min(scenario.road.length, max(ahead, behind))


def build_scene(scenario_path: str | Path, seed: int = 0, s_range: tuple[float, float] | None = None,
                duration: float = EPISODE_SECONDS, config: SceneConfig = SceneConfig(),
                progress: bool = True) -> GaussianModel:
    """The Gaussian model of the scenario's static world for `seed`: mapping drive over s_range
    (default: default_s_range for `duration`), build, then fit when config.fit.steps > 0."""
    scenario = load_scenario(scenario_path)
    world = World(scenario, seed=seed)
    s_range = s_range or default_s_range(scenario, duration)
    frames = survey_frames(world, s_range, config.survey)
    model = gaussians_from_rgbd(tqdm(frames, desc="surveying + building", unit="frame", disable=not progress),
                                config.build)
    if config.fit.steps:
        model, _ = fit_to_images(model, frames, config.fit, progress=progress)
    return model


def stream_view(world: World, static: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(camera frame at stream resolution, its object ids, camera_to_map, intrinsics) of the world
    now; with `static`, the frame of the static world only (no traffic or pedestrians)."""
    frame = world.static_camera_frame(world.ego_pose) if static else world.camera_frame()
    camera_to_map = planar_pose_matrix(*world.ego_pose) @ world.camera_config.optical_to_base_link()
    return (downscale(frame.rgb, STREAM_FACTOR), frame.object_ids[::STREAM_FACTOR, ::STREAM_FACTOR],
            camera_to_map, scaled_intrinsics(world.camera_intrinsics, STREAM_FACTOR))


def comparison_figure(model: GaussianModel, scenario_path: str | Path, seed: int, path: Path,
                      rows: int = 3, drive_seconds: float = 30.0) -> list[tuple[float, float, int]]:
    """Save rows of [camera frame | render of the model at the same pose | absolute difference × 3]
    at stream resolution along a lane-keeping drive: the first row the static world (no traffic or
    pedestrians) at the drive's start, the others the frames of the drive with the most pixels of
    moving road users. Returns (PSNR, SSIM, moving road users' pixels) per row."""
    world = World(load_scenario(scenario_path), seed=seed)
    controller = LaneKeepingController(world.lane_centerlines)
    renderer = GaussianRenderer(model)
    rgb, _, camera_to_map, intrinsics = stream_view(world, static=True)
    static = (0, rgb, camera_to_map, intrinsics)
    candidates = []
    for _ in range(int(drive_seconds / FIGURE_PERIOD)):
        for _ in range(round(FIGURE_PERIOD / 0.1)):
            world.step(0.1, *controller.command(world.ego_pose, world.ego_velocity[0], DRIVE_SPEED))
        rgb, ids, camera_to_map, intrinsics = stream_view(world)
        moving_ids = [obj.object_id for obj in world.ground_truth() if not obj.is_static]
        candidates.append((int(np.count_nonzero(np.isin(ids, moving_ids))), rgb, camera_to_map, intrinsics))
    chosen = [static] + sorted(candidates, key=lambda candidate: -candidate[0])[:rows - 1]
    figure = Figure(figsize=(10.5, 2.7 * len(chosen)), dpi=80)
    scores = []
    for row, (moving, rgb, camera_to_map, intrinsics) in enumerate(chosen):
        rendered = renderer.render(camera_to_map, intrinsics, rgb.shape[1], rgb.shape[0]).rgb
        scores.append((psnr(rendered, rgb), ssim(rendered, rgb), moving))
        difference = np.clip(np.abs(rendered.astype(np.int16) - rgb.astype(np.int16)) * 3, 0, 255).astype(np.uint8)
        what = f"{moving} px of moving road users" if moving else "static world: no traffic"
        for column, (image, title) in enumerate([
                (rgb, f"camera ({what})"), (rendered, f"GS render: PSNR {scores[-1][0]:.1f} dB, SSIM {scores[-1][1]:.3f}"),
                (difference, "|difference| × 3")]):
            axes = figure.add_subplot(len(chosen), 3, 3 * row + column + 1)
            axes.imshow(image)
            axes.set_title(title, fontsize=9)
            axes.axis("off")
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path)
    return scores


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="build-gaussian-scene", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scenario", type=Path, required=True, help="scenario file")
    parser.add_argument("--seed", type=int, default=0, help="scenario seed (the layout of the static world)")
    parser.add_argument("--out", type=Path, required=True, help="the .ply to write")
    parser.add_argument("--duration", type=float, default=EPISODE_SECONDS,
                        help="episode length the drive covers, s (default %(default)s)")
    parser.add_argument("--s-range", type=float, nargs=2, metavar=("LOW", "HIGH"),
                        help="survey this range of s instead, metres along the road")
    parser.add_argument("--fit-steps", type=int, default=0, help="fitting steps after the build (default 0: none)")
    parser.add_argument("--figure", type=Path, help="also save a camera | render | difference figure here")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    args = parser.parse_args(argv)
    if not (args.duration > 0 and math.isfinite(args.duration)):
        parser.error("--duration must be a positive number of seconds")
    torch.set_num_threads(args.threads)
    try:
        config = SceneConfig(fit=FitConfig(steps=args.fit_steps))
        start = time.perf_counter()
        model = build_scene(args.scenario, args.seed, tuple(args.s_range) if args.s_range else None, args.duration,
                            config)
        seconds = time.perf_counter() - start
        model.save_ply(args.out)
        print(f"build-gaussian-scene: {len(model):,} Gaussians in {seconds:.1f} s -> {args.out}")
        if args.figure:
            for index, (row_psnr, row_ssim, moving) in enumerate(comparison_figure(model, args.scenario, args.seed,
                                                                                    args.figure)):
                print(f"  figure row {index + 1}: PSNR {row_psnr:.2f} dB, SSIM {row_ssim:.3f} "
                      f"({f'{moving} px of moving road users' if moving else 'static world'})")
            print(f"  figure -> {args.figure}")
    except (OSError, ValueError, ScenarioError) as error:
        print(f"build-gaussian-scene: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
