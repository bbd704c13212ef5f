"""perception.objects detections → visualization_msgs/MarkerArray for RViz: a wireframe box and a
"class score" label per object, after a DELETEALL so the markers of the previous message vanish."""
from __future__ import annotations

from typing import Sequence

import numpy as np
from geometry_msgs.msg import Point
from std_msgs.msg import ColorRGBA, Header
from visualization_msgs.msg import Marker, MarkerArray

from perception.objects import DetectedObject, ObjectClass, corners_bev

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


def box_corners(objects: Sequence[DetectedObject]) -> np.ndarray:
    """The 8 corners (x, y, z) of each object's box, bottom face first, shape (N, 8, 3)."""
    if not objects:
        return np.zeros((0, 8, 3))
    rows = np.array([[*o.box.center, *o.box.size, o.box.yaw] for o in objects], dtype=np.float64)
    ground = corners_bev(rows)  # (N, 4, 2), counter-clockwise
    bottom = rows[:, 2:3] - rows[:, 5:6] / 2.0
    top = rows[:, 2:3] + rows[:, 5:6] / 2.0
    corners = np.empty((len(objects), 8, 3))
    corners[:, :4, :2] = corners[:, 4:, :2] = ground
    corners[:, :4, 2], corners[:, 4:, 2] = bottom, top
    return corners


def detected_objects_to_markers(objects: Sequence[DetectedObject], header: Header,
                                namespace: str = "detections") -> MarkerArray:
    """A DELETEALL, then per object a LINE_LIST box (ns `<namespace>/boxes`) and a TEXT_VIEW_FACING
    label "class score" above it (ns `<namespace>/labels`), both with the object's index as id."""
    markers = [Marker(header=header, action=Marker.DELETEALL)]
    for index, (detected, corners) in enumerate(zip(objects, box_corners(objects))):
        red, green, blue = CLASS_COLORS.get(detected.label, CLASS_COLORS[ObjectClass.UNKNOWN])
        color = ColorRGBA(r=red, g=green, b=blue, a=1.0)
        box = Marker(header=header, ns=f"{namespace}/boxes", id=index, type=Marker.LINE_LIST, action=Marker.ADD,
                     color=color, points=[Point(x=x, y=y, z=z) for x, y, z in corners[BOX_EDGES.ravel()].tolist()])
        box.pose.orientation.w = 1.0
        box.scale.x = LINE_WIDTH
        label = Marker(header=header, ns=f"{namespace}/labels", id=index, type=Marker.TEXT_VIEW_FACING,
                       action=Marker.ADD, color=color, text=f"{detected.label.name.lower()} {detected.score:.2f}")
        x, y, z = detected.box.center.tolist()
        label.pose.position.x, label.pose.position.y = x, y
        label.pose.position.z = z + detected.box.size[2] / 2.0 + TEXT_HEIGHT
        label.pose.orientation.w = 1.0
        label.scale.z = TEXT_HEIGHT
        markers += [box, label]
    return MarkerArray(markers=markers)
