"""Heatmap peaks -> oriented boxes, then rotated-box NMS per class."""
from __future__ import annotations

import numpy as np
import torch
from torch.nn import functional

from perception.box_iou import bev_iou_matrix
from perception.detection.config import DetectorConfig


def rotated_nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float) -> np.ndarray:
    """Indices of the boxes (N, 7) kept by greedy NMS on rotated BEV IoU, best score first."""
    order = np.argsort(-scores, kind="stable")
    iou = bev_iou_matrix(boxes[order], boxes[order])
    suppressed = np.zeros(len(order), dtype=bool)
    kept = []
    for rank in range(len(order)):
        if suppressed[rank]:
            continue
        kept.append(order[rank])
        suppressed |= iou[rank] > iou_threshold
    return np.asarray(kept, dtype=np.int64)


def decode_boxes(heatmap_logits: torch.Tensor, regression: torch.Tensor,
                 config: DetectorConfig) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Per scan: boxes (K, 7) x, y, z, l, w, h, yaw in the sensor frame, scores (K,), class indices (K,)."""
    decode = config.decode
    heat = torch.sigmoid(heatmap_logits)
    # A peak is a cell that is the maximum of its 3x3 neighbourhood.
    heat = heat * (functional.max_pool2d(heat, 3, stride=1, padding=1) == heat)
    batch, classes, rows, columns = heat.shape
    scores, flat = heat.reshape(batch, -1).topk(min(decode.top_k, classes * rows * columns))
    cell_x, cell_y = config.cell_size
    x_min, y_min = config.voxel.point_range[0], config.voxel.point_range[1]
    results = []
    for scan in range(batch):
        keep = scores[scan] >= decode.score_threshold
        scan_scores, index = scores[scan][keep], flat[scan][keep]
        class_index, cell = index // (rows * columns), index % (rows * columns)
        row, column = cell // columns, cell % columns
        values = regression[scan].reshape(regression.shape[1], -1)[:, cell]  # (8, K)
        x = (column.to(values.dtype) + values[0]) * cell_x + x_min
        y = (row.to(values.dtype) + values[1]) * cell_y + y_min
        size = torch.exp(values[3:6].clamp(max=4.0))
        yaw = torch.atan2(values[6], values[7])
        boxes = torch.stack([x, y, values[2], size[0], size[1], size[2], yaw], dim=1).double().cpu().numpy()
        scan_scores, class_index = scan_scores.double().cpu().numpy(), class_index.cpu().numpy()
        kept = [np.zeros(0, np.int64)]
        for label in np.unique(class_index):
            members = np.flatnonzero(class_index == label)
            kept.append(members[rotated_nms(boxes[members], scan_scores[members], decode.nms_iou)])
        kept = np.concatenate(kept)
        kept = kept[np.argsort(-scan_scores[kept], kind="stable")][:decode.max_detections]
        results.append((boxes[kept], scan_scores[kept], class_index[kept]))
    return results
