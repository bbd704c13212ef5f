"""Test-only nodes that die on purpose: real nodes of the stack with one more input, FAULT_TOPIC, on
which they raise, so the bringup's restarts are shown on the real composition. The bringup composes
them from NodeSpecs whose node_class names this module (tests/robot_nodes/test_restart.py)."""
from __future__ import annotations

import threading
from dataclasses import replace

from std_msgs.msg import String

from robot_nodes.graph import NodeSpec
from robot_nodes.lane_keeping_controller import LaneKeepingControllerNode
from robot_nodes.trajectory_predictor import TrajectoryPredictorNode

FAULT_TOPIC = "/test/fault"
"""std_msgs/String '<node name>:callback' (the subscription callback raises, which ends the node's
executor thread) or '<node name>:thread' (the node's fault thread ends on an exception)."""


class InjectedFault(RuntimeError):
    """What a faulty node raises."""


class FaultInjection:
    """Mixed into a node class before it: the FAULT_TOPIC subscription and a thread of the node's own
    (an attribute, as the nodes keep their workers) that raises when told."""

    def listen_for_faults(self) -> None:
        self._fault_thread_told = threading.Event()
        self._stopping = False
        self.fault_thread = threading.Thread(target=self._fault_thread_body, name=f"{self.get_name()}_fault_thread",
                                             daemon=True)
        self.fault_thread.start()
        self.create_subscription(String, FAULT_TOPIC, self._on_fault, 10)

    def _on_fault(self, message: String) -> None:
        if message.data == f"{self.get_name()}:callback":
            raise InjectedFault(f"{self.get_name()}: fault injected in a callback")
        if message.data == f"{self.get_name()}:thread":
            self._fault_thread_told.set()

    def _fault_thread_body(self) -> None:
        self._fault_thread_told.wait()
        if not self._stopping:
            raise InjectedFault(f"{self.get_name()}: fault injected in its thread")

    def destroy_node(self) -> None:
        self._stopping = True
        self._fault_thread_told.set()
        super().destroy_node()


class FaultyLaneKeepingController(FaultInjection, LaneKeepingControllerNode):
    def __init__(self, **node_options) -> None:
        super().__init__(**node_options)
        self.listen_for_faults()


class FaultyTrajectoryPredictor(FaultInjection, TrajectoryPredictorNode):
    def __init__(self, **node_options) -> None:
        super().__init__(**node_options)
        self.listen_for_faults()


def faulty(spec: NodeSpec) -> NodeSpec:
    """`spec` composed with its faulty class from this module."""
    classes = {"lane_keeping_controller": FaultyLaneKeepingController,
               "trajectory_predictor": FaultyTrajectoryPredictor}
    return replace(spec, node_class=f"{__name__}:{classes[spec.name].__name__}")
