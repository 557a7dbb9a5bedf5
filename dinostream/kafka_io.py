"""Kafka plumbing shared by the roles: reachability, topics, the producer.

Every record is keyed by stream id, so one camera's records stay in order on one partition
and per-stream analytics state lives on one worker.
"""

from __future__ import annotations

import asyncio
import logging

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError

from dinostream.errors import BrokerError
from dinostream.settings import KafkaSettings

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
