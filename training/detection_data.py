"""Detector training and test data from the simulated world: randomised scenes, scans in the
lidar frame (KITTI velodyne axes, sensor 1.73 m above the road) with their ground-truth boxes.

Each episode is one randomised scenario and seed driven by the lane-keeping controller; a scan is
taken every `scan_interval` simulated seconds. Points are stored as int16 centimetres (x, y, z)
and uint8 intensity, one compressed .npz per episode, so thousands of scans fit in memory.
"""
from __future__ import annotations

import dataclasses
import math
import multiprocessing
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from perception.objects import boxes_into_frame, boxes_to_array
from sim.controller import LaneKeepingConfig, LaneKeepingController, drive_along_lane
from sim.scenario import ROAD_END_MARGIN, ClassMix, Scenario, load_scenario
from sim.transforms import planar_pose_matrix
from sim.world import World

KEEP_RADIUS = 100.0
"""Points and boxes farther from the sensor than this are not stored, metres."""


@dataclass
class SceneSample:
    """One scan and what is in it, in the lidar frame."""

    points: np.ndarray
    """(N, 4) float32 x, y, z, intensity."""
    boxes: np.ndarray
    """(M, 7) float64 ground-truth boxes x, y, z (centre), l, w, h, yaw."""
    labels: np.ndarray
    """(M,) int ObjectClass values."""
    num_points: np.ndarray
    """(M,) lidar returns on each object."""


@dataclass
class EpisodeSpec:
    """What one episode is made from."""

    scenario_path: str
    """Base scenario YAML, randomised by `seed`."""
    seed: int
    """World seed, and the seed of the randomisation."""
    scans: int
    """Scans to take."""
    scan_interval: float
    """Simulated seconds between scans."""


def _random_mix(rng: np.random.Generator) -> ClassMix:
    car, van, truck, bus = rng.dirichlet([6.0, 1.5, 1.0, 0.8])
    return ClassMix(car=float(car), van=float(van), truck=float(truck), bus=float(bus))


def randomised_scenario(base: Scenario, rng: np.random.Generator) -> Scenario:
    """A variant of `base`: class mixes, parking fill, traffic and pedestrian numbers, road
    curvature, ego lane and speed, lidar noise and beam dropout all drawn at random."""
    # Bends of up to about 100 degrees over the whole road keep the scenario valid (at most 180).
    max_curvature = 0.55 * math.pi / (base.road.length + 2 * ROAD_END_MARGIN)
    road = dataclasses.replace(base.road, curvature=float(rng.choice([0.0, rng.uniform(-max_curvature, max_curvature)])))
    parked = dataclasses.replace(base.parked, fill=float(rng.uniform(0.2, 0.9)), class_mix=_random_mix(rng),
                                 gap_min=float(rng.uniform(0.4, 1.0)), gap_max=float(rng.uniform(1.2, 4.0)))
    traffic = dataclasses.replace(base.traffic, count=int(rng.integers(8, 40)), class_mix=_random_mix(rng))
    pedestrians = dataclasses.replace(base.pedestrians, count=int(rng.integers(6, 30)))
    lanes = 2 * road.lanes_per_direction
    ego = dataclasses.replace(base.ego, lane=int(rng.integers(0, lanes)), speed=float(rng.uniform(0.0, 12.0)),
                              start_s=float(rng.uniform(30.0, min(300.0, road.length - 100.0))))
    lidar = dataclasses.replace(base.lidar, range_noise_std=float(rng.uniform(0.005, 0.04)),
                                dropout_probability=float(rng.uniform(0.0, 0.15)))
    return dataclasses.replace(base, road=road, parked=parked, traffic=traffic, pedestrians=pedestrians,
                               ego=ego, lidar=lidar)


def lidar_pose_in_map(world: World) -> np.ndarray:
    """4x4 pose of the lidar frame in map."""
    return planar_pose_matrix(*world.ego_pose) @ world.lidar_config.mount.matrix()


def scene_sample(world: World) -> SceneSample:
    """Scan now, with every road user within KEEP_RADIUS in the lidar frame."""
    scan = world.lidar_scan()
    truth = world.ground_truth()
    boxes = boxes_into_frame(boxes_to_array([o.box for o in truth]),
                             lidar_pose_in_map(world))
    near = np.hypot(boxes[:, 0], boxes[:, 1]) < KEEP_RADIUS
    points = scan.points[np.hypot(scan.points[:, 0], scan.points[:, 1]) < KEEP_RADIUS]
    return SceneSample(points.astype(np.float32), boxes[near],
                       np.array([int(o.label) for o in truth], dtype=np.int64)[near],
                       np.array([o.num_lidar_points for o in truth], dtype=np.int64)[near])


def run_episode(spec: EpisodeSpec) -> list[SceneSample]:
    """The scans of one randomised episode."""
    rng = np.random.default_rng([spec.seed, 7])
    scenario = randomised_scenario(load_scenario(spec.scenario_path), rng)
    world = World(scenario, seed=spec.seed)
    controller = LaneKeepingController(world.lane_centerlines, LaneKeepingConfig())
    target_speed = scenario.ego.speed
    samples = []
    control_period = 0.1
    steps_between = max(1, round(spec.scan_interval / control_period))
    for _ in range(spec.scans):
        drive_along_lane(world, controller, target_speed, steps_between, control_period)
        samples.append(scene_sample(world))
    return samples


def save_episode(path: Path, samples: list[SceneSample]) -> None:
    counts = np.array([len(s.points) for s in samples])
    box_counts = np.array([len(s.boxes) for s in samples])
    points = np.concatenate([s.points for s in samples])
    np.savez_compressed(
        path, point_counts=counts, box_counts=box_counts,
        xyz_cm=np.round(points[:, :3] * 100.0).astype(np.int16),
        intensity=np.round(np.clip(points[:, 3], 0.0, 1.0) * 255.0).astype(np.uint8),
        boxes=np.concatenate([s.boxes for s in samples]).reshape(-1, 7),
        labels=np.concatenate([s.labels for s in samples]), num_points=np.concatenate([s.num_points for s in samples]))


def load_episode(path: Path) -> list[SceneSample]:
    with np.load(path) as data:
        points = np.concatenate([data["xyz_cm"].astype(np.float32) / 100.0,
                                 data["intensity"].astype(np.float32)[:, None] / 255.0], axis=1)
        point_split = np.cumsum(data["point_counts"])[:-1]
        box_split = np.cumsum(data["box_counts"])[:-1]
        return [SceneSample(p, b, lab, n) for p, b, lab, n in zip(
            np.split(points, point_split), np.split(data["boxes"], box_split),
            np.split(data["labels"], box_split), np.split(data["num_points"], box_split))]


def _make_episode(job: tuple[EpisodeSpec, Path]) -> Path:
    spec, path = job
    if not path.exists():
        partial = path.with_suffix(".partial.npz")
        save_episode(partial, run_episode(spec))
        partial.rename(path)
    return path


def generate_dataset(folder: Path, scenario_paths: list[str], seeds: range, scans_per_episode: int,
                     scan_interval: float = 1.0, workers: int = 2, progress: bool = True) -> list[Path]:
    """Episodes for every seed (scenarios taken in turn) under `folder`; existing ones are reused,
    so an interrupted generation resumes."""
    folder.mkdir(parents=True, exist_ok=True)
    jobs = [(EpisodeSpec(scenario_paths[index % len(scenario_paths)], seed, scans_per_episode, scan_interval),
             folder / f"episode_{seed:06d}.npz") for index, seed in enumerate(seeds)]
    todo = [job for job in jobs if not job[1].exists()]
    if todo:
        context = multiprocessing.get_context("spawn")  # fork would copy Open3D's thread pools mid-use
        with context.Pool(min(workers, len(todo))) as pool:
            for _ in tqdm(pool.imap_unordered(_make_episode, todo), total=len(todo), desc=f"simulating {folder.name}",
                          unit="episode", disable=not progress):
                pass
    return [path for _, path in jobs]

