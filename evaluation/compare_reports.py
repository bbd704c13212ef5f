"""compare-reports: two run reports side by side (CROA against a baseline, two model versions, …).

    compare-reports A B [--labels croa baseline] --output DIR

A and B are report folders (or their report.json) written by evaluation.report.write_report. Every
metric present in either is lined up, grouped by its key's prefix, with the difference B − A and
the ratio B / A for numbers ("–" where one side lacks it); then both reports' metadata (with a diff
of multi-line entries such as configuration files). Written as DIR/compare.md, the self-contained
DIR/compare.html and DIR/compare.json.
"""
from __future__ import annotations

import argparse
import difflib
import math
import sys
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from evaluation.report import (MISSING, MetricValue, Report, ReportSummary, Section, format_metric, markdown_table,
                               metric_group, metric_name, read_report_summary, table_cell, write_report)


@dataclass
class MetricComparison:
    """One metric of both reports (None where a report lacks it)."""

    key: str
    a: MetricValue
    b: MetricValue

    @property
    def numeric(self) -> bool:
        """Both sides finite numbers (yes/no metrics are not)."""
        return all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
                   for v in (self.a, self.b))

    @property
    def difference(self) -> float | None:
        """B − A, for numbers."""
        return self.b - self.a if self.numeric else None

    @property
    def ratio(self) -> float | None:
        """B / A, for numbers with A not zero."""
        return self.b / self.a if self.numeric and self.a != 0 else None


def compare_metrics(a: dict[str, MetricValue], b: dict[str, MetricValue]) -> dict[str, list[MetricComparison]]:
    """Every key of either report, grouped by its prefix; groups and keys in order of first appearance (A's first)."""
    groups: dict[str, list[MetricComparison]] = {}
    for key in dict.fromkeys([*a, *b]):
        groups.setdefault(metric_group(key), []).append(MetricComparison(key, a.get(key), b.get(key)))
    return groups


def _signed(value: float) -> str:
    return ("+" if value > 0 else "") + format_metric(value)


def _metrics_table(comparisons: list[MetricComparison], labels: tuple[str, str]) -> str:
    rows = []
    for item in comparisons:
        difference, ratio = item.difference, item.ratio
        rows.append([f"`{table_cell(metric_name(item.key))}`", table_cell(format_metric(item.a)),
                     table_cell(format_metric(item.b)), MISSING if difference is None else _signed(difference),
                     MISSING if ratio is None else format_metric(ratio)])
    header = ["metric", table_cell(labels[0]), table_cell(labels[1]), "difference (B − A)", "ratio (B / A)"]
    return markdown_table(header, rows, right_aligned={1, 2, 3, 4})


def _metadata_markdown(a: dict[str, str], b: dict[str, str], labels: tuple[str, str]) -> str:
    """Both metadata in one table; multi-line entries (configuration files) that differ as a diff below it."""
    rows, diffs = [], []
    for key in dict.fromkeys([*a, *b]):
        values = (a.get(key), b.get(key))
        same = "yes" if values[0] == values[1] else "**no**"
        if any(value is not None and "\n" in value for value in values):
            cells = [MISSING if value is None else f"({len(value.splitlines())} lines)" for value in values]
            if values[0] != values[1]:
                diff = difflib.unified_diff((values[0] or "").splitlines(), (values[1] or "").splitlines(),
                                            labels[0], labels[1], lineterm="")
                diffs.append(f"**{table_cell(key)}**\n\n```diff\n" + "\n".join(diff) + "\n```")
        else:
            cells = [MISSING if value is None else table_cell(value) for value in values]
        rows.append([table_cell(key), *cells, same])
    table = markdown_table(["entry", table_cell(labels[0]), table_cell(labels[1]), "same"], rows)
    return "\n\n".join([table, *diffs])


def comparison_report(a: ReportSummary, b: ReportSummary, labels: tuple[str, str]) -> Report:
    """The side-by-side report of A and B: an overview of both, a table per metric group, the metadata."""
    groups = compare_metrics(a.metrics, b.metrics)
    comparisons = [item for items in groups.values() for item in items]
    changed = sum(item.a != item.b for item in comparisons if item.a is not None and item.b is not None)
    overview = markdown_table(["", table_cell(labels[0]), table_cell(labels[1])], [
        ["report", table_cell(a.title), table_cell(b.title)],
        ["file", f"`{table_cell(a.source)}`", f"`{table_cell(b.source)}`"],
        ["metrics", str(len(a.metrics)), str(len(b.metrics))],
        ["metrics only in this report", str(len(set(a.metrics) - set(b.metrics))), str(len(set(b.metrics) - set(a.metrics)))],
        ["sections", table_cell(", ".join(a.sections)) or MISSING, table_cell(", ".join(b.sections)) or MISSING]])
    summary = (f"**A = {table_cell(labels[0])}**, **B = {table_cell(labels[1])}**: {len(comparisons)} metrics, "
               f"{changed} of those in both differ. Differences are B − A, ratios B / A; {MISSING} where a report "
               f"has no such metric or it is not a number. Written by `compare-reports` on "
               f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC.")
    sections = [Section("Reports", overview)]
    sections += [Section(f"Metrics: {group}", _metrics_table(items, labels)) for group, items in groups.items()]
    sections.append(Section("Metadata side by side", _metadata_markdown(a.metadata, b.metadata, labels)))
    return Report(title=f"{labels[0]} vs {labels[1]}", sections=sections, summary=summary)


def default_labels(a: ReportSummary, b: ReportSummary) -> tuple[str, str]:
    """The reports' folder names, prefixed A and B when they are the same."""
    names = (a.source.resolve().parent.name, b.source.resolve().parent.name)
    return names if names[0] != names[1] else (f"A ({names[0]})", f"B ({names[1]})")


def parse_arguments(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="compare-reports", description=__doc__.splitlines()[0])
    parser.add_argument("a", type=Path, help="report folder or its report.json (A)")
    parser.add_argument("b", type=Path, help="report folder or its report.json (B)")
    parser.add_argument("--labels", nargs=2, metavar=("A", "B"), help="names of the two (default: their folders)")
    parser.add_argument("--output", type=Path, required=True, help="folder for compare.md, .html and .json")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    options = parse_arguments(sys.argv[1:] if argv is None else argv)
    try:
        a, b = read_report_summary(options.a), read_report_summary(options.b)
        labels = tuple(options.labels) if options.labels else default_labels(a, b)
        files = write_report(comparison_report(a, b, labels), options.output, stem="compare")
    except (OSError, ValueError) as error:
        print(f"compare-reports: {error}", file=sys.stderr)
        return 2
    print(f"comparison written to {files.html} and {files.markdown}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
