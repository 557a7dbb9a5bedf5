"""Liveness apart from readiness.

`GET /livez` says whether the process should be restarted: 200 `{"status": "alive"}` while it
answers and `alive()` (the owner's check of its critical tasks) returns None, else 503
`{"status": "dead"}` with the reason for a caller with a token. Readiness (`/api/v1/health`) turns
503 when a dependency (Kafka, Qdrant) fails, which a restart does not fix: probing it for liveness
restarts every pod into a crash loop during a Kafka incident.

    app.include_router(liveness_router(lambda: "worker crashed" if app.crashed else None))
"""

from __future__ import annotations

from collections.abc import Callable

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from dinostream.dashboard.guard import restricted

LIVEZ = "/livez"


def liveness_router(alive: Callable[[], str | None] | None = None) -> APIRouter:
    """`GET /livez` from `alive()` (None: the process answering is all there is to check)."""
    router = APIRouter()

    @router.get(LIVEZ, include_in_schema=False)
    async def livez(request: Request) -> JSONResponse:
        problem = alive() if alive is not None else None
        if problem is None:
            return JSONResponse({"status": "alive"})
        body = {"status": "dead"} if restricted(request.scope) else {"status": "dead", "problem": problem}
        return JSONResponse(body, status_code=503)

    return router
