"""Reference switching rules for GSCLO, each costed by `evaluate`, and the METHODS registry of every
method (solvers and baselines) by name, as the evaluation and the on-line policy call them."""
from __future__ import annotations

import time
from typing import Callable

import numpy as np

from mixed_reality.uplink.apo import solve_apo
from mixed_reality.uplink.exact import solve_exact
from mixed_reality.uplink.problem import GscloInstance, UplinkSolution, evaluate


def always_upload(instance: GscloInstance) -> UplinkSolution:
    """RoboMR: every frame's image, wherever it can meet the latency (else the pose)."""
    started = time.perf_counter()
    return evaluate(instance, instance.upload_feasible, method="always_upload",
                    solve_time=time.perf_counter() - started)


def never_upload(instance: GscloInstance) -> UplinkSolution:
    """GS only: the pose every frame, the remote always renders."""
    started = time.perf_counter()
    return evaluate(instance, np.zeros(instance.frames, dtype=bool), method="never_upload",
                    solve_time=time.perf_counter() - started)


def threshold_switching(instance: GscloInstance, predicted_render_quality, threshold: float) -> UplinkSolution:
    """Upload (where feasible) the frames whose predicted render quality is below `threshold`."""
    started = time.perf_counter()
    upload = instance.upload_feasible & (np.asarray(predicted_render_quality, dtype=np.float64) < threshold)
    return evaluate(instance, upload, method="threshold", solve_time=time.perf_counter() - started)


def least_sufficient_threshold(instance: GscloInstance) -> float:
    """The lowest render-quality threshold at which threshold switching meets the window's quality
    constraint: the worst-rendered candidate frames are uploaded first, whatever they cost (the
    content-only rule GSCLO is compared with). +inf when even every candidate falls short."""
    candidates = np.flatnonzero(instance.candidates)
    order = candidates[np.argsort(instance.render_quality[candidates], kind="stable")]
    gained = np.cumsum(instance.quality_gain[order])
    if instance.required_gain <= 0.0:
        return -np.inf
    enough = np.flatnonzero(gained >= instance.required_gain)
    if not len(enough):
        return np.inf
    return float(np.nextafter(instance.render_quality[order[enough[0]]], np.inf))


def random_switching(instance: GscloInstance, upload_count: int, rng: np.random.Generator) -> UplinkSolution:
    """`upload_count` uploads (at most the feasible frames) on frames drawn uniformly among the feasible."""
    started = time.perf_counter()
    feasible = instance.upload_feasible.nonzero()[0]
    upload = np.zeros(instance.frames, dtype=bool)
    upload[rng.choice(feasible, size=min(upload_count, len(feasible)), replace=False)] = True
    return evaluate(instance, upload, method="random", solve_time=time.perf_counter() - started)


def fixed_max_power(instance: GscloInstance, upload) -> UplinkSolution:
    """The switching vector `upload` with every transmission at p_max: energy p_max D_t / R_t(p_max)."""
    started = time.perf_counter()
    return evaluate(instance, upload, power=instance.channel.config.max_power, method="fixed_max_power",
                    solve_time=time.perf_counter() - started)


Method = Callable[[GscloInstance, np.random.Generator], UplinkSolution]

METHODS: dict[str, Method] = {
    "apo": lambda instance, rng: solve_apo(instance),
    "exact": lambda instance, rng: solve_exact(instance),
    "always_upload": lambda instance, rng: always_upload(instance),
    "never_upload": lambda instance, rng: never_upload(instance),
    # The instance's render quality serves as the prediction, at the least threshold that meets Q_th.
    "threshold": lambda instance, rng: threshold_switching(instance, instance.render_quality,
                                                           least_sufficient_threshold(instance)),
    # As many uploads as APO chooses, on random frames.
    "random": lambda instance, rng: random_switching(instance, solve_apo(instance).upload_count, rng),
    # APO's switching vector, sent at p_max instead of the least power.
    "apo_max_power": lambda instance, rng: fixed_max_power(instance, solve_apo(instance).upload),
}
"""Every method as method(instance, rng) -> UplinkSolution, by name."""
