"""The runtime the node uses: the built variants of one model in onnxruntime sessions (one per
variant × thread count), its tokenizer and chat format, the energy meter and the controller.

`OnboardLlm.answer(messages, target, …)` renders the chat prompt, fits it into the context, lets
the controller choose the operating point, generates greedily (reporting partial text and honouring
cancellation between tokens), meters the energy and feeds the measured latencies back.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

from onboard_llm.control import Controller, Decision, LatencyTarget, Profile, Request, profile_operating_points
from onboard_llm.energy import EnergyMeter
from onboard_llm.loaders import load_tokenizer
from onboard_llm.quality import english_text, windows
from onboard_llm.runtime import GenerationStats, OnnxLlm
from onboard_llm.variants import DEFAULT_CACHE, MANIFEST_FILE, cache_folder, load_manifest
from perception.model_files import ModelFileError

PROFILE_FILE = "profile.json"
"""The offline profile, in the model's cache folder, reused while its points match the request and
it is newer than the variants' manifest (a rebuild re-profiles)."""


def fit_prompt(ids: Sequence[int], limit: int) -> tuple[list[int], int]:
    """At most `limit` tokens: the first quarter (the chat header and system prompt) and the newest
    rest (the end of the question and the assistant's turn), so the format survives; and how many
    tokens were dropped."""
    ids = list(ids)
    if len(ids) <= limit:
        return ids, 0
    head = limit // 4
    return ids[:head] + ids[len(ids) - (limit - head):], len(ids) - limit


@dataclass
class Answer:
    text: str
    stats: GenerationStats
    decision: Decision
    joules: float
    energy_source: str
    dropped_prompt_tokens: int
    """Prompt tokens cut to fit the context (0 when it fitted)."""


class OnboardLlm:
    def __init__(self, model_path: Path, variants: Sequence[str], threads: Sequence[int],
                 cache_root: Path = DEFAULT_CACHE, context_tokens: int = 2048, max_quality_loss: float = 0.08,
                 tokenizer_path: Path | None = None, log: Callable[[str], None] = print, spin: bool = False) -> None:
        """`spin`: spinning onnxruntime threads (OnnxLlm), for cores the model has to itself."""
        manifest, files = load_manifest(model_path, cache_root)
        unknown = [name for name in variants if name not in files]
        if unknown:
            raise ModelFileError(f"{cache_folder(model_path, cache_root)}: variants {unknown} not built "
                                 f"(built: {sorted(files)})")
        self.tokenizer = load_tokenizer(model_path, tokenizer_path)
        self.models = {(name, count): OnnxLlm(files[name], count, spin) for name in variants for count in threads}
        config = next(iter(self.models.values())).config
        self.context_tokens = min(context_tokens, config.context_length)
        self.meter = EnergyMeter()
        self.profile = self._profile(cache_folder(model_path, cache_root) / PROFILE_FILE, log)
        perplexities = {name: manifest["variants"][name]["perplexity"] for name in variants}
        self.controller = Controller(self.profile, perplexities, max_quality_loss)
        self._run_lock = threading.Lock()

    def _profile(self, path: Path, log: Callable[[str], None]) -> Profile:
        if path.is_file() and path.stat().st_mtime >= (path.parent / MANIFEST_FILE).stat().st_mtime:
            profile = Profile.load(path)
            if ({point.key for point in profile.points} >= set(self.models) and profile.energy_source == self.meter.source
                    and profile.spin == next(iter(self.models.values())).spin):
                profile.points = [point for point in profile.points if point.key in self.models]
                return profile
        log(f"profiling {len(self.models)} operating points (once; saved to {path})")
        calibration = windows(self.tokenizer, english_text().calibration, 192, 1)[0]
        profile = profile_operating_points(self.models, calibration, meter=self.meter)
        profile.save(path)
        return profile

    def prompt_ids(self, messages: list[dict[str, str]], max_new_tokens: int) -> tuple[list[int], int]:
        ids = self.tokenizer.encode(self.tokenizer.chat_prompt(messages))
        if self.tokenizer.bos_id is not None and self.tokenizer.chat_template is None:
            ids = [self.tokenizer.bos_id] + ids
        return fit_prompt(ids, self.context_tokens - max_new_tokens)

    def answer(self, messages: list[dict[str, str]], target: LatencyTarget = LatencyTarget(), max_new_tokens: int = 96,
               on_partial: Callable[[str, int], None] | None = None,
               cancelled: Callable[[], bool] = lambda: False) -> Answer:
        """Generate the assistant's reply; `on_partial(text so far, tokens so far)` after each token."""
        ids, dropped = self.prompt_ids(messages, max_new_tokens)
        request = Request(len(ids), max_new_tokens, target)
        decision = self.controller.decide(request)
        llm = self.models[(decision.variant, decision.threads)]
        report = None if on_partial is None else (
            lambda generation: on_partial(self.tokenizer.decode(generation.tokens), len(generation.tokens)))
        with self._run_lock, self.meter.measure() as energy:  # one generation at a time: they share the cores
            generation = llm.generate(ids, max_new_tokens, self.tokenizer.stop_ids, cancelled, report)
        if not generation.stats.cancelled and generation.stats.generated_tokens:
            self.controller.observe(decision, request, generation.stats, energy.joules)
        return Answer(self.tokenizer.decode(generation.tokens), generation.stats, decision, energy.joules,
                      self.meter.source, dropped)
