"""Agent-frame features, behaviour statistics and dynamic centrality."""
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from perception.prediction.features import (BEHAVIOUR_FEATURES, EDGE_FEATURES, MIRRORED, STEP_FEATURES, FeatureConfig,
                                            interaction_centrality, scene_features, to_local, to_world)

CONFIG = FeatureConfig(neighbour_radius=30.0, kernel_distance=5.0, kernel_speed=2.0)


def moving_scene(seed: int = 0, agents: int = 5, steps: int = 6) -> np.ndarray:
    rng = np.random.default_rng(seed)
    start = rng.uniform(-15, 15, (agents, 1, 2))
    velocity = rng.uniform(1.0, 4.0, (agents, 1, 1)) * np.stack([np.cos(a := rng.uniform(-3, 3, (agents, 1))),
                                                                 np.sin(a)], axis=-1)
    history = start + velocity * 0.5 * np.arange(steps)[None, :, None]
    history += rng.normal(0, 0.05, history.shape)
    history[0, :2] = np.nan  # one agent appears late
    return history


def transformed(history: np.ndarray, angle: float, offset: tuple[float, float], mirror: bool = False) -> np.ndarray:
    points = history.copy()
    if mirror:
        points[..., 1] *= -1
    rotation = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    return points @ rotation.T + np.asarray(offset)


@settings(max_examples=25, deadline=None)
@given(st.floats(-math.pi, math.pi), st.floats(-100, 100), st.floats(-100, 100), st.integers(0, 1000))
def test_features_do_not_depend_on_where_the_scene_is(angle, dx, dy, seed):
    history = moving_scene(seed)
    headings = np.full(history.shape[:2], np.nan)
    original = scene_features(history, headings, 0.5, CONFIG)
    moved = scene_features(transformed(history, angle, (dx, dy)), headings, 0.5, CONFIG)
    np.testing.assert_allclose(moved.steps, original.steps, atol=2e-3)
    np.testing.assert_allclose(moved.behaviour, original.behaviour, atol=2e-3)
    np.testing.assert_allclose(moved.edges, original.edges, atol=2e-3)
    np.testing.assert_array_equal(moved.edge_mask, original.edge_mask)


def test_mirroring_the_world_flips_exactly_the_mirrored_features():
    """The training augmentation flips these channels; it must equal features of a mirrored world."""
    history = moving_scene(3)
    headings = np.full(history.shape[:2], np.nan)
    original = scene_features(history, headings, 0.5, CONFIG)
    mirrored = scene_features(transformed(history, 0.0, (0, 0), mirror=True), headings, 0.5, CONFIG)
    step_signs = np.array([-1.0 if name in MIRRORED["step"] else 1.0 for name in STEP_FEATURES])
    edge_signs = np.array([-1.0 if name in MIRRORED["edge"] else 1.0 for name in EDGE_FEATURES])
    np.testing.assert_allclose(mirrored.steps, original.steps * step_signs, atol=1e-4)
    np.testing.assert_allclose(mirrored.edges, original.edges * edge_signs, atol=1e-4)
    np.testing.assert_allclose(mirrored.behaviour, original.behaviour, atol=1e-4)


def test_agent_frame_points_along_the_motion_and_round_trips():
    history = np.stack([np.zeros(4), np.arange(4.0)], axis=-1)[None]  # moving north at 2 m/s
    features = scene_features(history, np.full((1, 4), np.nan), 0.5, CONFIG)
    steps = features.steps[0]
    np.testing.assert_allclose(steps[:, STEP_FEATURES.index("x")], [-3, -2, -1, 0], atol=1e-6)
    np.testing.assert_allclose(steps[1:, STEP_FEATURES.index("vx")], 2.0, atol=1e-6)
    np.testing.assert_allclose(steps[:, STEP_FEATURES.index("y")], 0.0, atol=1e-6)
    local = np.array([[[1.0, 0.5]]])
    np.testing.assert_allclose(to_world(local, features), [[[-0.5, 4.0]]], atol=1e-9)
    np.testing.assert_allclose(to_local(to_world(local, features), features), local, atol=1e-9)
    assert features.behaviour[0, BEHAVIOUR_FEATURES.index("speed_mean")] == pytest.approx(2.0)


def test_centrality_on_a_three_agent_line():
    """A–B–C one metre apart, same velocity, kernel width 1 m: hand-computed degree and closeness."""
    config = FeatureConfig(neighbour_radius=10.0, kernel_distance=1.0, kernel_speed=1.0)
    positions = np.array([[[0.0, 0.0]], [[1.0, 0.0]], [[2.0, 0.0]]])
    centrality = interaction_centrality(positions, np.zeros_like(positions), config)[:, 0]
    near, far = math.exp(-0.5), math.exp(-2.0)
    np.testing.assert_allclose(centrality[:, 0], [near + far, 2 * near, near + far])
    # A reaches B at 1/near and C through B at 2/near (shorter than 1/far directly).
    closeness_a = 2 * 2 / ((1 / near + 2 / near) * 2)
    np.testing.assert_allclose(centrality[[0, 2], 1], closeness_a)
    np.testing.assert_allclose(centrality[1, 1], 2 * 2 / ((2 / near) * 2))
    weights = np.array([[0, near, far], [near, 0, near], [far, near, 0]])
    eigenvector = centrality[:, 2]
    value = weights @ eigenvector / eigenvector
    np.testing.assert_allclose(value, value[0])  # an eigenvector, and the middle agent is the most central
    assert np.linalg.norm(eigenvector) == pytest.approx(1.0) and eigenvector[1] > eigenvector[0]


def test_absent_agents_and_agents_beyond_the_radius_are_outside_the_graph():
    config = FeatureConfig(neighbour_radius=5.0)
    positions = np.array([[[0.0, 0.0], [0.0, 0.0]], [[np.nan, np.nan], [1.0, 0.0]], [[50.0, 0.0], [50.0, 0.0]]])
    centrality = interaction_centrality(positions, np.zeros_like(positions), config)
    np.testing.assert_array_equal(centrality[1, 0], 0.0)  # absent
    np.testing.assert_array_equal(centrality[2], 0.0)  # too far from everyone
    assert centrality[0, 1, 0] > 0 and centrality[0, 0, 0] == 0.0


def test_every_agent_must_be_seen_at_the_last_step():
    history = moving_scene(1)
    history[2, -1] = np.nan
    with pytest.raises(ValueError, match="last history step"):
        scene_features(history, np.full(history.shape[:2], np.nan), 0.5, CONFIG)
