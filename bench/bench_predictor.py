"""Latency of trajectory prediction for many agents (features incl. centrality, onnxruntime, the
whole TrackPredictor.update and the PredictedObjects message); prints Markdown lines.

    python bench/bench_predictor.py [--agents 64] [--repeats 200] [--model models/trajectory_predictor_apolloscape.onnx]

The scene: `--agents` road users on a 120 m × 20 m stretch, 80 % vehicles driving along it at
0–12 m/s either way, 20 % pedestrians at 1–1.5 m/s, seen by the tracker at 10 Hz; every agent has
the model's whole history. The first 10 repeats are warm-up and not timed.
"""
from __future__ import annotations

import argparse
import datetime
import time

import numpy as np
import torch
from std_msgs.msg import Header

from evaluation.detector_report import machine_description
from perception.objects import Box3D, ObjectClass, TrackedObject
from perception.prediction.features import scene_features
from perception.prediction.predictor import TrajectoryPredictor
from perception.prediction.track_predictor import TrackPredictionConfig, TrackPredictor
from robot_nodes.conversions import predicted_objects_to_msg

WARM_UP = 10


def tracks_at(stamp: float, starts: np.ndarray, velocities: np.ndarray, labels: list[ObjectClass]) -> list[TrackedObject]:
    positions = starts + velocities * stamp
    yaws = np.arctan2(velocities[:, 1], velocities[:, 0])
    return [TrackedObject(index + 1, label, 0.9, Box3D((x, y, 0.8), (4.5, 1.9, 1.6), yaw), velocity)
            for index, (label, (x, y), yaw, velocity) in enumerate(zip(labels, positions, yaws, velocities))]


def percentiles(values: list[float]) -> str:
    return f"median {np.median(values):.2f} ms, p99 {np.percentile(values, 99):.2f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=200)
    parser.add_argument("--model", default="models/trajectory_predictor_apolloscape.onnx")
    parser.add_argument("--threads", type=int, default=1, help="onnxruntime threads")
    parser.add_argument("--seed", type=int, default=0)
    options = parser.parse_args()

    rng = np.random.default_rng(options.seed)
    vehicles = options.agents * 4 // 5
    labels = [ObjectClass.CAR] * vehicles + [ObjectClass.PEDESTRIAN] * (options.agents - vehicles)
    starts = np.column_stack([rng.uniform(-60, 60, options.agents), rng.uniform(-10, 10, options.agents)])
    speeds = np.where(np.arange(options.agents) < vehicles, rng.uniform(0, 12, options.agents),
                      rng.uniform(1.0, 1.5, options.agents)) * rng.choice([-1, 1], options.agents)
    velocities = np.column_stack([speeds, rng.normal(0, 0.2, options.agents)])

    model = TrajectoryPredictor.from_file(options.model, options.threads)
    predictor = TrackPredictor(TrackPredictionConfig(modes=3, horizon=3.0), model)
    history_seconds = model.time_step * model.network_config.observed_steps
    stamp = 0.0
    while stamp < history_seconds:  # fill the histories at 10 Hz
        predictor.update(stamp, tracks_at(stamp, starts, velocities, labels))
        stamp += 0.1
    header = Header(frame_id="odom")
    features_ms, network_ms, update_ms, message_ms = [], [], [], []
    for repeat in range(options.repeats + WARM_UP):
        stamp += 0.1
        tracks = tracks_at(stamp, starts, velocities, labels)
        started = time.perf_counter()
        predicted = predictor.update(stamp, tracks)
        updated = time.perf_counter()
        predicted_objects_to_msg(predicted, header)
        encoded = time.perf_counter()
        history, headings = predictor.history.resampled(stamp, [t.object_id for t in tracks])
        before_features = time.perf_counter()
        features = scene_features(history, headings, model.time_step, model.feature_config)
        before_network = time.perf_counter()
        model.run(features, np.zeros(len(tracks), dtype=np.int64))
        done = time.perf_counter()
        if repeat >= WARM_UP:
            update_ms.append(1e3 * (updated - started))
            message_ms.append(1e3 * (encoded - updated))
            features_ms.append(1e3 * (before_network - before_features))
            network_ms.append(1e3 * (done - before_network))
    machine = machine_description(torch.device("cpu"))
    print(f"{datetime.date.today()}, {machine['cpu']} ({machine['cores']} cores), {options.agents} agents, onnxruntime "
          f"{options.threads} thread(s), {options.repeats} repeats:")
    print(f"- features (agent frames, behaviour, centrality over {model.network_config.observed_steps} steps): "
          f"{percentiles(features_ms)}")
    print(f"- network (onnxruntime): {percentiles(network_ms)}")
    print(f"- TrackPredictor.update (history, features, network, {predictor.config.modes} modes out): "
          f"{percentiles(update_ms)}")
    print(f"- PredictedObjects message ({options.agents} × {predictor.config.modes} × {predictor.predicted_steps} poses): "
          f"{percentiles(message_ms)}")


if __name__ == "__main__":
    main()
