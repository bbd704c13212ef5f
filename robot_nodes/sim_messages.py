"""ROS messages for the simulated world's state, shared by the sim_world node and the direct
bag recorder (record-sim) so both produce the same bytes."""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from builtin_interfaces.msg import Time
from geometry_msgs.msg import TransformStamped
from nav_msgs.msg import Odometry
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import CameraInfo, Image, PointCloud2
from std_msgs.msg import Header
from tf2_msgs.msg import TFMessage

from edge_robot_msgs.msg import GroundTruthObjects
from robot_nodes import topics
from robot_nodes.conversions import (
    camera_info_from_intrinsics,
    ground_truth_objects_to_msg,
    make_odometry,
    make_transform,
    numpy_to_image,
    seconds_to_stamp,
    xyzi_to_pointcloud2,
)
from sim.world import World

OPTICAL_IN_BODY_RPY = (-math.pi / 2, 0.0, -math.pi / 2)
"""REP-103: the optical frame (z forward, x right, y down) in the camera body frame (x forward, z up)."""


@dataclass
class FrameIds:
    """REP-105 frame names used by the simulated robot."""

    map: str = "map"
    """World-fixed frame; ground truth is given in it."""
    odom: str = "odom"
    """Odometry frame; the simulated odometry has no drift, so map → odom is identity."""
    base_link: str = "base_link"
    """The robot body: rear axle centre on the ground, x forward."""
    lidar: str = "lidar"
    """The lidar: x forward, y left, z up."""
    camera: str = "camera"
    """The camera body: x forward, y left, z up."""
    camera_optical: str = "camera_optical"
    """The camera's optical frame (z forward, x right, y down); images are in it."""

    def __post_init__(self) -> None:
        names = [self.map, self.odom, self.base_link, self.lidar, self.camera, self.camera_optical]
        if any(not name or name.startswith("/") for name in names):
            raise ValueError(f"frame ids must be non-empty and not start with '/': {names}")
        if len(set(names)) != len(names):
            raise ValueError(f"frame ids must be distinct: {names}")


LOCKSTEP_SENSORS = ("odometry", "lidar", "camera")
"""What a lockstep acknowledgement can follow: each odometry message (every physics step), each
lidar scan or each camera frame."""


@dataclass
class LockstepConfig:
    """How the simulated world waits for the stack (lockstep.*)."""

    enabled: bool = False
    """Advance simulated time only once the stack has consumed what the world published: after each
    step the world waits for its acknowledgements, so a run gives the same result on a fast or a
    slow machine; real_time_factor then only caps the pace. False: the world keeps its pace and
    nodes that fall behind drop frames (live use)."""
    acknowledgements: list[str] = field(default_factory=list)
    """'topic:sensor' pairs, sensor one of odometry, lidar, camera: after publishing that sensor's
    message the world waits for a message on the topic (a contract topic) stamped as it; for a
    type without a header (/cmd_vel) any message that arrives after it."""
    timeout: float = field(default=5.0, metadata={"range": (0.01, 600.0)})
    """Wall seconds the world waits for one publication's acknowledgements before going on without
    them (counted and logged: that step no longer waited for the stack)."""

    def __post_init__(self) -> None:
        for acknowledgement in self.acknowledgements:
            topic, _, sensor = acknowledgement.rpartition(":")
            if topic not in topics.CONTRACT or sensor not in LOCKSTEP_SENSORS:
                raise ValueError(f"lockstep acknowledgement {acknowledgement!r} must be 'topic:sensor' with a "
                                 f"contract topic and a sensor among {', '.join(LOCKSTEP_SENSORS)}")

    def by_sensor(self) -> dict[str, list[str]]:
        """Acknowledgement topics per sensor they follow."""
        topics_by_sensor: dict[str, list[str]] = {sensor: [] for sensor in LOCKSTEP_SENSORS}
        for acknowledgement in self.acknowledgements:
            topic, _, sensor = acknowledgement.rpartition(":")
            topics_by_sensor[sensor].append(topic)
        return topics_by_sensor


@dataclass
class SimWorldConfig:
    """Parameters of the sim_world node."""

    scenario: str = "config/scenarios/urban_default.yaml"
    """Scenario YAML; a relative path is taken from the package share directory."""
    seed: int = 0
    """Seed of every random draw in the world; the same scenario and seed give identical data."""
    physics_rate: float = field(default=50.0, metadata={"range": (1.0, 1000.0)})
    """World steps per simulated second; odometry and /tf are published at this rate."""
    lidar_rate: float = field(default=10.0, metadata={"range": (0.0, 100.0)})
    """Lidar scans per simulated second (0 turns the lidar off); must divide physics_rate."""
    camera_rate: float = field(default=10.0, metadata={"range": (0.0, 100.0)})
    """Camera frames per simulated second (0 turns the camera off); must divide physics_rate."""
    real_time_factor: float = field(default=1.0, metadata={"range": (0.0, 1000.0)})
    """Simulated seconds per wall second; 0 runs as fast as the machine allows."""
    cmd_vel_timeout: float = field(default=0.5, metadata={"range": (0.0, 10.0)})
    """Simulated seconds without a /cmd_vel after which the robot brakes to a stop."""
    publish_ground_truth: bool = True
    """Publish the true objects (for evaluation) with every lidar scan."""
    ground_truth_radius: float = field(default=120.0, metadata={"range": (1.0, 10000.0)})
    """Ground truth lists the objects whose centre is this close to the robot, metres."""
    wait_for_subscribers: float = field(default=0.0, metadata={"range": (0.0, 60.0)})
    """Before the first step, wait up to this many wall seconds until every output has a
    subscriber, so a recorder started alongside misses nothing; 0 starts at once."""
    wait_for_command: float = field(default=0.0, metadata={"range": (0.0, 60.0)})
    """Then wait up to this many wall seconds for the driver's first /cmd_vel, publishing the
    start's clock and odometry meanwhile, so the robot does not brake while its driver is still
    starting (a busy start once held the first command back 2 simulated s); 0 does not wait."""
    frames: FrameIds = field(default_factory=FrameIds)
    """Frame ids."""
    lockstep: LockstepConfig = field(default_factory=LockstepConfig)
    """Waiting for the stack between steps (lockstep.*)."""

    def __post_init__(self) -> None:
        for name in ("lidar_rate", "camera_rate"):
            rate = getattr(self, name)
            if rate > 0 and not math.isclose(self.physics_rate / rate, round(self.physics_rate / rate)):
                raise ValueError(f"{name} ({rate} Hz) must divide physics_rate ({self.physics_rate} Hz)")

    def steps_between(self, rate: float) -> int:
        """Physics steps between two publications at `rate` (0 when off)."""
        return round(self.physics_rate / rate) if rate > 0 else 0


class SimMessages:
    """Builds the topic-contract messages from a World at its current time."""

    def __init__(self, world: World, config: SimWorldConfig) -> None:
        self.world = world
        self.config = config
        self.frames = config.frames
        self.lidar_every = config.steps_between(config.lidar_rate)
        """Physics steps between lidar scans; 0 turns the lidar off."""
        self.camera_every = config.steps_between(config.camera_rate)
        """Physics steps between camera frames; 0 turns the camera off."""

    def due(self, step_count: int) -> dict[str, object]:
        """Messages due after physics step `step_count`, by contract topic (/clock not included)."""
        messages = {topics.ODOMETRY: self.odometry(), topics.TF: self.dynamic_transforms()}
        if self.lidar_every and step_count % self.lidar_every == 0:
            messages[topics.LIDAR_POINTS], truth = self.lidar()
            if self.config.publish_ground_truth:
                messages[topics.GROUND_TRUTH_OBJECTS] = truth
        if self.camera_every and step_count % self.camera_every == 0:
            image, info = self.camera()
            # The intrinsics first: a node that needs them for the frame has them when it arrives.
            messages[topics.CAMERA_INFO], messages[topics.CAMERA_IMAGE] = info, image
        return messages

    def stamp(self) -> Time:
        return seconds_to_stamp(self.world.time)

    def header(self, frame_id: str) -> Header:
        return Header(stamp=self.stamp(), frame_id=frame_id)

    def clock(self) -> Clock:
        return Clock(clock=self.stamp())

    def odometry(self) -> Odometry:
        x, y, yaw = self.world.ego_pose
        speed, yaw_rate = self.world.ego_velocity
        return make_odometry(self.stamp(), self.frames.odom, self.frames.base_link, x, y, yaw, speed, yaw_rate)

    def dynamic_transforms(self) -> TFMessage:
        """map → odom (identity) and odom → base_link at the current time."""
        x, y, yaw = self.world.ego_pose
        stamp = self.stamp()
        return TFMessage(transforms=[
            make_transform(stamp, self.frames.map, self.frames.odom, (0.0, 0.0, 0.0), yaw=0.0),
            make_transform(stamp, self.frames.odom, self.frames.base_link, (x, y, 0.0), yaw=yaw),
        ])

    def static_transforms(self) -> TFMessage:
        """Sensor mounts for /tf_static: base_link → lidar, base_link → camera → camera_optical."""
        stamp = self.stamp()

        def mount_transform(child: str, mount) -> TransformStamped:
            return make_transform(stamp, self.frames.base_link, child, (mount.x, mount.y, mount.z),
                                  rpy=(mount.roll, mount.pitch, mount.yaw))

        return TFMessage(transforms=[
            mount_transform(self.frames.lidar, self.world.lidar_config.mount),
            mount_transform(self.frames.camera, self.world.camera_config.mount),
            make_transform(stamp, self.frames.camera, self.frames.camera_optical, (0.0, 0.0, 0.0),
                           rpy=OPTICAL_IN_BODY_RPY),
        ])

    def lidar(self) -> tuple[PointCloud2, GroundTruthObjects]:
        """A scan and the ground truth whose point counts refer to it, with the same stamp."""
        scan = self.world.lidar_scan()
        cloud = xyzi_to_pointcloud2(scan.points, self.header(self.frames.lidar))
        x, y, _ = self.world.ego_pose
        nearby = [truth for truth in self.world.ground_truth()
                  if math.hypot(truth.box.center[0] - x, truth.box.center[1] - y) <= self.config.ground_truth_radius]
        truth = ground_truth_objects_to_msg(nearby, self.header(self.frames.map))
        return cloud, truth

    def camera(self) -> tuple[Image, CameraInfo]:
        frame = self.world.camera_frame()
        header = self.header(self.frames.camera_optical)
        height, width = frame.rgb.shape[:2]
        image = numpy_to_image(np.ascontiguousarray(frame.rgb), "rgb8", header)
        info = camera_info_from_intrinsics(self.world.camera_intrinsics, width, height, header)
        return image, info

