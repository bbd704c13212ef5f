"""The run report's pictures, in one style: bird's-eye view of the scene, series over time, uplink
decisions and energy, latency histograms.

Each picture has a builder returning the matplotlib figure (`*_figure`, for tests that look up where
data lands in the picture) and a function returning its PNG bytes (for evaluation.report.Figure).
Figures are drawn off-screen (Agg) at DPI with a fixed size, never cropped on save, so the axes
transforms of a built figure map data to the saved PNG's pixels.
"""
from __future__ import annotations

import io
import math

import matplotlib
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure as MplFigure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch, Polygon
from matplotlib.ticker import MaxNLocator

from perception.objects import corners_bev

DPI = 120
WIDTH_IN = 9.0
"""Picture width in inches: 1080 px at DPI, about the page's figure width."""
STYLE = {
    "font.family": "DejaVu Sans", "font.size": 10.0, "axes.titlesize": 12.0, "axes.titleweight": "bold",
    "axes.labelsize": 10.0, "legend.fontsize": 9.0, "xtick.labelsize": 9.0, "ytick.labelsize": 9.0,
    "axes.grid": True, "grid.color": "#e3e8ee", "grid.linewidth": 0.8, "axes.axisbelow": True,
    "axes.spines.top": False, "axes.spines.right": False, "axes.edgecolor": "#7b8794",
    "legend.framealpha": 0.92, "legend.edgecolor": "#d9e2ec", "figure.facecolor": "white",
    "axes.facecolor": "white", "savefig.facecolor": "white",
}
"""rcParams every picture is drawn with."""

EGO_COLOR = "#1d3557"
TRUTH_FACE_COLOR = "#95d5b2"
TRUTH_EDGE_COLOR = "#2d6a4f"
DETECTION_COLOR = "#e63946"
TRACK_COLOR = "#0077b6"
PREDICTION_COLOR = "#9d4edd"
PLANNED_PATH_COLOR = "#f77f00"
ROAD_EDGE_COLOR = "#6c757d"
SERIES_COLORS = ("#0077b6", "#e76f51", "#2a9d8f", "#9d4edd", "#e9c46a", "#264653")
THRESHOLD_COLOR = "#d62828"
UPLOAD_COLOR = "#f77f00"
POSE_ONLY_COLOR = "#a3b1bf"
ENERGY_COLOR = "#0077b6"
ALWAYS_UPLOAD_COLOR = "#6c757d"
HISTOGRAM_COLOR = "#8ecae6"
MEDIAN_COLOR = "#1d3557"
P99_COLOR = "#e76f51"
LIMIT_COLOR = "#d62828"


def png_bytes(figure: MplFigure) -> bytes:
    """The figure as PNG at its own DPI and size (not cropped, so its transforms stay valid)."""
    buffer = io.BytesIO()
    with matplotlib.rc_context(STYLE):
        figure.savefig(buffer, format="png", dpi=figure.dpi)
    return buffer.getvalue()


def _new_figure(height_in: float) -> MplFigure:
    return MplFigure(figsize=(WIDTH_IN, height_in), dpi=DPI, layout="constrained")


def _no_data(axes: Axes, text: str = "no data") -> None:
    axes.text(0.5, 0.5, text, transform=axes.transAxes, ha="center", va="center", color="#7b8794", fontsize=11)


# --- bird's-eye view -------------------------------------------------------------------------------

def _view_center(ego_path: np.ndarray, radius: float) -> np.ndarray:
    """The ego's last position, moved a third of the radius ahead along its last heading: what lies
    ahead (predictions, the plan) matters more than what it left behind."""
    ego = ego_path[-1]
    steps = np.diff(ego_path, axis=0)
    moving = steps[np.linalg.norm(steps, axis=1) > 1e-3] if len(steps) else steps
    if not len(moving):
        return ego
    return ego + radius / 3.0 * moving[-1] / np.linalg.norm(moving[-1])


def _ego_heading_deg(ego_path: np.ndarray) -> float:
    steps = np.diff(ego_path, axis=0)
    moving = steps[np.linalg.norm(steps, axis=1) > 1e-3] if len(steps) else steps
    return math.degrees(math.atan2(moving[-1][1], moving[-1][0])) if len(moving) else 0.0


def bird_eye_view_figure(ego_path: np.ndarray, truth_boxes: np.ndarray | None = None,
                         detected_boxes: np.ndarray | None = None,
                         tracks: dict[int, np.ndarray] | None = None, predictions: list[np.ndarray] | None = None,
                         planned_path: np.ndarray | None = None, road_edges: list[np.ndarray] | None = None,
                         title: str = "Bird's-eye view", radius: float = 30.0, frame: str = "map") -> MplFigure:
    """The scene from above, around the ego: kerbs, true boxes (filled), detected boxes (outlined,
    with a heading tick), track histories with their ids, the most likely predicted paths (dashed),
    the planned path and the ego's driven path ending in its arrowhead.

    ego_path (N, 2) xy m, N >= 1; boxes (K, 7) rows x, y, z, l, w, h, yaw (m, rad); tracks: id -> (T, 2)
    history; predictions: (H, 2) paths; planned_path (P, 2); road_edges: (L, 2) polylines; all in
    `frame`. The view spans `radius` m from its centre (a little ahead of the ego) at equal scale.
    """
    ego_path = np.atleast_2d(np.asarray(ego_path, dtype=float))
    if ego_path.shape[0] < 1 or ego_path.shape[1] != 2:
        raise ValueError(f"ego_path: need (N >= 1, 2) xy, got shape {ego_path.shape}")
    with matplotlib.rc_context(STYLE):
        figure = _new_figure(6.6)
        axes = figure.add_subplot()
        legend: list = []
        for edge in road_edges or []:
            edge = np.asarray(edge, dtype=float)
            axes.plot(edge[:, 0], edge[:, 1], color=ROAD_EDGE_COLOR, linewidth=2.0, zorder=1, solid_capstyle="butt")
        if road_edges:
            legend.append(Line2D([], [], color=ROAD_EDGE_COLOR, linewidth=2.0, label="kerb"))
        if truth_boxes is not None and len(truth_boxes):
            for corners in corners_bev(np.asarray(truth_boxes, dtype=float)):
                axes.add_patch(Polygon(corners, closed=True, facecolor=TRUTH_FACE_COLOR, edgecolor=TRUTH_EDGE_COLOR,
                                       linewidth=1.0, zorder=2))
            legend.append(Patch(facecolor=TRUTH_FACE_COLOR, edgecolor=TRUTH_EDGE_COLOR, label="ground truth"))
        if detected_boxes is not None and len(detected_boxes):
            boxes = np.asarray(detected_boxes, dtype=float)
            for box, corners in zip(boxes, corners_bev(boxes)):
                axes.add_patch(Polygon(corners, closed=True, fill=False, edgecolor=DETECTION_COLOR, linewidth=1.6,
                                       zorder=3))
                front = corners[[0, 3]].mean(axis=0)  # the front face's midpoint: corners 0 and 3 are in front
                axes.plot([box[0], front[0]], [box[1], front[1]], color=DETECTION_COLOR, linewidth=1.2, zorder=3)
            legend.append(Patch(fill=False, edgecolor=DETECTION_COLOR, linewidth=1.6, label="detection"))
        for track_id, history in (tracks or {}).items():
            history = np.atleast_2d(np.asarray(history, dtype=float))
            axes.plot(history[:, 0], history[:, 1], color=TRACK_COLOR, linewidth=1.4, zorder=4)
            axes.plot(*history[-1], marker="o", markersize=4, color=TRACK_COLOR, zorder=4)
            axes.annotate(str(track_id), history[-1], xytext=(4, 4), textcoords="offset points", fontsize=8,
                          color=TRACK_COLOR, zorder=7, annotation_clip=True)
        if tracks:
            legend.append(Line2D([], [], color=TRACK_COLOR, linewidth=1.4, marker="o", markersize=4,
                                 label="track (id)"))
        for path in predictions or []:
            path = np.atleast_2d(np.asarray(path, dtype=float))
            axes.plot(path[:, 0], path[:, 1], color=PREDICTION_COLOR, linewidth=1.4, linestyle="--", zorder=4)
        if predictions:
            legend.append(Line2D([], [], color=PREDICTION_COLOR, linewidth=1.4, linestyle="--",
                                 label="predicted (most likely)"))
        if planned_path is not None and len(planned_path):
            plan = np.atleast_2d(np.asarray(planned_path, dtype=float))
            axes.plot(plan[:, 0], plan[:, 1], color=PLANNED_PATH_COLOR, linewidth=3.0, alpha=0.9, zorder=5,
                      solid_capstyle="round")
            legend.append(Line2D([], [], color=PLANNED_PATH_COLOR, linewidth=3.0, label="planned path (CROA)"))
        axes.plot(ego_path[:, 0], ego_path[:, 1], color=EGO_COLOR, linewidth=2.0, zorder=6)
        # Matplotlib's triangle marker points up at 0 degrees: turn it onto the heading.
        axes.plot(*ego_path[-1], marker=(3, 0, _ego_heading_deg(ego_path) - 90.0), markersize=11, color=EGO_COLOR,
                  markeredgecolor="white", zorder=6)
        legend.append(Line2D([], [], color=EGO_COLOR, linewidth=2.0, marker="^", markersize=8, label="ego (driven)"))
        center = _view_center(ego_path, radius)
        axes.set_xlim(center[0] - radius, center[0] + radius)
        axes.set_ylim(center[1] - radius, center[1] + radius)
        axes.set_aspect("equal", adjustable="box")  # a square view: the limits stay as set
        axes.set_xlabel(f"x (m, {frame})")
        axes.set_ylabel(f"y (m, {frame})")
        axes.set_title(title)
        axes.legend(handles=legend, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)
    return figure


def bird_eye_view(ego_path: np.ndarray, truth_boxes: np.ndarray | None = None,
                  detected_boxes: np.ndarray | None = None, tracks: dict[int, np.ndarray] | None = None,
                  predictions: list[np.ndarray] | None = None, planned_path: np.ndarray | None = None,
                  road_edges: list[np.ndarray] | None = None, title: str = "Bird's-eye view",
                  radius: float = 30.0, frame: str = "map") -> bytes:
    """bird_eye_view_figure as PNG bytes."""
    return png_bytes(bird_eye_view_figure(ego_path, truth_boxes, detected_boxes, tracks, predictions, planned_path,
                                          road_edges, title, radius, frame))


# --- over time -------------------------------------------------------------------------------------

def time_series_figure(series: dict[str, tuple[np.ndarray, np.ndarray]], ylabel: str, title: str,
                       threshold: float | None = None, xlabel: str = "time (s)") -> MplFigure:
    """One line per label (t, y) on shared axes, and the threshold as a dashed red line."""
    with matplotlib.rc_context(STYLE):
        figure = _new_figure(3.6)
        axes = figure.add_subplot()
        for index, (label, (times, values)) in enumerate(series.items()):
            axes.plot(np.asarray(times, dtype=float), np.asarray(values, dtype=float), label=label, linewidth=1.6,
                      color=SERIES_COLORS[index % len(SERIES_COLORS)])
        if threshold is not None:
            axes.axhline(threshold, color=THRESHOLD_COLOR, linestyle="--", linewidth=1.3,
                         label=f"threshold {threshold:g}")
        if not series:
            _no_data(axes)
        elif len(series) > 1 or threshold is not None:
            axes.legend(loc="best")
        axes.set_xlabel(xlabel)
        axes.set_ylabel(ylabel)
        axes.set_title(title)
    return figure


def time_series(series: dict[str, tuple[np.ndarray, np.ndarray]], ylabel: str, title: str,
                threshold: float | None = None, xlabel: str = "time (s)") -> bytes:
    """time_series_figure as PNG bytes (occlusion ratio over time, PSNR over time, …)."""
    return png_bytes(time_series_figure(series, ylabel, title, threshold, xlabel))


def uplink_timeline_figure(times: np.ndarray, uploaded: np.ndarray, energy_per_frame: np.ndarray,
                           always_upload_energy_per_frame: np.ndarray,
                           title: str = "Uplink decisions and energy") -> MplFigure:
    """Above: each camera frame's decision (image uploaded, or only the pose sent) at its time (s).
    Below: the cumulative uplink energy (J) of the run against uploading every frame."""
    times = np.asarray(times, dtype=float)
    uploaded = np.asarray(uploaded, dtype=bool)
    energy = np.asarray(energy_per_frame, dtype=float)
    always = np.asarray(always_upload_energy_per_frame, dtype=float)
    if not (len(times) == len(uploaded) == len(energy) == len(always)):
        raise ValueError(f"uplink_timeline: arrays of different lengths {len(times)}, {len(uploaded)}, "
                         f"{len(energy)}, {len(always)}")
    with matplotlib.rc_context(STYLE):
        figure = _new_figure(4.8)
        decisions, cumulative = figure.subplots(2, 1, sharex=True, height_ratios=[1.0, 2.6])
        decisions.vlines(times[uploaded], 0.55, 1.0, color=UPLOAD_COLOR, linewidth=1.2)
        decisions.vlines(times[~uploaded], 0.0, 0.45, color=POSE_ONLY_COLOR, linewidth=1.2)
        decisions.set_ylim(-0.05, 1.05)
        decisions.set_yticks([0.225, 0.775], ["pose only", "image"])
        decisions.grid(False, axis="y")
        decisions.set_title(f"{title}: {int(uploaded.sum())} of {len(uploaded)} frames uploaded")
        run_total, always_total = energy.sum(), always.sum()
        cumulative.plot(times, np.cumsum(always), color=ALWAYS_UPLOAD_COLOR, linewidth=1.8, linestyle="--",
                        label=f"always upload: {always_total:.3g} J")
        cumulative.plot(times, np.cumsum(energy), color=ENERGY_COLOR, linewidth=2.2,
                        label=f"this run: {run_total:.3g} J"
                        + (f" ({always_total / run_total:.1f}× less)" if run_total > 0 else ""))
        if not len(times):
            _no_data(cumulative, "no uplink decisions")
        else:
            cumulative.legend(loc="upper left")
        cumulative.set_ylim(bottom=0.0)
        cumulative.set_xlabel("time (s)")
        cumulative.set_ylabel("cumulative uplink energy (J)")
    return figure


def uplink_timeline(times: np.ndarray, uploaded: np.ndarray, energy_per_frame: np.ndarray,
                    always_upload_energy_per_frame: np.ndarray, title: str = "Uplink decisions and energy") -> bytes:
    """uplink_timeline_figure as PNG bytes."""
    return png_bytes(uplink_timeline_figure(times, uploaded, energy_per_frame, always_upload_energy_per_frame, title))


# --- latency ---------------------------------------------------------------------------------------

def latency_histograms_figure(samples: dict[str, list[float]], limits: dict[str, float | None] | None = None,
                              title: str = "Processing latency per node") -> MplFigure:
    """One histogram panel per node (latencies in ms) with the median (solid), the 99th percentile
    (dashed) and the node's limit (its period or target, dotted red) where limits has one."""
    limits = limits or {}
    columns = max(1, min(3, len(samples)))
    rows = max(1, math.ceil(len(samples) / columns))
    with matplotlib.rc_context(STYLE):
        figure = _new_figure(0.6 + 2.9 * rows)
        panels = figure.subplots(rows, columns, squeeze=False).ravel()
        for axes, (node, values) in zip(panels, samples.items()):
            values = np.asarray(values, dtype=float)
            values = values[np.isfinite(values)]
            axes.set_title(f"{node} (n = {len(values)})", fontsize=10)
            axes.set_xlabel("latency (ms)")
            axes.set_ylabel("messages")
            if not len(values):
                axes.set_xticks([])
                axes.set_yticks([])
                _no_data(axes, "no samples")
                continue
            limit = limits.get(node)
            upper = max(values.max(), limit or 0.0) * 1.08 or 1.0
            axes.hist(values, bins=np.linspace(0.0, upper, 31), color=HISTOGRAM_COLOR, edgecolor="white",
                      linewidth=0.5)
            median, p99 = np.percentile(values, [50.0, 99.0])
            axes.axvline(median, color=MEDIAN_COLOR, linewidth=1.6, label=f"median {median:.3g} ms")
            axes.axvline(p99, color=P99_COLOR, linewidth=1.6, linestyle="--", label=f"p99 {p99:.3g} ms")
            if limit is not None:
                axes.axvline(limit, color=LIMIT_COLOR, linewidth=1.6, linestyle=":", label=f"limit {limit:g} ms")
            axes.set_xlim(0.0, upper)
            axes.yaxis.set_major_locator(MaxNLocator(integer=True))
            axes.legend(loc="best", fontsize=8)
        for axes in panels[len(samples):]:
            axes.set_visible(False)
        if not samples:
            panels[0].set_visible(True)
            _no_data(panels[0], "no latency samples")
        figure.suptitle(title, fontsize=12, fontweight="bold")
    return figure


def latency_histograms(samples: dict[str, list[float]], limits: dict[str, float | None] | None = None,
                       title: str = "Processing latency per node") -> bytes:
    """latency_histograms_figure as PNG bytes."""
    return png_bytes(latency_histograms_figure(samples, limits, title))
