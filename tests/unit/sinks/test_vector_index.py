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

from dinostream.errors import IndexStoreError
from dinostream.records import Event, FrameEmbedding, event_id, frame_point_id
from dinostream.settings import IndexSettings
from sinks.index_factory import open_index
from sinks.qdrant_edge_index import QdrantEdgeIndex
from sinks.qdrant_server_index import QdrantServerIndex
from sinks.vector_index import VectorIndex

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
        from dinostream.records import Event, FrameEmbedding, event_id
        from sinks.qdrant_edge_index import QdrantEdgeIndex
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


def test_factory_goes_to_the_server_when_a_url_is_set() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(IndexStoreError, match=f"127.0.0.1:{port}"):
        open_index(IndexSettings(qdrant_url=f"http://127.0.0.1:{port}"), Path("unused"), DIM)
