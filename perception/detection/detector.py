"""LidarDetector: a trained CenterPointNet with its config, loaded from a checkpoint, turning a
point array into DetectedObject boxes and timing each stage."""
from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from perception.detection.config import CLASS_MEMBERS, DetectorConfig
from perception.detection.decode import decode_boxes
from perception.detection.network import CenterPointNet
from perception.detection.onnx_dense import OnnxDenseNetwork
from perception.detection.voxelizer import PreparedPoints, Voxelizer, prepare_points
from perception.model_files import ModelFileError
from perception.objects import Box3D, DetectedObject

CHECKPOINT_FORMAT = "edge_robot_runtime.lidar_detector/1"
"""Format tag stored in every checkpoint."""

TRAIN_COMMAND = "train-detector"
"""The command that makes a checkpoint, named in load errors."""


@dataclass
class Detection:
    """One scan's result."""

    objects: list[DetectedObject]
    """Detections, best score first, in the sensor frame."""
    timings_ms: dict[str, float]
    """Milliseconds per stage: prepare, voxelize, backbone, head, decode."""
    points: PreparedPoints
    """The points the network saw and how many were left out."""
    num_voxels: int = 0
    """Non-empty voxels."""


def resolve_device(name: str) -> torch.device:
    """'cpu', 'cuda', 'cuda:N' or 'auto' (CUDA when present)."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {name!r}: CUDA is not available on this machine (use 'cpu' or 'auto')")
    if device.type not in ("cpu", "cuda"):
        raise ValueError(f"device {name!r}: must be 'cpu', 'cuda', 'cuda:N' or 'auto'")
    return device


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def save_checkpoint(path: Path, model: CenterPointNet, metadata: dict[str, Any] | None = None) -> None:
    """Weights, config and free-form metadata (training run, metrics) in one torch file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {key: value.detach().cpu() for key, value in model.state_dict().items()}
    torch.save({"format": CHECKPOINT_FORMAT, "config": model.config.to_dict(), "state_dict": state,
                "metadata": metadata or {}}, path)


def load_checkpoint(path: Path) -> tuple[DetectorConfig, dict[str, torch.Tensor], dict[str, Any]]:
    """(config, state dict, metadata) of a checkpoint; ModelFileError says what is wrong and what to do."""
    path = Path(path)
    fix = f"train one with `{TRAIN_COMMAND}` or point the model path at an existing checkpoint"
    if not path.is_file():
        raise ModelFileError(f"detector model {path}: no such file; {fix}")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises many types (pickle, zip, runtime) for a damaged file
        # torch's own text suggests weights_only=False, which would run code from the file: not said.
        raise ModelFileError(f"detector model {path}: cannot be read ({type(error).__name__}); the file is "
                             f"damaged, truncated or not a detector checkpoint; {fix}") from None
    if not isinstance(checkpoint, dict) or checkpoint.get("format") != CHECKPOINT_FORMAT:
        raise ModelFileError(f"detector model {path}: not a {CHECKPOINT_FORMAT} checkpoint; {fix}")
    try:
        config = DetectorConfig.from_dict(checkpoint["config"])
    except (KeyError, TypeError, ValueError) as error:
        raise ModelFileError(f"detector model {path}: invalid config in checkpoint ({error}); {fix}") from None
    return config, checkpoint["state_dict"], checkpoint.get("metadata", {})


@dataclass
class DetectorOptions:
    """Run-time choices that do not change the model."""

    device: str = "auto"
    """'cpu', 'cuda', 'cuda:N' or 'auto'."""
    max_points: int = 150000
    """Point budget per scan inside the detection volume; beyond it a random subset is kept."""
    seed: int = 0
    """Seed of the subsampling generator (repeatable results)."""
    decode_overrides: dict[str, Any] = field(default_factory=dict)
    """DecodeConfig fields to change (e.g. score_threshold)."""
    dense_runtime: str = "auto"
    """Runtime of the neck and head: 'onnxruntime' (CPU only), 'torch', or 'auto' (onnxruntime on
    CPU, where it is faster (docs/benchmarks.md), torch on CUDA)."""
    threads: int = 0
    """CPU threads of the network (torch's, for the whole process, and onnxruntime's); 0 leaves
    torch's setting. 1 makes detections bitwise repeatable: with more, sums are split across
    threads in an order that depends on timing (scores then differ in the 4th digit)."""


class LidarDetector:
    """A detector ready to run: model in eval mode on its device."""

    def __init__(self, model: CenterPointNet, options: DetectorOptions | None = None) -> None:
        self.options = options or DetectorOptions()
        if self.options.threads:
            torch.set_num_threads(self.options.threads)
        self.device = resolve_device(self.options.device)
        config = model.config
        config.decode = dataclasses.replace(config.decode, **self.options.decode_overrides)
        self.config = config
        self.model = model.to(self.device).eval()
        self.voxelizer = Voxelizer(config.voxel, self.device)
        runtime = self.options.dense_runtime
        if runtime == "auto":
            runtime = "onnxruntime" if self.device.type == "cpu" else "torch"
        if runtime == "onnxruntime" and self.device.type != "cpu":
            raise ValueError(f"dense_runtime 'onnxruntime' runs on the CPU only, but the device is {self.device}")
        if runtime not in ("onnxruntime", "torch"):
            raise ValueError(f"dense_runtime {runtime!r}: must be 'onnxruntime', 'torch' or 'auto'")
        rows, columns = config.heatmap_shape
        self.dense = (OnnxDenseNetwork(self.model.dense, self.model.backbone.out_channels, rows, columns,
                                       torch.get_num_threads())
                      if runtime == "onnxruntime" else self.model.dense)
        self.dense_runtime = runtime
        self._labels = [CLASS_MEMBERS[name][0] for name in config.classes]
        self._rng = np.random.default_rng(self.options.seed)
        self.metadata: dict[str, Any] = {}

    @classmethod
    def from_checkpoint(cls, path: str | Path, options: DetectorOptions | None = None,
                        point_range: Sequence[float] | None = None) -> LidarDetector:
        """The checkpoint's detector. `point_range` (x_min, y_min, z_min, x_max, y_max, z_max) changes
        the detection volume's x and y extents, which the convolutional network allows; z_min and
        z_max must stay the model's, since its height layers are part of the weights. Raises
        ModelFileError for the file, ValueError for a volume or device the model cannot run with."""
        config, state, metadata = load_checkpoint(Path(path))
        if point_range:
            model_range = config.voxel.point_range
            if (point_range[2], point_range[5]) != (model_range[2], model_range[5]):
                raise ValueError(f"point_range: z_min, z_max must be the model's ({model_range[2]:g}, "
                                 f"{model_range[5]:g}), got ({point_range[2]:g}, {point_range[5]:g}); "
                                 "only x and y can change")
            config.voxel = dataclasses.replace(config.voxel, point_range=tuple(point_range))
        model = CenterPointNet(config)
        try:
            model.load_state_dict(state)
        except RuntimeError as error:
            raise ModelFileError(f"detector model {path}: weights do not fit its config ({str(error).splitlines()[0]});"
                                 f" train a new one with `{TRAIN_COMMAND}`") from None
        detector = cls(model, options)
        detector.metadata = metadata
        return detector

    @contextlib.contextmanager
    def _timed(self, timings_ms: dict[str, float], stage: str) -> Iterator[None]:
        """Wall milliseconds of the block into timings_ms[stage], GPU work included."""
        started = time.perf_counter()
        yield
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        timings_ms[stage] = 1e3 * (time.perf_counter() - started)

    @torch.inference_mode()
    def detect(self, points: np.ndarray) -> Detection:
        """Detections in one scan of finite (N, 4) float32 points x, y, z, intensity (sensor frame)."""
        timings: dict[str, float] = {}
        with self._timed(timings, "prepare"):
            prepared = prepare_points(points, self.config.voxel, self.options.max_points, self._rng)
        if len(prepared.points) == 0:
            return Detection([], timings, prepared)
        with self._timed(timings, "voxelize"):
            voxels = self.voxelizer([prepared.points])
        with self._timed(timings, "backbone"):
            bev = self.model.sparse_features(voxels.features, voxels.num_points, voxels.coordinates, 1)
        with self._timed(timings, "head"):
            heatmap, regression = self.dense(bev)
        with self._timed(timings, "decode"):
            boxes, scores, classes = decode_boxes(heatmap, regression, self.config)[0]
            objects = [DetectedObject(label=self._labels[int(label)], score=float(score),
                                      box=Box3D(box[:3], box[3:6], box[6]))
                       for box, score, label in zip(boxes, scores, classes)]
        return Detection(objects, timings, prepared, int(len(voxels.coordinates)))
