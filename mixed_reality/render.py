"""Tile-based rasterisation of 3D Gaussians (Kerbl et al., SIGGRAPH 2023) in torch, vectorised.

A view: the cells of a planar grid over the model that lie within max_distance of the camera and
meet its view frustum give the candidate Gaussians; each is projected with the EWA approximation
(Jacobian of the perspective projection at its mean, Σ' = J W Σ Wᵀ Jᵀ, plus a low-pass of
`low_pass` px² as in 3DGS); the image is cut into tile_size² tiles, every Gaussian is paired with
the tiles its footprint (where its alpha reaches alpha_threshold) touches, the pairs are sorted by
(tile, depth), and each tile pixel composites its pairs front to back,
C = Σ cᵢ αᵢ Tᵢ with Tᵢ = Πⱼ<ᵢ (1 − αⱼ). All of it is whole-tensor arithmetic, no Python loop per
Gaussian or tile: a pair's alphas over its tile's pixels are one matrix product (the exponent is a
quadratic in the pixel's offset), the transmittances one segmented cumulative sum of log(1 − α)
over all pairs, and the per-tile sums one sparse (tiles × pairs) product. The same code gives
images (`render`) and a differentiable torch graph (`render_tensor`) for fitting.

Far away, a pixel covers many of the model's Gaussians; a level-of-detail pyramid built once
(Gaussians merged by moment matching in voxels of 1, 2, 4, 8 ... times `lod_voxel`) replaces the
model's own Gaussians in cells so far away that a coarser voxel still spans `lod_pixels` pixels,
which bounds the work per view over a long street.

Frames: camera_to_map is the optical frame (REP-103 `_optical`: z forward, x right, y down) in map;
pixel (u, v), u the column, looks along ((u - cx) / fx, (v - cy) / fy, 1), so pixel centres are at
whole coordinates, as in sim.camera.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import dataclasses
import functools
import math
import warnings
from dataclasses import dataclass, field

import numpy as np
import torch

from mixed_reality.build import voxel_groups
from mixed_reality.gaussians import OPACITY_EPSILON, GaussianModel
from sim.validation import check_ranges

DEVICES = ("auto", "cpu", "cuda")
"""Accepted values of RenderConfig.device."""
FRUSTUM_SLACK = 1.3
"""Projected positions are clamped to this multiple of the field of view before the Jacobian is
taken (3DGS), so Gaussians beside the camera do not blow up."""
SPREAD = 0.6
"""In-surface standard deviation of merged Gaussians per voxel edge (mixed_reality.build's default spread)."""
LOD_FILL = 0.5
"""A merged Gaussian spans its voxel along an axis whose variance is at least this share of that
of a covered voxel (edge²/12); thinner axes are a pole's or a kerb's and stay as they are."""


@dataclass
class RenderConfig:
    """Rasteriser settings."""

    tile_size: int = field(default=4, metadata={"range": (2, 64)})
    """Edge of the square image tiles that Gaussians are sorted into, pixels."""
    max_distance: float = field(default=200.0, metadata={"range": (1.0, 100000.0)})
    """Gaussians deeper than this along the optical axis are culled, metres (the sky shows there)."""
    near: float = field(default=0.2, metadata={"range": (0.01, 100.0)})
    """Gaussians closer than this to the image plane are culled, metres."""
    alpha_threshold: float = field(default=1.0 / 255.0, metadata={"range": (1e-6, 0.5)})
    """Smaller alphas are skipped; it also bounds each Gaussian's footprint (3DGS: 1/255)."""
    max_alpha: float = field(default=0.99, metadata={"range": (0.5, 0.9999)})
    """Alpha of one Gaussian at a pixel is capped here (3DGS: 0.99), so transmittance stays positive."""
    low_pass: float = field(default=0.3, metadata={"range": (0.0, 10.0)})
    """Added to the diagonal of every projected covariance, px² (3DGS: 0.3): nothing is thinner than a pixel."""
    cell_size: float = field(default=6.4, metadata={"range": (0.5, 10000.0)})
    """Edge of the map grid cells (x, y) used to cull Gaussians and choose their level of detail,
    metres; a whole multiple of the coarsest level's voxel, so that no merged voxel straddles two
    cells that may draw different levels."""
    lod_voxel: float = field(default=0.4, metadata={"range": (0.01, 100.0)})
    """Voxel of the first coarse level of detail, metres; each further level doubles it."""
    lod_levels: int = field(default=4, metadata={"range": (0, 12)})
    """Coarse levels of detail above the model itself; 0 renders the model's Gaussians everywhere."""
    lod_pixels: float = field(default=3.0, metadata={"range": (0.1, 1000.0)})
    """A cell draws the finest level whose voxels span at least this many pixels at the cell's
    nearest point (for the view's focal length); the model's own voxel is taken as lod_voxel / 2."""
    device: str = "auto"
    """Where to render: auto (CUDA when available), cpu or cuda."""
    keep_freed_memory: bool = True
    """With glibc, keep freed heap memory in the process for reuse (M_MMAP_THRESHOLD 256 MiB,
    M_TRIM_THRESHOLD 1 GiB, process-wide, set once): a CPU view frees and reallocates ~100 MB of
    temporaries, and by default glibc hands them back to the system at once, so every view paid
    ~30,000 page faults, which on the 2-core reference machine doubled its time (93 → 41 ms median)."""

    def __post_init__(self) -> None:
        check_ranges(self)
        if self.device not in DEVICES:
            raise ValueError(f"device: must be one of {', '.join(DEVICES)}, got {self.device!r}")
        if self.lod_levels:
            coarsest = self.lod_voxel * 2.0 ** (self.lod_levels - 1)
            if abs(self.cell_size / coarsest - round(self.cell_size / coarsest)) > 1e-6 or self.cell_size < coarsest:
                raise ValueError(f"cell_size: must be a whole multiple of the coarsest level's voxel "
                                 f"(lod_voxel x 2^(lod_levels - 1) = {coarsest:g}), got {self.cell_size:g}")
        if self.device == "cuda" and not torch.cuda.is_available():
            raise ValueError("device: cuda was asked for but torch sees no CUDA device")

    def torch_device(self) -> torch.device:
        return torch.device("cuda" if self.device == "cuda" or (self.device == "auto" and torch.cuda.is_available())
                            else "cpu")


@dataclass
class RenderResult:
    """One rendered view."""

    rgb: np.ndarray
    """Colour, uint8 (H, W, 3)."""
    alpha: np.ndarray
    """Accumulated opacity 1 − T, float32 (H, W)."""
    depth: np.ndarray
    """Opacity-weighted mean depth (optical z) of the Gaussians seen, metres, +inf where alpha < 0.5, float32 (H, W)."""
    drawn: int = 0
    """Gaussians (of any level of detail) that were projected and touched the image."""


@dataclass
class RenderTensors:
    """One rendered view as torch tensors (differentiable with respect to the parameters given)."""

    rgb: torch.Tensor
    """Colour in [0, 1], background included, float32 (H, W, 3)."""
    alpha: torch.Tensor
    """Accumulated opacity, float32 (H, W)."""
    depth: torch.Tensor
    """Opacity-weighted depth sum Σ wᵢ zᵢ (divide by alpha for the mean), metres, float32 (H, W)."""
    drawn: int = 0
    """Gaussians that were projected and touched the image."""


@dataclass
class GaussianParameters:
    """A model's Gaussians as torch tensors in the parameterisation 3DGS optimises."""

    means: torch.Tensor
    """Centres in map, metres (N, 3)."""
    log_scales: torch.Tensor
    """Natural logarithms of the standard deviations, (N, 3)."""
    rotations: torch.Tensor
    """Quaternions (w, x, y, z), normalised when used, (N, 4)."""
    opacity_logits: torch.Tensor
    """Logits of the opacities, (N,)."""
    colors: torch.Tensor
    """RGB, clamped to [0, 1] when used, (N, 3)."""

    @staticmethod
    def from_model(model: GaussianModel, device: torch.device | str = "cpu") -> GaussianParameters:
        opacities = np.clip(model.opacities, OPACITY_EPSILON, 1.0 - OPACITY_EPSILON)
        return GaussianParameters(*(torch.tensor(value, dtype=torch.float32, device=device) for value in (
            model.means, np.log(model.scales), model.rotations, np.log(opacities / (1.0 - opacities)), model.colors)))

    def to_model(self, background: tuple[float, float, float]) -> GaussianModel:
        with torch.no_grad():
            return GaussianModel(
                means=self.means.cpu().numpy(), scales=torch.exp(self.log_scales).cpu().numpy(),
                rotations=torch.nn.functional.normalize(self.rotations, dim=1).cpu().numpy(),
                opacities=torch.sigmoid(self.opacity_logits).cpu().numpy(),
                colors=self.colors.clamp(0.0, 1.0).cpu().numpy(), background=background)

    def covariances(self, index: torch.Tensor | None = None) -> torch.Tensor:
        """Σ = R S² Rᵀ of the Gaussians picked by `index` (all by default), (M, 3, 3)."""
        pick = slice(None) if index is None else index
        rotation = rotation_matrices(torch.nn.functional.normalize(self.rotations[pick], dim=1))
        variances = torch.exp(2.0 * self.log_scales[pick])
        return (rotation * variances[:, None, :]) @ rotation.transpose(1, 2)


MMAP_THRESHOLD = 256 << 20
"""glibc M_MMAP_THRESHOLD set by keep_freed_memory, bytes: larger blocks are mapped and unmapped."""
TRIM_THRESHOLD = 1 << 30
"""glibc M_TRIM_THRESHOLD set by keep_freed_memory, bytes: free heap beyond this is given back."""


@functools.cache
def keep_freed_memory() -> bool:
    """Ask glibc's malloc to keep freed memory for reuse (see RenderConfig.keep_freed_memory);
    False where the C library is not glibc."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3  # from glibc's malloc.h
    return bool(mallopt(m_mmap_threshold, MMAP_THRESHOLD)) and bool(mallopt(m_trim_threshold, TRIM_THRESHOLD))


def rotation_matrices(quaternions: torch.Tensor) -> torch.Tensor:
    """Rotation matrices (N, 3, 3) of unit quaternions (w, x, y, z) (N, 4)."""
    w, x, y, z = quaternions.unbind(1)
    return torch.stack([
        1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
        2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
        2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)], dim=1).reshape(-1, 3, 3)


@dataclass
class _Level:
    """One level of detail: its Gaussians, sorted by grid cell, and the cells' bounding spheres."""

    gaussians: np.ndarray
    """Each Gaussian as one row: mean (3), covariance (9, row-major), opacity, colour (3), float64 (N, 16)."""
    order: np.ndarray
    """Model index of each Gaussian (level 0; merged levels have none, it is their own order), int64 (N,)."""
    cell_keys: np.ndarray
    """Grid cell (i, j) of each occupied cell, int64 (C, 2)."""
    cell_starts: np.ndarray
    """First Gaussian of each cell, int64 (C,)."""
    cell_counts: np.ndarray
    """Gaussians in each cell, int64 (C,)."""
    cell_centers: np.ndarray
    """Bounding-sphere centres, float64 (C, 3)."""
    cell_radii: np.ndarray
    """Bounding-sphere radii, reaching every Gaussian's 3-sigma extent, float64 (C,)."""
    cell_levels: np.ndarray
    """Level of detail of each cell's Gaussians (0: the model's own), int64 (C,)."""

    @staticmethod
    def concatenate(levels: list[_Level]) -> _Level:
        """All levels' Gaussians and cells as one (cell starts shifted to the joined rows)."""
        offsets = np.cumsum([0] + [len(level.order) for level in levels[:-1]])
        joined = {field.name: np.concatenate([getattr(level, field.name) for level in levels])
                  for field in dataclasses.fields(_Level)}
        joined["cell_starts"] = np.concatenate([level.cell_starts + offset for level, offset in zip(levels, offsets)])
        return _Level(**joined)


class GaussianRenderer:
    """Renders a GaussianModel from camera poses (see the module docstring)."""

    def __init__(self, model: GaussianModel, config: RenderConfig = RenderConfig()) -> None:
        self.model = model
        self.config = config
        self.device = config.torch_device()
        if config.keep_freed_memory and self.device.type == "cpu":
            keep_freed_memory()
        self.background = torch.tensor(model.background, dtype=torch.float32, device=self.device)
        self.parameters = GaussianParameters.from_model(model, self.device)
        """The model's own parameters on the render device (render_tensor's default)."""
        with torch.no_grad():
            covariances = self.parameters.covariances().cpu().numpy().astype(np.float64)
        fine = (model.means.astype(np.float64), covariances, model.opacities.astype(np.float64),
                model.colors.astype(np.float64))
        levels = [self._level(*fine, level=0)]
        if len(model):
            levels += [self._level(*merge_gaussians(*fine, config.lod_voxel * 2.0 ** level), level=level + 1)
                       for level in range(config.lod_levels)]
        self.levels = len(levels)
        """Levels of detail, the model's own included."""
        # Every level in one table (level 0 first), so that a view culls and gathers in one go.
        self._table = _Level.concatenate(levels)
        self._gaussians = torch.as_tensor(self._table.gaussians, dtype=torch.float32, device=self.device)

    # --- building ------------------------------------------------------------------------------

    def _level(self, means: np.ndarray, covariances: np.ndarray, opacities: np.ndarray, colors: np.ndarray,
               level: int) -> _Level:
        order, starts, _ = voxel_groups(means[:, :2], self.config.cell_size)
        counts = np.diff(np.append(starts, len(order)))
        means, covariances = means[order], covariances[order]
        reach = 3.0 * np.sqrt(np.diagonal(covariances, axis1=1, axis2=2))
        lows = np.minimum.reduceat(means - reach, starts)
        highs = np.maximum.reduceat(means + reach, starts)
        return _Level(
            gaussians=np.concatenate([means, covariances.reshape(-1, 9), opacities[order, None], colors[order]], axis=1),
            order=order, cell_keys=np.floor(means[starts, :2] / self.config.cell_size).astype(np.int64),
            cell_starts=starts, cell_counts=counts,
            cell_centers=0.5 * (lows + highs), cell_radii=0.5 * np.linalg.norm(highs - lows, axis=1),
            cell_levels=np.full(len(starts), level))

    # --- rendering -----------------------------------------------------------------------------

    def render(self, camera_to_map: np.ndarray, intrinsics: np.ndarray, width: int, height: int) -> RenderResult:
        """The view of a camera with optical frame camera_to_map (4x4 in map) and matrix K (3, 3)."""
        with torch.no_grad():
            view = _View(camera_to_map, intrinsics, width, height, self.device)
            chosen = self._cells_in_view(view) & (self._detail_levels(view) == self._table.cell_levels)
            rows = self._gaussians[torch.as_tensor(self._gaussians_of_cells(chosen), device=self.device)]
            result = self._rasterize(view, rows[:, 0:3], rows[:, 3:12].reshape(-1, 3, 3), rows[:, 12], rows[:, 13:16])
            alpha = result.alpha
            rgb = (result.rgb * 255.0 + 0.5).clamp(0, 255).to(torch.uint8)
            depth = torch.where(alpha >= 0.5, result.depth / alpha.clamp_min(1e-6), torch.inf)
        return RenderResult(rgb.cpu().numpy(), alpha.cpu().numpy(), depth.cpu().numpy(), result.drawn)

    def render_tensor(self, camera_to_map: np.ndarray, intrinsics: np.ndarray, width: int, height: int,
                      parameters: GaussianParameters | None = None) -> RenderTensors:
        """The view as torch tensors, differentiable with respect to `parameters` (the model's
        Gaussians in the model's order; default: the model's own). Only the model's own Gaussians
        are drawn, no coarse levels of detail; cells are culled by where the model's means were
        when the renderer was made, so keep the means' changes small (centimetres)."""
        parameters = parameters or self.parameters
        view = _View(camera_to_map, intrinsics, width, height, self.device)
        picked = self._gaussians_of_cells(self._cells_in_view(view) & (self._table.cell_levels == 0))
        index = torch.as_tensor(self._table.order[picked], device=self.device)  # level 0 comes first
        return self._rasterize(view, parameters.means[index], parameters.covariances(index),
                               torch.sigmoid(parameters.opacity_logits[index]), parameters.colors[index].clamp(0.0, 1.0))

    def _cells_in_view(self, view: _View) -> np.ndarray:
        """Whether each cell meets the view frustum up to max_distance, boolean (C,)."""
        table = self._table
        offsets = (table.cell_centers - view.origin) @ view.rotation  # optical frame
        radii = table.cell_radii
        inside = (offsets[:, 2] > self.config.near - radii) & (offsets[:, 2] < self.config.max_distance + radii)
        for normal in view.side_normals:
            inside &= offsets @ normal > -radii
        return inside

    def _detail_levels(self, view: _View) -> np.ndarray:
        """Level of detail each cell should draw: the finest whose voxels span lod_pixels pixels at
        the cell square's nearest point, taking the model's voxel as half of lod_voxel; int (C,)."""
        config = self.config
        corner_low = self._table.cell_keys * config.cell_size
        gap = np.maximum(np.maximum(corner_low - view.origin[:2], view.origin[:2] - corner_low - config.cell_size), 0.0)
        nearest = np.maximum(np.linalg.norm(gap, axis=1), config.near)
        needed = nearest * config.lod_pixels / view.focal  # smallest voxel that spans lod_pixels, metres
        level = np.ceil(np.log2(np.maximum(2.0 * needed / config.lod_voxel, 1e-12)))
        return np.clip(level, 0, self.levels - 1).astype(np.int64)

    def _gaussians_of_cells(self, chosen: np.ndarray) -> np.ndarray:
        """Rows of the table of the Gaussians in the chosen cells, int64."""
        cells = np.flatnonzero(chosen)
        counts = self._table.cell_counts[cells]
        # Concatenated ranges [start, start + count) of the chosen cells.
        return np.repeat(self._table.cell_starts[cells] - np.cumsum(counts) + counts, counts) + np.arange(counts.sum())

    def _rasterize(self, view: _View, means: torch.Tensor, covariances: torch.Tensor, opacities: torch.Tensor,
                   colors: torch.Tensor) -> RenderTensors:
        config, device = self.config, self.device
        differentiable = torch.is_grad_enabled()
        tile = config.tile_size
        tiles_x, tiles_y = math.ceil(view.width / tile), math.ceil(view.height / tile)
        pixels = tile * tile

        # Projection (EWA): camera coordinates, pixel position, 2D covariance, its inverse (conic).
        camera = (means - view.origin_t) @ view.rotation_t
        depth = camera[:, 2]
        keep = (depth > config.near) & (depth < config.max_distance) & (opacities > config.alpha_threshold)
        camera, depth, covariances, opacities, colors = (
            camera[keep], depth[keep], covariances[keep], opacities[keep], colors[keep])
        fx, fy, cx, cy = view.fx, view.fy, view.cx, view.cy
        inverse_depth = 1.0 / depth
        u = fx * camera[:, 0] * inverse_depth + cx
        v = fy * camera[:, 1] * inverse_depth + cy
        slope_x = (camera[:, 0] * inverse_depth).clamp(-view.limit_x, view.limit_x)
        slope_y = (camera[:, 1] * inverse_depth).clamp(-view.limit_y, view.limit_y)
        rows = view.rotation_t.T  # rows: optical x, y, z axes in map
        # Rows of J W: d(u, v) / d(map point).
        jacobian_u = (fx * inverse_depth)[:, None] * (rows[0] - slope_x[:, None] * rows[2])
        jacobian_v = (fy * inverse_depth)[:, None] * (rows[1] - slope_y[:, None] * rows[2])
        sigma_u = (covariances @ jacobian_u[:, :, None])[:, :, 0]
        sigma_v = (covariances @ jacobian_v[:, :, None])[:, :, 0]
        var_u = (jacobian_u * sigma_u).sum(1) + config.low_pass
        var_v = (jacobian_v * sigma_v).sum(1) + config.low_pass
        cov_uv = (jacobian_u * sigma_v).sum(1)
        determinant = (var_u * var_v - cov_uv * cov_uv).clamp_min(1e-12)
        conic_a, conic_b, conic_c = var_v / determinant, -cov_uv / determinant, var_u / determinant

        # Footprint: where opacity * exp(-d²/2) >= alpha_threshold, as a pixel box, then as tiles.
        with torch.no_grad():
            reach = torch.sqrt(2.0 * torch.log(opacities / config.alpha_threshold))
            half_u, half_v = reach * torch.sqrt(var_u), reach * torch.sqrt(var_v)
            first_u = torch.ceil(u - half_u).clamp_min(0)
            last_u = torch.floor(u + half_u).clamp_max(view.width - 1)
            first_v = torch.ceil(v - half_v).clamp_min(0)
            last_v = torch.floor(v + half_v).clamp_max(view.height - 1)
            on_image = (first_u <= last_u) & (first_v <= last_v)
            tile_u0 = torch.div(first_u, tile, rounding_mode="floor").long()
            tile_v0 = torch.div(first_v, tile, rounding_mode="floor").long()
            span_u = torch.div(last_u, tile, rounding_mode="floor").long() - tile_u0 + 1
            span_v = torch.div(last_v, tile, rounding_mode="floor").long() - tile_v0 + 1
            counts = torch.where(on_image, span_u * span_v, 0)
            by_depth = torch.argsort(depth)
            counts = counts[by_depth]
            pair_gaussian = torch.repeat_interleave(by_depth, counts)
            local = torch.arange(len(pair_gaussian), device=device) - torch.repeat_interleave(
                torch.cumsum(counts, 0) - counts, counts)
            span = span_u[pair_gaussian]
            pair_tile = ((tile_v0[pair_gaussian] + local // span) * tiles_x + tile_u0[pair_gaussian] + local % span)
            # Stable: pairs stay in depth order within each tile.
            pair_tile, order = torch.sort(pair_tile, stable=True)
            pair_gaussian = pair_gaussian[order]
            tile_count = tiles_x * tiles_y
            tile_pairs = torch.bincount(pair_tile, minlength=tile_count)
            occupied = torch.nonzero(tile_pairs)[:, 0]
            occupied_pairs = tile_pairs[occupied]
            occupied_first = torch.cumsum(occupied_pairs, 0) - occupied_pairs
            pair_first = torch.repeat_interleave(occupied_first, occupied_pairs)
            if differentiable:
                # index_add's backward is a gather; the sparse product's sorts the matrix every time.
                pair_occupied = torch.repeat_interleave(torch.arange(len(occupied), device=device), occupied_pairs)

                def tile_sum(values: torch.Tensor) -> torch.Tensor:
                    return values.new_zeros((len(occupied),) + values.shape[1:]).index_add(0, pair_occupied, values)
            else:
                # Sums over each occupied tile's pairs as one sparse product: rows are tiles, columns pairs.
                row_starts = torch.cat([occupied_first, torch.full((1,), len(pair_tile), device=device)])
                with warnings.catch_warnings():  # torch warns once that CSR support is in beta
                    warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta",
                                            category=UserWarning)
                    tile_sum = torch.sparse_csr_tensor(row_starts, torch.arange(len(pair_tile), device=device),
                                                       torch.ones(len(pair_tile), device=device),
                                                       size=(len(occupied), len(pair_tile)),
                                                       check_invariants=False).__matmul__
            offsets_v, offsets_u = torch.meshgrid(torch.arange(tile, device=device, dtype=torch.float32),
                                                  torch.arange(tile, device=device, dtype=torch.float32), indexing="ij")
            offsets_u, offsets_v = offsets_u.reshape(-1), offsets_v.reshape(-1)
            basis = torch.stack([torch.ones_like(offsets_u), offsets_u, offsets_v, offsets_u * offsets_u,
                                 offsets_v * offsets_v, offsets_u * offsets_v])  # (6, tile²)
            corner_u = ((pair_tile % tiles_x) * tile).float()
            corner_v = (torch.div(pair_tile, tiles_x, rounding_mode="floor") * tile).float()

        # Alpha of each pair at each pixel of its tile (P, tile²): log(opacity) minus half the conic
        # form of (pixel - mean) is a quadratic in the pixel's offset from the tile corner, so one
        # matrix product with the fixed basis (1, du, dv, du², dv², du dv) evaluates all pixels.
        pairs = torch.stack([u, v, conic_a, conic_b, conic_c, torch.log(opacities), *colors.unbind(1), depth],
                            dim=1)[pair_gaussian]  # one gather for every per-Gaussian value a pair needs
        a, b, c = pairs[:, 2], pairs[:, 3], pairs[:, 4]
        gap_u, gap_v = corner_u - pairs[:, 0], corner_v - pairs[:, 1]
        coefficients = torch.stack([
            pairs[:, 5] - 0.5 * a * gap_u * gap_u - 0.5 * c * gap_v * gap_v - b * gap_u * gap_v,
            -a * gap_u - b * gap_v, -c * gap_v - b * gap_u, -0.5 * a, -0.5 * c, -b], dim=1)
        alpha = torch.exp((coefficients @ basis).clamp_max(0.0)).clamp_max(config.max_alpha)
        alpha = alpha * (alpha >= config.alpha_threshold)

        # Front-to-back transmittance: exclusive cumulative sums of log(1 - alpha) within each tile,
        # from one cumulative sum over all pairs. Each tile's first pair also takes away the previous
        # tile's total, so the running sum stays small (float32 keeps its precision), and the value
        # at each tile's first pair is subtracted, which removes what rounding left over.
        log_transmittance = torch.log1p(-alpha)
        tile_totals = tile_sum(log_transmittance)
        reset = log_transmittance.index_add(0, occupied_first[1:], -tile_totals[:-1])
        running = torch.cumsum(reset, 0) - log_transmittance
        weights = alpha * torch.exp(running - running[pair_first])

        # Colour and depth sums per tile pixel, one channel at a time (each product stays small).
        sums = torch.stack([tile_sum(weights * pairs[:, channel, None]) for channel in range(6, 10)], dim=2)
        remaining = torch.exp(tile_totals)
        occupied_values = torch.cat([sums[:, :, :3] + remaining[:, :, None] * self.background,
                                     1.0 - remaining[:, :, None], sums[:, :, 3:]], dim=2)
        empty = torch.cat([self.background, torch.zeros(2, device=device)])
        values = empty.expand(tile_count, pixels, 5).index_copy(0, occupied, occupied_values)
        # Tiles (tiles_y, tiles_x, tile, tile) to rows and columns of the image.
        image = values.reshape(tiles_y, tiles_x, tile, tile, 5).permute(0, 2, 1, 3, 4).reshape(
            tiles_y * tile, tiles_x * tile, 5)[:view.height, :view.width]
        return RenderTensors(image[..., :3], image[..., 3], image[..., 4], int(torch.count_nonzero(counts)))


class _View:
    """A camera pose and intrinsics, in numpy (for culling) and torch (for projecting)."""

    def __init__(self, camera_to_map: np.ndarray, intrinsics: np.ndarray, width: int, height: int,
                 device: torch.device) -> None:
        camera_to_map = np.asarray(camera_to_map, dtype=np.float64)
        intrinsics = np.asarray(intrinsics, dtype=np.float64)
        if camera_to_map.shape != (4, 4) or intrinsics.shape != (3, 3):
            raise ValueError(f"need a 4x4 camera_to_map and a 3x3 intrinsics, got {camera_to_map.shape} "
                             f"and {intrinsics.shape}")
        self.width, self.height = int(width), int(height)
        self.origin = camera_to_map[:3, 3]
        self.rotation = camera_to_map[:3, :3]
        """Columns: the optical axes in map; map offsets @ rotation are optical coordinates."""
        self.fx, self.fy, self.cx, self.cy = intrinsics[0, 0], intrinsics[1, 1], intrinsics[0, 2], intrinsics[1, 2]
        self.focal = max(self.fx, self.fy)
        # Image edges at the outer pixel borders, as slopes x/z and y/z.
        left, right = (-0.5 - self.cx) / self.fx, (self.width - 0.5 - self.cx) / self.fx
        top, bottom = (-0.5 - self.cy) / self.fy, (self.height - 0.5 - self.cy) / self.fy
        self.limit_x = FRUSTUM_SLACK * max(abs(left), abs(right))
        self.limit_y = FRUSTUM_SLACK * max(abs(top), abs(bottom))
        normals = np.array([[1.0, 0.0, -left], [-1.0, 0.0, right], [0.0, 1.0, -top], [0.0, -1.0, bottom]])
        self.side_normals = normals / np.linalg.norm(normals, axis=1, keepdims=True)
        """Inward unit normals of the four side planes of the frustum, optical frame."""
        self.origin_t = torch.as_tensor(self.origin, dtype=torch.float32, device=device)
        self.rotation_t = torch.as_tensor(self.rotation, dtype=torch.float32, device=device)


def merge_gaussians(means: np.ndarray, covariances: np.ndarray, opacities: np.ndarray, colors: np.ndarray,
                    voxel: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(means, covariances, opacities, colors) of Gaussians merged per voxel of edge `voxel` by
    moment matching, weighted by opacity × area (the square root of the two largest variances'
    product). Along each principal axis on which the merged Gaussian spans its voxel (a variance of
    at least LOD_FILL × voxel² / 12, that of a covered voxel), it is widened to SPREAD × voxel, so
    that neighbouring merged Gaussians close a surface as the model's own do; thin axes stay."""
    order, starts, _ = voxel_groups(means, voxel)
    counts = np.diff(np.append(starts, len(order)))
    group = np.repeat(np.arange(len(starts)), counts)
    means, covariances, opacities, colors = means[order], covariances[order], opacities[order], colors[order]
    variances = np.linalg.eigvalsh(covariances)
    weights = opacities * np.sqrt(np.maximum(variances[:, 1] * variances[:, 2], 1e-12))
    total = np.add.reduceat(weights, starts)

    def weighted_mean(values: np.ndarray) -> np.ndarray:
        weighted = values * weights.reshape((-1,) + (1,) * (values.ndim - 1))
        return np.add.reduceat(weighted, starts) / total.reshape((-1,) + (1,) * (values.ndim - 1))

    merged_means = weighted_mean(means)
    offsets = means - merged_means[group]
    axes_variance, axes = np.linalg.eigh(weighted_mean(covariances + offsets[:, :, None] * offsets[:, None, :]))
    spans = axes_variance >= LOD_FILL * voxel * voxel / 12.0
    axes_variance = np.where(spans, np.maximum(axes_variance, (SPREAD * voxel) ** 2), axes_variance)
    merged_covariances = (axes * axes_variance[:, None, :]) @ axes.transpose(0, 2, 1)
    return merged_means, merged_covariances, weighted_mean(opacities), weighted_mean(colors)
