"""Road coordinates, box overlap and the scene's meshes."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sim.geometry import BoxSet, rectangles_overlap
from sim.object_models import OBJECT_MODELS
from sim.road import RoadGeometry
from sim.scenario import RoadConfig

finite = dict(allow_nan=False, allow_infinity=False)


@settings(max_examples=60, deadline=None)
@given(curvature=st.floats(-0.0015, 0.0015, **finite), s=st.floats(-100.0, 1100.0, **finite),
       d=st.floats(-40.0, 40.0, **finite))
def test_frenet_round_trip(curvature, s, d):
    road = RoadGeometry(RoadConfig(length=1000.0, curvature=curvature))
    x, y = road.to_map(s, d)
    back_s, back_d = road.to_frenet(x, y)
    assert (back_s, back_d) == pytest.approx((s, d), abs=1e-6)


def test_curved_road_heading_follows_the_centre_line():
    road = RoadGeometry(RoadConfig(length=1000.0, curvature=0.002))
    points = road.to_map(np.array([500.0, 500.01]), 0.0)
    direction = np.diff(points, axis=0)[0]
    assert np.arctan2(direction[1], direction[0]) == pytest.approx(road.heading(500.0), abs=1e-4)
    tangent, normal = road.tangent_normal(500.0)
    assert road.to_map(500.0, 3.0) == pytest.approx(points[0] + 3.0 * normal)
    assert tangent @ normal == pytest.approx(0.0)


def _box(x, y, yaw, length=4.0, width=2.0):
    return BoxSet([[x, y, 0.75]], [[length, width, 1.5]], [yaw])


@pytest.mark.parametrize("second, overlapping", [
    (_box(3.9, 0.0, 0.0), True), (_box(4.1, 0.0, 0.0), False), (_box(0.0, 1.9, 0.0), True),
    (_box(3.5, 2.5, np.pi / 4), False), (_box(2.5, 1.5, np.pi / 4), True), (_box(0.0, 0.0, 1.0, 0.5, 0.5), True),
])
def test_rectangles_overlap(second, overlapping):
    first = _box(0.0, 0.0, 0.0)
    assert rectangles_overlap(first.corners_bev(), second.corners_bev())[0] == overlapping
    assert rectangles_overlap(second.corners_bev(), first.corners_bev())[0] == overlapping


@pytest.mark.parametrize("label", list(OBJECT_MODELS))
def test_object_meshes_fill_their_box_exactly(label):
    """Ground-truth boxes are the meshes' bounding boxes, so lidar points fall inside them."""
    vertices = OBJECT_MODELS[label].mesh.vertices
    np.testing.assert_allclose(vertices.min(axis=0), [-0.5, -0.5, -0.5])
    np.testing.assert_allclose(vertices.max(axis=0), [0.5, 0.5, 0.5])
