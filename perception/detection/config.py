"""Typed configuration of the lidar detector; saved inside every checkpoint, so weights always
travel with the geometry they were trained for."""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

from perception.objects import ObjectClass

DETECTION_CLASSES: tuple[str, ...] = ("car", "truck_bus", "pedestrian", "cyclist")
"""Heatmap channels, in order."""

CLASS_MEMBERS: dict[str, tuple[ObjectClass, ...]] = {
    "car": (ObjectClass.CAR, ObjectClass.VAN),
    "truck_bus": (ObjectClass.TRUCK, ObjectClass.BUS),
    "pedestrian": (ObjectClass.PEDESTRIAN,),
    "cyclist": (ObjectClass.CYCLIST,),
}
"""Object labels each heatmap channel detects; a detection is given the first (CAR, TRUCK, ...)."""


@dataclass
class VoxelConfig:
    """Which points are seen and how they are gridded (sensor frame, KITTI velodyne axes)."""

    voxel_size: tuple[float, float, float] = (0.16, 0.16, 0.2)
    """Voxel edge along x, y, z, metres."""
    point_range: tuple[float, float, float, float, float, float] = (0.0, -40.96, -3.0, 71.68, 40.96, 1.0)
    """x_min, y_min, z_min, x_max, y_max, z_max of the detection volume, metres; the x and y extents
    must be whole multiples of 8 voxels (the network's output stride times the neck's)."""
    max_points_per_voxel: int = field(default=5, metadata={"range": (1, 64)})
    """Points kept per voxel (the rest only count)."""
    max_voxels: int = field(default=40000, metadata={"range": (1000, 500000)})
    """Voxel budget per scan; PointToVoxel keeps the first ones it meets."""
    use_intensity: bool = False
    """Feed the return intensity to the network. Off by default: the simulated intensity model
    (reflectivity x cos incidence) differs from a real HDL-64E's calibrated reflectance."""

    def __post_init__(self) -> None:
        self.voxel_size = tuple(float(v) for v in self.voxel_size)
        self.point_range = tuple(float(v) for v in self.point_range)
        if len(self.voxel_size) != 3 or min(self.voxel_size) <= 0.0:
            raise ValueError(f"voxel_size: need three positive sizes, got {self.voxel_size}")
        if len(self.point_range) != 6 or any(self.point_range[i] >= self.point_range[i + 3] for i in range(3)):
            raise ValueError(f"point_range: need (x_min, y_min, z_min, x_max, y_max, z_max) with min < max, "
                             f"got {self.point_range}")
        for axis in range(2):
            cells = (self.point_range[axis + 3] - self.point_range[axis]) / self.voxel_size[axis]
            if abs(cells - round(cells)) > 1e-6 or round(cells) % 8:
                raise ValueError(f"point_range: the {'xy'[axis]} extent must be a multiple of 8 voxels "
                                 f"({8 * self.voxel_size[axis]:g} m), got {cells:g} voxels")

    @property
    def grid_size(self) -> tuple[int, int, int]:
        """Voxels along x, y, z."""
        return tuple(int(math.ceil(round((self.point_range[i + 3] - self.point_range[i]) / self.voxel_size[i], 6)))
                     for i in range(3))

    @property
    def point_features(self) -> int:
        """Columns of a point array given to the voxeliser (x, y, z, intensity)."""
        return 4


@dataclass
class BackboneConfig:
    """The sparse 3D backbone (looked up by name in network.BACKBONES)."""

    name: str = "lean_sparse"
    """Registered backbone name."""
    channels: tuple[int, int, int] = (16, 32, 64)
    """Channels at strides 1, 2 and 4."""

    def __post_init__(self) -> None:
        self.channels = tuple(int(c) for c in self.channels)


@dataclass
class NeckConfig:
    """The dense bird's-eye-view network (SECOND-style: a full- and a half-resolution block)."""

    channels: tuple[int, int] = (64, 128)
    """Channels of the stride-4 and stride-8 blocks."""
    layers: tuple[int, int] = (2, 2)
    """3x3 convolutions in each block."""

    def __post_init__(self) -> None:
        self.channels = tuple(int(c) for c in self.channels)
        self.layers = tuple(int(c) for c in self.layers)


@dataclass
class HeadConfig:
    """The centre-heatmap head and its training targets."""

    channels: int = 64
    """Channels of the shared 3x3 convolution before the per-output 1x1 convolutions."""
    min_radius: int = 2
    """Smallest Gaussian radius of a target peak, cells."""
    gaussian_overlap: float = 0.1
    """Box overlap used to size the target Gaussians (CenterNet's gaussian_radius)."""
    max_objects: int = 256
    """Most objects per scan given regression targets."""


@dataclass
class DecodeConfig:
    """Turning heatmap peaks into boxes."""

    score_threshold: float = field(default=0.3, metadata={"range": (0.0, 1.0)})
    """Least score of a published detection."""
    top_k: int = field(default=300, metadata={"range": (1, 5000)})
    """Heatmap peaks considered per scan, over all classes."""
    nms_iou: float = field(default=0.1, metadata={"range": (0.0, 1.0)})
    """Rotated BEV IoU above which the weaker of two same-class boxes is suppressed."""
    max_detections: int = field(default=100, metadata={"range": (1, 1000)})
    """Most detections per scan after NMS."""


@dataclass
class DetectorConfig:
    """Everything that defines one detector model."""

    classes: tuple[str, ...] = DETECTION_CLASSES
    """Heatmap classes (keys of CLASS_MEMBERS)."""
    voxel: VoxelConfig = field(default_factory=VoxelConfig)
    """Point range and voxel grid."""
    backbone: BackboneConfig = field(default_factory=BackboneConfig)
    """Sparse 3D backbone."""
    neck: NeckConfig = field(default_factory=NeckConfig)
    """Dense BEV network."""
    head: HeadConfig = field(default_factory=HeadConfig)
    """Centre head."""
    decode: DecodeConfig = field(default_factory=DecodeConfig)
    """Box decoding and NMS."""

    def __post_init__(self) -> None:
        self.classes = tuple(self.classes)
        unknown = [name for name in self.classes if name not in CLASS_MEMBERS]
        if unknown:
            raise ValueError(f"classes: unknown {unknown}; known: {list(CLASS_MEMBERS)}")

    OUTPUT_STRIDE = 4
    """Heatmap cell = OUTPUT_STRIDE voxels."""

    @property
    def cell_size(self) -> tuple[float, float]:
        """Heatmap cell edge along x and y, metres."""
        return self.voxel.voxel_size[0] * self.OUTPUT_STRIDE, self.voxel.voxel_size[1] * self.OUTPUT_STRIDE

    @property
    def heatmap_shape(self) -> tuple[int, int]:
        """(rows along y, columns along x) of the heatmap."""
        x_cells, y_cells, _ = self.voxel.grid_size
        return y_cells // self.OUTPUT_STRIDE, x_cells // self.OUTPUT_STRIDE

    def class_index(self) -> dict[ObjectClass, int]:
        """Heatmap channel of every object label the model detects."""
        return {label: index for index, name in enumerate(self.classes) for label in CLASS_MEMBERS[name]}

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> DetectorConfig:
        return cls(classes=tuple(values["classes"]), voxel=VoxelConfig(**values["voxel"]),
                   backbone=BackboneConfig(**values["backbone"]), neck=NeckConfig(**values["neck"]),
                   head=HeadConfig(**values["head"]), decode=DecodeConfig(**values["decode"]))
