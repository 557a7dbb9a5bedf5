"""Kafka plumbing shared by the roles: reachability, topics, the producer, and a reader that
follows whole topics (`TopicFollower`).

Every record is keyed by stream id, so one camera's records stay in order on one partition
and per-stream analytics state lives on one worker.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import KafkaError
from aiokafka.helpers import create_ssl_context

from dinostream.core.errors import BrokerError
from dinostream.core.settings import KafkaSettings

log = logging.getLogger(__name__)
_TOPIC_EXISTS = 36
# A record of max_message_bytes goes in a batch of its own, whose v2 header (61 bytes) the producer's
# size check leaves out; the topic's max.message.bytes limits the batch.
BATCH_HEADROOM = 1024
CLUSTER_DEFAULT = -1  # replication factor: the cluster's default.replication.factor (KIP-464)


@dataclass(frozen=True)
class TopicSpec:
    """A topic as dinostream creates it: what `ensure_topic_specs` asks the cluster for, what the
    Strimzi KafkaTopic resources in deploy/ must say. `replication_factor` -1: the cluster's default."""

    name: str
    partitions: int
    replication_factor: int
    configs: dict[str, str] = field(default_factory=dict)

    def new_topic(self) -> NewTopic:
        topic = NewTopic(self.name, self.partitions, 1, topic_configs=dict(self.configs))
        # aiokafka's constructor refuses -1 without a replica assignment, though the protocol takes it
        # and brokers since Kafka 2.4 (and Tansu) resolve it to default.replication.factor.
        topic.replication_factor = self.replication_factor
        return topic


def topic_message_bytes(settings: KafkaSettings) -> int:
    """The max.message.bytes a topic needs for records of up to `settings.max_message_bytes`."""
    return settings.max_message_bytes + BATCH_HEADROOM


def base_topic_configs(settings: KafkaSettings) -> dict[str, str]:
    """The configs every topic dinostream (or its Faust app) creates gets."""
    configs = {"max.message.bytes": str(topic_message_bytes(settings))}
    if settings.min_insync_replicas is not None:
        configs["min.insync.replicas"] = str(settings.min_insync_replicas)
    return configs


def topic_spec(
    settings: KafkaSettings,
    name: str,
    partitions: int | None = None,
    *,
    compact: bool = False,
    configs: Mapping[str, str] | None = None,
) -> TopicSpec:
    """One topic with the settings' replication and base configs; `compact` for the topics that say
    how things are now (only the latest value per key is kept, never aged out)."""
    out = base_topic_configs(settings)
    out["cleanup.policy"] = "compact" if compact else "delete"
    out.update(configs or {})
    rf = CLUSTER_DEFAULT if settings.replication_factor is None else settings.replication_factor
    return TopicSpec(name, settings.partitions if partitions is None else partitions, rf, out)


def embeddings_configs(settings: KafkaSettings) -> dict[str, str]:
    """Retention and segment size of the embeddings topic (the big one)."""
    out = {"segment.bytes": str(settings.embeddings_segment_bytes)}
    if settings.embeddings_retention_ms is not None:
        out.update(_retention(settings.embeddings_retention_ms))
    if settings.embeddings_retention_bytes is not None:
        out["retention.bytes"] = str(settings.embeddings_retention_bytes)
    return out


def _retention(ms: int) -> dict[str, str]:
    """retention.ms, and segments that roll at least hourly: retention deletes closed segments only, so a
    quiet partition ages out too."""
    return {"retention.ms": str(ms), "segment.ms": str(min(3_600_000, ms))}


def topic_specs(settings: KafkaSettings) -> list[TopicSpec]:
    """Every topic `ensure_topics` creates, as it creates it."""
    return [
        topic_spec(settings, settings.embeddings_topic, configs=embeddings_configs(settings)),
        # Small records read from their end by every gateway: kept an hour, in segments that roll with it.
        topic_spec(settings, settings.previews_topic, configs=_retention(settings.previews_retention_ms)),
        topic_spec(settings, settings.events_topic),
        topic_spec(settings, settings.control_topic),
        # Small and read whole by every worker: one partition, only the latest value per exemplar.
        topic_spec(settings, settings.watchlist_topic, 1, compact=True),
        # The registry of the separate roles and its owners' health reports: compacted, keyed by stream. The
        # streams topic's partitions are what the ingest nodes' consumer group shares out.
        topic_spec(settings, settings.streams_topic, compact=True),
        topic_spec(settings, settings.stream_health_topic, compact=True),
    ]


async def ensure_topics(bootstrap: str, settings: KafkaSettings) -> None:
    """Check the cluster answers within the connect timeout and create our topics if missing.

    Raises `BrokerError` with one line naming the bootstrap address when it does not answer, or
    naming the topic, its limit and the setting when an existing topic's max.message.bytes is too low.
    """
    await ensure_topic_specs(bootstrap, settings, topic_specs(settings))


async def ensure_topic_specs(
    bootstrap: str, settings: KafkaSettings, specs: Sequence[TopicSpec], *, client_id: str = "dinostream-admin"
) -> dict[str, int]:
    """Create the topics of `specs` that are missing and check those that exist take records of
    `kafka.max_message_bytes`; returns each topic's replica count as the cluster reports it."""
    timeout_ms = int(settings.connect_timeout_s * 1000)
    admin = AIOKafkaAdminClient(
        bootstrap_servers=bootstrap, request_timeout_ms=timeout_ms, client_id=client_id, **client_security(settings)
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
        new = [spec.new_topic() for spec in specs if spec.name not in existing]
        if new:
            resp = await admin.create_topics(new, timeout_ms=timeout_ms)
            for topic, code, message in _topic_errors(resp):
                if code not in (0, _TOPIC_EXISTS):
                    raise BrokerError(f"cannot create topic {topic!r} on {bootstrap}: {message or code}")
            log.info("created topics %s on %s", [t.name for t in new], bootstrap)
        names = [spec.name for spec in specs]
        old = [name for name in names if name in existing]
        if old:
            limits = await _topic_limits(admin, old)
            problem = message_limit_problem(settings, limits)
            if problem:
                raise BrokerError(f"Kafka at {bootstrap}: {problem}")
        return {
            t["topic"]: len(t["partitions"][0]["replicas"])
            for t in await admin.describe_topics(names)
            if t.get("partitions")
        }
    except KafkaError as e:
        raise BrokerError(f"Kafka at {bootstrap} refused topic set-up: {e}") from None
    finally:
        await _quiet_close(admin)


def message_limit_problem(settings: KafkaSettings, limits: dict[str, int | None]) -> str | None:
    """Why records of `kafka.max_message_bytes` would not fit some topic of `limits` (its
    max.message.bytes; None: not reported), or None when they all fit."""
    need = topic_message_bytes(settings)
    low = {topic: limit for topic, limit in limits.items() if limit is not None and limit < need}
    if not low:
        return None
    where = ", ".join(f"topic {t!r} has max.message.bytes {n}" for t, n in sorted(low.items()))
    return (
        f"{where}, below the {need} bytes kafka.max_message_bytes = {settings.max_message_bytes} needs (a record "
        f"of that size would be refused); raise the topic's max.message.bytes to at least {need} or lower "
        "kafka.max_message_bytes"
    )


async def _topic_limits(admin: AIOKafkaAdminClient, topics: list[str]) -> dict[str, int | None]:
    # All configs, filtered here: Tansu 0.6 drops the connection on a request that names config keys.
    resources = [ConfigResource(ConfigResourceType.TOPIC, t) for t in topics]
    out: dict[str, int | None] = dict.fromkeys(topics)
    for resp in await admin.describe_configs(resources):
        for resource in resp.resources:
            error_code, name, entries = resource[0], resource[3], resource[4]
            if error_code:
                raise BrokerError(f"cannot read the configs of topic {name!r}: {resource[1] or error_code}")
            for entry in entries:
                if entry[0] == "max.message.bytes" and entry[1] is not None:
                    out[name] = int(entry[1])
    return out


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


def client_security(settings: KafkaSettings) -> dict[str, Any]:
    """The security keyword arguments every aiokafka client of the process gets (producers,
    consumers, admin clients): `kafka.security_protocol`, a TLS context from the CA and client
    certificate files, the SASL mechanism and credentials. BrokerError names an unreadable file."""
    out: dict[str, Any] = {"security_protocol": settings.security_protocol}
    if settings.security_protocol in ("SSL", "SASL_SSL"):
        out["ssl_context"] = kafka_ssl_context(settings)
    if settings.sasl_mechanism is not None:
        assert settings.sasl_password is not None  # the settings require it with a mechanism
        out["sasl_mechanism"] = settings.sasl_mechanism
        out["sasl_plain_username"] = settings.sasl_username
        out["sasl_plain_password"] = settings.sasl_password.get_secret_value()
    return out


def kafka_ssl_context(settings: KafkaSettings) -> ssl.SSLContext:
    """TLS context for the brokers: `kafka.ssl_cafile` (None: the system's CAs) and the client
    certificate; BrokerError naming the file that cannot be read."""
    try:
        return create_ssl_context(
            cafile=str(settings.ssl_cafile) if settings.ssl_cafile else None,
            certfile=str(settings.ssl_certfile) if settings.ssl_certfile else None,
            keyfile=str(settings.ssl_keyfile) if settings.ssl_keyfile else None,
        )
    except (OSError, ssl.SSLError) as e:
        files = [str(f) for f in (settings.ssl_cafile, settings.ssl_certfile, settings.ssl_keyfile) if f]
        raise BrokerError(f"cannot load the Kafka TLS files ({', '.join(files) or 'system CAs'}): {e}") from None


def make_producer(
    bootstrap: str, settings: KafkaSettings, *, embedded: bool, batch_bytes: int | None = None
) -> AIOKafkaProducer:
    """acks=all producer; idempotent unless settings say otherwise (see KafkaSettings.idempotent).

    `batch_bytes`: how large a partition's batch may grow (aiokafka's default, 16 KB, when None).
    The producer of frame records passes `max_message_bytes` (the broker's limit for a batch): with
    16 KB every ~150 KB record took a batch and a produce request of its own, now a micro-batch's
    records go together (bench/density.py: broker CPU ~3.4 -> 2.8 ms per frame at 16 streams). Not
    for the other topics: the embedded Tansu reports a batch of several records as ending after its
    first, and Faust's changelog recovery stops there, losing the rest of the batch (the state
    archive's restore, batching changelog chunks, lost saved state that way)."""
    idempotent = (not embedded) if settings.idempotent is None else settings.idempotent
    return AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all",
        enable_idempotence=idempotent,
        max_request_size=settings.max_message_bytes,
        **({"max_batch_size": batch_bytes} if batch_bytes else {}),
        linger_ms=5,
        request_timeout_ms=int(settings.connect_timeout_s * 1000) * 3,
        client_id="dinostream-producer",
        **client_security(settings),
    )


async def start_producer(
    bootstrap: str, settings: KafkaSettings, *, embedded: bool, batch_bytes: int | None = None
) -> AIOKafkaProducer:
    """`make_producer`, started. BrokerError in one line when the cluster refuses it (e.g. an
    idempotent producer on a broker without support); the caller stops it."""
    producer = make_producer(bootstrap, settings, embedded=embedded, batch_bytes=batch_bytes)
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
            **client_security(kafka),
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

    async def run(self, until: asyncio.Event | None = None) -> None:
        """Follow the topics until cancelled, or until `until` is set: then what they hold by then is
        applied before it returns (so a last write before a clean stop is not missed)."""
        try:
            while until is None or not until.is_set():
                self._apply(await self._consumer.getmany(timeout_ms=1000 if until is None else 200))
            await self.catch_up()
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
                    # refreshes the cluster metadata (AIOKafkaConsumer has no force_metadata_update)
                    await self._consumer.topics()
                    if not all(self._consumer.partitions_for_topic(t) for t in self.topics):
                        await asyncio.sleep(0.2)
        except TimeoutError:
            missing = ", ".join(repr(t) for t in self.topics if not found.get(t))
            raise BrokerError(f"topic {missing} does not exist on the broker") from None
        return [TopicPartition(t, p) for t in self.topics for p in sorted(found[t])]
