"""Throughput of the message conversions the nodes run per frame; prints a Markdown table.

    python bench/bench_conversions.py [--repeats 200]

Rates are payload bytes (len(msg.data)) over the median wall time of single calls.
"""
from __future__ import annotations

import argparse
import datetime
import os
import time
from pathlib import Path
from typing import Callable

import numpy as np
from std_msgs.msg import Header

from robot_nodes.conversions import image_to_numpy, numpy_to_image, pointcloud2_to_xyzi, xyzi_to_pointcloud2

CLOUD_POINTS = 120_000
IMAGE_SHAPE = (480, 640, 3)


def median_seconds(call: Callable[[], object], repeats: int) -> float:
    call()  # warm caches and lazy imports
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        samples.append(time.perf_counter() - start)
    return float(np.median(samples))


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "unknown CPU"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=200, help="timed calls per row (median reported)")
    repeats = parser.parse_args().repeats

    rng = np.random.default_rng(0)
    points = (rng.normal(size=(CLOUD_POINTS, 4)) * 20.0).astype(np.float32)
    cloud = xyzi_to_pointcloud2(points, Header(frame_id="lidar"))
    sparse_points = points.copy()
    sparse_points[rng.random(CLOUD_POINTS) < 0.1, 2] = np.nan
    sparse_cloud = xyzi_to_pointcloud2(sparse_points, Header(frame_id="lidar"))
    pixels = rng.integers(0, 256, IMAGE_SHAPE, dtype=np.uint8)
    image = numpy_to_image(pixels, "rgb8", Header(frame_id="camera"))

    rows = [
        (f"PointCloud2 → xyzi, {CLOUD_POINTS // 1000}k points", len(cloud.data), lambda: pointcloud2_to_xyzi(cloud)),
        (f"PointCloud2 → xyzi, {CLOUD_POINTS // 1000}k points, 10 % NaN dropped", len(sparse_cloud.data),
         lambda: pointcloud2_to_xyzi(sparse_cloud)),
        (f"xyzi → PointCloud2, {CLOUD_POINTS // 1000}k points", len(cloud.data),
         lambda: xyzi_to_pointcloud2(points, cloud.header)),
        ("Image → numpy, 640×480 rgb8", len(image.data), lambda: image_to_numpy(image)),
        ("numpy → Image, 640×480 rgb8", len(image.data), lambda: numpy_to_image(pixels, "rgb8", image.header)),
    ]
    print(f"Conversions on {cpu_model()}, {os.cpu_count()} cores, numpy {np.__version__}, "
          f"{datetime.date.today().isoformat()}, median of {repeats} calls\n")
    print("| conversion | payload (MB) | median (ms) | MB/s |")
    print("|---|---:|---:|---:|")
    for name, payload_bytes, call in rows:
        seconds = median_seconds(call, repeats)
        print(f"| {name} | {payload_bytes / 1e6:.2f} | {seconds * 1e3:.3f} | {payload_bytes / 1e6 / seconds:,.0f} |")


if __name__ == "__main__":
    main()
