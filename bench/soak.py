"""Soak test of stream supervision: N RTSP streams through StreamSupervisors for a long while.

Starts a loopback RTSP server (Debian's gst-rtsp-server, tests/integration/rtsp_server.py run
with /usr/bin/python3), points N supervisors at it (real PyAV decoding, resized to --size),
and hands every frame to a sink that counts it and drops it. With --restart-every the server
is SIGKILLed and restarted on the same port now and then, so every stream goes through
backoff and reconnects over and over. Prints the process's RSS (VmRSS) after the warm-up,
every --report-every seconds, and at the end, with frames and drops per stream. The goal is
a flat RSS: nothing that grows with time or with reconnects.

    python bench/soak.py                              # 10 streams, 300 s
    python bench/soak.py --streams 10 --duration 60 --restart-every 20
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the repository's tests/ helpers

from dinostream.core.settings import IngestSettings  # noqa: E402
from dinostream.ingest.av_source import make_source  # noqa: E402
from dinostream.ingest.source import Frame  # noqa: E402
from dinostream.ingest.stream_supervisor import StreamState, StreamSupervisor  # noqa: E402
from tests.rtsp import RtspServer  # noqa: E402


def rss_mib() -> float:
    """This process's resident set size (VmRSS), MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def soak(args: argparse.Namespace) -> None:
    settings = IngestSettings(
        sample_fps=args.sample_fps,
        open_timeout_s=5,
        read_timeout_s=5,
        stall_timeout_s=10,
        backoff_initial_s=0.5,
        backoff_max_s=5,
    )
    size = tuple(int(v) for v in args.size.split("x"))
    assert len(size) == 2
    streams = args.streams if args.mounts == "distinct" else 0
    server = RtspServer("--streams", str(streams), "--fps", str(args.fps), "--size", args.source_size)
    await server.start()
    counts: Counter[str] = Counter()

    async def sink(frame: Frame) -> None:
        counts[frame.stream] += 1  # counted, then dropped

    def url(i: int) -> str:
        mount = f"cam{i}" if args.mounts == "distinct" else "cam"
        return f"rtsp://127.0.0.1:{server.port}/{mount}"

    sups = [
        StreamSupervisor(
            f"s{i:02d}",
            (lambda i=i: make_source(url(i), f"s{i:02d}", settings, size)),  # type: ignore[misc]
            sink,
            settings,
            live=True,
        )
        for i in range(args.streams)
    ]
    tasks = [asyncio.create_task(s.run()) for s in sups]
    started = time.monotonic()

    def line(label: str) -> None:
        states = Counter(s.health().state.value for s in sups)
        reconnects = sum(s.health().reconnects for s in sups)
        elapsed, frames = time.monotonic() - started, sum(counts.values())
        print(
            f"{label:>6}  t={elapsed:6.1f}s  rss={rss_mib():7.1f} MiB  frames={frames:6d}"
            f"  reconnects={reconnects:4d}  states={dict(sorted(states.items()))}",
            flush=True,
        )

    try:
        deadline = time.monotonic() + 60
        while not all(s.health().state == StreamState.LIVE for s in sups):
            if time.monotonic() > deadline:
                raise SystemExit(f"streams not live after 60 s: {[s.health() for s in sups]}")
            await asyncio.sleep(0.2)
        await asyncio.sleep(args.warmup)
        rss_start = rss_mib()
        line("start")
        t0 = time.monotonic()
        next_report = t0 + args.report_every
        next_restart = t0 + args.restart_every if args.restart_every else float("inf")
        end = t0 + args.duration
        crashes = 0
        while (now := time.monotonic()) < end:
            if server.proc is not None and server.proc.returncode is not None:
                crashes += 1  # gst-rtsp-server can abort when many clients reconnect at once: one more outage
                print(f"  RTSP server exited with {server.proc.returncode}; restarting it", flush=True)
                server.proc = None
                await server.start()
            if now >= next_restart:
                await server.kill()
                await asyncio.sleep(2.0)  # every stream notices and backs off
                await server.start()
                next_restart = time.monotonic() + args.restart_every
            if now >= next_report:
                line("report")
                next_report += args.report_every
            await asyncio.sleep(0.2)
        line("end")
        print(f"rss start {rss_start:.1f} MiB, end {rss_mib():.1f} MiB, change {rss_mib() - rss_start:+.1f} MiB")
        print(
            f"server restarts: {(args.duration // args.restart_every) if args.restart_every else 0:.0f} planned, "
            f"{crashes} after a server crash"
        )
        print(f"{'stream':8} {'state':10} {'frames_in':>9} {'frames_out':>10} {'sunk':>6} {'drops':>6} {'reconn':>6}")
        for s in sups:
            h = s.health()
            print(
                f"{h.stream:8} {h.state.value:10} {h.frames_in:9d} {h.frames_out:10d} {counts[h.stream]:6d} "
                f"{h.drops:6d} {h.reconnects:6d}"
            )
    finally:
        for s in sups:
            await s.stop()
        await asyncio.gather(*tasks, return_exceptions=True)
        await server.kill()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--streams", type=int, default=10, help="supervised streams (default 10)")
    p.add_argument("--duration", type=float, default=300.0, help="seconds measured after the warm-up (default 300)")
    p.add_argument("--warmup", type=float, default=10.0, help="seconds after every stream is live (default 10)")
    p.add_argument("--report-every", type=float, default=30.0, help="seconds between RSS lines (default 30)")
    p.add_argument("--restart-every", type=float, default=0.0, help="kill and restart the server this often (0: never)")
    p.add_argument(
        "--mounts",
        choices=["shared", "distinct"],
        default="shared",
        help="one encoder for all streams (shared) or one per stream (distinct; costs CPU)",
    )
    p.add_argument("--fps", type=int, default=10, help="frame rate the server sends")
    p.add_argument("--source-size", default="320x240", help="WxH the server sends")
    p.add_argument("--sample-fps", type=float, default=2.0, help="frames per second each stream samples")
    p.add_argument("--size", default="224x224", help="WxH frames are decoded to (the model input)")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.ERROR, format="%(levelname)s %(name)s: %(message)s")
    asyncio.run(soak(args))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
