"""The Llama forward pass in torch with an explicit key-value cache, shaped for ONNX export.

One module serves prefill and decode: it takes the new token ids and the cache of the tokens before
them (length 0 for a prefill) and returns the logits of the new tokens and the grown cache. The
position of the first new token is the cache's length, so a decode step needs no other input.
RoPE rotates adjacent pairs of each head's features (Meta's layout, which GGUF and llama2.c files
use; Hugging Face checkpoints are permuted into it when loaded).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class LlamaConfig:
    """The shape of a Llama-architecture model."""

    dim: int
    """Width of the residual stream."""
    hidden_dim: int
    """Width of the SwiGLU feed-forward layer."""
    n_layers: int
    """Transformer blocks."""
    n_heads: int
    """Query heads."""
    n_kv_heads: int
    """Key/value heads (grouped-query attention when fewer than n_heads)."""
    vocab_size: int
    """Tokens in the vocabulary."""
    context_length: int
    """Most positions the model was trained for."""
    rope_theta: float = 10000.0
    """RoPE base frequency."""
    norm_eps: float = 1e-5
    """RMSNorm epsilon."""

    @property
    def head_dim(self) -> int:
        return self.dim // self.n_heads

    def __post_init__(self) -> None:
        if self.dim % self.n_heads or self.n_heads % self.n_kv_heads or self.head_dim % 2:
            raise ValueError(f"inconsistent heads: dim {self.dim}, {self.n_heads} heads, {self.n_kv_heads} KV heads")


LAYER_WEIGHTS = ("attn_norm", "wq", "wk", "wv", "wo", "ffn_norm", "w_gate", "w_up", "w_down")
"""Per-block weight names; matrices are [out, in] like nn.Linear."""


@dataclass
class LlamaWeights:
    """Every weight of a model, float32: `embedding` [vocab, dim], `layers[i][name]` for LAYER_WEIGHTS,
    `final_norm` [dim] and `output` [vocab, dim] (the embedding itself for tied models)."""

    config: LlamaConfig
    embedding: torch.Tensor
    layers: list[dict[str, torch.Tensor]]
    final_norm: torch.Tensor
    output: torch.Tensor

    def keep_layers(self, kept: list[int]) -> "LlamaWeights":
        """The model with only the given blocks, in order (depth pruning)."""
        return LlamaWeights(dataclasses.replace(self.config, n_layers=len(kept)), self.embedding,
                            [self.layers[index] for index in kept], self.final_norm, self.output)


class RMSNorm(nn.Module):
    def __init__(self, weight: torch.Tensor, eps: float) -> None:
        super().__init__()
        self.weight = nn.Parameter(weight.clone(), requires_grad=False)
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


def _linear(weight: torch.Tensor) -> nn.Linear:
    layer = nn.Linear(weight.shape[1], weight.shape[0], bias=False)
    layer.weight = nn.Parameter(weight.clone(), requires_grad=False)
    return layer


def rope_angles(config: LlamaConfig) -> torch.Tensor:
    """RoPE's angle of each position and feature pair, float64 [context_length, head_dim / 2]."""
    inverse = 1.0 / config.rope_theta ** (torch.arange(0, config.head_dim, 2).double() / config.head_dim)
    return torch.outer(torch.arange(config.context_length).double(), inverse)


def pair_rotation(head_dim: int) -> torch.Tensor:
    """R with (x @ R)[2i] = −x[2i+1] and (x @ R)[2i+1] = x[2i]: RoPE's quarter turn of each adjacent pair
    as one small MatMul."""
    rotation = torch.zeros(head_dim, head_dim)
    index = torch.arange(0, head_dim, 2)
    rotation[index + 1, index] = -1.0
    rotation[index, index + 1] = 1.0
    return rotation


def rotate_pairs(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, rotation: torch.Tensor) -> torch.Tensor:
    """RoPE on adjacent feature pairs; x [..., tokens, head_dim], cos/sin [tokens, head_dim] (each pair's
    angle repeated for both of its features)."""
    return x * cos + (x @ rotation) * sin


class Block(nn.Module):
    def __init__(self, config: LlamaConfig, weights: dict[str, torch.Tensor]) -> None:
        super().__init__()
        self.config = config
        self.attn_norm = RMSNorm(weights["attn_norm"], config.norm_eps)
        # Projections of the same input run as one MatMul (q, k, v; gate, up): fewer, larger kernels per step.
        self.wqkv = _linear(torch.cat([weights["wq"], weights["wk"], weights["wv"]]))
        self.wo = _linear(weights["wo"])
        self.ffn_norm = RMSNorm(weights["ffn_norm"], config.norm_eps)
        self.w_gate_up = _linear(torch.cat([weights["w_gate"], weights["w_up"]]))
        self.w_down = _linear(weights["w_down"])

    def forward(self, x, cos, sin, rotation, mask, past_key, past_value):
        config = self.config
        batch, tokens, _ = x.shape
        group = config.n_heads // config.n_kv_heads
        h = self.attn_norm(x)
        # Queries as [batch, kv_heads, group, tokens, head_dim]: each group attends to its one KV head by
        # broadcasting, without copying the cache group times.
        kv_dim = config.n_kv_heads * config.head_dim
        q, k, v = self.wqkv(h).split([config.dim, kv_dim, kv_dim], dim=-1)
        q = q.reshape(batch, tokens, config.n_kv_heads, group, config.head_dim).permute(0, 2, 3, 1, 4)
        k = k.reshape(batch, tokens, config.n_kv_heads, config.head_dim).transpose(1, 2)
        v = v.reshape(batch, tokens, config.n_kv_heads, config.head_dim).transpose(1, 2)
        q, k = rotate_pairs(q, cos, sin, rotation), rotate_pairs(k, cos, sin, rotation)
        key = torch.cat((past_key, k), dim=2)
        value = torch.cat((past_value, v), dim=2)
        scores = q @ key.unsqueeze(2).transpose(3, 4) * config.head_dim ** -0.5
        attention = torch.softmax(scores + mask, dim=-1) @ value.unsqueeze(2)
        x = x + self.wo(attention.permute(0, 3, 1, 2, 4).reshape(batch, tokens, config.dim))
        h = self.ffn_norm(x)
        gate, up = self.w_gate_up(h).split([config.hidden_dim, config.hidden_dim], dim=-1)
        x = x + self.w_down(nn.functional.silu(gate) * up)
        return x, key, value


class LlamaModel(nn.Module):
    """forward(input_ids [1, T], past_key_0, past_value_0, …) → (logits [1, T, vocab], present_key_0, …);
    caches are [1, n_kv_heads, positions, head_dim]."""

    def __init__(self, weights: LlamaWeights) -> None:
        super().__init__()
        config = weights.config
        self.config = config
        self.embedding = nn.Embedding.from_pretrained(weights.embedding.clone(), freeze=True)
        self.blocks = nn.ModuleList(Block(config, layer) for layer in weights.layers)
        self.final_norm = RMSNorm(weights.final_norm, config.norm_eps)
        self.output = _linear(weights.output)
        angles = rope_angles(config)
        self.register_buffer("cos", angles.cos().float().repeat_interleave(2, dim=1), persistent=False)
        self.register_buffer("sin", angles.sin().float().repeat_interleave(2, dim=1), persistent=False)
        self.register_buffer("rotation", pair_rotation(config.head_dim), persistent=False)

    def empty_cache(self) -> list[torch.Tensor]:
        shape = (1, self.config.n_kv_heads, 0, self.config.head_dim)
        return [torch.zeros(shape) for _ in range(2 * self.config.n_layers)]

    def forward(self, input_ids: torch.Tensor, *past: torch.Tensor, hidden_states: list | None = None):
        tokens = input_ids.shape[1]
        start = past[0].shape[2]
        positions = torch.arange(tokens) + start
        cos, sin = self.cos[positions], self.sin[positions]
        keys = torch.arange(tokens + start)
        mask = torch.where(keys[None, :] <= positions[:, None], 0.0, torch.finfo(torch.float32).min)
        x = self.embedding(input_ids)
        presents = []
        for index, block in enumerate(self.blocks):
            if hidden_states is not None:
                hidden_states.append(x)
            x, key, value = block(x, cos, sin, self.rotation, mask, past[2 * index], past[2 * index + 1])
            presents += [key, value]
        if hidden_states is not None:
            hidden_states.append(x)
        return (self.output(self.final_norm(x)), *presents)
