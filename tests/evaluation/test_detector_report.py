"""evaluate-detector (evaluation.detector_report) on tiny inputs: an untrained checkpoint, a
2-episode simulated set and the real KITTI files."""
import dataclasses
import json
import math
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from evaluation.detector_report import (KittiFrameResult, ReportConfig, evaluate_simulated, goal_status, main,
                                        match_kitti_objects, parse_arguments, plot_precision_recall,
                                        simulated_markdown, write_report)
from evaluation.kitti import load_labelled_frame
from perception.detection import CenterPointNet, DecodeConfig, DetectorConfig, DetectorOptions, LidarDetector, \
    save_checkpoint
from perception.objects import Box3D, DetectedObject, ObjectClass

KITTI = Path(__file__).resolve().parents[2] / "data" / "kitti"
POINT_RANGE = DetectorConfig().voxel.point_range


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    # On a shared machine one thread is many times faster; the report sets it, so restore it after.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def untrained_model(tmp_path_factory) -> Path:
    # An untrained head scores every cell about 0.1; publishing from 0.05 up gives boxes to draw and match.
    path = tmp_path_factory.mktemp("model") / "untrained.pt"
    save_checkpoint(path, CenterPointNet(DetectorConfig(decode=DecodeConfig(score_threshold=0.05))))
    return path


@pytest.fixture(scope="module")
def tiny_sim_config(tmp_path_factory, untrained_model) -> ReportConfig:
    root = tmp_path_factory.mktemp("report")
    return ReportConfig(model=untrained_model, output_dir=root / "docs", device="cpu", threads=1,
                        test_data=root / "test_data",
                        test_seeds=(100000, 100002), scans=2, kitti_root=KITTI)


def detection(label, score, box) -> DetectedObject:
    return DetectedObject(label=label, score=score, box=Box3D(box.center.copy(), box.size.copy(), box.yaw))


def test_kitti_matching_is_one_to_one_and_class_aware():
    frame = load_labelled_frame(KITTI, "000008")
    cars = [obj for obj in frame.objects if obj.kitti_type == "Car"]
    moved = Box3D(cars[1].box.center + [2.5, 0.0, 0.0], cars[1].box.size, cars[1].box.yaw)
    detections = [detection(ObjectClass.CAR, 0.9, cars[0].box),
                  detection(ObjectClass.CAR, 0.8, cars[0].box),           # a duplicate: only one may match
                  detection(ObjectClass.CAR, 0.7, moved),                 # overlaps car 1 below IoU 0.5
                  detection(ObjectClass.PEDESTRIAN, 0.95, cars[2].box)]   # right place, wrong class
    rows = match_kitti_objects("000008", frame.objects, detections, POINT_RANGE, 0.5)
    assert len(rows) == len(frame.objects) == 10
    assert [row.detected for row in rows[:6]] == [True, False, False, False, False, False]
    assert rows[0].best_bev_iou == pytest.approx(1.0) and rows[0].score == pytest.approx(0.9)
    assert rows[0].center_error == pytest.approx(0.0, abs=1e-9) and rows[0].best_3d_iou == pytest.approx(1.0)
    assert 0.0 < rows[1].best_bev_iou < 0.5 and rows[1].center_error == pytest.approx(2.5)
    assert rows[2].best_bev_iou == 0.0 and math.isnan(rows[2].score) and not rows[2].detected
    assert all(row.detected is None and row.in_range is None for row in rows[6:])  # DontCare
    assert all(row.in_range for row in rows[:6]) and rows[0].points == cars[0].num_lidar_points


def test_goal_needs_five_cars_of_000008_and_the_car_of_000002():
    frames = {frame_id: load_labelled_frame(KITTI, frame_id) for frame_id in ("000002", "000008")}

    def result(frame_id, found):
        cars = [obj for obj in frames[frame_id].objects if obj.kitti_type == "Car"][:found]
        detections = [detection(ObjectClass.CAR, 0.9, car.box) for car in cars]
        rows = match_kitti_objects(frame_id, frames[frame_id].objects, detections, POINT_RANGE, 0.5)
        return KittiFrameResult(frames[frame_id], detections, rows, detection_ms=0.0)

    assert goal_status([result("000002", 1), result("000008", 5)])["met"]
    missed = goal_status([result("000002", 1), result("000008", 4)])
    assert not missed["met"] and missed["frames"]["000008"] == {"found": 4, "cars": 6, "needed": 5}
    assert not goal_status([result("000008", 6)])["met"]  # 000002 was not evaluated


def test_simulated_part_scores_every_class_and_band(tiny_sim_config):
    detector = LidarDetector.from_checkpoint(tiny_sim_config.model, DetectorOptions(device="cpu"))
    evaluation = evaluate_simulated(detector, tiny_sim_config, progress=False)
    assert evaluation.scans == 4 and len(evaluation.detection_ms) == 4
    assert [path.name for path in evaluation.episodes] == ["episode_100000.npz", "episode_100001.npz"]
    bev = evaluation.results["bev"]
    assert {(entry.class_name, entry.band) for entry in bev.results} == {
        (name, band) for name in ("car", "truck_bus", "pedestrian", "cyclist")
        for band in (None, (0.0, 20.0), (20.0, 40.0), (40.0, math.inf))}
    assert bev.get("car").num_ground_truth > 0
    assert sum(entry.true_positives + entry.false_positives for entry in bev.results if entry.band is None) > 0
    plot = plot_precision_recall(evaluation, tiny_sim_config.images_dir / "pr.png")
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    markdown = simulated_markdown(evaluation, tiny_sim_config, plot, tiny_sim_config.output_dir)
    lines = markdown.splitlines()
    header = next(index for index, line in enumerate(lines) if line.startswith("| class | GT (all) |"))
    summary = lines[header + 2:lines.index("", header)]
    assert [line.split("|")[1].strip() for line in summary] == ["car", "truck_bus", "pedestrian", "cyclist", "**mean**"]
    assert all(len(line.split("|")) == len(lines[header].split("|")) for line in summary)
    assert "at least 5 lidar returns" in markdown and "](images/pr.png)" in markdown

    # A cache made with other settings is refused instead of silently reused.
    other = dataclasses.replace(tiny_sim_config, scans=3)
    with pytest.raises(ValueError, match="holds 2 scans, not --scans 3"):
        evaluate_simulated(detector, other, progress=False)


def test_kitti_part_writes_tables_pictures_and_metrics(tmp_path, untrained_model):
    config = ReportConfig(model=untrained_model, output_dir=tmp_path / "docs", metrics_path=tmp_path / "m.json",
                          device="cpu", threads=1, kitti_root=KITTI, skip_sim=True)
    outputs = write_report(config, progress=False)
    names = sorted(path.name for path in (tmp_path / "docs" / "images").glob("*.png"))
    assert names == sorted([f"kitti_bev_{index:06d}.png" for index in range(10)]
                           + [f"kitti_labelled_{frame}.png" for frame in ("000000", "000001", "000002", "000008")])
    report = outputs.report.read_text()
    object_rows = [line for line in report.splitlines() if re.match(r"\| 00000[0-8] \| [A-Z]", line)]
    assert len(object_rows) == 1 + 7 + 2 + 10  # every labelled object of the four frames, DontCare too
    assert "Skipped (`--skip-sim`)" in report and "**Goal (at least 5 of the labelled cars of 000008 and 1 of" in report
    assert re.search(r"sha256 `[0-9a-f]{64}`", report)
    metrics = json.loads(outputs.metrics.read_text())
    assert metrics["simulated"] is None and len(metrics["kitti"]["objects"]) == 20
    assert set(metrics["kitti"]["goal"]["frames"]) == {"000002", "000008"}
    assert metrics["score_thresholds"] == {"published": 0.05, "average_precision": 0.05}


def test_command_writes_the_whole_report(tiny_sim_config, capsys):
    root = tiny_sim_config.output_dir.parent
    code = main(["--model", str(tiny_sim_config.model), "--output-dir", str(root / "docs"), "--device", "cpu",
                 "--threads", "1",
                 "--test-data", str(tiny_sim_config.test_data), "--test-seeds", "100000:100002", "--scans", "2",
                 "--kitti", str(KITTI)])
    assert code == 0 and "report written to" in capsys.readouterr().out
    metrics = json.loads(tiny_sim_config.model.with_suffix(".metrics.json").read_text())
    assert metrics["simulated"]["data"]["scans"] == 4 and metrics["kitti"]["goal"]["met"] in (True, False)
    assert set(metrics["simulated"]["average_precision"]["3d"]["car"]) == {"all", "0-20", "20-40", "40+"}
    assert (root / "docs" / "images" / "sim_precision_recall_car.png").is_file()
    assert "## Simulated held-out test set" in (root / "docs" / "detection_evaluation.md").read_text()


def test_missing_model_is_one_clear_line(tmp_path, capsys):
    assert main(["--model", str(tmp_path / "none.pt"), "--output-dir", str(tmp_path), "--skip-sim"]) == 2
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1 and "none.pt: no such file" in error and "train-detector" in error


@pytest.mark.parametrize("arguments, message", [
    (["--test-seeds", "0:42"], "overlaps the training seeds"),
    (["--test-seeds", "100042:100000"], "need first < stop"),
    (["--test-seeds", "100000"], "expected FIRST:STOP"),
    (["--scans", "0"], "must be >= 1"),
])
def test_bad_options_are_refused(arguments, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        parse_arguments(arguments)
    assert exit_info.value.code == 2 and message in capsys.readouterr().err


def test_defaults_match_the_issue():
    config = parse_arguments([])
    assert config.model == Path("models/lidar_detector.pt") and config.output_dir == Path("docs")
    assert config.metrics_file == Path("models/lidar_detector.metrics.json")
    assert config.test_data == Path("out/detector_data/test")
    assert (config.test_seeds, config.scans, config.scan_interval) == ((100000, 100042), 12, 1.5)
    assert np.isclose(config.kitti_match_iou, 0.5) and config.min_points == 5
