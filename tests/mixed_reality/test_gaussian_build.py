"""Gaussians from posed RGB-D frames: back-projection, normals, the octree's sizes, colours."""
from dataclasses import dataclass

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from mixed_reality.build import BuildConfig, back_project, fine_voxels, gaussians_from_rgbd, surface_frames

OPTICAL_LOOKING_ALONG_X = np.array([[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])
"""Optical axes (x right, y down, z forward) in map for a camera looking along +x."""
WALL_X = 10.0
RED, GREEN = (200, 40, 40), (40, 200, 40)


@dataclass
class Frame:
    rgb: np.ndarray
    depth: np.ndarray
    intrinsics: np.ndarray
    camera_to_map: np.ndarray


def wall_frame(camera_y: float = 0.0, width: int = 160, height: int = 120) -> Frame:
    """A camera at (0, camera_y, 1.5) looking along +x at the wall x = WALL_X (red where map y > 0,
    green where y < 0), 90 degrees wide; rows below the wall's foot (z < 0) see nothing."""
    focal = width / 2.0
    intrinsics = np.array([[focal, 0.0, (width - 1) / 2], [0.0, focal, (height - 1) / 2], [0.0, 0.0, 1.0]])
    camera_to_map = np.eye(4)
    camera_to_map[:3, :3] = OPTICAL_LOOKING_ALONG_X
    camera_to_map[:3, 3] = (0.0, camera_y, 1.5)
    rows, columns = np.mgrid[0:height, 0:width]
    # Optical z of the wall is its distance along x; map y and z of each pixel's hit follow from it.
    depth = np.full((height, width), WALL_X, dtype=np.float32)
    hit_y = camera_y - (columns - intrinsics[0, 2]) / focal * WALL_X
    hit_z = 1.5 - (rows - intrinsics[1, 2]) / focal * WALL_X
    depth[hit_z < 0.0] = np.inf
    rgb = np.where((hit_y > 0.0)[..., None], np.array(RED, np.uint8), np.array(GREEN, np.uint8)).astype(np.uint8)
    return Frame(rgb, depth, intrinsics, camera_to_map)


def test_back_projection_puts_pixels_on_the_wall_with_its_normal_and_colour():
    frame = wall_frame()
    samples = back_project(frame, BuildConfig(voxel_size=0.02))  # finer than every pixel: nothing thinned
    assert samples.values.shape == (12, int(np.isfinite(frame.depth).sum()))
    positions, colors, normals = samples.values[0:3].T, samples.values[3:6].T, samples.values[9:12].T
    np.testing.assert_allclose(positions[:, 0], WALL_X, atol=1e-4)
    np.testing.assert_allclose(normals, np.tile([-1.0, 0.0, 0.0], (len(normals), 1)), atol=1e-5)  # towards the camera
    red = positions[:, 1] > 0.1
    np.testing.assert_allclose(colors[red], np.tile(np.array(RED) / 255, (red.sum(), 1)), atol=1e-6)
    np.testing.assert_allclose(samples.footprints, WALL_X / 80.0, rtol=1e-5)
    np.testing.assert_allclose(samples.values[6:9], samples.values[3:6] ** 2, atol=1e-6)


def test_back_projection_thins_pixels_much_finer_than_the_finest_voxel():
    frame = wall_frame()
    kept = back_project(frame, BuildConfig(voxel_size=0.5)).footprints.size  # footprint 0.125 m: every 4th
    assert kept == pytest.approx(np.isfinite(frame.depth).sum() / 16, rel=0.1)


def test_octree_makes_large_gaussians_inside_uniform_areas_and_small_ones_at_edges():
    config = BuildConfig(voxel_size=0.1, max_voxel_size=0.8)
    model = gaussians_from_rgbd([wall_frame(), wall_frame(camera_y=1.0)], config)
    np.testing.assert_allclose(model.means[:, 0], WALL_X, atol=1e-3)
    normals = Rotation.from_quat(model.rotations, scalar_first=True).as_matrix()[:, :, 2]
    np.testing.assert_allclose(normals, np.tile([-1.0, 0.0, 0.0], (len(model), 1)), atol=1e-4)
    largest = 0.6 * 0.8
    large = np.isclose(model.scales[:, 0], largest)
    small = model.scales[:, 0] < 0.6 * 0.2 + 1e-6
    assert large.sum() > 100
    np.testing.assert_allclose(model.scales[:, 2], 0.1 * model.scales[:, 0], rtol=1e-5)
    # Large ones stay a block (3 voxels) clear of the colour edge at y = 0 and the wall's foot at z = 0.
    assert np.all(np.abs(model.means[large, 1]) > 0.8) and np.all(model.means[large, 2] > 0.8)
    assert np.any(small & (np.abs(model.means[:, 1]) < 0.1)) and np.any(small & (model.means[:, 2] < 0.1))
    red = model.means[:, 1] > 0.2
    green = model.means[:, 1] < -0.2
    np.testing.assert_allclose(model.colors[red], np.tile(np.array(RED) / 255, (red.sum(), 1)), atol=1e-5)
    np.testing.assert_allclose(model.colors[green], np.tile(np.array(GREEN) / 255, (green.sum(), 1)), atol=1e-5)
    np.testing.assert_allclose(model.opacities, config.opacity)
    # Far fewer Gaussians than finest voxels.
    assert len(model) < fine_voxels([wall_frame(), wall_frame(camera_y=1.0)], config).counts.size / 5


def test_gaussians_are_no_smaller_than_the_pixels_that_sampled_them():
    # At 60 m a pixel of a 40-px-wide 90-degree camera covers 3 m: the finest voxels are sampled sparsely.
    frame = wall_frame(width=40, height=30)
    frame.depth[np.isfinite(frame.depth)] *= 6.0
    frame.camera_to_map = frame.camera_to_map.copy()
    model = gaussians_from_rgbd([frame], BuildConfig(voxel_size=0.1, max_voxel_size=0.4, max_depth=100.0))
    assert np.all(model.scales[:, 0] >= 0.6 * 3.0 - 1e-5)


def test_batches_and_their_order_do_not_change_the_fine_voxels():
    frames = [wall_frame(camera_y=y) for y in (-1.0, 0.0, 1.5)]
    one_batch = fine_voxels(frames, BuildConfig(frames_per_batch=3))
    per_frame = fine_voxels(frames[::-1], BuildConfig(frames_per_batch=1))
    assert one_batch.counts.size == per_frame.counts.size
    order_a = np.lexsort(one_batch.values[0:3])
    order_b = np.lexsort(per_frame.values[0:3])
    np.testing.assert_allclose(one_batch.values[:, order_a], per_frame.values[:, order_b], atol=1e-4)
    np.testing.assert_array_equal(one_batch.counts[order_a], per_frame.counts[order_b])


def test_frames_without_usable_depth_are_refused():
    frame = wall_frame()
    frame.depth[:] = np.inf
    with pytest.raises(ValueError, match="no pixel with a depth"):
        gaussians_from_rgbd([frame])
    with pytest.raises(ValueError, match="max_voxel_size"):
        BuildConfig(voxel_size=0.5, max_voxel_size=0.2)


def test_surface_frames_are_rotations_with_the_normal_third_and_a_level_first_axis():
    rng = np.random.default_rng(0)
    normals = rng.normal(size=(50, 3))
    normals = np.concatenate([normals / np.linalg.norm(normals, axis=1, keepdims=True), [[0, 0, 1.0], [0, 0, -1.0]]])
    frames = surface_frames(normals)
    np.testing.assert_allclose(frames @ frames.transpose(0, 2, 1), np.tile(np.eye(3), (len(normals), 1, 1)), atol=1e-9)
    np.testing.assert_allclose(np.linalg.det(frames), 1.0, atol=1e-9)
    np.testing.assert_allclose(frames[:, :, 2], normals, atol=1e-12)
    np.testing.assert_allclose(frames[:, 2, 0], 0.0, atol=1e-12)
