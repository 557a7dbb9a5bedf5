"""`dinostream up` as a user runs it: a real subprocess, the embedded broker, Faust, Qdrant Edge,
uvicorn on port 0; a websocket client sees scene changes near the known cuts, and an image
search with a frame of the video finds that moment."""

from __future__ import annotations

import asyncio
import io
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import av
import httpx
import numpy as np
import pytest
import websockets
from PIL import Image

from tests.integration.test_faults import _children, _state

TOLERANCE_S = 0.75  # one sampled frame at 2 fps, plus slack


def _frame_at(video: Path, t: float) -> np.ndarray:
    with av.open(str(video)) as c:
        for frame in c.decode(video=0):
            if frame.time is not None and frame.time >= t:
                return frame.to_ndarray(format="rgb24")
    raise AssertionError(f"no frame at {t}")


async def _read_url(proc: asyncio.subprocess.Process) -> str:
    assert proc.stdout is not None
    while True:
        line = (await proc.stdout.readline()).decode()
        if not line:
            raise AssertionError("dinostream up exited before printing the dashboard URL")
        m = re.search(r"dashboard (http://\S+)", line)
        if m:
            return m.group(1)


@pytest.mark.integration
async def test_up_end_to_end(tmp_path: Path, tiny_model_dir: Path, cut_video: tuple[Path, list[float]]) -> None:
    video, cuts = cut_video
    data_dir = tmp_path / "data"
    log_path = tmp_path / "up.log"
    with open(log_path, "wb") as log:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "dinostream",
            "up",
            "--source",
            str(video),
            "--model",
            str(tiny_model_dir),
            "--data-dir",
            str(data_dir),
            "--http",
            "127.0.0.1:0",
            "--fast",
            stdout=subprocess.PIPE,
            stderr=log,
            env={**os.environ, "HF_HUB_OFFLINE": "1"},
        )
        try:
            async with asyncio.timeout(120):
                url = await _read_url(proc)
                ws_url = url.replace("http://", "ws://") + "ws/events"
                events: list[dict] = []
                frames_seen = 0
                async with websockets.connect(ws_url) as ws:
                    hello = json.loads(await ws.recv())
                    assert hello["kind"] == "hello"
                    deadline = time.monotonic() + 90
                    # Every processor runs; the cuts are what this video's ground truth knows.
                    while sum(e["type"] == "scene_change" for e in events) < len(cuts) and time.monotonic() < deadline:
                        try:
                            msg = json.loads(await asyncio.wait_for(ws.recv(), 5))
                        except TimeoutError:
                            continue
                        if msg["kind"] == "event":
                            events.append(msg["event"])
                        elif msg["kind"] == "frame":
                            frames_seen += 1
                found = sorted(e["t"] for e in events if e["type"] == "scene_change")
                assert len(found) == len(cuts), f"cuts {cuts}, events at {found}"
                for want, got in zip(cuts, found, strict=True):
                    assert abs(want - got) <= TOLERANCE_S, f"cut at {want} s reported at {got} s"
                assert frames_seen > 0 or hello["streams"], "the dashboard must see live frames"

                async with httpx.AsyncClient(base_url=url, timeout=30) as http:
                    health = (await http.get("/api/v1/health")).json()
                    assert health["model"]["untrained"] is False
                    # Wait until the index holds the whole video, then search with a frame of shot 3.
                    async with asyncio.timeout(60):
                        while (await http.get("/api/v1/health")).json()["index"]["frames"] < 20:
                            await asyncio.sleep(0.5)
                    query_t = cuts[1] + 1.2
                    buf = io.BytesIO()
                    Image.fromarray(_frame_at(video, query_t)).save(buf, format="PNG")
                    r = await http.post("/api/v1/search", files={"image": ("q.png", buf.getvalue(), "image/png")})
                    assert r.status_code == 200, r.text
                    top = r.json()["results"][0]
                    assert top["stream"] == video.stem
                    assert cuts[1] <= top["t"] < cuts[2], f"top hit at {top['t']} s is outside the query's shot"
                    thumb = await http.get(top["thumbnail_url"])
                    assert thumb.status_code == 200 and thumb.content[:2] == b"\xff\xd8"

                    # Run-time settings per stream: validated, then sent to the owning worker.
                    path = f"/api/v1/streams/{video.stem}/analytics"
                    r = await http.patch(f"{path}/scene_change", json={"min_shot_s": 2.5})
                    assert r.status_code == 202, r.text
                    assert (await http.get(path)).json()["settings"]["scene_change"]["min_shot_s"] == 2.5
                    r = await http.patch(f"{path}/scene_change", json={"min_shot_s": -1})
                    assert r.status_code == 422 and "min_shot_s" in r.json()["error"]["message"]
                    r = await http.patch(f"{path}/nope", json={})
                    assert r.status_code == 404 and r.json()["error"]["code"] == "unknown_processor"
                    async with asyncio.timeout(30):
                        while (await http.get("/api/v1/health")).json()["analytics"]["control"] < 1:
                            await asyncio.sleep(0.2)
                children = _children(proc.pid)  # the embedded broker among them: what SIGINT must stop too
                assert any(b"--storage-engine" in Path(f"/proc/{k}/cmdline").read_bytes() for k in children)
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
    left = [k for k in children if _state(k) not in (None, "Z")]
    assert left == [], f"SIGINT left child processes running: {left}"
