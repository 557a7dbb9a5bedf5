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
from collections.abc import Awaitable, Callable, Sequence
from http import HTTPStatus
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException

from dashboard.analytics_control import AnalyticsControl, UnknownProcessor
from dashboard.event_log import EventLog
from dashboard.live_hub import LATEST_THUMBNAIL_PATH, LiveHub
from dashboard.metrics import Families, metrics_router, stream_families
from dashboard.ws_api import ws_router
from dinostream.records import RecordError, check_stream_id
from dinostream.settings import HttpSettings, IndexSettings
from sinks.vector_index import VectorIndex

if TYPE_CHECKING:
    from dashboard.streams_api import StreamCatalog

log = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).with_name("static")
FRAME_THUMBNAIL_PATH = "/api/v1/frames/{stream}/{seq}/thumbnail.jpg"

T = TypeVar("T")
EmbedImages = Callable[[list[np.ndarray]], Awaitable[np.ndarray]]

_PAGE_HEADERS = {
    "Cache-Control": "no-cache",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' blob: data:; connect-src 'self' ws: wss:; "
        "style-src 'self'; script-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
    ),
}
_JPEG_HEADERS = {"X-Content-Type-Options": "nosniff"}


class ApiError(HTTPException):
    """An HTTP error with a short machine-readable `code` and one human line as `detail`."""

    def __init__(self, status_code: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(status_code=status_code, detail=message, headers=headers)
        self.code = code


def error_body(code: str, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message}}


def _default_code(status: int) -> str:
    try:
        return HTTPStatus(status).phrase.lower().replace(" ", "_").replace("-", "_")
    except ValueError:
        return "error"


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    code = getattr(exc, "code", None) or _default_code(exc.status_code)
    message = exc.detail if isinstance(exc.detail, str) and exc.detail else _default_code(exc.status_code)
    if exc.status_code == 404 and not isinstance(exc, ApiError):
        message = f"no such endpoint: {request.method} {request.url.path}"
    return JSONResponse(error_body(code, message), status_code=exc.status_code, headers=exc.headers)


async def _validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    errors = exc.errors()
    first = errors[0] if errors else {}
    where = ".".join(str(p) for p in first.get("loc", ()))
    message = f"{where}: {first.get('msg', 'invalid value')}" if where else str(first.get("msg", "invalid request"))
    if len(errors) > 1:
        message += f" (and {len(errors) - 1} more)"
    return JSONResponse(error_body("invalid_request", message), status_code=422)


async def _internal_error(request: Request, exc: Exception) -> Response:
    # Logged with its traceback by the server; the client gets the one-line shape.
    return JSONResponse(
        error_body("internal_error", f"internal error while handling {request.url.path}: {type(exc).__name__}"),
        status_code=500,
    )


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
) -> FastAPI:
    """Build the dashboard app. `index` or `embed_images` may be None: search then answers 503.

    `health()` returns a dict of component states; the endpoint reports `"status": "degraded"`
    when it raises, has a non-empty `"problems"`, or has `"ok": false` or `"failed": true` at
    any level (e.g. `{"streams": {"cam1": {"failed": true}}}`).

    With `manager`, `/api/v1/streams` adds, lists and removes streams (`dashboard.streams_api`).
    `GET /metrics` serves Prometheus text from `metrics` (callables returning metric families)
    plus the manager's stream metrics; `app.state.metrics.add(...)` exports more.
    """
    app = FastAPI(title="dinostream dashboard", version="1", docs_url="/docs", redoc_url=None)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(Exception, _internal_error)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    @app.get("/", include_in_schema=False)
    async def page() -> Response:
        return FileResponse(STATIC_DIR / "index.html", media_type="text/html", headers=_PAGE_HEADERS)

    @app.get("/api/v1/health")
    async def get_health() -> Response:
        """200 when ok, 503 (same body) when degraded: load balancers and probes read the status code."""
        return health_response(health, {"dashboard": hub.stats()})

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
        idx = _require(index, "the vector index")
        _check_stream(stream)
        if seq < 0:
            raise ApiError(422, "invalid_seq", f"seq must be >= 0, got {seq}")
        data = await asyncio.to_thread(idx.thumbnail, stream, seq)
        if data is None:
            raise ApiError(404, "frame_not_found", f"frame {seq} of stream {stream!r} is not indexed")
        return Response(data, media_type="image/jpeg", headers={**_JPEG_HEADERS, "Cache-Control": "max-age=300"})

    @app.get("/api/v1/streams/{stream}/analytics")
    async def get_analytics(stream: str) -> dict[str, Any]:
        control = _require(analytics, "run-time analytics settings")
        _check_stream(stream)
        return {"stream": stream, "settings": control.settings(stream)}

    @app.patch("/api/v1/streams/{stream}/analytics/{processor}", status_code=202)
    async def change_analytics(stream: str, processor: str, changes: dict[str, Any]) -> dict[str, Any]:
        """Change one processor's settings for one stream (e.g. a threshold). Applied by the
        worker that owns the stream, asynchronously: 202 Accepted."""
        control = _require(analytics, "run-time analytics settings")
        _check_stream(stream)
        try:
            applied = await control.change(stream, processor, changes)
        except UnknownProcessor as e:
            raise ApiError(404, "unknown_processor", str(e)) from None
        except ValueError as e:
            raise ApiError(422, "invalid_settings", str(e)) from None
        return {"stream": stream, "processor": processor, "settings": applied}

    app.include_router(ws_router(settings=settings, hub=hub, event_log=event_log))  # /ws/events

    from dashboard.search_api import search_router  # it imports this module: not at the top

    search = search_router(
        http=settings,
        index_settings=index_settings or IndexSettings(),
        hub=hub,
        index=index,
        embed_images=embed_images,
        health=health,
    )
    app.include_router(search)  # /api/v1/search, /api/v1/streams/{id}/summary, /api/v1/images/*

    if manager is not None:
        from dashboard.streams_api import streams_router  # it imports this module: not at the top

        app.include_router(streams_router(manager, hub))
    # GET /metrics; more families: app.state.metrics.add(callable returning metric families)
    families = [*metrics, *([stream_families(manager.healths)] if manager is not None else [])]
    metrics_api, app.state.metrics = metrics_router(families)
    app.include_router(metrics_api)
    return app


def _require(obj: T | None, what: str) -> T:
    if obj is None:
        raise ApiError(503, "search_unavailable", f"search is unavailable: {what} is not configured in this process")
    return obj


def _check_stream(stream: str) -> str:
    try:
        return check_stream_id(stream)
    except RecordError as e:
        raise ApiError(422, "invalid_stream", str(e)) from None


def health_response(health: Callable[[], dict[str, Any]], extra: dict[str, Any]) -> JSONResponse:
    """The health report with `extra` fields it lacks and its `status`: 200 "ok", or 503
    "degraded" when it has `problems`, or `"ok": false` / `"failed": true` at any level, or
    when `health()` itself raised (a broken probe is a health problem)."""
    try:
        body = dict(health())
    except Exception as e:
        log.exception("health callable failed")
        body = {"problems": [f"health check failed: {type(e).__name__}: {e}"]}
    degraded = bool(body.get("problems")) or _reports_failure(body)
    for key, value in extra.items():
        body.setdefault(key, value)
    body["status"] = "degraded" if degraded else "ok"
    return JSONResponse(jsonable_encoder(body), status_code=503 if degraded else 200)


def _reports_failure(report: Any, depth: int = 0) -> bool:
    """True when a health report has `"ok": false` or `"failed": true` at any level (a component's)."""
    if not isinstance(report, dict) or depth > 8:
        return False
    if report.get("ok") is False or report.get("failed") is True:
        return True
    return any(_reports_failure(v, depth + 1) for v in report.values())
