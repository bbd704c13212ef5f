"""The road's course and cross-section: Frenet coordinates, lanes, markings and the surface mesh.

Frenet coordinates (s, d): s is the distance along the road's centre line from its start, d the
signed lateral offset, positive to the left of +s. The centre line starts at the map origin heading
+x and has constant curvature. Lanes are indexed from the right kerb (most negative d) to the left;
lanes with d < 0 drive +s (direction +1), lanes with d > 0 drive -s (direction -1).
"""
from __future__ import annotations

import numpy as np

from sim.materials import BASE_COLOR, Material
from sim.meshes import NO_OBJECT, TriangleSoup
from sim.scenario import ROAD_END_MARGIN, RoadConfig

MARKING_WIDTH = 0.15
"""Width of painted lines, metres."""
MARKING_HEIGHT = 0.003
"""Paint is modelled this far above the road so that rays meet it first, metres."""
DASH_LENGTH = 3.0
"""Painted part of a dashed lane line, metres."""
DASH_PERIOD = 12.0
"""Dash plus gap of a dashed lane line, metres."""
ZEBRA_PERIOD = 1.0
"""Stripe plus gap of a zebra crossing, metres across the road."""
STRAIGHT = 1e-9
"""Curvatures below this are treated as a straight road, 1/m."""
CHORD_TOLERANCE = 0.01
"""Largest deviation of the surface mesh from the true curve, metres."""


class RoadGeometry:
    """The road described by a RoadConfig."""

    def __init__(self, config: RoadConfig) -> None:
        self.config = config
        lanes = config.lanes_per_direction
        self.lane_count = 2 * lanes
        self.lane_offsets = (np.arange(self.lane_count) - lanes + 0.5) * config.lane_width
        """Lateral offset d of each lane's centre line, metres, right to left."""
        self.lane_directions = np.where(np.arange(self.lane_count) < lanes, 1, -1)
        """Driving direction along s of each lane (+1 or -1)."""
        self.travel_half_width = lanes * config.lane_width
        """|d| of the outer edge of the outermost travel lanes, metres."""
        self.half_width = self.travel_half_width + config.parking_lane_width
        """|d| of the kerbs, metres."""
        first = config.crosswalk_spacing / 2.0
        self.crosswalks = np.arange(first, config.length - first / 2.0, config.crosswalk_spacing)
        """s of each crossing's centre, metres."""

    @property
    def length(self) -> float:
        return self.config.length

    @property
    def curvature(self) -> float:
        return self.config.curvature

    def heading(self, s) -> np.ndarray:
        """Heading of the centre line (direction of +s) in map, radians."""
        return self.curvature * np.asarray(s, dtype=np.float64)

    def to_map(self, s, d) -> np.ndarray:
        """Map (x, y) of Frenet points, shape (..., 2)."""
        s, d = np.broadcast_arrays(np.asarray(s, dtype=np.float64), np.asarray(d, dtype=np.float64))
        if abs(self.curvature) < STRAIGHT:
            return np.stack([s, d], axis=-1)
        radius = 1.0 / self.curvature
        theta = self.curvature * s
        return np.stack([np.sin(theta) * (radius - d), radius - np.cos(theta) * (radius - d)], axis=-1)

    def to_frenet(self, x, y) -> tuple[np.ndarray, np.ndarray]:
        """Frenet (s, d) of map points."""
        x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
        if abs(self.curvature) < STRAIGHT:
            return x, y
        radius = 1.0 / self.curvature
        # Angle swept from the start as seen from the centre of curvature (0, radius).
        swept = np.arctan2(x * np.sign(radius), np.sign(radius) * (radius - y))
        distance = np.hypot(x, y - radius)
        return swept * radius, radius - np.sign(radius) * distance

    def tangent_normal(self, s) -> tuple[np.ndarray, np.ndarray]:
        """Unit tangent (+s) and left normal (+d) in map, each shape (..., 2)."""
        heading = self.heading(s)
        tangent = np.stack([np.cos(heading), np.sin(heading)], axis=-1)
        return tangent, np.stack([-tangent[..., 1], tangent[..., 0]], axis=-1)

    def lane_interval(self, lane) -> tuple[np.ndarray, np.ndarray]:
        """(low, high) d of a lane's edges."""
        center = self.lane_offsets[lane]
        return center - self.config.lane_width / 2.0, center + self.config.lane_width / 2.0

    def centerlines(self, spacing: float = 2.0) -> list[np.ndarray]:
        """Each lane's centre line in map as (M, 2) points ordered by increasing s."""
        stations = np.linspace(0.0, self.length, int(np.ceil(self.length / spacing)) + 1)
        return [self.to_map(stations, offset) for offset in self.lane_offsets]

    def _station_spacing(self) -> float:
        """Longest piece of road a flat mesh strip may cover, metres."""
        if abs(self.curvature) < STRAIGHT:
            return 20.0
        return min(20.0, float(np.sqrt(8.0 * CHORD_TOLERANCE / abs(self.curvature))))

    def markings(self) -> TriangleSoup:
        """Lane lines, edge lines, the centre line and zebra crossings as thin quads on the road."""
        lanes, width, spacing = self.config.lanes_per_direction, self.config.lane_width, self._station_spacing()
        quads = []  # rows of (s_start, s_end, d_low, d_high)
        for boundary in range(-lanes, lanes + 1):
            solid = boundary == 0 or abs(boundary) == lanes
            starts = np.arange(0.0, self.length, spacing if solid else DASH_PERIOD)
            ends = np.minimum(starts + (spacing if solid else DASH_LENGTH), self.length)
            d = np.full(len(starts), boundary * width)
            quads.append(np.column_stack([starts, ends, d - MARKING_WIDTH / 2.0, d + MARKING_WIDTH / 2.0]))
        stripes = np.arange(-self.travel_half_width, self.travel_half_width - ZEBRA_PERIOD / 2.0 + 1e-9, ZEBRA_PERIOD)
        crossing = np.repeat(self.crosswalks, len(stripes))
        stripe = np.tile(stripes, len(self.crosswalks))
        half_crossing = self.config.crosswalk_width / 2.0
        quads.append(np.column_stack([crossing - half_crossing, crossing + half_crossing,
                                      stripe, stripe + ZEBRA_PERIOD / 2.0]))
        quads = np.concatenate(quads)
        corner_s = quads[:, [0, 1, 1, 0]]
        corner_d = quads[:, [2, 2, 3, 3]]
        vertices = np.concatenate([self.to_map(corner_s, corner_d), np.full((*corner_s.shape, 1), MARKING_HEIGHT)],
                                  axis=2)
        triangles = (np.arange(len(quads))[:, None, None] * 4 + np.array([[0, 1, 2], [0, 2, 3]])[None]).reshape(-1, 3)
        return TriangleSoup(
            vertices=vertices.reshape(-1, 3).astype(np.float32),
            triangles=triangles.astype(np.uint32),
            object_ids=np.full(len(triangles), NO_OBJECT, dtype=np.int64),
            materials=np.full(len(triangles), Material.LANE_MARKING, dtype=np.uint8),
            colors=np.tile(BASE_COLOR[Material.LANE_MARKING], (len(triangles), 1)),
        )

    def surface(self, outer_offset: float) -> TriangleSoup:
        """Road, kerbs, sidewalks and ground out to |d| = outer_offset, extruded along s, with markings."""
        kerb = self.config.kerb_height
        sidewalk_edge = self.half_width + self.config.sidewalk_width
        profile_d = np.array([-outer_offset, -sidewalk_edge, -self.half_width, -self.half_width,
                              self.half_width, self.half_width, sidewalk_edge, outer_offset])
        profile_z = np.array([kerb, kerb, kerb, 0.0, 0.0, kerb, kerb, kerb])
        segment_materials = np.array([Material.GROUND, Material.KERB, Material.KERB, Material.ROAD,
                                      Material.KERB, Material.KERB, Material.GROUND], dtype=np.uint8)
        station_spacing = self._station_spacing()
        start, end = -ROAD_END_MARGIN, self.length + ROAD_END_MARGIN
        stations = np.linspace(start, end, int(np.ceil((end - start) / station_spacing)) + 1)
        station_count, point_count = len(stations), len(profile_d)
        xy = self.to_map(stations[:, None], profile_d[None, :])  # (S, P, 2)
        vertices = np.concatenate([xy, np.broadcast_to(profile_z, (station_count, point_count))[..., None]], axis=2)
        index = np.arange(station_count * point_count).reshape(station_count, point_count)
        a, b = index[:-1, :-1], index[:-1, 1:]  # this station, segment start and end
        c, e = index[1:, :-1], index[1:, 1:]  # next station
        triangles = np.concatenate([np.stack([a, c, e], -1), np.stack([a, e, b], -1)], axis=0).reshape(-1, 3)
        materials = np.tile(segment_materials, 2 * (station_count - 1))
        ground = TriangleSoup(
            vertices=vertices.reshape(-1, 3).astype(np.float32),
            triangles=triangles.astype(np.uint32),
            object_ids=np.full(len(triangles), NO_OBJECT, dtype=np.int64),
            materials=materials,
            colors=BASE_COLOR[materials],
        )
        return TriangleSoup.concatenate([ground, self.markings()])
