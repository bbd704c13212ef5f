"""CROA plans → nav_msgs/Path and visualization_msgs/MarkerArray (the planned path, the target's
sight lines coloured blocked/clear, the obstacles given collision constraints, the target and the
corridor's edges), after a DELETEALL so the previous cycle's markers vanish."""
from __future__ import annotations

from typing import Sequence

import numpy as np
from geometry_msgs.msg import Point, PoseStamped
from nav_msgs.msg import Path
from std_msgs.msg import ColorRGBA, Header
from visualization_msgs.msg import Marker, MarkerArray

from planners.croa.scene import Corridor, Obstacle, Plan
from robot_nodes.conversions.geometry import seconds_to_stamp, se2_to_pose, stamp_to_seconds

PATH_COLOR = (0.2, 0.9, 0.3)
"""RGB of an optimised path."""
FALLBACK_COLOR = (1.0, 0.45, 0.0)
"""RGB of a braking (fallback) path."""
BLOCKED_COLOR = (1.0, 0.15, 0.15)
"""RGB of a sight line that meets an occluder."""
CLEAR_COLOR = (0.2, 1.0, 0.4)
"""RGB of a sight line in the clear."""
OBSTACLE_COLOR = (0.75, 0.75, 0.75)
"""RGB of the obstacles given collision constraints."""
TARGET_COLOR = (1.0, 0.9, 0.0)
"""RGB of the target."""
CORRIDOR_COLOR = (0.3, 0.5, 1.0)
"""RGB of the corridor's edges."""
LINE_WIDTH = 0.1
"""Width of paths and outlines, metres."""
SIGHT_LINE_WIDTH = 0.04
"""Width of sight lines, metres."""
TARGET_LINE_WIDTH = 0.25
"""Width of the target's outline, metres."""
TEXT_HEIGHT = 0.8
"""Height of the target's label, metres."""
MARKER_Z = 0.2
"""Height of everything drawn on the ground, metres."""


def plan_to_path(plan: Plan, header: Header, time_step: float) -> Path:
    """The planned states as poses (position, yaw quaternion) in the header's frame, each stamped
    with the header's stamp plus its time along the plan."""
    start = stamp_to_seconds(header.stamp)
    poses = []
    for index, (x, y, yaw, _) in enumerate(plan.states.tolist()):
        pose = PoseStamped(pose=se2_to_pose(x, y, yaw))
        pose.header.frame_id = header.frame_id
        pose.header.stamp = seconds_to_stamp(start + index * time_step)
        poses.append(pose)
    return Path(header=header, poses=poses)


def _color(rgb: tuple[float, float, float], alpha: float = 1.0) -> ColorRGBA:
    return ColorRGBA(r=float(rgb[0]), g=float(rgb[1]), b=float(rgb[2]), a=float(alpha))


def _points(xy: np.ndarray) -> list[Point]:
    return [Point(x=float(x), y=float(y), z=MARKER_Z) for x, y in np.asarray(xy).reshape(-1, 2).tolist()]


def _marker(header: Header, namespace: str, index: int, kind: int, rgb, width: float) -> Marker:
    marker = Marker(header=header, ns=namespace, id=index, type=kind, action=Marker.ADD, color=_color(rgb))
    marker.pose.orientation.w = 1.0
    marker.scale.x = width
    return marker


def _outline(obstacle: Obstacle) -> np.ndarray:
    """The obstacle's rectangle now as a closed ring (5, 2)."""
    x, y, yaw = obstacle.poses[0]
    local = np.array([[1, 1], [-1, 1], [-1, -1], [1, -1], [1, 1]]) * [obstacle.length / 2.0, obstacle.width / 2.0]
    cos, sin = np.cos(yaw), np.sin(yaw)
    return local @ np.array([[cos, sin], [-sin, cos]]) + [x, y]


def plan_to_markers(plan: Plan, header: Header, namespace: str, obstacles: Sequence[Obstacle] = (),
                    target: Obstacle | None = None, corridor: Corridor | None = None) -> MarkerArray:
    """A DELETEALL, then the path (ns `<namespace>/path`, orange when it is a fallback), one
    LINE_LIST of sight lines with a colour per line (`/sight_lines`: red blocked, green clear), an
    outline per obstacle given collision constraints (`/obstacles`), the target's thick outline and
    label with its occlusion ratios (`/target`) and the corridor's edges (`/corridor`)."""
    markers = [Marker(header=header, action=Marker.DELETEALL)]
    path = _marker(header, f"{namespace}/path", 0, Marker.LINE_STRIP,
                   FALLBACK_COLOR if plan.fallback else PATH_COLOR, LINE_WIDTH)
    path.points = _points(plan.states[:, :2])
    markers.append(path)
    if len(plan.sight_lines):
        lines = _marker(header, f"{namespace}/sight_lines", 0, Marker.LINE_LIST, CLEAR_COLOR, SIGHT_LINE_WIDTH)
        lines.points = _points(plan.sight_lines)
        lines.colors = [_color(BLOCKED_COLOR if blocked else CLEAR_COLOR)
                        for blocked in np.repeat(np.asarray(plan.sight_blocked, dtype=bool), 2).tolist()]
        markers.append(lines)
    constrained = set(plan.obstacle_ids)
    for index, obstacle in enumerate(o for o in obstacles if o.object_id in constrained):
        outline = _marker(header, f"{namespace}/obstacles", index, Marker.LINE_STRIP, OBSTACLE_COLOR, LINE_WIDTH)
        outline.points = _points(_outline(obstacle))
        markers.append(outline)
    if target is not None:
        outline = _marker(header, f"{namespace}/target", 0, Marker.LINE_STRIP, TARGET_COLOR, TARGET_LINE_WIDTH)
        outline.points = _points(_outline(target))
        label = _marker(header, f"{namespace}/target", 1, Marker.TEXT_VIEW_FACING, TARGET_COLOR, 0.0)
        label.text = (f"target #{target.object_id}: hidden {plan.occlusion_ratio_now:.0%} now, "
                      f"{plan.occlusion_ratio:.0%} planned")
        label.pose.position.x, label.pose.position.y = (float(value) for value in target.poses[0, :2])
        label.pose.position.z = float(target.height) + TEXT_HEIGHT
        label.scale.z = TEXT_HEIGHT
        markers += [outline, label]
    if corridor is not None:
        arc, _, _, _ = corridor.project(corridor.centerline)
        for index, offset in enumerate((corridor.right, corridor.left)):
            edge = _marker(header, f"{namespace}/corridor", index, Marker.LINE_STRIP, CORRIDOR_COLOR, LINE_WIDTH)
            edge.points = _points(corridor.point_at(arc, offset))
            markers.append(edge)
    return MarkerArray(markers=markers)
