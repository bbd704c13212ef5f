"""Detection AP of one run: a detector's output scored against the simulated ground truth of the
same scans.

The inputs are plain library types, as read from a run's bag: detections in the lidar frame,
ground truth in `map` with the stamps of the scans, the base_link pose in `map` over time (the
simulated odometry has no drift and map → odom is the identity, so odometry poses are map poses)
and the lidar's mount on base_link (/tf_static). For each detections message the ground truth
with the same stamp is moved into the lidar frame, kept when its centre lies in the detector's
point range, and every such frame is scored with evaluation.detection_metrics, once on BEV and
once on 3D overlaps.
"""
from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from evaluation.detection_metrics import DetectionEvalConfig, DetectionEvalResult, evaluate_detections
from perception.objects import Box3D, DetectedObject, GroundTruthObject, boxes_into_frame, boxes_to_array
from sim.transforms import planar_pose_matrix

DEFAULT_MIN_POINTS = 5
"""Ground truth with fewer lidar returns is not counted (the detector could not see it)."""

MAX_POSE_GAP_NS = 100_000_000
"""Most nanoseconds between a scan's stamp and the odometry samples its pose is interpolated from."""


@dataclass
class DetectionRunResult:
    """AP of one run on BEV and on 3D overlaps, and which frames could be scored."""

    bev: DetectionEvalResult
    """Scores with ground-plane (BEV) IoU."""
    three_d: DetectionEvalResult
    """Scores with 3D IoU."""
    frames_scored: int
    """Detections messages scored against ground truth."""
    frames_without_truth: int = 0
    """Detections messages with no ground-truth message of the same stamp (not scored)."""
    frames_without_pose: int = 0
    """Detections messages without odometry near their stamp (not scored)."""
    classes: tuple[str, ...] = field(default=())
    """Evaluation classes, in table order."""

    def to_markdown(self) -> str:
        """A compact table: per class the counted ground truth, detections, and AP (all ranges)."""
        lines = ["| class | GT | detections | AP BEV | AP 3D |", "| --- | ---: | ---: | ---: | ---: |"]
        for name in self.classes:
            bev, three_d = self.bev.get(name), self.three_d.get(name)
            lines.append(f"| {name} | {bev.num_ground_truth} | {bev.true_positives + bev.false_positives} | "
                         f"{_percent(bev.average_precision)} | {_percent(three_d.average_precision)} |")
        lines.append(f"| **mean** | | | {_percent(self.bev.mean_average_precision())} | "
                     f"{_percent(self.three_d.mean_average_precision())} |")
        return "\n".join(lines)


def _percent(value: float) -> str:
    return "–" if math.isnan(value) else f"{100.0 * value:.1f}"


def truth_in_frame(truth: Sequence[GroundTruthObject], frame_pose: np.ndarray) -> list[GroundTruthObject]:
    """Ground truth given in a parent frame, expressed in an upright child frame whose 4x4 pose in
    the parent is `frame_pose` (boxes and velocities)."""
    if not truth:
        return []
    boxes = boxes_into_frame(boxes_to_array([o.box for o in truth]), frame_pose)
    rotation = frame_pose[:2, :2]
    return [dataclasses.replace(o, box=Box3D(box[:3], box[3:6], box[6]), velocity=np.asarray(o.velocity) @ rotation)
            for o, box in zip(truth, boxes)]


def inside_point_range(objects: Sequence, point_range: Sequence[float]) -> list:
    """The objects whose box centre lies in [min, max) of a detection volume
    (x_min, y_min, z_min, x_max, y_max, z_max)."""
    low, high = np.asarray(point_range[:3], dtype=np.float64), np.asarray(point_range[3:], dtype=np.float64)
    return [o for o in objects if bool(np.all((o.box.center >= low) & (o.box.center < high)))]


def pose_at(poses: Sequence[tuple[int, float, float, float]], stamp_ns: int,
            max_gap_ns: int = MAX_POSE_GAP_NS) -> tuple[float, float, float] | None:
    """(x, y, yaw) at `stamp_ns` from time-ordered (stamp_ns, x, y, yaw) samples: the sample of that
    stamp, else interpolated between its neighbours when both are within max_gap_ns; None otherwise."""
    stamps = np.array([pose[0] for pose in poses], dtype=np.int64)
    after = int(np.searchsorted(stamps, stamp_ns, side="left"))
    if after < len(stamps) and stamps[after] == stamp_ns:
        return tuple(float(value) for value in poses[after][1:])
    if after == 0 or after == len(stamps):
        return None
    (t0, x0, y0, yaw0), (t1, x1, y1, yaw1) = poses[after - 1], poses[after]
    if stamp_ns - t0 > max_gap_ns or t1 - stamp_ns > max_gap_ns:
        return None
    share = (stamp_ns - t0) / (t1 - t0)
    turn = math.atan2(math.sin(yaw1 - yaw0), math.cos(yaw1 - yaw0))
    return x0 + share * (x1 - x0), y0 + share * (y1 - y0), yaw0 + share * turn


def score_detection_run(detections: Sequence[tuple[int, Sequence[DetectedObject]]],
                        ground_truth: Sequence[tuple[int, Sequence[GroundTruthObject]]],
                        base_poses: Sequence[tuple[int, float, float, float]], lidar_mount: np.ndarray,
                        point_range: Sequence[float], min_points: int = DEFAULT_MIN_POINTS,
                        max_pose_gap_ns: int = MAX_POSE_GAP_NS) -> DetectionRunResult:
    """AP (BEV and 3D) of a run's detections against its ground truth.

    detections: (stamp_ns, objects in the lidar frame) per detections message.
    ground_truth: (stamp_ns, objects in map) per ground-truth message.
    base_poses: (stamp_ns, x, y, yaw) of base_link in map, any order.
    lidar_mount: 4x4 pose of the lidar in base_link (upright: yaw only).
    point_range: the detector's volume in the lidar frame; ground truth outside it is left out.
    min_points: ground truth with fewer lidar returns is ignored (neither hit nor miss).
    """
    truth_by_stamp = {stamp: objects for stamp, objects in ground_truth}
    poses = sorted(base_poses)
    frames, without_truth, without_pose = [], 0, 0
    for stamp, objects in detections:
        if stamp not in truth_by_stamp:
            without_truth += 1
            continue
        pose = pose_at(poses, stamp, max_pose_gap_ns)
        if pose is None:
            without_pose += 1
            continue
        lidar_in_map = planar_pose_matrix(*pose) @ lidar_mount
        frames.append((list(objects), inside_point_range(truth_in_frame(truth_by_stamp[stamp], lidar_in_map),
                                                         point_range)))
    bev_config = DetectionEvalConfig(metric="bev", min_points=min_points)
    three_d_config = DetectionEvalConfig(metric="3d", min_points=min_points)
    return DetectionRunResult(bev=evaluate_detections(frames, bev_config),
                              three_d=evaluate_detections(frames, three_d_config),
                              frames_scored=len(frames), frames_without_truth=without_truth,
                              frames_without_pose=without_pose, classes=tuple(bev_config.class_groups))
