"""The ego car: a kinematic bicycle model driven by /cmd_vel-like commands.

base_link is the rear-axle centre on the ground. A command (v, w) sets the target speed and the
steering angle atan(w * wheelbase / v) that would give yaw rate w at speed v; both are reached
within the acceleration, steering-angle and steering-rate limits.
"""
from __future__ import annotations

import math

import numpy as np

from sim.geometry import BoxSet
from sim.scenario import EgoConfig

STANDSTILL = 1e-3
"""Commanded speeds below this leave the steering where it is, m/s."""


class EgoVehicle:
    """Pose, speed and steering of the ego car in map."""

    def __init__(self, config: EgoConfig, x: float, y: float, yaw: float, speed: float) -> None:
        self.config = config
        self.x, self.y, self.yaw = float(x), float(y), float(yaw)
        self.speed = float(speed)
        self.steering = 0.0

    @property
    def yaw_rate(self) -> float:
        """rad/s."""
        return self.speed * math.tan(self.steering) / self.config.wheelbase

    def step(self, dt: float, linear_velocity: float, angular_velocity: float) -> None:
        """Advance by dt seconds (keep dt small, e.g. <= 0.05 s) under one command."""
        config = self.config
        target_speed = float(np.clip(linear_velocity, -config.max_reverse_speed, config.max_speed))
        if abs(linear_velocity) > STANDSTILL:
            target_steering = math.atan(angular_velocity * config.wheelbase / linear_velocity)
            target_steering = float(np.clip(target_steering, -config.max_steering, config.max_steering))
            max_change = config.max_steering_rate * dt
            self.steering += float(np.clip(target_steering - self.steering, -max_change, max_change))
        speeding_up = abs(target_speed) > abs(self.speed) and target_speed * self.speed >= 0.0
        limit = (config.max_acceleration if speeding_up else config.max_deceleration) * dt
        new_speed = self.speed + float(np.clip(target_speed - self.speed, -limit, limit))

        distance = 0.5 * (self.speed + new_speed) * dt
        turn = distance * math.tan(self.steering) / config.wheelbase
        if abs(turn) < 1e-9:
            self.x += distance * math.cos(self.yaw)
            self.y += distance * math.sin(self.yaw)
        else:  # exact arc of radius distance / turn
            radius = distance / turn
            self.x += radius * (math.sin(self.yaw + turn) - math.sin(self.yaw))
            self.y -= radius * (math.cos(self.yaw + turn) - math.cos(self.yaw))
        self.yaw = math.remainder(self.yaw + turn, 2.0 * math.pi)
        self.speed = new_speed

    def box(self) -> BoxSet:
        """The body as a one-box BoxSet in map."""
        forward = self.config.length / 2.0 - self.config.rear_overhang
        center = (self.x + forward * math.cos(self.yaw), self.y + forward * math.sin(self.yaw),
                  self.config.height / 2.0)
        return BoxSet(np.array([center]), np.array([[self.config.length, self.config.width, self.config.height]]),
                      np.array([self.yaw]))
