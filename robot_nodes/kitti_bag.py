"""kitti-to-bag: the real KITTI scans of data/kitti as a rosbag2 bag laid out like a simulated run.

The detector and the evaluation that run on the simulated world's bags then run on real data.

Each scan becomes one frame of bag time, `1 / rate` seconds apart (frame k at (k + 1) / rate,
as the simulated lidar's first scan comes one period after the start):

- /sensing/lidar/points: sensor_msgs/PointCloud2, float32 x, y, z, intensity (KITTI's reflectance
  0..1), frame `lidar`, the .bin points unchanged and in file order;
- /simulation/ground_truth/objects (labelled frames only): edge_robot_msgs/GroundTruthObjects in
  `map`, one object per label with a 3D box (DontCare marks only an image region and is left out),
  label as evaluation.kitti.KITTI_LABELS maps it (Tram and Misc, not evaluated: UNKNOWN), zero
  velocity (one scan shows no motion), is_static false (unknown), num_lidar_points counted in the
  scan, object id = frame number * 1000 + the label's index in its file; an unlabelled scan has
  no message at all, so the run scoring counts it as without ground truth, not as empty;
- /odom and /tf: base_link at the origin of odom, and map → odom the identity, at every frame;
- /tf_static (once, at time 0): base_link → lidar, 1.73 m straight up, the KITTI velodyne's height
  above the road, as the simulated lidar is mounted;
- /clock: the bag time at time 0 and at every frame.

The scans are not a drive: they are independent snapshots, each seen from the same pose, so
map = odom = base_link, and no object id repeats between frames (nothing is tracked across them).
With the mount, a label's box in `map` is its velodyne-frame box (evaluation.kitti) raised by
1.73 m, so it stands on the road at z = 0 as simulated ground truth does, and moving it back into
the lidar frame through /odom and /tf_static, as the run scoring does, gives exactly the boxes
evaluate-detector scores the detector against.
"""
from __future__ import annotations

import argparse
import math
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from builtin_interfaces.msg import Time
from rosgraph_msgs.msg import Clock
from std_msgs.msg import Header
from tf2_msgs.msg import TFMessage

from evaluation.kitti import (LABELLED_FRAMES, KittiObject, load_labelled_frame, read_velodyne,
                              unlabelled_scan_paths)
from perception.objects import Box3D, GroundTruthObject, ObjectClass
from robot_nodes import topics
from robot_nodes.bags import NANOSECONDS_PER_SECOND, BagError, BagWriter
from robot_nodes.conversions import ground_truth_objects_to_msg, make_odometry, make_transform, xyzi_to_pointcloud2
from robot_nodes.sim_messages import FrameIds

KITTI_VELODYNE_HEIGHT = 1.73
"""Metres from the road to the KITTI car's velodyne (Geiger et al. 2013, the sensor setup)."""

DEFAULT_RATE_HZ = 10.0
"""Frames per second of bag time: the HDL-64E's (and the simulated lidar's) 10 Hz."""

OBJECT_IDS_PER_FRAME = 1000
"""Object id = KITTI frame number * this + the label's index in its file (KITTI frames hold far fewer)."""

BAG_TOPICS = (topics.TF_STATIC, topics.CLOCK, topics.LIDAR_POINTS, topics.GROUND_TRUTH_OBJECTS, topics.ODOMETRY,
              topics.TF)
"""What a converted bag holds, each with its topic-contract type."""

FRAMES = FrameIds()
"""The simulated robot's frame names, so a converted bag reads like a recorded run."""


@dataclass
class KittiScan:
    """One scan to convert and its labels."""

    frame_id: str
    """KITTI frame number, six digits."""
    points: np.ndarray
    """(N, 4) float32 x, y, z, reflectance in the velodyne frame."""
    objects: list[KittiObject] | None
    """The frame's labels (boxes in the velodyne frame, point counts set); None for an unlabelled scan."""


def load_scans(root: Path, frame_ids: list[str], unlabelled: bool) -> list[KittiScan]:
    """The labelled frames `frame_ids`, then with `unlabelled` the camera-view scans without labels.

    Raises FileNotFoundError or KittiFormatError naming the missing or unreadable file.
    """
    scans = []
    for frame_id in frame_ids:
        frame = load_labelled_frame(root, frame_id)
        scans.append(KittiScan(frame_id, frame.points, frame.objects))
    if unlabelled:
        scans += [KittiScan(path.stem, read_velodyne(path), None) for path in unlabelled_scan_paths(root)]
    return scans


def ground_truth_in_map(frame_id: str, objects: list[KittiObject]) -> list[GroundTruthObject]:
    """The labels that have a 3D box as ground truth in `map` (the velodyne frame raised by the mount)."""
    raise_to_map = np.array([0.0, 0.0, KITTI_VELODYNE_HEIGHT])
    return [GroundTruthObject(object_id=int(frame_id) * OBJECT_IDS_PER_FRAME + index,
                              label=ObjectClass.UNKNOWN if obj.label is None else obj.label,
                              box=Box3D(obj.box.center + raise_to_map, obj.box.size, obj.box.yaw),
                              velocity=np.zeros(2), num_lidar_points=obj.num_lidar_points, is_static=False)
            for index, obj in enumerate(objects) if obj.box is not None]


def frame_stamp_ns(index: int, rate: float) -> int:
    """Bag time of the index-th frame: one period per frame, the first one period after the start."""
    return round((index + 1) * NANOSECONDS_PER_SECOND / rate)


def _stamp(stamp_ns: int) -> Time:
    sec, nanosec = divmod(stamp_ns, NANOSECONDS_PER_SECOND)
    return Time(sec=sec, nanosec=nanosec)


def _header(stamp_ns: int, frame_id: str) -> Header:
    return Header(stamp=_stamp(stamp_ns), frame_id=frame_id)


def write_kitti_bag(output: Path, scans: list[KittiScan], rate: float = DEFAULT_RATE_HZ) -> dict[str, int]:
    """Write the scans as a new mcap bag at `output` (which must not exist); messages per topic."""
    if not (rate > 0.0 and math.isfinite(rate)):
        raise ValueError(f"rate must be a positive number of frames per second, got {rate}")
    counts = dict.fromkeys(BAG_TOPICS, 0)
    with BagWriter(output) as writer:
        for topic in BAG_TOPICS:
            writer.add_topic(topic, topics.CONTRACT[topic])

        def write(topic: str, stamp_ns: int, message) -> None:
            writer.write_message(topic, stamp_ns, message)
            counts[topic] += 1

        mount = make_transform(_stamp(0), FRAMES.base_link, FRAMES.lidar,
                               (0.0, 0.0, KITTI_VELODYNE_HEIGHT), yaw=0.0)
        write(topics.TF_STATIC, 0, TFMessage(transforms=[mount]))
        write(topics.CLOCK, 0, Clock(clock=_stamp(0)))
        for index, scan in enumerate(scans):
            stamp_ns = frame_stamp_ns(index, rate)
            stamp = _stamp(stamp_ns)
            write(topics.CLOCK, stamp_ns, Clock(clock=stamp))
            write(topics.ODOMETRY, stamp_ns, make_odometry(stamp, FRAMES.odom, FRAMES.base_link, 0.0, 0.0, 0.0,
                                                           0.0, 0.0))
            write(topics.TF, stamp_ns, TFMessage(transforms=[
                make_transform(stamp, FRAMES.map, FRAMES.odom, (0.0, 0.0, 0.0), yaw=0.0),
                make_transform(stamp, FRAMES.odom, FRAMES.base_link, (0.0, 0.0, 0.0), yaw=0.0)]))
            write(topics.LIDAR_POINTS, stamp_ns, xyzi_to_pointcloud2(scan.points, _header(stamp_ns, FRAMES.lidar)))
            if scan.objects is not None:
                write(topics.GROUND_TRUTH_OBJECTS, stamp_ns, ground_truth_objects_to_msg(
                    ground_truth_in_map(scan.frame_id, scan.objects), _header(stamp_ns, FRAMES.map)))
    return counts


def _frame_ids(text: str) -> list[str]:
    frame_ids = [frame_id.strip() for frame_id in text.split(",") if frame_id.strip()]
    if len(set(frame_ids)) != len(frame_ids):
        # A repeated frame would repeat its object ids, which would read as one object seen twice.
        raise argparse.ArgumentTypeError(f"{text!r} names a frame twice")
    unknown = [frame_id for frame_id in frame_ids if frame_id not in LABELLED_FRAMES]
    if unknown:
        raise argparse.ArgumentTypeError(f"{', '.join(unknown)}: not a labelled frame of data/kitti "
                                         f"(labelled: {', '.join(LABELLED_FRAMES)})")
    return frame_ids


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="kitti-to-bag", description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, required=True, help="bag folder to create (must not exist)")
    parser.add_argument("--frames", type=_frame_ids, default=list(LABELLED_FRAMES), metavar="IDS",
                        help=f"comma-separated labelled frames, in bag order (default {','.join(LABELLED_FRAMES)}; "
                             "'' for none)")
    parser.add_argument("--unlabelled", action="store_true",
                        help="append the camera-view scans of kitti_velodyne_reduced_unlabeled (no ground truth)")
    parser.add_argument("--rate", type=float, default=DEFAULT_RATE_HZ,
                        help=f"frames per second of bag time (default {DEFAULT_RATE_HZ:g})")
    parser.add_argument("--kitti", type=Path, default=Path("data/kitti"), help="KITTI folder (default data/kitti)")
    options = parser.parse_args(argv)
    if not options.frames and not options.unlabelled:
        parser.error("no frames to convert: give labelled --frames or --unlabelled")
    try:
        scans = load_scans(options.kitti, options.frames, options.unlabelled)
        counts = write_kitti_bag(options.output, scans, options.rate)
    except (OSError, ValueError, BagError) as error:  # KittiFormatError is a ValueError
        print(f"kitti-to-bag: {error}", file=sys.stderr)
        return 2
    labelled = sum(scan.objects is not None for scan in scans)
    print(f"wrote {options.output}: {len(scans)} scans ({labelled} with ground truth), "
          f"{len(scans) / options.rate:.1f} s of bag time, {sum(counts.values())} messages")
    return 0


if __name__ == "__main__":
    sys.exit(main())
