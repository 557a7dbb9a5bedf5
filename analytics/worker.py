"""The Faust analytics app: embeddings topic in, events topic out.

The agent only moves data: it decodes each record, hands it to the pure processors and sends
what they return. Records are keyed by stream, so each stream's records arrive in order on one
partition and its state lives on one worker.

    app = build_app(bootstrap, kafka_settings, analytics_settings)
    await app.start()        # in-process (dinostream up), or `faust -A ... worker` style
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import faust

from analytics.processor import Processor
from analytics.scene_change import SceneChangeDetector
from dinostream.records import FrameEmbedding, RecordError
from dinostream.settings import AnalyticsSettings, KafkaSettings

log = logging.getLogger(__name__)


def default_processors(settings: AnalyticsSettings) -> list[Processor]:
    """The processors every deployment runs, in the order they see each record."""
    return [SceneChangeDetector(settings.scene_change)]


@dataclass
class WorkerStats:
    records: int = 0
    events: int = 0
    malformed: int = 0
    failure: str | None = None  # set when a processor raised; the agent is dead from then on


def build_app(
    bootstrap: str,
    kafka: KafkaSettings,
    analytics: AnalyticsSettings,
    *,
    processors: Callable[[AnalyticsSettings], list[Processor]] = default_processors,
    stats: WorkerStats | None = None,
) -> faust.App:
    """A Faust app whose agent runs `processors` over the embeddings topic."""
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
    embeddings = app.topic(
        kafka.embeddings_topic, key_type=bytes, value_type=bytes, value_serializer="raw", key_serializer="raw"
    )
    events_topic = app.topic(
        kafka.events_topic, key_type=bytes, value_type=bytes, value_serializer="raw", key_serializer="raw"
    )
    procs = processors(analytics)
    counters = stats if stats is not None else WorkerStats()

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
                for proc in procs:
                    for ev in proc.process(record):
                        await events_topic.send(key=ev.key, value=ev.encode())
                        counters.events += 1
            except Exception as exc:
                # A processor bug must not leave a silently dead agent (faust #416): record it
                # where the owner's supervisor looks (`stats.failure`) so it stops non-zero.
                # (app.crash() would stop the event loop under everything else in `up`.)
                log.exception("analytics failed on stream %s frame %d", record.stream, record.seq)
                counters.failure = f"stream {record.stream} frame {record.seq}: {type(exc).__name__}: {exc}"
                raise

    app.dinostream_stats = counters  # type: ignore[attr-defined]
    return app
