"""Moving vehicles: IDM car following and MOBIL-style lane changes along the road's lanes.

Vehicles live in Frenet coordinates within a window along the road around the ego. Each follows
the nearest road user ahead whose lateral claim overlaps its own (vehicles, pedestrians on the
road, the ego). A vehicle that leaves the window is replaced by a new one (new object id) entering
from the opposite edge, so the road around the ego stays populated.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from perception.objects import ObjectClass
from sim.geometry import BoxSet
from sim.materials import VEHICLE_PAINTS, draw_colors
from sim.object_models import OBJECT_MODELS, draw_sizes, draw_vehicle_classes
from sim.obstacles import AgentState, Obstacles, idm_acceleration
from sim.road import RoadGeometry
from sim.scenario import TrafficConfig
from sim.transforms import wrap_angle

CAR = OBJECT_MODELS[ObjectClass.CAR]
STANDSTILL_GAP = 0.5
"""No vehicle ever moves closer than this to the obstacle ahead, metres (a hard guard below IDM)."""
MAX_BRAKING = 9.0
"""Strongest braking, m/s^2."""
LANE_CHANGE_MIN_SPEED = 1.0
"""Slower vehicles do not start lane changes, m/s."""
LANE_CHANGE_CHECK_PERIOD = 1.0
"""Mean time between a vehicle's lane-change decisions, s."""
MAX_CORNER_SWING = 0.15
"""While changing lanes a vehicle turns so little that its corners move at most this far sideways,
metres: long vehicles change lanes slowly and never swing into parked ones."""
SPAWN_ATTEMPTS = 40
"""Random placements tried for a vehicle before giving up until the next step."""
YIELD_DECELERATION = 5.0
"""Vehicles give way to a pedestrian's intent (the road it is about to step onto) when they can stop
for it braking at most this hard, m/s^2; otherwise they drive on."""
EDGE_BAND = 30.0
"""New vehicles appear this far inside the window edge or less, metres."""


class Traffic:
    """A fixed number of vehicle slots; inactive slots wait for free space to spawn."""

    def __init__(self, config: TrafficConfig, road: RoadGeometry, rng: np.random.Generator,
                 next_id: Callable[[], int]) -> None:
        self.config = config
        self.road = road
        self._rng = rng
        self._next_id = next_id
        count = config.count
        self.active = np.zeros(count, dtype=bool)
        self.ids = np.full(count, -1, dtype=np.int64)
        self.classes = np.zeros(count, dtype=np.int64)
        self.sizes = np.zeros((count, 3))
        self.colors = np.zeros((count, 3), dtype=np.uint8)
        self.lanes = np.zeros(count, dtype=np.int64)
        """Lane each vehicle drives in or is changing into."""
        self.s = np.zeros(count)
        self.d = np.zeros(count)
        self.speed = np.zeros(count)
        """Forward speed along the lane direction, m/s (never negative)."""
        self.lateral_speed = np.zeros(count)
        """Rate of change of d, m/s."""
        self.desired_speed = np.ones(count)
        self.max_acceleration = np.ones(count)
        self.comfortable_deceleration = np.ones(count)
        self.next_lane_check = np.zeros(count)
        self.yaw_rates = np.zeros(count)

    @property
    def directions(self) -> np.ndarray:
        return self.road.lane_directions[self.lanes]

    def _drift(self, index) -> np.ndarray:
        """Heading relative to the lane direction while changing lanes, radians."""
        return np.arctan2(self.directions[index] * self.lateral_speed[index], np.maximum(self.speed[index], 1.0))

    def _claims(self, index) -> tuple[np.ndarray, np.ndarray]:
        """Lateral interval claimed by vehicles: their (possibly turned) body and their (target) lane."""
        lane_low, lane_high = self.road.lane_interval(self.lanes[index])
        drift = self._drift(index)
        half_width = (self.sizes[index, 0] * np.abs(np.sin(drift)) + self.sizes[index, 1] * np.cos(drift)) / 2.0
        return np.minimum(self.d[index] - half_width, lane_low), np.maximum(self.d[index] + half_width, lane_high)

    def obstacles(self) -> Obstacles:
        """Active vehicles as obstacles, in the order of np.flatnonzero(self.active)."""
        index = np.flatnonzero(self.active)
        low, high = self._claims(index)
        return Obstacles(self.s[index], self.sizes[index, 0] / 2.0, low, high,
                         self.directions[index] * self.speed[index])

    def _yaws(self, index) -> np.ndarray:
        """Heading: the lane's direction turned by the lane-change drift."""
        reverse = np.where(self.directions[index] > 0, 0.0, np.pi)
        return wrap_angle(self.road.heading(self.s[index]) + reverse + self._drift(index))

    def state(self) -> AgentState:
        """Active vehicles, standing on the road."""
        index = np.flatnonzero(self.active)
        xy = self.road.to_map(self.s[index], self.d[index]).reshape(-1, 2)
        centers = np.column_stack([xy, self.sizes[index, 2] / 2.0])
        tangent, normal = self.road.tangent_normal(self.s[index])
        velocities = ((self.directions[index] * self.speed[index])[:, None] * tangent.reshape(-1, 2)
                      + self.lateral_speed[index, None] * normal.reshape(-1, 2))
        boxes = BoxSet(centers, self.sizes[index], self._yaws(index))
        return AgentState(self.ids[index], self.classes[index], boxes, velocities, self.yaw_rates[index],
                          self.colors[index])

    def _spawn(self, slot: int, lanes: np.ndarray, s_low: float, s_high: float, others: Obstacles) -> bool:
        """Place a fresh vehicle in `slot` at a free spot in one of `lanes` within [s_low, s_high]."""
        if s_high <= s_low:
            return False
        label = int(draw_vehicle_classes(self._rng, self.config.class_mix.probabilities(), 1)[0])
        size = draw_sizes(self._rng, [label])[0]
        desired_speed = self._rng.uniform(self.config.speed_min, self.config.speed_max)
        clearance = self.config.min_gap + desired_speed * self.config.time_headway
        occupied = Obstacles.concatenate([self.obstacles(), others])
        for _ in range(SPAWN_ATTEMPTS):
            lane = int(self._rng.choice(lanes))
            s = self._rng.uniform(s_low, s_high)
            low, high = self.road.lane_interval(lane)
            along = np.abs(occupied.s - s) - occupied.half_length - size[0] / 2.0
            if np.any(occupied.overlapping(low, high)[0] & (along < clearance)):
                continue
            model = OBJECT_MODELS[label]
            self.active[slot] = True
            self.ids[slot] = self._next_id()
            self.classes[slot], self.sizes[slot] = label, size
            self.colors[slot] = draw_colors(self._rng, VEHICLE_PAINTS, 1)[0]
            self.lanes[slot], self.s[slot], self.d[slot] = lane, s, self.road.lane_offsets[lane]
            self.speed[slot] = self.desired_speed[slot] = desired_speed
            self.lateral_speed[slot] = self.yaw_rates[slot] = 0.0
            self.max_acceleration[slot] = model.max_acceleration
            self.comfortable_deceleration[slot] = model.comfortable_deceleration
            self.next_lane_check[slot] = 0.0  # decide at once; later decisions are spread out randomly
            return True
        return False

    def populate(self, window: tuple[float, float], others: Obstacles) -> None:
        """Fill every slot with a vehicle anywhere in the window (at reset)."""
        all_lanes = np.arange(self.road.lane_count)
        for slot in range(self.config.count):
            self._spawn(slot, all_lanes, *window, others)

    def respawn(self, window: tuple[float, float], others: Obstacles) -> None:
        """Replace vehicles that left the window by new ones entering from the opposite edge."""
        low, high = window
        for slot in np.flatnonzero(~self.active | (self.s < low) | (self.s > high)):
            direction = self.road.lane_directions[self.lanes[slot]]
            lanes = np.flatnonzero(self.road.lane_directions == direction)
            self.active[slot] = False
            # Those that fell behind re-enter ahead and vice versa, keeping their direction of travel.
            if self.s[slot] < low or (self.ids[slot] < 0 and self._rng.random() < 0.5):
                self._spawn(slot, lanes, max(high - EDGE_BAND, low), high, others)
            else:
                self._spawn(slot, lanes, low, min(low + EDGE_BAND, high), others)

    def step(self, dt: float, time: float, others: Obstacles, intents: Obstacles) -> None:
        """Advance dt seconds (keep dt small, e.g. <= 0.05 s) among `others` (pedestrians, ego),
        giving way to pedestrians' `intents` where there is room to stop."""
        index = np.flatnonzero(self.active)
        if len(index) == 0:
            return
        config = self.config
        everyone = Obstacles.concatenate([self.obstacles(), others])
        direction = self.directions[index]
        half_length = self.sizes[index, 0] / 2.0
        low, high = self._claims(index)
        gap, leader = everyone.nearest(self.s[index], half_length, direction, low, high)
        leader_speed = np.where(leader >= 0, np.maximum(direction * everyone.speed[leader], 0.0), 0.0)
        intent_gap, _ = intents.nearest(self.s[index], half_length, direction, low, high)
        gives_way = (intent_gap < gap) & (self.speed[index] ** 2 / (2.0 * YIELD_DECELERATION) <= intent_gap)
        gap = np.where(gives_way, intent_gap, gap)
        leader_speed = np.where(gives_way, 0.0, leader_speed)
        acceleration = np.maximum(idm_acceleration(
            self.speed[index], self.desired_speed[index], gap, leader_speed, self.max_acceleration[index],
            self.comfortable_deceleration[index], config.time_headway, config.min_gap), -MAX_BRAKING)
        if config.lane_changes:
            self._change_lanes(index, acceleration, Obstacles.concatenate([everyone, intents]), time)

        yaws_before = self._yaws(index)
        speed = self.speed[index]
        new_speed = np.maximum(speed + acceleration * dt, 0.0)
        advance = 0.5 * (speed + new_speed) * dt
        allowed = np.maximum(gap - STANDSTILL_GAP, 0.0)
        blocked = advance > allowed
        advance = np.minimum(advance, allowed)
        new_speed = np.where(blocked, np.minimum(new_speed, leader_speed), new_speed)
        # Arc length along the lane differs from s by the factor (1 - curvature * d).
        self.s[index] += direction * advance / (1.0 - self.road.curvature * self.d[index])
        self.speed[index] = new_speed

        max_drift = np.arcsin(np.minimum(2.0 * MAX_CORNER_SWING / self.sizes[index, 0], 1.0))
        lateral_limit = np.minimum(self.road.config.lane_width / config.lane_change_duration,
                                   np.tan(max_drift) * new_speed) * dt
        to_lane_centre = self.road.lane_offsets[self.lanes[index]] - self.d[index]
        lateral_step = np.clip(to_lane_centre, -lateral_limit, lateral_limit)
        self.d[index] += lateral_step
        self.lateral_speed[index] = lateral_step / dt
        self.yaw_rates[index] = wrap_angle(self._yaws(index) - yaws_before) / dt

    def _change_lanes(self, index: np.ndarray, acceleration: np.ndarray, everyone: Obstacles, time: float) -> None:
        """MOBIL: move to an adjacent lane when it pays enough and the new follower is safe.

        `everyone` starts with the active vehicles in the order of `index`."""
        config = self.config
        settled = np.abs(self.d[index] - self.road.lane_offsets[self.lanes[index]]) < 0.05
        due = settled & (self.speed[index] > LANE_CHANGE_MIN_SPEED) & (self.next_lane_check[index] <= time)
        for row in np.flatnonzero(due):
            slot = index[row]
            self.next_lane_check[slot] = time + self._rng.uniform(0.5, 1.5) * LANE_CHANGE_CHECK_PERIOD
            direction = self.road.lane_directions[self.lanes[slot]]
            best_gain, best_lane = config.lane_change_threshold, None
            for lane in (self.lanes[slot] - 1, self.lanes[slot] + 1):
                if not 0 <= lane < self.road.lane_count or self.road.lane_directions[lane] != direction:
                    continue
                gain = self._lane_gain(index, row, lane, acceleration, everyone)
                if gain is not None and gain > best_gain:
                    best_gain, best_lane = gain, lane
            if best_lane is not None:
                self.lanes[slot] = best_lane

    def _lane_gain(self, index: np.ndarray, row: int, lane: int, acceleration: np.ndarray,
                   everyone: Obstacles) -> float | None:
        """MOBIL incentive of moving vehicle index[row] into `lane`, or None when unsafe."""
        config = self.config
        slot = index[row]
        low, high = self.road.lane_interval(lane)
        query = dict(s=self.s[slot:slot + 1], half_length=self.sizes[slot:slot + 1, 0] / 2.0,
                     direction=self.road.lane_directions[[lane]], low=np.array([low]), high=np.array([high]))
        front_gap, front = everyone.nearest(**query)
        back_gap, back = everyone.nearest(**query, ahead=False)
        beside = everyone.overlapping(np.array([low]), np.array([high]))[0]
        beside &= np.abs(everyone.s - self.s[slot]) < everyone.half_length + self.sizes[slot, 0] / 2.0
        beside[row] = False
        if np.any(beside) or min(front_gap[0], back_gap[0]) < config.min_gap:
            return None
        direction = self.road.lane_directions[lane]
        speed = self.speed[slot]
        front_speed = max(direction * everyone.speed[front[0]], 0.0) if front[0] >= 0 else 0.0
        new_acceleration = idm_acceleration(speed, self.desired_speed[slot], front_gap[0], front_speed,
                                            self.max_acceleration[slot], self.comfortable_deceleration[slot],
                                            config.time_headway, config.min_gap)
        follower_change = 0.0
        if back[0] >= 0:
            follower_speed = max(direction * everyone.speed[back[0]], 0.0)
            simulated = back[0] < len(index)
            if simulated:
                follower = index[back[0]]
                desired_speed = self.desired_speed[follower]
                max_acceleration, deceleration = self.max_acceleration[follower], self.comfortable_deceleration[follower]
            else:  # the ego or a pedestrian, judged like a car keeping its speed
                desired_speed = max(follower_speed, 1.0)
                max_acceleration, deceleration = CAR.max_acceleration, CAR.comfortable_deceleration
            follower_new = idm_acceleration(follower_speed, desired_speed, back_gap[0], speed, max_acceleration,
                                            deceleration, config.time_headway, config.min_gap)
            if follower_new < -config.safe_deceleration:
                return None
            if simulated:
                follower_change = follower_new - acceleration[back[0]]
        return float(new_acceleration - acceleration[row] + config.politeness * follower_change)
