"""The dashboard's HTTP and websocket API, and the static operator page.

A thin I/O shell: live state comes from a `LiveHub`, search from a `VectorIndex` and an image
embedder handed in by the caller. Every error answers with one JSON shape:
`{"error": {"code": "<short_code>", "message": "<one clear line>"}}`.

    >>> app = create_app(settings=HttpSettings(), hub=LiveHub(256), index=index,
    ...                  embed_images=embedder.embed_images, health=lambda: {"kafka": "ok"})
    >>> uvicorn.run(app, host="127.0.0.1", port=8000)
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, Response
from fastapi.staticfiles import StaticFiles

from dinostream.core.errors import BrokerError
from dinostream.core.settings import HttpSettings, IndexSettings, IngestSettings, ReidSettings
from dinostream.dashboard.analysis_jobs import AnalysisJobs, AnalyzeVideo
from dinostream.dashboard.analytics_control import AnalyticsControl, UnknownProcessor
from dinostream.dashboard.assets_api import assets_router
from dinostream.dashboard.event_log import EventLog
from dinostream.dashboard.guard import install_guard, restricted
from dinostream.dashboard.http_common import (
    FRAME_THUMBNAIL_PATH,
    ApiError,
    EmbedImages,
    check_stream,
    health_response,
    install_error_handlers,
    require,
)
from dinostream.dashboard.live_hub import LATEST_THUMBNAIL_PATH, LiveHub
from dinostream.dashboard.liveness import liveness_router
from dinostream.dashboard.metrics import Families, metrics_router, stream_families
from dinostream.dashboard.recent_frames import RecentFrames
from dinostream.dashboard.search_api import search_router
from dinostream.dashboard.stats_api import RequestCounter, RequestCounts, stats_router
from dinostream.dashboard.streams_api import StreamCatalog, streams_router
from dinostream.dashboard.ws_api import ws_router
from dinostream.sinks.asset_store import AssetStore
from dinostream.sinks.vector_index import VectorIndex

log = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).with_name("static")


_PAGE_HEADERS = {
    "Cache-Control": "no-cache",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' blob: data:; connect-src 'self' ws: wss:; "
        "style-src 'self'; script-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
    ),
}
_JPEG_HEADERS = {"X-Content-Type-Options": "nosniff"}


def create_app(
    *,
    settings: HttpSettings,
    hub: LiveHub,
    index: VectorIndex | None,
    embed_images: EmbedImages | None,
    health: Callable[[], dict[str, Any]],
    analytics: AnalyticsControl | None = None,
    manager: StreamCatalog | None = None,
    metrics: Sequence[Families] = (),
    event_log: EventLog | None = None,
    index_settings: IndexSettings | None = None,
    reid_settings: ReidSettings | None = None,
    alive: Callable[[], str | None] | None = None,
    ingest_settings: IngestSettings | None = None,
    assets: AssetStore | None = None,
    analyze_video: AnalyzeVideo | None = None,
    recent: RecentFrames | None = None,
) -> FastAPI:
    """Build the dashboard app. `index` or `embed_images` may be None: search then answers 503.

    Every request passes `dinostream.dashboard.guard` first (access control by `settings.tokens`,
    Host and Origin checks, body and pixel limits, the audit log), routes included later too.
    `health()` returns a dict of component states; the endpoint reports `"status": "degraded"`
    when it raises, has a non-empty `"problems"`, or has `"ok": false` or `"failed": true` at
    any level (e.g. `{"streams": {"cam1": {"failed": true}}}`).

    With `manager`, `/api/v1/streams` adds, lists and removes streams (`dinostream.dashboard.streams_api`).
    `GET /metrics` serves Prometheus text from `metrics` (callables returning metric families)
    plus the manager's stream metrics; `app.state.metrics.add(...)` exports more.
    Point search segments with each stream's re-identification settings: `analytics.reid(stream)`,
    else `reid_settings` (default `ReidSettings()`). With `ingest_settings`, a stream whose file is
    missing is refused before it is added (`streams_router`). `GET /api/v1/stats` counts what the
    gateway has seen; `app.state.stats_sections[name] = callable` adds a section to it. With
    `assets`, `/api/v1/assets` stores pictures and videos the image utilities and search take by id,
    and with `analyze_video` analyses stored videos in the background (`app.state.analysis_jobs`).
    With `recent`, a frame's thumbnail the index has not stored yet (it writes a moment after the
    analytics: an event's frames are asked for as soon as the event arrives) comes from the
    gateway's recent frames instead of a 404.
    """
    app = FastAPI(title="dinostream dashboard", version="1", docs_url="/docs", redoc_url=None)
    install_error_handlers(app)
    install_guard(app, settings)  # Host, Origin, tokens and roles, body and pixel limits, audit log
    counts = app.state.request_counts = RequestCounts()
    app.add_middleware(RequestCounter, counts=counts)  # outermost: the guard's refusals count too
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    @app.get("/", include_in_schema=False)
    async def page() -> Response:
        return FileResponse(STATIC_DIR / "index.html", media_type="text/html", headers=_PAGE_HEADERS)

    # GET /livez: the process and alive() (what stopped that a restart would fix), apart from readiness.
    app.include_router(liveness_router(alive))

    @app.get("/api/v1/health")
    async def get_health(request: Request) -> Response:
        """200 when ok, 503 (same body) when degraded: load balancers and probes read the status code.
        Where tokens are required, a caller without one gets only the status."""
        return health_response(health, {"dashboard": hub.stats()}, details=not restricted(request.scope))

    if manager is None:  # with a manager, the streams router serves it (live info merged in)

        @app.get("/api/v1/streams")
        async def get_streams() -> dict[str, Any]:
            return {"streams": hub.streams()}

    @app.get(LATEST_THUMBNAIL_PATH)
    async def get_latest_thumbnail(stream: str) -> Response:
        data = hub.latest_thumbnail(stream)
        if data is None:
            raise ApiError(404, "thumbnail_not_found", f"no thumbnail received yet for stream {stream!r}")
        return Response(data, media_type="image/jpeg", headers={**_JPEG_HEADERS, "Cache-Control": "no-cache"})

    @app.get(FRAME_THUMBNAIL_PATH)
    async def get_frame_thumbnail(stream: str, seq: int) -> Response:
        idx = require(index, "the vector index")
        check_stream(stream)
        if seq < 0:
            raise ApiError(422, "invalid_seq", f"seq must be >= 0, got {seq}")
        data = await asyncio.to_thread(idx.thumbnail, stream, seq)
        if data is None and recent is not None:
            try:
                rec = await recent.get(stream, seq)
            except BrokerError as e:
                raise ApiError(503, "broker_unavailable", str(e)) from None
            data = rec.thumbnail if rec is not None and rec.thumbnail else None
        if data is None:
            raise ApiError(404, "frame_not_found", f"frame {seq} of stream {stream!r} is not indexed")
        return Response(data, media_type="image/jpeg", headers={**_JPEG_HEADERS, "Cache-Control": "max-age=300"})

    @app.get("/api/v1/streams/{stream}/analytics")
    async def get_analytics(stream: str) -> dict[str, Any]:
        control = require(analytics, "run-time analytics settings")
        check_stream(stream)
        return {"stream": stream, "settings": control.settings(stream)}

    @app.patch("/api/v1/streams/{stream}/analytics/{processor}", status_code=202)
    async def change_analytics(stream: str, processor: str, changes: dict[str, Any]) -> dict[str, Any]:
        """Change one processor's settings for one stream (e.g. a threshold). Applied by the
        worker that owns the stream, asynchronously: 202 Accepted."""
        control = require(analytics, "run-time analytics settings")
        check_stream(stream)
        try:
            applied = await control.change(stream, processor, changes)
        except UnknownProcessor as e:
            raise ApiError(404, "unknown_processor", str(e)) from None
        except ValueError as e:
            raise ApiError(422, "invalid_settings", str(e)) from None
        return {"stream": stream, "processor": processor, "settings": applied}

    app.include_router(ws_router(settings=settings, hub=hub, event_log=event_log))  # /ws/events

    search = search_router(
        http=settings,
        index_settings=index_settings or IndexSettings(),
        reid_settings=analytics.reid if analytics is not None else reid_settings or ReidSettings(),
        hub=hub,
        index=index,
        embed_images=embed_images,
        health=health,
        assets=assets,
    )
    app.include_router(search)  # /api/v1/search, /api/v1/streams/{id}/summary, /api/v1/images/*

    if manager is not None:
        on_added = analytics.publish if analytics is not None else None
        app.include_router(streams_router(manager, hub, on_added, ingest=ingest_settings))
    sections: dict[str, Callable[[], Any]] = {}
    app.state.stats_sections = sections
    if assets is not None:
        jobs = app.state.analysis_jobs = AnalysisJobs(analyze_video) if analyze_video is not None else None
        app.include_router(assets_router(assets, settings, jobs))  # /api/v1/assets
        sections["assets"] = assets.stats
        if jobs is not None:
            sections["analyses"] = jobs.stats
    streams_count = (lambda: len(manager.list())) if manager is not None else None
    app.include_router(stats_router(counts, hub, index, streams_count, sections))  # /api/v1/stats
    # GET /metrics; more families: app.state.metrics.add(callable returning metric families)
    families = [*metrics, *([stream_families(manager.healths)] if manager is not None else [])]
    metrics_api, app.state.metrics = metrics_router(families)
    app.include_router(metrics_api)
    return app
