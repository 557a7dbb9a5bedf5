"""Run-time analytics settings per stream, as the API sees them.

A change is a typed `StreamUpdate` of the stream's `StreamOverrides`: validated by the processor's
own settings model over what lies below (the global settings, then the settings file's
`streams.<id>`), kept with the stream (the stream registry of `up`, the streams topic of a
gateway: it survives a restart), then sent on the control topic keyed by stream, so it reaches
the worker that owns the stream, which applies it and saves it with the stream's state.

The workers of `up` start from nothing after a restart (the embedded broker keeps no state), so
`republish()` sends every stream's settings again once its streams are known.

    control = AnalyticsControl(settings.analytics, send, manager, configured=settings.streams)
    await control.change("cam1", "anomaly", {"threshold": 1.5})   # validated, persisted, sent
    await control.republish()                                     # after a restart
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from pydantic import BaseModel

from dinostream.core.records import check_stream_id
from dinostream.core.settings import (
    AnalyticsSettings,
    ReidSettings,
    StreamOverrides,
    StreamUpdate,
    analytics_processors,
)
from dinostream.dashboard.streams_api import StreamCatalog
from dinostream.ingest.stream_registry import UnknownStreamError

log = logging.getLogger(__name__)

SendControl = Callable[[str, str, dict[str, Any]], Awaitable[None]]


class UnknownProcessor(LookupError):
    pass


class AnalyticsControl:
    """The analytics settings of each stream: read, changed, and re-sent to the workers.

    `streams` keeps the overrides of the streams it holds; a stream it does not hold (one the
    catalog does not list, or without a catalog) has its overrides kept here, in memory.
    `configured`: the settings file's per-stream overrides (`Settings.streams`), the layer below.
    """

    def __init__(
        self,
        defaults: AnalyticsSettings,
        send: SendControl,
        streams: StreamCatalog | None = None,
        *,
        configured: Mapping[str, StreamOverrides] | None = None,
    ) -> None:
        self.defaults = defaults
        self.streams = streams
        self.configured = configured or {}
        self._send = send
        self._unlisted: dict[str, StreamOverrides] = {}

    @property
    def processors(self) -> list[str]:
        return analytics_processors()

    def overrides(self, stream: str) -> StreamOverrides:
        """The stream's own overrides (not those of the settings file)."""
        status = self.streams.get(stream) if self.streams is not None else None
        if status is not None:
            return status.config.overrides
        return self._unlisted.get(stream, StreamOverrides())

    def effective(self, stream: str, own: StreamOverrides | None = None) -> AnalyticsSettings:
        """The analytics settings `stream` runs with; ValueError names a field that does not validate."""
        layered = (own if own is not None else self.overrides(stream)).over(self.configured.get(stream))
        return self.defaults.model_copy(
            update={p: layered.section_over(f"analytics.{p}", getattr(self.defaults, p)) for p in layered.analytics}
        )

    def reid(self, stream: str) -> ReidSettings:
        """The stream's re-identification settings (click-to-segment reads its threshold)."""
        return self.effective(stream).reid

    def settings(self, stream: str) -> dict[str, dict[str, Any]]:
        check_stream_id(stream)
        effective = self.effective(stream)
        return {name: getattr(effective, name).model_dump(mode="json") for name in self.processors}

    async def change(self, stream: str, processor: str, changes: dict[str, Any]) -> dict[str, Any]:
        """Validate, persist with the stream, send; return the processor's settings now.

        ValueError names a bad field, UnknownProcessor an unknown processor; a RegistryError when
        the stream's settings cannot be written (nothing is sent then)."""
        check_stream_id(stream)
        if processor not in self.processors:
            raise UnknownProcessor(f"unknown processor {processor!r}; known: {', '.join(self.processors)}")
        update = StreamUpdate.analytics(processor, changes)
        try:
            own = self.overrides(stream).apply(update)
            applied: BaseModel = getattr(self.effective(stream, own), processor)
        except ValueError as e:
            raise ValueError(f"invalid {processor} settings: {e}") from None
        await self._keep(stream, update, own)
        values = applied.model_dump(mode="json")
        await self._send(stream, processor, {k: values[k] for k in changes})
        return values

    async def _keep(self, stream: str, update: StreamUpdate, own: StreamOverrides) -> None:
        if self.streams is not None and self.streams.get(stream) is not None:
            try:
                await self.streams.update(stream, update)
                return
            except UnknownStreamError:  # removed meanwhile: kept here like any unlisted stream
                pass
        self._unlisted[stream] = own

    async def publish(self, stream: str) -> int:
        """Send the stream's analytics overrides (the settings file's and its own) to its worker;
        return how many control messages went out. Setting a value twice changes nothing."""
        try:
            effective = self.effective(stream)
        except ValueError as e:  # the global settings changed under a kept override
            log.error("stream %s: analytics settings not sent: %s", stream, e)
            return 0
        layered = self.overrides(stream).over(self.configured.get(stream))
        for processor, values in layered.analytics.items():
            dumped = getattr(effective, processor).model_dump(mode="json")
            await self._send(stream, processor, {k: dumped[k] for k in values})
        return len(layered.analytics)

    async def republish(self) -> int:
        """`publish` every stream this knows of (after a restart)."""
        listed = [s.config.id for s in self.streams.list()] if self.streams is not None else []
        sent = 0
        for stream in dict.fromkeys([*self.configured, *listed, *self._unlisted]):
            sent += await self.publish(stream)
        return sent
