"""URL checks without holes (issue 17, part 3), through the API and through a loopback HTTP server
that records what FFmpeg asks it for (a canary: what an attacker's playlist would make the
service fetch). Sources added through the API are untrusted; the held attacks are here too."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from dinostream.core.errors import SourceError
from dinostream.core.settings import HttpSettings, IngestSettings
from dinostream.demo_video import make_video
from dinostream.ingest.av_source import probe_source
from dinostream.ingest.egress_guard import egress_guard
from tests.security.gateway import Gateway, bearer, error_of, token_settings
from tests.waiting import wait_for

HOLES = [
    ("metadata-nat64", "http://[64:ff9b::a9fe:a9fe]/latest/meta-data/cam.mp4"),
    ("metadata-6to4", "http://[2002:a9fe:a9fe::]/latest/meta-data/cam.mp4"),
    ("metadata-v4-compatible", "http://[::169.254.169.254]/latest/meta-data/cam.mp4"),
    ("loopback-nat64", "rtsp://[64:ff9b::7f00:1]:8554/live"),
    ("loopback-6to4", "rtsp://[2002:7f00:1::]:8554/live"),
    ("loopback-v4-compatible", "rtsp://[::127.0.0.1]:8554/live"),
    ("camera-device", "/dev/video0"),
    ("camera-device-url", "v4l2:///dev/video0"),
]
HELD = [
    ("file-url", "file:///etc/passwd"),
    ("concat", "concat:clip.mp4|/etc/passwd"),
    ("subfile", "subfile:,,start,0,end,0,,:/etc/passwd"),
    ("data-url", "data:video/mp4;base64,AAAA"),
    ("gopher", "gopher://cam.example.com/1"),
    ("dotdot", "../outside.mp4"),
    ("symlink", "link.mp4"),
    ("metadata-decimal", "http://2852039166/latest/meta-data/"),
    ("metadata-hex", "http://0xa9fea9fe/"),
    ("metadata-octal", "http://0251.0376.0251.0376/"),
    ("metadata-v4-mapped", "http://[::ffff:169.254.169.254]/"),
    ("loopback-short", "rtsp://127.1:8554/live"),
]


@pytest.mark.parametrize("url", [u for _, u in HOLES + HELD], ids=[i for i, _ in HOLES + HELD])
async def test_hostile_sources_added_through_the_api_are_refused(tmp_path: Path, url: str) -> None:
    async with Gateway(tmp_path, token_settings()) as gw, gw.client(bearer("operator")) as http:
        (gw.media / "link.mp4").symlink_to(tmp_path / "outside.mp4")
        r = await http.post("/api/v1/streams", json={"url": url, "id": "attack"})
        error_of(r, 422, "url_refused")
        assert gw.manager.list() == []


async def test_a_listed_camera_device_may_be_added(tmp_path: Path) -> None:
    ingest = IngestSettings(allowed_devices=["/dev/video7"], open_timeout_s=1.0, read_timeout_s=1.0)
    async with Gateway(tmp_path, HttpSettings(), ingest=ingest) as gw, gw.client() as http:
        error_of(await http.post("/api/v1/streams", json={"url": "/dev/video0"}), 422, "url_refused")
        assert (await http.post("/api/v1/streams", json={"url": "/dev/video7", "id": "cam7"})).status_code == 201


# ---------- playlists, over a loopback HTTP server ----------


class Canary:
    """A loopback HTTP server with fixed answers per path, recording (path, User-Agent) of each request."""

    def __init__(self, routes: dict[str, tuple[str, bytes]]) -> None:
        self.routes = routes
        self.requests: list[tuple[str, str]] = []
        canary = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - the http.server API
                canary.requests.append((self.path, self.headers.get("User-Agent", "")))
                found = canary.routes.get(self.path.split("?")[0])
                if found is None:
                    self.send_error(404)
                    return
                content_type, body = found
                if content_type == "redirect":
                    self.send_response(302)
                    self.send_header("Location", body.decode())
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}"

    def read_by_ffmpeg(self) -> set[str]:
        """The paths FFmpeg asked for (its User-Agent is Lavf/...), not the service's own checks."""
        return {path for path, agent in self.requests if agent.startswith("Lavf")}


@contextlib.contextmanager
def canary_server(routes: dict[str, tuple[str, bytes]]) -> Iterator[Canary]:
    canary = Canary(routes)
    thread = threading.Thread(target=canary.server.serve_forever, daemon=True)
    thread.start()
    try:
        yield canary
    finally:
        canary.server.shutdown()
        canary.server.server_close()


HLS = "application/vnd.apple.mpegurl"
API = IngestSettings(allow_loopback=True, open_timeout_s=3.0, read_timeout_s=3.0)  # the canary's host is allowed


def media_playlist(segment: str) -> bytes:
    return f"#EXTM3U\n#EXT-X-TARGETDURATION:1\n#EXTINF:1.0,\n{segment}\n#EXT-X-ENDLIST\n".encode()


async def probe_untrusted(url: str) -> SourceError:
    with pytest.raises(SourceError) as refused:
        await asyncio.to_thread(probe_source, url, API, trusted=False)
    return refused.value


@pytest.mark.integration
@pytest.mark.parametrize("path", ["/cam.mp4", "/live.hls", "/stream"], ids=["as-mp4", "hls-suffix", "no-suffix"])
async def test_a_playlist_served_under_another_name_is_never_read_unchecked(path: str) -> None:
    # FFmpeg recognises HLS by its Content-Type too: the playlist's segment would be fetched
    # without the service ever checking the playlist.
    routes = {path: (HLS, media_playlist("/canary.ts")), "/canary.ts": ("video/mp2t", b"\0" * 188)}
    with canary_server(routes) as canary:
        await probe_untrusted(canary.base + path)
    assert canary.read_by_ffmpeg() <= {path}, canary.requests


@pytest.mark.integration
@pytest.mark.parametrize(
    ("playlist", "reason"),
    [
        ("#EXT-X-MAP:URI=file:///etc/passwd", "names file:///etc/passwd, but a playlist may name only http"),
        ("#EXT-X-KEY:METHOD=AES-128,URI=file:///etc/shadow", "names file:///etc/shadow"),
        ("#EXT-X-KEY:METHOD=AES-128,URI=http://[::169.254.169.254]/k", "link-local"),
        ("#EXTINF:1.0,\nfile:///etc/passwd", "names file:///etc/passwd"),  # held: a file segment
        ("#EXTINF:1.0,\nhttp://169.254.169.254/latest/meta-data/x.ts", "link-local"),  # held
    ],
    ids=["map-unquoted", "key-unquoted", "key-metadata-v4-compatible", "file-segment", "metadata-segment"],
)
async def test_every_uri_of_a_playlist_is_checked(playlist: str, reason: str) -> None:
    body = f"#EXTM3U\n#EXT-X-TARGETDURATION:1\n{playlist}\n#EXTINF:1.0,\n/seg.ts\n#EXT-X-ENDLIST\n".encode()
    with canary_server({"/index.m3u8": (HLS, body), "/seg.ts": ("video/mp2t", b"\0" * 188)}) as canary:
        error = await probe_untrusted(canary.base + "/index.m3u8")
    assert reason in str(error), error
    assert canary.read_by_ffmpeg() == set(), canary.requests  # refused before FFmpeg opened anything


@pytest.mark.integration
async def test_a_variant_playlist_not_ending_in_m3u8_is_not_read_unchecked() -> None:
    master = b"#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=100000\n/low/chunklist\n"
    routes = {
        "/master.m3u8": (HLS, master),
        "/low/chunklist": (HLS, media_playlist("/canary.ts")),
        "/canary.ts": ("video/mp2t", b"\0" * 188),
    }
    with canary_server(routes) as canary:
        error = await probe_untrusted(canary.base + "/master.m3u8")
    assert "does not end in .m3u8" in str(error)
    assert canary.read_by_ffmpeg() == set(), canary.requests


@pytest.mark.integration
async def test_an_untrusted_source_that_redirects_is_not_followed() -> None:
    # FFmpeg's max_redirects=0 for an untrusted source; the model stage's size probe opens an API-added
    # source untrusted too (EmbeddingStage.resize_target, spec.trusted).
    with canary_server({}) as canary:
        canary.routes["/cam.mp4"] = ("redirect", f"{canary.base}/canary.mp4".encode())
        await probe_untrusted(canary.base + "/cam.mp4")
    assert "/canary.mp4" not in {path for path, _ in canary.requests}


@pytest.mark.integration
@pytest.mark.parametrize(
    ("name", "body"),
    [
        ("list.m3u8", "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:2.0,\n{outside}\n#EXT-X-ENDLIST\n"),
        ("cam.mp4", "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:2.0,\n{outside}\n#EXT-X-ENDLIST\n"),  # by content
        ("list.ffconcat", "ffconcat version 1.0\nfile '{outside}'\n"),
    ],
    ids=["hls-playlist", "hls-as-mp4", "ffconcat"],
)
async def test_a_playlist_in_a_media_root_reads_nothing_outside_it(tmp_path: Path, name: str, body: str) -> None:
    """Issue 17: 20 frames of a file outside the media roots were indexed through a playlist inside one."""
    outside = tmp_path / "elsewhere" / "secret.mp4"
    outside.parent.mkdir()
    make_video(outside, shots=1, shot_s=2.0, fps=5, size=(64, 48), seed=2)
    async with Gateway(tmp_path, token_settings()) as gw, gw.client(bearer("operator")) as http:
        # What is watched runs: a real file of the media root is read.
        assert (await http.post("/api/v1/streams", json={"url": "clip.mp4", "id": "clip"})).status_code == 201
        await wait_for(lambda: any(f.stream == "clip" for f in gw.stage.frames), 30, "a frame of clip.mp4")
        (gw.media / name).write_text(body.format(outside=outside))
        r = await http.post("/api/v1/streams", json={"url": name, "id": "list"})
        assert r.status_code == 201, r.text  # inside the roots: accepted, then opened by the supervisor

        async def failed() -> dict[str, Any] | None:
            health = (await http.get("/api/v1/streams/list")).json()["health"]
            return health if health["state"] == "failed" else None

        await wait_for(failed, 30, "the playlist stream to fail")
        health = await failed()
        assert health is not None and health["frames_out"] == 0
        assert [f for f in gw.stage.frames if f.stream == "list"] == []
        if name == "list.m3u8":  # (FFmpeg names the others by their own faults: "unsafe" path, not an mp4)
            assert "a playlist or concat list is refused" in health["last_error"], health


# ---------- what FFmpeg asks for after the check: the egress guard ----------


class Flipping(Canary):
    """A canary whose /live.m3u8 names an allowed segment the first time (the service's check) and
    the metadata address afterwards (FFmpeg's own fetch, and every live reload)."""

    def __init__(self, routes: dict[str, tuple[str, bytes]]) -> None:
        super().__init__(routes)
        served = {"n": 0}
        handler = self.server.RequestHandlerClass
        original = handler.do_GET  # type: ignore[attr-defined]
        canary = self

        def do_get(self: BaseHTTPRequestHandler) -> None:
            if self.path == "/live.m3u8":
                served["n"] += 1
                segment = "/ok.ts" if served["n"] == 1 else "http://169.254.169.254/latest/meta-data/x.ts"
                canary.routes["/live.m3u8"] = (HLS, media_playlist(segment))
            original(self)

        handler.do_GET = do_get  # type: ignore[attr-defined]


@pytest.mark.integration
async def test_a_playlist_that_changes_after_the_check_is_checked_again() -> None:
    """Issue 17: the playlist was fetched once to check and again by FFmpeg (and at every live
    reload): the two copies can differ. Every request FFmpeg makes goes through the egress guard."""
    guard = egress_guard(API)
    before = len(guard.refused)
    canary = Flipping({"/ok.ts": ("video/mp2t", b"\0" * 188)})
    thread = threading.Thread(target=canary.server.serve_forever, daemon=True)
    thread.start()
    try:
        with contextlib.suppress(SourceError):  # the segment is refused: nothing to read
            await asyncio.to_thread(probe_source, canary.base + "/live.m3u8", API, trusted=False)
    finally:
        canary.server.shutdown()
        canary.server.server_close()
    assert [p for p, _ in canary.requests].count("/live.m3u8") >= 2, "checked once, then read by FFmpeg"
    refused = list(guard.refused)[before:]
    assert any("169.254.169.254" in r and "link-local" in r for r in refused), refused


@pytest.mark.integration
async def test_a_segment_that_redirects_is_checked_where_it_leads() -> None:
    """Issue 17: HLS segment redirects were followed (max_redirects does not reach the HLS demuxer's
    nested opens); now the redirected request comes through the guard and is checked."""
    guard = egress_guard(API)
    before = len(guard.refused)
    routes = {"/index.m3u8": (HLS, media_playlist("/seg.ts"))}
    with canary_server(routes) as canary:
        canary.routes["/seg.ts"] = ("redirect", b"http://169.254.169.254/latest/meta-data/seg.ts")
        with contextlib.suppress(SourceError):
            await asyncio.to_thread(probe_source, canary.base + "/index.m3u8", API, trusted=False)
    assert "/seg.ts" in {p for p, _ in canary.requests}, "FFmpeg asked for the segment"
    refused = list(guard.refused)[before:]
    assert any("169.254.169.254" in r for r in refused), refused


@pytest.mark.integration
async def test_an_untrusted_http_video_is_read_through_the_guard(tmp_path: Path) -> None:
    video = tmp_path / "cam.mp4"
    make_video(video, shots=1, shot_s=2.0, fps=5, size=(64, 48), seed=4)
    guard = egress_guard(API)
    before = guard.forwarded
    with canary_server({"/cam.mp4": ("video/mp4", video.read_bytes())}) as canary:
        info = await asyncio.to_thread(probe_source, canary.base + "/cam.mp4", API, trusted=False)
    assert info.size == (64, 48)
    assert guard.forwarded > before and canary.read_by_ffmpeg() == {"/cam.mp4"}
