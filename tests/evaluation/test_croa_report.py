"""evaluate-croa: a short closed-loop episode with the real detector, predictor and planner, the
report written from it, and the goal check on known numbers."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from evaluation.croa_report import aggregate, goal_check, is_cluttered, main, paired_difference
from evaluation.croa_run import EpisodeConfig, EpisodeRunner
from perception.detection import DetectorOptions, LidarDetector
from perception.prediction.predictor import TrajectoryPredictor
from perception.prediction.track_predictor import TrackPredictionConfig, TrackPredictor
from sim.scenario import load_scenario
from sim.world import World

SCENARIO = "croa_truck_adjacent_lane"


@pytest.fixture(scope="module")
def runner() -> EpisodeRunner:
    torch.set_num_threads(1)
    detector = LidarDetector.from_checkpoint("models/lidar_detector.pt", DetectorOptions(device="cpu"))
    predictor = TrackPredictor(TrackPredictionConfig(),
                               TrajectoryPredictor.from_file("models/trajectory_predictor_apolloscape.onnx"))
    return EpisodeRunner(detector, predictor, EpisodeConfig(duration=0.6))


@pytest.mark.parametrize("method", ["lane_keeping", "croa"])
def test_short_episode_scores_the_target_every_scan(runner, method):
    world = World(load_scenario(f"config/scenarios/{SCENARIO}.yaml"), seed=0)
    start_speed = world.scenario.ego.speed
    result = runner.run(world, SCENARIO, method)
    assert len(result.scans) == 3  # 0.6 s at one scan per 0.2 s, the target ahead all the time
    for scan in result.scans:
        assert 0.0 <= scan.occlusion_ratio <= 1.0 and scan.visible_area >= 0.0 and scan.distance > 20.0
        assert scan.point_count >= 0
        assert scan.detected == (not math.isnan(scan.center_error))
    assert any(scan.point_count > 0 for scan in result.scans)
    assert result.collisions == 0 and result.min_clearance > 0.0
    assert result.path_length == pytest.approx(start_speed * 0.6, rel=0.3)
    assert len(result.solve_times) == (6 if method == "croa" else 0)
    assert result.ego_path.shape == (7, 3)


def summary(method: str, density: float, occlusion: float, error: float, collisions: int = 0) -> dict:
    return {"method": method, "point_density": density, "point_count": 10 * density, "occlusion_ratio": occlusion,
            "detection_rate": 1.0, "center_error": error, "yaw_error_deg": 2.0, "collisions": collisions,
            "min_clearance": 1.0, "path_length": 40.0, "solve_times": [0.08] if method != "lane_keeping" else [],
            "fallbacks": 0, "back_outs": 0}


def test_goal_needs_every_metric_against_every_baseline_and_no_collision():
    methods = ("lane_keeping", "croa")
    better = [summary("lane_keeping", 50.0, 0.4, 0.2), summary("croa", 60.0, 0.3, 0.1)]
    assert goal_check(better, methods)[1]
    worse_error = [summary("lane_keeping", 50.0, 0.4, 0.2), summary("croa", 60.0, 0.3, 0.3)]
    lines, met = goal_check(worse_error, methods)
    assert not met and any("**no**" in line for line in lines)
    collided = [summary("lane_keeping", 50.0, 0.4, 0.2), summary("croa", 60.0, 0.3, 0.1, collisions=1)]
    assert not goal_check(collided, methods)[1]
    assert aggregate(better, "croa")["solve_median_ms"] == pytest.approx(80.0)


def test_paired_difference_matches_episodes_by_scenario_and_seed():
    rng = np.random.default_rng(0)
    gains = 0.05 + 0.01 * rng.standard_normal(12)
    episodes = []
    for index, gain in enumerate(gains):
        base = summary("lane_keeping", 50.0, 0.2 + 0.02 * index, 0.1)
        episodes += [base | {"scenario": f"s{index % 4}", "seed": index // 4},
                     summary("croa", 60.0, base["occlusion_ratio"] - gain, math.nan if index == 0 else 0.1)
                     | {"scenario": f"s{index % 4}", "seed": index // 4}]
    difference, low, high = paired_difference(episodes, "croa", "lane_keeping", "occlusion_ratio")
    assert difference == pytest.approx(-gains.mean())
    assert low < difference < high < 0.0  # the spread between episodes cancels in the pairs
    # The episode never detected drops out; equal values have no interval.
    assert paired_difference(episodes, "croa", "lane_keeping", "center_error")[0] == pytest.approx(0.0)
    assert math.isnan(paired_difference(episodes, "croa", "lane_keeping", "center_error")[1])
    lines, _ = goal_check(episodes, ("lane_keeping", "croa"))
    assert "paired -0.05" in lines[2]


def test_scenarios_are_grouped_by_their_cluttered_tag():
    assert is_cluttered("croa_dense_clutter")
    assert not is_cluttered(SCENARIO)


def test_report_is_written_with_table_and_plots(tmp_path):
    code = main(["--scenarios", SCENARIO, "croa_dense_clutter", "--seeds", "0", "--methods", "lane_keeping",
                 "collision_mpc", "--duration", "0.4", "--workers", "1", "--output-dir", str(tmp_path),
                 "--no-progress"])
    assert code == 0
    report = (tmp_path / "croa_evaluation.md").read_text()
    assert "| 1 lane keeping | 1 |" in report and "| 3 collision MPC | 1 |" in report
    assert "(CROA not run)" in report
    assert (tmp_path / "images" / "croa_paths.png").stat().st_size > 10_000
    assert (tmp_path / "images" / "croa_occlusion_over_time.png").stat().st_size > 10_000
    assert np.isfinite(float(report.split("| 1 lane keeping | 1 | ")[1].split(" |")[0]))
    assert "### By distance to the target (cluttered scenarios)" in report
    raw = json.loads((tmp_path / "croa_evaluation.json").read_text())
    columns = raw["scan_columns"]
    for episode in raw["episodes"]:
        assert len(episode["scan_records"]) == episode["scans"] > 0
        for row in episode["scan_records"]:
            record = dict(zip(columns, row, strict=True))
            assert record["distance_m"] > 0.0 and 0.0 <= record["viewing_angle_deg"] <= 90.0
            assert record["detected"] == (record["detection_x_y_yaw"] is not None)
