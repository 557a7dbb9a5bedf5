"""Fan-out latency of /ws/events: one gateway process, N websocket clients in other processes.

A real uvicorn server on loopback (port 0) serves the hub; events are published at --rate per
second for --seconds with their send time inside; every client records receive - send. Run twice
on the same server: without, then with one extra client that connects and never reads. Prints
p50/p99 over all clients for both and their ratio: a stuck client must not slow the others.

    python bench/fanout.py --clients 500 --rate 100 --seconds 20
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import shlex
import socket
import sys
import time
from typing import Any

import numpy as np
import uvicorn
from fastapi import FastAPI
from websockets.asyncio.client import ClientConnection, connect

from dashboard.live_hub import LiveHub
from dashboard.ws_api import ws_router
from dinostream.records import Event, event_id
from dinostream.settings import HttpSettings

# ---------- clients (their own processes) ----------


async def _client_main(url: str, n: int, deflate: bool, out: Any, go: Any) -> None:
    compression = "deflate" if deflate else None
    conns: list[ClientConnection] = []
    for i in range(0, n, 50):  # connect in batches: the listen backlog and the handshake CPU
        batch = await asyncio.gather(
            *(connect(url, compression=compression, max_queue=None, open_timeout=60) for _ in range(min(50, n - i)))
        )
        conns.extend(batch)
    for ws in conns:
        await ws.send("{}")
    for ws in conns:
        assert json.loads(await ws.recv())["kind"] == "hello"
    out.put(("ready", None))

    async def read(ws: ClientConnection) -> list[float]:
        lat: list[float] = []
        while True:
            text = await ws.recv()
            now = time.time()
            msg = json.loads(text)
            details = msg["event"]["details"]
            if details.get("stop"):
                return lat
            lat.append(now - details["sent"])

    results = await asyncio.gather(*(read(ws) for ws in conns))
    out.put(("latencies", np.concatenate([np.asarray(r, dtype=np.float64) for r in results]).tobytes()))
    await asyncio.gather(*(ws.close() for ws in conns))


def _client_proc(url: str, n: int, deflate: bool, out: Any, go: Any) -> None:
    asyncio.run(_client_main(url, n, deflate, out, go))


async def _stuck_main(url: str, out: Any, stop: Any) -> None:
    # A small receive buffer and a client that never calls recv(): its bytes pile up at the server.
    sock = socket.create_connection((url.split("/")[2].split(":")[0], int(url.split("/")[2].split(":")[1])))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    async with connect(url, sock=sock, max_queue=1, close_timeout=1) as ws:
        await ws.send("{}")
        out.put(("ready", None))
        while not stop.is_set():
            await asyncio.sleep(0.2)
        code = ws.close_code
    out.put(("stuck", code))


def _stuck_proc(url: str, out: Any, stop: Any) -> None:
    asyncio.run(_stuck_main(url, out, stop))


# ---------- the gateway (this process) ----------


def _event(k: int, phase: str, **details: Any) -> Event:
    return Event(
        id=event_id(f"cam{k % 8}", "anomaly", k),
        type="anomaly",
        stream=f"cam{k % 8}",
        t=k / 10,
        t_start=k / 10,
        t_end=k / 10,
        ts=time.time(),
        score=0.75,
        frames=(k, k + 1),
        details={"phase": phase, **details},
    )


async def _phase(hub: LiveHub, url: str, args: argparse.Namespace, stuck: bool, k0: int) -> tuple[np.ndarray, Any]:
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    stop = ctx.Event()
    per = [args.clients // args.procs + (1 if i < args.clients % args.procs else 0) for i in range(args.procs)]
    procs = [ctx.Process(target=_client_proc, args=(url, n, args.deflate, out, None)) for n in per]
    if stuck:
        procs.append(ctx.Process(target=_stuck_proc, args=(url, out, stop)))
    for p in procs:
        p.start()
    loop = asyncio.get_running_loop()
    for _ in procs:
        kind, _x = await loop.run_in_executor(None, out.get)
        assert kind == "ready"
    phase = "stuck" if stuck else "clean"
    n = int(args.rate * args.seconds)
    start = time.perf_counter()
    for k in range(n):
        hub.publish_event(_event(k0 + k, phase, sent=time.time()))
        delay = start + (k + 1) / args.rate - time.perf_counter()
        await asyncio.sleep(max(0.0, delay))
    hub.publish_event(_event(k0 + n, phase, stop=True))
    lats: list[np.ndarray] = []
    stuck_code = None
    for _ in range(args.procs):
        while True:
            kind, data = await loop.run_in_executor(None, out.get)
            if kind == "latencies":
                lats.append(np.frombuffer(data, dtype=np.float64))
                break
    if stuck:
        stop.set()
        kind, stuck_code = await loop.run_in_executor(None, out.get)
    for p in procs:
        await loop.run_in_executor(None, p.join)
    return np.concatenate(lats), stuck_code


async def main(args: argparse.Namespace) -> None:
    hub = LiveHub(queue_size=args.queue_size, recent=0)
    app = FastAPI()
    app.include_router(ws_router(settings=HttpSettings(ws_queue_size=args.queue_size), hub=hub))
    config = uvicorn.Config(
        app, host="127.0.0.1", port=0, ws="websockets-sansio", log_level="warning", lifespan="off", backlog=4096
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.01)
    host, port = server.servers[0].sockets[0].getsockname()[:2]
    url = f"ws://{host}:{port}/ws/events"
    try:
        figures = {}
        for stuck in (False, True):
            lat, code = await _phase(hub, url, args, stuck, 1_000_000 * (1 + stuck))
            ms = lat * 1000
            name = "with one stuck client" if stuck else "without a stuck client"
            p50, p99, mx = np.percentile(ms, 50), np.percentile(ms, 99), ms.max()
            figures[stuck] = p99
            expected = args.clients * int(args.rate * args.seconds)
            extra = f"; stuck client closed with {code}" if stuck else ""
            print(
                f"{name:24s}: {len(ms)}/{expected} deliveries, p50 {p50:6.1f} ms  p99 {p99:6.1f} ms  "
                f"max {mx:6.1f} ms{extra}",
                flush=True,
            )
        stats = hub.stats()
        print(f"hub: dropped_clients={stats['dropped_clients']} messages_sent={stats['messages_sent']}")
        print(f"p99 ratio stuck/clean: {figures[True] / figures[False]:.2f}  (goal: p99 < 100 ms, ratio ~1)")
    finally:
        server.should_exit = True
        await task


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clients", type=int, default=500)
    ap.add_argument("--rate", type=float, default=100.0, help="events per second")
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--procs", type=int, default=2, help="client processes")
    ap.add_argument("--queue-size", type=int, default=256, help="per-client queue (HttpSettings.ws_queue_size)")
    ap.add_argument(
        "--no-deflate", dest="deflate", action="store_false", help="clients do not offer permessage-deflate"
    )
    print("$ python " + " ".join(shlex.quote(a) for a in sys.argv), flush=True)
    asyncio.run(main(ap.parse_args()))
