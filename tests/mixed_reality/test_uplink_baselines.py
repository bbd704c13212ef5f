"""The baselines behave as their names say, and every registered method returns a usable solution."""
import numpy as np
import pytest

from mixed_reality.uplink.baselines import (METHODS, always_upload, fixed_max_power, least_sufficient_threshold,
                                            never_upload, random_switching, threshold_switching)
from mixed_reality.uplink.problem import random_instance


@pytest.fixture
def instances():
    rng = np.random.default_rng(8)
    return [random_instance(80, rng) for _ in range(15)]


def test_always_upload_shows_the_best_quality_and_never_upload_spends_the_least(instances):
    rng = np.random.default_rng(0)
    for instance in instances:
        solutions = {name: method(instance, rng) for name, method in METHODS.items()}
        best_quality = max(solution.mean_quality for solution in solutions.values())
        least_energy = min(solution.total_energy for solution in solutions.values())
        assert solutions["always_upload"].mean_quality == pytest.approx(best_quality)
        assert solutions["never_upload"].total_energy == pytest.approx(least_energy)
        assert np.array_equal(solutions["always_upload"].upload, instance.upload_feasible)
        assert not solutions["never_upload"].upload.any()
        for name, solution in solutions.items():
            assert not np.any(solution.upload & ~instance.upload_feasible), name
            assert solution.upload.shape == (instance.frames,)


def test_random_switching_makes_the_asked_number_of_uploads(instances):
    rng = np.random.default_rng(1)
    for instance, count in zip(instances, range(0, 80, 6)):
        solution = random_switching(instance, count, rng)
        assert solution.upload_count == min(count, instance.upload_feasible.sum())
        assert not np.any(solution.upload & ~instance.upload_feasible)


def test_fixed_max_power_costs_at_least_the_least_power_energy(instances):
    for instance in instances:
        upload = METHODS["apo"](instance, None).upload
        least = METHODS["apo"](instance, None)
        at_max = fixed_max_power(instance, upload)
        assert np.all(at_max.energy >= least.energy * (1.0 - 1e-12))
        assert np.allclose(at_max.power, instance.channel.config.max_power)
        assert at_max.latency_violations == 0  # more power only shortens the airtime
        assert at_max.mean_quality == pytest.approx(least.mean_quality)


def test_threshold_switching_uploads_where_the_prediction_is_poor(instances):
    instance = instances[0]
    solution = threshold_switching(instance, instance.render_quality, 22.0)
    assert np.array_equal(solution.upload, instance.upload_feasible & (instance.render_quality < 22.0))
    assert not threshold_switching(instance, instance.render_quality, 0.0).upload.any()
    assert np.array_equal(always_upload(instance).upload, threshold_switching(instance, instance.render_quality,
                                                                              100.0).upload)
    assert never_upload(instance).mean_quality == pytest.approx(instance.render_quality.mean())


def test_the_threshold_method_uses_the_least_threshold_that_meets_the_constraint(instances):
    for instance in instances:
        if not instance.has_feasible_solution or instance.required_gain <= 0.0:
            continue
        threshold = least_sufficient_threshold(instance)
        assert METHODS["threshold"](instance, np.random.default_rng(0)).feasible
        lower = threshold_switching(instance, instance.render_quality, np.nextafter(threshold, -np.inf))
        assert not lower.feasible
