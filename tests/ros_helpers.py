"""Helpers for tests that talk over real rclpy (the `context` fixture is in conftest.py)."""
from __future__ import annotations

import threading
import time
from contextlib import contextmanager

from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node

TIMEOUT_S = 15.0
"""Generous: CI machines are slow and busy; waits end as soon as their condition holds."""


@contextmanager
def spinning(context, *nodes: Node):
    """Spin the nodes in a background executor; destroy them afterwards."""
    executor = SingleThreadedExecutor(context=context)
    for node in nodes:
        executor.add_node(node)
    thread = threading.Thread(target=executor.spin, daemon=True)
    thread.start()
    try:
        yield
    finally:
        executor.shutdown()
        thread.join()
        for node in nodes:
            node.destroy_node()


def wait_until(condition, timeout_s: float = TIMEOUT_S) -> bool:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True
