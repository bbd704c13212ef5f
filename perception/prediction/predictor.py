"""The trained predictor at run time: an ONNX file that carries its own configs, run in onnxruntime
on a scene's histories (world frame in, world frame out)."""
from __future__ import annotations

import dataclasses
import io
import json
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime
import torch

from perception.model_files import ModelFileError, cpu_session_options
from perception.prediction.features import BEHAVIOUR_FEATURES, EDGE_FEATURES, STEP_FEATURES, FeatureConfig, \
    SceneFeatures, scene_features, to_world
from perception.prediction.network import EnsembleNetwork, NetworkConfig, TrajectoryNetwork

MODEL_FORMAT = "edge_robot_runtime.trajectory_predictor/1"
"""Format tag in every exported model's metadata."""
TRAIN_COMMAND = "train-predictor"
"""The command that makes a model, named in load errors."""
INPUTS = ("steps", "behaviour", "agent_types", "edges", "edge_mask")
OUTPUTS = ("means", "log_scales", "mode_logits")


def export_onnx(network: TrajectoryNetwork | EnsembleNetwork, feature_config: FeatureConfig,
                metadata: dict[str, Any]) -> bytes:
    """The network as ONNX (any number of agents), with its configs and `metadata` (JSON-able:
    dataset, split, metrics) in the model's metadata_props."""
    config = network.config
    agents = 3
    example = (torch.zeros(1, agents, config.observed_steps, len(STEP_FEATURES)),
               torch.zeros(1, agents, len(BEHAVIOUR_FEATURES)), torch.zeros(1, agents, dtype=torch.int64),
               torch.zeros(1, agents, agents, len(EDGE_FEATURES)), torch.ones(1, agents, agents))
    dynamic = {"steps": {1: "agents"}, "behaviour": {1: "agents"}, "agent_types": {1: "agents"},
               "edges": {1: "agents", 2: "neighbours"}, "edge_mask": {1: "agents", 2: "neighbours"},
               "means": {1: "agents"}, "log_scales": {1: "agents"}, "mode_logits": {1: "agents"}}
    was_training = network.training
    network.eval()
    buffer = io.BytesIO()
    with torch.no_grad(), warnings.catch_warnings():
        # The tracer warns about the GRU (its batch is agents × scenes) and its own deprecation; the graph
        # takes any batch (tests compare it with torch for several agent counts).
        warnings.simplefilter("ignore")
        torch.onnx.export(network, example, buffer, input_names=list(INPUTS), output_names=list(OUTPUTS),
                          dynamic_axes=dynamic, opset_version=17, dynamo=False)
    network.train(was_training)
    model = onnx.load_from_string(buffer.getvalue())
    for key, value in {"format": MODEL_FORMAT, "network_config": dataclasses.asdict(config),
                       "feature_config": dataclasses.asdict(feature_config), "metadata": metadata}.items():
        model.metadata_props.add(key=key, value=value if isinstance(value, str) else json.dumps(value))
    return model.SerializeToString()


@dataclass
class ScenePrediction:
    """K futures of each agent of a scene, most probable first, in the world frame."""

    means: np.ndarray
    """(A, K, T', 2) positions at (i + 1) * time_step after the last observation."""
    covariances: np.ndarray
    """(A, K, T', 2, 2) position covariance per step."""
    probabilities: np.ndarray
    """(A, K) mode probabilities, each row sums to 1, descending."""
    time_step: float
    """Seconds between predicted steps."""


class TrajectoryPredictor:
    """predict(history, headings, agent_types) for one scene; the model file fixes the time step and
    the numbers of observed and predicted steps."""

    def __init__(self, model_bytes: bytes, path: str = "<memory>", threads: int = 1) -> None:
        try:
            model = onnx.load_from_string(model_bytes)
            properties = {p.key: p.value for p in model.metadata_props}
        except Exception as error:  # onnx raises its own DecodeError types
            raise ModelFileError(f"prediction model {path}: cannot be read ({type(error).__name__}); the file is "
                                 f"damaged; re-export it with {TRAIN_COMMAND}") from None
        if properties.get("format") != MODEL_FORMAT:
            raise ModelFileError(f"prediction model {path}: not a {MODEL_FORMAT} model; "
                                 f"make one with {TRAIN_COMMAND}")
        try:
            self.network_config = NetworkConfig(**json.loads(properties["network_config"]))
            self.feature_config = FeatureConfig(**json.loads(properties["feature_config"]))
            self.metadata: dict[str, Any] = json.loads(properties.get("metadata", "{}"))
            self._session = onnxruntime.InferenceSession(model_bytes, cpu_session_options(threads),
                                                         providers=["CPUExecutionProvider"])
        except (KeyError, TypeError, ValueError, json.JSONDecodeError, onnxruntime.capi.onnxruntime_pybind11_state.Fail,
                onnxruntime.capi.onnxruntime_pybind11_state.InvalidGraph) as error:
            raise ModelFileError(f"prediction model {path}: unusable ({str(error).splitlines()[0]}); "
                                 f"re-export it with {TRAIN_COMMAND}") from None

    @classmethod
    def from_file(cls, path: str | Path, threads: int = 1) -> TrajectoryPredictor:
        try:
            model_bytes = Path(path).read_bytes()
        except FileNotFoundError:
            raise ModelFileError(f"prediction model {path}: no such file; train one with {TRAIN_COMMAND} "
                                 "or set the model path parameter") from None
        except OSError as error:
            raise ModelFileError(f"prediction model {path}: cannot be read ({error.strerror})") from None
        return cls(model_bytes, str(path), threads)

    @property
    def time_step(self) -> float:
        return self.network_config.time_step

    def run(self, features: SceneFeatures, agent_types: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Raw network outputs for one scene: means and log scales in each agent's frame (A, K, T', 2),
        mode logits (A, K)."""
        feeds = {"steps": features.steps[None], "behaviour": features.behaviour[None],
                 "agent_types": np.asarray(agent_types, dtype=np.int64)[None], "edges": features.edges[None],
                 "edge_mask": features.edge_mask.astype(np.float32)[None]}
        means, log_scales, logits = self._session.run(list(OUTPUTS), feeds)
        return means[0], log_scales[0], logits[0]

    def predict(self, history: np.ndarray, headings: np.ndarray, agent_types: np.ndarray) -> ScenePrediction:
        """history (A, T_obs, 2) world positions at the model's time step, NaN where unseen (every agent
        seen at the last step); headings (A, T_obs) NaN where unknown; agent_types (A,) AgentType."""
        steps = self.network_config.observed_steps
        if history.shape[1] != steps:
            raise ValueError(f"the model reads {steps} history steps, got {history.shape[1]}")
        features = scene_features(history, headings, self.time_step, self.feature_config)
        means, log_scales, logits = self.run(features, agent_types)
        return scene_prediction(features, means, log_scales, logits, self.time_step)


def scene_prediction(features: SceneFeatures, means: np.ndarray, log_scales: np.ndarray, logits: np.ndarray,
                     time_step: float) -> ScenePrediction:
    """Network outputs (agent frames) as a world-frame prediction, modes sorted by probability."""
    order = np.argsort(-logits, axis=1)
    pick = np.arange(len(logits))[:, None]
    means, log_scales, logits = means[pick, order], log_scales[pick, order], logits[pick, order]
    probabilities = np.exp(logits - logits.max(axis=1, keepdims=True))
    probabilities /= probabilities.sum(axis=1, keepdims=True)
    rotation = features.rotations[:, None, None]  # (A, 1, 1, 2, 2)
    variances = np.exp(2.0 * log_scales)
    covariances = rotation @ (variances[..., :, None] * np.eye(2)) @ np.swapaxes(rotation, -1, -2)
    return ScenePrediction(to_world(means, features), covariances, probabilities, time_step)


def sample_futures(prediction: ScenePrediction, count: int, rng: np.random.Generator) -> np.ndarray:
    """`count` futures per agent drawn from the mixture, (A, count, T', 2): a mode by its probability,
    then one standard-normal draw per future scaled by each step's deviation (smooth paths)."""
    agents = len(prediction.probabilities)
    cumulative = np.cumsum(prediction.probabilities, axis=1)
    modes = (rng.random((agents, count, 1)) > cumulative[:, None, :]).sum(axis=-1).clip(max=cumulative.shape[1] - 1)
    pick = np.arange(agents)[:, None]
    means, covariances = prediction.means[pick, modes], prediction.covariances[pick, modes]
    factors = np.linalg.cholesky(covariances + 1e-9 * np.eye(2))
    noise = rng.standard_normal((agents, count, 1, 2, 1))
    return means + (factors @ noise)[..., 0]
