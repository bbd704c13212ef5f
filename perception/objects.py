"""Object data types shared by every library: what detectors, trackers, predictors and the
simulated world's ground truth say about road users.

Plain dataclasses over numpy, no ROS. Poses are in the frame named by the container that holds
them (REP-103: x forward, y left, z up; metres, radians, yaw counter-clockwise from +x).
"""
from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np


class ObjectClass(enum.IntEnum):
    """Object labels; values equal the edge_robot_msgs/ObjectClassification constants."""

    UNKNOWN = 0
    CAR = 1
    VAN = 2
    TRUCK = 3
    BUS = 4
    PEDESTRIAN = 5
    CYCLIST = 6


@dataclass
class Box3D:
    """An oriented box with yaw only (objects stand upright on the road)."""

    center: np.ndarray
    """Box centre (x, y, z), metres, shape (3,)."""
    size: np.ndarray
    """Length (along heading), width, height, metres, shape (3,)."""
    yaw: float
    """Heading about +z, radians."""

    def __post_init__(self) -> None:
        self.center = np.asarray(self.center, dtype=np.float64).reshape(3)
        self.size = np.asarray(self.size, dtype=np.float64).reshape(3)
        self.yaw = float(self.yaw)

    def as_array(self) -> np.ndarray:
        """The box as one row x, y, z, l, w, h, yaw, shape (7,)."""
        return np.array([*self.center, *self.size, self.yaw])

    def corners_bev(self) -> np.ndarray:
        """The four ground-plane corners (x, y), counter-clockwise, shape (4, 2)."""
        return corners_bev(self.as_array()[None])[0]


BoxesLike = Sequence[Box3D] | np.ndarray
"""A list of Box3D or an (N, 7) array x, y, z, l, w, h, yaw."""


def boxes_to_array(boxes: BoxesLike) -> np.ndarray:
    """Boxes as a float64 (N, 7) array x, y, z, l, w, h, yaw; arrays pass through reshaped."""
    if isinstance(boxes, np.ndarray):
        return np.asarray(boxes, dtype=np.float64).reshape(-1, 7)
    return np.array([box.as_array() for box in boxes], dtype=np.float64).reshape(-1, 7)


def corners_bev(boxes: np.ndarray) -> np.ndarray:
    """Ground-plane corners, counter-clockwise, of boxes given as rows (x, y, z, l, w, h, yaw): (N, 4, 2)."""
    signs = np.array([[1.0, 1.0], [-1.0, 1.0], [-1.0, -1.0], [1.0, -1.0]])
    local = signs * (boxes[:, None, 3:5] / 2.0)
    cos, sin = np.cos(boxes[:, 6])[:, None], np.sin(boxes[:, 6])[:, None]
    x = local[..., 0] * cos - local[..., 1] * sin + boxes[:, None, 0]
    y = local[..., 0] * sin + local[..., 1] * cos + boxes[:, None, 1]
    return np.stack([x, y], axis=-1)


@dataclass
class DetectedObject:
    """One detection in one sensor frame."""

    label: ObjectClass
    """Most probable class."""
    score: float
    """Detector confidence, 0..1."""
    box: Box3D
    """Box in the sensor (or message) frame."""
    num_points: int = 0
    """Sensor points inside the box; 0 when unknown."""


@dataclass
class TrackedObject:
    """One object followed over time."""

    object_id: int
    """Track id, stable for the life of the track."""
    label: ObjectClass
    """Most probable class."""
    score: float
    """Existence probability, 0..1."""
    box: Box3D
    """Box at the stamp of the container."""
    velocity: np.ndarray
    """Velocity (vx, vy) in the container frame, m/s, shape (2,)."""
    yaw_rate: float = 0.0
    """rad/s."""
    pose_covariance: np.ndarray = field(default_factory=lambda: np.zeros((6, 6)))
    """6x6 covariance of (x, y, z, roll, pitch, yaw)."""
    velocity_covariance: np.ndarray = field(default_factory=lambda: np.zeros((6, 6)))
    """6x6 covariance of (vx, vy, vz, wx, wy, wz), object frame."""
    age: float = 0.0
    """Seconds since the track was born."""


@dataclass
class PredictedPath:
    """One mode of an object's future."""

    positions: np.ndarray
    """Future positions (x, y), shape (T, 2), at t0 + (i + 1) * time_step."""
    yaws: np.ndarray
    """Heading at each future step, shape (T,)."""
    time_step: float
    """Seconds between successive positions."""
    probability: float
    """Probability of this mode; the modes of one object sum to 1."""
    position_covariance: np.ndarray | None = None
    """(T, 2, 2) position covariance per step, or None when the model gives none."""


@dataclass
class PredictedObject:
    """A tracked object with its predicted futures, most probable mode first."""

    track: TrackedObject
    """The object's state at the prediction stamp."""
    paths: list[PredictedPath]
    """Modes, most probable first."""


@dataclass
class GroundTruthObject:
    """The true state of one simulated object (evaluation only)."""

    object_id: int
    """Stable id within an episode."""
    label: ObjectClass
    """True class."""
    box: Box3D
    """True box."""
    velocity: np.ndarray
    """(vx, vy) in the container frame, m/s, shape (2,)."""
    yaw_rate: float = 0.0
    """rad/s."""
    num_lidar_points: int = 0
    """Lidar returns on this object in the matching scan."""
    is_static: bool = False
    """True for parked vehicles and other objects that never move."""


def boxes_into_frame(boxes: np.ndarray, frame_pose: np.ndarray) -> np.ndarray:
    """Boxes (N, 7) x, y, z, l, w, h, yaw given in a parent frame, expressed in a child frame whose
    4x4 pose in the parent is `frame_pose`. The child must be upright (rotation about z only)."""
    rotation, origin = frame_pose[:3, :3], frame_pose[:3, 3]
    if not np.allclose(rotation[2], [0.0, 0.0, 1.0], atol=1e-9):
        raise ValueError("boxes_into_frame: the frame must rotate about z only (no roll or pitch)")
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 7)
    frame_yaw = float(np.arctan2(rotation[1, 0], rotation[0, 0]))
    moved = boxes.copy()
    moved[:, :3] = (boxes[:, :3] - origin) @ rotation
    moved[:, 6] = np.arctan2(np.sin(boxes[:, 6] - frame_yaw), np.cos(boxes[:, 6] - frame_yaw))
    return moved


def points_in_box_mask(points: np.ndarray, box: np.ndarray, margin: float = 0.05) -> np.ndarray:
    """Mask of the points (N, >=3) inside an upright box (7,), grown by `margin` metres."""
    cos, sin = np.cos(box[6]), np.sin(box[6])
    dx, dy = points[:, 0] - box[0], points[:, 1] - box[1]
    along, across = dx * cos + dy * sin, -dx * sin + dy * cos
    return ((np.abs(along) <= box[3] / 2 + margin) & (np.abs(across) <= box[4] / 2 + margin)
            & (np.abs(points[:, 2] - box[2]) <= box[5] / 2 + margin))
