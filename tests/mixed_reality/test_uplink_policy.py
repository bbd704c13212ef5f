"""The receding-window policy: the running mean quality honours the threshold on a feasible stream,
its decisions are consistent, and bad configs are refused."""
import numpy as np
import pytest

from mixed_reality.uplink.baselines import always_upload
from mixed_reality.uplink.channel import Channel, ChannelConfig
from mixed_reality.uplink.policy import RecedingWindowPolicy, UplinkPolicyConfig
from mixed_reality.uplink.problem import random_instance

# The robot stays within ~60 m of the access point: every image can meet the latency.
NEAR = Channel(ChannelConfig(access_point_x=0.0))


def stream(frames: int, seed: int):
    rng = np.random.default_rng(seed)
    while True:
        instance = random_instance(frames, rng, quality_threshold=30.0, channel=NEAR, frame_interval=0.01)
        if instance.upload_feasible.all():
            return instance


def run(policy: RecedingWindowPolicy, instance):
    return [policy.decide(instance.image_bits[t], instance.pose_bits[t], instance.gains[t],
                          instance.image_quality[t], instance.render_quality[t]) for t in range(instance.frames)]


@pytest.mark.parametrize("method, window", [("apo", 30), ("exact", 10), ("apo", 1)])
def test_running_mean_stays_above_the_threshold(method, window):
    instance = stream(150, seed=window)
    decisions = run(RecedingWindowPolicy(UplinkPolicyConfig(window=window, method=method), NEAR), instance)
    running = np.array([decision.running_quality for decision in decisions])
    assert np.all(running >= 30.0 - 1e-9)
    assert sum(d.energy for d in decisions) < always_upload(instance).total_energy
    assert 0 < sum(d.upload for d in decisions) < instance.frames


def test_decisions_are_consistent_with_the_channel():
    instance = stream(40, seed=3)
    decisions = run(RecedingWindowPolicy(UplinkPolicyConfig(window=20), NEAR), instance)
    for t, decision in enumerate(decisions):
        bits = instance.image_bits[t] if decision.upload else instance.pose_bits[t]
        assert decision.payload_bits == round(bits)
        assert decision.power == pytest.approx(NEAR.min_power(bits, 0.1, instance.gains[t]))
        assert decision.energy == pytest.approx(decision.power * 0.1)
        assert decision.image_energy >= decision.energy
        assert decision.expected_quality == (instance.image_quality[t] if decision.upload
                                             else instance.render_quality[t])
        assert not decision.latency_violation


def test_reset_forgets_the_running_mean():
    instance = stream(20, seed=4)
    policy = RecedingWindowPolicy(UplinkPolicyConfig(window=10), NEAR)
    run(policy, instance)
    policy.reset()
    assert policy.frames == 0 and policy.quality_sum == 0.0
    first = run(policy, instance)[0]
    assert first.running_quality == first.expected_quality


@pytest.mark.parametrize("values, message", [({"method": "magic"}, "method: must be one of apo, exact"),
                                             ({"window": 0}, "window: must be >= 1"),
                                             ({"latency": 0.0}, "latency: must be >=")])
def test_bad_policy_configs_are_refused(values, message):
    with pytest.raises(ValueError, match=message):
        UplinkPolicyConfig(**values)
