"""A spinning multi-beam lidar (HDL-64E-like) simulated by ray casting.

Lidar frame: x forward, y left, z up (REP-103), origin at the optical centre. A scan is taken
at one instant (no motion distortion). Each return is (x, y, z, intensity) with intensity =
material reflectivity x |cos(incidence angle)|, in 0..1. Rays that hit nothing, or hit outside
[min_range, max_range], are dropped; each return is also dropped with `dropout_probability`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from sim.geometry import BoxSet
from sim.materials import REFLECTIVITY
from sim.raycast import SceneRaycaster, rays_from_base_link
from sim.transforms import MountPose, planar_pose_matrix
from sim.validation import check_ranges

REFLECTIVITY_BY_CODE = np.zeros(256, dtype=np.float32)
"""Reflectivity indexed by any uint8 material code (misses read 0)."""
REFLECTIVITY_BY_CODE[:len(REFLECTIVITY)] = REFLECTIVITY


@dataclass
class LidarConfig:
    """Beam layout, range model and mounting of the lidar."""

    beams: int = field(default=64, metadata={"range": (1, 256)})
    """Number of laser beams (rings), evenly spread over the vertical field of view."""
    elevation_max: float = field(default=math.radians(2.0), metadata={"range": (-1.5, 1.5)})
    """Elevation of the highest beam, radians (HDL-64E: +2.0 deg)."""
    elevation_min: float = field(default=math.radians(-24.9), metadata={"range": (-1.5, 1.5)})
    """Elevation of the lowest beam, radians (HDL-64E: -24.9 deg)."""
    azimuth_resolution: float = field(default=math.radians(0.18), metadata={"range": (0.0005, 0.2)})
    """Angle between successive firings of one beam, radians (0.18 deg: about 120k returns per
    scan in urban_default, like an HDL-64E at 10 Hz)."""
    max_range: float = field(default=120.0, metadata={"range": (1.0, 1000.0)})
    """Farthest return, metres."""
    min_range: float = field(default=1.0, metadata={"range": (0.0, 100.0)})
    """Nearest return, metres."""
    range_noise_std: float = field(default=0.02, metadata={"range": (0.0, 1.0)})
    """Standard deviation of Gaussian range noise, metres."""
    dropout_probability: float = field(default=0.01, metadata={"range": (0.0, 1.0)})
    """Probability that a return is lost."""
    mount: MountPose = field(default_factory=lambda: MountPose(z=1.73))
    """Lidar pose on base_link (KITTI: 1.73 m above the road)."""
    rate_hz: float = field(default=10.0, metadata={"range": (0.1, 100.0)})
    """Scans per second."""

    def __post_init__(self) -> None:
        check_ranges(self)
        if self.elevation_min >= self.elevation_max:
            raise ValueError(f"elevation_min: must be < elevation_max ({self.elevation_max}), got {self.elevation_min}")
        if self.min_range >= self.max_range:
            raise ValueError(f"min_range: must be < max_range ({self.max_range}), got {self.min_range}")


@dataclass
class LidarScan:
    """One lidar sweep."""

    points: np.ndarray
    """Returns (x, y, z, intensity) in the lidar frame, metres and 0..1, float32 (N, 4)."""
    point_object_ids: np.ndarray
    """Ground-truth object id of each return, -1 for scenery, int64 (N,)."""
    object_point_counts: dict[int, int]
    """Returns per ground-truth object, for every object in the world (0 when unseen)."""
    stamp: float
    """World time of the scan, s."""


class Lidar:
    """Casts one scan's rays; ray directions are fixed in the lidar frame and computed once."""

    def __init__(self, config: LidarConfig) -> None:
        self.config = config
        self.elevations = np.linspace(config.elevation_max, config.elevation_min, config.beams)
        """Beam elevations, top beam first, radians."""
        self.azimuths = np.arange(0.0, 2.0 * np.pi, config.azimuth_resolution)
        """Firing azimuths, counter-clockwise from x, radians."""
        azimuth, elevation = np.meshgrid(self.azimuths, self.elevations, indexing="ij")
        self.directions = np.stack([np.cos(elevation) * np.cos(azimuth), np.cos(elevation) * np.sin(azimuth),
                                    np.sin(elevation)], axis=-1).reshape(-1, 3).astype(np.float32)
        """Unit ray directions in the lidar frame, azimuth-major, float32 (azimuths x beams, 3)."""
        self._homogeneous_directions = np.column_stack([self.directions, np.ones(len(self.directions), np.float32)])
        mount = config.mount.matrix()
        self._directions_base = np.ascontiguousarray(mount[:3, :3] @ self.directions.T, dtype=np.float32)
        self._origin_base = mount[:3, 3]
        self._beam_spacing = (config.elevation_max - config.elevation_min) / max(config.beams - 1, 1)

    def _agent_range_bound(self, boxes: BoxSet, map_to_lidar: np.ndarray) -> np.ndarray:
        """Lower bound on each ray's range to any box, inf where it passes every box, float32 (rays,).

        Per azimuth column it takes the nearest of the boxes' bounding spheres seen in that column
        and the elevations between their lowest and highest."""
        centers = np.einsum("ij,kj->ki", map_to_lidar[:3, :3], boxes.centers) + map_to_lidar[:3, 3]
        radii = 0.5 * np.linalg.norm(boxes.sizes, axis=1)
        horizontal = np.hypot(centers[:, 0], centers[:, 1])
        distance = np.linalg.norm(centers, axis=1)
        elevation = np.arctan2(centers[:, 2], horizontal)
        elevation_half = _angular_radius(radii, distance) + self._beam_spacing
        # Azimuth column i looks along i * resolution; one extra resolution of slack covers rounding.
        resolution, column_count = self.config.azimuth_resolution, len(self.azimuths)
        azimuth = np.arctan2(centers[:, 1], centers[:, 0])
        azimuth_half = _angular_radius(radii, horizontal) + resolution
        first = np.ceil((azimuth - azimuth_half) / resolution).astype(np.int64)
        widths = np.minimum(np.floor((azimuth + azimuth_half) / resolution).astype(np.int64) - first + 1, column_count)
        lowest, highest = np.full(column_count, np.inf), np.full(column_count, -np.inf)
        nearest = np.full(column_count, np.inf)
        for box in np.flatnonzero(distance - radii < self.config.max_range):  # a few dozen agents
            columns = np.arange(first[box], first[box] + widths[box]) % column_count
            lowest[columns] = np.minimum(lowest[columns], elevation[box] - elevation_half[box])
            highest[columns] = np.maximum(highest[columns], elevation[box] + elevation_half[box])
            nearest[columns] = np.minimum(nearest[columns], distance[box] - radii[box])
        elevations = self.elevations[None, :]
        seen = (elevations >= lowest[:, None]) & (elevations <= highest[:, None])
        return np.where(seen, nearest[:, None], np.inf).astype(np.float32).reshape(-1)

    def scan(self, raycaster: SceneRaycaster, ego_pose: tuple[float, float, float],
             rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Scan with base_link at ego_pose (x, y, yaw) in map.

        Returns (points float32 (N, 4) in the lidar frame, object id per point int64 (N,))."""
        rays = rays_from_base_link(self._directions_base, self._origin_base, ego_pose)
        directions_map = rays[:, 3:]
        lidar_to_map = planar_pose_matrix(*ego_pose) @ self.config.mount.matrix()
        agent_bound = self._agent_range_bound(raycaster.dynamic_boxes, np.linalg.inv(lidar_to_map))
        hits = raycaster.cast(rays, agent_bound)

        # Work on every ray and compress once at the end: cheaper than indexing many arrays.
        count = len(self.directions)
        noise = rng.standard_normal(count, dtype=np.float32) * np.float32(self.config.range_noise_std)
        kept = rng.random(count, dtype=np.float32) >= self.config.dropout_probability
        kept &= (hits.distances >= self.config.min_range) & (hits.distances <= self.config.max_range)
        ranges = np.where(kept, hits.distances + noise, np.float32(0.0))
        cosine = np.abs(np.einsum("ij,ij->i", hits.normals, directions_map))
        returns = self._homogeneous_directions * ranges[:, None]  # x, y, z, and a column for intensity
        returns[:, 3] = np.clip(REFLECTIVITY_BY_CODE[hits.materials] * cosine, 0.0, 1.0)
        kept = np.flatnonzero(kept)
        return np.take(returns, kept, axis=0), np.take(hits.object_ids, kept)


def _angular_radius(radius: np.ndarray, distance: np.ndarray) -> np.ndarray:
    """Half the angle a sphere of `radius` spans seen from `distance`; pi from inside it."""
    return np.where(distance > radius, np.arcsin(np.minimum(radius / np.maximum(distance, 1e-9), 1.0)), np.pi)
