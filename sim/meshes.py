"""Triangle meshes: per-triangle labelled soups for ray casting, and unit-box templates for objects."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sim.geometry import BoxSet

NO_OBJECT = -1
"""Object id of triangles that belong to no ground-truth object (road, buildings)."""


@dataclass
class TriangleSoup:
    """Triangles with what each one belongs to."""

    vertices: np.ndarray
    """Vertex positions in map, metres, float32 (V, 3)."""
    triangles: np.ndarray
    """Vertex indices, uint32 (T, 3)."""
    object_ids: np.ndarray
    """Ground-truth object id per triangle, NO_OBJECT for scenery, int64 (T,)."""
    materials: np.ndarray
    """Material per triangle, uint8 (T,)."""
    colors: np.ndarray
    """Camera base colour per triangle, uint8 (T, 3)."""

    @staticmethod
    def empty() -> TriangleSoup:
        return TriangleSoup(np.zeros((0, 3), np.float32), np.zeros((0, 3), np.uint32), np.zeros(0, np.int64),
                            np.zeros(0, np.uint8), np.zeros((0, 3), np.uint8))

    @staticmethod
    def concatenate(soups: list[TriangleSoup]) -> TriangleSoup:
        if not soups:
            return TriangleSoup.empty()
        offsets = np.cumsum([0] + [len(soup.vertices) for soup in soups[:-1]])
        return TriangleSoup(
            vertices=np.concatenate([soup.vertices for soup in soups]).astype(np.float32),
            triangles=np.concatenate([soup.triangles + offset
                                      for soup, offset in zip(soups, offsets)]).astype(np.uint32),
            object_ids=np.concatenate([soup.object_ids for soup in soups]).astype(np.int64),
            materials=np.concatenate([soup.materials for soup in soups]).astype(np.uint8),
            colors=np.concatenate([soup.colors for soup in soups]).astype(np.uint8),
        )


@dataclass(frozen=True)
class MeshTemplate:
    """A mesh in a box's unit frame: [-0.5, 0.5]^3 spans the object's box exactly."""

    vertices: np.ndarray
    """Unit-frame vertices (V, 3)."""
    triangles: np.ndarray
    """Vertex indices (T, 3)."""
    shade: np.ndarray
    """Colour multiplier per triangle (T,), e.g. dark tyres and windows."""

    def instantiate(self, boxes: BoxSet, object_ids: np.ndarray, material: int, colors: np.ndarray) -> TriangleSoup:
        """One copy of the template per box, coloured per object (colors uint8 (K, 3))."""
        count = len(boxes)
        vertices = boxes.transform_local(self.vertices).reshape(-1, 3)
        offsets = np.arange(count)[:, None, None] * len(self.vertices)
        triangles = (self.triangles[None, :, :] + offsets).reshape(-1, 3)
        shaded = colors[:, None, :].astype(np.float64) * self.shade[None, :, None]
        return TriangleSoup(
            vertices=vertices.astype(np.float32),
            triangles=triangles.astype(np.uint32),
            object_ids=np.repeat(np.asarray(object_ids, dtype=np.int64), len(self.triangles)),
            materials=np.full(count * len(self.triangles), material, dtype=np.uint8),
            colors=np.clip(shaded, 0, 255).astype(np.uint8).reshape(-1, 3),
        )


def prism(footprint: np.ndarray, z_low: float, z_high: float, shade: float = 1.0) -> MeshTemplate:
    """A closed vertical prism over a convex counter-clockwise footprint (P, 2) in unit coordinates."""
    count = len(footprint)
    vertices = np.concatenate([np.column_stack([footprint, np.full(count, z_low)]),
                               np.column_stack([footprint, np.full(count, z_high)])])
    bottom = [[0, i + 1, i] for i in range(1, count - 1)]
    top = [[count, count + i, count + i + 1] for i in range(1, count - 1)]
    sides = []
    for i in range(count):
        j = (i + 1) % count
        sides += [[i, j, count + j], [i, count + j, count + i]]
    triangles = np.array(bottom + top + sides)
    return MeshTemplate(vertices, triangles, np.full(len(triangles), shade))


def cuboid(x_low: float, x_high: float, y_low: float, y_high: float, z_low: float, z_high: float,
           shade: float = 1.0) -> MeshTemplate:
    """An axis-aligned box in unit coordinates."""
    footprint = np.array([[x_high, y_high], [x_low, y_high], [x_low, y_low], [x_high, y_low]])
    return prism(footprint, z_low, z_high, shade)


def octagonal_prism(radius: float, z_low: float, z_high: float, shade: float = 1.0) -> MeshTemplate:
    """A cylinder-ish prism about the unit frame's vertical axis."""
    angles = np.arange(8) * np.pi / 4.0
    return prism(radius * np.column_stack([np.cos(angles), np.sin(angles)]), z_low, z_high, shade)


def merge(parts: list[MeshTemplate]) -> MeshTemplate:
    """One template from several parts."""
    offsets = np.cumsum([0] + [len(part.vertices) for part in parts[:-1]])
    return MeshTemplate(
        vertices=np.concatenate([part.vertices for part in parts]),
        triangles=np.concatenate([part.triangles + offset for part, offset in zip(parts, offsets)]),
        shade=np.concatenate([part.shade for part in parts]),
    )


UNIT_BOX = cuboid(-0.5, 0.5, -0.5, 0.5, -0.5, 0.5)
