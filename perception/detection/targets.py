"""Training targets and losses of the centre head (CenterNet / CenterPoint): a Gaussian peak per
object on its class's heatmap, and box regression at each peak's cell."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from perception.detection.config import DetectorConfig

REGRESSION_WEIGHTS = torch.tensor([1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0])
"""Weights of offset x, y, z, log l, w, h, sin, cos in the L1 loss."""


@dataclass
class Targets:
    """Stacked targets of a batch."""

    heatmap: torch.Tensor
    """(B, classes, Y, X) Gaussian peaks in 0..1."""
    cell_index: torch.Tensor
    """(B, M) flattened cell of each object's centre."""
    mask: torch.Tensor
    """(B, M) 1 for real objects, 0 for padding."""
    regression: torch.Tensor
    """(B, M, 8) regression targets (as HEAD_OUTPUTS)."""

    def to(self, device: torch.device) -> Targets:
        return Targets(self.heatmap.to(device), self.cell_index.to(device), self.mask.to(device),
                       self.regression.to(device))


def gaussian_radius(length_cells: np.ndarray, width_cells: np.ndarray, min_overlap: float) -> np.ndarray:
    """CenterNet's radius: the largest corner shift keeping IoU >= min_overlap (three cases)."""
    h, w = length_cells, width_cells
    b1 = h + w
    c1 = w * h * (1 - min_overlap) / (1 + min_overlap)
    r1 = (b1 + np.sqrt(b1 ** 2 - 4 * c1)) / 2
    b2 = 2 * (h + w)
    c2 = (1 - min_overlap) * w * h
    r2 = (b2 + np.sqrt(b2 ** 2 - 16 * c2)) / 2
    a3 = 4 * min_overlap
    b3 = -2 * min_overlap * (h + w)
    c3 = (min_overlap - 1) * w * h
    r3 = (b3 + np.sqrt(b3 ** 2 - 4 * a3 * c3)) / 2
    return np.minimum(np.minimum(r1, r2), r3)


def _draw_gaussian(heatmap: np.ndarray, column: int, row: int, radius: int) -> None:
    sigma = (2 * radius + 1) / 6.0
    offsets = np.arange(-radius, radius + 1)
    kernel = np.exp(-(offsets[:, None] ** 2 + offsets[None, :] ** 2) / (2 * sigma ** 2))
    rows, columns = heatmap.shape
    top, bottom = min(row, radius), min(rows - row, radius + 1)
    left, right = min(column, radius), min(columns - column, radius + 1)
    window = heatmap[row - top:row + bottom, column - left:column + right]
    np.maximum(window, kernel[radius - top:radius + bottom, radius - left:radius + right], out=window)


def scan_targets(boxes: np.ndarray, class_indices: np.ndarray, config: DetectorConfig):
    """Targets of one scan from boxes (M, 7) in the sensor frame and their heatmap classes (M,)."""
    rows, columns = config.heatmap_shape
    cell_x, cell_y = config.cell_size
    heatmap = np.zeros((len(config.classes), rows, columns), dtype=np.float32)
    limit = config.head.max_objects
    cell_index = np.zeros(limit, dtype=np.int64)
    mask = np.zeros(limit, dtype=np.float32)
    regression = np.zeros((limit, 8), dtype=np.float32)
    centre_x = (boxes[:, 0] - config.voxel.point_range[0]) / cell_x
    centre_y = (boxes[:, 1] - config.voxel.point_range[1]) / cell_y
    inside = (centre_x >= 0) & (centre_x < columns) & (centre_y >= 0) & (centre_y < rows)
    radius = np.maximum(config.head.min_radius, gaussian_radius(
        boxes[:, 3] / cell_x, boxes[:, 4] / cell_y, config.head.gaussian_overlap).astype(int))
    slot = 0
    for index in np.flatnonzero(inside)[:limit]:
        column, row = int(centre_x[index]), int(centre_y[index])
        _draw_gaussian(heatmap[class_indices[index]], column, row, int(radius[index]))
        cell_index[slot] = row * columns + column
        mask[slot] = 1.0
        box = boxes[index]
        regression[slot] = [centre_x[index] - column, centre_y[index] - row, box[2],
                            *np.log(np.maximum(box[3:6], 1e-3)), np.sin(box[6]), np.cos(box[6])]
        slot += 1
    return heatmap, cell_index, mask, regression


def stack_targets(parts: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]) -> Targets:
    """Targets of a batch (CPU tensors) from the scan_targets of each of its scans."""
    heatmap, cell_index, mask, regression = (torch.from_numpy(np.stack(column)) for column in zip(*parts))
    return Targets(heatmap, cell_index, mask, regression)


def focal_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """CenterNet's penalty-reduced focal loss, normalised by the number of peaks."""
    probability = torch.sigmoid(logits).clamp(1e-4, 1 - 1e-4)
    positive = target.eq(1.0).float()
    positive_loss = torch.log(probability) * (1 - probability) ** 2 * positive
    negative_loss = torch.log(1 - probability) * probability ** 2 * (1 - target) ** 4 * (1 - positive)
    return -(positive_loss.sum() + negative_loss.sum()) / positive.sum().clamp(min=1.0)


def detection_loss(heatmap_logits: torch.Tensor, regression: torch.Tensor,
                   targets: Targets) -> tuple[torch.Tensor, dict[str, float]]:
    """Focal heatmap loss plus L1 box regression at the object cells; returns (total, parts)."""
    heat = focal_loss(heatmap_logits, targets.heatmap)
    batch, channels = regression.shape[:2]
    flat = regression.reshape(batch, channels, -1)
    predicted = flat.gather(2, targets.cell_index.unsqueeze(1).expand(-1, channels, -1)).transpose(1, 2)
    weights = REGRESSION_WEIGHTS.to(regression.device)
    l1 = (torch.abs(predicted - targets.regression) * weights * targets.mask.unsqueeze(2)).sum()
    box = l1 / targets.mask.sum().clamp(min=1.0)
    total = heat + box
    return total, {"heatmap": float(heat.detach()), "box": float(box.detach())}
