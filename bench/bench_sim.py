"""Timing of the simulated world in urban_default: lidar scan, camera frame, world step.

Run by hand from the repository root: `python bench/bench_sim.py [--scans 30]`. Prints a Markdown
table with the machine and the date. Between timed calls the world advances 0.1 s (the sensors'
period), so every scan and frame sees the agents somewhere new.
"""
from __future__ import annotations

import argparse
import datetime
import os
import platform
import sys
import time
from pathlib import Path
from typing import Callable

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from sim.controller import LaneKeepingController  # noqa: E402 - needs the repository root on sys.path
from sim.scenario import load_scenario  # noqa: E402
from sim.world import World  # noqa: E402

SCENARIO = REPO_ROOT / "config" / "scenarios" / "urban_default.yaml"
PERIOD = 0.1
"""Sensor period and world step, s."""
TARGET_SPEED = 9.0
"""Ego speed along its lane, m/s."""


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def timed(calls: int, before: Callable[[], None], call: Callable[[], object],
          summary: Callable[[object], int]) -> tuple[np.ndarray, np.ndarray]:
    """Seconds taken by each of `calls` calls of `call`, each after an untimed `before`, and a
    number summarising each result (results are dropped, as a publishing node would)."""
    seconds, summaries = [], []
    for _ in range(calls):
        before()
        start = time.perf_counter()
        result = call()
        seconds.append(time.perf_counter() - start)
        summaries.append(summary(result))
    return np.array(seconds), np.array(summaries)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scans", type=int, default=30, help="lidar scans to time (at least 30)")
    parser.add_argument("--frames", type=int, default=15, help="camera frames to time")
    parser.add_argument("--steps", type=int, default=200, help="world steps to time")
    args = parser.parse_args()

    start = time.perf_counter()
    world = World(load_scenario(SCENARIO), seed=0)
    build_seconds = time.perf_counter() - start
    controller = LaneKeepingController(world.lane_centerlines)

    def drive() -> None:
        world.step(PERIOD, *controller.command(world.ego_pose, world.ego_velocity[0], TARGET_SPEED))

    for _ in range(10):  # warm up: caches, thread pools, agents under way
        drive()
        world.lidar_scan()
    scan_seconds, points = timed(max(args.scans, 30), drive, world.lidar_scan, lambda scan: len(scan.points))
    frame_seconds, _ = timed(args.frames, drive, world.camera_frame, lambda frame: frame.rgb.size)
    step_seconds, _ = timed(args.steps, lambda: None, drive, lambda _: 0)
    truth_seconds, objects = timed(args.frames, drive, world.ground_truth, len)

    camera = world.camera_config
    rows = [
        (f"lidar scan ({world.lidar_config.beams} beams, {len(points)} scans)", scan_seconds,
         f"{points.mean():,.0f} points (min {points.min():,}, max {points.max():,})"),
        (f"camera frame {camera.width}x{camera.height} ({len(frame_seconds)} frames)", frame_seconds, "RGB + depth"),
        (f"world step dt={PERIOD} s ({len(step_seconds)} steps)", step_seconds,
         f"{world.scenario.traffic.count} vehicles, {world.scenario.pedestrians.count} pedestrians"),
        (f"ground_truth() ({len(truth_seconds)} calls)", truth_seconds, f"{objects[-1]} objects"),
    ]
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(f"## Simulator benchmark: {SCENARIO.relative_to(REPO_ROOT)}, seed 0\n")
    print(f"- machine: {cpu_model()}, {cores} cores usable ({os.cpu_count()} online)")
    print(f"- date: {datetime.datetime.now().astimezone().isoformat(timespec='seconds')}")
    print(f"- python {platform.python_version()}, numpy {np.__version__}, "
          f"open3d {__import__('open3d').__version__}")
    print(f"- world build (meshes + static ray-casting scene): {build_seconds * 1e3:.0f} ms\n")
    print("| operation | median ms | p90 ms | notes |")
    print("|---|---:|---:|---|")
    for name, seconds, notes in rows:
        print(f"| {name} | {np.median(seconds) * 1e3:.1f} | {np.percentile(seconds, 90) * 1e3:.1f} | {notes} |")


if __name__ == "__main__":
    main()
