"""edge_robot_msgs object lists ⇄ perception.objects dataclasses.

Conventions on the wire:
- A box is `bbox.center` (pose with a yaw-only quaternion) and `size` = (length, width, height).
- Classification carries one hypothesis, the object's label. Detected and tracked objects give it
  probability 1 and their score as existence_probability; PredictedObject has no existence field,
  so there the track's score travels as the label's probability. Reading takes the most probable
  hypothesis.
- TrackedObject/PredictedObject twists are in the object's own frame (x forward), the dataclasses'
  velocities in the container frame: they are rotated by the object's yaw. Ground-truth twists are
  in the container frame already.
- PredictedObject carries no track age; reading gives age 0.

Reading validates every number and raises MalformedMessageError naming the object and field.
"""
from __future__ import annotations

import array
from typing import Callable, Sequence, TypeVar

import numpy as np
from geometry_msgs.msg import Pose, PoseWithCovariance, Twist, TwistWithCovariance, Vector3
from std_msgs.msg import Header

from edge_robot_msgs.msg import BoundingBox3D, DetectedObject as DetectedObjectMsg, DetectedObjects
from edge_robot_msgs.msg import GroundTruthObject as GroundTruthObjectMsg, GroundTruthObjects
from edge_robot_msgs.msg import ObjectClassification, PredictedObject as PredictedObjectMsg, PredictedObjects
from edge_robot_msgs.msg import PredictedPath as PredictedPathMsg
from edge_robot_msgs.msg import TrackedObject as TrackedObjectMsg, TrackedObjects
from perception.objects import (Box3D, DetectedObject, GroundTruthObject, ObjectClass, PredictedObject,
                                PredictedPath, TrackedObject)
from robot_nodes.conversions.errors import MalformedMessageError, located_at, require_finite
from robot_nodes.conversions.geometry import (duration_to_seconds, pose_to_se2, rpy_to_xyzw, se2_to_pose,
                                              seconds_to_duration, xyzw_to_yaw)


ItemT = TypeVar("ItemT")
ResultT = TypeVar("ResultT")


def _read_objects(container: str, items: Sequence[ItemT], read: Callable[[ItemT], ResultT]) -> list[ResultT]:
    """`read` applied to each message of a list, its errors located as "<container>: objects[i]"."""
    results = []
    for index, item in enumerate(items):
        with located_at(f"{container}: objects[{index}]"):
            results.append(read(item))
    return results


def _rotate(vector: Sequence[float], angle: float) -> np.ndarray:
    """`vector` (x, y) rotated counter-clockwise by `angle` radians."""
    cos_angle, sin_angle = np.cos(angle), np.sin(angle)
    x, y = vector
    return np.array([cos_angle * x - sin_angle * y, sin_angle * x + cos_angle * y])


def _require_probability(field: str, value: float) -> None:
    if not 0.0 <= value <= 1.0:  # also false for NaN
        raise MalformedMessageError(f"{field} = {value} is not a probability in [0, 1]")


# ---- shared pieces -----------------------------------------------------------------------------

def _classification_to_msg(label: ObjectClass, probability: float) -> list[ObjectClassification]:
    return [ObjectClassification(label=int(label), probability=float(probability))]


def _label_from_int(field: str, label: int) -> ObjectClass:
    try:
        return ObjectClass(label)
    except ValueError:
        raise MalformedMessageError(
            f"{field} = {label} is not a known label "
            f"({', '.join(f'{known.value} {known.name}' for known in ObjectClass)})") from None


def _classification_from_msg(classification: Sequence[ObjectClassification]) -> tuple[ObjectClass, float]:
    """The most probable (label, probability) of a non-empty, valid hypothesis list."""
    if not classification:
        raise MalformedMessageError("classification is empty; it needs at least the object's label")
    for index, hypothesis in enumerate(classification):
        _label_from_int(f"classification[{index}].label", hypothesis.label)
        _require_probability(f"classification[{index}].probability", hypothesis.probability)
    best = max(classification, key=lambda hypothesis: hypothesis.probability)
    return ObjectClass(best.label), float(best.probability)


def _size_to_msg(size: np.ndarray) -> Vector3:
    length, width, height = size.tolist()
    return Vector3(x=length, y=width, z=height)


def _size_from_msg(field: str, size: Vector3) -> np.ndarray:
    values = np.array([size.x, size.y, size.z])
    require_finite(field, values)
    if (values < 0.0).any():
        raise MalformedMessageError(f"{field} = {values.tolist()} has a negative extent")
    return values


def _box_pose_to_msg(box: Box3D) -> Pose:
    x, y, z = box.center.tolist()
    return se2_to_pose(x, y, box.yaw, z=z)


def _box_from_msg(pose_field: str, pose: Pose, size_field: str, size: Vector3) -> Box3D:
    with located_at(pose_field):
        x, y, yaw = pose_to_se2(pose)
    return Box3D(center=(x, y, pose.position.z), size=_size_from_msg(size_field, size), yaw=yaw)


def _box_to_msg(box: Box3D) -> BoundingBox3D:
    return BoundingBox3D(center=_box_pose_to_msg(box), size=_size_to_msg(box.size))


def _covariance_from_msg(field: str, covariance: np.ndarray) -> np.ndarray:
    covariance = np.array(covariance, dtype=np.float64).reshape(6, 6)
    require_finite(field, covariance)
    return covariance


def _planar_twist_to_msg(velocity: np.ndarray, yaw_rate: float) -> Twist:
    vx, vy = velocity.tolist()
    return Twist(linear=Vector3(x=vx, y=vy), angular=Vector3(z=float(yaw_rate)))


def _planar_twist_from_msg(field: str, twist: Twist) -> tuple[np.ndarray, float]:
    """(vx, vy) and yaw rate of a twist whose six components must be finite."""
    components = np.array([twist.linear.x, twist.linear.y, twist.linear.z,
                           twist.angular.x, twist.angular.y, twist.angular.z])
    require_finite(f"{field} (linear, angular)", components)
    return components[:2], float(components[5])


def _track_state_to_msg(track: TrackedObject) -> tuple[PoseWithCovariance, TwistWithCovariance]:
    """Pose and object-frame twist, each with its covariance, as TrackedObject and PredictedObject carry them."""
    pose = PoseWithCovariance(pose=_box_pose_to_msg(track.box), covariance=track.pose_covariance.flatten())
    twist = TwistWithCovariance(twist=_planar_twist_to_msg(_rotate(track.velocity, -track.box.yaw), track.yaw_rate),
                                covariance=track.velocity_covariance.flatten())
    return pose, twist


def _track_from_msg(object_id: int, label: ObjectClass, score: float, age: float, pose: PoseWithCovariance,
                    twist: TwistWithCovariance, size: Vector3, pose_field: str, twist_field: str) -> TrackedObject:
    """A track from the pose, object-frame twist and size that TrackedObject and PredictedObject share."""
    box = _box_from_msg(f"{pose_field}.pose", pose.pose, "size", size)
    object_frame_velocity, yaw_rate = _planar_twist_from_msg(f"{twist_field}.twist", twist.twist)
    return TrackedObject(object_id=object_id, label=label, score=score, box=box,
                         velocity=_rotate(object_frame_velocity, box.yaw), yaw_rate=yaw_rate,
                         pose_covariance=_covariance_from_msg(f"{pose_field}.covariance", pose.covariance),
                         velocity_covariance=_covariance_from_msg(f"{twist_field}.covariance", twist.covariance),
                         age=age)


# ---- detected ----------------------------------------------------------------------------------

def detected_objects_to_msg(objects: Sequence[DetectedObject], header: Header) -> DetectedObjects:
    """Detections in the frame and stamp of `header`."""
    return DetectedObjects(header=header, objects=[
        DetectedObjectMsg(classification=_classification_to_msg(detected.label, 1.0),
                          existence_probability=float(detected.score), bbox=_box_to_msg(detected.box),
                          num_points=int(detected.num_points))
        for detected in objects])


def _detected_from_msg(detected: DetectedObjectMsg) -> DetectedObject:
    label, _ = _classification_from_msg(detected.classification)
    _require_probability("existence_probability", detected.existence_probability)
    return DetectedObject(label=label, score=float(detected.existence_probability),
                          box=_box_from_msg("bbox.center", detected.bbox.center, "bbox.size", detected.bbox.size),
                          num_points=int(detected.num_points))


def msg_to_detected_objects(msg: DetectedObjects) -> list[DetectedObject]:
    """The detections of a message, validated."""
    return _read_objects("DetectedObjects", msg.objects, _detected_from_msg)


# ---- tracked -----------------------------------------------------------------------------------

def tracked_objects_to_msg(objects: Sequence[TrackedObject], header: Header) -> TrackedObjects:
    """Tracks in the frame and stamp of `header`; velocities go out in each object's frame."""
    messages = []
    for track in objects:
        pose, twist = _track_state_to_msg(track)
        messages.append(TrackedObjectMsg(
            object_id=int(track.object_id), classification=_classification_to_msg(track.label, 1.0),
            existence_probability=float(track.score), pose=pose, twist=twist, size=_size_to_msg(track.box.size),
            age=float(track.age)))
    return TrackedObjects(header=header, objects=messages)


def _tracked_from_msg(tracked: TrackedObjectMsg) -> TrackedObject:
    label, _ = _classification_from_msg(tracked.classification)
    _require_probability("existence_probability", tracked.existence_probability)
    require_finite("age", tracked.age)
    return _track_from_msg(int(tracked.object_id), label, float(tracked.existence_probability), float(tracked.age),
                           tracked.pose, tracked.twist, tracked.size, pose_field="pose", twist_field="twist")


def msg_to_tracked_objects(msg: TrackedObjects) -> list[TrackedObject]:
    """The tracks of a message, validated, velocities in the message frame."""
    return _read_objects("TrackedObjects", msg.objects, _tracked_from_msg)


# ---- predicted ---------------------------------------------------------------------------------

def _path_to_msg(path: PredictedPath, z: float) -> PredictedPathMsg:
    poses = []
    for (x, y), (qx, qy, qz, qw) in zip(path.positions.tolist(), rpy_to_xyzw(0.0, 0.0, path.yaws).tolist()):
        # Filling the Point and Quaternion that Pose() already made is ~40 % faster than passing new ones.
        pose = Pose()
        pose.position.x, pose.position.y, pose.position.z = x, y, z
        pose.orientation.x, pose.orientation.y, pose.orientation.z, pose.orientation.w = qx, qy, qz, qw
        poses.append(pose)
    covariance = [] if path.position_covariance is None else np.ravel(path.position_covariance).tolist()
    return PredictedPathMsg(path=poses, time_step=seconds_to_duration(path.time_step),
                            confidence=float(path.probability), position_covariance=array.array("f", covariance))


def _path_from_msg(path: PredictedPathMsg) -> PredictedPath:
    poses = np.array([(pose.position.x, pose.position.y, pose.position.z,
                       pose.orientation.x, pose.orientation.y, pose.orientation.z, pose.orientation.w)
                      for pose in path.path], dtype=np.float64).reshape(-1, 7)
    require_finite("path", poses)  # rows: x, y, z, qx, qy, qz, qw
    with located_at("path"):
        yaws = xyzw_to_yaw(poses[:, 3:])
    with located_at("time_step"):
        time_step = duration_to_seconds(path.time_step)
    if time_step <= 0.0:
        raise MalformedMessageError(f"time_step = {time_step} s is not positive")
    _require_probability("confidence", path.confidence)
    covariance = np.frombuffer(path.position_covariance, dtype=np.float32)
    if len(covariance) not in (0, 4 * len(poses)):
        raise MalformedMessageError(f"position_covariance has {len(covariance)} values; "
                                    f"expected 4 * len(path) = {4 * len(poses)} or none")
    require_finite("position_covariance", covariance)
    return PredictedPath(positions=poses[:, :2], yaws=yaws, time_step=time_step, probability=float(path.confidence),
                         position_covariance=covariance.reshape(-1, 2, 2).astype(np.float64) if len(covariance)
                         else None)


def predicted_objects_to_msg(objects: Sequence[PredictedObject], header: Header) -> PredictedObjects:
    """Predictions in the frame and stamp of `header`; path poses sit at their track's box-centre height."""
    messages = []
    for predicted in objects:
        track = predicted.track
        pose, twist = _track_state_to_msg(track)
        messages.append(PredictedObjectMsg(
            object_id=int(track.object_id), classification=_classification_to_msg(track.label, track.score),
            initial_pose=pose, initial_twist=twist, size=_size_to_msg(track.box.size),
            predicted_paths=[_path_to_msg(path, float(track.box.center[2])) for path in predicted.paths]))
    return PredictedObjects(header=header, objects=messages)


def _predicted_from_msg(predicted: PredictedObjectMsg) -> PredictedObject:
    label, score = _classification_from_msg(predicted.classification)
    track = _track_from_msg(int(predicted.object_id), label, score, 0.0, predicted.initial_pose,
                            predicted.initial_twist, predicted.size,
                            pose_field="initial_pose", twist_field="initial_twist")
    paths = []
    for index, path in enumerate(predicted.predicted_paths):
        with located_at(f"predicted_paths[{index}]"):
            paths.append(_path_from_msg(path))
    return PredictedObject(track=track, paths=paths)


def msg_to_predicted_objects(msg: PredictedObjects) -> list[PredictedObject]:
    """The predictions of a message, validated (track ages are not carried and read as 0)."""
    return _read_objects("PredictedObjects", msg.objects, _predicted_from_msg)


# ---- ground truth ------------------------------------------------------------------------------

def ground_truth_objects_to_msg(objects: Sequence[GroundTruthObject], header: Header) -> GroundTruthObjects:
    """Ground truth in the frame and stamp of `header`."""
    return GroundTruthObjects(header=header, objects=[
        GroundTruthObjectMsg(object_id=int(truth.object_id), label=int(truth.label), bbox=_box_to_msg(truth.box),
                             twist=_planar_twist_to_msg(truth.velocity, truth.yaw_rate),
                             num_lidar_points=int(truth.num_lidar_points), is_static=bool(truth.is_static))
        for truth in objects])


def _ground_truth_from_msg(truth: GroundTruthObjectMsg) -> GroundTruthObject:
    velocity, yaw_rate = _planar_twist_from_msg("twist", truth.twist)
    return GroundTruthObject(object_id=int(truth.object_id), label=_label_from_int("label", truth.label),
                             box=_box_from_msg("bbox.center", truth.bbox.center, "bbox.size", truth.bbox.size),
                             velocity=velocity, yaw_rate=yaw_rate, num_lidar_points=int(truth.num_lidar_points),
                             is_static=bool(truth.is_static))


def msg_to_ground_truth_objects(msg: GroundTruthObjects) -> list[GroundTruthObject]:
    """The ground-truth objects of a message, validated."""
    return _read_objects("GroundTruthObjects", msg.objects, _ground_truth_from_msg)

