"""Road users: size ranges, meshes and driving dynamics per ObjectClass."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from perception.objects import ObjectClass
from sim.meshes import MeshTemplate, cuboid, merge, octagonal_prism

TYRE_SHADE = 0.18
WINDOW_SHADE = 0.45


def _wheels(axle_positions: tuple[float, ...], wheel_length: float, top: float) -> list[MeshTemplate]:
    """Tyres at the outer edges of the width, at the given unit-frame axle positions."""
    parts = []
    for x in axle_positions:
        for y_low, y_high in ((0.36, 0.5), (-0.5, -0.36)):
            parts.append(cuboid(x - wheel_length / 2, x + wheel_length / 2, y_low, y_high, -0.5, top, TYRE_SHADE))
    return parts


def _z(fraction_of_height: float) -> float:
    """Unit-frame z of a height given as a fraction from the bottom of the box."""
    return fraction_of_height - 0.5


@dataclass(frozen=True)
class ObjectModel:
    """How one class of road user looks and moves."""

    size_min: tuple[float, float, float]
    """Smallest length, width, height, metres."""
    size_max: tuple[float, float, float]
    """Largest length, width, height, metres."""
    mesh: MeshTemplate
    """Shape in the unit box frame."""
    max_acceleration: float
    """IDM maximum acceleration, m/s^2."""
    comfortable_deceleration: float
    """IDM comfortable deceleration, m/s^2."""


OBJECT_MODELS: dict[ObjectClass, ObjectModel] = {
    ObjectClass.CAR: ObjectModel(
        (4.2, 1.75, 1.4), (4.9, 1.9, 1.6),
        merge([cuboid(-0.5, 0.5, -0.5, 0.5, _z(0.17), _z(0.58)),
               cuboid(-0.32, 0.18, -0.42, 0.42, _z(0.58), _z(1.0), WINDOW_SHADE),
               *_wheels((-0.33, 0.32), 0.15, _z(0.22))]),
        max_acceleration=1.5, comfortable_deceleration=2.0),
    ObjectClass.VAN: ObjectModel(
        (4.9, 1.95, 1.9), (5.6, 2.1, 2.4),
        merge([cuboid(-0.5, 0.5, -0.5, 0.5, _z(0.13), _z(0.55)),
               cuboid(-0.5, 0.3, -0.47, 0.47, _z(0.55), _z(1.0), WINDOW_SHADE * 1.6),
               *_wheels((-0.33, 0.33), 0.13, _z(0.17))]),
        max_acceleration=1.3, comfortable_deceleration=2.0),
    ObjectClass.TRUCK: ObjectModel(
        (8.0, 2.45, 3.2), (10.0, 2.55, 3.8),
        merge([cuboid(0.3, 0.5, -0.48, 0.48, _z(0.12), _z(0.85)),
               cuboid(-0.5, 0.28, -0.5, 0.5, _z(0.2), _z(1.0), 1.1),
               *_wheels((-0.38, -0.25, 0.38), 0.11, _z(0.15))]),
        max_acceleration=0.8, comfortable_deceleration=1.5),
    ObjectClass.BUS: ObjectModel(
        (11.5, 2.5, 3.0), (12.5, 2.55, 3.3),
        merge([cuboid(-0.5, 0.5, -0.5, 0.5, _z(0.1), _z(1.0)),
               *_wheels((-0.3, 0.33), 0.08, _z(0.14))]),
        max_acceleration=0.9, comfortable_deceleration=1.5),
    ObjectClass.PEDESTRIAN: ObjectModel(
        (0.5, 0.5, 1.6), (0.7, 0.7, 1.9),
        merge([octagonal_prism(0.5, -0.5, _z(0.84)),
               octagonal_prism(0.22, _z(0.86), 0.5, 1.2)]),
        max_acceleration=0.0, comfortable_deceleration=0.0),
}
"""Model per class; vehicles must list CAR, VAN, TRUCK and BUS."""

VEHICLE_CLASSES = (ObjectClass.CAR, ObjectClass.VAN, ObjectClass.TRUCK, ObjectClass.BUS)


def draw_sizes(rng: np.random.Generator, labels: np.ndarray) -> np.ndarray:
    """(length, width, height) drawn uniformly within each label's range, shape (K, 3)."""
    size_min = np.array([OBJECT_MODELS[label].size_min for label in labels]).reshape(-1, 3)
    size_max = np.array([OBJECT_MODELS[label].size_max for label in labels]).reshape(-1, 3)
    return size_min + rng.random((len(size_min), 3)) * (size_max - size_min)


def draw_vehicle_classes(rng: np.random.Generator, probabilities: list[float], count: int) -> np.ndarray:
    """ObjectClass values of `count` vehicles drawn with the given car, van, truck, bus probabilities."""
    return np.array(VEHICLE_CLASSES, dtype=np.int64)[rng.choice(len(VEHICLE_CLASSES), count, p=probabilities)]
