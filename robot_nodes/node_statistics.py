"""Processing statistics of a node on the global /node_statistics topic, so a recorded bag alone
gives each node's processing times, CPU share and dropped inputs.

A node creates one NodeStatisticsPublisher. It derives the counts from the node's own counters
(a function the node gives, read under the lock that guards them), so nothing is counted twice;
the node hands it each processed input's stamp and processing time (`record`), and CPU thread time
is measured around the processing in whichever thread does it: every subscription callback
through the publisher's InputGuard, timers and workers with `measured` or `cpu.measure()`.
"""
from __future__ import annotations

import functools
import threading
import time
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from typing import Callable, Iterator, TypeVar

from builtin_interfaces.msg import Time
from rclpy.clock import Clock, ClockType
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from std_msgs.msg import Header

from edge_robot_msgs.msg import NodeStatistics
from robot_nodes import topics
from robot_nodes.input_guard import InputGuard

PUBLISH_PERIOD_S = 1.0
"""Wall seconds between two statistics messages."""
STATISTICS_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=100, reliability=ReliabilityPolicy.RELIABLE,
                            durability=DurabilityPolicy.VOLATILE)
"""Reliable with room for a backlog: every message carries samples no later message repeats."""


@dataclass(frozen=True)
class ProcessingCounts:
    """A node's counts of its processing inputs, read from its own counters."""

    received: int
    """Inputs that arrived that trigger processing, well-formed or not."""
    processed: int
    """Inputs processed with their outputs published."""
    dropped: int = 0
    """Inputs dropped unprocessed because the node was busy."""
    failed: int = 0
    """Inputs on which processing raised."""
    rejected: int = 0
    """Malformed inputs rejected outside the InputGuard (the guard's rejections are added to these)."""


class ThreadCpuTime:
    """CPU seconds of the measured blocks, in whichever threads they run (time.thread_time deltas).

    A block measured inside another one in the same thread (a timer's work called from a measured
    callback) counts once."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._seconds = 0.0
        self._measuring = threading.local()

    @contextmanager
    def measure(self) -> Iterator[None]:
        """Adds the thread time the block spends to `seconds`."""
        if getattr(self._measuring, "active", False):
            yield
            return
        self._measuring.active = True
        started = time.thread_time()
        try:
            yield
        finally:
            spent = time.thread_time() - started
            self._measuring.active = False
            with self._lock:
                self._seconds += spent

    @property
    def seconds(self) -> float:
        with self._lock:
            return self._seconds


Method = TypeVar("Method", bound=Callable)


def measured(method: Method) -> Method:
    """A node method whose thread time counts in the node's `statistics` (timers, worker steps)."""
    @functools.wraps(method)
    def measuring(self, *args, **kwargs):
        with self.statistics.cpu.measure():
            return method(self, *args, **kwargs)
    return measuring  # type: ignore[return-value]


class NodeStatisticsPublisher:
    """Publishes a node's NodeStatistics on topics.NODE_STATISTICS every PUBLISH_PERIOD_S wall
    seconds (also while simulated time stands still) and once more from `publish_final`.

    `counts` reads the node's counters; it runs under `lock`, which must be re-entrant (an RLock or
    a default threading.Condition) and is the lock the node updates those counters under, so a
    message's processed count and its samples agree. Without one the publisher makes its own
    (enough for counters updated in the node's callbacks, which never run alongside its timer)."""

    def __init__(self, node: Node, counts: Callable[[], ProcessingCounts],
                 lock: AbstractContextManager | None = None) -> None:
        self._node = node
        self._counts = counts
        self.lock: AbstractContextManager = lock if lock is not None else threading.RLock()
        """Held while the counts are read and the samples taken; `record` takes it too."""
        self.cpu = ThreadCpuTime()
        """CPU time of the node's processing."""
        self.inputs = InputGuard(node, measure=self.cpu.measure)
        """The guard for the node's subscription callbacks: their CPU time and rejections count here."""
        self._started = time.monotonic()
        self._processing_times_ms: list[float] = []
        self._input_stamps: list[Time] = []
        self._carried = ProcessingCounts(0, 0)
        """Counts of this node's previous instances (continue_from)."""
        self.publisher = node.create_publisher(NodeStatistics, topics.NODE_STATISTICS, STATISTICS_QOS)
        self._timer = node.create_timer(PUBLISH_PERIOD_S, self.publish, clock=Clock(clock_type=ClockType.STEADY_TIME))

    def record(self, stamp: Time, processing_time_ms: float) -> None:
        """One input processed and its outputs out: its header stamp and wall ms from its arrival."""
        with self.lock:
            self._processing_times_ms.append(processing_time_ms)
            self._input_stamps.append(stamp)

    def totals(self) -> ProcessingCounts:
        """The counts so far, with the guard's rejections and those of the node's previous instances."""
        with self.lock:
            counts, carried = self._counts(), self._carried
            return ProcessingCounts(counts.received + carried.received, counts.processed + carried.processed,
                                    counts.dropped + carried.dropped, counts.failed + carried.failed,
                                    counts.rejected + self.inputs.rejected_total() + carried.rejected)

    def continue_from(self, previous: NodeStatisticsPublisher, failed: int) -> None:
        """After a restart (robot_nodes.bringup): the counts go on from the dead instance's `previous`,
        with `failed` more inputs (the one it died on)."""
        counts = previous.totals()
        with self.lock:
            self._carried = ProcessingCounts(counts.received, counts.processed, counts.dropped,
                                             counts.failed + failed, counts.rejected)

    def publish(self) -> None:
        """Publish the counts so far and the samples recorded since the previous message."""
        with self.lock:
            counts = self.totals()
            message = NodeStatistics(
                header=Header(stamp=self._node.get_clock().now().to_msg()), node=self._node.get_name(),
                wall_time=time.monotonic() - self._started, cpu_time=self.cpu.seconds,
                received=counts.received, processed=counts.processed, dropped=counts.dropped,
                rejected=counts.rejected, failed=counts.failed,
                processing_times_ms=self._processing_times_ms, input_stamps=self._input_stamps)
            self._processing_times_ms, self._input_stamps = [], []
        self.publisher.publish(message)

    def publish_final(self) -> None:
        """The last message, once the node's processing has stopped."""
        self._node.destroy_timer(self._timer)
        self.publish()


def publish_final_statistics(node: Node) -> None:
    """From a node's destroy_node, after its processing stopped: the last message of its
    `statistics`, unless its construction failed before it had them (rclpy destroys such nodes too)."""
    statistics: NodeStatisticsPublisher | None = getattr(node, "statistics", None)
    if statistics is not None:
        statistics.publish_final()
