"""APO: binary, feasible whenever the exact solver finds a feasible vector, never cheaper than it; its
projection step is the exact Euclidean projection; bad configs are refused."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.optimize import linprog

from mixed_reality.uplink.apo import ApoConfig, ApoIterate, CoverProjection, _drop_unneeded, _swap, solve_apo
from mixed_reality.uplink.channel import Channel, ChannelConfig
from mixed_reality.uplink.exact import solve_exact
from mixed_reality.uplink.problem import random_instance


@settings(max_examples=120, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), frames=st.sampled_from([1, 3, 10, 50, 100]))
def test_apo_is_binary_feasible_and_never_beats_the_optimum(seed, frames):
    instance = random_instance(frames, np.random.default_rng(seed))
    exact, apo = solve_exact(instance), solve_apo(instance)
    assert apo.upload.dtype == bool and apo.method == "apo"
    assert apo.feasible == exact.feasible
    assert not np.any(apo.upload & ~instance.upload_feasible)
    if exact.feasible:
        assert apo.total_energy >= exact.total_energy * (1.0 - 1e-9)


def test_apo_is_near_the_optimum_on_typical_windows():
    rng = np.random.default_rng(0)
    gaps = []
    while len(gaps) < 40:
        instance = random_instance(50, rng)
        exact = solve_exact(instance)
        if exact.feasible and exact.upload.any():
            gaps.append(solve_apo(instance).total_energy / exact.total_energy - 1.0)
    assert np.mean(np.array(gaps) <= 0.01) >= 0.9


def test_infeasible_uploads_are_never_chosen():
    # The access point 400 m down the street: most images cannot meet the latency at p_max.
    channel = Channel(ChannelConfig(access_point_x=-300.0))
    rng = np.random.default_rng(5)
    for _ in range(20):
        instance = random_instance(60, rng, channel=channel)
        assert instance.upload_feasible.mean() < 0.8
        for solution in (solve_apo(instance), solve_exact(instance)):
            assert not np.any(solution.upload & ~instance.upload_feasible)


@settings(max_examples=200, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), size=st.integers(1, 40))
def test_projection_is_the_euclidean_projection(seed, size):
    rng = np.random.default_rng(seed)
    gain = rng.uniform(0.05, 1.0, size)
    gain *= rng.uniform(1.0, 3.0) / gain.sum()  # sum(gain) >= 1: the set is not empty
    point = rng.normal(0.5, 1.5, size)
    projected = CoverProjection(gain)(point)
    assert np.all((projected >= 0.0) & (projected <= 1.0))
    assert gain @ projected >= 1.0 - 1e-9
    # Obtuse-angle condition: (point - projected) . (z - projected) <= 0 for every z in the set.
    others = rng.uniform(0.0, 1.0, (200, size))
    others = others[others @ gain >= 1.0]
    assert np.all((others - projected) @ (point - projected) <= 1e-9)


@pytest.mark.parametrize("seed", [2, 26])
def test_the_trace_starts_at_the_relaxation_optimum_and_settles_on_a_vertex(seed):
    instance = random_instance(50, np.random.default_rng(seed), quality_threshold=31.0)
    config = ApoConfig(tolerance=1e-6, max_iterations=60)
    trace: list[ApoIterate] = []
    solution = solve_apo(instance, config, trace=trace)
    assert len(trace) == solution.iterations + 1 >= 2
    # The start is the optimum of the linear relaxation (HiGHS's LP solution has the same energy, to
    # its feasibility tolerance), a vertex of the box cut by the quality constraint: at most one
    # fractional frame.
    frames = instance.candidates
    relaxation = linprog(instance.extra_energy[frames], A_ub=-instance.quality_gain[frames][None, :],
                         b_ub=[-instance.required_gain], bounds=(0.0, 1.0), method="highs")
    assert trace[0].energy == pytest.approx(instance.pose_energy.sum() + relaxation.fun, rel=1e-5)
    assert trace[0].binarity <= 1.0 / frames.sum() + 1e-12
    assert all(b.penalty == pytest.approx(a.penalty * config.penalty_growth) for a, b in zip(trace[1:], trace[2:]))
    # The iterates stay on vertices (the relaxation is linear) and never beat the relaxation.
    assert all(item.binarity <= 1.0 / frames.sum() + 1e-12 for item in trace)
    assert all(item.objective >= item.energy >= trace[0].energy * (1.0 - 1e-9) for item in trace)


def test_the_iterations_move_where_the_start_is_not_stationary():
    # Seed 26: the growing penalty pushes the fractional frame of the relaxation's optimum to 0 or 1.
    instance = random_instance(50, np.random.default_rng(26), quality_threshold=31.0)
    trace: list[ApoIterate] = []
    solution = solve_apo(instance, ApoConfig(tolerance=1e-6, max_iterations=60), trace=trace)
    assert solution.iterations >= 3 and trace[0].binarity > 0.0 == trace[-1].binarity


def test_without_iterations_apo_still_returns_a_feasible_vector():
    instance = random_instance(50, np.random.default_rng(4), quality_threshold=31.0)
    solution = solve_apo(instance, ApoConfig(max_iterations=0, boundary_frames=0, swap_rounds=0))
    assert solution.feasible and solution.iterations == 0


@pytest.mark.parametrize("values, message", [({"penalty_growth": 0.5}, "penalty_growth: must be >= 1.0"),
                                             ({"step": 0.0}, "step: must be >="),
                                             ({"boundary_frames": 20}, "boundary_frames: must be <= 16")])
def test_bad_apo_configs_are_refused(values, message):
    with pytest.raises(ValueError, match=message):
        ApoConfig(**values)


@settings(max_examples=200, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), size=st.integers(2, 30))
def test_one_swap_round_makes_the_best_feasible_exchange(seed, size):
    rng = np.random.default_rng(seed)
    cost, gain = rng.uniform(0.1, 2.0, size), rng.uniform(0.05, 1.0, size)
    gain /= rng.uniform(0.2, 0.9) * gain.sum()
    chosen = _drop_unneeded(rng.random(size) < 0.6, cost, gain)
    if gain @ chosen < 1.0:
        return
    # Every exchange of one upload for one pose-only frame, by brute force.
    exchanges = [(cost[i] - cost[j], i, j) for i in np.flatnonzero(chosen) for j in np.flatnonzero(~chosen)
                 if gain @ chosen - gain[i] + gain[j] >= 1.0 - 1e-9]
    swapped = _swap(chosen, cost, gain, swap_rounds=1)
    best = max(exchanges, default=(0.0, 0, 0))
    if best[0] <= 1e-12:
        assert np.array_equal(swapped, chosen)
    else:
        expected = chosen.copy()
        expected[best[1]], expected[best[2]] = False, True
        assert np.array_equal(swapped, _drop_unneeded(expected, cost, gain))
