"""Poses, odometry, transforms and stamps ⇄ plain numbers (REP-103: x forward, y left, z up, yaw
counter-clockwise about +z; quaternions (x, y, z, w)).

Functions that read a message raise MalformedMessageError; functions that build one from the
caller's numbers raise ValueError, since bad numbers there are a bug in the caller.
"""
from __future__ import annotations

import math
from fractions import Fraction
from typing import Sequence

import numpy as np
from builtin_interfaces.msg import Duration, Time
from geometry_msgs.msg import Point, Pose, Quaternion, Transform, TransformStamped, Vector3
from nav_msgs.msg import Odometry
from scipy.spatial.transform import Rotation

from robot_nodes.conversions.errors import MalformedMessageError, located_at, require_finite

QUATERNION_NORM_TOLERANCE = 1e-3
"""How far |q| may be from 1 before an orientation is rejected rather than normalised."""

_NANOSECONDS_PER_SECOND = 1_000_000_000
_INT32_RANGE = (-2**31, 2**31 - 1)


def rpy_to_xyzw(roll: np.ndarray | float, pitch: np.ndarray | float,
                yaw: np.ndarray | float) -> np.ndarray:
    """Unit quaternions (..., 4) as (x, y, z, w) for fixed-axis roll, pitch, yaw (radians), broadcast."""
    half_roll, half_pitch, half_yaw = (np.asarray(angle, dtype=np.float64) / 2.0 for angle in (roll, pitch, yaw))
    cos_r, sin_r = np.cos(half_roll), np.sin(half_roll)
    cos_p, sin_p = np.cos(half_pitch), np.sin(half_pitch)
    cos_y, sin_y = np.cos(half_yaw), np.sin(half_yaw)
    return np.stack(np.broadcast_arrays(
        sin_r * cos_p * cos_y - cos_r * sin_p * sin_y,
        cos_r * sin_p * cos_y + sin_r * cos_p * sin_y,
        cos_r * cos_p * sin_y - sin_r * sin_p * cos_y,
        cos_r * cos_p * cos_y + sin_r * sin_p * sin_y), axis=-1)


def _validated_xyzw(xyzw: np.ndarray) -> np.ndarray:
    """`xyzw` (..., 4) as float64; MalformedMessageError, naming the first bad row of a batch, for a
    non-finite quaternion or one whose norm is off 1 by more than QUATERNION_NORM_TOLERANCE."""
    xyzw = np.asarray(xyzw, dtype=np.float64)
    require_finite("orientation", xyzw)
    norms = np.linalg.norm(xyzw, axis=-1)
    bad = np.abs(norms - 1.0) > QUATERNION_NORM_TOLERANCE
    if bad.any():
        index = np.unravel_index(int(np.flatnonzero(bad)[0]), bad.shape)
        where = f"orientation[{', '.join(map(str, index))}]" if index else "orientation"
        raise MalformedMessageError(
            f"{where} (x, y, z, w) = {xyzw[index].tolist()} has norm {float(norms[index]):.6g}, "
            f"not 1 ± {QUATERNION_NORM_TOLERANCE:g}")
    return xyzw


def xyzw_to_yaw(xyzw: np.ndarray) -> np.ndarray:
    """Yaw (radians, in [-pi, pi]) of each (x, y, z, w) row of an (..., 4) array, validated as above."""
    x, y, z, w = np.moveaxis(_validated_xyzw(xyzw), -1, 0)
    # This form scales both arguments by |q|², so nearly-unit quaternions need no normalising.
    return np.arctan2(2.0 * (w * z + x * y), w * w + x * x - y * y - z * z)


def xyzw_to_quaternion(xyzw: Sequence[float]) -> Quaternion:
    """A Quaternion message from one (x, y, z, w)."""
    x, y, z, w = (float(value) for value in xyzw)
    return Quaternion(x=x, y=y, z=z, w=w)


def quaternion_to_xyzw(quaternion: Quaternion) -> np.ndarray:
    """(x, y, z, w) of a Quaternion message, unchecked."""
    return np.array([quaternion.x, quaternion.y, quaternion.z, quaternion.w])


def yaw_to_quaternion(yaw: float) -> Quaternion:
    """The rotation by `yaw` radians about +z."""
    return xyzw_to_quaternion(rpy_to_xyzw(0.0, 0.0, yaw))


def rpy_to_quaternion(roll: float, pitch: float, yaw: float) -> Quaternion:
    """The fixed-axis rotation roll about x, then pitch about y, then yaw about z."""
    return xyzw_to_quaternion(rpy_to_xyzw(roll, pitch, yaw))


def quaternion_to_yaw(quaternion: Quaternion) -> float:
    """Heading about +z of an orientation; raises MalformedMessageError for a non-unit quaternion."""
    return float(xyzw_to_yaw(quaternion_to_xyzw(quaternion)))


def _checked_position(pose: Pose) -> np.ndarray:
    """Position (3,) of a pose, validated finite."""
    position = np.array([pose.position.x, pose.position.y, pose.position.z])
    require_finite("position", position)
    return position


def pose_to_se3(pose: Pose) -> np.ndarray:
    """The 4x4 homogeneous transform of a pose (its orientation normalised)."""
    transform = np.eye(4)
    transform[:3, 3] = _checked_position(pose)
    transform[:3, :3] = Rotation.from_quat(_validated_xyzw(quaternion_to_xyzw(pose.orientation))).as_matrix()
    return transform


def transform_to_se3(transform: Transform) -> np.ndarray:
    """The 4x4 homogeneous matrix of a geometry_msgs/Transform (its rotation normalised)."""
    t, q = transform.translation, transform.rotation
    return pose_to_se3(Pose(position=Point(x=t.x, y=t.y, z=t.z), orientation=Quaternion(x=q.x, y=q.y, z=q.z, w=q.w)))


def se3_to_pose(transform: np.ndarray) -> Pose:
    """The pose of a 4x4 rigid transform; ValueError unless it is finite with a proper rotation."""
    transform = np.asarray(transform, dtype=np.float64)
    if transform.shape != (4, 4) or not np.isfinite(transform).all():
        raise ValueError(f"transform must be a finite 4x4 array, got shape {transform.shape}")
    rotation = transform[:3, :3]
    if (not np.allclose(transform[3], (0.0, 0.0, 0.0, 1.0))
            or not np.allclose(rotation.T @ rotation, np.eye(3), atol=1e-6) or np.linalg.det(rotation) < 0.0):
        raise ValueError(f"transform is not a rigid transform (rotation with det +1, last row 0 0 0 1):\n{transform}")
    x, y, z = transform[:3, 3].tolist()
    return Pose(position=Point(x=x, y=y, z=z),
                orientation=xyzw_to_quaternion(Rotation.from_matrix(rotation).as_quat()))


def pose_to_se2(pose: Pose) -> tuple[float, float, float]:
    """(x, y, yaw) of a pose; z, roll and pitch are dropped."""
    x, y, _ = _checked_position(pose).tolist()
    return x, y, quaternion_to_yaw(pose.orientation)


def se2_to_pose(x: float, y: float, yaw: float, z: float = 0.0) -> Pose:
    """A pose at (x, y, z) heading `yaw` radians."""
    return Pose(position=Point(x=float(x), y=float(y), z=float(z)), orientation=yaw_to_quaternion(yaw))


def odometry_to_se2(odometry: Odometry) -> tuple[float, float, float, float, float]:
    """(x, y, yaw, v, yaw_rate): planar pose in header.frame_id, forward speed and yaw rate in the child frame."""
    with located_at("Odometry: pose.pose"):
        x, y, yaw = pose_to_se2(odometry.pose.pose)
    speed, yaw_rate = odometry.twist.twist.linear.x, odometry.twist.twist.angular.z
    with located_at("Odometry: twist.twist"):
        require_finite("(linear.x, angular.z)", (speed, yaw_rate))
    return x, y, yaw, float(speed), float(yaw_rate)


def make_odometry(stamp: Time, frame_id: str, child_frame_id: str, x: float, y: float, yaw: float,
                  v: float, yaw_rate: float) -> Odometry:
    """Planar odometry: pose in `frame_id`, forward speed `v` and `yaw_rate` in `child_frame_id`."""
    odometry = Odometry()
    odometry.header.stamp = stamp
    odometry.header.frame_id = frame_id
    odometry.child_frame_id = child_frame_id
    odometry.pose.pose = se2_to_pose(x, y, yaw)
    odometry.twist.twist.linear.x = float(v)
    odometry.twist.twist.angular.z = float(yaw_rate)
    return odometry


def make_transform(stamp: Time, parent_frame: str, child_frame: str, translation: Sequence[float],
                   yaw: float | None = None, *, rpy: Sequence[float] | None = None) -> TransformStamped:
    """The pose of `child_frame` in `parent_frame`; rotation by `yaw` about +z or by (roll, pitch, yaw)."""
    if (yaw is None) == (rpy is None):
        raise ValueError("give exactly one of yaw and rpy")
    roll, pitch, yaw = (0.0, 0.0, yaw) if rpy is None else rpy
    x, y, z = (float(value) for value in translation)
    message = TransformStamped()
    message.header.stamp = stamp
    message.header.frame_id = parent_frame
    message.child_frame_id = child_frame
    message.transform = Transform(translation=Vector3(x=x, y=y, z=z), rotation=rpy_to_quaternion(roll, pitch, yaw))
    return message


def _seconds_to_sec_nanosec(seconds: float) -> tuple[int, int]:
    """(sec, nanosec) nearest to `seconds`, nanosec in [0, 1e9), sec within int32."""
    if not math.isfinite(seconds):
        raise ValueError(f"seconds must be finite, got {seconds}")
    # Fraction holds the float's exact value, so the only rounding is the final one to whole nanoseconds.
    sec, nanosec = divmod(round(Fraction(seconds) * _NANOSECONDS_PER_SECOND), _NANOSECONDS_PER_SECOND)
    if not _INT32_RANGE[0] <= sec <= _INT32_RANGE[1]:
        raise ValueError(f"{seconds} s does not fit a ROS time (int32 seconds)")
    return sec, nanosec


def _sec_nanosec_to_seconds(kind: str, sec: int, nanosec: int) -> float:
    """Seconds as the float nearest to the exact value, rejecting nanosec ≥ 1e9."""
    if nanosec >= _NANOSECONDS_PER_SECOND:
        raise MalformedMessageError(f"{kind}: nanosec {nanosec} is not below 1e9")
    # Integer true division rounds once, correctly, so no drift at large sec.
    return (sec * _NANOSECONDS_PER_SECOND + nanosec) / _NANOSECONDS_PER_SECOND


def stamp_to_seconds(stamp: Time) -> float:
    """The stamp in seconds (the float nearest to its exact value)."""
    return _sec_nanosec_to_seconds("Time", stamp.sec, stamp.nanosec)


def stamp_ns(stamp: Time) -> int:
    """A builtin_interfaces/Time as integer nanoseconds (exact, for matching stamps)."""
    return stamp.sec * _NANOSECONDS_PER_SECOND + stamp.nanosec


def seconds_to_stamp(seconds: float) -> Time:
    """The stamp nearest (to the nanosecond) to the exact value of `seconds`."""
    sec, nanosec = _seconds_to_sec_nanosec(seconds)
    return Time(sec=sec, nanosec=nanosec)


def duration_to_seconds(duration: Duration) -> float:
    """The duration in seconds (the float nearest to its exact value)."""
    return _sec_nanosec_to_seconds("Duration", duration.sec, duration.nanosec)


def seconds_to_duration(seconds: float) -> Duration:
    """The duration nearest (to the nanosecond) to the exact value of `seconds`."""
    sec, nanosec = _seconds_to_sec_nanosec(seconds)
    return Duration(sec=sec, nanosec=nanosec)
