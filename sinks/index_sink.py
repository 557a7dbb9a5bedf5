"""Kafka → vector index: frame embeddings and events, batched, offsets committed after writing.

At-least-once: a crash between the write and the commit re-delivers the batch, and the
deterministic point ids turn the second write into an overwrite.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer

from dinostream.records import Event, FrameEmbedding, RecordError
from dinostream.settings import IndexSettings, KafkaSettings
from sinks.vector_index import VectorIndex

log = logging.getLogger(__name__)


@dataclass
class IndexSinkStats:
    frames: int = 0
    events: int = 0
    malformed: int = 0
    batches: int = 0


class IndexSink:
    """Consumes both topics in the consumer group `group` and upserts into `index`."""

    def __init__(
        self,
        index: VectorIndex,
        bootstrap: str,
        kafka: KafkaSettings,
        settings: IndexSettings,
        *,
        group: str = "dinostream-index",
    ) -> None:
        self.index = index
        self.kafka = kafka
        self.settings = settings
        self.stats = IndexSinkStats()
        self._consumer = AIOKafkaConsumer(
            kafka.embeddings_topic,
            kafka.events_topic,
            bootstrap_servers=bootstrap,
            group_id=group,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_partition_fetch_bytes=max(kafka.max_message_bytes * 2, 1_048_576),
            fetch_max_bytes=max(kafka.max_message_bytes * 8, 52_428_800),
            client_id="dinostream-index",
            session_timeout_ms=int(kafka.session_timeout_s * 1000),
            heartbeat_interval_ms=int(kafka.session_timeout_s * 200),
        )

    async def run(self) -> None:
        """Consume until cancelled. Write errors propagate (the owner stops the service)."""
        await self._consumer.start()
        try:
            while True:
                batches = await self._consumer.getmany(timeout_ms=500, max_records=self.settings.batch_size)
                if not batches:
                    continue
                frames: list[FrameEmbedding] = []
                events: list[Event] = []
                for tp, messages in batches.items():
                    for msg in messages:
                        try:
                            if tp.topic == self.kafka.embeddings_topic:
                                frames.append(FrameEmbedding.decode(msg.value))
                            else:
                                events.append(Event.decode(msg.value))
                        except RecordError as e:
                            self.stats.malformed += 1
                            log.error("index: skipping malformed record at %s offset %s: %s", tp, msg.offset, e)
                if frames:
                    await asyncio.to_thread(self.index.upsert_frames, frames)
                if events:
                    await asyncio.to_thread(self.index.upsert_events, events)
                await self._consumer.commit()
                self.stats.frames += len(frames)
                self.stats.events += len(events)
                self.stats.batches += 1
        finally:
            await self._consumer.stop()
