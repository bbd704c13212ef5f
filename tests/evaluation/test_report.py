"""evaluation.report: report.md with linked figures, one self-contained report.html, report.json;
the page rendered in headless Chromium shows the figures."""
from __future__ import annotations

import base64
import io
import json
import math
import re

import numpy as np
import pytest
from matplotlib.colors import to_rgb
from PIL import Image

from evaluation import report_plots
from evaluation.report import (Figure, Report, Section, format_metric, machine_metadata, read_report_summary,
                               write_report)
from evaluation.report_check import ChromiumNotFoundError, find_chromium, render_in_chromium


def small_report() -> Report:
    ego = np.stack([np.linspace(0.0, 12.0, 13), np.zeros(13)], axis=1)
    truth = np.array([[25.0, 4.0, 0.8, 4.5, 2.0, 1.6, 0.0], [35.0, -3.0, 1.5, 10.0, 2.5, 3.0, 0.0]])
    scene = report_plots.bird_eye_view(ego, truth, truth + [0.4, 0.2, 0, 0, 0, 0, 0.05], {3: truth[:1, :2] - [[5, 0]]},
                                       [np.array([[25.0, 4.0], [40.0, 5.0]])], np.array([[12.0, 0.0], [40.0, 1.0]]),
                                       [np.array([[-20.0, -6.0], [80.0, -6.0]]), np.array([[-20.0, 8.0], [80.0, 8.0]])],
                                       title="Scene at the end")
    latency = report_plots.latency_histograms({"lidar_detector": list(np.random.default_rng(0).gamma(4, 10, 200))},
                                              {"lidar_detector": 100.0})
    return Report(
        title="edge-demo: CROA on urban_default", summary="A short drive, for the test.",
        sections=[Section("Scene", "What the robot saw.\n\n- two cars\n- one plan", [Figure("scene", "The scene", scene)]),
                  Section("Latency", "| node | median (ms) |\n| --- | ---: |\n| lidar_detector | 38 |",
                          [Figure("latency", "Latency <per node>", latency)])],
        metrics={"detection.ap_car": 0.8123, "detection.ap_pedestrian": math.nan, "planning.collisions": 0,
                 "uplink.energy_j": np.float64(12.5), "mode": "croa", "planning.goal_met": True},
        metadata={"mode": "croa", "git commit": "abc123", "configuration": "rate: 10\nplanner: croa\n"},
        overview=["detection.ap_car", "planning.collisions"])


def test_write_report_writes_markdown_figures_html_and_json(tmp_path):
    report = small_report()
    files = write_report(report, tmp_path / "run")
    assert files.markdown.is_file() and files.html.is_file() and files.json.is_file()
    assert [path.name for path in files.figures] == ["scene.png", "latency.png"]
    text = files.markdown.read_text()
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text)
    assert links == ["figures/scene.png", "figures/latency.png"]
    for link, figure in zip(links, [f for s in report.sections for f in s.figures]):
        assert (files.markdown.parent / link).read_bytes() == figure.png
    assert text.startswith("# edge-demo: CROA on urban_default\n\nA short drive")
    overview, rest = text.split("## Overview")[1].split("## Scene")[0], text.split("## All metrics")[1]
    assert "`ap_car` | 0.8123" in overview and "energy_j" not in overview
    assert "`energy_j` | 12.5" in rest and "`ap_pedestrian` | –" in rest and "`goal_met` | yes" in rest
    assert "```\nrate: 10\nplanner: croa\n```" in text  # the multi-line configuration as a code block


def test_html_is_self_contained_and_embeds_every_figure(tmp_path):
    report = small_report()
    page = write_report(report, tmp_path).html.read_text()
    sources = re.findall(r'src="([^"]*)"', page)
    assert len(sources) == 2 and all(source.startswith("data:image/png;base64,") for source in sources)
    for figure in (f for s in report.sections for f in s.figures):
        assert base64.b64encode(figure.png).decode() in page
    assert all(href.startswith("#") for href in re.findall(r'href="([^"]*)"', page))
    assert "<link" not in page and "@import" not in page and "url(" not in page and "<script" not in page
    assert "<table>" in page and "<li>two cars</li>" in page and "Latency &lt;per node&gt;" in page
    assert '<nav class="contents">' in page and 'href="#scene"' in page


def test_report_json_keeps_metrics_metadata_and_section_titles(tmp_path):
    write_report(small_report(), tmp_path)
    data = json.loads((tmp_path / "report.json").read_text())  # strict JSON: NaN is kept as null
    assert data["metrics"]["detection.ap_pedestrian"] is None and data["metrics"]["uplink.energy_j"] == 12.5
    summary = read_report_summary(tmp_path)
    assert summary == read_report_summary(tmp_path / "report.json")
    assert summary.title == "edge-demo: CROA on urban_default" and summary.sections == ["Scene", "Latency"]
    assert summary.metadata["git commit"] == "abc123" and summary.metrics["planning.collisions"] == 0
    with pytest.raises(FileNotFoundError, match="no report"):
        read_report_summary(tmp_path / "missing")


def test_figure_names_must_be_unique_file_stems(tmp_path):
    png = report_plots.time_series({}, "y", "empty")
    with pytest.raises(ValueError, match="unique"):
        write_report(Report("r", [Section("s", figures=[Figure("a", "", png), Figure("a", "", png)])]), tmp_path)
    with pytest.raises(ValueError, match="file stems"):
        write_report(Report("r", [Section("s", figures=[Figure("../a", "", png)])]), tmp_path)


def test_format_metric():
    assert [format_metric(v) for v in (None, math.nan, 0.812345, 12345.67, 3, False, "croa", np.int64(7))] == \
        ["–", "–", "0.8123", "12345.7", "3", "no", "croa", "7"]


def test_machine_metadata_names_the_machine_and_versions():
    metadata = machine_metadata()
    for key in ("date", "python", "os", "cpu", "cpu cores", "memory", "numpy version", "rclpy version",
                "git commit"):
        assert metadata[key], key
    assert metadata["numpy version"] == np.__version__
    assert all(isinstance(value, str) for value in metadata.values())


def colour_mask(image: np.ndarray, colour: str, tolerance: float = 30.0) -> np.ndarray:
    return np.linalg.norm(image - 255.0 * np.array(to_rgb(colour)), axis=-1) < tolerance


def test_page_renders_in_headless_chromium_with_its_figures(tmp_path):
    try:
        find_chromium()
    except ChromiumNotFoundError as error:
        pytest.skip(f"{error} (scripts/bootstrap.sh installs it, so CI runs this)")
    files = write_report(small_report(), tmp_path)
    screenshot = render_in_chromium(files.html, tmp_path / "screenshot.png", width=1280, height=2200)
    image = np.asarray(Image.open(io.BytesIO(screenshot.read_bytes())).convert("RGB")).astype(float)
    assert image.shape[:2] == (2200, 1280)
    assert image.std() > 20.0 and len(np.unique(image.reshape(-1, 3), axis=0)) > 200, "blank screenshot"
    for colour in (report_plots.TRUTH_FACE_COLOR, report_plots.PLANNED_PATH_COLOR, report_plots.HISTOGRAM_COLOR):
        assert colour_mask(image, colour).sum() > 300, f"no {colour} in the screenshot: a figure is missing"
