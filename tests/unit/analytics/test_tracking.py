"""Tracks within a stream: regions matched frame to frame by box overlap and appearance."""

from __future__ import annotations

import json

import numpy as np
import pytest

from dinostream.analytics.regions import Region, unit_rows
from dinostream.analytics.tracking import Tracker, assign, match_scores
from dinostream.core.records import Box
from dinostream.core.settings import ReidSettings

DIM = 16
S = ReidSettings()


def look(seed: int) -> np.ndarray:
    return unit_rows(np.random.default_rng(seed).normal(size=DIM))


def region(x0: float, y0: float, size: float, vec: np.ndarray, noise: float = 0.05, seed: int = 0) -> Region:
    rng = np.random.default_rng(seed)
    box = Box(max(x0, 0.0), max(y0, 0.0), min(x0 + size, 1.0), min(y0 + size, 1.0))
    mask = np.zeros((10, 10), dtype=bool)
    return Region(box=box, embedding=unit_rows(vec + noise * rng.normal(size=DIM)), mask=mask, area=4)


def run(tracker: Tracker, frames: list[list[Region]], s: ReidSettings = S) -> list[list[tuple[str, bool]]]:
    """Feed frames; per frame, the (track id, confirmed) of the tracks seen."""
    out = []
    for seq, regions in enumerate(frames):
        update = tracker.update(regions, seq=seq, pts=seq / 2, ts=1e9 + seq / 2, s=s)
        out.append([(t.track_id, t.confirmed) for t in update.seen])
    return out


def walk(vec: np.ndarray, y: float, start: float, step: float, n: int, seed: int = 0) -> list[Region]:
    return [region(start + i * step, y, 0.2, vec, seed=seed + i) for i in range(n)]


@pytest.mark.parametrize("step", [0.05, 0.1, -0.08], ids=["slow", "fast", "leftwards"])
def test_a_moving_object_keeps_one_track_confirmed_after_min_hits(step: float) -> None:
    start = 0.1 if step > 0 else 0.7
    frames = [[r] for r in walk(look(1), 0.3, start, step, 7)]
    seen = run(Tracker(), frames)
    ids = {tid for frame in seen for tid, _ in frame}
    assert ids == {"0.0"}
    assert [confirmed for ((_, confirmed),) in seen] == [i + 1 >= S.min_hits for i in range(7)]


def test_two_objects_passing_each_other_keep_their_tracks() -> None:
    a = walk(look(1), 0.30, 0.1, 0.08, 8, seed=10)
    b = walk(look(2), 0.35, 0.7, -0.08, 8, seed=20)  # boxes overlap around the middle
    tracker = Tracker()
    owner: dict[str, set[int]] = {}
    for seq, (ra, rb) in enumerate(zip(a, b, strict=True)):
        tracker.update([ra, rb], seq=seq, pts=seq / 2, ts=seq / 2, s=S)
        for t in tracker.tracks:
            owner.setdefault(t.track_id, set()).add(1 if t.box == ra.box else 2 if t.box == rb.box else 0)
    assert owner == {"0.0": {1}, "0.1": {2}}


def test_a_track_ends_after_max_misses_and_a_return_is_a_new_track() -> None:
    vec = look(3)
    frames = [[region(0.1, 0.1, 0.2, vec, seed=i)] for i in range(4)]
    frames += [[] for _ in range(S.max_misses + 1)]
    frames += [[region(0.1, 0.1, 0.2, vec, seed=9)]]
    tracker = Tracker()
    ended_at = []
    for seq, regions in enumerate(frames):
        update = tracker.update(regions, seq=seq, pts=seq / 2, ts=seq / 2, s=S)
        ended_at += [(seq, t.track_id) for t in update.ended]
    assert ended_at == [(4 + S.max_misses, "0.0")]
    assert [t.track_id for t in tracker.tracks] == [f"{len(frames) - 1}.0"]


def test_a_short_gap_does_not_break_the_track() -> None:
    vec = look(4)
    frames = [[region(0.1 + 0.05 * i, 0.2, 0.2, vec, seed=i)] if i != 3 else [] for i in range(7)]
    seen = run(Tracker(), frames)
    assert {tid for frame in seen for tid, _ in frame} == {"0.0"}


@pytest.mark.parametrize(
    ("second", "same_track"),
    [
        ("far-jump-same-look", False),
        ("overlapping-other-look", True),
        ("near-other-look-no-overlap", False),
        ("near-same-look-no-overlap", True),
    ],
)
def test_gates(second: str, same_track: bool) -> None:
    vec = look(5)
    first = region(0.1, 0.1, 0.2, vec)
    nxt = {
        "far-jump-same-look": region(0.7, 0.7, 0.2, vec, seed=1),
        "overlapping-other-look": region(0.15, 0.1, 0.2, look(6)),  # IoU 0.6: box overlap suffices
        "near-other-look-no-overlap": region(0.32, 0.1, 0.2, look(6)),
        "near-same-look-no-overlap": region(0.32, 0.1, 0.2, vec, seed=1),
    }[second]
    seen = run(Tracker(), [[first], [nxt]])
    assert (seen[1][0][0] == "0.0") is same_track


def test_appearance_prefers_full_views_over_views_cut_by_the_edge() -> None:
    vec, cut = look(7), look(8)
    tracker = Tracker()
    frames = [
        [region(-0.05, 0.3, 0.2, cut)],  # entering: touches the left edge, looks different
        [region(0.05, 0.3, 0.2, vec, seed=1)],
        [region(0.1, 0.3, 0.2, vec, seed=2)],
    ]
    s = S.model_copy(update={"track_min_similarity": -1.0})
    run(tracker, frames, s)
    (track,) = tracker.tracks
    assert (track.full_views, track.partial_views) == (2, 1)
    assert float(track.appearance @ vec) > 0.99


def test_assignment_is_one_to_one_and_skips_forbidden_pairs() -> None:
    scores = np.array([[1.5, 0.9], [1.4, -1e6]])
    assert sorted(assign(scores)) == [(0, 1), (1, 0)]
    assert assign(np.full((2, 2), -1e6)) == []
    assert match_scores([], [region(0.1, 0.1, 0.2, look(1))], S).shape == (0, 1)


def test_state_round_trip_continues_identically() -> None:
    frames = [[r] for r in walk(look(9), 0.4, 0.0, 0.07, 10)]
    whole = Tracker()
    expected = run(whole, frames)
    half = Tracker()
    run(half, frames[:5])
    restored = Tracker.from_state(json.loads(json.dumps(half.to_state())))
    rest = []
    for seq, regions in enumerate(frames[5:], start=5):
        update = restored.update(regions, seq=seq, pts=seq / 2, ts=1e9 + seq / 2, s=S)
        rest.append([(t.track_id, t.confirmed) for t in update.seen])
    assert rest == expected[5:]
    assert np.allclose(restored.tracks[0].appearance, whole.tracks[0].appearance)


def test_after_a_miss_overlap_alone_does_not_continue_a_track() -> None:
    """One object leaves where another comes in a frame later: two tracks, not one."""
    first, second = look(10), look(11)
    frames = [[region(0.7, 0.1, 0.2, first, seed=i)] for i in range(4)]
    frames += [[], [region(0.7, 0.1, 0.2, second, seed=9)]]
    seen = run(Tracker(), frames)
    assert seen[-1][0][0] == "5.0"


EXITS = {
    # (first object's start x, step per frame, second object's x when it comes in; y of both)
    "out-right-in-right": (0.5, 0.1, 0.85),
    "out-left-in-left": (0.3, -0.1, -0.05),
}


@pytest.mark.parametrize(("start", "step", "second_x"), EXITS.values(), ids=EXITS.keys())
def test_an_object_that_walked_out_is_not_continued_by_one_coming_in_there(
    start: float, step: float, second_x: float
) -> None:
    """One object leaves through an edge, another similar enough comes in there a frame later."""
    first = walk(look(12), 0.3, start, step, 5)  # the last ones cut by the edge
    other = unit_rows(look(12) + 0.9 * look(13))  # similar enough to pass the appearance gate
    frames = [[r] for r in first] + [[], [region(second_x, 0.3, 0.2, other, seed=99)]]
    tracker = Tracker()
    seen = run(tracker, frames)
    assert float(other @ look(12)) >= S.track_min_similarity
    assert seen[-1] == [(f"{len(frames) - 1}.0", False)]  # a new track
    assert [t.track_id for t in tracker.tracks] == [f"{len(frames) - 1}.0"]  # the first one ended


def test_an_object_missed_at_the_edge_it_is_not_leaving_keeps_its_track() -> None:
    """Coming in from the left edge, missed one frame: still moving into the view, same track."""
    vec = look(14)
    frames = [[region(-0.1 + 0.05 * i, 0.3, 0.2, vec, seed=i)] if i != 2 else [] for i in range(6)]
    seen = run(Tracker(), frames)
    assert {tid for frame in seen for tid, _ in frame} == {"0.0"}


def test_velocity_follows_the_uncut_edge_and_predicts_the_box() -> None:
    tracker = Tracker()
    vec = look(15)
    frames = [[region(0.7 + 0.1 * i, 0.3, 0.2, vec, seed=i)] for i in range(4)]  # walks out at the right
    run(tracker, frames)
    (track,) = tracker.tracks
    assert track.velocity == pytest.approx((0.1, 0.0))  # not the half speed of a box's centre cut by the edge
    assert track.leaving
    nxt = track.predicted_box(4)
    assert (nxt.x0, nxt.x1) == pytest.approx((1.0, 1.0))
    assert tracker.priors(4) == [nxt]
    restored = Tracker.from_state(json.loads(json.dumps(tracker.to_state())))
    assert restored.tracks[0].velocity == track.velocity
