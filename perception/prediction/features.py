"""Model inputs computed outside the network (numpy): each agent's history in its own frame,
behaviour statistics, dynamic centrality of the interaction graph, and neighbour edges.

Agent frame: origin at the agent's last observed position, x along its heading then (REP-103: y
left). The heading is the direction of its last clear motion, else the annotated heading, else the
world x axis (a standing pedestrian).
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np

from sim.validation import check_ranges

STEP_FEATURES = ("x", "y", "vx", "vy", "ax", "ay", "heading_cos", "heading_sin", "observed",
                 "degree", "closeness", "eigenvector", "degree_rate", "closeness_rate", "eigenvector_rate")
"""Per history step, in the agent's frame (positions m, velocities m/s, accelerations m/s²)."""
BEHAVIOUR_FEATURES = ("speed_mean", "speed_max", "speed_std", "acceleration_mean", "acceleration_max",
                      "jerk_mean", "turn_rate_mean", "turn_rate_max")
"""Per agent, over its observed history: how fast and how aggressively it moves."""
EDGE_FEATURES = ("x", "y", "vx", "vy", "heading_cos", "heading_sin", "distance")
"""Per (agent i, neighbour j): j's last position, velocity and heading in i's frame, and distance."""
MIRRORED = {"step": ("y", "vy", "ay", "heading_sin"), "edge": ("y", "vy", "heading_sin")}
"""Features whose sign flips when a scene is mirrored across the agent's x axis (augmentation)."""


@dataclass
class FeatureConfig:
    """How the interaction graph and neighbourhoods are built."""

    neighbour_radius: float = field(default=30.0, metadata={"range": (0.5, 500.0)})
    """Agents closer than this (metres, at the last observed step) attend to each other and are
    joined in the interaction graph."""
    kernel_distance: float = field(default=10.0, metadata={"range": (0.1, 500.0)})
    """Gaussian kernel width over relative position, metres."""
    kernel_speed: float = field(default=3.0, metadata={"range": (0.01, 100.0)})
    """Gaussian kernel width over relative velocity, m/s."""
    moving_speed: float = field(default=0.3, metadata={"range": (0.0, 10.0)})
    """Slower than this (m/s) an agent's heading is not taken from its motion."""

    def __post_init__(self) -> None:
        check_ranges(self)


@dataclass
class SceneFeatures:
    """Everything the network sees of one scene, plus the frames to map its output back."""

    steps: np.ndarray
    """(A, T_obs, len(STEP_FEATURES)) float32."""
    behaviour: np.ndarray
    """(A, len(BEHAVIOUR_FEATURES)) float32."""
    edges: np.ndarray
    """(A, A, len(EDGE_FEATURES)) float32: row i holds the neighbours of agent i in its frame."""
    edge_mask: np.ndarray
    """(A, A) bool: agent i attends to j (itself always)."""
    origins: np.ndarray
    """(A, 2) each agent's frame origin in the world."""
    rotations: np.ndarray
    """(A, 2, 2) each agent's frame axes in the world (columns x, y)."""


def _velocities(history: np.ndarray, time_step: float) -> np.ndarray:
    """(A, T, 2) backward differences; NaN where either end is missing, the first step is NaN."""
    velocity = np.full_like(history, np.nan)
    velocity[:, 1:] = np.diff(history, axis=1) / time_step
    return velocity


def agent_headings(history: np.ndarray, headings: np.ndarray, time_step: float, moving_speed: float) -> np.ndarray:
    """(A,) heading of each agent's frame: its last clear motion, else its last annotated heading, else 0."""
    velocity = _velocities(history, time_step)
    speed = np.linalg.norm(velocity, axis=-1)
    moving = speed > moving_speed
    last_moving = np.where(moving.any(axis=1), history.shape[1] - 1 - np.argmax(moving[:, ::-1], axis=1), -1)
    agents = np.arange(len(history))
    motion = np.arctan2(velocity[agents, last_moving, 1], velocity[agents, last_moving, 0])
    annotated = headings[:, -1]
    return np.where(last_moving >= 0, motion, np.where(np.isnan(annotated), 0.0, annotated))


def _rotations(yaws: np.ndarray) -> np.ndarray:
    cos, sin = np.cos(yaws), np.sin(yaws)
    return np.stack([np.stack([cos, -sin], axis=-1), np.stack([sin, cos], axis=-1)], axis=-2)


def interaction_centrality(positions: np.ndarray, velocities: np.ndarray, config: FeatureConfig) -> np.ndarray:
    """Degree, closeness and eigenvector centrality of every agent at every step, (A, T, 3).

    At each step the agents present form a graph: i–j weighted exp(-|Δp|²/2σp² − |Δv|²/2σv²) when
    closer than neighbour_radius. Closeness uses path lengths 1/w and counts only the agents a node
    reaches (Wasserman–Faust); eigenvector centrality is the Perron vector of the weight matrix,
    scaled to unit norm. Absent and unlinked agents get 0.
    """
    agents, steps = positions.shape[:2]
    present = ~np.isnan(positions[..., 0])
    # (T, A, 2) laid out step by step: the (T, A, A) graphs below inherit the layout, and Floyd–Warshall
    # over a transposed one ran 3× slower
    p = np.ascontiguousarray(np.nan_to_num(positions).transpose(1, 0, 2))
    v = np.ascontiguousarray(np.nan_to_num(velocities).transpose(1, 0, 2))
    distance_sq = np.sum((p[:, :, None] - p[:, None]) ** 2, axis=-1)
    speed_sq = np.sum((v[:, :, None] - v[:, None]) ** 2, axis=-1)
    both = present.T[:, :, None] & present.T[:, None, :] & ~np.eye(agents, dtype=bool)
    linked = both & (distance_sq < config.neighbour_radius ** 2)
    weights = np.where(linked, np.exp(-distance_sq / (2 * config.kernel_distance ** 2)
                                      - speed_sq / (2 * config.kernel_speed ** 2)), 0.0)
    weights = np.where(weights > 1e-9, weights, 0.0)  # underflowed links would be infinitely long paths
    degree = weights.sum(axis=-1)
    block = _shortest_paths(np.divide(1.0, weights, out=np.zeros_like(weights), where=weights > 0))
    reachable = np.isfinite(block) & (block > 0)
    reached = reachable.sum(axis=-1)
    total = np.where(reachable, block, 0.0).sum(axis=-1)
    others = np.maximum(present.sum(axis=0) - 1, 1)[:, None]
    closeness = np.divide(reached * reached, total * others, out=np.zeros((steps, agents)), where=total > 0)
    eigenvector = _perron_vectors(weights) * (degree > 0)
    return np.stack([degree, closeness, eigenvector], axis=-1).transpose(1, 0, 2)


def _shortest_paths(lengths: np.ndarray) -> np.ndarray:
    """All-pairs shortest path lengths of the graphs (T, A, A) (0: no edge; inf: unreachable):
    Floyd–Warshall vectorised over the steps, faster than one scipy call per small dense graph."""
    distances = np.where(lengths > 0, lengths, np.inf).astype(np.float32)  # float32: half the memory traffic
    diagonal = np.arange(lengths.shape[1])
    distances[:, diagonal, diagonal] = 0.0
    for via in range(lengths.shape[1]):
        np.minimum(distances, distances[:, :, via:via + 1] + distances[:, via:via + 1, :], out=distances)
    return distances


POWER_ITERATIONS = 60
"""Iterations of x ← (W + I)x for eigenvector centrality (networkx's shifted iteration): no LAPACK
call, whose threads stall on a busy 2-core machine, and the shift keeps it from oscillating."""


def _perron_vectors(weights: np.ndarray) -> np.ndarray:
    """Unit-norm leading eigenvectors of the non-negative symmetric matrices weights (T, A, A)."""
    vectors = np.full(weights.shape[:2], 1.0 / np.sqrt(weights.shape[1]))
    for _ in range(POWER_ITERATIONS):
        vectors = vectors + np.einsum("tij,tj->ti", weights, vectors)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors


def _behaviour(speed: np.ndarray, velocity: np.ndarray, time_step: float, moving_speed: float) -> np.ndarray:
    """(A, 8) speed, acceleration, jerk and turn-rate statistics over the observed steps."""
    acceleration = np.diff(speed, axis=1) / time_step
    jerk = np.diff(acceleration, axis=1) / time_step
    heading = np.arctan2(velocity[..., 1], velocity[..., 0])
    turning = np.diff(heading, axis=1)
    turn_rate = np.abs(np.arctan2(np.sin(turning), np.cos(turning))) / time_step
    turn_rate = np.where((speed[:, 1:] > moving_speed) & (speed[:, :-1] > moving_speed), turn_rate, np.nan)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # an agent without one valid value gives NaN, then 0
        columns = [np.nanmean(speed, axis=1), np.nanmax(speed, axis=1), np.nanstd(speed, axis=1),
                   np.nanmean(np.abs(acceleration), axis=1), np.nanmax(np.abs(acceleration), axis=1),
                   np.nanmean(np.abs(jerk), axis=1), np.nanmean(turn_rate, axis=1), np.nanmax(turn_rate, axis=1)]
    return np.nan_to_num(np.stack(columns, axis=1))


def scene_features(history: np.ndarray, headings: np.ndarray, time_step: float, config: FeatureConfig) -> SceneFeatures:
    """Features of the agents of one scene from their observed positions (A, T_obs, 2) in a world
    frame (NaN where absent; every agent must be present at the last step) and annotated headings
    (A, T_obs), NaN where unknown."""
    if history.ndim != 3 or history.shape[2] != 2 or headings.shape != history.shape[:2]:
        raise ValueError(f"history must be (A, T, 2) and headings (A, T), got {history.shape} and {headings.shape}")
    if np.isnan(history[:, -1]).any():
        raise ValueError("every agent must be observed at the last history step")
    agents, steps = history.shape[:2]
    velocity = _velocities(history, time_step)
    acceleration = np.full_like(history, np.nan)
    acceleration[:, 1:] = np.diff(velocity, axis=1) / time_step
    yaws = agent_headings(history, headings, time_step, config.moving_speed)
    rotations = _rotations(yaws)
    origins = history[:, -1].copy()
    # Into each agent's own frame: world vector u → Rᵀ u.
    local = np.einsum("aji,atj->ati", rotations, history - origins[:, None])
    local_velocity = np.einsum("aji,atj->ati", rotations, velocity)
    local_acceleration = np.einsum("aji,atj->ati", rotations, acceleration)
    motion = np.arctan2(velocity[..., 1], velocity[..., 0])
    step_heading = np.where(np.linalg.norm(np.nan_to_num(velocity), axis=-1) > config.moving_speed,
                            motion - yaws[:, None], 0.0)
    observed = ~np.isnan(history[..., 0])
    centrality = interaction_centrality(history, velocity, config)
    rates = np.zeros_like(centrality)
    rates[:, 1:] = np.diff(centrality, axis=1) / time_step
    rates[:, 1:] *= (observed[:, 1:] & observed[:, :-1])[..., None]
    step_values = np.concatenate([local, local_velocity, local_acceleration, np.cos(step_heading)[..., None],
                                  np.sin(step_heading)[..., None], observed[..., None], centrality, rates], axis=-1)
    step_values = np.where(observed[..., None], np.nan_to_num(step_values), 0.0)
    speed = np.linalg.norm(velocity, axis=-1)

    # Neighbour j in agent i's frame.
    last_velocity = np.nan_to_num(velocity[:, -1])
    relative = np.einsum("iba,ijb->ija", rotations, origins[None] - origins[:, None])
    relative_velocity = np.einsum("iba,jb->ija", rotations, last_velocity)
    relative_heading = yaws[None, :] - yaws[:, None]
    distance = np.linalg.norm(relative, axis=-1)
    edges = np.concatenate([relative, relative_velocity, np.cos(relative_heading)[..., None],
                            np.sin(relative_heading)[..., None], distance[..., None]], axis=-1)
    edge_mask = (distance < config.neighbour_radius) | np.eye(agents, dtype=bool)
    return SceneFeatures(step_values.astype(np.float32), _behaviour(speed, velocity, time_step, config.moving_speed).astype(np.float32),
                         edges.astype(np.float32), edge_mask, origins, rotations)


def to_world(local: np.ndarray, features: SceneFeatures) -> np.ndarray:
    """Agent-frame positions (A, ..., 2) back to the world frame."""
    flat = local.reshape(local.shape[0], -1, 2)
    world = np.einsum("aij,anj->ani", features.rotations, flat) + features.origins[:, None]
    return world.reshape(local.shape)


def to_local(world: np.ndarray, features: SceneFeatures) -> np.ndarray:
    """World positions (A, ..., 2) into each agent's frame."""
    flat = world.reshape(world.shape[0], -1, 2) - features.origins[:, None]
    return np.einsum("aji,anj->ani", features.rotations, flat).reshape(world.shape)
