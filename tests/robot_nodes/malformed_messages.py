"""Malformed messages for every input topic of every node: a valid message of the topic's type, then
one to three mutations drawn by hypothesis from what the type holds (found by walking the message's
fields, so every float, integer, string, array and nested message of every type is reachable):
NaN/±Inf/huge floats, integers at and beyond what the node expects (enums out of range, declared
sizes of 10^9, stamps at zero, far in the future or going backwards, nanosec ≥ 10^9), wrong frame
ids and strings, empty, truncated, padded and huge (bounded) arrays and sequences; PointCloud2
layouts (offsets, datatypes, counts, point_step, row_step), Image encodings and sizes, and
CompressedImage data truncated or replaced.

INPUT_TOPICS lists every input topic of every node (derived from graph.py's specs; checked against
the nodes' subscriptions by test_bad_input.py) with the valid message the mutations start from.
Used by tests/robot_nodes/test_bad_input.py (the suite) and bench/fuzz_inputs.py (long runs)."""
from __future__ import annotations

import array
import copy
import math
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
from geometry_msgs.msg import PoseStamped, Twist, Vector3
from hypothesis import strategies as st
from nav_msgs.msg import Odometry
from sensor_msgs.msg import CameraInfo, CompressedImage, Image, PointCloud2
from std_msgs.msg import Header, Int64, String
from tf2_msgs.msg import TFMessage

from edge_robot_msgs.msg import DetectedObjects, PlannerStatus, PredictedObjects
from mixed_reality.stream import encode_jpeg
from perception.objects import Box3D, DetectedObject, ObjectClass, PredictedObject, PredictedPath, TrackedObject
from robot_nodes.conversions import (camera_info_from_intrinsics, detected_objects_to_msg, make_odometry,
                                     make_transform, numpy_to_image, predicted_objects_to_msg, se3_to_pose,
                                     seconds_to_stamp, xyzi_to_pointcloud2)
from robot_nodes.sim_messages import OPTICAL_IN_BODY_RPY

STAMP_S = 100.0
"""Simulated seconds of every valid message."""
HUGE_SEQUENCE = 300
"""Most elements a mutation puts in a sequence of messages ('huge': a scene has tens of objects; bounded
because the tracker's cost grows with the cube of the objects it holds)."""
HUGE_BYTES = 1 << 16
"""Most bytes a mutation appends to a uint8[] (declared sizes go to 10^9 with little data)."""
HUGE_STRING = 100_000

_INTEGER_RANGES = {
    "int8": (-2**7, 2**7 - 1), "uint8": (0, 2**8 - 1), "octet": (0, 2**8 - 1), "char": (0, 2**8 - 1),
    "int16": (-2**15, 2**15 - 1), "uint16": (0, 2**16 - 1), "int32": (-2**31, 2**31 - 1), "uint32": (0, 2**32 - 1),
    "int64": (-2**63, 2**63 - 1), "uint64": (0, 2**64 - 1),
}
_SPECIAL_INTEGERS = (0, 1, 2, 3, 7, 8, 9, 12, 16, 17, 255, 65535, 999_999_999, 1_000_000_000, 2**31 - 1, 2**32 - 1,
                     -1, -2**31, 2**63 - 1, -2**63)
"""Enum values past the end, sizes of 10^9, stamps' sec/nanosec limits; clipped to each type's range."""
_SPECIAL_FLOATS = (math.nan, math.inf, -math.inf, 1e300, -1e300, 3e38, -3e38, 1e-300, 0.0, -0.0, -1.0, 1e9)
_SPECIAL_STRINGS = ("", " ", "\x00", "odom ", "map", "base_link", "lidar", "camera_optical", "no_such_frame",
                    "rgb8 ", "RGB8", "jpeg", "png", "mono8", "32FC1", "bgr8", "rgba8", "ü\u202e", "a" * HUGE_STRING)


@dataclass(frozen=True)
class Leaf:
    """One mutable place in a message: the attribute/index path to it and the rosidl type there."""

    path: tuple
    kind: str


def _leaves(message: Any, path: tuple = ()) -> list[Leaf]:
    found = []
    for name, kind in message.get_fields_and_field_types().items():
        value, here = getattr(message, name), path + (name,)
        if kind.startswith("sequence<") and "/" in kind:
            found.append(Leaf(here, "messages"))
            for index, item in enumerate(value):
                found += _leaves(item, here + (index,))
        elif "/" in kind:
            found += _leaves(value, here)
        else:
            found.append(Leaf(here, kind))
    return found


def _parent(message: Any, path: tuple) -> Any:
    for step in path[:-1]:
        message = message[step] if isinstance(step, int) else getattr(message, step)
    return message


def _get(message: Any, path: tuple) -> Any:
    return getattr(_parent(message, path), path[-1])


def _set(message: Any, path: tuple, value: Any) -> None:
    setattr(_parent(message, path), path[-1], value)


def _element_kind(kind: str) -> tuple[str, int | None]:
    """('double', 9) for 'double[9]', ('uint8', None) for 'sequence<uint8>'."""
    if kind.startswith("sequence<"):
        return kind[len("sequence<"):-1].split(",")[0], None
    name, size = kind[:-1].split("[")
    return name, int(size)


def _floats(kind: str) -> st.SearchStrategy[float]:
    width = 32 if kind == "float" else 64
    return st.sampled_from(_SPECIAL_FLOATS).map(
        lambda value: max(-3.4e38, min(3.4e38, value)) if width == 32 and math.isfinite(value) else value
    ) | st.floats(width=width)


def _integers(kind: str) -> st.SearchStrategy[int]:
    low, high = _INTEGER_RANGES[kind]
    return st.sampled_from([value for value in _SPECIAL_INTEGERS if low <= value <= high] + [low, high]) | \
        st.integers(low, high)


def _scalar(kind: str) -> st.SearchStrategy:
    if kind in ("float", "double"):
        return _floats(kind)
    if kind == "boolean":
        return st.booleans()
    if kind == "string":
        return st.sampled_from(_SPECIAL_STRINGS) | st.text(max_size=20)
    return _integers(kind)


Mutation = Callable[[Any], None]


def _leaf_mutations(leaf: Leaf) -> st.SearchStrategy[Mutation]:
    """Mutations of one place of the message."""
    path, kind = leaf.path, leaf.kind
    if kind == "messages":
        def resize(message, length):
            items = list(_get(message, path))
            _set(message, path, [copy.deepcopy(items[index % len(items)]) for index in range(length)] if items else [])
        return st.sampled_from([0, 1, 2, 50, HUGE_SEQUENCE]).map(lambda length: lambda m: resize(m, length))
    if kind.endswith("]") or kind.startswith("sequence<"):
        element, size = _element_kind(kind)
        numbers = _scalar(element)

        def replace_one(message, index, value):
            values = list(_get(message, path))
            if values:
                values[index % len(values)] = value
                _set(message, path, values)
        changes = st.builds(lambda index, value: lambda m: replace_one(m, index, value),
                            st.integers(0, 1 << 20), numbers)
        if size is not None:  # fixed size: only its values can change
            return changes

        def cut(message, keep):
            _set(message, path, list(_get(message, path))[:keep])

        def pad(message, extra):
            values = _get(message, path)
            if element in ("uint8", "octet", "char"):
                _set(message, path, array.array("B", bytes(values)) + array.array("B", extra))
            else:
                _set(message, path, list(values) + [0] * len(extra))
        return changes | st.builds(lambda keep: lambda m: cut(m, keep), st.integers(0, 64)) | \
            st.builds(lambda extra: lambda m: pad(m, extra),
                      st.sampled_from([b"\x00", b"\xff" * 3, b"\x00" * HUGE_BYTES]) | st.binary(min_size=1, max_size=64))
    return _scalar(kind).map(lambda value: lambda m: _set(m, path, value))


def _compressed_mutations() -> st.SearchStrategy[Mutation]:
    """CompressedImage data: truncated, bytes flipped, or replaced by other bytes."""
    def cut(message, keep):
        message.data = bytes(message.data)[:keep]

    def flip(message, index, value):
        data = bytearray(message.data)
        if data:
            data[index % len(data)] ^= value
            message.data = bytes(data)

    def replace(message, data):
        message.data = data
    return (st.builds(lambda keep: lambda m: cut(m, keep), st.integers(0, 4096))
            | st.builds(lambda index, value: lambda m: flip(m, index, value), st.integers(0, 1 << 20),
                        st.integers(1, 255))
            | st.builds(lambda data: lambda m: replace(m, data),
                        st.sampled_from([b"", b"\xff\xd8", b"\xff\xd8\xff\xe0" + b"\x00" * 100,
                                         b"\x89PNG\r\n\x1a\n", b"\x00" * 100_000]) | st.binary(max_size=256)))


def malformed(valid: Any) -> st.SearchStrategy[Any]:
    """Copies of `valid` with one to three mutations anywhere in it."""
    mutations = st.one_of([_leaf_mutations(leaf) for leaf in _leaves(valid)])
    if isinstance(valid, CompressedImage):
        mutations = mutations | _compressed_mutations()

    def apply(changes: list[Mutation]) -> Any:
        message = copy.deepcopy(valid)
        for change in changes:
            try:
                change(message)
            except (AssertionError, IndexError, TypeError, ValueError, OverflowError):
                pass  # the message type refuses the value itself (range, size): it cannot be sent
        return message
    return st.lists(mutations, min_size=1, max_size=3).map(apply)


# --- valid messages per type ---------------------------------------------------------------------

def header(frame_id: str, seconds: float = STAMP_S) -> Header:
    return Header(stamp=seconds_to_stamp(seconds), frame_id=frame_id)


def cloud(seconds: float = STAMP_S) -> PointCloud2:
    """A small scan in front of the lidar (a few points on a car-sized box)."""
    rng = np.random.default_rng(0)
    points = np.column_stack([rng.uniform(8, 12, 64), rng.uniform(-1, 1, 64), rng.uniform(-1.5, 0, 64),
                              rng.uniform(0, 1, 64)]).astype(np.float32)
    return xyzi_to_pointcloud2(points, header("lidar", seconds))


CAR = Box3D((12.0, -5.25, 0.8), (4.5, 1.9, 1.6), 0.0)


def detections(seconds: float = STAMP_S) -> DetectedObjects:
    return detected_objects_to_msg([DetectedObject(ObjectClass.CAR, 0.9, Box3D((12.0, 0.0, 0.8), (4.5, 1.9, 1.6), 0.0),
                                                   120)], header("lidar", seconds))


def predictions(seconds: float = STAMP_S) -> PredictedObjects:
    track = TrackedObject(3, ObjectClass.CAR, 0.9, CAR, np.array([2.0, 0.0]))
    times = 0.5 * np.arange(1, 7)
    path = PredictedPath(np.column_stack([CAR.center[0] + 2.0 * times, np.full(6, CAR.center[1])]), np.zeros(6), 0.5, 1.0)
    return predicted_objects_to_msg([PredictedObject(track, [path])], header("odom", seconds))


def odometry(seconds: float = STAMP_S) -> Odometry:
    return make_odometry(seconds_to_stamp(seconds), "odom", "base_link", 50.0, -5.25, 0.0, 6.0, 0.0)


def mount() -> TFMessage:
    """base_link → lidar and base_link → camera → camera_optical, as the simulated world's."""
    return TFMessage(transforms=[
        make_transform(seconds_to_stamp(0.0), "base_link", "lidar", (0.0, 0.0, 1.8), yaw=0.0),
        make_transform(seconds_to_stamp(0.0), "base_link", "camera", (1.5, 0.0, 1.5), yaw=0.0),
        make_transform(seconds_to_stamp(0.0), "camera", "camera_optical", (0.0, 0.0, 0.0), rpy=OPTICAL_IN_BODY_RPY)])


CAMERA_SIZE = (160, 120)
"""Width, height of the valid camera images (a whole multiple of the stream's)."""


def camera_info(seconds: float = STAMP_S, scale: int = 1) -> CameraInfo:
    width, height = CAMERA_SIZE[0] // scale, CAMERA_SIZE[1] // scale
    K = np.array([[100.0 / scale, 0.0, width / 2.0], [0.0, 100.0 / scale, height / 2.0], [0.0, 0.0, 1.0]])
    return camera_info_from_intrinsics(K, width, height, header("camera_optical", seconds))


def image(seconds: float = STAMP_S) -> Image:
    rgb = np.zeros((CAMERA_SIZE[1], CAMERA_SIZE[0], 3), dtype=np.uint8)
    rgb[:, :, 0] = np.arange(CAMERA_SIZE[0], dtype=np.uint8)
    return numpy_to_image(rgb, "rgb8", header("camera_optical", seconds))


def upload(seconds: float = STAMP_S) -> CompressedImage:
    """A stream frame (half the camera's size) as the uplink sends it."""
    rgb = np.full((CAMERA_SIZE[1] // 2, CAMERA_SIZE[0] // 2, 3), 90, dtype=np.uint8)
    return CompressedImage(header=header("camera_optical", seconds), format="jpeg", data=encode_jpeg(rgb, 90))


def pose(seconds: float = STAMP_S) -> PoseStamped:
    return PoseStamped(header=header("odom", seconds), pose=se3_to_pose(np.eye(4)))


def planner_status(seconds: float = STAMP_S) -> PlannerStatus:
    return PlannerStatus(header=header("odom", seconds), target_id=3, occlusion_ratio_now=0.25, linear_velocity=1.5)


@dataclass(frozen=True)
class InputTopic:
    node: str
    """Node name (graph.py spec)."""
    topic: str
    """Private input topic."""
    valid: Callable[..., Any]
    """A valid message of the topic's type (optionally at a given stamp in s)."""
    every_value_valid: bool = False
    """Every message of the type is valid input (a target id: negative means the automatic choice)."""

    @property
    def message_type(self) -> str:
        message = self.valid()
        return f"{type(message).__module__.split('.')[0]}/{type(message).__name__}"

    @property
    def name(self) -> str:
        return f"{self.node}:{self.topic}"


INPUT_TOPICS = [
    InputTopic("sim_world", "~/input/cmd_vel", lambda seconds=STAMP_S: Twist(linear=Vector3(x=1.5), angular=Vector3(z=0.1))),
    InputTopic("lane_keeping_controller", "~/input/odom", odometry),
    InputTopic("lidar_detector", "~/input/pointcloud", cloud),
    InputTopic("trajectory_predictor", "~/input/objects", detections),
    InputTopic("trajectory_predictor", "~/input/odometry", odometry),
    InputTopic("trajectory_predictor", "~/input/tf_static", lambda seconds=STAMP_S: mount()),
    InputTopic("croa_planner", "~/input/predicted_objects", predictions),
    InputTopic("croa_planner", "~/input/odometry", odometry),
    InputTopic("croa_planner", "~/input/target_id", lambda seconds=STAMP_S: Int64(data=3),
               every_value_valid=True),
    InputTopic("gsrmr_uplink", "~/input/image", image),
    InputTopic("gsrmr_uplink", "~/input/camera_info", camera_info),
    InputTopic("gsrmr_uplink", "~/input/odometry", odometry),
    InputTopic("gsrmr_uplink", "~/input/tf_static", lambda seconds=STAMP_S: mount()),
    InputTopic("mr_server", "~/input/camera_info", lambda seconds=STAMP_S: camera_info(seconds, scale=2)),
    InputTopic("mr_server", "~/input/uplink", upload),
    InputTopic("mr_server", "~/input/pose", pose),
    InputTopic("mr_server", "~/input/true_image", image),
    InputTopic("onboard_llm", "~/input/question", lambda seconds=STAMP_S: String(data="What is ahead?")),
    InputTopic("onboard_llm", "~/input/detected_objects", detections),
    InputTopic("onboard_llm", "~/input/predicted_objects", predictions),
    InputTopic("onboard_llm", "~/input/planner_status", planner_status),
]
"""Every input topic of every node (bag_player has none; bag_recorder stores raw bytes it never
decodes; sim_world's lockstep acknowledgements are read for their stamp only)."""
