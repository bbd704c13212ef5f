"""The network, its ONNX export and the run-time predictor, and one training step on real windows."""
import numpy as np
import onnx
import pytest
import torch

from perception.model_files import ModelFileError
from perception.prediction.network import EnsembleNetwork, NetworkConfig, TrajectoryNetwork, motion_scales, \
    scale_kinematics
from perception.prediction.predictor import TrajectoryPredictor, export_onnx, sample_futures, scene_prediction
from perception.prediction.features import STEP_FEATURES, FeatureConfig, scene_features
from perception.prediction.recordings import PROTOCOLS, apolloscape_split, protocol_windows
from tests.conftest import REPO_ROOT
from training.prediction_data import collate, feature_statistics, make_samples
from training.train_predictor import trajectory_loss

FEATURES = FeatureConfig()


@pytest.fixture(scope="module")
def samples():
    split = apolloscape_split(REPO_ROOT / "data" / "trajectories" / "apolloscape" / "prediction_train")
    return make_samples(protocol_windows(split["val"][:1], PROTOCOLS["apolloscape"], stride=4), FEATURES)


@pytest.fixture(scope="module", params=[0.0, 0.5], ids=["metres", "speed_units"])
def network(samples, request):
    torch.manual_seed(0)
    network = TrajectoryNetwork(NetworkConfig(hidden=32, modes=3, speed_floor=request.param))
    network.set_normalisation(feature_statistics(samples, request.param))
    return network.eval()


def test_speed_units_follow_each_agents_observed_pace():
    history = np.stack([np.array([[0.4 * k * 1.5, 0.0] for k in range(4)]),  # walks 1.5 m/s
                        np.array([[0.0, 0.01 * (k % 2)] for k in range(4)]),  # stands, jittering
                        np.array([[np.nan, np.nan]] * 2 + [[0.0, 0.0], [0.0, 0.4]])])  # seen twice, 1 m/s
    steps = torch.from_numpy(scene_features(history, np.full((3, 4), np.nan), 0.4, FEATURES).steps)
    np.testing.assert_allclose(motion_scales(steps, 0.2).numpy(), [1.5, 0.2, 1.0], rtol=1e-5)
    np.testing.assert_array_equal(motion_scales(steps, 0.0).numpy(), [1.0, 1.0, 1.0])
    scaled = scale_kinematics(steps, motion_scales(steps, 0.2))
    kinematic = [STEP_FEATURES.index(name) for name in ("x", "y", "vx", "vy", "ax", "ay")]
    others = [i for i in range(len(STEP_FEATURES)) if i not in kinematic]
    np.testing.assert_allclose(scaled[0][..., kinematic].numpy(), steps[0][..., kinematic].numpy() / 1.5, rtol=1e-6)
    np.testing.assert_array_equal(scaled[..., others].numpy(), steps[..., others].numpy())


def test_onnx_export_matches_torch_for_any_number_of_agents(network, samples):
    predictor = TrajectoryPredictor(export_onnx(network, FEATURES, {"dataset": "test"}))
    assert predictor.metadata == {"dataset": "test"}
    assert predictor.network_config == network.config
    for sample in (min(samples, key=lambda s: len(s.window.history)), max(samples, key=lambda s: len(s.window.history))):
        with torch.no_grad():
            expected = network(*collate([sample]).inputs())
        outputs = predictor.run(sample.features, sample.window.agent_types)
        for want, got in zip(expected, outputs):
            np.testing.assert_allclose(got, want[0].numpy(), atol=1e-4)


def _members(samples, count):
    members = []
    for seed in range(count):
        torch.manual_seed(seed)
        member = TrajectoryNetwork(NetworkConfig(hidden=32, modes=3))
        member.set_normalisation(feature_statistics(samples, 0.0))
        members.append(member.eval())
    return members


def test_an_ensemble_averages_its_members_modes_rank_by_rank(samples):
    members = _members(samples, 3)
    batch = collate(samples[:4])
    with torch.no_grad():
        outputs = [member(*batch.inputs()) for member in members]
        means, log_scales, logits = EnsembleNetwork(members)(*batch.inputs())
        alone = EnsembleNetwork(members[:1])(*batch.inputs())

    def most_likely(member_means, member_logits):
        pick = member_logits.argmax(-1)[..., None, None, None].expand(-1, -1, 1, *member_means.shape[3:])
        return member_means.gather(2, pick)[:, :, 0]

    torch.testing.assert_close(most_likely(means, logits),
                               torch.stack([most_likely(m, lg) for m, _, lg in outputs]).mean(0), atol=1e-5, rtol=0)
    assert torch.all(logits.diff(dim=-1) <= 1e-6)  # ranked: most probable first
    # One member: its own modes, most probable first.
    rank = outputs[0][2].argsort(-1, descending=True)
    torch.testing.assert_close(alone[0], outputs[0][0].gather(2, rank[..., None, None].expand_as(alone[0])))
    torch.testing.assert_close(alone[2], torch.log_softmax(outputs[0][2], -1).gather(2, rank))
    with pytest.raises(ValueError, match="one config"):
        EnsembleNetwork([members[0], TrajectoryNetwork(NetworkConfig(hidden=16, modes=3))])


def test_an_ensemble_exports_to_onnx(samples):
    ensemble = EnsembleNetwork(_members(samples, 2))
    predictor = TrajectoryPredictor(export_onnx(ensemble, FEATURES, {"members": [{"seed": 0}, {"seed": 1}]}))
    assert predictor.network_config == ensemble.config
    for sample in (min(samples, key=lambda s: len(s.window.history)), max(samples, key=lambda s: len(s.window.history))):
        with torch.no_grad():
            expected = ensemble(*collate([sample]).inputs())
        for want, got in zip(expected, predictor.run(sample.features, sample.window.agent_types)):
            np.testing.assert_allclose(got, want[0].numpy(), atol=1e-4)


def test_predictions_are_sorted_distributions_in_the_world_frame(network, samples):
    predictor = TrajectoryPredictor(export_onnx(network, FEATURES, {}))
    window = samples[0].window
    prediction = predictor.predict(window.history, window.history_headings, window.agent_types)
    agents = len(window.history)
    assert prediction.means.shape == (agents, 3, 6, 2)
    np.testing.assert_allclose(prediction.probabilities.sum(axis=1), 1.0, atol=1e-6)
    assert np.all(np.diff(prediction.probabilities, axis=1) <= 1e-7)
    np.testing.assert_allclose(prediction.covariances, np.swapaxes(prediction.covariances, -1, -2), atol=1e-9)
    assert np.all(np.linalg.eigvalsh(prediction.covariances) > 0)
    # Futures start near the last observed position (within what 0.5 s of driving allows).
    assert np.all(np.linalg.norm(prediction.means[:, 0, 0] - window.history[:, -1], axis=-1) < 25.0)


def test_samples_follow_the_mixture():
    features = scene_features(np.array([[[0.0, 0.0], [1.0, 0.0]]]), np.full((1, 2), np.nan), 0.5, FEATURES)
    means = np.array([[[[1.0, 0.0]], [[0.0, 5.0]]]])  # two modes, one step
    prediction = scene_prediction(features, means, np.full((1, 2, 1, 2), -6.0), np.log([[0.9, 0.1]]), 0.5)
    futures = sample_futures(prediction, 2000, np.random.default_rng(0))
    near_first = np.linalg.norm(futures[0, :, 0] - prediction.means[0, 0, 0], axis=-1) < 0.05
    assert 0.87 < near_first.mean() < 0.93


def test_training_steps_lower_the_loss(samples):
    torch.manual_seed(0)
    network = TrajectoryNetwork(NetworkConfig(hidden=32, modes=3))
    network.set_normalisation(feature_statistics(samples, 0.0))
    optimiser = torch.optim.Adam(network.parameters(), lr=3e-3)
    batch = collate(samples[:16])
    losses = []
    for _ in range(40):
        loss = trajectory_loss(*network(*batch.inputs()), batch)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        losses.append(loss.item())
    assert losses[-1] < 0.7 * losses[0]


def test_unusable_model_files_name_the_file_and_the_fix(tmp_path, network):
    with pytest.raises(ModelFileError, match=r"nope\.onnx: no such file.*train-predictor"):
        TrajectoryPredictor.from_file(tmp_path / "nope.onnx")
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"\x00not a model")
    with pytest.raises(ModelFileError, match="garbage.onnx"):
        TrajectoryPredictor.from_file(garbage)
    foreign = tmp_path / "foreign.onnx"
    model = onnx.load_from_string(export_onnx(network, FEATURES, {}))
    del model.metadata_props[:]
    foreign.write_bytes(model.SerializeToString())
    with pytest.raises(ModelFileError, match="foreign.onnx: not a edge_robot_runtime.trajectory_predictor"):
        TrajectoryPredictor.from_file(foreign)
    truncated = tmp_path / "truncated.onnx"
    truncated.write_bytes(export_onnx(network, FEATURES, {})[:5000])
    with pytest.raises(ModelFileError, match="truncated.onnx"):
        TrajectoryPredictor.from_file(truncated)
