"""Planar geometry of the CROA planner against brute force."""
from __future__ import annotations

import numpy as np
from hypothesis import given, settings, strategies as st

from planners.croa.geometry import (outline_samples, polygon_distance, rectangle_corners, rectangle_halfspaces,
                                    segments_hit_polytopes)

coordinate = st.floats(-10.0, 10.0)
size = st.floats(0.5, 6.0)
angle = st.floats(-np.pi, np.pi)


def inside(points, normals, offsets):
    return np.all(points @ normals.T - offsets <= 1e-9, axis=-1)


@settings(max_examples=200, deadline=None)
@given(coordinate, coordinate, size, size, angle, coordinate, coordinate, coordinate, coordinate)
def test_segment_test_matches_dense_sampling(cx, cy, length, width, yaw, x0, y0, x1, y1):
    normals, offsets = rectangle_halfspaces(np.array([cx, cy]), length, width, yaw)
    start, end = np.array([x0, y0]), np.array([x1, y1])
    hit = segments_hit_polytopes(start[None], end[None], normals[None], offsets[None])[0, 0]
    points = start + np.linspace(0.0, 1.0, 4001)[:, None] * (end - start)
    sampled = inside(points, normals, offsets).any()
    if sampled:
        assert hit
    if hit and not sampled:  # only a graze thinner than the sampling may be missed
        grown = inside(points, normals, offsets + 0.01).any()
        assert grown


@settings(max_examples=100, deadline=None)
@given(coordinate, coordinate, size, size, angle, coordinate, coordinate, size, size, angle)
def test_polygon_distance_matches_brute_force(x0, y0, l0, w0, a0, x1, y1, l1, w1, a1):
    first, second = rectangle_corners((x0, y0), l0, w0, a0), rectangle_corners((x1, y1), l1, w1, a1)
    distance = polygon_distance(first, second)
    edges = np.linspace(0.0, 1.0, 200)[:, None, None]
    perimeter = lambda corners: (corners + edges * (np.roll(corners, -1, 0) - corners)).reshape(-1, 2)
    brute = np.min(np.linalg.norm(perimeter(first)[:, None] - perimeter(second)[None], axis=2))
    normals, offsets = rectangle_halfspaces(np.array([x1, y1]), l1, w1, a1)
    if distance == 0.0:
        assert brute < 0.1 or inside(first, normals, offsets).any() or inside(
            second, *rectangle_halfspaces(np.array([x0, y0]), l0, w0, a0)).any()
    else:
        assert abs(distance - brute) < 0.1


def test_halfspaces_have_unit_normals_and_contain_the_centre():
    normals, offsets = rectangle_halfspaces(np.array([[1.0, 2.0], [-3.0, 0.5]]), [4.0, 2.0], [2.0, 1.0], [0.3, -2.0])
    np.testing.assert_allclose(np.linalg.norm(normals, axis=2), 1.0)
    assert np.all(np.einsum("kfi,ki->kf", normals, [[1.0, 2.0], [-3.0, 0.5]]) < offsets)


def test_outline_samples_lie_on_the_faces_seen_from_the_viewpoint():
    samples = outline_samples(np.array([10.0, 0.0]), 4.0, 2.0, 0.0, np.array([0.0, 5.0]), 8)
    assert samples.shape == (8, 2)
    # Seen from behind-left: the back face (x = 8) and the left face (y = 1) only.
    on_back = np.isclose(samples[:, 0], 8.0)
    on_left = np.isclose(samples[:, 1], 1.0)
    assert np.all(on_back | on_left) and on_back.any() and on_left.any()
