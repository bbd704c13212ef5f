"""On-device LLM benchmark on SmolLM2-135M-Instruct (the default model), printed as markdown rows.

1. Decode and prefill tokens/s for every variant at 1 and 2 threads: decode = 128 new tokens after a
   24-token chat prompt (greedy, no stop token), prefill = one 256-token prompt; best of a few runs.
2. The same for llama.cpp on the same GGUF with the same threads, when llama-cpp-python is installed
   (a benchmark-only extra, never a runtime dependency; build it with
   CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX2=ON -DGGML_AVX512=ON -DGGML_AMX_INT8=OFF -DGGML_AMX_TILE=OFF
   -DGGML_AMX_BF16=OFF" pip install llama-cpp-python; its default build dies on AMX here).
3. Perplexity per variant (measured by build-llm-variants on held-out pydoc_data text).
4. The controller on a mixed request trace (TTFT, TPOT and total targets, loose to impossible, three
   priorities) against always running the fastest operating point of the variants it may use (for
   the node's quality-first controller the full-quality ones): targets met among the feasible ones
   (those the fastest point met) and the energy of each. Every answer in the trace runs to its token
   budget (no stop token), so both do the same work and the energy compares operating points, not
   where a variant's answer happened to end.

    python bench/bench_llm.py [--threads 1 2] [--spin] [--trace 30] [--no-speed] [--json out/bench_llm.json]

--spin: onnxruntime's threads spin between operators (the node's spin_threads; llama.cpp's threads
spin between its operators by default).
"""
from __future__ import annotations

import argparse
import collections
import json
import random
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from onboard_llm.control import LatencyTarget  # noqa: E402
from onboard_llm.engine import OnboardLlm  # noqa: E402
from onboard_llm.loaders import default_model_path, load_tokenizer  # noqa: E402
from onboard_llm.quality import english_text, windows  # noqa: E402
from onboard_llm.runtime import OnnxLlm  # noqa: E402
from onboard_llm.variants import DEFAULT_CACHE, VARIANTS, build_variants, cache_folder, load_manifest  # noqa: E402
from perception.model_files import ModelFileError  # noqa: E402

DECODE_TOKENS = 128
PREFILL_TOKENS = 256
CHAT_QUESTION = "What should a robot do when a pedestrian steps onto the road?"
"""The decode prompt's question, in SmolLM2's chat template with its default system turn."""
TRACE_QUESTIONS = ["Is the road ahead clear?", "How many cars do you see?",
                   "Summarise what the planner is doing and why it is braking, if it is.",
                   "Which object is closest to us and how fast is it moving?",
                   "Describe the scene in detail: every vehicle, pedestrian and cyclist, where each is and where "
                   "it is going, and whether any of them could cross our path in the next few seconds."]


def onnx_speed(path: Path, threads: int, spin: bool, chat_ids: list[int], prefill_ids: list[int]) -> tuple[float, float]:
    llm = OnnxLlm(path, threads, spin)
    llm.generate(chat_ids, 4)  # warm-up
    decode = max(DECODE_TOKENS - 1, 1) / min(llm.generate(chat_ids, DECODE_TOKENS).stats.decode_time for _ in range(2))
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        llm.forward(prefill_ids, llm.new_cache(len(prefill_ids)), last_only=True)
        best = min(best, time.perf_counter() - start)
    return decode, len(prefill_ids) / best


def llama_cpp_speed(model_path: Path, threads: int, chat_ids: list[int], prefill_ids: list[int]):
    try:
        from llama_cpp import Llama
    except ImportError:
        return None
    llm = Llama(model_path=str(model_path), n_threads=threads, n_threads_batch=threads, n_ctx=1024, n_batch=512,
                verbose=False)
    decode_times = []
    for _ in range(3):  # the first is a warm-up
        llm.reset()
        tokens = 0
        for _token in llm.generate(chat_ids, temp=0.0, top_k=1, reset=True):
            tokens += 1
            if tokens == 1:
                first = time.perf_counter()
            if tokens == DECODE_TOKENS:
                break
        decode_times.append(time.perf_counter() - first)
    best = float("inf")
    for _ in range(3):
        llm.reset()
        start = time.perf_counter()
        llm.eval(prefill_ids)
        best = min(best, time.perf_counter() - start)
    return (DECODE_TOKENS - 1) / min(decode_times[1:]), len(prefill_ids) / best


def trace_requests(count: int, seed: int = 0) -> list[dict]:
    """Mixed targets: each request gets a kind, a multiplier of what the fastest point needs (below 1:
    infeasible on purpose), a priority and an answer length."""
    rng = random.Random(seed)
    requests = []
    for index in range(count):
        requests.append({"question": TRACE_QUESTIONS[index % len(TRACE_QUESTIONS)], "kind": rng.choice(["ttft", "tpot", "total"]),
                         "slack": rng.choice([0.7, 1.3, 1.8, 2.5, 4.0, 8.0]), "priority": rng.choice([0, 1, 2]),
                         "max_new_tokens": rng.choice([16, 32, 48])})
    return requests


def run_trace(engine: OnboardLlm, requests: list[dict]) -> dict:
    system = "You are the onboard assistant of an autonomous robot. Detected now: 3 car, 1 pedestrian."
    engine.tokenizer.stop_ids = frozenset()  # fixed-length answers: the same work at every point
    allowed = [point for point in engine.controller.points if point.variant in engine.controller.high_quality]
    rows = []
    for request in requests:
        messages = [{"role": "system", "content": system}, {"role": "user", "content": request["question"]}]
        ids, _ = engine.prompt_ids(messages, request["max_new_tokens"])

        def profiled(point) -> float:
            """The point's profiled latency for this request's measure."""
            ttft = point.ttft_fixed_s + point.ttft_per_token_s * len(ids)
            return {"ttft": ttft, "tpot": point.tpot_s,
                    "total": ttft + point.tpot_s * (request["max_new_tokens"] - 1)}[request["kind"]]
        # Always-fastest runs the point fastest for the request's measure (a long prompt's first token
        # comes soonest from int8 at 2 threads, the next tokens from int4); the target is `slack` × its need.
        fastest = min(allowed, key=profiled)
        target = LatencyTarget(request["kind"], request["slack"] * profiled(fastest))
        with engine.meter.measure() as energy:
            baseline = engine.models[fastest.key].generate(ids, request["max_new_tokens"])
        answer = engine.answer(messages, target, request["max_new_tokens"])

        def latency(stats):
            return {"ttft": stats.time_to_first_token, "tpot": stats.time_per_output_token, "total": stats.total_time}[target.kind]
        rows.append({"kind": target.kind, "target": target.seconds, "priority": request["priority"],
                     "feasible": latency(baseline.stats) <= target.seconds,
                     "fastest": f"{fastest.variant}×{fastest.threads}", "baseline_joules": energy.joules,
                     "controller": f"{answer.decision.variant}×{answer.decision.threads}",
                     "met": latency(answer.stats) <= target.seconds, "joules": answer.joules})
    feasible = [row for row in rows if row["feasible"]]
    return {"requests": len(rows), "feasible": len(feasible), "met_feasible": sum(row["met"] for row in feasible),
            "controller_joules": sum(row["joules"] for row in rows),
            "fastest_joules": sum(row["baseline_joules"] for row in rows),
            "fastest": dict(collections.Counter(row["fastest"] for row in rows)),
            "choices": dict(collections.Counter(row["controller"] for row in rows)),
            "rows": rows}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS))
    parser.add_argument("--spin", action="store_true", help="spinning onnxruntime threads (spin_threads)")
    parser.add_argument("--trace", type=int, default=30, help="requests in the controller trace (0: skip)")
    parser.add_argument("--no-speed", action="store_true", help="skip the tokens/s rows (rerun only the trace)")
    parser.add_argument("--json", type=Path, default=REPO / "out/bench_llm.json")
    args = parser.parse_args()
    model = default_model_path()
    cache = REPO / DEFAULT_CACHE
    try:
        manifest, files = load_manifest(model, cache)
    except ModelFileError as missing:
        print(f"{missing}; building them", file=sys.stderr)
        build_variants(model, cache_folder(model, cache))
        manifest, files = load_manifest(model, cache)
    tokenizer = load_tokenizer(model)
    chat_ids = tokenizer.encode(tokenizer.chat_prompt([{"role": "user", "content": CHAT_QUESTION}]))
    prefill_ids = windows(tokenizer, english_text().evaluation, PREFILL_TOKENS, 1)[0]
    results: dict = {"model": model.name, "chat_prompt_tokens": len(chat_ids), "spin": args.spin, "speed": {}}
    print(f"SmolLM2-135M-Instruct, {len(chat_ids)}-token chat prompt, {DECODE_TOKENS} new tokens; prefill "
          f"{PREFILL_TOKENS} tokens; onnxruntime threads {'spinning' if args.spin else 'sleeping'} between operators\n")
    print("| runtime | variant | threads | decode tok/s | prefill tok/s | perplexity |")
    print("| --- | --- | --- | --- | --- | --- |")
    results["perplexity"] = {variant: manifest["variants"][variant]["perplexity"] for variant in args.variants}
    for variant in [] if args.no_speed else args.variants:
        for threads in args.threads:
            decode, prefill = onnx_speed(files[variant], threads, args.spin, chat_ids, prefill_ids)
            results["speed"][f"{variant}/{threads}"] = {"decode": decode, "prefill": prefill}
            print(f"| onnxruntime | {variant} | {threads} | {decode:.1f} | {prefill:.0f} | "
                  f"{results['perplexity'][variant]:.3f} |", flush=True)
    for threads in [] if args.no_speed else args.threads:
        speed = llama_cpp_speed(model, threads, chat_ids, prefill_ids)
        if speed is None:
            print("| llama.cpp | Q4_1 | – | not installed (benchmark-only extra) | | |")
            break
        results["speed"][f"llama.cpp/{threads}"] = {"decode": speed[0], "prefill": speed[1]}
        print(f"| llama.cpp | Q4_1 | {threads} | {speed[0]:.1f} | {speed[1]:.0f} | |", flush=True)
    speed = results["speed"]
    for threads in args.threads:
        if f"int4/{threads}" in speed and f"fp32/{threads}" in speed:
            ratio = speed[f"int4/{threads}"]["decode"] / speed[f"fp32/{threads}"]["decode"]
            print(f"\nint4 / fp32 decode at {threads} threads: {ratio:.2f}× (goal ≥ 3×)", end="")
        if f"int4/{threads}" in speed and f"llama.cpp/{threads}" in speed:
            ratio = speed[f"int4/{threads}"]["decode"] / speed[f"llama.cpp/{threads}"]["decode"]
            print(f"; int4 / llama.cpp Q4_1: {ratio:.2f}× (goal ≥ 0.8×)", end="")
    fp32 = results["perplexity"].get("fp32")
    if fp32:
        print("\n\nperplexity vs fp32: " + ", ".join(f"{name} {value / fp32 - 1:+.1%}" for name, value in results["perplexity"].items()))
    # The node's default (full-quality variants first) and a controller free to use any variant
    # (max_quality_loss unbounded), which is the one comparable with always-fastest on energy alone.
    for label, quality_loss in (("quality-first (node default)", 0.08), ("energy-only", float("inf"))):
        if not args.trace:
            break
        engine = OnboardLlm(model, ["int4", "int8", "int4_pruned"], args.threads, cache,
                            max_quality_loss=quality_loss, log=print, spin=args.spin)
        trace = run_trace(engine, trace_requests(args.trace))
        results.setdefault("trace", {})[label] = trace
        print(f"\ncontroller trace, {label} ({trace['requests']} requests, energy source {engine.meter.source}): met "
              f"{trace['met_feasible']} of {trace['feasible']} feasible targets "
              f"({trace['met_feasible'] / max(trace['feasible'], 1):.0%}; goal ≥ 95%); energy "
              f"{trace['controller_joules']:.1f} J against {trace['fastest_joules']:.1f} J always-fastest "
              f"({trace['fastest']}); choices {trace['choices']}", flush=True)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
