"""Training augmentation for the lidar detector: ground-truth sampling (SECOND) and global
flip, rotation and scaling of the whole scan."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from perception.box_iou import bev_iou_matrix
from perception.objects import points_in_box_mask
from training.detection_data import SceneSample


@dataclass
class AugmentationConfig:
    """How strongly training scans are varied."""

    sample_counts: dict[int, int] = field(default_factory=lambda: {1: 8, 2: 3, 3: 3, 4: 2, 5: 8})
    """ObjectClass value -> objects pasted from the database into each scan (at most)."""
    min_points: int = 5
    """Database objects need at least this many lidar returns."""
    rotation: float = np.pi / 4
    """Global rotation about z drawn from [-rotation, rotation], radians."""
    scale: tuple[float, float] = (0.95, 1.05)
    """Global scale range."""
    flip_probability: float = 0.5
    """Probability of mirroring the scan across the x axis (y -> -y)."""
    vehicle_scale: dict[str, tuple[float, float]] = field(default_factory=lambda: {
        "length": (0.65, 1.05), "width": (0.82, 1.03), "height": (0.9, 1.1)})
    """Each car and van (with its points) is rescaled in its own frame by factors drawn from these
    ranges: the simulated cars (4.2-4.9 m x 1.75-1.9 m) are larger than many real ones (KITTI
    000008's parked cars are 2.5-4.1 m x 1.4-1.6 m)."""


class GroundTruthDatabase:
    """Objects cut out of training scans (their points and boxes), by class, for pasting elsewhere."""

    def __init__(self, samples: list[SceneSample], min_points: int) -> None:
        self.points: dict[int, list[np.ndarray]] = {}
        self.boxes: dict[int, list[np.ndarray]] = {}
        for sample in samples:
            for box, label, count in zip(sample.boxes, sample.labels, sample.num_points):
                if count < min_points:
                    continue
                inside = points_in_box_mask(sample.points, box)
                if inside.sum() >= min_points:
                    self.points.setdefault(int(label), []).append(sample.points[inside])
                    self.boxes.setdefault(int(label), []).append(box)

    def size(self, label: int) -> int:
        return len(self.boxes.get(label, []))

    def paste(self, sample: SceneSample, counts: dict[int, int], rng: np.random.Generator) -> SceneSample:
        """The scan with up to counts[label] database objects added where they collide with no box;
        scene points inside a pasted box are removed."""
        chosen_boxes, chosen_points, chosen_labels = [], [], []
        for label, count in counts.items():
            available = self.size(label)
            for index in rng.choice(available, min(count, available), replace=False) if available else []:
                chosen_boxes.append(self.boxes[label][index])
                chosen_points.append(self.points[label][index])
                chosen_labels.append(label)
        if not chosen_boxes:
            return sample
        candidates = np.array(chosen_boxes)
        occupied = np.concatenate([sample.boxes, candidates])
        overlap = bev_iou_matrix(candidates, occupied) > 0.0
        overlap[np.arange(len(candidates)), len(sample.boxes) + np.arange(len(candidates))] = False
        accepted = []
        for index in range(len(candidates)):
            clashes = overlap[index, :len(sample.boxes)].any() or any(overlap[index, len(sample.boxes) + j]
                                                                       for j in accepted)
            if not clashes:
                accepted.append(index)
        if not accepted:
            return sample
        keep = np.ones(len(sample.points), dtype=bool)
        for index in accepted:
            keep &= ~points_in_box_mask(sample.points, candidates[index])
        return SceneSample(
            points=np.concatenate([sample.points[keep], *[chosen_points[i] for i in accepted]]),
            boxes=np.concatenate([sample.boxes, candidates[accepted]]),
            labels=np.concatenate([sample.labels, np.array([chosen_labels[i] for i in accepted])]),
            num_points=np.concatenate([sample.num_points, np.array([len(chosen_points[i]) for i in accepted])]))


RESCALED_VEHICLES = (1, 2)
"""ObjectClass values of the vehicles that vehicle_scale applies to (CAR, VAN)."""


def rescale_vehicles(sample: SceneSample, config: AugmentationConfig, rng: np.random.Generator) -> SceneSample:
    """Cars and vans, and the points inside their boxes, stretched in the box frame about the
    box's bottom centre (so they stay on the road) by random per-axis factors."""
    points, boxes = sample.points.copy(), sample.boxes.copy()
    low = np.array([config.vehicle_scale[axis][0] for axis in ("length", "width", "height")])
    high = np.array([config.vehicle_scale[axis][1] for axis in ("length", "width", "height")])
    for index in np.flatnonzero(np.isin(sample.labels, RESCALED_VEHICLES)):
        box = boxes[index]
        inside = points_in_box_mask(points, box)
        factors = rng.uniform(low, high)
        cos, sin = np.cos(box[6]), np.sin(box[6])
        dx, dy = points[inside, 0] - box[0], points[inside, 1] - box[1]
        along, across = (dx * cos + dy * sin) * factors[0], (-dx * sin + dy * cos) * factors[1]
        bottom = box[2] - box[5] / 2
        points[inside, 0] = box[0] + along * cos - across * sin
        points[inside, 1] = box[1] + along * sin + across * cos
        points[inside, 2] = bottom + (points[inside, 2] - bottom) * factors[2]
        box[3:6] *= factors
        box[2] = bottom + box[5] / 2
    return SceneSample(points, boxes, sample.labels, sample.num_points)


def global_transform(sample: SceneSample, config: AugmentationConfig, rng: np.random.Generator) -> SceneSample:
    """Mirror, rotate about the sensor's z axis and scale the whole scan and its boxes."""
    points, boxes = sample.points.copy(), sample.boxes.copy()
    if rng.random() < config.flip_probability:
        points[:, 1] *= -1.0
        boxes[:, 1] *= -1.0
        boxes[:, 6] *= -1.0
    angle = rng.uniform(-config.rotation, config.rotation)
    cos, sin = np.cos(angle), np.sin(angle)
    rotation = np.array([[cos, -sin], [sin, cos]])
    points[:, :2] = points[:, :2] @ rotation.T.astype(np.float32)
    boxes[:, :2] = boxes[:, :2] @ rotation.T
    boxes[:, 6] = np.arctan2(np.sin(boxes[:, 6] + angle), np.cos(boxes[:, 6] + angle))
    scale = rng.uniform(*config.scale)
    points[:, :3] *= np.float32(scale)
    boxes[:, :6] *= scale
    return SceneSample(points, boxes, sample.labels, sample.num_points)
