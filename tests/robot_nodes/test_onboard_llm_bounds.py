"""The language model is bounded and read-only, over real rclpy with the tiny llama2.c model: an
over-long question is rejected (counted as rejected), requests beyond the rate bound are refused
(counted as dropped), both with the reason; the node publishes only text, and no node of any graph
takes its answers as input."""
from __future__ import annotations

from dataclasses import replace

import pytest
from action_msgs.msg import GoalStatus
from std_msgs.msg import String

from edge_robot_msgs.msg import LlmAnswerRecord, NodeStatistics
from onboard_llm.control import RateLimitedError, RequestRateLimiter
from robot_nodes import graph, topics
from robot_nodes.node_statistics import STATISTICS_QOS
from ros_helpers import spinning, wait_until
import test_onboard_llm_node
from test_onboard_llm_node import TINY_MODEL, Harness, llm_node

cache = test_onboard_llm_node.cache
"""The tiny model's built variants (the fixture)."""


def test_an_over_long_question_is_rejected_with_the_reason_and_counted_as_rejected(context, cache):
    node, harness = llm_node(context, cache, max_question_chars=40, max_new_tokens=8), Harness(context)
    statistics: list[NodeStatistics] = []
    harness.create_subscription(NodeStatistics, topics.NODE_STATISTICS, statistics.append, STATISTICS_QOS)
    with spinning(context, node, harness):
        too_long = harness.result(harness.send("Why " * 11))
        assert wait_until(lambda: harness.questions.get_subscription_count() > 0)
        harness.questions.publish(String(data="x" * 41))
        harness.questions.publish(String(data="  Lily went to the park  "))  # 21 characters once stripped
        assert wait_until(lambda: len(harness.answers) == 1)
        fine = harness.result(harness.send("Once upon a time"))
        node.statistics.publish()
        assert wait_until(lambda: statistics and statistics[-1].rejected == 2)
    assert too_long.status == GoalStatus.STATUS_ABORTED
    assert too_long.result.answer == "rejected: question of 43 characters exceeds max_question_chars 40"
    assert node.inputs.rejected["~/input/question"] == 1
    assert node.inputs.last_reason["~/input/question"] == "question of 41 characters exceeds max_question_chars 40"
    assert harness.answers[0].strip() and fine.status == GoalStatus.STATUS_SUCCEEDED
    assert statistics[-1].dropped == 0


def test_requests_beyond_the_rate_bound_are_refused_with_the_reason_and_counted_as_dropped(context, cache):
    node = llm_node(context, cache, max_requests_per_minute=0.5, request_burst=2, max_new_tokens=8)
    harness = Harness(context)
    records = []
    harness.create_subscription(LlmAnswerRecord, "/onboard_llm/output/answer_records", records.append, 10)
    statistics: list[NodeStatistics] = []
    harness.create_subscription(NodeStatistics, topics.NODE_STATISTICS, statistics.append, STATISTICS_QOS)
    with spinning(context, node, harness):
        responses = [harness.result(harness.send(f"Question {index}")) for index in range(3)]
        assert wait_until(lambda: len(records) == 3)
        node.statistics.publish()
        assert wait_until(lambda: statistics and statistics[-1].dropped == 1)
    assert [response.status for response in responses] == [GoalStatus.STATUS_SUCCEEDED] * 2 + [GoalStatus.STATUS_ABORTED]
    assert responses[2].result.answer.startswith(
        "refused: request refused: more than 0.5 requests per minute (burst 2); try again in ")
    assert node.refused == 1 and statistics[-1].rejected == 0
    assert [record.succeeded for record in records] == [True, True, False]
    assert records[2].answer == responses[2].result.answer


def test_the_rate_bound_refills_at_its_rate_up_to_its_burst():
    now = [0.0]
    limiter = RequestRateLimiter(per_minute=6.0, burst=2, clock=lambda: now[0])
    limiter.admit()
    limiter.admit()
    with pytest.raises(RateLimitedError, match=r"try again in 10\.0 s"):
        limiter.admit()
    now[0] = 10.0  # one token back: 6 per minute
    limiter.admit()
    with pytest.raises(RateLimitedError):
        limiter.admit()
    now[0] = 1000.0  # long idle: the bucket holds `burst`, no more
    limiter.admit()
    limiter.admit()
    with pytest.raises(RateLimitedError):
        limiter.admit()


def every_graph() -> dict[str, list[graph.NodeSpec]]:
    """Every node set the launch files, bringup and the main job build, each with the language model
    and as many other nodes as it takes."""
    everything = dict(planner="croa", mixed_reality_scene="scene.ply", llm=True)
    return {"simulation": graph.simulation_graph(**everything), "robot": graph.robot_graph(**everything),
            "gazebo": graph.gazebo_graph(**everything), "replay": graph.replay_graph("no_such_bag")}


LLM_ANSWERS = {topics.LLM_ANSWER, topics.LLM_ANSWER_RECORDS}


@pytest.mark.parametrize("name", every_graph())
def test_no_node_of_a_graph_takes_the_language_models_answers_as_input(name):
    readers = [(spec.name, private) for spec in every_graph()[name] for private, public in spec.remappings
               if public in LLM_ANSWERS and not private.startswith("~/output/")]
    assert readers == []


def test_the_language_models_outputs_are_its_answers_and_records_only():
    outputs = {public for private, public in graph.onboard_llm().remappings if private.startswith("~/output/")}
    assert outputs == LLM_ANSWERS


def test_the_running_language_model_publishes_only_its_answers_records_feedback_and_statistics(context, cache):
    spec = graph.onboard_llm(str(TINY_MODEL), str(cache), use_sim_time=False)
    spec = replace(spec, parameters={**spec.parameters, "build_missing": False, "variants": ["int4"], "threads": [1],
                                     "context_tokens": 256, "max_new_tokens": 8})
    node, harness = spec.create(context=context), Harness(context)
    expected = {topics.LLM_ANSWER, topics.LLM_ANSWER_RECORDS, topics.NODE_STATISTICS, "/rosout",
                "/parameter_events", f"{topics.LLM_ASK_ACTION}/_action/feedback", f"{topics.LLM_ASK_ACTION}/_action/status"}
    with spinning(context, node, harness):
        assert wait_until(lambda: {name for name, _ in harness.get_publisher_names_and_types_by_node(
            "onboard_llm", "/")} == expected)
        published = dict(harness.get_publisher_names_and_types_by_node("onboard_llm", "/"))
    assert published[topics.LLM_ANSWER] == ["std_msgs/msg/String"]
    assert topics.CMD_VEL not in published and not any(name.startswith("/planning/") for name in published)
