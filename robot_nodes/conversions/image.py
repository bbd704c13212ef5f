"""sensor_msgs/Image and CameraInfo ⇄ numpy arrays and pinhole intrinsics."""
from __future__ import annotations

import array
from typing import NamedTuple, Sequence

import numpy as np
from sensor_msgs.msg import CameraInfo, Image
from std_msgs.msg import Header

from robot_nodes.conversions.buffers import byte_array
from robot_nodes.conversions.errors import MalformedMessageError


class PixelFormat(NamedTuple):
    """How one encoding lays out a pixel."""

    dtype: np.dtype
    """Type of one channel (native byte order)."""
    channels: int
    """Channels per pixel; 1 gives (H, W) arrays, more give (H, W, channels)."""

    @property
    def bytes_per_pixel(self) -> int:
        return self.dtype.itemsize * self.channels

    @property
    def channel_shape(self) -> tuple[int, ...]:
        """The array shape after (H, W)."""
        return () if self.channels == 1 else (self.channels,)


PIXEL_FORMATS = {
    "rgb8": PixelFormat(np.dtype(np.uint8), 3),
    "bgr8": PixelFormat(np.dtype(np.uint8), 3),
    "rgba8": PixelFormat(np.dtype(np.uint8), 4),
    "bgra8": PixelFormat(np.dtype(np.uint8), 4),
    "mono8": PixelFormat(np.dtype(np.uint8), 1),
    "mono16": PixelFormat(np.dtype(np.uint16), 1),
    "16UC1": PixelFormat(np.dtype(np.uint16), 1),
    "32FC1": PixelFormat(np.dtype(np.float32), 1),
}
"""The supported encodings (sensor_msgs/image_encodings names)."""

LARGEST_IMAGE_SIDE = 16384
"""Widest or tallest camera a CameraInfo may describe: renders and buffers are sized from it."""

_DISTORTION_MODELS = {5: "plumb_bob", 8: "rational_polynomial"}
"""CameraInfo distortion model by number of coefficients."""


def image_to_numpy(msg: Image) -> np.ndarray:
    """The pixels as a new native-endian (H, W) or (H, W, C) array, row padding removed."""
    pixel_format = PIXEL_FORMATS.get(msg.encoding)
    if pixel_format is None:
        raise MalformedMessageError(f"Image: unknown encoding '{msg.encoding}' (supported: {', '.join(PIXEL_FORMATS)})")
    row_bytes = msg.width * pixel_format.bytes_per_pixel
    if msg.step < row_bytes:
        raise MalformedMessageError(f"Image: step = {msg.step} is less than width*bytes_per_pixel = {row_bytes}")
    if len(msg.data) != msg.height * msg.step:
        raise MalformedMessageError(f"Image: data has {len(msg.data)} bytes but height*step = {msg.height * msg.step}")
    shape = (msg.height, msg.width) + pixel_format.channel_shape
    if msg.height * msg.width == 0:
        return np.empty(shape, dtype=pixel_format.dtype)
    wire_dtype = pixel_format.dtype.newbyteorder(">" if msg.is_bigendian else "<")
    strides = (msg.step, pixel_format.bytes_per_pixel, pixel_format.dtype.itemsize)[:len(shape)]
    rows = np.ndarray(shape, dtype=wire_dtype, buffer=msg.data, strides=strides)
    # A copy, so the array neither aliases the message buffer nor keeps its byte order or padding.
    return np.array(rows, dtype=pixel_format.dtype, order="C")


def numpy_to_image(pixels: np.ndarray, encoding: str, header: Header) -> Image:
    """A little-endian, unpadded Image; ValueError unless the array's shape and dtype fit `encoding`."""
    pixel_format = PIXEL_FORMATS.get(encoding)
    if pixel_format is None:
        raise ValueError(f"unknown encoding '{encoding}' (supported: {', '.join(PIXEL_FORMATS)})")
    pixels = np.asarray(pixels)
    channel_shape = pixel_format.channel_shape
    if (pixels.dtype.type is not pixel_format.dtype.type or pixels.ndim != 2 + len(channel_shape)
            or pixels.shape[2:] != channel_shape):
        raise ValueError(f"{encoding} needs a {pixel_format.dtype} array of shape (H, W) + {channel_shape}, "
                         f"got {pixels.dtype} {pixels.shape}")
    height, width = pixels.shape[:2]
    return Image(header=header, height=height, width=width, encoding=encoding, is_bigendian=False,
                 step=width * pixel_format.bytes_per_pixel,
                 data=byte_array(pixels.astype(pixel_format.dtype.newbyteorder("<"), copy=False)))


def camera_info_from_intrinsics(K: np.ndarray, width: int, height: int, header: Header,
                                distortion: Sequence[float] | None = None) -> CameraInfo:
    """CameraInfo for an unrectified pinhole camera with 3x3 matrix K and 5 (plumb_bob) or 8
    (rational_polynomial) distortion coefficients, none meaning zero distortion."""
    K = np.asarray(K, dtype=np.float64)
    if K.shape != (3, 3) or not np.isfinite(K).all() or K[0, 0] <= 0.0 or K[1, 1] <= 0.0:
        raise ValueError(f"K must be a finite 3x3 camera matrix with fx, fy > 0, got\n{K}")
    if width <= 0 or height <= 0:
        raise ValueError(f"image size must be positive, got {width}x{height}")
    coefficients = np.zeros(5) if distortion is None else np.asarray(distortion, dtype=np.float64).reshape(-1)
    if len(coefficients) not in _DISTORTION_MODELS:
        raise ValueError(f"distortion needs 5 or 8 coefficients, got {len(coefficients)}")
    projection = np.zeros((3, 4))
    projection[:, :3] = K
    return CameraInfo(header=header, width=int(width), height=int(height),
                      distortion_model=_DISTORTION_MODELS[len(coefficients)], d=array.array("d", coefficients.tolist()),
                      k=K.flatten(), r=np.eye(3).flatten(), p=projection.flatten())


def intrinsics_from_camera_info(msg: CameraInfo) -> tuple[np.ndarray, int, int]:
    """(K, width, height); MalformedMessageError unless K is a finite camera matrix with fx, fy > 0
    (an all-zero K marks an uncalibrated camera) and the image size is positive and at most
    LARGEST_IMAGE_SIDE a side."""
    K = np.array(msg.k, dtype=np.float64).reshape(3, 3)
    if not np.isfinite(K).all():
        raise MalformedMessageError(f"CameraInfo: k is not finite: {K.reshape(-1).tolist()}")
    if K[0, 0] <= 0.0 or K[1, 1] <= 0.0:
        raise MalformedMessageError(f"CameraInfo: k has fx = {K[0, 0]}, fy = {K[1, 1]}; both must be > 0")
    if not np.array_equal(K[2], (0.0, 0.0, 1.0)):
        raise MalformedMessageError(f"CameraInfo: k's last row is {K[2].tolist()}, not [0, 0, 1]")
    if msg.width == 0 or msg.height == 0:
        raise MalformedMessageError(f"CameraInfo: image size {msg.width}x{msg.height} is empty")
    if max(msg.width, msg.height) > LARGEST_IMAGE_SIDE:
        raise MalformedMessageError(f"CameraInfo: image size {msg.width}x{msg.height} exceeds {LARGEST_IMAGE_SIDE} "
                                    "pixels a side")
    return K, int(msg.width), int(msg.height)
