"""Recordings, splits, windows and the kinematic baselines, on hand-made files and on the real data."""
import math

import numpy as np
import pytest

from evaluation.prediction_metrics import PredictionScores
from perception.prediction.baselines import constant_turn_rate, constant_velocity
from perception.prediction.recordings import (APOLLOSCAPE_SPLIT, ETH_UCY_SCENES, PROTOCOLS, AgentType, apolloscape_split,
                                              cut_windows, eth_ucy_split, load_apolloscape, load_eth_ucy,
                                              protocol_windows)
from tests.conftest import REPO_ROOT

TRAJECTORIES = REPO_ROOT / "data" / "trajectories"


def test_apolloscape_file_becomes_a_frame_by_agent_grid(tmp_path):
    path = tmp_path / "result_1_1_frame.txt"
    path.write_text("10 7 1 1.0 2.0 0 4 2 1.5 0.1\n11 7 1 1.5 2.0 0 4 2 1.5 0.2\n11 9 3 5.0 6.0 0 1 1 1.7 3.0\n")
    recording = load_apolloscape(path)
    assert recording.positions.shape == (2, 2, 2)
    assert recording.agent_ids.tolist() == [7, 9]
    assert recording.agent_types.tolist() == [AgentType.VEHICLE, AgentType.PEDESTRIAN]
    np.testing.assert_allclose(recording.positions[1, 0], [1.5, 2.0])
    assert np.isnan(recording.positions[0, 1]).all()
    assert recording.headings[1, 0] == pytest.approx(0.2)


def test_malformed_files_are_refused_with_their_name(tmp_path):
    path = tmp_path / "bad.txt"
    path.write_text("1 2 3\n")
    with pytest.raises(ValueError, match="bad.txt: expected 10 columns"):
        load_apolloscape(path)
    with pytest.raises(ValueError, match="bad.txt: expected 4 columns"):
        load_eth_ucy(path)


def test_eth_ucy_frames_are_numbered_by_rank(tmp_path):
    path = tmp_path / "scene.txt"
    path.write_text("0\t1\t0.0\t0.0\n10\t1\t0.4\t0.0\n70\t1\t0.8\t0.0\n")
    recording = load_eth_ucy(path)
    assert recording.positions.shape == (3, 1, 2)  # frame 70 follows frame 10, as in Social-GAN
    assert recording.time_step == pytest.approx(0.4)


def test_windows_score_agents_present_throughout():
    positions = np.full((5, 3, 2), np.nan)
    positions[:, 0] = np.arange(5)[:, None]          # always there
    positions[1:, 1] = 1.0                            # missing in the first frame
    positions[:2, 2] = 2.0                            # leaves after frame 1
    from perception.prediction.recordings import Recording
    recording = Recording("r", 0.5, positions, np.full((5, 3), np.nan), np.zeros(3, dtype=np.int64), np.arange(3))
    windows = cut_windows(recording, observed=2, predicted=2)
    assert len(windows) == 2
    first = windows[0]  # frames 0..3: agents seen at frame 1 are 0, 1, 2
    assert first.history.shape == (3, 2, 2) and first.future.shape == (3, 2, 2)
    assert first.targets.tolist() == [True, False, False]


def test_splits_follow_the_documented_sequences():
    split = apolloscape_split(TRAJECTORIES / "apolloscape" / "prediction_train")
    sequences = {part: {r.name.split("_")[1] for r in recordings} for part, recordings in split.items()}
    assert sequences["test"] == set(APOLLOSCAPE_SPLIT["test"])
    assert sequences["val"] == set(APOLLOSCAPE_SPLIT["val"])
    assert not sequences["train"] & (sequences["test"] | sequences["val"])
    eth = eth_ucy_split(TRAJECTORIES / "eth_ucy" / "raw", "univ")
    assert [r.name for r in eth["test"]] == list(ETH_UCY_SCENES["univ"])
    assert not any(r.name.startswith("students") for r in eth["train"] + eth["val"])
    with pytest.raises(ValueError, match="unknown ETH/UCY scene"):
        eth_ucy_split(TRAJECTORIES / "eth_ucy" / "raw", "mall")


@pytest.mark.parametrize("scene, ade, fde", [("eth", 1.08, 2.28), ("hotel", 0.32, 0.61), ("zara1", 0.43, 0.95)])
def test_constant_velocity_reproduces_the_published_reference(scene, ade, fde):
    """The shared data's README quotes these constant-velocity figures (Schöller et al., RA-L 2020)."""
    protocol = PROTOCOLS["eth_ucy"]
    scores = PredictionScores(protocol.time_step)
    for window in protocol_windows(eth_ucy_split(TRAJECTORIES / "eth_ucy" / "raw", scene)["test"], protocol):
        scored = window.targets
        futures = constant_velocity(window.history[scored], protocol.predicted, protocol.time_step)
        scores.add(futures[:, None], np.ones((scored.sum(), 1)), window.future[scored])
    summary = scores.summary()
    assert summary["ade"] == pytest.approx(ade, abs=0.006)
    assert summary["fde"] == pytest.approx(fde, abs=0.006)


def test_constant_velocity_extrapolates_a_straight_line():
    history = np.stack([np.arange(4.0), 2 * np.arange(4.0)], axis=-1)[None]
    np.testing.assert_allclose(constant_velocity(history, 2, 0.5), [[[4.0, 8.0], [5.0, 10.0]]])


def test_constant_turn_rate_stays_on_the_circle():
    radius, yaw_rate, speed, step = 10.0, 0.2, 2.0, 0.5
    angles = yaw_rate * step * np.arange(8) * (speed / (radius * yaw_rate))
    circle = radius * np.stack([np.sin(angles), 1 - np.cos(angles)], axis=-1)
    history, future = circle[None, :4], circle[4:]
    predicted = constant_turn_rate(history, 4, step)[0]
    np.testing.assert_allclose(predicted, future, atol=1e-9)
    assert math.hypot(*(predicted[-1] - [0, radius])) == pytest.approx(radius)


def test_constant_turn_rate_falls_back_to_constant_velocity_without_motion():
    history = np.array([[[np.nan, np.nan], [0.0, 0.0], [1.0, 0.0]]])
    np.testing.assert_allclose(constant_turn_rate(history, 2, 1.0), constant_velocity(history, 2, 1.0))
