"""Where a resuming dashboard client's missed events come from: the events topic itself.

A `Cursor` is the position after an event message: the next offset to read in every partition
of the events topic, written `"0:12,1:8"`. It stays valid when the gateway restarts and is the
same on every gateway, because it names Kafka offsets rather than a counter of one process.
`KafkaEventLog` reads a range of the topic back with a short-lived consumer without a group.

    >>> log = KafkaEventLog("127.0.0.1:9092", "dinostream.events")
    >>> replay = await log.read(Cursor.parse("0:12,1:8"), until={0: 40, 1: 9}, limit=10_000)
    >>> [(r.partition, r.offset) for r in replay.records]   # in order per partition
"""

from __future__ import annotations

import heapq
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from aiokafka import TopicPartition

from dinostream.dashboard.topic_reader import TopicReader

log = logging.getLogger(__name__)

_CURSOR = re.compile(r"^\d{1,6}:\d{1,19}(,\d{1,6}:\d{1,19})*$")


@dataclass(frozen=True)
class Cursor:
    """Next offset to read per events-topic partition; a partition it leaves out starts at its beginning."""

    positions: Mapping[int, int]

    @classmethod
    def parse(cls, text: str) -> Cursor | None:
        """The cursor written in `text`, or None when `text` is not cursor-shaped (e.g. an event id)."""
        if not isinstance(text, str) or not _CURSOR.match(text):
            return None
        positions: dict[int, int] = {}
        for part in text.split(","):
            p, o = part.split(":")
            positions[int(p)] = int(o)
        return cls(positions)

    def __str__(self) -> str:
        return format_positions(self.positions)


def format_positions(positions: Mapping[int, int]) -> str:
    return ",".join(f"{p}:{o}" for p, o in sorted(positions.items()))


@dataclass(frozen=True)
class LoggedRecord:
    partition: int
    offset: int
    value: bytes


@dataclass
class Replay:
    """Records between a cursor and `until`, merged across partitions by broker timestamp
    (each partition stays in offset order), and what could not be replayed."""

    records: list[LoggedRecord] = field(default_factory=list)
    ranges: dict[int, tuple[int, int]] = field(default_factory=dict)  # partition -> [first, stop) read

    @property
    def end(self) -> dict[int, int]:
        """Next offset per partition after the replay."""
        return {p: b for p, (_, b) in self.ranges.items()}

    lost: int = 0  # events that can no longer be replayed (retention, or over the limit)
    reason: str | None = None  # "retention" or "too_far_behind" when lost > 0
    earliest: dict[int, int] = field(default_factory=dict)  # first offset still stored per partition


class EventLog(Protocol):
    """A store the events can be read back from, from a cursor up to positions `until`."""

    async def read(self, start: Cursor, until: Mapping[int, int], limit: int) -> Replay: ...


class KafkaEventLog(TopicReader):
    """Reads the events topic back; at most `max_concurrent` readers at once (reconnect storms)."""

    async def read(self, start: Cursor, until: Mapping[int, int], limit: int) -> Replay:
        """Events after `start` and before `until` (next offsets per partition; a partition `until`
        leaves out is read to its current end). Raises BrokerError if the broker does not answer."""
        return await self.bounded(f"the events topic {self.topic!r}", lambda: self._read(start, until, limit))

    async def _read(self, start: Cursor, until: Mapping[int, int], limit: int) -> Replay:
        consumer = self.consumer("dinostream-gateway-replay")
        await consumer.start()
        try:
            await consumer.topics()  # metadata for partitions_for_topic
            parts = sorted(consumer.partitions_for_topic(self.topic) or ())
            tps = [TopicPartition(self.topic, p) for p in parts]
            if not tps:
                return Replay(ranges={p: (o, o) for p, o in start.positions.items()})
            consumer.assign(tps)
            begin = await consumer.beginning_offsets(tps)
            ends = await consumer.end_offsets(tps)
            plan = plan_replay(
                start.positions,
                {tp.partition: begin[tp] for tp in tps},
                {tp.partition: min(until.get(tp.partition, ends[tp]), ends[tp]) for tp in tps},
                limit,
            )
            per_part: dict[int, list[tuple[int, int, LoggedRecord]]] = {}
            todo = {p for p, (a, b) in plan.ranges.items() if a < b}
            for p in todo:
                consumer.seek(TopicPartition(self.topic, p), plan.ranges[p][0])
                per_part[p] = []
            while todo:
                batches = await consumer.getmany(*(TopicPartition(self.topic, p) for p in todo), timeout_ms=200)
                for tp, msgs in batches.items():
                    stop = plan.ranges[tp.partition][1]
                    for m in msgs:
                        if m.offset < stop:
                            per_part[tp.partition].append(
                                (m.timestamp, m.offset, LoggedRecord(tp.partition, m.offset, m.value))
                            )
                for p in list(todo):
                    if await consumer.position(TopicPartition(self.topic, p)) >= plan.ranges[p][1]:
                        todo.discard(p)
            merged = heapq.merge(*per_part.values(), key=lambda r: r[0])  # keeps each partition's order
            return Replay(
                records=[r for _, _, r in merged],
                ranges=plan.ranges,
                lost=plan.lost,
                reason=plan.reason,
                earliest=plan.earliest,
            )
        finally:
            await consumer.stop()


@dataclass
class ReplayPlan:
    ranges: dict[int, tuple[int, int]]  # partition -> [first, stop) offsets to read
    lost: int
    reason: str | None
    earliest: dict[int, int]


def plan_replay(start: Mapping[int, int], begin: Mapping[int, int], stop: Mapping[int, int], limit: int) -> ReplayPlan:
    """Which offsets to read per partition: from the cursor (or the partition's beginning) to `stop`,
    skipping what retention removed and, over `limit` events in all, the oldest (counted as lost)."""
    ranges: dict[int, tuple[int, int]] = {}
    lost = 0
    reason = None
    for p, b in begin.items():
        first = start.get(p, b)
        if first < b:
            lost += b - first
            reason = "retention"
            first = b
        ranges[p] = (first, max(first, stop[p]))
    total = sum(b - a for a, b in ranges.values())
    if total > limit:
        # Keep the newest `limit`, each partition in proportion to its share of the backlog.
        reason = reason or "too_far_behind"
        for p, (a, b) in ranges.items():
            keep = (b - a) * limit // total
            lost += (b - a) - keep
            ranges[p] = (b - keep, b)
    return ReplayPlan(ranges, lost, reason, dict(begin))
