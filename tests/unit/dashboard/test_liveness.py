"""/livez apart from readiness: a Kafka incident turns /api/v1/health 503 but leaves /livez 200 (a
restart would not fix it), a dead critical task turns /livez 503; probes need no token, and the
reason is shown only to a caller with one."""

from __future__ import annotations

import httpx
import pytest

from dinostream.core.settings import HttpSettings
from dinostream.dashboard.role_app import create_role_app

TOKEN = "admin-token-0123456789abcdef"


def client(app: object) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://localhost")  # type: ignore[arg-type]


async def test_a_dependency_failure_is_not_a_liveness_failure() -> None:
    app = create_role_app("ingest", health=lambda: {"problems": ["Kafka did not take frame records"]})
    async with client(app) as http:
        assert (await http.get("/api/v1/health")).status_code == 503
        r = await http.get("/livez")
        assert (r.status_code, r.json()) == (200, {"status": "alive"})


@pytest.mark.parametrize("tokens", [False, True], ids=["open", "tokens"])
async def test_a_dead_critical_task_fails_liveness(tokens: bool) -> None:
    problem: list[str] = []
    http_settings = HttpSettings(api_token=TOKEN) if tokens else HttpSettings()
    app = create_role_app(
        "worker", health=lambda: {}, http=http_settings, alive=lambda: problem[0] if problem else None
    )
    async with client(app) as http:
        assert (await http.get("/livez")).status_code == 200  # no token needed: kubelet sends none
        problem.append("analytics worker failed: agent crashed")
        anonymous = await http.get("/livez")
        assert anonymous.status_code == 503
        with_token = await http.get("/livez", headers={"Authorization": f"Bearer {TOKEN}"})
        assert with_token.json() == {"status": "dead", "problem": "analytics worker failed: agent crashed"}
        assert anonymous.json() == ({"status": "dead"} if tokens else with_token.json())


async def test_the_gateway_app_serves_livez() -> None:
    from dinostream.dashboard.app import create_app
    from dinostream.dashboard.live_hub import LiveHub

    app = create_app(
        settings=HttpSettings(),
        hub=LiveHub(queue_size=4, recent=4),
        index=None,
        embed_images=None,
        health=lambda: {"problems": ["Kafka down"]},
        alive=lambda: None,
    )
    async with client(app) as http:
        assert (await http.get("/livez")).status_code == 200
        assert (await http.get("/api/v1/health")).status_code == 503
