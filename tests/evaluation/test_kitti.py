"""evaluation.kitti on the real KITTI files in data/kitti: labels land on the points they describe."""
import hashlib
import json
import math
from pathlib import Path

import numpy as np
import pytest

from evaluation.kitti import (KittiFormatError, camera_box_to_lidar, load_labelled_frame, parse_label_line,
                              read_calibration, read_labels, read_mmdet3d_info, read_velodyne, unlabelled_scan_paths)
from perception.objects import ObjectClass, points_in_box_mask

KITTI = Path(__file__).resolve().parents[2] / "data" / "kitti"


def test_copied_files_match_their_checksums():
    lines = (KITTI / "SHA256SUMS").read_text().splitlines()
    assert len(lines) == 21
    for line in lines:
        digest, name = line.split()
        assert hashlib.sha256((KITTI / name).read_bytes()).hexdigest() == digest, name


def test_points_in_the_000008_cars_agree_with_mmdetection3d_counts():
    frame = load_labelled_frame(KITTI, "000008")
    cars = [obj for obj in frame.objects if obj.kitti_type == "Car"]
    assert len(frame.points) == 17238
    assert len(cars) == 6 and sum(obj.kitti_type == "DontCare" for obj in frame.objects) == 4
    for car in cars:
        assert car.label is ObjectClass.CAR and car.box is not None
        assert abs(car.num_lidar_points - car.reference_num_points) <= max(2, 0.02 * car.reference_num_points)
    # A wrong heading convention would show: the second car's box turned by 90 degrees misses most points.
    second = cars[1].box
    turned = np.array([*second.center, *second.size, second.yaw + math.pi / 2])
    assert points_in_box_mask(frame.points, turned, margin=0.0).sum() < 0.6 * cars[1].num_lidar_points
    # Label z is the bottom; the box centre is half a height up, so near bottoms sit on the road, 1.73 m down.
    for car in cars:
        if car.distance < 25.0:
            assert car.box.center[2] - car.box.size[2] / 2 == pytest.approx(-1.73, abs=0.3)


def test_labels_of_000001_map_kitti_types_and_keep_occlusion():
    frame = load_labelled_frame(KITTI, "000001")
    assert [obj.kitti_type for obj in frame.objects] == ["Truck", "Car", "Cyclist"] + ["DontCare"] * 4
    assert [obj.label for obj in frame.objects[:3]] == [ObjectClass.TRUCK, ObjectClass.CAR, ObjectClass.CYCLIST]
    truck, car, cyclist = frame.objects[:3]
    assert cyclist.occluded == 3 and truck.occluded == 0
    assert all(obj.box is None and not obj.evaluated for obj in frame.objects[3:])
    # The car is 61 m away (only a handful of returns); the truck at 70 m is big enough for dozens.
    assert car.distance == pytest.approx(61.1, abs=0.2) and car.num_lidar_points >= 5
    assert truck.num_lidar_points >= 50 and cyclist.num_lidar_points >= 10


def test_misc_is_listed_but_not_evaluated():
    frame = load_labelled_frame(KITTI, "000002")
    misc, car = frame.objects
    assert (misc.kitti_type, misc.evaluated, car.label) == ("Misc", False, ObjectClass.CAR)
    assert misc.box is not None and misc.num_lidar_points > 1000
    assert car.num_lidar_points > 30


def test_a_box_holds_more_points_than_the_same_box_shifted_aside():
    frame = load_labelled_frame(KITTI, "000000")
    pedestrian = frame.objects[0]
    assert pedestrian.label is ObjectClass.PEDESTRIAN and pedestrian.num_lidar_points > 200
    shifted = pedestrian.box.center + np.array([0.0, 2.0, 0.0])
    dx, dy, dz = (frame.points[:, :3] - shifted).T
    assert np.sum((np.abs(dx) < 0.3) & (np.abs(dy) < 0.3) & (np.abs(dz) < 0.9)) < pedestrian.num_lidar_points / 4


def _camera_label(center, size, yaw, calibration) -> str:
    """A label_2 line for a velodyne-frame box, computed straight from the matrices (the inverse
    of evaluation.kitti's conversion, written independently)."""
    length, width, height = size
    bottom = np.append(np.asarray(center) - [0.0, 0.0, height / 2.0], 1.0)
    location = (calibration.velo_to_rect @ bottom)[:3]
    rotation_y = -yaw - math.pi / 2.0
    return (f"Car 0.00 0 0.00 100.0 100.0 200.0 200.0 {height:.6f} {width:.6f} {length:.6f} "
            f"{location[0]:.6f} {location[1]:.6f} {location[2]:.6f} {rotation_y:.6f}")


def test_velodyne_box_to_camera_label_and_back_keeps_centre_size_and_yaw():
    calibration = read_calibration(KITTI / "kitti_training" / "calib" / "000000.txt")
    rng = np.random.default_rng(3)
    for _ in range(50):
        center = rng.uniform([0.0, -30.0, -2.0], [70.0, 30.0, 1.0])
        size = rng.uniform([0.5, 0.5, 1.0], [12.0, 3.0, 4.0])
        yaw = rng.uniform(-math.pi, math.pi)
        box = parse_label_line(_camera_label(center, size, yaw, calibration), calibration).box
        np.testing.assert_allclose(box.center, center, atol=1e-5)
        np.testing.assert_allclose(box.size, size, atol=1e-5)
        assert abs(math.remainder(box.yaw - yaw, 2 * math.pi)) < 1e-5


@pytest.mark.parametrize("rotation_y, yaw", [(-math.pi / 2, 0.0), (0.0, -math.pi / 2), (math.pi / 2, math.pi)])
def test_rotation_y_becomes_yaw_about_up(rotation_y, yaw):
    # rotation_y 0 lays the length along camera x (to the right) = velodyne -y; -pi/2 along camera z = forward.
    calibration = read_calibration(KITTI / "kitti_training" / "calib" / "000001.txt")
    box = camera_box_to_lidar(np.array([0.0, 1.5, 10.0]), 1.5, 1.8, 4.0, rotation_y, calibration)
    assert abs(math.remainder(box.yaw - yaw, 2 * math.pi)) < 1e-9
    assert box.center[0] == pytest.approx(10.27, abs=0.05)


@pytest.mark.parametrize("bad_line, reason", [
    ("Car 0.00 0 1.85 387.63 181.54 423.81 203.12 1.67 1.87 3.69 -16.53 2.39 58.49", "expected 15 fields"),
    ("Car 0.00 0 1.85 387.63 181.54 423.81 203.12 1.67 wide 3.69 -16.53 2.39 58.49 1.57", "not a number"),
    ("Lorry 0.00 0 1.85 387.63 181.54 423.81 203.12 1.67 1.87 3.69 -16.53 2.39 58.49 1.57", "unknown object type"),
    ("Car 0.00 0.5 1.85 387.63 181.54 423.81 203.12 1.67 1.87 3.69 -16.53 2.39 58.49 1.57", "occluded"),
    ("Car 0.00 0 1.85 387.63 181.54 423.81 203.12 -1 1.87 3.69 -16.53 2.39 58.49 1.57", "dimensions"),
])
def test_malformed_label_line_names_file_and_line(tmp_path, bad_line, reason):
    calibration = read_calibration(KITTI / "kitti_training" / "calib" / "000001.txt")
    good = (KITTI / "kitti_training" / "label_2" / "000001.txt").read_text().splitlines()[0]
    path = tmp_path / "000001.txt"
    path.write_text(f"{good}\n\n{bad_line}\n")
    with pytest.raises(KittiFormatError, match=rf"{path}:3: .*{reason}"):
        read_labels(path, calibration)


def test_calibration_without_tr_velo_to_cam_is_refused(tmp_path):
    text = (KITTI / "kitti_training" / "calib" / "000000.txt").read_text()
    path = tmp_path / "calib.txt"
    path.write_text("\n".join(line for line in text.splitlines() if not line.startswith("Tr_velo_to_cam")))
    with pytest.raises(KittiFormatError, match=rf"{path}: no Tr_velo_to_cam entry"):
        read_calibration(path)


def test_truncated_scan_and_broken_info_file_are_refused(tmp_path):
    scan = tmp_path / "000000.bin"
    scan.write_bytes((KITTI / "kitti_000008" / "000008.bin").read_bytes()[:-3])
    with pytest.raises(KittiFormatError, match=rf"{scan}: .* not a whole number of 16-byte points"):
        read_velodyne(scan)
    info = json.loads((KITTI / "kitti_000008" / "000008.derived.json").read_text())
    del info["data_list"][0]["instances"][2]["bbox_3d"]
    path = tmp_path / "000008.derived.json"
    path.write_text(json.dumps(info))
    with pytest.raises(KittiFormatError, match=rf"{path}: instance 2: KeyError"):
        read_mmdet3d_info(path)


def test_unlabelled_scans_are_the_ten_camera_view_crops():
    paths = unlabelled_scan_paths(KITTI)
    assert [path.stem for path in paths] == [f"{index:06d}" for index in range(10)]
    points = read_velodyne(paths[8])
    # The crop keeps what the camera sees: everything in front of the sensor.
    assert points.dtype == np.float32 and points.shape == (17238, 4) and points[:, 0].min() > 0.0
