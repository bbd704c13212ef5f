"""ADE/FDE, best-of-K and RMSE on hand-computed cases."""
import numpy as np
import pytest

from evaluation.prediction_metrics import PredictionScores, error_at_time


def test_most_likely_and_best_of_k_are_scored_separately():
    truth = np.zeros((1, 2, 2))
    modes = np.array([[[[3.0, 4.0], [6.0, 8.0]],      # errors 5, 10 (most likely)
                       [[0.0, 1.0], [0.0, 1.0]]]])    # errors 1, 1
    scores = PredictionScores(time_step=1.0)
    scores.add(modes, np.array([[0.7, 0.3]]), truth)
    summary = scores.summary(rmse_seconds=(1.5, 5.0))
    assert summary["ade"] == pytest.approx(7.5) and summary["fde"] == pytest.approx(10.0)
    assert summary["min_ade"] == pytest.approx(1.0) and summary["min_fde"] == pytest.approx(1.0)
    assert summary["rmse_1.5s"] == pytest.approx(7.5)  # interpolated between 5 at 1 s and 10 at 2 s
    assert "rmse_5s" not in summary  # beyond the horizon


def test_rmse_is_the_root_of_the_mean_square():
    scores = PredictionScores(time_step=0.5)
    truth = np.zeros((2, 2, 2))
    modes = np.array([[[[0.0, 0.0], [3.0, 0.0]]], [[[0.0, 0.0], [4.0, 0.0]]]])
    scores.add(modes, np.ones((2, 1)), truth)
    assert scores.summary((1.0,))["rmse_1s"] == pytest.approx(np.sqrt((9 + 16) / 2))


def test_error_outside_the_horizon_is_refused():
    with pytest.raises(ValueError, match="outside the predicted horizon"):
        error_at_time(np.ones((1, 3)), 0.5, 2.0)
