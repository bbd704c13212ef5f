"""The HiT-style prediction network (torch): a GRU encodes each agent's history in its own frame
with its behaviour and centrality features, attention gathers its neighbours (edges in its
frame), and a multimodal decoder gives K trajectories with probabilities, a Gaussian per step.

Inputs are raw features (perception.prediction.features); the network normalises them with
statistics measured on its training set, stored as buffers so the ONNX export carries them.
Trajectories are offsets from constant-velocity extrapolation in the agent's frame (in units of its pace
when NetworkConfig.speed_floor > 0). An EnsembleNetwork averages several such networks trained from
different seeds.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from perception.prediction.features import BEHAVIOUR_FEATURES, EDGE_FEATURES, STEP_FEATURES
from perception.prediction.recordings import AgentType
from sim.validation import check_ranges

VELOCITY = slice(STEP_FEATURES.index("vx"), STEP_FEATURES.index("vy") + 1)
KINEMATIC = slice(STEP_FEATURES.index("x"), STEP_FEATURES.index("ay") + 1)
OBSERVED = STEP_FEATURES.index("observed")
LOG_SCALE_LIMIT = 4.0
"""Per-step log standard deviations are bounded to ±this (tanh)."""


@dataclass
class NetworkConfig:
    """Shape of the prediction network."""

    observed_steps: int = field(default=6, metadata={"range": (2, 50)})
    """History steps the network reads."""
    predicted_steps: int = field(default=6, metadata={"range": (1, 100)})
    """Future steps it predicts."""
    time_step: float = field(default=0.5, metadata={"range": (0.01, 10.0)})
    """Seconds between steps (history and future)."""
    modes: int = field(default=6, metadata={"range": (1, 64)})
    """Trajectories per agent (K)."""
    hidden: int = field(default=64, metadata={"range": (8, 1024)})
    """Width of every layer."""
    heads: int = field(default=4, metadata={"range": (1, 16)})
    """Attention heads over neighbours; must divide hidden."""
    speed_floor: float = field(default=0.0, metadata={"range": (0.0, 10.0)})
    """0: the agent's history and its predicted offsets are in metres. Above 0: they are in units of
    the agent's mean observed speed × 1 s, floored at this (m/s), so one network serves slow and
    fast walkers alike (the scenes of a leave-one-out fold differ in pace)."""

    def __post_init__(self) -> None:
        check_ranges(self)
        if self.hidden % self.heads:
            raise ValueError(f"heads ({self.heads}) must divide hidden ({self.hidden})")


def motion_scales(steps: torch.Tensor, speed_floor: float) -> torch.Tensor:
    """(..., A) metres per unit of each agent's kinematic features: its mean observed speed × 1 s,
    at least speed_floor; ones when speed_floor is 0 (no normalisation)."""
    if speed_floor == 0.0:
        return torch.ones_like(steps[..., 0, 0])
    observed = steps[..., OBSERVED]
    measured = observed[..., 1:] * observed[..., :-1]  # a velocity needs this step and the one before
    speed = torch.linalg.vector_norm(steps[..., 1:, VELOCITY], dim=-1) * measured
    mean_speed = speed.sum(-1) / measured.sum(-1).clamp_min(1.0)
    return mean_speed.clamp_min(speed_floor)


def scale_kinematics(steps: torch.Tensor, scales: torch.Tensor) -> torch.Tensor:
    """steps (..., A, T, F) with positions, velocities and accelerations divided by the agents' scales (..., A)."""
    kinematic = steps[..., KINEMATIC] / scales[..., None, None]
    return torch.cat([steps[..., :KINEMATIC.start], kinematic, steps[..., KINEMATIC.stop:]], dim=-1)


def _mlp(inputs: int, hidden: int, outputs: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(inputs, hidden), nn.LayerNorm(hidden), nn.ReLU(), nn.Linear(hidden, outputs))


class TrajectoryNetwork(nn.Module):
    """forward(steps (S, A, T, F), behaviour (S, A, B), agent_types (S, A) int64, edges (S, A, A, E),
    edge_mask (S, A, A) float 0/1) → means (S, A, K, T', 2) in each agent's frame, log_scales
    (S, A, K, T', 2), mode_logits (S, A, K)."""

    def __init__(self, config: NetworkConfig) -> None:
        super().__init__()
        self.config = config
        hidden = config.hidden
        for name, width in (("step", len(STEP_FEATURES)), ("behaviour", len(BEHAVIOUR_FEATURES)),
                            ("edge", len(EDGE_FEATURES))):
            self.register_buffer(f"{name}_mean", torch.zeros(width))
            self.register_buffer(f"{name}_scale", torch.ones(width))
        times = config.time_step * torch.arange(1, config.predicted_steps + 1, dtype=torch.float32)
        self.register_buffer("future_times", times)
        self.encoder = nn.GRU(len(STEP_FEATURES), hidden, batch_first=True)
        self.type_embedding = nn.Embedding(len(AgentType), hidden)
        self.behaviour_encoder = _mlp(len(BEHAVIOUR_FEATURES), hidden, hidden)
        self.agent_encoder = _mlp(3 * hidden, hidden, hidden)
        self.edge_encoder = _mlp(len(EDGE_FEATURES), hidden, hidden)
        self.query = nn.Linear(hidden, hidden)
        self.key = nn.Linear(2 * hidden, hidden)
        self.value = nn.Linear(2 * hidden, hidden)
        self.attention_output = nn.Linear(hidden, hidden)
        self.attention_norm = nn.LayerNorm(hidden)
        self.decoder = _mlp(2 * hidden, 2 * hidden, hidden)
        self.trajectories = nn.Linear(hidden, config.modes * config.predicted_steps * 4)
        self.mode_logits = nn.Linear(hidden, config.modes)

    def set_normalisation(self, statistics: dict[str, tuple[torch.Tensor, torch.Tensor]]) -> None:
        """Feature means and scales measured on the training set, by input name (step, behaviour, edge)."""
        for name, (mean, scale) in statistics.items():
            getattr(self, f"{name}_mean").copy_(mean)
            getattr(self, f"{name}_scale").copy_(scale.clamp_min(1e-3))

    def forward(self, steps: torch.Tensor, behaviour: torch.Tensor, agent_types: torch.Tensor, edges: torch.Tensor,
                edge_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        config = self.config
        scenes, agents, history = steps.shape[:3]
        hidden, heads = config.hidden, config.heads
        scales = motion_scales(steps, config.speed_floor)
        steps = scale_kinematics(steps, scales)
        normalised_steps = (steps - self.step_mean) / self.step_scale
        _, last_state = self.encoder(normalised_steps.reshape(scenes * agents, history, -1))
        motion = last_state[0].reshape(scenes, agents, hidden)
        style = self.behaviour_encoder((behaviour - self.behaviour_mean) / self.behaviour_scale)
        agent = self.agent_encoder(torch.cat([motion, style, self.type_embedding(agent_types)], dim=-1))

        # Agent i attends to each neighbour j through j's encoding and j's pose in i's frame.
        edge = self.edge_encoder((edges - self.edge_mean) / self.edge_scale)
        neighbour = torch.cat([agent.unsqueeze(1).expand(-1, agents, -1, -1), edge], dim=-1)
        width = hidden // heads
        query = self.query(agent).reshape(scenes, agents, 1, heads, width)
        key = self.key(neighbour).reshape(scenes, agents, agents, heads, width)
        value = self.value(neighbour).reshape(scenes, agents, agents, heads, width)
        scores = (query * key).sum(-1) / width ** 0.5 + (edge_mask.unsqueeze(-1) - 1.0) * 1e9
        weights = torch.softmax(scores, dim=2)
        context = (weights.unsqueeze(-1) * value).sum(2).reshape(scenes, agents, hidden)
        context = self.attention_norm(agent + self.attention_output(context))

        decoded = self.decoder(torch.cat([agent, context], dim=-1))
        out = self.trajectories(decoded).reshape(scenes, agents, config.modes, config.predicted_steps, 4)
        last_velocity = steps[:, :, -1, VELOCITY]
        constant_velocity = last_velocity.unsqueeze(2) * self.future_times.reshape(1, 1, -1, 1)
        per_step = scales[..., None, None, None]
        means = (constant_velocity.unsqueeze(2) + out[..., :2]) * per_step
        log_scales = LOG_SCALE_LIMIT * torch.tanh(out[..., 2:] / LOG_SCALE_LIMIT) + torch.log(per_step)
        return means, log_scales, self.mode_logits(decoded)


class EnsembleNetwork(nn.Module):
    """Networks of one config trained from different seeds, run on the same inputs, with the same
    inputs and outputs as one: each member's modes are ranked by probability and the members'
    modes of equal rank averaged (means, log scales, log probabilities), so the most likely
    trajectory is the mean of the members' most likely ones. Averaging cancels much of what one
    seed's training got wrong on its own (validation and test ADE in the model cards)."""

    def __init__(self, members: list[TrajectoryNetwork]) -> None:
        super().__init__()
        if not members or any(member.config != members[0].config for member in members):
            raise ValueError("an ensemble needs at least one network, all of one config")
        self.config = members[0].config
        self.members = nn.ModuleList(members)

    def forward(self, steps: torch.Tensor, behaviour: torch.Tensor, agent_types: torch.Tensor, edges: torch.Tensor,
                edge_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        means = log_scales = log_probabilities = 0.0
        for member in self.members:
            member_means, member_log_scales, logits = member(steps, behaviour, agent_types, edges, edge_mask)
            rank = logits.argsort(dim=-1, descending=True)
            by_rank = rank[..., None, None].expand_as(member_means)
            means = means + member_means.gather(2, by_rank)
            log_scales = log_scales + member_log_scales.gather(2, by_rank)
            log_probabilities = log_probabilities + torch.log_softmax(logits, dim=-1).gather(2, rank)
        count = len(self.members)
        return means / count, log_scales / count, log_probabilities / count
