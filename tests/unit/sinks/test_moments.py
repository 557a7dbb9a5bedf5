"""Search hits merged into moments, filtered to matches, and paged."""

from __future__ import annotations

import pytest

from dinostream.core.records import frame_point_id
from dinostream.sinks.moments import matches, merge_moments, paginate
from dinostream.sinks.vector_index import FrameHit

T0 = 1_700_000_000.0


def hit(stream: str, seq: int, score: float, ts_step: float = 1.0) -> FrameHit:
    return FrameHit(stream, seq, seq * 0.5, T0 + seq * ts_step, score, frame_point_id(stream, seq))


def test_contiguous_hits_of_a_stream_become_one_moment_with_its_best_frame() -> None:
    hits = [hit("cam1", s, sc) for s, sc in [(3, 0.7), (4, 0.9), (5, 0.8), (9, 0.95), (10, 0.6)]]
    hits.append(hit("cam2", 4, 0.85))

    moments = merge_moments(hits, gap_s=2.0)

    assert [(m.stream, m.best.seq, m.start_ts - T0, m.end_ts - T0) for m in moments] == [
        ("cam1", 9, 9.0, 10.0),  # best first
        ("cam1", 4, 3.0, 5.0),
        ("cam2", 4, 4.0, 4.0),  # same time, other stream: its own moment
    ]
    assert moments[1].score == 0.9 and [h.seq for h in moments[1].hits] == [3, 4, 5]
    assert (moments[1].start_t, moments[1].end_t) == (1.5, 2.5)


@pytest.mark.parametrize(
    ("gap_s", "expected"),
    [(0.0, 3), (1.0, 2), (1.9, 2), (2.0, 1)],
    ids=["no-gap-merges-nothing-apart", "one-second", "just-under-two", "exactly-two"],
)
def test_the_gap_tolerance_decides_what_is_contiguous(gap_s: float, expected: int) -> None:
    hits = [hit("cam1", 0, 0.9), hit("cam1", 1, 0.8), hit("cam1", 3, 0.7)]  # 1 s, then 2 s apart
    assert len(merge_moments(hits, gap_s)) == expected


def test_a_repeated_hit_counts_once_with_its_best_score() -> None:
    moments = merge_moments([hit("cam1", 2, 0.5), hit("cam1", 2, 0.8)], 1.0)
    assert len(moments) == 1 and len(moments[0].hits) == 1 and moments[0].score == 0.8


def test_matches_keep_hits_near_the_best_or_above_min_score() -> None:
    hits = [hit("cam1", 0, 0.95), hit("cam1", 1, 0.8), hit("cam1", 2, 0.7), hit("cam1", 3, 0.2)]
    assert [h.seq for h in matches(hits, None, 0.2)] == [0, 1]
    assert [h.seq for h in matches(hits, 0.5, 0.2)] == [0, 1, 2]
    assert matches([], None, 0.2) == []


def test_pages_slice_the_moments_and_say_where_the_next_starts() -> None:
    moments = merge_moments([hit("cam1", s * 10, 1.0 - s / 10) for s in range(5)], 1.0)
    first, nxt = paginate(moments, 0, 2)
    second, nxt2 = paginate(moments, nxt or 0, 2)
    last, end = paginate(moments, nxt2 or 0, 2)

    assert [m.best.seq for m in first + second + last] == [0, 10, 20, 30, 40]
    assert (nxt, nxt2, end) == (2, 4, None)
    assert paginate(moments, 10, 2) == ([], None)
    with pytest.raises(ValueError, match="offset"):
        paginate(moments, -1, 2)
    with pytest.raises(ValueError, match="gap_s"):
        merge_moments([], -1.0)
