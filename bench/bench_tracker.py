"""Latency of MultiObjectTracker.update per frame with many objects; prints a Markdown line.

    python bench/bench_tracker.py [--objects 100] [--frames 200] [--seed 0]

The scene: vehicles (80 %) in lanes 4 m apart and pedestrians (20 %) on footpaths 3 m apart,
20 m apart along their lane, each lane at its own speed (so nobody overtakes), detected at 10 Hz
with 0.15 m centre noise and 5 % misses. Every object is tracked after the first frames, so a
frame associates about `--objects` detections with as many tracks. The first 10 frames are
warm-up and not timed.
"""
from __future__ import annotations

import argparse
import datetime
import time

import numpy as np
import torch

from evaluation.detector_report import machine_description
from perception.objects import Box3D, DetectedObject, ObjectClass
from perception.tracking import MultiObjectTracker

WARM_UP_FRAMES = 10
PERIOD = 0.1


def scene(count: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Start positions (N, 2), velocities (N, 2) and labels (N,) of `count` well-separated movers."""
    pedestrians = count // 5
    vehicles = count - pedestrians
    per_lane = 10
    lane = np.arange(vehicles) // per_lane
    vehicle_start = np.column_stack([20.0 * (np.arange(vehicles) % per_lane), 4.0 * lane])
    vehicle_velocity = np.column_stack([rng.uniform(6.0, 14.0, vehicles)[lane], np.zeros(vehicles)])
    path = np.arange(pedestrians) // per_lane
    pedestrian_start = np.column_stack([20.0 * (np.arange(pedestrians) % per_lane), -6.0 - 3.0 * path])
    pedestrian_velocity = np.column_stack([rng.uniform(0.8, 1.8, pedestrians)[path], np.zeros(pedestrians)])
    labels = np.array([ObjectClass.CAR] * vehicles + [ObjectClass.PEDESTRIAN] * pedestrians)
    return (np.concatenate([vehicle_start, pedestrian_start]), np.concatenate([vehicle_velocity, pedestrian_velocity]),
            labels)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objects", type=int, default=100, help="moving objects (default 100)")
    parser.add_argument("--frames", type=int, default=200, help="timed frames (default 200)")
    parser.add_argument("--seed", type=int, default=0)
    options = parser.parse_args()

    rng = np.random.default_rng(options.seed)
    starts, velocities, labels = scene(options.objects, rng)
    sizes = {ObjectClass.CAR: (4.5, 1.8, 1.5), ObjectClass.PEDESTRIAN: (0.6, 0.6, 1.7)}
    tracker = MultiObjectTracker()
    times, detected, tracked = [], [], []
    for frame in range(options.frames + WARM_UP_FRAMES):
        stamp = frame * PERIOD
        centres = starts + velocities * stamp + rng.normal(0.0, 0.15, starts.shape)
        seen = rng.random(len(starts)) >= 0.05
        detections = [DetectedObject(label=label, score=0.9, box=Box3D((x, y, sizes[label][2] / 2), sizes[label], 0.0))
                      for (x, y), label in zip(centres[seen], labels[seen])]
        started = time.perf_counter()
        tracks = tracker.update(detections, stamp)
        elapsed = time.perf_counter() - started
        if frame >= WARM_UP_FRAMES:
            times.append(1e3 * elapsed)
            detected.append(len(detections))
            tracked.append(len(tracks))

    machine = machine_description(torch.device("cpu"))
    print(f"MultiObjectTracker.update, {datetime.date.today()}, {machine['cpu']}, {machine['cores']} cores; "
          f"{len(times)} frames, {np.median(detected):.0f} detections and {np.median(tracked):.0f} confirmed tracks "
          f"per frame (median), {tracker.counters.births} tracks born\n")
    print("| objects | median (ms) | p90 (ms) | p99 (ms) | max (ms) |")
    print("|---:|---:|---:|---:|---:|")
    print(f"| {options.objects} | {np.median(times):.2f} | {np.percentile(times, 90):.2f} | "
          f"{np.percentile(times, 99):.2f} | {np.max(times):.2f} |")


if __name__ == "__main__":
    main()
