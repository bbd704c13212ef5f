"""Prediction errors of a run (a bag of the trajectory_predictor's output) against the simulated
ground truth: each predicted track is matched to the true object nearest to it at the prediction
stamp, and its most likely future is compared with where that object really went."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import linear_sum_assignment

from perception.objects import GroundTruthObject, PredictedObject
from perception.prediction.track_predictor import AGENT_TYPES
from perception.prediction.recordings import AgentType

MATCH_DISTANCE = 2.0
"""A track is the true object whose centre is within this many metres at the prediction stamp
(one-to-one, nearest first); farther tracks are false tracks, not scored. Tracks of parked objects
are not scored either: predicting that they stay is trivial."""


@dataclass
class PredictionRunResult:
    """ADE/FDE of the most likely mode, and of constant velocity from the track's own velocity."""

    errors: dict[AgentType, list[np.ndarray]] = field(default_factory=dict)
    """Per type: (T,) errors of the most likely mode per scored prediction."""
    baseline_errors: dict[AgentType, list[np.ndarray]] = field(default_factory=dict)
    """Per type: (T,) errors of constant velocity from the track's velocity."""
    unmatched: int = 0
    """Predicted tracks with no true object within MATCH_DISTANCE."""
    parked: int = 0
    """Predicted tracks of parked (static) objects."""
    incomplete: int = 0
    """Matched predictions whose horizon runs past the end of the ground truth or the object's life."""

    def to_markdown(self) -> str:
        lines = ["| type | predictions | model ADE / FDE (most likely) | CV from track velocity ADE / FDE |",
                 "| --- | ---: | --- | --- |"]
        for agent_type, errors in sorted(self.errors.items()):
            model, baseline = np.stack(errors), np.stack(self.baseline_errors[agent_type])
            lines.append(f"| {agent_type.name.lower()} | {len(model)} | {model.mean():.2f} / {model[:, -1].mean():.2f} | "
                         f"{baseline.mean():.2f} / {baseline[:, -1].mean():.2f} |")
        return "\n".join(lines)


def score_prediction_run(predictions: Sequence[tuple[int, Sequence[PredictedObject]]],
                         ground_truth: Sequence[tuple[int, Sequence[GroundTruthObject]]],
                         match_distance: float = MATCH_DISTANCE) -> PredictionRunResult:
    """predictions: (stamp_ns, objects) in the ground truth's frame (odom = map in the simulator);
    ground_truth: (stamp_ns, objects) of every ground-truth message."""
    truth = {stamp: {o.object_id: o for o in objects} for stamp, objects in ground_truth}
    result = PredictionRunResult()
    for stamp, objects in predictions:
        now = truth.get(stamp)
        if now is None or not objects:
            continue
        ids = list(now)
        if not ids:
            result.unmatched += len(objects)
            continue
        tracks = np.array([o.track.box.center[:2] for o in objects])
        centres = np.array([now[i].box.center[:2] for i in ids])
        distances = np.linalg.norm(tracks[:, None] - centres[None], axis=-1)
        rows, columns = linear_sum_assignment(distances)
        matched = {row: ids[column] for row, column in zip(rows, columns) if distances[row, column] <= match_distance}
        result.unmatched += len(objects) - len(matched)
        for row, object_id in matched.items():
            if now[object_id].is_static:
                result.parked += 1
                continue
            predicted = objects[row]
            path = predicted.paths[0]
            times_ns = stamp + np.round(path.time_step * 1e9 * np.arange(1, len(path.positions) + 1)).astype(np.int64)
            future = [truth.get(int(t), {}).get(object_id) for t in times_ns]
            if any(o is None for o in future):
                result.incomplete += 1
                continue
            true_positions = np.array([o.box.center[:2] for o in future])
            seconds = path.time_step * np.arange(1, len(path.positions) + 1)[:, None]
            constant_velocity = predicted.track.box.center[:2] + seconds * predicted.track.velocity
            agent_type = AGENT_TYPES[now[object_id].label]
            result.errors.setdefault(agent_type, []).append(np.linalg.norm(path.positions - true_positions, axis=-1))
            result.baseline_errors.setdefault(agent_type, []).append(
                np.linalg.norm(constant_velocity - true_positions, axis=-1))
    return result
