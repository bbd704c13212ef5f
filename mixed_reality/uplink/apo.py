"""APO: accelerated penalty optimisation of GSCLO. The binary choice is relaxed to x in [0, 1] with
each frame's energy interpolated linearly, the penalty rho sum x(1 - x) pushes x to 0/1, and the
difference-of-convex problem is solved by proximal steps whose concave part is linearised at a
Nesterov-extrapolated point while rho grows geometrically, from the relaxation's optimum (the
fractional knapsack by rank). Each step is the projection onto the box and the one quality
constraint, solved exactly by a sort over its dual breakpoints. The result is rounded, repaired and
improved into a feasible binary switching vector (docs/gsrmr.md)."""
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
    one sort of the breakpoints and a cumulative sum of the slopes give lam exactly. The work arrays
    are allocated once here and reused by every call (APO calls it once per iteration).
    """

    def __init__(self, gain: np.ndarray) -> None:
        size = len(gain)
        self.gain = gain
        self.inverse_gain = 1.0 / gain
        self.negative_inverse_gain = -self.inverse_gain
        # One allocation for the slope changes (gain^2 where x leaves 0, -gain^2 where it reaches 1)
        # and the work arrays.
        self.slope_change, self.breakpoints, self.sorted_breakpoints, self.slope, self.covered = np.empty((5, 2 * size))
        np.negative(np.multiply(gain, gain, out=self.slope_change[:size]), out=self.slope_change[size:])
        self.leave_zero, self.reach_one = self.breakpoints[:size], self.breakpoints[size:]
        self.covered[0] = 0.0  # and stays: below every breakpoint nothing is covered
        self.covered_above = self.covered[1:]
        self.widths = (self.sorted_breakpoints[1:], self.sorted_breakpoints[:-1], self.slope[:-1])

    def __call__(self, point: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """The projection of `point`, written into `out` when given (it must not be `point`)."""
        np.multiply(point, self.negative_inverse_gain, out=self.leave_zero)
        np.add(self.leave_zero, self.inverse_gain, out=self.reach_one)
        order = self.breakpoints.argsort()
        breakpoints = self.breakpoints.take(order, out=self.sorted_breakpoints)
        slope = np.add.accumulate(self.slope_change.take(order, out=self.slope), out=self.slope)
        upper, lower, slope_below = self.widths
        covered = np.subtract(upper, lower, out=self.covered_above)
        covered *= slope_below
        np.add.accumulate(covered, out=covered)
        # Clamped for a sum(gain) a rounding error short of 1: the last segment's slope is > 0.
        segment = min(self.covered.searchsorted(1.0), len(self.covered) - 1) - 1
        # The lam where gain . x reaches 1, or 0 where clip(point) already meets the constraint.
        multiplier = max(breakpoints.item(segment) + (1.0 - self.covered.item(segment)) / slope.item(segment), 0.0)
        projected = np.multiply(self.gain, multiplier, out=out)
        projected += point
        np.maximum(projected, 0.0, out=projected)
        return np.minimum(projected, 1.0, out=projected)


def solve_apo(instance: GscloInstance, config: ApoConfig = ApoConfig(),
              trace: list[ApoIterate] | None = None) -> UplinkSolution:
    """A feasible binary switching vector whenever one exists (see `trivial_upload` otherwise).
    `trace`, when given, receives an ApoIterate for the start (the relaxation's optimum) and one per
    penalty iteration."""
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
        relaxed, iterations = _penalty_iterations(_relaxation_optimum(rank, gain), cost, gain, config, trace,
                                                  instance.pose_energy.sum(), energy_scale)
        chosen = _cheapest_cover(rank, relaxed > 0.5, gain)  # round, then repair by rank
        chosen = _drop_unneeded(chosen, cost, gain)  # before, so the boundary holds needed uploads only
        improved = _reoptimise_boundary(chosen, rank, cost, gain, config.boundary_frames)
        if improved is not chosen:  # else nothing is droppable: it was just dropped
            improved = _drop_unneeded(improved, cost, gain)
        chosen = _swap(improved, cost, gain, config.swap_rounds)
        upload = np.zeros(instance.frames, dtype=bool)
        upload[frames] = chosen
    return evaluate(instance, upload, method="apo", solve_time=time.perf_counter() - started,
                    iterations=iterations)


def _penalty_iterations(x: np.ndarray, cost: np.ndarray, gain: np.ndarray, config: ApoConfig,
                        trace: list[ApoIterate] | None, base_energy: float, energy_scale: float):
    """(relaxed x, iterations) of the accelerated proximal DC iterations from x."""
    project = CoverProjection(gain)
    step_cost = config.step * cost
    # Work arrays reused by every iteration: the gradient point, the next iterate, x - x_previous
    # and scratch for the convergence tests.
    point, spare, movement, scratch = np.empty((4, len(x)))
    movement.fill(0.0)
    momentum = 1.0
    penalty = config.initial_penalty
    iterations = 0
    if trace is not None:
        _record(trace, x, cost, penalty, base_energy, energy_scale)
    for iterations in range(1, config.max_iterations + 1):
        next_momentum = 0.5 * (1.0 + math.sqrt(1.0 + 4.0 * momentum * momentum))
        extrapolation = (momentum - 1.0) / next_momentum
        # Tangent of the concave penalty at the extrapolated point y = x + extrapolation (x - x_previous)
        # (a majoriser), so the step is a projected gradient step y - step (cost + penalty (1 - 2 y)),
        # grouped as y (1 + 2 step penalty) - (step cost + step penalty) to spare array passes.
        scaled_penalty = config.step * penalty
        if extrapolation:
            np.multiply(movement, extrapolation, out=point)
            point += x
            point *= 1.0 + 2.0 * scaled_penalty
        else:  # the first iteration: y = x
            np.multiply(x, 1.0 + 2.0 * scaled_penalty, out=point)
        point -= np.add(step_cost, scaled_penalty, out=scratch)
        new_x = project(point, out=spare)
        np.subtract(new_x, x, out=movement)
        x, spare = new_x, x
        if trace is not None:
            _record(trace, x, cost, penalty, base_energy, energy_scale)
        if (x @ np.subtract(1.0, x, out=scratch) <= config.tolerance
                or np.abs(movement, out=scratch).max() <= config.tolerance):
            break
        momentum = next_momentum
        penalty *= config.penalty_growth
    return x, iterations


def _relaxation_optimum(rank: np.ndarray, gain: np.ndarray) -> np.ndarray:
    """The optimum of the linear relaxation min cost . x over {x in [0, 1]^n : gain . x >= 1} (the
    fractional knapsack): the frames in `rank` order (cost / gain ascending) at 1 until the next
    one, at the fraction that makes gain . x = 1, completes the cover; the rest at 0."""
    covered = gain[rank].cumsum()
    last = min(covered.searchsorted(1.0), len(rank) - 1)  # clamped as in CoverProjection
    x = np.zeros(len(rank))
    x[rank[:last]] = 1.0
    x[rank[last]] = min((1.0 - (covered.item(last - 1) if last else 0.0)) / gain.item(rank.item(last)), 1.0)
    return x


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


def _swap(chosen: np.ndarray, cost: np.ndarray, gain: np.ndarray, swap_rounds: int) -> np.ndarray:
    """Up to `swap_rounds` best 1-swaps (one upload for one pose-only frame that still meets the
    constraint) of a vector without unneeded uploads, dropping those after each swap."""
    chosen = chosen.copy()
    for _ in range(swap_rounds):
        inside, outside = chosen.nonzero()[0], (~chosen).nonzero()[0]
        if not (len(inside) and len(outside)):
            break
        slack = gain @ chosen - 1.0 + SLACK_TOLERANCE
        # Upload i may give way to pose-only j where gain_j >= gain_i - slack: the best partner of i
        # is the cheapest pose-only frame above that gain, a suffix minimum in gain order.
        by_gain = outside[gain[outside].argsort()]
        cheapest_above = np.append(np.minimum.accumulate(cost[by_gain][::-1])[::-1], np.inf)
        first = gain[by_gain].searchsorted(gain[inside] - slack)
        saving = cost[inside] - cheapest_above[first]
        row = saving.argmax()
        if saving.item(row) <= 1e-12:
            break
        partners = by_gain[first.item(row):]
        chosen[inside.item(row)], chosen[partners[cost[partners].argmin()]] = False, True
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
