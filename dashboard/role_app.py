"""The HTTP face of a role without a dashboard (ingest, worker, index): health and metrics only.

`GET /api/v1/health` answers 200 with `"status": "ok"`, or 503 with the same body and
`"status": "degraded"` (by the same rules as the dashboard's: `problems`, or `"ok": false` /
`"failed": true` anywhere), so Kubernetes probes and load balancers read the status code.
`GET /livez` is liveness (`dinostream.dashboard.liveness`: the process and `alive()`), apart from
readiness. `GET /metrics` is Prometheus text. Every error has the dashboard's one JSON shape, and every request
passes the dashboard's guard (`dinostream.dashboard.guard`: tokens, Host, limits) with `http`.

    >>> app = create_role_app("worker", health=lambda: {"analytics": vars(stats)}, metrics=[families])
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import Response

from dinostream.core.settings import HttpSettings
from dinostream.dashboard.guard import install_guard, restricted
from dinostream.dashboard.http_common import health_response, install_error_handlers
from dinostream.dashboard.liveness import liveness_router
from dinostream.dashboard.metrics import Families, metrics_router

log = logging.getLogger(__name__)


def create_role_app(
    role: str,
    *,
    health: Callable[[], dict[str, Any]],
    metrics: Sequence[Families] = (),
    http: HttpSettings | None = None,
    alive: Callable[[], str | None] | None = None,
) -> FastAPI:
    """A FastAPI app serving `/api/v1/health` from `health()` (plus `"role"`) and `/metrics`, behind
    the guard with `http` (default: `HttpSettings()`, no tokens), and `/livez` from `alive` (what stopped
    that a restart would fix; None: alive)."""
    app = FastAPI(title=f"dinostream {role}", version="1", docs_url=None, redoc_url=None, openapi_url=None)
    install_error_handlers(app)
    install_guard(app, http or HttpSettings())

    @app.get("/api/v1/health")
    async def get_health(request: Request) -> Response:
        return health_response(health, {"role": role}, details=not restricted(request.scope))

    app.include_router(liveness_router(alive))
    router, app.state.metrics = metrics_router(metrics)
    app.include_router(router)
    return app
