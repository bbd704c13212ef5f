"""kitti-to-bag: the repository's KITTI scans as a bag, read back and scored the way `evaluate`
scores a run (poses from /odom, the lidar mount from /tf_static, ground truth in map)."""
import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from evaluation.detection_run import DEFAULT_MIN_POINTS, inside_point_range, score_detection_run
from evaluation.detector_report import ReportConfig, class_group, match_kitti_objects, published
from evaluation.kitti import LABELLED_FRAMES, load_labelled_frame, read_velodyne, unlabelled_scan_paths
from perception.detection import DetectorOptions, LidarDetector, VoxelConfig, load_checkpoint
from perception.detection.detector import file_sha256
from perception.objects import DetectedObject, ObjectClass
from robot_nodes import topics
from robot_nodes.bags import BagReader
from robot_nodes.conversions import msg_to_ground_truth_objects, pointcloud2_to_xyzi, stamp_ns
from robot_nodes.kitti_bag import KITTI_VELODYNE_HEIGHT, OBJECT_IDS_PER_FRAME, frame_stamp_ns, main
from robot_nodes.bag_contents import BagContents

REPO = Path(__file__).resolve().parents[2]
KITTI = REPO / "data" / "kitti"
MODEL = REPO / "models" / "lidar_detector.pt"
UNLABELLED = unlabelled_scan_paths(KITTI)
POINT_RANGE = VoxelConfig().point_range
"""The detector's volume in the lidar frame (the default, which models/lidar_detector.pt was trained with)."""


@pytest.fixture(scope="module")
def bag(tmp_path_factory):
    """The labelled frames then the camera-view scans, converted by the command."""
    path = tmp_path_factory.mktemp("kitti") / "bag"
    assert main(["--output", str(path), "--kitti", str(KITTI), "--unlabelled"]) == 0
    return path


@pytest.fixture(scope="module")
def messages(bag):
    """topic -> [(bag time, decoded message, CDR bytes)] in time order."""
    read: dict = {}
    with BagReader(bag) as reader:
        for topic, msgtype, timestamp, raw in reader.messages():
            read.setdefault(topic, []).append((timestamp, reader.deserialize(raw, msgtype), raw))
    return read


@pytest.fixture(scope="module")
def labelled():
    """The labelled frames as evaluate-detector reads them (boxes in the velodyne frame)."""
    return [load_labelled_frame(KITTI, frame_id) for frame_id in LABELLED_FRAMES]


def test_the_bag_holds_one_frame_per_scan(bag, messages):
    scans = len(LABELLED_FRAMES) + len(UNLABELLED)
    with BagReader(bag) as reader:
        counts = {topic: info.count for topic, info in reader.topics().items()}
        assert {topic: info.msgtype for topic, info in reader.topics().items()} == \
            {topic: topics.CONTRACT[topic] for topic in counts}
    assert counts == {topics.LIDAR_POINTS: scans, topics.GROUND_TRUTH_OBJECTS: len(LABELLED_FRAMES),
                      topics.ODOMETRY: scans, topics.TF: scans, topics.TF_STATIC: 1, topics.CLOCK: scans + 1}
    stamps = [frame_stamp_ns(index, 10.0) for index in range(scans)]
    assert stamps[:2] == [100_000_000, 200_000_000]
    for topic in (topics.LIDAR_POINTS, topics.ODOMETRY, topics.TF):
        assert [timestamp for timestamp, _, _ in messages[topic]] == stamps
    for topic in (topics.LIDAR_POINTS, topics.ODOMETRY):
        assert [stamp_ns(message.header.stamp) for _, message, _ in messages[topic]] == stamps
    assert [[(transform.header.frame_id, transform.child_frame_id, stamp_ns(transform.header.stamp))
             for transform in message.transforms] for _, message, _ in messages[topics.TF]] == \
        [[("map", "odom", stamp), ("odom", "base_link", stamp)] for stamp in stamps]
    assert [stamp_ns(message.clock) for _, message, _ in messages[topics.CLOCK]] == [0, *stamps]


def test_the_clouds_are_the_scans(messages, labelled):
    expected = [frame.points for frame in labelled] + [read_velodyne(path) for path in UNLABELLED]
    for (_, cloud, _), points in zip(messages[topics.LIDAR_POINTS], expected, strict=True):
        assert cloud.header.frame_id == "lidar" and [field.name for field in cloud.fields] == \
            ["x", "y", "z", "intensity"]
        decoded, dropped = pointcloud2_to_xyzi(cloud)
        assert dropped == 0 and decoded.dtype == np.float32
        np.testing.assert_array_equal(decoded, points)


def test_the_ground_truth_is_the_kitti_labels_raised_by_the_mount(messages, labelled):
    clouds = messages[topics.LIDAR_POINTS][:len(labelled)]
    seen_ids = set()
    for (timestamp, message, _), frame, (cloud_time, _, _) in zip(messages[topics.GROUND_TRUTH_OBJECTS], labelled,
                                                                   clouds, strict=True):
        assert timestamp == cloud_time and message.header.frame_id == "map"
        assert stamp_ns(message.header.stamp) == timestamp
        boxed = [(index, obj) for index, obj in enumerate(frame.objects) if obj.box is not None]
        for (index, obj), true in zip(boxed, msg_to_ground_truth_objects(message), strict=True):
            assert true.object_id == int(frame.frame_id) * OBJECT_IDS_PER_FRAME + index
            assert true.label == (obj.label if obj.evaluated else ObjectClass.UNKNOWN)
            np.testing.assert_allclose(true.box.center, obj.box.center + [0.0, 0.0, KITTI_VELODYNE_HEIGHT],
                                       atol=1e-9)
            np.testing.assert_allclose(true.box.size, obj.box.size, atol=1e-12)
            assert math.isclose(math.remainder(true.box.yaw - obj.box.yaw, 2 * math.pi), 0.0, abs_tol=1e-9)
            assert true.num_lidar_points == obj.num_lidar_points and true.num_lidar_points > 0
            assert not true.is_static and not true.velocity.any() and true.yaw_rate == 0.0
            seen_ids.add(true.object_id)
    # Misc (000002) travels as UNKNOWN, DontCare (000001, 000008) not at all.
    assert len(seen_ids) == sum(obj.box is not None for frame in labelled for obj in frame.objects) == 12


def labels_as_detections(messages, labelled) -> list[tuple[int, list[DetectedObject]]]:
    """evaluation.kitti's velodyne-frame boxes as perfect detections on each cloud; none on unlabelled scans."""
    by_frame = {frame.frame_id: frame for frame in labelled}
    detections = []
    for index, (timestamp, _, _) in enumerate(messages[topics.LIDAR_POINTS]):
        frame = by_frame[LABELLED_FRAMES[index]] if index < len(LABELLED_FRAMES) else None
        objects = [] if frame is None else [DetectedObject(label=obj.label, score=1.0, box=obj.box)
                                            for obj in frame.objects if obj.evaluated]
        detections.append((timestamp, objects))
    return detections


def test_scoring_the_labels_as_detections_gives_full_average_precision(bag, messages, labelled):
    contents = BagContents.read(bag)
    mount = contents.static_transform("base_link", "lidar")
    np.testing.assert_allclose(mount, np.array([[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, KITTI_VELODYNE_HEIGHT],
                                                [0, 0, 0, 1]]), atol=1e-12)
    poses = contents.poses
    assert {pose[1:] for pose in poses} == {(0.0, 0.0, 0.0)}
    result = score_detection_run(labels_as_detections(messages, labelled), contents.ground_truth, poses, mount,
                                 POINT_RANGE)
    assert (result.frames_scored, result.frames_without_truth, result.frames_without_pose) == \
        (len(LABELLED_FRAMES), len(UNLABELLED), 0)
    counted = {name: sum(class_group(obj.label) == name and obj.num_lidar_points >= DEFAULT_MIN_POINTS
                         for frame in labelled for obj in inside_point_range(
                             [obj for obj in frame.objects if obj.box is not None], POINT_RANGE))
               for name in result.classes}
    # Cars of 000001, 000002 and 000008; the truck and cyclist of 000001; the pedestrian of 000000.
    assert counted == {"car": 8, "truck_bus": 1, "pedestrian": 1, "cyclist": 1}
    for name in result.classes:
        assert result.bev.get(name).num_ground_truth == counted[name]
        assert result.bev.get(name).average_precision == 1.0
        assert result.three_d.get(name).average_precision == 1.0
    # Without the mount the boxes would float 1.73 m above the points: no 3D overlap at all.
    floating = score_detection_run(labels_as_detections(messages, labelled), contents.ground_truth, poses,
                                   np.eye(4), POINT_RANGE)
    assert floating.three_d.mean_average_precision() == 0.0


def copy_frame_files(root: Path, *relative: str) -> None:
    for name in relative:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(KITTI / name, root / name)


def test_a_truncated_scan_fails_naming_the_file(tmp_path, capsys):
    copy_frame_files(tmp_path / "kitti", "kitti_000008/000008.bin", "kitti_000008/000008.derived.json")
    scan = tmp_path / "kitti" / "kitti_000008" / "000008.bin"
    scan.write_bytes(scan.read_bytes()[:-3])
    assert main(["--output", str(tmp_path / "bag"), "--kitti", str(tmp_path / "kitti"), "--frames", "000008"]) == 2
    error = capsys.readouterr().err
    assert str(scan) in error and "16-byte points" in error
    assert not (tmp_path / "bag").exists()


def test_a_corrupt_label_fails_naming_the_file_and_line(tmp_path, capsys):
    copy_frame_files(tmp_path / "kitti", "kitti_training/velodyne/000000.bin", "kitti_training/calib/000000.txt",
                     "kitti_training/label_2/000000.txt")
    labels = tmp_path / "kitti" / "kitti_training" / "label_2" / "000000.txt"
    labels.write_text(labels.read_text() + "Car 0 0 nonsense\n")
    assert main(["--output", str(tmp_path / "bag"), "--kitti", str(tmp_path / "kitti"), "--frames", "000000"]) == 2
    assert f"{labels}:2:" in capsys.readouterr().err


def test_missing_inputs_fail_naming_the_files(tmp_path, capsys):
    assert main(["--output", str(tmp_path / "bag"), "--kitti", str(tmp_path / "nowhere")]) == 2
    assert str(tmp_path / "nowhere" / "kitti_training" / "label_2" / "000000.txt") in capsys.readouterr().err
    assert main(["--output", str(tmp_path / "bag"), "--kitti", str(tmp_path / "nowhere"), "--frames", "",
                 "--unlabelled"]) == 2
    assert str(tmp_path / "nowhere" / "kitti_velodyne_reduced_unlabeled") in capsys.readouterr().err
    assert not (tmp_path / "bag").exists()


def test_an_existing_bag_is_never_overwritten(bag, capsys):
    assert main(["--output", str(bag), "--kitti", str(KITTI), "--frames", "000000"]) == 2
    assert "exists already" in capsys.readouterr().err


@pytest.mark.parametrize("arguments, complaint", [
    (["--frames", "000003"], "not a labelled frame"),
    (["--frames", "000000,000000"], "names a frame twice"),
    (["--frames", ""], "no frames to convert"),
])
def test_bad_frame_choices_are_usage_errors(tmp_path, capsys, arguments, complaint):
    with pytest.raises(SystemExit) as exit_info:
        main(["--output", str(tmp_path / "bag"), "--kitti", str(KITTI), *arguments])
    assert exit_info.value.code == 2 and complaint in capsys.readouterr().err


@pytest.mark.parametrize("rate", ["0", "-10", "nan", "inf"])
def test_a_rate_that_is_not_positive_fails(tmp_path, capsys, rate):
    assert main(["--output", str(tmp_path / "bag"), "--kitti", str(KITTI), "--frames", "000008",
                 "--rate", rate]) == 2
    assert "rate must be a positive number" in capsys.readouterr().err
    assert not (tmp_path / "bag").exists()


def test_the_rate_spaces_the_frames(tmp_path):
    assert main(["--output", str(tmp_path / "bag"), "--kitti", str(KITTI), "--frames", "000008,000002",
                 "--rate", "2"]) == 0
    with BagReader(tmp_path / "bag") as reader:
        assert [timestamp for _, _, timestamp, _ in reader.messages([topics.LIDAR_POINTS])] == \
            [500_000_000, 1_000_000_000]


@pytest.fixture
def one_torch_thread():
    """torch's multi-threaded sums vary from call to call; one thread gives repeatable scores."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.slow
def test_the_detector_on_the_bag_scores_as_evaluate_detector_does(bag, messages, labelled, one_torch_thread):
    """The real detector on the bag's clouds: the same detections as on the .bin files, the same
    labels found as in models/lidar_detector.metrics.json, and the run's AP scored from the bag."""
    # As evaluate-detector runs it: decoded down to the AP threshold, then cut at the published one.
    published_threshold = load_checkpoint(MODEL)[0].decode.score_threshold
    detector = LidarDetector.from_checkpoint(MODEL, DetectorOptions(device="cpu", decode_overrides={
        "score_threshold": min(ReportConfig().ap_score_threshold, published_threshold)}))
    detections = [(timestamp, published(detector.detect(pointcloud2_to_xyzi(cloud)[0]).objects, published_threshold))
                  for timestamp, cloud, _ in messages[topics.LIDAR_POINTS]]
    rows = []
    for frame, (_, objects) in zip(labelled, detections):
        direct = published(detector.detect(frame.points).objects, published_threshold)
        assert [(obj.label, obj.score) for obj in objects] == [(obj.label, obj.score) for obj in direct]
        rows += match_kitti_objects(frame.frame_id, frame.objects, objects, POINT_RANGE, 0.5)
    report = json.loads(MODEL.with_suffix(".metrics.json").read_text())
    if report["kitti"] is not None and report["model"]["sha256"] == file_sha256(MODEL):
        reported = report["kitti"]["objects"]
        assert [(row.frame, row.kitti_type, row.detected) for row in rows] == \
            [(row["frame"], row["type"], row["detected"]) for row in reported]
        # The report ran with torch's default threads, whose sums differ in the last digits.
        for row, reported_row in zip(rows, reported):
            if reported_row["best_bev_iou"] is not None:
                assert row.best_bev_iou == pytest.approx(reported_row["best_bev_iou"], abs=0.02)
    contents = BagContents.read(bag)
    result = score_detection_run(detections, contents.ground_truth, contents.poses,
                                 contents.static_transform("base_link", "lidar"), POINT_RANGE)
    assert result.frames_scored == len(LABELLED_FRAMES)
    print("\nAP (%) of the detector on the KITTI bag's labelled scans:\n" + result.to_markdown())
