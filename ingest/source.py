"""The `Source` extension point: anything that yields sampled, resized RGB frames."""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator
from dataclasses import dataclass

import numpy as np

from dinostream.core.records import Jump


@dataclass(frozen=True, eq=False)
class Frame:
    """One sampled frame, already resized by the decoder's scaler to the model's input size."""

    stream: str
    seq: int  # index among this stream's sampled frames, monotonic (see `session_first_seq`)
    pts: float  # media time, seconds
    ts: float  # capture wall-clock time, unix seconds (receive time where the source has none)
    image: np.ndarray  # (H, W, 3) uint8 RGB, C-contiguous
    jump: Jump | None = None  # the largest picture step since the previous sampled frame (`ingest.jumps`)


def session_first_seq(now: float | None = None) -> int:
    """Where a stream's frame numbers start when it starts (again): the wall-clock time in
    milliseconds. Frames are numbered from there on, one by one, so a restarted service, or a
    stream that moved to another ingest node, never reuses a number an earlier session gave —
    frame ids (stream, seq) stay unique and nothing indexed is overwritten — as long as a
    stream samples fewer than 1000 frames per second."""
    return int((time.time() if now is None else now) * 1000)


@dataclass
class SourceStats:
    """Counters a source keeps for health and metrics."""

    decoded: int = 0  # frames decoded
    sampled: int = 0  # frames passed on after sampling
    dropped: int = 0  # frames dropped because the queue was full
    decode_s: float = 0.0  # seconds spent decoding and scaling (decode latency = decode_s / decoded)
    error: str | None = None  # last error text


class Source(ABC):
    """A video source. `frames()` yields sampled frames until the source ends.

    It raises `dinostream.core.errors.SourceError` with a message naming the problem when the
    source cannot be opened or read.
    """

    stream: str
    stats: SourceStats

    def __init__(self, stream: str) -> None:
        self.stream = stream
        self.stats = SourceStats()

    @abstractmethod
    def frames(self) -> AsyncIterator[Frame]:
        """Yield frames; decoding happens off the event loop."""

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Release resources; `frames()` stops soon after."""
