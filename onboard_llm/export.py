"""ONNX export of the Llama forward pass with the key-value cache as explicit inputs and outputs.

One graph serves prefill (past length 0, all prompt tokens) and decode (one token, the cache so
far): inputs `input_ids` [1, tokens] and `past_key_i`/`past_value_i` [1, kv_heads, past, head_dim],
outputs `logits` [1, tokens, vocab] and `present_key_i`/`present_value_i` (past + tokens). The
model's config travels in the file's metadata.
"""
from __future__ import annotations

import dataclasses
import json
import warnings
from pathlib import Path

import onnx
import torch

from onboard_llm.model import LlamaConfig, LlamaModel, LlamaWeights

MODEL_FORMAT = "edge_robot_runtime.onboard_llm/1"
"""metadata_props 'format' of the files this module writes."""
OPSET = 17


def cache_names(n_layers: int, kind: str) -> list[str]:
    """['<kind>_key_0', '<kind>_value_0', …] for kind 'past' or 'present'."""
    return [f"{kind}_{part}_{index}" for index in range(n_layers) for part in ("key", "value")]


def export_onnx(weights: LlamaWeights, path: Path, metadata: dict | None = None) -> Path:
    """Write the model to `path` (float32) with the config and `metadata` in its metadata_props."""
    config = weights.config
    model = LlamaModel(weights).eval()
    example_ids = torch.zeros(1, 3, dtype=torch.int64)
    example_past = [torch.zeros(1, config.n_kv_heads, 2, config.head_dim) for _ in range(2 * config.n_layers)]
    past, present = cache_names(config.n_layers, "past"), cache_names(config.n_layers, "present")
    dynamic = {"input_ids": {1: "tokens"}, "logits": {1: "tokens"}}
    dynamic.update({name: {2: "past"} for name in past})
    dynamic.update({name: {2: "total"} for name in present})
    path.parent.mkdir(parents=True, exist_ok=True)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the tracer's notes on shape-dependent Python values and its own deprecation
        torch.onnx.export(model, (example_ids, *example_past), str(path), input_names=["input_ids", *past],
                          output_names=["logits", *present], dynamic_axes=dynamic, opset_version=OPSET, dynamo=False)
    stored = onnx.load(str(path))
    write_metadata(stored, config, metadata or {})
    onnx.save(stored, str(path))
    return path


def write_metadata(model: onnx.ModelProto, config: LlamaConfig, metadata: dict) -> None:
    del model.metadata_props[:]
    for key, value in {"format": MODEL_FORMAT, "llama_config": dataclasses.asdict(config), **metadata}.items():
        model.metadata_props.add(key=key, value=value if isinstance(value, str) else json.dumps(value))
