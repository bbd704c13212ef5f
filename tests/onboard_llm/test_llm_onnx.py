"""ONNX export with the explicit KV cache and the built variants, on the real tiny model in real
onnxruntime sessions: the known story from BOS, prefill and decode logits against torch,
cancellation and the context bound, the exact Q4_1 repack, and build_variants' cache."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from onboard_llm.export import export_onnx
from onboard_llm.loaders import load_llama2c, load_model
from onboard_llm.model import LlamaModel
from onboard_llm.runtime import OnnxLlm
from onboard_llm.variants import VARIANTS, build_variants, cache_folder, load_manifest, repack_gguf_q4, smooth_for_int8
from perception.model_files import ModelFileError

sys.path.insert(0, str(Path(__file__).parent))
from test_llm_model import KNOWN_TEXT, TINY_MODEL, TINY_TOKENIZER, write_tiny_gguf  # noqa: E402


@pytest.fixture(scope="module")
def tiny():
    return load_llama2c(TINY_MODEL, TINY_TOKENIZER)


@pytest.fixture(scope="module")
def tiny_onnx(tiny, tmp_path_factory) -> Path:
    return export_onnx(tiny[0], tmp_path_factory.mktemp("onnx") / "tiny.onnx")


def test_smoothing_for_int8_moves_activation_ranges_into_the_weights_without_changing_the_model(tiny):
    weights, tokenizer = tiny
    ids = [tokenizer.bos_id] + tokenizer.encode("Once upon a time, there was a little girl named Lily.")
    smoothed = smooth_for_int8(weights, [ids])
    assert not torch.allclose(smoothed.layers[0]["attn_norm"], weights.layers[0]["attn_norm"])
    assert not torch.allclose(smoothed.layers[0]["w_up"], weights.layers[0]["w_up"])
    with torch.no_grad():
        original = LlamaModel(weights)(torch.tensor([ids]), *LlamaModel(weights).empty_cache())[0]
        after = LlamaModel(smoothed)(torch.tensor([ids]), *LlamaModel(smoothed).empty_cache())[0]
    assert torch.allclose(original, after, atol=1e-4)


def test_onnx_greedy_decoding_from_bos_reproduces_the_known_story(tiny, tiny_onnx):
    _, tokenizer = tiny
    llm = OnnxLlm(tiny_onnx, threads=1)
    seen = []
    generation = llm.generate([tokenizer.bos_id], 50, tokenizer.stop_ids, on_token=lambda g: seen.append(len(g.tokens)))
    assert tokenizer.decode(generation.tokens).startswith(KNOWN_TEXT)
    assert seen == list(range(1, 51))
    stats = generation.stats
    assert stats.generated_tokens == 50 and stats.time_to_first_token > 0 and stats.time_per_output_token > 0


def test_prefill_and_decode_logits_match_torch(tiny, tiny_onnx):
    weights, tokenizer = tiny
    model = LlamaModel(weights).eval()
    llm = OnnxLlm(tiny_onnx, threads=1)
    ids = [tokenizer.bos_id] + tokenizer.encode("The cat sat on the mat and looked at the bird")
    with torch.no_grad():
        reference, *cache = model(torch.tensor([ids]), *model.empty_cache())
        reference_step, *_ = model(torch.tensor([[42]]), *cache)
    cache = llm.new_cache(len(ids) + 1)
    logits = llm.forward(ids, cache)
    step = llm.forward([42], cache)
    assert np.abs(logits - reference[0].numpy()).max() < 1e-4
    assert np.abs(step - reference_step[0].numpy()).max() < 1e-4
    assert cache.length == len(ids) + 1


def test_the_cache_is_filled_in_place_and_refuses_more_than_it_holds(tiny, tiny_onnx):
    _, tokenizer = tiny
    llm = OnnxLlm(tiny_onnx, threads=1)
    ids = [tokenizer.bos_id] + tokenizer.encode("Once upon a time, there was a little girl named Lily.")
    whole = llm.prefill_logits(ids)
    assert whole.shape == (len(ids), llm.config.vocab_size)
    # a reused cache: what is left beyond its length from a longer sequence is masked, not read
    cache = llm.new_cache(len(ids) + 8)
    llm.forward([99] * (len(ids) + 8), cache)
    cache.length = 0
    stepped = [llm.forward(ids[:4], cache, last_only=True)] + [llm.forward([token], cache, last_only=True)
                                                              for token in ids[4:]]
    assert all(step.shape == (1, llm.config.vocab_size) for step in stepped)
    assert np.abs(np.concatenate(stepped) - whole[3:]).max() < 1e-4
    with pytest.raises(ValueError, match=f"{len(ids)} cached \\+ 9 new tokens exceed the cache of {len(ids) + 8}"):
        llm.forward([1] * 9, cache)
    with pytest.raises(ValueError, match="belongs to another session"):
        OnnxLlm(tiny_onnx, threads=1).forward([1], cache)


def test_generation_stops_when_cancelled_and_refuses_more_than_the_context(tiny, tiny_onnx):
    _, tokenizer = tiny
    llm = OnnxLlm(tiny_onnx, threads=1)
    generation = llm.generate([tokenizer.bos_id], 100, cancelled=lambda: True)
    assert generation.stats.cancelled and len(generation.tokens) == 1
    with pytest.raises(ValueError, match="exceed the context of 512"):
        llm.generate([1] * 500, 20)


def test_a_file_that_is_not_an_export_is_refused(tmp_path):
    with pytest.raises(ModelFileError, match="not found; build it with build-llm-variants"):
        OnnxLlm(tmp_path / "missing.onnx", 1)
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"\x00garbage" * 100)
    with pytest.raises(ModelFileError, match="onnxruntime cannot load it"):
        OnnxLlm(garbage, 1)


def test_gguf_q4_1_weights_are_repacked_exactly(tiny, tmp_path):
    path = tmp_path / "tiny_q4_1.gguf"
    write_tiny_gguf(tiny[0], path, quantize_q4_1=True)
    weights, _ = load_model(path)
    fp32 = export_onnx(weights, tmp_path / "fp32.onnx")
    model = onnx.load(str(fp32))
    # qkv and gate-up of 5 blocks have rows of whole 32-blocks (qkv with zero rows for the heads padded from
    # 8 to 16 features); o's inputs are padded per head, so its blocks do not carry over; w_down (172 inputs)
    # stays F32.
    assert repack_gguf_q4(model, path, list(range(5)), accuracy_level=1) == 10
    onnx.save(model, str(tmp_path / "repacked.onnx"))
    ids = [1, 403, 407, 261, 378, 300]
    reference, repacked = OnnxLlm(fp32, 1), OnnxLlm(tmp_path / "repacked.onnx", 1)
    expected, actual = reference.prefill_logits(ids), repacked.prefill_logits(ids)
    assert np.abs(actual - expected).max() < 1e-3


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    cache = tmp_path_factory.mktemp("cache")
    manifest = build_variants(TINY_MODEL, cache_folder(TINY_MODEL, cache), TINY_TOKENIZER, window=64,
                              evaluation_windows=3, calibration_windows=2, threads=1, log=lambda line: None)
    return cache, manifest


def test_build_variants_writes_every_variant_with_measurements_and_a_card(built):
    cache, manifest = built
    assert set(manifest["variants"]) == set(VARIANTS)
    assert manifest["logit_max_abs_diff"]["prefill"] < 1e-4 and manifest["logit_max_abs_diff"]["decode"] < 1e-4
    pruned = manifest["variants"]["int4_pruned"]
    assert pruned["layers"] == 4 and len(pruned["kept_layers"]) == 4  # round(0.2 × 5) blocks dropped
    dropped = (set(range(5)) - set(pruned["kept_layers"])).pop()
    assert manifest["block_importance"][dropped] == min(manifest["block_importance"])
    assert manifest["variants"]["int4"]["accuracy_level"] in (1, 4)
    for entry in manifest["variants"].values():
        assert np.isfinite(entry["perplexity"]) and entry["perplexity"] > 1
    _, files = load_manifest(TINY_MODEL, cache)
    card = (cache_folder(TINY_MODEL, cache) / "MODEL_CARD.md").read_text()
    assert all(f"| {name} |" in card for name in VARIANTS)
    int4 = OnnxLlm(files["int4"], 1)
    assert {node.op_type for node in onnx.load(str(files["int4"])).graph.node} >= {"MatMulNBits"}
    assert int4.config.n_layers == 5 and OnnxLlm(files["int4_pruned"], 1).config.n_layers == 4


def test_load_manifest_says_how_to_build_missing_or_stale_variants(built, tmp_path):
    cache, _ = built
    with pytest.raises(ModelFileError, match="no variants built .* build them with: build-llm-variants --model"):
        load_manifest(TINY_MODEL, tmp_path)
    other = tmp_path / "stories260K.bin"
    other.write_bytes(TINY_MODEL.read_bytes()[:-4] + b"\x00\x00\x00\x00")
    with pytest.raises(ModelFileError, match="built from another file"):
        load_manifest(other, cache)
    manifest_path = cache_folder(TINY_MODEL, cache) / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    (cache_folder(TINY_MODEL, cache) / manifest["variants"]["int8"]["file"]).rename(tmp_path / "moved.onnx")
    try:
        with pytest.raises(ModelFileError, match="variant int8 is missing"):
            load_manifest(TINY_MODEL, cache)
    finally:
        (tmp_path / "moved.onnx").rename(cache_folder(TINY_MODEL, cache) / manifest["variants"]["int8"]["file"])
