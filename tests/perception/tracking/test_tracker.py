"""MultiObjectTracker on hand-made scenes: stable ids through a crossing, track life, gating,
class groups, the detector's 180 degree heading ambiguity, and refused input."""
import math

import numpy as np
import pytest

from perception.objects import Box3D, DetectedObject, ObjectClass
from perception.tracking import ClassModel, MultiObjectTracker, TrackerConfig, TrackerInputError

PERIOD = 0.125
"""Frame period, s (exact in binary, so coast times fall exactly on frames)."""

SIZES = {ObjectClass.CAR: (4.5, 1.8, 1.5), ObjectClass.VAN: (5.2, 2.0, 2.2), ObjectClass.PEDESTRIAN: (0.6, 0.6, 1.7)}


def detection(x: float, y: float, yaw: float = 0.0, label: ObjectClass = ObjectClass.CAR,
              score: float = 0.9) -> DetectedObject:
    size = SIZES[label]
    return DetectedObject(label=label, score=score, box=Box3D((x, y, size[2] / 2), size, yaw))


def run_frames(tracker: MultiObjectTracker, frames, first_frame: int = 0) -> list:
    return [tracker.update(detections, (first_frame + index) * PERIOD) for index, detections in enumerate(frames)]


def nearest_id(tracks, x: float, y: float, within: float) -> int | None:
    near = [(math.hypot(t.box.center[0] - x, t.box.center[1] - y), t.object_id) for t in tracks]
    near = [item for item in near if item[0] <= within]
    return min(near)[1] if near else None


def test_crossing_targets_keep_their_ids_and_tracks_are_born_and_deleted_on_time():
    rng = np.random.default_rng(7)

    def truth(t):  # two cars passing 2 m apart in opposite directions, a pedestrian crossing in front of both
        return [(-30 + 10 * t, 0.0, 0.0, ObjectClass.CAR), (30 - 10 * t, 2.0, math.pi, ObjectClass.CAR),
                (0.0, -6.0 + 1.5 * t, math.pi / 2, ObjectClass.PEDESTRIAN)]

    tracker = MultiObjectTracker()
    seen_frames = 48  # detections for 6 s, then none
    ids = {index: set() for index in range(3)}
    for frame in range(seen_frames + 12):
        t = frame * PERIOD
        objects = truth(t)
        detections = ([detection(x + rng.normal(0, 0.15), y + rng.normal(0, 0.15), yaw + rng.normal(0, 0.05), label)
                       for x, y, yaw, label in objects] if frame < seen_frames else [])
        tracks = tracker.update(detections, t)
        if frame < 2:
            assert tracks == []  # tentative until the third hit
            continue
        if frame < seen_frames:
            assert len(tracks) == 3
            for index, (x, y, _, _) in enumerate(objects):
                ids[index].add(nearest_id(tracks, x, y, within=1.0))
        last_seen = (seen_frames - 1) * PERIOD
        if frame < seen_frames:
            continue
        # Coasting confirmed tracks stay out until max_coast_time (1 s) without a detection, then go.
        assert len(tracks) == (3 if t - last_seen <= tracker.config.max_coast_time else 0)
    assert all(len(found) == 1 and None not in found for found in ids.values()), ids
    assert len(set.union(*ids.values())) == 3
    assert tracker.counters.births == 3 and tracker.counters.confirmations == 3 and tracker.counters.deletions == 3
    assert tracker.num_confirmed == tracker.num_tentative == 0


def test_track_state_converges_to_the_motion():
    tracker = MultiObjectTracker()
    # A car on a circle of radius 20 m at 8 m/s (yaw rate 0.4 rad/s).
    radius, speed = 20.0, 8.0
    for frame in range(40):
        angle = speed / radius * frame * PERIOD
        tracks = tracker.update([detection(radius * math.sin(angle), radius * (1 - math.cos(angle)), angle)],
                                frame * PERIOD)
    (track,) = tracks
    np.testing.assert_allclose(track.velocity, speed * np.array([math.cos(angle), math.sin(angle)]), atol=0.3)
    assert track.yaw_rate == pytest.approx(speed / radius, abs=0.05)
    assert track.age == pytest.approx(39 * PERIOD)
    assert track.label == ObjectClass.CAR and track.score > 0.99
    assert track.box.center[2] == pytest.approx(0.75)
    np.testing.assert_allclose(track.box.size, SIZES[ObjectClass.CAR])
    for covariance in (track.pose_covariance, track.velocity_covariance):
        np.testing.assert_allclose(covariance, covariance.T, atol=1e-12)
        assert np.all(np.linalg.eigvalsh(covariance) > -1e-12)
    assert np.all(np.diag(track.pose_covariance)[[0, 1, 5]] > 0) and np.all(np.diag(track.pose_covariance)[2:5] == 0)


def confirmed_car_at_origin(tracker: MultiObjectTracker, frames: int = 5) -> int:
    (track,) = run_frames(tracker, [[detection(0.0, 0.0)]] * frames)[-1]
    return track.object_id


def test_the_gate_rejects_a_far_detection():
    tracker = MultiObjectTracker()
    track_id = confirmed_car_at_origin(tracker)
    associated = tracker.counters.associated
    (track,) = tracker.update([detection(6.0, 0.0)], 5 * PERIOD)  # the new tentative track is not output
    assert track.object_id == track_id and abs(track.box.center[0]) < 0.1
    assert tracker.counters.associated == associated and tracker.counters.births == 2
    # A near detection is taken.
    (track,) = tracker.update([detection(0.3, 0.1)], 6 * PERIOD)
    assert track.object_id == track_id and tracker.counters.associated == associated + 1


def test_class_groups_do_not_mix():
    tracker = MultiObjectTracker()
    track_id = confirmed_car_at_origin(tracker)
    tracker.update([detection(0.0, 0.0, label=ObjectClass.PEDESTRIAN)], 5 * PERIOD)
    assert tracker.counters.births == 2 and tracker.num_tentative == 1  # a new pedestrian, not the car's track
    (track,) = tracker.update([detection(0.0, 0.0, label=ObjectClass.VAN)], 6 * PERIOD)
    assert track.object_id == track_id  # cars and vans share the vehicle group
    assert track.label == ObjectClass.CAR  # most evidence so far


@pytest.mark.parametrize("flipped", ["every third", "all"])
def test_headings_read_back_to_front_do_not_turn_the_track(flipped):
    rng = np.random.default_rng(3)
    tracker = MultiObjectTracker()
    for frame in range(32):
        back_to_front = frame % 3 == 1 if flipped == "every third" else True
        yaw = (math.pi if back_to_front else 0.0) + rng.normal(0, 0.05)
        tracks = tracker.update([detection(8.0 * frame * PERIOD + rng.normal(0, 0.1), 0.0, yaw)], frame * PERIOD)
    (track,) = tracks
    assert abs(math.remainder(track.box.yaw, 2 * math.pi)) < 0.1  # heading of the motion, not of the boxes
    np.testing.assert_allclose(track.velocity, [8.0, 0.0], atol=0.4)
    assert tracker.counters.births == 1


def test_empty_frames_coast_then_delete():
    tracker = MultiObjectTracker(TrackerConfig(max_coast_time=0.5))
    run_frames(tracker, [[detection(10.0 * frame * PERIOD, 0.0)] for frame in range(16)])
    last_score = 1.0
    for frame in range(16, 16 + 4):  # 0.5 s = 4 frames of coasting
        (track,) = tracker.update([], frame * PERIOD)
        assert track.box.center[0] == pytest.approx(10.0 * frame * PERIOD, abs=0.3)  # keeps driving
        assert track.score < last_score
        last_score = track.score
    assert tracker.update([], 20 * PERIOD) == [] and tracker.counters.deletions == 1


def test_a_track_too_uncertain_is_deleted():
    tracker = MultiObjectTracker(TrackerConfig(max_coast_time=60.0, max_position_std=1.0))
    confirmed_car_at_origin(tracker)
    coasted = 0
    while tracker.update([], (5 + coasted) * PERIOD):
        coasted += 1
    assert 2 <= coasted < 40 and tracker.counters.deletions == 1


def test_a_tentative_track_needs_n_hits_in_m_frames():
    tracker = MultiObjectTracker(TrackerConfig(confirm_hits=3, confirm_window=4, max_coast_time=10.0))
    outputs = run_frames(tracker, [[detection(0, 0)], [], [detection(0, 0)], []])  # 2 hits in 4 frames
    assert outputs[-1] == [] and tracker.num_tentative == 0 and tracker.counters.deletions == 1
    outputs = run_frames(tracker, [[detection(0, 0)], [], [detection(0, 0)], [detection(0, 0)]], first_frame=4)
    assert [len(tracks) for tracks in outputs] == [0, 0, 0, 1]


def test_weak_detections_start_no_track():
    tracker = MultiObjectTracker(TrackerConfig(birth_score=0.5))
    tracker.update([detection(0, 0, score=0.3), detection(10, 0, score=0.6)], 0.0)
    assert tracker.counters.births == 1 and tracker.counters.weak_detections == 1


@pytest.mark.parametrize("bad", [detection(math.nan, 0.0), detection(0.0, 0.0, yaw=math.inf),
                                 detection(0.0, 0.0, score=math.nan)])
def test_non_finite_detections_are_refused_and_change_nothing(bad):
    tracker = MultiObjectTracker()
    confirmed_car_at_origin(tracker)
    with pytest.raises(TrackerInputError, match=r"detections \[1\]"):
        tracker.update([detection(0.0, 0.0), bad], 5 * PERIOD)
    assert tracker.stamp == 4 * PERIOD and tracker.counters.frames == 5
    assert len(tracker.update([detection(0.0, 0.0)], 5 * PERIOD)) == 1


def test_time_must_move_forward():
    tracker = MultiObjectTracker()
    tracker.update([detection(0, 0)], 1.0)
    with pytest.raises(TrackerInputError, match="backwards"):
        tracker.update([], 0.5)
    with pytest.raises(TrackerInputError, match="repeats"):
        tracker.update([], 1.0)
    with pytest.raises(TrackerInputError, match="finite"):
        tracker.update([], math.nan)
    with pytest.raises(TrackerInputError):
        tracker.predict_to(0.9)
    assert issubclass(TrackerInputError, ValueError)
    tracker.reset()  # what the node does when time jumps back
    assert tracker.stamp is None and tracker.counters.resets == 1
    tracker.update([], 0.5)


def test_ids_are_never_reused():
    tracker = MultiObjectTracker(TrackerConfig(confirm_hits=1, confirm_window=1, max_coast_time=0.0))
    first = {t.object_id for t in tracker.update([detection(0, 0), detection(20, 0)], 0.0)}
    second = {t.object_id for t in tracker.update([detection(50, 0)], 1.0)}  # the first two are deleted
    tracker.reset()
    third = {t.object_id for t in tracker.update([detection(0, 0)], 0.0)}
    assert first == {1, 2} and second == {3} and third == {4}


def test_predict_to_moves_the_tracks_but_not_the_tracker():
    tracker = MultiObjectTracker()
    run_frames(tracker, [[detection(10.0 * frame * PERIOD, 0.0)] for frame in range(20)])
    before = tracker.tracks
    (ahead,) = tracker.predict_to(tracker.stamp + 0.5)
    assert ahead.box.center[0] == pytest.approx(before[0].box.center[0] + 5.0, abs=0.2)
    assert ahead.pose_covariance[0, 0] > before[0].pose_covariance[0, 0]
    assert ahead.age == pytest.approx(before[0].age + 0.5)
    np.testing.assert_array_equal(tracker.tracks[0].box.center, before[0].box.center)
    assert tracker.predict_to(tracker.stamp)[0].box.center[0] == pytest.approx(before[0].box.center[0])


def test_config_is_validated():
    with pytest.raises(ValueError, match="confirm_window"):
        TrackerConfig(confirm_hits=6, confirm_window=5)
    with pytest.raises(ValueError, match="gate_probability"):
        TrackerConfig(gate_probability=1.0)
    with pytest.raises(ValueError, match="position_std"):
        ClassModel(position_std=-1.0)


def test_labels_that_are_no_object_class_are_refused():
    bad = DetectedObject(label=17, score=0.9, box=Box3D((0, 0, 0), (1, 1, 1), 0.0))
    with pytest.raises(TrackerInputError, match=r"detections \[0\] have labels"):
        MultiObjectTracker().update([bad], 0.0)


def test_a_new_object_reported_twice_starts_one_track():
    """The detector's duplicates (overlapping boxes of one group) at birth: the stronger one counts."""
    tracker = MultiObjectTracker()
    for frame in range(6):
        tracks = tracker.update([detection(10.0 + frame, 0.0, score=0.6), detection(10.1 + frame, 0.05, score=0.9),
                                 detection(10.0 + 0.1 * frame, 0.0, label=ObjectClass.PEDESTRIAN)], 0.1 * frame)
    assert sorted(t.label for t in tracks) == [ObjectClass.CAR, ObjectClass.PEDESTRIAN]  # groups never merge
    assert tracker.counters.duplicate_detections >= 6
