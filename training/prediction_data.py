"""Training samples for the prediction network: windows of recorded trajectories turned into
features once, then padded into batches of scenes."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import torch

from perception.prediction.features import EDGE_FEATURES, MIRRORED, STEP_FEATURES, FeatureConfig, SceneFeatures, \
    scene_features, to_local
from perception.prediction.network import motion_scales, scale_kinematics
from perception.prediction.recordings import Recording, Window
from sim.transforms import wrap_angle


@dataclass
class Sample:
    """One window, ready for the network."""

    window: Window
    """The window it was cut from (world frame)."""
    features: SceneFeatures
    """Network inputs and agent frames."""
    future_local: np.ndarray
    """(A, T', 2) true futures in each agent's frame (NaN where absent)."""


def reversed_in_time(recording: Recording) -> Recording:
    """The recording played backwards, headings turned by π: each path driven the other way, which
    road users do too, so it can teach the network as well as the original."""
    return dataclasses.replace(recording, name=f"{recording.name}_reversed", positions=recording.positions[::-1].copy(),
                               headings=wrap_angle(recording.headings[::-1] + np.pi))


def make_samples(windows: list[Window], config: FeatureConfig) -> list[Sample]:
    samples = []
    for window in windows:
        features = scene_features(window.history, window.history_headings, window.time_step, config)
        samples.append(Sample(window, features, to_local(window.future, features)))
    return samples


@dataclass
class Batch:
    """Padded tensors of S scenes with up to A agents."""

    steps: torch.Tensor
    behaviour: torch.Tensor
    agent_types: torch.Tensor
    edges: torch.Tensor
    edge_mask: torch.Tensor
    future: torch.Tensor
    """(S, A, T', 2) in each agent's frame, zero where not scored."""
    scored: torch.Tensor
    """(S, A) bool: the agents the loss counts."""

    def inputs(self) -> tuple[torch.Tensor, ...]:
        return self.steps, self.behaviour, self.agent_types, self.edges, self.edge_mask


_STEP_SIGNS = torch.tensor([-1.0 if name in MIRRORED["step"] else 1.0 for name in STEP_FEATURES])
_EDGE_SIGNS = torch.tensor([-1.0 if name in MIRRORED["edge"] else 1.0 for name in EDGE_FEATURES])


def collate(samples: list[Sample], mirror: np.ndarray | None = None) -> Batch:
    """Pad to the largest scene; `mirror` (S,) bool reflects scenes across their agents' x axes."""
    scenes, agents = len(samples), max(len(s.window.history) for s in samples)
    first = samples[0]
    history, predicted = first.features.steps.shape[1], first.future_local.shape[1]
    steps = np.zeros((scenes, agents, history, len(STEP_FEATURES)), np.float32)
    behaviour = np.zeros((scenes, agents, first.features.behaviour.shape[1]), np.float32)
    types = np.zeros((scenes, agents), np.int64)
    edges = np.zeros((scenes, agents, agents, len(EDGE_FEATURES)), np.float32)
    edge_mask = np.zeros((scenes, agents, agents), np.float32)
    future = np.zeros((scenes, agents, predicted, 2), np.float32)
    scored = np.zeros((scenes, agents), bool)
    for index, sample in enumerate(samples):
        count = len(sample.window.history)
        features = sample.features
        steps[index, :count] = features.steps
        behaviour[index, :count] = features.behaviour
        types[index, :count] = sample.window.agent_types
        edges[index, :count, :count] = features.edges
        edge_mask[index, :count, :count] = features.edge_mask
        scored[index, :count] = sample.window.targets
        future[index, :count] = np.where(sample.window.targets[:, None, None], np.nan_to_num(sample.future_local), 0.0)
    edge_mask[:, np.arange(agents), np.arange(agents)] = 1.0  # padded agents attend to themselves only
    batch = Batch(*(torch.from_numpy(a) for a in (steps, behaviour, types, edges, edge_mask, future, scored)))
    if mirror is not None and mirror.any():
        flip = torch.from_numpy(mirror)
        batch.steps[flip] *= _STEP_SIGNS
        batch.edges[flip] *= _EDGE_SIGNS
        batch.future[flip, ..., 1] *= -1.0
    return batch


def feature_statistics(samples: list[Sample], speed_floor: float) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Mean and standard deviation of each input over the observed steps / real agents / real edges,
    the steps as the network sees them (NetworkConfig.speed_floor)."""
    scaled = [scale_kinematics(steps, motion_scales(steps, speed_floor))
              for steps in (torch.from_numpy(s.features.steps) for s in samples)]
    steps = np.concatenate([s.numpy().reshape(-1, len(STEP_FEATURES)) for s in scaled])
    observed = steps[:, STEP_FEATURES.index("observed")] > 0
    behaviour = np.concatenate([s.features.behaviour for s in samples])
    edges = np.concatenate([s.features.edges[s.features.edge_mask] for s in samples])

    def moments(values: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.from_numpy(values.mean(axis=0)).float(), torch.from_numpy(values.std(axis=0)).float()

    return {"step": moments(steps[observed]), "behaviour": moments(behaviour), "edge": moments(edges)}
