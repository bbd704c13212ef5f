"""train-predictor: train the HiT-style trajectory predictor on a recorded dataset and export it.

    train-predictor --dataset apolloscape             # one model, sequences split train/val/test
    train-predictor --dataset eth_ucy                 # five leave-one-scene-out models

Each model is written as models/trajectory_predictor_<name>.pt (weights, configs, training log) and
.onnx (what the node runs). A model of several members (--members) is an ensemble of networks
trained from seeds seed, seed + 1, ... (perception.prediction.network.EnsembleNetwork); the
networks of all folds and members train side by side in --workers processes. Validation
ADE picks each member's best epoch; the test sets are never looked at here (evaluate-predictor
scores them).
"""
from __future__ import annotations

import argparse
import dataclasses
import hashlib
import multiprocessing
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from perception.prediction.features import FeatureConfig
from perception.prediction.network import EnsembleNetwork, NetworkConfig, TrajectoryNetwork
from perception.prediction.predictor import export_onnx
from perception.prediction.recordings import ETH_UCY_SCENES, PROTOCOLS, Protocol, Recording, apolloscape_split, \
    eth_ucy_split, protocol_windows
from sim.validation import check_ranges
from training.prediction_data import Batch, Sample, collate, feature_statistics, make_samples, reversed_in_time

DATASET_DEFAULTS = {"apolloscape": {"modes": 6, "most_likely_weight": 1.0, "hidden": 32, "speed_floor": 0.0,
                                    "members": 2, "time_reversal": True},
                    "eth_ucy": {"modes": 3, "most_likely_weight": 3.0, "hidden": 64, "speed_floor": 0.2,
                                "members": 2, "time_reversal": False}}
"""Settings per dataset, chosen by validation ADE (see the model cards): the small ApolloScape
training set overfits a wider network, and one seed's network varies by ±4 % on validation; the
average of two (seeds 0, 1) is 4.8 % better there than seed 0 alone, of three 5.3 % at 1.5× the
network's run time; on ETH/UCY two members lower the five folds' validation ADE by 1.6 %.
ApolloScape also trains on its recordings played backwards, twice the windows: the two-seed
model's validation ADE 0.941 → 0.892; on ETH/UCY's univ fold 0.356 → 0.350 at 2.5× the training
time (all five folds would pass the hour) and nothing at equal time (half the epochs), so it stays
off there. Pedestrians' futures are scored on the most likely of fewer modes, weighted more, and
read in units of each walker's pace (the held-out scene walks at its own)."""

FEATURES = {
    "apolloscape": FeatureConfig(neighbour_radius=30.0, kernel_distance=10.0, kernel_speed=3.0),
    "eth_ucy": FeatureConfig(neighbour_radius=10.0, kernel_distance=2.0, kernel_speed=1.0),
}
"""Interaction graph per dataset: traffic reacts over tens of metres, pedestrians over a few."""


@dataclass
class TrainConfig:
    """Optimisation settings."""

    epochs: int = field(default=60, metadata={"range": (1, 10000)})
    """Passes over the training windows."""
    batch_size: int = field(default=16, metadata={"range": (1, 4096)})
    """Scenes per step."""
    learning_rate: float = field(default=2e-3, metadata={"range": (1e-6, 1.0)})
    """Peak learning rate (one-cycle schedule)."""
    weight_decay: float = field(default=1e-4, metadata={"range": (0.0, 1.0)})
    """AdamW weight decay."""
    most_likely_weight: float = field(default=1.0, metadata={"range": (0.0, 100.0)})
    """Weight of the ADE of the mode the network ranks most probable, added to the winner-takes-all
    loss: the most likely mode is what a planner uses, so it is trained to be right on its own."""
    mirror: bool = True
    """Mirror half the training scenes across their agents' x axes (left and right swapped)."""
    time_reversal: bool = False
    """Train on every training recording played backwards too (reversed_in_time): twice the windows."""
    seed: int = 0
    """Seed of the initialisation, shuffling and augmentation."""

    def __post_init__(self) -> None:
        check_ranges(self)


def trajectory_loss(means: torch.Tensor, log_scales: torch.Tensor, logits: torch.Tensor, batch: Batch,
                    most_likely_weight: float = 0.0) -> torch.Tensor:
    """Winner-takes-all: Gaussian negative log-likelihood of the mode closest to the truth (by ADE)
    plus cross-entropy teaching the mode probabilities which mode that is, plus most_likely_weight ×
    the ADE of the mode ranked most probable; over scored agents."""
    truth = batch.future.unsqueeze(2)
    errors = torch.linalg.vector_norm(means - truth, dim=-1).mean(-1)  # (S, A, K)
    best = errors.argmin(-1)
    pick = best[..., None, None, None].expand(-1, -1, 1, *means.shape[3:])
    best_means, best_log_scales = means.gather(2, pick)[:, :, 0], log_scales.gather(2, pick)[:, :, 0]
    normalised = (batch.future - best_means) * torch.exp(-best_log_scales)
    nll = (0.5 * normalised ** 2 + best_log_scales).sum(-1).mean(-1)
    classification = torch.nn.functional.cross_entropy(logits.flatten(0, 1), best.flatten(), reduction="none")
    most_likely = errors.gather(2, logits.argmax(-1, keepdim=True))[..., 0]
    per_agent = nll + classification.reshape(best.shape) + most_likely_weight * most_likely
    return per_agent[batch.scored].mean()


def _batches(samples: list[Sample], batch_size: int, rng: np.random.Generator) -> list[list[Sample]]:
    """Shuffled batches of scenes of similar size (less padding)."""
    sizes = np.array([len(s.window.history) for s in samples]) + rng.random(len(samples))
    order = np.argsort(sizes)
    batches = [[samples[i] for i in order[start:start + batch_size]] for start in range(0, len(order), batch_size)]
    return [batches[i] for i in rng.permutation(len(batches))]


def most_likely_ade(network: TrajectoryNetwork | EnsembleNetwork, samples: list[Sample], batch_size: int = 64) -> float:
    """Mean ADE of the most probable mode over the scored agents (agent frames: distances are the same)."""
    network.eval()
    errors = []
    with torch.no_grad():
        for start in range(0, len(samples), batch_size):
            batch = collate(samples[start:start + batch_size])
            means, _, logits = network(*batch.inputs())
            best = logits.argmax(-1)[..., None, None, None].expand(-1, -1, 1, *means.shape[3:])
            chosen = means.gather(2, best)[:, :, 0]
            ade = torch.linalg.vector_norm(chosen - batch.future, dim=-1).mean(-1)
            errors.append(ade[batch.scored])
    network.train()
    return float(torch.cat(errors).mean())


def train_model(train: list[Sample], val: list[Sample], network_config: NetworkConfig, config: TrainConfig,
                description: str) -> tuple[TrajectoryNetwork, list[dict]]:
    """Train, keep the epoch with the best validation ADE; returns the network and a log per epoch."""
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    network = TrajectoryNetwork(network_config)
    network.set_normalisation(feature_statistics(train, network_config.speed_floor))
    optimiser = torch.optim.AdamW(network.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay)
    steps_per_epoch = -(-len(train) // config.batch_size)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, config.learning_rate,
                                                   total_steps=config.epochs * steps_per_epoch)
    log, best_ade, best_state = [], float("inf"), None
    with tqdm(total=config.epochs * steps_per_epoch, desc=description, unit="batch") as bar:
        for epoch in range(config.epochs):
            losses = []
            for scenes in _batches(train, config.batch_size, rng):
                batch = collate(scenes, mirror=(rng.random(len(scenes)) < 0.5) & config.mirror)
                loss = trajectory_loss(*network(*batch.inputs()), batch, config.most_likely_weight)
                optimiser.zero_grad()
                loss.backward()
                torch.nn.utils.clip_grad_norm_(network.parameters(), 5.0)
                optimiser.step()
                schedule.step()
                losses.append(loss.item())
                bar.update()
            val_ade = most_likely_ade(network, val)
            log.append({"epoch": epoch + 1, "loss": float(np.mean(losses)), "val_ade": val_ade})
            bar.set_postfix(loss=f"{np.mean(losses):.3f}", val_ade=f"{val_ade:.3f}")
            if val_ade < best_ade:
                best_ade, best_state = val_ade, {k: v.clone() for k, v in network.state_dict().items()}
    network.load_state_dict(best_state)
    network.eval()
    return network, log


def save_model(network: TrajectoryNetwork | EnsembleNetwork, feature_config: FeatureConfig, train_config: TrainConfig,
               logs: list[list[dict]], val_ade: float, metadata: dict, output: Path) -> None:
    """<output>.pt (state dict, configs, each member's training log) and <output>.onnx (configs and
    metadata inside: each member's seed and best epoch, the whole model's validation ADE)."""
    output.parent.mkdir(parents=True, exist_ok=True)
    members = [{"seed": train_config.seed + index, "best_epoch": int(np.argmin([e["val_ade"] for e in log])) + 1,
                "best_val_ade": min(e["val_ade"] for e in log)} for index, log in enumerate(logs)]
    metadata = {**metadata, "train_config": dataclasses.asdict(train_config), "members": members,
                "best_val_ade": val_ade}
    torch.save({"network_config": dataclasses.asdict(network.config), "feature_config": dataclasses.asdict(feature_config),
                "state_dict": network.state_dict(), "logs": logs, "metadata": metadata}, output.with_suffix(".pt"))
    onnx_bytes = export_onnx(network, feature_config, metadata)
    output.with_suffix(".onnx").write_bytes(onnx_bytes)
    print(f"wrote {output.with_suffix('.pt')} and {output.with_suffix('.onnx')} "
          f"(sha256 {hashlib.sha256(onnx_bytes).hexdigest()[:16]}…)", file=sys.stderr)


def _split_summary(split: dict[str, list[Recording]]) -> dict[str, list[str]]:
    return {part: [recording.name for recording in recordings] for part, recordings in split.items()}


@dataclass
class MemberTask:
    """One network of a model to train: its data, shapes and settings (picklable, for a worker process)."""

    train: list[Recording]
    val: list[Recording]
    protocol: Protocol
    feature_config: FeatureConfig
    network_config: NetworkConfig
    train_config: TrainConfig
    description: str
    stride: int = 1
    """Frames between window starts."""


@dataclass
class TrainedMember:
    """A trained network's weights (its best epoch), its log per epoch, its data sizes and wall time."""

    state_dict: dict[str, torch.Tensor]
    log: list[dict]
    training_windows: int
    validation_windows: int
    seconds: float


def train_member(task: MemberTask) -> TrainedMember:
    """Windows and features of the task's recordings, then train_model."""
    started = time.perf_counter()
    backwards = [reversed_in_time(r) for r in task.train] if task.train_config.time_reversal else []
    train, val = (make_samples(protocol_windows(recordings, task.protocol, task.stride), task.feature_config)
                  for recordings in (task.train + backwards, task.val))
    print(f"{task.description}: {len(train)} training and {len(val)} validation windows", file=sys.stderr)
    network, log = train_model(train, val, task.network_config, task.train_config, task.description)
    return TrainedMember(network.state_dict(), log, len(train), len(val), time.perf_counter() - started)


def _train_member_in_worker(task: MemberTask) -> TrainedMember:
    torch.set_num_threads(1)
    return train_member(task)


def train_members(tasks: list[MemberTask], workers: int) -> list[TrainedMember]:
    """Every task, in this process (workers 1) or in that many worker processes of one torch thread
    each; the networks are the same either way (each member seeds its own training)."""
    if workers == 1:
        return [train_member(task) for task in tasks]
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        return list(pool.map(_train_member_in_worker, tasks))


def train_dataset(dataset: str, data: Path, output: Path, train_config: TrainConfig, hidden: int, modes: int,
                  speed_floor: float, members: int, scenes: list[str], workers: int) -> None:
    protocol = PROTOCOLS[dataset]
    feature_config = FEATURES[dataset]
    network_config = NetworkConfig(observed_steps=protocol.observed, predicted_steps=protocol.predicted,
                                   time_step=protocol.time_step, modes=modes, hidden=hidden, speed_floor=speed_floor)
    if dataset == "apolloscape":
        folds = {"apolloscape": apolloscape_split(data / "apolloscape" / "prediction_train")}
    else:
        folds = {f"eth_ucy_{scene}": eth_ucy_split(data / "eth_ucy" / "raw", scene) for scene in scenes}
    tasks = [MemberTask(split["train"], split["val"], protocol, feature_config, network_config,
                        dataclasses.replace(train_config, seed=train_config.seed + i),
                        name if members == 1 else f"{name} member {i + 1}/{members}")
             for name, split in folds.items() for i in range(members)]
    trained = iter(train_members(tasks, workers))
    for name, split in folds.items():
        fold = [next(trained) for _ in range(members)]
        networks = []
        for member in fold:
            network = TrajectoryNetwork(network_config)
            network.load_state_dict(member.state_dict)
            networks.append(network.eval())
        network = networks[0] if members == 1 else EnsembleNetwork(networks)
        # The validation features once more here (seconds): cheaper than sending them back from the workers.
        val = make_samples(protocol_windows(split["val"], protocol), feature_config)
        metadata = {"dataset": dataset, "name": name, "split": _split_summary(split),
                    "protocol": {"observed": protocol.observed, "predicted": protocol.predicted,
                                 "time_step": protocol.time_step,
                                 "scored_types": [t.name.lower() for t in protocol.scored_types]},
                    "training_windows": fold[0].training_windows, "validation_windows": fold[0].validation_windows,
                    "training_seconds": round(sum(member.seconds for member in fold), 1),
                    "torch_threads": 1 if workers > 1 else torch.get_num_threads()}
        save_model(network, feature_config, train_config, [member.log for member in fold], most_likely_ade(network, val),
                   metadata, output / f"trajectory_predictor_{name}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="train-predictor", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", choices=sorted(PROTOCOLS), required=True)
    parser.add_argument("--data", type=Path, default=Path("data/trajectories"), help="the trajectories folder")
    parser.add_argument("--output", type=Path, default=Path("models"), help="folder for the .pt and .onnx files")
    parser.add_argument("--scenes", nargs="+", default=list(ETH_UCY_SCENES), choices=list(ETH_UCY_SCENES),
                        help="eth_ucy: the held-out scenes to train a model for")
    parser.add_argument("--epochs", type=int, default=TrainConfig.epochs)
    parser.add_argument("--batch-size", type=int, default=TrainConfig.batch_size)
    parser.add_argument("--learning-rate", type=float, default=TrainConfig.learning_rate)
    parser.add_argument("--weight-decay", type=float, default=TrainConfig.weight_decay)
    parser.add_argument("--most-likely-weight", type=float,
                        help="weight of the most likely mode's ADE (default: 1 apolloscape, 3 eth_ucy)")
    parser.add_argument("--no-mirror", action="store_true", help="no left-right mirroring augmentation")
    parser.add_argument("--time-reversal", action=argparse.BooleanOptionalAction,
                        help="also train on the training recordings played backwards (default: on for apolloscape, "
                        "off for eth_ucy)")
    parser.add_argument("--seed", type=int, default=TrainConfig.seed, help="seed of the first member")
    parser.add_argument("--members", type=int,
                        help="networks averaged, trained from seeds seed, seed + 1, ... (default: 2)")
    parser.add_argument("--hidden", type=int, help="layer width (default: 32 apolloscape, 64 eth_ucy)")
    parser.add_argument("--modes", type=int, help="modes K (default: 6 apolloscape, 3 eth_ucy)")
    parser.add_argument("--speed-floor", type=float,
                        help="0: histories in metres; above 0: in units of each agent's mean speed, at least this "
                        "(m/s; default: 0 apolloscape, 0.2 eth_ucy)")
    parser.add_argument("--workers", type=int, default=2,
                        help="networks trained side by side, one process and one torch thread each (1: in this "
                        "process with --threads)")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads with --workers 1")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    defaults = DATASET_DEFAULTS[args.dataset]
    try:
        config = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, learning_rate=args.learning_rate,
                             weight_decay=args.weight_decay,
                             most_likely_weight=defaults["most_likely_weight"] if args.most_likely_weight is None
                             else args.most_likely_weight, mirror=not args.no_mirror, seed=args.seed,
                             time_reversal=defaults["time_reversal"] if args.time_reversal is None
                             else args.time_reversal)
        modes = defaults["modes"] if args.modes is None else args.modes
        hidden = defaults["hidden"] if args.hidden is None else args.hidden
        speed_floor = defaults["speed_floor"] if args.speed_floor is None else args.speed_floor
        members = defaults["members"] if args.members is None else args.members
        if members < 1 or args.workers < 1:
            raise ValueError(f"--members and --workers must be at least 1, got {members} and {args.workers}")
        train_dataset(args.dataset, args.data, args.output, config, hidden, modes, speed_floor, members, args.scenes,
                      args.workers)
    except (OSError, ValueError) as error:
        print(f"train-predictor: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
