"""evaluate-tracker's parts: the noise model, detections into map, and a short noise-mode run."""
import math

import numpy as np
import pytest

from evaluation.detection_run import truth_in_frame
from evaluation.tracking_report import DetectionNoise, ReportConfig, detections_into_map, main, noisy_detections
from perception.objects import Box3D, DetectedObject, GroundTruthObject, ObjectClass
from sim.transforms import MountPose, planar_pose_matrix

POINT_RANGE = (0.0, -40.96, -3.0, 71.68, 40.96, 1.0)


def truth(object_id: int, x: float, y: float, yaw: float = 0.3) -> GroundTruthObject:
    return GroundTruthObject(object_id=object_id, label=ObjectClass.CAR, box=Box3D((x, y, -0.98), (4.5, 1.8, 1.5), yaw),
                             velocity=np.zeros(2), num_lidar_points=100)


def test_noise_free_model_reproduces_the_truth():
    exact = DetectionNoise(detection_probability=1.0, position_std=0.0, yaw_std=0.0, flip_probability=0.0,
                           size_std=0.0, false_positives_per_frame=0.0)
    objects = [truth(1, 10.0, 2.0), truth(2, 30.0, -5.0)]
    detections = noisy_detections(objects, POINT_RANGE, -1.73, exact, np.random.default_rng(0))
    assert [d.box.center.tolist() for d in detections] == [o.box.center.tolist() for o in objects]
    assert all(d.box.yaw == o.box.yaw and 0.5 <= d.score <= 1.0 for d, o in zip(detections, objects))


def test_noise_model_misses_flips_and_invents():
    noise = DetectionNoise(false_positives_per_frame=3.0)
    objects = [truth(index, 5.0 * index, 0.0) for index in range(1, 11)]
    rng = np.random.default_rng(1)
    frames = [noisy_detections(objects, POINT_RANGE, -1.73, noise, rng) for _ in range(200)]
    true = [d for frame in frames for d in frame if d.score >= 0.5 and abs(d.box.center[1]) < 1.0
            and np.min(np.abs(d.box.center[0] - 5.0 * np.arange(1, 11))) < 1.0]
    assert len(true) / 2000 == pytest.approx(0.9, abs=0.03)
    flipped = np.mean([abs(math.remainder(d.box.yaw - 0.3, 2 * math.pi)) > math.pi / 2 for d in true])
    assert flipped == pytest.approx(0.1, abs=0.03)
    false = [d for frame in frames for d in frame if d.score < 0.5]  # true scores are >= 0.5
    assert len(false) == pytest.approx(3.0 * 200 * 2 / 3, rel=0.15)  # false scores are below 0.5 2/3 of the time
    centres = np.array([d.box.center for d in false])
    assert np.all((centres[:, 0] >= 0.0) & (centres[:, 0] <= 71.68) & (np.abs(centres[:, 1]) <= 40.96))
    again = noisy_detections(objects, POINT_RANGE, -1.73, noise, np.random.default_rng(1))
    assert [d.box.center.tolist() for d in again] == [d.box.center.tolist() for d in frames[0]]  # seeded


def test_detections_go_into_map():
    lidar_in_map = planar_pose_matrix(100.0, -20.0, 2.0) @ MountPose(z=1.73).matrix()
    in_map = GroundTruthObject(object_id=1, label=ObjectClass.CAR, box=Box3D((110.0, -14.0, 0.75), (4, 2, 1.5), 0.4),
                               velocity=np.zeros(2))
    (in_lidar,) = truth_in_frame([in_map], lidar_in_map)
    (back,) = detections_into_map([DetectedObject(ObjectClass.CAR, 0.8, in_lidar.box)], lidar_in_map)
    np.testing.assert_allclose(back.box.center, in_map.box.center, atol=1e-9)
    assert back.box.yaw == pytest.approx(0.4) and back.score == 0.8
    assert detections_into_map([], lidar_in_map) == []


def test_config_refuses_unknown_modes_and_scenarios():
    with pytest.raises(ValueError, match="modes"):
        ReportConfig(modes=("camera",))
    with pytest.raises(ValueError, match="scenarios"):
        ReportConfig(scenarios=("no_such_scenario",))


def test_a_short_noise_mode_report(tmp_path):
    code = main(["--modes", "noise", "--scenarios", "urban_default", "--seeds", "300000", "--duration", "3",
                 "--output-dir", str(tmp_path), "--no-progress"])
    assert code == 0
    report = (tmp_path / "tracking_evaluation.md").read_text()
    assert "evaluate-tracker --modes noise" in report and "## noise" in report and "## detector" not in report
    assert (tmp_path / "images" / "tracking_bev_urban_default.png").stat().st_size > 10_000
    rows = {line.split(" | ")[1]: line.split(" | ") for line in report.splitlines()
            if line.startswith("| **all scenarios**")}
    vehicle = rows["vehicle"]
    assert int(vehicle[2]) > 100  # scored vehicle-frames
    assert float(vehicle[3]) > 0.7  # MOTA: 3 s leave little time after the 3-frame confirmations
    assert int(vehicle[5]) == 0  # no identity switch
