"""GSCLO instances and `evaluate`: per-frame least energies, forced pose-only frames, latency violations."""
import numpy as np
import pytest

from mixed_reality.uplink.channel import Channel, ChannelConfig
from mixed_reality.uplink.problem import GscloInstance, evaluate, random_instance, trivial_upload

FLAT = Channel(ChannelConfig(rayleigh_fading=False))


def small_instance(**overrides):
    values = dict(image_bits=[240e3, 160e3, 320e3], pose_bits=800.0, gains=FLAT.mean_gain(np.array([20.0, 60.0, 90.0])),
                  image_quality=[38.0, 40.0, 36.0], render_quality=[25.0, 18.0, 28.0], latency=0.1,
                  quality_threshold=30.0, channel=FLAT)
    values.update(overrides)
    return GscloInstance(**values)


def test_evaluate_sends_every_frame_at_its_least_power_within_the_latency():
    instance = small_instance()
    solution = evaluate(instance, [True, False, True])
    bits = np.array([240e3, 800.0, 320e3])
    assert np.allclose(solution.power, FLAT.min_power(bits, 0.1, instance.gains))
    assert np.allclose(solution.energy, solution.power * FLAT.airtime(bits, solution.power, instance.gains))
    assert np.allclose(solution.energy, solution.power * 0.1)
    assert solution.total_energy == pytest.approx(solution.energy.sum())
    assert solution.mean_quality == pytest.approx((38.0 + 18.0 + 36.0) / 3)
    assert solution.feasible and solution.latency_violations == 0 and solution.upload_count == 2
    assert not evaluate(instance, [False, False, True]).feasible  # (25 + 18 + 36) / 3 < 30


def test_an_image_beyond_p_max_is_never_uploaded():
    far = FLAT.mean_gain(2000.0)
    instance = small_instance(gains=np.array([FLAT.mean_gain(20.0), far, far]))
    assert instance.upload_feasible.tolist() == [True, False, False]
    assert np.isinf(instance.image_energy[1:]).all()
    with pytest.raises(ValueError, match=r"frames \[1\] cannot meet the latency"):
        evaluate(instance, [True, True, False])


def test_a_pose_beyond_p_max_goes_at_p_max_and_counts_a_violation():
    tiny = Channel(ChannelConfig(rayleigh_fading=False, max_power=1e-6))
    instance = small_instance(gains=tiny.mean_gain(np.array([20.0, 20.0, 5000.0])), channel=tiny)
    solution = evaluate(instance, [False, False, False])
    assert solution.latency_violations == 1
    assert solution.power[2] == pytest.approx(1e-6)
    assert solution.energy[2] == pytest.approx(1e-6 * tiny.airtime(800.0, 1e-6, instance.gains[2]))
    assert solution.energy[2] > 1e-6 * 0.1


def test_trivial_windows():
    assert not trivial_upload(small_instance(quality_threshold=20.0)).any()  # renders alone suffice
    assert trivial_upload(small_instance(quality_threshold=39.0)).all()  # out of reach: every candidate
    assert trivial_upload(small_instance()) is None


def test_random_instances_stay_in_the_simulated_ranges():
    rng = np.random.default_rng(3)
    for _ in range(20):
        instance = random_instance(100, rng)
        assert np.all((instance.image_bits >= 8 * 15e3) & (instance.image_bits <= 8 * 45e3))
        assert np.all((instance.image_quality >= 35.0) & (instance.image_quality <= 42.0))
        assert np.all((instance.render_quality >= 15.0) & (instance.render_quality <= 30.0))
        assert instance.render_quality.mean() <= instance.quality_threshold <= instance.image_quality.max()
    assert np.mean([random_instance(50, rng).upload_feasible.mean() for _ in range(50)]) > 0.8


@pytest.mark.parametrize("overrides, message", [
    ({"gains": [1e-9, 1e-9]}, "gains: must have the shape"),
    ({"image_bits": [0.0, 1.0, 2.0]}, "image_bits: must be > 0"),
    ({"latency": 0.0}, "latency: must be > 0"),
    ({"render_quality": [1.0, np.nan, 2.0]}, "must be finite"),
])
def test_bad_instances_are_refused(overrides, message):
    with pytest.raises(ValueError, match=message):
        small_instance(**overrides)
