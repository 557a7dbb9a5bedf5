"""The last few frame records of each stream, kept whole so a click on a live frame can be turned
into a watchlist exemplar or a click-to-segment heatmap from that frame's patch grid.

Bounded twice: at most `per_stream` records per stream and `max_bytes` in all (the stream with
the most records gives up its oldest first). Records are stored encoded and decoded on demand.

    recent = RecentFrames(per_stream=32, max_bytes=64_000_000)
    recent.add(record_bytes)                 # from the embeddings topic (or add(data, header))
    rec = recent.get("cam-1", 1234)          # FrameEmbedding or None
"""

from __future__ import annotations

from collections import OrderedDict

from dinostream.core.records import FrameEmbedding, FrameHeader


class RecentFrames:
    def __init__(self, per_stream: int = 32, max_bytes: int = 64_000_000) -> None:
        if per_stream < 1 or max_bytes < 1:
            raise ValueError(f"per_stream and max_bytes must be positive, got {per_stream}, {max_bytes}")
        self.per_stream = per_stream
        self.max_bytes = max_bytes
        self._streams: dict[str, OrderedDict[int, bytes]] = {}
        self._bytes = 0
        self.evicted = 0

    def add(self, data: bytes, header: FrameHeader | None = None) -> None:
        """Keep one encoded FrameEmbedding. Only its header is read, and not even that when the
        caller passes the one it read already (`LiveFeed` does)."""
        h = FrameHeader.decode(data) if header is None else header
        frames = self._streams.setdefault(h.stream, OrderedDict())
        old = frames.pop(h.seq, None)
        if old is not None:
            self._bytes -= len(old)
        frames[h.seq] = data
        self._bytes += len(data)
        while len(frames) > self.per_stream:
            self._evict(frames)
        while self._bytes > self.max_bytes:
            self._evict(max(self._streams.values(), key=len))

    def get(self, stream: str, seq: int) -> FrameEmbedding | None:
        data = self._streams.get(stream, {}).get(seq)
        return None if data is None else FrameEmbedding.decode(data)

    def latest(self, stream: str) -> FrameEmbedding | None:
        frames = self._streams.get(stream)
        if not frames:
            return None
        return FrameEmbedding.decode(frames[next(reversed(frames))])

    def seqs(self, stream: str) -> list[int]:
        return list(self._streams.get(stream, {}))

    @property
    def nbytes(self) -> int:
        return self._bytes

    def _evict(self, frames: OrderedDict[int, bytes]) -> None:
        _, data = frames.popitem(last=False)
        self._bytes -= len(data)
        self.evicted += 1
