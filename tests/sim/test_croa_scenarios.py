"""The CROA evaluation scenes (config/scenarios/croa_*.yaml): each validates and stages one target
25-45 m ahead of the ego, partly hidden from the ego's start with the ego's lane free up to it."""
from pathlib import Path

import numpy as np
import pytest

from sim.scenario import load_scenario
from sim.visibility import target_visibility
from sim.world import World

SCENARIO_DIR = Path(__file__).resolve().parents[2] / "config" / "scenarios"
CROA_FILES = sorted(SCENARIO_DIR.glob("croa_*.yaml"))
CLUTTERED = "[cluttered]"
"""Descriptions of the cluttered scenes start with this; the evaluation groups results by it."""


def test_there_are_ten_distinct_scenes_half_of_them_cluttered():
    assert len(CROA_FILES) >= 10
    scenarios = [load_scenario(path) for path in CROA_FILES]
    assert len({scenario.description for scenario in scenarios}) == len(scenarios)
    assert sum(scenario.description.startswith(CLUTTERED) for scenario in scenarios) >= 5
    assert sum(not scenario.description.startswith(CLUTTERED) for scenario in scenarios) >= 3


@pytest.mark.parametrize("path", CROA_FILES, ids=lambda path: path.stem)
def test_croa_scene(path):
    assert path.read_text(encoding="utf-8").startswith("# ")  # a comment header says what the scene is
    scenario = load_scenario(path)
    assert scenario.name == path.stem and scenario.description
    assert scenario.traffic.count >= 8 and scenario.pedestrians.count > 0 and scenario.parked.fill > 0.0
    assert 6.0 <= scenario.ego.speed <= 8.0

    targets = [staged for staged in scenario.staged if staged.target]
    assert len(targets) == 1 and len(scenario.staged) >= 2  # a target and at least one occluder
    target = targets[0]
    assert 25.0 <= target.ahead <= 45.0

    world = World(scenario, seed=0)
    assert not world.in_collision()
    # The ego's lane is free of staged objects from the ego up to the target (and the target is not in it).
    lane_low, lane_high = world.road.lane_interval(scenario.ego.lane)
    for object_id, staged in zip(world.staged_ids, scenario.staged):
        if 0.0 < staged.ahead <= target.ahead:
            corners = world.object_box(object_id).corners_bev()
            _, lateral = world.road.to_frenet(corners[:, 0], corners[:, 1])
            assert lateral.max() <= lane_low or lateral.min() >= lane_high, (staged, lane_low, lane_high)

    visibility = target_visibility(world, world.target_id)
    assert 0.3 <= visibility.occlusion_ratio <= 0.98, visibility
    assert visibility.visible_area > 0.0
    # Moving helps: from another lane of the ego's direction, at the start, the target shows better.
    road, height = world.road, world.lidar_origin()[2]
    lanes = np.flatnonzero(road.lane_directions == road.lane_directions[scenario.ego.lane])
    others = [target_visibility(world, world.target_id,
                                np.array([*road.to_map(scenario.ego.start_s, road.lane_offsets[lane]), height]))
              for lane in lanes if lane != scenario.ego.lane]
    assert min(other.occlusion_ratio for other in others) < visibility.occlusion_ratio - 0.1
