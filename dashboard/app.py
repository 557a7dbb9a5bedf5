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
import contextlib
import io
import logging
from collections.abc import Awaitable, Callable, Sequence
from http import HTTPStatus
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
from fastapi import FastAPI, Request, WebSocket
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from PIL import Image, UnidentifiedImageError
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.types import Message
from starlette.websockets import WebSocketDisconnect, WebSocketDisconnected

from dashboard.analytics_control import AnalyticsControl, UnknownProcessor
from dashboard.live_hub import LATEST_THUMBNAIL_PATH, LiveHub, Subscription
from dinostream.records import RecordError, check_stream_id
from dinostream.settings import HttpSettings
from sinks.vector_index import VectorIndex

log = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).with_name("static")
FRAME_THUMBNAIL_PATH = "/api/v1/frames/{stream}/{seq}/thumbnail.jpg"
MAX_SEARCH_LIMIT = 100
DEFAULT_SEARCH_LIMIT = 10
# Close code for a client dropped for reading too slowly: 1013 "Try Again Later".
WS_CLOSE_TOO_SLOW = 1013

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
) -> FastAPI:
    """Build the dashboard app. `index` or `embed_images` may be None: search then answers 503.

    `health()` returns a dict of component states; the endpoint reports `"status": "degraded"`
    when it raises, has a non-empty `"problems"`, or has `"ok": false` or `"failed": true` at
    any level (e.g. `{"streams": {"cam1": {"failed": true}}}`).
    """
    app = FastAPI(title="dinostream dashboard", version="1", docs_url="/api/docs", redoc_url=None)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(Exception, _internal_error)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    @app.get("/", include_in_schema=False)
    async def page() -> Response:
        return FileResponse(STATIC_DIR / "index.html", media_type="text/html", headers=_PAGE_HEADERS)

    @app.get("/api/v1/health")
    async def get_health() -> dict[str, Any]:
        try:
            body = dict(health())
        except Exception as e:  # a broken health probe is itself a health problem
            log.exception("health callable failed")
            body = {"problems": [f"health check failed: {type(e).__name__}: {e}"]}
        degraded = bool(body.get("problems")) or _reports_failure(body)
        body.setdefault("dashboard", hub.stats())
        body["status"] = "degraded" if degraded else "ok"
        return body

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

    @app.post("/api/v1/search", openapi_extra=_SEARCH_OPENAPI)
    async def search(request: Request) -> dict[str, Any]:
        # The body is parsed here rather than by FastAPI so the size limit is enforced while
        # reading (Content-Length first, then the bytes actually received) with our error shape.
        idx = _require(index, "the vector index")
        embed = _require(embed_images, "the image embedder")
        content_type = request.headers.get("content-type", "")
        if not content_type.lower().startswith("multipart/form-data"):
            raise ApiError(
                415, "unsupported_media_type", "send multipart/form-data with the query picture as file field 'image'"
            )
        limited = Request(request.scope, _limited_receive(request, settings.max_upload_bytes))
        async with limited.form(max_files=1, max_fields=8, max_part_size=4096) as form:
            upload = form.get("image")
            if not isinstance(upload, UploadFile):
                raise ApiError(422, "missing_image", "form field 'image' must be an uploaded image file")
            limit = _parse_limit(form.get("limit"))
            streams = _parse_streams(form.get("streams"))
            data = await upload.read()
        rgb = await asyncio.to_thread(_decode_rgb, data)
        vecs = await embed([rgb])
        hits = await asyncio.to_thread(idx.search_frames, np.asarray(vecs[0]), limit, streams)
        return {
            "results": [
                {
                    "stream": h.stream,
                    "seq": h.seq,
                    "t": h.t,
                    "ts": h.ts,
                    "score": float(h.score),
                    "thumbnail_url": FRAME_THUMBNAIL_PATH.format(stream=h.stream, seq=h.seq),
                }
                for h in hits
            ],
            "untrained": _untrained(hub, health),
        }

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

    @app.websocket("/ws/events")
    async def ws_events(websocket: WebSocket) -> None:
        await websocket.accept()
        client = websocket.client
        with hub.subscribe(f"{client.host}:{client.port}" if client else "") as sub:
            await _serve_subscription(websocket, sub)

    return app


async def _serve_subscription(websocket: WebSocket, sub: Subscription) -> None:
    """Send hello, recent events, then live messages until the client leaves or falls behind."""
    sender = asyncio.create_task(_send_all(websocket, sub))
    receiver = asyncio.create_task(_until_disconnect(websocket))
    dropped = asyncio.create_task(sub.wait_dropped())
    tasks = (sender, receiver, dropped)
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    for task in (sender, receiver):
        exc = None if task.cancelled() else task.exception()
        if exc is not None and not isinstance(exc, (WebSocketDisconnect, WebSocketDisconnected, OSError)):
            log.error("dashboard websocket %s failed", sub.name or "?", exc_info=exc)
    if dropped in done and receiver not in done:
        reason = f"too slow: more than {sub.queue_size} messages behind; reconnect"
        # The server bounds the closing handshake itself (close timeout, keepalive).
        with contextlib.suppress(WebSocketDisconnect, WebSocketDisconnected, OSError):
            await websocket.close(code=WS_CLOSE_TOO_SLOW, reason=reason)


async def _send_all(websocket: WebSocket, sub: Subscription) -> None:
    for text in sub.initial:
        await websocket.send_text(text)
    sub.initial = []
    while True:
        await websocket.send_text(await sub.get())


async def _until_disconnect(websocket: WebSocket) -> None:
    # Clients have nothing to say; reading is how a disconnect is noticed.
    while (await websocket.receive())["type"] != "websocket.disconnect":
        pass


def _limited_receive(request: Request, max_bytes: int) -> Callable[[], Awaitable[Message]]:
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            n = int(declared)
        except ValueError:
            raise ApiError(400, "bad_request", f"Content-Length is not a number: {declared!r}") from None
        if n > max_bytes:
            raise _too_large(max_bytes)
    received = 0

    async def receive() -> Message:
        nonlocal received
        message = await request.receive()
        if message["type"] == "http.request":
            received += len(message.get("body", b""))
            if received > max_bytes:
                raise _too_large(max_bytes)
        return message

    return receive


def _too_large(max_bytes: int) -> ApiError:
    return ApiError(413, "upload_too_large", f"upload is larger than the {max_bytes}-byte limit")


def _require(obj: T | None, what: str) -> T:
    if obj is None:
        raise ApiError(503, "search_unavailable", f"search is unavailable: {what} is not configured in this process")
    return obj


def _check_stream(stream: str) -> str:
    try:
        return check_stream_id(stream)
    except RecordError as e:
        raise ApiError(422, "invalid_stream", str(e)) from None


def _parse_limit(raw: Any) -> int:
    if raw is None or raw == "":
        return DEFAULT_SEARCH_LIMIT
    limit = None
    if isinstance(raw, str):
        with contextlib.suppress(ValueError):
            limit = int(raw)
    if limit is None or not 1 <= limit <= MAX_SEARCH_LIMIT:
        raise ApiError(422, "invalid_limit", f"limit must be an integer from 1 to {MAX_SEARCH_LIMIT}, got {raw!r}")
    return limit


def _parse_streams(raw: Any) -> Sequence[str] | None:
    if raw is None:
        return None
    if not isinstance(raw, str):
        raise ApiError(422, "invalid_stream", "streams must be a comma-separated text field")
    names = [s.strip() for s in raw.split(",") if s.strip()]
    return [_check_stream(s) for s in names] or None


def _decode_rgb(data: bytes) -> np.ndarray:
    """Decode an uploaded picture to an (H, W, 3) uint8 RGB array (first frame if animated)."""
    if not data:
        raise ApiError(415, "not_an_image", "the uploaded file is empty")
    try:
        with Image.open(io.BytesIO(data)) as img:
            img.load()
            rgb = img.convert("RGB")
    except Image.DecompressionBombError as e:
        raise ApiError(413, "image_too_large", f"the picture has too many pixels: {e}") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as e:
        raise ApiError(415, "not_an_image", f"the uploaded file is not a readable image: {e}") from None
    return np.asarray(rgb, dtype=np.uint8)


def _reports_failure(report: Any, depth: int = 0) -> bool:
    """True when a health report has `"ok": false` or `"failed": true` at any level (a component's)."""
    if not isinstance(report, dict) or depth > 8:
        return False
    if report.get("ok") is False or report.get("failed") is True:
        return True
    return any(_reports_failure(v, depth + 1) for v in report.values())


def _untrained(hub: LiveHub, health: Callable[[], dict[str, Any]]) -> bool:
    """Whether search scores are meaningless: a stream, or the health report's `untrained` or
    `model.untrained`, says the weights are random."""
    if hub.untrained:
        return True
    try:
        report = health()
        model = report.get("model")
        return bool(report.get("untrained")) or (isinstance(model, dict) and bool(model.get("untrained")))
    except Exception:
        return False


_SEARCH_OPENAPI: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["image"],
                    "properties": {
                        "image": {"type": "string", "format": "binary", "description": "query picture"},
                        "limit": {
                            "type": "integer",
                            "minimum": 1,
                            "maximum": MAX_SEARCH_LIMIT,
                            "default": DEFAULT_SEARCH_LIMIT,
                        },
                        "streams": {"type": "string", "description": "comma-separated stream ids; all when empty"},
                    },
                }
            }
        },
    }
}
