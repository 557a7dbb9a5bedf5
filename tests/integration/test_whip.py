"""WHIP publishing for real: uvicorn on port 0 serving the dashboard app with the WHIP router,
aiortc and headless Chromium publishers over loopback, frames at the WhipSource, embeddings out."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import re
import shutil
import subprocess
import weakref
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from aiortc import RTCPeerConnection, RTCSessionDescription, VideoStreamTrack
from aiortc.mediastreams import AudioStreamTrack
from av import VideoFrame
from fastapi.staticfiles import StaticFiles

from dinostream.core.records import FrameEmbedding
from dinostream.core.settings import HttpSettings, IngestSettings, ModelSettings, WhipSettings
from dinostream.dashboard.app import create_app
from dinostream.dashboard.live_hub import LiveHub
from dinostream.dashboard.whip_api import whip_router
from dinostream.embedding.embedder import Embedder
from dinostream.embedding.stage import EmbeddingStage, load_model_async
from dinostream.ingest.source import Frame, Source
from dinostream.ingest.stream_manager import StreamManager
from dinostream.ingest.whip_sessions import WhipSessions, whip_streams
from dinostream.ingest.whip_source import WhipSource
from tests.serving import serve

pytestmark = pytest.mark.integration

PAGE_DIR = Path(__file__).with_name("whip_page")
CHROMIUM = "/usr/bin/chromium"
SIZE = (64, 48)  # what the service would pass: the model's input size
WAIT_S = 60  # generous bound for a slow shared machine; no test measures time


# ---------- a synthetic camera: colour bars whose hue turns with time ----------


class ColourCamera(VideoStreamTrack):
    """A paced 30 fps 320x240 camera (aiortc's VideoStreamTrack clock); a flat colour per frame."""

    def __init__(self, colour: tuple[int, int, int] = (200, 40, 40)) -> None:
        super().__init__()
        self.image = np.zeros((240, 320, 3), np.uint8)
        self.image[:] = colour

    async def recv(self) -> VideoFrame:
        pts, time_base = await self.next_timestamp()
        frame = VideoFrame.from_ndarray(self.image, format="rgb24")
        frame.pts, frame.time_base = pts, Fraction(time_base)
        return frame


@dataclass
class Publisher:
    """An aiortc WHIP client."""

    pc: RTCPeerConnection
    location: str | None = None

    @classmethod
    async def offer(cls, *, audio: bool = False, video: bool = True) -> tuple[Publisher, str]:
        pc = RTCPeerConnection()
        if video:
            pc.addTransceiver(ColourCamera(), direction="sendonly")
        if audio:
            pc.addTransceiver(AudioStreamTrack(), direction="sendonly")
        await pc.setLocalDescription(await pc.createOffer())  # aiortc gathers every candidate here
        return cls(pc), pc.localDescription.sdp

    async def publish(self, client: httpx.AsyncClient, stream: str, sdp: str) -> httpx.Response:
        resp = await client.post(f"/api/v1/whip/{stream}", content=sdp, headers={"Content-Type": "application/sdp"})
        if resp.status_code == 201:
            self.location = resp.headers["location"]
            await self.pc.setRemoteDescription(RTCSessionDescription(sdp=resp.text, type="answer"))
        return resp


async def publish(client: httpx.AsyncClient, stream: str, *, audio: bool = False) -> Publisher:
    pub, sdp = await Publisher.offer(audio=audio)
    resp = await pub.publish(client, stream, sdp)
    assert resp.status_code == 201, resp.text
    return pub


# ---------- the service side: sessions whose sources are recorded ----------


@dataclass
class Received:
    """What on_source / on_end saw, per stream."""

    sources: dict[str, list[WhipSource]] = field(default_factory=dict)
    frames: dict[str, list[Frame]] = field(default_factory=dict)
    ended: dict[str, list[str]] = field(default_factory=dict)
    changed: asyncio.Condition = field(default_factory=asyncio.Condition)

    async def notify(self) -> None:
        async with self.changed:
            self.changed.notify_all()

    async def wait_for(self, what: str, predicate: Callable[[], bool]) -> None:
        try:
            async with asyncio.timeout(WAIT_S):
                async with self.changed:
                    await self.changed.wait_for(predicate)
        except TimeoutError:
            raise AssertionError(f"gave up waiting for {what}") from None


def recording_hooks(received: Received) -> tuple[Any, Any]:
    async def on_source(stream: str, source: Source) -> None:
        assert isinstance(source, WhipSource)
        received.sources.setdefault(stream, []).append(source)
        frames = received.frames.setdefault(stream, [])
        await received.notify()
        async for frame in source.frames():
            frames.append(frame)
            await received.notify()

    async def on_end(stream: str, session_id: str, reason: str) -> None:
        received.ended.setdefault(stream, []).append(reason)
        await received.notify()

    return on_source, on_end


@contextlib.asynccontextmanager
async def whip_service(sessions: WhipSessions, *, page: bool = False) -> AsyncIterator[tuple[str, httpx.AsyncClient]]:
    app = create_app(settings=HttpSettings(), hub=LiveHub(16), index=None, embed_images=None, health=lambda: {})
    app.include_router(whip_router(sessions))
    if page:
        app.mount("/whip-test", StaticFiles(directory=PAGE_DIR, html=True), name="whip-test")
    try:
        async with serve(app) as base, httpx.AsyncClient(base_url=base, timeout=30) as client:
            yield base, client
    finally:
        await sessions.close_all()


def make_sessions(received: Received, **whip: Any) -> WhipSessions:
    on_source, on_end = recording_hooks(received)
    return WhipSessions(
        WhipSettings(**whip), IngestSettings(sample_fps=5.0, queue_size=8), SIZE, on_source=on_source, on_end=on_end
    )


def assert_error(resp: httpx.Response, status: int, code: str) -> str:
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert body["error"]["code"] == code, body
    message = body["error"]["message"]
    assert message and "\n" not in message
    return message


# ---------- tests ----------


async def test_publish_frames_arrive_then_delete_ends_the_source() -> None:
    received = Received()
    sessions = make_sessions(received)
    async with whip_service(sessions) as (_, client):
        pub = await publish(client, "cam1", audio=True)
        assert pub.location is not None
        assert re.fullmatch(r"/api/v1/whip/cam1/[A-Za-z0-9_-]+", pub.location), pub.location
        await received.wait_for("3 frames from cam1", lambda: len(received.frames.get("cam1", [])) >= 3)

        frames = received.frames["cam1"]
        assert all(f.image.shape == (48, 64, 3) and f.stream == "cam1" for f in frames)
        # The camera's flat (200, 40, 40) survives VP8 and the scaler within a few levels.
        assert np.abs(frames[-1].image.reshape(-1, 3).mean(axis=0) - (200, 40, 40)).max() < 12
        pts = [f.pts for f in frames]
        assert pts == sorted(pts) and len(set(pts)) == len(pts)
        assert [f.seq for f in frames] == sorted(f.seq for f in frames)
        (source,) = received.sources["cam1"]
        assert source.source_size == (320, 240) and source.stats.decoded > source.stats.sampled > 0
        assert sessions.stats()["sessions"]["cam1"]["state"] == "connected"

        resp = await client.delete(pub.location)
        assert resp.status_code == 200, resp.text
        await received.wait_for("cam1 to end", lambda: "cam1" in received.ended)
        assert received.ended["cam1"] == ["deleted by the publisher"]
        assert sessions.sessions == {} and sessions.session_for("cam1") is None
        assert not source.running and source.track.readyState == "ended"
        assert_error(await client.delete(pub.location), 404, "session_not_found")
        await pub.pc.close()


async def test_webrtc_frames_become_embeddings(tiny_model_dir: Path) -> None:
    model = ModelSettings(model=str(tiny_model_dir), image_size=64, device="cpu", max_batch=4, max_wait_ms=5)
    ingest = IngestSettings(sample_fps=5.0, queue_size=8)
    records: list[FrameEmbedding] = []
    got = asyncio.Event()

    async def sink(batch: list[FrameEmbedding]) -> None:
        records.extend(batch)
        if sum(r.stream == "lobby" for r in records) >= 3:
            got.set()

    stage = EmbeddingStage(await load_model_async(model), model, ingest, sink)
    manager = StreamManager(stage, ingest)  # what the service does: each publisher is a supervised stream
    sessions = whip_streams(manager, WhipSettings(), lambda stream, wh: stage.input_size_for(wh))
    stage.start()
    try:
        async with whip_service(sessions) as (_, client):
            pub = await publish(client, "lobby")
            await asyncio.wait_for(got.wait(), WAIT_S)
            status = manager.get("lobby")
            assert status is not None and status.health["state"] == "live" and status.config.url == "whip:lobby"
            assert (await client.delete("/api/v1/whip/lobby")).status_code == 200
            await pub.pc.close()
        status = manager.get("lobby")
        assert status is not None and status.health["state"] == "ended" and status.health["frames_out"] >= 3
    finally:
        await manager.stop()
        await stage.stop()
    mine = [r for r in records if r.stream == "lobby"]
    assert len(mine) >= 3
    assert status.input_size is not None
    width, height = status.input_size
    assert (width, height) == stage.embedder.input_size((320, 240))  # the camera's 4:3 within the preset
    assert all(r.patches.shape[:2] == (height // 16, width // 16) for r in mine)
    assert all(np.isfinite(r.cls.astype(np.float32)).all() for r in mine)
    assert [r.seq for r in mine] == sorted(r.seq for r in mine)


async def test_bad_requests_get_one_line_errors() -> None:
    received = Received()
    sessions = make_sessions(received, max_sessions=1, max_offer_bytes=4096)
    sessions.taken = {"lobby-file"}.__contains__  # a configured file source owns this id
    async with whip_service(sessions) as (_, client):
        sdp_headers = {"Content-Type": "application/sdp"}
        assert_error(
            await client.post("/api/v1/whip/cam1", content="v=0", headers={"Content-Type": "text/plain"}),
            415,
            "unsupported_media_type",
        )
        assert_error(await client.post("/api/v1/whip/cam1", content="hello", headers=sdp_headers), 400, "bad_offer")
        audio_only, audio_sdp = await Publisher.offer(audio=True, video=False)
        msg = assert_error(await audio_only.publish(client, "cam1", audio_sdp), 400, "bad_offer")
        assert "no video" in msg
        await audio_only.pc.close()
        unused, sdp = await Publisher.offer()
        await unused.pc.close()
        no_codec = re.sub(r"a=rtpmap:(\d+) (VP8|H264|rtx)/90000", r"a=rtpmap:\1 AV1X/90000", sdp)
        msg = assert_error(
            await client.post("/api/v1/whip/cam1", content=no_codec, headers=sdp_headers), 400, "bad_offer"
        )
        assert "no video codec this server decodes (H264, VP8); it offers: AV1X" in msg
        no_dtls = re.sub(r"a=fingerprint:.*\r\n", "", sdp)
        msg = assert_error(
            await client.post("/api/v1/whip/cam1", content=no_dtls, headers=sdp_headers), 400, "bad_offer"
        )
        assert "no DTLS fingerprint" in msg
        assert_error(
            await client.post("/api/v1/whip/bad$id", content="v=0", headers=sdp_headers), 422, "invalid_stream"
        )
        assert_error(
            await client.post("/api/v1/whip/cam1", content="v=0\n" + "a=x\n" * 2000, headers=sdp_headers),
            413,
            "offer_too_large",
        )
        assert_error(await client.delete("/api/v1/whip/cam1/nope"), 404, "session_not_found")
        assert_error(await client.delete("/api/v1/whip/cam1"), 404, "session_not_found")

        first = await publish(client, "cam1")
        second, sdp = await Publisher.offer()
        msg = assert_error(await second.publish(client, "cam1", sdp), 409, "stream_busy")
        assert "already has a WHIP publisher" in msg
        msg = assert_error(await second.publish(client, "lobby-file", sdp), 409, "stream_busy")
        assert msg == "stream lobby-file is fed by a configured source; publish under another stream id"
        resp = await second.publish(client, "cam2", sdp)
        assert_error(resp, 503, "too_many_sessions")
        assert resp.headers["retry-after"] == "5"
        assert first.location is not None
        assert_error(
            await client.patch(
                first.location, content="a=candidate", headers={"Content-Type": "application/trickle-ice-sdpfrag"}
            ),
            405,
            "trickle_not_supported",
        )
        assert sessions.refused == 7 and sessions.opened == 1  # 415, 422 and 413 never reach the sessions
        # the refused ones left nothing behind; the first is unharmed
        await received.wait_for("a frame from cam1", lambda: len(received.frames.get("cam1", [])) >= 1)
        assert list(sessions.stats()["sessions"]) == ["cam1"]
        await first.pc.close()
        await second.pc.close()


async def test_a_vanished_publisher_is_noticed_and_freed() -> None:
    received = Received()
    sessions = make_sessions(received)
    async with whip_service(sessions) as (_, client):
        pub = await publish(client, "door")
        await received.wait_for("a frame from door", lambda: len(received.frames.get("door", [])) >= 1)
        (session,) = sessions.sessions.values()
        server_pc = weakref.ref(session.pc)
        del session
        await pub.pc.close()  # no DELETE: the publisher just goes away
        await received.wait_for("door to end", lambda: "door" in received.ended)
        reason = received.ended["door"][0]
        assert reason in ("connection closed", "video track ended"), reason
        assert sessions.sessions == {} and sessions.session_for("door") is None
        (source,) = received.sources["door"]
        assert source.track.readyState == "ended" and not source.running
        gc.collect()
        pc = server_pc()
        assert pc is None or pc.connectionState == "closed"
        # the stream is free again
        again = await publish(client, "door")
        await received.wait_for("door's second source", lambda: len(received.sources.get("door", [])) == 2)
        assert (await client.delete("/api/v1/whip/door")).status_code == 200  # an operator ends the stream
        assert received.ended["door"][1] == "stream deleted" and sessions.sessions == {}
        assert_error(await client.delete("/api/v1/whip/door"), 404, "session_not_found")
        await again.pc.close()


async def test_an_offer_never_completed_times_out_and_close_all_ends_live_sessions() -> None:
    received = Received()
    sessions = make_sessions(received, connect_timeout_s=1.0)
    async with whip_service(sessions) as (_, client):
        live = await publish(client, "live")
        await received.wait_for("a frame from live", lambda: len(received.frames.get("live", [])) >= 1)
        ghost, sdp = await Publisher.offer()
        resp = await client.post("/api/v1/whip/ghost", content=sdp, headers={"Content-Type": "application/sdp"})
        assert resp.status_code == 201, resp.text  # ... but the publisher never applies the answer
        await received.wait_for("ghost to end", lambda: "ghost" in received.ended)
        assert received.ended["ghost"][0] in ("no video within 1 s", "connection failed"), received.ended
        assert "ghost" not in received.sources and list(sessions.stats()["sessions"]) == ["live"]
        await sessions.close_all()
        assert received.ended["live"] == ["service stopping"] and sessions.sessions == {}
        (source,) = received.sources["live"]
        assert not source.running
        again, sdp = await Publisher.offer()
        assert_error(await again.publish(client, "live", sdp), 503, "too_many_sessions")
        for pc in (live.pc, ghost.pc, again.pc):
            await pc.close()


async def test_many_sessions_leave_no_tasks_or_peer_connections_behind() -> None:
    received = Received()
    sessions = make_sessions(received, max_sessions=2, connect_timeout_s=600)  # a leaked watchdog would linger
    async with whip_service(sessions) as (_, client):
        # a warm-up round: imports, thread pools and the client's connection exist before the baseline
        warm = await publish(client, "warm")
        await received.wait_for("warm-up frame", lambda: len(received.frames.get("warm", [])) >= 1)
        assert (await client.delete(warm.location or "")).status_code == 200
        await warm.pc.close()
        del warm
        baseline = {t for t in asyncio.all_tasks() if not t.done()}

        server_pcs: list[weakref.ref[RTCPeerConnection]] = []
        tracks: list[weakref.ref[Any]] = []
        rounds = 20
        for i in range(rounds):
            stream = f"loop-{i}"
            pub = await publish(client, stream, audio=i % 2 == 0)
            server_pcs.append(weakref.ref(next(iter(sessions.sessions.values())).pc))
            await received.wait_for(f"a frame from {stream}", lambda s=stream: len(received.frames.get(s, [])) >= 1)
            tracks.append(weakref.ref(received.sources[stream][0].track))
            if i % 3 == 2:  # every third publisher vanishes instead of deleting
                await pub.pc.close()
                await received.wait_for(f"{stream} to end", lambda s=stream: s in received.ended)
            else:
                assert (await client.delete(pub.location or "")).status_code == 200
                await pub.pc.close()
            del pub

        assert sessions.sessions == {} and sessions.session_for("loop-0") is None
        assert sorted(received.ended) == sorted(["warm", *(f"loop-{i}" for i in range(rounds))])
        assert all(len(received.frames[f"loop-{i}"]) >= 1 for i in range(rounds))
        assert all(t() is None or t().readyState == "ended" for t in tracks)

        leftover: set[asyncio.Task[Any]] = set()
        for _ in range(100):  # settle: closing tasks finish their last steps
            gc.collect()
            leftover = {t for t in asyncio.all_tasks() if not t.done()} - baseline
            if not leftover and all(ref() is None for ref in server_pcs):
                break
            await asyncio.sleep(0.1)
        assert not leftover, sorted(t.get_name() + " " + repr(t.get_coro()) for t in leftover)
        alive = [ref() for ref in server_pcs if ref() is not None]
        assert not alive, f"{len(alive)} server peer connections still referenced: {gc.get_referrers(alive[0])}"


# ---------- Chromium publishing its fake camera through the test page ----------


async def test_chromium_publishes_its_camera(tmp_path: Path, tiny_model_dir: Path) -> None:
    received = Received()
    sessions = make_sessions(received)
    async with whip_service(sessions, page=True) as (base, client):
        page = await client.get("/whip-test/")
        assert page.status_code == 200 and "whip.js" in page.text
        stderr_path = tmp_path / "chromium.log"
        with stderr_path.open("wb") as stderr:
            proc = await asyncio.create_subprocess_exec(
                CHROMIUM,
                "--headless=new",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-dev-shm-usage",
                "--no-first-run",
                "--use-fake-device-for-media-stream",
                "--use-fake-ui-for-media-stream",
                "--autoplay-policy=no-user-gesture-required",
                "--enable-logging=stderr",
                "--v=0",
                "--remote-debugging-port=0",
                f"--user-data-dir={tmp_path / 'profile'}",
                f"{base}/whip-test/?stream=browser",
                stdout=subprocess.DEVNULL,
                stderr=stderr,
            )
            try:
                try:
                    await received.wait_for(
                        "frames from chromium", lambda: len(received.frames.get("browser", [])) >= 3
                    )
                except AssertionError:
                    print(stderr_path.read_text(errors="replace")[-6000:])
                    raise
                frames = received.frames["browser"]
                (source,) = received.sources["browser"]
                assert all(f.image.shape == (48, 64, 3) for f in frames)
                assert source.source_size is not None and source.source_size[0] > 0
                assert float(np.std(frames[-1].image)) > 1.0  # Chromium's fake camera draws a moving pattern
                assert sessions.stats()["sessions"]["browser"]["state"] == "connected"
                # ... and the browser's frames become embeddings, through the model stage's embedder.
                model = ModelSettings(model=str(tiny_model_dir), image_size=64, device="cpu")
                embedder = Embedder(await load_model_async(model), model)
                records = await asyncio.to_thread(embedder.embed, frames[:3])
                assert [r.stream for r in records] == ["browser"] * 3
                assert all(r.patches.shape[:2] == (3, 4) for r in records)  # 48x64 pixels, 16-pixel patches
                assert all(np.isfinite(r.cls.astype(np.float32)).all() for r in records)
            finally:
                with contextlib.suppress(ProcessLookupError):
                    proc.terminate()
                try:
                    await asyncio.wait_for(proc.wait(), 10)
                except TimeoutError:
                    proc.kill()
                    await proc.wait()
        # Chromium is gone without a DELETE: the session is noticed and freed.
        await received.wait_for("browser to end", lambda: "browser" in received.ended)
        assert sessions.sessions == {}
    shutil.rmtree(tmp_path / "profile", ignore_errors=True)
