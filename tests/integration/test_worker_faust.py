"""The Faust analytics app against the real embedded broker: embeddings in, scene changes out."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from dinostream.analytics.scene_change import SceneChangeDetector
from dinostream.analytics.worker import WorkerStats, build_app, control_message
from dinostream.core.embedded_broker import EmbeddedBroker
from dinostream.core.kafka_io import ensure_topics, make_producer
from dinostream.core.records import Event, FrameEmbedding
from dinostream.core.settings import AnalyticsSettings, KafkaSettings
from tests.records import shots
from tests.waiting import wait_for

pytestmark = pytest.mark.integration


def _scene_changes(batch: dict) -> list[Event]:  # type: ignore[type-arg]
    """The scene-change events of a getmany() batch (the default line-up runs every processor)."""
    events = [Event.decode(m.value) for msgs in batch.values() for m in msgs]
    return [e for e in events if e.type == "scene_change"]


@contextlib.asynccontextmanager
async def _clients(
    broker: EmbeddedBroker, kafka_settings: KafkaSettings
) -> AsyncIterator[tuple[AIOKafkaProducer, AIOKafkaConsumer]]:
    """A started producer of records and a consumer of the events topic from its start (a group of
    its own); both stopped on the way out."""
    producer = make_producer(broker.bootstrap, kafka_settings, embedded=True)
    consumer = AIOKafkaConsumer(
        kafka_settings.events_topic,
        bootstrap_servers=broker.bootstrap,
        group_id=f"g-{uuid.uuid4().hex[:8]}",
        auto_offset_reset="earliest",
    )
    await producer.start()
    await consumer.start()
    try:
        yield producer, consumer
    finally:
        await consumer.stop()
        await producer.stop()


async def _first_scene_changes(consumer: AIOKafkaConsumer) -> list[Event]:
    """The scene changes of the first batch of events that holds any (60 s at most)."""
    events: list[Event] = []
    async with asyncio.timeout(60):
        while not events:
            events += _scene_changes(await consumer.getmany(timeout_ms=500))
    return events


async def test_faust_worker_emits_scene_changes(
    broker: EmbeddedBroker, kafka_settings: KafkaSettings, tmp_path: Path
) -> None:
    await ensure_topics(broker.bootstrap, kafka_settings)
    stats = WorkerStats()
    app = build_app(
        broker.bootstrap,
        kafka_settings,
        AnalyticsSettings(app_id=f"test-{uuid.uuid4().hex[:8]}"),
        stats=stats,
        datadir=tmp_path,
    )
    await app.start()
    try:
        async with _clients(broker, kafka_settings) as (producer, consumer):
            cams = {"cam-a": shots("cam-a", [6, 6, 6], 1), "cam-b": shots("cam-b", [10, 8], 2)}
            for recs in cams.values():
                for r in recs:
                    await producer.send_and_wait(kafka_settings.embeddings_topic, r.encode(), key=r.key)
            # A malformed record is skipped and counted, not fatal.
            await producer.send_and_wait(kafka_settings.embeddings_topic, b"garbage", key=b"cam-a")
            events: list[Event] = []
            async with asyncio.timeout(60):
                while len(events) < 3:
                    batch = await consumer.getmany(timeout_ms=500)
                    events += _scene_changes(batch)
                # cam-b's records are on their own partition: they may still be in flight after the
                # garbage (on cam-a's) was counted.
                while stats.malformed < 1 or stats.records < 6 * 3 + 18:
                    await asyncio.sleep(0.1)
            got = sorted((e.stream, e.t) for e in events)
            assert got == [("cam-a", 2.75), ("cam-a", 5.75), ("cam-b", 4.75)]
            assert stats.records == 6 * 3 + 18
    finally:
        await app.stop()


class _BrokenOnOneStream(SceneChangeDetector):
    def process(self, record: FrameEmbedding) -> list[Event]:
        if record.stream == "cam-x":
            raise RuntimeError("processor bug")
        return super().process(record)


async def test_a_processor_raising_on_one_stream_quarantines_it_and_the_other_goes_on(
    broker: EmbeddedBroker, kafka_settings: KafkaSettings, tmp_path: Path
) -> None:
    await ensure_topics(broker.bootstrap, kafka_settings)
    stats = WorkerStats()
    app = build_app(
        broker.bootstrap,
        kafka_settings,
        AnalyticsSettings(app_id=f"test-{uuid.uuid4().hex[:8]}"),
        processors=lambda s: [_BrokenOnOneStream(s.scene_change)],
        stats=stats,
        datadir=tmp_path,
    )
    await app.start()
    try:
        async with _clients(broker, kafka_settings) as (producer, consumer):
            bad, good = shots("cam-x", [6, 6], 3), shots("cam-y", [6, 6, 6], 1)
            for r in bad[:1] + good + bad[1:]:
                await producer.send_and_wait(kafka_settings.embeddings_topic, r.encode(), key=r.key)
            events: list[Event] = []
            async with asyncio.timeout(60):
                while len([e for e in events if e.type == "scene_change"]) < 2 or stats.records < len(bad) + len(good):
                    batch = await consumer.getmany(timeout_ms=500)
                    events += [Event.decode(m.value) for msgs in batch.values() for m in msgs]
            errors = [e for e in events if e.type == "error"]
            assert [(e.stream, e.details["processor"]) for e in errors] == [("cam-x", "scene_change")]
            assert sorted((e.stream, e.t) for e in events if e.type == "scene_change") == [
                ("cam-y", 2.75),
                ("cam-y", 5.75),
            ]
            assert stats.failure is None and not app.crashed
            assert stats.quarantined == {"cam-x/scene_change": "frame 0: RuntimeError: processor bug"}
    finally:
        await app.stop()


async def test_restarted_worker_resumes_state_and_applies_control(
    broker: EmbeddedBroker, kafka_settings: KafkaSettings, tmp_path: Path
) -> None:
    """Shot 1 goes to one worker, which is stopped; shot 2 goes to its replacement. The cut between
    them is only found if the replacement restored the first worker's state from the table."""
    await ensure_topics(broker.bootstrap, kafka_settings)
    settings = AnalyticsSettings(app_id=f"test-{uuid.uuid4().hex[:8]}", snapshot_every_s=1e-6)
    recs = shots("cam-r", [6, 6, 6, 6], 5)  # the 4th shot is the marker at the end
    async with _clients(broker, kafka_settings) as (producer, consumer):
        first_stats = WorkerStats()
        first = build_app(broker.bootstrap, kafka_settings, settings, stats=first_stats, datadir=tmp_path)
        await first.start()
        try:
            for r in recs[:6]:
                await producer.send_and_wait(kafka_settings.embeddings_topic, r.encode(), key=r.key)
            async with asyncio.timeout(60):
                while first_stats.snapshots < 6:  # one per record at this snapshot interval
                    await asyncio.sleep(0.1)
        finally:
            await first.stop()

        stats = WorkerStats()
        second = build_app(broker.bootstrap, kafka_settings, settings, stats=stats, datadir=tmp_path)
        await second.start()
        try:
            for r in recs[6:12]:
                await producer.send_and_wait(kafka_settings.embeddings_topic, r.encode(), key=r.key)
            events = await _first_scene_changes(consumer)
            # Said on failure (a rare flake under CI load, cause not yet known): whether the replacement
            # was given the first worker's last record again and took it for a replay (its state lost,
            # its position kept), or never saw it (committed, its state lost or not read back).
            seen = (
                f"first worker: records {first_stats.records}, snapshots {first_stats.snapshots}; "
                f"replacement: records {stats.records}, replayed {stats.replayed}, restored {stats.restored}"
            )
            assert [(e.stream, e.t) for e in events] == [("cam-r", 2.75)], seen
            assert stats.restored >= 1

            # Run-time settings: after this, nothing in cam-r is a cut any more.
            await producer.send_and_wait(
                kafka_settings.control_topic,
                control_message("cam-r", "scene_change", {"min_distance": 1.99}),
                key=b"cam-r",
            )
            await producer.send_and_wait(
                kafka_settings.control_topic, control_message("cam-r", "nope", {}), key=b"cam-r"
            )
            async with asyncio.timeout(60):
                while stats.control < 1:
                    await asyncio.sleep(0.1)
            for r in recs[12:18]:
                await producer.send_and_wait(kafka_settings.embeddings_topic, r.encode(), key=r.key)
            async with asyncio.timeout(60):
                while stats.records < 12:
                    await asyncio.sleep(0.1)
            # The marker: the default back, then a 4th shot whose cut (9 s) must arrive. A cut of the
            # 3rd shot (6 s) would be on the same partition before it, so the first cut read is the test.
            default = AnalyticsSettings().scene_change.min_distance
            await producer.send_and_wait(
                kafka_settings.control_topic,
                control_message("cam-r", "scene_change", {"min_distance": default}),
                key=b"cam-r",
            )
            await wait_for(lambda: stats.control >= 2, 60, "the default settings to apply again")
            for r in recs[18:]:
                await producer.send_and_wait(kafka_settings.embeddings_topic, r.encode(), key=r.key)
            later = await _first_scene_changes(consumer)
            assert [(e.stream, e.t) for e in later] == [("cam-r", 8.75)], "the control message must have applied"
            # Control messages of one stream apply in order: the refused one came before the marker.
            assert stats.control == 2, "the message for an unknown processor is refused"
        finally:
            await second.stop()


async def test_state_written_just_before_a_stop_is_not_lost(
    broker: EmbeddedBroker, kafka_settings: KafkaSettings, tmp_path: Path
) -> None:
    """A worker stopped while its state writes still wait in Faust's producer buffer (a broker slow
    to take them) must not count their records as done: either the writes reach the changelog or
    the replacement handles those records again. The cut between the shots is then timed half way
    between the last frame of shot 1 (2.5 s) and the first of shot 2 (3.0 s). Before the worker
    waited for its writes (now: for their delivery), the replacement restored an older state (here frame
    0's: a cut at 1.5 s) while the records after it were committed; under CI load the same loss
    of the last write alone timed `test_restarted_worker...`'s cut at 2.5 s now and then."""
    await ensure_topics(broker.bootstrap, kafka_settings)
    settings = AnalyticsSettings(app_id=f"test-{uuid.uuid4().hex[:8]}", snapshot_every_s=1e-6)
    recs = shots("cam-s", [6, 6], 7)
    async with _clients(broker, kafka_settings) as (producer, consumer):
        first_stats = WorkerStats()
        first = build_app(broker.bootstrap, kafka_settings, settings, stats=first_stats, datadir=tmp_path)
        buffer = first.producer.buffer
        send = buffer._send_pending
        held: list[object] = []

        async def slow_send(fut: object) -> None:  # the broker takes the last record's writes slowly
            if first_stats.snapshots >= 6:
                held.append(fut)
                await asyncio.sleep(0.3)  # > the 0.1 s Faust's flush waits for progress
            await send(fut)

        buffer._send_pending = slow_send  # type: ignore[method-assign]
        await first.start()
        try:
            for r in recs[:6]:
                await producer.send_and_wait(kafka_settings.embeddings_topic, r.encode(), key=r.key)
            await wait_for(lambda: first_stats.snapshots >= 6 and held, 60, "the last record's state writes to queue")
        finally:
            await first.stop()

        second = build_app(broker.bootstrap, kafka_settings, settings, stats=WorkerStats(), datadir=tmp_path)
        await second.start()
        try:
            for r in recs[6:]:
                await producer.send_and_wait(kafka_settings.embeddings_topic, r.encode(), key=r.key)
            events = await _first_scene_changes(consumer)
            assert [(e.stream, e.t) for e in events] == [("cam-s", 2.75)]
        finally:
            await second.stop()
