"""Streams added and removed while the service runs: the real stack in-process (Kafka broker,
Faust, Qdrant Edge, uvicorn on port 0, a tiny DINOv3), driven over HTTP and by the
`dinostream streams` command; a stream added through the API is back after a restart."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from dinostream.analytics.watchlist import Watchlist
from dinostream.analytics.watchlist_feed import WatchlistFeed
from dinostream.core.embedded_broker import EmbeddedBroker
from dinostream.core.settings import Settings
from dinostream.service import Service
from tests.records import unique_kafka
from tests.waiting import wait_for


@contextlib.asynccontextmanager
async def running(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """Run the stack until the block ends; an HTTP client on its dashboard address."""
    stop = asyncio.Event()
    ready: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    task = asyncio.create_task(Service(settings).run(stop, ready.set_result))
    await asyncio.wait({task, ready}, return_when=asyncio.FIRST_COMPLETED)
    if not ready.done():
        task.result()  # raises why it could not start
        raise AssertionError("the stack ended before it was ready")
    try:
        async with httpx.AsyncClient(base_url=ready.result(), timeout=30) as http:
            yield http
    finally:
        stop.set()
        await task  # a clean stop: no exception


async def stream_body(http: httpx.AsyncClient, stream: str) -> dict[str, Any]:
    r = await http.get(f"/api/v1/streams/{stream}")
    assert r.status_code == 200, r.text
    return r.json()


async def frames_out_grows(http: httpx.AsyncClient, stream: str) -> None:
    """Wait until the stream has sent frames, then until it sends more."""
    first = 0
    while first == 0:
        first = (await stream_body(http, stream))["health"]["frames_out"]
        await asyncio.sleep(0.1)
    while (await stream_body(http, stream))["health"]["frames_out"] <= first:
        await asyncio.sleep(0.1)


async def cli(*args: str) -> subprocess.CompletedProcess[str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "dinostream",
        "streams",
        *args,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    out, err = await proc.communicate()
    assert proc.returncode is not None
    return subprocess.CompletedProcess(args, proc.returncode, out.decode(), err.decode())


@pytest.mark.integration
async def test_streams_added_at_run_time_persist_across_restarts(
    tmp_path: Path, tiny_model_dir: Path, cut_video: tuple[Path, list[float]], broker: EmbeddedBroker
) -> None:
    media = tmp_path / "media"
    media.mkdir()
    shutil.copy(cut_video[0], media / "clip.mp4")
    outside = tmp_path / "outside.mp4"
    shutil.copy(cut_video[0], outside)
    tag = uuid.uuid4().hex[:8]
    settings = Settings.model_validate(
        {
            "data_dir": tmp_path / "data",
            "sources": [str(cut_video[0])],  # a command-line source: run, listed, never persisted
            "model": {"model": str(tiny_model_dir), "device": "cpu"},
            "ingest": {"media_roots": [media], "realtime": True},
            "kafka": unique_kafka(
                bootstrap=broker.bootstrap,
                partitions=1,
                idempotent=False,  # the embedded broker's storage has no InitProducerId
            ).model_dump(),
            "analytics": {"app_id": f"streams-{tag}"},
            "http": {"host": "127.0.0.1", "port": 0},
        }
    )

    async with asyncio.timeout(240):
        async with running(settings) as http:
            api = str(http.base_url)
            r = await http.post("/api/v1/streams", json={"url": "clip.mp4", "id": "clip"})
            assert r.status_code == 201, r.text
            assert r.json()["health"]["state"] in ("connecting", "live")
            await frames_out_grows(http, "clip")

            r = await http.post("/api/v1/streams", json={"url": str(outside)})
            assert r.status_code == 422 and r.json()["error"]["code"] == "url_refused", r.text
            assert "outside the media roots" in r.json()["error"]["message"]
            r = await http.post("/api/v1/streams", json={"url": "clip.mp4", "id": "clip"})
            assert r.status_code == 409 and r.json()["error"]["code"] == "duplicate_stream", r.text

            cp = await cli("add", "clip.mp4", "--id", "keep", "--sample-fps", "1", "--api", api)
            assert cp.returncode == 0, cp.stderr
            assert json.loads(cp.stdout)["config"]["sample_fps"] == 1.0
            r = await http.patch("/api/v1/streams/keep/analytics/scene_change", json={"min_shot_s": 2.5})
            assert r.status_code == 202, r.text
            cp = await cli("add", str(outside), "--api", api)
            assert cp.returncode != 0 and "outside the media roots" in cp.stderr and cp.stdout == ""

            streams = (await http.get("/api/v1/streams")).json()["streams"]
            assert set(streams) == {"cuts", "clip", "keep"}
            assert streams["cuts"]["persistent"] is False and streams["clip"]["persistent"] is True
            health = (await http.get("/api/v1/health")).json()
            assert set(health["streams"]) == {"cuts", "clip", "keep"} and health["status"] == "ok", health
            assert {"frames", "read_back", "gone"} <= set(health["recent_frames"]), health
            metrics = (await http.get("/metrics")).text
            assert 'dinostream_stream_frames_out_total{stream="clip"}' in metrics
            assert 'dinostream_stream_decode_seconds_total{stream="clip"}' in metrics
            for family in (  # the model stage, the worker, the index sink and the websocket fan-out
                "dinostream_embedding_latency_p99_s",
                "dinostream_embedding_mean_batch_size",
                "dinostream_analytics_records",
                "dinostream_index_consumer_lag",
                "dinostream_websocket_clients",
                "dinostream_recent_frames_frames",  # where the frames a click can show are
                "dinostream_recent_frames_gone",
            ):
                assert f"\n{family} " in metrics, family

            # A click on a live frame registers a watchlist exemplar; it reaches the watchlist topic.
            seq = None
            while seq is None:
                seq = (await http.get("/api/v1/streams/clip")).json().get("seq")
                await asyncio.sleep(0.1)
            r = await http.post(
                "/api/v1/watchlist",
                json={
                    "id": "thing",
                    "label": "a thing",
                    "frame": {"stream": "clip", "seq": seq},
                    "point": {"x": 0.5, "y": 0.5},
                },
            )
            assert r.status_code == 201, r.text
            assert (await http.get("/api/v1/watchlist")).json()["exemplars"][0]["id"] == "thing"
            copy = Watchlist()
            feed = WatchlistFeed(copy, broker.bootstrap, settings.kafka)
            await feed.start()
            await feed.stop()
            assert [e.id for e in copy] == ["thing"]

            cp = await cli("rm", "clip", "--api", api)
            assert cp.returncode == 0 and json.loads(cp.stdout)["removed"] is True, cp.stderr
            r = await http.get("/api/v1/streams/clip")
            assert r.status_code == 404 and r.json()["error"]["code"] == "stream_not_found"
            listed = json.loads((await cli("list", "--api", api)).stdout)["streams"]
            assert set(listed) == {"cuts", "keep"}

        restarted = settings.model_copy(update={"sources": []})
        async with running(restarted) as http:
            streams = (await http.get("/api/v1/streams")).json()["streams"]
            assert set(streams) == {"keep"}, "the API-added stream is back, the removed one is not"
            assert streams["keep"]["config"]["sample_fps"] == 1.0 and streams["keep"]["persistent"] is True
            # Its analytics settings were kept with it, and go to the worker again.
            assert streams["keep"]["config"]["analytics"] == {"scene_change": {"min_shot_s": 2.5}}
            settings_now = (await http.get("/api/v1/streams/keep/analytics")).json()["settings"]
            assert settings_now["scene_change"]["min_shot_s"] == 2.5

            async def control_resent() -> bool:
                return (await http.get("/api/v1/health")).json()["analytics"]["control"] >= 1

            await wait_for(control_resent, 60, "the kept analytics settings sent to the worker again")
            await frames_out_grows(http, "keep")
