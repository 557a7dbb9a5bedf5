"""The gateway as its own process (`python -m dinostream gateway` on the session broker): it has
no model node, so an asset analysis loads the model lazily, and the analysis's events go to the
events topic under the asset's id, where every other role reads a stream's."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest

from dinostream.core.embedded_broker import EmbeddedBroker
from dinostream.core.records import Event
from tests.integration.test_faults import consumer, deployment

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]


async def test_the_gateway_role_analyses_an_asset_with_its_lazy_model(
    broker: EmbeddedBroker, tmp_path: Path, tiny_model_dir: Path, cut_video: tuple[Path, list[float]]
) -> None:
    video, cuts = cut_video
    async with (
        deployment(broker.bootstrap, tmp_path, tiny_model_dir) as d,
        consumer(broker.bootstrap, d.kafka.events_topic) as events_in,
    ):
        gateway = await d.role("gateway", "gw").start()
        async with httpx.AsyncClient(base_url=gateway.url, timeout=30) as http:
            before = (await http.get("/api/v1/health")).json()
            asset = (await http.post("/api/v1/assets", files={"file": ("cuts.mp4", video.read_bytes())})).json()["id"]
            assert (await http.post(f"/api/v1/assets/{asset}/analysis")).status_code == 202
            async with asyncio.timeout(180):
                while (job := (await http.get(f"/api/v1/assets/{asset}/analysis")).json())["state"] not in (
                    "done",
                    "failed",
                ):
                    await asyncio.sleep(0.2)
            after = (await http.get("/api/v1/health")).json()
        assert job["state"] == "done", (job["error"], gateway.stderr())
        events: list[Event] = []
        async with asyncio.timeout(60):
            while sum(e.type == "scene_change" for e in events) < len(job["result"]["cuts"]):
                batch = await events_in.getmany(timeout_ms=1000)
                events += [Event.decode(m.value) for msgs in batch.values() for m in msgs if m.value]

    assert before["model"]["loaded"] is False and after["model"]["loaded"] is True, "loaded for the analysis"
    found = sorted(e.t for e in events if e.type == "scene_change")
    assert {e.stream for e in events} == {asset} and found == sorted(job["result"]["cuts"])
    assert len(found) == len(cuts) and all(abs(a - b) <= 0.75 for a, b in zip(cuts, found, strict=True))
