"""Every event type through the real broker and the Faust worker with the default processors.

Two cameras on synthetic patch grids with known content: cam-a's room is cut to another room
(scene change, a new phase), a suitcase walks across cam-a and later across cam-b (an anomaly on
each after their warm-up, a re-identification on cam-b, and a watchlist match on both once its
exemplar is registered through the watchlist topic). The worker is restarted half way: the
second worker resumes from the state table, chunked where a state is bigger than a message.
"""

from __future__ import annotations

import asyncio
import uuid
import zlib
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from aiokafka import AIOKafkaConsumer

from dinostream.analytics.gallery import EdgeTrackGallery, LazyTrackGallery
from dinostream.analytics.watchlist import Exemplar, exemplar_from_patches
from dinostream.analytics.watchlist_feed import exemplar_message
from dinostream.analytics.worker import WorkerStats, build_app
from dinostream.core.embedded_broker import EmbeddedBroker
from dinostream.core.kafka_io import ensure_topics, make_producer
from dinostream.core.records import Box, Event, FrameEmbedding
from dinostream.core.settings import AnalyticsSettings, AnomalySettings, KafkaSettings, PhaseSettings, ReidSettings
from tests.waiting import wait_for

pytestmark = pytest.mark.integration

DIM = 32
GRID = (8, 10)
T0 = 1_700_000_000.0
FPS = 2.0
TYPES = {"scene_change", "anomaly", "phase", "reid", "watchlist"}


def _seed(name: str) -> int:
    return zlib.crc32(name.encode())


def _look(obj: str) -> np.ndarray:
    return np.random.default_rng(_seed(obj)).normal(size=DIM)


def _grid(room: str, stream: str, seq: int, obj: str | None, col: int) -> np.ndarray:
    x = np.random.default_rng(_seed(room)).normal(size=(*GRID, DIM))
    rng = np.random.default_rng([_seed(stream), seq])
    x = x + 0.05 * rng.normal(size=x.shape)
    if obj is not None:
        c0, c1 = max(col, 0), min(col + 3, GRID[1])
        if c1 > c0:
            x[3:6, c0:c1] = _look(obj) + 0.2 * rng.normal(size=(3, c1 - c0, DIM))
    return x


def _camera(
    name: str, rooms: list[tuple[str, int]], visits: list[tuple[str, int]], frames: int
) -> list[FrameEmbedding]:
    """`rooms`: (room, first frame); `visits`: (object, first frame), walking one cell a frame."""
    out = []
    for seq in range(frames):
        room = [r for r, start in rooms if start <= seq][-1]
        obj, col = None, 0
        for o, start in visits:
            if start <= seq < start + GRID[1] + 3:
                obj, col = o, seq - start - 2
        p = _grid(room, name, seq, obj, col)
        out.append(
            FrameEmbedding(
                stream=name,
                seq=seq,
                pts=seq / FPS,
                ts=T0 + seq / FPS,
                model="test",
                untrained=True,
                cls=p.mean(axis=(0, 1)),
                pooled=p.mean(axis=(0, 1)),
                patches=p,
            )
        )
    return out


def _suitcase_exemplar() -> Exemplar:
    """Registered from a box drawn around the suitcase on a frame of a third camera."""
    frame = _camera("ref", [("store", 0)], [("suitcase", 0)], 8)[6]  # fully in view, columns 4-6
    box = Box(0.4, 3 / 8, 0.7, 6 / 8)
    vector = exemplar_from_patches(frame.patches, box, centering=ReidSettings().feature_centering)
    return Exemplar("suitcase-7", "red suitcase", vector)


async def test_every_event_type_through_broker_and_faust(
    broker: EmbeddedBroker, kafka_settings: KafkaSettings, tmp_path: Path
) -> None:
    await ensure_topics(broker.bootstrap, kafka_settings)
    a = _camera("cam-a", [("room-1", 0), ("room-2", 70)], [("suitcase", 30)], 120)
    b = _camera("cam-b", [("hall", 0)], [("suitcase", 50)], 120)
    records = [r for pair in zip(a, b, strict=True) for r in pair]
    settings = AnalyticsSettings(
        app_id=f"test-{uuid.uuid4().hex[:8]}",
        snapshot_every_s=1e-6,  # save after every record, so the restart loses nothing
        anomaly=AnomalySettings(warmup_frames=20),
        phase=PhaseSettings(min_phase_s=10, window=6),
    )
    producer = make_producer(broker.bootstrap, kafka_settings, embedded=True)
    consumer = AIOKafkaConsumer(
        kafka_settings.events_topic,
        bootstrap_servers=broker.bootstrap,
        group_id=f"g-{uuid.uuid4().hex[:8]}",
        auto_offset_reset="earliest",
    )
    await producer.start()
    await consumer.start()
    exemplar = _suitcase_exemplar()
    await producer.send_and_wait(kafka_settings.watchlist_topic, exemplar_message(exemplar), key=exemplar.id.encode())
    # One gallery for both workers, as the Edge shard under the data dir is in `dinostream up`.
    gallery = LazyTrackGallery(lambda dim: EdgeTrackGallery(tmp_path / "tracks", dim))
    events: list[Event] = []

    async def drain(until: int) -> None:
        async with asyncio.timeout(120):
            while True:
                batch = await consumer.getmany(timeout_ms=500)
                events.extend(Event.decode(m.value) for msgs in batch.values() for m in msgs)
                if stats.records >= until:
                    return

    sent = 0  # events the workers handed to Kafka

    async def all_arrived() -> bool:
        batch = await consumer.getmany(timeout_ms=500)
        events.extend(Event.decode(m.value) for msgs in batch.values() for m in msgs)
        return len(events) >= sent

    try:
        half = len(records) // 2  # frame 60 of each camera: after the warm-ups, before the cut
        for part, (lo, hi) in enumerate(((0, half), (half, len(records)))):
            stats = WorkerStats()
            app = build_app(
                broker.bootstrap, kafka_settings, settings, gallery=gallery, stats=stats, datadir=tmp_path / "faust"
            )
            await app.start()
            try:
                for r in records[lo:hi]:
                    await producer.send_and_wait(kafka_settings.embeddings_topic, r.encode(), key=r.key)
                await drain(hi - lo)
                assert stats.failure is None and stats.malformed == 0
                assert stats.oversize_state == 0, "states bigger than a message are saved in chunks"
                if part == 1:
                    # Both streams' state came back: warm-ups were not repeated (anomalies would
                    # otherwise be learned as normal) and tracks, shots and phases continued.
                    assert stats.restored >= 2 * 5
            finally:
                await app.stop()
                sent += stats.events
        await wait_for(all_arrived, 60, f"the {sent} events the workers sent")
    finally:
        await producer.stop()
        await consumer.stop()
        gallery.close()

    kinds = Counter((e.type, e.stream) for e in events if e.status in ("open", "closed"))
    assert {t for t, _ in kinds} == TYPES, kinds
    # The cut in cam-a at frame 70 (35 s), in the second worker's half.
    cuts = [e.t for e in events if e.type == "scene_change" and e.stream == "cam-a"]
    assert any(abs(t - 35.0) <= 0.5 for t in cuts), cuts
    # The suitcase is re-identified on cam-b as the one cam-a saw.
    (link,) = [e for e in events if e.type == "reid" and e.status == "open"]
    assert (link.stream, link.details["matched_stream"]) == ("cam-b", "cam-a")
    # The watchlist exemplar is found on both cameras, with the suitcase's box.
    matches = [e for e in events if e.type == "watchlist" and e.status == "open"]
    assert sorted(e.stream for e in matches) == ["cam-a", "cam-b"]
    for m in matches:
        (box,) = m.boxes
        assert box.label == "red suitcase" and (box.y0, box.y1) == (3 / 8, 6 / 8)
    # An anomaly where the suitcase first appears on each camera, after its warm-up (10 s).
    anomalies = [e for e in events if e.type == "anomaly" and e.status == "open"]
    assert {e.stream for e in anomalies} == {"cam-a", "cam-b"}
    assert min(e.t_start for e in anomalies if e.stream == "cam-b") >= 25.0
    # Every occurrence is one id: open first, closed last.
    by_id: dict[str, list[str]] = {}
    for e in events:
        by_id.setdefault(e.id, []).append(e.status)
    for statuses in by_id.values():
        if statuses[0] != "closed":  # a scene change is a single, closed event
            assert statuses[0] == "open", statuses
