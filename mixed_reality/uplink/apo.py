"""APO: accelerated penalty optimisation of GSCLO. The binary choice is relaxed to x in [0, 1] with
each frame's energy interpolated linearly, the penalty rho sum x(1 - x) pushes x to 0/1, and the
difference-of-convex problem is solved by proximal steps whose concave part is linearised at a
Nesterov-extrapolated point while rho grows geometrically. Each step is the projection onto the box
and the one quality constraint, solved exactly by a sort over its dual breakpoints. The result is
rounded, repaired and improved into a feasible binary switching vector (docs/gsrmr.md)."""
from __future__ import annotations

import functools
import math
import time
from dataclasses import dataclass, field

import numpy as np

from mixed_reality.uplink.problem import GscloInstance, UplinkSolution, evaluate, trivial_upload
from sim.validation import check_ranges

SLACK_TOLERANCE = 1e-9
"""Normalised quality (1 = the required gain) by which a vector may fall short and count as feasible."""


@dataclass
class ApoConfig:
    """Tuning of the APO iterations (energies normalised by their mean over the candidate frames)."""

    initial_penalty: float = field(default=0.1, metadata={"range": (0.0, 1e6)})
    """rho at the first iteration, in units of the mean extra energy of an upload."""
    penalty_growth: float = field(default=1.6, metadata={"range": (1.0, 100.0)})
    """Factor by which rho grows every iteration."""
    step: float = field(default=1.0, metadata={"range": (1e-6, 1e6)})
    """Proximal step 1/L: how far one iteration moves x per unit of normalised gradient."""
    max_iterations: int = field(default=40, metadata={"range": (0, 10000)})
    """Most penalty iterations (0: ranking initialisation and local improvement only)."""
    tolerance: float = field(default=1e-3, metadata={"range": (0.0, 1.0)})
    """Stop when no x moved more than this, or when sum x(1 - x) is below it (x binary)."""
    boundary_frames: int = field(default=8, metadata={"range": (0, 16)})
    """Frames at the rounding boundary re-decided exactly (all 2^n choices) after rounding: the
    uploads with the worst and the pose-only frames with the best energy per quality (0: off)."""
    swap_rounds: int = field(default=20, metadata={"range": (0, 10000)})
    """Most 1-swap improvements (exchange one upload for one pose-only frame) after rounding."""

    def __post_init__(self) -> None:
        check_ranges(self)


@dataclass
class ApoIterate:
    """One APO iteration, for convergence plots."""

    penalty: float
    """rho of the iteration (normalised)."""
    objective: float
    """Penalised objective sum E_t(x_t) + rho * scale * sum x(1 - x) at the new iterate, J."""
    energy: float
    """Its energy part (the relaxation's linear interpolation), J."""
    binarity: float
    """Mean of 4 x(1 - x): 0 when every x is 0 or 1, 1 when all are 1/2."""


class CoverProjection:
    """Euclidean projection onto {x in [0, 1]^n : gain . x >= 1} (gain > 0, sum(gain) >= 1).

    The projection of p is clip(p + lam gain, 0, 1) with the least lam >= 0 meeting the constraint;
    gain . x is piecewise linear in lam, with breakpoints where an element leaves 0 or reaches 1, so
    one sort of the breakpoints and a cumulative sum of the slopes give lam exactly.
    """

    def __init__(self, gain: np.ndarray) -> None:
        self.gain = gain
        self.inverse_gain = 1.0 / gain
        self.negative_inverse_gain = -self.inverse_gain
        self.slope_change = np.concatenate((gain * gain, -gain * gain))
        self.covered = np.zeros(2 * len(gain))

    def __call__(self, point: np.ndarray) -> np.ndarray:
        leave_zero = point * self.negative_inverse_gain
        breakpoints = np.concatenate((leave_zero, leave_zero + self.inverse_gain))
        order = breakpoints.argsort()
        breakpoints = breakpoints[order]
        slope = self.slope_change[order].cumsum()
        covered = self.covered  # covered[0] stays 0: below every breakpoint nothing is covered
        (slope[:-1] * (breakpoints[1:] - breakpoints[:-1])).cumsum(out=covered[1:])
        # Clamped for a sum(gain) a rounding error short of 1: the last segment's slope is > 0.
        segment = min(covered.searchsorted(1.0), len(covered) - 1) - 1
        # The lam where gain . x reaches 1, or 0 where clip(point) already meets the constraint.
        multiplier = max(breakpoints[segment] + (1.0 - covered[segment]) / slope[segment], 0.0)
        return (point + multiplier * self.gain).clip(0.0, 1.0)


def solve_apo(instance: GscloInstance, config: ApoConfig = ApoConfig(),
              trace: list[ApoIterate] | None = None) -> UplinkSolution:
    """A feasible binary switching vector whenever one exists (see `trivial_upload` otherwise).
    `trace`, when given, receives an ApoIterate for the ranking start and one per penalty iteration."""
    started = time.perf_counter()
    upload = trivial_upload(instance)
    iterations = 0
    if upload is None:
        frames = instance.candidates.nonzero()[0]
        extra_energy = instance.extra_energy[frames]
        energy_scale = extra_energy.sum() / len(frames)
        cost = extra_energy / energy_scale
        gain = instance.quality_gain[frames]
        # Within QUALITY_TOLERANCE, uploading every candidate may be what is needed and a little short.
        gain = gain / min(instance.required_gain, gain.sum())
        rank = (cost / gain).argsort()
        chosen = _cheapest_cover(rank, np.zeros(len(frames), dtype=bool), gain)
        relaxed, iterations = _penalty_iterations(chosen.astype(np.float64), cost, gain, config, trace,
                                                  instance.pose_energy.sum(), energy_scale)
        chosen = _cheapest_cover(rank, relaxed > 0.5, gain)  # round, then repair by rank
        chosen = _drop_unneeded(chosen, cost, gain)  # before, so the boundary holds needed uploads only
        chosen = _reoptimise_boundary(chosen, rank, cost, gain, config.boundary_frames)
        chosen = _drop_and_swap(chosen, cost, gain, config.swap_rounds)
        upload = np.zeros(instance.frames, dtype=bool)
        upload[frames] = chosen
    return evaluate(instance, upload, method="apo", solve_time=time.perf_counter() - started,
                    iterations=iterations)


def _penalty_iterations(x: np.ndarray, cost: np.ndarray, gain: np.ndarray, config: ApoConfig,
                        trace: list[ApoIterate] | None, base_energy: float, energy_scale: float):
    """(relaxed x, iterations) of the accelerated proximal DC iterations from x."""
    project = CoverProjection(gain)
    step_cost = config.step * cost
    movement = np.zeros_like(x)
    momentum = 1.0
    penalty = config.initial_penalty
    iterations = 0
    if trace is not None:
        _record(trace, x, cost, penalty, base_energy, energy_scale)
    for iterations in range(1, config.max_iterations + 1):
        next_momentum = 0.5 * (1.0 + math.sqrt(1.0 + 4.0 * momentum * momentum))
        extrapolated = x + ((momentum - 1.0) / next_momentum) * movement
        # Tangent of the concave penalty at the extrapolated point y (a majoriser), so the step is a
        # projected gradient step y - step (cost + penalty (1 - 2 y)), grouped to spare array passes.
        scaled_penalty = config.step * penalty
        new_x = project(extrapolated * (1.0 + 2.0 * scaled_penalty) - (step_cost + scaled_penalty))
        movement = new_x - x
        x = new_x
        if trace is not None:
            _record(trace, x, cost, penalty, base_energy, energy_scale)
        if x @ (1.0 - x) <= config.tolerance or abs(movement).max() <= config.tolerance:
            break
        momentum = next_momentum
        penalty *= config.penalty_growth
    return x, iterations


def _record(trace: list[ApoIterate], x: np.ndarray, cost: np.ndarray, penalty: float, base_energy: float,
            energy_scale: float) -> None:
    spread = float(x @ (1.0 - x))
    energy = base_energy + energy_scale * float(cost @ x)
    trace.append(ApoIterate(penalty, energy + energy_scale * penalty * spread, energy, 4.0 * spread / len(x)))


def _cheapest_cover(rank: np.ndarray, chosen: np.ndarray, gain: np.ndarray) -> np.ndarray:
    """`chosen` plus the first unchosen frames in `rank` order until gain . chosen >= 1."""
    shortfall = 1.0 - SLACK_TOLERANCE - gain @ chosen
    if shortfall <= 0.0:
        return chosen
    missing = rank[~chosen[rank]]
    added = gain[missing].cumsum().searchsorted(shortfall) + 1
    chosen = chosen.copy()
    chosen[missing[:added]] = True
    return chosen


@functools.cache
def _all_choices(count: int) -> np.ndarray:
    """Every 0/1 vector of length `count`, as rows (2^count, count) of floats."""
    return ((np.arange(2 ** count)[:, None] >> np.arange(count)) & 1).astype(np.float64)


def _reoptimise_boundary(chosen: np.ndarray, rank: np.ndarray, cost: np.ndarray, gain: np.ndarray,
                         count: int) -> np.ndarray:
    """The least-cost feasible choice over the `count` frames nearest the rounding boundary in `rank`
    order (the rest kept): the knapsack "core", where rounding errs."""
    in_order = chosen[rank]
    uploads, others = rank[in_order], rank[~in_order]
    upload_count = min(count // 2, len(uploads))
    boundary = np.concatenate((uploads[len(uploads) - upload_count:], others[:count - upload_count]))
    if not len(boundary):
        return chosen
    choices = _all_choices(len(boundary))
    needed = 1.0 - SLACK_TOLERANCE - gain @ chosen + gain[boundary[:upload_count]].sum()
    price = np.where(choices @ gain[boundary] >= needed, choices @ cost[boundary], np.inf)
    best = price.argmin()
    if not price[best] < cost[boundary[:upload_count]].sum():  # keep the current choice on ties
        return chosen
    chosen = chosen.copy()
    chosen[boundary] = choices[best] > 0.5
    return chosen


def _drop_and_swap(chosen: np.ndarray, cost: np.ndarray, gain: np.ndarray, swap_rounds: int) -> np.ndarray:
    """Unneeded uploads dropped, then up to `swap_rounds` best 1-swaps (one upload for one pose-only
    frame that still meets the constraint), dropping again after each."""
    chosen = _drop_unneeded(chosen, cost, gain)
    for _ in range(swap_rounds):
        slack = gain @ chosen - 1.0 + SLACK_TOLERANCE
        inside, outside = chosen.nonzero()[0], (~chosen).nonzero()[0]
        if not (len(inside) and len(outside)):
            break
        saving = cost[inside, None] - cost[None, outside]
        saving[gain[None, outside] - gain[inside, None] < -slack] = 0.0
        best = saving.argmax()
        if saving.flat[best] <= 1e-12:
            break
        row, column = divmod(best, len(outside))
        chosen[inside[row]], chosen[outside[column]] = False, True
        chosen = _drop_unneeded(chosen, cost, gain)
    return chosen


def _drop_unneeded(chosen: np.ndarray, cost: np.ndarray, gain: np.ndarray) -> np.ndarray:
    """Removes, most expensive first, uploads the constraint does not need."""
    chosen = chosen.copy()
    while True:
        slack = gain @ chosen - 1.0 + SLACK_TOLERANCE
        droppable = chosen & (gain <= slack)
        if not droppable.any():
            return chosen
        chosen[np.argmax(np.where(droppable, cost, -np.inf))] = False
