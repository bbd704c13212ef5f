"""Detector training data from the simulated world, augmentation, and the train-detector command."""
import math

import numpy as np
import pytest

from perception.box_iou import bev_iou_matrix
from perception.detection import LidarDetector, load_checkpoint
from sim.scenario import load_scenario
from training import train_detector
from perception.objects import points_in_box_mask
from training.augmentation import AugmentationConfig, GroundTruthDatabase, global_transform, rescale_vehicles
from training.detection_data import (KEEP_RADIUS, EpisodeSpec, load_episode, randomised_scenario, run_episode,
                                     save_episode)

SCENARIO = "config/scenarios/urban_default.yaml"


@pytest.fixture(scope="module")
def samples():
    return run_episode(EpisodeSpec(SCENARIO, seed=5, scans=3, scan_interval=1.0))


def test_ground_truth_boxes_hold_their_lidar_returns(samples):
    for sample in samples:
        # Well inside KEEP_RADIUS, so no return of the object was cut off with the far points.
        seen = (sample.num_points >= 20) & (np.hypot(sample.boxes[:, 0], sample.boxes[:, 1]) < KEEP_RADIUS - 10)
        assert seen.sum() >= 5
        for box, count in zip(sample.boxes[seen], sample.num_points[seen]):
            inside = points_in_box_mask(sample.points, box, margin=0.1).sum()
            # Returns on the object lie in its box; the box may also catch a little ground.
            assert count * 0.9 <= inside <= count * 1.5 + 30


def test_ground_truth_sits_on_the_road_in_the_lidar_frame(samples):
    bottoms = samples[0].boxes[:, 2] - samples[0].boxes[:, 5] / 2
    np.testing.assert_allclose(np.median(bottoms), -1.73, atol=0.1)


def test_episode_files_round_trip_to_the_centimetre(samples, tmp_path):
    save_episode(tmp_path / "episode.npz", samples)
    loaded = load_episode(tmp_path / "episode.npz")
    assert len(loaded) == len(samples)
    for before, after in zip(samples, loaded):
        np.testing.assert_allclose(after.points[:, :3], before.points[:, :3], atol=0.006)
        np.testing.assert_allclose(after.points[:, 3], before.points[:, 3], atol=0.5 / 255 + 1e-6)
        np.testing.assert_array_equal(after.boxes, before.boxes)
        np.testing.assert_array_equal(after.labels, before.labels)


@pytest.mark.parametrize("name", ["urban_default", "dense_clutter", "parked_trucks"])
def test_randomised_scenarios_are_valid_and_varied(name):
    base = load_scenario(f"config/scenarios/{name}.yaml")
    variants = [randomised_scenario(base, np.random.default_rng([seed, 7])) for seed in range(40)]
    assert len({variant.traffic.count for variant in variants}) > 5
    assert len({variant.parked.fill for variant in variants}) == 40
    assert any(variant.road.curvature != 0.0 for variant in variants)


def test_ground_truth_sampling_pastes_objects_without_collisions(samples):
    database = GroundTruthDatabase(samples, min_points=5)
    assert database.size(1) > 0
    target = samples[-1]
    pasted = database.paste(target, {1: 10, 5: 5}, np.random.default_rng(0))
    assert len(pasted.boxes) > len(target.boxes)
    iou = bev_iou_matrix(pasted.boxes, pasted.boxes)
    np.fill_diagonal(iou, 0.0)
    added = np.arange(len(target.boxes), len(pasted.boxes))
    assert iou[added].max() == 0.0
    for index in added:
        assert points_in_box_mask(pasted.points, pasted.boxes[index]).sum() >= pasted.num_points[index]


def test_global_transform_moves_points_and_boxes_together(samples):
    sample = samples[0]
    config = AugmentationConfig(flip_probability=1.0)
    moved = global_transform(sample, config, np.random.default_rng(3))
    seen = np.flatnonzero(sample.num_points >= 20)
    for index in seen:
        before = points_in_box_mask(sample.points, sample.boxes[index], margin=0.1).sum()
        after = points_in_box_mask(moved.points, moved.boxes[index], margin=0.1).sum()
        assert abs(int(before) - int(after)) <= 0.05 * before + 5
    assert np.all(np.abs(moved.boxes[:, 6]) <= math.pi)


def test_rescaled_vehicles_keep_their_points_inside_and_stay_on_the_road(samples):
    sample = samples[0]
    config = AugmentationConfig(vehicle_scale={"length": (0.7, 0.7), "width": (0.9, 0.9), "height": (1.1, 1.1)})
    rescaled = rescale_vehicles(sample, config, np.random.default_rng(0))
    cars = np.flatnonzero((sample.labels == 1) & (sample.num_points >= 20))
    assert len(cars) > 0
    np.testing.assert_allclose(rescaled.boxes[cars, 3:6], sample.boxes[cars, 3:6] * [0.7, 0.9, 1.1])
    np.testing.assert_allclose(rescaled.boxes[cars, 2] - rescaled.boxes[cars, 5] / 2,
                               sample.boxes[cars, 2] - sample.boxes[cars, 5] / 2)
    for index in cars:
        before = points_in_box_mask(sample.points, sample.boxes[index]).sum()
        assert points_in_box_mask(rescaled.points, rescaled.boxes[index], margin=0.06).sum() >= before
    others = np.flatnonzero(~np.isin(sample.labels, [1, 2]))
    np.testing.assert_array_equal(rescaled.boxes[others], sample.boxes[others])


def test_train_detector_trains_saves_and_resumes(tmp_path):
    def arguments(iterations):
        return ["--data", str(tmp_path / "data"), "--work", str(tmp_path / "work"),
                "--output", str(tmp_path / "detector.pt"), "--episodes", "2", "--scans-per-episode", "2",
                "--iterations", str(iterations), "--batch-size", "2", "--checkpoint-every", "2", "--workers", "0",
                "--device", "cpu"]

    assert train_detector.main(arguments(3)) == 0
    _, _, metadata = load_checkpoint(tmp_path / "detector.pt")
    assert metadata["training"]["iterations"] == 3 and metadata["training"]["scans"] == 4
    LidarDetector.from_checkpoint(tmp_path / "detector.pt")
    # The same command again resumes from the saved state: nothing is left to train.
    (tmp_path / "detector.pt").unlink()
    assert train_detector.main(arguments(3)) == 0
    assert load_checkpoint(tmp_path / "detector.pt")[2]["training"]["wall_seconds_this_run"] < 1.0
