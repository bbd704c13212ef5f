"""spconv 2.3.8's CPU backward pass (ops.indice_conv_backward) asks torch for the current CUDA
stream even when every tensor is on the CPU, which raises on CPU-only torch builds and makes CPU
training impossible (traveller59/spconv#366). The stream is only used by CUDA kernels, so on a
machine without CUDA the null stream (0) is handed over instead."""
from __future__ import annotations

import torch
from spconv.pytorch import ops


def _current_stream() -> int:
    return torch.cuda.current_stream().cuda_stream if torch.cuda.is_available() else 0


def install() -> None:
    """Replace spconv's stream lookup (idempotent)."""
    ops.get_current_stream = _current_stream
