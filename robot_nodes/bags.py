"""rosbag2 bags (mcap or sqlite3) written and read without a ROS distro.

`BagWriter` and `BagReader` wrap `rosbags.rosbag2` so the bags open with `ros2 bag info/play`
on a ROS machine: every connection carries its message definition and RIHS01 hash, taken from a
rosbags typestore extended with our own interfaces (interfaces/*/msg) and with any installed
type the typestore lacks. Messages stay the CDR bytes rclpy puts on the wire.

`BagReader` never lets a raw rosbags error or a silently skipped record through: a missing or
inconsistent metadata.yaml, an unreadable storage file, a record cut short, a payload that is not
a valid message of its type, or a per-topic message count that disagrees with the metadata all
raise `BagError`, which names the bag, the place (file, topic, message index) and the problem.
"""
from __future__ import annotations

import functools
import importlib
import os
import sys
import threading
from collections import Counter
from pathlib import Path
from types import TracebackType
from typing import Any, Iterator, NamedTuple, Sequence

from rclpy.duration import Duration
from rclpy.qos import (DurabilityPolicy, HistoryPolicy, LivelinessPolicy, QoSProfile, ReliabilityPolicy,
                       qos_profile_sensor_data)
from rclpy.serialization import deserialize_message, serialize_message
from rosbags.interfaces import Connection, Qos, QosDurability, QosHistory, QosLiveliness, QosReliability, QosTime
from rosbags.rosbag2 import Reader, StoragePlugin, Writer
from rosbags.typesys import Stores, get_types_from_msg, get_typestore
from rosbags.typesys.base import Nodetype
from rosbags.typesys.store import Typestore
from ruamel.yaml import YAML

from robot_nodes.topics import LIDAR_POINTS, TF_STATIC

STORAGES = {"mcap": StoragePlugin.MCAP, "sqlite3": StoragePlugin.SQLITE3}
# rclpy 9 ships the Kilted interfaces; this store's RIHS01 hashes match the installed ones.
TYPESTORE_BASE = Stores.ROS2_KILTED
INTERFACES_DIR = Path(__file__).resolve().parents[1] / "interfaces"
SENSOR_DATA_TOPICS = frozenset({LIDAR_POINTS})
LATCHED_TOPICS = frozenset({TF_STATIC})
# The usual rclpy depth; also what rosbag2 play uses where the bag recorded none.
DEFAULT_QOS_DEPTH = 10
NANOSECONDS_PER_SECOND = 1_000_000_000


class BagError(Exception):
    """A bag that cannot be written or read as it is; says which bag, where and what is wrong."""

    def __init__(self, path: str | os.PathLike, where: str, problem: str) -> None:
        self.path = Path(path)
        self.where = where
        self.problem = problem
        super().__init__(f"bag {self.path}: {where}: {problem}")


class BagTopic(NamedTuple):
    """One topic of a bag as its metadata describes it."""

    msgtype: str
    count: int
    qos_profile: QoSProfile | None
    """QoS to replay with, adapted from the recorded offers; None when the bag recorded none."""


def _describe(error: BaseException) -> str:
    """An exception as one readable phrase; some rosbags errors carry no text."""
    return f"{type(error).__name__}: {error}" if str(error) else type(error).__name__


# --- message types -------------------------------------------------------------------------------

@functools.cache
def message_class(msgtype: str) -> type:
    """The rclpy message class of a 'pkg/msg/Name' type; ValueError when it is not installed."""
    package, kind, name = _split_msgtype(msgtype)
    try:
        return getattr(importlib.import_module(f"{package}.{kind}"), name)
    except (ImportError, AttributeError):
        raise ValueError(f"message type {msgtype!r} is not installed in this Python environment") from None


def message_type_name(msg: Any) -> str:
    """'pkg/msg/Name' of an rclpy message instance."""
    cls = type(msg)
    package, kind = cls.__module__.split(".")[:2]
    return f"{package}/{kind}/{cls.__name__}"


def _split_msgtype(msgtype: str) -> tuple[str, str, str]:
    parts = msgtype.split("/")
    if len(parts) != 3 or not all(parts) or parts[1] != "msg":
        raise ValueError(f"message type {msgtype!r} is not of the form 'pkg/msg/Name'")
    return parts[0], parts[1], parts[2]


def _msg_search_dirs() -> list[Path]:
    """Where .msg files live: our interfaces first, then every install prefix's share/."""
    prefixes = [Path(p) for p in os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep) if p]
    return list(dict.fromkeys([INTERFACES_DIR, *(prefix / "share" for prefix in [*prefixes, Path(sys.prefix)])]))


def _read_msg_definition(msgtype: str) -> str | None:
    package, kind, name = _split_msgtype(msgtype)
    for directory in _msg_search_dirs():
        candidate = directory / package / kind / f"{name}.msg"
        if candidate.is_file():
            return candidate.read_text()
    return None


_typestore_lock = threading.Lock()


@functools.cache
def typestore() -> Typestore:
    """The rosbags typestore with our own interfaces registered from interfaces/*/msg."""
    store = get_typestore(TYPESTORE_BASE)
    own_types = {}
    for path in sorted(INTERFACES_DIR.glob("*/msg/*.msg")):
        own_types.update(get_types_from_msg(path.read_text(), f"{path.parent.parent.name}/msg/{path.stem}"))
    store.register(own_types)
    return store


def _register_missing(store: Typestore, msgtype: str) -> None:
    """Register msgtype and its dependencies from installed .msg files where the store lacks them."""
    pending, found = [msgtype], {}
    while pending:
        name = pending.pop()
        if name in store.fielddefs or name in found:
            continue
        text = _read_msg_definition(name)
        if text is None:
            raise ValueError(f"no message definition for {name!r}: not in the rosbags typestore, "
                             f"no {name}.msg under {', '.join(map(str, _msg_search_dirs()))}")
        parsed = get_types_from_msg(text, name)
        found.update(parsed)
        for _, fields in parsed.values():
            pending.extend(_nested_type_names(fields))
    if found:
        store.register(found)


def _nested_type_names(fields: list) -> Iterator[str]:
    """Type names a parsed field list refers to (rosbags parse tree: NAME nodes, possibly in arrays)."""
    for _, (node_type, detail) in fields:
        if node_type == Nodetype.NAME:
            yield detail
        elif node_type in (Nodetype.ARRAY, Nodetype.SEQUENCE) and detail[0][0] == Nodetype.NAME:
            yield detail[0][1]


def message_definition(msgtype: str) -> tuple[str, str]:
    """(ros2msg definition text with dependencies, RIHS01 hash) as rosbag2 stores them."""
    with _typestore_lock:
        store = typestore()
        _register_missing(store, msgtype)
        definition, _ = store.generate_msgdef(msgtype, ros_version=2)
        return definition, store.hash_rihs01(msgtype)


# --- QoS -----------------------------------------------------------------------------------------

def default_offered_qos(topic: str) -> QoSProfile:
    """The QoS our publishers offer on a topic, recorded when the writer is given none."""
    if topic in SENSOR_DATA_TOPICS:
        return qos_profile_sensor_data
    if topic in LATCHED_TOPICS:
        return QoSProfile(depth=1, durability=DurabilityPolicy.TRANSIENT_LOCAL)
    return QoSProfile(depth=DEFAULT_QOS_DEPTH)


def _bag_time(duration: Duration) -> QosTime:
    seconds, nanoseconds = divmod(duration.nanoseconds, NANOSECONDS_PER_SECOND)
    return QosTime(seconds, nanoseconds)


def _ros_duration(time: QosTime) -> Duration:
    return Duration(nanoseconds=time.sec * NANOSECONDS_PER_SECOND + time.nsec)


def to_bag_qos(profile: QoSProfile) -> Qos:
    """An rclpy QoS profile in rosbags' form (both use the rmw enum numbers)."""
    return Qos(
        QosHistory(profile.history.value), profile.depth, QosReliability(profile.reliability.value),
        QosDurability(profile.durability.value), _bag_time(profile.deadline), _bag_time(profile.lifespan),
        QosLiveliness(profile.liveliness.value), _bag_time(profile.liveliness_lease_duration),
        profile.avoid_ros_namespace_conventions)


def from_bag_qos(offer: Qos) -> QoSProfile:
    """A QoS profile recorded in a bag, as rclpy's."""
    return QoSProfile(
        history=HistoryPolicy(offer.history.value), depth=offer.depth,
        reliability=ReliabilityPolicy(offer.reliability.value), durability=DurabilityPolicy(offer.durability.value),
        deadline=_ros_duration(offer.deadline), lifespan=_ros_duration(offer.lifespan),
        liveliness=LivelinessPolicy(offer.liveliness.value),
        liveliness_lease_duration=_ros_duration(offer.liveliness_lease_duration),
        avoid_ros_namespace_conventions=offer.avoid_ros_namespace_conventions)


def adapted_qos(offers: Sequence[QoSProfile], depth: int) -> QoSProfile:
    """The QoS that matches every offered profile, the way rosbag2 record and play adapt theirs.

    Reliable and transient local only when every publisher offers them, so the endpoint matches
    all of them (a reliable subscriber never matches a best-effort publisher).
    """
    reliable = all(offer.reliability == ReliabilityPolicy.RELIABLE for offer in offers)
    latched = all(offer.durability == DurabilityPolicy.TRANSIENT_LOCAL for offer in offers)
    return QoSProfile(
        history=HistoryPolicy.KEEP_LAST, depth=depth,
        reliability=ReliabilityPolicy.RELIABLE if reliable else ReliabilityPolicy.BEST_EFFORT,
        durability=DurabilityPolicy.TRANSIENT_LOCAL if latched else DurabilityPolicy.VOLATILE)


# --- writing -------------------------------------------------------------------------------------

class BagWriter:
    """A new rosbag2 bag (metadata version 9), open from construction until `close()`.

    Use as a context manager; the bag is closed (and valid) on leaving the block even when the
    block raised, so whatever was written up to the error is kept. Use it from one thread: the
    sqlite3 storage even refuses any thread but the one that created it.
    """

    def __init__(self, path: str | os.PathLike, storage: str = "mcap") -> None:
        self.path = Path(path)
        if storage not in STORAGES:
            raise ValueError(f"storage must be one of {sorted(STORAGES)}, got {storage!r}")
        if self.path.exists():
            raise BagError(self.path, "bag directory", "exists already; a bag is never overwritten")
        self._writer = Writer(self.path, version=Writer.VERSION_LATEST, storage_plugin=STORAGES[storage])
        try:
            self._writer.open()
        except Exception as error:  # rosbags raises WriterError, OSError or sqlite3 errors here
            raise BagError(self.path, "bag directory", f"cannot create: {_describe(error)}") from None
        self._connections: dict[str, Connection] = {}
        self._msgtypes: dict[str, str] = {}
        self._closed = False

    def add_topic(self, topic: str, msgtype: str,
                  qos_profile: QoSProfile | Sequence[QoSProfile] | None = None) -> None:
        """Add a topic of type 'pkg/msg/Name'.

        qos_profile: the offered profile, or every publisher's offer as rosbag2 record stores them;
        None records `default_offered_qos(topic)`. Raises ValueError for a second add of the topic
        or a type without a definition.
        """
        if topic in self._connections:
            raise ValueError(f"topic {topic} was already added to {self.path}")
        if qos_profile is None:
            qos_profile = default_offered_qos(topic)
        profiles = [qos_profile] if isinstance(qos_profile, QoSProfile) else list(qos_profile)
        definition, type_hash = message_definition(msgtype)
        self._connections[topic] = self._writer.add_connection(
            topic, msgtype, msgdef=definition, rihs01=type_hash,
            offered_qos_profiles=[to_bag_qos(profile) for profile in profiles])
        self._msgtypes[topic] = msgtype

    def write(self, topic: str, timestamp_ns: int, data: bytes | memoryview) -> None:
        """Write one already-serialised (CDR) message, as received or published."""
        if self._closed:
            raise ValueError(f"{self.path} is closed")
        if topic not in self._connections:
            raise ValueError(f"topic {topic} was not added to {self.path}; call add_topic first")
        if timestamp_ns < 0:
            raise ValueError(f"timestamp must be >= 0 ns, got {timestamp_ns}")
        self._writer.write(self._connections[topic], timestamp_ns, data)

    def write_message(self, topic: str, timestamp_ns: int, msg: Any) -> None:
        """Serialise an rclpy message exactly as rclpy puts it on the wire and write it."""
        msgtype = message_type_name(msg)
        if self._msgtypes.get(topic, msgtype) != msgtype:
            raise ValueError(f"topic {topic} carries {self._msgtypes[topic]}, not {msgtype}")
        self.write(topic, timestamp_ns, serialize_message(msg))

    def close(self) -> None:
        """Write the index and metadata.yaml; closing twice is harmless."""
        if self._closed:
            return
        self._closed = True
        try:
            self._writer.close()
        except Exception as error:  # rosbags raises OSError or storage errors when finishing
            raise BagError(self.path, "closing", _describe(error)) from None

    def __enter__(self) -> BagWriter:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.close()


# --- reading -------------------------------------------------------------------------------------

class BagReader:
    """An existing rosbag2 bag, checked on opening: metadata.yaml against each storage file.

    Use as a context manager or call `close()`. `messages()` may be called again (for looping).
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self._storage_names, storage_topics = self._check_files()
        try:
            self._reader = Reader(self.path)
            self._reader.open()
        except Exception as error:  # storage files opened fine alone, so the metadata is at fault
            raise BagError(self.path, "metadata.yaml", _describe(error)) from None
        try:
            self._topics = self._read_topics()
            self._check_against_storage(storage_topics)
        except BaseException:
            self._reader.close()
            raise
        self._closed = False

    def _check_files(self) -> tuple[str, dict[str, tuple[str, int]]]:
        """Storage file names, and topic → (type, message count) as the storage files hold them."""
        if not self.path.is_dir():
            raise BagError(self.path, "bag directory", "does not exist" if not self.path.exists()
                           else "is a file; a rosbag2 bag is a directory with metadata.yaml")
        metadata_path = self.path / "metadata.yaml"
        if not metadata_path.is_file():
            raise BagError(self.path, "metadata.yaml", "missing")
        try:
            information = YAML(typ="safe").load(metadata_path.read_text())["rosbag2_bagfile_information"]
            names = [Path(name).name for name in information["relative_file_paths"]]
        except Exception as error:  # YAML, key and type errors all mean an unusable metadata file
            raise BagError(self.path, "metadata.yaml", f"not rosbag2 metadata: {_describe(error)}") from None
        if not names:
            raise BagError(self.path, "metadata.yaml", "lists no storage files")
        storage_topics: dict[str, tuple[str, int]] = {}
        for name in names:
            storage_path = self.path / name
            if not storage_path.is_file():
                raise BagError(self.path, name, "storage file listed in metadata.yaml is missing")
            try:
                with Reader(storage_path) as storage:
                    for connection in storage.connections:
                        _, count = storage_topics.get(connection.topic, (connection.msgtype, 0))
                        storage_topics[connection.topic] = (connection.msgtype, count + connection.msgcount)
            except Exception as error:  # rosbags raises many unrelated types on a corrupt file
                raise BagError(self.path, name, f"unreadable storage file: {_describe(error)}") from None
        return ", ".join(names), storage_topics

    def _read_topics(self) -> dict[str, BagTopic]:
        topics = {}
        for name, info in self._reader.topics.items():
            if info.msgtype is None:
                raise BagError(self.path, f"metadata.yaml, topic {name}", "lists several message types")
            offers = [from_bag_qos(offer) for connection in info.connections
                      for offer in connection.ext.offered_qos_profiles]
            # Offers recorded from the graph carry no depth (0); rosbag2 play then uses its default.
            depth = max((offer.depth for offer in offers), default=0) or DEFAULT_QOS_DEPTH
            topics[name] = BagTopic(info.msgtype, info.msgcount, adapted_qos(offers, depth) if offers else None)
        return topics

    def _check_against_storage(self, storage_topics: dict[str, tuple[str, int]]) -> None:
        where = f"metadata.yaml vs {self._storage_names}"
        for name in sorted(set(self._topics) | set(storage_topics)):
            if name not in self._topics:
                raise BagError(self.path, f"{where}, topic {name}", "in the storage but not in the metadata")
            if name not in storage_topics:
                raise BagError(self.path, f"{where}, topic {name}", "in the metadata but not in the storage")
            (stored_type, stored_count), listed = storage_topics[name], self._topics[name]
            if stored_type != listed.msgtype:
                raise BagError(self.path, f"{where}, topic {name}",
                               f"metadata says {listed.msgtype}, the storage holds {stored_type}")
            if stored_count != listed.count:
                raise BagError(self.path, f"{where}, topic {name}",
                               f"metadata lists {listed.count} messages, the storage holds {stored_count}")
        stored_total = sum(count for _, count in storage_topics.values())
        if self._reader.message_count != stored_total:
            raise BagError(self.path, where, f"metadata lists {self._reader.message_count} messages in total, "
                                             f"the storage holds {stored_total}")

    def topics(self) -> dict[str, BagTopic]:
        """Topic name → type, message count and replay QoS."""
        return dict(self._topics)

    @property
    def message_count(self) -> int:
        """Messages in the bag, all topics."""
        return self._reader.message_count

    @property
    def start_ns(self) -> int:
        """Stamp of the first message (0 for an empty bag)."""
        return self._reader.start_time if self.message_count else 0

    @property
    def end_ns(self) -> int:
        """Stamp of the last message (0 for an empty bag)."""
        return self._reader.end_time - 1 if self.message_count else 0

    @property
    def duration(self) -> float:
        """Seconds from the first message to the last."""
        return (self.end_ns - self.start_ns) / NANOSECONDS_PER_SECOND

    def messages(self, topics: Sequence[str] | None = None,
                 start_offset_s: float = 0.0) -> Iterator[tuple[str, str, int, bytes]]:
        """(topic, msgtype, timestamp_ns, CDR bytes) in time order, every payload checked.

        topics: only these (None or empty: all). start_offset_s: skip messages earlier than
        start_ns + offset. A full read (no offset) must find exactly the metadata's count per topic.
        """
        selected = set(topics or self._topics)
        if unknown := selected - set(self._topics):
            raise BagError(self.path, "topic selection",
                           f"{sorted(unknown)} not in the bag; it has {sorted(self._topics)}")
        if start_offset_s < 0:
            raise ValueError(f"start offset must be >= 0 s, got {start_offset_s}")
        classes = {}
        for name in selected:
            try:
                classes[name] = message_class(self._topics[name].msgtype)
            except ValueError as error:
                raise BagError(self.path, f"topic {name}", f"{error}; cannot check or decode it") from None
        connections = [connection for connection in self._reader.connections if connection.topic in selected]
        start = self.start_ns + round(start_offset_s * NANOSECONDS_PER_SECOND)
        records = self._reader.messages(connections, start=start if start_offset_s else None)
        counts: Counter = Counter()
        index = 0
        while True:
            try:
                connection, timestamp, data = next(records)
            except StopIteration:
                break
            except Exception as error:  # rosbags raises many unrelated types on a corrupt record
                raise BagError(self.path, f"{self._storage_names}, message {index} (time order)",
                               f"unreadable record: {_describe(error)}") from None
            data = bytes(data)
            try:
                deserialize_message(data, classes[connection.topic])
            except Exception as error:  # rclpy raises RMWError and others for a malformed payload
                raise BagError(
                    self.path, f"{self._storage_names}, message {index} (time order) on "
                    f"{connection.topic} at {timestamp} ns",
                    f"not a valid {connection.msgtype} ({len(data)} bytes): {_describe(error)}") from None
            counts[connection.topic] += 1
            index += 1
            yield connection.topic, connection.msgtype, timestamp, data
        if not start_offset_s:
            for name in sorted(selected):
                if counts[name] != self._topics[name].count:
                    raise BagError(self.path, f"{self._storage_names}, topic {name}",
                                   f"metadata lists {self._topics[name].count} messages, "
                                   f"{counts[name]} were read")

    def deserialize(self, raw: bytes, msgtype: str) -> Any:
        """The rclpy message decoded from CDR bytes of this bag."""
        try:
            return deserialize_message(raw, message_class(msgtype))
        except Exception as error:  # rclpy raises RMWError and others for a malformed payload
            raise BagError(self.path, msgtype, f"cannot decode {len(raw)} bytes: {_describe(error)}") from None

    def close(self) -> None:
        """Close the storage files; closing twice is harmless."""
        if not self._closed:
            self._closed = True
            self._reader.close()

    def __enter__(self) -> BagReader:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.close()
