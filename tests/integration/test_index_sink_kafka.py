"""Kafka → Qdrant Edge through the index sink, on the real broker: redelivery never duplicates."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import uuid
from pathlib import Path

import numpy as np
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from dinostream.core.embedded_broker import EmbeddedBroker
from dinostream.core.kafka_io import ensure_topics, make_producer
from dinostream.core.records import Event, FrameEmbedding, event_id
from dinostream.core.settings import IndexSettings, KafkaSettings
from dinostream.sinks.index_sink import IndexSink
from dinostream.sinks.qdrant_edge_index import QdrantEdgeIndex
from tests.records import committed_to_end
from tests.waiting import wait_for

pytestmark = pytest.mark.integration


def _frames(n: int) -> list[FrameEmbedding]:
    rng = np.random.default_rng(3)
    return [
        FrameEmbedding(
            stream="cam",
            seq=i,
            pts=i / 2,
            ts=1e9 + i,
            model="t",
            untrained=True,
            cls=rng.normal(size=16),
            pooled=rng.normal(size=16),
            patches=rng.normal(size=(2, 2, 16)),
        )
        for i in range(n)
    ]


async def test_index_sink_writes_and_redelivery_overwrites(
    broker: EmbeddedBroker, kafka_settings: KafkaSettings, tmp_path: Path
) -> None:
    await ensure_topics(broker.bootstrap, kafka_settings)
    index = QdrantEdgeIndex(tmp_path / "qdrant", dim=16)
    producer = make_producer(broker.bootstrap, kafka_settings, embedded=True)
    await producer.start()
    group = f"idx-{uuid.uuid4().hex[:8]}"
    frames = _frames(30)
    ev = Event(
        id=event_id("cam", "scene_change", 5),
        type="scene_change",
        stream="cam",
        t=2.5,
        t_start=2.0,
        t_end=2.5,
        ts=1e9,
        score=0.5,
        frames=(4, 5),
    )
    try:
        for rec in frames:
            await producer.send(kafka_settings.embeddings_topic, rec.encode(), key=rec.key)
        await producer.send(kafka_settings.embeddings_topic, b"not a record", key=b"cam")
        await producer.send_and_wait(kafka_settings.events_topic, ev.encode(), key=ev.key)

        sink = IndexSink(index, broker.bootstrap, kafka_settings, IndexSettings(batch_size=8), group=group)
        task = asyncio.create_task(sink.run())
        await wait_for(
            lambda: sink.stats.frames == 30 and sink.stats.events == 1, 60, "the first 30 frames and 1 event"
        )
        assert sink.stats.malformed == 1
        assert index.count_frames() == 30 and index.count_events() == 1

        # The same records again (a producer retry, a replay): counts must not move.
        for rec in frames[:10]:
            await producer.send(kafka_settings.embeddings_topic, rec.encode(), key=rec.key)
        await producer.send_and_wait(kafka_settings.events_topic, ev.encode(), key=ev.key)
        await wait_for(
            lambda: sink.stats.frames == 40 and sink.stats.events == 2, 60, "the 10 frames and 1 event again"
        )
        assert index.count_frames() == 30 and index.count_events() == 1
        top = index.search_frames(frames[7].cls.astype(np.float32), limit=1)[0]
        assert (top.stream, top.seq) == ("cam", 7)

        # Offsets are committed after writing: once the sink has committed everything it wrote, a
        # restarted sink in the same group reads nothing old. (Cancelled between a write and its
        # commit, the batch would be read again: at-least-once, and the writes are idempotent.)
        async def all_committed() -> bool:
            topics = (kafka_settings.embeddings_topic, kafka_settings.events_topic)
            done = [await committed_to_end(broker.bootstrap, group, t, kafka_settings.partitions) for t in topics]
            return all(done)

        await wait_for(all_committed, 60, "the sink to commit every record it wrote", interval=0.2)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        # A new frame after them is the marker: once it is indexed the restarted sink has read its
        # partition up to there, and anything old it re-read would have come first (same key).
        again = IndexSink(index, broker.bootstrap, kafka_settings, IndexSettings(), group=group)
        task = asyncio.create_task(again.run())
        marker = _frames(31)[30]
        await producer.send_and_wait(kafka_settings.embeddings_topic, marker.encode(), key=marker.key)
        await wait_for(lambda: again.stats.frames >= 1, 60, "the restarted sink to index the marker frame")
        assert index.count_frames() == 31  # the marker is in ...
        assert again.stats.frames == 1  # ... and it is all the restarted sink read
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await producer.stop()
        index.close()


async def test_index_sink_gathers_records_that_trickle_in_into_one_write(
    broker: EmbeddedBroker, kafka_settings: KafkaSettings, tmp_path: Path
) -> None:
    """Records sent one by one (a few cameras at 2 fps) are written as one batch of `batch_size`, not
    one write and flush per fetch; fewer than `batch_size` are written once `batch_wait_s` passed."""
    await ensure_topics(broker.bootstrap, kafka_settings)
    index = QdrantEdgeIndex(tmp_path / "qdrant", dim=16)
    producer = make_producer(broker.bootstrap, kafka_settings, embedded=True)
    await producer.start()
    frames = _frames(11)
    settings = IndexSettings(batch_size=8, batch_wait_s=30.0)
    sink = IndexSink(index, broker.bootstrap, kafka_settings, settings, group=f"idx-{uuid.uuid4().hex[:8]}")
    task = asyncio.create_task(sink.run())
    try:
        await wait_for(lambda: sink._consumer.assignment(), 60, "the sink to be assigned its partitions")
        first = await producer.send_and_wait(kafka_settings.embeddings_topic, frames[0].encode(), key=frames[0].key)
        tp = TopicPartition(first.topic, first.partition)

        async def handed_over() -> bool:  # the consumer gave the sink the first frame (it waits for more)
            return bool(await sink._consumer.position(tp) > first.offset)

        await wait_for(handed_over, 60, "the sink to receive the first frame")
        for rec in frames[1:8]:
            await producer.send_and_wait(kafka_settings.embeddings_topic, rec.encode(), key=rec.key)
        await wait_for(lambda: sink.stats.frames == 8, 60, "the 8 frames")
        assert sink.stats.batches == 1
        assert index.count_frames() == 8
        # Three more, fewer than a batch: written when their wait is over (a shorter one, for the test).
        sink.settings = settings.model_copy(update={"batch_wait_s": 0.2})
        for rec in frames[8:]:
            await producer.send_and_wait(kafka_settings.embeddings_topic, rec.encode(), key=rec.key)
        await wait_for(lambda: sink.stats.frames == 11, 60, "the last 3 frames")
        assert index.count_frames() == 11
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await producer.stop()
        index.close()


async def test_index_sink_commits_only_what_it_has_flushed(
    broker: EmbeddedBroker, kafka_settings: KafkaSettings, tmp_path: Path
) -> None:
    """Writes land in the index at once (searchable, in its write-ahead log), but the offsets are
    committed only after the index is persisted, every `flush_every_s`: a crash before that re-reads
    them (idempotent), never loses them."""
    await ensure_topics(broker.bootstrap, kafka_settings)
    index = QdrantEdgeIndex(tmp_path / "qdrant", dim=16)
    producer = make_producer(broker.bootstrap, kafka_settings, embedded=True)
    await producer.start()
    frames = _frames(6)
    group = f"idx-{uuid.uuid4().hex[:8]}"
    settings = IndexSettings(batch_size=8, batch_wait_s=0.0, flush_every_s=300.0)
    sink = IndexSink(index, broker.bootstrap, kafka_settings, settings, group=group)
    task = asyncio.create_task(sink.run())

    async def committed() -> bool:
        return await committed_to_end(
            broker.bootstrap, group, kafka_settings.embeddings_topic, kafka_settings.partitions
        )

    try:
        for rec in frames[:5]:
            await producer.send(kafka_settings.embeddings_topic, rec.encode(), key=rec.key)
        await producer.flush()
        # The first write is flushed and committed at once (nothing was flushed yet); a later one
        # waits for the next flush: its write is the marker that the sink went on past it.
        await wait_for(lambda: sink.stats.frames == 5 and sink.stats.flushes == 1, 60, "the 5 frames, flushed")
        await wait_for(committed, 60, "the 5 frames committed", interval=0.2)
        flushes = sink.stats.flushes
        await producer.send_and_wait(kafka_settings.embeddings_topic, frames[5].encode(), key=frames[5].key)
        await wait_for(lambda: sink.stats.frames == 6, 60, "the 6th frame")
        assert index.count_frames() == 6  # written and readable before its flush
        assert sink.stats.flushes == flushes and not await committed()
        sink.settings = settings.model_copy(update={"flush_every_s": 0.1})
        sink._next_flush = 0.0  # the long wait is over
        await wait_for(committed, 60, "the sink to flush and commit the 6th frame", interval=0.2)
        assert sink.stats.flushes == flushes + 1
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await producer.stop()
        index.close()


class _HeldIndex(QdrantEdgeIndex):
    """An index whose writes of frame `hold_seq` wait for `release`, and which notes a flush made
    while a write was running."""

    hold_seq = -1

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.holding = threading.Event()
        self.release = threading.Event()
        self.writing = 0
        self.flush_beside_write = 0

    def upsert_frames(self, frames: list[FrameEmbedding]) -> None:
        self.writing += 1
        try:
            if any(f.seq == self.hold_seq for f in frames):
                self.holding.set()
                self.release.wait(60)
            super().upsert_frames(frames)
        finally:
            self.writing -= 1

    def flush(self) -> None:
        self.flush_beside_write += self.writing > 0
        super().flush()


async def test_a_stopped_sink_commits_what_it_wrote(
    broker: EmbeddedBroker, kafka_settings: KafkaSettings, tmp_path: Path
) -> None:
    """Stopped between flushes, the sink persists and commits what it wrote, so a restart does not
    read it again; a write still running in its thread when the stop comes ends first (no flush
    beside it), and its records, never confirmed written, are not committed."""
    await ensure_topics(broker.bootstrap, kafka_settings)
    index = _HeldIndex(tmp_path / "qdrant", dim=16)
    index.hold_seq = 6
    producer = make_producer(broker.bootstrap, kafka_settings, embedded=True)
    await producer.start()
    frames = _frames(7)
    group = f"idx-{uuid.uuid4().hex[:8]}"
    settings = IndexSettings(batch_size=8, batch_wait_s=0.0, flush_every_s=300.0)
    sink = IndexSink(index, broker.bootstrap, kafka_settings, settings, group=group)
    task = asyncio.create_task(sink.run())
    probe = AIOKafkaConsumer(bootstrap_servers=broker.bootstrap, group_id=group, enable_auto_commit=False)
    await probe.start()
    try:
        sent = [
            await producer.send_and_wait(kafka_settings.embeddings_topic, rec.encode(), key=rec.key)
            for rec in frames[:5]
        ]
        tp = TopicPartition(sent[0].topic, sent[0].partition)
        await wait_for(lambda: sink.stats.frames == 5 and sink.stats.flushes == 1, 60, "the 5 frames, flushed")
        sixth = await producer.send_and_wait(kafka_settings.embeddings_topic, frames[5].encode(), key=frames[5].key)
        await wait_for(lambda: sink.stats.frames == 6, 60, "the 6th frame written")
        # Written, not yet committed: the next flush is 300 s away (the negative check).
        assert sink.stats.flushes == 1 and (await probe.committed(tp)) == sixth.offset
        await producer.send_and_wait(kafka_settings.embeddings_topic, frames[6].encode(), key=frames[6].key)
        assert await asyncio.to_thread(index.holding.wait, 60), "the 7th frame's write to start"
        task.cancel()
        await asyncio.sleep(0)  # the cancellation reaches the sink while the write still runs
        index.release.set()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        assert sink.stats.flushes == 2 and index.flush_beside_write == 0
        assert (await probe.committed(tp)) == sixth.offset + 1  # the 6th frame's, not the 7th's
    finally:
        index.release.set()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await probe.stop()
        await producer.stop()
        index.close()
