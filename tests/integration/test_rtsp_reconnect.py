"""StreamSupervisor over real RTSP: a server killed mid-stream and restarted on the same port,
and a dead camera next to a healthy one. The server is Debian's gst-rtsp-server
(tests/integration/rtsp_server.py, run with the system python, which has `gi`)."""

from __future__ import annotations

import asyncio
import signal
import socket
import time
from collections.abc import AsyncIterator

import pytest

from dinostream.core.settings import IngestSettings
from dinostream.ingest.av_source import make_source
from dinostream.ingest.source import Frame
from dinostream.ingest.stream_supervisor import StreamState, StreamSupervisor
from tests.rtsp import RtspServer

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

SETTINGS = IngestSettings(
    sample_fps=5,
    open_timeout_s=3,
    read_timeout_s=2,
    stall_timeout_s=3,
    backoff_initial_s=0.2,
    backoff_max_s=1.0,
)


@pytest.fixture
async def rtsp_server() -> AsyncIterator[RtspServer]:
    server = RtspServer()  # a missing gst-rtsp-server (make apt) fails here with the server's stderr
    await server.start()
    try:
        yield server
    finally:
        await server.kill()


def _dead_port() -> int:
    """A loopback port nothing listens on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Collect:
    def __init__(self) -> None:
        self.frames: list[Frame] = []

    async def __call__(self, frame: Frame) -> None:
        self.frames.append(frame)


async def _until(what: str, predicate, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting until {what}")
        await asyncio.sleep(0.05)


def _supervisor(url: str, stream: str, sink: Collect) -> StreamSupervisor:
    return StreamSupervisor(stream, lambda: make_source(url, stream, SETTINGS, (64, 64)), sink, SETTINGS, live=True)


async def test_killed_server_is_reconnected_after_restart(rtsp_server: RtspServer):
    sink = Collect()
    sup = _supervisor(rtsp_server.url, "cam", sink)
    task = asyncio.create_task(sup.run())
    try:
        await _until("frames arrive", lambda: len(sink.frames) >= 5 and sup.health().state == StreamState.LIVE)
        assert sink.frames[0].image.shape == (64, 64, 3)

        await rtsp_server.kill()
        await _until("the loss is noticed", lambda: sup.health().state in (StreamState.STALLED, StreamState.BACKOFF))
        assert sup.health().last_error
        # While the server is down, reconnects fail and keep backing off.
        await _until("a reconnect has been tried", lambda: sup.health().reconnects >= 2)
        assert sup.health().state != StreamState.LIVE
        assert sup.health().state != StreamState.FAILED
        before = len(sink.frames)

        await rtsp_server.start()  # same port
        await _until("frames resume", lambda: sup.health().state == StreamState.LIVE and len(sink.frames) >= before + 5)
        health = sup.health()
        assert health.reconnects >= 2
        assert health.frames_out == len(sink.frames)
        assert health.frames_in >= health.frames_out
        assert health.last_frame_ts == sink.frames[-1].ts
        assert [f.seq for f in sink.frames] == list(range(len(sink.frames)))
        pts = [f.pts for f in sink.frames]
        assert all(b > a for a, b in zip(pts, pts[1:], strict=False)), pts
        ts = [f.ts for f in sink.frames]
        assert all(b >= a for a, b in zip(ts, ts[1:], strict=False))
        assert {f.stream for f in sink.frames} == {"cam"}
    finally:
        await sup.stop()
        await asyncio.wait_for(task, 15)
    assert sup.health().state == StreamState.STOPPED


async def test_frozen_server_is_noticed_and_recovered(rtsp_server: RtspServer):
    """SIGSTOP keeps the TCP connection open but sends nothing: the read timeout or the watchdog
    must notice, and reconnects (which hang in the RTSP handshake) must not get stuck."""
    sink = Collect()
    sup = _supervisor(rtsp_server.url, "cam", sink)
    task = asyncio.create_task(sup.run())
    assert rtsp_server.proc is not None
    try:
        await _until("frames arrive", lambda: len(sink.frames) >= 3 and sup.health().state == StreamState.LIVE)
        rtsp_server.proc.send_signal(signal.SIGSTOP)
        await _until("the freeze is noticed", lambda: sup.health().state != StreamState.LIVE)
        await _until("a reconnect has been tried", lambda: sup.health().reconnects >= 1)
        error = sup.health().last_error or ""
        assert "timeout" in error, error
        before = len(sink.frames)
        rtsp_server.proc.send_signal(signal.SIGCONT)
        await _until("frames resume", lambda: sup.health().state == StreamState.LIVE and len(sink.frames) >= before + 5)
        assert [f.seq for f in sink.frames] == list(range(len(sink.frames)))
        pts = [f.pts for f in sink.frames]
        assert all(b > a for a, b in zip(pts, pts[1:], strict=False)), pts
    finally:
        if rtsp_server.proc is not None:
            rtsp_server.proc.send_signal(signal.SIGCONT)
        await sup.stop()
        await asyncio.wait_for(task, 15)


async def test_dead_camera_does_not_hold_back_a_healthy_one(rtsp_server: RtspServer):
    good, bad = Collect(), Collect()
    healthy = _supervisor(rtsp_server.url, "good", good)
    dead = _supervisor(f"rtsp://127.0.0.1:{_dead_port()}/cam", "dead", bad)
    tasks = [asyncio.create_task(s.run()) for s in (healthy, dead)]
    try:
        await _until("the dead camera is retried", lambda: dead.health().reconnects >= 2)
        assert dead.health().state in (StreamState.BACKOFF, StreamState.CONNECTING)
        assert "cannot connect to rtsp://127.0.0.1" in (dead.health().last_error or "")
        start = len(good.frames)
        await _until("the healthy camera keeps delivering", lambda: len(good.frames) >= start + 10)
        assert healthy.health().state == StreamState.LIVE
        assert healthy.health().reconnects == 0
        assert bad.frames == []
        assert dead.health().state != StreamState.LIVE
    finally:
        for s in (healthy, dead):
            await s.stop()
        await asyncio.wait_for(asyncio.gather(*tasks), 15)
