"""The gateway's live view on the real broker: it follows the small previews topic, never the
embeddings topic, and a click on a live frame reads that frame's whole record back by offset."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
from aiokafka import AIOKafkaConsumer

from dinostream.core.embedded_broker import EmbeddedBroker
from dinostream.core.errors import BrokerError
from dinostream.core.kafka_io import ensure_topics, start_producer
from dinostream.core.record_producer import RecordProducer
from dinostream.core.records import FrameEmbedding, FramePreview
from dinostream.core.settings import KafkaSettings
from dinostream.dashboard.live_feed import LiveFeed
from dinostream.dashboard.live_hub import LiveHub
from dinostream.dashboard.recent_frames import KafkaRecordReader, RecentFrames
from tests.pictures import jpeg
from tests.waiting import wait_for

pytestmark = pytest.mark.integration


def _vits16_frames(stream: str, n: int, seed: int) -> list[FrameEmbedding]:
    """Records of ViT-S/16's shape at 224: 384-d vectors and a 14 x 14 x 384 grid, with a thumbnail."""
    rng = np.random.default_rng(seed)
    thumb = jpeg(np.full((72, 128, 3), 60 + seed, np.uint8))
    return [
        FrameEmbedding(
            stream,
            i,
            i / 2,
            1e9 + i,
            "t",
            True,
            rng.normal(size=384),
            rng.normal(size=384),
            rng.normal(size=(14, 14, 384)),
            thumb,
        )  # fmt: skip
        for i in range(n)
    ]


async def test_previews_name_their_record_and_the_gateway_reads_only_them(
    broker: EmbeddedBroker, kafka_settings: KafkaSettings
) -> None:
    kafka = kafka_settings
    await ensure_topics(broker.bootstrap, kafka)
    hub = LiveHub(queue_size=64, recent=0)
    reader = KafkaRecordReader(broker.bootstrap, kafka.embeddings_topic, max_fetch_bytes=2_000_000)
    recent = RecentFrames(per_stream=4, read=reader.read)
    feed = LiveFeed(hub, broker.bootstrap, kafka, on_preview=recent.note)
    await feed.start()
    feed_task = asyncio.create_task(feed.run())
    sink = RecordProducer(kafka)
    sink.producer = await start_producer(broker.bootstrap, kafka, embedded=True)
    try:
        assert feed._consumer.subscription() == {kafka.previews_topic, kafka.events_topic}
        frames = {s: _vits16_frames(s, 6, k) for k, s in enumerate(("cam-a", "cam-b"))}
        await sink([f for pair in zip(*frames.values(), strict=True) for f in pair])
        await wait_for(lambda: sink.previews == 12, 30, "the 12 previews to be acknowledged")
        await wait_for(
            lambda: all(hub.streams().get(s, {}).get("seq") == 5 for s in frames), 30, "the hub to see frame 5"
        )
        assert sink.stats()["previews_failed"] == 0
        for s, recs in frames.items():
            assert hub.latest_thumbnail(s) == recs[-1].thumbnail
            assert recent.seqs(s) == [2, 3, 4, 5]  # bounded per stream

        # Each preview names the partition and offset its whole record was written at.
        consumer = AIOKafkaConsumer(
            kafka.previews_topic, bootstrap_servers=broker.bootstrap, group_id=None, auto_offset_reset="earliest"
        )
        await consumer.start()
        previews: list[FramePreview] = []
        try:
            while len(previews) < 12:
                for msgs in (await consumer.getmany(timeout_ms=500)).values():
                    previews += [FramePreview.decode(m.value) for m in msgs]
        finally:
            await consumer.stop()
        for p in previews:
            rec = frames[p.stream][p.seq]
            whole = rec.encode()
            assert await reader.read(*p.at) == whole
            assert len(p.encode()) < len(whole) / 20, (len(p.encode()), len(whole))  # ~155 KB vs a few KB

        # A click reads the frame back, the same record; an evicted frame is not found.
        rec = await recent.get("cam-b", 4)
        assert rec is not None and rec.encode() == frames["cam-b"][4].encode()
        assert recent.read_back == 1 and await recent.get("cam-b", 4) is rec  # cached: no second read
        assert await recent.get("cam-b", 1) is None

        # A place the topic does not hold is None, and a broker that does not answer is a BrokerError.
        p = previews[0]
        assert await reader.read(p.partition, 10_000) is None
        assert await reader.read(kafka.partitions + 5, 0) is None
        dead = KafkaRecordReader("127.0.0.1:9", kafka.embeddings_topic, timeout_s=2)
        with pytest.raises(BrokerError, match=kafka.embeddings_topic):
            await dead.read(*p.at)
    finally:
        feed_task.cancel()
        await asyncio.gather(feed_task, return_exceptions=True)
        await sink.producer.stop()
