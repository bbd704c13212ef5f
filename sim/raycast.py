"""Ray casting against the world: a static scene built once and a small dynamic scene per step.

Ray casting cost grows with the number of rays, barely with the number of triangles, and
rebuilding a bounding-volume hierarchy over the whole world every step would be wasteful. So the
scenery and parked vehicles live in one Open3D RaycastingScene built once; the few moving agents
go into a second scene rebuilt whenever they move, cast only with the rays that the static scene
leaves a chance to meet an agent (per the sensor's lower bound on each ray's distance to any
agent), and each ray keeps the nearer of the two hits.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import open3d as o3d

from sim.geometry import BoxSet
from sim.meshes import NO_OBJECT, TriangleSoup

NO_HIT = 255
"""Material of rays that hit nothing."""


@dataclass
class RayHits:
    """The first surface each ray meets."""

    distances: np.ndarray
    """Hit distance in units of the ray direction's length, inf where nothing is hit, float32 (N,)."""
    normals: np.ndarray
    """Unit normal of the hit triangle in map (either side), float32 (N, 3)."""
    object_ids: np.ndarray
    """Ground-truth object id, NO_OBJECT for scenery and misses, int64 (N,)."""
    materials: np.ndarray
    """Material, NO_HIT for misses, uint8 (N,)."""
    colors: np.ndarray | None
    """Base colour, uint8 (N, 3), when asked for."""


def rays_from_base_link(directions: np.ndarray, origin: np.ndarray,
                        ego_pose: tuple[float, float, float]) -> np.ndarray:
    """Map rays (N, 6) float32 [origin, direction] of a sensor on base_link.

    directions (3, N) float32 and origin (3,) are in base_link; base_link stands on the ground at
    ego_pose (x, y, yaw), so only a rotation about z is needed. Written elementwise on purpose: a
    BLAS matmul here starts OpenBLAS threads that then compete with Open3D's ray-casting threads.
    """
    x, y, yaw = ego_pose
    cos_yaw, sin_yaw = np.float32(np.cos(yaw)), np.float32(np.sin(yaw))
    rays = np.empty((directions.shape[1], 6), dtype=np.float32)
    rays[:, :3] = (x + cos_yaw * origin[0] - sin_yaw * origin[1], y + sin_yaw * origin[0] + cos_yaw * origin[1],
                   origin[2])
    rays[:, 3] = cos_yaw * directions[0] - sin_yaw * directions[1]
    rays[:, 4] = sin_yaw * directions[0] + cos_yaw * directions[1]
    rays[:, 5] = directions[2]
    return rays


class _LabelledScene:
    """A ray-casting scene with per-triangle labels and a trailing 'missed' entry in each table."""

    def __init__(self, soup: TriangleSoup) -> None:
        self.scene = o3d.t.geometry.RaycastingScene()
        if len(soup.triangles):
            self.scene.add_triangles(
                o3d.core.Tensor.from_numpy(np.ascontiguousarray(soup.vertices, dtype=np.float32)),
                o3d.core.Tensor.from_numpy(np.ascontiguousarray(soup.triangles, dtype=np.uint32)))
        self.triangle_count = len(soup.triangles)
        self.object_ids = np.append(soup.object_ids, NO_OBJECT)
        self.materials = np.append(soup.materials, np.uint8(NO_HIT))
        self.colors = np.concatenate([soup.colors, np.zeros((1, 3), dtype=np.uint8)])

    def cast(self, rays: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(distances, normals, table rows: triangle index or the 'missed' row) of each ray."""
        result = self.scene.cast_rays(o3d.core.Tensor.from_numpy(rays))
        rows = result["primitive_ids"].numpy().astype(np.intp)  # intp indexes faster than uint32
        np.minimum(rows, self.triangle_count, out=rows)  # INVALID_ID -> the 'missed' row
        return result["t_hit"].numpy(), result["primitive_normals"].numpy(), rows


class SceneRaycaster:
    """First hits of rays in map against the static world plus the current agents."""

    def __init__(self, static: TriangleSoup) -> None:
        self._static = _LabelledScene(static)
        self.set_dynamic(TriangleSoup.empty(), BoxSet.empty())

    def set_dynamic(self, soup: TriangleSoup, boxes: BoxSet) -> None:
        """Replace the moving agents: their triangles and their boxes (for sensors' ray culling)."""
        self._dynamic = _LabelledScene(soup)
        self.dynamic_boxes = boxes

    def cast(self, rays: np.ndarray, agent_bound: np.ndarray, with_colors: bool = False) -> RayHits:
        """Cast rays (N, 6) float32 [origin, direction] in map.

        `agent_bound` (N,) is a lower bound on each ray's hit distance on any moving agent, in units
        of its direction's length (inf where the ray cannot meet one).
        """
        distances, normals, rows = self._static.cast(rays)
        object_ids = self._static.object_ids[rows]
        materials = self._static.materials[rows]
        colors = self._static.colors[rows] if with_colors else None

        candidates = np.flatnonzero(distances > agent_bound)
        if len(candidates) and self._dynamic.triangle_count:
            dynamic_distances, dynamic_normals, dynamic_rows = self._dynamic.cast(
                np.ascontiguousarray(rays[candidates]))
            nearer = dynamic_distances < distances[candidates]
            hit_rows, dynamic_rows = candidates[nearer], dynamic_rows[nearer]
            distances[hit_rows] = dynamic_distances[nearer]
            normals[hit_rows] = dynamic_normals[nearer]
            object_ids[hit_rows] = self._dynamic.object_ids[dynamic_rows]
            materials[hit_rows] = self._dynamic.materials[dynamic_rows]
            if colors is not None:
                colors[hit_rows] = self._dynamic.colors[dynamic_rows]

        return RayHits(distances, normals, object_ids, materials, colors)
