"""rosbag2 record and replay: BagWriter/BagReader, bag_player and bag_recorder with real rclpy.

Every test that talks over ROS gets its own rclpy.Context (the `context` fixture in conftest.py).
"""
from __future__ import annotations

import random
import sqlite3
import threading
import time
from pathlib import Path

import pytest
from builtin_interfaces.msg import Time
from edge_robot_msgs.msg import DetectedObject, DetectedObjects, ObjectClassification
from geometry_msgs.msg import TransformStamped
from nav_msgs.msg import Odometry
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from rclpy.serialization import deserialize_message, serialize_message
from rosbags.highlevel import AnyReader
from rosbags.typesys import Stores, get_typestore
from rosgraph_msgs.msg import Clock
from ruamel.yaml import YAML
from sensor_msgs.msg import PointCloud2, PointField
from std_msgs.msg import Header
from tf2_msgs.msg import TFMessage

from robot_nodes import bag_player, bag_recorder
from robot_nodes.bag_player import BagPlayerNode
from robot_nodes.bag_recorder import BagRecorderNode
from robot_nodes.bags import BagError, BagReader, BagWriter, _register_missing, message_class, message_definition
from robot_nodes.parameters import ParameterError
from robot_nodes.runner import StartupError
from ros_domains import random_domain
from ros_helpers import TIMEOUT_S, spinning, wait_until

BAG_START_NS = 1_700_000_000_000_000_000
RELIABLE_DEEP = QoSProfile(depth=1000)


# --- helpers ---------------------------------------------------------------------------------------

class Probe(Node):
    """Raw subscriptions that keep (topic, bytes, arrival time) in arrival order."""

    def __init__(self, context, topics: dict[str, str]) -> None:
        super().__init__("probe", context=context)
        self.received: list[tuple[str, bytes, float]] = []
        self._lock = threading.Lock()
        for topic, msgtype in topics.items():
            self.create_subscription(message_class(msgtype), topic,
                                     lambda data, topic=topic: self._keep(topic, data), RELIABLE_DEEP, raw=True)

    def _keep(self, topic: str, data: bytes) -> None:
        with self._lock:
            self.received.append((topic, data, time.monotonic()))

    def on(self, topic: str) -> list[bytes]:
        with self._lock:
            return [data for name, data, _ in self.received if name == topic]

    def count(self) -> int:
        with self._lock:
            return len(self.received)


def detected_objects(index: int) -> DetectedObjects:
    message = DetectedObjects(objects=[DetectedObject(
        classification=[ObjectClassification(label=ObjectClassification.CAR, probability=0.75)],
        existence_probability=0.5 + index / 64, num_points=index)])  # float32-exact values
    message.header.stamp.sec, message.header.stamp.nanosec = 100 + index, 7
    message.header.frame_id = "base_link"
    return message


def static_transforms() -> TFMessage:
    transform = TransformStamped(child_frame_id="lidar")
    transform.header.frame_id = "base_link"
    transform.transform.translation.z = 1.8
    transform.transform.rotation.w = 1.0
    return TFMessage(transforms=[transform])


def moving_transform(index: int) -> TFMessage:
    transform = TransformStamped(child_frame_id="base_link")
    transform.header.frame_id = "map"
    transform.header.stamp.sec, transform.header.stamp.nanosec = 1000 + index, 500
    transform.transform.translation.x = float(index)
    return TFMessage(transforms=[transform])


def odometry(index: int) -> Odometry:
    message = Odometry(child_frame_id="base_link")
    message.header.stamp.sec, message.header.stamp.nanosec = 1000 + index, 250
    message.twist.twist.linear.x = 2.0
    return message


def small_cloud(index: int) -> PointCloud2:
    cloud = PointCloud2(height=1, width=2, point_step=16, row_step=32, is_dense=True,
                        fields=[PointField(name=name, offset=4 * i, datatype=PointField.FLOAT32, count=1)
                                for i, name in enumerate("xyzi")])
    cloud.data = bytes(range(32))
    cloud.header.stamp.sec = 100 + index
    return cloud


def write_sample_bag(path: Path, storage: str) -> list[tuple[str, str, int, bytes]]:
    """A bag with our own type, TF, and a lidar topic; returns what was written, in time order.

    Each payload is serialised once: rclpy leaves CDR padding bytes unset, so serialising the same
    message twice need not give the same bytes.
    """
    written = [("/tf_static", "tf2_msgs/msg/TFMessage", BAG_START_NS, serialize_message(static_transforms()))]
    for index in range(5):
        stamp = BAG_START_NS + (index + 1) * 100_000_000
        written += [("/perception/objects", "edge_robot_msgs/msg/DetectedObjects", stamp,
                     serialize_message(detected_objects(index))),
                    ("/sensing/lidar/points", "sensor_msgs/msg/PointCloud2", stamp + 1,
                     serialize_message(small_cloud(index)))]
    with BagWriter(path, storage) as writer:
        for topic, msgtype in {topic: msgtype for topic, msgtype, _, _ in written}.items():
            writer.add_topic(topic, msgtype)
        for topic, _, stamp, payload in written:
            writer.write(topic, stamp, payload)
    return written


def write_timed_bag(path: Path, offsets_s: list[float]) -> list[bytes]:
    """One reliable topic /timing with a message at each offset; returns the payloads in order."""
    payloads = []
    with BagWriter(path) as writer:
        writer.add_topic("/timing", "std_msgs/msg/Header")
        for index, offset in enumerate(offsets_s):
            header = Header(frame_id=f"message {index}")
            payloads.append(serialize_message(header))
            writer.write("/timing", BAG_START_NS + round(offset * 1e9), payloads[-1])
    return payloads


def player(context, bag: Path, **parameters) -> BagPlayerNode:
    overrides = [Parameter("bag", value=str(bag)), Parameter("wait_for_subscribers_s", value=5.0)]
    overrides += [Parameter(name, value=value) for name, value in parameters.items()]
    return BagPlayerNode(context=context, parameter_overrides=overrides)


# --- writing and reading ---------------------------------------------------------------------------

@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_round_trip_keeps_types_stamps_and_bytes(tmp_path, storage):
    bag = tmp_path / "bag"
    written = write_sample_bag(bag, storage)

    with BagReader(bag) as reader:
        topics = reader.topics()
        assert {name: (info.msgtype, info.count) for name, info in topics.items()} == {
            "/perception/objects": ("edge_robot_msgs/msg/DetectedObjects", 5),
            "/tf_static": ("tf2_msgs/msg/TFMessage", 1),
            "/sensing/lidar/points": ("sensor_msgs/msg/PointCloud2", 5)}
        assert topics["/tf_static"].qos_profile.durability == DurabilityPolicy.TRANSIENT_LOCAL
        assert topics["/sensing/lidar/points"].qos_profile.reliability == ReliabilityPolicy.BEST_EFFORT
        assert topics["/perception/objects"].qos_profile.reliability == ReliabilityPolicy.RELIABLE
        assert (reader.start_ns, reader.end_ns) == (written[0][2], written[-1][2])
        assert reader.duration == pytest.approx((written[-1][2] - written[0][2]) / 1e9)
        read = list(reader.messages())
        assert read == written
        assert reader.deserialize(read[1][3], read[1][1]) == detected_objects(0)
        assert reader.deserialize(read[0][3], read[0][1]) == static_transforms()
        assert [stamp for _, _, stamp, _ in reader.messages(["/perception/objects"], start_offset_s=0.25)] == [
            BAG_START_NS + 300_000_000, BAG_START_NS + 400_000_000, BAG_START_NS + 500_000_000]

    # The bag describes its own types: rosbags decodes it from the embedded definitions alone.
    with AnyReader([bag]) as any_reader:
        assert all(connection.msgdef.data for connection in any_reader.connections)
        objects = [any_reader.deserialize(raw, connection.msgtype)
                   for connection, _, raw in any_reader.messages()
                   if connection.topic == "/perception/objects"]
        transforms = next(any_reader.deserialize(raw, connection.msgtype)
                          for connection, _, raw in any_reader.messages() if connection.topic == "/tf_static")
    assert [message.objects[0].num_points for message in objects] == list(range(5))
    assert objects[2].header.stamp.sec == 102
    assert transforms.transforms[0].child_frame_id == "lidar"


def test_write_message_serialises_like_rclpy(tmp_path):
    with BagWriter(tmp_path / "bag") as writer:
        writer.add_topic("/tf_static", "tf2_msgs/msg/TFMessage")
        writer.write_message("/tf_static", BAG_START_NS, static_transforms())
    with BagReader(tmp_path / "bag") as reader:
        [(_, msgtype, _, raw)] = reader.messages()
        assert reader.deserialize(raw, msgtype) == static_transforms()


def test_types_missing_from_the_typestore_come_from_installed_msg_files():
    # A colcon install has no interfaces/ beside robot_nodes: our types come from share/ there.
    store = get_typestore(Stores.EMPTY)
    _register_missing(store, "edge_robot_msgs/msg/DetectedObjects")
    assert {"edge_robot_msgs/msg/BoundingBox3D", "std_msgs/msg/Header", "geometry_msgs/msg/Pose"} <= set(store.fielddefs)
    assert store.hash_rihs01("edge_robot_msgs/msg/DetectedObjects") == message_definition(
        "edge_robot_msgs/msg/DetectedObjects")[1]


def test_writer_refuses_misuse(tmp_path):
    with BagWriter(tmp_path / "bag") as writer:
        writer.add_topic("/perception/objects", "edge_robot_msgs/msg/DetectedObjects")
        with pytest.raises(ValueError, match="not added"):
            writer.write("/unknown", 1, b"\x00\x01\x00\x00")
        with pytest.raises(ValueError, match="carries edge_robot_msgs/msg/DetectedObjects"):
            writer.write_message("/perception/objects", 1, static_transforms())
        with pytest.raises(ValueError, match="no message definition"):
            writer.add_topic("/other", "no_such_pkg/msg/Thing")
    with pytest.raises(BagError, match="exists already"):
        BagWriter(tmp_path / "bag")


# --- corrupt and truncated bags --------------------------------------------------------------------

def _edit_metadata(bag: Path, edit) -> None:
    yaml = YAML(typ="safe")
    metadata = yaml.load((bag / "metadata.yaml").read_text())
    edit(metadata["rosbag2_bagfile_information"])
    with (bag / "metadata.yaml").open("w") as stream:
        yaml.dump(metadata, stream)


def _count_one_more(information) -> None:
    information["topics_with_message_count"][0]["message_count"] += 1
    information["message_count"] += 1


def _retype_first_topic(information) -> None:
    information["topics_with_message_count"][0]["topic_metadata"]["type"] = "std_msgs/msg/String"


def _sql(statement: str):
    def run(storage_file: Path) -> None:
        with sqlite3.connect(storage_file) as database:
            database.execute(statement)
        database.close()
    return run


def _truncate(fraction: float):
    def run(storage_file: Path) -> None:
        data = storage_file.read_bytes()
        storage_file.write_bytes(data[:int(len(data) * fraction)])
    return run


def _garbage(length: int) -> bytes:
    return random.Random(length).randbytes(length)  # the same garbage every run


def _overwrite(start_fraction: float, length: int):
    def run(storage_file: Path) -> None:
        data = bytearray(storage_file.read_bytes())
        start = int(len(data) * start_fraction)
        data[start:start + length] = _garbage(length)
        storage_file.write_bytes(bytes(data))
    return run


def _cut_payload_short(storage_file: Path) -> None:
    """Drop the last bytes of one message's payload from an mcap, leaving the rest as it was."""
    with BagReader(storage_file.parent) as reader:
        payload = [raw for topic, _, _, raw in reader.messages() if topic == "/perception/objects"][3]
    data = storage_file.read_bytes()
    start = data.index(payload)
    storage_file.write_bytes(data[:start + len(payload) - 12] + data[start + len(payload):])


CORRUPTIONS = {
    # name: (storage, damage to the storage file or None, damage to metadata or None, expected where)
    "missing metadata.yaml": ("mcap", None, "delete", "metadata.yaml"),
    "metadata not yaml": ("mcap", None, "garbage", "metadata.yaml"),
    "metadata count disagrees (mcap)": ("mcap", None, _count_one_more, "metadata.yaml vs bag.mcap, topic /"),
    "metadata count disagrees (sqlite3)": ("sqlite3", None, _count_one_more, "metadata.yaml vs bag.db3, topic /"),
    "metadata type disagrees": ("mcap", None, _retype_first_topic, "metadata.yaml vs bag.mcap, topic /"),
    "storage lost a message": ("sqlite3", _sql("DELETE FROM messages WHERE id = 4"), None,
                               "metadata.yaml vs bag.db3, topic /"),
    "truncated mcap": ("mcap", _truncate(0.6), None, "bag.mcap"),
    "mcap of garbage": ("mcap", lambda file: file.write_bytes(_garbage(4096)), None, "bag.mcap"),
    "garbage inside mcap": ("mcap", _overwrite(0.3, 400), None, "bag.mcap"),
    "sqlite file not a database": ("sqlite3", lambda file: file.write_bytes(b"not a database\n" * 300), None,
                                   "bag.db3"),
    "message record cut short (sqlite3)": (
        "sqlite3", _sql("UPDATE messages SET data = substr(data, 1, length(data) - 9) WHERE id = 4"), None,
        "bag.db3, message 3 (time order) on /"),
    "message record cut short (mcap)": ("mcap", _cut_payload_short, None, "bag.mcap"),
    "storage file missing": ("mcap", lambda file: file.unlink(), None, "bag.mcap"),
}


@pytest.mark.parametrize("kind", CORRUPTIONS)
def test_corrupt_bag_is_an_error_naming_bag_and_place(tmp_path, kind):
    storage, damage_storage, damage_metadata, expected_where = CORRUPTIONS[kind]
    bag = tmp_path / "bag"
    write_sample_bag(bag, storage)
    if damage_storage:
        damage_storage(bag / ("bag.mcap" if storage == "mcap" else "bag.db3"))
    if damage_metadata == "delete":
        (bag / "metadata.yaml").unlink()
    elif damage_metadata == "garbage":
        (bag / "metadata.yaml").write_text("rosbag2_bagfile_information: [unclosed\n")
    elif damage_metadata:
        _edit_metadata(bag, damage_metadata)

    with pytest.raises(BagError) as caught:
        with BagReader(bag) as reader:
            list(reader.messages())
    assert caught.value.path == bag
    assert caught.value.where.startswith(expected_where)
    assert str(bag) in str(caught.value) and caught.value.problem


def test_missing_bag_is_an_error(tmp_path):
    with pytest.raises(BagError, match="does not exist") as caught:
        BagReader(tmp_path / "nowhere")
    assert caught.value.where == "bag directory"


# --- record and replay -----------------------------------------------------------------------------

@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_record_then_replay_loses_nothing(context, tmp_path, storage):
    bag = tmp_path / "recorded"
    topics = {"/perception/objects": "edge_robot_msgs/msg/DetectedObjects",
              "/tf": "tf2_msgs/msg/TFMessage", "/odom": "nav_msgs/msg/Odometry"}
    source = Node("source", context=context)
    publishers = {topic: source.create_publisher(message_class(msgtype), topic, RELIABLE_DEEP)
                  for topic, msgtype in topics.items()}
    recorder = BagRecorderNode(context=context, parameter_overrides=[
        Parameter("output", value=str(bag)), Parameter("topics", value=list(topics)),
        Parameter("storage", value=storage)])
    sent = {topic: [] for topic in topics}
    with spinning(context, source, recorder):
        assert wait_until(lambda: recorder.subscribed_topics == set(topics)
                          and all(p.get_subscription_count() for p in publishers.values()))
        for index in range(20):
            messages = {"/perception/objects": detected_objects(index), "/tf": moving_transform(index),
                        "/odom": odometry(index)}
            for topic, message in messages.items():
                # Sent serialised, so the bytes compared are the bytes on the wire (padding included).
                sent[topic].append(serialize_message(message))
                publishers[topic].publish(sent[topic][-1])
            time.sleep(0.01)
        assert wait_until(lambda: all(recorder.message_counts[topic] == 20 for topic in topics)), \
            recorder.message_counts
    assert recorder.finished.is_set()

    with BagReader(bag) as reader:
        assert {name: info.count for name, info in reader.topics().items()} == dict.fromkeys(topics, 20)
        for topic in topics:
            assert [raw for name, _, _, raw in reader.messages() if name == topic] == sent[topic]

    probe = Probe(context, topics)
    with spinning(context, probe):
        replay = player(context, bag, rate=10.0)
        try:
            assert replay.finished.wait(TIMEOUT_S) and replay.error is None
            assert wait_until(lambda: probe.count() == 60), probe.count()
        finally:
            replay.destroy_node()
    for topic in topics:
        assert probe.on(topic) == sent[topic]
    stamps = [deserialize_message(raw, TFMessage).transforms[0].header.stamp.sec for raw in probe.on("/tf")]
    assert stamps == [1000 + index for index in range(20)]
    assert [deserialize_message(raw, DetectedObjects).header.stamp.sec
            for raw in probe.on("/perception/objects")] == [100 + index for index in range(20)]
    assert [deserialize_message(raw, Odometry).header.stamp.sec for raw in probe.on("/odom")] == stamps


def test_recorder_closes_the_bag_after_max_duration(context, tmp_path):
    bag = tmp_path / "recorded"
    source = Node("source", context=context)
    publisher = source.create_publisher(TFMessage, "/tf", RELIABLE_DEEP)
    recorder = BagRecorderNode(context=context, parameter_overrides=[
        Parameter("output", value=str(bag)), Parameter("topics", value=["/tf", "/never_published"]),
        Parameter("max_duration_s", value=0.5)])
    with spinning(context, source, recorder):
        assert wait_until(lambda: publisher.get_subscription_count() > 0)

        def publish_until_finished() -> bool:
            publisher.publish(moving_transform(0))
            return recorder.finished.is_set()
        assert wait_until(publish_until_finished)
    with BagReader(bag) as reader:
        assert set(reader.topics()) == {"/tf"}
        assert 0 < reader.topics()["/tf"].count == recorder.message_counts["/tf"]


def test_a_recorder_started_again_on_its_bag_records_into_the_next_one(context, tmp_path):
    bag = tmp_path / "recorded"
    counts = []
    for _ in range(2):  # the second recorder is a restart of the first: same parameters
        source = Node("source", context=context)
        publisher = source.create_publisher(TFMessage, "/tf", RELIABLE_DEEP)
        recorder = BagRecorderNode(context=context, parameter_overrides=[
            Parameter("output", value=str(bag)), Parameter("existing_output", value="next"),
            Parameter("topics", value=["/tf"])])
        with spinning(context, source, recorder):
            assert wait_until(lambda: publisher.get_subscription_count() > 0)
            assert wait_until(lambda: publisher.publish(moving_transform(0)) or recorder.message_counts["/tf"] >= 3)
        counts.append(recorder.message_counts["/tf"])
    assert sorted(path.name for path in tmp_path.iterdir()) == ["recorded", "recorded_2"]
    for path, count in zip((bag, tmp_path / "recorded_2"), counts):
        with BagReader(path) as reader:
            assert reader.topics()["/tf"].count == count


TIMING_OFFSETS_S = [0.0, 0.05, 0.1, 0.4, 0.45, 0.5, 0.9, 1.0]


def timing_probe(context) -> tuple[Probe, list[int]]:
    """A probe on /timing plus the /clock values it hears, in nanoseconds."""
    probe = Probe(context, {"/timing": "std_msgs/msg/Header"})
    clocks: list[int] = []
    probe.create_subscription(Clock, "/clock", lambda message: clocks.append(
        message.clock.sec * 1_000_000_000 + message.clock.nanosec), RELIABLE_DEEP)
    return probe, clocks


def test_player_keeps_bag_timing_and_publishes_clock(context, tmp_path):
    bag = tmp_path / "timed"
    payloads = write_timed_bag(bag, TIMING_OFFSETS_S)
    probe, clocks = timing_probe(context)
    with spinning(context, probe):
        replay = player(context, bag, rate=1.0, publish_clock=True, clock_rate_hz=50.0)
        try:
            assert replay.finished.wait(TIMEOUT_S)
            assert wait_until(lambda: probe.count() == len(payloads))
        finally:
            replay.destroy_node()
    assert probe.on("/timing") == payloads
    arrivals = [arrival for _, _, arrival in probe.received]
    # Never much faster than the bag; slower only by what a loaded machine adds.
    assert 0.8 <= arrivals[-1] - arrivals[0] <= TIMING_OFFSETS_S[-1] + 3.0
    assert len(clocks) >= 5
    assert clocks == sorted(clocks)
    assert BAG_START_NS <= clocks[0] and clocks[-1] <= BAG_START_NS + round(TIMING_OFFSETS_S[-1] * 1e9)


def test_player_loops_and_clock_jumps_back(context, tmp_path):
    bag = tmp_path / "timed"
    payloads = write_timed_bag(bag, TIMING_OFFSETS_S)
    probe, clocks = timing_probe(context)
    with spinning(context, probe):
        replay = player(context, bag, rate=4.0, loop=True, publish_clock=True)
        try:
            assert wait_until(lambda: probe.count() >= 2 * len(payloads) + 1)
            assert not replay.finished.is_set()
        finally:
            replay.destroy_node()
    assert probe.on("/timing")[:2 * len(payloads)] == payloads * 2
    assert any(later < earlier for earlier, later in zip(clocks, clocks[1:]))


def test_player_topic_filter_and_start_offset(context, tmp_path):
    bag = tmp_path / "bag"
    written = write_sample_bag(bag, "mcap")
    probe = Probe(context, {"/perception/objects": "edge_robot_msgs/msg/DetectedObjects"})
    with spinning(context, probe):
        replay = player(context, bag, rate=20.0, topics=["/perception/objects"], start_offset_s=0.25)
        try:
            assert replay.finished.wait(TIMEOUT_S)
            assert wait_until(lambda: probe.count() == 3)
        finally:
            replay.destroy_node()
    assert probe.on("/perception/objects") == [raw for topic, _, stamp, raw in written if topic == "/perception/objects"
                                               and stamp >= BAG_START_NS + 250_000_000]


def test_player_replays_a_recorded_clock_instead_of_making_one(context, tmp_path):
    bag = tmp_path / "bag"
    clocks = [serialize_message(Clock(clock=Time(sec=50 + index))) for index in range(3)]
    with BagWriter(bag) as writer:
        writer.add_topic("/clock", "rosgraph_msgs/msg/Clock")
        for index, payload in enumerate(clocks):
            writer.write("/clock", BAG_START_NS + index * 10_000_000, payload)
    probe = Probe(context, {"/clock": "rosgraph_msgs/msg/Clock"})
    with spinning(context, probe):
        replay = player(context, bag, rate=2.0, publish_clock=True)
        try:
            assert replay.finished.wait(TIMEOUT_S)
            assert wait_until(lambda: probe.count() >= 3)
            time.sleep(0.1)  # room for any extra clock message to show up
        finally:
            replay.destroy_node()
    assert probe.on("/clock") == clocks


def test_player_stops_at_a_corrupt_record_and_stays_up(context, tmp_path):
    bag = tmp_path / "bag"
    written = write_sample_bag(bag, "sqlite3")
    _sql("UPDATE messages SET data = substr(data, 1, 20) WHERE id = 6")(bag / "bag.db3")
    reliable_topics = {topic: msgtype for topic, msgtype, _, _ in written if topic != "/sensing/lidar/points"}
    probe = Probe(context, reliable_topics)
    with spinning(context, probe):
        replay = player(context, bag, rate=50.0, topics=list(reliable_topics))
        try:
            assert replay.finished.wait(TIMEOUT_S)
            assert isinstance(replay.error, BagError) and "message 3 (time order)" in replay.error.where
            assert replay.context.ok()
            assert wait_until(lambda: probe.count() == 3)
            time.sleep(0.1)  # room for anything after the corrupt record to show up
        finally:
            replay.destroy_node()
    assert [data for _, data, _ in probe.received] == [raw for topic, _, _, raw in written[:4]
                                                       if topic in reliable_topics]


# --- start-up refusals -----------------------------------------------------------------------------

@pytest.mark.parametrize("parameters, error, reason", [
    ({"rate": 0.0}, ParameterError, "rate must be > 0"),
    ({"rate": -2.0}, ParameterError, "rate must be > 0"),
    ({"bag": ""}, ParameterError, "bag is required"),
    ({"bag": "/nonexistent/bag"}, StartupError, "/nonexistent/bag: bag directory: does not exist"),
    ({"topics": ["/not_recorded"]}, StartupError, "has no topic"),
    ({"start_offset_s": 60.0}, StartupError, "past the end"),
    ({"clock_rate_hz": 0.0}, ParameterError, "clock_rate_hz must be > 0"),
])
def test_player_refuses_bad_parameters(context, tmp_path, parameters, error, reason):
    bag = tmp_path / "bag"
    write_sample_bag(bag, "mcap")
    overrides = {"bag": str(bag), **parameters}
    with pytest.raises(error, match=reason):
        BagPlayerNode(context=context, parameter_overrides=[Parameter(name, value=value)
                                                        for name, value in overrides.items()])


def test_player_refuses_a_corrupt_bag_at_start(context, tmp_path):
    bag = tmp_path / "bag"
    write_sample_bag(bag, "mcap")
    _truncate(0.5)(bag / "bag.mcap")
    with pytest.raises(StartupError, match="bag.mcap"):
        player(context, bag)


@pytest.mark.parametrize("parameters, error, reason", [
    ({"topics": None}, ParameterError, "topics must be a non-empty list"),
    ({"output": ""}, ParameterError, "output is required"),
    ({"storage": "rosbag1"}, ParameterError, "storage must be one of"),
    ({"output": "EXISTING"}, StartupError, "exists already"),
    ({"existing_output": "overwrite"}, ParameterError, "existing_output must be one of"),
])
def test_recorder_refuses_bad_parameters(context, tmp_path, parameters, error, reason):
    overrides = {"output": str(tmp_path / "new"), "topics": ["/tf"], **parameters}
    if overrides["output"] == "EXISTING":
        overrides["output"] = str(tmp_path)
    with pytest.raises(error, match=reason):
        BagRecorderNode(context=context, parameter_overrides=[Parameter(name, value=value)
                                                              for name, value in overrides.items() if value is not None])


def test_console_entry_points_exit_with_a_clear_reason(capfd, tmp_path, monkeypatch):
    monkeypatch.setenv("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    monkeypatch.setenv("ROS_DOMAIN_ID", str(random_domain(first=1)))
    assert bag_player.main(["bag_player", "--ros-args", "-p", f"bag:={tmp_path / 'none'}"]) == 2
    assert "does not exist" in capfd.readouterr().err
    assert bag_recorder.main(["bag_recorder", "--ros-args", "-p", "output:=x"]) == 2
    assert "topics must be a non-empty list" in capfd.readouterr().err
