"""Frame records for one partition share produce batches up to the broker's message limit."""

from __future__ import annotations

import asyncio
import os
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer

from dinostream.core.embedded_broker import EmbeddedBroker
from dinostream.core.kafka_io import ensure_topics, start_producer
from dinostream.core.settings import KafkaSettings
from dinostream.dashboard.recent_frames import KafkaRecordReader

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("frames", [True, False])
async def test_a_burst_of_large_records_goes_in_few_requests_and_arrives_whole(
    broker: EmbeddedBroker, kafka_settings: KafkaSettings, frames: bool
) -> None:
    """Twelve ~150 KB records (a ViT-S/16 frame record's size) sent at once to one partition. The
    frame records' producer (`batch_bytes` = max_message_bytes) fills batches of up to 1 MB: at
    least 2, at most 6 requests for 1.8 MB; any other producer keeps aiokafka's 16 KB batches (a
    request per record: see make_producer for why). Every record arrives, in order, byte for byte;
    the gateway reads each back by its offset, also those the embedded broker's end offset leaves
    out (it reports a batch's first offset + 1)."""
    kafka = kafka_settings
    await ensure_topics(broker.bootstrap, kafka)
    batch = kafka.max_message_bytes if frames else None
    producer = await start_producer(broker.bootstrap, kafka, embedded=True, batch_bytes=batch)
    requests: list[str] = []
    send = producer.client.send

    async def counting_send(node_id: Any, request: Any, **kw: Any) -> Any:
        requests.append(type(request).__name__)
        return await send(node_id, request, **kw)

    producer.client.send = counting_send  # type: ignore[method-assign]
    values = [os.urandom(150_000) for _ in range(12)]
    try:
        futures = [await producer.send(kafka.embeddings_topic, v, key=b"cam-1", partition=0) for v in values]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()
    produced = [r for r in requests if r.startswith("ProduceRequest")]
    if frames:
        assert 2 <= len(produced) <= 6, produced
    else:
        assert len(produced) == len(values), produced

    consumer = AIOKafkaConsumer(
        kafka.embeddings_topic,
        bootstrap_servers=broker.bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        max_partition_fetch_bytes=2 * kafka.max_message_bytes,
    )
    await consumer.start()
    got: list[bytes] = []
    try:
        async with asyncio.timeout(30):
            while len(got) < len(values):
                for records in (await consumer.getmany(timeout_ms=1000)).values():
                    got += [r.value for r in records if r.value is not None]
    finally:
        await consumer.stop()
    assert got == values

    reader = KafkaRecordReader(broker.bootstrap, kafka.embeddings_topic, max_fetch_bytes=2 * kafka.max_message_bytes)
    assert [await reader.read(0, i) for i in range(len(values))] == values
    assert await reader.read(0, len(values)) is None  # not written yet
