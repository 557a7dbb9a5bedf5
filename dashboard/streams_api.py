"""`/api/v1/streams`: add, list, inspect and remove the streams of the running service.

A thin shell over a `StreamCatalog`: the `StreamManager` of `up`, or a gateway's `StreamDirectory`.
Errors use the app's one JSON shape (raised as `dinostream.dashboard.app.ApiError`):

- POST, a URL the policy refuses: 422 `{"error": {"code": "url_refused", "message": <reason>}}`
- POST, a file under a media root that does not exist (or is not a file): 422 `file_not_found`,
  before anything is added (it would only fail once running)
- POST, an id already in use: 409 `duplicate_stream`; invalid fields: 422 `invalid_request`
- GET/DELETE of an unknown id: 404 `stream_not_found`

    >>> app.include_router(streams_router(manager, hub))
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from fastapi import APIRouter

from dinostream.core.errors import DinostreamError
from dinostream.core.records import RecordError, check_stream_id
from dinostream.core.settings import IngestSettings, StreamUpdate
from dinostream.dashboard.http_common import ApiError
from dinostream.dashboard.live_hub import LiveHub
from dinostream.ingest.stream_manager import StreamStatus
from dinostream.ingest.stream_registry import DuplicateStreamError, RegistryError, StreamConfig, UnknownStreamError
from dinostream.ingest.url_policy import UrlRefused, check_url, redact

PREFIX = "/api/v1/streams"


class StreamCatalog(Protocol):
    """The streams behind the API: `dinostream.ingest.stream_manager.StreamManager` (they run in this process,
    `dinostream up`) or `dinostream.ingest.stream_directory.StreamDirectory` (a gateway: they run on the ingest
    nodes, through the streams topic)."""

    async def add(self, config: StreamConfig, *, trusted: bool = False, persist: bool = True) -> StreamStatus: ...

    async def remove(self, stream_id: str) -> StreamConfig: ...

    async def update(self, stream_id: str, update: StreamUpdate) -> StreamConfig:
        """Apply a typed change to the stream's settings and keep it with the stream (persisted
        when the stream is). Raises UnknownStreamError, or ValueError naming a bad field."""
        ...

    def get(self, stream_id: str) -> StreamStatus | None: ...

    def list(self) -> list[StreamStatus]: ...

    def healths(self) -> dict[str, dict[str, Any]]: ...


def streams_router(
    manager: StreamCatalog,
    hub: LiveHub | None = None,
    on_added: Callable[[str], Awaitable[Any]] | None = None,
    *,
    ingest: IngestSettings | None = None,
) -> APIRouter:
    """The stream endpoints. With `hub`, each stream also carries what the dashboard shows live
    (latest frame, thumbnail URL, last event: the fields of the hub-only `GET /api/v1/streams`).
    `on_added(stream_id)` runs after a stream with analytics settings is added (the gateway's
    `AnalyticsControl.publish` sends them to the workers). With `ingest` (the settings the streams
    are opened under), a file source is looked for first: missing, 422 `file_not_found`."""
    router = APIRouter(prefix=PREFIX, tags=["streams"])

    def render(status: StreamStatus) -> dict[str, Any]:
        live = hub.streams().get(status.config.id) if hub is not None else None
        base: dict[str, Any] = dict(live) if live else {"stream": status.config.id}
        return {**base, **status.to_dict()}

    def known(stream: str) -> StreamStatus:
        try:
            check_stream_id(stream)
        except RecordError as e:
            raise ApiError(422, "invalid_stream", str(e)) from None
        status = manager.get(stream)
        if status is None:
            raise ApiError(404, "stream_not_found", f"no stream {stream!r}")
        return status

    @router.post("", status_code=201)
    async def add_stream(config: StreamConfig) -> dict[str, Any]:
        """Add a stream; it connects in the background (see its `health.state`)."""
        if ingest is not None:
            await asyncio.to_thread(_check_file, config.url, ingest)
        try:
            status = await manager.add(config, trusted=False, persist=True)
        except UrlRefused as e:
            raise ApiError(422, "url_refused", str(e), details={"url": redact(config.url)}) from None
        except DuplicateStreamError as e:
            raise ApiError(409, "duplicate_stream", str(e)) from None
        except RegistryError as e:
            raise ApiError(500, "registry_error", str(e)) from None
        except DinostreamError as e:  # a resolution the model cannot use, a source error
            raise ApiError(422, "invalid_stream_config", str(e)) from None
        if on_added is not None and config.analytics:
            await on_added(config.id)
        return render(status)

    @router.get("")
    async def list_streams() -> dict[str, Any]:
        """Every stream with its configuration and health, keyed by id."""
        return {"streams": {s.config.id: render(s) for s in manager.list()}}

    @router.get("/{stream}")
    async def get_stream(stream: str) -> dict[str, Any]:
        return render(known(stream))

    @router.delete("/{stream}")
    async def remove_stream(stream: str) -> dict[str, Any]:
        """Stop the stream and delete it from the registry."""
        known(stream)
        try:
            config = await manager.remove(stream)
        except UnknownStreamError as e:  # removed meanwhile by another request
            raise ApiError(404, "stream_not_found", str(e)) from None
        except RegistryError as e:
            raise ApiError(500, "registry_error", str(e)) from None
        return {"id": config.id, "removed": True, "config": config.model_dump(mode="json")}

    return router


def _check_file(url: str, ingest: IngestSettings) -> None:
    """422 when `url` is a file the policy allows but that is not there. Only where this process
    sees the media root: a gateway whose streams run on ingest nodes with their own disks leaves
    the check to them (the stream then fails in its own health)."""
    try:
        checked = check_url(url, ingest, trusted=False)
    except UrlRefused as e:
        raise ApiError(422, "url_refused", str(e), details={"url": redact(url)}) from None
    if checked.kind != "file" or os.path.isfile(checked.target):
        return
    roots = [os.path.realpath(r) for r in ingest.media_roots]
    root = next((r for r in roots if os.path.commonpath([checked.target, r]) == r), None)
    if root is not None and not os.path.isdir(root):
        return  # this process does not see that media root
    what = "is not a file" if os.path.exists(checked.target) else "does not exist"
    raise ApiError(
        422,
        "file_not_found",
        f"the video file {url} {what} under the media roots: nothing was added",
        details={"url": url},
    )
