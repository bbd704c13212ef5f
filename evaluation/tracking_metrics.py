"""Multi-object tracking metrics: CLEAR MOT (Bernardin and Stiefelhagen 2008) and the identity
metrics IDF1 (Ristani et al. 2016), per class group, from ground-truth and track centres.

Per frame and class group, a track and a ground-truth object may match when their ground-plane
centres are at most the group's match distance apart. As in CLEAR MOT, the previous match of an
object (its last one, also across frames in which it was missed) is kept while it stays within
that distance; the remaining objects and tracks are matched by the Hungarian method on distance.
A match to another track than the object's previous one is an identity switch; an object that
becomes tracked again after frames without a match is a fragmentation.

MOTA = 1 - (misses + false tracks + switches) / ground truth; MOTP is the mean centre distance of
the matches, metres (lower is better). IDF1 matches ground-truth ids to track ids once for the
whole sequence (Hungarian on the frames they are within the match distance), so every frame of an
object followed by another track than its own counts against it.

`ignored` ground truth in a frame (objects that exist but are not scored, e.g. too few lidar
points) is neither a miss nor a hit, and a track left unmatched near one is not a false track.
"""
from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field, fields

import numpy as np
from scipy.optimize import linear_sum_assignment

from perception.objects import GroundTruthObject, TrackedObject
from perception.tracking.association import assign
from perception.tracking.config import CLASS_GROUPS


def _default_match_distances() -> dict[str, float]:
    return {"vehicle": 2.0, "pedestrian": 1.0, "cyclist": 1.5, "unknown": 2.0}


@dataclass
class TrackingEvalConfig:
    """How tracks are matched to ground truth and trajectories graded."""

    match_distance: dict[str, float] = field(default_factory=_default_match_distances)
    """Class group (perception.tracking.CLASS_GROUPS) -> largest centre distance of a match, metres."""
    mostly_tracked: float = 0.8
    """An object matched in at least this share of its frames is mostly tracked."""
    mostly_lost: float = 0.2
    """An object matched in at most this share of its frames is mostly lost."""

    def __post_init__(self) -> None:
        missing = set(CLASS_GROUPS) - set(self.match_distance)
        if missing:
            raise ValueError(f"match_distance: no distance for class groups {sorted(missing)}")
        if any(not distance > 0.0 for distance in self.match_distance.values()):
            raise ValueError(f"match_distance: must be > 0, got {self.match_distance}")
        if not 0.0 <= self.mostly_lost < self.mostly_tracked <= 1.0:
            raise ValueError(f"need 0 <= mostly_lost < mostly_tracked <= 1, got {self.mostly_lost}, "
                             f"{self.mostly_tracked}")


@dataclass
class TrackingFrame:
    """What was true and what was tracked at one stamp, in one frame (e.g. map)."""

    truth: Sequence[GroundTruthObject]
    """Scored ground truth."""
    tracks: Sequence[TrackedObject]
    """Tracker output."""
    ignored: Sequence[GroundTruthObject] = ()
    """Ground truth that exists but is not scored (see the module docstring)."""


@dataclass
class GroupScores:
    """Counts of one class group over a sequence, and the metrics made from them."""

    group: str
    """Class group name, or "all"."""
    ground_truth: int = 0
    """Scored ground-truth observations (object-frames)."""
    track_observations: int = 0
    """Track observations (track-frames) not discounted as near ignored ground truth."""
    matches: int = 0
    """CLEAR MOT matches."""
    misses: int = 0
    """Unmatched ground truth (false negatives)."""
    false_positives: int = 0
    """Unmatched tracks (false tracks)."""
    id_switches: int = 0
    """Matches to another track than the object's previous one."""
    fragmentations: int = 0
    """Objects becoming tracked again after being untracked while present."""
    distance_sum: float = 0.0
    """Sum of the matches' centre distances, metres."""
    velocity_error_sum: float = 0.0
    """Sum over matches of |v_track - v_truth|, m/s."""
    objects: int = 0
    """Distinct ground-truth ids."""
    mostly_tracked: int = 0
    """Objects matched in at least TrackingEvalConfig.mostly_tracked of their frames."""
    mostly_lost: int = 0
    """Objects matched in at most TrackingEvalConfig.mostly_lost of their frames."""
    id_true_positives: int = 0
    """IDTP: object-frames followed by the object's own track (from the global id matching)."""

    @property
    def mota(self) -> float:
        """Multiple-object tracking accuracy; NaN without ground truth."""
        if not self.ground_truth:
            return math.nan
        return 1.0 - (self.misses + self.false_positives + self.id_switches) / self.ground_truth

    @property
    def motp(self) -> float:
        """Mean centre distance of the matches, metres; NaN without matches."""
        return self.distance_sum / self.matches if self.matches else math.nan

    @property
    def mean_velocity_error(self) -> float:
        """Mean |v_track - v_truth| of the matches, m/s; NaN without matches."""
        return self.velocity_error_sum / self.matches if self.matches else math.nan

    @property
    def id_false_negatives(self) -> int:
        """IDFN: object-frames not followed by the object's own track."""
        return self.ground_truth - self.id_true_positives

    @property
    def id_false_positives(self) -> int:
        """IDFP: track-frames not on the track's own object."""
        return self.track_observations - self.id_true_positives

    @property
    def idf1(self) -> float:
        """2 IDTP / (2 IDTP + IDFP + IDFN); NaN when there is neither ground truth nor a track."""
        denominator = 2 * self.id_true_positives + self.id_false_positives + self.id_false_negatives
        return 2 * self.id_true_positives / denominator if denominator else math.nan

    @property
    def partly_tracked(self) -> int:
        """Objects neither mostly tracked nor mostly lost."""
        return self.objects - self.mostly_tracked - self.mostly_lost

    def __add__(self, other: GroupScores) -> GroupScores:
        """Counts of two disjoint sets of objects together: the same group in two sequences keeps
        its name, two groups become "all"."""
        counts = {f.name: getattr(self, f.name) + getattr(other, f.name) for f in fields(self) if f.name != "group"}
        return GroupScores(group=self.group if self.group == other.group else "all", **counts)


TABLE_HEADER = ("GT", "MOTA", "IDF1", "ID sw.", "frag.", "FP", "FN", "MOTP (m)", "vel. err (m/s)", "MT / PT / ML")
"""Columns of TrackingEvalResult.to_markdown after the leading label columns."""


def _number(value: float, digits: int) -> str:
    return "–" if math.isnan(value) else f"{value:.{digits}f}"


@dataclass
class TrackingEvalResult:
    """Scores of every class group that has ground truth or tracks."""

    config: TrackingEvalConfig
    """The configuration used."""
    groups: dict[str, GroupScores]
    """Class group name -> scores, in CLASS_GROUPS order."""
    frames: int
    """Frames scored."""

    @property
    def overall(self) -> GroupScores:
        """All groups together."""
        return sum(self.groups.values(), GroupScores(group="all"))

    def to_markdown(self, labels: Sequence[tuple[str, str]] = (), header: bool = True) -> str:
        """A table with one row per group (and "all" when there are several); `labels` are leading
        (column name, value) cells repeated on every row, e.g. [("scenario", "urban_default")], so
        results can be stacked into one table (header=False for the later ones)."""
        rows = list(self.groups.values()) + ([self.overall] if len(self.groups) > 1 else [])
        names = [name for name, _ in labels] + ["class"] + list(TABLE_HEADER)
        lines = ["| " + " | ".join(names) + " |", "|" + "---|" * len(names)] if header else []
        for scores in rows:
            cells = [value for _, value in labels] + [
                scores.group, str(scores.ground_truth), _number(scores.mota, 3), _number(scores.idf1, 3),
                str(scores.id_switches), str(scores.fragmentations), str(scores.false_positives), str(scores.misses),
                _number(scores.motp, 2), _number(scores.mean_velocity_error, 2),
                f"{scores.mostly_tracked} / {scores.partly_tracked} / {scores.mostly_lost}"]
            lines.append("| " + " | ".join(cells) + " |")
        return "\n".join(lines)


def _centres(objects: Sequence) -> np.ndarray:
    return np.array([o.box.center[:2] for o in objects], dtype=np.float64).reshape(-1, 2)


def _distances(truth: Sequence, tracks: Sequence) -> np.ndarray:
    """Ground-plane centre distances (len(truth), len(tracks))."""
    return np.linalg.norm(_centres(truth)[:, None, :] - _centres(tracks)[None, :, :], axis=-1)


class _GroupAccumulator:
    """Running CLEAR MOT and identity counts of one class group."""

    def __init__(self, group: str, match_distance: float) -> None:
        self.scores = GroupScores(group=group)
        self.match_distance = match_distance
        self.last_match: dict[int, int] = {}  # object id -> track id of its latest match
        self.tracked_last_seen: dict[int, bool] = {}  # object id -> matched in its latest frame
        self.frames_present: dict[int, int] = defaultdict(int)
        self.frames_matched: dict[int, int] = defaultdict(int)
        self.pair_frames: dict[tuple[int, int], int] = defaultdict(int)  # (object id, track id) -> frames near

    def add(self, truth: Sequence[GroundTruthObject], tracks: Sequence[TrackedObject],
            ignored: Sequence[GroundTruthObject]) -> None:
        scores = self.scores
        distances = _distances(truth, tracks)
        near = distances <= self.match_distance
        pairs = self._clear_matches(truth, tracks, distances, near)

        matched_tracks = {column for _, column in pairs}
        unmatched = [column for column in range(len(tracks)) if column not in matched_tracks]
        near_ignored = (_distances(ignored, [tracks[c] for c in unmatched]) <= self.match_distance).any(axis=0)
        discounted = {column for column, dropped in zip(unmatched, near_ignored) if dropped}
        counted_tracks = [column for column in range(len(tracks)) if column not in discounted]

        scores.ground_truth += len(truth)
        scores.track_observations += len(counted_tracks)
        scores.matches += len(pairs)
        scores.misses += len(truth) - len(pairs)
        scores.false_positives += len(unmatched) - len(discounted)
        matched_rows = {row for row, _ in pairs}
        for row, column in pairs:
            scores.distance_sum += float(distances[row, column])
            scores.velocity_error_sum += float(np.linalg.norm(np.asarray(tracks[column].velocity[:2])
                                                              - np.asarray(truth[row].velocity[:2])))
        for row, obj in enumerate(truth):
            matched = row in matched_rows
            if matched and obj.object_id in self.tracked_last_seen and not self.tracked_last_seen[obj.object_id]:
                scores.fragmentations += obj.object_id in self.last_match  # resumed after a gap
            self.tracked_last_seen[obj.object_id] = matched
            self.frames_present[obj.object_id] += 1
            self.frames_matched[obj.object_id] += matched
            for column in counted_tracks:
                if near[row, column]:
                    self.pair_frames[(obj.object_id, tracks[column].object_id)] += 1
        for row, column in pairs:
            self.last_match[truth[row].object_id] = tracks[column].object_id

    def _clear_matches(self, truth, tracks, distances: np.ndarray, near: np.ndarray) -> list[tuple[int, int]]:
        """CLEAR MOT pairs (row, column): previous matches still near, then Hungarian on the rest;
        counts the switches."""
        column_of_track = {track.object_id: column for column, track in enumerate(tracks)}
        pairs, taken_rows, taken_columns = [], set(), set()
        for row, obj in enumerate(truth):
            column = column_of_track.get(self.last_match.get(obj.object_id, -1))
            if column is not None and near[row, column] and column not in taken_columns:
                pairs.append((row, column))
                taken_rows.add(row)
                taken_columns.add(column)
        free_rows = [row for row in range(len(truth)) if row not in taken_rows]
        free_columns = [column for column in range(len(tracks)) if column not in taken_columns]
        if free_rows and free_columns:
            free = np.ix_(free_rows, free_columns)
            for row, column in zip(*assign(distances[free], near[free])):
                row, column = free_rows[row], free_columns[column]
                previous = self.last_match.get(truth[row].object_id)
                self.scores.id_switches += previous is not None and previous != tracks[column].object_id
                pairs.append((row, column))
        return pairs

    def finish(self, config: TrackingEvalConfig) -> GroupScores:
        scores = self.scores
        scores.objects = len(self.frames_present)
        shares = [self.frames_matched[obj] / present for obj, present in self.frames_present.items()]
        scores.mostly_tracked = sum(share >= config.mostly_tracked for share in shares)
        scores.mostly_lost = sum(share <= config.mostly_lost for share in shares)
        if self.pair_frames:
            objects = sorted({obj for obj, _ in self.pair_frames})
            track_ids = sorted({track for _, track in self.pair_frames})
            overlap = np.zeros((len(objects), len(track_ids)))
            object_row = {obj: row for row, obj in enumerate(objects)}
            track_column = {track: column for column, track in enumerate(track_ids)}
            for (obj, track), count in self.pair_frames.items():
                overlap[object_row[obj], track_column[track]] = count
            rows, columns = linear_sum_assignment(overlap, maximize=True)
            scores.id_true_positives = int(overlap[rows, columns].sum())
        return scores


def evaluate_tracking(frames: Sequence[TrackingFrame], config: TrackingEvalConfig | None = None) -> TrackingEvalResult:
    """CLEAR MOT and identity scores of a sequence of frames, per class group."""
    config = config or TrackingEvalConfig()
    accumulators = {name: _GroupAccumulator(name, config.match_distance[name]) for name in CLASS_GROUPS}
    for frame in frames:
        for name, members in CLASS_GROUPS.items():
            accumulators[name].add([o for o in frame.truth if o.label in members],
                                   [t for t in frame.tracks if t.label in members],
                                   [o for o in frame.ignored if o.label in members])
    groups = {name: accumulator.finish(config) for name, accumulator in accumulators.items()}
    groups = {name: scores for name, scores in groups.items() if scores.ground_truth or scores.track_observations}
    return TrackingEvalResult(config=config, groups=groups, frames=len(frames))


def combine_results(results: Sequence[TrackingEvalResult]) -> TrackingEvalResult:
    """Scores of several sequences (e.g. episodes, whose object and track ids are their own) together."""
    if not results:
        raise ValueError("combine_results: no results")
    groups: dict[str, GroupScores] = {}
    for name in CLASS_GROUPS:
        scores = [result.groups[name] for result in results if name in result.groups]
        if scores:
            groups[name] = sum(scores[1:], scores[0])
    return TrackingEvalResult(config=results[0].config, groups=groups, frames=sum(r.frames for r in results))
