"""The `Processor` extension point: a pure class turning frame embeddings into events."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

from dinostream.records import Event, FrameEmbedding


class Processor(ABC):
    """Pure analytics: no sockets, no Kafka, no asyncio.

    Keeps per-stream state that can be saved (`snapshot`) and restored (`restore`), so a
    worker restart resumes where it left off. The Faust agents and `dinostream analyze` call
    the same instances.
    """

    name: str

    @abstractmethod
    def process(self, record: FrameEmbedding) -> list[Event]:
        """Consume one frame (in stream order) and return the events it completes."""

    @abstractmethod
    def snapshot(self, stream: str) -> dict[str, Any]:
        """JSON-serialisable state of one stream."""

    @abstractmethod
    def restore(self, stream: str, state: dict[str, Any]) -> None:
        """Load state produced by `snapshot`."""
