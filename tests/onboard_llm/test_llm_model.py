"""The Llama forward pass and the loaders on the real tiny model (llama2.c stories260K): greedy text
from BOS, the KV cache against a full recomputation, Hugging Face and GGUF files of the same weights
giving the same logits, tokenizers, and clear errors for broken files."""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import gguf
import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from onboard_llm.loaders import (GGUF_LAYER_TENSORS, HF_LAYER_TENSORS, default_model_path, load_gguf, load_huggingface,
                                 load_llama2c, load_model, load_tokenizer)
from onboard_llm.model import LlamaModel
from perception.model_files import ModelFileError

REPO = Path(__file__).resolve().parents[2]
TINY_MODEL = REPO / "data/llm/stories260K.bin"
TINY_TOKENIZER = REPO / "data/llm/tok512.bin"
KNOWN_TEXT = ("Once upon a time, there was a little girl named Lily. She loved to play outside in the park. "
              "One day, she saw a big, red ball.")
"""The start of stories260K's greedy continuation of BOS (llama2.c's reference output)."""


@pytest.fixture(scope="module")
def tiny():
    return load_llama2c(TINY_MODEL, TINY_TOKENIZER)


def greedy(model: LlamaModel, ids: list[int], steps: int) -> list[int]:
    out, past, x = [], model.empty_cache(), torch.tensor([ids])
    with torch.no_grad():
        for _ in range(steps):
            logits, *past = model(x, *past)
            token = int(logits[0, -1].argmax())
            out.append(token)
            x = torch.tensor([[token]])
    return out


def test_greedy_decoding_from_bos_reproduces_the_known_story(tiny):
    weights, tokenizer = tiny
    assert (weights.config.dim, weights.config.n_layers, weights.config.n_heads, weights.config.n_kv_heads) == (64, 5, 8, 4)
    text = tokenizer.decode(greedy(LlamaModel(weights).eval(), [tokenizer.bos_id], 50))
    assert text.startswith(KNOWN_TEXT)


def test_cached_decoding_equals_recomputing_the_whole_sequence(tiny):
    weights, tokenizer = tiny
    model = LlamaModel(weights).eval()
    ids = [tokenizer.bos_id] + tokenizer.encode("Tom had a red kite")
    with torch.no_grad():
        full, *_ = model(torch.tensor([ids]), *model.empty_cache())
        _, *past = model(torch.tensor([ids[:-2]]), *model.empty_cache())
        step, *past = model(torch.tensor([ids[-2:-1]]), *past)
        last, *_ = model(torch.tensor([ids[-1:]]), *past)
    assert torch.allclose(step[0, 0], full[0, -2], atol=1e-5)
    assert torch.allclose(last[0, 0], full[0, -1], atol=1e-5)


def test_llama2c_tokenizer_round_trips_text(tiny):
    _, tokenizer = tiny
    ids = tokenizer.encode("Lily saw a big dog.")
    assert len(ids) < len("Lily saw a big dog.")  # merges happened
    assert tokenizer.decode(ids) == "Lily saw a big dog."


def hf_rope_layout(weight: torch.Tensor, heads: int) -> torch.Tensor:
    """Meta's adjacent-pair rows into Hugging Face's rotate-half rows (transformers' conversion script)."""
    rows, columns = weight.shape
    return weight.reshape(heads, rows // heads // 2, 2, columns).transpose(1, 2).reshape(rows, columns)


def test_a_hugging_face_folder_of_the_same_weights_gives_the_same_logits(tiny, tmp_path):
    weights, _ = tiny
    config = weights.config
    tensors = {"model.embed_tokens.weight": weights.embedding, "model.norm.weight": weights.final_norm}
    for index, layer in enumerate(weights.layers):
        for ours, theirs in HF_LAYER_TENSORS.items():
            value = layer[ours]
            if ours in ("wq", "wk"):
                value = hf_rope_layout(value, config.n_heads if ours == "wq" else config.n_kv_heads)
            tensors[f"model.layers.{index}.{theirs}.weight"] = value.contiguous()
    save_file({name: value.clone() for name, value in tensors.items()}, tmp_path / "model.safetensors")
    (tmp_path / "config.json").write_text(json.dumps({
        "architectures": ["LlamaForCausalLM"], "hidden_size": config.dim, "intermediate_size": config.hidden_dim,
        "num_hidden_layers": config.n_layers, "num_attention_heads": config.n_heads,
        "num_key_value_heads": config.n_kv_heads, "vocab_size": config.vocab_size,
        "max_position_embeddings": config.context_length, "rope_theta": 10000.0, "rms_norm_eps": 1e-5}))
    write_byte_level_tokenizer(tmp_path)
    loaded, tokenizer = load_huggingface(tmp_path)
    ids = torch.tensor([[1, 403, 407, 261, 378]])
    reference, loaded_model = LlamaModel(weights).eval(), LlamaModel(loaded).eval()
    with torch.no_grad():
        assert torch.allclose(reference(ids, *reference.empty_cache())[0], loaded_model(ids, *loaded_model.empty_cache())[0],
                              atol=1e-5)
    assert tokenizer.decode(tokenizer.encode("hi there")) == "hi there"
    assert tokenizer.eos_id == 2


def write_byte_level_tokenizer(folder: Path) -> None:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers

    vocab = {"<unk>": 0, "<s>": 1, "</s>": 2}
    for character in pre_tokenizers.ByteLevel.alphabet():
        vocab.setdefault(character, len(vocab))
    backend = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    backend.save(str(folder / "tokenizer.json"))
    (folder / "tokenizer_config.json").write_text(json.dumps({"bos_token": "<s>", "eos_token": "</s>"}))


def write_tiny_gguf(weights, path: Path, quantize_q4_1: bool) -> None:
    """The tiny weights as a GGUF llama file with a small byte-level BPE tokenizer; matrices whose rows
    are whole 32-blocks stored Q4_1 when asked (the others stay F32, as in mixed real files)."""
    from tokenizers import pre_tokenizers

    config = weights.config
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_block_count(config.n_layers)
    writer.add_context_length(config.context_length)
    writer.add_embedding_length(config.dim)
    writer.add_feed_forward_length(config.hidden_dim)
    writer.add_head_count(config.n_heads)
    writer.add_head_count_kv(config.n_kv_heads)
    writer.add_rope_freq_base(10000.0)
    writer.add_layer_norm_rms_eps(1e-5)
    tokens = ["<unk>", "<|im_start|>", "<|im_end|>"] + pre_tokenizers.ByteLevel.alphabet()
    tokens += [f"<pad{index}>" for index in range(config.vocab_size - len(tokens))]
    writer.add_tokenizer_model("gpt2")
    writer.add_token_list(tokens)
    writer.add_token_merges([])
    writer.add_token_types([3, 3, 3] + [1] * (len(tokens) - 3))
    writer.add_bos_token_id(1)
    writer.add_eos_token_id(2)
    writer.add_chat_template("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
                             "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")

    def add(name: str, value: torch.Tensor) -> None:
        array = value.numpy().astype(np.float32)
        if quantize_q4_1 and array.ndim == 2 and array.shape[1] % 32 == 0 and name != "token_embd.weight":
            writer.add_tensor(name, gguf.quants.quantize(array, gguf.GGMLQuantizationType.Q4_1),
                              raw_dtype=gguf.GGMLQuantizationType.Q4_1)
        else:
            writer.add_tensor(name, array)

    add("token_embd.weight", weights.embedding)
    add("output_norm.weight", weights.final_norm)
    for index, layer in enumerate(weights.layers):
        for ours, theirs in GGUF_LAYER_TENSORS.items():
            add(f"blk.{index}.{theirs}.weight", layer[ours])
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def test_a_gguf_file_of_the_same_weights_gives_the_same_logits_and_its_tokenizer(tiny, tmp_path):
    weights, _ = tiny
    path = tmp_path / "tiny.gguf"
    write_tiny_gguf(weights, path, quantize_q4_1=False)
    loaded, tokenizer = load_model(path)
    assert dataclasses.replace(loaded.config, norm_eps=1e-5) == weights.config  # GGUF stores eps as float32
    ids = torch.tensor([[1, 403, 407, 261]])
    a, b = LlamaModel(weights).eval(), LlamaModel(loaded).eval()
    with torch.no_grad():
        assert torch.allclose(a(ids, *a.empty_cache())[0], b(ids, *b.empty_cache())[0], atol=1e-6)
    prompt = tokenizer.chat_prompt([{"role": "user", "content": "Hi"}])
    assert prompt == "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
    ids = tokenizer.encode(prompt)
    assert ids[0] == 1 and ids.count(2) == 1  # control tokens stay whole
    assert tokenizer.decode(tokenizer.encode("Hi there")) == "Hi there"
    assert tokenizer.stop_ids == {2}
    assert load_tokenizer(path).encode(prompt) == ids


def test_broken_model_files_fail_with_the_file_and_the_fix(tmp_path):
    truncated = tmp_path / "stories.bin"
    truncated.write_bytes(TINY_MODEL.read_bytes()[:5000])
    with pytest.raises(ModelFileError, match="truncated or not a llama2.c checkpoint"):
        load_llama2c(truncated, TINY_TOKENIZER)
    with pytest.raises(ModelFileError, match="not found"):
        load_model(tmp_path / "missing.gguf")
    garbage = tmp_path / "garbage.gguf"
    garbage.write_bytes(b"not a gguf file at all" * 10)
    with pytest.raises(ModelFileError, match="garbage.gguf: not a readable GGUF file"):
        load_gguf(garbage)
    with pytest.raises(ModelFileError, match="unknown model kind"):
        load_model(tmp_path / "model.pt")


@pytest.mark.slow
def test_the_default_smollm2_gguf_answers_a_question_in_torch():
    weights, tokenizer = load_model(default_model_path())
    config = weights.config
    assert (config.n_layers, config.dim, config.n_heads, config.n_kv_heads, config.rope_theta) == (30, 576, 9, 3, 100000.0)
    prompt = tokenizer.chat_prompt([{"role": "user", "content": "What is the capital of France?"}])
    assert prompt.startswith("<|im_start|>system\nYou are a helpful AI assistant named SmolLM")
    ids = tokenizer.encode(prompt)
    assert ids[:3] == [1, 9690, 198]  # <|im_start|>, "system", "\n": control tokens whole, byte-level BPE
    model = LlamaModel(weights).eval()
    answer = []
    for token in greedy(model, ids, 12):
        if token in tokenizer.stop_ids:
            break
        answer.append(token)
    assert "Paris" in tokenizer.decode(answer)
