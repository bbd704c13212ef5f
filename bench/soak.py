"""Soak: a bag of the full stack replayed in a loop through the stack for half an hour, watching the
stack's process for growth in resident memory, open file descriptors and threads, and for errors.

Run by hand from the repository root (`source scripts/env.sh` first); never by the test suite:

    nice -n 10 python bench/soak.py [--bag BAG] [--minutes 30] [--warm-up 3] [--no-docs]

The bag (default: the newest out/soak_source/<run>/sim_bag, made first with `edge-demo --duration 20
--no-llm --output out/soak_source` when there is none) is played at rate 1 by a bag_player with loop=True
(/clock jumps back at each restart of the bag) to the lidar detector, the tracker and predictor, the
CROA planner and the GSRMR uplink with its mr_server (the bag's scene), composed by the bringup in a
child process, as the main job composes them. The player leaves out what those nodes publish
themselves, so each topic has one publisher. Every SAMPLE_PERIOD_S this process reads the child's
VmRSS and thread count (/proc/<pid>/status) and its open descriptors (/proc/<pid>/fd), and counts the
child's ERROR and FATAL log lines and Python tracebacks (its whole log is kept in
out/soak/stack-<UTC time>.log). Growth is measured from the end of the warm-up (the detector's and the
renderer's allocators, caches and queues fill during the first minutes) to the end: resident memory
in %, descriptors and threads as differences. Prints a Markdown block and (unless --no-docs) writes
it into docs/benchmarks.md under SOAK_HEADING, with the series in docs/images/soak.png.
"""
from __future__ import annotations

import argparse
import json
import re
import shlex
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure as MplFigure

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))  # run by hand from a checkout

from bench.bench_end_to_end import write_section  # noqa: E402
from evaluation import report_plots  # noqa: E402
from evaluation.report import machine_metadata, markdown_table  # noqa: E402

SOAK_HEADING = "## Soak (30-minute replay)"
DOCS = REPO_ROOT / "docs" / "benchmarks.md"
IMAGE = REPO_ROOT / "docs" / "images" / "soak.png"
SOURCE_DIR = REPO_ROOT / "out" / "soak_source"
LOG_DIR = REPO_ROOT / "out" / "soak"
SAMPLE_PERIOD_S = 10.0
"""Wall seconds between two samples of the stack's process."""
GOAL_RSS_GROWTH = 0.05
"""Goal: resident memory at the end at most this share above its value at the end of the warm-up."""
STOP_TIMEOUT_S = 60.0
"""Wall seconds the stack gets to stop (once its stdin is closed) before it is killed."""
ERROR_LINE = re.compile(r"^\[(ERROR|FATAL)\]|^Traceback \(most recent call last\)")
"""A log line that counts as an error: rcutils' ERROR/FATAL lines and Python tracebacks."""
KEPT_ERROR_LINES = 10
"""Error lines quoted in the report (the first ones)."""
SUMMARY_PREFIX = "soak-summary "
"""The stack process's last stdout line: this, then JSON (the nodes' last statistics, restarts)."""


# --- the stack (child process) -----------------------------------------------------------------------

def stack_specs(bag: Path) -> list:
    """The bag's player and the nodes of the stack that run on its recorded sensors."""
    from robot_nodes import graph, topics
    from robot_nodes.bags import BagReader
    from robot_nodes.bringup import simulation_scene
    from robot_nodes.evaluate import RunInfo

    info = RunInfo.beside(bag)
    scene = info.extra.get("mixed-reality scene")
    if not scene or not Path(scene).is_file():
        scene = str(simulation_scene(info.scenario, info.seed, float(info.extra.get("duration", 0.0))))
    nodes = graph.perception_nodes() + [graph.croa_planner(info.scenario), graph.gsrmr_uplink(scene),
                                        graph.mr_server(scene)]
    published_by_nodes = {*graph.PERCEPTION_OUTPUTS, *graph.PLANNER_OUTPUTS, *graph.MIXED_REALITY_OUTPUTS,
                          topics.CMD_VEL, topics.MR_STREAM, topics.NODE_STATISTICS}
    with BagReader(bag) as reader:
        played = sorted(set(reader.topics()) - published_by_nodes)
    return [graph.bag_player(str(bag), loop=True, topic_names=played)] + nodes


def run_stack(bag: Path) -> int:
    """Spin the stack until its stdin closes (or Ctrl-C); then print SUMMARY_PREFIX + JSON of each
    node's last statistics. A closed stdin stops it on a running context, as a run's end does, so
    the nodes stop and publish their last statistics normally."""
    from rclpy.node import Node

    from edge_robot_msgs.msg import NodeStatistics
    from robot_nodes import topics
    from robot_nodes.bringup import Bringup
    from robot_nodes.node_statistics import STATISTICS_QOS

    bringup = Bringup(stack_specs(bag))
    latest: dict[str, NodeStatistics] = {}
    listener = Node("soak_statistics", context=bringup.context)
    listener.create_subscription(NodeStatistics, topics.NODE_STATISTICS,
                                 lambda message: latest.__setitem__(message.node, message), STATISTICS_QOS)
    bringup.add_node(listener)
    try:
        stdin_closed = threading.Event()
        threading.Thread(target=lambda: (sys.stdin.read(), stdin_closed.set()), daemon=True).start()
        bringup.spin_until(stdin_closed.is_set)  # or until the bringup gave up on a node
    except KeyboardInterrupt:
        pass
    finally:
        bringup.shutdown()
    summary = {"nodes": {name: {"received": message.received, "processed": message.processed,
                                "dropped": message.dropped, "rejected": message.rejected, "failed": message.failed}
                         for name, message in sorted(latest.items())},
               "restarts": dict(bringup.restarts)}
    print(SUMMARY_PREFIX + json.dumps(summary), flush=True)
    return 0


# --- measuring (this process) ------------------------------------------------------------------------

@dataclass
class Sample:
    """One look at the stack's process."""

    minutes: float
    """Since the stack was started."""
    rss_mb: float
    """VmRSS, MiB."""
    fds: int
    threads: int


def sample_process(pid: int, started: float) -> Sample:
    status = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    return Sample(minutes=(time.monotonic() - started) / 60.0, rss_mb=int(status["VmRSS"].split()[0]) / 1024.0,
                  fds=len(list(Path(f"/proc/{pid}/fd").iterdir())), threads=int(status["Threads"]))


@dataclass
class StackLog:
    """The stack's output, read on threads: error lines counted, everything written to a file."""

    path: Path
    errors: int = 0
    error_lines: list[str] = field(default_factory=list)
    summary: dict = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def follow(self, stream, log_file) -> threading.Thread:
        def read() -> None:
            for line in stream:
                with self._lock:
                    log_file.write(line)
                    if line.startswith(SUMMARY_PREFIX):
                        self.summary = json.loads(line[len(SUMMARY_PREFIX):])
                    elif ERROR_LINE.search(line):
                        self.errors += 1
                        if len(self.error_lines) < KEPT_ERROR_LINES:
                            self.error_lines.append(line.rstrip())
        thread = threading.Thread(target=read, daemon=True)
        thread.start()
        return thread


@dataclass
class SoakResult:
    samples: list[Sample]
    log: StackLog
    exit_code: int
    """The stack process's."""
    ran_to_end: bool
    """False when the stack stopped by itself before the end (a node the bringup gave up on, a crash)."""
    stop_s: float | None
    """Wall seconds the stack took to stop once told; None when it had stopped by itself."""
    killed: bool
    """It did not stop within STOP_TIMEOUT_S and was killed (its summary is then missing)."""


def soak(bag: Path, minutes: float) -> SoakResult:
    """Run the stack on `bag` for `minutes`, sampling it every SAMPLE_PERIOD_S."""
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    log = StackLog(LOG_DIR / f"stack-{time.strftime('%Y%m%d-%H%M%S', time.gmtime())}.log")
    with open(log.path, "w") as log_file:
        child = subprocess.Popen([sys.executable, __file__, "--run-stack", "--bag", str(bag)], cwd=REPO_ROOT,
                                 stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                 bufsize=1)
        readers = [log.follow(child.stdout, log_file), log.follow(child.stderr, log_file)]
        started = time.monotonic()
        samples: list[Sample] = []
        ran_to_end, stop_s, killed = True, None, False
        while time.monotonic() - started < 60.0 * minutes:
            if child.poll() is not None:
                ran_to_end = False
                break
            samples.append(sample_process(child.pid, started))
            last = samples[-1]
            print(f"{last.minutes:5.1f} min: RSS {last.rss_mb:7.1f} MiB, {last.fds} fds, {last.threads} threads, "
                  f"{log.errors} errors", flush=True)
            time.sleep(SAMPLE_PERIOD_S - (time.monotonic() - started) % SAMPLE_PERIOD_S)
        if child.poll() is None:
            child.stdin.close()
            stopping = time.monotonic()
            try:
                child.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
                killed = True
            stop_s = time.monotonic() - stopping
        for reader in readers:
            reader.join()
    return SoakResult(samples, log, child.returncode, ran_to_end, stop_s, killed)


@dataclass(frozen=True)
class Growth:
    """From the first sample after the warm-up to the last one."""

    rss_start_mb: float
    rss_end_mb: float
    rss_peak_mb: float
    fds: tuple[int, int]
    threads: tuple[int, int]

    @property
    def rss_growth(self) -> float:
        return self.rss_end_mb / self.rss_start_mb - 1.0


def growth_after(samples: list[Sample], warm_up_minutes: float) -> Growth | None:
    """None when the run ended before the warm-up did."""
    after = [sample for sample in samples if sample.minutes >= warm_up_minutes]
    if len(after) < 2:
        return None
    first, last = after[0], after[-1]
    return Growth(first.rss_mb, last.rss_mb, max(sample.rss_mb for sample in after), (first.fds, last.fds),
                  (first.threads, last.threads))


def plot(samples: list[Sample], warm_up_minutes: float) -> bytes:
    """RSS, open descriptors and threads over the run, the warm-up shaded."""
    import matplotlib

    minutes = np.asarray([sample.minutes for sample in samples])
    series = (("resident memory (MiB)", [sample.rss_mb for sample in samples]),
              ("open file descriptors", [sample.fds for sample in samples]),
              ("threads", [sample.threads for sample in samples]))
    with matplotlib.rc_context(report_plots.STYLE):
        figure = MplFigure(figsize=(report_plots.WIDTH_IN, 7.0), dpi=report_plots.DPI, layout="constrained")
        axes_column = figure.subplots(len(series), 1, sharex=True)
        for index, (axes, (label, values)) in enumerate(zip(axes_column, series)):
            axes.plot(minutes, values, color=report_plots.SERIES_COLORS[index], linewidth=1.6)
            axes.axvspan(0.0, warm_up_minutes, color="#e3e8ee", label="warm-up")
            axes.set_ylabel(label)
        axes_column[0].legend(loc="lower right")
        axes_column[0].set_title("Soak: the stack's process over a looped replay")
        axes_column[-1].set_xlabel("minutes")
    return report_plots.png_bytes(figure)


def report(result: SoakResult, bag: Path, minutes: float, warm_up_minutes: float, command: str) -> str:
    """The Markdown section (without its heading)."""
    metadata = machine_metadata()
    growth = growth_after(result.samples, warm_up_minutes)
    ran = result.samples[-1].minutes if result.samples else 0.0
    lines = [f"`{command}` (run under `nice -n 10` beside other work on the cores), {metadata['date']}, "
             f"{metadata['cpu']}, {metadata['cpu cores']} cores, {metadata['memory']}, "
             f"Python {metadata['python']}, git {metadata['git commit']}.", "",
             f"Bag `{bag.relative_to(REPO_ROOT) if bag.is_relative_to(REPO_ROOT) else bag}` looped at rate 1 "
             "through lidar_detector, trajectory_predictor, croa_planner, gsrmr_uplink and mr_server "
             f"(one process, composed by the bringup), sampled every {SAMPLE_PERIOD_S:g} s; warm-up "
             f"{warm_up_minutes:g} min.", ""]
    if not result.ran_to_end:
        lines += [f"**The stack stopped by itself after {ran:.1f} of {minutes:g} minutes "
                  f"(exit code {result.exit_code}; see {result.log.path.relative_to(REPO_ROOT)}).**", ""]
    if result.killed:
        lines += [f"**The stack did not stop within {STOP_TIMEOUT_S:g} s of being told and was killed.**", ""]
    elif result.stop_s is not None:
        lines += [f"Once told, the stack stopped in {result.stop_s:.1f} s (exit code {result.exit_code}).", ""]
    if growth is None:
        lines += ["**The run ended before the warm-up did: no growth figures.**", ""]
    else:
        rss_verdict = "met" if growth.rss_growth < GOAL_RSS_GROWTH else "**not met**"
        rows = [["resident memory", f"{growth.rss_start_mb:.0f} MiB", f"{growth.rss_end_mb:.0f} MiB "
                 f"(peak {growth.rss_peak_mb:.0f})", f"{growth.rss_growth:+.1%}",
                 f"< {GOAL_RSS_GROWTH:.0%}: {rss_verdict}"],
                ["open file descriptors", str(growth.fds[0]), str(growth.fds[1]), f"{growth.fds[1] - growth.fds[0]:+d}",
                 "no growth: " + ("met" if growth.fds[1] <= growth.fds[0] else "**not met**")],
                ["threads", str(growth.threads[0]), str(growth.threads[1]),
                 f"{growth.threads[1] - growth.threads[0]:+d}",
                 "no growth: " + ("met" if growth.threads[1] <= growth.threads[0] else "**not met**")],
                ["error log lines (whole run)", "", "", str(result.log.errors),
                 "none: " + ("met" if not result.log.errors else "**not met**")]]
        lines += [f"Ran {ran:.1f} min.", "",
                  markdown_table(["measure", "end of warm-up", "end", "change", "goal"], rows,
                                 right_aligned=(1, 2, 3)), ""]
    if result.log.error_lines:
        lines += ["First error lines:", "", "```", *result.log.error_lines, "```", ""]
    nodes = result.log.summary.get("nodes", {})
    if nodes:
        rows = [[name, *(str(figures[key]) for key in ("received", "processed", "dropped", "rejected", "failed"))]
                for name, figures in nodes.items()]
        lines += ["What the nodes did over the whole run (their last statistics):", "",
                  markdown_table(["node", "received", "processed", "dropped", "rejected", "failed"], rows,
                                 right_aligned=(1, 2, 3, 4, 5)), ""]
    if result.log.summary.get("restarts"):
        lines += [f"Node restarts by the bringup: {result.log.summary['restarts']}", ""]
    lines.append(f"![Soak: resident memory, descriptors and threads](images/{IMAGE.name})")
    return "\n".join(lines)


def newest_source_bag() -> Path:
    """The newest bag under SOURCE_DIR, made first (edge-demo, 20 s, no language model) when there is none."""
    bags = sorted(SOURCE_DIR.glob("*/sim_bag"))
    if not bags:
        subprocess.run(["edge-demo", "--duration", "20", "--no-llm", "--output", str(SOURCE_DIR)], cwd=REPO_ROOT,
                       check=False)
        bags = sorted(SOURCE_DIR.glob("*/sim_bag"))
        if not bags:
            raise SystemExit(f"soak: edge-demo made no bag under {SOURCE_DIR}")
    return bags[-1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bag", type=Path, help="bag of the full stack (default: the newest under out/soak_source)")
    parser.add_argument("--minutes", type=float, default=30.0, help="how long to run (default 30)")
    parser.add_argument("--warm-up", type=float, default=3.0, metavar="MINUTES",
                        help="growth is measured from the end of this (default 3)")
    parser.add_argument("--no-docs", action="store_true",
                        help=f"only print; leave {DOCS.relative_to(REPO_ROOT)} and the image alone")
    parser.add_argument("--run-stack", action="store_true", help=argparse.SUPPRESS)  # the child process
    options = parser.parse_args(argv)
    if options.run_stack:
        return run_stack(options.bag)
    if not (options.minutes > options.warm_up >= 0):
        parser.error("--minutes must be longer than --warm-up, which must be >= 0")
    bag = (options.bag or newest_source_bag()).resolve()
    command = shlex.join(["python", "bench/soak.py", *(sys.argv[1:] if argv is None else argv)])
    result = soak(bag, options.minutes)
    body = report(result, bag, options.minutes, options.warm_up, command)
    print(f"\n{SOAK_HEADING}\n\n{body}")
    if not options.no_docs:
        write_section(DOCS, SOAK_HEADING, body)
        IMAGE.write_bytes(plot(result.samples, options.warm_up))
        print(f"\nwritten: {DOCS.relative_to(REPO_ROOT)}, {IMAGE.relative_to(REPO_ROOT)}")
    return 0 if result.ran_to_end and not result.log.errors else 1


if __name__ == "__main__":
    sys.exit(main())
