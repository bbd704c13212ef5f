"""Kinematic bicycle model of the ego and its place in the world."""
import math
from dataclasses import replace

import numpy as np
import pytest

from sim.ego import EgoVehicle
from sim.scenario import EgoConfig, ParkedConfig, TrafficConfig
from sim.world import World
from sim_fixtures import scenario


def _drive(ego: EgoVehicle, seconds: float, linear: float, angular: float, dt: float = 0.05) -> None:
    for _ in range(round(seconds / dt)):
        ego.step(dt, linear, angular)


def test_straight_line_at_constant_speed():
    ego = EgoVehicle(EgoConfig(), 0.0, 0.0, 0.3, 10.0)
    _drive(ego, 5.0, 10.0, 0.0)
    assert (ego.x, ego.y) == pytest.approx((50 * math.cos(0.3), 50 * math.sin(0.3)), abs=1e-9)
    assert ego.yaw == pytest.approx(0.3) and ego.speed == 10.0 and ego.yaw_rate == 0.0


def test_turning_radius_is_v_over_w():
    ego = EgoVehicle(EgoConfig(), 0.0, 0.0, 0.0, 5.0)
    _drive(ego, 2.0, 5.0, 0.5)  # let the steering settle
    assert ego.steering == pytest.approx(math.atan(0.5 * 2.7 / 5.0))
    assert ego.yaw_rate == pytest.approx(0.5)
    radius = 5.0 / 0.5
    center = np.array([ego.x - radius * math.sin(ego.yaw), ego.y + radius * math.cos(ego.yaw)])
    for _ in range(40):
        _drive(ego, 0.25, 5.0, 0.5)
        assert np.hypot(ego.x - center[0], ego.y - center[1]) == pytest.approx(radius, abs=1e-6)


def test_limits_on_steering_speed_and_acceleration():
    config = EgoConfig()
    ego = EgoVehicle(config, 0.0, 0.0, 0.0, 0.0)
    _drive(ego, 1.0, 50.0, 0.0)
    assert ego.speed == pytest.approx(config.max_acceleration * 1.0)
    _drive(ego, 20.0, 50.0, 0.0)
    assert ego.speed == config.max_speed
    _drive(ego, 1.0, 5.0, 100.0)
    assert ego.steering == pytest.approx(config.max_steering)
    assert ego.speed == pytest.approx(config.max_speed - config.max_deceleration)
    _drive(ego, 10.0, -10.0, 0.0)
    assert ego.speed == -config.max_reverse_speed


def test_world_ego_starts_in_its_lane_and_follows_commands():
    world = World(scenario("urban_default"), seed=0)
    x, y, yaw = world.ego_pose
    start = world.scenario.ego
    assert (x, y, yaw) == pytest.approx((start.start_s, world.road.lane_offsets[start.lane], 0.0))
    assert world.lane_directions[start.lane] == 1
    assert world.ego_velocity == (start.speed, 0.0)
    world.step(1.0, start.speed, 0.0)
    assert world.time == pytest.approx(1.0)
    assert world.ego_pose[0] == pytest.approx(x + start.speed)
    assert not world.in_collision()


def test_driving_onto_the_kerb_is_a_collision():
    quiet = replace(scenario("urban_default"), parked=ParkedConfig(fill=0.0), traffic=TrafficConfig(count=0))
    world = World(quiet, seed=0)
    for _ in range(100):
        world.step(0.1, 6.0, -0.3)
        if world.in_collision():
            break
    assert world.in_collision()
    corners = world.ego_box().corners_bev()
    assert corners[:, 1].min() < -world.road.half_width < corners[:, 1].max()
