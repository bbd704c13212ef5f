"""GSCLO solvers: APO's energy gap to the exact optimum and the run time of both; prints Markdown.

    python bench/bench_gsclo.py [--instances 200] [--timing-instances 100] [--seed 0]
                                [--plot docs/images/gsrmr_apo_convergence.png]

Instances come from mixed_reality.uplink.problem.random_instance (the robot driving past the access
point of the default channel, fading per frame, JPEG sizes and qualities as the simulator gives
them, a threshold drawn between the mean render quality and the best mean). Only instances where a
feasible switching vector exists are counted. Gaps: APO energy / exact energy - 1. Times: each
solver's own solve_time (wall, the whole call, costing the solution included) and the process CPU
time of the call (what other processes on a shared machine take is left out), one call per
instance, once back to back and once after 10 ms of idle before every call (as at 10 Hz on the
robot); the speed-up is the ratio of the medians. Ablation rows switch parts of APO off.
"""
from __future__ import annotations

import argparse
import datetime
import platform
import time

import numpy as np
import scipy
import torch
from matplotlib.figure import Figure
from scipy.optimize import linprog

from evaluation.detector_report import machine_description
from mixed_reality.uplink.apo import ApoConfig, ApoIterate, solve_apo
from mixed_reality.uplink.exact import solve_exact
from mixed_reality.uplink.problem import GscloInstance, random_instance

ABLATIONS = (("APO (default)", ApoConfig()),
             ("APO, no boundary re-optimisation (round, repair, drop, 1-swaps)", ApoConfig(boundary_frames=0)),
             ("APO, no penalty iterations (relaxation optimum by rank, rounded, + improvement)", ApoConfig(max_iterations=0)),
             ("ranking + repair + drop only", ApoConfig(max_iterations=0, boundary_frames=0, swap_rounds=0)))


def feasible_instances(frames: int, count: int, rng: np.random.Generator) -> tuple[list[GscloInstance], int]:
    """`count` instances with a feasible switching vector, and how many were drawn to get them."""
    instances, drawn = [], 0
    while len(instances) < count:
        drawn += 1
        instance = random_instance(frames, rng)
        if instance.has_feasible_solution:
            instances.append(instance)
    return instances, drawn


def gap_rows(instances: list[GscloInstance]) -> list[str]:
    exact = [solve_exact(instance) for instance in instances]
    rows, default = [], None
    for label, config in ABLATIONS:
        apo = [solve_apo(instance, config) for instance in instances]
        assert all(a.feasible for a in apo), "APO returned an infeasible vector on a feasible instance"
        default = default or apo
        gaps = np.array([a.total_energy / e.total_energy - 1.0 for a, e in zip(apo, exact)])
        same = np.mean([np.array_equal(a.upload, d.upload) for a, d in zip(apo, default)])
        rows.append(f"| {label} | {len(gaps)} | **{100 * np.mean(gaps <= 0.01):.1f} %** | "
                    f"{100 * np.mean(gaps <= 1e-9):.1f} % | {100 * np.median(gaps):.3f} % | "
                    f"{100 * np.percentile(gaps, 95):.2f} % | {100 * gaps.max():.2f} % | {100 * same:.1f} % |")
    return rows


def solve_times(solve, instances: list[GscloInstance], idle: float):
    """(wall ms, CPU ms, solutions), one call per instance; with `idle` > 0 every call follows that
    many seconds of sleep, as at 10 Hz on the robot (cold caches, a clocked-down core), else calls
    run back to back. CPU time leaves out the time other processes on a shared machine take."""
    solutions, cpu = [], []
    for instance in instances:
        if idle:
            time.sleep(idle)
        started = time.process_time()
        solutions.append(solve(instance))
        cpu.append(time.process_time() - started)
    return 1e3 * np.array([solution.solve_time for solution in solutions]), 1e3 * np.array(cpu), solutions


def timing_row(frames: int, instances: list[GscloInstance], idle: float) -> str:
    apo_ms, apo_cpu, apo = solve_times(solve_apo, instances, idle)
    exact_ms, exact_cpu, exact = solve_times(solve_exact, instances, idle)
    calls = f"after {1e3 * idle:.0f} ms idle" if idle else "back to back"
    return (f"| {frames} | {calls} | {len(instances)} | {100 * np.median([s.upload.mean() for s in exact]):.0f} % | "
            f"{np.median(apo_ms):.3f} ({np.percentile(apo_ms, 90):.3f}) | {np.median(apo_cpu):.3f} | "
            f"{np.median([s.iterations for s in apo]):.0f} | "
            f"{np.median(exact_ms):.2f} ({np.percentile(exact_ms, 90):.2f}) | {np.median(exact_cpu):.2f} | "
            f"{np.median([s.iterations for s in exact]):.0f} | **{np.median(exact_ms) / np.median(apo_ms):.0f}×** | "
            f"**{np.median(exact_cpu) / np.median(apo_cpu):.0f}×** |")


def relaxation_bound(instance: GscloInstance) -> float:
    """Least energy of the linear relaxation (x in [0, 1]), J: a lower bound on the binary optimum."""
    frames = instance.candidates
    result = linprog(instance.extra_energy[frames], A_ub=-instance.quality_gain[frames][None, :],
                     b_ub=[-instance.required_gain], bounds=(0.0, 1.0), method="highs")
    return float(instance.pose_energy.sum() + result.fun)


def plot_convergence(path: str, rng: np.random.Generator) -> str:
    instance = random_instance(50, rng, quality_threshold=31.0)
    trace: list[ApoIterate] = []
    apo = solve_apo(instance, trace=trace)
    exact = solve_exact(instance)
    steps = np.arange(len(trace))  # 0: the start, the relaxation's optimum
    figure = Figure(figsize=(7.6, 3.2), layout="constrained")
    energy_axes = figure.add_subplot(1, 1, 1)
    energy_axes.plot(steps, [1e3 * item.objective for item in trace], "o-", label="penalised objective")
    energy_axes.plot(steps, [1e3 * item.energy for item in trace], "s--", label="energy (relaxed x)")
    energy_axes.axhline(1e3 * exact.total_energy, color="k", lw=0.8, label="exact optimum")
    energy_axes.axhline(1e3 * apo.total_energy, color="C3", lw=0.8, ls=":", label="APO after rounding")
    energy_axes.axhline(1e3 * relaxation_bound(instance), color="0.5", lw=0.8, ls="-.", label="relaxation bound")
    energy_axes.set_xlabel("APO iteration (0: the start, the relaxation's optimum by rank)")
    energy_axes.xaxis.get_major_locator().set_params(integer=True)
    energy_axes.set_ylabel("energy, mJ")
    binarity_axes = energy_axes.twinx()
    binarity_axes.plot(steps, [item.binarity for item in trace], "^-", color="C2", label="binarity")
    binarity_axes.set_ylabel("mean 4x(1-x)", color="C2")
    binarity_axes.set_ylim(0.0, max(item.binarity for item in trace) * 1.2 + 1e-9)
    handles = energy_axes.get_legend_handles_labels()[0] + binarity_axes.get_legend_handles_labels()[0]
    figure.legend(handles=handles, fontsize=7, loc="outside right center")
    energy_axes.set_title(f"APO on one window (T = 50, Q_th = 31 dB, {instance.candidates.sum()} candidate frames)",
                          fontsize=9)
    figure.savefig(path, dpi=120)
    return (f"Convergence plot: {path} ({apo.iterations} iterations; APO {1e3 * apo.total_energy:.4f} mJ, "
            f"exact {1e3 * exact.total_energy:.4f} mJ)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instances", type=int, default=200, help="feasible T = 50 instances for the gap (default 200)")
    parser.add_argument("--timing-instances", type=int, default=100, help="feasible instances per timed T (default 100)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--plot", default="docs/images/gsrmr_apo_convergence.png", help="convergence plot ('' for none)")
    options = parser.parse_args()
    rng = np.random.default_rng(options.seed)

    machine = machine_description(torch.device("cpu"))
    print(f"GSCLO solvers, {datetime.date.today()}, {machine['cpu']}, {machine['cores']} cores, {machine['os']}; "
          f"Python {platform.python_version()}, numpy {np.__version__}, scipy {scipy.__version__}; seed {options.seed}\n")

    instances, drawn = feasible_instances(50, options.instances, rng)
    print(f"APO energy gap to the exact optimum, T = 50 ({len(instances)} feasible of {drawn} drawn):\n")
    print("| method | instances | within 1 % | optimal | median gap | p95 gap | worst gap | same vector as default |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    print("\n".join(gap_rows(instances)))

    print("\nRun time (ms, wall and process CPU; one call per instance):\n")
    print("| T | calls | instances | uploads (exact, median) | APO median (p90) | APO CPU median | APO iterations "
          "| exact median (p90) | exact CPU median | exact B&B nodes | speed-up, wall medians | speed-up, CPU medians |")
    print("|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for frames in (20, 50, 100, 200):
        instances = feasible_instances(frames, options.timing_instances, rng)[0]
        for idle in (0.0, 0.01):
            print(timing_row(frames, instances, idle))
    if options.plot:
        print("\n" + plot_convergence(options.plot, rng))


if __name__ == "__main__":
    main()
