"""PSNR and SSIM: known values, the properties of the measures, and input checks."""
import math

import numpy as np
import pytest

from mixed_reality.quality import MAX_PSNR, psnr, ssim


def noisy(image: np.ndarray, sigma: float, seed: int = 0) -> np.ndarray:
    noise = np.random.default_rng(seed).normal(0.0, sigma, image.shape)
    return np.clip(image + noise, 0, 255).astype(np.uint8)


@pytest.fixture
def image() -> np.ndarray:
    rows, columns = np.mgrid[0:60, 0:80]
    return np.stack([columns * 3, rows * 4, (rows + columns) * 2], axis=-1).clip(0, 255).astype(np.uint8)


def test_psnr_known_values(image):
    assert psnr(image, image) == MAX_PSNR
    brighter = image.astype(int) + 10
    assert psnr(np.clip(brighter, 0, 255).astype(np.uint8), image) == pytest.approx(
        10 * math.log10(255 ** 2 / np.mean((np.clip(brighter, 0, 255) - image) ** 2)))
    flat = np.full((20, 20, 3), 100, np.uint8)
    assert psnr(flat + 10, flat) == pytest.approx(10 * math.log10(255 ** 2 / 100))  # 28.13 dB
    assert psnr(np.zeros_like(flat), np.full_like(flat, 255)) == pytest.approx(0.0)


def test_ssim_of_constant_images_is_the_luminance_term():
    # With no variance SSIM = (2 a b + C1) / (a² + b² + C1), computed by hand.
    a, b, c1 = 100.0, 120.0, (0.01 * 255) ** 2
    expected = (2 * a * b + c1) / (a * a + b * b + c1)
    assert ssim(np.full((30, 30, 3), 100, np.uint8), np.full((30, 30, 3), 120, np.uint8)) == pytest.approx(expected)


def test_ssim_is_wang_et_als_mean_index_written_out(image):
    # Every pixel at least the window's radius (5) from the border: its 11 x 11 Gaussian window
    # (sigma 1.5) lies inside the image, so the index is computed here directly, per channel.
    first, second = image[:20, :24], noisy(image, 20.0)[:20, :24]
    radius, sigma = 5, 1.5
    offsets = np.arange(-radius, radius + 1)
    kernel = np.exp(-(offsets[:, None] ** 2 + offsets[None, :] ** 2) / (2 * sigma ** 2))
    kernel /= kernel.sum()
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    indices = []
    for row in range(radius, 20 - radius):
        for column in range(radius, 24 - radius):
            for channel in range(3):
                x = first[row - radius:row + radius + 1, column - radius:column + radius + 1, channel].astype(float)
                y = second[row - radius:row + radius + 1, column - radius:column + radius + 1, channel].astype(float)
                mean_x, mean_y = (kernel * x).sum(), (kernel * y).sum()
                var_x, var_y = (kernel * (x - mean_x) ** 2).sum(), (kernel * (y - mean_y) ** 2).sum()
                covariance = (kernel * (x - mean_x) * (y - mean_y)).sum()
                indices.append((2 * mean_x * mean_y + c1) * (2 * covariance + c2)
                               / ((mean_x ** 2 + mean_y ** 2 + c1) * (var_x + var_y + c2)))
    assert ssim(first, second) == pytest.approx(np.mean(indices), abs=1e-9)


def test_measures_are_symmetric_and_fall_with_noise(image):
    slightly, badly = noisy(image, 5.0), noisy(image, 40.0)
    assert ssim(image, image) == pytest.approx(1.0)
    assert psnr(image, badly) == pytest.approx(psnr(badly, image))
    assert ssim(image, badly) == pytest.approx(ssim(badly, image))
    assert psnr(image, slightly) > psnr(image, badly)
    assert 1.0 > ssim(image, slightly) > ssim(image, badly) > 0.0


def test_inputs_are_checked(image):
    with pytest.raises(ValueError, match="same shape"):
        psnr(image, image[:-1])
    with pytest.raises(ValueError, match="same shape"):
        ssim(image[..., 0], image[..., 0])
    with pytest.raises(ValueError, match="larger than 11"):
        ssim(image[:8, :8], image[:8, :8])
