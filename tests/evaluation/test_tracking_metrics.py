"""CLEAR MOT and IDF1 on hand-built sequences whose scores are worked out in each test."""
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from evaluation.tracking_metrics import TrackingEvalConfig, TrackingFrame, evaluate_tracking
from perception.objects import Box3D, GroundTruthObject, ObjectClass, TrackedObject


def truth(object_id: int, x: float, y: float = 0.0, label=ObjectClass.CAR, velocity=(0.0, 0.0)) -> GroundTruthObject:
    return GroundTruthObject(object_id=object_id, label=label, box=Box3D((x, y, 0.8), (4.5, 1.8, 1.5), 0.0),
                             velocity=np.array(velocity))


def track(object_id: int, x: float, y: float = 0.0, label=ObjectClass.CAR, velocity=(0.0, 0.0)) -> TrackedObject:
    return TrackedObject(object_id=object_id, label=label, score=0.9, box=Box3D((x, y, 0.8), (4.5, 1.8, 1.5), 0.0),
                         velocity=np.array(velocity))


def test_perfect_tracking():
    frames = [TrackingFrame([truth(1, t), truth(2, 20 - t)], [track(7, t), track(8, 20 - t)]) for t in range(3)]
    scores = evaluate_tracking(frames).groups["vehicle"]
    assert (scores.mota, scores.idf1, scores.motp) == (1.0, 1.0, 0.0)
    assert (scores.matches, scores.id_switches, scores.false_positives, scores.misses) == (6, 0, 0, 0)
    assert (scores.objects, scores.mostly_tracked, scores.mostly_lost) == (2, 2, 0)


def test_an_identity_switch():
    # One object over 4 frames, followed by track 1 then track 2: 4 matches, one switch in frame 2.
    # MOTA = 1 - 1/4. IDF1: the object's own track is 1 or 2 (2 frames each): IDTP 2, IDFN 4 - 2,
    # IDFP 4 - 2, so IDF1 = 4 / (4 + 2 + 2).
    frames = [TrackingFrame([truth(1, t)], [track(1 if t < 2 else 2, t + 0.5)]) for t in range(4)]
    scores = evaluate_tracking(frames).groups["vehicle"]
    assert scores.id_switches == 1 and scores.fragmentations == 0
    assert scores.mota == pytest.approx(0.75)
    assert (scores.id_true_positives, scores.id_false_negatives, scores.id_false_positives) == (2, 2, 2)
    assert scores.idf1 == pytest.approx(0.5)
    assert scores.motp == pytest.approx(0.5)


def test_a_miss_a_false_track_and_a_fragmentation():
    # Object 1 in frames 0-4, track 5 on it except in frame 2, where only a far false track 9 exists.
    # FN 1, FP 1, no switch (track 5 comes back), one fragmentation: MOTA = 1 - 2/5.
    # IDTP 4 (object 1 <-> track 5), IDFN 1, IDFP 1 (track 9): IDF1 = 8 / 10. Tracked 4/5: mostly tracked.
    frames = [TrackingFrame([truth(1, 0.0)], [track(9, 50.0)] if t == 2 else [track(5, 0.1)]) for t in range(5)]
    scores = evaluate_tracking(frames).groups["vehicle"]
    assert (scores.misses, scores.false_positives, scores.id_switches, scores.fragmentations) == (1, 1, 0, 1)
    assert scores.mota == pytest.approx(0.6)
    assert scores.idf1 == pytest.approx(0.8)
    assert scores.mostly_tracked == 1


def test_an_earlier_match_is_kept_while_it_stays_within_the_distance():
    # Frame 1: track 1 has drifted 1.9 m from its object A and is 1.1 m from B. Hungarian alone would
    # give it to B (a switch for B, a miss for A); CLEAR MOT keeps A - 1: B is missed, no switch.
    frames = [TrackingFrame([truth(1, 0.0), truth(2, 3.0)], [track(1, 0.0), track(2, 3.0)]),
              TrackingFrame([truth(1, 0.0), truth(2, 3.0)], [track(1, 1.9)])]
    scores = evaluate_tracking(frames).groups["vehicle"]
    assert (scores.matches, scores.misses, scores.id_switches) == (3, 1, 0)
    assert scores.motp == pytest.approx(1.9 / 3)
    # Once the object is gone the track may take another: object 2 was matched to track 2, so a switch.
    frames.append(TrackingFrame([truth(2, 3.0)], [track(1, 3.0)]))
    assert evaluate_tracking(frames).groups["vehicle"].id_switches == 1


def test_tracks_near_ignored_truth_are_not_false():
    frame = TrackingFrame([truth(1, 0.0)], [track(1, 0.0), track(2, 30.0), track(3, 60.0)], ignored=[truth(9, 30.5)])
    scores = evaluate_tracking([frame]).groups["vehicle"]
    assert (scores.matches, scores.false_positives, scores.track_observations) == (1, 1, 2)
    assert scores.ground_truth == 1 and scores.idf1 == pytest.approx(2 / 3)


def test_class_groups_are_scored_apart():
    frame = TrackingFrame([truth(1, 0.0), truth(2, 10.0, label=ObjectClass.VAN)],
                          [track(1, 0.0, label=ObjectClass.PEDESTRIAN), track(2, 10.0, label=ObjectClass.CAR)])
    result = evaluate_tracking([frame])
    assert set(result.groups) == {"vehicle", "pedestrian"}
    vehicle, pedestrian = result.groups["vehicle"], result.groups["pedestrian"]
    assert (vehicle.matches, vehicle.misses, vehicle.false_positives) == (1, 1, 0)  # a van tracked as a car is fine
    assert (pedestrian.ground_truth, pedestrian.false_positives) == (0, 1) and math.isnan(pedestrian.mota)
    overall = result.overall
    assert (overall.ground_truth, overall.misses, overall.false_positives) == (2, 1, 1)
    assert overall.mota == pytest.approx(0.0)


def test_distances_follow_the_group_and_velocity_error_is_averaged():
    frames = [TrackingFrame([truth(1, 0.0, label=ObjectClass.PEDESTRIAN, velocity=(1.0, 0.0))],
                            [track(1, 1.2, label=ObjectClass.PEDESTRIAN)]),  # beyond the pedestrians' 1 m
              TrackingFrame([truth(1, 0.0, label=ObjectClass.PEDESTRIAN, velocity=(1.0, 0.0))],
                            [track(1, 0.6, label=ObjectClass.PEDESTRIAN, velocity=(1.0, 2.0))])]
    scores = evaluate_tracking(frames).groups["pedestrian"]
    assert (scores.matches, scores.misses, scores.false_positives) == (1, 1, 1)
    assert scores.mean_velocity_error == pytest.approx(2.0)
    wide = TrackingEvalConfig(match_distance={"vehicle": 2.0, "pedestrian": 1.5, "cyclist": 1.5, "unknown": 2.0})
    assert evaluate_tracking(frames, wide).groups["pedestrian"].matches == 2


def test_markdown_names_every_group_and_the_total():
    frame = TrackingFrame([truth(1, 0.0), truth(2, 9.0, label=ObjectClass.PEDESTRIAN)],
                          [track(1, 0.0), track(2, 9.0, label=ObjectClass.PEDESTRIAN)])
    table = evaluate_tracking([frame]).to_markdown(labels=[("scenario", "demo")])
    lines = table.splitlines()
    assert lines[0].startswith("| scenario | class | GT | MOTA | IDF1")
    assert [line.split(" | ")[1] for line in lines[2:]] == ["vehicle", "pedestrian", "all"]
    assert "| demo | all | 2 | 1.000 | 1.000 | 0 | 0 | 0 | 0 |" in table
    assert len(evaluate_tracking([frame]).to_markdown(header=False).splitlines()) == 3


@settings(max_examples=40, deadline=None)
@given(st.lists(st.lists(st.tuples(st.integers(0, 4), st.integers(0, 4), st.floats(-3, 3)), max_size=5),
                min_size=1, max_size=8))
def test_bounds_on_random_sequences(sequence):
    # Each frame: (object id, track id, offset) triples; objects at 10 * id, tracks offset from them.
    frames = []
    for triples in sequence:
        objects = {obj: truth(obj, 10.0 * obj) for obj, _, _ in triples}
        tracks = {track_id: track(track_id, 10.0 * obj + offset) for obj, track_id, offset in triples}
        frames.append(TrackingFrame(list(objects.values()), list(tracks.values())))
    scores = evaluate_tracking(frames).groups.get("vehicle")
    if scores is None:
        return
    assert scores.matches + scores.misses == scores.ground_truth
    assert scores.matches + scores.false_positives == scores.track_observations
    assert scores.mota <= 1.0 and 0.0 <= scores.idf1 <= 1.0
    assert scores.id_true_positives <= min(scores.ground_truth, scores.track_observations)
