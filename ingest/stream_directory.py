"""The gateway's view of the streams of the separate roles: the streams topic and the health
their owners publish, both read whole (no consumer group: every gateway sees everything).

It offers what `dinostream.dashboard.streams_api.streams_router` needs from a manager, so
`POST /api/v1/streams` on a gateway checks the URL (`check_url(trusted=False)`, off the event
loop), refuses an id in use, and produces the config to the streams topic; the ingest node that
owns the key's partition starts it (and checks the URL again). `DELETE` produces a tombstone.
`list()` shows each stream with the last health its owner published (`node`, `published`), or
`"state": "unassigned"` until one does.

    directory = StreamDirectory(bootstrap, kafka, settings.ingest, producer)
    await directory.start()          # reads both topics up to their ends
    task = asyncio.create_task(directory.run())
    app.include_router(streams_router(directory, hub))
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from dinostream.core.kafka_io import Batch, TopicFollower
from dinostream.core.settings import IngestSettings, KafkaSettings, StreamUpdate
from dinostream.ingest.stream_manager import StreamStatus
from dinostream.ingest.stream_ownership import decode_config, encode_config
from dinostream.ingest.stream_registry import DuplicateStreamError, RegistryError, StreamConfig, UnknownStreamError
from dinostream.ingest.url_policy import check_url

log = logging.getLogger(__name__)


def unassigned_health(stream: str) -> dict[str, Any]:
    """The health of a stream no ingest node has reported on (yet, or since its owner stopped)."""
    return {
        "stream": stream,
        "state": "unassigned",
        "last_error": None,
        "frames_in": 0,
        "frames_out": 0,
        "drops": 0,
        "reconnects": 0,
        "failed": False,
        "node": None,
        "published": None,
    }


class StreamDirectory:
    """Streams topic + stream-health topic, followed whole; adds and removes by producing."""

    def __init__(
        self,
        bootstrap: str,
        kafka: KafkaSettings,
        ingest: IngestSettings,
        producer: AIOKafkaProducer,
        *,
        stale_after_s: float = 30.0,
    ) -> None:
        self.kafka = kafka
        self.ingest = ingest
        self.producer = producer
        self.stale_after_s = stale_after_s  # a report older than this is marked "stale": true
        self._configs: dict[str, StreamConfig] = {}
        self._health: dict[str, dict[str, Any]] = {}
        self._reserved: set[str] = set()
        self.malformed = 0
        self._follower = TopicFollower(
            [kafka.streams_topic, kafka.stream_health_topic],
            bootstrap,
            kafka,
            "dinostream-gateway-streams",
            self._apply,
        )

    async def start(self, timeout_s: float | None = None) -> None:
        """Connect and read both topics up to the end offsets they have now."""
        await self._follower.start(timeout_s if timeout_s is not None else self.kafka.connect_timeout_s * 3)

    async def catch_up(self) -> None:
        """Apply what the topics hold now (what `run()` does continuously)."""
        await self._follower.catch_up()

    async def run(self) -> None:
        """Follow both topics until cancelled."""
        await self._follower.run()

    async def stop(self) -> None:
        await self._follower.stop()

    def _apply(self, batches: Batch) -> None:
        for tp, messages in batches.items():
            for msg in messages:
                if tp.topic == self.kafka.streams_topic:
                    try:
                        sid, config = decode_config(msg.key, msg.value)
                    except ValueError as e:
                        self.malformed += 1
                        log.error("streams topic partition %d offset %d: skipped: %s", tp.partition, msg.offset, e)
                        continue
                    if config is None:
                        self._configs.pop(sid, None)
                    else:
                        self._configs[sid] = config
                elif msg.key:
                    sid = msg.key.decode("utf-8", errors="replace")
                    if not msg.value:
                        self._health.pop(sid, None)
                        continue
                    try:
                        health = json.loads(msg.value)
                    except ValueError:
                        self.malformed += 1
                        continue
                    if isinstance(health, dict):
                        self._health[sid] = health

    # -- what streams_router needs ------------------------------------------------------------

    async def add(self, config: StreamConfig, *, trusted: bool = False, persist: bool = True) -> StreamStatus:
        """Check the URL (always as untrusted input), refuse a taken id, publish the config.

        Raises `UrlRefused`, `DuplicateStreamError`, or `RegistryError` when Kafka does not take it."""
        sid = config.id
        if sid in self._configs or sid in self._reserved:
            raise DuplicateStreamError(f"stream {sid!r} already exists; remove it first or choose another id")
        self._reserved.add(sid)
        try:
            await asyncio.to_thread(check_url, config.url, self.ingest, trusted=False)
            await self._produce(sid, encode_config(config))
            self._configs[sid] = config
        finally:
            self._reserved.discard(sid)
        log.info("stream %s published to %s", sid, self.kafka.streams_topic)
        return self._status(sid, config)

    async def remove(self, stream_id: str) -> StreamConfig:
        config = self._configs.get(stream_id)
        if config is None:
            raise UnknownStreamError(f"no stream {stream_id!r}")
        await self._produce(stream_id, None)
        self._configs.pop(stream_id, None)
        log.info("stream %s removed from %s", stream_id, self.kafka.streams_topic)
        return config

    async def update(self, stream_id: str, update: StreamUpdate) -> StreamConfig:
        """Publish the stream's config with `update` applied (ValueError names a bad field). The
        owner restarts the stream only when how it is ingested changed, not for analytics settings."""
        config = self._configs.get(stream_id)
        if config is None:
            raise UnknownStreamError(f"no stream {stream_id!r}")
        new = config.apply(update)
        await self._produce(stream_id, encode_config(new))
        self._configs[stream_id] = new
        log.info("stream %s: %s settings changed on %s", stream_id, update.section, self.kafka.streams_topic)
        return new

    def get(self, stream_id: str) -> StreamStatus | None:
        config = self._configs.get(stream_id)
        return self._status(stream_id, config) if config is not None else None

    def list(self) -> list[StreamStatus]:
        return [self._status(sid, c) for sid, c in self._configs.items()]

    def healths(self) -> dict[str, dict[str, Any]]:
        return {sid: self._health_of(sid) for sid in self._configs}

    def owners(self) -> dict[str, str | None]:
        """Stream -> the ingest node that last reported running it."""
        return {sid: self._health_of(sid).get("node") for sid in self._configs}

    # -- internals ----------------------------------------------------------------------------

    async def _produce(self, sid: str, value: bytes | None) -> None:
        try:
            await self.producer.send_and_wait(self.kafka.streams_topic, value, key=sid.encode())
        except KafkaError as e:
            raise RegistryError(f"cannot write stream {sid!r} to Kafka topic {self.kafka.streams_topic}: {e}") from e

    def _health_of(self, sid: str) -> dict[str, Any]:
        h = self._health.get(sid)
        if h is None:
            return unassigned_health(sid)
        published = h.get("published")
        age = time.time() - published if isinstance(published, (int, float)) else None
        return {**h, "age_s": None if age is None else round(age, 1), "stale": age is None or age > self.stale_after_s}

    def _status(self, sid: str, config: StreamConfig) -> StreamStatus:
        return StreamStatus(config, self._health_of(sid), True, None)
