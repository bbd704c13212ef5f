"""Image quality of a rendered (or received) frame against a reference: PSNR and SSIM.

Both take uint8 RGB images of the same shape (H, W, 3) with a data range of 255.

- PSNR = 10 log10(255² / MSE) over all pixels and channels, in dB, capped at MAX_PSNR (identical
  images have an MSE of 0 and would be infinite).
- SSIM is Wang, Bovik, Sheikh and Simoncelli's (IEEE TIP 2004): local means, variances and the
  covariance under a Gaussian window of σ = 1.5 px (11 × 11 taps), K1 = 0.01, K2 = 0.03,
  computed per RGB channel and averaged over the channels and over the pixels at least 5 px
  (the window's radius) from the border, so the border padding does not count. This is what
  skimage.metrics.structural_similarity(..., gaussian_weights=True, sigma=1.5,
  use_sample_covariance=False, data_range=255, channel_axis=-1) computes.
"""
from __future__ import annotations

import math

import numpy as np
from scipy.ndimage import gaussian_filter

MAX_PSNR = 60.0
"""PSNR of identical images (and the most any pair scores), dB: a uint8 image that differs from
its reference by one level in one value out of 20,000 already scores ~91 dB, so 60 dB is 'identical' for
every purpose here."""
SSIM_SIGMA = 1.5
"""Standard deviation of SSIM's Gaussian window, pixels."""
SSIM_TRUNCATE = 3.5
"""The window is cut this many σ from its centre: radius int(3.5 × 1.5 + 0.5) = 5, 11 × 11 taps."""
SSIM_K1, SSIM_K2 = 0.01, 0.03
"""SSIM's stabilising constants, as shares of the data range."""
DATA_RANGE = 255.0
"""Range of uint8 pixel values."""


def _checked(image: np.ndarray, reference: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    image, reference = np.asarray(image), np.asarray(reference)
    if image.shape != reference.shape or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"need two RGB images (H, W, 3) of the same shape, got {image.shape} and {reference.shape}")
    return image.astype(np.float64), reference.astype(np.float64)


def psnr(image: np.ndarray, reference: np.ndarray) -> float:
    """Peak signal-to-noise ratio, dB, at most MAX_PSNR (see the module docstring)."""
    image, reference = _checked(image, reference)
    mse = float(np.mean((image - reference) ** 2))
    if mse == 0.0:
        return MAX_PSNR
    return min(MAX_PSNR, 10.0 * math.log10(DATA_RANGE ** 2 / mse))


def ssim(image: np.ndarray, reference: np.ndarray) -> float:
    """Mean structural similarity in [-1, 1] over RGB channels and interior pixels (module docstring)."""
    image, reference = _checked(image, reference)
    radius = int(SSIM_TRUNCATE * SSIM_SIGMA + 0.5)
    if min(image.shape[:2]) <= 2 * radius:
        raise ValueError(f"SSIM needs images larger than {2 * radius + 1} px on each side, got {image.shape[:2]}")

    def local_mean(values: np.ndarray) -> np.ndarray:
        return gaussian_filter(values, sigma=(SSIM_SIGMA, SSIM_SIGMA, 0.0), truncate=SSIM_TRUNCATE, mode="reflect")

    mean_x, mean_y = local_mean(image), local_mean(reference)
    var_x = local_mean(image * image) - mean_x ** 2
    var_y = local_mean(reference * reference) - mean_y ** 2
    covariance = local_mean(image * reference) - mean_x * mean_y
    c1, c2 = (SSIM_K1 * DATA_RANGE) ** 2, (SSIM_K2 * DATA_RANGE) ** 2
    index = ((2 * mean_x * mean_y + c1) * (2 * covariance + c2)) / ((mean_x ** 2 + mean_y ** 2 + c1) * (var_x + var_y + c2))
    return float(index[radius:-radius, radius:-radius].mean())
