"""Rigid transforms (REP-103: x forward, y left, z up; metres, radians)."""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from sim.validation import check_ranges


def wrap_angle(angle):
    """Angle(s) wrapped to [-pi, pi)."""
    return (np.asarray(angle) + np.pi) % (2.0 * np.pi) - np.pi


def rotation_rpy(roll: float, pitch: float, yaw: float) -> np.ndarray:
    """3x3 rotation R = Rz(yaw) Ry(pitch) Rx(roll) (fixed-axis roll, pitch, yaw as in tf2)."""
    cr, sr = math.cos(roll), math.sin(roll)
    cp, sp = math.cos(pitch), math.sin(pitch)
    cy, sy = math.cos(yaw), math.sin(yaw)
    return np.array([
        [cy * cp, cy * sp * sr - sy * cr, cy * sp * cr + sy * sr],
        [sy * cp, sy * sp * sr + cy * cr, sy * sp * cr - cy * sr],
        [-sp, cp * sr, cp * cr],
    ])


def homogeneous(rotation: np.ndarray, translation) -> np.ndarray:
    """4x4 transform from a 3x3 rotation and a translation."""
    matrix = np.eye(4)
    matrix[:3, :3] = rotation
    matrix[:3, 3] = translation
    return matrix


def planar_pose_matrix(x: float, y: float, yaw: float) -> np.ndarray:
    """4x4 transform of a frame on the ground plane (z = 0) at (x, y) heading `yaw`."""
    return homogeneous(rotation_rpy(0.0, 0.0, yaw), (x, y, 0.0))


@dataclass
class MountPose:
    """A sensor body frame's pose on base_link (base_link: rear axle on the ground)."""

    x: float = field(default=0.0, metadata={"range": (-20.0, 20.0)})
    """Forward offset from base_link, metres."""
    y: float = field(default=0.0, metadata={"range": (-5.0, 5.0)})
    """Leftward offset from base_link, metres."""
    z: float = field(default=0.0, metadata={"range": (-2.0, 10.0)})
    """Height above base_link (the road surface), metres."""
    roll: float = field(default=0.0, metadata={"range": (-math.pi, math.pi)})
    """Rotation about x, radians."""
    pitch: float = field(default=0.0, metadata={"range": (-math.pi / 2, math.pi / 2)})
    """Rotation about y, radians (positive tilts x down)."""
    yaw: float = field(default=0.0, metadata={"range": (-math.pi, math.pi)})
    """Rotation about z, radians."""

    def __post_init__(self) -> None:
        check_ranges(self)

    def matrix(self) -> np.ndarray:
        """4x4 transform taking points in the sensor frame to base_link."""
        return homogeneous(rotation_rpy(self.roll, self.pitch, self.yaw), (self.x, self.y, self.z))
