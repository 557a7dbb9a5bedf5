"""What every HTTP module of the gateway shares: the one error shape and its handlers, the
health response, and small checks. Imports nothing else of the dashboard, so the routers and
`app.create_app` can all import it.

Every error answers `{"error": {"code": "<short_code>", "message": "<one clear line>", "details":
{...}, "timestamp": "<UTC ISO 8601>"}}`: the message one line of at most `MAX_MESSAGE_CHARS`,
without the server's absolute paths or object reprs (`public_text`); `details` what a program
needs to act on it (the field, the limit, what was sent; `{}` when there is nothing more), passed
through the same filter. One status per kind of error (the README's table). Health reports drop
what only an insider needs (`public_health`).
"""

from __future__ import annotations

import datetime
import logging
import re
from collections.abc import Awaitable, Callable
from http import HTTPStatus
from typing import Any, TypeVar

import numpy as np
from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException

from dinostream.core.records import RecordError, check_stream_id

log = logging.getLogger(__name__)

FRAME_THUMBNAIL_PATH = "/api/v1/frames/{stream}/{seq}/thumbnail.jpg"
MAX_MESSAGE_CHARS = 500
_MAX_LISTED_ERRORS = 10  # validation problems listed in an error's details

# An absolute POSIX path of two or more parts not inside a URL (/srv/media/a.mp4, not http://h/a/b).
_ABS_PATH = re.compile(r"(?<![\w.:/~%-])/(?:[^\s/'\"()<>,;:]+/)+([^\s/'\"()<>,;:]*)")
_REPR = re.compile(r"<[^<>]*? at 0x[0-9a-fA-F]+>")
# Health fields that name internals: the Kafka and Qdrant addresses, WHIP session ids (the secret
# part of a session URL).
_PRIVATE_HEALTH_KEYS = frozenset({"bootstrap", "qdrant_url", "session", "session_id"})

T = TypeVar("T")
EmbedImages = Callable[[list[np.ndarray]], Awaitable[np.ndarray]]


class ApiError(HTTPException):
    """An HTTP error with a short machine-readable `code` and one human line as `detail`."""

    def __init__(
        self,
        status_code: int,
        code: str,
        message: str,
        headers: dict[str, str] | None = None,
        *,
        details: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(status_code=status_code, detail=message, headers=headers)
        self.code = code
        self.details = details or {}


def public_text(text: str) -> str:
    """`text` fit to show a caller: absolute paths cut to their last part (`.../clip.mp4`), object
    reprs replaced, one line, at most MAX_MESSAGE_CHARS."""
    return _capped(_REPR.sub("<object>", _ABS_PATH.sub(r".../\1", text)))


def _capped(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= MAX_MESSAGE_CHARS else text[: MAX_MESSAGE_CHARS - 3] + "..."


def error_body(
    code: str, message: str, details: dict[str, Any] | None = None, *, filtered: bool = True
) -> dict[str, Any]:
    """The one error shape; `details` pass `public_health`'s filter (no internals, paths or reprs)
    unless `filtered` is False (what the caller sent itself, such as its request's path)."""
    when = datetime.datetime.now(datetime.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return {
        "error": {
            "code": code,
            "message": message,
            "details": public_health(jsonable_encoder(details or {})) if filtered else jsonable_encoder(details or {}),
            "timestamp": when,
        }
    }


def _default_code(status: int) -> str:
    try:
        return HTTPStatus(status).phrase.lower().replace(" ", "_").replace("-", "_")
    except ValueError:
        return "error"


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    code = getattr(exc, "code", None) or _default_code(exc.status_code)
    message = exc.detail if isinstance(exc.detail, str) and exc.detail else _default_code(exc.status_code)
    message = public_text(message)
    if exc.status_code == 404 and not isinstance(exc, ApiError):
        message = _capped(f"no such endpoint: {request.method} {request.url.path}")  # the caller's own path
        own = {"method": request.method, "path": _capped(request.url.path)}
        return JSONResponse(error_body(code, message, own, filtered=False), status_code=404, headers=exc.headers)
    details = getattr(exc, "details", None) or {}
    return JSONResponse(error_body(code, message, details), status_code=exc.status_code, headers=exc.headers)


async def _validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    errors = exc.errors()
    first = errors[0] if errors else {}
    where = ".".join(str(p) for p in first.get("loc", ()))
    message = f"{where}: {first.get('msg', 'invalid value')}" if where else str(first.get("msg", "invalid request"))
    if len(errors) > 1:
        message += f" (and {len(errors) - 1} more)"
    listed = [
        {"field": ".".join(str(p) for p in e.get("loc", ())), "problem": str(e.get("msg", "invalid value"))}
        for e in errors[:_MAX_LISTED_ERRORS]
    ]
    details = {"errors": listed, "count": len(errors)}
    return JSONResponse(error_body("invalid_request", public_text(message), details), status_code=422)


async def _internal_error(request: Request, exc: Exception) -> Response:
    # Logged with its traceback by the server; the client gets the one-line shape.
    return JSONResponse(
        error_body(
            "internal_error",
            f"internal error while handling {request.url.path}: {type(exc).__name__}",
            {"path": request.url.path, "exception": type(exc).__name__},
        ),
        status_code=500,
    )


def install_error_handlers(app: FastAPI) -> None:
    """Answer every error of `app` in the one error shape."""
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(Exception, _internal_error)


def require(obj: T | None, what: str) -> T:
    if obj is None:
        raise ApiError(
            503,
            "search_unavailable",
            f"search is unavailable: {what} is not configured in this process",
            details={"missing": what},
        )
    return obj


def check_stream(stream: str) -> str:
    try:
        return check_stream_id(stream)
    except RecordError as e:
        raise ApiError(422, "invalid_stream", str(e)) from None


def health_response(
    health: Callable[[], dict[str, Any]], extra: dict[str, Any], *, details: bool = True
) -> JSONResponse:
    """The health report with `extra` fields it lacks and its `status`: 200 "ok", or 503
    "degraded" when it has `problems`, or `"ok": false` / `"failed": true` at any level outside
    `streams` (a failed camera is that camera's: shown under it, not a service-wide 503), or
    when `health()` itself raised (a broken probe is a health problem). Only `status` without
    `details` (a caller without a token where tokens are required); internals never
    (`public_health`)."""
    try:
        body = dict(health())
    except Exception as e:
        log.exception("health callable failed")
        body = {"problems": [f"health check failed: {type(e).__name__}: {e}"]}
    # Readiness is the service's: a failed camera shows under `streams` only (any caller who can add
    # a broken stream could otherwise flip a load balancer's probe).
    degraded = bool(body.get("problems")) or _reports_failure({k: v for k, v in body.items() if k != "streams"})
    status = "degraded" if degraded else "ok"
    if not details:
        return JSONResponse({"status": status}, status_code=503 if degraded else 200)
    for key, value in extra.items():
        body.setdefault(key, value)
    body["status"] = status
    return JSONResponse(public_health(jsonable_encoder(body)), status_code=503 if degraded else 200)


def public_health(report: Any, depth: int = 0) -> Any:
    """A health report without internal addresses, WHIP session ids and absolute paths."""
    if depth > 16:
        return None
    if isinstance(report, dict):
        return {k: public_health(v, depth + 1) for k, v in report.items() if k not in _PRIVATE_HEALTH_KEYS}
    if isinstance(report, list):
        return [public_health(v, depth + 1) for v in report]
    if isinstance(report, str):
        return public_text(report)
    return report


def _reports_failure(report: Any, depth: int = 0) -> bool:
    """True when a health report has `"ok": false` or `"failed": true` at any level (a component's)."""
    if not isinstance(report, dict) or depth > 8:
        return False
    if report.get("ok") is False or report.get("failed") is True:
        return True
    return any(_reports_failure(v, depth + 1) for v in report.values())
