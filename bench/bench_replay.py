"""Benchmark: write a lidar + camera rosbag2 bag, then replay it at maximum rate through bag_player.

The bag holds `--duration` seconds of a 10 Hz 120k-point xyzi PointCloud2 (~1.9 MB each, synthetic
points) and a 10 Hz 640x480 rgb8 Image (~0.9 MB each). Replay runs bag_player in this process at
`--rate` to a raw subscriber spinning on its own thread; throughput is measured at the subscriber,
from the first message received to the last. Prints a Markdown table with the machine and date.

    python bench/bench_replay.py [--duration 20] [--storage mcap] [--rate 1000]
"""
from __future__ import annotations

import argparse
import array
import os
import platform
import secrets
import sys
import tempfile
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image, PointCloud2, PointField

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run by hand from a checkout
from robot_nodes.bag_player import BagPlayerNode  # noqa: E402
from robot_nodes.bags import BagReader, BagWriter, message_class  # noqa: E402

LIDAR_TOPIC = "/sensing/lidar/points"
CAMERA_TOPIC = "/sensing/camera/image_raw"
FRAME_RATE_HZ = 10
LIDAR_POINTS = 120_000
IMAGE_WIDTH, IMAGE_HEIGHT = 640, 480
BYTES_PER_MEGABYTE = 1e6


def synthetic_cloud(rng: np.random.Generator, stamp_ns: int) -> PointCloud2:
    """Points on a ring of walls around the sensor, with some noise; x, y, z, intensity float32."""
    angles = rng.uniform(-np.pi, np.pi, LIDAR_POINTS)
    ranges = rng.uniform(2.0, 60.0, LIDAR_POINTS)
    points = np.column_stack([ranges * np.cos(angles), ranges * np.sin(angles),
                              rng.uniform(-2.0, 3.0, LIDAR_POINTS), rng.uniform(0.0, 255.0, LIDAR_POINTS)])
    cloud = PointCloud2(height=1, width=LIDAR_POINTS, point_step=16, row_step=16 * LIDAR_POINTS, is_dense=True,
                        fields=[PointField(name=name, offset=4 * index, datatype=PointField.FLOAT32, count=1)
                                for index, name in enumerate("xyzi")])
    # array.array is what rclpy stores uint8[] as; assigning one avoids a slow per-byte conversion.
    cloud.data = array.array("B", points.astype(np.float32).tobytes())
    cloud.header.frame_id = "lidar"
    cloud.header.stamp.sec, cloud.header.stamp.nanosec = divmod(stamp_ns, 1_000_000_000)
    return cloud


def synthetic_image(frame: int, stamp_ns: int) -> Image:
    """A moving colour gradient."""
    columns = (np.arange(IMAGE_WIDTH, dtype=np.uint16) + 4 * frame) % 256
    rows = np.arange(IMAGE_HEIGHT, dtype=np.uint16)[:, None] % 256
    pixels = np.stack(np.broadcast_arrays(columns[None, :], rows, (columns[None, :] + rows) // 2), axis=-1)
    image = Image(height=IMAGE_HEIGHT, width=IMAGE_WIDTH, encoding="rgb8", step=3 * IMAGE_WIDTH,
                  data=array.array("B", pixels.astype(np.uint8).tobytes()))
    image.header.frame_id = "camera"
    image.header.stamp.sec, image.header.stamp.nanosec = divmod(stamp_ns, 1_000_000_000)
    return image


def write_bag(bag: Path, duration_s: float, storage: str) -> tuple[float, float]:
    """Write the bag; returns (seconds spent making messages, seconds spent in BagWriter)."""
    rng = np.random.default_rng(7)
    start_ns = 1_700_000_000_000_000_000
    making = writing = 0.0
    with BagWriter(bag, storage) as writer:
        writer.add_topic(LIDAR_TOPIC, "sensor_msgs/msg/PointCloud2")
        writer.add_topic(CAMERA_TOPIC, "sensor_msgs/msg/Image")
        for frame in range(round(duration_s * FRAME_RATE_HZ)):
            stamp_ns = start_ns + frame * 1_000_000_000 // FRAME_RATE_HZ
            started = time.perf_counter()
            cloud, image = synthetic_cloud(rng, stamp_ns), synthetic_image(frame, stamp_ns + 5_000_000)
            made = time.perf_counter()
            writer.write_message(LIDAR_TOPIC, stamp_ns, cloud)
            writer.write_message(CAMERA_TOPIC, stamp_ns + 5_000_000, image)
            making += made - started
            writing += time.perf_counter() - made
        started = time.perf_counter()
    return making, writing + time.perf_counter() - started


class Counter(Node):
    """Raw subscriber that counts messages and bytes and notes the first and last arrival."""

    def __init__(self, context, topics: dict[str, str]) -> None:
        super().__init__("bench_counter", context=context)
        self.messages = 0
        self.bytes = 0
        self.first = self.last = 0.0
        # Best effort matches every publisher; a deep queue keeps the executor from dropping.
        qos = QoSProfile(depth=500, reliability=ReliabilityPolicy.BEST_EFFORT)
        for topic, msgtype in topics.items():
            self.create_subscription(message_class(msgtype), topic, self._count, qos, raw=True)

    def _count(self, data: bytes) -> None:
        now = time.perf_counter()
        if not self.messages:
            self.first = now
        self.last = now
        self.messages += 1
        self.bytes += len(data)


def replay(bag: Path, rate: float) -> dict:
    with BagReader(bag) as reader:
        topics = {name: info.msgtype for name, info in reader.topics().items()}
        expected, duration = reader.message_count, reader.duration
        bag_bytes = sum(len(raw) for *_, raw in reader.messages())
    context = rclpy.Context()
    rclpy.init(context=context, domain_id=1 + secrets.randbelow(100))
    counter = Counter(context, topics)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(counter)
    spinner = threading.Thread(target=executor.spin, daemon=True)
    spinner.start()
    player = BagPlayerNode(context=context, parameter_overrides=[
        Parameter("bag", value=str(bag)), Parameter("rate", value=rate),
        Parameter("wait_for_subscribers_s", value=10.0)])
    try:
        player.finished.wait()
        deadline = time.monotonic() + 5.0  # the last messages may still be in flight
        while counter.messages < expected and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        player.destroy_node()
        executor.shutdown()
        spinner.join()
        counter.destroy_node()
        context.try_shutdown()
    wall = counter.last - counter.first
    return {"expected": expected, "received": counter.messages, "wall": wall, "bag_seconds": duration,
            "bag_megabytes": bag_bytes / BYTES_PER_MEGABYTE, "megabytes": counter.bytes / BYTES_PER_MEGABYTE}


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=20.0, help="bag length, seconds (default 20)")
    parser.add_argument("--storage", choices=["mcap", "sqlite3"], default="mcap")
    parser.add_argument("--rate", type=float, default=1000.0, help="replay rate factor (default 1000: flat out)")
    parser.add_argument("--directory", type=Path, help="where to write the bag (default: a temporary folder)")
    options = parser.parse_args()

    with tempfile.TemporaryDirectory(dir=options.directory) as folder:
        bag = Path(folder) / "bench_bag"
        making, writing = write_bag(bag, options.duration, options.storage)
        result = replay(bag, options.rate)

    wall = result["wall"]
    print(f"## bag_player replay benchmark ({datetime.now(timezone.utc):%Y-%m-%d %H:%M UTC})\n")
    print(f"- machine: {cpu_model()}, {os.cpu_count()} cores; Python {platform.python_version()}, "
          f"rmw {os.environ.get('RMW_IMPLEMENTATION', 'default (Fast DDS)')}")
    print(f"- bag: {options.storage}, {result['bag_seconds']:.1f} s, {result['expected']} messages, "
          f"{result['bag_megabytes']:.0f} MB ({FRAME_RATE_HZ} Hz {LIDAR_POINTS // 1000}k-point xyzi PointCloud2 + "
          f"{FRAME_RATE_HZ} Hz {IMAGE_WIDTH}x{IMAGE_HEIGHT} rgb8 Image)\n")
    print("| measure | value |\n| --- | ---: |")
    print(f"| making messages (numpy + rclpy) | {making:.2f} s |")
    print(f"| writing the bag (serialise + BagWriter) | {writing:.2f} s "
          f"({result['bag_megabytes'] / writing:.0f} MB/s) |")
    print(f"| replay rate setting | {options.rate:g}x |")
    print(f"| messages received / in bag | {result['received']} / {result['expected']} |")
    print(f"| replay wall time (first to last received) | {wall:.2f} s |")
    print(f"| messages/s | {result['received'] / wall:.0f} |")
    print(f"| MB/s | {result['megabytes'] / wall:.0f} |")
    print(f"| x real time | {result['bag_seconds'] / wall:.1f} |")
    return 0 if result["received"] == result["expected"] else 1


if __name__ == "__main__":
    sys.exit(main())
