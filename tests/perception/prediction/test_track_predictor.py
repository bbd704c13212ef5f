"""Prediction over tracks: histories resampled onto the model's grid, baselines and the shipped model."""
import numpy as np
import pytest

from perception.objects import Box3D, ObjectClass, TrackedObject
from perception.prediction.predictor import TrajectoryPredictor
from perception.prediction.track_predictor import TrackHistory, TrackPredictionConfig, TrackPredictor
from tests.conftest import REPO_ROOT

MODEL = REPO_ROOT / "models" / "trajectory_predictor_apolloscape.onnx"


def track(object_id: int, x: float, y: float, yaw: float = 0.0, label=ObjectClass.CAR,
          velocity=(0.0, 0.0), speed_std: float = 0.1) -> TrackedObject:
    return TrackedObject(object_id, label, 0.9, Box3D((x, y, 0.8), (4.5, 1.9, 1.6), yaw), np.array(velocity),
                         pose_covariance=np.diag([0.04, 0.09, 0.0, 0.0, 0.0, 0.01]),
                         velocity_covariance=np.diag([speed_std ** 2, 0.0, 0.0, 0.0, 0.0, 0.0]))


def test_history_is_interpolated_onto_the_model_grid_and_forgets_old_tracks():
    history = TrackHistory(time_step=0.5, steps=3)
    for step in range(11):  # 10 Hz, car 1 along x at 4 m/s; car 2 only in the last 0.3 s
        stamp = 0.1 * step
        tracks = [track(1, 4.0 * stamp, 0.0)] + ([track(2, 10.0, 5.0, velocity=(0.0, 2.0))] if step >= 8 else [])
        history.add(stamp, tracks)
    positions, _ = history.resampled(1.0, [1, 2])
    np.testing.assert_allclose(positions[0, :, 0], [0.0, 2.0, 4.0], atol=1e-9)
    # Car 2 was first seen at 0.8 s: before that, extrapolated back with its velocity.
    np.testing.assert_allclose(positions[1], [[10.0, 3.4], [10.0, 4.4], [10.0, 5.0]], atol=1e-9)
    for step in range(11, 40):
        history.add(0.1 * step, [track(2, 10.0, 5.0)])
    assert set(history._samples) == {2}  # car 1 unseen for longer than the window


def test_constant_velocity_over_tracks_cuts_the_horizon():
    predictor = TrackPredictor(TrackPredictionConfig(method="constant_velocity", horizon=1.0, time_step=0.5))
    for step in range(11):
        predicted = predictor.update(0.1 * step, [track(7, 2.0 * 0.1 * step, 1.0, velocity=(2.0, 0.0))])
    path = predicted[0].paths[0]
    np.testing.assert_allclose(path.positions, [[3.0, 1.0], [4.0, 1.0]], atol=1e-9)
    np.testing.assert_allclose(path.yaws, 0.0, atol=1e-9)
    assert path.probability == 1.0 and predictor.predicted_steps == 2


def test_the_model_needs_a_model_and_a_known_method():
    with pytest.raises(ValueError, match="needs a trained model"):
        TrackPredictor(TrackPredictionConfig())
    with pytest.raises(ValueError, match="method"):
        TrackPredictionConfig(method="psychic")


def test_the_shipped_model_predicts_every_track_with_normalised_modes():
    model = TrajectoryPredictor.from_file(MODEL)
    predictor = TrackPredictor(TrackPredictionConfig(modes=2, horizon=2.0), model)
    for step in range(31):
        stamp = 0.1 * step
        tracks = [track(1, 10.0 * stamp, 0.0, velocity=(10.0, 0.0)),
                  track(2, 30.0, 3.5 + 1.2 * stamp, np.pi / 2, ObjectClass.PEDESTRIAN, velocity=(0.0, 1.2))]
        predicted = predictor.update(stamp, tracks)
    assert [p.track.object_id for p in predicted] == [1, 2]
    for item in predicted:
        assert len(item.paths) == 2 and len(item.paths[0].positions) == 4  # 2 s at 2 Hz
        assert sum(path.probability for path in item.paths) == pytest.approx(1.0)
        assert item.paths[0].position_covariance.shape == (4, 2, 2)
    car = predicted[0].paths[0].positions
    assert car[-1, 0] == pytest.approx(30.0 + 20.0, abs=4.0) and abs(car[-1, 1]) < 1.5  # keeps going at 10 m/s


def test_tracks_indistinguishable_from_standing_are_predicted_standing():
    model = TrajectoryPredictor.from_file(MODEL)
    predictor = TrackPredictor(TrackPredictionConfig(modes=3, horizon=2.0), model)
    rng = np.random.default_rng(0)
    for step in range(31):  # a parked car whose detected centre jitters, and a car creeping at a well-known 0.5 m/s
        stamp = 0.1 * step
        parked = track(1, 20.0 + rng.normal(0.0, 0.2), 4.0 + rng.normal(0.0, 0.2), velocity=(0.4, 0.3), speed_std=0.8)
        creeping = track(2, 0.5 * stamp, -4.0, velocity=(0.5, 0.0), speed_std=0.1)
        predicted = predictor.update(stamp, [parked, creeping])
    standing = predicted[0].paths
    assert len(standing) == 1 and standing[0].probability == 1.0
    np.testing.assert_allclose(standing[0].positions, np.tile(parked.box.center[:2], (4, 1)))
    np.testing.assert_allclose(standing[0].yaws, parked.box.yaw)
    np.testing.assert_allclose(standing[0].position_covariance, np.tile(np.diag([0.04, 0.09]), (4, 1, 1)))
    assert len(predicted[1].paths) == 3  # slow, but its speed is known to be above zero: the model's futures

    predictor = TrackPredictor(TrackPredictionConfig(modes=3, horizon=2.0, standing_speed=0.0), model)
    assert len(predictor.update(0.0, [parked])[0].paths) == 3  # the rule off
