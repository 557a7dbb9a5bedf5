"""Both VectorIndex backends pass the same tests: Qdrant Edge on disk, and qdrant-client's local
mode (on disk too, so it can be reopened) standing in for a Qdrant server."""

from __future__ import annotations

import re
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
from qdrant_client import QdrantClient

from dinostream.core.errors import IndexStoreError
from dinostream.core.records import Event, FrameEmbedding, event_id, frame_point_id
from dinostream.core.settings import IndexSettings, ReidSettings
from dinostream.sinks.index_factory import open_index
from dinostream.sinks.index_payload import region_cells
from dinostream.sinks.qdrant_edge_index import QdrantEdgeIndex
from dinostream.sinks.qdrant_server_index import QdrantServerIndex
from dinostream.sinks.vector_index import EventFilter, FrameFilter, VectorIndex

# qdrant-client's local mode keeps no payload indexes and says so on each create_payload_index.
pytestmark = pytest.mark.filterwarnings("ignore:Payload indexes have no effect:UserWarning")

DIM = 16
# Bytes no text codec would round-trip by accident: JPEG markers, NUL, high bytes.
JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + bytes(range(256)) + b"\xff\xd9"

Opener = Callable[[int], VectorIndex]


def frame(stream: str, seq: int, rng: np.random.Generator, dim: int = DIM, thumbnail: bytes = JPEG) -> FrameEmbedding:
    return FrameEmbedding(
        stream=stream,
        seq=seq,
        pts=seq * 0.5,
        ts=1_700_000_000.0 + seq,
        model="random:vits16",
        untrained=True,
        cls=rng.standard_normal(dim).astype(np.float16),
        pooled=rng.standard_normal(dim).astype(np.float16),
        patches=rng.standard_normal((2, 2, dim)).astype(np.float16),
        thumbnail=thumbnail,
    )


def event(stream: str, seq: int, score: float = 0.7) -> Event:
    return Event(
        id=event_id(stream, "scene_change", seq),
        type="scene_change",
        stream=stream,
        t=seq * 0.5,
        t_start=seq * 0.5,
        t_end=seq * 0.5,
        ts=1_700_000_000.0 + seq,
        score=score,
        frames=(seq - 1, seq),
        details={"distance": score, "threshold": 0.3},
    )


@pytest.fixture(params=["edge", "server-local"])
def opener(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Opener]:
    """Opens the backend on the same storage each call (to test reopening); closes what it opened."""
    opened: list[VectorIndex] = []

    def open_(dim: int) -> VectorIndex:
        if request.param == "edge":
            index: VectorIndex = QdrantEdgeIndex(tmp_path / "qdrant", dim)
        else:
            index = QdrantServerIndex(QdrantClient(path=str(tmp_path / "server")), dim, prefix="t")
        opened.append(index)
        return index

    yield open_
    for index in opened:
        index.close()


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(7)


def test_search_returns_the_identical_frame_first_with_score_one(opener: Opener, rng: np.random.Generator) -> None:
    index = opener(DIM)
    records = [frame("cam-a", seq, rng) for seq in range(8)]
    index.upsert_frames(records)

    hits = index.search_frames(records[3].cls, limit=4)

    assert len(hits) == 4
    best = hits[0]
    assert (best.stream, best.seq) == ("cam-a", 3)
    assert best.score == pytest.approx(1.0, abs=1e-2)
    assert best.t == pytest.approx(1.5) and best.ts == pytest.approx(1_700_000_003.0)
    assert best.point_id == frame_point_id("cam-a", 3)
    scores = [h.score for h in hits]
    assert scores == sorted(scores, reverse=True) and scores[1] < 0.9


def test_stream_filter_keeps_only_the_named_streams(opener: Opener, rng: np.random.Generator) -> None:
    index = opener(DIM)
    a = [frame("cam-a", seq, rng) for seq in range(5)]
    b = [frame("cam-b", seq, rng) for seq in range(5)]
    index.upsert_frames(a + b)

    only_a = index.search_frames(b[2].cls, limit=10, streams=["cam-a"])
    both = index.search_frames(b[2].cls, limit=10, streams=["cam-a", "cam-b"])

    assert len(only_a) == 5 and {h.stream for h in only_a} == {"cam-a"}
    assert (both[0].stream, both[0].seq) == ("cam-b", 2) and len(both) == 10
    assert index.search_frames(b[2].cls, limit=10, streams=[]) == []


def test_reupserting_a_frame_overwrites_it_instead_of_adding_one(opener: Opener, rng: np.random.Generator) -> None:
    index = opener(DIM)
    records = [frame("cam-a", seq, rng) for seq in range(4)]
    index.upsert_frames(records)
    index.upsert_frames(records)  # a redelivered batch
    assert index.count_frames() == 4

    replacement = frame("cam-a", 1, rng)  # same (stream, seq), new embedding
    index.upsert_frames([replacement])

    assert index.count_frames() == 4
    best = index.search_frames(replacement.cls, limit=1)[0]
    assert (best.seq, best.score) == (1, pytest.approx(1.0, abs=1e-2))
    stale = index.search_frames(records[1].cls, limit=1)[0]
    assert stale.seq != 1 or stale.score < 0.9


def test_events_are_counted_and_reupserting_one_does_not_duplicate_it(opener: Opener) -> None:
    index = opener(DIM)
    index.upsert_events([event("cam-a", 10), event("cam-b", 20)])
    assert index.count_events() == 2

    index.upsert_events([event("cam-a", 10, score=0.9)])  # an update of the same occurrence

    assert index.count_events() == 2
    assert index.count_frames() == 0


def test_thumbnail_round_trips_and_is_none_when_absent(opener: Opener, rng: np.random.Generator) -> None:
    index = opener(DIM)
    index.upsert_frames([frame("cam-a", 0, rng), frame("cam-a", 1, rng, thumbnail=b"")])

    assert index.thumbnail("cam-a", 0) == JPEG
    assert index.thumbnail("cam-a", 1) is None  # indexed without a thumbnail
    assert index.thumbnail("cam-a", 2) is None  # not indexed
    assert index.thumbnail("cam-b", 0) is None


def test_reopening_keeps_frames_events_and_thumbnails(opener: Opener, rng: np.random.Generator) -> None:
    index = opener(DIM)
    records = [frame("cam-a", seq, rng) for seq in range(6)]
    index.upsert_frames(records)
    index.upsert_events([event("cam-a", 3)])
    index.close()

    reopened = opener(DIM)

    assert reopened.count_frames() == 6 and reopened.count_events() == 1
    assert reopened.search_frames(records[5].cls, limit=1)[0].seq == 5
    assert reopened.thumbnail("cam-a", 4) == JPEG
    reopened.upsert_frames(records[:2])
    assert reopened.count_frames() == 6


def test_opening_with_another_dim_raises_naming_both_dims(opener: Opener, rng: np.random.Generator) -> None:
    index = opener(8)
    index.upsert_frames([frame("cam-a", 0, rng, dim=8)])
    index.close()

    with pytest.raises(IndexStoreError, match=r"(?s)\b8-dim\b.*\b12-dim\b"):
        opener(12)


def test_a_record_of_another_dim_is_refused_before_anything_is_written(
    opener: Opener, rng: np.random.Generator
) -> None:
    index = opener(DIM)
    with pytest.raises(IndexStoreError, match="32-dim"):
        index.upsert_frames([frame("cam-a", 0, rng), frame("cam-a", 1, rng, dim=32)])
    assert index.count_frames() == 0


def test_a_query_vector_of_the_wrong_shape_is_a_value_error(opener: Opener) -> None:
    index = opener(DIM)
    with pytest.raises(ValueError, match=r"\(16,\)"):
        index.search_frames(np.zeros(DIM + 1, dtype=np.float32))


# -- Edge only: its on-disk directory ---------------------------------------------------------


def test_edge_index_with_a_missing_part_raises_naming_the_shard(tmp_path: Path) -> None:
    QdrantEdgeIndex(tmp_path, DIM).close()
    for segment in (tmp_path / "frames" / "segments").iterdir():
        for f in sorted(segment.rglob("*"), reverse=True):
            f.rmdir() if f.is_dir() else f.unlink()
        segment.rmdir()

    with pytest.raises(IndexStoreError, match=re.escape(str(tmp_path / "frames")) + ".*incomplete"):
        QdrantEdgeIndex(tmp_path, DIM)


def test_edge_index_with_a_corrupt_config_raises_naming_the_shard(tmp_path: Path) -> None:
    QdrantEdgeIndex(tmp_path, DIM).close()
    (tmp_path / "events" / "edge_config.json").write_text("not json")

    with pytest.raises(IndexStoreError, match=re.escape(str(tmp_path / "events")) + ".*corrupt"):
        QdrantEdgeIndex(tmp_path, DIM)


def test_edge_index_refuses_a_second_opener_of_the_same_directory(tmp_path: Path) -> None:
    index = QdrantEdgeIndex(tmp_path, DIM)
    try:
        with pytest.raises(IndexStoreError, match="in use"):
            QdrantEdgeIndex(tmp_path, DIM)
    finally:
        index.close()
    QdrantEdgeIndex(tmp_path, DIM).close()  # released on close


def test_edge_writes_survive_a_process_that_dies_without_closing(tmp_path: Path) -> None:
    child = textwrap.dedent(
        f"""
        import os
        import numpy as np
        from pathlib import Path
        from dinostream.core.records import Event, FrameEmbedding, event_id
        from dinostream.sinks.qdrant_edge_index import QdrantEdgeIndex
        index = QdrantEdgeIndex(Path({str(tmp_path)!r}), {DIM})
        z = np.zeros({DIM}, dtype=np.float16)
        index.upsert_frames([
            FrameEmbedding("cam-a", seq, 0.0, 0.0, "m", True, z + seq + 1, z, z.reshape(1, 1, -1), {JPEG!r})
            for seq in range(3)
        ])
        index.upsert_events([Event(event_id("cam-a", "anomaly", 1), "anomaly", "cam-a", 0.0, 0.0, 0.0, 0.0, 1.0)])
        os._exit(0)  # dies: no close(), no flush at exit
        """
    )
    subprocess.run([sys.executable, "-c", child], check=True, cwd=Path(__file__).parents[3], timeout=60)

    index = QdrantEdgeIndex(tmp_path, DIM)
    try:
        assert (index.count_frames(), index.count_events()) == (3, 1)
        assert index.thumbnail("cam-a", 2) == JPEG
    finally:
        index.close()


def test_edge_index_refuses_use_after_close(tmp_path: Path) -> None:
    index = QdrantEdgeIndex(tmp_path, DIM)
    index.close()
    index.close()  # idempotent
    with pytest.raises(IndexStoreError, match="closed"):
        index.count_frames()


# -- server only: connecting --------------------------------------------------------------------


def test_from_url_to_a_closed_port_raises_one_line_quickly() -> None:
    with socket.socket() as s:  # a loopback port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}"

    start = time.monotonic()
    with pytest.raises(IndexStoreError, match="does not answer") as info:
        QdrantServerIndex.from_url(url, api_key=None, dim=DIM, timeout=2)

    assert time.monotonic() - start < 5
    assert url in str(info.value) and "\n" not in str(info.value)


# -- factory --------------------------------------------------------------------------------------


def test_factory_opens_edge_under_the_data_dir_without_a_url(tmp_path: Path) -> None:
    index = open_index(IndexSettings(), tmp_path, DIM)
    try:
        assert isinstance(index, QdrantEdgeIndex) and index.path == tmp_path / "qdrant"
        assert (tmp_path / "qdrant" / "frames").is_dir() and (tmp_path / "qdrant" / "events").is_dir()
    finally:
        index.close()


def test_factory_centres_stored_cells_by_the_configured_feature_centering(tmp_path: Path) -> None:
    """Point search compares cells centred as live click-to-segment centres patches."""
    rng = np.random.default_rng(5)
    rec = frame("cam-a", 0, rng)
    rec = FrameEmbedding(
        rec.stream, 0, 0.0, rec.ts, rec.model, rec.untrained, rec.cls, rec.pooled, rng.normal(size=(2, 2, DIM)) + 1.0
    )
    stored = {}
    for centering in (0.0, 0.9):
        index = open_index(
            IndexSettings(region_grid=2), tmp_path / str(centering), DIM, reid=ReidSettings(feature_centering=centering)
        )
        try:
            index.upsert_frames([rec])
            got = index.frame("cam-a", 0, with_cells=True)
            assert got is not None and got.cells is not None
            stored[centering] = got.cells
        finally:
            index.close()

    for centering, cells in stored.items():
        want = region_cells(rec.patches, 2, centering)
        want /= np.linalg.norm(want, axis=-1, keepdims=True)  # cosine storage keeps unit vectors
        np.testing.assert_allclose(cells, want, atol=2e-3)
    assert not np.allclose(stored[0.0], stored[0.9], atol=0.05)


def test_factory_goes_to_the_server_when_a_url_is_set() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(IndexStoreError, match=f"127.0.0.1:{port}"):
        open_index(IndexSettings(qdrant_url=f"http://127.0.0.1:{port}"), Path("unused"), DIM)


# -- retrospective search: filters, regions, stored frames, events, retention ---------------------

BASE_TS = 1_700_000_000.0
RED_CELL = np.eye(DIM, dtype=np.float32)[0] * 3 + 0.2  # what an "object" patch looks like


def scene(stream: str, seq: int, rng: np.random.Generator, obj_at: tuple[int, int] | None = None) -> FrameEmbedding:
    """A frame with an 8x8 patch grid of noise; with `obj_at` (row, col of a 2x2 block) an object in it."""
    patches = rng.standard_normal((8, 8, DIM)).astype(np.float32) * 0.3
    patches[..., 1] += 2.0  # a shared background direction
    if obj_at is not None:
        r, c = obj_at
        patches[r : r + 2, c : c + 2] = RED_CELL
    rec = frame(stream, seq, rng)
    return FrameEmbedding(
        rec.stream, rec.seq, rec.pts, rec.ts, rec.model, rec.untrained, rec.cls, rec.pooled, patches, rec.thumbnail
    )


def unit(v: np.ndarray) -> np.ndarray:
    v = v.astype(np.float32)
    return v / np.linalg.norm(v)


def test_region_cells_pool_any_grid_to_at_most_n_cells() -> None:
    patches = np.arange(14 * 10 * 3, dtype=np.float32).reshape(14, 10, 3) + 1
    assert region_cells(patches, 4, 0.5).shape == (4, 4, 3)
    assert region_cells(patches[:2, :3], 4, 0.5).shape == (2, 3, 3)  # never upsampled
    one = region_cells(patches, 1, centering=0.0)[0, 0]
    unit = patches / np.linalg.norm(patches, axis=-1, keepdims=True)
    np.testing.assert_allclose(one, unit.reshape(-1, 3).mean(axis=0), rtol=1e-5)


def test_region_cells_are_the_means_of_their_spans() -> None:
    rng = np.random.default_rng(5)
    patches = rng.standard_normal((14, 10, 8)).astype(np.float32)
    unit = patches / np.linalg.norm(patches, axis=-1, keepdims=True)
    centred = unit - 0.5 * unit.reshape(-1, 8).mean(axis=0)
    cells = region_cells(patches, 4, 0.5)
    for i in range(4):  # spans overlap where 4 does not divide 14 or 10, as `_span_weights` cuts them
        for j in range(4):
            r0, r1, c0, c1 = i * 14 // 4, -(-(i + 1) * 14 // 4), j * 10 // 4, -(-(j + 1) * 10 // 4)
            np.testing.assert_allclose(cells[i, j], centred[r0:r1, c0:c1].mean(axis=(0, 1)), rtol=1e-5, atol=1e-6)


def test_time_and_id_filters_restrict_a_search(opener: Opener, rng: np.random.Generator) -> None:
    index = opener(DIM)
    records = [frame("cam-a", seq, rng) for seq in range(10)]
    index.upsert_frames(records)
    q = records[0].cls

    window = index.query_frames(q, 20, FrameFilter(since=BASE_TS + 3, until=BASE_TS + 6))
    only = index.query_frames(q, 20, FrameFilter(point_ids=[records[8].point_id, records[9].point_id]))

    assert sorted(h.seq for h in window) == [3, 4, 5, 6]
    assert sorted(h.seq for h in only) == [8, 9]
    assert index.query_frames(q, 5, FrameFilter(point_ids=[])) == []
    assert index.count_frames_where(FrameFilter(streams=["cam-a"], since=BASE_TS + 8)) == 2


def test_a_point_query_finds_the_frames_where_the_object_appears(opener: Opener, rng: np.random.Generator) -> None:
    index = opener(DIM)
    with_obj = {2: (0, 0), 3: (0, 2), 7: (6, 6)}  # seq -> where the object is
    index.upsert_frames([scene("cam-a", seq, rng, with_obj.get(seq)) for seq in range(10)])

    query = index.frame_at("cam-a", 1.5, with_cells=True)  # seq 3
    assert query is not None and query.seq == 3 and query.cells is not None
    assert query.cells.shape == (4, 4, DIM)  # 8x8 patches pooled to the index's 4x4 cells
    hits = index.query_regions(query.cells[0, 1], 10)  # the cell the object covers in frame 3

    assert sorted(h.seq for h in hits[:3]) == [2, 3, 7]
    assert hits[2].score > hits[3].score + 0.3  # the object anywhere in the frame beats no object
    assert index.query_regions(query.cells[0, 1], 10, FrameFilter(until=BASE_TS + 5))[0].seq in (2, 3)


def test_frame_at_picks_the_nearest_media_time_and_frame_reads_vectors(
    opener: Opener, rng: np.random.Generator
) -> None:
    index = opener(DIM)
    records = [frame("cam-a", seq, rng) for seq in range(0, 10, 3)]  # t = 0, 1.5, 3, 4.5
    index.upsert_frames(records + [frame("cam-b", 1, rng)])

    assert index.frame_at("cam-a", 2.0).seq == 3  # type: ignore[union-attr]
    assert index.frame_at("cam-a", 2.5).seq == 6  # type: ignore[union-attr]
    assert index.frame_at("cam-a", 99.0).seq == 9  # type: ignore[union-attr]
    assert index.frame_at("cam-c", 1.0) is None
    stored = index.frame("cam-a", 6)
    assert stored is not None and stored.cells is None and (stored.t, stored.ts) == (3.0, BASE_TS + 6)
    np.testing.assert_allclose(stored.cls, unit(records[2].cls), atol=2e-3)  # cosine storage: unit length
    assert index.frame("cam-a", 7) is None


def test_frames_between_reads_a_window_in_time_order(opener: Opener, rng: np.random.Generator) -> None:
    index = opener(DIM)
    records = [frame("cam-a", seq, rng) for seq in range(30)]
    index.upsert_frames(records[::-1] + [frame("cam-b", 5, rng)])

    window = index.frames_between("cam-a", BASE_TS + 4, BASE_TS + 20, 1000)
    first = index.frames_between("cam-a", None, None, 3)

    assert [f.seq for f in window] == list(range(4, 21))
    assert [f.seq for f in first] == [0, 1, 2]
    np.testing.assert_allclose(window[0].pooled, unit(records[4].pooled), atol=2e-3)


def test_events_are_read_by_id_and_listed_by_type_newest_first(opener: Opener) -> None:
    index = opener(DIM)
    cut = event("cam-a", 3)
    anomaly = Event(event_id("cam-b", "anomaly", 5), "anomaly", "cam-b", 2.5, 2.5, 3.0, BASE_TS + 5, 0.9, (5,))
    index.upsert_events([cut, anomaly, event("cam-a", 8)])

    assert index.event(cut.id) == cut
    assert index.event(event_id("cam-a", "scene_change", 99)) is None
    assert index.event("not-a-uuid") is None
    assert [e.id for e in index.events(EventFilter(types=["scene_change"]), 10)] == [
        event_id("cam-a", "scene_change", 8),
        cut.id,
    ]
    assert index.events(EventFilter(streams=["cam-b"], since=BASE_TS + 4), 10) == [anomaly]


def test_delete_older_than_applies_to_one_stream_or_all(opener: Opener, rng: np.random.Generator) -> None:
    index = opener(DIM)
    index.upsert_frames([frame(s, seq, rng) for s in ("cam-a", "cam-b") for seq in range(6)])
    index.upsert_events([event("cam-a", 1), event("cam-a", 5), event("cam-b", 1)])
    assert index.streams() == ["cam-a", "cam-b"]

    index.delete_older_than("cam-a", BASE_TS + 4)  # cam-a seq 0..3 go

    assert index.count_frames() == 8 and index.count_events() == 2
    assert [f.seq for f in index.frames_between("cam-a", None, None, 100)] == [4, 5]
    assert {h.seq for h in index.query_regions(np.ones(DIM), 20, FrameFilter(streams=["cam-a"]))} == {4, 5}
    index.delete_older_than(None, BASE_TS + 5)
    assert index.count_frames() == 2 and index.count_events() == 1
    index.delete_older_than(None, BASE_TS + 100)
    assert index.streams() == []
    assert index.optimize() in (True, False)  # nothing to do must not fail either


def test_a_record_with_another_patch_dim_is_refused(opener: Opener, rng: np.random.Generator) -> None:
    index = opener(DIM)
    rec = frame("cam-a", 0, rng)
    narrow = FrameEmbedding(
        rec.stream, 1, 0.5, rec.ts, rec.model, rec.untrained, rec.cls, rec.pooled, rec.patches[..., :8], rec.thumbnail
    )
    with pytest.raises(IndexStoreError, match="8-dim patch vectors"):
        index.upsert_frames([rec, narrow])
    assert index.count_frames() == 0


def test_edge_index_with_pca_patches_searches_regions_in_patch_space(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    index = QdrantEdgeIndex(tmp_path, DIM, patch_dim=4, region_grid=2)
    try:
        rec = frame("cam-a", 0, rng)
        small = FrameEmbedding(
            rec.stream, 0, 0.0, rec.ts, rec.model, rec.untrained, rec.cls, rec.pooled, rec.patches[..., :4], b""
        )
        index.upsert_frames([small])
        stored = index.frame("cam-a", 0, with_cells=True)
        assert stored is not None and stored.cells is not None and stored.cells.shape == (2, 2, 4)
        assert index.query_regions(stored.cells[1, 1], 1)[0].score == pytest.approx(1.0, abs=1e-2)
    finally:
        index.close()
