"""The lidar detector library: config, targets and decoding, rotated NMS, network, checkpoints."""
import math

import numpy as np
import pytest
import torch

from perception.detection import (BACKBONES, CenterPointNet, DetectorConfig, DetectorOptions, LidarDetector,
                                  ModelFileError, VoxelConfig, load_checkpoint, register_backbone, save_checkpoint)
from perception.detection.decode import decode_boxes, rotated_nms
from perception.detection.network import LeanSparseBackbone, dense_channels_first
from perception.detection.targets import detection_loss, scan_targets, stack_targets
from perception.detection.voxelizer import Voxelizer, prepare_points
from perception.objects import ObjectClass, boxes_into_frame

BOXES = np.array([[12.3, -4.1, -0.9, 4.5, 1.8, 1.5, 0.3],
                  [30.7, 8.6, -0.6, 10.0, 2.5, 3.5, -2.0],
                  [8.1, 2.2, -0.85, 0.6, 0.6, 1.75, 1.2]])
CLASSES = np.array([0, 1, 2])


def test_point_range_must_hold_whole_multiples_of_eight_voxels():
    with pytest.raises(ValueError, match="multiple of 8 voxels"):
        VoxelConfig(point_range=(0.0, -40.0, -3.0, 70.0, 40.0, 1.0))
    assert VoxelConfig().grid_size == (448, 512, 20)


def test_config_round_trips_through_a_plain_dict():
    config = DetectorConfig()
    assert DetectorConfig.from_dict(config.to_dict()) == config


def test_unknown_class_is_refused():
    with pytest.raises(ValueError, match="unknown"):
        DetectorConfig(classes=("car", "tram"))


def perfect_prediction(boxes, classes, config):
    """Network outputs that say exactly what the targets say."""
    heatmap, cell_index, mask, regression = scan_targets(boxes, classes, config)
    rows, columns = config.heatmap_shape
    probability = np.clip(heatmap, 1e-6, 1 - 1e-6)
    logits = torch.from_numpy(np.log(probability / (1 - probability)))[None]
    maps = torch.zeros(1, 8, rows * columns)
    for slot in np.flatnonzero(mask):
        maps[0, :, cell_index[slot]] = torch.from_numpy(regression[slot])
    return logits, maps.reshape(1, 8, rows, columns)


def test_decoding_perfect_targets_gives_the_boxes_back():
    config = DetectorConfig()
    logits, maps = perfect_prediction(BOXES, CLASSES, config)
    boxes, scores, classes = decode_boxes(logits, maps, config)[0]
    order = np.argsort(boxes[:, 0])
    expected = np.argsort(BOXES[:, 0])
    np.testing.assert_allclose(boxes[order], BOXES[expected], atol=1e-4)
    np.testing.assert_array_equal(classes[order], CLASSES[expected])
    assert np.all(scores > 0.99)


def test_targets_leave_out_boxes_outside_the_range():
    config = DetectorConfig()
    outside = np.array([[-5.0, 0.0, -1.0, 4.0, 2.0, 1.5, 0.0]])
    heatmap, _, mask, _ = scan_targets(outside, np.array([0]), config)
    assert heatmap.max() == 0.0 and mask.sum() == 0


def test_rotated_nms_keeps_the_best_of_overlapping_boxes_and_all_disjoint_ones():
    boxes = np.array([[10.0, 0.0, 0.0, 4.0, 2.0, 1.5, 0.0],
                      [10.2, 0.1, 0.0, 4.0, 2.0, 1.5, 0.1],
                      [20.0, 0.0, 0.0, 4.0, 2.0, 1.5, math.pi / 2]])
    kept = rotated_nms(boxes, np.array([0.6, 0.9, 0.5]), iou_threshold=0.1)
    assert kept.tolist() == [1, 2]


def test_a_registered_backbone_is_built_by_name():
    @register_backbone("test_narrow")
    class NarrowBackbone(LeanSparseBackbone):
        pass

    try:
        config = DetectorConfig()
        config.backbone.name = "test_narrow"
        assert isinstance(CenterPointNet(config).backbone, NarrowBackbone)
        with pytest.raises(ValueError, match="already registered"):
            register_backbone("test_narrow")(NarrowBackbone)
    finally:
        del BACKBONES["test_narrow"]


def test_dense_form_matches_spconv_without_its_deprecation_warning():
    import warnings

    import spconv.pytorch as spconv

    generator = torch.Generator().manual_seed(0)
    cells = torch.randperm(2 * 3 * 4 * 5, generator=generator)[:17]
    indices = torch.stack([cells // 60, cells // 20 % 3, cells // 5 % 4, cells % 5], dim=1).int()
    features = torch.randn(17, 6, generator=generator, requires_grad=True)
    tensor = spconv.SparseConvTensor(features, indices, [3, 4, 5], batch_size=2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        dense = dense_channels_first(tensor)
    assert dense.shape == (2, 6, 3, 4, 5)
    assert torch.equal(dense, tensor.dense())
    dense.sum().backward()
    assert torch.equal(features.grad, torch.ones_like(features))


def test_unknown_backbone_is_refused():
    config = DetectorConfig()
    config.backbone.name = "missing"
    with pytest.raises(ValueError, match="registered"):
        CenterPointNet(config)


def scan_points(rng, count=20000):
    """Ground plane plus points on the surfaces of BOXES, sensor frame."""
    ground = np.column_stack([rng.uniform(0, 70, count), rng.uniform(-40, 40, count),
                              np.full(count, -1.73) + rng.normal(0, 0.02, count), rng.uniform(0, 1, count)])
    objects = []
    for box in BOXES:
        local = rng.uniform(-0.5, 0.5, (400, 3)) * box[3:6]
        cos, sin = math.cos(box[6]), math.sin(box[6])
        xy = local[:, :2] @ np.array([[cos, sin], [-sin, cos]]) + box[:2]
        objects.append(np.column_stack([xy, local[:, 2] + box[2], rng.uniform(0, 1, 400)]))
    return np.concatenate([ground, *objects]).astype(np.float32)


def test_a_few_training_steps_on_one_scan_reduce_the_loss():
    torch.manual_seed(0)
    config = DetectorConfig()
    model = CenterPointNet(config)
    voxels = Voxelizer(config.voxel, torch.device("cpu"))([scan_points(np.random.default_rng(0))])
    targets = stack_targets([scan_targets(BOXES, CLASSES, config)])
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(6):
        loss, _ = detection_loss(*model(voxels.features, voxels.num_points, voxels.coordinates, 1), targets)
        optimizer.zero_grad()
        loss.backward()  # runs spconv's CPU backward (see perception.detection.spconv_compat)
        optimizer.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < 0.7 * losses[0]


def test_prepare_points_crops_and_holds_the_budget():
    config = VoxelConfig()
    points = np.array([[5, 0, 0, 1], [-5, 0, 0, 1], [5, 50, 0, 1], [5, 0, 3, 1]] + [[10, 1, -1, 0.5]] * 10,
                      dtype=np.float32)
    prepared = prepare_points(points, config, max_points=4, rng=np.random.default_rng(0))
    assert prepared.outside_range == 3
    assert prepared.subsampled == 7
    assert len(prepared.points) == 4


@pytest.fixture(scope="module")
def untrained_checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("model") / "detector.pt"
    save_checkpoint(path, CenterPointNet(DetectorConfig()), {"note": "untrained"})
    return path


def test_checkpoint_round_trip_gives_the_same_network_outputs(untrained_checkpoint):
    points = scan_points(np.random.default_rng(1))
    options = DetectorOptions(device="cpu", decode_overrides={"score_threshold": 0.05})
    first = LidarDetector.from_checkpoint(untrained_checkpoint, options)
    second = LidarDetector.from_checkpoint(untrained_checkpoint, options)
    voxels = first.voxelizer([points])
    with torch.no_grad():
        outputs = [detector.model(voxels.features, voxels.num_points, voxels.coordinates, 1)
                   for detector in (first, second)]
    for a, b in zip(*outputs):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
    result = first.detect(points)
    assert 0 < len(result.objects) <= first.config.decode.max_detections
    assert all(obj.score >= 0.05 for obj in result.objects)
    assert set(result.timings_ms) == {"prepare", "voxelize", "backbone", "head", "decode"}
    assert load_checkpoint(untrained_checkpoint)[2] == {"note": "untrained"}


def test_empty_scan_gives_no_detections(untrained_checkpoint):
    detector = LidarDetector.from_checkpoint(untrained_checkpoint, DetectorOptions(device="cpu"))
    result = detector.detect(np.zeros((0, 4), np.float32))
    assert result.objects == [] and result.num_voxels == 0


def test_missing_model_file_names_the_path_and_the_fix(tmp_path):
    with pytest.raises(ModelFileError, match=r"nope\.pt: no such file.*train-detector"):
        LidarDetector.from_checkpoint(tmp_path / "nope.pt")


def test_corrupt_model_file_is_refused_with_the_path(tmp_path):
    path = tmp_path / "broken.pt"
    path.write_bytes(b"\x00garbage" * 100)
    with pytest.raises(ModelFileError, match=r"broken\.pt: cannot be read"):
        LidarDetector.from_checkpoint(path)


def test_truncated_model_file_is_refused(untrained_checkpoint, tmp_path):
    path = tmp_path / "truncated.pt"
    path.write_bytes(untrained_checkpoint.read_bytes()[:5000])
    with pytest.raises(ModelFileError, match="truncated.pt"):
        LidarDetector.from_checkpoint(path)


def test_a_torch_file_that_is_no_detector_is_refused(tmp_path):
    path = tmp_path / "other.pt"
    torch.save({"weights": torch.zeros(3)}, path)
    with pytest.raises(ModelFileError, match="not a edge_robot_runtime.lidar_detector"):
        LidarDetector.from_checkpoint(path)


def test_weights_that_do_not_fit_the_config_are_refused(tmp_path):
    config = DetectorConfig()
    model = CenterPointNet(config)
    config_wider = DetectorConfig()
    config_wider.backbone.channels = (8, 16, 32)
    model.config = config_wider
    path = tmp_path / "mismatch.pt"
    save_checkpoint(path, model)
    with pytest.raises(ModelFileError, match="do not fit"):
        LidarDetector.from_checkpoint(path)


def test_cuda_request_without_cuda_is_explained():
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(ValueError, match="CUDA is not available"):
        LidarDetector(CenterPointNet(DetectorConfig()), DetectorOptions(device="cuda"))


def test_boxes_into_frame_moves_and_turns_boxes():
    pose = np.eye(4)
    yaw = math.pi / 2
    pose[:3, :3] = [[math.cos(yaw), -math.sin(yaw), 0], [math.sin(yaw), math.cos(yaw), 0], [0, 0, 1]]
    pose[:3, 3] = [10.0, 5.0, 1.73]
    moved = boxes_into_frame(np.array([[10.0, 15.0, 0.75, 4.0, 2.0, 1.5, math.pi / 2]]), pose)
    np.testing.assert_allclose(moved, [[10.0, 0.0, -0.98, 4.0, 2.0, 1.5, 0.0]], atol=1e-12)
    tilted = pose.copy()
    tilted[:3, :3] = [[1, 0, 0], [0, 0, -1], [0, 1, 0]]
    with pytest.raises(ValueError, match="about z only"):
        boxes_into_frame(moved, tilted)


def test_class_index_merges_vans_into_cars():
    index = DetectorConfig().class_index()
    assert index[ObjectClass.VAN] == index[ObjectClass.CAR] == 0
    assert index[ObjectClass.BUS] == index[ObjectClass.TRUCK] == 1


def test_onnxruntime_and_torch_dense_networks_agree(untrained_checkpoint):
    points = scan_points(np.random.default_rng(2))
    detectors = [LidarDetector.from_checkpoint(untrained_checkpoint, DetectorOptions(device="cpu", dense_runtime=runtime))
                 for runtime in ("onnxruntime", "torch")]
    assert [detector.dense_runtime for detector in detectors] == ["onnxruntime", "torch"]
    voxels = detectors[0].voxelizer([points])
    with torch.no_grad():
        bev = detectors[0].model.sparse_features(voxels.features, voxels.num_points, voxels.coordinates, 1)
        for a, b in zip(detectors[0].dense(bev), detectors[1].dense(bev)):
            torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4)


def test_unknown_dense_runtime_is_refused():
    with pytest.raises(ValueError, match="dense_runtime"):
        LidarDetector(CenterPointNet(DetectorConfig()), DetectorOptions(device="cpu", dense_runtime="tensorrt"))
