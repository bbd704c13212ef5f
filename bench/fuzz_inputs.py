"""Long fuzz of every input topic of every node; writes its last run into docs/reliability.md ("Bad input").

    python bench/fuzz_inputs.py [--cases 20000] [--minutes 15] [--output docs/reliability.md]

Runs the suite's fast layer (tests/robot_nodes/test_bad_input.py, the malformed messages of
tests/robot_nodes/malformed_messages.py through each real node's guarded callbacks) with `--cases`
cases per topic drawn afresh (the suite's 10,000 are the same every run). A crash is a node whose
run failed: an exception other than the guard's rejection, a numeric warning, a failure in a worker
thread, a miscount, or a valid message not served afterwards (pytest's report names the case).
Topics are fuzzed one after another until `--minutes` run out; the section says which were not reached.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ElementTree
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "tests" / "robot_nodes")]

from evaluation.report import machine_metadata, markdown_table  # noqa: E402
from malformed_messages import INPUT_TOPICS  # noqa: E402

TEST = "tests/robot_nodes/test_bad_input.py::test_malformed_messages_on_every_input_are_rejected_and_the_node_keeps_serving"
SECTION = "### Long fuzz: last run"


def run(cases: int, minutes: float) -> tuple[list[dict], dict[str, str], float]:
    """(one result per topic fuzzed, the failure text per topic that crashed, wall seconds)."""
    with tempfile.TemporaryDirectory() as folder:
        results, junit = Path(folder) / "results.jsonl", Path(folder) / "junit.xml"
        started = time.monotonic()
        try:
            subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-o", "timeout=0", TEST,
                            f"--junitxml={junit}"], cwd=REPO, check=False, timeout=60.0 * minutes,
                           env=dict(os.environ, FUZZ_CASES=str(cases), FUZZ_RESULTS=str(results)))
        except subprocess.TimeoutExpired:
            pass  # the time budget ran out: the topics finished so far are in results
        elapsed = time.monotonic() - started
        rows = [json.loads(line) for line in results.read_text().splitlines()] if results.exists() else []
        failures = {}
        for case in ElementTree.parse(junit).getroot().iter("testcase") if junit.exists() else ():
            failure = case.find("failure")
            if failure is None:
                failure = case.find("error")
            if failure is not None:
                topic = case.get("name").split("[", 1)[1].rstrip("]")
                failures[topic] = (failure.get("message") or "").splitlines()[0][:300]
    return rows, failures, elapsed


def section(rows: list[dict], failures: dict[str, str], cases: int, elapsed: float) -> str:
    metadata = machine_metadata()
    table = markdown_table(
        ["node", "input topic", "type", "cases", "rejected", "accepted", "crashes", "s", "a rejection (the last)"],
        [[row["node"], f"`{row['topic']}`", row["type"], str(row["cases"]), str(row["rejected"]), str(row["accepted"]),
          str(int(f"{row['node']}:{row['topic']}" in failures)), f"{row['seconds']:.0f}",
          row["last_reason"][:120].replace("|", "\\|")] for row in rows],
        right_aligned={3, 4, 5, 6, 7})
    done = {f"{row['node']}:{row['topic']}" for row in rows} | set(failures)
    missing = [topic.name for topic in INPUT_TOPICS if topic.name not in done]
    failed = "".join(f"\n- **{topic}: crashed** (its run stops at the first): {text}" for topic, text in failures.items())
    failed += f"\n- not reached in the time budget: {', '.join(missing)}" if missing else ""
    return (f"{SECTION}\n\nLast long run: `python bench/fuzz_inputs.py --cases {cases}`, {metadata['date']}, "
            f"{metadata['cpu']} ({metadata['cpu cores']} cores, shared), commit {metadata['git commit']}; "
            f"{elapsed / 60:.1f} min, {sum(row['cases'] for row in rows)} cases on the {len(rows)} topics that ran to the end, "
            f"{len(failures)} topics crashed.{failed}\n\n{table}\n\n"
            "Accepted: the mutation left a message the node may take (a finite value in a field it does not check, "
            "a target id, a question); each accepted one went through the node's processing without an exception or "
            "numeric warning. After each node's run a valid message on every input was served.\n")


def write_section(path: Path, text: str) -> None:
    """Replaces the last run's part of `path` (up to the next heading), or appends it."""
    old = path.read_text() if path.exists() else "# Reliability\n"
    if SECTION in old:
        before, rest = old.split(SECTION, 1)
        after = rest[rest.find("\n#"):] if "\n#" in rest else ""
        path.write_text(before + text.rstrip("\n") + "\n" + after)
    else:
        path.write_text(old.rstrip("\n") + "\n\n" + text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=20_000, help="malformed messages per input topic")
    parser.add_argument("--minutes", type=float, default=15.0, help="time budget of the whole run")
    parser.add_argument("--output", type=Path, default=REPO / "docs/reliability.md")
    arguments = parser.parse_args()
    rows, failures, elapsed = run(arguments.cases, arguments.minutes)
    write_section(arguments.output, section(rows, failures, arguments.cases, elapsed))
    print(f"{len(rows)} topics, {len(failures)} crashed, {elapsed / 60:.1f} min; wrote {arguments.output}")


if __name__ == "__main__":
    main()
