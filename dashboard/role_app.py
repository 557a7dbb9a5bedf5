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
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from starlette.exceptions import HTTPException

from dashboard.app import _http_error, _internal_error, _validation_error, health_response
from dashboard.metrics import Families, metrics_router

log = logging.getLogger(__name__)


def create_role_app(role: str, *, health: Callable[[], dict[str, Any]], metrics: Sequence[Families] = ()) -> FastAPI:
    """A FastAPI app serving `/api/v1/health` from `health()` (plus `"role"`) and `/metrics`."""
    app = FastAPI(title=f"dinostream {role}", version="1", docs_url=None, redoc_url=None, openapi_url=None)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(Exception, _internal_error)

    @app.get("/api/v1/health")
    async def get_health() -> Response:
        return health_response(health, {"role": role})

    router, app.state.metrics = metrics_router(metrics)
    app.include_router(router)
    return app
