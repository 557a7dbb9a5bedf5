"""The `VectorIndex` extension point: Qdrant Edge (embedded) and a Qdrant server behind one API."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from dinostream.records import Event, FrameEmbedding


@dataclass(frozen=True)
class FrameHit:
    """A search result: one indexed frame."""

    stream: str
    seq: int
    t: float  # media seconds
    ts: float  # wall-clock unix seconds
    score: float  # cosine similarity, higher is closer
    point_id: str


class VectorIndex(ABC):
    """Frames and events, indexed for retrospective search. Methods are blocking; call them
    from a worker thread. Upserts are idempotent: point ids derive from (stream, frame)."""

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
