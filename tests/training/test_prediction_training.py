"""train-predictor's pieces on a few real ApolloScape windows: a short training keeps its best
epoch, saves weights and ONNX, and the ONNX loads as a predictor with the training metadata."""
import pytest
import torch

from perception.prediction.network import NetworkConfig
from perception.prediction.predictor import TrajectoryPredictor
from perception.prediction.recordings import PROTOCOLS, apolloscape_split, protocol_windows
from tests.conftest import REPO_ROOT
from training.prediction_data import make_samples
from training.train_predictor import FEATURES, TrainConfig, most_likely_ade, save_model, train_model


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
    save_model(network, features, config, log, {"dataset": "apolloscape"}, tmp_path / "model")
    predictor = TrajectoryPredictor.from_file(tmp_path / "model.onnx")
    assert predictor.metadata["dataset"] == "apolloscape" and predictor.metadata["best_val_ade"] == best
    assert predictor.network_config.modes == 2
    assert set(torch.load(tmp_path / "model.pt")) == {"network_config", "feature_config", "state_dict", "log", "metadata"}

