"""Scoring a run's predictions against the simulated ground truth."""
import numpy as np

from evaluation.prediction_run import score_prediction_run
from perception.objects import Box3D, GroundTruthObject, ObjectClass, PredictedObject, PredictedPath, TrackedObject
from perception.prediction.recordings import AgentType

SECOND = 1_000_000_000


def truth(stamp_s: float, x: float, object_id: int = 5) -> GroundTruthObject:
    return GroundTruthObject(object_id, ObjectClass.CAR, Box3D((x, 0.0, 0.8), (4.5, 1.9, 1.6), 0.0),
                             np.array([2.0, 0.0]), num_lidar_points=100, is_static=False)


def test_the_most_likely_mode_is_scored_against_where_the_object_went():
    ground_truth = [(int(t * SECOND), [truth(t, 2.0 * t)]) for t in np.arange(0, 3.01, 0.5)]
    track = TrackedObject(9, ObjectClass.CAR, 0.9, Box3D((0.5, 0.0, 0.8), (4.5, 1.9, 1.6), 0.0), np.array([1.0, 0.0]))
    most_likely = PredictedPath(np.array([[1.0, 0.0], [2.0, 1.0]]), np.zeros(2), 0.5, 0.8)
    other = PredictedPath(np.array([[9.0, 9.0], [9.0, 9.0]]), np.zeros(2), 0.5, 0.2)
    far_track = TrackedObject(10, ObjectClass.CAR, 0.9, Box3D((50.0, 0.0, 0.8), (4.5, 1.9, 1.6), 0.0), np.zeros(2))
    parked_track = TrackedObject(11, ObjectClass.CAR, 0.9, Box3D((-20.0, 5.0, 0.8), (4.5, 1.9, 1.6), 0.0), np.zeros(2))
    parked = GroundTruthObject(6, ObjectClass.CAR, Box3D((-20.2, 5.0, 0.8), (4.5, 1.9, 1.6), 0.0), np.zeros(2),
                               num_lidar_points=100, is_static=True)
    ground_truth[0][1].append(parked)
    late_track = TrackedObject(9, ObjectClass.CAR, 0.9, Box3D((5.0, 0.0, 0.8), (4.5, 1.9, 1.6), 0.0), np.zeros(2))
    predictions = [(0, [PredictedObject(track, [most_likely, other]), PredictedObject(far_track, [other]),
                        PredictedObject(parked_track, [other])]),
                   (int(2.5 * SECOND), [PredictedObject(late_track, [most_likely])])]  # horizon past the run
    result = score_prediction_run(predictions, ground_truth)
    errors = np.stack(result.errors[AgentType.VEHICLE])
    np.testing.assert_allclose(errors, [[0.0, 1.0]])  # truth at 1 m and 2 m
    baseline = np.stack(result.baseline_errors[AgentType.VEHICLE])
    np.testing.assert_allclose(baseline, [[0.0, 0.5]])  # 0.5 + 1 m/s × t against 2 m/s × t
    assert result.unmatched == 1 and result.incomplete == 1 and result.parked == 1
    assert "| vehicle | 1 | 0.50 / 1.00 | 0.25 / 0.50 |" in result.to_markdown()
