"""Node `bag_recorder`: records live topics into a rosbag2 bag, bytes unchanged.

Each configured topic is subscribed once the ROS graph shows it with a publisher (a timer polls
`get_topic_names_and_types` until every topic is there), with the message type the graph reports
and a QoS adapted to the publishers' offers the way rosbag2 record does. Subscriptions are raw,
so the CDR bytes go into the bag exactly as received, stamped with the node clock at reception
(sim time under use_sim_time). The publishers' offered QoS profiles are stored with each topic.

The bag is closed, and valid, on `destroy_node` or after `max_duration_s`; then `finished` is set.
"""
from __future__ import annotations

import itertools
import threading
from collections import Counter
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from rclpy.node import Node
from rclpy.qos import QoSProfile
from rclpy.clock import Clock, ClockType
from rclpy.subscription import Subscription

from robot_nodes.bags import STORAGES, BagError, BagWriter, adapted_qos, message_class
from robot_nodes.parameters import declare_config
from robot_nodes.runner import StartupError, run_node

# Often enough that a topic appearing is recorded from (nearly) its first message.
DISCOVERY_PERIOD_S = 0.1
EXISTING_OUTPUT_CHOICES = ("fail", "next")


@dataclass
class BagRecorderConfig:
    """Parameters of the bag_recorder node."""

    output: str = ""
    """Directory of the new bag; required."""
    existing_output: str = "fail"
    """When `output` exists already (a bag is never overwritten): "fail" at start-up, or "next": record
    into the first of `<output>_2`, `<output>_3`, ... that does not exist, so a restarted recorder goes
    on in a new bag beside the one its first instance closed."""
    storage: str = "mcap"
    """Storage plugin: "mcap" or "sqlite3"."""
    topics: list[str] = field(default_factory=list)
    """Topics to record; required, non-empty. Relative names resolve in the node's namespace."""
    max_duration_s: float = 0.0
    """Stop recording and close the bag after this many seconds; 0 records until shutdown."""
    queue_depth: int = field(default=100, metadata={"range": (1, 10000)})
    """Messages each subscription buffers while the bag is being written."""

    def __post_init__(self) -> None:
        if not self.output:
            raise ValueError("output is required: the directory of the new bag")
        if self.existing_output not in EXISTING_OUTPUT_CHOICES:
            raise ValueError(f"existing_output must be one of {list(EXISTING_OUTPUT_CHOICES)}, "
                             f"got {self.existing_output!r}")
        if self.storage not in STORAGES:
            raise ValueError(f"storage must be one of {sorted(STORAGES)}, got {self.storage!r}")
        if not self.topics or not all(self.topics):
            raise ValueError(f"topics must be a non-empty list of topic names, got {self.topics}")
        if not self.max_duration_s >= 0:
            raise ValueError(f"max_duration_s must be >= 0, got {self.max_duration_s}")


class BagRecorderNode(Node):
    def __init__(self, **node_options) -> None:
        super().__init__("bag_recorder", **node_options)
        try:
            self.config = declare_config(self, BagRecorderConfig)
            self._pending = self._resolve_topics()
            self.output = self._bag_path()
            """The bag this recorder writes."""
            self._bag_io, self._writer = self._open_bag()
        except BaseException:
            super().destroy_node()  # this class's destroy_node expects a recorder that started
            raise
        self.finished = threading.Event()
        self.message_counts: Counter = Counter()
        self._lock = threading.Lock()  # callbacks and close may run on different executor threads
        self._reported_problems: set[tuple[str, str]] = set()
        self._subscriptions_by_topic: dict[str, Subscription] = {}
        # Wall time: under use_sim_time a ROS-time timer would wait for the /clock it is to record.
        self._discovery_timer = self.create_timer(DISCOVERY_PERIOD_S, self._discover,
                                                  clock=Clock(clock_type=ClockType.STEADY_TIME))
        self._duration_timer = self.create_timer(self.config.max_duration_s, self._on_max_duration) \
            if self.config.max_duration_s else None
        self.get_logger().info(f"recording {self._pending} into {self.output}")
        self._discover()

    def _open_bag(self) -> tuple[ThreadPoolExecutor, BagWriter]:
        """The new bag and the one thread that writes it.

        rosbags' sqlite3 storage only works on the thread that created it, and writing on a
        thread of its own keeps disk time out of the executor's callbacks.
        """
        bag_io = ThreadPoolExecutor(max_workers=1, thread_name_prefix="bag_io")
        try:
            return bag_io, bag_io.submit(BagWriter, self.output, self.config.storage).result()
        except BagError as error:
            bag_io.shutdown()
            raise StartupError(str(error)) from None

    def _bag_path(self) -> Path:
        """`output`, or with existing_output "next" and `output` there already, the first free `<output>_N`."""
        output = Path(self.config.output)
        if self.config.existing_output != "next" or not output.exists():
            return output
        free = next(candidate for number in itertools.count(2)
                    if not (candidate := output.with_name(f"{output.name}_{number}")).exists())
        self.get_logger().warning(f"{output} exists already: recording into {free}")
        return free

    def _resolve_topics(self) -> list[str]:
        try:
            return sorted({self.resolve_topic_name(topic) for topic in self.config.topics})
        except Exception as error:  # rclpy raises several name-validation types
            raise StartupError(f"bag_recorder: bad topic name in {self.config.topics}: {error}") from None

    @property
    def subscribed_topics(self) -> frozenset[str]:
        """Topics being recorded so far."""
        return frozenset(self._subscriptions_by_topic)

    def _discover(self) -> None:
        graph = dict(self.get_topic_names_and_types())
        for topic in [name for name in self._pending if name in graph]:
            if len(graph[topic]) != 1:
                self._report_once(topic, f"has several types {graph[topic]}; waiting for a single one")
                continue
            offers = [info.qos_profile for info in self.get_publishers_info_by_topic(topic)]
            if offers:  # a topic seen only through subscribers has no offer to adapt to yet
                self._subscribe(topic, graph[topic][0], offers)
        if not self._pending:
            self._discovery_timer.cancel()

    def _subscribe(self, topic: str, msgtype: str, offers: list[QoSProfile]) -> None:
        """Add the topic to the bag and subscribe; a type that cannot be recorded is dropped, logged."""
        try:
            msg_class = message_class(msgtype)
            with self._lock:
                if self._writer is None:
                    return
                self._bag_io.submit(self._writer.add_topic, topic, msgtype, offers).result()
        except ValueError as error:
            self._report_once(topic, f"cannot be recorded: {error}")
            self._pending.remove(topic)
            return
        self._subscriptions_by_topic[topic] = self.create_subscription(
            msg_class, topic, lambda data, topic=topic: self._record(topic, data),
            adapted_qos(offers, self.config.queue_depth), raw=True)
        self._pending.remove(topic)
        self.get_logger().info(f"recording {topic} ({msgtype})")

    def _record(self, topic: str, data: bytes) -> None:
        stamp = self.get_clock().now().nanoseconds
        with self._lock:
            if self._writer is None:
                return
            self._bag_io.submit(self._writer.write, topic, stamp, data).add_done_callback(self._check_written)
            self.message_counts[topic] += 1

    def _check_written(self, write: Future) -> None:
        if write.exception() is not None:
            self.get_logger().error(f"writing to {self.config.output} failed: {write.exception()}")

    def _report_once(self, topic: str, problem: str) -> None:
        if (topic, problem) not in self._reported_problems:
            self._reported_problems.add((topic, problem))
            self.get_logger().error(f"topic {topic} {problem}")

    def _on_max_duration(self) -> None:
        self._duration_timer.cancel()
        self._close("max_duration_s reached")

    def _close(self, reason: str) -> None:
        with self._lock:
            writer, self._writer = self._writer, None
        if writer is None:
            return
        self._discovery_timer.cancel()
        for subscription in self._subscriptions_by_topic.values():
            self.destroy_subscription(subscription)
        try:
            self._bag_io.submit(writer.close).result()
        except BagError as error:
            self.get_logger().error(f"closing the bag failed: {error}")
        else:
            self.get_logger().info(f"closed {writer.path} ({reason}): {dict(self.message_counts)} messages"
                                   + (f"; never saw {self._pending}" if self._pending else ""))
        self._bag_io.shutdown()
        self.finished.set()

    def destroy_node(self) -> None:
        self._close("shutdown")
        super().destroy_node()


def main(args: list[str] | None = None) -> int:
    return run_node(BagRecorderNode, args)


if __name__ == "__main__":
    raise SystemExit(main())
