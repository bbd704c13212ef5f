"""Multi-object tracker: an EKF with the CTRV motion model per object, gated Hungarian association
within class groups, and an N-of-M track life (tentative, confirmed, deleted).

All tracks are held as arrays (states (N, 5), covariances (N, 5, 5), ...) and predicted, gated and
updated in batches, so a frame costs a few numpy calls however many objects there are.
Detections are given in one fixed frame (odom); velocities come out in that frame. A detection
left unassociated starts a tentative track only when its score reaches birth_score and it lies in
no track's gate (a split or duplicate box on a tracked object would otherwise start a second track).
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from perception.box_iou import bev_iou_matrix
from perception.objects import Box3D, DetectedObject, ObjectClass, TrackedObject, boxes_to_array
from perception.tracking.association import (MEASUREMENT_SIZE, assign, gate_threshold, innovations,
                                             mahalanobis_squared)
from perception.tracking.config import GROUP_OF_LABEL, TrackerConfig
from perception.tracking.ctrv import SPEED, STATE_SIZE, YAW, YAW_RATE, predict
from sim.transforms import wrap_angle

REVERSE_CONFIDENCE = 2.0
"""A track whose speed is negative by more than this many standard deviations is turned round
(heading + pi, speed positive): its first box was read back to front."""

MEASURED = [0, 1, YAW]
"""State indices of the measured (x, y, yaw)."""

LABELS = tuple(ObjectClass)
"""ObjectClass by value (ObjectClass(value) is slow enough to matter for 100 objects a frame)."""
NUM_LABELS = len(LABELS)


class TrackerInputError(ValueError):
    """Input the tracker refuses: a stamp that does not move forward, or non-finite detections."""


@dataclass
class TrackerCounters:
    """What a tracker has done since it was made (reset() does not clear them)."""

    frames: int = 0
    """update() calls accepted."""
    detections: int = 0
    """Detections received in accepted frames."""
    associated: int = 0
    """Detections associated with an existing track."""
    births: int = 0
    """Tentative tracks started."""
    confirmations: int = 0
    """Tentative tracks confirmed."""
    deletions: int = 0
    """Tracks deleted (coasted too long, too uncertain, or not confirmed in time); resets not included."""
    weak_detections: int = 0
    """Unassociated detections below birth_score (no track started)."""
    duplicate_detections: int = 0
    """Unassociated detections inside the gate of a track of their group, most likely a second box on
    one object (no track started)."""
    resets: int = 0
    """reset() calls."""


def _existence_after_hit(existence: np.ndarray, detection_probability: float,
                         false_alarm_probability: float) -> np.ndarray:
    """Bayes: P(exists | associated detection)."""
    evidence = existence * detection_probability
    return evidence / (evidence + (1.0 - existence) * false_alarm_probability)


def _existence_after_miss(existence: np.ndarray, detection_probability: float) -> np.ndarray:
    """Bayes: P(exists | no detection)."""
    return existence * (1.0 - detection_probability) / (1.0 - existence * detection_probability)


class MultiObjectTracker:
    """Tracks detected objects over time; see the module docstring."""

    def __init__(self, config: TrackerConfig | None = None) -> None:
        self.config = config or TrackerConfig()
        models = self.config.class_models()
        self._gate = gate_threshold(self.config.gate_probability)
        # Per class group, in CLASS_GROUPS order (indexed by a track's group).
        self._acceleration_std = np.array([m.acceleration_std for m in models])
        self._yaw_acceleration_std = np.array([m.yaw_acceleration_std for m in models])
        self._measurement_noise = np.array([np.diag([m.position_std ** 2, m.position_std ** 2, m.yaw_std ** 2])
                                            for m in models])
        self._initial_covariance = np.array([np.diag([m.position_std ** 2, m.position_std ** 2, m.yaw_std ** 2,
                                                      m.initial_speed_std ** 2, m.initial_yaw_rate_std ** 2])
                                             for m in models])
        self.next_id = 1
        """The id the next new track gets; ids count up and are never reused, also across reset()
        (a restarted node sets it from its previous instance's)."""
        self.counters = TrackerCounters()
        """Cumulative counts, for diagnostics."""
        self.reset()
        self.counters.resets = 0

    def reset(self) -> None:
        """Forget every track and the latest stamp; ids keep counting up."""
        self._tracks: dict[str, np.ndarray] = {
            "state": np.zeros((0, STATE_SIZE)), "covariance": np.zeros((0, STATE_SIZE, STATE_SIZE)),
            "size": np.zeros((0, 3)), "z": np.zeros(0), "group": np.zeros(0, dtype=np.intp),
            "class_scores": np.zeros((0, NUM_LABELS)), "object_id": np.zeros(0, dtype=np.int64),
            "birth_stamp": np.zeros(0), "last_hit_stamp": np.zeros(0), "hits": np.zeros(0, dtype=np.int64),
            "frames": np.zeros(0, dtype=np.int64), "confirmed": np.zeros(0, dtype=bool), "existence": np.zeros(0)}
        self._stamp: float | None = None
        self._output: list[TrackedObject] = []
        self.counters.resets += 1

    # --- queries -----------------------------------------------------------------------------------

    @property
    def stamp(self) -> float | None:
        """Stamp of the latest accepted update, seconds; None before the first (or after reset())."""
        return self._stamp

    @property
    def tracks(self) -> list[TrackedObject]:
        """The confirmed tracks at the latest stamp (what the latest update returned)."""
        return list(self._output)

    @property
    def num_tentative(self) -> int:
        """Live tracks not yet confirmed."""
        return int(np.count_nonzero(~self._tracks["confirmed"]))

    @property
    def num_confirmed(self) -> int:
        """Live confirmed tracks."""
        return int(np.count_nonzero(self._tracks["confirmed"]))

    def predict_to(self, stamp: float) -> list[TrackedObject]:
        """The confirmed tracks predicted to `stamp` (not before the latest update); no state changes."""
        stamp = self._checked_stamp(stamp, allow_equal=True)
        if self._stamp is None:
            return []
        states, covariances = self._predicted(stamp - self._stamp)
        confirmed = self._tracks["confirmed"]
        return self._objects(confirmed, states, covariances, stamp)

    # --- update ------------------------------------------------------------------------------------

    def update(self, detections: Sequence[DetectedObject], stamp: float) -> list[TrackedObject]:
        """Take one frame of detections (fixed frame) at `stamp` seconds; return the confirmed tracks
        at `stamp`. Raises TrackerInputError, changing nothing, for a stamp not after the previous
        one or non-finite detections."""
        stamp = self._checked_stamp(stamp, allow_equal=False)
        boxes, labels, scores = self._detection_arrays(detections)
        tracks = self._tracks
        if self._stamp is not None and len(tracks["state"]):
            tracks["state"], tracks["covariance"] = self._predicted(stamp - self._stamp)
        tracks["frames"] += 1

        groups = GROUP_OF_LABEL[labels]
        track_rows, detection_columns, in_some_gate = self._associate(boxes, groups)
        self._correct(track_rows, boxes[detection_columns], labels[detection_columns], scores[detection_columns],
                      stamp)

        unmatched = np.ones(len(boxes), dtype=bool)
        unmatched[detection_columns] = False
        strong = scores >= self.config.birth_score
        births = unmatched & strong & ~in_some_gate
        doubled = births & _overlaps_a_stronger(boxes, groups, scores, births)
        births &= ~doubled
        self.counters.frames += 1
        self.counters.detections += len(boxes)
        self.counters.associated += len(detection_columns)
        self.counters.weak_detections += int(np.count_nonzero(unmatched & ~strong))
        self.counters.duplicate_detections += int(np.count_nonzero(unmatched & strong & in_some_gate)
                                                  + np.count_nonzero(doubled))
        self._start_tracks(boxes[births], labels[births], scores[births], groups[births], stamp)
        self._confirm_and_delete(stamp)

        self._stamp = stamp
        tracks = self._tracks
        self._output = self._objects(tracks["confirmed"], tracks["state"], tracks["covariance"], stamp)
        return list(self._output)

    def _checked_stamp(self, stamp: float, allow_equal: bool) -> float:
        stamp = float(stamp)
        if not math.isfinite(stamp):
            raise TrackerInputError(f"stamp must be finite, got {stamp}")
        if self._stamp is not None and (stamp < self._stamp or (stamp == self._stamp and not allow_equal)):
            what = "repeats" if stamp == self._stamp else "goes backwards from"
            raise TrackerInputError(f"stamp {stamp:.9f} s {what} the previous one ({self._stamp:.9f} s); "
                                    "reset() the tracker when time jumps back")
        return stamp

    @staticmethod
    def _detection_arrays(detections: Sequence[DetectedObject]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Boxes (D, 7) x, y, z, l, w, h, yaw, labels (D,) and scores (D,); refuses non-finite values
        and labels that are no ObjectClass."""
        boxes = boxes_to_array([d.box for d in detections])
        scores = np.array([d.score for d in detections], dtype=np.float64)
        if not (np.isfinite(boxes).all() and np.isfinite(scores).all()):
            bad = np.flatnonzero(~np.isfinite(boxes).all(axis=1) | ~np.isfinite(scores)).tolist()
            raise TrackerInputError(f"detections {bad} hold NaN or infinite values (box or score)")
        labels = np.array([d.label for d in detections], dtype=np.intp)
        unknown = (labels < 0) | (labels >= NUM_LABELS)
        if unknown.any():
            raise TrackerInputError(f"detections {np.flatnonzero(unknown).tolist()} have labels that are no "
                                    f"ObjectClass: {labels[unknown].tolist()}")
        return boxes, labels, scores

    def _predicted(self, dt: float) -> tuple[np.ndarray, np.ndarray]:
        groups = self._tracks["group"]
        states, covariances = predict(self._tracks["state"], self._tracks["covariance"], dt,
                                      self._acceleration_std[groups], self._yaw_acceleration_std[groups])
        states[:, YAW] = wrap_angle(states[:, YAW])
        return states, covariances

    def _innovation_covariances(self) -> np.ndarray:
        covariances = self._tracks["covariance"]
        return covariances[:, MEASURED][:, :, MEASURED] + self._measurement_noise[self._tracks["group"]]

    def _associate(self, boxes: np.ndarray, groups: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(track rows, detection columns) of the associated pairs, and per detection whether it lies
        in the gate of any track of its group."""
        tracks = self._tracks
        if not len(tracks["state"]) or not len(boxes):
            empty = np.zeros(0, dtype=np.intp)
            return empty, empty, np.zeros(len(boxes), dtype=bool)
        innovation_covariances = self._innovation_covariances()
        residuals = innovations(tracks["state"][:, MEASURED], boxes[:, [0, 1, 6]])
        distances = mahalanobis_squared(residuals, np.linalg.inv(innovation_covariances))
        allowed = (distances <= self._gate) & (tracks["group"][:, None] == groups[None, :])
        # The negative log-likelihood, not the bare distance: an uncertain (new or coasting) track,
        # whose wide gate would make every detection look close, pays for its spread.
        costs = distances + np.linalg.slogdet(innovation_covariances)[1][:, None]
        rows, columns = assign(costs, allowed)
        return rows, columns, allowed.any(axis=0)

    def _correct(self, rows: np.ndarray, boxes: np.ndarray, labels: np.ndarray, scores: np.ndarray,
                 stamp: float) -> None:
        """EKF update of the associated tracks; existence update of all."""
        tracks, config = self._tracks, self.config
        hit = np.zeros(len(tracks["state"]), dtype=bool)
        hit[rows] = True
        tracks["existence"][~hit] = _existence_after_miss(tracks["existence"][~hit], config.detection_probability)
        if not len(rows):
            return
        states, covariances = tracks["state"][rows], tracks["covariance"][rows]
        noise = self._measurement_noise[tracks["group"][rows]]
        residuals = innovations(states[:, MEASURED], boxes[:, [0, 1, 6]])[np.arange(len(rows)), np.arange(len(rows))]
        innovation_covariances = covariances[:, MEASURED][:, :, MEASURED] + noise
        gains = covariances[:, :, MEASURED] @ np.linalg.inv(innovation_covariances)  # (K, 5, 3)
        states = states + np.einsum("kij,kj->ki", gains, residuals)
        states[:, YAW] = wrap_angle(states[:, YAW])
        # Joseph form: stays symmetric and positive definite with any gain.
        observation = np.zeros((MEASUREMENT_SIZE, STATE_SIZE))
        observation[np.arange(MEASUREMENT_SIZE), MEASURED] = 1.0
        keep = np.eye(STATE_SIZE) - gains @ observation
        covariances = (keep @ covariances @ keep.transpose(0, 2, 1)
                       + gains @ noise @ gains.transpose(0, 2, 1))
        states, covariances = self._turned_round(states, covariances)
        tracks["state"][rows], tracks["covariance"][rows] = states, 0.5 * (covariances + covariances.transpose(0, 2, 1))

        weight = config.size_smoothing
        tracks["size"][rows] += weight * (boxes[:, 3:6] - tracks["size"][rows])
        tracks["z"][rows] += weight * (boxes[:, 2] - tracks["z"][rows])
        tracks["class_scores"][rows, labels] += scores
        tracks["hits"][rows] += 1
        tracks["last_hit_stamp"][rows] = stamp
        tracks["existence"][rows] = _existence_after_hit(tracks["existence"][rows], config.detection_probability,
                                                         config.false_alarm_probability)

    @staticmethod
    def _turned_round(states: np.ndarray, covariances: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """States confidently driving backwards turned round (see REVERSE_CONFIDENCE); the map
        (yaw, speed) -> (yaw + pi, -speed) negates the speed's covariance row and column."""
        reverse = states[:, SPEED] < -REVERSE_CONFIDENCE * np.sqrt(covariances[:, SPEED, SPEED])
        if not reverse.any():
            return states, covariances
        states, covariances = states.copy(), covariances.copy()
        states[reverse, YAW] = wrap_angle(states[reverse, YAW] + np.pi)
        states[reverse, SPEED] *= -1.0
        covariances[reverse, SPEED, :] *= -1.0
        covariances[reverse, :, SPEED] *= -1.0
        return states, covariances

    def _start_tracks(self, boxes: np.ndarray, labels: np.ndarray, scores: np.ndarray, groups: np.ndarray,
                      stamp: float) -> None:
        count = len(boxes)
        if not count:
            return
        states = np.zeros((count, STATE_SIZE))
        states[:, MEASURED] = boxes[:, [0, 1, 6]]
        class_scores = np.zeros((count, NUM_LABELS))
        class_scores[np.arange(count), labels] = scores
        new = {"state": states, "covariance": self._initial_covariance[groups], "size": boxes[:, 3:6],
               "z": boxes[:, 2], "group": groups, "class_scores": class_scores,
               "object_id": np.arange(self.next_id, self.next_id + count, dtype=np.int64),
               "birth_stamp": np.full(count, stamp), "last_hit_stamp": np.full(count, stamp),
               "hits": np.ones(count, dtype=np.int64), "frames": np.ones(count, dtype=np.int64),
               "confirmed": np.zeros(count, dtype=bool), "existence": scores.copy()}
        self.next_id += count
        self._tracks = {name: np.concatenate([column, new[name]]) for name, column in self._tracks.items()}
        self.counters.births += count

    def _confirm_and_delete(self, stamp: float) -> None:
        tracks, config = self._tracks, self.config
        confirming = ~tracks["confirmed"] & (tracks["hits"] >= config.confirm_hits)
        tracks["confirmed"] |= confirming
        self.counters.confirmations += int(np.count_nonzero(confirming))
        covariances = tracks["covariance"]
        xx, yy, xy = covariances[:, 0, 0], covariances[:, 1, 1], covariances[:, 0, 1]
        largest_variance = 0.5 * (xx + yy) + np.sqrt(0.25 * (xx - yy) ** 2 + xy ** 2)
        delete = ((stamp - tracks["last_hit_stamp"] > config.max_coast_time)
                  | (largest_variance > config.max_position_std ** 2)
                  | (~tracks["confirmed"] & (tracks["frames"] >= config.confirm_window)))
        if delete.any():
            self._tracks = {name: column[~delete] for name, column in tracks.items()}
            self.counters.deletions += int(np.count_nonzero(delete))

    # --- output ------------------------------------------------------------------------------------

    def _objects(self, chosen: np.ndarray, states: np.ndarray, covariances: np.ndarray,
                 stamp: float) -> list[TrackedObject]:
        """TrackedObjects of the chosen rows with the given states and covariances."""
        tracks = self._tracks
        states, covariances = states[chosen], covariances[chosen]
        count = len(states)
        yaw, speed = states[:, YAW], states[:, SPEED]
        velocities = speed[:, None] * np.stack([np.cos(yaw), np.sin(yaw)], axis=1)
        pose_covariances = np.zeros((count, 6, 6))
        pose_indices = np.array([0, 1, 5])  # x, y, yaw of (x, y, z, roll, pitch, yaw); z, roll, pitch not estimated
        pose_covariances[:, pose_indices[:, None], pose_indices] = covariances[:, MEASURED][:, :, MEASURED]
        # Object-frame (vx, vy, wz) = (speed, speed * heading error, yaw_rate), linearised in (yaw, speed, yaw_rate).
        velocity_jacobians = np.zeros((count, 3, 3))
        velocity_jacobians[:, 0, 1] = 1.0
        velocity_jacobians[:, 1, 0] = speed
        velocity_jacobians[:, 2, 2] = 1.0
        motion = [YAW, SPEED, YAW_RATE]
        velocity_block = velocity_jacobians @ covariances[:, motion][:, :, motion] @ velocity_jacobians.transpose(0, 2, 1)
        velocity_covariances = np.zeros((count, 6, 6))
        velocity_covariances[:, pose_indices[:, None], pose_indices] = velocity_block
        labels = np.argmax(tracks["class_scores"][chosen], axis=1)
        centers = np.column_stack([states[:, :2], tracks["z"][chosen]])
        ages = stamp - tracks["birth_stamp"][chosen]
        # tolist() gives Python ints and floats in one call each, not one numpy scalar per object.
        return [TrackedObject(object_id=object_id, label=LABELS[label], score=existence,
                              box=Box3D(center, size, heading), velocity=velocity, yaw_rate=yaw_rate,
                              pose_covariance=pose_covariance, velocity_covariance=velocity_covariance, age=age)
                for object_id, label, existence, center, size, heading, velocity, yaw_rate, pose_covariance,
                velocity_covariance, age in zip(
                    tracks["object_id"][chosen].tolist(), labels.tolist(), tracks["existence"][chosen].tolist(),
                    centers, tracks["size"][chosen], yaw.tolist(), velocities, states[:, YAW_RATE].tolist(),
                    pose_covariances, velocity_covariances, ages.tolist())]


DUPLICATE_IOU = 0.3
"""New detections of one class group overlapping more than this (bird's-eye IoU) are one object
reported twice; only the strongest starts a track."""


def _overlaps_a_stronger(boxes: np.ndarray, groups: np.ndarray, scores: np.ndarray, candidates: np.ndarray) -> np.ndarray:
    """(D,) True for each candidate that overlaps a stronger (or equal, earlier) candidate of its group."""
    rows = np.flatnonzero(candidates)
    doubled = np.zeros(len(boxes), dtype=bool)
    if len(rows) < 2:
        return doubled
    overlap = bev_iou_matrix(boxes[rows], boxes[rows]) > DUPLICATE_IOU
    same_group = groups[rows][:, None] == groups[rows][None, :]
    order = np.argsort(-scores[rows], kind="stable")
    rank = np.empty(len(rows), dtype=np.intp)
    rank[order] = np.arange(len(rows))
    ranked_before = rank[None, :] < rank[:, None]  # [i, j]: j outranks i
    doubled[rows] = (overlap & same_group & ranked_before).any(axis=1)
    return doubled
