"""The CenterPoint-style network: mean voxel encoder, sparse 3D backbone (spconv), BEV neck and a
centre-heatmap head. Backbones are registered by name so another one can be added without
touching the rest."""
from __future__ import annotations

from typing import Callable

import spconv.pytorch as spconv
import torch
from torch import nn

from perception.detection import spconv_compat
from perception.detection.config import DetectorConfig, VoxelConfig

spconv_compat.install()

HEAD_OUTPUTS = {"offset": 2, "z": 1, "log_size": 3, "rotation": 2}
"""Regression maps of the head besides the heatmap: sub-cell centre offset (x, y), centre z,
log(length, width, height), (sin yaw, cos yaw)."""

BACKBONES: dict[str, Callable[[int, DetectorConfig], nn.Module]] = {}
"""Backbone factories by name: (input channels, config) -> module with an out_channels attribute."""


def register_backbone(name: str):
    """Class decorator adding a sparse backbone to BACKBONES."""
    def add(factory):
        if name in BACKBONES:
            raise ValueError(f"backbone {name!r} is already registered")
        BACKBONES[name] = factory
        return factory
    return add


class MeanVoxelEncoder(nn.Module):
    """Per voxel: mean point offset from the voxel centre, mean height, point density (and mean
    intensity), as the sparse backbone's input features."""

    def __init__(self, config: VoxelConfig) -> None:
        super().__init__()
        self.use_intensity = config.use_intensity
        self.max_points = config.max_points_per_voxel
        self.register_buffer("voxel_size", torch.tensor(config.voxel_size, dtype=torch.float32), persistent=False)
        self.register_buffer("range_min", torch.tensor(config.point_range[:3], dtype=torch.float32), persistent=False)

    @property
    def out_channels(self) -> int:
        return 6 if self.use_intensity else 5

    def forward(self, voxels: torch.Tensor, num_points: torch.Tensor, coordinates: torch.Tensor) -> torch.Tensor:
        """voxels (V, P, 4) zero-padded, num_points (V,), coordinates (V, 4) = batch, z, y, x."""
        count = num_points.clamp(min=1).to(voxels.dtype).unsqueeze(1)
        mean = voxels.sum(dim=1) / count
        centre = (coordinates[:, [3, 2, 1]].to(voxels.dtype) + 0.5) * self.voxel_size + self.range_min
        features = [(mean[:, :3] - centre) / self.voxel_size, mean[:, 2:3], count / self.max_points]
        if self.use_intensity:
            features.append(mean[:, 3:4])
        return torch.cat(features, dim=1)


def _sparse_block(in_channels: int, out_channels: int, indice_key: str, stride: int = 1) -> spconv.SparseSequential:
    if stride == 1:
        conv = spconv.SubMConv3d(in_channels, out_channels, 3, padding=1, bias=False, indice_key=indice_key)
    else:
        conv = spconv.SparseConv3d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False,
                                   indice_key=indice_key)
    return spconv.SparseSequential(conv, nn.BatchNorm1d(out_channels, eps=1e-3, momentum=0.01), nn.ReLU())


def dense_channels_first(tensor: spconv.SparseConvTensor) -> torch.Tensor:
    """The (B, C, Z, Y, X) dense form of a sparse tensor. spconv's own `.dense()` indexes with a list
    of tensors, for which torch logs a deprecation warning on every call (once per lidar scan)."""
    features = tensor.features
    dense = features.new_zeros(tensor.batch_size, *tensor.spatial_shape, features.shape[1])
    dense[tuple(tensor.indices.long().T)] = features
    return dense.permute(0, 4, 1, 2, 3).contiguous()


@register_backbone("lean_sparse")
class LeanSparseBackbone(nn.Module):
    """One submanifold convolution per stride (1, 2, 4) with strided sparse convolutions between:
    a CPU-sized cut of SECOND's 16-32-64-64 backbone, downsampling early where voxels are many."""

    def __init__(self, in_channels: int, config: DetectorConfig) -> None:
        super().__init__()
        c1, c2, c4 = config.backbone.channels
        self.layers = spconv.SparseSequential(
            _sparse_block(in_channels, c1, "subm1"),
            _sparse_block(c1, c2, "down2", stride=2), _sparse_block(c2, c2, "subm2"),
            _sparse_block(c2, c4, "down4", stride=2), _sparse_block(c4, c4, "subm4"))
        z_cells = config.voxel.grid_size[2]
        for _ in range(2):
            z_cells = (z_cells + 1) // 2
        self.out_channels = c4 * z_cells

    def forward(self, tensor: spconv.SparseConvTensor) -> torch.Tensor:
        dense = dense_channels_first(self.layers(tensor))
        batch, channels, z_cells, rows, columns = dense.shape
        return dense.reshape(batch, channels * z_cells, rows, columns)


def _conv2d(in_channels: int, out_channels: int, stride: int = 1, kernel: int = 3) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(in_channels, out_channels, kernel, stride=stride, padding=kernel // 2, bias=False),
                         nn.BatchNorm2d(out_channels, eps=1e-3, momentum=0.01), nn.ReLU())


class BevNeck(nn.Module):
    """1x1 channel reduction, a stride-4 block, a stride-8 block upsampled back, concatenated."""

    def __init__(self, in_channels: int, config: DetectorConfig) -> None:
        super().__init__()
        full, half = config.neck.channels
        full_layers, half_layers = config.neck.layers
        self.reduce = _conv2d(in_channels, full, kernel=1)
        self.full_resolution = nn.Sequential(*[_conv2d(full, full) for _ in range(full_layers)])
        self.half_resolution = nn.Sequential(_conv2d(full, half, stride=2), *[_conv2d(half, half) for _ in range(half_layers)])
        self.up = nn.Sequential(nn.ConvTranspose2d(half, full, 2, stride=2, bias=False),
                                nn.BatchNorm2d(full, eps=1e-3, momentum=0.01), nn.ReLU())
        self.out_channels = 2 * full

    def forward(self, bev: torch.Tensor) -> torch.Tensor:
        full = self.full_resolution(self.reduce(bev))
        return torch.cat([full, self.up(self.half_resolution(full))], dim=1)


class CenterHead(nn.Module):
    """Shared 3x3 convolution, then a 1x1 convolution per output map."""

    HEATMAP_PRIOR_BIAS = -2.19
    """log(0.1 / 0.9): heatmaps start near 0.1 so the focal loss starts stable (CenterNet)."""

    def __init__(self, in_channels: int, config: DetectorConfig) -> None:
        super().__init__()
        self.shared = _conv2d(in_channels, config.head.channels)
        self.heatmap = nn.Conv2d(config.head.channels, len(config.classes), 1)
        nn.init.constant_(self.heatmap.bias, self.HEATMAP_PRIOR_BIAS)
        self.regression = nn.Conv2d(config.head.channels, sum(HEAD_OUTPUTS.values()), 1)

    def forward(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        shared = self.shared(features)
        return self.heatmap(shared), self.regression(shared)


class DenseBevNetwork(nn.Module):
    """The dense part (neck and head): BEV features -> (heatmap logits, regression maps).
    Kept separate so it can be exported to ONNX and run in onnxruntime."""

    def __init__(self, in_channels: int, config: DetectorConfig) -> None:
        super().__init__()
        self.neck = BevNeck(in_channels, config)
        self.head = CenterHead(self.neck.out_channels, config)

    def forward(self, bev: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.head(self.neck(bev))


class CenterPointNet(nn.Module):
    """Voxels -> (heatmap logits (B, classes, Y, X), regression maps (B, 8, Y, X))."""

    def __init__(self, config: DetectorConfig) -> None:
        super().__init__()
        if config.backbone.name not in BACKBONES:
            raise ValueError(f"backbone.name: unknown {config.backbone.name!r}; registered: {sorted(BACKBONES)}")
        self.config = config
        self.encoder = MeanVoxelEncoder(config.voxel)
        self.backbone = BACKBONES[config.backbone.name](self.encoder.out_channels, config)
        self.dense = DenseBevNetwork(self.backbone.out_channels, config)

    def sparse_features(self, voxels: torch.Tensor, num_points: torch.Tensor, coordinates: torch.Tensor,
                        batch_size: int) -> torch.Tensor:
        """The BEV feature map (B, C, Y, X) from the sparse backbone."""
        features = self.encoder(voxels, num_points, coordinates)
        x_cells, y_cells, z_cells = self.config.voxel.grid_size
        tensor = spconv.SparseConvTensor(features, coordinates.int(), [z_cells, y_cells, x_cells], batch_size)
        return self.backbone(tensor)

    def forward(self, voxels: torch.Tensor, num_points: torch.Tensor, coordinates: torch.Tensor,
                batch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.dense(self.sparse_features(voxels, num_points, coordinates, batch_size))
