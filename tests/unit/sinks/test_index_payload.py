"""Reading frames in time order page by page, when several frames share a timestamp."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from dinostream.sinks.index_payload import frames_in_ts_order


@dataclass
class _Point:
    id: str
    payload: dict[str, Any]
    vector: dict[str, Any] = field(default_factory=dict)


# Frames at ts 1, 2, 2, 2, 3: a page boundary can fall inside the run at ts 2.
POINTS = [_Point(f"p{i}", {"stream": "cam", "seq": i, "ts": ts}) for i, ts in enumerate([1.0, 2.0, 2.0, 2.0, 3.0])]


def _fetch(start: float | None, n: int) -> list[_Point]:
    """What the backends do: ordered by ts, from `start` inclusive, at most n."""
    return [p for p in POINTS if start is None or p.payload["ts"] >= start][:n]


def test_every_frame_once_in_order_across_pages_that_split_a_timestamp() -> None:
    for page in (4, 5, 10):  # a page must hold the longest run of one ts plus one (the backends use 1000)
        frames = frames_in_ts_order(_fetch, 100, page=page)
        assert [f.seq for f in frames] == [0, 1, 2, 3, 4], page


def test_limit_is_respected() -> None:
    assert [f.seq for f in frames_in_ts_order(_fetch, 3, page=2)] == [0, 1, 2]
    assert frames_in_ts_order(lambda start, n: [], 10) == []
