"""Greedy generation with an exported model in onnxruntime, step by step, with timings.

The key-value cache (KvCache) is one preallocated onnxruntime buffer per layer's keys and values,
bound as both the past input and the present output of every step, so the graph's attention writes
the new positions in place: a decode step at 768 cached tokens took 27 ms with the cache handed
back and forth as numpy arrays and 21 ms in place (int4, 1 thread). Generation can be stopped
between any two steps (cancellation).
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


class KvCache:
    """The key-value cache of one sequence in one session: per layer a key and a value buffer
    [1, kv_heads, capacity, cache head size], the first `length` positions filled, bound as the past
    inputs and the present outputs of the session's steps (OnnxLlm.new_cache makes it)."""

    def __init__(self, session: onnxruntime.InferenceSession, names: list[str], shape: tuple[int, ...]) -> None:
        self.session = session
        self.capacity = shape[2]
        self.length = 0
        self.binding = session.io_binding()
        self.binding.bind_output("logits")  # the first output; OnnxLlm.forward rebinds it for each step's shape
        # the binding holds the buffers; they live as long as the cache does
        for name in names:
            buffer = onnxruntime.OrtValue.ortvalue_from_shape_and_type(shape, np.float32)
            self.binding.bind_ortvalue_input(name, buffer)
            self.binding.bind_ortvalue_output(name.replace("past", "present", 1), buffer)


class OnnxLlm:
    """One exported model in one onnxruntime session with a fixed thread count."""

    def __init__(self, path: str | Path, threads: int, spin: bool = False) -> None:
        """`spin`: the worker threads spin between a step's operators instead of sleeping. A decode step
        is 300–800 small operators: on idle cores int4 at 2 threads decoded 116 tok/s spinning and 73
        sleeping, but with another process busy on one of the 2 cores 39 spinning and 65 sleeping."""
        path = Path(path)
        if not path.is_file():
            raise ModelFileError(f"{path}: ONNX model not found; build it with build-llm-variants")
        try:
            self.session = onnxruntime.InferenceSession(str(path), cpu_session_options(threads, spin),
                                                        providers=["CPUExecutionProvider"])
        except Exception as error:  # onnxruntime raises its own error types for unreadable graphs
            raise ModelFileError(f"{path}: onnxruntime cannot load it ({error}); rebuild it with build-llm-variants") from None
        metadata = self.session.get_modelmeta().custom_metadata_map
        if metadata.get("format") != MODEL_FORMAT:
            raise ModelFileError(f"{path}: not an onboard_llm export (format {metadata.get('format')!r}); "
                                 f"rebuild it with build-llm-variants")
        self.path = path
        self.threads = threads
        self.spin = spin
        self.config = LlamaConfig(**json.loads(metadata["llama_config"]))
        self.metadata = metadata
        self._past_names = cache_names(self.config.n_layers, "past")

    def new_cache(self, capacity: int | None = None) -> KvCache:
        """An empty cache for up to `capacity` tokens (default: the model's context)."""
        capacity = self.config.context_length if capacity is None else capacity
        return KvCache(self.session, self._past_names,
                       (1, self.config.n_kv_heads, capacity, cache_head_dim(self.config)))

    def forward(self, input_ids: Sequence[int], cache: KvCache, last_only: bool = False) -> np.ndarray:
        """Logits [tokens, vocab] of the new tokens (of the last one only with `last_only`); their keys
        and values are appended to `cache`."""
        ids = np.asarray(input_ids, dtype=np.int64).reshape(1, -1)
        if cache.session is not self.session:
            raise ValueError("the cache belongs to another session")
        if cache.length + ids.shape[1] > cache.capacity:
            raise ValueError(f"{cache.length} cached + {ids.shape[1]} new tokens exceed the cache of {cache.capacity}")
        binding = cache.binding
        # the feeds stay referenced until the run is over (a binding may read the arrays' memory then)
        past_length = np.array([cache.length], dtype=np.int64)
        kept = np.array([1 if last_only else ids.shape[1]], dtype=np.int64)
        binding.bind_cpu_input("input_ids", ids)
        binding.bind_cpu_input("past_sequence_length", past_length)
        binding.bind_cpu_input("logits_to_keep", kept)
        binding.bind_output("logits")
        self.session.run_with_iobinding(binding)
        cache.length += ids.shape[1]
        return binding.get_outputs()[0].numpy()[0]

    def prefill_logits(self, input_ids: Sequence[int]) -> np.ndarray:
        """Logits [tokens, vocab] of a prefill of `input_ids` into an empty cache."""
        return self.forward(input_ids, self.new_cache(len(input_ids)))

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
        cache = self.new_cache(len(prompt_ids) + max_new_tokens)
        logits = self.forward(prompt_ids, cache, last_only=True)
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
            logits = self.forward([token], cache, last_only=True)
        return generation
