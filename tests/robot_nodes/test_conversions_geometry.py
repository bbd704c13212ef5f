"""Geometry and time conversions: yaw, SE(3)/SE(2), odometry, transforms, nanosecond-exact stamps."""
from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
from builtin_interfaces.msg import Duration, Time
from geometry_msgs.msg import Point, Pose, Quaternion
from hypothesis import given, settings, strategies as st
from scipy.spatial.transform import Rotation

from robot_nodes.conversions import (MalformedMessageError, duration_to_seconds, make_odometry, make_transform,
                                     odometry_to_se2, pose_to_se2, pose_to_se3, quaternion_to_yaw,
                                     rpy_to_quaternion, se2_to_pose, se3_to_pose, seconds_to_duration,
                                     seconds_to_stamp, stamp_to_seconds, transform_to_se3, yaw_to_quaternion)

angles = st.floats(-20.0, 20.0)
coordinates = st.floats(-1e4, 1e4)


def angle_difference(a: float, b: float) -> float:
    return abs(math.remainder(a - b, 2 * math.pi))


def xyzw(quaternion: Quaternion) -> np.ndarray:
    return np.array([quaternion.x, quaternion.y, quaternion.z, quaternion.w])


@settings(max_examples=200)
@given(yaw=angles)
def test_yaw_quaternion_round_trip(yaw: float) -> None:
    quaternion = yaw_to_quaternion(yaw)
    assert quaternion.x == quaternion.y == 0.0
    assert math.isclose(np.linalg.norm(xyzw(quaternion)), 1.0, rel_tol=1e-15, abs_tol=1e-15)
    back = quaternion_to_yaw(quaternion)
    assert -math.pi <= back <= math.pi
    assert angle_difference(back, yaw) < 1e-12


@settings(max_examples=200)
@given(roll=angles, pitch=angles, yaw=angles)
def test_rpy_matches_fixed_axis_xyz(roll: float, pitch: float, yaw: float) -> None:
    expected = Rotation.from_euler("xyz", [roll, pitch, yaw]).as_matrix()
    actual = Rotation.from_quat(xyzw(rpy_to_quaternion(roll, pitch, yaw))).as_matrix()
    np.testing.assert_allclose(actual, expected, atol=1e-12)


@settings(max_examples=200)
@given(seed=st.integers(0, 2 ** 32 - 1), translation=st.tuples(coordinates, coordinates, coordinates))
def test_se3_round_trip(seed: int, translation: tuple[float, float, float]) -> None:
    transform = np.eye(4)
    transform[:3, :3] = Rotation.random(random_state=seed).as_matrix()
    transform[:3, 3] = translation
    pose = se3_to_pose(transform)
    assert math.isclose(np.linalg.norm(xyzw(pose.orientation)), 1.0, rel_tol=1e-12)
    np.testing.assert_allclose(pose_to_se3(pose), transform, atol=1e-12)


@settings(max_examples=200)
@given(x=coordinates, y=coordinates, yaw=angles, z=coordinates)
def test_se2_round_trip_through_pose_and_se3(x: float, y: float, yaw: float, z: float) -> None:
    pose = se2_to_pose(x, y, yaw, z=z)
    x_back, y_back, yaw_back = pose_to_se2(pose)
    assert (x_back, y_back, pose.position.z) == (x, y, z)
    assert angle_difference(yaw_back, yaw) < 1e-12
    transform = pose_to_se3(pose)
    np.testing.assert_allclose(transform[:2, :2], [[math.cos(yaw), -math.sin(yaw)], [math.sin(yaw), math.cos(yaw)]],
                               atol=1e-12)


def test_slightly_non_unit_quaternion_is_accepted_and_normalised() -> None:
    pose = Pose(orientation=Quaternion(x=0.0, y=0.0, z=0.0, w=1.0009))
    np.testing.assert_allclose(pose_to_se3(pose), np.eye(4), atol=1e-15)


@pytest.mark.parametrize("pose, reason", [
    (Pose(orientation=Quaternion(x=0.0, y=0.0, z=0.0, w=1.0011)), r"^orientation .* has norm 1.0011, not 1 ± 0.001$"),
    (Pose(orientation=Quaternion(x=0.0, y=0.0, z=0.0, w=0.0)), r"^orientation .* has norm 0, not 1 ± 0.001$"),
    (Pose(orientation=Quaternion(x=0.0, y=0.0, z=math.nan, w=1.0)), r"^orientation is not finite"),
    (Pose(position=Point(x=math.inf)), r"^position is not finite: \[inf, 0.0, 0.0\]"),
])
def test_bad_poses_are_rejected(pose: Pose, reason: str) -> None:
    for read in (pose_to_se3, pose_to_se2):
        with pytest.raises(MalformedMessageError, match=reason):
            read(pose)


@pytest.mark.parametrize("transform", [
    np.eye(3), np.diag([1.0, 1.0, -1.0, 1.0]), np.diag([2.0, 1.0, 1.0, 1.0]),
    np.array([[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 1, 1]], dtype=float), np.full((4, 4), np.nan),
])
def test_se3_to_pose_rejects_non_rigid_transforms(transform: np.ndarray) -> None:
    with pytest.raises(ValueError):
        se3_to_pose(transform)


@settings(max_examples=200)
@given(x=coordinates, y=coordinates, yaw=st.floats(-math.pi, math.pi), v=st.floats(-30, 30),
       yaw_rate=st.floats(-3, 3), sec=st.integers(0, 2 ** 31 - 1), nanosec=st.integers(0, 999_999_999))
def test_odometry_round_trip(x, y, yaw, v, yaw_rate, sec, nanosec) -> None:
    odometry = make_odometry(Time(sec=sec, nanosec=nanosec), "odom", "base_link", x, y, yaw, v, yaw_rate)
    assert (odometry.header.frame_id, odometry.child_frame_id) == ("odom", "base_link")
    assert (odometry.header.stamp.sec, odometry.header.stamp.nanosec) == (sec, nanosec)
    x_back, y_back, yaw_back, v_back, yaw_rate_back = odometry_to_se2(odometry)
    assert (x_back, y_back, v_back, yaw_rate_back) == (x, y, v, yaw_rate)
    assert angle_difference(yaw_back, yaw) < 1e-12


def test_odometry_with_non_finite_twist_is_rejected() -> None:
    odometry = make_odometry(Time(), "odom", "base_link", 0.0, 0.0, 0.0, math.nan, 0.0)
    with pytest.raises(MalformedMessageError, match=r"^Odometry: twist.twist: \(linear.x, angular.z\) is not finite"):
        odometry_to_se2(odometry)


def test_odometry_with_bad_orientation_names_the_field() -> None:
    odometry = make_odometry(Time(), "odom", "base_link", 0.0, 0.0, 0.0, 0.0, 0.0)
    odometry.pose.pose.orientation.w = 2.0
    with pytest.raises(MalformedMessageError, match=r"^Odometry: pose.pose: orientation "):
        odometry_to_se2(odometry)


def test_make_transform_with_yaw_or_rpy() -> None:
    stamp = Time(sec=3, nanosec=4)
    by_yaw = make_transform(stamp, "map", "odom", (1.0, 2.0, 3.0), 0.5)
    assert (by_yaw.header.frame_id, by_yaw.child_frame_id) == ("map", "odom")
    assert (by_yaw.header.stamp.sec, by_yaw.header.stamp.nanosec) == (3, 4)
    translation = by_yaw.transform.translation
    assert (translation.x, translation.y, translation.z) == (1.0, 2.0, 3.0)
    assert by_yaw.transform.rotation == yaw_to_quaternion(0.5)
    by_rpy = make_transform(stamp, "base_link", "lidar", (0.0, 0.0, 1.5), rpy=(0.1, -0.2, 0.3))
    assert by_rpy.transform.rotation == rpy_to_quaternion(0.1, -0.2, 0.3)
    for ambiguous in ({}, {"yaw": 0.1, "rpy": (0.0, 0.0, 0.1)}):
        with pytest.raises(ValueError, match="exactly one of yaw and rpy"):
            make_transform(stamp, "map", "odom", (0.0, 0.0, 0.0), **ambiguous)


def exact_seconds(stamp: Time | Duration) -> Fraction:
    return stamp.sec + Fraction(stamp.nanosec, 1_000_000_000)


@settings(max_examples=300)
@given(sec=st.integers(-(2 ** 23), 2 ** 23 - 1), nanosec=st.integers(0, 999_999_999))
def test_stamp_round_trip_is_exact_to_the_nanosecond(sec: int, nanosec: int) -> None:
    # Below 2^23 s a float resolves better than half a nanosecond, so nothing may be lost.
    back = seconds_to_stamp(stamp_to_seconds(Time(sec=sec, nanosec=nanosec)))
    assert (back.sec, back.nanosec) == (sec, nanosec)
    back = seconds_to_duration(duration_to_seconds(Duration(sec=sec, nanosec=nanosec)))
    assert (back.sec, back.nanosec) == (sec, nanosec)


@settings(max_examples=300)
@given(seconds=st.floats(-1e9, 1e9))
def test_seconds_to_stamp_is_the_nearest_nanosecond_without_drift(seconds: float) -> None:
    stamp = seconds_to_stamp(seconds)
    assert 0 <= stamp.nanosec < 1_000_000_000
    assert abs(exact_seconds(stamp) - Fraction(seconds)) <= Fraction(1, 2_000_000_000)
    assert stamp_to_seconds(stamp) == float(exact_seconds(stamp))  # the float nearest the exact stamp
    if abs(seconds) >= 2 ** 23:  # floats here are coarser than a nanosecond: the float survives the trip
        assert stamp_to_seconds(stamp) == seconds


def test_seconds_to_stamp_examples() -> None:
    # The float 1e9 + 0.1 is exactly 1000000000.10000002384185791015625 s.
    assert seconds_to_stamp(1e9 + 0.1) == Time(sec=1_000_000_000, nanosec=100_000_024)
    assert seconds_to_stamp(-0.5) == Time(sec=-1, nanosec=500_000_000)
    assert seconds_to_stamp(1.9999999999) == Time(sec=2, nanosec=0)


@pytest.mark.parametrize("seconds", [math.nan, math.inf, 2.0 ** 31, -(2.0 ** 31) - 1.0])
def test_seconds_outside_ros_time_are_rejected(seconds: float) -> None:
    with pytest.raises(ValueError):
        seconds_to_stamp(seconds)


def test_stamp_with_nanosec_overflow_is_rejected() -> None:
    with pytest.raises(MalformedMessageError, match=r"^Time: nanosec 1000000000 is not below 1e9"):
        stamp_to_seconds(Time(sec=1, nanosec=1_000_000_000))
    with pytest.raises(MalformedMessageError, match=r"^Duration: nanosec"):
        duration_to_seconds(Duration(sec=1, nanosec=2_000_000_000))


def test_a_transform_message_becomes_the_matrix_of_the_same_pose():
    message = make_transform(seconds_to_stamp(0.0), "base_link", "lidar", (1.0, -0.5, 1.8), yaw=0.3)
    expected = np.eye(4)
    expected[:3, :3] = Rotation.from_euler("z", 0.3).as_matrix()
    expected[:3, 3] = (1.0, -0.5, 1.8)
    np.testing.assert_allclose(transform_to_se3(message.transform), expected, atol=1e-12)
