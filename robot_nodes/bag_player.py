"""Node `bag_player`: replays a rosbag2 bag with its original timing, without decoding messages.

Each message's CDR bytes from the bag are published unchanged (rclpy publishers accept
serialised `bytes`) from a dedicated thread, at the bag's inter-message timing divided by `rate`.
Every payload is checked against its type before it is published (see `BagReader.messages`), so
a corrupt record never reaches a subscriber; playback stops at it with a logged error instead.
With `publish_clock` the bag time goes out on /clock for nodes running with use_sim_time; it
never runs ahead of the next unpublished message and jumps back when a loop restarts. A bag that
recorded /clock itself has that topic replayed like any other instead, so there is one clock.

At the end of a non-looping bag the node logs a summary, sets `finished` (a threading.Event)
and publishes std_msgs/Empty on `~/output/finished` (transient local, so late subscribers see
it too). The node keeps running afterwards; `error` holds the BagError that stopped playback early.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

from rclpy.exceptions import InvalidHandle
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, QoSProfile
from rosgraph_msgs.msg import Clock
from std_msgs.msg import Empty

from robot_nodes.bags import (DEFAULT_QOS_DEPTH, NANOSECONDS_PER_SECOND, BagError, BagReader, BagTopic,
                              message_class)
from robot_nodes.parameters import declare_config
from robot_nodes.runner import StartupError, run_node
from robot_nodes.topics import CLOCK

# How often the player checks for subscribers while `wait_for_subscribers_s` runs.
SUBSCRIBER_POLL_S = 0.01
BYTES_PER_MEGABYTE = 1e6


@dataclass
class BagPlayerConfig:
    """Parameters of the bag_player node."""

    bag: str = ""
    """rosbag2 bag directory (with metadata.yaml) to play; required."""
    rate: float = 1.0
    """Playback speed as a factor of real time: 2.0 plays twice as fast; must be > 0."""
    loop: bool = False
    """Play again from the start (offset) after the last message; /clock jumps back at each restart."""
    start_offset_s: float = 0.0
    """Seconds of the bag, from its first message, to skip; >= 0 and before the bag's last message."""
    topics: list[str] = field(default_factory=list)
    """Topics to play; empty plays every topic of the bag."""
    publish_clock: bool = True
    """Publish the bag time on /clock (rosgraph_msgs/Clock) for nodes that run with use_sim_time,
    unless /clock is one of the played topics of the bag."""
    clock_rate_hz: float = 100.0
    """How often /clock is published during playback, per wall-clock second; must be > 0."""
    wait_for_subscribers_s: float = 2.0
    """Before the first message, wait up to this long for every played topic to have a subscriber,
    so that subscribers created along with the player miss nothing; 0 starts at once. When the
    time runs out playback starts anyway, with a warning naming the topics nobody subscribes to."""
    wait_for_nodes: list[str] = field(default_factory=list)
    """Nodes that must subscribe to every played topic before the first message (within
    wait_for_subscribers_s), e.g. a recorder of the whole replay beside nodes that subscribe to
    some of its topics sooner."""

    def __post_init__(self) -> None:
        if not self.bag:
            raise ValueError("bag is required: the rosbag2 directory to play")
        if not self.rate > 0:
            raise ValueError(f"rate must be > 0, got {self.rate}")
        if not self.start_offset_s >= 0:
            raise ValueError(f"start_offset_s must be >= 0, got {self.start_offset_s}")
        if not self.clock_rate_hz > 0:
            raise ValueError(f"clock_rate_hz must be > 0, got {self.clock_rate_hz}")
        if not self.wait_for_subscribers_s >= 0:
            raise ValueError(f"wait_for_subscribers_s must be >= 0, got {self.wait_for_subscribers_s}")


@dataclass
class PassSummary:
    """What one pass through the bag published."""

    messages: int = 0
    """Messages published."""
    megabytes: float = 0.0
    """Their payload, 10^6 bytes."""
    bag_seconds: float = 0.0
    """Bag time from the pass's start (offset) to its last message."""
    wall_seconds: float = 0.0
    """Wall time the pass took."""


class BagPlayerNode(Node):
    def __init__(self, **node_options) -> None:
        super().__init__("bag_player", **node_options)
        try:
            self.config = declare_config(self, BagPlayerConfig)
            self._reader, self._topics = self._open_bag()
        except BaseException:
            super().destroy_node()  # this class's destroy_node expects a player that started
            raise
        self._publishers_by_topic = {
            name: self.create_publisher(
                message_class(info.msgtype), name, info.qos_profile or QoSProfile(depth=DEFAULT_QOS_DEPTH))
            for name, info in self._topics.items()}
        self._clock_publisher = self.create_publisher(Clock, CLOCK, DEFAULT_QOS_DEPTH) \
            if self.config.publish_clock and CLOCK not in self._topics else None
        self._finished_publisher = self.create_publisher(
            Empty, "~/output/finished", QoSProfile(depth=1, durability=DurabilityPolicy.TRANSIENT_LOCAL))
        self.finished = threading.Event()
        self.error: BagError | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._play, name="bag_player", daemon=True)
        self._thread.start()

    def _open_bag(self) -> tuple[BagReader, dict[str, BagTopic]]:
        """The checked bag and the topics to play; StartupError says why they cannot be played."""
        try:
            reader = BagReader(self.config.bag)
        except BagError as error:
            raise StartupError(str(error)) from None
        try:
            return reader, self._select_topics(reader)
        except StartupError:
            reader.close()
            raise

    def _select_topics(self, reader: BagReader) -> dict[str, BagTopic]:
        topics = reader.topics()
        if missing := sorted(set(self.config.topics) - set(topics)):
            raise StartupError(f"bag {reader.path} has no topic {missing}; it has {sorted(topics)}")
        selected = {name: topics[name] for name in self.config.topics or topics}
        if sum(info.count for info in selected.values()) == 0:
            raise StartupError(f"bag {reader.path} has no messages on {sorted(selected)}")
        if self.config.start_offset_s > reader.duration:
            raise StartupError(f"start_offset_s {self.config.start_offset_s} is past the end of bag "
                               f"{reader.path} ({reader.duration:.3f} s long)")
        for name, info in selected.items():
            try:
                message_class(info.msgtype)
            except ValueError as error:
                raise StartupError(f"bag {reader.path}, topic {name}: {error}") from None
        return selected

    def _play(self) -> None:
        try:
            self._wait_for_subscribers()
            while not self._stop.is_set():
                summary = self._play_once()
                if summary is None:
                    return
                if not self.config.loop:
                    self._report(summary)
                    return
        except BagError as error:
            self.error = error
            self.get_logger().error(f"playback stopped: {error}")
            self._finish()
        except InvalidHandle:
            # Ctrl-C shuts the context down before destroy_node stops this thread.
            if self.context.ok():
                raise

    def _wait_for_subscribers(self) -> None:
        deadline = time.monotonic() + self.config.wait_for_subscribers_s
        def waiting(name: str, publisher) -> bool:
            return publisher.get_subscription_count() == 0 or not set(self.config.wait_for_nodes) <= {
                info.node_name for info in self.get_subscriptions_info_by_topic(name)}

        while True:
            lonely = sorted(name for name, publisher in self._publishers_by_topic.items() if waiting(name, publisher))
            if not lonely:
                return
            if time.monotonic() >= deadline:
                if self.config.wait_for_subscribers_s:
                    self.get_logger().warning(f"playing although nobody subscribes to {lonely}")
                return
            if self._stop.wait(SUBSCRIBER_POLL_S):
                return

    def _play_once(self) -> PassSummary | None:
        """Publish one pass at the bag's timing; None when stopped part-way."""
        rate = self.config.rate
        origin_ns = self._reader.start_ns + round(self.config.start_offset_s * NANOSECONDS_PER_SECOND)
        summary = PassSummary()
        wall_start = time.monotonic()
        next_clock_wall = wall_start
        for topic, _, stamp, raw in self._reader.messages(list(self._topics), self.config.start_offset_s):
            due = wall_start + (stamp - origin_ns) / NANOSECONDS_PER_SECOND / rate
            while True:
                now = time.monotonic()
                if self._clock_publisher and now >= next_clock_wall:
                    # Bag time now, held at the next message's stamp until it is out: the clock
                    # never passes a message not yet published, and never goes back in a pass.
                    bag_now = origin_ns + round((now - wall_start) * rate * NANOSECONDS_PER_SECOND)
                    self._publish_clock(min(bag_now, stamp))
                    next_clock_wall = now + 1.0 / self.config.clock_rate_hz
                if now >= due:
                    break
                if self._stop.wait((min(due, next_clock_wall) if self._clock_publisher else due) - now):
                    return None
            if self._stop.is_set():
                return None
            self._publishers_by_topic[topic].publish(raw)
            summary.messages += 1
            summary.megabytes += len(raw) / BYTES_PER_MEGABYTE
            summary.bag_seconds = (stamp - origin_ns) / NANOSECONDS_PER_SECOND
        summary.wall_seconds = time.monotonic() - wall_start
        return summary

    def _publish_clock(self, bag_ns: int) -> None:
        clock = Clock()
        clock.clock.sec, clock.clock.nanosec = divmod(bag_ns, NANOSECONDS_PER_SECOND)
        self._clock_publisher.publish(clock)

    def _report(self, summary: PassSummary) -> None:
        speed = summary.bag_seconds / summary.wall_seconds if summary.wall_seconds > 0 else float("inf")
        self.get_logger().info(
            f"finished {self._reader.path}: {summary.messages} messages, {summary.megabytes:.1f} MB, "
            f"{summary.bag_seconds:.2f} s of bag in {summary.wall_seconds:.2f} s wall ({speed:.1f}x real time)")
        self._finish()

    def _finish(self) -> None:
        self._finished_publisher.publish(Empty())
        self.finished.set()

    def destroy_node(self) -> None:
        # The playback thread publishes through this node, so it must end first.
        self._stop.set()
        self._thread.join()
        self._reader.close()
        super().destroy_node()


def main(args: list[str] | None = None) -> int:
    return run_node(BagPlayerNode, args)


if __name__ == "__main__":
    raise SystemExit(main())
