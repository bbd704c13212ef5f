"""The dense BEV part of the network (neck and head) in onnxruntime: on these 2-core CPUs it runs
the same convolutions in 30 ms against torch's 37-46 ms when idle, and 64 against 172 ms with the
other core busy (docs/benchmarks.md). The graph is exported from the
loaded checkpoint at start-up, so weights and graph can never disagree."""
from __future__ import annotations

import io

import numpy as np
import onnxruntime
import torch

from perception.detection.network import DenseBevNetwork
from perception.model_files import cpu_session_options


def export_dense_network(dense: DenseBevNetwork, channels: int, rows: int, columns: int) -> bytes:
    """ONNX bytes of the neck and head, with the BEV height and width left dynamic."""
    example = torch.zeros(1, channels, rows, columns)
    buffer = io.BytesIO()
    was_training = dense.training
    dense.eval()
    torch.onnx.export(dense, (example,), buffer, input_names=["bev"], output_names=["heatmap", "regression"],
                      dynamic_axes={"bev": {2: "rows", 3: "columns"}, "heatmap": {2: "rows", 3: "columns"},
                                    "regression": {2: "rows", 3: "columns"}},
                      opset_version=17, dynamo=False)
    dense.train(was_training)
    return buffer.getvalue()


class OnnxDenseNetwork:
    """Callable like DenseBevNetwork on CPU tensors: bev (1, C, Y, X) -> (heatmap logits, regression)."""

    def __init__(self, dense: DenseBevNetwork, channels: int, rows: int, columns: int, threads: int) -> None:
        self._session = onnxruntime.InferenceSession(export_dense_network(dense, channels, rows, columns),
                                                     cpu_session_options(threads),
                                                     providers=["CPUExecutionProvider"])

    def __call__(self, bev: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        heatmap, regression = self._session.run(None, {"bev": np.ascontiguousarray(bev.numpy(), dtype=np.float32)})
        return torch.from_numpy(heatmap), torch.from_numpy(regression)
