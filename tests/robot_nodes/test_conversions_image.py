"""Image and CameraInfo conversions: round trips per encoding, padded and big-endian rows, rejects."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from hypothesis.extra import numpy as hnp
from sensor_msgs.msg import CameraInfo, Image
from std_msgs.msg import Header

from robot_nodes.conversions import (MalformedMessageError, camera_info_from_intrinsics, image_to_numpy,
                                     intrinsics_from_camera_info, numpy_to_image)

ENCODINGS = {  # encoding -> (dtype, channels), written out independently of the module's table
    "rgb8": (np.uint8, 3), "bgr8": (np.uint8, 3), "rgba8": (np.uint8, 4), "bgra8": (np.uint8, 4),
    "mono8": (np.uint8, 1), "mono16": (np.uint16, 1), "16UC1": (np.uint16, 1), "32FC1": (np.float32, 1),
}


@st.composite
def images(draw) -> tuple[str, np.ndarray]:
    encoding = draw(st.sampled_from(sorted(ENCODINGS)))
    dtype, channels = ENCODINGS[encoding]
    shape = (draw(st.integers(0, 5)), draw(st.integers(0, 5))) + ((channels,) if channels > 1 else ())
    return encoding, draw(hnp.arrays(dtype, shape))


def wire_image(encoding: str, pixels: np.ndarray, padding: int, bigendian: bool) -> Image:
    """An Image built row by row with `padding` garbage bytes after each row."""
    wire = pixels.astype(pixels.dtype.newbyteorder(">" if bigendian else "<"))
    rows = [wire[row].tobytes() + bytes([0xA5] * padding) for row in range(pixels.shape[0])]
    msg = Image(height=pixels.shape[0], width=pixels.shape[1], encoding=encoding, is_bigendian=bigendian,
                step=pixels.shape[1] * pixels.itemsize * (pixels.shape[2] if pixels.ndim == 3 else 1) + padding)
    msg.data = b"".join(rows)
    return msg


@settings(max_examples=200, deadline=None)
@given(image=images())
def test_round_trip_every_encoding(image: tuple[str, np.ndarray]) -> None:
    encoding, pixels = image
    msg = numpy_to_image(pixels, encoding, Header(frame_id="camera"))
    assert (msg.encoding, msg.height, msg.width, msg.is_bigendian) == (encoding, *pixels.shape[:2], False)
    assert msg.step * msg.height == len(msg.data) == pixels.nbytes
    decoded = image_to_numpy(msg)
    assert decoded.dtype == pixels.dtype and decoded.flags.c_contiguous
    np.testing.assert_array_equal(decoded, pixels)


@settings(max_examples=200, deadline=None)
@given(image=images(), padding=st.integers(0, 9), bigendian=st.booleans())
def test_decodes_padded_rows_in_either_byte_order(image: tuple[str, np.ndarray], padding: int, bigendian: bool) -> None:
    encoding, pixels = image
    decoded = image_to_numpy(wire_image(encoding, pixels, padding, bigendian))
    assert decoded.dtype == pixels.dtype and decoded.dtype.isnative
    np.testing.assert_array_equal(decoded, pixels)


def test_decoded_array_does_not_alias_the_message() -> None:
    msg = numpy_to_image(np.zeros((2, 2), np.uint8), "mono8", Header())
    image_to_numpy(msg)[:] = 7
    assert not any(msg.data)


def test_encoder_writes_little_endian() -> None:
    msg = numpy_to_image(np.array([[1, 258]], dtype=">u2"), "16UC1", Header())
    assert bytes(msg.data) == b"\x01\x00\x02\x01"


def rgb_message() -> Image:
    return wire_image("rgb8", np.arange(24, dtype=np.uint8).reshape(2, 4, 3), padding=2, bigendian=False)


@pytest.mark.parametrize("corrupt, reason", [
    (lambda msg: setattr(msg, "encoding", "foo"), r"Image: unknown encoding 'foo' \(supported: rgb8, "),
    (lambda msg: setattr(msg, "step", 11), r"Image: step = 11 is less than width\*bytes_per_pixel = 12"),
    (lambda msg: setattr(msg, "data", msg.data[:-1]), r"Image: data has 27 bytes but height\*step = 28"),
    (lambda msg: setattr(msg, "height", 3), r"Image: data has 28 bytes but height\*step = 42"),
])
def test_malformed_images_are_rejected_with_the_reason(corrupt, reason: str) -> None:
    msg = rgb_message()
    corrupt(msg)
    with pytest.raises(MalformedMessageError, match=reason):
        image_to_numpy(msg)


@pytest.mark.parametrize("pixels, encoding", [
    (np.zeros((2, 2, 3), np.uint8), "foo"),
    (np.zeros((2, 2, 3), np.uint16), "rgb8"),
    (np.zeros((2, 2), np.uint8), "rgb8"),
    (np.zeros((2, 2, 4), np.uint8), "rgb8"),
    (np.zeros((2, 2, 1), np.uint8), "mono8"),
    (np.zeros((2, 2), np.float64), "32FC1"),
])
def test_encoder_rejects_arrays_that_do_not_fit_the_encoding(pixels: np.ndarray, encoding: str) -> None:
    with pytest.raises(ValueError):
        numpy_to_image(pixels, encoding, Header())


finite_positive = st.floats(1.0, 5000.0)


@settings(max_examples=100, deadline=None)
@given(fx=finite_positive, fy=finite_positive, cx=st.floats(-100, 2000), cy=st.floats(-100, 2000),
       skew=st.floats(-1, 1), width=st.integers(1, 4096), height=st.integers(1, 4096),
       distortion=st.none() | st.lists(st.floats(-1, 1), min_size=5, max_size=5)
       | st.lists(st.floats(-1, 1), min_size=8, max_size=8))
def test_camera_info_round_trip(fx, fy, cx, cy, skew, width, height, distortion) -> None:
    K = np.array([[fx, skew, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]])
    msg = camera_info_from_intrinsics(K, width, height, Header(frame_id="camera"), distortion)
    assert msg.distortion_model == {None: "plumb_bob", 5: "plumb_bob", 8: "rational_polynomial"}[
        None if distortion is None else len(distortion)]
    np.testing.assert_array_equal(msg.d, np.zeros(5) if distortion is None else distortion)
    np.testing.assert_array_equal(np.reshape(msg.p, (3, 4)), np.hstack([K, np.zeros((3, 1))]))
    np.testing.assert_array_equal(np.reshape(msg.r, (3, 3)), np.eye(3))
    K_back, width_back, height_back = intrinsics_from_camera_info(msg)
    np.testing.assert_array_equal(K_back, K)
    assert (width_back, height_back) == (width, height)


def valid_camera_info() -> CameraInfo:
    return camera_info_from_intrinsics(np.array([[500.0, 0, 320], [0, 500, 240], [0, 0, 1]]), 640, 480, Header())


def set_k(index: int, value: float):
    def corrupt(msg: CameraInfo) -> None:
        msg.k[index] = value
    return corrupt


@pytest.mark.parametrize("corrupt, reason", [
    (set_k(2, np.nan), r"CameraInfo: k is not finite"),
    (set_k(0, 0.0), r"CameraInfo: k has fx = 0.0, fy = 500.0; both must be > 0"),
    (set_k(4, -1.0), r"CameraInfo: k has fx = 500.0, fy = -1.0; both must be > 0"),
    (set_k(8, 0.0), r"CameraInfo: k's last row is \[0.0, 0.0, 0.0\], not \[0, 0, 1\]"),
    (lambda msg: setattr(msg, "width", 0), r"CameraInfo: image size 0x480 is empty"),
])
def test_malformed_camera_info_is_rejected_with_the_reason(corrupt, reason: str) -> None:
    msg = valid_camera_info()
    corrupt(msg)
    with pytest.raises(MalformedMessageError, match=reason):
        intrinsics_from_camera_info(msg)


@pytest.mark.parametrize("K, distortion", [
    (np.eye(2), None),
    (np.diag([0.0, 1.0, 1.0]), None),
    (np.diag([np.inf, 1.0, 1.0]), None),
    (np.eye(3), [0.0] * 4),
])
def test_camera_info_builder_rejects_bad_intrinsics(K: np.ndarray, distortion) -> None:
    with pytest.raises(ValueError):
        camera_info_from_intrinsics(K, 640, 480, Header(), distortion)
