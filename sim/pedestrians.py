"""Pedestrians crossing the road at crossings, back and forth, with simple gap acceptance.

Each crossing has walking lines WALKWAY_SPACING apart along the road, one pedestrian per line, so
pedestrians never walk into each other. A pedestrian waits on the sidewalk, then crosses; before stepping into the next
lane (or parking strip) it checks the road users in it and stands still while one is close or
approaching. Vehicles treat pedestrians on the road as obstacles and stop for them; like at a
zebra crossing they also give way to the road just ahead of a crossing pedestrian (its intent)
when they can still stop for it.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from perception.objects import ObjectClass
from sim.geometry import BoxSet
from sim.materials import draw_colors
from sim.object_models import draw_sizes
from sim.obstacles import AgentState, Obstacles
from sim.road import RoadGeometry
from sim.scenario import PedestrianConfig
from sim.transforms import wrap_angle

CLOTHING_COLORS = np.array([[40, 40, 60], [120, 30, 30], [200, 200, 190], [60, 90, 140], [90, 80, 60]],
                           dtype=np.float64)
"""Clothing colours (RGB) that per-pedestrian colours are drawn around."""
WALKWAY_SPACING = 1.2
"""Distance between neighbouring walking lines of a crossing, metres (pedestrians are <= 0.7 m)."""
CLAIM_MARGIN = 0.3
"""Lateral space a pedestrian keeps free around itself on the road, metres."""
KERB_SETBACK = 0.6
"""Waiting spot behind the kerb, metres."""
STOPPED_SPEED = 0.5
"""Road users slower than this count as stopped, m/s."""
STOPPED_CLEARANCE = 0.3
"""Pedestrians pass stopped road users at least this far away, metres (less than the gap vehicles
keep to them, traffic.STANDSTILL_GAP, so a vehicle giving way is never waited for)."""
INTENT_DISTANCE = 1.5
"""A crossing pedestrian's intent covers this much of the road ahead of it, metres."""
WAITING, CROSSING = 0, 1


class Pedestrians:
    """A fixed number of pedestrian slots; inactive slots wait for a free crossing in the window."""

    def __init__(self, config: PedestrianConfig, road: RoadGeometry, rng: np.random.Generator,
                 next_id: Callable[[], int]) -> None:
        self.config = config
        self.road = road
        self._rng = rng
        self._next_id = next_id
        lines = max(1, int(road.config.crosswalk_width // WALKWAY_SPACING))
        offsets = (np.arange(lines) - (lines - 1) / 2.0) * WALKWAY_SPACING
        self.walkway_s = (road.crosswalks[:, None] + offsets[None, :]).reshape(-1)
        """s of every walking line, metres."""
        self.waiting_offset = road.half_width + KERB_SETBACK
        """|d| of the waiting spots, metres."""
        # The regions a pedestrian checks before stepping in: each lane and each parking strip.
        lane_low, lane_high = road.lane_interval(np.arange(road.lane_count))
        self._region_low = np.append(lane_low, [-road.half_width, road.travel_half_width])
        self._region_high = np.append(lane_high, [-road.travel_half_width, road.half_width])
        count = config.count
        self.active = np.zeros(count, dtype=bool)
        self.ids = np.full(count, -1, dtype=np.int64)
        self.walkway = np.full(count, -1, dtype=np.int64)
        self.d = np.zeros(count)
        self.direction = np.ones(count)
        """+1 walking towards +d, -1 towards -d (also the way a waiting pedestrian faces)."""
        self.speed = np.ones(count)
        self.state = np.zeros(count, dtype=np.int64)
        self.moving = np.zeros(count, dtype=bool)
        self.wait_until = np.zeros(count)
        self.sizes = np.zeros((count, 3))
        self.colors = np.zeros((count, 3), dtype=np.uint8)

    @property
    def s(self) -> np.ndarray:
        return self.walkway_s[self.walkway]

    def _claims(self, index) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Half length along s and lateral interval (low, high) each pedestrian keeps free."""
        half = self.sizes[index, :2].max(axis=1) / 2.0 + CLAIM_MARGIN
        return half, self.d[index] - half, self.d[index] + half

    def obstacles(self) -> Obstacles:
        """Active pedestrians as obstacles."""
        index = np.flatnonzero(self.active)
        half, low, high = self._claims(index)
        return Obstacles(self.s[index], half, low, high, np.zeros(len(index)))

    def intents(self) -> Obstacles:
        """The road just ahead of each crossing pedestrian, for traffic that can still give way."""
        index = np.flatnonzero(self.active & (self.state == CROSSING))
        half, low, high = self._claims(index)
        front = np.where(self.direction[index] > 0, high, low)
        ahead = front + self.direction[index] * INTENT_DISTANCE
        return Obstacles(self.s[index], half, np.minimum(front, ahead), np.maximum(front, ahead),
                         np.zeros(len(index)))

    def agent_state(self) -> AgentState:
        """Active pedestrians standing on the road or the sidewalk, facing their walking direction."""
        index = np.flatnonzero(self.active)
        s = self.s[index]
        ground = np.where(np.abs(self.d[index]) > self.road.half_width, self.road.config.kerb_height, 0.0)
        xy = self.road.to_map(s, self.d[index]).reshape(-1, 2)
        boxes = BoxSet(np.column_stack([xy, ground + self.sizes[index, 2] / 2.0]), self.sizes[index],
                       wrap_angle(self.road.heading(s) + self.direction[index] * np.pi / 2.0))
        _, normal = self.road.tangent_normal(s)
        lateral_speed = np.where(self.moving[index], self.direction[index] * self.speed[index], 0.0)
        return AgentState(self.ids[index], np.full(len(index), int(ObjectClass.PEDESTRIAN)), boxes,
                          lateral_speed[:, None] * normal.reshape(-1, 2), np.zeros(len(index)), self.colors[index])

    def _free_walkways(self, window: tuple[float, float], ego_s: float, min_distance: float) -> np.ndarray:
        """Walking lines without a pedestrian, inside the window and at least min_distance from the ego."""
        taken = np.zeros(len(self.walkway_s), dtype=bool)
        taken[self.walkway[self.active]] = True
        inside = (self.walkway_s >= window[0]) & (self.walkway_s <= window[1])
        return np.flatnonzero(~taken & inside & (np.abs(self.walkway_s - ego_s) >= min_distance))

    def _spawn(self, slot: int, walkway: int, time: float, others: Obstacles, mid_crossing: bool) -> None:
        """A fresh pedestrian on `walkway`: waiting on a sidewalk, or (mid_crossing) somewhere on the road."""
        config = self.config
        self.active[slot] = True
        self.ids[slot] = self._next_id()
        self.walkway[slot] = walkway
        self.sizes[slot] = draw_sizes(self._rng, [ObjectClass.PEDESTRIAN])[0]
        self.colors[slot] = draw_colors(self._rng, CLOTHING_COLORS, 1)[0]
        self.speed[slot] = self._rng.uniform(config.speed_min, config.speed_max)
        side = self._rng.choice([-1.0, 1.0])
        self.direction[slot] = -side
        self.d[slot] = side * self.waiting_offset
        self.state[slot] = WAITING
        self.moving[slot] = False
        self.wait_until[slot] = time + self._rng.uniform(config.wait_min, config.wait_max)
        if mid_crossing:
            d = self._rng.uniform(-self.road.half_width, self.road.half_width)
            half = self.sizes[slot, :2].max() / 2.0 + CLAIM_MARGIN
            along = np.abs(others.s - self.walkway_s[walkway]) - others.half_length - half
            if not np.any(others.overlapping(np.array([d - half]), np.array([d + half]))[0] & (along < 0.0)):
                self.d[slot], self.state[slot] = d, CROSSING

    def populate(self, window: tuple[float, float], ego_s: float, others: Obstacles) -> None:
        """Put every pedestrian on a free walkway in the window, about half of them mid-crossing."""
        for slot in range(self.config.count):
            free = self._free_walkways(window, ego_s, 0.0)
            if len(free):
                self._spawn(slot, int(self._rng.choice(free)), 0.0, others, mid_crossing=self._rng.random() < 0.5)

    def respawn(self, window: tuple[float, float], ego_s: float, min_distance: float, time: float,
                others: Obstacles) -> None:
        """Move pedestrians whose crossing left the window to free crossings at least min_distance from the ego."""
        s = self.s
        for slot in np.flatnonzero(~self.active | (s < window[0]) | (s > window[1])):
            self.active[slot] = False
            free = self._free_walkways(window, ego_s, min_distance)
            if len(free):
                self._spawn(slot, int(self._rng.choice(free)), time, others, mid_crossing=False)

    def step(self, dt: float, time: float, others: Obstacles) -> None:
        """Advance dt seconds among `others` (vehicles and the ego)."""
        index = np.flatnonzero(self.active)
        starting = index[(self.state[index] == WAITING) & (self.wait_until[index] <= time)]
        self.state[starting] = CROSSING
        walking = index[self.state[index] == CROSSING]
        self.moving[index] = False
        if len(walking) == 0:
            return
        half, low, high = self._claims(walking)
        direction = self.direction[walking]
        new_d = self.d[walking] + direction * self.speed[walking] * dt
        entering = self._overlaps(new_d - half, new_d + half) & ~self._overlaps(low, high)
        blocked = np.any(entering & self._busy_regions(self.s[walking], half, others), axis=1)
        moving = walking[~blocked]
        self.d[moving] = new_d[~blocked]
        self.moving[moving] = True

        target = self.direction * self.waiting_offset
        arrived = walking[self.direction[walking] * (self.d[walking] - target[walking]) >= 0.0]
        self.d[arrived] = target[arrived]
        self.direction[arrived] *= -1.0
        self.state[arrived] = WAITING
        self.wait_until[arrived] = time + self._rng.uniform(self.config.wait_min, self.config.wait_max, len(arrived))

    def _overlaps(self, low: np.ndarray, high: np.ndarray) -> np.ndarray:
        """Whether each interval overlaps each lane or parking strip, boolean (K, R)."""
        return (low[:, None] < self._region_high[None, :]) & (self._region_low[None, :] < high[:, None])

    def _busy_regions(self, s: np.ndarray, half: np.ndarray, others: Obstacles) -> np.ndarray:
        """Lanes or strips holding a road user close to, or approaching, each walkway (K, R)."""
        offset = s[:, None] - others.s[None, :]
        distance = np.abs(offset) - others.half_length[None, :] - half[:, None]
        closing = others.speed[None, :] * np.sign(offset)
        reach = np.where(closing > STOPPED_SPEED, np.maximum(self.config.clearance, closing * self.config.accept_time),
                         STOPPED_CLEARANCE)
        threat = distance < reach
        occupancy = others.overlapping(self._region_low, self._region_high)  # (R, M)
        return threat.astype(np.float32) @ occupancy.T.astype(np.float32) > 0.0
