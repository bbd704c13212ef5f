"""The mixed-reality stream's frames: the camera image at the stream's resolution and its JPEG coding.

The stream runs at a fraction of the camera's resolution (a whole-number downscale by area
averaging, so the robot, the server and the evaluation see the same pixels); the intrinsics scale
with it (pixel centres: c' = (c + 0.5) / factor - 0.5).
"""
from __future__ import annotations

import io

import numpy as np
from PIL import Image


class StreamFrameError(ValueError):
    """A frame that cannot be put on the stream (wrong shape or size, undecodable bytes)."""


def downscale(rgb: np.ndarray, factor: int) -> np.ndarray:
    """The uint8 image (H, W, 3) averaged over factor × factor blocks, uint8 (H/factor, W/factor, 3)."""
    rgb = np.asarray(rgb)
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise StreamFrameError(f"need a uint8 (H, W, 3) image, got {rgb.dtype} {rgb.shape}")
    height, width = rgb.shape[:2]
    if factor < 1 or height % factor or width % factor:
        raise StreamFrameError(f"a {width}x{height} image cannot be downscaled by {factor} (whole blocks only)")
    if factor == 1:
        return rgb.copy()
    blocks = rgb.reshape(height // factor, factor, width // factor, factor, 3).astype(np.float32)
    return np.rint(blocks.mean(axis=(1, 3))).astype(np.uint8)


def scaled_intrinsics(intrinsics: np.ndarray, factor: int) -> np.ndarray:
    """The camera matrix K (3, 3) of the image downscaled by `factor`."""
    scaled = np.array(intrinsics, dtype=np.float64)
    scaled[0, 0] /= factor
    scaled[1, 1] /= factor
    scaled[:2, 2] = (scaled[:2, 2] + 0.5) / factor - 0.5
    return scaled


def encode_jpeg(rgb: np.ndarray, quality: int) -> bytes:
    """The uint8 (H, W, 3) image as baseline JPEG bytes (4:2:0 chroma, `quality` 1-95)."""
    if not 1 <= quality <= 95:
        raise StreamFrameError(f"JPEG quality must be in 1..95, got {quality}")
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(rgb)).save(buffer, format="JPEG", quality=int(quality))
    return buffer.getvalue()


def decode_image(data: bytes) -> np.ndarray:
    """A compressed image (JPEG or PNG) as uint8 (H, W, 3); StreamFrameError when it cannot be decoded."""
    try:
        with Image.open(io.BytesIO(bytes(data))) as image:
            return np.asarray(image.convert("RGB"))
    except (OSError, ValueError) as error:
        raise StreamFrameError(f"undecodable image ({len(data)} bytes): {error}") from None
