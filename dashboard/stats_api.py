"""`GET /api/v1/stats`: what the gateway has seen since it started, in one JSON object.

    {"uptime_s": 812.4, "started_at": 1764880000.1,
     "streams": 3, "frames_seen": 9120, "events_seen": 41, "websocket_clients": 2,
     "index": {"frames": 120000, "events": 950},            null without an index or when it cannot say
     "requests": {"total": 530, "by_status": {"200": 511, "404": 4, "422": 15}},
     ...}                                                    more sections from `extra` (e.g. assets)

Requests are counted by the status the client got (`RequestCounter`, the app's outermost
middleware, so refusals by the guard count too); websocket connections are not requests.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Callable, Mapping
from typing import Any

from fastapi import APIRouter
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from dinostream.dashboard.live_hub import LiveHub
from dinostream.sinks.vector_index import VectorIndex

log = logging.getLogger(__name__)


class RequestCounts:
    """HTTP responses by status since `started_at` (wall clock) / `started` (monotonic)."""

    def __init__(self) -> None:
        self.by_status: Counter[int] = Counter()
        self.started_at = time.time()
        self.started = time.monotonic()

    def to_dict(self) -> dict[str, Any]:
        return {
            "total": sum(self.by_status.values()),
            "by_status": {str(k): v for k, v in sorted(self.by_status.items())},
        }


class RequestCounter:
    """ASGI middleware: counts every HTTP response's status in `counts` (500 for a request that
    failed before it answered)."""

    def __init__(self, app: ASGIApp, counts: RequestCounts) -> None:
        self.app = app
        self.counts = counts

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status: list[int] = []

        async def watched(message: Message) -> None:
            if message["type"] == "http.response.start":
                status.append(int(message["status"]))
            await send(message)

        try:
            await self.app(scope, receive, watched)
        finally:
            self.counts.by_status[status[0] if status else 500] += 1


def stats_router(
    counts: RequestCounts,
    hub: LiveHub,
    index: VectorIndex | None,
    streams: Callable[[], int] | None = None,
    extra: Mapping[str, Callable[[], Any]] | None = None,
) -> APIRouter:
    """The stats endpoint. `streams()` counts the streams of the service (default: those the live
    feed has seen); `extra` adds sections (name -> callable returning JSON-able data)."""
    router = APIRouter()

    @router.get("/api/v1/stats")
    async def get_stats() -> dict[str, Any]:
        """Counts since the gateway started: streams, frames and events seen, the index's size when
        it can tell, uptime and requests by status."""
        live = hub.stats()
        out: dict[str, Any] = {
            "uptime_s": round(time.monotonic() - counts.started, 3),
            "started_at": counts.started_at,
            "streams": streams() if streams is not None else live["streams"],
            "frames_seen": live["frames"],
            "events_seen": live["events"],
            "websocket_clients": live["clients"],
            "index": await asyncio.to_thread(_index_size, index) if index is not None else None,
            "requests": counts.to_dict(),
        }
        for name, section in (extra or {}).items():
            out[name] = await asyncio.to_thread(section)  # e.g. the asset store reads its folder
        return out

    return router


def _index_size(index: VectorIndex) -> dict[str, int] | None:
    try:
        return {"frames": index.count_frames(), "events": index.count_events()}
    except Exception as e:  # noqa: BLE001 - the size is shown "if known": a failing index says so in health
        log.warning("stats: the index could not count its points: %s", e)
        return None
