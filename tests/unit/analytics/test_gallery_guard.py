"""A Qdrant outage under the shared track gallery: the worker's calls neither raise nor block on
every frame, health says what is wrong, the tracks it could not write are written once Qdrant
answers again, and cross-stream search resumes."""

from __future__ import annotations

import numpy as np
import pytest
from qdrant_client import QdrantClient

from dinostream.analytics.gallery import LazyTrackGallery, QdrantTrackGallery, TrackEntry
from dinostream.analytics.gallery_guard import GuardedTrackGallery
from dinostream.core.embedded_broker import free_port

pytestmark = pytest.mark.filterwarnings("ignore:Payload indexes have no effect in the local Qdrant")


def entry(stream: str, track: str, v: np.ndarray, ts: float = 1000.0) -> TrackEntry:
    return TrackEntry(stream=stream, track_id=track, identity=f"{stream}/{track}", embedding=v, t=1.0, ts=ts)


class Server:
    """Where the gallery's client points: a closed port until `up`, then a live (local-mode) Qdrant."""

    def __init__(self) -> None:
        self.up = False
        self.opened = 0

    def client(self) -> QdrantClient:
        self.opened += 1
        if self.up:
            return QdrantClient(":memory:")
        return QdrantClient(url=f"http://127.0.0.1:{free_port()}", timeout=1, check_compatibility=False)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_an_outage_degrades_and_nothing_is_lost() -> None:
    server, clock = Server(), Clock()
    inner = LazyTrackGallery(lambda dim: QdrantTrackGallery(server.client(), dim))
    gallery = GuardedTrackGallery(inner, retry_s=10.0, clock=clock)
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=16), rng.normal(size=16)

    gallery.add(entry("cam-a", "1", a))  # Qdrant does not answer: kept, not raised
    assert gallery.stats["ok"] is False
    assert "track gallery: cannot write track cam-a/1" in gallery.stats["problem"]
    assert gallery.stats["pending"] == 1
    assert gallery.search(a, exclude_stream="cam-b", since_ts=0, limit=5) == []
    gallery.add(entry("cam-a", "1", a, ts=1001.0))  # the same track again: its latest entry replaces it
    gallery.add(entry("cam-c", "2", b))
    assert gallery.stats["pending"] == 2
    assert server.opened == 1  # not retried before retry_s: a hung server is not asked on every frame
    assert gallery.prune(0) == 0 and len(gallery) == 0

    server.up = True
    clock.now = 11.0
    hits = gallery.search(a, exclude_stream="cam-b", since_ts=0, limit=5)
    assert gallery.stats == {"ok": True, "problem": None, "pending": 0, "failures": 1, "dropped": 0}
    assert [(h.stream, h.track_id) for h in hits][0] == ("cam-a", "1")
    assert {(h.stream, h.track_id) for h in hits} == {("cam-a", "1"), ("cam-c", "2")}
    assert len(gallery) == 2


def test_pending_entries_are_bounded_and_drops_counted() -> None:
    server, clock = Server(), Clock()
    gallery = GuardedTrackGallery(
        LazyTrackGallery(lambda dim: QdrantTrackGallery(server.client(), dim)), max_pending=2, clock=clock
    )
    v = np.ones(8)
    for track in "123":
        gallery.add(entry("cam-a", track, v))
    assert (gallery.stats["pending"], gallery.stats["dropped"]) == (2, 1)


def test_bad_arguments_are_named() -> None:
    with pytest.raises(ValueError, match="retry_s"):
        GuardedTrackGallery(LazyTrackGallery(lambda dim: QdrantTrackGallery(QdrantClient(":memory:"), dim)), retry_s=0)


async def test_the_worker_guards_its_gallery_and_shows_it_in_health() -> None:
    from dinostream.analytics.worker import WorkerStats, build_app
    from dinostream.core.settings import AnalyticsSettings, KafkaSettings

    stats = WorkerStats()
    server = Server()
    lazy = LazyTrackGallery(lambda dim: QdrantTrackGallery(server.client(), dim))
    app = build_app("kafka:9092", KafkaSettings(), AnalyticsSettings(), gallery=lazy, stats=stats)
    reid = next(p for p in app.dinostream_processors.processors if type(p).__name__ == "ReidProcessor")
    assert isinstance(reid.gallery, GuardedTrackGallery) and reid.gallery.inner is lazy
    reid.gallery.add(entry("cam-a", "1", np.ones(8)))
    assert vars(stats)["gallery"]["ok"] is False  # what the worker's health shows
