"""Component stats as Prometheus families."""

from __future__ import annotations

from dataclasses import dataclass, field

from fastapi import FastAPI
from fastapi.testclient import TestClient

from dinostream.dashboard.metrics import component_families, metrics_router


@dataclass
class _Stats:
    records: int = 7
    latency_p99_s: float | None = 0.25
    ok: bool = True
    failure: str | None = None
    events_by_type: dict[str, int] = field(default_factory=lambda: {"anomaly": 2, "scene_change": 5})


def test_numbers_become_gauges_and_dicts_of_numbers_get_a_key_label() -> None:
    router, _ = metrics_router([component_families("analytics", _Stats)])
    app = FastAPI()
    app.include_router(router)
    text = TestClient(app).get("/metrics").text
    assert "\ndinostream_analytics_records 7.0" in text
    assert "\ndinostream_analytics_latency_p99_s 0.25" in text
    assert "\ndinostream_analytics_ok 1.0" in text
    assert 'dinostream_analytics_events_by_type{key="scene_change"} 5.0' in text
    assert "failure" not in text  # text is not a number


def test_none_is_left_out_until_it_has_a_value() -> None:
    router, _ = metrics_router([component_families("embedding", lambda: {"latency_p50_s": None, "frames": 0})])
    app = FastAPI()
    app.include_router(router)
    text = TestClient(app).get("/metrics").text
    assert "latency_p50_s" not in text and "\ndinostream_embedding_frames 0.0" in text
