"""The exact solver (HiGHS at zero gap) against enumeration of every switching vector on small windows."""
import dataclasses

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mixed_reality.uplink.exact import solve_exact
from mixed_reality.uplink.problem import QUALITY_TOLERANCE, GscloInstance, random_instance


def brute_force(instance: GscloInstance):
    """(least energy, its upload vector) over all 2^T vectors, or (None, None) when none is feasible."""
    frames = instance.frames
    vectors = ((np.arange(2 ** frames)[:, None] >> np.arange(frames)) & 1).astype(bool)
    vectors = vectors[~(vectors & ~instance.upload_feasible).any(axis=1)]
    quality = np.where(vectors, instance.image_quality, instance.render_quality).sum(axis=1)
    vectors = vectors[quality >= frames * (instance.quality_threshold - QUALITY_TOLERANCE)]
    if not len(vectors):
        return None, None
    energy = np.where(vectors, instance.image_energy, instance.pose_energy).sum(axis=1)
    return energy.min(), vectors[energy.argmin()]


def instance_from(seed: int, frames: int, level: float) -> GscloInstance:
    """A random window whose threshold lies `level` of the way from the mean render quality to the
    best mean (beyond 1: infeasible)."""
    rng = np.random.default_rng(seed)
    instance = random_instance(frames, rng)
    low = instance.render_quality.mean()
    high = np.maximum(instance.image_quality, instance.render_quality).mean()
    return dataclasses.replace(instance, quality_threshold=low + level * (high - low))


@settings(max_examples=150, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), frames=st.integers(1, 12), level=st.floats(-0.1, 1.05))
def test_exact_equals_brute_force(seed, frames, level):
    instance = instance_from(seed, frames, level)
    best, _ = brute_force(instance)
    solution = solve_exact(instance)
    assert solution.feasible == (best is not None)
    assert not np.any(solution.upload & ~instance.upload_feasible)
    if best is not None:
        assert solution.total_energy == pytest.approx(best, rel=1e-9)


def test_infeasible_window_uploads_every_candidate():
    instance = instance_from(7, 30, 1.5)
    solution = solve_exact(instance)
    assert not solution.feasible
    assert np.array_equal(solution.upload, instance.candidates)


def test_exact_solves_a_long_window():
    instance = instance_from(11, 200, 0.5)
    solution = solve_exact(instance, time_limit=10.0)
    assert solution.feasible and solution.method == "exact"
    assert solution.solve_time < 10.0
