"""How many streams the separate roles sustain on this machine, and their latency.

Runs 2 ingest nodes, 2 analytics workers, an index sink and a gateway as `python -m dinostream
<role>` processes on loopback (the embedded broker), with the ViT-S/16 architecture
(`random:vits16`, untrained weights: the cost is the real model's). Streams are generated files
played at their native rate (cuts every few seconds, so scene-change events flow), added
through the gateway's API, sampled at `--fps` per stream. For each N of `--streams` (growing,
the roles keep running) it waits `--warmup` s, then measures for `--measure` s:

- per-role throughput: frame records produced (ingest), analysed (workers), indexed (index),
  events received on a websocket client of the gateway;
- end-to-end latency p50/p99 from frame capture (the record's `ts`) to the event arriving on
  the websocket;
- drops: frames the ingest nodes dropped (queues full: the model fell behind) or could not send.

It reports the largest N with no drops and a produced rate within 10 % of N x fps.

    python bench/scale.py --streams 1,2,4 --warmup 15 --measure 20          # short
    python bench/scale.py --device cuda --streams 8,16,32,64 --image-size 224
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import websockets

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from dinostream.core.embedded_broker import EmbeddedBroker  # noqa: E402
from dinostream.demo_video import make_video  # noqa: E402


class Proc:
    def __init__(self, role: str, name: str, env: dict[str, str], log: Path) -> None:
        self.role, self.name, self.env, self.log = role, name, env, log
        self.proc: asyncio.subprocess.Process | None = None
        self.url = ""

    async def start(self) -> Proc:
        with open(self.log, "ab") as err:
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "dinostream", self.role, stdout=asyncio.subprocess.PIPE, stderr=err, env=self.env
            )
        assert self.proc.stdout is not None
        line = (await asyncio.wait_for(self.proc.stdout.readline(), 180)).decode()
        if "is up: " not in line:
            tail = "\n".join(self.log.read_text(errors="replace").splitlines()[-20:])
            raise SystemExit(f"{self.name} did not start:\n{tail}")
        self.url = line.split("is up: ", 1)[1].strip()
        return self

    async def health(self, http: httpx.AsyncClient) -> dict[str, Any]:
        return dict((await http.get(self.url + "api/v1/health")).json())

    def stop(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.terminate()


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--streams", default="1,2,4", help="growing stream counts, comma separated")
    ap.add_argument("--fps", type=float, default=2.0, help="sampled frames per second per stream")
    ap.add_argument("--model", default="random:vits16")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--image-size", type=int, default=224)
    ap.add_argument("--warmup", type=float, default=15.0)
    ap.add_argument("--measure", type=float, default=20.0)
    ap.add_argument("--video-size", default="320x240", help="WxH of the generated videos")
    args = ap.parse_args()
    counts = [int(n) for n in args.streams.split(",")]
    w, h = (int(x) for x in args.video_size.split("x"))
    tmp = Path(tempfile.mkdtemp(prefix="dinostream-scale-"))
    video = tmp / "cam.mp4"
    make_video(video, shots=60, shot_s=4.0, fps=10, size=(w, h), seed=1)  # 4 minutes, a cut every 4 s

    broker = EmbeddedBroker(tmp / "broker.log")
    await broker.start()
    tag = uuid.uuid4().hex[:6]
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "DINOSTREAM_KAFKA__BOOTSTRAP": broker.bootstrap,
        "DINOSTREAM_KAFKA__IDEMPOTENT": "false",
        "DINOSTREAM_KAFKA__PARTITIONS": "4",
        "DINOSTREAM_KAFKA__SESSION_TIMEOUT_S": "6",
        "DINOSTREAM_ANALYTICS__APP_ID": f"scale-{tag}",
        "DINOSTREAM_MODEL__MODEL": args.model,
        "DINOSTREAM_MODEL__DEVICE": args.device,
        "DINOSTREAM_MODEL__IMAGE_SIZE": str(args.image_size),
        "DINOSTREAM_INGEST__SAMPLE_FPS": str(args.fps),
        "DINOSTREAM_INGEST__MEDIA_ROOTS": json.dumps([str(tmp)]),
        "DINOSTREAM_HTTP__PORT": "0",
    }
    plan = [("ingest", "ingest-1"), ("ingest", "ingest-2"), ("worker", "worker-1"), ("worker", "worker-2")]
    plan += [("index", "index"), ("gateway", "gateway")]
    procs = [
        Proc(role, name, {**env, "DINOSTREAM_DATA_DIR": str(tmp / name)}, tmp / f"{name}.stderr") for role, name in plan
    ]
    latencies: list[float] = []
    ws_events = 0
    try:
        await asyncio.gather(*(p.start() for p in procs))
        ingest, workers, index, gateway = procs[:2], procs[2:4], procs[4], procs[5]
        print(f"roles up ({args.model} on {args.device}, {args.image_size}px, {args.fps:g} fps/stream); logs {tmp}")

        async def listen() -> None:
            nonlocal ws_events
            url = gateway.url.replace("http://", "ws://") + "ws/events"
            async with websockets.connect(url, max_size=None) as ws:
                await ws.send(json.dumps({"types": ["scene_change"]}))
                async for raw in ws:
                    msg = json.loads(raw)
                    if msg.get("kind") == "event":
                        latencies.append(time.time() - msg["event"]["ts"])
                        ws_events += 1

        listener = asyncio.create_task(listen())
        rows = []
        added = 0
        async with httpx.AsyncClient(timeout=30) as http:

            async def totals() -> dict[str, float]:
                hi = [await p.health(http) for p in ingest]
                hw = [await p.health(http) for p in workers]
                return {
                    "produced": sum(x["kafka"]["produced"] for x in hi),
                    "dropped": sum(x["streams"]["drops"] + x["kafka"]["failed_dropped"] for x in hi),
                    "analysed": sum(x["analytics"]["records"] for x in hw),
                    "indexed": (await index.health(http))["index"]["frames"],
                    "events": ws_events,
                    "t": time.monotonic(),
                }

            for n in counts:
                while added < n:
                    body = {"url": str(video), "id": f"cam-{added}", "realtime": True}
                    r = await http.post(gateway.url + "api/v1/streams", json=body)
                    assert r.status_code == 201, r.text
                    added += 1
                await asyncio.sleep(args.warmup)
                a = await totals()
                del latencies[:]
                await asyncio.sleep(args.measure)
                b = await totals()
                dt = b["t"] - a["t"]
                rate = {k: (b[k] - a[k]) / dt for k in ("produced", "analysed", "indexed", "events")}
                drops = int(b["dropped"] - a["dropped"])
                lat = list(latencies)
                ok = drops == 0 and rate["produced"] >= 0.9 * n * args.fps
                rows.append((n, rate, drops, lat, ok))
                print(
                    f"N={n:3d}  ingest {rate['produced']:6.1f} rec/s (want {n * args.fps:g})  "
                    f"workers {rate['analysed']:6.1f} rec/s  index {rate['indexed']:6.1f} frames/s  "
                    f"ws {rate['events']:5.2f} events/s  e2e p50 {pct(lat, 50) * 1000:7.0f} ms  "
                    f"p99 {pct(lat, 99) * 1000:7.0f} ms (n={len(lat)})  drops {drops}  {'ok' if ok else 'BEHIND'}",
                    flush=True,
                )
        listener.cancel()
        sustained = [n for n, *_, ok in rows if ok]
        print(f"largest N sustained with no drops: {max(sustained) if sustained else 'none'} (of {counts})")
    finally:
        for p in procs:
            p.stop()
        for p in procs:
            if p.proc is not None:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(p.proc.wait(), 30)
                p.proc.kill() if p.proc.returncode is None else None
        await broker.stop()


if __name__ == "__main__":
    asyncio.run(main())
