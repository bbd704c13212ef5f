"""End-to-end benchmark: sensor-to-command latency and dropped frames of the whole stack in real time.

Run by hand from the repository root (`source scripts/env.sh` first):

    python bench/bench_end_to_end.py [--duration 30] [--llm] [--no-docs]

The stack runs as the main job composes it (robot_nodes.bringup.Bringup, one process, an executor
thread per node), in REAL-TIME mode (simulated time keeps the wall's pace, real-time factor 1; a
slow node drops frames instead of holding the world back): sim_world with 10 Hz lidar and 10 Hz
camera on the default scenario, lidar detector, tracker and predictor, the CROA planner driving,
the GSRMR uplink and mr_server with the scenario's cached Gaussian-splatting scene. The language
model is off by default (it only works when asked; --llm adds it and asks the main job's
questions, so its answers compete for the cores). Beside them an in-process measuring node
subscribes to the chain's topics and to /node_statistics.

Sensor-to-command latency of a lidar scan stamped t:
  w0 = wall time at which the measuring node's subscriber received the scan (an arrival in a
       subscriber of this process: it includes that subscriber's own DDS delivery and executor
       wait, like every other arrival below);
  the scan's plan = the first /planning/croa_planner/status whose header stamp minus its
       prediction_age is t within 1 ms (the planner's first cycle on the predictions of that scan);
  latency = wall arrival of the first /cmd_vel received after that status arrived, minus w0.
A scan without such a status is "not planned on" (a drop along the chain: the detector dropped it,
or newer predictions replaced its own before a planning cycle took them). Per stage, for the scans
that reached the stage's end: cloud → objects (arrival of /perception/objects stamped t),
→ predictions (/prediction/objects stamped t), → plan (that status), → /cmd_vel; the detector's own
processing time (its NodeStatistics) is in the node table.

Dropped frames per node: each node's last NodeStatistics message (dropped / received; for the
planner a dropped input is a planning cycle replaced before it ran). The world's achieved
real-time factor: simulated seconds per wall second from its first step to the end.

Before the run it waits (up to --max-wait-for-quiet, polling every 30 s) for the 1-minute load
average to fall below --quiet-load, since other work shares the cores; the load and the other
processes' CPU use during the run are reported. Prints a Markdown block and (unless --no-docs)
writes it into docs/benchmarks.md under END_TO_END_HEADING, with the latency histograms in
docs/images/bench_end_to_end.png.
"""
from __future__ import annotations

import argparse
import bisect
import os
import shlex
import struct
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from rclpy.node import Node
from rclpy.qos import qos_profile_sensor_data
from tqdm import tqdm

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))  # run by hand from a checkout

from edge_robot_msgs.msg import DetectedObjects, NodeStatistics, PlannerStatus, PredictedObjects  # noqa: E402
from geometry_msgs.msg import Twist  # noqa: E402
from sensor_msgs.msg import PointCloud2  # noqa: E402

from evaluation import report_plots  # noqa: E402
from evaluation.report import machine_metadata, markdown_table  # noqa: E402
from robot_nodes import graph, topics  # noqa: E402
from robot_nodes.bringup import Bringup, simulation_scene  # noqa: E402
from robot_nodes.conversions import stamp_ns  # noqa: E402
from robot_nodes.evaluate import NodeFigures  # noqa: E402
from robot_nodes.main_job import LLM_ASK_AT_S, SCENE_QUESTIONS, STATISTICS_SETTLE_S, SceneQuestioner  # noqa: E402
from robot_nodes.node_statistics import STATISTICS_QOS  # noqa: E402

GOAL_P99_MS = 250.0
"""Goal: 99th percentile of sensor-to-/cmd_vel latency, ms."""
GOAL_DROPPED_SHARE = 0.05
"""Goal: no node drops more than this share of its inputs."""
STATUS_MATCH_NS = 1_000_000
"""A plan status belongs to a scan when its stamp minus prediction_age is within this of the scan's stamp."""
LOAD_POLL_S = 30.0
"""Seconds between two looks at the load average while waiting for a quieter machine."""
OTHER_PROCESS_MIN_CORES = 0.05
"""Other processes using at least this many cores during the run are named in the report."""
END_TO_END_HEADING = "## End to end (real time, 10 Hz lidar and camera)"
DOCS = REPO_ROOT / "docs" / "benchmarks.md"
IMAGE = REPO_ROOT / "docs" / "images" / "bench_end_to_end.png"

STAGES = (("cloud → objects", "lidar_detector"),
          ("objects → predictions", "trajectory_predictor"),
          ("predictions → plan", "croa_planner (waiting for its cycle, then planning)"),
          ("plan → /cmd_vel", "croa_planner (its command timer)"))
"""The chain's stages in order, each with the node whose work (or wait) it is."""


def header_stamp_ns(raw: bytes) -> int:
    """The header stamp of a serialized message that starts with a std_msgs/Header, nanoseconds.
    Read from the CDR bytes, so a large cloud or prediction is not deserialized in this process
    (it shares the interpreter with the nodes it measures)."""
    # 4 bytes of encapsulation (its second byte: 1 = little endian), then int32 sec, uint32 nanosec.
    sec, nanosec = struct.unpack_from("<iI" if raw[1] == 1 else ">iI", raw, 4)
    return sec * 1_000_000_000 + nanosec


@dataclass
class Arrivals:
    """What the measuring node received, each with its wall arrival time (time.monotonic, s)."""

    scans: dict[int, float] = field(default_factory=dict)
    """Lidar scan stamp (ns) → arrival."""
    detections: dict[int, float] = field(default_factory=dict)
    """Stamp (ns) → arrival of the first /perception/objects with it."""
    predictions: dict[int, float] = field(default_factory=dict)
    """Stamp (ns) → arrival of the first /prediction/objects with it."""
    statuses: list[tuple[float, int, float, bool]] = field(default_factory=list)
    """(arrival, stamp ns, prediction_age s, fallback) of every plan status, in arrival order."""
    commands: list[float] = field(default_factory=list)
    """Arrivals of /cmd_vel, in order."""
    statistics: dict[str, list[NodeStatistics]] = field(default_factory=dict)
    """Node name → its NodeStatistics messages, in order."""


class ChainProbe(Node):
    """Notes the arrival of every message along lidar → detections → predictions → plan status →
    /cmd_vel, and collects /node_statistics. Callbacks only append: this node shares the
    interpreter with the stack."""

    def __init__(self, context) -> None:
        super().__init__("end_to_end_probe", context=context)
        self.arrivals = Arrivals()
        stamped = ((topics.LIDAR_POINTS, PointCloud2, qos_profile_sensor_data, self.arrivals.scans),
                   (topics.DETECTED_OBJECTS, DetectedObjects, 10, self.arrivals.detections),
                   (topics.PREDICTED_OBJECTS, PredictedObjects, 10, self.arrivals.predictions))
        for topic, message_type, qos, arrivals in stamped:
            self.create_subscription(message_type, topic, lambda raw, arrivals=arrivals: arrivals.setdefault(
                header_stamp_ns(raw), time.monotonic()), qos, raw=True)
        self.create_subscription(PlannerStatus, topics.CROA_PLANNER_STATUS, self._on_status, 10)
        self.create_subscription(Twist, topics.CMD_VEL, lambda _: self.arrivals.commands.append(time.monotonic()),
                                 10, raw=True)
        self.create_subscription(NodeStatistics, topics.NODE_STATISTICS, self._on_statistics, STATISTICS_QOS)

    def _on_status(self, status: PlannerStatus) -> None:
        self.arrivals.statuses.append((time.monotonic(), stamp_ns(status.header.stamp), status.prediction_age,
                                       status.fallback))

    def _on_statistics(self, message: NodeStatistics) -> None:
        self.arrivals.statistics.setdefault(message.node, []).append(message)


@dataclass
class ScanChain:
    """The wall arrivals (s) along one scan's chain; None where it did not get that far."""

    stamp_ns: int
    scan: float
    detections: float | None = None
    predictions: float | None = None
    status: float | None = None
    status_fallback: bool = False
    """The plan made on it was the planner's braking fallback."""
    command: float | None = None

    def stage_ends(self) -> list[float | None]:
        return [self.scan, self.detections, self.predictions, self.status, self.command]


def scan_chains(arrivals: Arrivals, last_stamp_ns: int) -> list[ScanChain]:
    """Every scan stamped up to `last_stamp_ns` with what arrived of its chain (see the module's definition)."""
    chains = {stamp: ScanChain(stamp, arrival, arrivals.detections.get(stamp), arrivals.predictions.get(stamp))
              for stamp, arrival in sorted(arrivals.scans.items()) if stamp <= last_stamp_ns}
    stamps = sorted(chains)
    for arrival, status_ns, prediction_age, fallback in arrivals.statuses:
        if prediction_age < 0 or not stamps:  # before the first predictions
            continue
        planned_on = status_ns - round(prediction_age * 1e9)
        index = bisect.bisect_left(stamps, planned_on)
        nearest = min(stamps[max(index - 1, 0):index + 1], key=lambda stamp: abs(stamp - planned_on))
        chain = chains[nearest]
        if abs(nearest - planned_on) <= STATUS_MATCH_NS and chain.status is None:
            chain.status, chain.status_fallback = arrival, fallback
    commands = arrivals.commands
    for chain in chains.values():
        if chain.status is not None:
            index = bisect.bisect_right(commands, chain.status)
            chain.command = commands[index] if index < len(commands) else None
    return list(chains.values())


@dataclass
class LatencyFigures:
    """Median and 99th percentile of a set of latencies, ms."""

    samples_ms: np.ndarray

    @property
    def count(self) -> int:
        return len(self.samples_ms)

    @property
    def median(self) -> float:
        return float(np.median(self.samples_ms)) if self.count else float("nan")

    @property
    def p99(self) -> float:
        return float(np.percentile(self.samples_ms, 99)) if self.count else float("nan")


def stage_latencies(chains: list[ScanChain]) -> list[LatencyFigures]:
    """Per stage of STAGES, the latencies of the scans that reached its end."""
    figures = []
    for stage in range(len(STAGES)):
        samples = [1e3 * (ends[stage + 1] - ends[stage]) for ends in (chain.stage_ends() for chain in chains)
                   if ends[stage] is not None and ends[stage + 1] is not None]
        figures.append(LatencyFigures(np.asarray(samples, dtype=float)))
    return figures


def wait_for_quiet_machine(quiet_load: float, max_wait_s: float) -> tuple[float, float]:
    """Wait until the 1-minute load average is below `quiet_load` or `max_wait_s` passed; returns
    (the load average then, seconds waited)."""
    started = time.monotonic()
    load = os.getloadavg()[0]
    while load >= quiet_load and time.monotonic() - started < max_wait_s:
        print(f"load average {load:.2f} >= {quiet_load:g}: waiting for a quieter machine "
              f"({(time.monotonic() - started) / 60:.1f} of {max_wait_s / 60:.0f} min)", flush=True)
        time.sleep(LOAD_POLL_S)
        load = os.getloadavg()[0]
    return load, time.monotonic() - started


def process_cpu_seconds() -> dict[int, tuple[float, str]]:
    """pid → (CPU seconds used so far, command line) of every process readable in /proc."""
    ticks = os.sysconf("SC_CLK_TCK")
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
        except OSError:  # ended meanwhile
            continue
        # After the command's ")": state is field 3 of stat, utime and stime fields 14 and 15.
        found[int(entry.name)] = ((int(fields[11]) + int(fields[12])) / ticks, command or entry.name)
    return found


def other_processes(before: dict[int, tuple[float, str]], after: dict[int, tuple[float, str]],
                    wall_s: float) -> list[tuple[float, str]]:
    """(cores used during the run, command) of the processes other than this one that used at
    least OTHER_PROCESS_MIN_CORES, busiest first (processes that ended during the run are missed)."""
    busy = []
    for pid, (seconds, command) in after.items():
        if pid == os.getpid():
            continue
        cores = (seconds - before.get(pid, (0.0, ""))[0]) / wall_s
        if cores >= OTHER_PROCESS_MIN_CORES:
            busy.append((cores, command))
    return sorted(busy, reverse=True)


@dataclass
class RunResult:
    """What one measured run gave."""

    arrivals: Arrivals
    simulated_s: float
    """Simulated seconds from the world's first step to the end."""
    wall_s: float
    """Wall seconds over the same span."""
    load_before: float
    """1-minute load average just before the stack started."""
    load_after: tuple[float, float, float]
    """Load averages at the end of the run (this run included)."""
    others: list[tuple[float, str]]
    """Other processes' CPU use during the run (other_processes)."""


def run_stack(duration: float, llm: bool, load_before: float) -> RunResult:
    """Compose the stack in real time with a ChainProbe, run it for `duration` simulated seconds
    (and STATISTICS_SETTLE_S wall seconds more, for the nodes' last statistics) and collect."""
    scene = str(simulation_scene(None, None, duration))
    specs = graph.simulation_graph(real_time_factor=1.0, planner="croa", mixed_reality_scene=scene, llm=llm,
                                   lockstep=False)
    bringup = Bringup(specs)
    probe = ChainProbe(bringup.context)
    bringup.add_node(probe)
    if llm:
        bringup.add_node(SceneQuestioner(bringup.context, SCENE_QUESTIONS, min(LLM_ASK_AT_S, duration / 2),
                                         lambda: bringup.sim_time))
    marks: dict[str, tuple[float, float]] = {}  # 'first step' and 'end': (wall, simulated) seconds
    cpu_before = process_cpu_seconds()
    with tqdm(total=duration, desc="real-time run", unit="sim s",
              bar_format="{l_bar}{bar}| {n:.1f}/{total:.0f} sim s [{elapsed}<{remaining}]") as bar:
        def done() -> bool:
            now, simulated = time.monotonic(), bringup.sim_time
            bar.update(min(simulated, duration) - bar.n)
            if simulated > 0:  # the world waits for the planner's first command at 0
                marks.setdefault("first step", (now, simulated))
            if simulated <= duration:
                return False
            end_wall, _ = marks.setdefault("end", (now, simulated))
            return now - end_wall > STATISTICS_SETTLE_S
        try:
            bringup.spin_until(done)  # also returns when the bringup gave up on a node that kept dying
        finally:
            bringup.shutdown()
    if "first step" not in marks:
        raise RuntimeError("the world never stepped (a node failed at start-up? see its log above)")
    # Without an 'end' a node's executor died early: the figures are those up to then.
    (first_wall, first_sim), (end_wall, end_sim) = marks["first step"], marks.get("end", (time.monotonic(),
                                                                                           bringup.sim_time))
    wall_s = end_wall - first_wall
    return RunResult(probe.arrivals, end_sim - first_sim, wall_s, load_before, os.getloadavg(),
                     other_processes(cpu_before, process_cpu_seconds(), wall_s))


def milliseconds(value: float) -> str:
    return "–" if np.isnan(value) else f"{value:.0f}"


def report(result: RunResult, duration: float, command: str, waited_s: float) -> tuple[str, bytes]:
    """The Markdown section (without its heading) and the histogram PNG."""
    chains = scan_chains(result.arrivals, round(duration * 1e9))
    complete = [chain for chain in chains if chain.command is not None]
    total = LatencyFigures(np.asarray([1e3 * (chain.command - chain.scan) for chain in complete], dtype=float))
    stages = stage_latencies(chains)
    nodes = [NodeFigures.of(name, messages) for name, messages in sorted(result.arrivals.statistics.items())]
    metadata = machine_metadata()

    stage_p99_sum = sum(stage.p99 for stage in stages if stage.count)
    shares = [stage.p99 / stage_p99_sum if stage.count and stage_p99_sum else 0.0 for stage in stages]
    stage_rows = [[name, node, str(stage.count), milliseconds(stage.median), milliseconds(stage.p99), f"{share:.0%}"]
                  for (name, node), stage, share in zip(STAGES, stages, shares)]
    stage_rows.append(["**sensor → /cmd_vel**", "whole chain", str(total.count), f"**{milliseconds(total.median)}**",
                       f"**{milliseconds(total.p99)}**", ""])
    node_rows = [[f"`{node.name}`", str(node.received), str(node.processed),
                  f"{node.dropped} ({node.dropped_share:.1%})" + (" **> 5 %**" if node.dropped_share > GOAL_DROPPED_SHARE
                                                                  else ""),
                  milliseconds(float(np.median(node.times_ms))) if len(node.times_ms) else "–",
                  milliseconds(float(np.percentile(node.times_ms, 99))) if len(node.times_ms) else "–",
                  f"{node.cpu_share:.0%}"] for node in nodes]
    reached = [sum(chain.stage_ends()[stage] is not None for chain in chains) for stage in range(len(STAGES) + 1)]
    fallbacks = sum(chain.status_fallback for chain in chains if chain.status is not None)
    dropping = [node for node in nodes if node.dropped_share > GOAL_DROPPED_SHARE]
    latency_met = total.count > 0 and total.p99 <= GOAL_P99_MS
    goal_met = latency_met and not dropping
    bottleneck = STAGES[int(np.argmax(shares))]
    rtf = result.simulated_s / result.wall_s if result.wall_s > 0 else float("nan")
    others = "; ".join(f"`{other[:70]}` {cores:.2f} cores" for cores, other in result.others[:5]) or "nothing"

    lines = [
        f"`{command}`, {metadata['date']}: {metadata['cpu']}, {metadata['cpu cores']} cores, {metadata['memory']}; "
        f"Python {metadata['python']}, git {metadata['git commit']}.",
        "",
        f"- Load: 1-minute load average {result.load_before:.2f} when the run started"
        + (f" (after waiting {waited_s / 60:.1f} min for it to fall)" if waited_s > 1 else "")
        + f"; {', '.join(f'{load:.2f}' for load in result.load_after)} (1, 5, 15 min) at its end, this run "
        f"included. Other processes during the run: {others}.",
        f"- {duration:g} simulated s; the world's achieved real-time factor {rtf:.2f} "
        f"({result.simulated_s:.1f} simulated s in {result.wall_s:.1f} wall s from its first step). Language model "
        + ("on (the main job's questions asked)." if any(n.name == "onboard_llm" for n in nodes) else "off."),
        "",
        "The whole stack in one process (`Bringup`, an executor thread per node), as the main job runs it: sim_world "
        "(urban_default, lidar and camera at 10 Hz, real-time factor 1, free-running), lidar detector, tracker and "
        "predictor, CROA planner driving, GSRMR uplink and mr_server on the scenario's cached Gaussian scene, and a "
        "measuring node. Sensor-to-command latency of a lidar scan stamped t: from its arrival in the measuring "
        "node's subscriber (wall time) to the arrival there of the first /cmd_vel after the first planner status "
        "whose stamp minus prediction_age is t (within 1 ms), i.e. the first plan made on that scan's predictions. "
        "Scans without such a status are \"not planned on\". Stages: between the arrivals of the scan, "
        "/perception/objects and /prediction/objects stamped t, that status and that /cmd_vel; each over the scans "
        "that reached its end. Scans published before the stack was up (the world starts stepping when its driver "
        "does not answer within its 10 s start-up wait, while the mixed-reality scene is still loading) reach no "
        "node and are not counted.",
        "",
        markdown_table(["stage", "node", "scans", "median (ms)", "p99 (ms)", "share of the stages' p99"],
                       stage_rows, right_aligned=(2, 3, 4, 5)),
        "",
        f"Scans along the chain: {reached[0]} received, {reached[1]} detected, {reached[2]} predicted, "
        f"{reached[3]} planned on ({fallbacks} of those plans the planner's braking fallback), "
        f"{reached[4]} followed by a /cmd_vel; {reached[0] - reached[3]} not planned on.",
        "",
        markdown_table(["node", "received", "processed", "dropped", "median ms", "p99 ms", "CPU"], node_rows,
                       right_aligned=range(1, 7)),
        "",
        "Node processing times from /node_statistics (from an input's arrival to its outputs; the planner's: a "
        "planning cycle, its dropped inputs: cycles replaced before they ran).",
        "",
        f"**Goal** (p99 sensor → /cmd_vel ≤ {GOAL_P99_MS:g} ms, no node dropping more than "
        f"{GOAL_DROPPED_SHARE:.0%} of its inputs): **{'met' if goal_met else 'not met'}**. "
        f"p99 {milliseconds(total.p99)} ms ({'met' if latency_met else 'not met'}); "
        + (f"nodes above {GOAL_DROPPED_SHARE:.0%} drops: "
           + ", ".join(f"`{node.name}` {node.dropped_share:.1%}" for node in dropping) if dropping
           else f"no node above {GOAL_DROPPED_SHARE:.0%} drops")
        + f". Largest share of the stages' p99: {bottleneck[0]} ({bottleneck[1]}), "
        f"{max(shares):.0%}.",
        "",
        f"![Sensor-to-command latency](images/{IMAGE.name})",
    ]
    samples = {"sensor → /cmd_vel": list(total.samples_ms)} | {
        name: list(stage.samples_ms) for (name, _), stage in zip(STAGES, stages)}
    png = report_plots.latency_histograms(samples, {"sensor → /cmd_vel": GOAL_P99_MS},
                                          title="Sensor-to-command latency, real time (goal: p99 ≤ 250 ms)")
    return "\n".join(lines), png


def write_section(docs: Path, heading: str, body: str) -> None:
    """Replace the section under `heading` in `docs` (up to the next '## ' heading), or append it."""
    text = docs.read_text()
    section = f"{heading}\n\n{body}\n"
    start = text.find(heading + "\n")
    if start < 0:
        docs.write_text(text.rstrip("\n") + "\n\n" + section)
        return
    following = text.find("\n## ", start + len(heading))
    docs.write_text(text[:start] + section + (text[following:] if following >= 0 else ""))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=30.0, help="simulated seconds to run (default 30)")
    parser.add_argument("--llm", action="store_true",
                        help="also run the on-device language model and ask it the main job's questions "
                             "(default off: without questions it only waits, with them it takes the cores)")
    parser.add_argument("--quiet-load", type=float, default=1.0,
                        help="start once the 1-minute load average is below this (default 1.0)")
    parser.add_argument("--max-wait-for-quiet", type=float, default=15.0, metavar="MINUTES",
                        help="wait at most this long for it, then run anyway (default 15)")
    parser.add_argument("--no-docs", action="store_true",
                        help=f"only print; leave {DOCS.relative_to(REPO_ROOT)} and the image alone")
    options = parser.parse_args(argv)
    command = shlex.join(["python", "bench/bench_end_to_end.py", *(sys.argv[1:] if argv is None else argv)])

    load_before, waited_s = wait_for_quiet_machine(options.quiet_load, 60.0 * options.max_wait_for_quiet)
    result = run_stack(options.duration, options.llm, load_before)
    body, png = report(result, options.duration, command, waited_s)
    print(f"\n{END_TO_END_HEADING}\n\n{body}")
    if not options.no_docs:
        write_section(DOCS, END_TO_END_HEADING, body)
        IMAGE.write_bytes(png)
        print(f"\nwritten: {DOCS.relative_to(REPO_ROOT)}, {IMAGE.relative_to(REPO_ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
