"""train-detector: train the lidar detector from scratch on scans of the simulated world.

One command, CPU-sized: simulate the training episodes (cached under --data, reused on a rerun),
build the ground-truth database, then train with ground-truth sampling and global augmentation,
AdamW and a one-cycle learning rate, a fixed seed and a progress bar. A checkpoint is written
every --checkpoint-every iterations; rerunning the same command resumes from it. The final weights
go to --output (models/lidar_detector.pt by default).
"""
from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from perception.detection import CenterPointNet, DetectorConfig, save_checkpoint
from perception.detection.detector import resolve_device
from perception.detection.targets import detection_loss, scan_targets, stack_targets
from perception.detection.voxelizer import Voxelizer, crop_to_range
from training.augmentation import AugmentationConfig, GroundTruthDatabase, global_transform, rescale_vehicles
from training.detection_data import SceneSample, generate_dataset, load_episode

TRAIN_SCENARIOS = ["config/scenarios/urban_default.yaml", "config/scenarios/dense_clutter.yaml",
                   "config/scenarios/parked_trucks.yaml"]
"""Base scenarios of the training episodes (each randomised per seed)."""
TRAIN_SEEDS = range(0, 240)
"""World seeds of the training episodes; test sets use seeds from 100000 on."""
MIN_TARGET_POINTS = 3
"""Objects with fewer lidar returns get no training target (nothing to see)."""


class TrainingScans(Dataset):
    """Augmented scans with their targets; the seed of item i in epoch e is fixed."""

    def __init__(self, samples: list[SceneSample], config: DetectorConfig, augmentation: AugmentationConfig,
                 seed: int) -> None:
        self.samples, self.config, self.augmentation, self.seed = samples, config, augmentation, seed
        self.database = GroundTruthDatabase(samples, augmentation.min_points)
        self.class_index = config.class_index()
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, item: int):
        rng = np.random.default_rng([self.seed, self.epoch, item])
        sample = self.samples[item]
        sample = self.database.paste(sample, self.augmentation.sample_counts, rng)
        sample = rescale_vehicles(sample, self.augmentation, rng)
        sample = global_transform(sample, self.augmentation, rng)
        points = sample.points[crop_to_range(sample.points, self.config.voxel.point_range)]
        known = np.array([label in self.class_index for label in sample.labels], dtype=bool)
        chosen = known & (sample.num_points >= MIN_TARGET_POINTS)
        classes = np.array([self.class_index[label] for label in sample.labels[chosen]], dtype=np.int64)
        return points, scan_targets(sample.boxes[chosen], classes, self.config)


def collate(batch):
    return [item[0] for item in batch], stack_targets([item[1] for item in batch])


def load_samples(paths: list[Path]) -> list[SceneSample]:
    return [sample for path in tqdm(paths, desc="loading episodes", unit="episode") for sample in load_episode(path)]


def train(options: argparse.Namespace) -> Path:
    if options.threads:
        torch.set_num_threads(options.threads)
    random.seed(options.seed)
    np.random.seed(options.seed)
    torch.manual_seed(options.seed)
    device = resolve_device(options.device)
    config = DetectorConfig()
    episodes = generate_dataset(options.data, TRAIN_SCENARIOS, TRAIN_SEEDS[:options.episodes],
                                options.scans_per_episode, options.scan_interval)
    samples = load_samples(episodes)
    dataset = TrainingScans(samples, config, AugmentationConfig(), options.seed)
    print(f"{len(samples)} training scans; ground-truth database: "
          + ", ".join(f"{label}: {dataset.database.size(label)}" for label in sorted(dataset.database.boxes)))

    model = CenterPointNet(config).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=options.learning_rate, weight_decay=0.01)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=options.learning_rate,
                                                    total_steps=options.iterations, pct_start=0.3)
    voxelizer = Voxelizer(config.voxel, device)
    checkpoint_path = options.work / "last.pt"
    iteration, history = 0, []
    if checkpoint_path.exists():
        state = torch.load(checkpoint_path, map_location=device, weights_only=False)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        iteration, history = state["iteration"], state["history"]
        print(f"resuming from {checkpoint_path} at iteration {iteration}")

    def save_progress() -> None:
        options.work.mkdir(parents=True, exist_ok=True)
        torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict(), "iteration": iteration, "history": history},
                   checkpoint_path.with_suffix(".tmp"))
        checkpoint_path.with_suffix(".tmp").replace(checkpoint_path)

    model.train()
    started = time.perf_counter()
    bar = tqdm(total=options.iterations, initial=iteration, desc="training", unit="it")
    while iteration < options.iterations:
        dataset.epoch = iteration // max(1, len(dataset) // options.batch_size)
        loader = DataLoader(dataset, batch_size=options.batch_size, shuffle=True, collate_fn=collate,
                            num_workers=options.workers, drop_last=True,
                            generator=torch.Generator().manual_seed(options.seed + dataset.epoch))
        for points, targets in loader:
            voxels = voxelizer(points)
            heatmap_logits, predicted = model(voxels.features, voxels.num_points, voxels.coordinates, len(points))
            loss, parts = detection_loss(heatmap_logits, predicted, targets.to(device))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 10.0)
            optimizer.step()
            scheduler.step()
            iteration += 1
            history.append({"iteration": iteration, "loss": float(loss.detach()), **parts})
            bar.update(1)
            bar.set_postfix(loss=f"{history[-1]['loss']:.3f}", heat=f"{parts['heatmap']:.3f}", box=f"{parts['box']:.3f}")
            if iteration % options.checkpoint_every == 0:
                save_progress()
            if iteration >= options.iterations:
                break
    bar.close()
    save_progress()
    elapsed = time.perf_counter() - started
    metadata = {"training": {"scans": len(samples), "episodes": len(episodes), "seeds": [TRAIN_SEEDS[0], options.episodes - 1],
                             "scenarios": TRAIN_SCENARIOS, "iterations": options.iterations,
                             "batch_size": options.batch_size, "learning_rate": options.learning_rate,
                             "seed": options.seed, "device": str(device), "wall_seconds_this_run": elapsed,
                             "final_loss": float(np.mean([h["loss"] for h in history[-50:]]))}}
    save_checkpoint(options.output, model, metadata)
    (options.work / "history.json").write_text(json.dumps(history))
    print(f"weights written to {options.output}")
    return options.output


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("out/detector_data/train"), help="episode cache folder")
    parser.add_argument("--work", type=Path, default=Path("out/detector_train"), help="resumable checkpoint folder")
    parser.add_argument("--output", type=Path, default=Path("models/lidar_detector.pt"), help="final weights")
    parser.add_argument("--episodes", type=int, default=240, help="training episodes (default 240)")
    parser.add_argument("--scans-per-episode", type=int, default=12, help="scans per episode (default 12)")
    parser.add_argument("--scan-interval", type=float, default=1.5, help="simulated s between scans (default 1.5)")
    parser.add_argument("--iterations", type=int, default=3000, help="optimiser steps (default 3000)")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--learning-rate", type=float, default=3e-3)
    parser.add_argument("--workers", type=int, default=1, help="data loader processes (default 1)")
    parser.add_argument("--checkpoint-every", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="auto", help="cpu, cuda or auto (default)")
    parser.add_argument("--threads", type=int, default=0,
                        help="torch CPU threads (default: torch's choice). 1 is faster on a shared machine: with a "
                             "busy core, spconv's many short parallel regions wait for the preempted thread")
    options = parser.parse_args(argv)
    if options.episodes > len(TRAIN_SEEDS):
        parser.error(f"--episodes: at most {len(TRAIN_SEEDS)}")
    train(options)
    return 0


if __name__ == "__main__":
    sys.exit(main())
