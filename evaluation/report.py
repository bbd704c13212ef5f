"""Run reports: sections of Markdown with figures, flat metrics and the run's metadata, written as
report.md (figures beside it in figures/), one self-contained report.html and report.json.

The HTML page carries its CSS inline and its pictures as base64 data URIs, so it can be mailed or
archived as one file and opened without network access. Section bodies are Python-Markdown with the
tables extension: paragraphs, "- " lists and pipe tables, each separated from the text around it by
a blank line (nested list items are indented by four spaces).

report.json is what `compare-reports` reads (see read_report_summary); no ROS here.
"""
from __future__ import annotations

import base64
import html
import importlib.metadata
import json
import math
import os
import platform
import re
import subprocess
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Container

import markdown

MetricValue = float | int | bool | str | None
"""A metric: a number, a yes/no, a word, or None where it could not be computed."""

REPORT_JSON = "report.json"
FIGURE_FOLDER = "figures"
MISSING = "–"
"""Shown for a metric or metadata entry that is absent or could not be computed."""
KEY_PACKAGES = {"rclpy": ("ros-rclpy", "rclpy"), "torch": ("torch",), "onnxruntime": ("onnxruntime",),
                "cvxpy": ("cvxpy",), "spconv": ("spconv",), "numpy": ("numpy",), "open3d": ("open3d",),
                "rosbags": ("rosbags",), "matplotlib": ("matplotlib",)}
"""Package -> the distribution names it may be installed under (rclpy: the PyPI wheel or a ROS distro)."""
_FIGURE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


@dataclass
class Figure:
    """One picture of a section."""

    name: str
    """File stem: figures/<name>.png next to report.md; letters, digits, '_', '.', '-'."""
    caption: str
    """What the picture shows (plain text)."""
    png: bytes
    """The PNG file's bytes (evaluation.report_plots makes them)."""


@dataclass
class Section:
    """One titled part of a report."""

    title: str
    markdown: str = ""
    """The body: paragraphs, "- " lists and pipe tables (Python-Markdown with tables)."""
    figures: list[Figure] = field(default_factory=list)
    """Pictures shown after the body, numbered through the report."""


@dataclass
class Report:
    """Everything a report page shows."""

    title: str
    sections: list[Section] = field(default_factory=list)
    metrics: dict[str, MetricValue] = field(default_factory=dict)
    """Flat, keyed "<group>.<name>" (e.g. "detection.ap_car"); compare-reports lines these up."""
    metadata: dict[str, str] = field(default_factory=dict)
    """Configuration, mode, versions and machine (see machine_metadata); shown as the last section.
    Multi-line values (a configuration file) are shown as code blocks."""
    summary: str = ""
    """A short Markdown paragraph under the title."""
    overview: list[str] = field(default_factory=list)
    """Metric keys for the overview table at the top; empty (or naming no metric): every metric is
    shown there. When it names some, the rest are listed in a closing "All metrics" section."""


@dataclass
class ReportFiles:
    """What write_report wrote."""

    markdown: Path
    html: Path
    json: Path
    figures: list[Path] = field(default_factory=list)


@dataclass
class ReportSummary:
    """A written report as report.json keeps it: what compare-reports needs."""

    title: str
    metrics: dict[str, MetricValue]
    metadata: dict[str, str]
    sections: list[str]
    """Section titles."""
    source: Path
    """The report.json it was read from."""


# --- formatting ------------------------------------------------------------------------------------

def plain_metric(value) -> MetricValue:
    """A metric as a plain Python value (numpy scalars become int, float or bool)."""
    return value.item() if hasattr(value, "item") else value


def format_metric(value: MetricValue) -> str:
    """A metric for a table: four significant digits (one decimal from 1000 on), "–" for None or NaN."""
    value = plain_metric(value)
    if value is None:
        return MISSING
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return MISSING
        if math.isinf(value):
            return "∞" if value > 0 else "−∞"
        return f"{value:.1f}" if abs(value) >= 1000 else f"{value:.4g}"
    return str(value)


def table_cell(text: str) -> str:
    """Text made safe for one pipe-table cell: no pipes, line breaks or raw HTML."""
    return html.escape(" ".join(str(text).split()), quote=False).replace("|", "\\|")


def markdown_table(header: list[str], rows: list[list[str]], right_aligned: Container[int] = ()) -> str:
    """A pipe table; the columns whose indices are in right_aligned (numbers) are aligned right."""
    rule = ["---:" if index in right_aligned else "---" for index in range(len(header))]
    lines = [header, rule, *rows]
    return "\n".join("| " + " | ".join(cells) + " |" for cells in lines)


def metric_group(key: str) -> str:
    """The section prefix of a metric key ("detection" of "detection.ap_car"; "general" without one)."""
    return key.split(".", 1)[0] if "." in key else "general"


def metric_name(key: str) -> str:
    """A metric key without its group prefix."""
    return key.split(".", 1)[1] if "." in key else key


def _metrics_table(metrics: dict[str, MetricValue], keys: list[str]) -> str:
    rows = [[table_cell(metric_group(key)), f"`{table_cell(metric_name(key))}`",
             table_cell(format_metric(metrics.get(key)))] for key in keys]
    return markdown_table(["group", "metric", "value"], rows, right_aligned={2})


def _metadata_markdown(metadata: dict[str, str]) -> str:
    """One table of the one-line entries, then a code block per multi-line entry (configuration files)."""
    single = {key: value for key, value in metadata.items() if "\n" not in str(value)}
    blocks = [f"**{table_cell(key)}**\n\n```\n{str(value).rstrip()}\n```" for key, value in metadata.items()
              if key not in single]
    parts = [markdown_table(["entry", "value"], [[table_cell(key), table_cell(value)]
                                                 for key, value in single.items()])] if single else []
    return "\n\n".join(parts + blocks)


# --- documents -------------------------------------------------------------------------------------

def report_markdown(report: Report, figure_markdown: Callable[[Figure, int], str]) -> str:
    """The report as one Markdown document; figure_markdown(figure, number) writes each picture
    (a file link in report.md, an embedded <figure> for the HTML page)."""
    parts = [f"# {report.title}"]
    if report.summary:
        parts.append(report.summary.strip())
    overview_keys = [key for key in report.overview if key in report.metrics] or list(report.metrics)
    if overview_keys:
        parts += ["## Overview", _metrics_table(report.metrics, overview_keys)]
    number = 0
    for section in report.sections:
        parts.append(f"## {section.title}")
        if section.markdown.strip():
            parts.append(section.markdown.strip())
        for figure in section.figures:
            number += 1
            parts.append(figure_markdown(figure, number))
    remaining = [key for key in report.metrics if key not in overview_keys]
    if remaining:
        parts += ["## All metrics", _metrics_table(report.metrics, remaining)]
    if report.metadata:
        parts += ["## Configuration and machine", _metadata_markdown(report.metadata)]
    return "\n\n".join(parts) + "\n"


def _linked_figure(figure: Figure, number: int) -> str:
    caption = html.escape(" ".join(figure.caption.split()), quote=False)  # "<…>" would read as a tag
    alt = caption.replace("[", "(").replace("]", ")")
    return f"![{alt}]({FIGURE_FOLDER}/{figure.name}.png)\n\n*Figure {number}: {caption}*"


def _embedded_figure(figure: Figure, number: int) -> str:
    caption = html.escape(" ".join(figure.caption.split()))
    data = base64.b64encode(figure.png).decode("ascii")
    return (f'<figure id="figure-{html.escape(figure.name)}"><img src="data:image/png;base64,{data}" alt="{caption}">'
            f"<figcaption><b>Figure {number}.</b> {caption}</figcaption></figure>")


PAGE_STYLE = """
:root { --text: #1f2933; --muted: #52606d; --rule: #d9e2ec; --tint: #f0f4f8; --accent: #1d4e89; }
* { box-sizing: border-box; }
body { margin: 0; background: #e9edf2; color: var(--text);
       font: 16px/1.55 "DejaVu Sans", "Segoe UI", Helvetica, Arial, sans-serif; }
main { max-width: 1100px; margin: 0 auto; padding: 36px 48px 64px; background: #fff; min-height: 100vh; }
h1 { font-size: 2.0rem; line-height: 1.2; margin: 0 0 0.3em; color: var(--accent); }
h2 { font-size: 1.4rem; margin: 2.0em 0 0.6em; padding-bottom: 0.25em; border-bottom: 2px solid var(--rule); }
h3 { font-size: 1.1rem; margin: 1.5em 0 0.5em; }
p, ul, ol { margin: 0.6em 0; }
a { color: var(--accent); }
nav.contents { background: var(--tint); border-radius: 6px; padding: 0.6em 1.2em; margin: 1.2em 0; font-size: 0.92rem; }
nav.contents ul { margin: 0.2em 0; padding-left: 1.2em; columns: 2; }
table { border-collapse: collapse; margin: 1em 0; font-size: 0.9rem; max-width: 100%; display: block; overflow-x: auto; }
th, td { border: 1px solid var(--rule); padding: 0.35em 0.75em; vertical-align: top; }
th { background: var(--tint); text-align: left; font-weight: 600; }
tbody tr:nth-child(even) td { background: #f9fbfc; }
td { font-variant-numeric: tabular-nums; }
code, pre { font-family: "DejaVu Sans Mono", Menlo, Consolas, monospace; font-size: 0.86em; }
code { background: var(--tint); padding: 0.05em 0.3em; border-radius: 3px; }
pre { background: var(--tint); padding: 0.8em 1em; border-radius: 6px; overflow-x: auto; line-height: 1.4; }
pre code { background: none; padding: 0; }
figure { margin: 1.6em 0; }
figure img { display: block; width: 100%; max-width: 1000px; height: auto; margin: 0 auto;
             border: 1px solid var(--rule); border-radius: 4px; }
figcaption { color: var(--muted); font-size: 0.9rem; margin: 0.5em auto 0; max-width: 1000px; }
@media print { body { background: #fff; } main { padding: 0; } figure { break-inside: avoid; } }
"""
"""The page's CSS (inline: the page needs no other file)."""


def markdown_to_html_page(text: str, title: str) -> str:
    """A Markdown document as one self-contained HTML page with a table of contents of its "## " sections."""
    converter = markdown.Markdown(extensions=["tables", "fenced_code", "sane_lists", "toc"],
                                  extension_configs={"toc": {"toc_depth": "2-2"}})
    body = converter.convert(text)
    contents = converter.toc.replace('<div class="toc">', '<nav class="contents"><b>Contents</b>', 1)
    contents = contents[: contents.rfind("</div>")] + "</nav>" if "<li>" in contents else ""
    # The contents go right after the title (and its summary paragraph, when there is one).
    split = body.find("<h2")
    body = body if split < 0 else body[:split] + contents + "\n" + body[split:]
    return (f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">\n'
            f"<title>{html.escape(title)}</title>\n<style>{PAGE_STYLE}</style>\n</head>\n"
            f"<body>\n<main>\n{body}\n</main>\n</body>\n</html>\n")


def report_html(report: Report) -> str:
    """The report as one self-contained HTML page (CSS inline, pictures as data URIs)."""
    return markdown_to_html_page(report_markdown(report, _embedded_figure), report.title)


def _json_metric(value: MetricValue) -> MetricValue:
    # Strict JSON has no NaN or infinity: those are kept as None ("could not be computed").
    value = plain_metric(value)
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _check_figure_names(report: Report) -> None:
    names = [figure.name for section in report.sections for figure in section.figures]
    bad = [name for name in names if not _FIGURE_NAME.fullmatch(name)]
    if bad:
        raise ValueError(f"figure names must be file stems of letters, digits, '_', '.', '-': {bad}")
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise ValueError(f"figure names must be unique: {repeated}")


def write_report(report: Report, folder: Path | str, stem: str = "report") -> ReportFiles:
    """Write <stem>.md (pictures as figures/<name>.png beside it), the self-contained <stem>.html and
    <stem>.json (title, metrics, metadata, section titles) into folder, which is created."""
    _check_figure_names(report)
    folder = Path(folder)
    figure_folder = folder / FIGURE_FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    figure_paths = []
    for section in report.sections:
        for figure in section.figures:
            figure_folder.mkdir(exist_ok=True)
            path = figure_folder / f"{figure.name}.png"
            path.write_bytes(figure.png)
            figure_paths.append(path)
    files = ReportFiles(markdown=folder / f"{stem}.md", html=folder / f"{stem}.html", json=folder / f"{stem}.json",
                        figures=figure_paths)
    files.markdown.write_text(report_markdown(report, _linked_figure), encoding="utf-8")
    files.html.write_text(report_html(report), encoding="utf-8")
    summary = {"title": report.title, "metrics": {key: _json_metric(value) for key, value in report.metrics.items()},
               "metadata": {key: str(value) for key, value in report.metadata.items()},
               "sections": [section.title for section in report.sections],
               "figures": [f"{FIGURE_FOLDER}/{path.name}" for path in figure_paths]}
    files.json.write_text(json.dumps(summary, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return files


def read_report_summary(path: Path | str) -> ReportSummary:
    """A report's report.json, given the file or the report's folder."""
    path = Path(path)
    source = path / REPORT_JSON if path.is_dir() else path
    try:
        data = json.loads(source.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FileNotFoundError(f"no report at {path} (expected a report folder or its {REPORT_JSON})") from None
    except json.JSONDecodeError as error:
        raise ValueError(f"{source} is not JSON: {error}") from None
    if not isinstance(data, dict) or not isinstance(data.get("metrics"), dict):
        raise ValueError(f"{source} is not a report summary (no metrics)")
    return ReportSummary(title=str(data.get("title", source.parent.name)), metrics=data["metrics"],
                         metadata={str(k): str(v) for k, v in data.get("metadata", {}).items()},
                         sections=[str(title) for title in data.get("sections", [])], source=source)


# --- machine ---------------------------------------------------------------------------------------

def cpu_model() -> str:
    """The CPU's model name (from /proc/cpuinfo on Linux)."""
    cpuinfo = Path("/proc/cpuinfo")
    lines = cpuinfo.read_text().splitlines() if cpuinfo.exists() else []
    names = [line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")]
    return names[0] if names else platform.processor() or "unknown CPU"


def _memory() -> str:
    meminfo = Path("/proc/meminfo")
    for line in meminfo.read_text().splitlines() if meminfo.exists() else []:
        if line.startswith("MemTotal:"):
            return f"{int(line.split()[1]) / 2**20:.1f} GiB"
    return MISSING


def _git_commit(folder: Path) -> str:
    def git(*arguments: str) -> str:
        return subprocess.run(["git", "-C", str(folder), *arguments], capture_output=True, text=True, timeout=10,
                              check=True).stdout.strip()

    try:
        commit = git("rev-parse", "HEAD")
        modified = bool(git("status", "--porcelain", "--untracked-files=no"))
    except (OSError, subprocess.SubprocessError):
        return "not a git checkout"
    return commit + (" (with uncommitted changes)" if modified else "")


def _distribution_version(distribution: str) -> str | None:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def machine_metadata() -> dict[str, str]:
    """Python, OS, CPU model and cores, memory, versions of the key packages, the git commit of this
    checkout and the date (UTC), for a report's metadata. Reads package metadata only: imports none."""
    metadata = {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                "python": platform.python_version(), "os": platform.platform(), "cpu": cpu_model(),
                "cpu cores": str(os.cpu_count()), "memory": _memory()}
    if os.environ.get("ROS_DISTRO"):
        metadata["ROS distro"] = os.environ["ROS_DISTRO"]
    for package, distributions in KEY_PACKAGES.items():
        metadata[f"{package} version"] = next(
            (version for version in map(_distribution_version, distributions) if version), "not installed")
    metadata["git commit"] = _git_commit(Path(__file__).resolve().parent)
    return metadata
