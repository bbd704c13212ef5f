"""The uplink channel: link budget numbers, the closed-form least power and the energy it implies."""
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mixed_reality.uplink.channel import Channel, ChannelConfig


def test_noise_power_and_path_loss_of_the_defaults():
    channel = Channel()
    # -174 dBm/Hz + 60 dB (1 MHz) + 7 dB noise figure = -107 dBm.
    assert 10.0 * math.log10(channel.noise_power() / 1e-3) == pytest.approx(-107.0)
    assert channel.path_loss(1.0) == pytest.approx(46.8)
    assert channel.path_loss(100.0) == pytest.approx(46.8 + 60.0)
    assert channel.path_loss(0.1) == pytest.approx(46.8)  # nearer than d0 counts as d0
    assert channel.distance(150.0, 15.0) == pytest.approx(6.0 - 1.8)


@settings(max_examples=200, deadline=None)
@given(bits=st.floats(100.0, 1e6), latency=st.floats(0.01, 1.0), gain_db=st.floats(-140.0, -60.0))
def test_least_power_meets_the_latency_exactly(bits, latency, gain_db):
    channel = Channel()
    gain = 10.0 ** (gain_db / 10.0)
    power = channel.min_power(bits, latency, gain)
    assert channel.airtime(bits, power, gain) == pytest.approx(latency, rel=1e-9)
    assert channel.airtime(bits, power * (1.0 - 1e-6), gain) > latency


@settings(max_examples=100, deadline=None)
@given(bits=st.floats(100.0, 1e6), gain_db=st.floats(-140.0, -60.0))
def test_energy_grows_with_power(bits, gain_db):
    channel = Channel()
    gain = 10.0 ** (gain_db / 10.0)
    powers = np.geomspace(1e-9, 10.0, 400)
    energy = powers * channel.airtime(bits, powers, gain)
    assert np.all(np.diff(energy) > 0.0)


def test_a_jpeg_fits_most_frames_but_costs_far_more_than_a_pose():
    channel = Channel()
    gains = channel.gain(np.full(20000, 100.0), np.random.default_rng(0))
    image_power = channel.min_power(8 * 30_000, 0.1, gains)
    pose_power = channel.min_power(8 * 100, 0.1, gains)
    assert 0.9 < np.mean(image_power <= channel.config.max_power) < 1.0
    assert np.all(image_power / pose_power > 500.0)
    assert np.all(pose_power <= channel.config.max_power)


def test_fading_is_exponential_per_frame_or_off():
    channel = Channel()
    draws = channel.gain(np.full(50000, 40.0), np.random.default_rng(1)) / channel.mean_gain(40.0)
    assert np.mean(draws) == pytest.approx(1.0, abs=0.02)
    assert np.var(draws) == pytest.approx(1.0, abs=0.05)
    flat = Channel(ChannelConfig(rayleigh_fading=False))
    assert np.all(flat.gain(np.full(3, 40.0), np.random.default_rng(1)) == flat.mean_gain(40.0))


@pytest.mark.parametrize("values, message", [({"bandwidth": 0.0}, "bandwidth: must be >="),
                                             ({"max_power": -1.0}, "max_power: must be >="),
                                             ({"path_loss_exponent": float("nan")}, "path_loss_exponent")])
def test_bad_channel_configs_are_refused(values, message):
    with pytest.raises(ValueError, match=message):
        ChannelConfig(**values)
