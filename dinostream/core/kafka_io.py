"""Kafka plumbing shared by the roles: reachability, topics, the producer, and a reader that
follows whole topics (`TopicFollower`).

Every record is keyed by stream id, so one camera's records stay in order on one partition
and per-stream analytics state lives on one worker.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError

from dinostream.core.errors import BrokerError
from dinostream.core.settings import KafkaSettings

log = logging.getLogger(__name__)
_TOPIC_EXISTS = 36


async def ensure_topics(bootstrap: str, settings: KafkaSettings) -> None:
    """Check the cluster answers within the connect timeout and create our topics if missing.

    Raises `BrokerError` with one line naming the bootstrap address when it does not answer.
    """
    timeout_ms = int(settings.connect_timeout_s * 1000)
    admin = AIOKafkaAdminClient(
        bootstrap_servers=bootstrap, request_timeout_ms=timeout_ms, client_id="dinostream-admin"
    )
    try:
        await asyncio.wait_for(admin.start(), settings.connect_timeout_s)
    except (TimeoutError, KafkaError, OSError) as e:
        await _quiet_close(admin)
        reason = str(e) or type(e).__name__
        raise BrokerError(
            f"cannot reach Kafka at {bootstrap} within {settings.connect_timeout_s:g} s ({reason}); "
            "check --kafka, or omit it to use the embedded broker"
        ) from None
    try:
        existing = set(await admin.list_topics())
        wanted = [settings.embeddings_topic, settings.events_topic, settings.control_topic]
        new = [NewTopic(t, settings.partitions, 1) for t in wanted if t not in existing]
        if settings.watchlist_topic not in existing:
            # Small and read whole by every worker: one partition, only the latest value per exemplar.
            new.append(NewTopic(settings.watchlist_topic, 1, 1, topic_configs={"cleanup.policy": "compact"}))
        # The registry of the separate roles and its owners' health reports: compacted, keyed by stream. The
        # streams topic's partitions are what the ingest nodes' consumer group shares out.
        for topic in (settings.streams_topic, settings.stream_health_topic):
            if topic not in existing:
                new.append(NewTopic(topic, settings.partitions, 1, topic_configs={"cleanup.policy": "compact"}))
        if new:
            resp = await admin.create_topics(new, timeout_ms=timeout_ms)
            for topic, code, message in _topic_errors(resp):
                if code not in (0, _TOPIC_EXISTS):
                    raise BrokerError(f"cannot create topic {topic!r} on {bootstrap}: {message or code}")
            log.info("created topics %s on %s", [t.name for t in new], bootstrap)
    except KafkaError as e:
        raise BrokerError(f"Kafka at {bootstrap} refused topic set-up: {e}") from None
    finally:
        await _quiet_close(admin)


def _topic_errors(resp: object) -> list[tuple[str, int, str | None]]:
    out = []
    for err in getattr(resp, "topic_errors", []):
        topic, code = err[0], err[1]
        message = err[2] if len(err) > 2 else None
        out.append((topic, code, message))
    return out


async def _quiet_close(admin: AIOKafkaAdminClient) -> None:
    try:
        await admin.close()
    except Exception:  # noqa: BLE001 - closing a client that never connected
        pass


def make_producer(bootstrap: str, settings: KafkaSettings, *, embedded: bool) -> AIOKafkaProducer:
    """acks=all producer; idempotent unless settings say otherwise (see KafkaSettings.idempotent)."""
    idempotent = (not embedded) if settings.idempotent is None else settings.idempotent
    return AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all",
        enable_idempotence=idempotent,
        max_request_size=settings.max_message_bytes,
        linger_ms=5,
        request_timeout_ms=int(settings.connect_timeout_s * 1000) * 3,
        client_id="dinostream-producer",
    )


async def start_producer(bootstrap: str, settings: KafkaSettings, *, embedded: bool) -> AIOKafkaProducer:
    """`make_producer`, started. BrokerError in one line when the cluster refuses it (e.g. an
    idempotent producer on a broker without support); the caller stops it."""
    producer = make_producer(bootstrap, settings, embedded=embedded)
    try:
        await producer.start()
    except KafkaError as e:
        with contextlib.suppress(Exception):
            await producer.stop()
        hint = "; set kafka.idempotent = false if the broker does not support idempotent producers"
        raise BrokerError(f"Kafka at {bootstrap} refused the producer: {type(e).__name__}: {e}{hint}") from None
    return producer


Batch = dict[TopicPartition, list[Any]]  # what AIOKafkaConsumer.getmany returns


class TopicFollower:
    """Whole topics read with no consumer group, so every reader sees every message: the compacted
    topics that say how things are now (stream configs and their health, watchlist exemplars).
    `start()` returns once everything the topics held when it began has gone to `apply`; `run()`
    then follows them until cancelled. A thin I/O shell: `apply` does the work.

        follower = TopicFollower([kafka.watchlist_topic], bootstrap, kafka, "dinostream-watchlist", apply)
        await follower.start()          # BrokerError if a topic does not exist
        task = asyncio.create_task(follower.run())
    """

    def __init__(
        self,
        topics: Sequence[str],
        bootstrap: str,
        kafka: KafkaSettings,
        client_id: str,
        apply: Callable[[Batch], None],
    ) -> None:
        self.topics = list(topics)
        self.kafka = kafka
        self._apply = apply
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap,
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            client_id=client_id,
        )

    async def start(self, timeout_s: float | None = None) -> None:
        """Connect, take every partition of the topics from its beginning and read up to the end
        offsets they have now. Raises BrokerError when a topic is not there within `timeout_s`
        (default: the connect timeout)."""
        await self._consumer.start()
        try:
            tps = await self._partitions(self.kafka.connect_timeout_s if timeout_s is None else timeout_s)
        except BaseException:
            await self._consumer.stop()
            raise
        self._consumer.assign(tps)
        await self._consumer.seek_to_beginning(*tps)
        await self.catch_up()

    async def catch_up(self) -> None:
        """Apply what the topics hold now."""
        tps = list(self._consumer.assignment())
        ends = await self._consumer.end_offsets(tps)
        while any([await self._consumer.position(tp) < end for tp, end in ends.items()]):
            self._apply(await self._consumer.getmany(*tps, timeout_ms=200))

    async def run(self) -> None:
        """Follow the topics until cancelled."""
        try:
            while True:
                self._apply(await self._consumer.getmany(timeout_ms=1000))
        finally:
            await self._consumer.stop()

    async def stop(self) -> None:
        await self._consumer.stop()

    async def _partitions(self, timeout_s: float) -> list[TopicPartition]:
        found: dict[str, set[int]] = {}
        try:
            async with asyncio.timeout(timeout_s):
                while True:
                    for topic in self.topics:
                        found[topic] = self._consumer.partitions_for_topic(topic) or set()
                    if all(found.values()):
                        break
                    await self._consumer.force_metadata_update()
                    if not all(self._consumer.partitions_for_topic(t) for t in self.topics):
                        await asyncio.sleep(0.2)
        except TimeoutError:
            missing = ", ".join(repr(t) for t in self.topics if not found.get(t))
            raise BrokerError(f"topic {missing} does not exist on the broker") from None
        return [TopicPartition(t, p) for t in self.topics for p in sorted(found[t])]
