"""A pinhole RGB-D camera simulated by ray casting.

The image is in the camera's optical frame (REP-103 `_optical`: z forward, x right, y down);
`mount` places the camera body frame (x forward, y left, z up) on base_link and the optical frame
is fixed to it. Pixel (u, v) looks along ((u - cx) / fx, (v - cy) / fy, 1) with u the column.
Depth is the z distance in the optical frame, metres (REP-118), +inf where nothing is hit.
Colours are each surface's base colour with Lambert shading from a fixed sun; the sky is flat.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from sim.geometry import BoxSet
from sim.raycast import SceneRaycaster, rays_from_base_link
from sim.transforms import MountPose, homogeneous, planar_pose_matrix
from sim.validation import check_ranges

OPTICAL_TO_BODY = np.array([[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])
"""Rotation taking optical-frame vectors (z forward, x right, y down) to the body frame."""
SUN_DIRECTION = (np.array([-0.35, 0.45, 0.82]) / np.linalg.norm([-0.35, 0.45, 0.82])).astype(np.float32)
"""Unit vector towards the sun in map."""
NEAR_PLANE = 0.05
"""Boxes closer than this to the image plane are not projected, metres."""


@dataclass
class CameraConfig:
    """Image size, intrinsics and mounting of the camera."""

    width: int = field(default=640, metadata={"range": (8, 4096)})
    """Image width, pixels."""
    height: int = field(default=480, metadata={"range": (8, 4096)})
    """Image height, pixels."""
    horizontal_fov: float = field(default=math.radians(90.0), metadata={"range": (0.05, 3.0)})
    """Horizontal field of view used when fx is 0, radians."""
    fx: float = field(default=0.0, metadata={"range": (0.0, 100000.0)})
    """Focal length along x, pixels; 0 derives it from horizontal_fov."""
    fy: float = field(default=0.0, metadata={"range": (0.0, 100000.0)})
    """Focal length along y, pixels; 0 uses fx (square pixels)."""
    cx: float = field(default=0.0, metadata={"range": (0.0, 4096.0)})
    """Principal point column, pixels; 0 puts it at the image centre, (width - 1) / 2."""
    cy: float = field(default=0.0, metadata={"range": (0.0, 4096.0)})
    """Principal point row, pixels; 0 puts it at the image centre, (height - 1) / 2."""
    mount: MountPose = field(default_factory=lambda: MountPose(x=1.5, z=1.6))
    """Camera body frame on base_link (x forward, y left, z up), looking along its x."""
    rate_hz: float = field(default=10.0, metadata={"range": (0.1, 100.0)})
    """Frames per second."""
    sky_color: tuple[int, int, int] = field(default=(150, 190, 235), metadata={"range": (0, 255)})
    """RGB of pixels that see nothing."""
    ambient: float = field(default=0.35, metadata={"range": (0.0, 1.0)})
    """Share of light that reaches surfaces facing away from the sun."""

    def __post_init__(self) -> None:
        check_ranges(self)

    def intrinsics(self) -> np.ndarray:
        """Camera matrix K (3, 3)."""
        fx = self.fx or (self.width / 2.0) / math.tan(self.horizontal_fov / 2.0)
        fy = self.fy or fx
        cx = self.cx or (self.width - 1) / 2.0
        cy = self.cy or (self.height - 1) / 2.0
        return np.array([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]])

    def optical_to_base_link(self) -> np.ndarray:
        """4x4 transform taking optical-frame points to base_link."""
        return self.mount.matrix() @ homogeneous(OPTICAL_TO_BODY, (0.0, 0.0, 0.0))


@dataclass
class CameraFrame:
    """One rendered image."""

    rgb: np.ndarray
    """Colour image, uint8 (H, W, 3)."""
    depth: np.ndarray
    """Optical-frame z of each pixel's hit, metres, +inf where nothing is hit, float32 (H, W)."""
    object_ids: np.ndarray
    """Ground-truth object id seen in each pixel, -1 for scenery and sky, int64 (H, W)."""
    stamp: float
    """World time of the frame, s."""


class Camera:
    """Casts one frame's rays; pixel ray directions are fixed in the optical frame."""

    def __init__(self, config: CameraConfig) -> None:
        self.config = config
        self.intrinsics = config.intrinsics()
        rows, columns = np.mgrid[0:config.height, 0:config.width]
        fx, fy, cx, cy = self.intrinsics[0, 0], self.intrinsics[1, 1], self.intrinsics[0, 2], self.intrinsics[1, 2]
        self.directions = np.stack([(columns - cx) / fx, (rows - cy) / fy, np.ones(columns.shape)],
                                   axis=-1).reshape(-1, 3).astype(np.float32)
        """Pixel ray directions in the optical frame with z = 1, row-major, float32 (H*W, 3)."""
        optical_to_base_link = config.optical_to_base_link()
        self._directions_base = np.ascontiguousarray(optical_to_base_link[:3, :3] @ self.directions.T, dtype=np.float32)
        self._origin_base = optical_to_base_link[:3, 3]

    def _agent_depth_bound(self, boxes: BoxSet, map_to_optical: np.ndarray) -> np.ndarray:
        """Lower bound on the depth at which each pixel sees any box, inf where it sees none (H*W,).

        Per image column it takes the nearest corner depth of the boxes that cover that column and
        the rows between their lowest and highest projected corners; a box partly behind the camera
        covers the whole image from depth 0."""
        corners = np.einsum("ij,kvj->kvi", map_to_optical[:3, :3], boxes.corners()) + map_to_optical[:3, 3]
        in_front = corners[..., 2] > NEAR_PLANE
        pixels = np.einsum("ij,kvj->kvi", self.intrinsics, corners)
        pixels = pixels[..., :2] / np.where(in_front, corners[..., 2], 1.0)[..., None]
        straddling = np.any(in_front, axis=1) & ~np.all(in_front, axis=1)
        low = np.where(straddling[:, None], -np.inf, np.floor(pixels.min(axis=1)))  # (K, 2): column, row
        high = np.where(straddling[:, None], np.inf, np.ceil(pixels.max(axis=1)))
        columns = np.arange(self.config.width)[None, :]
        covered = np.any(in_front, axis=1)[:, None] & (columns >= low[:, :1]) & (columns <= high[:, :1])
        top = np.where(covered, low[:, 1:], np.inf).min(axis=0, initial=np.inf)
        bottom = np.where(covered, high[:, 1:], -np.inf).max(axis=0, initial=-np.inf)
        nearest = np.where(covered, corners[..., 2].min(axis=1)[:, None], np.inf).min(axis=0, initial=np.inf)
        rows = np.arange(self.config.height)[:, None]
        seen = (rows >= top[None, :]) & (rows <= bottom[None, :])
        return np.where(seen, nearest[None, :], np.inf).astype(np.float32).reshape(-1)

    def render(self, raycaster: SceneRaycaster,
               ego_pose: tuple[float, float, float]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Render with base_link at ego_pose (x, y, yaw) in map.

        Returns (rgb uint8 (H, W, 3), depth float32 (H, W), object ids int64 (H, W))."""
        shape = (self.config.height, self.config.width)
        rays = rays_from_base_link(self._directions_base, self._origin_base, ego_pose)
        optical_to_map = planar_pose_matrix(*ego_pose) @ self.config.optical_to_base_link()
        # Pixel rays have unit optical z, so ray-casting distances are depths.
        agent_bound = self._agent_depth_bound(raycaster.dynamic_boxes, np.linalg.inv(optical_to_map))
        hits = raycaster.cast(rays, agent_bound, with_colors=True)

        # Misses have zero normals and colours; they are replaced by the sky below.
        towards_camera = -np.sign(np.einsum("ij,ij->i", hits.normals, rays[:, 3:]))
        sunlight = np.clip(np.einsum("ij,j->i", hits.normals, SUN_DIRECTION) * towards_camera, 0.0, 1.0)
        brightness = self.config.ambient + (1.0 - self.config.ambient) * sunlight
        shaded = (hits.colors * brightness[:, None]).astype(np.uint8)
        sky = np.array(self.config.sky_color, dtype=np.uint8)
        rgb = np.where(np.isfinite(hits.distances)[:, None], shaded, sky)
        return rgb.reshape(*shape, 3), hits.distances.reshape(shape), hits.object_ids.reshape(shape)
