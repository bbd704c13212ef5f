"""Jumps of a node's ROS time (/clock under use_sim_time): a bag player looping or a simulator reset
sends it back, a simulation resumed or a bag seeked far ahead sends it forward. A node whose state
depends on time (queued inputs, scoring buffers, the newest odometry) registers what to reset."""
from __future__ import annotations

from typing import Callable

from rclpy.clock import JumpHandle, JumpThreshold, TimeJump
from rclpy.duration import Duration
from rclpy.node import Node

FORWARD_JUMP_S = 10.0
"""A forward jump of more than this many seconds resets too (longer than every input timeout of the
nodes, so what they hold is stale by then; a simulation steps by milliseconds)."""


def watch_time_jumps(node: Node, reset: Callable[[], None], what_is_reset: str,
                     forward_s: float = FORWARD_JUMP_S) -> JumpHandle:
    """Logs one warning (the jump and `what_is_reset`) and calls reset() in the executor thread
    whenever the node's ROS time goes back or jumps forward by more than forward_s (not on the first
    /clock after start: time from zero). Keep the returned handle: the watch ends with it."""
    clock = node.get_clock()

    def jumped(jump: TimeJump) -> None:
        now_ns = clock.now().nanoseconds
        if now_ns == jump.delta.nanoseconds:
            return  # the first /clock: time from zero
        direction = "back" if jump.delta.nanoseconds < 0 else "forward"
        node.get_logger().warning(f"ROS time jumped {direction} by {abs(jump.delta.nanoseconds) * 1e-9:.3f} s to "
                                  f"{now_ns * 1e-9:.3f} s (bag loop, simulator reset or seek): {what_is_reset} reset")
        reset()

    return clock.create_jump_callback(
        JumpThreshold(min_forward=Duration(seconds=forward_s), min_backward=Duration(nanoseconds=-1),
                      on_clock_change=False), post_callback=jumped)
