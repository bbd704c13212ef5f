"""CLONE-style control on an edge CPU: an offline profile of every operating point (variant ×
threads), and an online controller that picks, for each request, the operating point that meets its
latency target at the least estimated energy, learning from the latencies it measures.

Profile: for each point, TTFT at several prompt lengths (fitted as fixed + per-token seconds), the
mean time per output token, and the mean power while it ran (from the energy meter, so the
estimate follows the meter's source). A request's estimated energy is that power × its predicted
total time.

Decision, in order: (1) the points whose variant keeps perplexity within `max_quality_loss` of the
best variant and whose prediction meets the target, least energy first; (2) any point meeting the
target (a lower-quality variant, said in the decision); (3) the fastest point for the target's
measure (the target cannot be met; said too). Predictions are scaled by the machine's load (an
exponential average of measured / profiled over every run, shared by all points) times a per-point
correction (what one point's runs add to that, learnt more slowly), so a busier machine slows every prediction, not only
the point that happened to run: with per-point corrections alone, one slow run on a shared machine
made the point that ran look slower than every stale one, and the controller moved to points that
were no faster and cost more energy.
"""
from __future__ import annotations

import dataclasses
import heapq
import itertools
import json
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Generic, Iterable, TypeVar

import numpy as np

from onboard_llm.energy import EnergyMeter
from onboard_llm.runtime import GenerationStats, OnnxLlm

TARGET_KINDS = ("ttft", "tpot", "total")
"""What a latency target bounds: time to first token, mean time per output token, or the whole answer."""


@dataclass(frozen=True)
class LatencyTarget:
    kind: str = "total"
    seconds: float = 0.0
    """0: no target (the least energy of the best-quality variants)."""

    def __post_init__(self) -> None:
        if self.kind not in TARGET_KINDS:
            raise ValueError(f"latency target kind must be one of {', '.join(TARGET_KINDS)}, got {self.kind!r}")
        if not self.seconds >= 0.0:
            raise ValueError(f"latency target must be >= 0 seconds, got {self.seconds}")


@dataclass(frozen=True)
class Request:
    prompt_tokens: int
    max_new_tokens: int
    target: LatencyTarget = LatencyTarget()
    priority: int = 0
    """Higher is served first when requests queue."""


@dataclass
class OperatingPoint:
    variant: str
    threads: int
    ttft_fixed_s: float
    """TTFT ≈ ttft_fixed_s + ttft_per_token_s × prompt tokens."""
    ttft_per_token_s: float
    tpot_s: float
    watts: float
    """Mean power while this point ran (energy meter joules / wall seconds)."""

    @property
    def key(self) -> tuple[str, int]:
        return self.variant, self.threads


@dataclass
class Profile:
    points: list[OperatingPoint]
    energy_source: str
    measurements: list[dict] = field(default_factory=list)
    """Raw runs: variant, threads, prompt_tokens, ttft, tpot, joules, wall."""
    spin: bool = False
    """Whether the sessions measured had spinning threads (OnnxLlm)."""

    def save(self, path: Path) -> None:
        path.write_text(json.dumps({"energy_source": self.energy_source, "spin": self.spin,
                                    "measurements": self.measurements,
                                    "points": [dataclasses.asdict(point) for point in self.points]}, indent=1))

    @staticmethod
    def load(path: Path) -> "Profile":
        data = json.loads(Path(path).read_text())
        return Profile([OperatingPoint(**point) for point in data["points"]], data["energy_source"], data["measurements"],
                       data.get("spin", False))


def profile_operating_points(models: dict[tuple[str, int], OnnxLlm], prompt: list[int],
                             prompt_lengths: Iterable[int] = (16, 64, 192), new_tokens: int = 16,
                             meter: EnergyMeter | None = None, repeats: int = 2) -> Profile:
    """Measure every (variant, threads) model: TTFT at each prompt length (prefixes of `prompt`),
    TPOT over `new_tokens`, energy; the best of `repeats` runs (after a warm-up) counts."""
    meter = meter or EnergyMeter()
    points, measurements = [], []
    for (variant, threads), llm in models.items():
        llm.generate(prompt[:8], 2)  # warm-up: first runs allocate and plan
        lengths, ttfts, tpots, watts = [], [], [], []
        for length in prompt_lengths:
            best = None
            for _ in range(repeats):
                with meter.measure() as energy:
                    generation = llm.generate(prompt[:length], new_tokens)
                run = {"variant": variant, "threads": threads, "prompt_tokens": length,
                       "ttft": generation.stats.time_to_first_token, "tpot": generation.stats.time_per_output_token,
                       "joules": energy.joules, "wall": energy.wall_seconds}
                measurements.append(run)
                if best is None or run["wall"] < best["wall"]:
                    best = run
            lengths.append(length)
            ttfts.append(best["ttft"])
            tpots.append(best["tpot"])
            watts.append(best["joules"] / best["wall"])
        slope, intercept = np.polyfit(lengths, ttfts, 1) if len(lengths) > 1 else (0.0, ttfts[0])
        points.append(OperatingPoint(variant, threads, max(float(intercept), 0.0), max(float(slope), 0.0),
                                     float(np.median(tpots)), float(np.mean(watts))))
    return Profile(points, meter.source, measurements, any(llm.spin for llm in models.values()))


@dataclass
class Prediction:
    ttft: float
    tpot: float
    total: float
    energy: float

    def latency(self, kind: str) -> float:
        return {"ttft": self.ttft, "tpot": self.tpot, "total": self.total}[kind]


@dataclass
class Decision:
    variant: str
    threads: int
    prediction: Prediction
    meets_target: bool
    """False: nothing was predicted to meet the target and this is the fastest point."""
    reason: str


@dataclass
class _Correction:
    """Measured / profiled factors of TTFT, TPOT and power."""

    ttft: float = 1.0
    tpot: float = 1.0
    watts: float = 1.0


class Controller:
    """Picks an operating point per request and learns from what the runs measure. Thread-safe."""

    def __init__(self, profile: Profile, perplexities: dict[str, float], max_quality_loss: float = 0.08,
                 learning_rate: float = 0.3, point_learning_rate: float = 0.05, margin: float = 0.9) -> None:
        self.points = [point for point in profile.points if point.variant in perplexities]
        if not self.points:
            raise ValueError("the profile has no operating point of the given variants")
        self.energy_source = profile.energy_source
        best = min(perplexities[point.variant] for point in self.points)
        self.high_quality = {variant for variant, value in perplexities.items() if value <= best * (1 + max_quality_loss)}
        """Variants within max_quality_loss of the best perplexity."""
        self.learning_rate = learning_rate
        """How far each run moves the shared load toward measured / profiled."""
        self.point_learning_rate = point_learning_rate
        """How far it moves the point's own correction: slowly, because one run cannot tell the
        machine's load from the point's bias, and a common slowdown must land in the load."""
        self.margin = margin
        """A point meets a target when its prediction is within margin × target (headroom for noise)."""
        self._load = _Correction()
        """The machine's load against the profile, learnt from every run."""
        self._corrections = {point.key: _Correction() for point in self.points}
        """What each point's own runs add to the load."""
        self._lock = threading.Lock()

    def predict(self, point: OperatingPoint, request: Request) -> Prediction:
        load, correction = self._load, self._corrections[point.key]
        ttft = load.ttft * correction.ttft * (point.ttft_fixed_s + point.ttft_per_token_s * request.prompt_tokens)
        tpot = load.tpot * correction.tpot * point.tpot_s
        total = ttft + tpot * max(request.max_new_tokens - 1, 0)
        return Prediction(ttft, tpot, total, load.watts * correction.watts * point.watts * total)

    def decide(self, request: Request) -> Decision:
        with self._lock:
            predicted = [(point, self.predict(point, request)) for point in self.points]
        target = request.target
        if target.seconds <= 0.0:
            meeting = predicted
        else:
            meeting = [(point, p) for point, p in predicted if p.latency(target.kind) <= self.margin * target.seconds]
        good = [(point, p) for point, p in meeting if point.variant in self.high_quality]
        if good:
            point, prediction = min(good, key=lambda item: item[1].energy)
            return Decision(point.variant, point.threads, prediction, True, "least energy meeting the target")
        if meeting:
            point, prediction = min(meeting, key=lambda item: item[1].energy)
            return Decision(point.variant, point.threads, prediction, True,
                            "least energy meeting the target; only a lower-quality variant meets it")
        point, prediction = min(predicted, key=lambda item: item[1].latency(target.kind))
        return Decision(point.variant, point.threads, prediction, False,
                        f"no operating point is predicted to meet {target.kind} ≤ {target.seconds:g} s; fastest")

    def observe(self, decision: Decision, request: Request, stats: GenerationStats, joules: float) -> None:
        """Learn from a finished run: measured / profiled moves the shared load and then the point's own
        correction toward it."""
        point = next(point for point in self.points if point.key == (decision.variant, decision.threads))
        base_ttft = point.ttft_fixed_s + point.ttft_per_token_s * stats.prompt_tokens
        ratios = {}
        if base_ttft > 0 and stats.time_to_first_token > 0:
            ratios["ttft"] = stats.time_to_first_token / base_ttft
        if stats.generated_tokens > 1 and point.tpot_s > 0:
            ratios["tpot"] = stats.time_per_output_token / point.tpot_s
        if stats.total_time > 0 and point.watts > 0:
            ratios["watts"] = joules / stats.total_time / point.watts
        with self._lock:
            load, correction = self._load, self._corrections[point.key]
            for name, ratio in ratios.items():
                shared, own = getattr(load, name), getattr(correction, name)
                shared += self.learning_rate * (ratio / own - shared)
                setattr(load, name, shared)
                setattr(correction, name, own + self.point_learning_rate * (ratio / shared - own))


ItemT = TypeVar("ItemT")


class QueueFullError(RuntimeError):
    """A request refused because the queue already holds its bound."""


class RequestQueue(Generic[ItemT]):
    """Bounded; highest priority first, then first come. submit() refuses excess with QueueFullError."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._heap: list[tuple[int, int, ItemT]] = []
        self._order = itertools.count()
        self._changed = threading.Condition()
        self._closed = False

    def __len__(self) -> int:
        with self._changed:
            return len(self._heap)

    def submit(self, item: ItemT, priority: int = 0) -> None:
        with self._changed:
            if len(self._heap) >= self.capacity:
                raise QueueFullError(f"request refused: {len(self._heap)} requests already wait "
                                     f"(queue bound {self.capacity}); try again later")
            heapq.heappush(self._heap, (-priority, next(self._order), item))
            self._changed.notify()

    def take(self, timeout: float | None = None) -> ItemT | None:
        """The next item; None when closed or after `timeout` seconds with nothing queued."""
        with self._changed:
            if not self._changed.wait_for(lambda: self._heap or self._closed, timeout):
                return None
            if self._closed:
                return None
            return heapq.heappop(self._heap)[2]

    def close(self) -> None:
        with self._changed:
            self._closed = True
            self._changed.notify_all()


class RateLimitedError(RuntimeError):
    """A request refused because the requests of the last while already used the rate bound."""


class RequestRateLimiter:
    """Token bucket: up to `burst` requests at once, refilled at `per_minute` requests per minute of
    wall time (the bound protects the cores, whatever the ROS clock does). admit() takes a token or
    refuses with RateLimitedError. Thread-safe."""

    def __init__(self, per_minute: float, burst: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.per_minute, self.burst, self._clock = per_minute, burst, clock
        self._tokens = float(burst)
        self._last = clock()
        self._lock = threading.Lock()

    def admit(self) -> None:
        with self._lock:
            now = self._clock()
            self._tokens = min(self.burst, self._tokens + (now - self._last) * self.per_minute / 60.0)
            self._last = now
            if self._tokens < 1.0:
                wait_s = (1.0 - self._tokens) * 60.0 / self.per_minute
                raise RateLimitedError(f"request refused: more than {self.per_minute:g} requests per minute "
                                       f"(burst {self.burst}); try again in {wait_s:.1f} s")
            self._tokens -= 1.0
