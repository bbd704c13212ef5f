"""PointCloud2 decoding against a slow struct-per-point reference encoder, round trips, and rejects."""
from __future__ import annotations

import dataclasses
import math
import struct

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from sensor_msgs.msg import PointCloud2, PointField
from std_msgs.msg import Header

from robot_nodes.conversions import MalformedMessageError, pointcloud2_to_xyzi, xyzi_to_pointcloud2

STRUCT_CODES = {PointField.INT8: "b", PointField.UINT8: "B", PointField.INT16: "h", PointField.UINT16: "H",
                PointField.INT32: "i", PointField.UINT32: "I", PointField.FLOAT32: "f", PointField.FLOAT64: "d"}
XYZI = ("x", "y", "z", "intensity")
EXTRA_NAMES = ("ring", "time", "normal")


@dataclasses.dataclass
class FieldSpec:
    name: str
    datatype: int
    offset: int
    count: int = 1


@dataclasses.dataclass
class Cloud:
    """A reference cloud: its layout, the values each field holds per point, and the wire message."""

    fields: list[FieldSpec]
    values: dict[str, list[list[float]]]
    """Per field name, per point (row-major), the `count` values it holds."""
    msg: PointCloud2


def random_value(rng: np.random.Generator, datatype: int) -> float:
    """A value exactly representable in `datatype`, sometimes an extreme, sometimes NaN/Inf for floats."""
    if datatype in (PointField.FLOAT32, PointField.FLOAT64):
        special = rng.random()
        if special < 0.05:
            return float(rng.choice([math.nan, math.inf, -math.inf]))
        value = float(rng.normal() * 10.0 ** rng.uniform(-3, 6))
        return float(np.float32(value)) if datatype == PointField.FLOAT32 else value
    bits = struct.calcsize(STRUCT_CODES[datatype]) * 8
    low, high = (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) if STRUCT_CODES[datatype].islower() else (0, 2 ** bits - 1)
    return int(rng.choice([low, high])) if rng.random() < 0.1 else int(rng.integers(low, high, endpoint=True))


def encode_reference(fields: list[FieldSpec], values: dict[str, list[list[float]]], height: int, width: int,
                     point_step: int, row_step: int, bigendian: bool, rng: np.random.Generator) -> PointCloud2:
    """Packs every value with struct, one at a time, into garbage-filled bytes (padding must never be read)."""
    data = bytearray(rng.integers(0, 256, height * row_step, dtype=np.uint8).tobytes())
    order = ">" if bigendian else "<"
    for point in range(height * width):
        base = (point // width) * row_step + (point % width) * point_step
        for field in fields:
            code = order + STRUCT_CODES[field.datatype]
            for element, value in enumerate(values[field.name][point]):
                struct.pack_into(code, data, base + field.offset + element * struct.calcsize(code), value)
    msg = PointCloud2(height=height, width=width, is_bigendian=bigendian, point_step=point_step, row_step=row_step,
                      fields=[PointField(name=f.name, offset=f.offset, datatype=f.datatype, count=f.count)
                              for f in fields])
    msg.data = bytes(data)
    return msg


@st.composite
def clouds(draw, include_intensity: bool = True) -> Cloud:
    """Random field order, datatypes, gaps, padding, row padding, height, endianness and extra fields."""
    names = list(XYZI if include_intensity else XYZI[:3])
    names += draw(st.lists(st.sampled_from(EXTRA_NAMES), unique=True, max_size=2))
    names = draw(st.permutations(names))
    fields, offset = [], 0
    for name in names:
        datatype = draw(st.sampled_from(sorted(STRUCT_CODES)))
        count = draw(st.integers(0, 3)) if name in EXTRA_NAMES else 1
        offset += draw(st.integers(0, 3))
        fields.append(FieldSpec(name, datatype, offset, count))
        offset += struct.calcsize(STRUCT_CODES[datatype]) * count
    point_step = offset + draw(st.integers(0, 5))
    height, width = draw(st.integers(1, 3)), draw(st.integers(0, 6))
    row_step = width * point_step + draw(st.integers(0, 7))
    rng = np.random.default_rng(draw(st.integers(0, 2 ** 32 - 1)))
    values = {f.name: [[random_value(rng, f.datatype) for _ in range(f.count)] for _ in range(height * width)]
              for f in fields}
    msg = encode_reference(fields, values, height, width, point_step, row_step, draw(st.booleans()), rng)
    return Cloud(fields, values, msg)


def expected_points(cloud: Cloud, requested: tuple[str, ...]) -> tuple[np.ndarray, int]:
    """The float32 rows with every requested value finite (missing fields read as 0), and the dropped count."""
    rows, dropped = [], 0
    for point in range(cloud.msg.height * cloud.msg.width):
        with np.errstate(over="ignore"):  # float64 beyond float32's range becomes Inf and is dropped
            row = [np.float32(cloud.values[name][point][0]) if name in cloud.values else np.float32(0.0)
                   for name in requested]
        if all(np.isfinite(row)):
            rows.append(row)
        else:
            dropped += 1
    return np.array(rows, dtype=np.float32).reshape(-1, len(requested)), dropped


@settings(max_examples=200, deadline=None)
@given(cloud=clouds(), order=st.permutations(XYZI))
def test_decodes_reference_clouds_in_any_layout(cloud: Cloud, order: tuple[str, ...]) -> None:
    points, dropped = pointcloud2_to_xyzi(cloud.msg, fields=order)
    expected, expected_dropped = expected_points(cloud, order)
    assert points.dtype == np.float32 and points.shape == expected.shape
    np.testing.assert_array_equal(points, expected)
    assert dropped == expected_dropped


@settings(max_examples=100, deadline=None)
@given(cloud=clouds(include_intensity=False))
def test_optional_intensity_missing_reads_as_zero(cloud: Cloud) -> None:
    points, dropped = pointcloud2_to_xyzi(cloud.msg, optional=("intensity",))
    expected, expected_dropped = expected_points(cloud, XYZI)
    np.testing.assert_array_equal(points, expected)
    assert dropped == expected_dropped
    assert not points[:, 3].any()
    with pytest.raises(MalformedMessageError, match=r"field 'intensity' missing \(have: "):
        pointcloud2_to_xyzi(cloud.msg)


@settings(max_examples=200, deadline=None)
@given(count=st.integers(0, 300), seed=st.integers(0, 2 ** 32 - 1), bad_fraction=st.sampled_from([0.0, 0.01, 0.5]))
def test_round_trip_drops_exactly_the_non_finite_points(count: int, seed: int, bad_fraction: float) -> None:
    rng = np.random.default_rng(seed)
    points = (rng.normal(size=(count, 4)) * 100).astype(np.float32)
    bad = rng.random((count, 4)) < bad_fraction / 4
    points[bad] = rng.choice(np.array([np.nan, np.inf, -np.inf], dtype=np.float32), size=int(bad.sum()))
    msg = xyzi_to_pointcloud2(points, Header(frame_id="lidar"))
    assert (msg.height, msg.width, msg.point_step, msg.row_step) == (1, count, 16, 16 * count)
    assert [(f.name, f.offset, f.datatype, f.count) for f in msg.fields] == [
        (name, 4 * index, PointField.FLOAT32, 1) for index, name in enumerate(XYZI)]
    assert msg.is_bigendian is False and msg.header.frame_id == "lidar"
    assert msg.is_dense == (not bad.any())
    decoded, dropped = pointcloud2_to_xyzi(msg)
    kept = ~bad.any(axis=1)
    np.testing.assert_array_equal(decoded, points[kept])
    assert dropped == int((~kept).sum())


def test_encoder_writes_little_endian_float32_bytes() -> None:
    msg = xyzi_to_pointcloud2(np.array([[1.0, -2.0, 3.5, 100.0]]), Header())
    assert bytes(msg.data) == struct.pack("<4f", 1.0, -2.0, 3.5, 100.0)


def test_encoder_rejects_wrong_shape() -> None:
    with pytest.raises(ValueError, match=r"shape \(N, 4\)"):
        xyzi_to_pointcloud2(np.zeros((5, 3)), Header())


def test_rejects_duplicate_or_unlisted_optional_fields() -> None:
    msg = xyzi_to_pointcloud2(np.zeros((2, 4)), Header())
    with pytest.raises(ValueError):
        pointcloud2_to_xyzi(msg, fields=("x", "x"))
    with pytest.raises(ValueError):
        pointcloud2_to_xyzi(msg, fields=("x", "y"), optional=("intensity",))


def field_named(msg: PointCloud2, name: str) -> PointField:
    return next(f for f in msg.fields if f.name == name)


def remove_z(msg: PointCloud2) -> str:
    msg.fields = [f for f in msg.fields if f.name != "z"]
    return r"field 'z' missing \(have: "


def shorten_data(msg: PointCloud2) -> str:
    msg.data = msg.data[:-1]
    return rf"data has {len(msg.data)} bytes but height\*row_step = {msg.height * msg.row_step}"


def shrink_point_step(msg: PointCloud2) -> str:
    last = max(msg.fields, key=lambda f: f.offset + struct.calcsize(STRUCT_CODES[f.datatype]) * f.count)
    end = last.offset + struct.calcsize(STRUCT_CODES[last.datatype]) * last.count
    msg.point_step = end - 1
    return rf"field '{last.name}' ends at byte {end} but point_step = {end - 1}"


def shrink_row_step(msg: PointCloud2) -> str:
    msg.row_step = msg.width * msg.point_step - 1
    msg.data = msg.data[:msg.height * msg.row_step]
    return rf"row_step = {msg.row_step} is less than width\*point_step = {msg.width * msg.point_step}"


def bad_datatype(msg: PointCloud2) -> str:
    field_named(msg, "y").datatype = 9
    return r"field 'y' has unknown datatype 9"


def count_not_one(msg: PointCloud2) -> str:
    field_named(msg, "x").count = 2
    return r"field 'x' has count 2; only count 1 is supported"


def duplicate_field(msg: PointCloud2) -> str:
    msg.fields = list(msg.fields) + [field_named(msg, "x")]
    return r"field 'x' appears twice"


@settings(max_examples=200, deadline=None)
@given(cloud=clouds().filter(lambda cloud: cloud.msg.width > 0),
       corrupt=st.sampled_from([remove_z, shorten_data, shrink_point_step, shrink_row_step, bad_datatype,
                                count_not_one, duplicate_field]))
def test_malformed_clouds_are_rejected_with_the_reason(cloud: Cloud, corrupt) -> None:
    reason = corrupt(cloud.msg)
    with pytest.raises(MalformedMessageError, match="^PointCloud2: " + reason):
        pointcloud2_to_xyzi(cloud.msg)


def test_unrequested_fields_may_have_any_count() -> None:
    msg = xyzi_to_pointcloud2(np.ones((3, 4)), Header())
    msg.fields = list(msg.fields) + [PointField(name="rgb", offset=12, datatype=PointField.UINT8, count=4)]
    points, dropped = pointcloud2_to_xyzi(msg, fields=("x", "y", "z"))
    np.testing.assert_array_equal(points, np.ones((3, 3)))
    assert dropped == 0
