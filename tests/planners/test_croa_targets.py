"""planners.croa.targets: the corridor of the ego's driving direction from lane centre lines, and the
automatic target (the most occluded object of interest ahead) with its thresholds, ties and hysteresis."""
from __future__ import annotations

import math

import numpy as np
import pytest

from perception.objects import Box3D, ObjectClass
from planners.croa.scene import Corridor, EgoState, Obstacle
from planners.croa.targets import (TargetSelectionConfig, corridor_for_lane, occlusion_ratios, select_target,
                                   sensor_position)
from sim.road import RoadGeometry
from sim.scenario import RoadConfig

LANE_WIDTH = 3.5
STEPS = 5


def road(curvature: float = 0.0) -> RoadGeometry:
    return RoadGeometry(RoadConfig(lanes_per_direction=3, lane_width=LANE_WIDTH, length=600.0, curvature=curvature))


def corridor_of(geometry: RoadGeometry, x: float, y: float, yaw: float, **cut) -> Corridor:
    return corridor_for_lane(geometry.centerlines(), geometry.config.lane_width, geometry.lane_directions,
                             x, y, yaw, **cut)


def box(x: float, y: float, size=(4.5, 1.9, 1.6), yaw: float = 0.0) -> Box3D:
    return Box3D((x, y, size[2] / 2.0), size, yaw)


def standing(object_id: int, x: float, y: float, size=(4.5, 1.9, 1.6)) -> Obstacle:
    return Obstacle.standing(box(x, y, size), STEPS, object_id)


TRUCK = (9.0, 2.5, 3.5)
EGO = EgoState(0.0, -5.25, 0.0, 7.0)
"""In the middle lane of three driving +x (lanes at y = -8.75, -5.25, -1.75)."""


def lane_corridor() -> Corridor:
    return corridor_of(road(), EGO.x + 100.0, EGO.y, 0.0, behind=200.0, ahead=200.0)


def scene_with_hidden_car() -> list[Obstacle]:
    """A truck in the right lane 25 m ahead hiding a car beyond it; a car in full view in the left lane."""
    return [standing(1, 25.0, -8.75, TRUCK), standing(2, 35.0, -9.5), standing(3, 30.0, -1.75)]


# --- corridor ---------------------------------------------------------------------------------------


def test_the_corridor_spans_every_lane_of_the_ego_direction_and_no_oncoming_lane():
    geometry = road()
    corridor = corridor_of(geometry, 100.0, -5.25, 0.05)
    assert np.allclose(corridor.centerline[:, 1], -5.25)
    assert np.all(np.diff(corridor.centerline[:, 0]) > 0)  # ordered the way the ego drives
    assert (corridor.right, corridor.left, corridor.reference_offset) == pytest.approx((-5.25, 5.25, 0.0))
    rightmost = corridor_of(geometry, 100.0, -8.0, 0.0)
    assert np.allclose(rightmost.centerline[:, 1], -8.75)
    assert (rightmost.right, rightmost.left) == pytest.approx((-1.75, 8.75))  # up to the centre line, not beyond
    # The lane at y = -1.75 is the ego's when it is nearest, even next to the oncoming lane at +1.75.
    inner = corridor_of(geometry, 100.0, -0.2, 0.0)
    assert np.allclose(inner.centerline[:, 1], -1.75) and inner.left == pytest.approx(1.75)


def test_the_corridor_of_an_ego_driving_the_other_way_runs_backwards_over_the_oncoming_lanes():
    corridor = corridor_of(road(), 300.0, 5.0, math.pi)
    assert np.allclose(corridor.centerline[:, 1], 5.25)
    assert np.all(np.diff(corridor.centerline[:, 0]) < 0)
    # Driving -x, left is -y: the lane at +1.75 is the left one, the lane at +8.75 the right one.
    assert (corridor.right, corridor.left) == pytest.approx((-5.25, 5.25))
    _, lateral, _, _ = corridor.project(np.array([[300.0, 1.75], [300.0, 8.75]]))
    assert lateral == pytest.approx([3.5, -3.5])
    # An ego crossing the road at right angles takes the lanes it faces (here the oncoming ones).
    crossing = corridor_of(road(), 300.0, 0.5, math.pi / 2.0 + 0.2)
    assert np.all(np.diff(crossing.centerline[:, 0]) < 0)


def test_the_corridor_is_cut_around_the_ego_and_follows_a_bend():
    geometry = road(curvature=0.003)
    s = 250.0
    x, y = geometry.to_map(s, -5.25)
    corridor = corridor_of(geometry, x, y, float(geometry.heading(s)), behind=20.0, ahead=80.0)
    arc, lateral, _, tangent = corridor.project(np.array([[x, y]]))
    assert lateral[0] == pytest.approx(0.0, abs=1e-2)
    assert 20.0 <= arc[0] <= 22.0  # at most one point spacing (2 m) more behind than asked
    length = np.sum(np.linalg.norm(np.diff(corridor.centerline, axis=0), axis=1))
    assert 100.0 <= length <= 104.0
    assert (corridor.right, corridor.left) == pytest.approx((-5.25, 5.25), abs=1e-2)
    s_ahead = 300.0
    _, lateral, _, _ = corridor.project(geometry.to_map(s_ahead, np.array([-8.75, -1.75])))
    assert lateral == pytest.approx([-3.5, 3.5], abs=1e-2)  # the lanes stay where they are along the bend
    assert np.arctan2(tangent[0, 1], tangent[0, 0]) == pytest.approx(geometry.heading(s), abs=1e-2)
    # Past the end of the road the corridor is the last piece of it, never empty.
    end = corridor_of(geometry, *geometry.to_map(620.0, -5.25), float(geometry.heading(600.0)))
    assert len(end.centerline) >= 2


def test_the_corridor_refuses_inconsistent_lanes():
    geometry = road()
    with pytest.raises(ValueError, match="directions"):
        corridor_for_lane(geometry.centerlines(), LANE_WIDTH, [1, -1], 0.0, 0.0, 0.0)
    with pytest.raises(ValueError, match="lane_width"):
        corridor_for_lane(geometry.centerlines(), 0.0, geometry.lane_directions, 0.0, 0.0, 0.0)


# --- target selection -------------------------------------------------------------------------------


def test_the_most_occluded_object_of_interest_ahead_is_chosen():
    obstacles = scene_with_hidden_car()
    ratios = occlusion_ratios(sensor_position(EGO), obstacles)
    assert ratios[1] >= 0.5 and ratios[2] == 0.0 and ratios[0] == 0.0
    labels = {1: ObjectClass.TRUCK, 2: ObjectClass.CAR, 3: ObjectClass.CAR}
    assert select_target(EGO, obstacles, lane_corridor(), labels, TargetSelectionConfig()) == 2
    assert select_target(EGO, obstacles, lane_corridor(), None, TargetSelectionConfig()) == 2
    # Of no interest, or of unknown class: not chosen.
    labels[2] = ObjectClass.PEDESTRIAN
    assert select_target(EGO, obstacles, lane_corridor(), labels,
                         TargetSelectionConfig(classes=["car", "truck"])) is None
    assert select_target(EGO, obstacles, lane_corridor(), {1: ObjectClass.TRUCK}, TargetSelectionConfig()) is None
    assert select_target(EGO, [], lane_corridor(), None, TargetSelectionConfig()) is None


def test_objects_out_of_range_barely_hidden_or_behind_low_things_are_not_chosen():
    corridor, config = lane_corridor(), TargetSelectionConfig()
    far = [standing(1, 55.0, -8.75, TRUCK), standing(2, 65.0, -9.5)]
    assert select_target(EGO, far, corridor, None, config) is None
    assert select_target(EGO, far, corridor, None, TargetSelectionConfig(max_distance=80.0)) == 2
    behind = [standing(1, -25.0, -8.75, TRUCK), standing(2, -35.0, -9.5)]
    assert select_target(EGO, behind, corridor, None, config) is None
    # A car parked beyond a low car: lines of sight pass over the low one in the planar model.
    low = [standing(1, 25.0, -8.75, (4.5, 1.9, 1.0)), standing(2, 32.0, -9.2)]
    assert occlusion_ratios(sensor_position(EGO), low)[1] == 0.0
    assert select_target(EGO, low, corridor, None, config) is None
    # A truck that hides only a corner of the car: below the 0.2 threshold.
    corner = [standing(1, 25.0, -10.5, TRUCK), standing(2, 32.0, -9.0)]
    ratio = occlusion_ratios(sensor_position(EGO), corner)[1]
    assert 0.0 < ratio < 0.2
    assert select_target(EGO, corner, corridor, None, config) is None
    assert select_target(EGO, corner, corridor, None, TargetSelectionConfig(min_occlusion=0.1, keep_occlusion=0.0)) == 2
    # Far to the side of the road (beyond max_lateral of the corridor's centre line).
    aside = [standing(1, 25.0, -30.0, TRUCK), standing(2, 35.0, -33.0)]
    assert select_target(EGO, aside, corridor, None, TargetSelectionConfig(min_occlusion=0.0)) is None


def test_ties_go_to_the_nearest_and_the_sensor_mount_is_the_viewpoint():
    # Two cars each fully hidden behind its own truck: the nearer one wins.
    obstacles = [standing(1, 20.0, -8.75, TRUCK), standing(2, 27.0, -9.5), standing(3, 30.0, -1.9, TRUCK),
                 standing(4, 38.0, -1.5)]
    ratios = occlusion_ratios(sensor_position(EGO), obstacles)
    assert ratios[1] == ratios[3] == 1.0
    assert select_target(EGO, obstacles, lane_corridor(), None, TargetSelectionConfig()) == 2
    assert select_target(EGO, obstacles[2:], lane_corridor(), None, TargetSelectionConfig()) == 4
    np.testing.assert_allclose(sensor_position(EgoState(1.0, 2.0, math.pi / 2.0, 0.0), (1.5, 0.5)), [0.5, 3.5])


def test_the_current_target_is_kept_while_it_stays_of_interest_and_in_range():
    corridor, config = lane_corridor(), TargetSelectionConfig()
    obstacles = scene_with_hidden_car()
    # Car 3 is in full view; as the current target it is kept over the hidden car 2.
    assert select_target(EGO, obstacles, corridor, None, config, current=3) == 3
    assert select_target(EGO, obstacles, corridor, None, TargetSelectionConfig(keep_occlusion=0.1), current=3) == 2
    # Once it is no longer a candidate (passed: nearer than min_distance) the hidden car is chosen.
    passing = EgoState(23.0, -5.25, 0.0, 7.0)
    assert select_target(passing, obstacles, corridor, None, config, current=3) == select_target(
        passing, obstacles, corridor, None, config)
    assert select_target(passing, obstacles, corridor, None, config, current=3) != 3
    # A current id that is gone is simply replaced.
    assert select_target(EGO, obstacles, corridor, None, config, current=99) == 2


@pytest.mark.parametrize("values, message", [
    ({"classes": ["car", "dragon"]}, "dragon"),
    ({"min_distance": 30.0, "max_distance": 20.0}, "max_distance"),
    ({"min_occlusion": 0.1, "keep_occlusion": 0.3}, "keep_occlusion"),
    ({"min_occlusion": 1.5}, "min_occlusion"),
])
def test_bad_selection_configs_are_refused(values, message):
    with pytest.raises(ValueError, match=message):
        TargetSelectionConfig(**values)
