"""Message ⇄ numpy / dataclass conversions for the thin ROS nodes: fast, exact, and strict about
what they accept (a bad received message raises MalformedMessageError naming the problem)."""
from robot_nodes.conversions.errors import MalformedMessageError
from robot_nodes.conversions.geometry import (duration_to_seconds, make_odometry, make_transform, odometry_to_se2,
                                              pose_to_se2, pose_to_se3, quaternion_to_yaw, rpy_to_quaternion,
                                              se2_to_pose, se3_to_pose, seconds_to_duration, seconds_to_stamp, stamp_ns,
                                              stamp_to_seconds, transform_to_se3, yaw_to_quaternion)
from robot_nodes.conversions.image import (camera_info_from_intrinsics, image_to_numpy, intrinsics_from_camera_info,
                                           numpy_to_image)
from robot_nodes.conversions.markers import detected_objects_to_markers
from robot_nodes.conversions.objects import (detected_objects_to_msg, ground_truth_objects_to_msg,
                                             msg_to_detected_objects, msg_to_ground_truth_objects,
                                             msg_to_predicted_objects, msg_to_tracked_objects,
                                             predicted_objects_to_msg, tracked_objects_to_msg)
from robot_nodes.conversions.pointcloud import pointcloud2_to_xyzi, xyzi_to_pointcloud2

__all__ = [
    "MalformedMessageError",
    "camera_info_from_intrinsics", "image_to_numpy", "intrinsics_from_camera_info", "numpy_to_image",
    "detected_objects_to_markers",
    "detected_objects_to_msg", "ground_truth_objects_to_msg", "msg_to_detected_objects",
    "msg_to_ground_truth_objects", "msg_to_predicted_objects", "msg_to_tracked_objects",
    "predicted_objects_to_msg", "tracked_objects_to_msg",
    "duration_to_seconds", "make_odometry", "make_transform", "odometry_to_se2", "pose_to_se2", "pose_to_se3",
    "quaternion_to_yaw", "rpy_to_quaternion", "se2_to_pose", "se3_to_pose", "seconds_to_duration",
    "seconds_to_stamp", "stamp_ns", "stamp_to_seconds", "transform_to_se3", "yaw_to_quaternion",
    "pointcloud2_to_xyzi", "xyzi_to_pointcloud2",
]
