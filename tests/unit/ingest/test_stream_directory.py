"""The gateway's stream directory against the real embedded broker: streams added through it are
on the streams topic for every other gateway (and ingest node) to read; the health an owner
publishes shows in its listing; the HTTP API works on top of it as on a local manager."""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from dinostream.core.embedded_broker import EmbeddedBroker
from dinostream.core.kafka_io import ensure_topics, make_producer
from dinostream.core.settings import IngestSettings, KafkaSettings, StreamUpdate
from dinostream.dashboard.http_common import ApiError, _http_error
from dinostream.dashboard.streams_api import streams_router
from dinostream.ingest.stream_directory import StreamDirectory
from dinostream.ingest.stream_ownership import decode_config
from dinostream.ingest.stream_registry import DuplicateStreamError, StreamConfig, UnknownStreamError
from dinostream.ingest.url_policy import UrlRefused
from tests.waiting import wait_for

pytestmark = pytest.mark.integration  # the real embedded broker


@pytest.fixture
def kafka() -> KafkaSettings:
    tag = uuid.uuid4().hex[:8]
    return KafkaSettings(streams_topic=f"streams-{tag}", stream_health_topic=f"health-{tag}", partitions=2)


@pytest.fixture
def media(tmp_path: Path) -> Path:
    (tmp_path / "a.mp4").write_bytes(b"not read: only the policy looks at the path")
    (tmp_path / "b.mp4").write_bytes(b"x")
    return tmp_path


@contextlib.asynccontextmanager
async def directory(broker: EmbeddedBroker, kafka: KafkaSettings, media: Path) -> AsyncIterator[StreamDirectory]:
    await ensure_topics(broker.bootstrap, kafka)
    producer = make_producer(broker.bootstrap, kafka, embedded=True)
    await producer.start()
    d = StreamDirectory(broker.bootstrap, kafka, IngestSettings(media_roots=[media]), producer)
    try:
        await d.start()
        yield d
    finally:
        await d.stop()
        await producer.stop()


async def test_added_streams_are_on_the_topic_for_every_gateway(
    broker: EmbeddedBroker, kafka: KafkaSettings, media: Path
) -> None:
    async with directory(broker, kafka, media) as first:
        status = await first.add(StreamConfig(url=str(media / "a.mp4"), sample_fps=4))
        assert status.config.id == "a" and status.health["state"] == "unassigned"
        await first.add(StreamConfig(url=str(media / "b.mp4")))
        with pytest.raises(DuplicateStreamError, match="'a' already exists"):
            await first.add(StreamConfig(url=str(media / "a.mp4")))
        removed = await first.remove("b")
        assert removed.id == "b"
        with pytest.raises(UnknownStreamError):
            await first.remove("b")
        async with directory(broker, kafka, media) as second:  # started later: reads the topic whole
            assert [s.config.id for s in second.list()] == ["a"]
            assert second.get("a") is not None and second.get("a").config.sample_fps == 4  # type: ignore[union-attr]
            with pytest.raises(DuplicateStreamError):
                await second.add(StreamConfig(url=str(media / "a.mp4")))


async def test_a_refused_url_is_never_published(broker: EmbeddedBroker, kafka: KafkaSettings, media: Path) -> None:
    async with directory(broker, kafka, media) as d:
        with pytest.raises(UrlRefused):
            await d.add(StreamConfig(url="/etc/passwd", id="evil"))
        with pytest.raises(UrlRefused):
            await d.add(StreamConfig(url="rtsp://169.254.169.254/latest", id="meta"))
        await d.add(StreamConfig(url=str(media / "a.mp4")))  # a marker after them
    async with directory(broker, kafka, media) as later:
        assert [s.config.id for s in later.list()] == ["a"]
    # And on the topic itself: only the accepted stream.
    from aiokafka import AIOKafkaConsumer, TopicPartition

    consumer = AIOKafkaConsumer(bootstrap_servers=broker.bootstrap, auto_offset_reset="earliest")
    await consumer.start()
    keys: list[str] = []
    try:
        consumer.assign([TopicPartition(kafka.streams_topic, p) for p in range(kafka.partitions)])
        ends = await consumer.end_offsets(list(consumer.assignment()))

        async def read_to_end() -> bool:
            batch = await consumer.getmany(timeout_ms=500)
            keys.extend(decode_config(m.key, m.value)[0] for msgs in batch.values() for m in msgs)
            for tp, end in ends.items():
                if await consumer.position(tp) < end:
                    return False
            return True

        await wait_for(read_to_end, 30, "the whole streams topic")
    finally:
        await consumer.stop()
    assert keys == ["a"]


async def test_the_owners_health_shows_until_it_stops_owning(
    broker: EmbeddedBroker, kafka: KafkaSettings, media: Path
) -> None:
    async with directory(broker, kafka, media) as d:
        await d.add(StreamConfig(url=str(media / "a.mp4")))
        health = {"stream": "a", "state": "live", "frames_out": 7, "failed": False, "node": "gpu-1:42"}
        await d.producer.send_and_wait(kafka.stream_health_topic, json.dumps(health).encode(), key=b"a")
        await d.catch_up()
        shown = d.get("a").health  # type: ignore[union-attr]
        assert shown["state"] == "live" and shown["node"] == "gpu-1:42" and shown["frames_out"] == 7
        assert shown["stale"] is True  # no "published" time: never taken as current
        assert d.owners() == {"a": "gpu-1:42"}
        await d.producer.send_and_wait(kafka.stream_health_topic, None, key=b"a")  # the owner let go
        await d.catch_up()
        assert d.healths()["a"]["state"] == "unassigned"


async def test_the_streams_api_runs_on_the_directory(broker: EmbeddedBroker, kafka: KafkaSettings, media: Path) -> None:
    async with directory(broker, kafka, media) as d:
        app = FastAPI()
        app.add_exception_handler(ApiError, _http_error)
        app.include_router(streams_router(d))
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gw") as http:
            r = await http.post("/api/v1/streams", json={"url": str(media / "a.mp4"), "id": "cam"})
            assert r.status_code == 201, r.text
            assert r.json()["health"]["state"] == "unassigned"
            r = await http.post("/api/v1/streams", json={"url": str(media / "a.mp4"), "id": "cam"})
            assert r.status_code == 409 and r.json()["error"]["code"] == "duplicate_stream"
            r = await http.post("/api/v1/streams", json={"url": "/etc/passwd", "id": "x"})
            assert r.status_code == 422 and r.json()["error"]["code"] == "url_refused"
            assert list((await http.get("/api/v1/streams")).json()["streams"]) == ["cam"]
            assert (await http.delete("/api/v1/streams/cam")).json()["removed"] is True
            r = await http.get("/api/v1/streams/cam")
            assert r.status_code == 404 and r.json()["error"]["code"] == "stream_not_found"


async def test_a_stream_s_analytics_settings_are_kept_on_the_topic(
    broker: EmbeddedBroker, kafka: KafkaSettings, media: Path
) -> None:
    async with directory(broker, kafka, media) as first:
        await first.add(StreamConfig(url=str(media / "a.mp4"), sample_fps=4))
        got = await first.update("a", StreamUpdate.analytics("anomaly", threshold=1.5))
        assert got.analytics == {"anomaly": {"threshold": 1.5}} and got.sample_fps == 4.0
        with pytest.raises(ValueError, match=r"analytics\.anomaly\.threshold"):
            await first.update("a", StreamUpdate.analytics("anomaly", threshold=0))
        with pytest.raises(UnknownStreamError):
            await first.update("ghost", StreamUpdate.analytics("anomaly", threshold=2))
        async with directory(broker, kafka, media) as restarted:  # a gateway started later reads them back
            config = restarted.get("a").config  # type: ignore[union-attr]
            assert config.analytics == {"anomaly": {"threshold": 1.5}} and config.sample_fps == 4.0
