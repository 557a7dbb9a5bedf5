"""The Faust analytics app: embeddings topic in, events topic out.

The agents only move bytes: each message goes to the worker's `ProcessorHost`
(`dinostream.analytics.processor_set`), which runs the pure processors, and what it returns is
sent (events) or written to a Faust table (processor state; a changelog topic). A processor that
raises on one stream's record is quarantined for that stream (an "error" event); the agent and
every other stream go on. Records are keyed
by stream, so each stream's records arrive in order on one partition and its state lives on one
worker; the host saves it every `snapshot_every_s` and reads it back the first time it sees the
stream, so a restarted or rebalanced worker resumes where the last one stopped.

Run-time settings arrive on the control topic, keyed by stream (so they reach the worker that
owns the stream): `{"stream": ..., "processor": "scene_change", "changes": {...}}`.

    app = build_app(bootstrap, kafka_settings, analytics_settings)
    await app.start()
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

import faust

from dinostream.analytics.anomaly import AnomalyDetector
from dinostream.analytics.gallery import MemoryTrackGallery, TrackGallery
from dinostream.analytics.phases import PhaseSegmenter
from dinostream.analytics.processor import Processor
from dinostream.analytics.processor_set import (
    HostOutput,
    ProcessorHost,
    ProcessorSet,
    StateWrite,
    WorkerStats,
    control_message,
)
from dinostream.analytics.reid import ReidProcessor
from dinostream.analytics.scene_change import SceneChangeDetector
from dinostream.analytics.watchlist import Watchlist, WatchlistProcessor
from dinostream.analytics.watchlist_feed import WatchlistFeed
from dinostream.core.settings import AnalyticsSettings, KafkaSettings

__all__ = ["WorkerStats", "build_app", "control_message", "default_processors"]

log = logging.getLogger(__name__)


def default_processors(
    settings: AnalyticsSettings, *, gallery: TrackGallery | None = None, watchlist: Watchlist | None = None
) -> list[Processor[Any]]:
    """The processors every deployment runs, in the order they see each record.

    `gallery` is where re-identification meets the tracks of other streams: shared by every
    worker (see `dinostream.analytics.gallery.open_gallery`); an in-process one by default. `watchlist` is
    the list of exemplars the watchlist processor looks for (kept current by a WatchlistFeed).
    The watchlist reads the regions and tracks re-identification computes (one pass per frame,
    saved with re-identification's state, following the stream's reid settings).
    """
    reid = ReidProcessor(settings.reid, gallery if gallery is not None else MemoryTrackGallery())
    return [
        SceneChangeDetector(settings.scene_change),
        AnomalyDetector(settings.anomaly),
        PhaseSegmenter(settings.phase),
        reid,
        WatchlistProcessor(settings.reid, watchlist if watchlist is not None else Watchlist(), objects=reid.objects),
    ]


def build_app(
    bootstrap: str,
    kafka: KafkaSettings,
    analytics: AnalyticsSettings,
    *,
    processors: Callable[[AnalyticsSettings], list[Processor[Any]]] | None = None,
    gallery: TrackGallery | None = None,
    stats: WorkerStats | None = None,
) -> faust.App:
    """A Faust app whose agents run `processors` (default: `default_processors` with `gallery`
    and the watchlist topic's exemplars) over the embeddings topic.

    With the default processors the app also follows the watchlist topic (every worker reads all
    of it), before its agents start."""
    app = faust.App(
        analytics.app_id,
        broker=f"kafka://{bootstrap.replace(',', ';kafka://')}",
        store="memory://",
        autodiscover=False,
        web_enabled=False,
        topic_partitions=kafka.partitions,
        topic_replication_factor=1,
        consumer_auto_offset_reset="earliest",
        producer_max_request_size=kafka.max_message_bytes,
        broker_request_timeout=max(90.0, kafka.connect_timeout_s * 3),
        broker_session_timeout=kafka.session_timeout_s,
        broker_heartbeat_interval=kafka.session_timeout_s / 5,
    )
    raw = {"key_type": bytes, "value_type": bytes, "value_serializer": "raw", "key_serializer": "raw"}
    embeddings = app.topic(kafka.embeddings_topic, **raw)
    events_topic = app.topic(kafka.events_topic, **raw)
    control = app.topic(kafka.control_topic, **raw)
    # Key: "stream/processor" so one big processor state never shares a message with another.
    state_table = app.Table("processor-state", default=dict, partitions=kafka.partitions)  # JSON values
    counters = stats if stats is not None else WorkerStats()
    watchlist = Watchlist()
    if processors is None:
        procs = ProcessorSet(default_processors(analytics, gallery=gallery, watchlist=watchlist))
        feed = WatchlistFeed(watchlist, bootstrap, kafka)

        @app.task(on_leader=False)
        async def follow_watchlist() -> None:
            try:
                await feed.start()
                await feed.run()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # not silent: the owner's supervisor watches stats.failure
                log.exception("the watchlist feed failed")
                counters.failure = f"watchlist feed: {type(exc).__name__}: {exc}"

    else:
        procs = ProcessorSet(processors(analytics))
    # A state bigger than a Kafka message is saved in chunks, JSON-escaped in the changelog: room to spare.
    host = ProcessorHost(
        procs,
        state_table.get,
        snapshot_every_s=analytics.snapshot_every_s,
        chunk_chars=int(kafka.max_message_bytes * 0.45),
        stats=counters,
    )

    def write(writes: list[StateWrite]) -> None:
        for w in writes:
            if w.value is None:
                del state_table[w.key]
            else:
                state_table[w.key] = w.value

    async def deliver(out: HostOutput) -> None:
        for ev in out.events:
            await events_topic.send(key=ev.key, value=ev.encode())
            host.sent(ev)
        write(out.writes)

    @app.agent(embeddings)
    async def analyse(stream: faust.StreamT[bytes]) -> None:
        async for event in stream.events():
            where = f"at {event.message.tp} offset {event.message.offset}"
            # A processor that raises is quarantined for that stream only (an "error" event in out).
            await deliver(host.receive_record(event.value, time.monotonic(), where=where))

    @app.agent(control)
    async def configure(stream: faust.StreamT[bytes]) -> None:
        async for value in stream:
            await deliver(host.receive_control(value, time.monotonic()))

    app.dinostream_stats = counters  # type: ignore[attr-defined]
    app.dinostream_processors = procs  # type: ignore[attr-defined]
    return app
