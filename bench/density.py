"""Streams per node and CPU per frame of every role, on the real topology.

The broker (the embedded Tansu), 2 ingest nodes, 2 analytics workers, an index sink and a gateway
run as separate processes (`dinostream <role>`, through the CLI), every processor on, a watchlist
exemplar registered, and a websocket client attached to the gateway taking everything (events and
frame notices, as the dashboard does). Streams are generated files played at their native rate
(a cut every 4 s, so scene-change events flow), added through the gateway's API and sampled at
--fps. For each N of --streams (growing; the roles keep running) it waits --warmup s, then
measures for --measure s:

- per role, CPU ms per frame: the processes' own CPU time (/proc/<pid>/stat utime+stime, children
  included) over the frames that role handled (ingest and broker: produced; workers: analysed;
  index: indexed; gateway: frame notices the websocket client got), so a role that falls behind
  still shows its cost; their sum is the CPU one frame costs;
- before any stream, each role's CPU with nothing to do (--idle s: consumers polling the broker,
  timers, health), and per N the share of it each frame carries at that rate: a fixed cost per
  second, so a frame's share of it shrinks as streams are added;
- throughput (records produced, analysed, indexed), drops, and end-to-end latency from frame
  capture (the event's `ts`) to the scene-change event arriving on the websocket.

N is sustained with no drops, produced within 10 % of N x fps and e2e p99 under 3 s.

It runs each of --models in turn, on a fresh broker and roles:

- `standin` (default first): a ZERO-COST MODEL STAND-IN with the output shape of ViT-S/16 at 224
  (bench/standin_launcher.py; the `dinostream` command cannot load it): everything but the model;
- `random:vits16`: the real architecture (untrained weights) on --device: the honest end-to-end figure.

The last two lines are `streams sustained: N` and `cpu ms/frame outside the model: X` (at the
largest sustained N, else the smallest measured), from the stand-in run when there is one.
--profile N records every role with py-spy (if installed) for --profile-s s after N's
measurement and prints each role's top functions (own time, and inclusive for dinostream code).

    python bench/density.py                                        # standin 8,16,24 then random:vits16 1,2,4
    python bench/density.py --models standin --streams 8,16,24 --profile 16
    python bench/density.py --quick                                # smoke test: 2 streams, short windows
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import json
import math
import os
import shlex
import shutil
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import websockets

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from dinostream.core.embedded_broker import EmbeddedBroker  # noqa: E402
from dinostream.demo_video import make_video  # noqa: E402

STANDIN = "standin"
LAUNCHER = Path(__file__).resolve().parent / "standin_launcher.py"
CLK_TCK = os.sysconf("SC_CLK_TCK")
SHOT_S = 4.0
P99_LIMIT_S = 3.0
ROLE_ORDER = ("ingest", "worker", "index", "gateway", "broker")


def process_tree(pid: int) -> list[int]:
    """`pid` and its descendants, from /proc/<pid>/task/<tid>/children."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        with contextlib.suppress(OSError):
            for task in os.listdir(f"/proc/{p}/task"):
                with contextlib.suppress(OSError), open(f"/proc/{p}/task/{task}/children") as f:
                    todo.extend(int(c) for c in f.read().split())
    return out


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of `pid` and its descendants (all threads)."""
    total = 0
    for p in process_tree(pid):
        with contextlib.suppress(OSError), open(f"/proc/{p}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of stat)
    return total / CLK_TCK


def broker_pid() -> int:
    """The embedded broker: the child of this process that runs Tansu."""
    for pid in process_tree(os.getpid())[1:]:
        with contextlib.suppress(OSError), open(f"/proc/{pid}/cmdline", "rb") as f:
            if b"broker" in f.read().split(b"\0")[1:2]:
                return pid
    raise SystemExit("cannot find the embedded broker's process")


class Proc:
    """One role, started through the CLI (or the stand-in launcher), answering on its health URL."""

    def __init__(self, role: str, name: str, env: dict[str, str], log: Path, standin: bool) -> None:
        self.role, self.name, self.env, self.log = role, name, env, log
        entry = [str(LAUNCHER)] if standin else ["-m", "dinostream"]
        self.argv = [sys.executable, *entry, role]
        self.proc: asyncio.subprocess.Process | None = None
        self.url = ""

    async def start(self) -> Proc:
        with open(self.log, "ab") as err:
            self.proc = await asyncio.create_subprocess_exec(
                *self.argv, stdout=asyncio.subprocess.PIPE, stderr=err, env=self.env
            )
        assert self.proc.stdout is not None
        line = (await asyncio.wait_for(self.proc.stdout.readline(), 300)).decode()
        if "is up: " not in line:
            tail = "\n".join(self.log.read_text(errors="replace").splitlines()[-20:])
            raise SystemExit(f"{self.name} did not start:\n{tail}")
        self.url = line.split("is up: ", 1)[1].strip()
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    async def health(self, http: httpx.AsyncClient) -> dict[str, Any]:
        return dict((await http.get(self.url + "api/v1/health")).json())

    def stop(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.terminate()


@dataclass
class Client:
    """The websocket client: every message, as the dashboard takes them; scene-change latency."""

    url: str
    latencies: list[float] = field(default_factory=list)
    events: int = 0
    frames: int = 0
    last_frame: dict[str, Any] | None = None
    models: set[str] = field(default_factory=set)

    async def run(self) -> None:
        async with websockets.connect(self.url, max_size=None) as ws:
            await ws.send(json.dumps({"batch": True}))
            async for raw in ws:
                msg = json.loads(raw)
                for m in msg["messages"] if msg.get("kind") == "batch" else [msg]:
                    self.take(m)

    def take(self, msg: dict[str, Any]) -> None:
        if msg.get("kind") == "frame":
            self.frames += 1
            self.last_frame = msg
            self.models.add(str(msg.get("model")))
        elif msg.get("kind") == "event":
            self.events += 1
            event = msg["event"]
            if event.get("type") == "scene_change":
                self.latencies.append(time.time() - event["ts"])


@dataclass
class Row:
    n: int
    rate: dict[str, float]
    drops: int
    latencies: list[float]
    cpu_ms: dict[str, float]  # per role, per frame produced
    fps: float
    idle_ms: dict[str, float] = field(default_factory=dict)  # per role, per frame: its CPU with no streams

    @property
    def idle_total_ms(self) -> float:
        return sum(self.idle_ms.values())

    @property
    def p99(self) -> float:
        return pct(self.latencies, 99)

    @property
    def ok(self) -> bool:
        return self.drops == 0 and self.rate["produced"] >= 0.9 * self.n * self.fps and bool(self.p99 < P99_LIMIT_S)

    @property
    def total_ms(self) -> float:
        return sum(self.cpu_ms.values())


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


class Topology:
    """Broker and roles for one model; streams added through the gateway."""

    def __init__(self, args: argparse.Namespace, model: str, tmp: Path, video: Path) -> None:
        self.args, self.model, self.tmp, self.video = args, model, tmp, video
        self.standin = model == STANDIN
        self.broker = EmbeddedBroker(tmp / "broker.log")
        self.procs: list[Proc] = []
        self.added = 0

    async def start(self) -> None:
        await self.broker.start()
        self.broker_pid = broker_pid()
        a = self.args
        tag = uuid.uuid4().hex[:6]
        env = {
            **os.environ,
            "HF_HUB_OFFLINE": "1",
            "DINOSTREAM_KAFKA__BOOTSTRAP": self.broker.bootstrap,
            "DINOSTREAM_KAFKA__IDEMPOTENT": "false",
            "DINOSTREAM_KAFKA__PARTITIONS": "4",
            "DINOSTREAM_KAFKA__SESSION_TIMEOUT_S": "6",
            "DINOSTREAM_ANALYTICS__APP_ID": f"density-{tag}",
            "DINOSTREAM_MODEL__MODEL": "random:vits16" if self.standin else self.model,
            "DINOSTREAM_MODEL__DEVICE": a.device,
            "DINOSTREAM_MODEL__IMAGE_SIZE": str(a.image_size),
            "DINOSTREAM_INGEST__SAMPLE_FPS": str(a.fps),
            "DINOSTREAM_INGEST__MEDIA_ROOTS": json.dumps([str(self.video.parent)]),
            "DINOSTREAM_HTTP__PORT": "0",
        }
        plan = [("ingest", f"ingest-{i + 1}") for i in range(a.ingest)]
        plan += [("worker", f"worker-{i + 1}") for i in range(a.workers)]
        plan += [("index", "index"), ("gateway", "gateway")]
        self.procs = [
            Proc(
                role,
                name,
                {**env, "DINOSTREAM_DATA_DIR": str(self.tmp / name)},
                self.tmp / f"{name}.stderr",
                self.standin,
            )
            for role, name in plan
        ]
        await asyncio.gather(*(p.start() for p in self.procs))

    def of(self, role: str) -> list[Proc]:
        return [p for p in self.procs if p.role == role]

    @property
    def gateway(self) -> Proc:
        return self.of("gateway")[0]

    def cpu(self) -> dict[str, float]:
        out = {role: sum(cpu_seconds(p.pid) for p in self.of(role)) for role in ROLE_ORDER if role != "broker"}
        out["broker"] = cpu_seconds(self.broker_pid)
        return out

    async def totals(self, http: httpx.AsyncClient, client: Client) -> dict[str, float]:
        hi = [await p.health(http) for p in self.of("ingest")]
        hw = [await p.health(http) for p in self.of("worker")]
        return {
            "produced": sum(x["kafka"]["produced"] for x in hi),
            "dropped": sum(x["streams"]["drops"] + x["kafka"]["failed_dropped"] for x in hi),
            "analysed": sum(x["analytics"]["records"] for x in hw),
            "indexed": (await self.of("index")[0].health(http))["index"]["frames"],
            "events": client.events,
            "notices": client.frames,
            "t": time.monotonic(),
        }

    async def model_ids(self, http: httpx.AsyncClient) -> set[str]:
        return {str((await p.health(http)).get("model", {}).get("id")) for p in self.of("ingest")}

    async def add_streams(self, http: httpx.AsyncClient, n: int) -> None:
        while self.added < n:
            body = {"url": str(self.video), "id": f"cam-{self.added}", "realtime": True}
            r = await http.post(self.gateway.url + "api/v1/streams", json=body)
            if r.status_code != 201:
                raise SystemExit(f"adding a stream failed: HTTP {r.status_code} {r.text}")
            self.added += 1

    async def stop(self) -> None:
        for p in self.procs:
            p.stop()
        for p in self.procs:
            if p.proc is not None:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(p.proc.wait(), 30)
                if p.proc.returncode is None:
                    p.proc.kill()
        await self.broker.stop()


async def register_exemplar(http: httpx.AsyncClient, gateway: Proc, client: Client) -> str:
    """A watchlist exemplar from the middle of a recent frame, so the watchlist processor matches."""
    frame = client.last_frame
    if frame is None:
        return "no frame seen yet: watchlist left empty"
    body = {
        "label": "bench exemplar",
        "frame": {"stream": frame["stream"], "seq": frame["seq"]},
        "box": {"x0": 0.3, "y0": 0.3, "x1": 0.7, "y1": 0.7},
    }
    r = await http.post(gateway.url + "api/v1/watchlist", json=body)
    return f"watchlist exemplar from {frame['stream']}#{frame['seq']}: HTTP {r.status_code}"


async def profile(topo: Topology, seconds: float, out_dir: Path) -> dict[str, list[str]]:
    """py-spy record of every role at once (active samples only: CPU, not waiting); top lines per role."""
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(spy).exists():
        return {"(profile)": ["py-spy is not installed: pip install py-spy"]}
    procs = {}
    for p in topo.procs:
        raw = out_dir / f"profile-{p.name}.txt"
        cmd = [spy, "record", "-d", str(int(seconds)), "-r", "50", "-f", "raw", "-o", str(raw), "-p", str(p.pid)]
        cmd += ["--subprocesses", "--nonblocking"]
        procs[p.name] = (
            await asyncio.create_subprocess_exec(
                *cmd, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL
            ),
            raw,
        )
    tops: dict[str, list[str]] = {}
    for name, (proc, raw) in procs.items():
        await proc.wait()
        tops[name] = top_costs(raw) if raw.exists() else [f"py-spy failed (exit {proc.returncode})"]
    return tops


# Leaves that wait (a thread py-spy saw runnable, not computing: on a loaded machine many are).
_WAITING = ("select (selectors.py)", "wait (threading.py)", "_worker (thread.py)", "sleep", "acquire", "get (queue.py)")


def top_costs(raw: Path, k: int = 5) -> list[str]:
    """The `k` functions with the most own samples, and the `k` of our functions with the most
    samples where they are the innermost of ours (their own time and the library calls they make),
    from py-spy's raw (collapsed stacks) output; waits counted apart."""
    own: collections.Counter[str] = collections.Counter()
    inside: collections.Counter[str] = collections.Counter()
    total = waiting = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n, frames = int(count), stack.split(";")
        leaf = _short(frames[-1])
        if any(w in leaf for w in _WAITING):
            waiting += n
            continue
        total += n
        own[leaf] += n
        ours = [f for f in frames if _ours(f)]
        if ours:  # the innermost of our functions, with the library calls it makes
            inside[_short(ours[-1])] += n
    if not total:
        return ["no samples"]
    lines = [f"own    {100 * c / total:5.1f}%  {f}" for f, c in own.most_common(k)]
    lines += [f"ours   {100 * c / total:5.1f}%  {f}" for f, c in inside.most_common(k)]
    return [f"{total} samples computing (+{waiting} waiting/runnable, left out)", *lines]


def _ours(frame: str) -> bool:
    """A frame in this repository's code (py-spy names files relative to sys.path)."""
    where = frame.partition(" (")[2].rstrip(")").rsplit(":", 1)[0]
    return bool(where) and ".venv" not in where and (ROOT / where).is_file()


def _short(frame: str) -> str:
    """`func (path/to/file.py:12)` -> `func (file.py)`: lines of one function add up."""
    name, _, where = frame.partition(" (")
    return f"{name} ({Path(where.rstrip(')').rsplit(':', 1)[0]).name})" if where else name


async def run_model(args: argparse.Namespace, model: str, counts: list[int], tmp: Path, video: Path) -> list[Row]:
    label = f"{model} ({'ZERO-COST MODEL STAND-IN, ViT-S/16 shapes' if model == STANDIN else 'on ' + args.device})"
    topo = Topology(args, model, tmp / model.replace(":", "-"), video)
    topo.tmp.mkdir(parents=True)
    rows: list[Row] = []
    listener: asyncio.Task[None] | None = None
    try:
        started = time.monotonic()
        await topo.start()
        client = Client(topo.gateway.url.replace("http://", "ws://") + "ws/events")
        listener = asyncio.create_task(client.run())
        print(f"\n== {label}: roles up in {time.monotonic() - started:.0f} s; logs {topo.tmp}", flush=True)
        async with httpx.AsyncClient(timeout=60) as http:
            ids = await topo.model_ids(http)
            if (model == STANDIN) != all(i.startswith("standin:") for i in ids):
                raise SystemExit(f"the ingest nodes run {ids}, not what {model} asks for")
            idle = await idle_cpu(topo, args.idle)  # ms/s per role
            if idle:
                parts = "  ".join(f"{role} {idle[role]:5.1f}" for role in ROLE_ORDER)
                print(
                    f"  idle, no streams ({args.idle:g} s), cpu ms/s: {parts}  = {sum(idle.values()):5.1f}", flush=True
                )
            exemplar_done = False
            for n in counts:
                await topo.add_streams(http, n)
                await asyncio.sleep(args.warmup)
                if not exemplar_done:
                    print("  " + await register_exemplar(http, topo.gateway, client), flush=True)
                    exemplar_done = True
                a, cpu_a = await topo.totals(http, client), topo.cpu()
                del client.latencies[:]
                await asyncio.sleep(args.measure)
                b, cpu_b = await topo.totals(http, client), topo.cpu()
                if listener.done():
                    listener.result()  # raises what stopped the websocket client
                    raise SystemExit("the websocket client stopped")
                dt = b["t"] - a["t"]
                rate = {k: (b[k] - a[k]) / dt for k in ("produced", "analysed", "indexed", "events")}
                # Each role's CPU over the frames it handled: a role that falls behind still shows its cost.
                handled = {k: b[k] - a[k] for k in ("produced", "analysed", "indexed", "notices")}
                per = {"ingest": "produced", "worker": "analysed", "index": "indexed", "gateway": "notices"}
                frames = {r: max(handled[per.get(r, "produced")], 1) for r in ROLE_ORDER}
                cpu_ms = {r: 1000 * (cpu_b[r] - cpu_a[r]) / frames[r] for r in ROLE_ORDER}
                idle_ms = {r: idle[r] * dt / frames[r] for r in idle}  # the fixed cost each frame carries at this rate
                row = Row(n, rate, int(b["dropped"] - a["dropped"]), list(client.latencies), cpu_ms, args.fps, idle_ms)
                rows.append(row)
                print_row(row)
                if args.profile == n:
                    tops = await profile(topo, args.profile_s, topo.tmp)
                    print(f"  profile at N={n} ({args.profile_s:g} s of py-spy, raw stacks in {topo.tmp}):")
                    for name, lines in tops.items():
                        print(f"    {name}: " + "\n      ".join(lines))
        sustained = [r.n for r in rows if r.ok]
        print(f"  {model}: streams sustained: {max(sustained) if sustained else 0} (of {counts})", flush=True)
        return rows
    finally:
        if listener is not None:
            listener.cancel()
        await topo.stop()
        if not args.keep_data:  # the roles' data dirs (the index's Qdrant files: ~100 MB a run); logs stay
            for d in topo.tmp.iterdir():
                if d.is_dir():
                    shutil.rmtree(d, ignore_errors=True)


def print_row(row: Row) -> None:
    r = row.rate
    print(
        f"  N={row.n:3d}  produced {r['produced']:6.1f} rec/s (want {row.n * row.fps:g})  analysed {r['analysed']:6.1f}"
        f"  indexed {r['indexed']:6.1f}  ws {r['events']:5.2f} events/s  e2e p50 {pct(row.latencies, 50) * 1000:6.0f}"
        f" ms p99 {row.p99 * 1000:6.0f} ms (n={len(row.latencies)})  drops {row.drops}  {'ok' if row.ok else 'BEHIND'}",
        flush=True,
    )
    parts = "  ".join(f"{role} {row.cpu_ms[role]:5.1f}" for role in ROLE_ORDER)
    print(f"         cpu ms/frame: {parts}  = {row.total_ms:5.1f}", flush=True)
    if row.idle_ms:
        print(
            f"         of which the roles' idle cost {row.idle_total_ms:.1f} (fixed per second, so smaller per frame "
            f"at more streams); per frame beyond it {row.total_ms - row.idle_total_ms:.1f}",
            flush=True,
        )


async def idle_cpu(topo: Topology, seconds: float) -> dict[str, float]:
    """Each role's CPU ms per second with no streams (consumers polling, timers, health): what a
    frame's share of it is depends on the frame rate, not on the frame. Empty for `seconds` 0."""
    if seconds <= 0:
        return {}
    before, started = topo.cpu(), time.monotonic()
    await asyncio.sleep(seconds)
    after, dt = topo.cpu(), time.monotonic() - started
    return {r: 1000 * (after[r] - before[r]) / dt for r in ROLE_ORDER}


def pick(rows: list[Row]) -> Row | None:
    """The row the summary quotes: the largest sustained N, else the smallest measured."""
    ok = [r for r in rows if r.ok]
    return max(ok, key=lambda r: r.n) if ok else (min(rows, key=lambda r: r.n) if rows else None)


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default=f"{STANDIN},random:vits16", help="comma separated; 'standin' or a model spec")
    ap.add_argument("--streams", default="8,16,24", help="growing stream counts for the stand-in")
    ap.add_argument("--model-streams", default="1,2,4", help="growing stream counts for a real model")
    ap.add_argument("--fps", type=float, default=2.0, help="sampled frames per second per stream")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--image-size", type=int, default=224)
    ap.add_argument(
        "--warmup",
        type=float,
        default=30.0,
        help="s after adding streams (anomaly warm-up: 40 frames, then calibration)",
    )
    ap.add_argument("--measure", type=float, default=20.0)
    ap.add_argument("--idle", type=float, default=10.0, help="s of each role's CPU with no streams first (0: skip)")
    ap.add_argument("--ingest", type=int, default=2, help="ingest nodes")
    ap.add_argument("--workers", type=int, default=2, help="analytics workers")
    ap.add_argument("--video-size", default="320x240", help="WxH of the generated videos")
    ap.add_argument("--profile", type=int, default=0, metavar="N", help="py-spy every role after measuring N")
    ap.add_argument("--profile-s", type=float, default=20.0)
    ap.add_argument("--keep-data", action="store_true", help="keep the roles' data dirs (index files) with the logs")
    ap.add_argument(
        "--quick",
        action="store_true",
        help="smoke test: 2 streams (1 for a real model), 1 ingest node, 1 worker, short windows",
    )
    args = ap.parse_args()
    if args.quick:
        args.streams, args.model_streams, args.warmup, args.measure = "2", "1", 8.0, 8.0
        args.idle = min(args.idle, 3.0)
        args.ingest, args.workers = 1, 1  # every role still runs as its own process, once
    print("$", shlex.join([Path(sys.executable).name, *sys.argv]), flush=True)
    with contextlib.suppress(OSError):
        print(f"load average {' '.join(Path('/proc/loadavg').read_text().split()[:3])} on {os.cpu_count()} cores")
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    plans = {m: [int(n) for n in (args.streams if m == STANDIN else args.model_streams).split(",")] for m in models}
    longest = (
        max(len(c) for c in plans.values()) * (args.warmup + args.measure + (args.profile_s if args.profile else 0))
        + 120
    )
    tmp = Path(tempfile.mkdtemp(prefix="dinostream-density-"))
    w, h = (int(x) for x in args.video_size.split("x"))
    video = tmp / "cam.mp4"
    make_video(video, shots=math.ceil(longest / SHOT_S), shot_s=SHOT_S, fps=10, size=(w, h), seed=1)

    results = {m: await run_model(args, m, plans[m], tmp, video) for m in models}
    print()
    for m, rows in results.items():
        row = pick(rows)
        if row is not None:
            sustained = max([r.n for r in rows if r.ok], default=0)
            print(f"{m}: streams sustained: {sustained}; cpu ms/frame {row.total_ms:.1f} in all at N={row.n}")
    main_model = STANDIN if STANDIN in results else models[0]
    rows = results[main_model]
    row = pick(rows)
    print(f"streams sustained: {max([r.n for r in rows if r.ok], default=0)}")
    outside = f"{row.total_ms:.1f} (at N={row.n}" if row is not None else "nan ("
    outside += ")" if main_model == STANDIN else f", {main_model}: the model included)"
    print(f"cpu ms/frame outside the model: {outside}")


if __name__ == "__main__":
    asyncio.run(main())
