"""Offline English text for calibration and perplexity, split so evaluation never sees calibration
text, and the measurements made on it: perplexity and the block-importance score of depth pruning.

The text is the documentation that ships with Python (`pydoc_data.topics`, the help() topics): real
English prose with some code, available on every machine without a download.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import torch

from onboard_llm.model import LlamaModel, LlamaWeights
from onboard_llm.tokenizer import Tokenizer

CALIBRATION_EVERY = 4
"""Every 4th help topic (sorted by name) is calibration text, the other three quarters evaluation text."""


@dataclass(frozen=True)
class EnglishText:
    calibration: str
    """Text the variants may be fitted to (block importance)."""
    evaluation: str
    """Held-out text for perplexity."""


def english_text() -> EnglishText:
    from pydoc_data.topics import topics

    names = sorted(topics)
    calibration = [topics[name] for index, name in enumerate(names) if index % CALIBRATION_EVERY == 0]
    evaluation = [topics[name] for index, name in enumerate(names) if index % CALIBRATION_EVERY != 0]
    return EnglishText("\n\n".join(calibration), "\n\n".join(evaluation))


def windows(tokenizer: Tokenizer, text: str, window: int, count: int) -> list[list[int]]:
    """Up to `count` consecutive, non-overlapping windows of `window` tokens from the start of the
    text. Paragraphs are encoded one at a time, only as far as the windows need (llama2.c's encoder is
    quadratic in the length it is given)."""
    ids: list[int] = []
    for paragraph in text.split("\n\n"):
        if len(ids) >= window * count:
            break
        ids += tokenizer.encode(paragraph + "\n\n")
    return [ids[start:start + window] for start in range(0, len(ids) - window + 1, window)][:count]


def perplexity(logits_of: Callable[[list[int]], np.ndarray], token_windows: list[list[int]]) -> float:
    """exp(mean negative log-likelihood of each next token) over the windows; `logits_of(ids)` gives
    [tokens, vocab] logits of a prefill of `ids` (every window starts with an empty cache)."""
    total, count = 0.0, 0
    for ids in token_windows:
        logits = torch.from_numpy(np.asarray(logits_of(ids), dtype=np.float32))
        log_probs = torch.log_softmax(logits[:-1].double(), dim=-1)
        total -= float(log_probs.gather(1, torch.tensor(ids[1:])[:, None]).sum())
        count += len(ids) - 1
    return math.exp(total / count)


def block_importance(weights: LlamaWeights, token_windows: list[list[int]]) -> list[float]:
    """Per block, 1 − the mean cosine similarity of its input and output hidden states (ShortGPT's
    Block Influence): a block that barely changes the residual stream matters little."""
    model = LlamaModel(weights).eval()
    scores = torch.zeros(weights.config.n_layers, dtype=torch.float64)
    tokens = 0
    with torch.no_grad():
        for ids in token_windows:
            hidden: list[torch.Tensor] = []
            model(torch.tensor([ids]), *model.empty_cache(), hidden_states=hidden)
            for index in range(weights.config.n_layers):
                similarity = torch.cosine_similarity(hidden[index][0], hidden[index + 1][0], dim=-1)
                scores[index] += float((1.0 - similarity.double()).sum())
            tokens += len(ids)
    return (scores / tokens).tolist()


def layers_to_keep(importance: Sequence[float], drop: int) -> list[int]:
    """The block indices kept when the `drop` least important blocks go, in order."""
    dropped = set(np.argsort(np.asarray(importance), kind="stable")[:drop].tolist())
    return [index for index in range(len(importance)) if index not in dropped]
