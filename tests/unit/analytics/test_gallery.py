"""Every `TrackGallery` passes the same tests: numpy in memory, a real Qdrant Edge shard on disk,
and qdrant-client's local mode standing in for a Qdrant server."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
from qdrant_client import QdrantClient

from dinostream.analytics.gallery import (
    EdgeTrackGallery,
    MemoryTrackGallery,
    QdrantTrackGallery,
    TrackEntry,
    TrackGallery,
)
from dinostream.core.errors import IndexStoreError

# qdrant-client's local mode keeps no payload indexes and says so on each create_payload_index.
pytestmark = pytest.mark.filterwarnings("ignore:Payload indexes have no effect:UserWarning")

DIM = 8
T0 = 1_700_000_000.0

Opener = Callable[[], TrackGallery]


@pytest.fixture(params=["memory", "qdrant-edge", "qdrant-local"])
def open_gallery(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Opener]:
    opened: list[TrackGallery] = []

    def opener() -> TrackGallery:
        if request.param == "memory":
            g: TrackGallery = MemoryTrackGallery()
        elif request.param == "qdrant-edge":
            g = EdgeTrackGallery(tmp_path / "tracks", DIM)
        else:
            g = QdrantTrackGallery(QdrantClient(path=str(tmp_path / "local")), DIM, prefix="t")
        opened.append(g)
        return g

    yield opener
    for g in opened:
        g.close()


def vec(*values: float) -> np.ndarray:
    v = np.zeros(DIM, dtype=np.float32)
    v[: len(values)] = values
    return v


def entry(stream: str, track: str, v: np.ndarray, ts: float = T0, identity: str | None = None) -> TrackEntry:
    return TrackEntry(stream, track, identity or f"{stream}/{track}", v, t=ts - T0, ts=ts)


def test_search_returns_other_streams_most_similar_first(open_gallery: Opener) -> None:
    g = open_gallery()
    g.add(entry("cam1", "1.0", vec(1, 0)))
    g.add(entry("cam1", "2.0", vec(1, 1)))
    g.add(entry("cam2", "5.0", vec(1, 0.1)))  # the asking stream: never returned
    g.add(entry("cam3", "7.0", vec(0, 1)))
    hits = g.search(vec(1, 0.1), exclude_stream="cam2", since_ts=0.0, limit=10)
    assert [(h.stream, h.track_id) for h in hits] == [("cam1", "1.0"), ("cam1", "2.0"), ("cam3", "7.0")]
    assert hits[0].score == pytest.approx(1 / np.hypot(1, 0.1), abs=1e-3)
    assert hits[0].identity == "cam1/1.0" and hits[0].ts == T0
    assert len(g.search(vec(1, 0.1), exclude_stream="cam2", since_ts=0.0, limit=1)) == 1


@pytest.mark.parametrize(
    ("since", "expected"),
    [(T0 - 1, ["old", "new"]), (T0 + 30, ["new"]), (T0 + 61, [])],
    ids=["window-covers-both", "window-drops-old", "window-after-both"],
)
def test_time_window(open_gallery: Opener, since: float, expected: list[str]) -> None:
    g = open_gallery()
    g.add(entry("cam1", "old", vec(1, 0), ts=T0))
    g.add(entry("cam1", "new", vec(1, 0.2), ts=T0 + 60))
    hits = g.search(vec(1, 0), exclude_stream="cam9", since_ts=since, limit=5)
    assert [h.track_id for h in hits] == expected


def test_adding_a_track_again_replaces_its_entry(open_gallery: Opener) -> None:
    g = open_gallery()
    g.add(entry("cam1", "3.0", vec(1, 0), ts=T0))
    g.add(entry("cam1", "3.0", vec(0, 1), ts=T0 + 5, identity="cam2/1.0"))
    (hit,) = g.search(vec(0, 1), exclude_stream="cam2", since_ts=0.0, limit=5)
    assert (hit.identity, hit.ts, hit.t) == ("cam2/1.0", T0 + 5, 5.0)
    assert hit.score == pytest.approx(1.0, abs=1e-4)
    assert len(g) == 1


def test_prune_drops_entries_last_seen_before(open_gallery: Opener) -> None:
    g = open_gallery()
    for i in range(4):
        g.add(entry("cam1", f"{i}.0", vec(1, i), ts=T0 + 10 * i))
    assert g.prune(T0 + 15) == 2
    hits = g.search(vec(1, 0), exclude_stream="cam2", since_ts=0.0, limit=10)
    assert sorted(h.track_id for h in hits) == ["2.0", "3.0"]


def test_bad_vectors_are_refused(open_gallery: Opener) -> None:
    g = open_gallery()
    g.add(entry("cam1", "1.0", vec(1, 0)))
    with pytest.raises(ValueError, match="shape"):
        g.search(np.ones(DIM + 1), exclude_stream="x", since_ts=0.0, limit=1)
    with pytest.raises(ValueError, match="zero"):
        g.add(entry("cam1", "2.0", vec()))
    with pytest.raises(ValueError, match="limit"):
        g.search(vec(1), exclude_stream="x", since_ts=0.0, limit=0)


def test_empty_gallery_finds_nothing(open_gallery: Opener) -> None:
    assert open_gallery().search(vec(1), exclude_stream="cam1", since_ts=0.0, limit=3) == []


def test_memory_gallery_is_bounded_and_evicts_the_stalest() -> None:
    g = MemoryTrackGallery(max_entries=2)
    g.add(entry("cam1", "a", vec(1, 0), ts=T0 + 1))
    g.add(entry("cam1", "b", vec(1, 0), ts=T0))
    g.add(entry("cam1", "c", vec(1, 0), ts=T0 + 2))
    hits = g.search(vec(1, 0), exclude_stream="x", since_ts=0.0, limit=5)
    assert sorted(h.track_id for h in hits) == ["a", "c"]


def test_edge_gallery_survives_a_reopen_and_refuses_use_after_close(tmp_path: Path) -> None:
    g = EdgeTrackGallery(tmp_path / "tracks", DIM)
    g.add(entry("cam1", "1.0", vec(1, 0)))
    g.close()
    g.close()
    with pytest.raises(IndexStoreError, match="closed"):
        g.search(vec(1, 0), exclude_stream="x", since_ts=0.0, limit=1)
    again = EdgeTrackGallery(tmp_path / "tracks", DIM)
    try:
        (hit,) = again.search(vec(1, 0), exclude_stream="x", since_ts=0.0, limit=1)
        assert hit.track_id == "1.0"
    finally:
        again.close()


def test_edge_gallery_reports_a_shard_of_another_dim(tmp_path: Path) -> None:
    EdgeTrackGallery(tmp_path / "tracks", DIM).close()
    with pytest.raises(IndexStoreError, match=f"holds {DIM}-dim tracks, this worker's are {DIM * 2}-dim"):
        EdgeTrackGallery(tmp_path / "tracks", DIM * 2)


def _other_dim_opener(kind: str, tmp_path: Path) -> Callable[[int, bool], TrackGallery]:
    if kind == "qdrant-edge":
        return lambda dim, replace: EdgeTrackGallery(tmp_path / "tracks", dim, replace_other_dim=replace)
    return lambda dim, replace: QdrantTrackGallery(
        QdrantClient(path=str(tmp_path / "local")), dim, prefix="t", replace_other_dim=replace
    )


@pytest.mark.parametrize("kind", ["qdrant-edge", "qdrant-local"])
def test_a_gallery_of_another_dim_is_refused_or_replaced_as_asked(
    kind: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """An upgrade that changes the signature's layout finds the old gallery: the deployment's
    opener (open_gallery) replaces it, warning; a direct opener is told both dims."""
    opener = _other_dim_opener(kind, tmp_path)
    old = opener(DIM, False)
    old.add(entry("cam1", "1.0", vec(1, 0)))
    old.close()
    with pytest.raises(IndexStoreError, match=f"holds {DIM}-dim tracks, this worker's are {DIM * 2}-dim"):
        opener(DIM * 2, False)
    same = opener(DIM, False)  # refusing removed nothing
    assert len(same) == 1
    same.close()
    with caplog.at_level("WARNING", logger="dinostream.analytics.gallery"):
        new = opener(DIM * 2, True)
    try:
        assert "replacing it" in caplog.text and len(new) == 0
        v = np.zeros(DIM * 2, np.float32)
        v[0] = 1
        new.add(entry("cam1", "2.0", v))
        (hit,) = new.search(v, exclude_stream="cam2", since_ts=0, limit=5)
        assert hit.track_id == "2.0"
    finally:
        new.close()


def test_an_entry_says_when_and_where_its_track_was_seen(open_gallery: Opener) -> None:
    g = open_gallery()
    box = (0.1, 0.2, 0.3, 0.6)
    g.add(TrackEntry("cam1", "t1", "cam1/t1", vec(1, 0), t=9.5, ts=T0 + 9.5, t_start=3.0, box=box, ts_start=T0 + 3))
    g.add(entry("cam1", "t2", vec(0, 1)))  # written without them (as before they were kept)
    first, second = g.search(vec(1, 0.1), exclude_stream="cam2", since_ts=0, limit=5)
    assert (first.track_id, first.t_start, first.t, first.ts_start) == ("t1", 3.0, 9.5, T0 + 3)
    assert first.box == pytest.approx((0.1, 0.2, 0.3, 0.6))
    assert (second.track_id, second.t_start, second.box, second.ts_start) == ("t2", None, None, None)
