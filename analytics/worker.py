"""The Faust analytics app: embeddings topic in, events topic out.

The agents only move data: records are decoded and handed to the pure processors, whatever
they return is sent. Records are keyed by stream, so each stream's records arrive in order on
one partition and its state lives on one worker. That state (and per-stream settings) is saved
to a Faust table — a changelog topic — every `snapshot_every_s`, and restored the first time a
worker sees the stream, so a restarted or rebalanced worker resumes where the last one stopped.

Run-time settings arrive on the control topic, keyed by stream (so they reach the worker that
owns the stream): `{"stream": ..., "processor": "scene_change", "changes": {...}}`.

    app = build_app(bootstrap, kafka_settings, analytics_settings)
    await app.start()
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import faust

from dinostream.analytics.anomaly import AnomalyDetector
from dinostream.analytics.gallery import MemoryTrackGallery, TrackGallery
from dinostream.analytics.phases import PhaseSegmenter
from dinostream.analytics.processor import Processor
from dinostream.analytics.processor_set import ProcessorSet
from dinostream.analytics.reid import ReidProcessor
from dinostream.analytics.scene_change import SceneChangeDetector
from dinostream.analytics.state_chunks import chunk_count, join_chunks, split_chunks
from dinostream.analytics.watchlist import Watchlist, WatchlistProcessor
from dinostream.analytics.watchlist_feed import WatchlistFeed
from dinostream.core.records import Event, FrameEmbedding, RecordError, check_stream_id
from dinostream.core.settings import AnalyticsSettings, KafkaSettings

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


@dataclass
class WorkerStats:
    records: int = 0
    events: int = 0
    events_by_type: dict[str, int] = field(default_factory=dict)
    malformed: int = 0
    snapshots: int = 0
    restored: int = 0
    oversize_state: int = 0
    control: int = 0
    failure: str | None = None  # set when a processor raised; the agent is dead from then on


def control_message(stream: str, processor: str, changes: dict[str, Any]) -> bytes:
    """The control-topic message that changes `processor`'s settings for `stream`."""
    check_stream_id(stream)
    return json.dumps({"stream": stream, "processor": processor, "changes": changes}).encode()


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
    seen: set[str] = set()  # streams whose saved state was checked since this worker started
    last_save: dict[str, float] = {}
    # A state bigger than a Kafka message (an anomaly warm-up holds megabytes) is saved in chunks
    # under "<key>#<i>"; the table's value under "<key>" says how many.
    chunk_chars = int(kafka.max_message_bytes * 0.45)  # JSON-escaped in the changelog: room to spare
    max_chunks = 64

    def ensure_restored(stream: str) -> None:
        if stream in seen:
            return
        seen.add(stream)
        for name in procs.names:
            key = f"{stream}/{name}"
            saved = join_chunks(state_table.get(key), lambda i, key=key: state_table.get(f"{key}#{i}"))
            if saved:
                procs.load(stream, name, saved)
                counters.restored += 1
                log.info("restored %s state of stream %s", name, stream)

    def save(stream: str) -> None:
        for name in procs.names:
            key = f"{stream}/{name}"
            saved = procs.state(stream, name)
            head, chunks = split_chunks(saved, chunk_chars)
            if len(chunks) > max_chunks:
                counters.oversize_state += 1
                log.warning(
                    "%s state of stream %s needs %d chunks (limit %d): not saved; it is relearned after a restart",
                    name,
                    stream,
                    len(chunks),
                    max_chunks,
                )
                continue
            # Chunks first, then the head that names them, so a crash between the two leaves the
            # previous head pointing at chunks that fail its digest, never at a mix that passes.
            before = chunk_count(state_table.get(key))
            for i, chunk in enumerate(chunks):
                state_table[f"{key}#{i}"] = chunk
            state_table[key] = head
            for i in range(len(chunks), before):
                del state_table[f"{key}#{i}"]
        last_save[stream] = time.monotonic()
        counters.snapshots += 1

    async def send(events: list[Event]) -> None:
        for ev in events:
            await events_topic.send(key=ev.key, value=ev.encode())
            counters.events += 1
            counters.events_by_type[ev.type] = counters.events_by_type.get(ev.type, 0) + 1

    @app.agent(embeddings)
    async def analyse(stream: faust.StreamT[bytes]) -> None:
        async for event in stream.events():
            try:
                record = FrameEmbedding.decode(event.value)
            except RecordError as e:
                counters.malformed += 1
                log.error("skipping malformed record at %s offset %s: %s", event.message.tp, event.message.offset, e)
                continue
            counters.records += 1
            try:
                ensure_restored(record.stream)
                await send(procs.process(record))
                if time.monotonic() - last_save.get(record.stream, 0.0) >= analytics.snapshot_every_s:
                    save(record.stream)
            except Exception as exc:
                # A processor bug must not leave a silently dead agent (faust #416): record it
                # where the owner's supervisor looks (`stats.failure`) so it stops non-zero.
                # (app.crash() would stop the event loop under everything else in `up`.)
                log.exception("analytics failed on stream %s frame %d", record.stream, record.seq)
                counters.failure = f"stream {record.stream} frame {record.seq}: {type(exc).__name__}: {exc}"
                raise

    @app.agent(control)
    async def configure(stream: faust.StreamT[bytes]) -> None:
        async for value in stream:
            try:
                msg = json.loads(value)
                target = check_stream_id(msg["stream"])
                ensure_restored(target)
                applied = procs.configure(target, msg["processor"], msg["changes"])
            except (ValueError, KeyError, TypeError, RecordError) as e:
                log.error("ignoring control message %r: %s", value[:200], e)
                continue
            save(target)
            counters.control += 1
            log.info("stream %s: %s settings now %s", target, msg["processor"], applied)

    app.dinostream_stats = counters  # type: ignore[attr-defined]
    app.dinostream_processors = procs  # type: ignore[attr-defined]
    return app
