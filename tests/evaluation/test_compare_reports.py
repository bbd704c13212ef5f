"""compare-reports: two small reports side by side, every metric of either lined up by group."""
from __future__ import annotations

import json
import re

from evaluation.compare_reports import MetricComparison, compare_metrics, main
from evaluation.report import PAGE_STYLE, Report, Section, write_report


def write_two_reports(tmp_path):
    croa = Report("CROA run", [Section("Planning", "CROA drove.")],
                  metrics={"detection.ap_car": 0.8, "planning.collisions": 0, "planning.occlusion_ratio": 0.25,
                           "detection.ap_cyclist": 0.5, "mode": "croa"},
                  metadata={"git commit": "aaa", "python": "3.11.2", "configuration": "planner: croa\nrate: 10"})
    baseline = Report("Lane keeping run", [Section("Planning", "Lane keeping drove.")],
                      metrics={"detection.ap_car": 0.7, "planning.collisions": 0, "planning.occlusion_ratio": 0.5,
                               "uplink.energy_j": 3.0, "mode": "lane_keeping"},
                      metadata={"git commit": "bbb", "python": "3.11.2",
                                "configuration": "planner: lane_keeping\nrate: 10"})
    write_report(croa, tmp_path / "croa")
    write_report(baseline, tmp_path / "baseline")
    return tmp_path / "croa", tmp_path / "baseline"


def table_row(text: str, first_cell: str) -> list[str]:
    line = next(line for line in text.splitlines() if line.startswith(f"| {first_cell} |"))
    return [cell.strip() for cell in line.strip("|").split("|")]


def test_compare_reports_lines_up_every_metric_by_group(tmp_path, capsys):
    croa, baseline = write_two_reports(tmp_path)
    assert main([str(croa), str(baseline / "report.json"), "--labels", "croa", "lane keeping",
                 "--output", str(tmp_path / "out")]) == 0
    assert "comparison written" in capsys.readouterr().out
    text = (tmp_path / "out" / "compare.md").read_text()
    assert text.startswith("# croa vs lane keeping")
    headings = re.findall(r"^## (.*)$", text, flags=re.MULTILINE)
    assert headings == ["Reports", "Metrics: detection", "Metrics: planning", "Metrics: general", "Metrics: uplink",
                        "Metadata side by side"]
    detection = text.split("## Metrics: detection")[1].split("## ")[0]
    assert table_row(detection, "`ap_car`") == ["`ap_car`", "0.8", "0.7", "-0.1", "0.875"]
    assert table_row(detection, "`ap_cyclist`") == ["`ap_cyclist`", "0.5", "–", "–", "–"]
    planning = text.split("## Metrics: planning")[1].split("## ")[0]
    assert table_row(planning, "`occlusion_ratio`") == ["`occlusion_ratio`", "0.25", "0.5", "+0.25", "2"]
    assert table_row(planning, "`collisions`") == ["`collisions`", "0", "0", "0", "–"]  # no ratio to zero
    assert table_row(text, "`mode`") == ["`mode`", "croa", "lane_keeping", "–", "–"]
    assert table_row(text, "`energy_j`") == ["`energy_j`", "–", "3", "–", "–"]
    metadata = text.split("## Metadata side by side")[1]
    assert table_row(metadata, "git commit") == ["git commit", "aaa", "bbb", "**no**"]
    assert table_row(metadata, "python") == ["python", "3.11.2", "3.11.2", "yes"]
    assert "-planner: croa\n+planner: lane_keeping" in metadata  # the configurations' diff
    page = (tmp_path / "out" / "compare.html").read_text()
    assert PAGE_STYLE in page and "<table>" in page and "src=" not in page
    assert json.loads((tmp_path / "out" / "compare.json").read_text())["title"] == "croa vs lane keeping"


def test_default_labels_are_the_folder_names(tmp_path):
    croa, baseline = write_two_reports(tmp_path)
    assert main([str(croa), str(baseline), "--output", str(tmp_path / "out")]) == 0
    assert (tmp_path / "out" / "compare.md").read_text().startswith("# croa vs baseline")


def test_missing_report_is_a_clear_error(tmp_path, capsys):
    croa, _ = write_two_reports(tmp_path)
    assert main([str(croa), str(tmp_path / "nowhere"), "--output", str(tmp_path / "out")]) == 2
    assert "no report at" in capsys.readouterr().err


def test_compare_metrics_numbers_only_where_both_are_finite_numbers():
    groups = compare_metrics({"a.x": 2, "a.flag": True, "b.y": float("nan")}, {"a.x": 3.0, "a.flag": False, "c": 1})
    assert list(groups) == ["a", "b", "general"]
    x, flag = groups["a"]
    assert (x.difference, x.ratio) == (1.0, 1.5)
    assert flag.difference is None and groups["b"][0].difference is None
    assert MetricComparison("k", 0.0, 1.0).ratio is None and MetricComparison("k", 0.0, 1.0).difference == 1.0
