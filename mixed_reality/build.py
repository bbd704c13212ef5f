"""A Gaussian model from posed RGB-D frames: the 3DGS initialisation, from depth instead of SfM points.

Every pixel with a depth is back-projected into map with its colour and its surface normal (from
the depths of its neighbours), and the points are averaged in a fine voxel grid (thinned first
where pixels are much finer than it). An octree then decides how large each Gaussian may be: from
the coarsest voxel size down, a voxel becomes one Gaussian when it and its neighbours hold one
flat surface of one colour that goes on past the voxel on every side (colours within
colour_tolerance, normals agreeing, every neighbour in the voxel's plane occupied), so that the
Gaussian's tails, which reach into the neighbours, blur nothing; whatever is left is tried at the
next finer size, and the finest voxels are taken as they are. So uniform road and facades are few
large Gaussians while lane markings, edges and silhouettes get small ones, as 3DGS's densification
would grow them. Each Gaussian lies in its surface (thin along the normal, which faces the cameras)
and is as wide as its voxel, or as the pixel footprint of the closest view where the frames sampled
the surface more coarsely, so neighbours overlap into a closed surface.

Pure numpy and scipy; the frames come from anywhere (a robot's mapping drive, sim.survey for the
simulated world).
"""
from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from typing import Iterable, Protocol

import numpy as np
from scipy.spatial.transform import Rotation

from mixed_reality.gaussians import DEFAULT_BACKGROUND, GaussianModel
from sim.validation import check_ranges


class PosedRGBD(Protocol):
    """One posed camera frame (sim.survey.SurveyFrame is one; any object with these attributes does)."""

    rgb: np.ndarray
    """Colour image, uint8 (H, W, 3)."""
    depth: np.ndarray
    """Optical-frame z of each pixel, metres, +inf where nothing (the sky) is seen, float32 (H, W)."""
    intrinsics: np.ndarray
    """Camera matrix K (3, 3); pixel (u, v) looks along ((u - cx) / fx, (v - cy) / fy, 1)."""
    camera_to_map: np.ndarray
    """4x4 transform of the optical frame (z forward, x right, y down) to map."""


@dataclass
class BuildConfig:
    """How posed RGB-D frames become Gaussians."""

    voxel_size: float = field(default=0.1, metadata={"range": (0.01, 20.0)})
    """Edge of the finest voxels, metres: the smallest Gaussians (at edges and fine detail)."""
    max_voxel_size: float = field(default=0.8, metadata={"range": (0.01, 100.0)})
    """Edge of the coarsest voxels, metres (doubling from voxel_size, rounded down to a power of two
    times it): the largest Gaussians, on uniform surfaces."""
    color_tolerance: float = field(default=0.03, metadata={"range": (0.0, 1.0)})
    """A voxel above the finest is one Gaussian only if, over it and its occupied neighbours, the
    standard deviation of the colours is below this (RGB in [0, 1])..."""
    normal_agreement: float = field(default=0.97, metadata={"range": (0.0, 1.0)})
    """... and the length of their mean unit normal is at least this (1: all normals parallel), and
    every neighbour in the voxel's plane is occupied."""
    max_depth: float = field(default=60.0, metadata={"range": (0.5, 10000.0)})
    """Pixels deeper than this are not used, metres: a mapping drive sees every surface closer from
    another pose, and far pixels are large and few."""
    spread: float = field(default=0.6, metadata={"range": (0.1, 5.0)})
    """In-surface standard deviation of each Gaussian as a share of its voxel (0.6: neighbours
    overlap so that a surface is closed, opacity above 0.9 between two Gaussians)."""
    thickness: float = field(default=0.1, metadata={"range": (0.001, 1.0)})
    """Standard deviation along the surface normal as a share of the in-surface one."""
    opacity: float = field(default=0.95, metadata={"range": (0.01, 0.999)})
    """Initial opacity of every Gaussian."""
    frames_per_batch: int = field(default=64, metadata={"range": (1, 100000)})
    """Frames back-projected and voxel-averaged together, which bounds the memory used."""
    background: tuple[float, float, float] = field(default=DEFAULT_BACKGROUND, metadata={"range": (0.0, 1.0)})
    """Sky colour of the model, RGB in [0, 1]."""

    def __post_init__(self) -> None:
        check_ranges(self)
        if self.max_voxel_size < self.voxel_size:
            raise ValueError(f"max_voxel_size: must be >= voxel_size ({self.voxel_size}), got {self.max_voxel_size}")

    def octree_sizes(self) -> list[float]:
        """Voxel sizes tried, coarsest first, down to (not including) voxel_size."""
        levels = int(math.floor(math.log2(self.max_voxel_size / self.voxel_size) + 1e-9))
        return [self.voxel_size * 2.0 ** level for level in range(levels, 0, -1)]


def packed_keys(cells: np.ndarray) -> np.ndarray:
    """One int64 per row of integer grid coordinates (2 or 3 columns, each within ±2^20), (N,)."""
    shifted = cells + (1 << 20)
    key = shifted[:, 0]
    for column in range(1, cells.shape[1]):
        key = (key << 21) | shifted[:, column]
    return key


def voxel_groups(points: np.ndarray, voxel: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(order, starts, keys): `points[order]` runs through the voxels of edge `voxel` one after the
    other, starts (G,) is where each voxel's run begins (for np.add.reduceat and friends) and keys
    (G,) are the voxels' packed_keys, ascending."""
    keys = packed_keys(np.floor(points / voxel).astype(np.int64))
    order = np.argsort(keys)
    sorted_keys = keys[order]
    first = np.ones(len(keys), dtype=bool)
    first[1:] = sorted_keys[1:] != sorted_keys[:-1]
    starts = np.flatnonzero(first)
    return order, starts, sorted_keys[starts]


MAX_THINNING = 16
"""back_project keeps at least every 16th row and column."""


@dataclass
class Samples:
    """Surface samples: pixels, or voxel means of pixels (then sums weighted by `counts` combine them)."""

    values: np.ndarray
    """Rows: position in map (3), colour in [0, 1] (3), colour squared (3), unit normal facing the
    cameras (3), float32 (12, M), fields first so that per-voxel sums run along contiguous rows."""
    footprints: np.ndarray
    """Size of one pixel at the surface in the closest view, metres, float32 (M,)."""
    counts: np.ndarray
    """Pixels behind each sample, float32 (M,)."""

    @staticmethod
    def concatenate(parts: list[Samples]) -> Samples:
        return Samples(np.concatenate([part.values for part in parts], axis=1),
                       np.concatenate([part.footprints for part in parts]), np.concatenate([part.counts for part in parts]))

    def voxel_means(self, voxel: float, origin: np.ndarray) -> Samples:
        """One sample per voxel of edge `voxel` (grid corner at `origin`): pixel-weighted means, the
        smallest footprint, the pixel count."""
        order, starts, _ = voxel_groups(self.values[0:3].T - origin, voxel)
        weights = self.counts[order]
        counts = np.add.reduceat(weights, starts)
        values = self.values[:, order]
        if not np.all(weights == 1.0):
            values *= weights
        sums = np.add.reduceat(values, starts, axis=1)
        return Samples(sums / counts, np.minimum.reduceat(self.footprints[order], starts), counts)


def back_project(frame: PosedRGBD, config: BuildConfig) -> Samples:
    """The frame's pixels with a depth up to config.max_depth, in map, thinned where they are finer
    than the finest voxel (near the camera a 0.1 m voxel holds hundreds of pixels): a pixel is kept
    where its row and column are multiples of the power of two nearest below voxel_size / footprint,
    at most MAX_THINNING (every frame still puts about one sample in each voxel it sees). The normal comes from the depths of the
    pixel's neighbours on the side (left or right, up or down) where the depth changes least, so it
    is the surface's even at silhouettes; it faces the camera."""
    depth = np.asarray(frame.depth, dtype=np.float32)
    height, width = depth.shape
    intrinsics = np.asarray(frame.intrinsics, dtype=np.float64)
    fx, fy, cx, cy = intrinsics[0, 0], intrinsics[1, 1], intrinsics[0, 2], intrinsics[1, 2]
    focal = max(fx, fy)
    with np.errstate(divide="ignore", invalid="ignore"):
        thinning = np.exp2(np.floor(np.log2(config.voxel_size * focal / depth))).clip(1, MAX_THINNING)
    rows, columns = np.mgrid[0:height, 0:width]
    keep = (np.isfinite(depth) & (depth > 0.0) & (depth <= config.max_depth)
            & (rows % thinning == 0) & (columns % thinning == 0))
    rows, columns = rows[keep], columns[keep]
    padded = np.pad(depth, 1, constant_values=np.nan)

    def optical(row_offset: int, column_offset: int) -> np.ndarray:
        """Optical-frame points (M, 3) of the kept pixels' neighbours at the offset (NaN off the image)."""
        z = padded[rows + 1 + row_offset, columns + 1 + column_offset].astype(np.float64)
        return np.stack([(columns + column_offset - cx) / fx * z, (rows + row_offset - cy) / fy * z, z], axis=1)

    center = optical(0, 0)

    def nearer_difference(row_offset: int, column_offset: int) -> np.ndarray:
        """Step to the neighbour on the side (+offset or -offset) whose depth is closer."""
        after = optical(row_offset, column_offset) - center
        before = center - optical(-row_offset, -column_offset)
        use_after = (np.abs(after[:, 2]) < np.abs(before[:, 2])) | np.isnan(before[:, 2])
        return np.where(use_after[:, None], after, before)

    with np.errstate(invalid="ignore"):  # NaN where a pixel has no neighbour with a depth on either side
        normals = np.cross(nearer_difference(1, 0), nearer_difference(0, 1))  # d/dv x d/du faces the camera
        lengths = np.linalg.norm(normals, axis=1)
    good = lengths > 0.0  # NaN (no neighbour on either side) compares False
    camera_to_map = np.asarray(frame.camera_to_map, dtype=np.float64)
    rotation, origin = camera_to_map[:3, :3], camera_to_map[:3, 3]
    points = center[good] @ rotation.T + origin
    normals = (normals[good] / lengths[good, None]) @ rotation.T
    normals *= np.where(np.einsum("ij,ij->i", normals, origin - points) < 0.0, -1.0, 1.0)[:, None]
    colors = np.asarray(frame.rgb)[rows[good], columns[good]].astype(np.float64) / 255.0
    values = np.concatenate([points, colors, colors * colors, normals], axis=1).T.astype(np.float32)
    footprints = (center[good, 2] / focal).astype(np.float32)
    return Samples(np.ascontiguousarray(values), footprints, np.ones(len(footprints), dtype=np.float32))


def fine_voxels(frames: Iterable[PosedRGBD], config: BuildConfig) -> Samples:
    """The frames' pixels averaged per finest voxel (grid corner at -voxel_size / 2 on every axis,
    so that level surfaces at whole multiples of it, like the road, lie mid-voxel)."""
    origin = np.full(3, -0.5 * config.voxel_size, dtype=np.float32)
    parts: list[Samples] = []
    batch: list[Samples] = []

    def average_batch() -> None:
        if batch:
            parts.append(Samples.concatenate(batch).voxel_means(config.voxel_size, origin))
            batch.clear()

    for frame in frames:
        batch.append(back_project(frame, config))
        if len(batch) == config.frames_per_batch:
            average_batch()
    average_batch()
    samples = Samples.concatenate(parts)
    if samples.values.shape[1] == 0:
        raise ValueError("frames: no pixel with a depth within max_depth; nothing to build Gaussians from")
    return samples.voxel_means(config.voxel_size, origin)  # voxels that were split over batches


NEIGHBOUR_OFFSETS = np.array([offset for offset in itertools.product((-1, 0, 1), repeat=3) if any(offset)])
"""The 26 neighbours of a voxel in grid units."""
UP = np.array([0.0, 0.0, 1.0])
"""Normal given to a Gaussian whose samples' normals cancel out."""
IN_PLANE = 0.25
"""A neighbour lies in a voxel's surface when the cosine between its offset and the normal is at most this."""


def gaussians_from_rgbd(frames: Iterable[PosedRGBD], config: BuildConfig = BuildConfig()) -> GaussianModel:
    """Gaussians for the surfaces seen in `frames` (see the module docstring)."""
    samples = fine_voxels(frames, config)
    origin = np.full(3, -0.5 * config.voxel_size, dtype=np.float32)
    positions = samples.values[0:3].T - origin
    # Rows summed per voxel and block: colour (3), colour squared (3), normal (3), position (3).
    terms = np.concatenate([samples.values[3:12], samples.values[0:3]])
    chosen: list[np.ndarray] = []  # rows: position, normal, colour, voxel size, footprint
    remaining = np.ones(len(positions), dtype=bool)
    for size in config.octree_sizes():
        order, starts, keys = voxel_groups(positions, size)
        counts = np.diff(np.append(starts, len(order))).astype(np.float32)
        sums = np.add.reduceat(terms[:, order], starts, axis=1)
        cells = np.floor(positions[order[starts]] / size).astype(np.int64)
        # The grids nest, so a voxel is either inside an accepted coarser one or disjoint from all.
        accepted = _uniform_block(cells, keys, counts, sums, config) & remaining[order[starts]]
        means = sums[:, accepted] / counts[accepted]
        chosen.append(np.concatenate([means[9:12], means[6:9], means[0:3], np.full((1, int(accepted.sum())), size),
                                      np.minimum.reduceat(samples.footprints[order], starts)[None, accepted]]))
        remaining[order[np.repeat(accepted, counts.astype(np.int64))]] = False
    chosen.append(np.concatenate([samples.values[0:3, remaining], samples.values[9:12, remaining],
                                  samples.values[3:6, remaining], np.full((1, int(remaining.sum())), config.voxel_size),
                                  samples.footprints[None, remaining]]))

    table = np.concatenate(chosen, axis=1).T.astype(np.float64)
    in_surface = config.spread * np.maximum(table[:, 9], table[:, 10])
    scales = np.stack([in_surface, in_surface, in_surface * config.thickness], axis=1)
    rotations = Rotation.from_matrix(surface_frames(_unit(table[:, 3:6], fallback=UP))).as_quat(scalar_first=True)
    return GaussianModel(means=table[:, 0:3], scales=scales, rotations=rotations,
                         opacities=np.full(len(table), config.opacity), colors=np.clip(table[:, 6:9], 0.0, 1.0),
                         background=config.background)


def _uniform_block(cells: np.ndarray, keys: np.ndarray, counts: np.ndarray, sums: np.ndarray,
                   config: BuildConfig) -> np.ndarray:
    """Whether each voxel and its occupied neighbours are one flat surface of one colour that goes
    on past the voxel on every side (every neighbour in the voxel's plane is occupied), so that the
    voxel's Gaussian, whose tails reach into the neighbours, blurs nothing: boolean (G,).

    cells (G, 3) are the voxels' grid coordinates, keys (G,) their packed_keys in ascending order,
    counts (G,) their fine voxels, sums (12, G) the sums of their terms (gaussians_from_rgbd)."""
    normals = _unit(sums[6:9].T)
    # Counts and sums with a trailing zero column that neighbours which are not there point to.
    table = np.concatenate([np.concatenate([counts[None], sums[0:9]]), np.zeros((10, 1), dtype=sums.dtype)], axis=1)
    block = table[:, :-1].copy()
    covered = np.ones(len(keys), dtype=bool)
    for offset in NEIGHBOUR_OFFSETS:
        neighbour = packed_keys(cells + offset)
        index = np.minimum(np.searchsorted(keys, neighbour), len(keys) - 1)
        found = keys[index] == neighbour
        block += table[:, np.where(found, index, len(keys))]
        in_plane = np.abs(normals @ (offset / np.linalg.norm(offset))) <= IN_PLANE
        covered &= found | ~in_plane
    block_counts, block = block[0], block[1:]
    colors = block[0:3] / block_counts
    color_variance = (block[3:6] / block_counts - colors * colors).mean(axis=0)
    agreement = np.linalg.norm(block[6:9], axis=0) / block_counts
    return covered & (color_variance <= config.color_tolerance ** 2) & (agreement >= config.normal_agreement)


def _unit(vectors: np.ndarray, fallback: np.ndarray | None = None) -> np.ndarray:
    """Rows scaled to unit length; rows of (almost) zero length become the fallback (a row or rows)."""
    lengths = np.linalg.norm(vectors, axis=1, keepdims=True)
    if fallback is not None:
        vectors = np.where(lengths > 1e-6, vectors, fallback)
        lengths = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.maximum(lengths, 1e-12)


def surface_frames(normals: np.ndarray) -> np.ndarray:
    """Rotations (N, 3, 3) whose third column is the unit normal and whose first column is
    horizontal (along the surface's level line; map x for level surfaces)."""
    level = np.cross([0.0, 0.0, 1.0], normals)
    flat = np.linalg.norm(level, axis=1) < 1e-6
    level[flat] = [1.0, 0.0, 0.0]
    level /= np.linalg.norm(level, axis=1, keepdims=True)
    return np.stack([level, np.cross(normals, level), normals], axis=2)
