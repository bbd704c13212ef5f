"""Greedy generation with an exported model in onnxruntime, step by step, with timings.

The key-value cache lives in numpy between steps: each step feeds the previous step's present
tensors back as past. Generation can be stopped between any two steps (cancellation).
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import onnxruntime

from onboard_llm.export import MODEL_FORMAT, cache_head_dim, cache_names
from onboard_llm.model import LlamaConfig
from perception.model_files import ModelFileError, cpu_session_options


@dataclass
class GenerationStats:
    """How one generation went, wall seconds."""

    prompt_tokens: int = 0
    generated_tokens: int = 0
    time_to_first_token: float = 0.0
    """From the start of the prefill to the first new token."""
    decode_time: float = 0.0
    """The steps after the first token."""
    cancelled: bool = False

    @property
    def time_per_output_token(self) -> float:
        """Mean seconds per token after the first (0 for fewer than two tokens)."""
        return self.decode_time / (self.generated_tokens - 1) if self.generated_tokens > 1 else 0.0

    @property
    def total_time(self) -> float:
        return self.time_to_first_token + self.decode_time


@dataclass
class Generation:
    """The tokens generated so far and their statistics (updated as generation runs)."""

    tokens: list[int] = field(default_factory=list)
    stats: GenerationStats = field(default_factory=GenerationStats)


class OnnxLlm:
    """One exported model in one onnxruntime session with a fixed thread count."""

    def __init__(self, path: str | Path, threads: int) -> None:
        path = Path(path)
        if not path.is_file():
            raise ModelFileError(f"{path}: ONNX model not found; build it with build-llm-variants")
        try:
            self.session = onnxruntime.InferenceSession(str(path), cpu_session_options(threads),
                                                        providers=["CPUExecutionProvider"])
        except Exception as error:  # onnxruntime raises its own error types for unreadable graphs
            raise ModelFileError(f"{path}: onnxruntime cannot load it ({error}); rebuild it with build-llm-variants") from None
        metadata = self.session.get_modelmeta().custom_metadata_map
        if metadata.get("format") != MODEL_FORMAT:
            raise ModelFileError(f"{path}: not an onboard_llm export (format {metadata.get('format')!r}); "
                                 f"rebuild it with build-llm-variants")
        self.path = path
        self.threads = threads
        self.config = LlamaConfig(**json.loads(metadata["llama_config"]))
        self.metadata = metadata
        self._past_names = cache_names(self.config.n_layers, "past")

    def empty_cache(self) -> list[np.ndarray]:
        shape = (1, self.config.n_kv_heads, 0, cache_head_dim(self.config))
        return [np.zeros(shape, dtype=np.float32) for _ in self._past_names]

    def forward(self, input_ids: Sequence[int], past: list[np.ndarray]) -> tuple[np.ndarray, list[np.ndarray]]:
        """Logits [tokens, vocab] of the new tokens and the grown cache."""
        feeds = {"input_ids": np.asarray(input_ids, dtype=np.int64).reshape(1, -1)}
        feeds.update(zip(self._past_names, past))
        logits, *present = self.session.run(None, feeds)
        return logits[0], present

    def generate(self, prompt_ids: Sequence[int], max_new_tokens: int, stop_ids: frozenset[int] = frozenset(),
                 cancelled: Callable[[], bool] = lambda: False,
                 on_token: Callable[[Generation], None] | None = None) -> Generation:
        """Greedy decoding; `on_token(generation)` after every new token. A stop token ends it without
        being added; `cancelled()` is checked before every decode step."""
        if len(prompt_ids) + max_new_tokens > self.config.context_length:
            raise ValueError(f"{len(prompt_ids)} prompt + {max_new_tokens} new tokens exceed the context of "
                             f"{self.config.context_length}")
        generation = Generation(stats=GenerationStats(prompt_tokens=len(prompt_ids)))
        stats = generation.stats
        start = time.perf_counter()
        logits, past = self.forward(prompt_ids, self.empty_cache())
        for step in range(max_new_tokens):
            token = int(np.argmax(logits[-1]))
            now = time.perf_counter()
            if step == 0:
                stats.time_to_first_token = now - start
            else:
                stats.decode_time = now - start - stats.time_to_first_token
            if token in stop_ids:
                break
            generation.tokens.append(token)
            stats.generated_tokens += 1
            if on_token is not None:
                on_token(generation)
            if step + 1 == max_new_tokens:
                break
            if cancelled():
                stats.cancelled = True
                break
            logits, past = self.forward([token], past)
        return generation
