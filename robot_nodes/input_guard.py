"""Rejecting malformed input without losing the node: log the reason, count it, keep serving."""
from __future__ import annotations

import collections
import contextlib
import threading
from typing import Any, Callable, ContextManager

from rclpy.node import Node

from robot_nodes.conversions.errors import MalformedMessageError


class InputGuard:
    """Wraps subscription callbacks so a MalformedMessageError from a message is logged and counted.

    `measure` is entered around every callback (node_statistics.ThreadCpuTime.measure counts their
    CPU time)."""

    def __init__(self, node: Node, log_period_s: float = 1.0,
                 measure: Callable[[], ContextManager[None]] = contextlib.nullcontext) -> None:
        self._node = node
        self._log_period_s = log_period_s
        self._measure = measure
        self._lock = threading.Lock()  # rejected_total may be read from another thread
        self.rejected: collections.Counter[str] = collections.Counter()
        """Rejected messages per input topic."""
        self.last_reason: dict[str, str] = {}
        """The newest rejection reason per input topic."""

    def wrap(self, topic: str, callback: Callable[[Any], None]) -> Callable[[Any], None]:
        """A callback that runs `callback` and turns a malformed message into a logged rejection."""
        def guarded(message: Any) -> None:
            try:
                with self._measure():
                    callback(message)
            except MalformedMessageError as error:
                with self._lock:
                    self.rejected[topic] += 1
                    self.last_reason[topic] = str(error)
                self._node.get_logger().warning(
                    f"rejected message on {topic} ({self.rejected[topic]} so far): {error}",
                    throttle_duration_sec=self._log_period_s)
        return guarded

    def rejected_total(self) -> int:
        """Rejected messages on all input topics."""
        with self._lock:
            return sum(self.rejected.values())
