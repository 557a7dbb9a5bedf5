"""The model stage's Kafka sink: frame records to the embeddings topic, keyed by stream, and
each one's preview (fields, thumbnail, where the record is) to the previews topic.

sink = RecordProducer(settings.kafka, drop_on_error=True)
sink.producer = await start_producer(bootstrap, settings.kafka, embedded=False, stack=stack)
stage = EmbeddingStage(loaded, settings.model, settings.ingest, sink, ...)
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from prometheus_client.core import CounterMetricFamily
from prometheus_client.metrics_core import Metric

from dinostream.core.records import FrameEmbedding
from dinostream.core.settings import KafkaSettings

log = logging.getLogger(__name__)

PROBLEM_WINDOW_S = 30.0  # a Kafka delivery failure this recent is reported as a problem (health: degraded)


class RecordProducer:
    """Sends each batch of frame records to the embeddings topic and counts what happened.

    A record over `max_message_bytes` is counted and not sent. With `drop_on_error`, a batch Kafka
    does not take within the producer's request timeout (the broker is away) is counted as
    `failed` and dropped, like a live frame the model fell behind on: the stage never stops for
    an outage, and the frame queues before it stay bounded (they drop the oldest and count).
    Without it a Kafka error propagates (the model stage fails and the service stops).

    Once Kafka has taken a batch, each record's `FramePreview` (which names the partition and offset
    it was written at) goes to the previews topic, not waited for: a lost preview costs the live view
    one thumbnail, nothing else (counted as `previews_failed`).
    """

    def __init__(self, kafka: KafkaSettings, *, drop_on_error: bool = False) -> None:
        self.kafka = kafka
        self.drop_on_error = drop_on_error
        self.producer: AIOKafkaProducer | None = None
        self.produced = 0
        self.oversize = 0
        self.failed = 0
        self.previews = 0
        self.previews_failed = 0
        self.last_failure: float | None = None  # wall clock
        self.last_error: str | None = None

    async def __call__(self, batch: list[FrameEmbedding]) -> None:
        producer = self.producer
        assert producer is not None, "the stage starts after the producer"
        futures = []
        sent: list[FrameEmbedding] = []
        try:
            for rec in batch:
                data = rec.encode()
                if len(data) > self.kafka.max_message_bytes:
                    self.oversize += 1
                    log.error(
                        "stream %s frame %d: record of %d bytes exceeds max_message_bytes %d; not sent",
                        rec.stream,
                        rec.seq,
                        len(data),
                        self.kafka.max_message_bytes,
                    )
                    continue
                futures.append(await producer.send(self.kafka.embeddings_topic, data, key=rec.key))
                sent.append(rec)
            written = await asyncio.gather(*futures)
        except KafkaError as e:
            if not self.drop_on_error:
                raise
            delivered = 0
            for f in futures:
                if f.done() and not f.cancelled() and f.exception() is None:
                    delivered += 1
                else:
                    f.add_done_callback(_retrieve)  # a late outcome is not an "unretrieved exception"
            self.produced += delivered
            self.failed += len(batch) - delivered
            self.last_failure, self.last_error = time.time(), f"{type(e).__name__}: {e}"
            log.warning(
                "embeddings not delivered (%s); %d frame records dropped", self.last_error, len(batch) - delivered
            )
            return
        self.produced += len(futures)
        await self._previews(producer, sent, written)

    async def _previews(self, producer: AIOKafkaProducer, sent: list[FrameEmbedding], written: list[Any]) -> None:
        try:
            for rec, md in zip(sent, written, strict=True):
                data = rec.preview(md.partition, md.offset).encode()
                fut = await producer.send(self.kafka.previews_topic, data, key=rec.key)
                fut.add_done_callback(self._preview_done)
        except KafkaError as e:  # the producer could not even queue it (e.g. the buffer stayed full)
            self.previews_failed += 1
            log.warning("frame preview not sent: %s: %s", type(e).__name__, e)

    def _preview_done(self, f: asyncio.Future[Any]) -> None:
        if f.cancelled() or f.exception() is not None:
            self.previews_failed += 1
        else:
            self.previews += 1

    def stats(self) -> dict[str, Any]:
        return {
            "produced": self.produced,
            "oversize_dropped": self.oversize,
            "failed_dropped": self.failed,
            "previews": self.previews,
            "previews_failed": self.previews_failed,
            "last_error": self.last_error,
        }

    def problems(self) -> list[str]:
        if self.last_failure is not None and time.time() - self.last_failure < PROBLEM_WINDOW_S:
            return [f"Kafka did not take frame records in the last {PROBLEM_WINDOW_S:g} s: {self.last_error}"]
        return []

    def metric_families(self) -> list[Metric]:
        """Records Kafka acknowledged, and those not sent by reason, for /metrics."""
        out = CounterMetricFamily("dinostream_records_produced", "Frame records Kafka acknowledged.")
        out.add_metric([], self.produced)
        dropped = CounterMetricFamily(
            "dinostream_records_dropped", "Frame records not sent, by reason.", labels=["reason"]
        )
        dropped.add_metric(["oversize"], self.oversize)
        dropped.add_metric(["kafka"], self.failed)
        return [out, dropped]


def _retrieve(f: asyncio.Future[Any]) -> None:
    if not f.cancelled():
        f.exception()
