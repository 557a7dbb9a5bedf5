"""/livez of a running role follows its critical tasks: 200 while they run, 503 naming the task
once one has ended (the supervisor, left out here, also stops the process on the same; /livez
answers in the meantime and while a stop hangs)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from dinostream.core.embedded_broker import EmbeddedBroker
from dinostream.core.kafka_io import ensure_topics
from dinostream.core.settings import KafkaSettings, Settings
from dinostream.gateway_node import HttpNode
from dinostream.service import Service
from tests.waiting import wait_for


@pytest.mark.parametrize(
    ("role", "node", "task"), [("index", "index", "index-sink"), ("gateway", "gateway", "live-feed")]
)
async def test_livez_names_a_dead_critical_task(
    role: str, node: str, task: str, broker: EmbeddedBroker, kafka_settings: KafkaSettings, tmp_path: Any
) -> None:
    settings = Settings.model_validate(
        {
            "kafka": {**kafka_settings.model_dump(), "bootstrap": broker.bootstrap, "idempotent": False},
            "index": {"vector_dims": 384},
            "http": {"host": "127.0.0.1", "port": 0},
            "data_dir": str(tmp_path / "data"),
        }
    )
    service = Service(settings, [role])
    started = []
    try:
        await ensure_topics(broker.bootstrap, settings.kafka)  # as Service.run does first
        for n in service.nodes:
            await n.prepare()
        for n in service.nodes:
            started.append(n)
            await n.start()
        http = service.node("http")
        assert isinstance(http, HttpNode) and http.url is not None
        async with httpx.AsyncClient(base_url=http.url) as client:
            r = await client.get("/livez")
            assert (r.status_code, r.json()) == (200, {"status": "alive"})  # negative check: it runs
            target = service.node(node)
            assert target is not None
            target.tasks()[task].cancel()

            async def dead() -> bool:
                return (await client.get("/livez")).status_code == 503

            await wait_for(dead, 30, f"/livez to turn 503 once {task} ended")
            assert (await client.get("/livez")).json() == {"status": "dead", "problem": f"{task} stopped: cancelled"}
            assert (await client.get("/api/v1/health")).status_code in (200, 503)  # readiness answers apart
    finally:
        for n in reversed(started):
            await n.stop()
        await service.runtime.close()
