"""`dinostream up` as a user runs it (a real subprocess: the embedded broker, Faust, Qdrant Edge,
uvicorn on port 0) with no camera: a video uploaded as an asset and analysed, whose events reach
a websocket client and the index as a stream's do, under the asset's id."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets

from tests.integration.test_up_end_to_end import TOLERANCE_S, _read_url


@pytest.mark.integration
async def test_an_asset_analysis_in_up_reaches_the_websocket_and_the_index(
    tmp_path: Path, tiny_model_dir: Path, cut_video: tuple[Path, list[float]]
) -> None:
    video, cuts = cut_video
    log_path = tmp_path / "up.log"
    with open(log_path, "wb") as log:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "dinostream", "up", "--model", str(tiny_model_dir),
            "--data-dir", str(tmp_path / "data"), "--http", "127.0.0.1:0",
            stdout=subprocess.PIPE, stderr=log, env={**os.environ, "HF_HUB_OFFLINE": "1"},
        )  # fmt: skip
        try:
            async with asyncio.timeout(150):
                url = await _read_url(proc)
                async with (
                    websockets.connect(url.replace("http://", "ws://") + "ws/events") as ws,
                    httpx.AsyncClient(base_url=url, timeout=30) as http,
                ):
                    assert json.loads(await ws.recv())["kind"] == "hello"
                    made = await http.post("/api/v1/assets", files={"file": ("cuts.mp4", video.read_bytes())})
                    assert made.status_code == 201, made.text
                    asset = made.json()["id"]
                    assert (await http.post(f"/api/v1/assets/{asset}/analysis")).status_code == 202
                    while (job := (await http.get(f"/api/v1/assets/{asset}/analysis")).json())["state"] not in (
                        "done",
                        "failed",
                    ):
                        await asyncio.sleep(0.2)
                    assert job["state"] == "done", job["error"]
                    events: list[dict[str, Any]] = []
                    deadline = time.monotonic() + 60
                    while sum(e["type"] == "scene_change" for e in events) < len(cuts):
                        assert time.monotonic() < deadline, f"events seen: {events}"
                        try:
                            msg = json.loads(await asyncio.wait_for(ws.recv(), 5))
                        except TimeoutError:
                            continue
                        if msg["kind"] == "event" and msg["event"]["stream"] == asset:
                            events.append(msg["event"])
                    async with asyncio.timeout(60):  # the index sink writes them too
                        while (await http.get("/api/v1/stats")).json()["index"]["events"] < len(cuts):
                            await asyncio.sleep(0.5)
        finally:
            if proc.returncode is None:
                proc.send_signal(signal.SIGINT)
                try:
                    rc = await asyncio.wait_for(proc.wait(), 30)
                except TimeoutError:
                    proc.kill()
                    rc = await proc.wait()
    assert rc == 0, log_path.read_text()[-3000:]
    assert "Traceback" not in log_path.read_text(), log_path.read_text()[-3000:]
    found = sorted(e["t"] for e in events if e["type"] == "scene_change")
    assert found == sorted(job["result"]["cuts"])
    assert len(found) == len(cuts) and all(abs(a - b) <= TOLERANCE_S for a, b in zip(cuts, found, strict=True))
