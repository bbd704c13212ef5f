"""sensor_msgs/PointCloud2 ⇄ float32 point arrays, decoded through a numpy structured dtype (no per-point Python)."""
from __future__ import annotations

from typing import Sequence

import numpy as np
from sensor_msgs.msg import PointCloud2, PointField
from std_msgs.msg import Header

from robot_nodes.conversions.buffers import byte_array
from robot_nodes.conversions.errors import MalformedMessageError

XYZI_FIELDS = ("x", "y", "z", "intensity")
"""The fields the lidar pipeline reads and writes, in output column order."""

_NUMPY_TYPE_CODES = {
    PointField.INT8: "i1", PointField.UINT8: "u1", PointField.INT16: "i2", PointField.UINT16: "u2",
    PointField.INT32: "i4", PointField.UINT32: "u4", PointField.FLOAT32: "f4", PointField.FLOAT64: "f8",
}
"""numpy type (byte order added per message) of each PointField datatype."""


def _field_layout(msg: PointCloud2, requested: Sequence[str]) -> dict[str, tuple[int, str]]:
    """(offset, numpy type code) of every field by name, after checking each lies inside point_step."""
    layout: dict[str, tuple[int, str]] = {}
    for field in msg.fields:
        if field.name in layout:
            raise MalformedMessageError(f"PointCloud2: field '{field.name}' appears twice")
        type_code = _NUMPY_TYPE_CODES.get(field.datatype)
        if type_code is None:
            raise MalformedMessageError(
                f"PointCloud2: field '{field.name}' has unknown datatype {field.datatype} (known: 1..8)")
        if field.name in requested and field.count != 1:
            raise MalformedMessageError(
                f"PointCloud2: field '{field.name}' has count {field.count}; only count 1 is supported")
        end = field.offset + np.dtype(type_code).itemsize * field.count
        if end > msg.point_step:
            raise MalformedMessageError(
                f"PointCloud2: field '{field.name}' ends at byte {end} but point_step = {msg.point_step}")
        layout[field.name] = (field.offset, type_code)
    return layout


def _check_extent(msg: PointCloud2) -> None:
    """Rows must hold their points and data must hold exactly its rows."""
    if msg.width * msg.point_step > msg.row_step:
        raise MalformedMessageError(
            f"PointCloud2: row_step = {msg.row_step} is less than width*point_step = {msg.width * msg.point_step}")
    if len(msg.data) != msg.height * msg.row_step:
        raise MalformedMessageError(
            f"PointCloud2: data has {len(msg.data)} bytes but height*row_step = {msg.height * msg.row_step}")


def pointcloud2_to_xyzi(msg: PointCloud2, fields: Sequence[str] = XYZI_FIELDS,
                        optional: Sequence[str] = ()) -> tuple[np.ndarray, int]:
    """The finite points of a cloud as float32 (N, len(fields)), and how many points were dropped.

    A point is dropped when any requested field is NaN or ±Inf (after conversion to float32).
    Fields named in `optional` that the cloud lacks are filled with 0; any other missing field,
    a layout that does not fit its data, or an unsupported field raises MalformedMessageError.
    Organised clouds (height > 1) are flattened row by row.
    """
    if len(set(fields)) != len(fields) or not set(optional) <= set(fields):
        raise ValueError(f"fields {fields} must be distinct and include every optional field {optional}")
    layout = _field_layout(msg, fields)
    missing = [name for name in fields if name not in layout and name not in optional]
    if missing:
        raise MalformedMessageError(f"PointCloud2: field '{missing[0]}' missing (have: {', '.join(layout) or 'none'})")
    _check_extent(msg)

    points = np.zeros((msg.height, msg.width, len(fields)), dtype=np.float32)
    present = [name for name in fields if name in layout]
    if points.size and present:
        byte_order = ">" if msg.is_bigendian else "<"
        record = np.dtype({"names": present,
                           "formats": [byte_order + layout[name][1] for name in present],
                           "offsets": [layout[name][0] for name in present],
                           "itemsize": msg.point_step})
        records = np.ndarray((msg.height, msg.width), dtype=record, buffer=msg.data,
                             strides=(msg.row_step, msg.point_step))
        with np.errstate(over="ignore"):  # float64 values beyond float32 become ±inf: dropped below, as documented
            for column, name in enumerate(fields):
                if name in layout:
                    points[:, :, column] = records[name]
    points = points.reshape(-1, len(fields))
    # Column by column: numpy reduces a short last axis (isfinite(...).all(axis=1)) ten times slower.
    finite = np.ones(len(points), dtype=bool)
    for column in points.T:
        finite &= np.isfinite(column)
    if finite.all():
        return points, 0
    # np.compress copies whole rows; points[finite] is several times slower on an (N, k) array.
    return np.compress(finite, points, axis=0), int(finite.size - np.count_nonzero(finite))


def xyzi_to_pointcloud2(points: np.ndarray, header: Header) -> PointCloud2:
    """An unorganised little-endian cloud of float32 x, y, z, intensity from an (N, 4) array;
    is_dense says whether every value is finite."""
    points = np.asarray(points)
    if points.ndim != 2 or points.shape[1] != len(XYZI_FIELDS):
        raise ValueError(f"points must have shape (N, 4), got {points.shape}")
    little_endian = np.ascontiguousarray(points, dtype="<f4")
    point_step = little_endian.itemsize * len(XYZI_FIELDS)
    return PointCloud2(
        header=header, height=1, width=len(little_endian),
        fields=[PointField(name=name, offset=column * little_endian.itemsize, datatype=PointField.FLOAT32, count=1)
                for column, name in enumerate(XYZI_FIELDS)],
        is_bigendian=False, point_step=point_step, row_step=point_step * len(little_endian),
        data=byte_array(little_endian), is_dense=bool(np.isfinite(little_endian).all()))
