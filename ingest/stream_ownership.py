"""An ingest node's share of the streams: the partitions of the streams topic Kafka gives it.

The streams topic (`KafkaSettings.streams_topic`, compacted) is the registry of the separate
roles: key = stream id, value = its `StreamConfig` as JSON, an empty value = removed. Ingest
nodes join one consumer group on it (`<app_id>-ingest`); Kafka shares its partitions out, and a
node runs the streams whose keys fall in its partitions. When a node joins, leaves or dies,
the partitions move, and the streams with them. Nothing here coordinates anything itself.

- On assignment the node reads its partitions whole (seek to the beginning; offsets are never
  committed: the topic is the registry) and starts their streams once it has read up to the
  end offsets it saw at assignment (so a stream added then removed is never started).
- On revocation it stops the streams of those partitions *before* the partitions are handed
  over, so no stream runs on two nodes at once in a clean hand-over (a node cut off from the
  broker keeps running until it notices: delivery is at-least-once, the sinks are idempotent).
- Afterwards it follows the topic: add, remove, and a changed config (= remove + add; a change of
  the stream's analytics settings only, which the workers apply, leaves it running).
- Every `health_every_s` it publishes each of its streams' health to the stream-health topic
  (keyed by stream id), and a tombstone when it stops running one.

`OwnershipTable` is the pure core (which streams should run, from partitions and messages);
`StreamOwnership` moves data between Kafka, the table and a `StreamManager`.

    ownership = StreamOwnership(manager, bootstrap, kafka, group="dinostream-analytics-ingest",
                                producer=producer, node="gpu-3:8080")
    await ownership.start()
    await ownership.run()      # until cancelled; then: await ownership.stop()
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import KafkaError
from pydantic import ValidationError

from dinostream.core.errors import DinostreamError
from dinostream.core.kafka_io import client_security
from dinostream.core.settings import KafkaSettings, describe_validation_error
from dinostream.ingest.stream_registry import StreamConfig, UnknownStreamError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Start:
    config: StreamConfig


@dataclass(frozen=True)
class Stop:
    stream: str


Action = Start | Stop


def decode_config(key: bytes | None, value: bytes | None) -> tuple[str, StreamConfig | None]:
    """(stream id, its config or None for a tombstone) of a streams-topic message.

    Raises ValueError (one line) for a message that is not a stream's config under its own id."""
    if not key:
        raise ValueError("message without a key (the stream id)")
    sid = key.decode("utf-8", errors="replace")
    if value is None or value == b"":
        return sid, None
    try:
        config = StreamConfig.model_validate_json(value)
    except ValidationError as e:
        raise ValueError(f"stream {sid!r}: invalid config: {describe_validation_error(e)}") from None
    if config.id != sid:
        raise ValueError(f"stream {sid!r}: the config names another id, {config.id!r}")
    return sid, config


def encode_config(config: StreamConfig) -> bytes:
    return config.model_dump_json(exclude_none=True).encode()


class OwnershipTable:
    """Which streams this node should run, from the partitions it owns and what they hold. Pure.

    Each call returns the actions to take and assumes they are taken (`running` follows them).
    """

    def __init__(self) -> None:
        self.configs: dict[int, dict[str, StreamConfig]] = {}  # owned partition -> stream -> config
        self.catching_up: dict[int, int] = {}  # partition -> end offset seen at assignment
        self.running: dict[str, StreamConfig] = {}  # stream -> the config it was started with
        self._partition_of: dict[str, int] = {}  # running stream -> its partition

    @property
    def partitions(self) -> set[int]:
        return set(self.configs)

    def assigned(self, ends: dict[int, int]) -> list[Action]:
        """Partitions given to this node, with their end offsets now; empty ones are read at once."""
        actions: list[Action] = []
        for p, end in ends.items():
            self.configs[p] = {}
            if end > 0:
                self.catching_up[p] = end
            else:
                actions += self.caught_up(p)
        return actions

    def revoked(self, partitions: Iterable[int]) -> list[Action]:
        """Partitions taken away: stop their streams."""
        actions: list[Action] = []
        for p in partitions:
            self.configs.pop(p, None)
            self.catching_up.pop(p, None)
            for sid in [s for s, q in self._partition_of.items() if q == p]:
                actions += self._set(sid, None, p)
        return actions

    def message(self, partition: int, offset: int, stream: str, config: StreamConfig | None) -> list[Action]:
        """One message of an owned partition (others are ignored: a fetch from before a rebalance)."""
        held = self.configs.get(partition)
        if held is None:
            return []
        if config is None:
            held.pop(stream, None)
        else:
            held[stream] = config
        end = self.catching_up.get(partition)
        if end is None:
            return self._set(stream, config, partition)
        return self.caught_up(partition) if offset + 1 >= end else []

    def caught_up(self, partition: int) -> list[Action]:
        """The partition has been read up to its end offset at assignment: start what it holds."""
        if partition not in self.configs:
            return []
        self.catching_up.pop(partition, None)
        actions: list[Action] = []
        for sid, config in self.configs[partition].items():
            actions += self._set(sid, config, partition)
        return actions

    def _set(self, sid: str, config: StreamConfig | None, partition: int) -> list[Action]:
        current = self.running.get(sid)
        if current == config:
            return []
        if current is not None and config is not None and current.runs_like(config):
            self.running[sid] = config  # analytics settings changed: the source runs on untouched
            return []
        actions: list[Action] = []
        if current is not None:
            actions.append(Stop(sid))
            del self.running[sid]
            self._partition_of.pop(sid, None)
        if config is not None:
            actions.append(Start(config))
            self.running[sid] = config
            self._partition_of[sid] = partition
        return actions


class StreamRunner(Protocol):
    """What ownership needs from `dinostream.ingest.stream_manager.StreamManager`."""

    async def add(self, config: StreamConfig, *, trusted: bool = False, persist: bool = True) -> Any: ...

    async def remove(self, stream_id: str) -> StreamConfig: ...

    def healths(self) -> dict[str, dict[str, Any]]: ...


@dataclass
class OwnershipStats:
    partitions: list[int] = field(default_factory=list)
    catching_up: list[int] = field(default_factory=list)
    rebalances: int = 0
    started: int = 0
    stopped: int = 0
    refused: dict[str, str] = field(default_factory=dict)  # stream -> why it could not start here
    malformed: int = 0
    health_published: int = 0
    health_errors: int = 0


class _Listener(ConsumerRebalanceListener):
    def __init__(self, owner: StreamOwnership) -> None:
        self.owner = owner

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        await self.owner._revoked(revoked)

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        await self.owner._assigned(assigned)


class StreamOwnership:
    """Runs, through `manager`, the streams of the streams-topic partitions this node owns."""

    def __init__(
        self,
        manager: StreamRunner,
        bootstrap: str,
        kafka: KafkaSettings,
        *,
        group: str,
        producer: AIOKafkaProducer | None,
        node: str,
        health_every_s: float = 2.0,
    ) -> None:
        self.manager = manager
        self.kafka = kafka
        self.node = node
        self.producer = producer
        self.health_every_s = health_every_s
        self.table = OwnershipTable()
        self.stats = OwnershipStats()
        self._lock = asyncio.Lock()  # the rebalance callbacks and the message loop take turns
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap,
            group_id=group,
            enable_auto_commit=False,  # never committed: every owner reads its partitions whole
            auto_offset_reset="earliest",
            client_id=f"dinostream-ingest-{node}",
            session_timeout_ms=int(kafka.session_timeout_s * 1000),
            heartbeat_interval_ms=int(kafka.session_timeout_s * 200),
            **client_security(kafka),
        )
        self._published: set[str] = set()  # streams whose health this node has published

    async def start(self) -> None:
        await self._consumer.start()
        self._consumer.subscribe([self.kafka.streams_topic], listener=_Listener(self))

    async def run(self) -> None:
        """Follow the streams topic and publish health until cancelled."""
        publisher = asyncio.create_task(self._publish_loop(), name="stream-health")
        try:
            while True:
                batches = await self._consumer.getmany(timeout_ms=500)
                async with self._lock:
                    for tp, messages in batches.items():
                        for msg in messages:
                            await self._apply(self._message(tp.partition, msg.offset, msg.key, msg.value))
                    for p in list(self.table.catching_up):
                        tp = TopicPartition(self.kafka.streams_topic, p)
                        if tp in self._consumer.assignment() and (
                            await self._consumer.position(tp) >= self.table.catching_up[p]
                        ):
                            await self._apply(self.table.caught_up(p))
                    self._sync_stats()
                if publisher.done():
                    publisher.result()  # the publisher never ends by itself: raise why it did
        finally:
            publisher.cancel()
            with contextlib.suppress(BaseException):
                await publisher

    async def stop(self) -> None:
        """Stop this node's streams, tombstone their health, leave the group (the others take over)."""
        async with self._lock:
            await self._apply(self.table.revoked(list(self.table.partitions)))
        with contextlib.suppress(KafkaError, OSError):
            await self._consumer.stop()

    def health(self) -> dict[str, Any]:
        self._sync_stats()
        return vars(self.stats) | {"node": self.node, "streams": sorted(self.table.running)}

    # -- internals ----------------------------------------------------------------------------

    def _message(self, partition: int, offset: int, key: bytes | None, value: bytes | None) -> list[Action]:
        try:
            sid, config = decode_config(key, value)
        except ValueError as e:
            self.stats.malformed += 1
            log.error("streams topic partition %d offset %d: skipped: %s", partition, offset, e)
            end = self.table.catching_up.get(partition)
            return self.table.caught_up(partition) if end is not None and offset + 1 >= end else []
        return self.table.message(partition, offset, sid, config)

    async def _assigned(self, assigned: set[TopicPartition]) -> None:
        async with self._lock:
            self.stats.rebalances += 1
            mine = [tp for tp in assigned if tp.topic == self.kafka.streams_topic]
            if mine:
                await self._consumer.seek_to_beginning(*mine)
                ends = await self._consumer.end_offsets(mine)
            else:
                ends = {}
            log.info("ingest node %s: assigned streams partitions %s", self.node, sorted(tp.partition for tp in mine))
            await self._apply(self.table.assigned({tp.partition: off for tp, off in ends.items()}))
            self._sync_stats()

    async def _revoked(self, revoked: set[TopicPartition]) -> None:
        async with self._lock:
            parts = [tp.partition for tp in revoked if tp.topic == self.kafka.streams_topic]
            if parts:
                log.info("ingest node %s: handing over streams partitions %s", self.node, sorted(parts))
            await self._apply(self.table.revoked(parts))
            self._sync_stats()

    async def _apply(self, actions: list[Action]) -> None:
        """Stops first (in parallel: each may wait for its source to close), then starts."""
        stops = [a.stream for a in actions if isinstance(a, Stop)]
        if stops:
            await asyncio.gather(*(self._stop(sid) for sid in stops))
        for a in actions:
            if isinstance(a, Start):
                await self._start(a.config)

    async def _start(self, config: StreamConfig) -> None:
        self.stats.refused.pop(config.id, None)
        try:
            # The gateway checked the URL; this node checks it again, under its own policy.
            await self.manager.add(config, trusted=False, persist=False)
        except DinostreamError as e:
            self.stats.refused[config.id] = str(e)
            log.error("stream %s not started on this node: %s", config.id, e)
            return
        self.stats.started += 1
        log.info("ingest node %s: runs stream %s", self.node, config.id)

    async def _stop(self, sid: str) -> None:
        self.stats.refused.pop(sid, None)
        with contextlib.suppress(UnknownStreamError):
            await self.manager.remove(sid)
            self.stats.stopped += 1
        if sid in self._published:
            self._published.discard(sid)
            await self._send(sid, None)  # no node runs it now (the next owner publishes again)

    def _sync_stats(self) -> None:
        self.stats.partitions = sorted(self.table.partitions)
        self.stats.catching_up = sorted(self.table.catching_up)

    def stream_healths(self) -> dict[str, dict[str, Any]]:
        """The health this node publishes for each stream it owns (refused ones: failed)."""
        now = time.time()
        healths = self.manager.healths()
        out: dict[str, dict[str, Any]] = {}
        for sid in self.table.running:
            h = healths.get(sid)
            if h is None:
                reason = self.stats.refused.get(sid, "not started")
                h = {"stream": sid, "state": "failed", "last_error": reason, "failed": True}
            out[sid] = {**h, "node": self.node, "published": now}
        return out

    async def _publish_loop(self) -> None:
        while True:
            await asyncio.sleep(self.health_every_s)
            for sid, h in self.stream_healths().items():
                if sid not in self.table.running:
                    continue  # stopped meanwhile
                self._published.add(sid)
                await self._send(sid, json.dumps(h, default=str).encode())

    def _delivered(self, delivery: asyncio.Future[Any]) -> None:
        if delivery.cancelled() or delivery.exception() is not None:
            self.stats.health_errors += 1
        else:
            self.stats.health_published += 1

    async def _send(self, sid: str, value: bytes | None) -> None:
        if self.producer is None:
            return
        try:
            # Not awaiting delivery: with the broker away, reports queue in the producer (bounded
            # by its buffer and request timeout), they never hold up the streams.
            delivery = await asyncio.wait_for(
                self.producer.send(self.kafka.stream_health_topic, value, key=sid.encode()), self.health_every_s
            )
            delivery.add_done_callback(self._delivered)
        except (KafkaError, TimeoutError) as e:
            self.stats.health_errors += 1
            log.warning("stream %s: health not published: %s", sid, e or type(e).__name__)
