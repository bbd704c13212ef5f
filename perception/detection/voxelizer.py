"""Points -> voxels with spconv's PointToVoxel, after cropping to the detection volume and
holding the scan to a point budget."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from spconv.pytorch.utils import PointToVoxel

from perception.detection.config import VoxelConfig


@dataclass
class Voxels:
    """One batch of voxelised scans, as the network takes them."""

    features: torch.Tensor
    """(V, max_points_per_voxel, 4) point columns x, y, z, intensity, zero-padded."""
    num_points: torch.Tensor
    """(V,) points in each voxel."""
    coordinates: torch.Tensor
    """(V, 4) int32 batch index, z, y, x voxel indices."""
    batch_size: int
    """Scans in the batch."""


@dataclass
class PreparedPoints:
    """A scan cropped to the detection volume, and what was left out."""

    points: np.ndarray
    """(N, 4) float32 points inside the volume (at most the budget)."""
    outside_range: int
    """Points outside the detection volume."""
    subsampled: int
    """Points dropped at random to stay within the budget."""


def crop_to_range(points: np.ndarray, point_range: tuple[float, ...]) -> np.ndarray:
    """Mask of the points inside [min, max) of the detection volume."""
    low, high = np.asarray(point_range[:3], np.float32), np.asarray(point_range[3:], np.float32)
    inside = np.ones(len(points), dtype=bool)
    for axis in range(3):
        inside &= (points[:, axis] >= low[axis]) & (points[:, axis] < high[axis])
    return inside


def prepare_points(points: np.ndarray, config: VoxelConfig, max_points: int,
                   rng: np.random.Generator) -> PreparedPoints:
    """Crop finite (N, 4) float32 points to the volume; above `max_points`, keep a random subset."""
    points = np.asarray(points, dtype=np.float32)
    if points.ndim != 2 or points.shape[1] != config.point_features:
        raise ValueError(f"points must have shape (N, {config.point_features}), got {points.shape}")
    inside = crop_to_range(points, config.point_range)
    cropped = np.compress(inside, points, axis=0)
    subsampled = 0
    if len(cropped) > max_points:
        subsampled = len(cropped) - max_points
        cropped = cropped[np.sort(rng.choice(len(cropped), max_points, replace=False))]
    return PreparedPoints(cropped, int(len(points) - inside.sum()), subsampled)


class Voxelizer:
    """Voxelises scans for one device; voxels keep the order PointToVoxel meets them in."""

    def __init__(self, config: VoxelConfig, device: torch.device) -> None:
        self.config = config
        self.device = device
        self._point_to_voxel = PointToVoxel(
            vsize_xyz=list(config.voxel_size), coors_range_xyz=list(config.point_range),
            num_point_features=config.point_features, max_num_voxels=config.max_voxels,
            max_num_points_per_voxel=config.max_points_per_voxel, device=device)

    def __call__(self, scans: list[np.ndarray]) -> Voxels:
        """Voxels of a batch of (N, 4) float32 scans already inside the detection volume."""
        features, counts, coordinates = [], [], []
        for index, points in enumerate(scans):
            voxels, voxel_coordinates, num_points = self._point_to_voxel(
                torch.from_numpy(np.ascontiguousarray(points, dtype=np.float32)).to(self.device))
            batch_column = torch.full((len(voxel_coordinates), 1), index, dtype=torch.int32, device=self.device)
            features.append(voxels)
            counts.append(num_points)
            coordinates.append(torch.cat([batch_column, voxel_coordinates.int()], dim=1))
        return Voxels(torch.cat(features), torch.cat(counts), torch.cat(coordinates), len(scans))
