"""The `Processor` extension point: a pure class turning frame embeddings into events."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, Generic, Protocol, TypeVar

from pydantic import BaseModel

from dinostream.core.records import Event, FrameEmbedding
from dinostream.core.settings import merge_settings

S = TypeVar("S", bound=BaseModel)


class FramePass(Protocol):
    """Per-frame work that several processors read (`dinostream.analytics.objects.ObjectPass`):
    computed once per frame, by whoever asks first, and the same for every later reader."""

    def observe(self, record: FrameEmbedding) -> object:
        """Compute (or return what was computed for) this frame."""

    def end(self, stream: str) -> object:
        """The stream ended: what its end does, once, whoever asks."""


class Processor(ABC, Generic[S]):
    """Pure analytics: no sockets, no Kafka, no asyncio.

    Keeps per-stream state that can be saved (`snapshot`) and restored (`restore`), so a
    worker restart resumes where it left off. The Faust agents and `dinostream analyze` call
    the same instances. Settings are a pydantic model; `configure` overrides them for one
    stream at run time (thresholds, warm-up), validated like the defaults.
    """

    name: str
    # The shared per-frame work this processor reads; its host computes each for a frame before
    # it calls the processors (and ends each before it flushes them).
    passes: tuple[FramePass, ...] = ()

    def __init__(self, settings: S) -> None:
        self.settings = settings
        self._overrides: dict[str, S] = {}

    def settings_for(self, stream: str) -> S:
        """The settings in force for `stream`: its overrides, else the defaults."""
        return self._overrides.get(stream, self.settings)

    def overrides(self, stream: str) -> S | None:
        """The stream's own settings, or None when it uses the defaults."""
        return self._overrides.get(stream)

    def configure(self, stream: str, changes: dict[str, Any]) -> S:
        """Override settings for one stream; raises ValueError naming a bad field. Returns the result."""
        try:
            new = merge_settings(self.settings_for(stream), changes)
        except ValueError as e:
            raise ValueError(f"invalid {self.name} settings for stream {stream}: {e}") from None
        self._overrides[stream] = new
        return new

    @abstractmethod
    def process(self, record: FrameEmbedding) -> list[Event]:
        """Consume one frame (in stream order) and return the events it opens, updates or closes."""

    def flush(self, stream: str) -> list[Event]:
        """The stream ended: close whatever is still open. Default: nothing is pending."""
        return []

    @abstractmethod
    def snapshot(self, stream: str) -> dict[str, Any]:
        """JSON-serialisable state of one stream (settings overrides are saved by the caller)."""

    @abstractmethod
    def restore(self, stream: str, state: dict[str, Any]) -> None:
        """Load state produced by `snapshot`; an empty dict resets the stream."""
