"""What the CROA planner looks at and where it may drive: automatic target selection (the most
occluded object of interest ahead) and the drivable corridor of the ego's driving direction from
lane centre lines. No ROS; one planar frame (map or odom), metres, radians."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from perception.objects import ObjectClass
from planners.croa.geometry import rotation
from planners.croa.planner import OCCLUDER_MIN_HEIGHT, blocked_sight_lines, halfspaces_at
from planners.croa.scene import Corridor, EgoState, Obstacle
from sim.validation import check_ranges

TIE_DIGITS = 9
"""Occlusion ratios equal to this many decimals count as equal (then the nearest object wins)."""


@dataclass
class TargetSelectionConfig:
    """Which object the planner tries to see better when no target is named."""

    classes: list[str] = field(default_factory=lambda: ["car", "van", "truck", "bus", "pedestrian", "cyclist"])
    """Classes of interest (ObjectClass names in lower case); objects of other classes, or of unknown
    class, are never chosen (they still hide and block)."""
    min_distance: float = field(default=8.0, metadata={"range": (0.0, 500.0)})
    """Nearest a target may be, metres ahead of base_link along the ego's heading (closer ones are
    being passed: looking at them no longer helps)."""
    max_distance: float = field(default=50.0, metadata={"range": (0.0, 500.0)})
    """Furthest a target may be, metres ahead of base_link along the ego's heading."""
    max_lateral: float = field(default=20.0, metadata={"range": (0.0, 500.0)})
    """Largest lateral offset of a target from the corridor's centre line, metres (either side)."""
    min_occlusion: float = field(default=0.2, metadata={"range": (0.0, 1.0)})
    """Least fraction of an object's sight lines blocked (from the sensor now) for it to be chosen."""
    keep_occlusion: float = field(default=0.0, metadata={"range": (0.0, 1.0)})
    """Hysteresis: the current target is kept while it stays of interest and in range and at least
    this fraction of it is hidden (0: kept even once fully in view, so that the planner keeps it in view)."""
    samples: int = field(default=8, metadata={"range": (1, 64)})
    """Points on each object's outline whose sight lines are tested."""
    occluder_min_height: float = field(default=OCCLUDER_MIN_HEIGHT, metadata={"range": (0.0, 10.0)})
    """Objects lower than this (m) hide nothing (the planner's own planar model uses 1.2 m)."""

    def __post_init__(self) -> None:
        check_ranges(self)
        names = {label.name.lower() for label in ObjectClass}
        unknown = [name for name in self.classes if name not in names]
        if unknown:
            raise ValueError(f"classes: unknown class(es) {', '.join(map(repr, unknown))}; "
                             f"known: {', '.join(sorted(names))}")
        if self.min_distance > self.max_distance:
            raise ValueError(f"max_distance: must be >= min_distance ({self.min_distance}), got {self.max_distance}")
        if self.keep_occlusion > self.min_occlusion:
            raise ValueError(f"keep_occlusion: must be <= min_occlusion ({self.min_occlusion}), "
                             f"got {self.keep_occlusion}")

    @property
    def labels(self) -> set[ObjectClass]:
        """The classes of interest as ObjectClass values."""
        return {ObjectClass[name.upper()] for name in self.classes}


def sensor_position(ego: EgoState, mount: Sequence[float] = (0.0, 0.0)) -> np.ndarray:
    """The sensor's planar position: base_link moved by the mount (x ahead, y left), (2,)."""
    return np.array([ego.x, ego.y]) + rotation(ego.yaw) @ np.asarray(mount, dtype=np.float64)


def occlusion_ratios(viewpoint: np.ndarray, obstacles: Sequence[Obstacle], samples: int = 8,
                     occluder_min_height: float = OCCLUDER_MIN_HEIGHT, step: int = 0) -> np.ndarray:
    """For each obstacle, the fraction of the sight lines from `viewpoint` to `samples` points on its
    facing outline that meet another obstacle at least `occluder_min_height` tall (all at horizon
    index `step`), (N,)."""
    if not obstacles:
        return np.zeros(0)
    viewpoint = np.asarray(viewpoint, dtype=np.float64)
    normals, offsets = halfspaces_at(list(obstacles), step)
    tall = np.array([obstacle.height >= occluder_min_height for obstacle in obstacles])
    ratios = np.zeros(len(obstacles))
    for index, obstacle in enumerate(obstacles):
        occluders = tall.copy()
        occluders[index] = False
        _, blocked = blocked_sight_lines(viewpoint, obstacle, step, normals[occluders], offsets[occluders], samples)
        ratios[index] = float(blocked.mean())
    return ratios


def select_target(ego: EgoState, obstacles: Sequence[Obstacle], corridor: Corridor,
                  labels: dict[int, ObjectClass] | None, config: TargetSelectionConfig, *,
                  mount: Sequence[float] = (0.0, 0.0), current: int | None = None) -> int | None:
    """The object id the planner should try to see: the most occluded object of interest ahead.

    Candidates: obstacles with a non-negative id, whose class (`labels[id]`; every obstacle when
    `labels` is None, none missing from it otherwise) is of interest, between min_distance and
    max_distance ahead of base_link along the ego's heading and within max_lateral of the
    corridor's centre line. Each one's occlusion ratio is taken from the sensor now (base_link +
    `mount` (x, y)) against the other obstacles that are tall enough. The chosen one has the highest
    ratio, at least min_occlusion; ties go to the nearest. `current` (the previous answer) is kept
    while it is still a candidate hidden by at least keep_occlusion. None when nothing qualifies.
    """
    if not obstacles:
        return None
    wanted = config.labels
    heading = np.array([math.cos(ego.yaw), math.sin(ego.yaw)])
    centers = np.array([obstacle.poses[0, :2] for obstacle in obstacles])
    ahead = (centers - [ego.x, ego.y]) @ heading
    _, lateral, _, _ = corridor.project(centers)
    candidate = np.array([
        obstacle.object_id >= 0
        and (labels is None or (obstacle.object_id in labels and labels[obstacle.object_id] in wanted))
        for obstacle in obstacles])
    candidate &= (ahead >= config.min_distance) & (ahead <= config.max_distance)
    candidate &= np.abs(lateral) <= config.max_lateral
    if not candidate.any():
        return None
    ratios = occlusion_ratios(sensor_position(ego, mount), obstacles, config.samples, config.occluder_min_height)
    if current is not None:
        for index, obstacle in enumerate(obstacles):
            if obstacle.object_id == current and candidate[index] and ratios[index] >= config.keep_occlusion:
                return int(current)
    eligible = np.flatnonzero(candidate & (ratios >= config.min_occlusion))
    if not len(eligible):
        return None
    distances = np.linalg.norm(centers[eligible] - [ego.x, ego.y], axis=1)
    best = min(range(len(eligible)), key=lambda k: (-round(ratios[eligible[k]], TIE_DIGITS), distances[k]))
    return int(obstacles[eligible[best]].object_id)


def corridor_for_lane(centerlines: Sequence[np.ndarray], lane_width: float, directions: Sequence[int],
                      x: float, y: float, yaw: float, behind: float = 30.0, ahead: float = 150.0) -> Corridor:
    """The drivable corridor of the ego at (x, y, yaw): every lane of its driving direction.

    centerlines: each lane's centre line (M, 2); directions: +1 where a lane is driven in the order
    of its points, -1 where against it (RoadGeometry.lane_directions). The reference centre line is
    the nearest lane whose driving direction is within 90 degrees of the ego's heading (the best
    aligned lane when none is), ordered in its driving direction and cut to `behind` .. `ahead`
    metres around the ego; right/left are the outer edges of all lanes driven the same way
    (oncoming lanes are never part of it); reference_offset is 0 (the ego's own lane).
    """
    if len(centerlines) == 0 or len(centerlines) != len(directions):
        raise ValueError(f"directions: need one per centre line ({len(centerlines)}), got {len(directions)}")
    if not lane_width > 0.0:
        raise ValueError(f"lane_width: must be > 0, got {lane_width}")
    position = np.array([x, y], dtype=np.float64)
    heading = np.array([math.cos(yaw), math.sin(yaw)])
    lanes = [Corridor(np.asarray(line, dtype=np.float64)[::1 if direction > 0 else -1], -lane_width / 2.0,
                      lane_width / 2.0) for line, direction in zip(centerlines, directions)]
    distances, alignments, arcs = [], [], []
    for lane in lanes:
        arc, lateral, _, tangent = lane.project(position)
        distances.append(abs(float(lateral[0])))
        alignments.append(float(tangent[0] @ heading))
        arcs.append(float(arc[0]))
    distances, alignments = np.array(distances), np.array(alignments)
    matching = alignments > 0.0
    if not matching.any():
        matching = np.sign(np.asarray(directions)) == np.sign(directions[int(np.argmax(alignments))])
    reference = int(np.flatnonzero(matching)[np.argmin(distances[matching])])
    same_direction = [index for index, direction in enumerate(directions)
                      if np.sign(direction) == np.sign(directions[reference])]
    line = _cut(lanes[reference], arcs[reference] - behind, arcs[reference] + ahead)
    corridor = Corridor(line, -lane_width / 2.0, lane_width / 2.0)
    offsets = []
    for index in same_direction:
        _, _, foot, _ = lanes[index].project(position)  # that lane's centre beside the ego
        offsets.append(float(corridor.project(foot)[1][0]))
    return Corridor(line, min(offsets) - lane_width / 2.0, max(offsets) + lane_width / 2.0, 0.0)


def _cut(lane: Corridor, start: float, end: float) -> np.ndarray:
    """The lane's centre-line points between arc lengths start and end, with the points just
    outside so the cut covers the whole interval, (>= 2, 2)."""
    points = lane.centerline
    arc = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(points, axis=0), axis=1))])
    first = max(int(np.searchsorted(arc, start, side="right")) - 1, 0)
    last = min(int(np.searchsorted(arc, end, side="left")), len(points) - 1)
    if last <= first:  # the interval lies beyond one end of the line: that end's segment
        first = min(first, len(points) - 2)
        last = first + 1
    return points[first:last + 1]
