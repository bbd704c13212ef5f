"""lidar_detector over real rclpy: objects on the cloud's frame with markers and processing time,
empty and non-finite clouds, malformed clouds rejected while the node keeps serving, the point
budget, the one-slot mailbox dropping the oldest scans, and start-up failures. The plumbing runs on
an untrained checkpoint made here, so it does not depend on the trained weights."""
from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest
import torch
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import PointCloud2, PointField
from std_msgs.msg import Float64, Header
from visualization_msgs.msg import Marker, MarkerArray

from edge_robot_msgs.msg import DetectedObjects
from perception.detection import CenterPointNet, DetectorConfig, save_checkpoint
from robot_nodes import graph, topics
from robot_nodes.conversions import msg_to_detected_objects, seconds_to_stamp, stamp_to_seconds, xyzi_to_pointcloud2
from robot_nodes.lidar_detector import LidarDetectorNode
from robot_nodes.parameters import ParameterError
from robot_nodes.paths import resolve
from robot_nodes.runner import StartupError
from ros_helpers import spinning, wait_until
from sim.scenario import load_scenario
from sim.world import World

FIRST_DETECTION_TIMEOUT_S = 60.0
"""spconv tunes its kernels on the first scans of a process: seconds on a busy CPU."""


@pytest.fixture(scope="module")
def untrained_model(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("model") / "untrained.pt"
    save_checkpoint(path, CenterPointNet(DetectorConfig()))
    return path


@pytest.fixture(scope="module")
def sim_scan() -> np.ndarray:
    world = World(load_scenario(resolve("config/scenarios/urban_default.yaml")), seed=0)
    return world.lidar_scan().points


def detector_node(context, model: Path, **parameters) -> LidarDetectorNode:
    overrides = [Parameter(name, value=value) for name, value in {"device": "cpu", **parameters}.items()]
    return graph.lidar_detector(str(model)).create(context=context, parameter_overrides=overrides)


def cloud(points, seconds: float = 1.0, frame_id: str = "lidar") -> PointCloud2:
    return xyzi_to_pointcloud2(np.asarray(points, dtype=np.float32).reshape(-1, 4),
                               Header(stamp=seconds_to_stamp(seconds), frame_id=frame_id))


def points_in_range(count: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.column_stack([rng.uniform(2.0, 60.0, count), rng.uniform(-30.0, 30.0, count),
                            rng.uniform(-2.0, 0.5, count), rng.uniform(0.0, 1.0, count)]).astype(np.float32)


class Harness(Node):
    """Publishes clouds to the detector and keeps what it publishes."""

    def __init__(self, context) -> None:
        super().__init__("harness", context=context)
        self.publisher = self.create_publisher(PointCloud2, topics.LIDAR_POINTS, qos_profile_sensor_data)
        self.objects: list[DetectedObjects] = []
        self.markers: list[MarkerArray] = []
        self.processing_times: list[float] = []
        self.create_subscription(DetectedObjects, topics.DETECTED_OBJECTS, self.objects.append, 10)
        self.create_subscription(MarkerArray, topics.LIDAR_DETECTOR_MARKERS, self.markers.append, 10)
        self.create_subscription(Float64, "/lidar_detector/debug/processing_time_ms",
                                 lambda message: self.processing_times.append(message.data), 10)

    def connected(self, detector: LidarDetectorNode) -> bool:
        return (self.publisher.get_subscription_count() > 0 and detector.pub_objects.get_subscription_count() > 0
                and detector.pub_markers.get_subscription_count() > 0
                and detector.pub_processing_time.get_subscription_count() > 0)

    def answered(self, count: int) -> bool:
        return len(self.objects) >= count and len(self.markers) >= count and len(self.processing_times) >= count


def test_a_simulated_scan_gives_objects_markers_and_processing_time(context, untrained_model, sim_scan):
    # An untrained head scores everything low: threshold 0 publishes its best peaks as objects.
    detector, harness = detector_node(context, untrained_model, score_threshold=0.0), Harness(context)
    message = cloud(sim_scan, seconds=12.3)
    with spinning(context, detector, harness):
        assert wait_until(lambda: harness.connected(detector))
        harness.publisher.publish(message)
        assert wait_until(lambda: harness.answered(1), timeout_s=FIRST_DETECTION_TIMEOUT_S)
    objects, markers = harness.objects[0], harness.markers[0].markers
    assert objects.header.frame_id == "lidar" and stamp_to_seconds(objects.header.stamp) == pytest.approx(12.3)
    detected = msg_to_detected_objects(objects)
    assert 0 < len(detected) <= detector.detector.config.decode.max_detections
    low, high = np.array(detector.point_range[:2]), np.array(detector.point_range[3:5])
    centres = np.array([o.box.center[:2] for o in detected])
    assert np.all((centres > low - 1.0) & (centres < high + 1.0))
    assert markers[0].action == Marker.DELETEALL and len(markers) == 1 + 2 * len(detected)
    boxes = [m for m in markers[1:] if m.type == Marker.LINE_LIST]
    labels = [m for m in markers[1:] if m.type == Marker.TEXT_VIEW_FACING]
    assert len(boxes) == len(labels) == len(detected)
    assert all(len(m.points) == 24 and m.header.frame_id == "lidar" for m in boxes)
    label, score = labels[0].text.split()
    assert label == detected[0].label.name.lower() and float(score) == pytest.approx(detected[0].score, abs=0.01)
    assert harness.processing_times[0] > 0.0
    assert detector.counters.received == detector.counters.processed == 1
    assert detector.counters.dropped_frames == detector.counters.rejected == 0


def test_an_empty_cloud_gives_an_empty_result(context, untrained_model):
    detector, harness = detector_node(context, untrained_model), Harness(context)
    with spinning(context, detector, harness):
        assert wait_until(lambda: harness.connected(detector))
        harness.publisher.publish(cloud(np.zeros((0, 4)), seconds=2.0))
        assert wait_until(lambda: harness.answered(1))
    assert harness.objects[0].objects == [] and stamp_to_seconds(harness.objects[0].header.stamp) == 2.0
    assert [m.action for m in harness.markers[0].markers] == [Marker.DELETEALL]


def test_non_finite_points_are_dropped_and_counted(context, untrained_model):
    detector, harness = detector_node(context, untrained_model), Harness(context)
    points = points_in_range(2000)
    points[:5, 0], points[5:8, 3], points[8, 2] = np.nan, np.inf, -np.inf
    with spinning(context, detector, harness):
        assert wait_until(lambda: harness.connected(detector))
        harness.publisher.publish(cloud(points))
        assert wait_until(lambda: harness.answered(1), timeout_s=FIRST_DETECTION_TIMEOUT_S)
    assert detector.counters.nan_points_dropped == 9 and detector.counters.processed == 1


def test_a_cloud_with_wrong_fields_is_rejected_and_the_node_keeps_serving(context, untrained_model):
    detector, harness = detector_node(context, untrained_model), Harness(context)
    no_intensity = cloud(points_in_range(100))
    no_intensity.fields = [PointField(name=name, offset=4 * index, datatype=PointField.FLOAT32, count=1)
                           for index, name in enumerate(("x", "y", "z", "ring"))]
    with spinning(context, detector, harness):
        assert wait_until(lambda: harness.connected(detector))
        harness.publisher.publish(no_intensity)
        assert wait_until(lambda: detector.counters.rejected == 1)
        harness.publisher.publish(cloud(points_in_range(100), seconds=3.0))
        assert wait_until(lambda: harness.answered(1), timeout_s=FIRST_DETECTION_TIMEOUT_S)
    assert "intensity" in detector.inputs.last_reason["~/input/pointcloud"]
    assert detector.inputs.rejected["~/input/pointcloud"] == 1
    assert stamp_to_seconds(harness.objects[0].header.stamp) == 3.0
    assert detector.counters.received == 2 and detector.counters.processed == 1


def test_a_cloud_over_the_point_budget_is_subsampled_and_counted(context, untrained_model):
    detector, harness = detector_node(context, untrained_model, max_points=1000), Harness(context)
    with spinning(context, detector, harness):
        assert wait_until(lambda: harness.connected(detector))
        harness.publisher.publish(cloud(points_in_range(500)))
        assert wait_until(lambda: harness.answered(1), timeout_s=FIRST_DETECTION_TIMEOUT_S)
        assert detector.counters.subsampled_frames == 0
        harness.publisher.publish(cloud(points_in_range(5000), seconds=2.0))
        assert wait_until(lambda: harness.answered(2))
    assert detector.counters.subsampled_frames == 1 and detector.counters.processed == 2


def test_clouds_arriving_faster_than_detection_drop_the_oldest(context, untrained_model):
    detector, harness = detector_node(context, untrained_model), Harness(context)
    detect, started, release = detector.detector.detect, threading.Event(), threading.Event()

    def slow_detect(points):  # holds the worker on its first cloud until the test lets it go
        started.set()
        release.wait(timeout=30.0)
        return detect(points)

    detector.detector.detect = slow_detect
    with spinning(context, detector, harness):
        assert wait_until(lambda: harness.connected(detector))
        for index in range(4):
            harness.publisher.publish(cloud(points_in_range(200, seed=index), seconds=1.0 + index))
            assert wait_until(lambda: detector.counters.received == index + 1)
            if index == 0:
                assert started.wait(timeout=10.0)
        # Cloud 1 is being processed; 2 was replaced by 3, and 3 by 4, before the worker was free.
        assert detector.counters.dropped_frames == 2
        release.set()
        assert wait_until(lambda: harness.answered(2), timeout_s=FIRST_DETECTION_TIMEOUT_S)
    assert [stamp_to_seconds(message.header.stamp) for message in harness.objects] == [1.0, 4.0]
    assert detector.counters.processed == 2 and detector.counters.dropped_frames == 2


def test_a_point_range_within_the_model_grid_is_used(context, untrained_model):
    detector = detector_node(context, untrained_model, point_range=[0.0, -20.48, -3.0, 40.96, 20.48, 1.0])
    try:
        assert detector.point_range == (0.0, -20.48, -3.0, 40.96, 20.48, 1.0)
        assert detector.detector.config.heatmap_shape == (64, 64)
        result = detector.detector.detect(points_in_range(300))
        assert result.points.outside_range > 0 and result.num_voxels > 0
    finally:
        detector.destroy_node()


@pytest.mark.parametrize("point_range, message", [
    ([0.0, -40.0, -3.0, 70.0, 40.0, 1.0], "multiple of 8 voxels"),
    ([0.0, -40.96, -2.0, 71.68, 40.96, 1.0], "z_min, z_max must be the model's"),
])
def test_a_point_range_the_model_cannot_use_fails_at_start(context, untrained_model, point_range, message):
    with pytest.raises(StartupError, match=message):
        detector_node(context, untrained_model, point_range=point_range)


@pytest.mark.parametrize("parameters, message", [
    ({"point_range": [0.0, 1.0, 2.0]}, "point_range"),
    ({"point_range": [10.0, -40.96, -3.0, 0.0, 40.96, 1.0]}, "min < max"),
    ({"device": "tpu"}, "device"),
])
def test_bad_parameters_fail_at_start(context, untrained_model, parameters, message):
    with pytest.raises(ParameterError, match=message):
        detector_node(context, untrained_model, **parameters)


def test_a_missing_or_corrupt_model_fails_at_start_naming_the_file(context, tmp_path):
    missing = tmp_path / "missing.pt"
    with pytest.raises(StartupError, match=f"{missing}.*train-detector"):
        detector_node(context, missing)
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(b"\x80\x02 not a checkpoint")
    with pytest.raises(StartupError, match=f"{corrupt}.*damaged"):
        detector_node(context, corrupt)
