"""Typed configuration of the multi-object tracker, and the class groups it associates within."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from perception.objects import ObjectClass
from sim.validation import check_ranges

CLASS_GROUPS: dict[str, tuple[ObjectClass, ...]] = {
    "vehicle": (ObjectClass.CAR, ObjectClass.VAN, ObjectClass.TRUCK, ObjectClass.BUS),
    "pedestrian": (ObjectClass.PEDESTRIAN,),
    "cyclist": (ObjectClass.CYCLIST,),
    "unknown": (ObjectClass.UNKNOWN,),
}
"""A detection is only associated with tracks of its own group: a detector that calls one car a
van in one scan and a car in the next keeps its track, a pedestrian never joins a car's track."""

GROUP_OF_LABEL = np.array([next(index for index, members in enumerate(CLASS_GROUPS.values()) if label in members)
                           for label in ObjectClass], dtype=np.intp)
"""Object label value -> position of its group in CLASS_GROUPS (an array, so labels map in one step)."""


@dataclass
class ClassModel:
    """Motion and measurement noise of one class group (CTRV: constant turn rate and velocity)."""

    acceleration_std: float = field(default=3.0, metadata={"range": (0.01, 50.0)})
    """Standard deviation of the unmodelled longitudinal acceleration, m/s^2 (process noise)."""
    yaw_acceleration_std: float = field(default=1.0, metadata={"range": (0.01, 50.0)})
    """Standard deviation of the unmodelled yaw acceleration, rad/s^2 (process noise)."""
    position_std: float = field(default=0.3, metadata={"range": (0.01, 10.0)})
    """Standard deviation of a detected box centre (x and y), metres."""
    yaw_std: float = field(default=0.15, metadata={"range": (0.001, 3.2)})
    """Standard deviation of a detected box heading (after resolving the 180 degree ambiguity), radians."""
    initial_speed_std: float = field(default=8.0, metadata={"range": (0.01, 100.0)})
    """Speed uncertainty of a new track (its speed starts at 0), m/s."""
    initial_yaw_rate_std: float = field(default=0.5, metadata={"range": (0.001, 20.0)})
    """Yaw-rate uncertainty of a new track (its yaw rate starts at 0), rad/s."""

    def __post_init__(self) -> None:
        check_ranges(self)


def _pedestrian_model() -> ClassModel:
    # Pedestrians stop, start and turn on the spot; their boxes are nearly square, so the
    # detector's heading says little.
    return ClassModel(acceleration_std=1.5, yaw_acceleration_std=6.0, position_std=0.2, yaw_std=0.6,
                      initial_speed_std=1.5, initial_yaw_rate_std=2.0)


def _cyclist_model() -> ClassModel:
    return ClassModel(acceleration_std=2.0, yaw_acceleration_std=2.0, position_std=0.25, yaw_std=0.3,
                      initial_speed_std=5.0, initial_yaw_rate_std=1.0)


@dataclass
class TrackerConfig:
    """Parameters of MultiObjectTracker (association, track life, noise per class group)."""

    gate_probability: float = field(default=0.99, metadata={"range": (0.5, 0.999999)})
    """A detection is a candidate for a track when its (x, y, yaw) innovation lies inside this
    probability mass of the predicted measurement distribution (chi-square gate, 3 dof)."""
    birth_score: float = field(default=0.4, metadata={"range": (0.0, 1.0)})
    """Least detection score that starts a tentative track; weaker unmatched detections are dropped."""
    confirm_hits: int = field(default=3, metadata={"range": (1, 50)})
    """N of the N-of-M rule: a tentative track is confirmed after N associated detections ..."""
    confirm_window: int = field(default=5, metadata={"range": (1, 100)})
    """... within its first M frames (M >= N); a tentative track that does not make it is deleted."""
    max_coast_time: float = field(default=1.0, metadata={"range": (0.0, 60.0)})
    """A track without an associated detection for longer than this is deleted, seconds."""
    max_position_std: float = field(default=4.0, metadata={"range": (0.1, 100.0)})
    """A track whose position uncertainty (largest standard deviation in the ground plane) grows
    beyond this is deleted, metres."""
    detection_probability: float = field(default=0.9, metadata={"range": (0.01, 0.99)})
    """Probability that an existing object is detected in a frame (existence update on a miss)."""
    false_alarm_probability: float = field(default=0.1, metadata={"range": (0.001, 0.99)})
    """Probability that an associated detection is clutter, not the object (existence update on a hit)."""
    size_smoothing: float = field(default=0.3, metadata={"range": (0.0, 1.0)})
    """Weight of a new detection in the exponential smoothing of box size and height (1: no smoothing)."""
    vehicle: ClassModel = field(default_factory=ClassModel)
    """Noise of cars, vans, trucks and buses (and of UNKNOWN objects)."""
    pedestrian: ClassModel = field(default_factory=_pedestrian_model)
    """Noise of pedestrians: slower, but they may turn fast."""
    cyclist: ClassModel = field(default_factory=_cyclist_model)
    """Noise of cyclists."""

    def __post_init__(self) -> None:
        check_ranges(self)
        if self.confirm_hits > self.confirm_window:
            raise ValueError(f"confirm_window: must be >= confirm_hits ({self.confirm_hits}), "
                             f"got {self.confirm_window}")

    def class_models(self) -> tuple[ClassModel, ...]:
        """The noise model of each group, in CLASS_GROUPS order."""
        return self.vehicle, self.pedestrian, self.cyclist, self.vehicle
