"""Scenario files: typed, validated descriptions of a simulated world.

A scenario is YAML whose keys mirror the dataclasses below; every key is optional and keeps its
default. Map frame (REP-105 `map`): the road starts at the origin and runs along +x (bending left
for positive curvature); y is left, z up. Right-hand traffic: lanes right of the centre line
(y < 0 on a straight road) drive +x, lanes left of it drive -x. Lane index 0 is the rightmost
lane (most negative y), indices grow to the left.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from sim.camera import CameraConfig
from sim.lidar import LidarConfig
from sim.validation import FieldError, check_ranges, config_from_mapping

ROAD_END_MARGIN = 120.0
"""Road surface and ground continue this far beyond both ends of the road, metres."""

MIN_PARKING_LANE_WIDTH = 2.7
"""Narrowest parking strip that holds a bus (2.55 m) off the kerb without reaching into a lane, metres."""


class ScenarioError(ValueError):
    """A scenario file that cannot be used; the message names the file and the field or line."""


def _check_order(config, low_name: str, high_name: str) -> None:
    low, high = getattr(config, low_name), getattr(config, high_name)
    if low > high:
        raise ValueError(f"{high_name}: must be >= {low_name} ({low}), got {high}")


@dataclass
class RoadConfig:
    """Cross-section and course of the road."""

    lanes_per_direction: int = field(default=3, metadata={"range": (1, 6)})
    """Travel lanes in each direction."""
    lane_width: float = field(default=3.5, metadata={"range": (3.0, 5.0)})
    """Width of one travel lane, metres (at least 3 m: buses are 2.55 m wide)."""
    parking_lane_width: float = field(default=2.7, metadata={"range": (0.0, 4.0)})
    """Width of the parking strip between the outermost lane and each kerb, metres; 0 for none."""
    sidewalk_width: float = field(default=3.5, metadata={"range": (2.5, 10.0)})
    """Width of each sidewalk, metres."""
    kerb_height: float = field(default=0.15, metadata={"range": (0.0, 0.5)})
    """Height of kerbs and sidewalks above the road, metres."""
    length: float = field(default=1500.0, metadata={"range": (100.0, 10000.0)})
    """Length of the road along its centre line, metres."""
    curvature: float = field(default=0.0, metadata={"range": (-0.01, 0.01)})
    """Constant curvature of the centre line, 1/m; positive bends left, 0 is straight."""
    crosswalk_spacing: float = field(default=80.0, metadata={"range": (20.0, 1000.0)})
    """Distance between pedestrian crossings along the road, metres."""
    crosswalk_width: float = field(default=4.0, metadata={"range": (2.0, 10.0)})
    """Width of a pedestrian crossing along the road, metres."""

    def __post_init__(self) -> None:
        check_ranges(self)
        if abs(self.curvature) * (self.length + 2 * ROAD_END_MARGIN) > math.pi:
            raise ValueError(f"curvature: the road may turn at most 180 degrees over its length, got "
                             f"{math.degrees(abs(self.curvature) * (self.length + 2 * ROAD_END_MARGIN)):.0f}")


@dataclass
class ClutterConfig:
    """Buildings, walls and poles beside the sidewalks."""

    building_frontage_min: float = field(default=12.0, metadata={"range": (3.0, 200.0)})
    """Shortest building front along the road, metres."""
    building_frontage_max: float = field(default=40.0, metadata={"range": (3.0, 200.0)})
    """Longest building front along the road, metres."""
    building_gap_min: float = field(default=2.0, metadata={"range": (0.0, 200.0)})
    """Shortest gap between neighbouring buildings, metres."""
    building_gap_max: float = field(default=14.0, metadata={"range": (0.0, 200.0)})
    """Longest gap between neighbouring buildings, metres."""
    building_setback_min: float = field(default=0.5, metadata={"range": (0.0, 50.0)})
    """Smallest distance from the sidewalk's outer edge to a building, metres."""
    building_setback_max: float = field(default=6.0, metadata={"range": (0.0, 50.0)})
    """Largest distance from the sidewalk's outer edge to a building, metres."""
    building_depth_min: float = field(default=8.0, metadata={"range": (1.0, 100.0)})
    """Smallest building depth away from the road, metres."""
    building_depth_max: float = field(default=25.0, metadata={"range": (1.0, 100.0)})
    """Largest building depth away from the road, metres."""
    building_height_min: float = field(default=6.0, metadata={"range": (2.0, 200.0)})
    """Lowest building, metres."""
    building_height_max: float = field(default=30.0, metadata={"range": (2.0, 200.0)})
    """Tallest building, metres."""
    wall_probability: float = field(default=0.4, metadata={"range": (0.0, 1.0)})
    """Probability that a gap between buildings is closed by a wall at the sidewalk's edge."""
    wall_height: float = field(default=2.2, metadata={"range": (0.5, 6.0)})
    """Height of walls, metres."""
    pole_spacing: float = field(default=30.0, metadata={"range": (0.0, 1000.0)})
    """Distance between street-light poles along each kerb, metres; 0 for none."""

    def __post_init__(self) -> None:
        check_ranges(self)
        for name in ("building_frontage", "building_gap", "building_setback", "building_depth", "building_height"):
            _check_order(self, f"{name}_min", f"{name}_max")


@dataclass
class ClassMix:
    """Relative frequencies of vehicle classes (any non-negative weights, not all zero)."""

    car: float = field(default=0.75, metadata={"range": (0.0, 1000.0)})
    """Weight of cars (~4.5 x 1.8 x 1.5 m)."""
    van: float = field(default=0.15, metadata={"range": (0.0, 1000.0)})
    """Weight of vans (~5.2 x 2.0 x 2.2 m)."""
    truck: float = field(default=0.06, metadata={"range": (0.0, 1000.0)})
    """Weight of trucks (~8-10 x 2.5 x 3.5 m)."""
    bus: float = field(default=0.04, metadata={"range": (0.0, 1000.0)})
    """Weight of buses (~12 x 2.55 x 3.2 m)."""

    def __post_init__(self) -> None:
        check_ranges(self)
        if self.car + self.van + self.truck + self.bus <= 0.0:
            raise ValueError("car: at least one class weight must be positive")

    def probabilities(self) -> list[float]:
        """Probabilities of car, van, truck, bus (the order of object_models.VEHICLE_CLASSES)."""
        weights = [self.car, self.van, self.truck, self.bus]
        return [weight / sum(weights) for weight in weights]


@dataclass
class ParkedConfig:
    """Vehicles parked along the kerbs (static)."""

    fill: float = field(default=0.6, metadata={"range": (0.0, 1.0)})
    """Fraction of the kerb length occupied by parked vehicles; 0 for none."""
    right_side: bool = True
    """Park along the right kerb (lanes driving +x)."""
    left_side: bool = True
    """Park along the left kerb (lanes driving -x)."""
    gap_min: float = field(default=0.8, metadata={"range": (0.3, 50.0)})
    """Shortest gap between parked vehicles, metres."""
    gap_max: float = field(default=2.5, metadata={"range": (0.3, 50.0)})
    """Longest gap between parked vehicles, metres."""
    class_mix: ClassMix = field(default_factory=ClassMix)
    """Classes of parked vehicles."""

    def __post_init__(self) -> None:
        check_ranges(self)
        _check_order(self, "gap_min", "gap_max")


@dataclass
class TrafficConfig:
    """Moving vehicles: IDM car following and MOBIL-style lane changes."""

    count: int = field(default=24, metadata={"range": (0, 200)})
    """Vehicles kept on the road around the ego."""
    speed_min: float = field(default=8.0, metadata={"range": (0.5, 40.0)})
    """Lowest desired speed, m/s."""
    speed_max: float = field(default=13.0, metadata={"range": (0.5, 40.0)})
    """Highest desired speed, m/s."""
    class_mix: ClassMix = field(default_factory=ClassMix)
    """Classes of moving vehicles."""
    time_headway: float = field(default=1.4, metadata={"range": (0.3, 5.0)})
    """IDM desired time gap to the leader, s."""
    min_gap: float = field(default=2.0, metadata={"range": (0.5, 10.0)})
    """IDM standstill gap to the leader, metres."""
    lane_changes: bool = True
    """Let vehicles change lanes when it pays (MOBIL)."""
    politeness: float = field(default=0.3, metadata={"range": (0.0, 1.0)})
    """MOBIL politeness: weight of the new follower's disadvantage."""
    lane_change_threshold: float = field(default=0.3, metadata={"range": (0.0, 5.0)})
    """MOBIL acceleration gain needed to change lanes, m/s^2."""
    safe_deceleration: float = field(default=3.0, metadata={"range": (0.5, 9.0)})
    """MOBIL safety: the new follower must not need to brake harder than this, m/s^2."""
    lane_change_duration: float = field(default=3.5, metadata={"range": (1.0, 10.0)})
    """Time to move across one lane at cruising speed, s."""

    def __post_init__(self) -> None:
        check_ranges(self)
        _check_order(self, "speed_min", "speed_max")


@dataclass
class PedestrianConfig:
    """Pedestrians crossing the road at crossings, back and forth."""

    count: int = field(default=6, metadata={"range": (0, 100)})
    """Pedestrians kept around the ego."""
    speed_min: float = field(default=1.1, metadata={"range": (0.3, 3.0)})
    """Slowest walking speed, m/s."""
    speed_max: float = field(default=1.5, metadata={"range": (0.3, 3.0)})
    """Fastest walking speed, m/s."""
    wait_min: float = field(default=1.0, metadata={"range": (0.0, 120.0)})
    """Shortest wait on a sidewalk before crossing, s."""
    wait_max: float = field(default=8.0, metadata={"range": (0.0, 120.0)})
    """Longest wait on a sidewalk before crossing, s."""
    accept_time: float = field(default=3.5, metadata={"range": (0.5, 20.0)})
    """A pedestrian enters a lane only if moving traffic in it is further away than this, s..."""
    clearance: float = field(default=4.0, metadata={"range": (0.5, 50.0)})
    """...and further away than this, metres (stopped vehicles may be passed closer)."""

    def __post_init__(self) -> None:
        check_ranges(self)
        _check_order(self, "speed_min", "speed_max")
        _check_order(self, "wait_min", "wait_max")


@dataclass
class SpawnConfig:
    """Where moving agents live: a window along the road around the ego."""

    behind: float = field(default=130.0, metadata={"range": (20.0, 1000.0)})
    """Agents further behind the ego than this are respawned, metres along the road."""
    ahead: float = field(default=220.0, metadata={"range": (20.0, 1000.0)})
    """Agents further ahead of the ego than this are respawned, metres along the road."""
    min_distance: float = field(default=60.0, metadata={"range": (0.0, 1000.0)})
    """Respawned pedestrians appear at least this far from the ego, metres along the road."""

    def __post_init__(self) -> None:
        check_ranges(self)
        _check_order(self, "min_distance", "ahead")


@dataclass
class EgoConfig:
    """The simulated robot car: start state, body and kinematic bicycle limits."""

    lane: int = field(default=1, metadata={"range": (0, 11)})
    """Starting lane index (0 = rightmost, driving +x); the ego faces the lane's direction."""
    start_s: float = field(default=40.0, metadata={"range": (0.0, 10000.0)})
    """Starting distance along the road, metres."""
    speed: float = field(default=0.0, metadata={"range": (0.0, 40.0)})
    """Starting forward speed, m/s."""
    wheelbase: float = field(default=2.7, metadata={"range": (1.0, 6.0)})
    """Distance between the axles, metres."""
    length: float = field(default=4.6, metadata={"range": (1.5, 12.0)})
    """Body length, metres."""
    width: float = field(default=1.9, metadata={"range": (1.0, 3.0)})
    """Body width, metres."""
    height: float = field(default=1.6, metadata={"range": (1.0, 4.0)})
    """Body height, metres."""
    rear_overhang: float = field(default=0.95, metadata={"range": (0.0, 4.0)})
    """Body length behind the rear axle (base_link), metres."""
    max_steering: float = field(default=0.6, metadata={"range": (0.05, 1.2)})
    """Largest front-wheel steering angle, radians."""
    max_steering_rate: float = field(default=1.2, metadata={"range": (0.05, 10.0)})
    """Fastest steering change, rad/s."""
    max_speed: float = field(default=20.0, metadata={"range": (0.5, 50.0)})
    """Fastest forward speed, m/s."""
    max_reverse_speed: float = field(default=3.0, metadata={"range": (0.0, 10.0)})
    """Fastest backward speed, m/s."""
    max_acceleration: float = field(default=3.0, metadata={"range": (0.1, 10.0)})
    """Largest speed increase, m/s^2."""
    max_deceleration: float = field(default=6.0, metadata={"range": (0.1, 12.0)})
    """Largest speed decrease, m/s^2."""

    def __post_init__(self) -> None:
        check_ranges(self)
        if self.wheelbase + self.rear_overhang > self.length:
            raise ValueError(f"length: must cover wheelbase + rear_overhang "
                             f"({self.wheelbase + self.rear_overhang}), got {self.length}")


STAGED_LABELS = ("car", "van", "truck", "bus", "pedestrian")
"""Classes a staged object may have (ObjectClass names in lower case)."""


@dataclass
class StagedObject:
    """A static road user put at a chosen spot relative to the ego's start, e.g. an occluded target
    and the vehicles hiding it; it stands like a parked vehicle and never moves. Randomly parked
    vehicles in its way are left out; moving vehicles treat one standing in the road as a stopped
    obstacle (they queue behind it or change lanes) and crossing pedestrians wait for it."""

    label: str = ""
    """Class: one of car, van, truck, bus, pedestrian."""
    ahead: float = field(default=0.0, metadata={"range": (-1000.0, 1000.0)})
    """Distance along the road from the ego's start_s to the object's centre, metres, counted in the
    ego lane's driving direction (negative: behind the ego)."""
    d: float = field(default=0.0, metadata={"range": (-60.0, 60.0)})
    """Lateral Frenet offset of the centre, metres (d < 0 right of the centre line; lanes at
    RoadGeometry.lane_offsets). On a sidewalk (|d| beyond the kerb) it stands on the kerb height."""
    yaw: float = field(default=0.0, metadata={"range": (-2.0 * math.pi, 2.0 * math.pi)})
    """Heading relative to the road's +s direction at the object, radians (pi faces -s)."""
    size: list[float] = field(default_factory=list, metadata={"range": (0.1, 30.0)})
    """Length, width, height, metres; empty for the class's mean size (sim.object_models)."""
    target: bool = False
    """The object of interest (at most one per scenario)."""

    def __post_init__(self) -> None:
        if self.label not in STAGED_LABELS:
            raise ValueError(f"label: must be one of {', '.join(STAGED_LABELS)}, got {self.label!r}")
        check_ranges(self)
        if len(self.size) not in (0, 3):
            raise ValueError(f"size: must be empty or [length, width, height], got {len(self.size)} values")


@dataclass
class Scenario:
    """A complete simulated world; `seed` chooses one random layout and history of it."""

    name: str = "unnamed"
    """Short name for logs."""
    description: str = ""
    """What the scenario is for."""
    road: RoadConfig = field(default_factory=RoadConfig)
    """The road."""
    clutter: ClutterConfig = field(default_factory=ClutterConfig)
    """Buildings, walls and poles."""
    parked: ParkedConfig = field(default_factory=ParkedConfig)
    """Parked vehicles."""
    traffic: TrafficConfig = field(default_factory=TrafficConfig)
    """Moving vehicles."""
    pedestrians: PedestrianConfig = field(default_factory=PedestrianConfig)
    """Crossing pedestrians."""
    spawn: SpawnConfig = field(default_factory=SpawnConfig)
    """Where agents are kept around the ego."""
    ego: EgoConfig = field(default_factory=EgoConfig)
    """The ego vehicle."""
    lidar: LidarConfig = field(default_factory=LidarConfig)
    """The ego's lidar."""
    camera: CameraConfig = field(default_factory=CameraConfig)
    """The ego's front camera."""
    staged: list[StagedObject] = field(default_factory=list)
    """Static objects placed relative to the ego's start (targets and occluders for evaluations)."""

    def __post_init__(self) -> None:
        lane_count = 2 * self.road.lanes_per_direction
        if self.ego.lane >= lane_count:
            raise ValueError(f"ego.lane: must be < {lane_count} (2 x road.lanes_per_direction), got {self.ego.lane}")
        if self.ego.start_s > self.road.length:
            raise ValueError(f"ego.start_s: must be <= road.length ({self.road.length}), got {self.ego.start_s}")
        if self.pedestrians.count > 0 and self.road.crosswalk_spacing > self.road.length:
            raise ValueError(f"road.crosswalk_spacing: pedestrians need a crossing, so it must be <= road.length "
                             f"({self.road.length}), got {self.road.crosswalk_spacing}")
        if self.parked.fill > 0.0 and self.road.parking_lane_width < MIN_PARKING_LANE_WIDTH:
            raise ValueError(f"parked.fill: must be 0 when road.parking_lane_width < {MIN_PARKING_LANE_WIDTH} "
                             f"({self.road.parking_lane_width}), got {self.parked.fill}")
        self._check_staged()

    def staged_s(self, staged: StagedObject) -> float:
        """Distance along the road of a staged object's centre, metres."""
        direction = 1.0 if self.ego.lane < self.road.lanes_per_direction else -1.0
        return self.ego.start_s + direction * staged.ahead

    def _check_staged(self) -> None:
        targets = [index for index, staged in enumerate(self.staged) if staged.target]
        if len(targets) > 1:
            raise ValueError(f"staged: at most one staged object may be the target, got {len(targets)} "
                             f"(staged[{'], staged['.join(map(str, targets))}])")
        road = self.road
        outer = road.lanes_per_direction * road.lane_width + road.parking_lane_width + road.sidewalk_width
        for index, staged in enumerate(self.staged):
            s = self.staged_s(staged)
            if not 0.0 <= s <= road.length:
                raise ValueError(f"staged[{index}].ahead: puts the object at s = {s:g} from ego.start_s "
                                 f"{self.ego.start_s:g}, off the road (0 to road.length {road.length:g})")
            if abs(staged.d) > outer:
                raise ValueError(f"staged[{index}].d: must be within the sidewalks (|d| <= {outer}), got {staged.d}")


def load_scenario(path: str | Path) -> Scenario:
    """Read and validate a scenario file; any problem raises ScenarioError naming file and field."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as error:
        raise ScenarioError(f"{path}: cannot read scenario file: {error.strerror}") from None
    except UnicodeDecodeError as error:
        raise ScenarioError(f"{path}: not a scenario file: byte {error.start} is not UTF-8 text") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        problem = getattr(error, "problem", None) or str(error)
        raise ScenarioError(f"{where}: invalid YAML: {problem}") from None
    try:
        return config_from_mapping(Scenario, data)
    except FieldError as error:
        raise ScenarioError(f"{path}: {error}") from None
