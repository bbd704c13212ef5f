"""train-predictor's pieces on a few real ApolloScape windows: a short training keeps its best
epoch, saves weights and ONNX, and the ONNX loads as a predictor with the training metadata."""
import dataclasses

import numpy as np
import pytest
import torch

from perception.prediction.network import EnsembleNetwork, NetworkConfig
from perception.prediction.predictor import TrajectoryPredictor
from perception.prediction.recordings import PROTOCOLS, apolloscape_split, protocol_windows
from tests.conftest import REPO_ROOT
from training.prediction_data import make_samples, reversed_in_time
from training.train_predictor import FEATURES, MemberTask, TrainConfig, most_likely_ade, save_model, train_member, \
    train_members, train_model


def test_a_short_training_run_is_saved_and_loads(tmp_path):
    split = apolloscape_split(REPO_ROOT / "data" / "trajectories" / "apolloscape" / "prediction_train")
    protocol, features = PROTOCOLS["apolloscape"], FEATURES["apolloscape"]
    train = make_samples(protocol_windows(split["train"][:1], protocol, stride=3), features)
    val = make_samples(protocol_windows(split["val"][:1], protocol, stride=6), features)
    config = TrainConfig(epochs=3, batch_size=8)
    network, log = train_model(train, val, NetworkConfig(hidden=16, modes=2), config, "test")
    assert [entry["epoch"] for entry in log] == [1, 2, 3]
    best = min(entry["val_ade"] for entry in log)
    assert most_likely_ade(network, val) == pytest.approx(best, rel=1e-5)  # the best epoch is kept
    save_model(network, features, config, [log], best, {"dataset": "apolloscape"}, tmp_path / "model")
    predictor = TrajectoryPredictor.from_file(tmp_path / "model.onnx")
    assert predictor.metadata["dataset"] == "apolloscape" and predictor.metadata["best_val_ade"] == best
    assert predictor.metadata["members"] == [{"seed": 0, "best_epoch": int(np.argmin([e["val_ade"] for e in log])) + 1,
                                              "best_val_ade": best}]
    assert predictor.network_config.modes == 2
    assert set(torch.load(tmp_path / "model.pt")) == {"network_config", "feature_config", "state_dict", "logs", "metadata"}

    # A second seed makes an ensemble of two; the file says which seeds and how each did.
    second, second_log = train_model(train, val, NetworkConfig(hidden=16, modes=2), dataclasses.replace(config, seed=1),
                                     "test")
    ensemble = EnsembleNetwork([network, second])
    save_model(ensemble, features, config, [log, second_log], most_likely_ade(ensemble, val), {}, tmp_path / "pair")
    pair = TrajectoryPredictor.from_file(tmp_path / "pair.onnx")
    assert [member["seed"] for member in pair.metadata["members"]] == [0, 1]
    assert pair.metadata["members"][1]["best_val_ade"] == min(e["val_ade"] for e in second_log)
    assert pair.metadata["best_val_ade"] == pytest.approx(most_likely_ade(ensemble, val))


def test_members_trained_in_worker_processes_equal_those_trained_here():
    split = apolloscape_split(REPO_ROOT / "data" / "trajectories" / "apolloscape" / "prediction_train")
    protocol, features = PROTOCOLS["apolloscape"], FEATURES["apolloscape"]
    tasks = [MemberTask(split["train"][:1], split["val"][:1], protocol, features, NetworkConfig(hidden=16, modes=2),
                        TrainConfig(epochs=2, batch_size=8, seed=seed), f"member {seed}", stride=6) for seed in (0, 1)]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # what each worker uses
    try:
        here = train_members(tasks, 1)
    finally:
        torch.set_num_threads(threads)
    workers = train_members(tasks, 2)
    for alone, pooled in zip(here, workers):
        assert alone.log == pooled.log and alone.training_windows == pooled.training_windows > 0
        for key, value in alone.state_dict.items():
            torch.testing.assert_close(pooled.state_dict[key], value, rtol=0, atol=0)
    assert here[0].log != here[1].log  # the seeds differ


def test_a_recording_played_backwards_drives_each_path_the_other_way():
    recording = apolloscape_split(REPO_ROOT / "data" / "trajectories" / "apolloscape" / "prediction_train")["val"][0]
    backwards = reversed_in_time(recording)
    np.testing.assert_array_equal(backwards.positions, recording.positions[::-1])
    annotated = ~np.isnan(recording.headings[::-1])
    turned = np.angle(np.exp(1j * (backwards.headings[annotated] - recording.headings[::-1][annotated])))
    np.testing.assert_allclose(np.abs(turned), np.pi, atol=1e-9)
    again = reversed_in_time(backwards)
    np.testing.assert_array_equal(again.positions, recording.positions)
    np.testing.assert_allclose(np.cos(again.headings[::-1][annotated] - recording.headings[::-1][annotated]), 1.0)
    assert (backwards.agent_types == recording.agent_types).all() and backwards.name.endswith("_reversed")


def test_time_reversal_trains_on_twice_the_windows_and_validates_forwards():
    split = apolloscape_split(REPO_ROOT / "data" / "trajectories" / "apolloscape" / "prediction_train")
    protocol, features = PROTOCOLS["apolloscape"], FEATURES["apolloscape"]
    forwards, both = (train_member(MemberTask(split["train"][:1], split["val"][:1], protocol, features,
                                              NetworkConfig(hidden=16, modes=2),
                                              TrainConfig(epochs=1, batch_size=8, time_reversal=reverse), "member",
                                              stride=6))
                      for reverse in (False, True))
    backwards = len(protocol_windows([reversed_in_time(split["train"][0])], protocol, stride=6))
    assert both.training_windows == forwards.training_windows + backwards and backwards > 0
    assert both.validation_windows == forwards.validation_windows
