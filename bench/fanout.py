"""Fan-out latency of /ws/events: one gateway process, N websocket clients in other processes.

A real uvicorn server on loopback (port 0) serves the hub; events are due at --rate per second
for --seconds, each carrying the time it was due; every client records receive - due. Events are
published as `LiveFeed` does: all that are due at once, without yielding in between, so a busy
event loop shows up as latency (and batching) instead of slowing the publisher. Run twice on the
same server: without, then with one extra client that connects and never reads (the kernel's
socket buffers hold several MB for it: use --pad to see it dropped with 1013 within the run).
Prints p50/p99 over all clients for both and their ratio: a stuck client must not slow the others.

Besides what the clients observe, the gateway measures its own side: due -> the websocket send
call done (`server`, on every 5th connection), how late the publisher ran (`publish lag`: the
event loop's longest turns), the messages per websocket frame (batching), clients dropped for
falling behind, and the CPU seconds of the gateway and of the client processes, so a run on few
cores says whether the clients or the server were the limit. Clients ask for batches
(`"batch": true`, as the dashboard does) unless --no-batch; the server turns permessage-deflate
down (as `dinostream.gateway_node.HttpNode` does) unless --server-deflate.

    python bench/fanout.py --clients 500 --rate 100 --seconds 20
    python bench/fanout.py --no-batch --server-deflate   # a frame per message, compressed (as before)
    python bench/fanout.py --seconds 5 --profile 25       # cProfile of the gateway (skews latency)
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import multiprocessing as mp
import pstats
import re
import shlex
import socket
import sys
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import numpy as np
import uvicorn
from fastapi import FastAPI
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from dinostream.core.records import Event, event_id
from dinostream.core.settings import HttpSettings
from dinostream.dashboard.live_hub import LiveHub
from dinostream.dashboard.ws_api import ws_router

_SENT = re.compile(r'"sent":([-0-9.e+]+)')  # an event's details.sent, in a message or a batch

# ---------- clients (their own processes) ----------


async def _client_main(url: str, n: int, deflate: bool, batch: bool, out: Any) -> None:
    compression = "deflate" if deflate else None
    conns: list[ClientConnection] = []
    for i in range(0, n, 50):  # connect in batches: the listen backlog and the handshake CPU
        batch_ = await asyncio.gather(
            *(connect(url, compression=compression, max_queue=None, open_timeout=60) for _ in range(min(50, n - i)))
        )
        conns.extend(batch_)
    first = json.dumps({"batch": True} if batch else {})
    for ws in conns:
        await ws.send(first)
    for ws in conns:
        assert json.loads(await ws.recv())["kind"] == "hello"
    out.put(("ready", None))
    cpu0 = time.process_time()

    closed = 0

    async def read(ws: ClientConnection) -> list[float]:
        nonlocal closed
        lat: list[float] = []
        while True:
            try:
                text = await ws.recv()
            except ConnectionClosed:  # dropped by the gateway (1013): fell too far behind
                closed += 1
                return lat
            now = time.time()
            # The clients share the cores with the gateway: read the send times with a regex (a
            # fifth of a JSON parse); the delivery count checks that every event arrived.
            lat.extend(now - float(sent) for sent in _SENT.findall(text))
            if '"stop":true' in text:
                return lat

    results = await asyncio.gather(*(read(ws) for ws in conns))
    cpu = time.process_time() - cpu0
    lat = np.concatenate([np.asarray(r, dtype=np.float64) for r in results])
    out.put(("latencies", (lat.tobytes(), cpu, closed)))
    await asyncio.gather(*(ws.close() for ws in conns))


def _client_proc(url: str, n: int, deflate: bool, batch: bool, out: Any) -> None:
    asyncio.run(_client_main(url, n, deflate, batch, out))


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

Scope = MutableMapping[str, Any]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


class SendClock:
    """ASGI wrapper: counts websocket frames sent and, on every `sample`th connection (the timing
    costs the gateway CPU too), the publish -> send-done time of each event in them."""

    def __init__(self, app: Any, sample: int = 5) -> None:
        self.app = app
        self.sample = sample
        self.lat: list[float] = []
        self.frames = 0
        self._connections = 0

    def reset(self) -> None:
        self.lat = []
        self.frames = 0

    async def __call__(self, scope: Scope, receive: Any, send: Send) -> None:
        if scope["type"] != "websocket":
            await self.app(scope, receive, send)
            return
        self._connections += 1
        timed = self._connections % self.sample == 0

        async def clocked_send(message: MutableMapping[str, Any]) -> None:
            await send(message)
            text = message.get("text")
            if text is not None:
                self.frames += 1
                if timed:
                    now = time.time()
                    self.lat.extend(now - float(s) for s in _SENT.findall(text))

        await self.app(scope, receive, clocked_send)


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


async def _phase(
    hub: LiveHub, clock: SendClock, url: str, args: argparse.Namespace, stuck: bool, k0: int
) -> dict[str, Any]:
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    stop = ctx.Event()
    per = [args.clients // args.procs + (1 if i < args.clients % args.procs else 0) for i in range(args.procs)]
    procs = [ctx.Process(target=_client_proc, args=(url, n, args.deflate, args.batch, out)) for n in per]
    if stuck:
        procs.append(ctx.Process(target=_stuck_proc, args=(url, out, stop)))
    for p in procs:
        p.start()
    loop = asyncio.get_running_loop()
    for _ in procs:
        kind, _x = await loop.run_in_executor(None, out.get)
        assert kind == "ready"
    phase = "stuck" if stuck else "clean"
    pad = {"pad": "x" * args.pad} if args.pad else {}
    n = int(args.rate * args.seconds)
    profiler = cProfile.Profile() if args.profile and not stuck else None
    sent0 = hub.stats()["messages_sent"]
    clock.reset()
    lag = np.empty(n)
    cpu0 = time.process_time()
    if profiler:
        profiler.enable()
    start, wall0 = time.perf_counter(), time.time()
    k = 0
    while k < n:
        # Every event due by now, without yielding in between: what `LiveFeed` does with the records
        # aiokafka has fetched. `sent` is when the event was due, so a publisher held up by a busy
        # event loop counts as latency instead of hiding it.
        now = time.perf_counter()
        due = max(k + 1, min(n, int((now - start) * args.rate) + 1))
        while k < due:
            lag[k] = now - (start + k / args.rate)
            hub.publish_event(_event(k0 + k, phase, sent=wall0 + k / args.rate, **pad))
            k += 1
        await asyncio.sleep(max(0.0, start + k / args.rate - time.perf_counter()))
    hub.publish_event(_event(k0 + n, phase, stop=True))
    lats: list[np.ndarray] = []
    client_cpu = 0.0
    closed = 0
    stuck_code = None
    for _ in range(args.procs):
        while True:
            kind, data = await loop.run_in_executor(None, out.get)
            if kind == "latencies":
                lats.append(np.frombuffer(data[0], dtype=np.float64))
                client_cpu += data[1]
                closed += data[2]
                break
    if profiler:
        profiler.disable()
    server_cpu = time.process_time() - cpu0
    frames, messages = clock.frames, hub.stats()["messages_sent"] - sent0
    server_lat = np.asarray(clock.lat)
    if stuck:
        stop.set()
        kind, stuck_code = await loop.run_in_executor(None, out.get)
    for p in procs:
        await loop.run_in_executor(None, p.join)
    if profiler:
        pstats.Stats(profiler).sort_stats("tottime").print_stats(args.profile)
    return {
        "lat": np.concatenate(lats),
        "server": server_lat,
        "lag": lag,
        "code": stuck_code,
        "frames": frames,
        "messages": messages,
        "cpu": server_cpu,
        "client_cpu": client_cpu,
        "closed": closed,
    }


async def main(args: argparse.Namespace) -> None:
    hub = LiveHub(queue_size=args.queue_size, recent=0)
    app = FastAPI()
    app.include_router(ws_router(settings=HttpSettings(ws_queue_size=args.queue_size), hub=hub))
    clock = SendClock(app)
    config = uvicorn.Config(
        clock,
        host="127.0.0.1",
        port=0,
        ws="websockets-sansio",
        ws_per_message_deflate=args.server_deflate,
        log_level="warning",
        lifespan="off",
        backlog=4096,
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.01)
    host, port = server.servers[0].sockets[0].getsockname()[:2]
    url = f"ws://{host}:{port}/ws/events"
    print(
        f"clients {args.clients} in {args.procs} processes, {args.rate:g} events/s for {args.seconds:g} s"
        f" (+{args.pad} bytes each); "
        f"batching {'on' if args.batch else 'off'}, permessage-deflate "
        f"{'on' if args.server_deflate and args.deflate else 'off'}",
        flush=True,
    )
    try:
        figures = {}
        for stuck in (False, True):
            r = await _phase(hub, clock, url, args, stuck, 1_000_000 * (1 + stuck))
            ms, server_ms, lag_ms = r["lat"] * 1000, r["server"] * 1000, r["lag"] * 1000
            name = "with one stuck client" if stuck else "without a stuck client"
            p50, p99, mx = np.percentile(ms, 50), np.percentile(ms, 99), ms.max()
            figures[stuck] = p99
            expected = args.clients * int(args.rate * args.seconds)
            extra = f"; {r['closed']} clients dropped" if r["closed"] else ""
            if stuck:
                code = r["code"]
                extra += f"; the stuck client got close code {code}" if code else "; the stuck client read no close"
            print(
                f"{name:24s}: {len(ms)}/{expected} deliveries, p50 {p50:6.1f} ms  p99 {p99:6.1f} ms  "
                f"max {mx:6.1f} ms{extra}",
                flush=True,
            )
            print(
                f"{'':24s}  server p50 {np.percentile(server_ms, 50):6.1f} ms  p99 {np.percentile(server_ms, 99):6.1f}"
                f" ms; publish lag p99 {np.percentile(lag_ms, 99):6.1f} ms; {r['messages'] / max(r['frames'], 1):.1f}"
                f" messages/frame; CPU s: gateway {r['cpu']:.1f}, clients {r['client_cpu']:.1f} "
                f"(wall {args.seconds:g})",
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
    ap.add_argument(
        "--server-deflate", action="store_true", help="the server accepts permessage-deflate (uvicorn's default)"
    )
    ap.add_argument(
        "--no-batch", dest="batch", action="store_false", help='clients do not ask for batches ({"batch": true})'
    )
    ap.add_argument("--pad", type=int, default=0, metavar="BYTES", help="make each event this much bigger")
    ap.add_argument("--profile", type=int, default=0, metavar="N", help="print the gateway's top N functions")
    print("$ python " + " ".join(shlex.quote(a) for a in sys.argv), flush=True)
    asyncio.run(main(ap.parse_args()))
