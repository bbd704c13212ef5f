"""Exact optimum of the binary GSCLO problem (a 0/1 min-cost cover knapsack) with scipy's HiGHS
branch and bound at zero relative gap; the reference the APO solver is measured against."""
from __future__ import annotations

import time

import numpy as np
from scipy.optimize import Bounds, LinearConstraint, milp

from mixed_reality.uplink.problem import GscloInstance, UplinkSolution, evaluate, trivial_upload


def solve_exact(instance: GscloInstance, time_limit: float | None = None) -> UplinkSolution:
    """min sum_t x_t Delta E_t s.t. sum_t x_t Delta Q_t >= required, x binary, over the candidate frames
    (see `trivial_upload` for windows with nothing to decide). A run stopped by `time_limit` (s)
    returns its incumbent. iterations: branch-and-bound nodes."""
    started = time.perf_counter()
    upload = trivial_upload(instance)
    nodes = 0
    if upload is None:
        candidates = np.flatnonzero(instance.candidates)
        # Scaled to O(1) so HiGHS's absolute tolerances (gap 1e-6, feasibility 1e-7) are negligible.
        cost = instance.extra_energy[candidates]
        gain = instance.quality_gain[candidates] / instance.required_gain
        options = {"mip_rel_gap": 0.0}
        if time_limit is not None:
            options["time_limit"] = time_limit
        result = milp(cost / cost.mean(), constraints=LinearConstraint(gain[None, :], 1.0, np.inf),
                      integrality=np.ones(len(candidates)), bounds=Bounds(0.0, 1.0), options=options)
        if result.x is None:
            raise RuntimeError(f"HiGHS found no solution: {result.message}")
        upload = np.zeros(instance.frames, dtype=bool)
        upload[candidates] = result.x > 0.5
        nodes = int(result.mip_node_count or 0)
    return evaluate(instance, upload, method="exact", solve_time=time.perf_counter() - started, iterations=nodes)
