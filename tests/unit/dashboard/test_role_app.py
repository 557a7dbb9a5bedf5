"""The health and metrics app of the roles without a dashboard: 503 when degraded, same body."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from prometheus_client.core import CounterMetricFamily

from dinostream.dashboard.role_app import create_role_app


@pytest.mark.parametrize(
    ("report", "code", "status"),
    [
        ({"analytics": {"records": 3}}, 200, "ok"),
        ({"problems": ["Kafka did not take frame records"]}, 503, "degraded"),
        ({"index": {"ok": False}}, 503, "degraded"),
        (None, 503, "degraded"),  # the probe itself raises
    ],
    ids=["healthy", "problems", "component-not-ok", "probe-raises"],
)
async def test_health_status_code_follows_the_report(report: dict[str, Any] | None, code: int, status: str) -> None:
    def health() -> dict[str, Any]:
        if report is None:
            raise RuntimeError("boom")
        return report

    def families() -> list[Any]:
        c = CounterMetricFamily("dinostream_test_things", "Things.")
        c.add_metric([], 7)
        return [c]

    app = create_role_app("worker", health=health, metrics=[families])
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://localhost") as http:
        r = await http.get("/api/v1/health")
        assert r.status_code == code
        assert r.json()["status"] == status and r.json()["role"] == "worker"
        if report is None:
            assert "boom" in r.json()["problems"][0]
        metrics = await http.get("/metrics")
        assert metrics.status_code == 200 and "dinostream_test_things_total 7.0" in metrics.text
        missing = await http.get("/nope")
        assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
