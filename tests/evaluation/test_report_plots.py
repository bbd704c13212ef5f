"""evaluation.report_plots: the pictures show what they claim, read back from the PNG at the pixels
where the data lands (through the built figure's axes transforms)."""
from __future__ import annotations

import io

import numpy as np
import pytest
from matplotlib.colors import to_rgb
from PIL import Image

from evaluation import report_plots
from evaluation.report_plots import (DPI, EGO_COLOR, LIMIT_COLOR, P99_COLOR, PLANNED_PATH_COLOR, THRESHOLD_COLOR,
                                     TRUTH_FACE_COLOR, bird_eye_view_figure, latency_histograms_figure, png_bytes,
                                     time_series_figure, uplink_timeline_figure)

TRUTH_BOX = np.array([25.0, 4.0, 0.8, 4.5, 2.0, 1.6, 0.0])
"""One car 25 m along, 4 m to the left, heading along x."""


def pixels(png: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(float)


def colour_mask(image: np.ndarray, colour: str, tolerance: float = 30.0) -> np.ndarray:
    """Pixels within tolerance (RGB distance, 0-255 scale) of colour."""
    return np.linalg.norm(image - 255.0 * np.array(to_rgb(colour)), axis=-1) < tolerance


def pixel_of(axes, x: float, y: float, image: np.ndarray) -> tuple[int, int]:
    """(row, column) of data point (x, y) in the saved image (display y counts from the bottom)."""
    column, from_bottom = axes.transData.transform((x, y))
    return int(round(image.shape[0] - from_bottom)), int(round(column))


def colour_near(image: np.ndarray, row: int, column: int, colour: str, radius: int = 2) -> bool:
    return bool(colour_mask(image[row - radius:row + radius + 1, column - radius:column + radius + 1], colour).any())


def test_png_has_the_figure_size_at_dpi():
    figure = time_series_figure({"a": (np.arange(3), np.arange(3))}, "y (m)", "t")
    image = pixels(png_bytes(figure))
    assert image.shape[:2] == (round(figure.get_figheight() * DPI), round(figure.get_figwidth() * DPI))


def test_bird_eye_view_draws_the_truth_box_where_it_is_and_nowhere_else():
    ego = np.stack([np.linspace(0.0, 10.0, 11), np.zeros(11)], axis=1)
    plan = np.array([[10.0, 0.0], [20.0, -1.0], [30.0, -1.0]])
    figure = bird_eye_view_figure(ego, truth_boxes=TRUTH_BOX[None], planned_path=plan)
    image = pixels(png_bytes(figure))
    axes = figure.axes[0]
    row, column = pixel_of(axes, TRUTH_BOX[0], TRUTH_BOX[1], image)
    assert colour_mask(image, TRUTH_FACE_COLOR)[row, column], "the box's fill is not at its centre"
    # Inside the axes (the legend beside them has a sample patch), the fill lies only within the box.
    left, bottom, right, top = axes.get_window_extent().extents
    inside = np.zeros(image.shape[:2], dtype=bool)
    inside[int(image.shape[0] - top):int(image.shape[0] - bottom), int(left):int(right)] = True
    rows, columns = np.nonzero(colour_mask(image, TRUTH_FACE_COLOR) & inside)
    corner_rows, corner_columns = zip(*(pixel_of(axes, x, y, image) for x, y in
                                        [(22.75, 3.0), (27.25, 5.0)]))
    assert rows.min() >= min(corner_rows) - 1 and rows.max() <= max(corner_rows) + 1
    assert columns.min() >= min(corner_columns) - 1 and columns.max() <= max(corner_columns) + 1
    assert len(rows) > 0.5 * (max(corner_rows) - min(corner_rows)) * (max(corner_columns) - min(corner_columns))
    assert not colour_near(image, *pixel_of(axes, TRUTH_BOX[0], -TRUTH_BOX[1], image), TRUTH_FACE_COLOR)
    assert colour_near(image, *pixel_of(axes, 20.0, -1.0, image), PLANNED_PATH_COLOR)
    assert colour_near(image, *pixel_of(axes, 5.0, 0.0, image), EGO_COLOR)


def test_bird_eye_view_centres_a_little_ahead_of_the_ego():
    ego = np.array([[0.0, 0.0], [10.0, 0.0]])
    axes = bird_eye_view_figure(ego, radius=30.0).axes[0]
    assert axes.get_xlim() == pytest.approx((-10.0, 50.0))  # centre 10 m ahead of the ego at x = 10 and axes.get_ylim() == pytest.approx((-30.0, 30.0))
    assert axes.get_xlabel() == "x (m, map)" and axes.get_ylabel() == "y (m, map)"
    with pytest.raises(ValueError, match="ego_path"):
        bird_eye_view_figure(np.zeros((0, 2)))


def test_bird_eye_view_png_with_every_layer():
    boxes = np.array([[20.0, 3.0, 0.8, 4.5, 2.0, 1.6, 0.3]])
    png = report_plots.bird_eye_view(np.array([[0.0, 0.0], [5.0, 0.0]]), boxes, boxes + 0.2,
                                     {4: np.array([[15.0, 3.0], [20.0, 3.0]])}, [np.array([[20.0, 3.0], [30.0, 4.0]])],
                                     np.array([[5.0, 0.0], [25.0, 0.0]]), [np.array([[-10.0, -4.0], [60.0, -4.0]])])
    assert png.startswith(b"\x89PNG")


def test_time_series_draws_the_threshold_at_its_value():
    times = np.linspace(0.0, 10.0, 50)
    figure = time_series_figure({"CROA": (times, 0.2 + 0.05 * times), "lane keeping": (times, 0.9 - 0.02 * times)},
                                "occlusion ratio", "Occlusion", threshold=0.5)
    image = pixels(png_bytes(figure))
    axes = figure.axes[0]
    assert colour_near(image, *pixel_of(axes, 2.0, 0.5, image), THRESHOLD_COLOR)
    assert not colour_near(image, *pixel_of(axes, 2.0, 0.35, image), THRESHOLD_COLOR)
    assert [text.get_text() for text in axes.get_legend().get_texts()] == ["CROA", "lane keeping", "threshold 0.5"]


def test_uplink_timeline_cumulative_energies_end_at_the_sums():
    times = np.arange(40) * 0.1
    uploaded = np.arange(40) % 4 == 0
    energy = np.where(uploaded, 0.05, 0.002)
    always = np.full(40, 0.05)
    figure = uplink_timeline_figure(times, uploaded, energy, always)
    decisions, cumulative = figure.axes
    lines = {line.get_label().split(":")[0]: line for line in cumulative.get_lines()}
    assert lines["this run"].get_ydata()[-1] == pytest.approx(energy.sum())
    assert lines["always upload"].get_ydata()[-1] == pytest.approx(always.sum())
    assert "10 of 40 frames uploaded" in decisions.get_title()
    uploads, poses = decisions.collections
    assert len(uploads.get_segments()) == 10 and len(poses.get_segments()) == 30
    image = pixels(png_bytes(figure))
    assert colour_near(image, *pixel_of(cumulative, times[-1], energy.sum(), image), report_plots.ENERGY_COLOR)
    with pytest.raises(ValueError, match="lengths"):
        uplink_timeline_figure(times, uploaded[:-1], energy, always)


def test_latency_histograms_mark_the_p99_and_the_limit_at_their_values():
    values = np.random.default_rng(0).gamma(4.0, 10.0, 400)
    figure = latency_histograms_figure({"lidar_detector": list(values), "croa_planner": []},
                                       {"lidar_detector": 150.0})
    panel, empty = figure.axes[:2]
    p99 = np.percentile(values, 99.0)
    marks = {line.get_label().split()[0]: line.get_xdata()[0] for line in panel.get_lines()}
    assert marks["p99"] == pytest.approx(p99) and marks["median"] == pytest.approx(np.median(values))
    assert marks["limit"] == 150.0
    assert panel.get_xlabel() == "latency (ms)" and "n = 400" in panel.get_title()
    assert empty.texts[0].get_text() == "no samples"
    image = pixels(png_bytes(figure))
    top, bottom = (int(image.shape[0] - y) for y in panel.get_window_extent().extents[[3, 1]])

    def share_of_height(value: float, colour: str) -> float:
        _, column = pixel_of(panel, value, 0.0, image)
        return float(colour_mask(image[top:bottom, column - 1:column + 2], colour).any(axis=1).mean())

    assert share_of_height(p99, P99_COLOR) > 0.25  # a dashed line, partly under the legend
    assert share_of_height(150.0, LIMIT_COLOR) > 0.15  # dotted
    assert share_of_height(np.median(values), P99_COLOR) < 0.05
