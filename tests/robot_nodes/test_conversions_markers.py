"""Detections → MarkerArray: a DELETEALL first, then a wireframe box and a "class score" label per object."""
from __future__ import annotations

import math

import numpy as np
import pytest
from std_msgs.msg import Header
from visualization_msgs.msg import Marker

from perception.objects import Box3D, DetectedObject, ObjectClass
from robot_nodes.conversions import detected_objects_to_markers
from robot_nodes.conversions.markers import BOX_EDGES, box_corners

HEADER = Header(frame_id="lidar")


def test_box_corners_are_the_eight_corners_bottom_face_first():
    turned = DetectedObject(ObjectClass.CAR, 0.9, Box3D(center=(10.0, 2.0, -1.0), size=(4.0, 2.0, 1.5),
                                                        yaw=math.pi / 2))
    corners = box_corners([turned])[0]
    assert corners.shape == (8, 3)
    np.testing.assert_allclose(corners[:4, 2], -1.75)
    np.testing.assert_allclose(corners[4:, 2], -0.25)
    np.testing.assert_allclose(corners[:4, :2], corners[4:, :2])
    # Turned by 90 degrees the 4 m length runs along y.
    np.testing.assert_allclose(np.ptp(corners[:, :2], axis=0), [2.0, 4.0], atol=1e-12)
    edge_lengths = sorted(np.linalg.norm(corners[BOX_EDGES[:, 0]] - corners[BOX_EDGES[:, 1]], axis=1).round(9))
    assert edge_lengths == [1.5] * 4 + [2.0] * 4 + [4.0] * 4


def test_markers_clear_the_old_ones_then_draw_each_object():
    objects = [DetectedObject(ObjectClass.PEDESTRIAN, 0.456, Box3D((5.0, 1.0, -0.8), (0.8, 0.7, 1.8), 0.3)),
               DetectedObject(ObjectClass.TRUCK, 0.91, Box3D((20.0, -4.0, 0.0), (9.0, 2.5, 3.2), -1.0))]
    markers = detected_objects_to_markers(objects, HEADER, "lidar_detector").markers
    assert [m.action for m in markers] == [Marker.DELETEALL] + [Marker.ADD] * 4
    boxes, labels = markers[1::2], markers[2::2]
    assert [m.type for m in boxes] == [Marker.LINE_LIST] * 2 and [m.type for m in labels] == [Marker.TEXT_VIEW_FACING] * 2
    assert [m.text for m in labels] == ["pedestrian 0.46", "truck 0.91"]
    assert {m.ns for m in boxes} == {"lidar_detector/boxes"} and [m.id for m in boxes] == [0, 1]
    assert all(m.header.frame_id == "lidar" and len(m.points) == 24 for m in boxes)
    xyz = np.array([(p.x, p.y, p.z) for p in boxes[1].points])
    np.testing.assert_allclose(xyz.mean(axis=0), [20.0, -4.0, 0.0], atol=1e-9)
    assert labels[1].pose.position.z > 1.6  # above the truck's roof
    assert boxes[0].color != boxes[1].color


def test_no_objects_is_just_the_deleteall():
    markers = detected_objects_to_markers([], HEADER).markers
    assert len(markers) == 1 and markers[0].action == Marker.DELETEALL
    assert markers[0].header.frame_id == "lidar"


@pytest.mark.parametrize("label", list(ObjectClass))
def test_every_label_has_a_colour(label):
    marker = detected_objects_to_markers([DetectedObject(label, 0.5, Box3D((0, 0, 0), (1, 1, 1), 0.0))], HEADER).markers[1]
    assert marker.color.a == 1.0 and max(marker.color.r, marker.color.g, marker.color.b) > 0.0
