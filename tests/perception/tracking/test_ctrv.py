"""The CTRV motion model: exact arcs, the straight-line limit, and its Jacobian."""
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from perception.tracking.ctrv import SERIES_BELOW, predict, predict_states, process_noise, transition_jacobians


def test_prediction_follows_the_analytic_circle():
    speed, yaw_rate, start_yaw = 5.0, 0.5, 0.3
    radius = speed / yaw_rate
    # Centre of the circle: a quarter turn left of the start heading.
    centre = np.array([2.0, -1.0]) + radius * np.array([-math.sin(start_yaw), math.cos(start_yaw)])
    state = np.array([[2.0, -1.0, start_yaw, speed, yaw_rate]])
    for dt in (0.1, 1.0, 3.0, 2 * math.pi / yaw_rate):
        moved = predict_states(state, dt)[0]
        heading = start_yaw + yaw_rate * dt
        expected = centre + radius * np.array([math.sin(heading), -math.cos(heading)])
        np.testing.assert_allclose(moved[:2], expected, atol=1e-9)
        assert moved[2] == pytest.approx(heading)
        assert moved[3:] == pytest.approx([speed, yaw_rate])
        assert math.dist(moved[:2], centre) == pytest.approx(radius)


@pytest.mark.parametrize("yaw_rate", [0.0, 1e-12, -1e-9, 1e-7])
def test_straight_line_limit(yaw_rate):
    state = np.array([[1.0, 2.0, 0.7, 12.0, yaw_rate]])
    moved = predict_states(state, 0.5)[0]
    np.testing.assert_allclose(moved[:2], [1.0 + 6.0 * math.cos(0.7), 2.0 + 6.0 * math.sin(0.7)], atol=1e-6)
    assert np.all(np.isfinite(transition_jacobians(state, 0.5)))


def test_small_turns_agree_with_the_textbook_formula():
    # (v / w) (sin(yaw + w dt) - sin(yaw)) is well conditioned for turns above the series threshold.
    for yaw_rate in (3 * SERIES_BELOW, 0.01, 0.3):
        x, y, yaw, speed, dt = 0.0, 0.0, -1.2, 9.0, 0.1
        moved = predict_states(np.array([[x, y, yaw, speed, yaw_rate]]), dt)[0]
        expected_x = speed / yaw_rate * (math.sin(yaw + yaw_rate * dt) - math.sin(yaw))
        expected_y = speed / yaw_rate * (math.cos(yaw) - math.cos(yaw + yaw_rate * dt))
        np.testing.assert_allclose(moved[:2], [expected_x, expected_y], rtol=1e-9, atol=1e-12)


def numeric_jacobian(state: np.ndarray, dt: float, step: float = 1e-6) -> np.ndarray:
    columns = []
    for index in range(5):
        offset = np.zeros(5)
        offset[index] = step
        columns.append((predict_states((state + offset)[None], dt)[0] - predict_states((state - offset)[None], dt)[0])
                       / (2 * step))
    return np.stack(columns, axis=1)


@settings(max_examples=60, deadline=None)
@given(yaw=st.floats(-math.pi, math.pi), speed=st.floats(-20.0, 20.0),
       yaw_rate=st.one_of(st.just(0.0), st.floats(-1e-3, 1e-3), st.floats(-3.0, 3.0)), dt=st.floats(0.01, 1.0))
def test_jacobian_matches_finite_differences(yaw, speed, yaw_rate, dt):
    state = np.array([3.0, -4.0, yaw, speed, yaw_rate])
    np.testing.assert_allclose(transition_jacobians(state[None], dt)[0], numeric_jacobian(state, dt), atol=1e-6)


def test_process_noise_is_symmetric_positive_semidefinite_and_grows_with_time():
    states = np.array([[0.0, 0.0, 0.4, 10.0, 0.1], [5.0, 5.0, -2.0, 1.0, 2.0]])
    short, long = (process_noise(states, dt, np.array([3.0, 1.5]), np.array([1.0, 6.0])) for dt in (0.1, 0.5))
    np.testing.assert_allclose(short, short.transpose(0, 2, 1))
    assert np.all(np.linalg.eigvalsh(short) > -1e-12)
    assert np.all(np.diagonal(long, axis1=1, axis2=2) > np.diagonal(short, axis1=1, axis2=2))


def test_batched_prediction_equals_one_track_at_a_time():
    rng = np.random.default_rng(4)
    states = rng.normal(size=(6, 5)) * [10, 10, 2, 8, 0.5]
    roots = rng.normal(size=(6, 5, 5))
    covariances = roots @ roots.transpose(0, 2, 1)
    acceleration, yaw_acceleration = rng.uniform(0.5, 3, 6), rng.uniform(0.5, 3, 6)
    batch_states, batch_covariances = predict(states, covariances, 0.2, acceleration, yaw_acceleration)
    for index in range(6):
        one = slice(index, index + 1)
        state, covariance = predict(states[one], covariances[one], 0.2, acceleration[one], yaw_acceleration[one])
        np.testing.assert_allclose(batch_states[index], state[0])
        np.testing.assert_allclose(batch_covariances[index], covariance[0])
