"""Where a sensor frame was at a stamp: odometry (base_link in a fixed frame, interpolated between
samples or carried on a few milliseconds past the newest) composed with the sensor's mount from
/tf_static. Shared by the nodes that place sensor data in the odometry frame."""
from __future__ import annotations

import collections

import numpy as np
from nav_msgs.msg import Odometry
from tf2_msgs.msg import TFMessage

from evaluation.detection_run import pose_at
from robot_nodes.conversions import MalformedMessageError, odometry_to_se2, stamp_to_seconds, transform_to_se3
from sim.transforms import planar_pose_matrix

ODOMETRY_KEPT_S = 5.0
"""Seconds of odometry kept to place data that arrives late."""


class FramePoses:
    """Odometry samples and static mounts; `pose(frame, stamp_ns)` is the frame's 4x4 pose in the fixed frame."""

    def __init__(self, fixed_frame: str, max_gap_s: float) -> None:
        self.fixed_frame = fixed_frame
        """The odometry's frame (header.frame_id), which poses are given in."""
        self.max_gap_ns = int(max_gap_s * 1e9)
        """Poses are interpolated between samples at most this far apart, and carried on this far past the newest."""
        self._odometry: collections.deque[tuple[int, float, float, float]] = collections.deque()
        self._velocity = (0.0, 0.0)
        """(speed, yaw rate) of the newest odometry."""
        self.base_frame: str | None = None
        """The odometry's child frame, once odometry has arrived."""
        self._parents: dict[str, tuple[str, np.ndarray]] = {}
        """child frame → (parent frame, pose of the child in the parent) from /tf_static."""

    def add_odometry(self, message: Odometry) -> bool:
        """Keep one odometry sample; True when its stamp is older than the previous one (time went
        backwards: the older samples are forgotten). MalformedMessageError for another fixed frame."""
        if message.header.frame_id != self.fixed_frame:
            raise MalformedMessageError(f"odometry is in {message.header.frame_id!r}, expected {self.fixed_frame!r}")
        stamp_ns = int(round(stamp_to_seconds(message.header.stamp) * 1e9))
        x, y, yaw, speed, yaw_rate = odometry_to_se2(message)
        went_back = bool(self._odometry) and stamp_ns < self._odometry[-1][0]
        if went_back:
            self._odometry.clear()
        self._odometry.append((stamp_ns, x, y, yaw))
        self._velocity = (speed, yaw_rate)
        self.base_frame = message.child_frame_id
        while self._odometry and self._odometry[0][0] < stamp_ns - ODOMETRY_KEPT_S * 1e9:
            self._odometry.popleft()
        return went_back

    def add_static(self, message: TFMessage) -> None:
        for transform in message.transforms:
            self._parents[transform.child_frame_id] = (transform.header.frame_id, transform_to_se3(transform.transform))

    def mount(self, parent: str, child: str) -> np.ndarray | None:
        """The 4x4 pose of `child` in `parent` through the static transforms (a chain such as
        base_link → camera → camera_optical), or None while /tf_static has not linked them."""
        pose, frame = np.eye(4), child
        for _ in range(len(self._parents) + 1):  # a bounded walk: a bad /tf_static may hold a loop
            if frame == parent:
                return pose
            if frame not in self._parents:
                return None
            frame, link = self._parents[frame]
            pose = link @ pose
        return None

    @property
    def newest_odometry_ns(self) -> int | None:
        """Stamp of the newest odometry sample kept, nanoseconds."""
        return self._odometry[-1][0] if self._odometry else None

    def has_mount(self, parent: str, child: str) -> bool:
        """Whether /tf_static has linked `child` to `parent`."""
        return self.mount(parent, child) is not None

    def pose(self, frame: str, stamp_ns: int) -> tuple[np.ndarray | None, str]:
        """The 4x4 pose of `frame` in the fixed frame at the stamp, or None and why not."""
        if frame == self.fixed_frame:
            return np.eye(4), ""
        if self.base_frame is None:
            return None, "no odometry yet"
        pose = pose_at(list(self._odometry), stamp_ns, self.max_gap_ns)
        newest = self._odometry[-1] if self._odometry else None
        if pose is None and newest is not None and 0 < stamp_ns - newest[0] <= self.max_gap_ns:
            pose = _extrapolated(newest, self._velocity, (stamp_ns - newest[0]) * 1e-9)
        if pose is None:
            return None, f"no odometry within {self.max_gap_ns * 1e-9:g} s of the stamp"
        base_pose = planar_pose_matrix(*pose)
        if frame == self.base_frame:
            return base_pose, ""
        mount = self.mount(self.base_frame, frame)
        if mount is None:
            return None, f"no {self.base_frame} → {frame} transform on /tf_static yet"
        return base_pose @ mount, ""


def _extrapolated(sample: tuple[int, float, float, float], velocity: tuple[float, float],
                  seconds: float) -> tuple[float, float, float]:
    """A (stamp, x, y, yaw) odometry sample moved on by its (speed, yaw rate) for a few milliseconds:
    data stamped at an instant can arrive before the odometry of that instant."""
    _, x, y, yaw = sample
    speed, yaw_rate = velocity
    heading = yaw + 0.5 * yaw_rate * seconds
    return x + speed * seconds * np.cos(heading), y + speed * seconds * np.sin(heading), yaw + yaw_rate * seconds
