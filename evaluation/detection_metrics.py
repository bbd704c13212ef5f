"""KITTI-style 3D object detection evaluation: rotated-box IoU and 40-recall-point average precision.

Box overlaps come from perception.box_iou (shared with the detector's rotated NMS).

Average precision follows Geiger et al. (KITTI) with the 40-recall-point interpolation of
Simonelli et al. 2019 ("Disentangling Monocular 3D Object Detection"), as the current KITTI
benchmark reports it: per class, detections are matched greedily in score order to the unmatched
ground truth with the highest IoU at or above the class threshold; precision is interpolated
(the best precision at recall >= r) at r = 1/40 ... 40/40 and averaged.

Ignored ground truth (outside the distance band, or with fewer lidar points than `min_points`)
counts neither as a hit nor as a miss, and a detection matched to it is dropped rather than
counted; a detection outside the band that matches nothing is dropped too.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from perception.box_iou import bev_iou_matrix, iou_3d_matrix
from perception.objects import ObjectClass, boxes_to_array

RECALL_POINTS = np.arange(1, 41) / 40.0
"""The 40 recall levels at which precision is interpolated (recall 0 is left out, Simonelli et al.)."""

IOU_FUNCTIONS = {"bev": bev_iou_matrix, "3d": iou_3d_matrix}
"""IoU matrix function for each value of DetectionEvalConfig.metric."""


def _default_class_groups() -> dict[str, frozenset[ObjectClass]]:
    return {
        "car": frozenset({ObjectClass.CAR, ObjectClass.VAN}),
        "truck_bus": frozenset({ObjectClass.TRUCK, ObjectClass.BUS}),
        "pedestrian": frozenset({ObjectClass.PEDESTRIAN}),
        "cyclist": frozenset({ObjectClass.CYCLIST}),
    }


def _default_iou_thresholds() -> dict[str, float]:
    return {"car": 0.7, "truck_bus": 0.7, "pedestrian": 0.5, "cyclist": 0.5}


@dataclass
class DetectionEvalConfig:
    """What to score and how: IoU kind, per-class thresholds, class grouping, range bands."""

    metric: Literal["bev", "3d"] = "3d"
    """Overlap used for matching: "bev" (ground-plane rectangles) or "3d" (upright boxes)."""
    class_groups: dict[str, frozenset[ObjectClass]] = field(default_factory=_default_class_groups)
    """Evaluation class name -> the labels it covers, for detections and ground truth alike (e.g.
    "car" scores CAR and VAN detections against CAR and VAN ground truth)."""
    iou_thresholds: dict[str, float] = field(default_factory=_default_iou_thresholds)
    """Evaluation class name -> least IoU of a true positive (KITTI: 0.7 vehicles, 0.5 others)."""
    distance_bands: tuple[tuple[float, float], ...] = ((0.0, 20.0), (20.0, 40.0), (40.0, math.inf))
    """Range bands [low, high) in metres of the box centre's sqrt(x^2 + y^2) in the sensor frame;
    each is scored on its own, besides the all-range result."""
    min_points: int = 1
    """Ground truth with fewer lidar returns is ignored (never seen, so not a miss); 0 keeps all.
    Ground truth without a num_lidar_points attribute is always kept."""

    def __post_init__(self) -> None:
        if self.metric not in IOU_FUNCTIONS:
            raise ValueError(f"metric: must be one of {sorted(IOU_FUNCTIONS)}, got {self.metric!r}")
        missing = set(self.class_groups) - set(self.iou_thresholds)
        if missing:
            raise ValueError(f"iou_thresholds: no threshold for classes {sorted(missing)}")
        for name, threshold in self.iou_thresholds.items():
            if not 0.0 < threshold <= 1.0:
                raise ValueError(f"iou_thresholds.{name}: must be in (0, 1], got {threshold}")
        for low, high in self.distance_bands:
            if not 0.0 <= low < high:
                raise ValueError(f"distance_bands: need 0 <= low < high, got ({low}, {high})")
        if self.min_points < 0:
            raise ValueError(f"min_points: must be >= 0, got {self.min_points}")


@dataclass
class ClassResult:
    """Scores of one evaluation class in one range band."""

    class_name: str
    """Evaluation class name (a key of DetectionEvalConfig.class_groups)."""
    band: tuple[float, float] | None
    """Range band [low, high) in metres, or None for all ranges."""
    average_precision: float
    """40-recall-point interpolated AP in 0..1; NaN when the band holds no ground truth."""
    precision: np.ndarray
    """Precision after each counted detection in descending score order, shape (D,)."""
    recall: np.ndarray
    """Recall after each counted detection in descending score order, shape (D,)."""
    interpolated_precision: np.ndarray
    """Best precision at recall >= r for r in RECALL_POINTS, shape (40,)."""
    num_ground_truth: int
    """Ground truth counted (not ignored)."""
    true_positives: int
    """Counted detections matched to counted ground truth."""
    false_positives: int
    """Counted detections matched to nothing."""
    mean_center_error: float
    """Mean ground-plane distance between matched centres, metres; NaN without matches."""
    mean_yaw_error: float
    """Mean absolute heading error of matches, wrapped to [0, pi], radians; NaN without matches."""
    mean_yaw_error_folded: float
    """Mean of min(err, pi - err): heading error ignoring front/back flips, radians."""


@dataclass
class DetectionEvalResult:
    """Scores of every evaluation class, all ranges and each band."""

    config: DetectionEvalConfig
    """The configuration that produced these results."""
    results: list[ClassResult]
    """One entry per class and band (band None first for each class)."""

    def get(self, class_name: str, band: tuple[float, float] | None = None) -> ClassResult:
        """The result of one class in one band (None: all ranges)."""
        for result in self.results:
            if result.class_name == class_name and result.band == band:
                return result
        raise KeyError(f"no result for class {class_name!r} in band {band}")

    def mean_average_precision(self, band: tuple[float, float] | None = None) -> float:
        """Mean AP over the classes that have ground truth in the band; NaN when none has."""
        values = [result.average_precision for result in self.results
                  if result.band == band and result.num_ground_truth > 0]
        return float(np.mean(values)) if values else math.nan

    def to_markdown(self) -> str:
        """A Markdown table with one row per class and band."""
        lines = [f"Metric: {self.config.metric} IoU, 40 recall points",
                 "",
                 "| Class | Range (m) | AP | GT | TP | FP | Centre err (m) | Yaw err (rad) | Yaw err folded (rad) |",
                 "|---|---|---|---|---|---|---|---|---|"]
        for result in self.results:
            lines.append(f"| {result.class_name} | {band_label(result.band)} | {result.average_precision:.4f} "
                         f"| {result.num_ground_truth} | {result.true_positives} | {result.false_positives} "
                         f"| {result.mean_center_error:.3f} | {result.mean_yaw_error:.3f} "
                         f"| {result.mean_yaw_error_folded:.3f} |")
        return "\n".join(lines)


def band_label(band: tuple[float, float] | None) -> str:
    if band is None:
        return "all"
    low, high = band
    return f"{low:g}+" if math.isinf(high) else f"{low:g}-{high:g}"


def average_precision(scores: np.ndarray, is_true_positive: np.ndarray,
                      num_ground_truth: int) -> tuple[float, np.ndarray, np.ndarray, np.ndarray]:
    """40-point interpolated AP of counted detections pooled over frames.

    Returns (AP, precision, recall, interpolated precision at RECALL_POINTS); AP is NaN when there
    is no ground truth.
    """
    order = np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable")
    hits = np.asarray(is_true_positive, dtype=bool)[order]
    cumulative_tp = np.cumsum(hits)
    precision = cumulative_tp / np.arange(1, len(hits) + 1)
    recall = cumulative_tp / num_ground_truth if num_ground_truth > 0 else np.zeros(len(hits))
    # Best precision from each point onwards, then the first point reaching each recall level.
    best_precision_after = np.maximum.accumulate(precision[::-1])[::-1]
    first_reaching = np.searchsorted(recall, RECALL_POINTS, side="left")
    reachable = first_reaching < len(recall)
    interpolated = np.zeros(len(RECALL_POINTS))
    interpolated[reachable] = best_precision_after[first_reaching[reachable]]
    ap = float(interpolated.mean()) if num_ground_truth > 0 else math.nan
    return ap, precision, recall, interpolated


def _wrapped_angle_error(yaw_a: np.ndarray, yaw_b: np.ndarray) -> np.ndarray:
    """|yaw_a - yaw_b| wrapped to [0, pi]."""
    difference = yaw_a - yaw_b
    return np.abs(np.arctan2(np.sin(difference), np.cos(difference)))


def greedy_match(iou: np.ndarray, threshold: float, gt_ignored: np.ndarray,
                  detection_in_band: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Match detections (rows of iou, already in descending score order) to ground truth (columns).

    Each detection takes the unmatched ground truth with the highest IoU >= threshold, counted
    ground truth before ignored. Returns (counted, matched): counted says whether the detection
    enters the PR curve; matched is the index of the counted ground truth it hit, or -1.
    """
    num_detections = iou.shape[0]
    counted = np.zeros(num_detections, dtype=bool)
    matched = np.full(num_detections, -1)
    available = np.ones(iou.shape[1], dtype=bool)
    for detection in range(num_detections):
        overlapping = available & (iou[detection] >= threshold)
        # Prefer counted ground truth so an ignored one never steals a true positive.
        for candidates in (overlapping & ~gt_ignored, overlapping & gt_ignored):
            if candidates.any():
                best = int(np.argmax(np.where(candidates, iou[detection], -1.0)))
                available[best] = False
                if not gt_ignored[best]:
                    counted[detection], matched[detection] = True, best
                break
        else:
            counted[detection] = detection_in_band[detection]
    return counted, matched


def _in_band(boxes: np.ndarray, band: tuple[float, float] | None) -> np.ndarray:
    if band is None:
        return np.ones(len(boxes), dtype=bool)
    distance = np.hypot(boxes[:, 0], boxes[:, 1])
    return (distance >= band[0]) & (distance < band[1])


@dataclass
class _BandTally:
    """Counted detections and matches of one class in one band, pooled over frames."""

    scores: list[np.ndarray] = field(default_factory=list)
    hits: list[np.ndarray] = field(default_factory=list)
    center_errors: list[np.ndarray] = field(default_factory=list)
    yaw_errors: list[np.ndarray] = field(default_factory=list)
    num_ground_truth: int = 0

    def to_result(self, class_name: str, band: tuple[float, float] | None) -> ClassResult:
        scores, hits = np.concatenate([np.zeros(0), *self.scores]), np.concatenate([np.zeros(0, bool), *self.hits])
        ap, precision, recall, interpolated = average_precision(scores, hits, self.num_ground_truth)
        center_errors = np.concatenate([np.zeros(0), *self.center_errors])
        yaw_errors = np.concatenate([np.zeros(0), *self.yaw_errors])
        matched = len(center_errors) > 0
        return ClassResult(
            class_name=class_name, band=band, average_precision=ap, precision=precision, recall=recall,
            interpolated_precision=interpolated, num_ground_truth=self.num_ground_truth,
            true_positives=int(hits.sum()), false_positives=int((~hits).sum()),
            mean_center_error=float(center_errors.mean()) if matched else math.nan,
            mean_yaw_error=float(yaw_errors.mean()) if matched else math.nan,
            mean_yaw_error_folded=float(np.minimum(yaw_errors, math.pi - yaw_errors).mean()) if matched else math.nan)


def evaluate_detections(frames: Sequence[tuple[Sequence[Any], Sequence[Any]]],
                        config: DetectionEvalConfig | None = None) -> DetectionEvalResult:
    """Score detections against ground truth over many frames.

    Each frame is (detections, ground truth): detections carry label, score and box (DetectedObject);
    ground truth carries label and box, and optionally num_lidar_points (GroundTruthObject). Both in
    the sensor frame, whose origin the distance bands are measured from.
    """
    config = config or DetectionEvalConfig()
    iou_function = IOU_FUNCTIONS[config.metric]
    bands: list[tuple[float, float] | None] = [None, *config.distance_bands]
    results: list[ClassResult] = []
    for class_name, labels in config.class_groups.items():
        tallies = {band: _BandTally() for band in bands}
        for detections, ground_truth in frames:
            detections = [detection for detection in detections if detection.label in labels]
            ground_truth = [truth for truth in ground_truth if truth.label in labels]
            scores = np.array([detection.score for detection in detections], dtype=np.float64)
            order = np.argsort(-scores, kind="stable")
            detection_boxes = boxes_to_array([detections[index].box for index in order])
            truth_boxes = boxes_to_array([truth.box for truth in ground_truth])
            too_few_points = np.array([getattr(truth, "num_lidar_points", config.min_points) < config.min_points
                                       for truth in ground_truth], dtype=bool)
            iou = iou_function(detection_boxes, truth_boxes)
            for band, tally in tallies.items():
                gt_ignored = too_few_points | ~_in_band(truth_boxes, band)
                counted, matched = greedy_match(iou, config.iou_thresholds[class_name], gt_ignored,
                                                 _in_band(detection_boxes, band))
                hit = matched[counted] >= 0
                pairs = np.flatnonzero(matched >= 0)
                tally.scores.append(scores[order][counted])
                tally.hits.append(hit)
                tally.center_errors.append(np.linalg.norm(
                    detection_boxes[pairs, :2] - truth_boxes[matched[pairs], :2], axis=1))
                tally.yaw_errors.append(_wrapped_angle_error(detection_boxes[pairs, 6], truth_boxes[matched[pairs], 6]))
                tally.num_ground_truth += int((~gt_ignored).sum())
        results.extend(tally.to_result(class_name, band) for band, tally in tallies.items())
    return DetectionEvalResult(config=config, results=results)
