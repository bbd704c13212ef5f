"""Planar polytopes of the CROA planner: rectangles as {z : A z <= b}, lines of sight and their tests.

Every rectangle's A has unit rows (outward face normals, counter-clockwise from the heading), so
lambda = e_r is a feasible dual point: lambda^T (A z - b) is then the signed distance of z beyond face r.
"""
from __future__ import annotations

import numpy as np

from perception.objects import corners_bev
from sim.geometry import rectangles_overlap

FACE_SIGNS = np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [0.0, -1.0]])
"""Face normals of an axis-aligned rectangle in its own frame: front, left, back, right."""


def rotation(yaw) -> np.ndarray:
    """2x2 rotation(s) for yaw(s), shape (..., 2, 2)."""
    yaw = np.asarray(yaw, dtype=np.float64)
    cos, sin = np.cos(yaw), np.sin(yaw)
    return np.stack([np.stack([cos, -sin], -1), np.stack([sin, cos], -1)], -2)


def rectangle_halfspaces(centers, lengths, widths, yaws) -> tuple[np.ndarray, np.ndarray]:
    """(A (..., 4, 2), b (..., 4)) of rectangles centred at `centers` (..., 2) with length along yaw."""
    centers = np.asarray(centers, dtype=np.float64)
    normals = np.einsum("...ij,rj->...ri", rotation(yaws), FACE_SIGNS)
    half = np.stack([np.asarray(lengths) / 2.0, np.asarray(widths) / 2.0] * 2, axis=-1)
    offsets = np.einsum("...ri,...i->...r", normals, centers) + half
    return normals, offsets


def body_halfspaces(length: float, width: float, rear_overhang: float) -> tuple[np.ndarray, np.ndarray]:
    """(G (4, 2), h (4,)) of the ego's body in base_link (the rear axle), {y : G y <= h}."""
    return FACE_SIGNS.copy(), np.array([length - rear_overhang, width / 2.0, rear_overhang, width / 2.0])


def segments_hit_polytopes(starts: np.ndarray, ends: np.ndarray, normals: np.ndarray,
                           offsets: np.ndarray) -> np.ndarray:
    """Whether each segment (M, 2) -> (M, 2) meets each polytope (K, F, 2), (K, F): boolean (M, K).

    Liang-Barsky clipping: the segment's parameter interval inside every face's half-plane."""
    direction = ends - starts
    start_values = np.einsum("kfi,mi->mkf", normals, starts) - offsets[None]  # <= 0 inside
    rates = np.einsum("kfi,mi->mkf", normals, direction)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        crossing = -start_values / rates
    entering = np.where(rates < 0.0, crossing, -np.inf)
    leaving = np.where(rates > 0.0, crossing, np.inf)
    parallel_outside = (np.abs(rates) <= 1e-12) & (start_values > 0.0)
    low = np.maximum(entering.max(axis=2), 0.0)
    high = np.minimum(leaving.min(axis=2), 1.0)
    return (low <= high) & ~parallel_outside.any(axis=2)


def best_face_duals(normals: np.ndarray, offsets: np.ndarray, *point_sets: np.ndarray) -> np.ndarray:
    """For pairs of a polytope (P, F, 2), (P, F) with point sets (P, 2) each: the face index r whose
    lambda = e_r proves the largest separation of all the points, (P,) int. A start for the dual."""
    values = np.min([np.einsum("pfi,pi->pf", normals, points) - offsets for points in point_sets], axis=0)
    return np.argmax(values, axis=1)


def outline_samples(center: np.ndarray, length: float, width: float, yaw: float, viewpoint: np.ndarray,
                    count: int) -> np.ndarray:
    """`count` points (count, 2) spread evenly along the rectangle's edges that face `viewpoint`
    (its whole outline when the viewpoint is inside)."""
    normals, offsets = rectangle_halfspaces(center, length, width, yaw)
    corners = rectangle_corners(center, length, width, yaw)  # corner r ends face r, counter-clockwise
    facing = normals @ viewpoint - offsets > 0.0
    if not facing.any():
        facing[:] = True
    edges = [(corners[(face - 1) % 4], corners[face]) for face in range(4) if facing[face]]
    lengths = np.array([np.linalg.norm(end - start) for start, end in edges])
    positions = (np.arange(count) + 0.5) / count * lengths.sum()
    boundaries = np.concatenate([[0.0], np.cumsum(lengths)])
    edge_index = np.clip(np.searchsorted(boundaries, positions, side="right") - 1, 0, len(edges) - 1)
    fraction = (positions - boundaries[edge_index]) / lengths[edge_index]
    starts = np.array([edges[index][0] for index in edge_index])
    ends = np.array([edges[index][1] for index in edge_index])
    return starts + fraction[:, None] * (ends - starts)


def polygon_distance(first: np.ndarray, second: np.ndarray) -> float:
    """Distance between two rectangles given by their corners (4, 2) in order; 0 when they overlap."""
    if rectangles_overlap(first[None], second[None])[0]:
        return 0.0
    return min(_points_to_edges(first, second), _points_to_edges(second, first))


def _points_to_edges(points: np.ndarray, polygon: np.ndarray) -> float:
    """Smallest distance from any of the points to any edge of the polygon."""
    starts, ends = polygon, np.roll(polygon, -1, axis=0)
    edges = ends - starts
    offsets = points[:, None, :] - starts[None]
    fraction = np.clip(np.einsum("pei,ei->pe", offsets, edges) / np.einsum("ei,ei->e", edges, edges), 0.0, 1.0)
    return float(np.min(np.linalg.norm(offsets - fraction[..., None] * edges[None], axis=2)))


def rectangle_corners(center, length: float, width: float, yaw: float) -> np.ndarray:
    """Corners (4, 2) of a rectangle, counter-clockwise from front-left (corner r between face r
    and face r + 1)."""
    return corners_bev(np.array([[center[0], center[1], 0.0, length, width, 0.0, yaw]]))[0]
