"""The CLONE-style controller, queue, energy meter, prompt fitting and scene summary; the profiler
on real onnxruntime sessions of the tiny model."""
from __future__ import annotations

import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from onboard_llm.control import (Controller, LatencyTarget, OperatingPoint, Profile, QueueFullError, Request,
                                 RequestQueue, profile_operating_points)
from onboard_llm.energy import MODEL_SOURCE, RAPL_SOURCE, WATTS_PER_BUSY_CORE, EnergyMeter
from onboard_llm.engine import fit_prompt
from onboard_llm.export import export_onnx
from onboard_llm.grounding import PlanState, scene_summary
from onboard_llm.loaders import load_llama2c
from onboard_llm.runtime import GenerationStats, OnnxLlm
from perception.objects import Box3D, DetectedObject, ObjectClass, PredictedObject, TrackedObject

sys.path.insert(0, str(Path(__file__).parent))
from test_llm_model import TINY_MODEL, TINY_TOKENIZER  # noqa: E402

# Three variants × two thread counts: two threads are faster but burn more power.
POINTS = [OperatingPoint("int8", 1, 0.02, 0.001, 0.030, 5.0), OperatingPoint("int8", 2, 0.015, 0.0006, 0.020, 9.0),
          OperatingPoint("int4", 1, 0.015, 0.0008, 0.020, 5.0), OperatingPoint("int4", 2, 0.010, 0.0005, 0.012, 9.0),
          OperatingPoint("int4_pruned", 1, 0.012, 0.0006, 0.016, 5.0),
          OperatingPoint("int4_pruned", 2, 0.008, 0.0004, 0.009, 9.0)]
PERPLEXITY = {"int8": 20.9, "int4": 20.2, "int4_pruned": 74.0}


def controller(**options) -> Controller:
    return Controller(Profile([OperatingPoint(**vars(point)) for point in POINTS], MODEL_SOURCE), PERPLEXITY, **options)


def test_a_loose_target_gets_the_least_energy_point_of_a_full_quality_variant():
    decision = controller().decide(Request(100, 50, LatencyTarget("total", 10.0)))
    assert (decision.variant, decision.threads, decision.meets_target) == ("int4", 1, True)
    # int4 × 1: 0.015 + 0.08 + 49 × 0.020 = 1.075 s at 5 W
    assert decision.prediction.total == pytest.approx(1.075)
    assert decision.prediction.energy == pytest.approx(5.375)


def test_tighter_targets_move_to_more_threads_then_to_the_pruned_variant_then_to_the_fastest():
    control = controller()
    # Predicted totals for 100 + 50 tokens: int4 × 2 0.648 s, pruned × 1 0.856 s, pruned × 2 0.489 s (margin 0.9).
    two_threads = control.decide(Request(100, 50, LatencyTarget("total", 0.8)))
    assert (two_threads.variant, two_threads.threads) == ("int4", 2)
    pruned = control.decide(Request(100, 50, LatencyTarget("total", 0.6)))
    assert (pruned.variant, pruned.threads, pruned.meets_target) == ("int4_pruned", 2, True)
    assert "lower-quality" in pruned.reason
    impossible = control.decide(Request(100, 50, LatencyTarget("total", 0.1)))
    assert (impossible.variant, impossible.threads, impossible.meets_target) == ("int4_pruned", 2, False)
    assert "fastest" in impossible.reason
    first_token = control.decide(Request(100, 50, LatencyTarget("ttft", 0.08)))  # int4 × 1 needs 0.095 s
    assert (first_token.variant, first_token.threads) == ("int4", 2)
    with pytest.raises(ValueError, match="kind must be one of"):
        LatencyTarget("energy", 1.0)


def test_measured_latencies_correct_the_predictions():
    control = controller(learning_rate=0.5)
    request = Request(100, 50, LatencyTarget("total", 1.2))
    assert (control.decide(request).variant, control.decide(request).threads) == ("int4", 1)
    for _ in range(4):  # the machine is busier than when profiled: int4 × 1 runs 40 % slower
        decision = control.decide(request)
        if (decision.variant, decision.threads) != ("int4", 1):
            break
        stats = GenerationStats(prompt_tokens=100, generated_tokens=50, time_to_first_token=0.095 * 1.4,
                                decode_time=49 * 0.020 * 1.4)
        control.observe(decision, request, stats, joules=5.0 * stats.total_time)
    assert (control.decide(request).variant, control.decide(request).threads) == ("int4", 2)


def test_a_busier_machine_slows_every_prediction_so_the_cheapest_point_stays_chosen():
    control = controller(max_quality_loss=float("inf"), learning_rate=0.5)
    request = Request(100, 50, LatencyTarget("total", 2.0))
    assert (control.decide(request).variant, control.decide(request).threads) == ("int4_pruned", 1)
    for _ in range(6):  # every point runs 30 % slower than profiled; only the chosen one is measured
        decision = control.decide(request)
        assert (decision.variant, decision.threads) == ("int4_pruned", 1)
        stats = GenerationStats(prompt_tokens=100, generated_tokens=50, time_to_first_token=0.072 * 1.3,
                                decode_time=49 * 0.016 * 1.3)
        control.observe(decision, request, stats, joules=5.0 * stats.total_time)
    # The stale int4 × 1 (1.075 s profiled) is predicted slower too, not as a cheaper way out.
    int4 = next(point for point in control.points if point.key == ("int4", 1))
    assert control.predict(int4, request).total == pytest.approx(1.075 * 1.3, rel=0.05)


def test_the_queue_serves_by_priority_and_refuses_beyond_its_bound():
    queue = RequestQueue(capacity=3)
    queue.submit("low", priority=0)
    queue.submit("high", priority=5)
    queue.submit("low too", priority=0)
    with pytest.raises(QueueFullError, match="request refused: 3 requests already wait"):
        queue.submit("excess", priority=9)
    assert [queue.take(), queue.take(), queue.take()] == ["high", "low", "low too"]
    assert queue.take(timeout=0.01) is None
    threading.Timer(0.05, queue.close).start()
    assert queue.take() is None


def test_energy_from_rapl_counters_when_readable(tmp_path):
    package = tmp_path / "intel-rapl:0"
    package.mkdir()
    (package / "energy_uj").write_text("999000000\n")
    (package / "max_energy_range_uj").write_text("1000000000\n")
    (tmp_path / "intel-rapl:0:0").mkdir()  # a sub-domain: part of the package's count, not read
    meter = EnergyMeter(tmp_path)
    assert meter.source == RAPL_SOURCE
    with meter.measure() as energy:
        (package / "energy_uj").write_text("2000000\n")  # wrapped around: 1 J before the wrap, 2 J after
    assert energy.joules == pytest.approx(3.0)


def test_energy_from_the_power_model_follows_busy_time(tmp_path):
    meter = EnergyMeter(tmp_path)
    assert meter.source == MODEL_SOURCE
    with meter.measure() as energy:
        np.linalg.svd(np.random.default_rng(0).standard_normal((300, 300)))
    assert energy.cpu_seconds > 0
    assert energy.joules >= WATTS_PER_BUSY_CORE * energy.cpu_seconds


def test_fit_prompt_keeps_the_head_and_the_newest_tokens():
    ids, dropped = fit_prompt(list(range(100)), 40)
    assert dropped == 60 and len(ids) == 40
    assert ids[:10] == list(range(10)) and ids[10:] == list(range(70, 100))
    assert fit_prompt([1, 2, 3], 40) == ([1, 2, 3], 0)


def test_scene_summary_names_counts_nearest_objects_moving_tracks_and_the_plan():
    car = DetectedObject(ObjectClass.CAR, 0.9, Box3D([10.0, 0.5, 0.0], [4, 2, 1.5], 0.0))
    walker = DetectedObject(ObjectClass.PEDESTRIAN, 0.8, Box3D([5.0, 4.0, 0.0], [0.5, 0.5, 1.8], 0.0))
    track = TrackedObject(7, ObjectClass.CYCLIST, 0.9, Box3D([8.0, -3.0, 0.0], [1.8, 0.6, 1.7], 0.0), np.array([3.0, 0.0]))
    text = scene_summary([car, walker, car], [PredictedObject(track, [])], PlanState(7, 0.4, False, "", 2.5))
    assert "2 car, 1 pedestrian" in text
    assert "pedestrian 6 m left" in text and "car 10 m ahead" in text
    assert "cyclist 7 at 9 m right, 3.0 m/s" in text
    assert "driving at 2.5 m/s, watching object 7, 40% hidden" in text
    assert scene_summary(None, None, None) == "Detections: none received yet."


def test_profiling_real_sessions_fits_ttft_and_tpot(tmp_path):
    weights, tokenizer = load_llama2c(TINY_MODEL, TINY_TOKENIZER)
    path = export_onnx(weights, tmp_path / "tiny.onnx")
    models = {("fp32", 1): OnnxLlm(path, 1), ("fp32", 2): OnnxLlm(path, 2)}
    prompt = [tokenizer.bos_id] + tokenizer.encode("Once upon a time there was a dog. " * 12)
    profile = profile_operating_points(models, prompt, prompt_lengths=(8, 64), new_tokens=8)
    assert [point.key for point in profile.points] == [("fp32", 1), ("fp32", 2)]
    assert len(profile.measurements) == 2 * 2 * 2
    for point in profile.points:
        assert point.tpot_s > 0 and point.watts > 0 and point.ttft_fixed_s + 64 * point.ttft_per_token_s > 0
    profile.save(tmp_path / "profile.json")
    assert Profile.load(tmp_path / "profile.json").points == profile.points
