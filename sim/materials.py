"""Surface materials: lidar reflectivity and base colour of everything in the world."""
from __future__ import annotations

import enum

import numpy as np


class Material(enum.IntEnum):
    """What a triangle is made of; indexes REFLECTIVITY and BASE_COLOR."""

    ROAD = 0
    LANE_MARKING = 1
    KERB = 2
    """Kerb faces and sidewalk tops."""
    GROUND = 3
    """Terrain beyond the sidewalks."""
    BUILDING = 4
    """Buildings and walls."""
    POLE = 5
    VEHICLE = 6
    PEDESTRIAN = 7


REFLECTIVITY = np.array([0.18, 0.85, 0.35, 0.3, 0.45, 0.6, 0.7, 0.4], dtype=np.float32)
"""Lidar reflectivity per Material at normal incidence, 0..1."""

BASE_COLOR = np.array([
    [72, 72, 76], [225, 225, 215], [165, 163, 158], [96, 112, 72],
    [180, 170, 150], [70, 72, 78], [128, 128, 128], [128, 128, 128],
], dtype=np.uint8)
"""Camera colour (RGB) per Material; buildings, vehicles and pedestrians get per-object colours."""

VEHICLE_PAINTS = np.array([
    [235, 235, 235], [30, 30, 32], [170, 172, 176], [105, 108, 112], [160, 25, 30],
    [25, 55, 130], [30, 80, 50], [200, 185, 150], [220, 130, 30], [245, 205, 40],
], dtype=np.float64)
"""Common car paints (RGB) that per-object colours are drawn around."""

FACADE_COLORS = np.array([
    [190, 175, 150], [160, 90, 70], [150, 150, 150], [210, 200, 180], [120, 110, 100],
], dtype=np.float64)
"""Building facade colours (RGB) that per-building colours are drawn around."""


def draw_colors(rng: np.random.Generator, palette: np.ndarray, count: int, jitter: float = 18.0) -> np.ndarray:
    """`count` colours, each a random palette entry with a little seeded noise, uint8 (count, 3)."""
    picks = palette[rng.integers(0, len(palette), count)]
    return np.clip(picks + rng.normal(0.0, jitter, (count, 3)), 0, 255).astype(np.uint8)
