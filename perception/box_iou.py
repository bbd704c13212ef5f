"""Rotated-box overlap of upright 3D boxes: ground-plane (BEV) intersection and IoU, and 3D IoU.

Geometry follows perception.objects.Box3D: a box is its centre (x, y, z), size (length along the
heading, width, height) and yaw about +z; boxes stand upright, so the 3D IoU is the ground-plane
intersection area times the vertical overlap over the union volume. Arrays of boxes are
(N, 7) = x, y, z, l, w, h, yaw. Used by the detector's rotated NMS and by the AP metrics.
"""
from __future__ import annotations

import numpy as np

from perception.objects import BoxesLike, boxes_to_array, corners_bev

# Tolerances for boundary tests in the polygon clipping, in square metres: points on an edge
# (touching or identical boxes) must count as inside.
_INSIDE_TOLERANCE = 1e-9
_PARALLEL_TOLERANCE = 1e-12


def bev_corners(boxes: BoxesLike) -> np.ndarray:
    """Ground-plane corners of each box, counter-clockwise as Box3D.corners_bev, shape (N, 4, 2)."""
    return corners_bev(boxes_to_array(boxes))


def _cross(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    return u[..., 0] * v[..., 1] - u[..., 1] * v[..., 0]


def _inside_convex(points: np.ndarray, polygons: np.ndarray) -> np.ndarray:
    """(P, K) mask of points (P, K, 2) lying in (or on) the counter-clockwise polygons (P, M, 2)."""
    edges = np.roll(polygons, -1, axis=1) - polygons
    side = _cross(edges[:, None, :, :], points[:, :, None, :] - polygons[:, None, :, :])
    return np.all(side >= -_INSIDE_TOLERANCE, axis=2)


def _quad_intersection_areas(quads_a: np.ndarray, quads_b: np.ndarray) -> np.ndarray:
    """Areas of the intersections of paired convex quadrilaterals (P, 4, 2), shape (P,).

    The intersection of two convex polygons is the convex polygon whose vertices are the corners of
    each lying inside the other plus the crossings of their edges; those candidates are ordered by
    angle about their centroid and measured with the shoelace formula, all pairs at once.
    """
    starts_a, dirs_a = quads_a[:, :, None, :], (np.roll(quads_a, -1, axis=1) - quads_a)[:, :, None, :]
    starts_b, dirs_b = quads_b[:, None, :, :], (np.roll(quads_b, -1, axis=1) - quads_b)[:, None, :, :]
    denominator = _cross(dirs_a, dirs_b)
    parallel = np.abs(denominator) <= _PARALLEL_TOLERANCE
    denominator = np.where(parallel, 1.0, denominator)
    offset = starts_b - starts_a
    along_a = _cross(offset, dirs_b) / denominator
    along_b = _cross(offset, dirs_a) / denominator
    on_both_edges = (~parallel & (along_a >= -_INSIDE_TOLERANCE) & (along_a <= 1.0 + _INSIDE_TOLERANCE)
                     & (along_b >= -_INSIDE_TOLERANCE) & (along_b <= 1.0 + _INSIDE_TOLERANCE))
    crossings = starts_a + along_a[..., None] * dirs_a

    pair_count = len(quads_a)
    candidates = np.concatenate([quads_a, quads_b, crossings.reshape(pair_count, 16, 2)], axis=1)
    valid = np.concatenate([_inside_convex(quads_a, quads_b), _inside_convex(quads_b, quads_a),
                            on_both_edges.reshape(pair_count, 16)], axis=1)
    vertex_count = valid.sum(axis=1)
    centroid = (candidates * valid[..., None]).sum(axis=1) / np.maximum(vertex_count, 1)[:, None]
    angle = np.arctan2(candidates[..., 1] - centroid[:, None, 1], candidates[..., 0] - centroid[:, None, 0])
    order = np.argsort(np.where(valid, angle, np.inf), axis=1)
    ordered = np.take_along_axis(candidates, order[..., None], axis=1)
    # Pad with copies of the last vertex: zero-length edges add nothing to the shoelace sum.
    last_vertex = np.take_along_axis(ordered, np.maximum(vertex_count - 1, 0)[:, None, None], axis=1)
    ordered = np.where((np.arange(candidates.shape[1]) < vertex_count[:, None])[..., None], ordered, last_vertex)
    area = 0.5 * np.abs(_cross(ordered, np.roll(ordered, -1, axis=1)).sum(axis=1))
    return np.where(vertex_count >= 3, area, 0.0)


def bev_intersection_matrix(boxes_a: BoxesLike, boxes_b: BoxesLike) -> np.ndarray:
    """Ground-plane intersection areas of every pair of boxes, square metres, shape (Na, Nb)."""
    boxes_a, boxes_b = boxes_to_array(boxes_a), boxes_to_array(boxes_b)
    areas = np.zeros((len(boxes_a), len(boxes_b)))
    # Only pairs whose circumscribed circles overlap can intersect; skip the rest.
    radius_a = np.hypot(boxes_a[:, 3], boxes_a[:, 4]) / 2.0
    radius_b = np.hypot(boxes_b[:, 3], boxes_b[:, 4]) / 2.0
    centre_distance = np.linalg.norm(boxes_a[:, None, :2] - boxes_b[None, :, :2], axis=-1)
    rows, cols = np.nonzero(centre_distance < radius_a[:, None] + radius_b[None, :])
    if len(rows):
        areas[rows, cols] = _quad_intersection_areas(bev_corners(boxes_a)[rows], bev_corners(boxes_b)[cols])
    return areas


def _ratio_or_zero(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    return np.divide(numerator, denominator, out=np.zeros_like(numerator), where=denominator > 0.0)


def bev_iou_matrix(boxes_a: BoxesLike, boxes_b: BoxesLike) -> np.ndarray:
    """IoU of the rotated ground-plane rectangles of every pair of boxes, shape (Na, Nb)."""
    boxes_a, boxes_b = boxes_to_array(boxes_a), boxes_to_array(boxes_b)
    intersection = bev_intersection_matrix(boxes_a, boxes_b)
    union = (boxes_a[:, 3] * boxes_a[:, 4])[:, None] + (boxes_b[:, 3] * boxes_b[:, 4])[None, :] - intersection
    return _ratio_or_zero(intersection, union)


def iou_3d_matrix(boxes_a: BoxesLike, boxes_b: BoxesLike) -> np.ndarray:
    """3D IoU of every pair of upright boxes (z is the box centre), shape (Na, Nb)."""
    boxes_a, boxes_b = boxes_to_array(boxes_a), boxes_to_array(boxes_b)
    top = np.minimum((boxes_a[:, 2] + boxes_a[:, 5] / 2.0)[:, None], (boxes_b[:, 2] + boxes_b[:, 5] / 2.0)[None, :])
    bottom = np.maximum((boxes_a[:, 2] - boxes_a[:, 5] / 2.0)[:, None], (boxes_b[:, 2] - boxes_b[:, 5] / 2.0)[None, :])
    intersection = bev_intersection_matrix(boxes_a, boxes_b) * np.maximum(top - bottom, 0.0)
    volume_a, volume_b = np.prod(boxes_a[:, 3:6], axis=1), np.prod(boxes_b[:, 3:6], axis=1)
    return _ratio_or_zero(intersection, volume_a[:, None] + volume_b[None, :] - intersection)
