"""The `Source` extension point: anything that yields sampled, resized RGB frames."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, eq=False)
class Frame:
    """One sampled frame, already resized by the decoder's scaler to the model's input size."""

    stream: str
    seq: int  # index among this stream's sampled frames, monotonic from 0
    pts: float  # media time, seconds
    ts: float  # capture wall-clock time, unix seconds (receive time where the source has none)
    image: np.ndarray  # (H, W, 3) uint8 RGB, C-contiguous


@dataclass
class SourceStats:
    """Counters a source keeps for health and metrics."""

    decoded: int = 0  # frames decoded
    sampled: int = 0  # frames passed on after sampling
    dropped: int = 0  # frames dropped because the queue was full
    error: str | None = None  # last error text


class Source(ABC):
    """A video source. `frames()` yields sampled frames until the source ends.

    It raises `dinostream.errors.SourceError` with a message naming the problem when the
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
