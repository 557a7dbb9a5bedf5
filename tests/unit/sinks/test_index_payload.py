"""The index's point schema: reading frames in time order page by page (when several frames share
a timestamp), and the payload fields the backends rely on."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from dinostream.core.records import Event, FrameEmbedding, event_id
from dinostream.sinks.index_payload import (
    EVENT_INDEXES,
    FRAME_INDEXES,
    HIT_FIELDS,
    THUMB_FIELD,
    event_from,
    frame_hit,
    frames_in_ts_order,
)


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


def test_the_fields_the_backends_read_filter_and_order_by_are_in_the_records_payloads() -> None:
    rng = np.random.default_rng(0)
    rec = FrameEmbedding("cam", 1, 0.5, 2.0, "m", False, rng.normal(size=4), rng.normal(size=4), np.ones((1, 1, 4)))
    event = Event(event_id("cam", "anomaly", 1), "anomaly", "cam", 0.5, 0.5, 0.5, 2.0, 0.9, (1,))
    frame_fields = rec.to_index_payload().keys()

    assert {*HIT_FIELDS, THUMB_FIELD} <= frame_fields
    assert {name for name, _ in FRAME_INDEXES} <= frame_fields
    assert {name for name, _ in EVENT_INDEXES} <= event.to_index_payload().keys()
    hit = frame_hit("p", 0.75, rec.to_index_payload())
    assert (hit.stream, hit.seq, hit.t, hit.ts, hit.score) == ("cam", 1, 0.5, 2.0, 0.75)
    assert event_from(event.to_index_payload()) == event
    assert event_from(rec.to_index_payload()) is None  # a frame's payload holds no event
