"""ONNX graph of the Llama forward pass with the key-value cache as explicit inputs and outputs.

One graph serves prefill (past length 0, all prompt tokens) and decode (one token, the cache so
far). Inputs:

- `input_ids` [1, tokens];
- `past_sequence_length` [1] (int64): how many cached positions are filled;
- `logits_to_keep` [1] (int64): logits are computed for the last this many tokens only (1 when
  generating: over a 256-token prompt the output head is 14 % of an int4 prefill);
- `past_key_i`/`past_value_i` [1, kv_heads, capacity, head size] (`cache_head_dim`: the model's
  head_dim padded to a multiple of 16), capacity ≥ past_sequence_length.

Outputs: `logits` [1, kept tokens, vocab] and `present_key_i`/`present_value_i`. With capacity equal
to the past length, the presents are the past plus the new tokens; with a larger capacity (a
preallocated buffer) GroupQueryAttention writes the new keys and values into the buffer at
past_sequence_length and the presents have the buffer's shape, so binding each present to its past's
buffer (runtime.KvCache) updates the cache in place instead of copying it every step. The model's
config travels in the file's metadata.

The graph is written node by node with onnxruntime's fused operators, the way onnxruntime-genai's
model builder lays out a decoder, so that a decode step runs few nodes (per block: two RMSNorms, one
fused q/k/v MatMul, one GroupQueryAttention doing RoPE, the cache concatenation, the causal mask and
the grouped heads, the output projection, one fused gate/up MatMul, SwiGLU in four elementwise nodes,
the down projection):

- RMSNorm: SimplifiedLayerNormalization (the first), then SkipSimplifiedLayerNormalization, which
  adds the residual and normalises in one node and also returns the sum (the new residual stream);
- attention: com.microsoft GroupQueryAttention with the packed q/k/v, `do_rotary` with
  `rotary_interleaved` (RoPE on adjacent pairs, model.py's layout) from cos/sin caches, and
  `seqlens_k` / `total_sequence_length` computed once per step from the input shapes.

The weight MatMuls keep the names the torch exporter gave them (`/blocks.<i>/wqkv/MatMul`, …,
`/output/MatMul`), which the quantizers in variants.py select by. model.py's torch module is the
reference these graphs are checked against (logits, the known story).
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import onnx
import torch
from onnx import TensorProto, helper, numpy_helper

from onboard_llm.model import LlamaConfig, LlamaWeights, rope_angles

MODEL_FORMAT = "edge_robot_runtime.onboard_llm/3"
"""metadata_props 'format' of the files this module writes (2: the fused-operator graph; 3: the past
length and the kept logits as inputs)."""
OPSET = 17
MICROSOFT = "com.microsoft"


def cache_names(n_layers: int, kind: str) -> list[str]:
    """['<kind>_key_0', '<kind>_value_0', …] for kind 'past' or 'present'."""
    return [f"{kind}_{part}_{index}" for index in range(n_layers) for part in ("key", "value")]


HEAD_SIZE_MULTIPLE = 16
"""GroupQueryAttention's CPU kernel takes head sizes that are multiples of 16 only."""


def cache_head_dim(config: LlamaConfig) -> int:
    """The head size of the graph's attention and cache: the model's, padded with zero features up to a
    multiple of HEAD_SIZE_MULTIPLE (SmolLM2's 64 as it is; the tiny test model's 8 becomes 16)."""
    return -(-config.head_dim // HEAD_SIZE_MULTIPLE) * HEAD_SIZE_MULTIPLE


def _pad_heads(weight: torch.Tensor, heads: int, head_dim: int, padded: int, axis: int) -> torch.Tensor:
    """`weight` with each head's head_dim features along `axis` followed by zeros up to `padded`; zero
    q/k features add nothing to the scores, zero v features give outputs the padded wo ignores."""
    moved = weight.movedim(axis, 0).reshape(heads, head_dim, -1)
    grown = torch.cat([moved, moved.new_zeros(heads, padded - head_dim, moved.shape[2])], dim=1)
    return grown.reshape(heads * padded, *weight.movedim(axis, 0).shape[1:]).movedim(0, axis)


def rope_caches(config: LlamaConfig) -> tuple[np.ndarray, np.ndarray]:
    """GroupQueryAttention's cos/sin caches [context, cache_head_dim / 2], one angle per feature pair
    (the padded pairs get angle 0; their features are zero anyway)."""
    angles = rope_angles(config).numpy()
    angles = np.pad(angles, ((0, 0), (0, (cache_head_dim(config) - config.head_dim) // 2)))
    return np.cos(angles).astype(np.float32), np.sin(angles).astype(np.float32)


class _Graph:
    """Nodes and initializers of the graph being written."""

    def __init__(self) -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []

    def constant(self, name: str, value: np.ndarray) -> str:
        self.initializers.append(numpy_helper.from_array(np.ascontiguousarray(value), name))
        return name

    def node(self, op: str, inputs: list[str], outputs: list[str], name: str, domain: str = "", **attributes) -> list[str]:
        self.nodes.append(helper.make_node(op, inputs, outputs, name=name, domain=domain or None, **attributes))
        return outputs

    def linear(self, source: str, weight, name: str) -> str:
        """source @ weightᵀ for an nn.Linear-shaped [out, in] weight, as the MatMul `<name>/MatMul`."""
        matrix = self.constant(f"{name}.weight", weight.detach().numpy().T.astype(np.float32))
        return self.node("MatMul", [source, matrix], [f"{name}/MatMul_output_0"], f"{name}/MatMul")[0]


def build_graph(weights: LlamaWeights) -> onnx.ModelProto:
    """The float32 decoder graph of `weights` (no metadata)."""
    config = weights.config
    graph = _Graph()
    epsilon = float(config.norm_eps)
    head_dim = cache_head_dim(config)

    def pad(weight: torch.Tensor, heads: int, axis: int) -> torch.Tensor:
        return weight if head_dim == config.head_dim else _pad_heads(weight, heads, config.head_dim, head_dim, axis)

    # seqlens_k (total − 1, [batch]) and total_sequence_length (scalar), once per step.
    tokens = graph.node("Shape", ["input_ids"], ["/tokens"], "/tokens", start=1, end=2)[0]
    total64 = graph.node("Add", ["past_sequence_length", tokens], ["/total64"], "/total64")[0]
    total = graph.node("Cast", [total64], ["/total"], "/total", to=TensorProto.INT32)[0]
    one = graph.constant("/one", np.array([1], dtype=np.int32))
    seqlens_k = graph.node("Sub", [total, one], ["/seqlens_k"], "/seqlens_k")[0]
    total_length = graph.node("Squeeze", [total], ["/total_sequence_length"], "/total_sequence_length")[0]
    cos, sin = rope_caches(config)
    cos, sin = graph.constant("/cos_cache", cos), graph.constant("/sin_cache", sin)
    gate_up_split = graph.constant("/gate_up_split", np.array([config.hidden_dim, config.hidden_dim], dtype=np.int64))

    residual = graph.node("Gather", [graph.constant("embedding.weight", weights.embedding.numpy()), "input_ids"],
                          ["/embedding"], "/embedding")[0]
    delta = None  # the last block's output, not yet added to the residual stream
    for index, layer in enumerate(weights.layers):
        prefix = f"/blocks.{index}"
        gain = graph.constant(f"{prefix}/attn_norm.weight", layer["attn_norm"].numpy())
        if delta is None:
            h = graph.node("SimplifiedLayerNormalization", [residual, gain], [f"{prefix}/attn_norm"],
                           f"{prefix}/attn_norm", axis=-1, epsilon=epsilon)[0]
        else:
            h, _, _, residual = graph.node("SkipSimplifiedLayerNormalization", [delta, residual, gain],
                                           [f"{prefix}/attn_norm", "", "", f"{prefix}/attn_residual"],
                                           f"{prefix}/attn_norm", domain=MICROSOFT, epsilon=epsilon)
        qkv = graph.linear(h, torch.cat([pad(layer["wq"], config.n_heads, 0), pad(layer["wk"], config.n_kv_heads, 0),
                                         pad(layer["wv"], config.n_kv_heads, 0)]), f"{prefix}/wqkv")
        attention = graph.node(
            "GroupQueryAttention",
            [qkv, "", "", f"past_key_{index}", f"past_value_{index}", seqlens_k, total_length, cos, sin],
            [f"{prefix}/attention", f"present_key_{index}", f"present_value_{index}"], f"{prefix}/attention",
            domain=MICROSOFT, num_heads=config.n_heads, kv_num_heads=config.n_kv_heads, do_rotary=1,
            rotary_interleaved=1, scale=float(config.head_dim ** -0.5))[0]
        out = graph.linear(attention, pad(layer["wo"], config.n_heads, 1), f"{prefix}/wo")
        gain = graph.constant(f"{prefix}/ffn_norm.weight", layer["ffn_norm"].numpy())
        h, _, _, residual = graph.node("SkipSimplifiedLayerNormalization", [out, residual, gain],
                                       [f"{prefix}/ffn_norm", "", "", f"{prefix}/ffn_residual"],
                                       f"{prefix}/ffn_norm", domain=MICROSOFT, epsilon=epsilon)
        gate_up = graph.linear(h, torch.cat([layer["w_gate"], layer["w_up"]]), f"{prefix}/w_gate_up")
        gate, up = graph.node("Split", [gate_up, gate_up_split], [f"{prefix}/gate", f"{prefix}/up"],
                              f"{prefix}/split", axis=-1)
        sigmoid = graph.node("Sigmoid", [gate], [f"{prefix}/sigmoid"], f"{prefix}/sigmoid")[0]
        silu = graph.node("Mul", [gate, sigmoid], [f"{prefix}/silu"], f"{prefix}/silu")[0]
        product = graph.node("Mul", [silu, up], [f"{prefix}/swiglu"], f"{prefix}/swiglu")[0]
        delta = graph.linear(product, layer["w_down"], f"{prefix}/w_down")
    gain = graph.constant("final_norm.weight", weights.final_norm.numpy())
    h = graph.node("SkipSimplifiedLayerNormalization", [delta, residual, gain], ["/final_norm"], "/final_norm",
                   domain=MICROSOFT, epsilon=epsilon)[0]
    first_kept = graph.node("Neg", ["logits_to_keep"], ["/first_kept"], "/first_kept")[0]
    h = graph.node("Slice", [h, first_kept, graph.constant("/slice_end", np.array([np.iinfo(np.int64).max])),
                             graph.constant("/slice_axis", np.array([1]))], ["/kept"], "/kept")[0]
    graph.linear(h, weights.output, "/output")
    graph.nodes[-1].output[0] = "logits"

    def cache_shape(axis: str) -> list:
        return [1, config.n_kv_heads, axis, head_dim]

    inputs = [helper.make_tensor_value_info("input_ids", TensorProto.INT64, [1, "tokens"]),
              helper.make_tensor_value_info("past_sequence_length", TensorProto.INT64, [1]),
              helper.make_tensor_value_info("logits_to_keep", TensorProto.INT64, [1])]
    inputs += [helper.make_tensor_value_info(name, TensorProto.FLOAT, cache_shape("capacity"))
               for name in cache_names(config.n_layers, "past")]
    outputs = [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, "kept", config.vocab_size])]
    outputs += [helper.make_tensor_value_info(name, TensorProto.FLOAT, cache_shape("present"))
                for name in cache_names(config.n_layers, "present")]
    model = helper.make_model(helper.make_graph(graph.nodes, "llama", inputs, outputs, graph.initializers),
                              opset_imports=[helper.make_opsetid("", OPSET), helper.make_opsetid(MICROSOFT, 1)])
    model.ir_version = 8
    return model


def export_onnx(weights: LlamaWeights, path: Path, metadata: dict | None = None) -> Path:
    """Write the model to `path` (float32) with the config and `metadata` in its metadata_props."""
    model = build_graph(weights)
    write_metadata(model, weights.config, metadata or {})
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path


def write_metadata(model: onnx.ModelProto, config: LlamaConfig, metadata: dict) -> None:
    del model.metadata_props[:]
    for key, value in {"format": MODEL_FORMAT, "llama_config": dataclasses.asdict(config), **metadata}.items():
        model.metadata_props.add(key=key, value=value if isinstance(value, str) else json.dumps(value))
