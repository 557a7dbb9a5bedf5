"""`dinostream up` restarted twice keeps the watchlist and the processors' saved state and adds no
duplicate frame to the index (issue 17): the whole service in-process on its own embedded broker
(which keeps topics in memory only), a tiny DINOv3, Qdrant Edge, uvicorn on port 0."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from dinostream.core.settings import Settings
from dinostream.demo_video import make_video
from dinostream.nodes import IndexNode, WorkerNode
from dinostream.service import ARCHIVE_FILE, Service
from tests.integration.test_faults import Role
from tests.waiting import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.timeout(420)]


@contextlib.asynccontextmanager
async def running(settings: Settings) -> AsyncIterator[tuple[Service, httpx.AsyncClient]]:
    stop = asyncio.Event()
    ready: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    service = Service(settings)
    task = asyncio.create_task(service.run(stop, ready.set_result))
    await asyncio.wait({task, ready}, return_when=asyncio.FIRST_COMPLETED)
    if not ready.done():
        task.result()
        raise AssertionError("the service ended before it was ready")
    try:
        async with httpx.AsyncClient(base_url=ready.result(), timeout=30) as http:
            yield service, http
    finally:
        stop.set()
        await task


async def stream(http: httpx.AsyncClient, sid: str) -> dict[str, Any]:
    r = await http.get(f"/api/v1/streams/{sid}")
    assert r.status_code == 200, r.text
    return dict(r.json())


def frames_indexed(service: Service) -> int:
    node = service.node("index")
    assert isinstance(node, IndexNode) and node.index is not None
    return node.index.count_frames()


def saved_state_keys(service: Service) -> set[str]:
    node = service.node("worker")
    assert isinstance(node, WorkerNode) and node.app is not None
    return {str(k) for k in node.app.tables["processor-state"].keys()}


async def test_two_restarts_keep_the_watchlist_and_state_and_add_no_duplicate_frames(
    tmp_path: Path, tiny_model_dir: Path, cut_video: tuple[Path, list[float]]
) -> None:
    media = tmp_path / "media"
    media.mkdir()
    shutil.copy(cut_video[0], media / "whole.mp4")
    shutil.copy(cut_video[0], media / "clip.mp4")
    settings = Settings.model_validate(
        {
            "data_dir": tmp_path / "data",
            "model": {"model": str(tiny_model_dir), "device": "cpu"},
            "ingest": {"media_roots": [media], "sample_fps": 2},
            "analytics": {"snapshot_every_s": 0.2},
            "http": {"host": "127.0.0.1", "port": 0},
        }
    )
    assert settings.kafka.bootstrap is None  # the embedded broker: topics in memory only

    # Run 1: one file read whole, one stopped in the middle (played at its own pace); an exemplar.
    async with running(settings) as (service, http):
        r = await http.post("/api/v1/streams", json={"url": "whole.mp4", "id": "whole"})
        assert r.status_code == 201, r.text
        r = await http.post("/api/v1/streams", json={"url": "clip.mp4", "id": "clip", "realtime": True})
        assert r.status_code == 201, r.text

        async def whole_indexed() -> bool:
            body = await stream(http, "whole")
            return body["health"]["state"] == "ended" and frames_indexed(service) >= body["health"]["frames_out"]

        await wait_for(whole_indexed, 120, "the whole file read and indexed")
        whole_frames = (await stream(http, "whole"))["health"]["frames_out"]
        assert whole_frames > 10
        seq = (await stream(http, "whole")).get("seq")
        assert seq is not None
        r = await http.post(
            "/api/v1/watchlist",
            json={
                "id": "thing",
                "label": "a thing",
                "frame": {"stream": "whole", "seq": seq},
                "point": {"x": 0.5, "y": 0.5},
            },
        )
        assert r.status_code == 201, r.text
        await wait_for(
            lambda: {"whole/scene_change", "clip/scene_change"} <= saved_state_keys(service), 60, "state saved"
        )
        clip_first = (await stream(http, "clip"))["health"]["frames_out"]
        assert (await stream(http, "clip"))["health"]["state"] == "live", "stopped in the middle of the file"
    assert (settings.data_dir / ARCHIVE_FILE).is_file()

    # Run 2: the exemplar and the state are back; the whole file is not read again; the other is
    # read from its start under the same frame numbers, so the index gains only its new frames.
    async with running(settings) as (service, http):
        health = (await http.get("/api/v1/health")).json()
        assert health["kafka"]["archive"]["restored"] > 0, health["kafka"]
        exemplars = (await http.get("/api/v1/watchlist")).json()["exemplars"]
        assert [e["id"] for e in exemplars] == ["thing"]
        whole = (await stream(http, "whole"))["health"]
        assert whole["state"] == "ended" and whole["ended_before"] is True and whole["frames_out"] == whole_frames
        await wait_for(lambda: "whole/scene_change" in saved_state_keys(service), 60, "the saved state recovered")

        async def clip_indexed() -> bool:
            body = await stream(http, "clip")
            return (
                body["health"]["state"] == "ended"
                and frames_indexed(service) >= whole_frames + body["health"]["frames_out"]
            )

        await wait_for(clip_indexed, 180, "the other file read to its end and indexed")
        clip_frames = (await stream(http, "clip"))["health"]["frames_out"]
        assert clip_frames > clip_first
        assert frames_indexed(service) == whole_frames + clip_frames, "no frame indexed twice"

    # Run 3: nothing is read again; the watchlist is still there; the index has not grown.
    async with running(settings) as (service, http):
        exemplars = (await http.get("/api/v1/watchlist")).json()["exemplars"]
        assert [e["id"] for e in exemplars] == ["thing"]
        for sid in ("whole", "clip"):
            assert (await stream(http, sid))["health"]["ended_before"] is True
        await wait_for(lambda: "clip/scene_change" in saved_state_keys(service), 60, "the saved state recovered")
        assert frames_indexed(service) == whole_frames + clip_frames


async def test_up_killed_with_sigkill_keeps_the_watchlist(tmp_path: Path, tiny_model_dir: Path) -> None:
    """A crash, not a clean stop: `up` killed with SIGKILL once its archive holds the new exemplar
    (written as the topic is, not at stop) starts again with it."""
    video = tmp_path / "clip.mp4"
    make_video(video, shots=2, shot_s=30.0, fps=5, size=(64, 64), seed=3)
    data = tmp_path / "data"
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "DINOSTREAM_MODEL__MODEL": str(tiny_model_dir),
        "DINOSTREAM_MODEL__DEVICE": "cpu",
        "DINOSTREAM_MODEL__IMAGE_SIZE": "64",
        "DINOSTREAM_HTTP__PORT": "0",
        "DINOSTREAM_DATA_DIR": str(data),
        "DINOSTREAM_SOURCES": json.dumps([str(video)]),
        "DINOSTREAM_INGEST__REALTIME": "true",
    }
    watchlist_topic = Settings().kafka.watchlist_topic

    def archived_exemplars() -> int:
        with contextlib.closing(sqlite3.connect(f"file:{data / ARCHIVE_FILE}?mode=ro", uri=True)) as db:
            return int(db.execute("SELECT COUNT(*) FROM records WHERE topic = ?", (watchlist_topic,)).fetchone()[0])

    up = Role("up", env, tmp_path / "up.stderr")
    await up.start(timeout_s=120)
    try:
        url = up.url.removeprefix("dashboard ").strip()
        async with httpx.AsyncClient(base_url=url, timeout=30) as http:

            async def a_frame() -> bool:
                return (await stream(http, "clip")).get("seq") is not None

            await wait_for(a_frame, 60, "a frame of the stream", interval=0.2)
            seq = (await stream(http, "clip"))["seq"]
            assert archived_exemplars() == 0  # the archive is there and holds none yet
            r = await http.post(
                "/api/v1/watchlist",
                json={
                    "id": "bag",
                    "label": "a bag",
                    "frame": {"stream": "clip", "seq": seq},
                    "point": {"x": 0.5, "y": 0.5},
                },
            )
            assert r.status_code == 201, r.text
        await wait_for(lambda: archived_exemplars() == 1, 30, "the exemplar in the archive")
        up.kill(signal.SIGKILL)
        assert await up.wait() == -signal.SIGKILL
    finally:
        up.kill()
        await up.wait()

    again = Role("up", env, tmp_path / "up-again.stderr")
    await again.start(timeout_s=120)
    try:
        url = again.url.removeprefix("dashboard ").strip()
        async with httpx.AsyncClient(base_url=url, timeout=30) as http:
            exemplars = (await http.get("/api/v1/watchlist")).json()["exemplars"]
            assert [e["id"] for e in exemplars] == ["bag"]
    finally:
        again.kill(signal.SIGINT)
        await again.wait()
