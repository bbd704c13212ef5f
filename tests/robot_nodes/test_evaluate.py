"""evaluate: a KITTI bag replayed through the real detector and tracker/predictor and scored into a
report; what a bag without ground truth or a run configuration cannot score is said, not faked."""
import json
import math
import re
from pathlib import Path

import numpy as np
import pytest

from evaluation.report import read_report_summary
from perception.objects import Box3D
from robot_nodes import evaluate, kitti_bag
from robot_nodes.evaluate import RunInfo, visible_face_area

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def kitti(tmp_path_factory):
    bag = tmp_path_factory.mktemp("kitti") / "bag"
    assert kitti_bag.main(["--output", str(bag), "--kitti", str(REPO / "data" / "kitti")]) == 0
    return bag


@pytest.mark.timeout(300)
def test_a_kitti_bag_replayed_through_perception_is_scored(kitti, tmp_path):
    output = tmp_path / "report"
    assert evaluate.main([str(kitti), "--replay", "--rate", "0.1", "--output", str(output)]) == 0
    report = (output / "report.md").read_text()
    assert "- mode: replay" in report, report
    # Every labelled scan reached the detector; each it processed (it drops one when the machine is
    # too busy for the replay's rate: 0.1 leaves 1 s per scan, several times a loaded CI core's need)
    # was recorded and scored against its labels.
    received, processed, dropped = map(int, re.search(
        r"\| `lidar_detector` \| (\d+) \| (\d+) \| (\d+) \(", report).groups())
    assert received == 4 and processed + dropped == 4 and processed >= 3, report
    assert f"AP (%) on {processed} scans" in report, report
    assert re.search(r"\| car \| [1-8] \|", report), report
    summary = read_report_summary(output)
    assert 0.0 <= summary.metrics["detection.map_bev"] <= 1.0
    # Unscored for want of what a KITTI bag lacks: said in the report.
    assert "Not scored: no `/mixed_reality/uplink/decision` in the bag." in report, report
    assert "Not scored: no `/planning/croa_planner/status` in the bag" in report, report
    assert "collisions not checked: the run's scenario is not known" in report, report
    html = (output / "report.html").read_text()
    assert html.count("data:image/png;base64") >= 2 and "http" not in re.sub(r"<a href=\"#[^\"]*\"", "", html)


def test_what_a_bag_lacks_is_said_and_not_scored(tmp_path):
    bag = tmp_path / "unlabelled"
    assert kitti_bag.main(["--output", str(bag), "--kitti", str(REPO / "data" / "kitti"), "--frames", "000000",
                           "--unlabelled"]) == 0
    report = evaluate.evaluate_bag(bag, RunInfo(point_range=[0.0, -40.96, -3.0, 71.68, 40.96, 1.0]))
    text = {section.title: section.markdown for section in report.sections}
    assert text["Lidar detection"] == "AP not scored: no detections in the bag."
    assert text["Tracking"] == "Not scored: no tracks in the bag."
    assert not any(key.startswith(("detection.", "tracking.", "prediction.")) for key in report.metrics)


def test_a_missing_bag_or_a_corrupt_run_configuration_fails_with_the_file_named(tmp_path, capsys):
    assert evaluate.main([str(tmp_path / "nothing")]) == 2
    assert str(tmp_path / "nothing") in capsys.readouterr().err
    bag = tmp_path / "bag"
    assert kitti_bag.main(["--output", str(bag), "--kitti", str(REPO / "data" / "kitti"), "--frames", "000000"]) == 0
    (bag / "run.json").write_text("{not json")
    assert evaluate.main([str(bag)]) == 2
    error = capsys.readouterr().err
    assert "run.json" in error and "unreadable run configuration" in error


def test_the_run_configuration_round_trips(tmp_path):
    info = RunInfo(scenario="config/scenarios/urban_default.yaml", seed=3, mode="lockstep", planner="croa",
                   point_range=[0.0, -1.0, -3.0, 1.0, 1.0, 1.0], extra={"duration": 20.0})
    info.write(tmp_path)
    assert RunInfo.beside(tmp_path) == info
    assert json.loads((tmp_path / "run.json").read_text())["mode"] == "lockstep"


@pytest.mark.parametrize("sensor, faces", [((10.0, 0.0, 0.0), "front"), ((0.0, 5.0, 0.0), "side"),
                                           ((10.0, 5.0, 0.0), "front+side"), ((10.0, 0.0, 9.0), "front+top")])
def test_the_faces_towards_the_sensor_are_counted(sensor, faces):
    box = Box3D(np.zeros(3), np.array([4.0, 2.0, 1.5]), 0.0)
    area = {"front": 2.0 * 1.5, "side": 4.0 * 1.5, "top": 4.0 * 2.0}
    expected = sum(area[face] for face in faces.split("+"))
    assert math.isclose(visible_face_area(box, np.array(sensor)), expected)
    turned = Box3D(np.zeros(3), box.size, math.pi / 2)  # its front now faces +y
    x, y, z = sensor
    assert math.isclose(visible_face_area(turned, np.array((-y, x, z))), expected)
