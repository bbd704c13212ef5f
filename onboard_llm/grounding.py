"""A compact text summary of what the robot sees and does, for the system prompt.

Small models follow short, regular facts best, so the summary is a few lines: counts per class, the
nearest objects with range, bearing and speed, and the planner's state. Objects are in the frame of
their message (the sensor or odom frame), so ranges are from that frame's origin.
"""
from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from perception.objects import DetectedObject, PredictedObject


@dataclass(frozen=True)
class PlanState:
    """What the planner said in its latest cycle (from edge_robot_msgs/PlannerStatus)."""

    target_id: int
    occlusion_ratio_now: float
    fallback: bool
    reason: str
    linear_velocity: float


def _where(x: float, y: float) -> str:
    bearing = math.degrees(math.atan2(y, x))
    side = "ahead" if abs(bearing) < 20 else ("left" if bearing > 0 else "right")
    return f"{math.hypot(x, y):.0f} m {side}"


def _name(label) -> str:
    return label.name.lower()


def scene_summary(detections: Sequence[DetectedObject] | None, predictions: Sequence[PredictedObject] | None,
                  plan: PlanState | None, max_objects: int = 5) -> str:
    """Lines for the system prompt; None inputs say nothing has been received yet."""
    lines = []
    if detections is None:
        lines.append("Detections: none received yet.")
    else:
        counts = Counter(_name(obj.label) for obj in detections)
        listed = ", ".join(f"{count} {label}" for label, count in counts.most_common()) or "nothing"
        nearest = sorted(detections, key=lambda obj: float(np.hypot(*obj.box.center[:2])))[:max_objects]
        lines.append(f"Detected now: {listed}.")
        if nearest:
            lines.append("Nearest: " + "; ".join(f"{_name(obj.label)} {_where(*obj.box.center[:2])}" for obj in nearest) + ".")
    if predictions is not None:
        moving = [obj for obj in predictions if float(np.hypot(*obj.track.velocity)) > 0.5]
        moving.sort(key=lambda obj: float(np.hypot(*obj.track.box.center[:2])))
        described = [f"{_name(obj.track.label)} {obj.track.object_id} at {_where(*obj.track.box.center[:2])}, "
                     f"{float(np.hypot(*obj.track.velocity)):.1f} m/s" for obj in moving[:max_objects]]
        lines.append(f"Tracked: {len(predictions)} objects, {len(moving)} moving" +
                     (": " + "; ".join(described) + "." if described else "."))
    if plan is not None:
        target = f"watching object {plan.target_id}, {plan.occlusion_ratio_now:.0%} hidden" if plan.target_id >= 0 else "no target"
        state = f"braking ({plan.reason})" if plan.fallback else f"driving at {plan.linear_velocity:.1f} m/s"
        lines.append(f"Planner: {state}, {target}.")
    return "\n".join(lines)
