"""Kafka → vector index: frame embeddings and events, batched, offsets committed after writing.

At-least-once: offsets are committed only after what was read up to them is written and
persisted (`VectorIndex.flush`, every `IndexSettings.flush_every_s`: an embedded index persists
its segments then, not on every write); a crash before the commit re-delivers those records, and
the deterministic point ids turn the second write into an overwrite.

Every `IndexSettings.maintenance_every_s` (and once at start) the sink also maintains the index,
between batches: it deletes what is older than the retention (`retention_cutoffs`) and lets the
index build its search graph (`VectorIndex.optimize`). Consumption pauses meanwhile; Kafka keeps
the backlog.

Stopped (cancelled), the sink first lets a write, flush or maintenance already running in its
thread end, then persists and commits what it wrote since the last commit, so a restart does not
read it again.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition

from dinostream.core.kafka_io import client_security
from dinostream.core.records import Event, FrameEmbedding, RecordError
from dinostream.core.settings import IndexSettings, KafkaSettings
from dinostream.sinks.vector_index import VectorIndex

log = logging.getLogger(__name__)

_T = TypeVar("_T")


@dataclass
class IndexSinkStats:
    frames: int = 0
    events: int = 0
    malformed: int = 0
    batches: int = 0
    flushes: int = 0  # index flushes, each followed by an offset commit
    maintenance_runs: int = 0
    last_maintenance_s: float = 0.0  # how long the last run took


_DAY_S = 86_400.0


def retention_cutoffs(settings: IndexSettings, streams: Iterable[str], now: float) -> dict[str | None, float]:
    """What to delete: stream (None: every stream) -> wall-clock ts below which its points go.

    Without per-stream overrides one cutoff covers every stream; with them each indexed stream
    gets its own (its override, else `retention_days`), and a stream kept forever gets none."""
    overrides = settings.retention_per_stream
    if not overrides:
        return {} if settings.retention_days is None else {None: now - settings.retention_days * _DAY_S}
    cutoffs: dict[str | None, float] = {}
    for stream in streams:
        days = overrides[stream] if stream in overrides else settings.retention_days
        if days is not None:
            cutoffs[stream] = now - days * _DAY_S
    return cutoffs


class IndexWriter:
    """Frames and events into `index`, counted, and the index's upkeep (`maintain`): the part of
    the sink without Kafka, which `dinostream analyze --index` writes through directly."""

    def __init__(self, index: VectorIndex, settings: IndexSettings, *, clock: Callable[[], float] = time.time) -> None:
        self.index = index
        self.settings = settings
        self.stats = IndexSinkStats()
        self._clock = clock

    def write(self, frames: list[FrameEmbedding], events: list[Event]) -> None:
        """Upsert one batch (blocking; idempotent by record id). Index errors propagate."""
        if frames:
            self.index.upsert_frames(frames)
        if events:
            self.index.upsert_events(events)
        self.stats.frames += len(frames)
        self.stats.events += len(events)
        self.stats.batches += 1

    def maintain(self) -> None:
        """Apply retention and build search graphs now (blocking). Index errors propagate."""
        started = time.monotonic()
        cutoffs = retention_cutoffs(self.settings, self._indexed_streams(), self._clock())
        for stream, ts in cutoffs.items():
            self.index.delete_older_than(stream, ts)
        self.index.optimize()
        self.stats.maintenance_runs += 1
        self.stats.last_maintenance_s = time.monotonic() - started
        log.info(
            "index: maintenance took %.1f s (retention cutoffs: %s)",
            self.stats.last_maintenance_s,
            {k or "*": round(v) for k, v in cutoffs.items()} or "none",
        )

    def _indexed_streams(self) -> list[str]:
        return self.index.streams() if self.settings.retention_per_stream else []


class IndexSink(IndexWriter):
    """Consumes both topics in the consumer group `group` and upserts into `index`. The group has no
    default: the service names it in one place (`dinostream.node.consumer_groups`)."""

    def __init__(
        self,
        index: VectorIndex,
        bootstrap: str,
        kafka: KafkaSettings,
        settings: IndexSettings,
        *,
        group: str,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(index, settings, clock=clock)
        self.kafka = kafka
        self._next_maintenance = time.monotonic()  # once at start
        self._next_flush = 0.0  # when what was written is next persisted and its offsets committed
        self._unflushed = False
        if settings.flush_every_s > 0:
            index.defer_flush()  # the sink flushes before it commits
        self._positions: dict[TopicPartition, int] = {}  # next offset to write, per partition
        self._work: asyncio.Future[Any] | None = None  # the last write, flush or maintenance thread
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
            **client_security(kafka),
        )

    def lag(self) -> int:
        """Records on the assigned partitions not yet written: the consumer lag (from the last fetch)."""
        total = 0
        for tp in self._consumer.assignment():
            high = self._consumer.highwater(tp)
            committed = self._positions.get(tp)
            if high is not None and committed is not None:
                total += max(high - committed, 0)
        return total

    def metrics(self) -> dict[str, float]:
        """Stats plus the consumer lag, for /metrics."""
        return {**dataclasses.asdict(self.stats), "consumer_lag": self.lag()}

    async def _commit_if_due(self) -> None:
        """Persist what was written and commit its offsets, once `flush_every_s` has passed since
        the last time."""
        if self._unflushed and time.monotonic() >= self._next_flush:
            await self._flush_and_commit()

    async def _flush_and_commit(self, commit_timeout_s: float | None = None) -> None:
        await self._in_thread(self.index.flush)
        # What was written (`_positions`), not the consumer's position: the same after a write,
        # but not after a fetch whose write failed or was cancelled.
        assigned = self._consumer.assignment()
        self._positions = {tp: offset for tp, offset in self._positions.items() if tp in assigned}  # none revoked
        if self._positions:
            async with asyncio.timeout(commit_timeout_s):
                await self._consumer.commit(self._positions)
        self._unflushed = False
        self.stats.flushes += 1
        self._next_flush = time.monotonic() + self.settings.flush_every_s

    async def _in_thread(self, fn: Callable[..., _T], *args: Any) -> _T:
        """`fn(*args)` in a thread. Cancelling the caller does not stop the thread: `_work` keeps
        it so the way out waits for it before it flushes (never beside a write still running)."""
        self._work = asyncio.ensure_future(asyncio.to_thread(fn, *args))
        return await asyncio.shield(self._work)

    async def _commit_on_the_way_out(self) -> None:
        """Let the thread still running (if any) end, then persist what was written (to the end:
        the index is closed after this) and commit it, within the Kafka connect timeout. Failing
        that, the records since the last commit are read and written again at the next start
        (idempotent): said in the log, never raised."""
        if self._work is not None:
            with contextlib.suppress(Exception):  # the loop already raised it, or was cancelled in it
                await self._work
        if not self._unflushed:
            return
        try:
            await self._flush_and_commit(commit_timeout_s=self.kafka.connect_timeout_s)
        except Exception as e:
            log.warning(
                "index: could not commit what was written before stopping (%s: %s); "
                "it is read and written again at the next start",
                type(e).__name__,
                e,
            )

    async def _gather(self) -> dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]]:
        """Records for one write: up to `batch_size`, gathered for at most `batch_wait_s` after the
        first arrives (a write and its flush cost about the same for 4 records as for 64: at 2 fps
        per camera, a batch per fetch made the index the costliest hop after the worker)."""
        size = self.settings.batch_size
        got = await self._consumer.getmany(timeout_ms=500, max_records=size)
        count = sum(map(len, got.values()))
        deadline = time.monotonic() + self.settings.batch_wait_s
        while got and count < size and (left := deadline - time.monotonic()) > 0:
            more = await self._consumer.getmany(timeout_ms=max(int(left * 1000), 1), max_records=size - count)
            for tp, messages in more.items():
                got.setdefault(tp, []).extend(messages)
                count += len(messages)
        return got

    async def run(self) -> None:
        """Consume until cancelled. Write errors propagate (the owner stops the service)."""
        await self._consumer.start()
        try:
            while True:
                if time.monotonic() >= self._next_maintenance:
                    await self._in_thread(self.maintain)
                    self._next_maintenance = time.monotonic() + self.settings.maintenance_every_s
                batches = await self._gather()
                if not batches:
                    await self._commit_if_due()
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
                await self._in_thread(self.write, frames, events)
                for tp, messages in batches.items():
                    self._positions[tp] = messages[-1].offset + 1
                self._unflushed = True
                await self._commit_if_due()
        finally:
            try:
                await self._commit_on_the_way_out()
            finally:
                await self._consumer.stop()
