"""The tile-based Gaussian rasteriser against a per-pixel reference, and its projection, ordering,
culling, level of detail and gradients."""
import math

import numpy as np
import pytest
import torch

from mixed_reality.gaussians import GaussianModel
from mixed_reality.render import (FRUSTUM_SLACK, GaussianParameters, GaussianRenderer, RenderConfig, merge_gaussians,
                                  rotation_matrices)

WIDTH, HEIGHT = 48, 32
INTRINSICS = np.array([[40.0, 0.0, 23.5], [0.0, 40.0, 15.5], [0.0, 0.0, 1.0]])
LOOKING_ALONG_X = np.array([[0.0, 0.0, 1.0, 0.0], [-1.0, 0.0, 0.0, 0.0], [0.0, -1.0, 0.0, 1.5], [0.0, 0.0, 0.0, 1.0]])
"""Optical frame at (0, 0, 1.5) in map looking along +x (x right = -y map, y down = -z map)."""
NO_LOD = RenderConfig(lod_levels=0, device="cpu")


def model_of(means, scales, colors, opacities=None, rotations=None, background=(0.0, 0.0, 0.0)) -> GaussianModel:
    means = np.asarray(means, dtype=np.float32).reshape(-1, 3)
    count = len(means)
    rotations = np.tile([1.0, 0.0, 0.0, 0.0], (count, 1)) if rotations is None else rotations
    return GaussianModel(means, np.broadcast_to(np.asarray(scales, dtype=np.float32), (count, 3)), rotations,
                         np.full(count, 0.9) if opacities is None else opacities,
                         np.broadcast_to(np.asarray(colors, dtype=np.float32), (count, 3)), background)


def reference_render(model: GaussianModel, config: RenderConfig) -> np.ndarray:
    """Per pixel, every Gaussian in depth order (EWA with the same clamping, low-pass and thresholds), float RGB."""
    rotation, origin = LOOKING_ALONG_X[:3, :3], LOOKING_ALONG_X[:3, 3]
    camera = (model.means - origin) @ rotation
    fx, fy, cx, cy = INTRINSICS[0, 0], INTRINSICS[1, 1], INTRINSICS[0, 2], INTRINSICS[1, 2]
    rotations = rotation_matrices(torch.as_tensor(model.rotations)).numpy()
    limit_x = FRUSTUM_SLACK * max(cx + 0.5, WIDTH - 0.5 - cx) / fx
    limit_y = FRUSTUM_SLACK * max(cy + 0.5, HEIGHT - 0.5 - cy) / fy
    image = np.zeros((HEIGHT, WIDTH, 3))
    transmittance = np.ones((HEIGHT, WIDTH))
    rows, columns = np.mgrid[0:HEIGHT, 0:WIDTH]
    for index in np.argsort(camera[:, 2]):
        x, y, z = camera[index]
        if z <= config.near or z >= config.max_distance:
            continue
        covariance = rotations[index] @ np.diag(model.scales[index] ** 2) @ rotations[index].T
        slope_x, slope_y = np.clip(x / z, -limit_x, limit_x), np.clip(y / z, -limit_y, limit_y)
        jacobian = np.array([[fx / z, 0.0, -fx * slope_x / z], [0.0, fy / z, -fy * slope_y / z]]) @ rotation.T
        projected = jacobian @ covariance @ jacobian.T + config.low_pass * np.eye(2)
        conic = np.linalg.inv(projected)
        du, dv = columns - (fx * x / z + cx), rows - (fy * y / z + cy)
        power = -0.5 * (conic[0, 0] * du ** 2 + 2 * conic[0, 1] * du * dv + conic[1, 1] * dv ** 2)
        alpha = np.minimum(model.opacities[index] * np.exp(power), config.max_alpha)
        alpha = np.where(alpha >= config.alpha_threshold, alpha, 0.0)
        image += (transmittance * alpha)[..., None] * model.colors[index]
        transmittance *= 1.0 - alpha
    return image + transmittance[..., None] * np.array(model.background)


def test_matches_a_per_pixel_reference_on_random_gaussians():
    rng = np.random.default_rng(3)
    count = 60
    quaternions = rng.normal(size=(count, 4))
    model = model_of(np.stack([rng.uniform(2.0, 12.0, count), rng.uniform(-4.0, 4.0, count),
                               rng.uniform(0.0, 3.0, count)], axis=1), rng.uniform(0.02, 0.5, (count, 3)),
                     rng.uniform(0.0, 1.0, (count, 3)), rng.uniform(0.05, 1.0, count),
                     quaternions / np.linalg.norm(quaternions, axis=1, keepdims=True), (0.2, 0.4, 0.6))
    expected = reference_render(model, NO_LOD)
    for tile_size in (4, 8, 5):  # 5: the image is not a whole number of tiles
        result = GaussianRenderer(model, RenderConfig(lod_levels=0, tile_size=tile_size, device="cpu")).render(
            LOOKING_ALONG_X, INTRINSICS, WIDTH, HEIGHT)
        assert result.rgb.shape == (HEIGHT, WIDTH, 3) and result.rgb.dtype == np.uint8
        assert np.abs(result.rgb.astype(float) - expected * 255.0).max() <= 1.0


def test_a_gaussian_appears_where_its_mean_projects_with_its_colour_and_depth():
    # 5 m ahead, 0.9375 m left (map +y), 0.0625 m below the camera: column 23.5 - 40 * 0.9375 / 5 = 16,
    # row 15.5 + 40 * 0.0625 / 5 = 16.
    model = model_of([[5.0, 0.9375, 1.4375]], 0.2, (1.0, 0.5, 0.0), opacities=np.array([0.99]))
    result = GaussianRenderer(model, NO_LOD).render(LOOKING_ALONG_X, INTRINSICS, WIDTH, HEIGHT)
    row, column = np.unravel_index(np.argmax(result.alpha), result.alpha.shape)
    assert (row, column) == (16, 16)
    assert result.alpha[row, column] == pytest.approx(0.99, abs=1e-4)
    assert result.rgb[row, column, 0] > 240 and result.rgb[row, column, 2] < 10
    assert result.depth[row, column] == pytest.approx(5.0, abs=1e-3)
    assert np.isinf(result.depth[0, 0]) and result.alpha[0, 0] == 0.0
    assert np.all(result.rgb[0, 0] == 0)  # the background


def test_nearer_gaussians_hide_farther_ones_whatever_their_order_in_the_model():
    near = [[4.0, 0.0, 1.5]]
    far = [[8.0, 0.0, 1.5]]
    for means, colors in (([near[0], far[0]], [(1, 0, 0), (0, 0, 1)]), ([far[0], near[0]], [(0, 0, 1), (1, 0, 0)])):
        model = model_of(means, [0.5, 0.5, 0.5], np.array(colors, dtype=float), opacities=np.array([0.99, 0.99]))
        result = GaussianRenderer(model, NO_LOD).render(LOOKING_ALONG_X, INTRINSICS, WIDTH, HEIGHT)
        centre = result.rgb[15, 23]
        assert centre[0] > 240 and centre[2] < 10
        assert result.depth[15, 23] == pytest.approx(4.0, abs=0.1)


def test_gaussians_behind_the_camera_beyond_max_distance_or_outside_the_view_are_not_drawn():
    model = model_of([[-5.0, 0.0, 1.5], [60.0, 0.0, 1.5], [5.0, 40.0, 1.5]], 1.5, (1.0, 1.0, 1.0))
    result = GaussianRenderer(model, RenderConfig(lod_levels=0, max_distance=50.0, device="cpu")).render(
        LOOKING_ALONG_X, INTRINSICS, WIDTH, HEIGHT)
    assert result.alpha.max() == 0.0
    close_enough = GaussianRenderer(model, RenderConfig(lod_levels=0, max_distance=100.0, device="cpu")).render(
        LOOKING_ALONG_X, INTRINSICS, WIDTH, HEIGHT)
    assert close_enough.alpha.max() > 0.5


def wall(spacing: float, colors_of=lambda y, z: (0.6, 0.3, 0.2)) -> GaussianModel:
    """A wall of flat Gaussians (normal along x) at x = 30 m, spaced `spacing`, closed like mixed_reality.build's."""
    y, z = np.meshgrid(np.arange(-20.0, 20.0, spacing), np.arange(0.0, 12.0, spacing))
    means = np.stack([np.full(y.size, 30.0), y.ravel(), z.ravel()], axis=1)
    # Gaussian axes (x, y, z) -> map (y, z, x): the thin third axis along map x.
    turn = np.array([0.5, 0.5, 0.5, 0.5])
    return model_of(means, [0.6 * spacing, 0.6 * spacing, 0.06 * spacing], np.array([colors_of(*p[1:]) for p in means]),
                    opacities=np.full(len(means), 0.95), rotations=np.tile(turn, (len(means), 1)), background=(0, 0, 1))


def test_level_of_detail_draws_far_fewer_gaussians_and_keeps_colours_and_cover():
    # 30 m away a 0.1 m Gaussian is 0.13 px; the level of detail merges them into 3.2 m voxels (4 px).
    model = wall(0.1, lambda y, z: (0.8, 0.2, 0.2) if y < 0 else (0.2, 0.8, 0.2))
    full = GaussianRenderer(model, NO_LOD).render(LOOKING_ALONG_X, INTRINSICS, WIDTH, HEIGHT)
    lod = GaussianRenderer(model, RenderConfig(device="cpu")).render(LOOKING_ALONG_X, INTRINSICS, WIDTH, HEIGHT)
    assert lod.drawn < full.drawn / 100
    interior = (slice(4, 14), np.r_[2:18, 30:46])  # rows inside the wall, columns away from the colour edge
    # One layer of merged Gaussians covers 94-99 % (as the model's own do up close), the far fine ones
    # smeared by the low-pass filter all of it: a few levels of the blue background show through.
    assert np.abs(full.rgb[interior].astype(float) - lod.rgb[interior]).mean() < 6.0
    assert lod.alpha[interior].min() > 0.9
    assert np.abs(full.rgb.astype(float) - lod.rgb).mean() < 15.0  # edges blur by about a voxel (4 px)


def test_merged_gaussians_keep_colour_and_cover_their_voxels():
    model = wall(0.1)
    covariances = GaussianParameters.from_model(model).covariances().detach().numpy().astype(np.float64)
    means, merged, opacities, colors = merge_gaussians(model.means.astype(np.float64), covariances,
                                                       model.opacities.astype(np.float64),
                                                       model.colors.astype(np.float64), 0.8)
    assert len(means) == pytest.approx(len(model) / 64, rel=0.1)
    np.testing.assert_allclose(colors, np.tile([0.6, 0.3, 0.2], (len(colors), 1)), atol=1e-6)
    np.testing.assert_allclose(opacities, 0.95, atol=1e-6)
    spreads = np.sqrt(np.linalg.eigvalsh(merged))
    interior = np.all(np.abs(means[:, 1:] - [0.0, 6.0]) < [19.0, 5.0], axis=1)
    np.testing.assert_allclose(spreads[interior, 1:], 0.6 * 0.8, rtol=0.05)  # widened in the wall's plane
    assert np.all(spreads[interior, 0] < 0.05)  # still thin across it


def test_render_tensor_is_differentiable_and_matches_render():
    model = wall(0.5, lambda y, z: (0.5 + 0.01 * y, 0.4, 0.3))
    renderer = GaussianRenderer(model, NO_LOD)
    parameters = GaussianParameters.from_model(model)
    for tensor in (parameters.colors, parameters.opacity_logits, parameters.means, parameters.log_scales,
                   parameters.rotations):
        tensor.requires_grad_(True)
    tensors = renderer.render_tensor(LOOKING_ALONG_X, INTRINSICS, WIDTH, HEIGHT, parameters)
    image = renderer.render(LOOKING_ALONG_X, INTRINSICS, WIDTH, HEIGHT)
    assert np.abs(tensors.rgb.detach().numpy() * 255.0 - image.rgb).max() <= 0.51
    tensors.rgb[..., 0].sum().backward()
    for tensor in (parameters.colors, parameters.opacity_logits, parameters.means, parameters.log_scales,
                   parameters.rotations):
        assert tensor.grad is not None and torch.isfinite(tensor.grad).all() and tensor.grad.abs().sum() > 0
    assert torch.all(parameters.colors.grad[:, 1:] == 0)  # only red was summed


def test_render_tensor_gradient_matches_finite_differences():
    model = model_of([[6.0, 0.3, 1.6], [7.0, -0.2, 1.4]], [0.3, 0.2, 0.1], np.array([(0.9, 0.2, 0.1), (0.1, 0.3, 0.8)]),
                     opacities=np.array([0.7, 0.8]))
    renderer = GaussianRenderer(model, NO_LOD)

    def loss(means: torch.Tensor) -> torch.Tensor:
        parameters = GaussianParameters.from_model(model)
        parameters.means = means
        return renderer.render_tensor(LOOKING_ALONG_X, INTRINSICS, WIDTH, HEIGHT, parameters).rgb.pow(2).sum()

    means = torch.as_tensor(model.means).clone().requires_grad_(True)
    loss(means).backward()
    step = 1e-2
    for gaussian, axis in ((0, 1), (1, 2)):
        shifted_up, shifted_down = means.detach().clone(), means.detach().clone()
        shifted_up[gaussian, axis] += step
        shifted_down[gaussian, axis] -= step
        numeric = (loss(shifted_up) - loss(shifted_down)).item() / (2 * step)
        assert means.grad[gaussian, axis].item() == pytest.approx(numeric, rel=0.05, abs=0.05)


def test_config_checks():
    with pytest.raises(ValueError, match="device"):
        RenderConfig(device="tpu")
    with pytest.raises(ValueError, match="tile_size"):
        RenderConfig(tile_size=1)
    with pytest.raises(ValueError, match="max_distance"):
        RenderConfig(max_distance=-1.0)
    with pytest.raises(ValueError, match="whole multiple"):
        RenderConfig(cell_size=8.0)  # the coarsest voxel is 0.4 x 2^3 = 3.2 m
    assert RenderConfig(cell_size=8.0, lod_levels=0).cell_size == 8.0
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="cuda"):
            RenderConfig(device="cuda")
    assert RenderConfig().torch_device().type == ("cuda" if torch.cuda.is_available() else "cpu")


def test_empty_model_renders_the_background():
    model = model_of(np.zeros((0, 3)), 0.1, (1.0, 1.0, 1.0), opacities=np.zeros(0), background=(0.5, 0.25, 1.0))
    result = GaussianRenderer(model).render(LOOKING_ALONG_X, INTRINSICS, WIDTH, HEIGHT)
    assert np.all(result.rgb == [128, 64, 255]) and np.all(result.alpha == 0) and np.all(np.isinf(result.depth))


def test_rotation_matrices_are_rotations():
    quaternions = torch.nn.functional.normalize(torch.randn(20, 4, generator=torch.Generator().manual_seed(0)), dim=1)
    matrices = rotation_matrices(quaternions)
    identity = matrices @ matrices.transpose(1, 2)
    assert torch.allclose(identity, torch.eye(3).expand(20, 3, 3), atol=1e-5)
    assert torch.allclose(torch.det(matrices), torch.ones(20), atol=1e-5)
    quarter_turn_about_z = rotation_matrices(torch.tensor([[math.cos(math.pi / 4), 0.0, 0.0, math.sin(math.pi / 4)]]))
    assert torch.allclose(quarter_turn_about_z[0] @ torch.tensor([1.0, 0.0, 0.0]), torch.tensor([0.0, 1.0, 0.0]), atol=1e-6)
