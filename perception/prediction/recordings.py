"""Recorded road-user trajectories (ApolloScape, ETH/UCY) as dense arrays, their benchmark splits,
and the observe/predict windows cut from them.

A recording is a grid of frames × agents: positions are NaN where an agent is absent. Frames are
consecutive time steps of `time_step` seconds.
"""
from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np


class AgentType(enum.IntEnum):
    """Road-user groups that metrics are reported for."""

    VEHICLE = 0
    PEDESTRIAN = 1
    CYCLIST = 2
    OTHER = 3


APOLLOSCAPE_TYPES = {1: AgentType.VEHICLE, 2: AgentType.VEHICLE, 3: AgentType.PEDESTRIAN,
                     4: AgentType.CYCLIST, 5: AgentType.OTHER}
"""ApolloScape object_type (1 small vehicle, 2 big vehicle, 3 pedestrian, 4 cyclist, 5 other) → group."""

APOLLOSCAPE_TIME_STEP = 0.5
"""ApolloScape trajectories are sampled at 2 Hz."""
ETH_UCY_TIME_STEP = 0.4
"""ETH/UCY annotations: one frame every 10 video frames = 0.4 s."""

APOLLOSCAPE_SPLIT = {"val": ("9060", "9061"), "test": ("9062", "9063")}
"""Sequences of ApolloScape's prediction_train files held out for validation and testing (15% of the
rows are test, 6% validation); every other sequence trains."""

ETH_UCY_SCENES: dict[str, tuple[str, ...]] = {
    "eth": ("biwi_eth",),
    "hotel": ("biwi_hotel",),
    "univ": ("students001", "students003"),
    "zara1": ("crowds_zara01",),
    "zara2": ("crowds_zara02",),
}
"""The five leave-one-out test scenes and their recordings (Social-GAN's split). uni_examples and
crowds_zara03 only ever train."""


@dataclass
class Recording:
    """Trajectories of one recorded sequence."""

    name: str
    """File stem, e.g. result_9048_1_frame or biwi_eth_train."""
    time_step: float
    """Seconds between consecutive frames."""
    positions: np.ndarray
    """(F, A, 2) positions in the recording's world frame, metres; NaN where the agent is absent."""
    headings: np.ndarray
    """(F, A) headings, radians; NaN where absent or not annotated (ETH/UCY)."""
    agent_types: np.ndarray
    """(A,) AgentType of each agent."""
    agent_ids: np.ndarray
    """(A,) ids as given in the file."""


def _grid(frames: np.ndarray, ids: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Scatter per-row values onto a (frame, agent) grid; returns the grid, the agent ids and each
    row's agent column."""
    unique_ids, columns = np.unique(ids, return_inverse=True)
    grid = np.full((int(frames.max()) + 1, len(unique_ids), values.shape[1]), np.nan)
    grid[frames, columns] = values
    return grid, unique_ids, columns


def load_apolloscape(path: str | Path) -> Recording:
    """One ApolloScape trajectory file: `frame_id object_id object_type x y z length width height heading`."""
    path = Path(path)
    rows = np.loadtxt(path, ndmin=2)
    if rows.shape[1] != 10:
        raise ValueError(f"{path}: expected 10 columns per row, got {rows.shape[1]}")
    frames = rows[:, 0].astype(np.int64) - int(rows[:, 0].min())
    grid, ids, columns = _grid(frames, rows[:, 1].astype(np.int64), rows[:, [3, 4, 9]])
    types = np.full(len(ids), AgentType.OTHER, dtype=np.int64)
    types[columns] = [APOLLOSCAPE_TYPES.get(int(t), AgentType.OTHER) for t in rows[:, 2]]
    return Recording(path.stem, APOLLOSCAPE_TIME_STEP, grid[..., :2], grid[..., 2], types, ids)


def load_eth_ucy(path: str | Path) -> Recording:
    """One ETH/UCY file in the Social-GAN layout: tab-separated `frame ped_id x y`."""
    path = Path(path)
    rows = np.loadtxt(path, ndmin=2)
    if rows.shape[1] != 4:
        raise ValueError(f"{path}: expected 4 columns per row (frame ped_id x y), got {rows.shape[1]}")
    # Frames are numbered by rank, so frames where nobody is annotated are skipped, as Social-GAN's
    # loader does; the published baselines are computed that way.
    frames = np.unique(rows[:, 0], return_inverse=True)[1]
    grid, ids, _ = _grid(frames, rows[:, 1].astype(np.int64), rows[:, 2:4])
    headings = np.full(grid.shape[:2], np.nan)
    return Recording(path.stem, ETH_UCY_TIME_STEP, grid, headings, np.full(len(ids), AgentType.PEDESTRIAN), ids)


def apolloscape_split(directory: str | Path) -> dict[str, list[Recording]]:
    """The ApolloScape prediction_train files split by sequence into train / val / test."""
    split: dict[str, list[Recording]] = {"train": [], "val": [], "test": []}
    files = sorted(Path(directory).glob("result_*_frame.txt"))
    if not files:
        raise FileNotFoundError(f"no ApolloScape result_*_frame.txt files in {directory}")
    for path in files:
        sequence = re.match(r"result_(\d+)_", path.name).group(1)
        part = next((name for name, sequences in APOLLOSCAPE_SPLIT.items() if sequence in sequences), "train")
        split[part].append(load_apolloscape(path))
    return split


def eth_ucy_split(raw_directory: str | Path, test_scene: str) -> dict[str, list[Recording]]:
    """Leave-one-scene-out: train on the other scenes' train files, validate on their val files,
    test on the held-out scene's whole recordings (raw/all_data)."""
    if test_scene not in ETH_UCY_SCENES:
        raise ValueError(f"unknown ETH/UCY scene {test_scene!r}; one of {sorted(ETH_UCY_SCENES)}")
    raw = Path(raw_directory)
    held_out = ETH_UCY_SCENES[test_scene]

    def load(folder: str, suffix: str) -> list[Recording]:
        paths = sorted((raw / folder).glob(f"*{suffix}.txt"))
        if not paths:
            raise FileNotFoundError(f"no ETH/UCY files in {raw / folder}")
        return [load_eth_ucy(p) for p in paths if p.stem.removesuffix(suffix) not in held_out]

    test = [load_eth_ucy(raw / "all_data" / f"{name}.txt") for name in held_out]
    return {"train": load("train", "_train"), "val": load("val", "_val"), "test": test}


@dataclass
class Window:
    """An observe/predict window of one recording: every agent present at the last observed frame."""

    history: np.ndarray
    """(A, T_obs, 2) observed positions, NaN where absent."""
    history_headings: np.ndarray
    """(A, T_obs) annotated headings, NaN where absent or unknown."""
    future: np.ndarray
    """(A, T_pred, 2) true future positions, NaN where absent."""
    agent_types: np.ndarray
    """(A,) AgentType."""
    targets: np.ndarray
    """(A,) True for the agents that are scored: present in every frame of the window."""
    time_step: float
    """Seconds between frames."""
    source: str
    """Recording name and first frame, for plots and debugging."""


def cut_windows(recording: Recording, observed: int, predicted: int, stride: int = 1,
                scored_types: tuple[AgentType, ...] = tuple(AgentType)) -> list[Window]:
    """Windows of observed + predicted frames starting every `stride` frames. A window is kept when
    an agent of `scored_types` is present in all of its frames (as Social-GAN's loader does)."""
    length = observed + predicted
    present = ~np.isnan(recording.positions[..., 0])
    windows = []
    for start in range(0, recording.positions.shape[0] - length + 1, stride):
        span = slice(start, start + length)
        in_view = present[start + observed - 1]
        targets = present[span].all(axis=0) & np.isin(recording.agent_types, scored_types)
        if not targets.any():
            continue
        agents = np.flatnonzero(in_view)
        positions = recording.positions[span][:, agents].transpose(1, 0, 2)
        windows.append(Window(positions[:, :observed], recording.headings[start:start + observed, agents].T,
                              positions[:, observed:], recording.agent_types[agents], targets[agents],
                              recording.time_step, f"{recording.name}@{start}"))
    return windows


@dataclass(frozen=True)
class Protocol:
    """A benchmark's windowing: how much is observed and predicted, and which agents are scored."""

    observed: int
    """Observed frames (the last one is the prediction's origin)."""
    predicted: int
    """Predicted frames."""
    time_step: float
    """Seconds between frames."""
    scored_types: tuple[AgentType, ...]
    """Agent groups that are scored (others are only neighbours)."""


PROTOCOLS = {
    "apolloscape": Protocol(6, 6, APOLLOSCAPE_TIME_STEP, (AgentType.VEHICLE, AgentType.PEDESTRIAN, AgentType.CYCLIST)),
    "eth_ucy": Protocol(8, 12, ETH_UCY_TIME_STEP, (AgentType.PEDESTRIAN,)),
}
"""ApolloScape: observe 3 s, predict 3 s at 2 Hz. ETH/UCY: observe 3.2 s, predict 4.8 s at 2.5 Hz."""


def protocol_windows(recordings: list[Recording], protocol: Protocol, stride: int = 1) -> list[Window]:
    """Every window of the recordings with at least one scored agent."""
    return [window for recording in recordings
            for window in cut_windows(recording, protocol.observed, protocol.predicted, stride,
                                      scored_types=protocol.scored_types)]
