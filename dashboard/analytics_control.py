"""Run-time analytics settings per stream, as the API sees them.

Changes are validated here against the same pydantic models the processors use, then sent on
the control topic keyed by stream, so they reach the worker that owns the stream, which applies
them and saves them with the stream's state. The gateway remembers what it accepted to show it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from pydantic import BaseModel

from dinostream.core.records import check_stream_id
from dinostream.core.settings import AnalyticsSettings, merge_settings

SendControl = Callable[[str, str, dict[str, Any]], Awaitable[None]]


class UnknownProcessor(LookupError):
    pass


class AnalyticsControl:
    def __init__(self, defaults: AnalyticsSettings, send: SendControl) -> None:
        self.defaults = defaults
        self._send = send
        self._accepted: dict[tuple[str, str], BaseModel] = {}

    @property
    def processors(self) -> list[str]:
        return [name for name, value in self.defaults if isinstance(value, BaseModel)]

    def settings(self, stream: str) -> dict[str, dict[str, Any]]:
        check_stream_id(stream)
        return {name: self._current(stream, name).model_dump(mode="json") for name in self.processors}

    def _current(self, stream: str, processor: str) -> BaseModel:
        if processor not in self.processors:
            raise UnknownProcessor(f"unknown processor {processor!r}; known: {', '.join(self.processors)}")
        default = getattr(self.defaults, processor)
        return self._accepted.get((stream, processor), default)

    async def change(self, stream: str, processor: str, changes: dict[str, Any]) -> dict[str, Any]:
        """Validate and send; ValueError names a bad field, UnknownProcessor an unknown processor."""
        check_stream_id(stream)
        current = self._current(stream, processor)
        try:
            new = merge_settings(current, changes)
        except ValueError as e:
            raise ValueError(f"invalid {processor} settings: {e}") from None
        await self._send(stream, processor, changes)
        self._accepted[(stream, processor)] = new
        return new.model_dump(mode="json")
