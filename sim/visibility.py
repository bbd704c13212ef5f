"""Ground-truth visibility of one object: how much of its box surface a sensor sees past everything else.

The faces of the object's box that face the sensor (the four vertical faces and the top, each only
when its outward normal points toward the sensor) are sampled on a regular grid; a sample is hidden
when the sight line from the sensor to it meets any other surface of the world first (scenery, the
road, parked, staged and moving road users; see World.sight_blocked). The occlusion ratio is the
fraction of hidden samples, the visible area the surface the unhidden samples stand for. Samples
lie on the box, not on the object's mesh, so a fully visible car still has a small part of its box
(above the bonnet, beside the cabin) where a lidar would find nothing; compare point densities
between views of the same object rather than with absolute figures.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from perception.objects import Box3D

SURFACE_OFFSET = 0.02
"""Samples stand this far outside their face, so that the sight line does not graze the object, metres."""
MIN_CELLS_PER_EDGE = 4
"""Each face is split into at least this many cells along each of its edges (pedestrians are 0.6 m wide)."""

_FACES = (  # (outward normal axis, sign, the two in-face axes) in the box frame
    (0, 1.0, (1, 2)), (0, -1.0, (1, 2)), (1, 1.0, (0, 2)), (1, -1.0, (0, 2)), (2, 1.0, (0, 1)))


@dataclass
class Visibility:
    """How much of an object's box surface the sensor sees."""

    occlusion_ratio: float
    """Fraction of the surface samples facing the sensor whose sight line is blocked, 0..1 (1 when
    no face points toward the sensor)."""
    visible_area: float
    """Box surface facing the sensor and not hidden, m^2."""
    sample_count: int
    """Surface samples tested."""
    point_count: int = 0
    """Lidar returns on the object in the world's latest lidar scan (0 before the first scan)."""

    @property
    def density(self) -> float:
        """Lidar returns per m^2 of visible surface (point_density of point_count and visible_area)."""
        return point_density(self.point_count, self.visible_area)


def point_density(point_count: int, visible_area: float) -> float:
    """Points per m^2 of visible surface; 0 when the visible area is 0."""
    return float(point_count) / visible_area if visible_area > 0.0 else 0.0


def box_surface_samples(box: Box3D, origin: np.ndarray, spacing: float = 0.3) -> tuple[np.ndarray, np.ndarray]:
    """Grid samples on the faces of `box` that face `origin` (map, (3,)).

    Each face is split into cells at most `spacing` metres on a side (and at least MIN_CELLS_PER_EDGE
    along each edge, so small objects get enough samples); a sample is a cell centre moved
    SURFACE_OFFSET outward. Returns (points (N, 3) in map, area in m^2 each one stands for (N,)).
    """
    if not spacing > 0.0:
        raise ValueError(f"spacing: must be > 0, got {spacing}")
    cos_yaw, sin_yaw = np.cos(box.yaw), np.sin(box.yaw)
    rotation = np.array([[cos_yaw, -sin_yaw, 0.0], [sin_yaw, cos_yaw, 0.0], [0.0, 0.0, 1.0]])
    local_origin = rotation.T @ (np.asarray(origin, dtype=np.float64).reshape(3) - box.center)
    half = box.size / 2.0
    points, areas = [], []
    for axis, sign, (u_axis, v_axis) in _FACES:
        if sign * local_origin[axis] <= half[axis]:  # the origin is not on the face's outer side
            continue
        u_count = max(MIN_CELLS_PER_EDGE, int(np.ceil(box.size[u_axis] / spacing - 1e-9)))
        v_count = max(MIN_CELLS_PER_EDGE, int(np.ceil(box.size[v_axis] / spacing - 1e-9)))
        u = (np.arange(u_count) + 0.5) / u_count * box.size[u_axis] - half[u_axis]
        v = (np.arange(v_count) + 0.5) / v_count * box.size[v_axis] - half[v_axis]
        local = np.zeros((u_count * v_count, 3))
        local[:, u_axis] = np.repeat(u, v_count)
        local[:, v_axis] = np.tile(v, u_count)
        local[:, axis] = sign * (half[axis] + SURFACE_OFFSET)
        points.append(local)
        areas.append(np.full(len(local), box.size[u_axis] * box.size[v_axis] / len(local)))
    if not points:
        return np.zeros((0, 3)), np.zeros(0)
    return np.concatenate(points) @ rotation.T + box.center, np.concatenate(areas)


def target_visibility(world, object_id: int, origin: np.ndarray | None = None, spacing: float = 0.3) -> Visibility:
    """Visibility of object `object_id` of `world` (a sim.world.World) from origin (map, (3,);
    default the lidar's optical centre now), against the world as it is now."""
    box, point_count = world.object_box(object_id), world.latest_point_count(object_id)
    origin = world.lidar_origin() if origin is None else np.asarray(origin, dtype=np.float64).reshape(3)
    points, areas = box_surface_samples(box, origin, spacing)
    if len(points) == 0:
        return Visibility(1.0, 0.0, 0, point_count)
    blocked = world.sight_blocked(origin, points, object_id)
    return Visibility(float(np.mean(blocked)), float(areas[~blocked].sum()), len(points), point_count)
