"""How far the remote twin's render will be from the camera frame, predicted cheaply on the robot.

The remote side renders the robot's view from the static Gaussian model; where moving vehicles or
pedestrians are in view (they are not in the model) or the model is poor, its render differs from
the camera. Before deciding to upload a frame, the robot renders the same model at a low
resolution (80 × 60 by default, a few percent of the stream render's pixels), compares it with the
camera frame averaged down to that size, and maps the low-resolution PSNR and SSIM to the
full-resolution ones with a linear calibration (least squares on pairs measured on a drive).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from mixed_reality.quality import MAX_PSNR, psnr, ssim
from mixed_reality.render import GaussianRenderer
from mixed_reality.stream import downscale, scaled_intrinsics
from sim.validation import check_ranges


@dataclass
class DiscrepancyConfig:
    """Resolution of the predictor's render and its calibration to the stream's resolution.

    The default calibration was fitted by bench/bench_gs_render.py on urban_default, seed 0: 60
    frames of a 30 s lane-keeping drive with traffic, the stream at 320 × 240, the scene of
    build-gaussian-scene's defaults without fitting. Recalibrate (calibrate) for other scenes."""

    width: int = field(default=80, metadata={"range": (16, 4096)})
    """Width of the predictor's render, pixels; the camera frame's width must be a whole multiple."""
    height: int = field(default=60, metadata={"range": (16, 4096)})
    """Height of the predictor's render, pixels (the same whole-number downscale as the width)."""
    psnr_slope: float = field(default=1.143, metadata={"range": (-100.0, 100.0)})
    """Predicted PSNR = psnr_slope × low-resolution PSNR + psnr_intercept, dB."""
    psnr_intercept: float = field(default=-1.664, metadata={"range": (-100.0, 100.0)})
    """See psnr_slope, dB."""
    ssim_slope: float = field(default=0.551, metadata={"range": (-100.0, 100.0)})
    """Predicted SSIM = ssim_slope × low-resolution SSIM + ssim_intercept, clipped to [-1, 1]."""
    ssim_intercept: float = field(default=0.465, metadata={"range": (-100.0, 100.0)})
    """See ssim_slope."""

    def __post_init__(self) -> None:
        check_ranges(self)


@dataclass
class CalibrationSample:
    """One frame's low-resolution measurement and the full-resolution values it should predict."""

    low_psnr: float
    """PSNR of the predictor's render against the downscaled frame, dB."""
    low_ssim: float
    """SSIM of the same."""
    full_psnr: float
    """PSNR of the full-resolution render against the frame, dB."""
    full_ssim: float
    """SSIM of the same."""


class DiscrepancyPredictor:
    """Predicts the PSNR and SSIM of the remote render of a camera frame (module docstring)."""

    def __init__(self, renderer: GaussianRenderer, config: DiscrepancyConfig = DiscrepancyConfig()) -> None:
        self.renderer = renderer
        self.config = config

    def measure(self, rgb_frame: np.ndarray, camera_to_map: np.ndarray, intrinsics: np.ndarray) -> tuple[float, float]:
        """(PSNR, SSIM) of the low-resolution render against the frame averaged down to its size;
        intrinsics are the frame's."""
        height, width = np.asarray(rgb_frame).shape[:2]
        factor = width // self.config.width
        if factor < 1 or width != factor * self.config.width or height != factor * self.config.height:
            raise ValueError(f"a {width}x{height} frame is not a whole multiple of the predictor's "
                             f"{self.config.width}x{self.config.height}")
        rendered = self.renderer.render(camera_to_map, scaled_intrinsics(intrinsics, factor),
                                        self.config.width, self.config.height).rgb
        small = downscale(rgb_frame, factor)
        return psnr(rendered, small), ssim(rendered, small)

    def predict(self, rgb_frame: np.ndarray, camera_to_map: np.ndarray, intrinsics: np.ndarray) -> tuple[float, float]:
        """(predicted PSNR dB, predicted SSIM) of the full-resolution render of this view against the frame."""
        low_psnr, low_ssim = self.measure(rgb_frame, camera_to_map, intrinsics)
        config = self.config
        return (float(np.clip(config.psnr_slope * low_psnr + config.psnr_intercept, 0.0, MAX_PSNR)),
                float(np.clip(config.ssim_slope * low_ssim + config.ssim_intercept, -1.0, 1.0)))

    def calibrate(self, samples: Sequence[CalibrationSample]) -> DiscrepancyConfig:
        """Fit the linear maps by least squares on at least two samples; the predictor uses the
        result from now on, which is also returned (to store as parameters)."""
        if len(samples) < 2:
            raise ValueError(f"samples: need at least 2 to fit a line, got {len(samples)}")
        table = np.array([[s.low_psnr, s.low_ssim, s.full_psnr, s.full_ssim] for s in samples], dtype=np.float64)
        psnr_slope, psnr_intercept = _line(table[:, 0], table[:, 2])
        ssim_slope, ssim_intercept = _line(table[:, 1], table[:, 3])
        self.config = DiscrepancyConfig(self.config.width, self.config.height, psnr_slope, psnr_intercept,
                                        ssim_slope, ssim_intercept)
        return self.config


def _line(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """(slope, intercept) of the least-squares line y ≈ slope x + intercept (slope 1 through the
    mean offset when x does not vary)."""
    if np.ptp(x) < 1e-9:
        return 1.0, float(np.mean(y - x))
    slope, intercept = np.polyfit(x, y, 1)
    return float(slope), float(intercept)
