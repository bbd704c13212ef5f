"""What a rosbag2 bag of the stack holds, decoded once for evaluation: the robot's poses, the ground
truth, every node's outputs and statistics, each as (stamp_ns, value) lists in bag order. Topics a
bag lacks are empty; the evaluation then says what it could not score."""
from __future__ import annotations

import collections
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from rclpy.serialization import deserialize_message

from robot_nodes import topics
from robot_nodes.bags import BagReader, message_class
from robot_nodes.conversions import (msg_to_detected_objects, msg_to_ground_truth_objects, msg_to_predicted_objects,
                                     msg_to_tracked_objects, odometry_to_se2, pointcloud2_to_xyzi, pose_to_se2,
                                     stamp_ns, transform_to_se3)

DECODED_TOPICS = (topics.ODOMETRY, topics.GROUND_TRUTH_OBJECTS, topics.DETECTED_OBJECTS, topics.TRACKED_OBJECTS,
                  topics.PREDICTED_OBJECTS, topics.TF_STATIC, topics.CROA_PLANNER_STATUS, topics.PLANNED_PATH,
                  topics.UPLINK_DECISION, topics.MR_STREAM_QUALITY, topics.NODE_STATISTICS, topics.LLM_ANSWER_RECORDS)
"""Topics decoded in full (the sensor data stays in the bag: see BagContents.clouds)."""


@dataclass
class BagContents:
    """The decoded topics of one bag (see DECODED_TOPICS); `counts` has every topic's message count."""

    path: Path
    counts: collections.Counter = field(default_factory=collections.Counter)
    duration_s: float = 0.0
    """Seconds from the bag's first message to its last."""
    poses: list[tuple[int, float, float, float]] = field(default_factory=list)
    """(stamp_ns, x, y, yaw) of the robot (odometry's child frame) in its odometry frame."""
    speeds: list[float] = field(default_factory=list)
    """Forward speed per odometry message, m/s."""
    base_frame: str = "base_link"
    """The odometry's child frame."""
    ground_truth: list[tuple[int, list]] = field(default_factory=list)
    """(stamp_ns, GroundTruthObjects in map) per ground-truth message."""
    detections: list[tuple[int, list]] = field(default_factory=list)
    """(stamp_ns, DetectedObjects) per detections message, in `detection_frame`."""
    detection_frame: str | None = None
    tracks: list[tuple[int, list]] = field(default_factory=list)
    """(stamp_ns, TrackedObjects) per tracks message."""
    predictions: list[tuple[int, list]] = field(default_factory=list)
    """(stamp_ns, PredictedObjects) per predictions message."""
    static_transforms: dict[tuple[str, str], np.ndarray] = field(default_factory=dict)
    """(parent, child) → 4x4 pose of child in parent, from /tf_static."""
    planner_statuses: list = field(default_factory=list)
    """edge_robot_msgs/PlannerStatus per planning cycle."""
    planned_paths: list[tuple[int, np.ndarray]] = field(default_factory=list)
    """(stamp_ns, (P, 3) x, y, yaw) per planned path."""
    uplink_decisions: list = field(default_factory=list)
    """edge_robot_msgs/UplinkDecision per decided camera frame."""
    stream_qualities: list = field(default_factory=list)
    """edge_robot_msgs/StreamQuality per scored frame of the remote stream."""
    node_statistics: dict[str, list] = field(default_factory=lambda: collections.defaultdict(list))
    """Node name → its edge_robot_msgs/NodeStatistics messages, in order."""
    llm_answers: list = field(default_factory=list)
    """edge_robot_msgs/LlmAnswerRecord per answered question."""

    @classmethod
    def read(cls, path: str | Path) -> BagContents:
        """Decode `path` (a BagError says what is wrong with an unreadable bag)."""
        contents = cls(Path(path))
        with BagReader(path) as reader:
            bag_topics = reader.topics()
            contents.counts.update({topic: info.count for topic, info in bag_topics.items()})
            contents.duration_s = reader.duration
            wanted = [topic for topic in DECODED_TOPICS if topic in bag_topics]
            for topic, msgtype, _, raw in reader.messages(wanted):
                contents._add(topic, deserialize_message(raw, message_class(msgtype)))
        return contents

    def _add(self, topic: str, message) -> None:
        if topic == topics.ODOMETRY:
            x, y, yaw, speed, _ = odometry_to_se2(message)
            self.poses.append((stamp_ns(message.header.stamp), x, y, yaw))
            self.speeds.append(speed)
            self.base_frame = message.child_frame_id
        elif topic == topics.GROUND_TRUTH_OBJECTS:
            self.ground_truth.append((stamp_ns(message.header.stamp), msg_to_ground_truth_objects(message)))
        elif topic == topics.DETECTED_OBJECTS:
            self.detection_frame = message.header.frame_id
            self.detections.append((stamp_ns(message.header.stamp), msg_to_detected_objects(message)))
        elif topic == topics.TRACKED_OBJECTS:
            self.tracks.append((stamp_ns(message.header.stamp), msg_to_tracked_objects(message)))
        elif topic == topics.PREDICTED_OBJECTS:
            self.predictions.append((stamp_ns(message.header.stamp), msg_to_predicted_objects(message)))
        elif topic == topics.TF_STATIC:
            for transform in message.transforms:
                self.static_transforms[(transform.header.frame_id, transform.child_frame_id)] = \
                    transform_to_se3(transform.transform)
        elif topic == topics.CROA_PLANNER_STATUS:
            self.planner_statuses.append(message)
        elif topic == topics.PLANNED_PATH:
            self.planned_paths.append((stamp_ns(message.header.stamp),
                                       np.array([pose_to_se2(pose.pose) for pose in message.poses]).reshape(-1, 3)))
        elif topic == topics.UPLINK_DECISION:
            self.uplink_decisions.append(message)
        elif topic == topics.MR_STREAM_QUALITY:
            self.stream_qualities.append(message)
        elif topic == topics.NODE_STATISTICS:
            self.node_statistics[message.node].append(message)
        elif topic == topics.LLM_ANSWER_RECORDS:
            self.llm_answers.append(message)

    def seconds_since_start(self, stamp: int) -> float:
        """Seconds from the first odometry message (the run's start) to `stamp` (ns)."""
        return (stamp - (self.poses[0][0] if self.poses else 0)) * 1e-9

    def static_transform(self, parent: str, child: str) -> np.ndarray | None:
        """The 4x4 pose of `child` in `parent` from /tf_static, or None."""
        return self.static_transforms.get((parent, child))

    def clouds(self, stamps: set[int]) -> dict[int, np.ndarray]:
        """The lidar scans stamped `stamps`, as (N, 4) x, y, z, intensity in the lidar frame (read
        from the bag on demand: the scans are most of its bytes)."""
        if not stamps or not self.counts[topics.LIDAR_POINTS]:
            return {}
        clouds = {}
        with BagReader(self.path) as reader:
            for _, msgtype, _, raw in reader.messages([topics.LIDAR_POINTS]):
                message = deserialize_message(raw, message_class(msgtype))
                if stamp_ns(message.header.stamp) in stamps:
                    clouds[stamp_ns(message.header.stamp)] = pointcloud2_to_xyzi(message)[0]
        return clouds
