"""Latency of the lidar detector per simulated 64-beam scan, message in → boxes out, with the
breakdown by stage; prints a Markdown table.

    python bench/bench_detector.py [--model models/lidar_detector.pt] [--scans 30] [--device cpu]
                                   [--dense-runtime auto|onnxruntime|torch]

Scans come from the simulated world (urban_default, seed 100001, one every 0.5 s): about 110-125k
points each, as an HDL-64E at 10 Hz. "end to end" covers PointCloud2 decoding, detection and
building the DetectedObjects message, as the lidar_detector node does per cloud.
"""
from __future__ import annotations

import argparse
import datetime
import time

import numpy as np
from std_msgs.msg import Header

from evaluation.detector_report import machine_description
from perception.detection import DetectorOptions, LidarDetector
from robot_nodes.conversions import detected_objects_to_msg, pointcloud2_to_xyzi, xyzi_to_pointcloud2
from robot_nodes.paths import resolve
from sim.scenario import load_scenario
from sim.world import World

STAGES = ("decode_msg", "prepare", "voxelize", "backbone", "head", "decode", "encode_msg")


def simulated_clouds(count: int) -> list:
    world = World(load_scenario(resolve("config/scenarios/urban_default.yaml")), seed=100001)
    clouds = []
    for _ in range(count):
        world.step(0.5, 8.0, 0.0)
        clouds.append(xyzi_to_pointcloud2(world.lidar_scan().points, Header(frame_id="lidar")))
    return clouds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="models/lidar_detector.pt")
    parser.add_argument("--scans", type=int, default=30, help="timed scans (median reported)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dense-runtime", default="auto", help="neck and head in onnxruntime, torch or auto")
    options = parser.parse_args()

    detector_options = DetectorOptions(device=options.device, dense_runtime=options.dense_runtime)
    detector = LidarDetector.from_checkpoint(resolve(options.model), detector_options)
    clouds = simulated_clouds(options.scans + 3)
    rows, totals, points, detections = [], [], [], []
    for index, cloud in enumerate(clouds):
        started = time.perf_counter()
        xyzi, _ = pointcloud2_to_xyzi(cloud)
        decoded = time.perf_counter()
        result = detector.detect(xyzi)
        detected = time.perf_counter()
        detected_objects_to_msg(result.objects, cloud.header)
        finished = time.perf_counter()
        if index < 3:  # warm-up: lazy initialisation, allocator, thread pools
            continue
        rows.append({"decode_msg": 1e3 * (decoded - started), **result.timings_ms,
                     "encode_msg": 1e3 * (finished - detected)})
        totals.append(1e3 * (finished - started))
        points.append(cloud.width)
        detections.append(len(result.objects))

    machine = machine_description(detector.device)
    where = machine.get("gpu") or f"{machine['cpu']}, {machine['cores']} cores, torch threads {machine['torch_threads']}"
    print(f"Lidar detector latency, {datetime.date.today()}, {where}; torch {machine['torch']}, "
          f"neck and head in {detector.dense_runtime}; "
          f"{len(totals)} scans of {np.median(points) / 1000:.0f}k points (median), "
          f"{np.median(detections):.0f} detections per scan (median)\n")
    print("| stage | median (ms) | p90 (ms) |")
    print("|---|---:|---:|")
    for stage in STAGES:
        values = [row.get(stage, 0.0) for row in rows]
        print(f"| {stage} | {np.median(values):.1f} | {np.percentile(values, 90):.1f} |")
    print(f"| **end to end** | **{np.median(totals):.1f}** | {np.percentile(totals, 90):.1f} |")


if __name__ == "__main__":
    main()
