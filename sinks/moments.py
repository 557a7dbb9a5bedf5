"""Search hits merged into moments: what an operator wants is "when was it seen", not 40 frames.

Hits of one stream whose wall-clock times are at most `gap_s` apart (each to the next, in time
order) form one moment, spanning its first to its last hit; the moment's score is its best hit's
and that hit is the frame shown for it. Moments are ordered best first (ties: earlier first,
then by stream), so a page of results is a slice of one deterministic list. Pure: no I/O.

    >>> moments = merge_moments(matches(hits, min_score=None, margin=0.2), gap_s=2.0)
    >>> page, next_offset = paginate(moments, offset=0, limit=10)
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from dinostream.sinks.vector_index import FrameHit


@dataclass(frozen=True)
class Moment:
    """A stretch of one stream where the query matched."""

    stream: str
    start_t: float  # media seconds of the first hit
    end_t: float
    start_ts: float  # wall clock of the first hit
    end_ts: float
    best: FrameHit  # the highest-scoring hit
    hits: tuple[FrameHit, ...]  # in time order

    @property
    def score(self) -> float:
        return self.best.score


def matches(hits: Sequence[FrameHit], min_score: float | None, margin: float) -> list[FrameHit]:
    """The hits that count as matches: scoring at least `min_score`, or when it is None at least
    the best score minus `margin`. Without a floor the nearest frames would all be "hits" however
    unlike the query they are, and on a short stretch of video they would merge into one moment."""
    if not hits:
        return []
    floor = max(h.score for h in hits) - margin if min_score is None else min_score
    return [h for h in hits if h.score >= floor]


def merge_moments(hits: Sequence[FrameHit], gap_s: float) -> list[Moment]:
    """Group `hits` into moments (see the module doc); a hit repeated (same stream and seq) counts once."""
    if gap_s < 0:
        raise ValueError(f"gap_s must be >= 0, got {gap_s}")
    by_stream: dict[str, dict[int, FrameHit]] = defaultdict(dict)
    for h in hits:
        kept = by_stream[h.stream].get(h.seq)
        if kept is None or h.score > kept.score:
            by_stream[h.stream][h.seq] = h
    moments: list[Moment] = []
    for stream, frames in by_stream.items():
        ordered = sorted(frames.values(), key=lambda h: (h.ts, h.seq))
        run: list[FrameHit] = []
        for h in ordered:
            if run and h.ts - run[-1].ts > gap_s:
                moments.append(_moment(stream, run))
                run = []
            run.append(h)
        if run:
            moments.append(_moment(stream, run))
    moments.sort(key=lambda m: (-m.score, m.start_ts, m.stream))
    return moments


def _moment(stream: str, run: list[FrameHit]) -> Moment:
    # The first of equal scores: deterministic.
    best = max(run, key=lambda h: (h.score, -h.ts))
    return Moment(
        stream=stream,
        start_t=run[0].t,
        end_t=run[-1].t,
        start_ts=run[0].ts,
        end_ts=run[-1].ts,
        best=best,
        hits=tuple(run),
    )


def paginate(moments: Sequence[Moment], offset: int, limit: int) -> tuple[list[Moment], int | None]:
    """The page `moments[offset : offset + limit]` and the offset of the next page (None at the end)."""
    if offset < 0:
        raise ValueError(f"offset must be >= 0, got {offset}")
    if limit < 1:
        raise ValueError(f"limit must be at least 1, got {limit}")
    page = list(moments[offset : offset + limit])
    nxt = offset + limit
    return page, (nxt if nxt < len(moments) else None)
