"""Rejecting malformed input without losing the node: log the reason, count it, keep serving."""
from __future__ import annotations

import collections
from typing import Any, Callable

from rclpy.node import Node

from robot_nodes.conversions.errors import MalformedMessageError


class InputGuard:
    """Wraps subscription callbacks so a MalformedMessageError from a message is logged and counted."""

    def __init__(self, node: Node, log_period_s: float = 1.0) -> None:
        self._node = node
        self._log_period_s = log_period_s
        self.rejected: collections.Counter[str] = collections.Counter()
        """Rejected messages per input topic."""
        self.last_reason: dict[str, str] = {}
        """The newest rejection reason per input topic."""

    def wrap(self, topic: str, callback: Callable[[Any], None]) -> Callable[[Any], None]:
        """A callback that runs `callback` and turns a malformed message into a logged rejection."""
        def guarded(message: Any) -> None:
            try:
                callback(message)
            except MalformedMessageError as error:
                self.rejected[topic] += 1
                self.last_reason[topic] = str(error)
                self._node.get_logger().warning(
                    f"rejected message on {topic} ({self.rejected[topic]} so far): {error}",
                    throttle_duration_sec=self._log_period_s)
        return guarded
