"""Batches of upright boxes and their ground-plane footprints."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

UNIT_CORNERS = np.array([[x, y, z] for x in (-0.5, 0.5) for y in (-0.5, 0.5) for z in (-0.5, 0.5)])
"""Corners of the unit box [-0.5, 0.5]^3, shape (8, 3)."""


@dataclass
class BoxSet:
    """K upright boxes with the semantics of perception.objects.Box3D, stored as arrays."""

    centers: np.ndarray
    """Box centres (x, y, z), metres, shape (K, 3)."""
    sizes: np.ndarray
    """Length (along heading), width, height, metres, shape (K, 3)."""
    yaws: np.ndarray
    """Headings about +z, radians, shape (K,)."""

    def __post_init__(self) -> None:
        self.centers = np.asarray(self.centers, dtype=np.float64).reshape(-1, 3)
        self.sizes = np.asarray(self.sizes, dtype=np.float64).reshape(-1, 3)
        self.yaws = np.asarray(self.yaws, dtype=np.float64).reshape(-1)

    def __len__(self) -> int:
        return len(self.yaws)

    @staticmethod
    def empty() -> BoxSet:
        return BoxSet(np.zeros((0, 3)), np.zeros((0, 3)), np.zeros(0))

    @staticmethod
    def concatenate(sets: list[BoxSet]) -> BoxSet:
        return BoxSet(np.concatenate([s.centers for s in sets]), np.concatenate([s.sizes for s in sets]),
                      np.concatenate([s.yaws for s in sets]))

    def subset(self, index) -> BoxSet:
        return BoxSet(self.centers[index], self.sizes[index], self.yaws[index])

    def rotations(self) -> np.ndarray:
        """Yaw rotations, shape (K, 3, 3)."""
        c, s = np.cos(self.yaws), np.sin(self.yaws)
        rotation = np.zeros((len(self), 3, 3))
        rotation[:, 0, 0], rotation[:, 0, 1] = c, -s
        rotation[:, 1, 0], rotation[:, 1, 1] = s, c
        rotation[:, 2, 2] = 1.0
        return rotation

    def transform_local(self, local: np.ndarray) -> np.ndarray:
        """Points given in each box's unit frame ([-0.5, 0.5]^3 spans the box), shape (K, V, 3) -> map."""
        scaled = local[None, :, :] * self.sizes[:, None, :]
        return np.einsum("kij,kvj->kvi", self.rotations(), scaled) + self.centers[:, None, :]

    def corners(self) -> np.ndarray:
        """The eight corners in the boxes' frame, shape (K, 8, 3)."""
        return self.transform_local(UNIT_CORNERS)

    def corners_bev(self) -> np.ndarray:
        """Ground-plane corners, counter-clockwise, shape (K, 4, 2)."""
        unit = np.array([[0.5, 0.5, 0.0], [-0.5, 0.5, 0.0], [-0.5, -0.5, 0.0], [0.5, -0.5, 0.0]])
        return self.transform_local(unit)[:, :, :2]

    def contains(self, points: np.ndarray) -> np.ndarray:
        """Which boxes hold each point, boolean shape (K, N) for points (N, 3) in the same frame."""
        offsets = points[None, :, :] - self.centers[:, None, :]
        local = np.einsum("kji,knj->kni", self.rotations(), offsets)
        return np.all(np.abs(local) <= self.sizes[:, None, :] / 2.0, axis=2)


def rectangles_overlap(corners_a: np.ndarray, corners_b: np.ndarray) -> np.ndarray:
    """Separating-axis test for convex quadrilaterals, pairwise over the leading axis.

    corners_a and corners_b have shape (K, 4, 2) (or broadcast to it); returns boolean (K,).
    Touching rectangles do not count as overlapping.
    """
    corners_a, corners_b = np.broadcast_arrays(corners_a, corners_b)
    edges = np.concatenate([np.roll(corners_a, -1, axis=1) - corners_a,
                            np.roll(corners_b, -1, axis=1) - corners_b], axis=1)
    axes = np.stack([-edges[..., 1], edges[..., 0]], axis=-1)  # (K, 8, 2) edge normals
    projection_a = np.einsum("kac,kpc->kap", axes, corners_a)
    projection_b = np.einsum("kac,kpc->kap", axes, corners_b)
    separated = (projection_a.max(axis=2) <= projection_b.min(axis=2)) | (
        projection_b.max(axis=2) <= projection_a.min(axis=2))
    return ~np.any(separated, axis=1)
