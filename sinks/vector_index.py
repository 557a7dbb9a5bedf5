"""The `VectorIndex` extension point: Qdrant Edge (embedded) and a Qdrant server behind one API.

Three collections: frames (global "cls" and "pooled" vectors, searched by "cls"), regions (one
point per frame holding its patch grid average-pooled to a few cells, searched with MaxSim for
"where else does this object appear") and events (payload only). All three carry stream, t
(media seconds) and ts (wall clock) with payload indexes, so searches filter by stream and time
and retention deletes by age.

    >>> hits = index.query_frames(vector, 50, FrameFilter(streams=["cam1"], since=t0, until=t1))
    >>> frame = index.frame_at("cam1", 12.5, with_cells=True)
    >>> index.delete_older_than(None, time.time() - 7 * 86400)
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from dinostream.core.records import Event, FrameEmbedding


@dataclass(frozen=True)
class FrameHit:
    """A search result: one indexed frame."""

    stream: str
    seq: int
    t: float  # media seconds
    ts: float  # wall-clock unix seconds
    score: float  # cosine similarity (MaxSim for regions), higher is closer
    point_id: str


@dataclass(frozen=True)
class FrameFilter:
    """Which frames a query may return. Every given part must hold; None means no constraint."""

    streams: Sequence[str] | None = None  # an empty list matches nothing
    since: float | None = None  # wall-clock ts >= since
    until: float | None = None  # wall-clock ts <= until
    point_ids: Sequence[str] | None = None  # only these frame points (an empty list matches nothing)

    def __post_init__(self) -> None:
        if self.since is not None and self.until is not None and self.since > self.until:
            raise ValueError(f"time range is empty: from {self.since} is after to {self.until}")

    @property
    def matches_nothing(self) -> bool:
        return (self.streams is not None and not self.streams) or (self.point_ids is not None and not self.point_ids)

    @property
    def only_streams(self) -> bool:
        return self.since is None and self.until is None and self.point_ids is None


@dataclass(frozen=True, eq=False)
class StoredFrame:
    """What the index holds of one frame: its vectors, and its pooled cell grid when asked for."""

    stream: str
    seq: int
    t: float
    ts: float
    cls: np.ndarray  # (dim,) float32, unit length (cosine storage normalises)
    pooled: np.ndarray  # (dim,) float32, unit length
    cells: np.ndarray | None = None  # (gh, gw, patch_dim) float32 unit cells, see index_payload.region_cells


@dataclass(frozen=True)
class EventFilter:
    streams: Sequence[str] | None = None
    types: Sequence[str] | None = None
    since: float | None = None  # wall-clock ts
    until: float | None = None


class VectorIndex(ABC):
    """Frames and events, indexed for retrospective search. Methods are blocking; call them
    from a worker thread. Upserts are idempotent: point ids derive from (stream, frame).

    The methods below the abstract ones have defaults that raise NotImplementedError (or, for
    `query_frames`, fall back to `search_frames` when only streams are filtered), so that a
    minimal index (a test double) still serves image search. Both Qdrant backends implement all."""

    @abstractmethod
    def upsert_frames(self, records: Sequence[FrameEmbedding]) -> None: ...

    @abstractmethod
    def upsert_events(self, events: Sequence[Event]) -> None: ...

    @abstractmethod
    def search_frames(
        self, vector: np.ndarray, limit: int = 10, streams: Sequence[str] | None = None
    ) -> list[FrameHit]:
        """Nearest frames by cosine similarity of the global (CLS) embedding."""

    @abstractmethod
    def thumbnail(self, stream: str, seq: int) -> bytes | None:
        """The JPEG thumbnail stored with a frame, or None when not indexed."""

    @abstractmethod
    def count_frames(self) -> int: ...

    @abstractmethod
    def count_events(self) -> int: ...

    @abstractmethod
    def close(self) -> None: ...

    # -- retrospective search ---------------------------------------------------------------

    def query_frames(self, vector: np.ndarray, limit: int, where: FrameFilter | None = None) -> list[FrameHit]:
        """Nearest frames by CLS cosine among those `where` admits."""
        where = where or FrameFilter()
        if where.only_streams:
            return self.search_frames(vector, limit, where.streams)
        raise NotImplementedError(f"{type(self).__name__} cannot filter a search by time or frame")

    def query_regions(self, vector: np.ndarray, limit: int, where: FrameFilter | None = None) -> list[FrameHit]:
        """Frames where some pooled cell is close to `vector` (a patch-space vector): MaxSim."""
        raise NotImplementedError(f"{type(self).__name__} has no patch-level (point) search")

    def frame(self, stream: str, seq: int, *, with_cells: bool = False) -> StoredFrame | None:
        """One indexed frame's vectors, or None when it is not indexed."""
        raise NotImplementedError(f"{type(self).__name__} cannot read stored frames")

    def frame_at(self, stream: str, t: float, *, with_cells: bool = False) -> StoredFrame | None:
        """The indexed frame of `stream` whose media time is nearest `t` (the earlier on a tie)."""
        raise NotImplementedError(f"{type(self).__name__} cannot read stored frames")

    def frames_between(self, stream: str, since: float | None, until: float | None, limit: int) -> list[StoredFrame]:
        """Up to `limit` frames of `stream` with since <= ts <= until, in ts order (no cells)."""
        raise NotImplementedError(f"{type(self).__name__} cannot read stored frames")

    def count_frames_where(self, where: FrameFilter) -> int:
        raise NotImplementedError(f"{type(self).__name__} cannot count by filter")

    def event(self, event_id: str) -> Event | None:
        """The stored event with this id, or None."""
        raise NotImplementedError(f"{type(self).__name__} cannot read stored events")

    def events(self, where: EventFilter, limit: int) -> list[Event]:
        """Up to `limit` stored events matching `where`, newest (by ts) first."""
        raise NotImplementedError(f"{type(self).__name__} cannot list stored events")

    # -- upkeep ------------------------------------------------------------------------------

    def streams(self) -> list[str]:
        """Every stream with an indexed frame or event, sorted."""
        raise NotImplementedError(f"{type(self).__name__} cannot list streams")

    def delete_older_than(self, stream: str | None, ts: float) -> None:
        """Delete frames, regions and events (of `stream`, or of every stream) with ts < `ts`."""
        raise NotImplementedError(f"{type(self).__name__} has no retention")

    def defer_flush(self) -> None:
        """From now on a write returns once it is applied and in the write-ahead log (which survives
        a crash of the process), without persisting the segments each time: `flush()` does, for a
        writer that acknowledges in batches (the index sink commits its offsets after a flush).
        Nothing changes where a write is as durable as it gets when it returns (the server)."""
        return None

    def flush(self) -> None:
        """Persist every write made since `defer_flush` (blocking). Nothing to do by default."""
        return None

    def optimize(self) -> bool:
        """Build search graphs for what was written since the last call (blocking; may take
        seconds for 100k frames). True when something changed. Servers do this by themselves."""
        return False
