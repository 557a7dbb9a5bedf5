"""The last frames of each stream, so a click on a live frame can be turned into a watchlist
exemplar or a click-to-segment heatmap from that frame's patch grid.

A gateway keeps where each recent frame's whole record is (`note(preview)`: partition and offset
in the embeddings topic, from the previews topic) and reads the record back when a click names it
(`KafkaRecordReader`): the live view never reads the ~155 KB records, only the clicks do. A process
that holds records already keeps them whole (`add`).

Bounded: at most `per_stream` frames per stream, and whole records at most `max_bytes` in all (the
stream with the most frames gives up its oldest first). The last `cache` records read back stay
decoded (a click, its preview and its registration read the same frame).

    recent = RecentFrames(per_stream=120, read=KafkaRecordReader(bootstrap, "dinostream.embeddings").read)
    recent.note(preview)                     # from the previews topic (or add(record_bytes))
    rec = await recent.get("cam-1", 1234)    # FrameEmbedding, or None when not kept
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable

from aiokafka import TopicPartition

from dinostream.core.records import FrameEmbedding, FrameHeader, FramePreview
from dinostream.dashboard.topic_reader import TopicReader

log = logging.getLogger(__name__)
PAST_END_S = 1.0  # how long a read looks for an offset at or past the end the broker reports

ReadRecord = Callable[[int, int], Awaitable[bytes | None]]  # (partition, offset) -> the record, None if gone


class RecentFrames:
    def __init__(
        self, per_stream: int = 32, max_bytes: int = 64_000_000, *, read: ReadRecord | None = None, cache: int = 8
    ) -> None:
        if per_stream < 1 or max_bytes < 1 or cache < 0:
            raise ValueError(
                f"per_stream and max_bytes must be positive and cache >= 0, got {per_stream}, {max_bytes}, {cache}"
            )
        self.per_stream = per_stream
        self.max_bytes = max_bytes
        self.read = read
        self.cache_size = cache
        # Per stream, seq -> the whole record, or (partition, offset) of it in the embeddings topic.
        self._streams: dict[str, OrderedDict[int, bytes | tuple[int, int]]] = {}
        self._bytes = 0
        self._cache: OrderedDict[tuple[str, int], FrameEmbedding] = OrderedDict()
        self.evicted = 0
        self.read_back = 0  # records read from Kafka for a click
        self.gone = 0  # asked for, noted, but no longer in Kafka (retention)

    def add(self, data: bytes, header: FrameHeader | None = None) -> None:
        """Keep one encoded FrameEmbedding whole. Only its header is read, and not even that when
        the caller passes the one it read already."""
        h = FrameHeader.decode(data) if header is None else header
        self._keep(h.stream, h.seq, data)

    def note(self, preview: FramePreview) -> None:
        """Keep where a frame's whole record is, to read it back if a click names the frame."""
        if self.read is None:
            raise RuntimeError("RecentFrames without `read` cannot read records back: keep them with add()")
        self._keep(preview.stream, preview.seq, preview.at)

    def _keep(self, stream: str, seq: int, value: bytes | tuple[int, int]) -> None:
        frames = self._streams.setdefault(stream, OrderedDict())
        old = frames.pop(seq, None)
        if isinstance(old, bytes):
            self._bytes -= len(old)
        self._cache.pop((stream, seq), None)  # a frame written again (a redelivery) is read again
        frames[seq] = value
        if isinstance(value, bytes):
            self._bytes += len(value)
        while len(frames) > self.per_stream:
            self._evict(frames)
        while self._bytes > self.max_bytes:
            self._evict(max(self._streams.values(), key=len))

    async def get(self, stream: str, seq: int) -> FrameEmbedding | None:
        """The frame, or None when it is not among the recent ones or its record is gone from Kafka.
        Raises BrokerError when Kafka does not answer."""
        frames = self._streams.get(stream)
        kept = frames.get(seq) if frames is not None else None
        if kept is None:
            return None
        if isinstance(kept, bytes):
            return FrameEmbedding.decode(kept)
        rec = self._cache.get((stream, seq))
        if rec is not None:
            self._cache.move_to_end((stream, seq))
            return rec
        assert self.read is not None
        data = await self.read(*kept)
        if data is None:
            self.gone += 1
            return None
        self.read_back += 1
        rec = FrameEmbedding.decode(data)
        if (rec.stream, rec.seq) != (stream, seq):
            # Another record at that place: the topic was recreated since the preview was written.
            log.error("frame %d of %s: the embeddings record at %s is %s/%d", seq, stream, kept, rec.stream, rec.seq)
            return None
        if self.cache_size:
            self._cache[(stream, seq)] = rec
            while len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)
        return rec

    def stats(self) -> dict[str, int]:
        """Counters for /metrics and health: frames kept (whole or by place), bytes kept whole,
        evicted, read back from Kafka for a click, and asked for but gone (retention)."""
        return {
            "streams": len(self._streams),
            "frames": sum(len(f) for f in self._streams.values()),
            "bytes": self._bytes,
            "evicted": self.evicted,
            "read_back": self.read_back,
            "gone": self.gone,
        }

    def seqs(self, stream: str) -> list[int]:
        return list(self._streams.get(stream, {}))

    @property
    def nbytes(self) -> int:
        """Bytes of the records kept whole."""
        return self._bytes

    def _evict(self, frames: OrderedDict[int, bytes | tuple[int, int]]) -> None:
        _, value = frames.popitem(last=False)
        if isinstance(value, bytes):
            self._bytes -= len(value)
        self.evicted += 1


class KafkaRecordReader(TopicReader):
    """Reads one record of a topic back by partition and offset (clicks are rare: a short-lived
    consumer each); at most `max_concurrent` at once."""

    async def read(self, partition: int, offset: int) -> bytes | None:
        """The record's value; None when the partition no longer (or never) held that offset.
        Raises BrokerError naming the topic when Kafka does not answer within the timeout."""
        tp = TopicPartition(self.topic, partition)
        return await self.bounded(f"record {partition}:{offset} of {self.topic!r}", lambda: self._read(tp, offset))

    async def _read(self, tp: TopicPartition, offset: int) -> bytes | None:
        consumer = self.consumer("dinostream-gateway-frames")
        try:
            await consumer.start()  # inside: a start that fails or times out is stopped too
            await consumer.topics()
            if tp.partition not in (consumer.partitions_for_topic(tp.topic) or ()):
                return None
            consumer.assign([tp])
            first = (await consumer.beginning_offsets([tp]))[tp]
            end = (await consumer.end_offsets([tp]))[tp]
            if offset < first:
                return None
            consumer.seek(tp, offset)
            # Past the end Kafka has nothing (OffsetOutOfRange: the consumer starts from the earliest,
            # which is not the offset asked for). The embedded broker's end can fall short of a batch
            # of several records (Tansu answers its last batch's first offset + 1), so an offset at
            # or past it is still looked for, for PAST_END_S.
            loop = asyncio.get_running_loop()
            deadline = None if offset < end else loop.time() + PAST_END_S
            while deadline is None or loop.time() < deadline:
                batches = await consumer.getmany(tp, timeout_ms=200, max_records=1)
                for msg in batches.get(tp, ()):
                    return msg.value if msg.offset == offset else None  # past it: not a record (a marker)
            return None
        finally:
            await consumer.stop()
