"""The HTTP face of a role without a dashboard (ingest, worker, index): health and metrics only.

`GET /api/v1/health` answers 200 with `"status": "ok"`, or 503 with the same body and
`"status": "degraded"` (by the same rules as the dashboard's: `problems`, or `"ok": false` /
`"failed": true` anywhere), so Kubernetes probes and load balancers read the status code.
`GET /metrics` is Prometheus text. Every error has the dashboard's one JSON shape.

    >>> app = create_role_app("worker", health=lambda: {"analytics": vars(stats)}, metrics=[families])
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

from fastapi import FastAPI
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException

from dashboard.app import _http_error, _internal_error, _reports_failure, _validation_error
from dashboard.metrics import Families, metrics_router

log = logging.getLogger(__name__)


def health_status(body: dict[str, Any]) -> tuple[dict[str, Any], int]:
    """`body` with its `status` set, and the HTTP status code that goes with it (200 or 503)."""
    degraded = bool(body.get("problems")) or _reports_failure(body)
    body["status"] = "degraded" if degraded else "ok"
    return body, 503 if degraded else 200


def create_role_app(role: str, *, health: Callable[[], dict[str, Any]], metrics: Sequence[Families] = ()) -> FastAPI:
    """A FastAPI app serving `/api/v1/health` from `health()` (plus `"role"`) and `/metrics`."""
    app = FastAPI(title=f"dinostream {role}", version="1", docs_url=None, redoc_url=None, openapi_url=None)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(Exception, _internal_error)

    @app.get("/api/v1/health")
    async def get_health() -> Response:
        try:
            body = dict(health())
        except Exception as e:  # a broken health probe is itself a health problem
            log.exception("health callable failed")
            body = {"problems": [f"health check failed: {type(e).__name__}: {e}"]}
        body["role"] = role
        body, code = health_status(body)
        return JSONResponse(jsonable_encoder(body), status_code=code)

    router, app.state.metrics = metrics_router(metrics)
    app.include_router(router)
    return app
