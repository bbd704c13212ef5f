"""Bad input on every input topic of every node (malformed_messages.INPUT_TOPICS): 10,000 hypothesis
cases per topic through the node's own guarded subscription callback (a real node with its real
parameter file, called without the middleware so the cases are fast): nothing but a logged, counted
rejection comes out of a malformed message, worker threads fail on none of the accepted ones, and
a valid message afterwards is served (the node's output or state shows it). A sample of 200 cases
per topic then goes over real rclpy to the spinning node, whose /node_statistics counts them."""
from __future__ import annotations

import dataclasses
import json
import os
import time
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from rclpy.node import Node
from rclpy.parameter import Parameter

from edge_robot_msgs.msg import NodeStatistics
from malformed_messages import INPUT_TOPICS, InputTopic, malformed, mount, odometry
from robot_nodes import graph, topics
from ros_helpers import spinning, wait_until
import test_gsrmr_nodes
import test_onboard_llm_node
from test_onboard_llm_node import TINY_MODEL

scene_file = test_gsrmr_nodes.scene_file
"""Fixture: a small real Gaussian scene (a coloured wall)."""
cache = test_onboard_llm_node.cache
"""Fixture: the tiny language model's built variants."""

FUZZ_CASES = int(os.environ.get("FUZZ_CASES", 10_000))
"""Cases per input topic: 10,000 in the suite (the same every run); bench/fuzz_inputs.py sets more,
drawn afresh each run, and FUZZ_RESULTS, a file that gets one JSON line per topic."""
RESULTS = os.environ.get("FUZZ_RESULTS")
MIDDLEWARE_CASES = 200
NODES = sorted({topic.node for topic in INPUT_TOPICS})
SERVED_STAMP_S = 5000.0
"""Stamp of the valid messages after the fuzz: after anything but the fuzz's far-future stamps."""


def node_spec(name: str, scene: Path, llm_cache: Path, lockstep: bool = False) -> tuple[graph.NodeSpec, dict]:
    """The graph's spec (its real parameter file) without remappings, and the test's overrides; with
    `lockstep` the planner plans and commands on each message (else on timers, which the fast layer
    does not run)."""
    specs = {
        "sim_world": (graph.sim_world(), {"wait_for_subscribers": 60.0}),  # no subscriber: the world never steps
        "lane_keeping_controller": (graph.lane_keeping_controller(), {}),
        "lidar_detector": (graph.lidar_detector(repeatable=True), {"device": "cpu"}),
        "trajectory_predictor": (graph.trajectory_predictor(), {}),
        "croa_planner": (graph.croa_planner(lockstep=lockstep), {"croa.horizon": 12}),
        "gsrmr_uplink": (graph.gsrmr_uplink(str(scene)), {}),
        "mr_server": (graph.mr_server(str(scene)), {}),
        "onboard_llm": (graph.onboard_llm(str(TINY_MODEL), str(llm_cache)),
                        {"build_missing": False, "variants": ["int4"], "threads": [1], "context_tokens": 512,
                         "max_new_tokens": 8}),
    }
    spec, overrides = specs[name]
    return replace(spec, remappings=()), overrides


def create_node(context, name: str, scene: Path, llm_cache: Path, remapped: bool = False):
    """The node; `remapped` for the middleware sample: each private input on a topic of its own, the
    planner in lockstep (so the sample's accepted messages are planned on)."""
    spec, overrides = node_spec(name, scene, llm_cache, lockstep=remapped)
    if remapped:
        spec = replace(spec, remappings=tuple((topic.topic, f"/fuzz/{name}/{topic.topic[len('~/input/'):]}")
                                              for topic in INPUT_TOPICS if topic.node == name))
    return spec.create(context=context, parameter_overrides=[Parameter(k, value=v) for k, v in overrides.items()])


def guarded_callback(node, topic: InputTopic):
    """The callback the node subscribed on `topic` (its InputGuard wrapper around the handler)."""
    resolved = node.resolve_topic_name(topic.topic)
    matches = [subscription.callback for subscription in node.subscriptions if subscription.topic_name == resolved]
    assert len(matches) == 1, f"{topic.name}: {[s.topic_name for s in node.subscriptions]}"
    return matches[0]


def worker_failures(node) -> int:
    """Failures counted by the node's worker thread (detection, decision, render, answer)."""
    counters = getattr(node, "counters", None)
    fields = ("failed_frames", "failed_renders")
    failures = sum(getattr(counters, name, 0) for name in fields) if counters is not None else 0
    return failures + getattr(node, "failed", 0)


# --- a valid message is served after the fuzz ----------------------------------------------------

def served(node, name: str) -> None:
    """Send each input topic's valid message (with what the node needs beside it) and see it served."""
    callbacks = {topic.topic: guarded_callback(node, topic) for topic in INPUT_TOPICS if topic.node == name}
    valid = {topic.topic: topic.valid(SERVED_STAMP_S) for topic in INPUT_TOPICS if topic.node == name}
    rejected_before = node.inputs.rejected_total()

    def send(*topic_names):
        for topic_name in topic_names:
            callbacks[topic_name](valid[topic_name])

    def odometry_around_stamp(topic_name="~/input/odometry"):
        callbacks[topic_name](odometry(SERVED_STAMP_S - 0.05))  # older than the fuzz's newest: forgets them
        callbacks[topic_name](odometry(SERVED_STAMP_S + 0.05))

    if name == "sim_world":
        send("~/input/cmd_vel")
        assert node._command == (1.5, 0.1)
    elif name == "lane_keeping_controller":
        send("~/input/odom")
        assert node._state[:3] == pytest.approx((50.0, -5.25, 0.0))
    elif name == "lidar_detector":
        processed = node.counters.processed
        send("~/input/pointcloud")
        assert wait_until(lambda: node.counters.processed > processed)
    elif name == "trajectory_predictor":
        processed = node.counters.processed
        callbacks["~/input/tf_static"](mount())
        odometry_around_stamp()
        send("~/input/objects")
        assert node.counters.processed == processed + 1
    elif name == "croa_planner":
        send("~/input/target_id", "~/input/odometry", "~/input/predicted_objects")
        assert node._requested_target == 3 and node._odometry[:2] == pytest.approx((50.0, -5.25))
        assert [prediction.track.object_id for prediction in node._predictions] == [3]
    elif name == "gsrmr_uplink":
        decided = node.counters.decided
        callbacks["~/input/tf_static"](mount())
        send("~/input/camera_info")
        odometry_around_stamp()
        send("~/input/image")
        assert wait_until(lambda: node.counters.decided > decided)
    elif name == "mr_server":
        shown, rendered = node.counters.shown_uploads, node.counters.rendered
        send("~/input/camera_info", "~/input/uplink", "~/input/pose", "~/input/true_image")
        assert node.counters.shown_uploads == shown + 1
        assert wait_until(lambda: node.counters.rendered > rendered)
    elif name == "onboard_llm":
        send("~/input/detected_objects", "~/input/predicted_objects", "~/input/planner_status")
        prompt = node.system_prompt()
        assert "car" in prompt and "driving at 1.5 m/s" in prompt
        questions, outcomes = node.questions, node.answered + node.refused + node.failed
        send("~/input/question")  # answered, or refused by the request-rate bound the fuzz used up
        assert node.questions == questions + 1
        assert wait_until(lambda: node.answered + node.refused + node.failed > outcomes)
    assert node.inputs.rejected_total() == rejected_before


# --- the fast layer: 10,000 cases per topic through the callback ----------------------------------

@dataclasses.dataclass
class Outcomes:
    rejected: int = 0
    accepted: int = 0


def fuzz_topic(node, topic: InputTopic, cases: int, derandomize: bool = True) -> Outcomes:
    """`cases` malformed messages through the topic's guarded callback: any exception but the guard's
    own rejection fails; each rejection is counted once with its reason."""
    callback, outcomes = guarded_callback(node, topic), Outcomes()

    @settings(max_examples=cases, derandomize=derandomize, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(malformed(topic.valid()))
    def one_case(message):
        before = node.inputs.rejected[topic.topic]
        callback(message)
        after = node.inputs.rejected[topic.topic]
        assert after - before in (0, 1)
        if after > before:
            outcomes.rejected += 1
            assert node.inputs.last_reason[topic.topic]
        else:
            outcomes.accepted += 1
    one_case()
    return outcomes


def prime(node, name: str) -> None:
    """Each of the node's inputs once valid (its mount, camera, odometry), so the fuzz reaches what
    the node does with them and not only its 'not yet' checks."""
    rejected = node.inputs.rejected_total()
    for topic in (topic for topic in INPUT_TOPICS if topic.node == name and topic.topic != "~/input/question"):
        guarded_callback(node, topic)(topic.valid())
    assert node.inputs.rejected_total() == rejected


@pytest.mark.filterwarnings("error::RuntimeWarning")  # an overflow or invalid value inside a node fails the case
@pytest.mark.parametrize("topic", INPUT_TOPICS, ids=lambda topic: topic.name)
def test_malformed_messages_on_every_input_are_rejected_and_the_node_keeps_serving(context, scene_file, cache, topic):
    node = create_node(context, topic.node, scene_file, cache)
    try:
        prime(node, topic.node)
        started = time.monotonic()
        outcomes = fuzz_topic(node, topic, FUZZ_CASES, derandomize="FUZZ_CASES" not in os.environ)
        if RESULTS:
            with open(RESULTS, "a") as results:
                results.write(json.dumps({"node": topic.node, "topic": topic.topic, "type": topic.message_type,
                                          "cases": FUZZ_CASES, **dataclasses.asdict(outcomes),
                                          "seconds": time.monotonic() - started,
                                          "last_reason": node.inputs.last_reason.get(topic.topic, "")}) + "\n")
        assert outcomes.rejected + outcomes.accepted == FUZZ_CASES
        assert outcomes.rejected > 0 or topic.every_value_valid
        assert node.inputs.rejected[topic.topic] == outcomes.rejected
        served(node, topic.node)
        assert worker_failures(node) == 0
    finally:
        node.destroy_node()


# --- the middleware sample: malformed messages over real rclpy --------------------------------------

class Publisher(Node):
    """Publishes the sample on the node's remapped inputs (with each subscription's own QoS) and keeps
    /node_statistics."""

    def __init__(self, context, node, name: str) -> None:
        super().__init__("fuzz_publisher", context=context)
        self.publishers_by_topic = {}
        for topic in (topic for topic in INPUT_TOPICS if topic.node == name):
            resolved = node.resolve_topic_name(topic.topic)
            subscription = next(s for s in node.subscriptions if s.topic_name == resolved)
            self.publishers_by_topic[topic.topic] = self.create_publisher(
                type(topic.valid()), resolved, subscription.qos_profile)
        self.statistics: list[NodeStatistics] = []
        self.create_subscription(NodeStatistics, topics.NODE_STATISTICS, self.statistics.append, 100)


def sample(topic: InputTopic, count: int) -> list:
    messages = []

    @settings(max_examples=count, derandomize=True, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(malformed(topic.valid()))
    def keep(message):
        messages.append(message)
    keep()
    return messages[:count]


NODES_WITHOUT_STATISTICS = ("sim_world",)
"""Nodes that publish no /node_statistics (the world is the source, not a processing node)."""


@pytest.mark.parametrize("name", NODES)
def test_malformed_messages_over_rclpy_are_rejected_counted_and_the_node_keeps_serving(context, scene_file, cache,
                                                                                       name):
    node = create_node(context, name, scene_file, cache, remapped=True)
    publisher = Publisher(context, node, name)
    with spinning(context, node, publisher):
        assert wait_until(lambda: all(p.get_subscription_count() for p in publisher.publishers_by_topic.values()))
        sent = 0
        for topic in (topic for topic in INPUT_TOPICS if topic.node == name):
            for message in sample(topic, MIDDLEWARE_CASES):
                publisher.publishers_by_topic[topic.topic].publish(message)
                sent += 1
                time.sleep(0.002)  # within the subscriptions' queues
        assert wait_until(lambda: node.inputs.rejected_total() > 0)
        time.sleep(0.5)  # the last messages in flight
        rejected = node.inputs.rejected_total()
        assert rejected <= sent
        if name not in NODES_WITHOUT_STATISTICS:
            assert wait_until(lambda: any(s.node == name and s.rejected >= rejected for s in publisher.statistics))
        served(node, name)
        assert worker_failures(node) == 0
