"""onboard_llm over real rclpy with the real tiny model (llama2.c stories260K) in real onnxruntime
sessions: the Ask action streams partial answers and returns timings, variant and energy; the topic
pair; cancellation mid-generation; the bounded queue refusing excess; grounding in the latest
detections, predictions and plan; malformed input rejected while the node keeps serving; long prompts
cut with a warning; start-up failures naming the file."""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
from action_msgs.msg import GoalStatus
from rclpy.action import ActionClient
from rclpy.node import Node
from rclpy.parameter import Parameter
from std_msgs.msg import Header, String

from edge_robot_msgs.action import Ask
from edge_robot_msgs.msg import DetectedObjects, PlannerStatus
from onboard_llm.variants import build_variants, cache_folder
from perception.objects import Box3D, DetectedObject, ObjectClass
from robot_nodes.conversions import detected_objects_to_msg
from robot_nodes.onboard_llm import OnboardLlmNode
from robot_nodes.parameters import ParameterError
from robot_nodes.runner import StartupError
from ros_helpers import TIMEOUT_S, spinning, wait_until

REPO = Path(__file__).resolve().parents[2]
TINY_MODEL = REPO / "data/llm/stories260K.bin"
SLOW_STEP_S = 0.01
"""Sleep added to each model step where a test needs generation to last (cancel, queue)."""


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("llm_cache")
    build_variants(TINY_MODEL, cache_folder(TINY_MODEL, root), window=64, evaluation_windows=2, calibration_windows=2,
                   threads=1, log=lambda line: None)
    return root


def llm_node(context, cache: Path, **parameters) -> OnboardLlmNode:
    values = {"model_path": str(TINY_MODEL), "cache_dir": str(cache), "build_missing": False,
              "variants": ["int4", "int8"], "threads": [1], "context_tokens": 512, "max_new_tokens": 40,
              "use_sim_time": False, **parameters}
    return OnboardLlmNode(context=context, parameter_overrides=[Parameter(k, value=v) for k, v in values.items()])


def slow_down(node: OnboardLlmNode) -> None:
    for llm in node.llm.models.values():
        forward = llm.forward

        def slow(ids, cache, last_only=False, forward=forward):
            time.sleep(SLOW_STEP_S)
            return forward(ids, cache, last_only)
        llm.forward = slow


class Harness(Node):
    def __init__(self, context) -> None:
        super().__init__("harness", context=context)
        self.ask = ActionClient(self, Ask, "/onboard_llm/ask")
        self.questions = self.create_publisher(String, "/onboard_llm/input/question", 10)
        self.detections = self.create_publisher(DetectedObjects, "/onboard_llm/input/detected_objects", 10)
        self.plans = self.create_publisher(PlannerStatus, "/onboard_llm/input/planner_status", 10)
        self.answers: list[str] = []
        self.create_subscription(String, "/onboard_llm/output/answer", lambda m: self.answers.append(m.data), 10)

    def send(self, question: str, latency_target: float = 0.0, priority: int = 0, feedback=None):
        """The goal handle once accepted."""
        assert self.ask.wait_for_server(timeout_sec=TIMEOUT_S)
        future = self.ask.send_goal_async(Ask.Goal(question=question, latency_target=latency_target, priority=priority),
                                          feedback_callback=feedback)
        assert wait_until(future.done)
        handle = future.result()
        assert handle.accepted
        return handle

    def result(self, handle):
        future = handle.get_result_async()
        assert wait_until(future.done)
        return future.result()


def test_ask_streams_partial_answers_and_returns_timings_variant_and_energy(context, cache):
    node, harness = llm_node(context, cache), Harness(context)
    slow_down(node)  # tokens as far apart as a real model's, so the feedback topic's queue never overflows
    with spinning(context, node, harness):
        feedback = []
        handle = harness.send("Once upon a time", feedback=lambda message: feedback.append(message.feedback))
        response = harness.result(handle)
        result = response.result
        # Feedback and result travel on different channels: the last feedback may come after the result.
        assert wait_until(lambda: feedback and feedback[-1].generated_tokens == result.generated_tokens)
    assert response.status == GoalStatus.STATUS_SUCCEEDED
    counts = [item.generated_tokens for item in feedback]
    assert counts == list(range(1, result.generated_tokens + 1))
    assert all(later.partial_answer.startswith(earlier.partial_answer.rstrip("\ufffd"))
               for earlier, later in zip(feedback, feedback[1:]))
    assert result.answer == feedback[-1].partial_answer and result.answer.strip()
    assert result.variant in ("int4", "int8")
    assert result.prompt_tokens > 20  # the system prompt with the scene summary, then the question
    assert 0 < result.time_to_first_token <= result.total_time and result.time_per_output_token > 0
    assert result.energy > 0 and result.energy_source == node.llm.meter.source


def test_topic_questions_are_answered_and_an_empty_one_is_rejected(context, cache):
    node, harness = llm_node(context, cache), Harness(context)
    with spinning(context, node, harness):
        assert wait_until(lambda: harness.questions.get_subscription_count() > 0)
        harness.questions.publish(String(data="   "))
        harness.questions.publish(String(data="Lily went to the park"))
        assert wait_until(lambda: len(harness.answers) == 1)
    assert harness.answers[0].strip()
    assert node.inputs.rejected["~/input/question"] == 1
    assert node.inputs.last_reason["~/input/question"] == "empty question"


def test_a_goal_cancelled_mid_generation_ends_early_with_what_it_has(context, cache):
    node, harness = llm_node(context, cache, max_new_tokens=300), Harness(context)
    slow_down(node)
    with spinning(context, node, harness):
        feedback = []
        handle = harness.send("Once upon a time", feedback=lambda message: feedback.append(message))
        assert wait_until(lambda: len(feedback) >= 3)
        cancel = handle.cancel_goal_async()
        assert wait_until(cancel.done)
        response = harness.result(handle)
    assert response.status == GoalStatus.STATUS_CANCELED
    assert 3 <= response.result.generated_tokens < 100
    assert response.result.answer


def test_requests_beyond_the_queue_bound_are_refused_with_the_reason(context, cache):
    node, harness = llm_node(context, cache, queue_size=1, max_new_tokens=30), Harness(context)
    slow_down(node)
    with spinning(context, node, harness):
        handles = [harness.send(f"Question {index}") for index in range(3)]
        responses = [harness.result(handle) for handle in handles]
    refused = [r for r in responses if r.status == GoalStatus.STATUS_ABORTED]
    assert len(refused) == 1 and node.refused == 1
    assert refused[0].result.answer.startswith("refused: request refused: 1 requests already wait (queue bound 1)")
    assert sum(r.status == GoalStatus.STATUS_SUCCEEDED for r in responses) == 2


def test_the_system_prompt_summarises_the_latest_detections_and_plan_and_bad_messages_are_rejected(context, cache):
    node, harness = llm_node(context, cache), Harness(context)
    car = DetectedObject(ObjectClass.CAR, 0.9, Box3D([12.0, 0.0, 0.0], [4.0, 1.8, 1.5], 0.0))
    with spinning(context, node, harness):
        assert wait_until(lambda: harness.detections.get_subscription_count() > 0
                          and harness.plans.get_subscription_count() > 0)
        assert "Detections: none received yet." in node.system_prompt()
        bad = detected_objects_to_msg([car], Header(frame_id="lidar"))
        bad.objects[0].bbox.center.position.x = float("nan")
        harness.detections.publish(bad)
        harness.detections.publish(detected_objects_to_msg([car, car], Header(frame_id="lidar")))
        harness.plans.publish(PlannerStatus(target_id=3, occlusion_ratio_now=0.25, linear_velocity=1.5))
        assert wait_until(lambda: "Planner:" in node.system_prompt() and "2 car" in node.system_prompt())
        harness.plans.publish(PlannerStatus(linear_velocity=float("inf")))
        assert wait_until(lambda: node.inputs.rejected["~/input/planner_status"] == 1)
        response = harness.result(harness.send("What is ahead?"))
    prompt = node.system_prompt()
    assert "car 12 m ahead" in prompt and "driving at 1.5 m/s, watching object 3, 25% hidden" in prompt
    assert node.inputs.rejected["~/input/detected_objects"] == 1
    assert "not finite" in node.inputs.last_reason["~/input/detected_objects"]
    assert response.status == GoalStatus.STATUS_SUCCEEDED


def test_a_prompt_longer_than_the_context_is_cut_with_a_warning(context, cache):
    node, harness = llm_node(context, cache, context_tokens=256, max_new_tokens=16, max_question_chars=3000), Harness(context)
    with spinning(context, node, harness):
        response = harness.result(harness.send("The dog ran. " * 200))
    assert response.status == GoalStatus.STATUS_SUCCEEDED
    assert response.result.prompt_tokens == 256 - 16
    assert node.truncated_prompts == 1


def test_bad_goals_are_aborted_with_the_reason(context, cache):
    node, harness = llm_node(context, cache), Harness(context)
    with spinning(context, node, harness):
        empty = harness.result(harness.send(""))
        negative = harness.result(harness.send("Hello", latency_target=-1.0))
        fine = harness.result(harness.send("Hello"))
    assert empty.status == GoalStatus.STATUS_ABORTED and empty.result.answer == "rejected: empty question"
    assert negative.status == GoalStatus.STATUS_ABORTED and "latency_target must be" in negative.result.answer
    assert fine.status == GoalStatus.STATUS_SUCCEEDED


def test_start_up_fails_naming_the_missing_or_corrupt_file_and_what_to_do(context, cache, tmp_path):
    with pytest.raises(StartupError, match=r"no/such/model\.bin: model not found"):
        llm_node(context, cache, model_path="/no/such/model.bin")
    corrupt = tmp_path / "stories260K.bin"
    corrupt.write_bytes(TINY_MODEL.read_bytes()[:1000])
    with pytest.raises(StartupError, match=r"stories260K\.bin: .* truncated or not a llama2.c checkpoint"):
        llm_node(context, cache, model_path=str(corrupt), tokenizer_path=str(REPO / "data/llm/tok512.bin"),
                 build_missing=True)
    with pytest.raises(StartupError, match=r"no variants built .* build-llm-variants --model"):
        llm_node(context, tmp_path / "empty_cache")
    with pytest.raises(ParameterError, match="variants must be a non-empty subset"):
        llm_node(context, cache, variants=["int3"])


def test_the_energy_figure_grows_with_the_answer(context, cache):
    node, harness = llm_node(context, cache, max_new_tokens=8), Harness(context)
    with spinning(context, node, harness):
        short = harness.result(harness.send("Once upon a time")).result
    node_long, harness_long = llm_node(context, cache, max_new_tokens=120), Harness(context)
    with spinning(context, node_long, harness_long):
        long = harness_long.result(harness_long.send("Once upon a time")).result
    assert long.generated_tokens > short.generated_tokens
    assert np.isfinite(long.energy) and long.energy > short.energy
