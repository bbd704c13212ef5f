"""perception.objects detections and predictions → visualization_msgs/MarkerArray for RViz: a
wireframe box and a label per object (and a line per predicted mode), after a DELETEALL so the
markers of the previous message vanish."""
from __future__ import annotations

from typing import Sequence

import numpy as np
from geometry_msgs.msg import Point
from std_msgs.msg import ColorRGBA, Header
from visualization_msgs.msg import Marker, MarkerArray

from perception.objects import DetectedObject, ObjectClass, PredictedObject, boxes_to_array, corners_bev

CLASS_COLORS: dict[ObjectClass, tuple[float, float, float]] = {
    ObjectClass.UNKNOWN: (0.7, 0.7, 0.7),
    ObjectClass.CAR: (0.1, 0.6, 1.0),
    ObjectClass.VAN: (0.1, 0.8, 0.9),
    ObjectClass.TRUCK: (1.0, 0.55, 0.0),
    ObjectClass.BUS: (1.0, 0.8, 0.0),
    ObjectClass.PEDESTRIAN: (1.0, 0.1, 0.3),
    ObjectClass.CYCLIST: (0.6, 1.0, 0.1),
}
"""RGB of each label's box and text."""

BOX_EDGES = np.array([(0, 1), (1, 2), (2, 3), (3, 0),   # bottom face
                      (4, 5), (5, 6), (6, 7), (7, 4),   # top face
                      (0, 4), (1, 5), (2, 6), (3, 7)])  # verticals
"""The 12 edges of a box as pairs of indices into its 8 corners (bottom four, then top four)."""

LINE_WIDTH = 0.08
"""Box line width, metres."""
TEXT_HEIGHT = 0.8
"""Height of a capital letter of the label, metres."""


PATH_WIDTH = 0.15
"""Predicted path line width, metres."""


def box_corners(objects: Sequence[DetectedObject]) -> np.ndarray:
    """The 8 corners (x, y, z) of each object's box, bottom face first, shape (N, 8, 3)."""
    if not objects:
        return np.zeros((0, 8, 3))
    rows = boxes_to_array([o.box for o in objects])
    ground = corners_bev(rows)  # (N, 4, 2), counter-clockwise
    bottom = rows[:, 2:3] - rows[:, 5:6] / 2.0
    top = rows[:, 2:3] + rows[:, 5:6] / 2.0
    corners = np.empty((len(objects), 8, 3))
    corners[:, :4, :2] = corners[:, 4:, :2] = ground
    corners[:, :4, 2], corners[:, 4:, 2] = bottom, top
    return corners


def _box_and_label(header: Header, namespace: str, index: int, label_class: ObjectClass, corners: np.ndarray,
                   center: np.ndarray, height: float, text: str) -> list[Marker]:
    red, green, blue = CLASS_COLORS.get(label_class, CLASS_COLORS[ObjectClass.UNKNOWN])
    color = ColorRGBA(r=red, g=green, b=blue, a=1.0)
    box = Marker(header=header, ns=f"{namespace}/boxes", id=index, type=Marker.LINE_LIST, action=Marker.ADD,
                 color=color, points=[Point(x=x, y=y, z=z) for x, y, z in corners[BOX_EDGES.ravel()].tolist()])
    box.pose.orientation.w = 1.0
    box.scale.x = LINE_WIDTH
    label = Marker(header=header, ns=f"{namespace}/labels", id=index, type=Marker.TEXT_VIEW_FACING,
                   action=Marker.ADD, color=color, text=text)
    x, y, z = center.tolist()
    label.pose.position.x, label.pose.position.y = x, y
    label.pose.position.z = z + height / 2.0 + TEXT_HEIGHT
    label.pose.orientation.w = 1.0
    label.scale.z = TEXT_HEIGHT
    return [box, label]


def detected_objects_to_markers(objects: Sequence[DetectedObject], header: Header,
                                namespace: str = "detections") -> MarkerArray:
    """A DELETEALL, then per object a LINE_LIST box (ns `<namespace>/boxes`) and a TEXT_VIEW_FACING
    label "class score" above it (ns `<namespace>/labels`), both with the object's index as id."""
    markers = [Marker(header=header, action=Marker.DELETEALL)]
    for index, (detected, corners) in enumerate(zip(objects, box_corners(objects))):
        markers += _box_and_label(header, namespace, index, detected.label, corners, detected.box.center,
                                  detected.box.size[2], f"{detected.label.name.lower()} {detected.score:.2f}")
    return MarkerArray(markers=markers)


def predicted_objects_to_markers(objects: Sequence[PredictedObject], header: Header,
                                 namespace: str = "predictions") -> MarkerArray:
    """A DELETEALL, then per track its box and "#id class" label (ids: the object's index) and per
    mode a LINE_STRIP from the box centre along the path (ns `<namespace>/paths`), opacity = probability."""
    markers = [Marker(header=header, action=Marker.DELETEALL)]
    corners = box_corners([o.track for o in objects])
    path_id = 0
    for index, (predicted, box_corners_of_track) in enumerate(zip(objects, corners)):
        track = predicted.track
        markers += _box_and_label(header, namespace, index, track.label, box_corners_of_track, track.box.center,
                                  track.box.size[2], f"#{track.object_id} {track.label.name.lower()}")
        red, green, blue = CLASS_COLORS.get(track.label, CLASS_COLORS[ObjectClass.UNKNOWN])
        z = float(track.box.center[2])
        for path in predicted.paths:
            line = Marker(header=header, ns=f"{namespace}/paths", id=path_id, type=Marker.LINE_STRIP,
                          action=Marker.ADD, color=ColorRGBA(r=red, g=green, b=blue, a=0.2 + 0.8 * path.probability),
                          points=[Point(x=float(x), y=float(y), z=z) for x, y in
                                  [track.box.center[:2].tolist(), *path.positions.tolist()]])
            line.pose.orientation.w = 1.0
            line.scale.x = PATH_WIDTH
            markers.append(line)
            path_id += 1
    return MarkerArray(markers=markers)
