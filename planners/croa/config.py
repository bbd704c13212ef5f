"""Typed configuration of the CROA planner: the ego vehicle it plans for and the problem's tuning."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from sim.validation import check_ranges


@dataclass
class VehicleConfig:
    """The ego car as the planner models it: a kinematic bicycle about the rear axle (base_link)."""

    wheelbase: float = field(default=2.7, metadata={"range": (1.0, 6.0)})
    """Distance between the axles, metres."""
    length: float = field(default=4.6, metadata={"range": (1.5, 12.0)})
    """Body length, metres."""
    width: float = field(default=1.9, metadata={"range": (1.0, 3.0)})
    """Body width, metres."""
    rear_overhang: float = field(default=0.95, metadata={"range": (0.0, 4.0)})
    """Body length behind the rear axle (base_link), metres."""
    max_speed: float = field(default=15.0, metadata={"range": (0.5, 50.0)})
    """Fastest planned forward speed, m/s (the planner never plans to reverse)."""
    max_steering: float = field(default=0.5, metadata={"range": (0.05, 1.2)})
    """Largest front-wheel steering angle, radians."""
    max_steering_rate: float = field(default=1.0, metadata={"range": (0.05, 10.0)})
    """Fastest steering change, rad/s."""
    max_acceleration: float = field(default=2.5, metadata={"range": (0.1, 10.0)})
    """Largest planned speed increase, m/s^2."""
    max_deceleration: float = field(default=5.0, metadata={"range": (0.1, 12.0)})
    """Largest planned speed decrease (also the fallback's braking), m/s^2."""
    sensor_x: float = field(default=0.0, metadata={"range": (-5.0, 10.0)})
    """Lidar position ahead of base_link, metres (its line-of-sight origin)."""
    sensor_y: float = field(default=0.0, metadata={"range": (-3.0, 3.0)})
    """Lidar position left of base_link, metres."""

    def __post_init__(self) -> None:
        check_ranges(self)
        if self.wheelbase + self.rear_overhang > self.length:
            raise ValueError(f"length: must cover wheelbase + rear_overhang "
                             f"({self.wheelbase + self.rear_overhang}), got {self.length}")

    @property
    def sensor_mount(self) -> np.ndarray:
        """The lidar's (x, y) on base_link."""
        return np.array([self.sensor_x, self.sensor_y])

    def body_boxes(self, poses: np.ndarray) -> np.ndarray:
        """The body as boxes (N, 7) x, y, z, l, w, h, yaw (z and h 0) for base_link poses (N, 3)."""
        poses = np.asarray(poses, dtype=np.float64).reshape(-1, 3)
        forward = self.length / 2.0 - self.rear_overhang
        boxes = np.zeros((len(poses), 7))
        boxes[:, :2] = poses[:, :2] + forward * np.column_stack([np.cos(poses[:, 2]), np.sin(poses[:, 2])])
        boxes[:, 3:5] = self.length, self.width
        boxes[:, 6] = poses[:, 2]
        return boxes


@dataclass
class CroaConfig:
    """The CROA problem: horizon, costs, collision and occlusion terms, the CCP loop and the solver."""

    horizon: int = field(default=20, metadata={"range": (2, 100)})
    """Planned steps."""
    time_step: float = field(default=0.1, metadata={"range": (0.01, 1.0)})
    """Seconds between planned states."""
    max_obstacles: int = field(default=10, metadata={"range": (0, 50)})
    """Obstacles (nearest to the planned path) given collision constraints; the problem's size is fixed by it."""
    max_occluders: int = field(default=3, metadata={"range": (0, 20)})
    """Occluders (nearest to the lines of sight) in the occlusion term."""
    target_samples: int = field(default=6, metadata={"range": (1, 64)})
    """Points on the target's outline whose lines of sight are scored."""
    occlusion_poses: int = field(default=2, metadata={"range": (1, 100)})
    """Planned poses (evenly spaced, ending at the last) from which the target's sight lines are scored."""
    safety_distance: float = field(default=0.6, metadata={"range": (0.0, 10.0)})
    """Smallest planned gap between the ego's body and any obstacle, metres (d_safe)."""
    safety_slack_weight: float = field(default=1e4, metadata={"range": (0.0, 1e8)})
    """Cost per metre of safety distance given up, per obstacle and step (penalty CCP; a plan whose
    body truly touches an obstacle is refused afterwards)."""
    time_headway: float = field(default=0.8, metadata={"range": (0.0, 5.0)})
    """Extra gap to an obstacle ahead in the ego's path, seconds at the ego's planned speed (a
    following distance; a leader that brakes against its prediction is not rear-ended)."""
    max_heading_offset: float = field(default=0.35, metadata={"range": (0.01, 3.2)})
    """Largest planned heading off the lane's direction, radians (hard, beyond what the ego has now)."""
    road_margin: float = field(default=0.3, metadata={"range": (0.0, 5.0)})
    """Gap kept between the ego's side and the drivable corridor's edges, metres."""
    reference_speed: float = field(default=7.0, metadata={"range": (0.0, 50.0)})
    """Speed the planner keeps when nothing else matters, m/s."""
    speed_weight: float = field(default=1.0, metadata={"range": (0.0, 1e4)})
    """Cost per (m/s)^2 of deviation from the reference speed, per step."""
    lateral_weight: float = field(default=0.1, metadata={"range": (0.0, 1e4)})
    """Cost per m^2 of lateral offset from the reference lane, per step."""
    heading_weight: float = field(default=2.0, metadata={"range": (0.0, 1e4)})
    """Cost per rad^2 of heading off the road's direction, per step."""
    acceleration_weight: float = field(default=0.5, metadata={"range": (0.0, 1e4)})
    """Cost per (m/s^2)^2 of acceleration, per step."""
    steering_weight: float = field(default=5.0, metadata={"range": (0.0, 1e4)})
    """Cost per rad^2 of steering angle, per step."""
    steering_rate_weight: float = field(default=50.0, metadata={"range": (0.0, 1e5)})
    """Cost per (rad/step)^2 of steering change, per step."""
    corridor_weight: float = field(default=1000.0, metadata={"range": (0.0, 1e7)})
    """Cost per metre (or radian) per step of using the road margin (or exceeding the heading
    bound); the corridor is hard beyond the margin."""
    trust_weight: float = field(default=0.5, metadata={"range": (0.0, 1e4)})
    """Cost per m^2 of moving a planned position from the previous iterate (keeps the linearisation valid)."""
    occlusion_weight: float = field(default=200.0, metadata={"range": (0.0, 1e5)})
    """Cost per unit of mean occlusion probability of the target's sight lines, per scored pose."""
    target_lateral_weight: float = field(default=0.6, metadata={"range": (0.0, 1e4)})
    """Cost per m^2 of the sensor's offset from the target across the road, per scored pose: lidar
    returns per m^2 fall with range, so a view that is as clear but nearer is better."""
    target_lateral_range: float = field(default=15.0, metadata={"range": (1.0, 1e3)})
    """Sensor-to-target range (m) up to which target_lateral_weight applies in full; beyond it the
    weight falls with the squared range (the share of the range the lateral gap makes)."""
    occlusion_length_scale: float = field(default=0.5, metadata={"range": (0.01, 10.0)})
    """Separation (m) between a sight line and an occluder over which the occlusion probability falls by 1/e."""
    goal_weight: float = field(default=10.0, metadata={"range": (0.0, 1e4)})
    """Cost per m^2 of the last planned position's distance from a viewpoint goal (greedy baseline only)."""
    back_out_after: int = field(default=20, metadata={"range": (0, 10000)})
    """Cycles in a row the ego may plan to go nowhere (under 0.5 m over the horizon) while askew
    to its lane before it backs out (0: never). From standing, a car it faces closer than its
    turning circle cannot be passed forwards, and the horizon is too short to see that creeping
    round it pays."""
    back_out_heading: float = field(default=0.15, metadata={"range": (0.0, 3.2)})
    """Least heading off the lane (rad) for backing out: aligned with its lane (queueing behind a
    stopped car) the ego waits."""
    back_out_distance: float = field(default=2.0, metadata={"range": (0.1, 20.0)})
    """How far the ego backs out, metres, steering towards the lane's direction; a way back that
    comes within safety_distance of an obstacle (at its predicted poses) is not taken."""
    back_out_speed: float = field(default=1.0, metadata={"range": (0.1, 5.0)})
    """Top reversing speed, m/s."""
    ccp_iterations: int = field(default=4, metadata={"range": (1, 50)})
    """Most convex-concave iterations per planning cycle."""
    ccp_tolerance: float = field(default=0.01, metadata={"range": (0.0, 1.0)})
    """Stop iterating when the cost improves by less than this fraction."""
    ccp_position_tolerance: float = field(default=0.05, metadata={"range": (0.0, 10.0)})
    """...or when no planned position moved more than this from the previous iterate, metres."""
    ccp_scale: float = field(default=2.0, metadata={"range": (0.1, 100.0)})
    """Scale kappa of the difference-of-convex split a.p = |ka + p/k|^2/4 - |ka - p/k|^2/4 (metres per dual unit)."""
    solver: str = "CLARABEL"
    """cvxpy solver for the convex subproblems (CLARABEL or SCS; chosen by bench/bench_croa.py)."""
    solver_tolerance: float = field(default=1e-3, metadata={"range": (1e-9, 1e-1)})
    """Relative and absolute duality-gap and feasibility tolerance given to the solver."""
    time_budget: float = field(default=2.0, metadata={"range": (0.01, 60.0)})
    """Wall seconds one planning cycle may take: each solve is given what is left of it as the
    solver's time limit, and a cycle that runs past it gives the braking fallback (its plan would
    come too late to follow). Generous by default: on 2 busy cores a cycle takes well under 1 s (the
    main job's p99 215 ms). The first cycle of a planner, whose solve compiles the problem, has no
    budget (croa_planner plans once in its warm-up)."""

    def __post_init__(self) -> None:
        check_ranges(self)
        if self.solver not in ("CLARABEL", "SCS"):
            raise ValueError(f"solver: must be CLARABEL or SCS (second-order cones), got {self.solver!r}")
        if self.occlusion_poses > self.horizon:
            raise ValueError(f"occlusion_poses: must be <= horizon ({self.horizon}), got {self.occlusion_poses}")
