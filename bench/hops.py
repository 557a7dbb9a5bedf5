"""CPU per frame of the hops after the model, in one process, without Kafka: the worker's host,
the index writer and the gateway's live feed, on records of the real ViT-S/16 shape.

Records come from a generated video (a cut every 4 s) through the service's ingest and model
stage with the ZERO-COST MODEL STAND-IN of bench/standin_launcher.py (the real 384-d CLS and
pooled vectors, 14x14x384 fp16 grid and JPEG thumbnail), replicated into --streams cameras, each
starting at another point of the video, interleaved as a broker would deliver them at --fps.
Then, on the same encoded records (each figure is process CPU time over the frames handled,
after --warmup frames per stream so the anomaly warm-up and calibration are behind):

- worker: `ProcessorHost` with every processor (`default_processors`, a watchlist exemplar
  registered), a state snapshot every `snapshot_every_s` of media time, as the Faust agent
  drives it (one record at a time); further lines split it
  by processor and shared pass (the first to read a record's shared arrays, the ObjectPass, pays
  for them; the timing wrappers add ~0.01 ms) and the host's own part (record decode, state saves,
  dispatch), and give the state written per save and each processor's state for one stream;
- index: `IndexWriter` over Qdrant Edge in a temporary directory, --index-batch records a write,
  decoding included (the sink decodes what it consumes);
- gateway: the frame previews' decode (what it reads since the previews topic) and the hub's frame
  notice and event messages, one subscriber.

It is the quick, quiet peer of bench/density.py (which runs the real topology): the figures
are comparable from run to run on one machine, and --profile prints cProfile's top functions
per hop.

    python bench/hops.py                      # 16 streams x 60 frames measured
    python bench/hops.py --profile worker     # cProfile of the worker hop (cumulative and own time)
    python bench/hops.py --blas-threads 0     # numpy's BLAS on one thread per core (the service caps it at 1)
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import dataclasses
import io
import json
import math
import pickle
import pstats
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import standin_launcher  # noqa: E402

from dinostream.analytics.exemplars import exemplar_from_patches  # noqa: E402
from dinostream.analytics.processor_set import ProcessorHost, ProcessorSet  # noqa: E402
from dinostream.analytics.watchlist import Exemplar, Watchlist  # noqa: E402
from dinostream.analytics.worker import default_processors  # noqa: E402
from dinostream.analyze import embed_file  # noqa: E402
from dinostream.core.blas import limit_blas_threads  # noqa: E402
from dinostream.core.records import Box, Event, FrameEmbedding, FrameHeader, FramePreview  # noqa: E402
from dinostream.core.settings import Settings  # noqa: E402
from dinostream.dashboard.live_hub import LiveHub  # noqa: E402
from dinostream.demo_video import make_video  # noqa: E402
from dinostream.embedding import model_loader  # noqa: E402
from dinostream.embedding.stage import load_model_async  # noqa: E402
from dinostream.sinks.index_factory import open_index  # noqa: E402
from dinostream.sinks.index_sink import IndexWriter  # noqa: E402


def make_records(settings: Settings, seconds: float, tmp: Path) -> list[FrameEmbedding]:
    video = tmp / "cam.mp4"
    make_video(video, shots=math.ceil(seconds / 4.0), shot_s=4.0, fps=10, size=(320, 240), seed=1)
    model_loader._build_random = standin_launcher._build_standin  # type: ignore[assignment]
    records: list[FrameEmbedding] = []

    async def run() -> None:
        loaded = await load_model_async(settings.model)
        await embed_file(str(video), settings, loaded, records.append)

    asyncio.run(run())
    return records


def camera_feed(base: list[FrameEmbedding], streams: int, frames: int, fps: float) -> list[bytes]:
    """`streams` cameras of `frames` records each, camera i starting i*7 records into the video
    (looping), interleaved frame by frame; encoded as they cross the broker."""
    t0 = 1.7e9  # fixed: two runs give the same records, and their events can be compared (--events-out)
    out = []
    for k in range(frames):
        for s in range(streams):
            rec = base[(k + 7 * s) % len(base)]
            out.append(
                dataclasses.replace(
                    rec, stream=f"cam-{s}", seq=k, pts=k / fps, ts=t0 + k / fps + s * 1e-3, jump=None
                ).encode()
            )
    return out


class Cpu:
    def __init__(self, profile: bool) -> None:
        self.profiler = cProfile.Profile() if profile else None

    def __enter__(self) -> Cpu:
        self.t = time.process_time()
        if self.profiler:
            self.profiler.enable()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.profiler:
            self.profiler.disable()
        self.s = time.process_time() - self.t

    def top(self, k: int = 25) -> str:
        assert self.profiler is not None
        out = io.StringIO()
        st = pstats.Stats(self.profiler, stream=out)
        st.sort_stats("tottime").print_stats(k)
        st.sort_stats("cumulative").print_stats(k)
        st.sort_stats("tottime").print_callers(5)
        return out.getvalue()


def _time_parts(procs: ProcessorSet) -> dict[str, float]:
    """Process CPU seconds spent in each processor's `process` and each shared pass's `observe`
    (accumulated into the returned dict; bench-only wrappers on these instances)."""
    spent: dict[str, float] = {}

    def timed(name: str, fn: Any) -> Any:
        def wrapper(*a: Any, **k: Any) -> Any:
            t = time.process_time()
            try:
                return fn(*a, **k)
            finally:
                spent[name] = spent.get(name, 0.0) + time.process_time() - t

        return wrapper

    for p in procs.processors:
        p.process = timed(p.name, p.process)  # type: ignore[method-assign]
    for x in procs.passes:
        x.observe = timed(f"pass:{type(x).__name__}", x.observe)  # type: ignore[method-assign]
    return spent


def worker_hop(
    settings: Settings, feed: list[bytes], warm: int, fps: float, profile: bool
) -> tuple[float, list[Event], Cpu]:
    first = FrameEmbedding.decode(feed[0])
    vector = exemplar_from_patches(first.patches, Box(0.3, 0.3, 0.7, 0.7), centering=0.5)
    watchlist = Watchlist([Exemplar("bench", "bench exemplar", vector)])
    procs = ProcessorSet(default_processors(settings.analytics, watchlist=watchlist))
    split = _time_parts(procs)
    table: dict[str, object] = {}
    host = ProcessorHost(
        procs, table.get, snapshot_every_s=settings.analytics.snapshot_every_s, chunk_chars=int(1_048_576 * 0.45)
    )
    events: list[Event] = []
    written: list[object] = []  # the measured frames' state writes (sized after the CPU window)
    streams = len({FrameHeader.decode(v).stream for v in feed[:64]})

    def run(values: list[bytes]) -> None:
        for v in values:
            out = host.receive_record(v, FrameHeader.decode(v).pts)
            events.extend(out.events)
            for w in out.writes:
                if w.value is None:
                    table.pop(w.key, None)
                else:
                    table[w.key] = w.value
                    written.append(w.value)

    run(feed[: warm * streams])
    del events[:], written[:]
    saves, kept = host.stats.snapshots, host.stats.state_chunks_kept
    split.clear()
    with Cpu(profile) as cpu:
        run(feed[warm * streams :])
    saves, kept = host.stats.snapshots - saves, host.stats.state_chunks_kept - kept
    frames = len(feed) - warm * streams
    parts = sorted(split.items(), key=lambda kv: -kv[1])
    rest = cpu.s - sum(split.values())
    print(
        "worker by part (ms/frame): "
        + "  ".join(f"{k} {1000 * v / frames:.2f}" for k, v in parts)
        + f"  host (decode, state, dispatch) {1000 * rest / frames:.2f}"
    )
    size = sum(len(v) if isinstance(v, str) else len(json.dumps(v, separators=(",", ":"))) for v in written)
    print(
        f"worker state: {size / max(saves, 1) / 1000:.0f} KB written per save of a stream ({saves} saves, "
        f"{kept} unchanged chunks not sent)"
    )
    one = FrameHeader.decode(feed[-1]).stream
    sizes = {p.name: len(json.dumps(p.snapshot(one), separators=(",", ":"))) for p in procs.processors}
    print(
        f"worker state of {one} by processor (KB of JSON): "
        + "  ".join(f"{k} {v / 1000:.0f}" for k, v in sorted(sizes.items(), key=lambda kv: -kv[1]))
    )
    return cpu.s, events, cpu


def index_hop(settings: Settings, feed: list[bytes], batch: int, tmp: Path, profile: bool) -> tuple[float, Cpu]:
    index = open_index(settings.index, tmp / "index", 384, None, reid=settings.analytics.reid)
    writer = IndexWriter(index, settings.index)
    try:
        with Cpu(profile) as cpu:
            for i in range(0, len(feed), batch):
                writer.write([FrameEmbedding.decode(v) for v in feed[i : i + batch]], [])
    finally:
        index.close()
    return cpu.s, cpu


def gateway_hop(feed: list[bytes], events: list[Event], profile: bool) -> tuple[float, Cpu]:
    hub = LiveHub(queue_size=len(feed) + len(events) + 10)
    previews = [FrameEmbedding.decode(v).preview(0, i).encode() for i, v in enumerate(feed)]  # what the stage sends
    with hub.subscribe("bench") as sub, Cpu(profile) as cpu:
        for v in previews:
            p = FramePreview.decode(v)
            hub.publish_frame(p.stream, p.seq, p.pts, p.thumbnail, model=p.model, untrained=p.untrained)
        for i, e in enumerate(events):
            hub.publish_event(Event.decode(e.encode()), partition=0, offset=i)
        del sub
    return cpu.s, cpu


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--streams", type=int, default=16)
    ap.add_argument("--warmup", type=int, default=60, help="frames per stream before measuring (anomaly warm-up)")
    ap.add_argument("--frames", type=int, default=60, help="frames per stream measured")
    ap.add_argument("--fps", type=float, default=2.0)
    ap.add_argument("--index-batch", type=int, default=64)
    ap.add_argument("--hops", default="worker,index,gateway")
    ap.add_argument("--profile", default="", help="comma separated hops to cProfile")
    ap.add_argument("--events-out", type=Path, help="write the worker's measured events here (JSON lines)")
    ap.add_argument(
        "--records",
        type=Path,
        help="read the stand-in records from this file, or write them there when it does not exist (the "
        "stage's batching varies the records' last bits from run to run: compare events on one set)",
    )
    ap.add_argument(
        "--blas-threads",
        type=int,
        help="numpy's BLAS threads (default: Settings().blas_threads, as the service sets; 0: one per core)",
    )
    args = ap.parse_args()
    hops = set(args.hops.split(","))
    profiled = set(args.profile.split(",")) - {""}
    settings = Settings(
        model={"model": "random:vits16", "device": "cpu"},
        ingest={"sample_fps": args.fps},
    )
    blas = args.blas_threads if args.blas_threads is not None else settings.blas_threads
    print(f"BLAS threads: {blas or 'one per core'} (before: {limit_blas_threads(blas)})")
    tmp = Path(tempfile.mkdtemp(prefix="dinostream-hops-"))
    try:
        if args.records is not None and args.records.exists():
            base = [FrameEmbedding.decode(v) for v in pickle.loads(args.records.read_bytes())]
        else:
            base = make_records(settings, 60.0, tmp)
            if args.records is not None:
                args.records.write_bytes(pickle.dumps([r.encode() for r in base]))
        feed = camera_feed(base, args.streams, args.warmup + args.frames, args.fps)
        measured = args.frames * args.streams
        print(f"{len(base)} distinct records ({len(feed[0]) / 1000:.0f} KB each), {args.streams} streams", flush=True)
        figures: dict[str, float] = {}
        events: list[Event] = []
        cpus: dict[str, Cpu] = {}
        if "worker" in hops:
            s, events, cpus["worker"] = worker_hop(settings, feed, args.warmup, args.fps, "worker" in profiled)
            figures["worker"] = 1000 * s / measured
            kinds: dict[str, int] = {}
            for e in events:
                kinds[e.type] = kinds.get(e.type, 0) + 1
            print(f"worker: {len(events)} events measured {dict(sorted(kinds.items()))}", flush=True)
            if args.events_out:
                args.events_out.write_text("".join(e.to_json() + "\n" for e in events))
        if "index" in hops:
            s, cpus["index"] = index_hop(settings, feed[-measured:], args.index_batch, tmp, "index" in profiled)
            figures["index"] = 1000 * s / measured
        if "gateway" in hops:
            s, cpus["gateway"] = gateway_hop(feed[-measured:], events, "gateway" in profiled)
            figures["gateway"] = 1000 * s / measured
        for hop in profiled & set(cpus):
            print(f"--- profile of {hop}\n{cpus[hop].top()}")
        print(
            "cpu ms/frame: "
            + "  ".join(f"{k} {v:.2f}" for k, v in figures.items())
            + f"  = {sum(figures.values()):.2f}"
        )

    finally:
        shutil.rmtree(tmp, ignore_errors=True)  # the index hop's Qdrant files: ~45 MB a run


if __name__ == "__main__":
    main()
