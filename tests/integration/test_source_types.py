"""Every source type against a real loopback peer: HTTP MJPEG, HLS over HTTP, RTSP (GStreamer's
rtsp-server, TCP and UDP), a V4L2 device path, a camera that never answers, and the URL policy
refusing hostile sources (an HLS playlist naming local files included)."""

from __future__ import annotations

import contextlib
import functools
import os
import re
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from fractions import Fraction
from http.server import BaseHTTPRequestHandler, SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import av
import av.error
import numpy as np
import pytest

from dinostream.core.errors import SourceError
from dinostream.core.settings import IngestSettings
from dinostream.ingest.av_source import AvSource, check_source, make_source
from dinostream.ingest.url_policy import UrlRefused, check_url
from tests.rtsp import SERVER, SYSTEM_PYTHON

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]


def _settings(**overrides) -> IngestSettings:
    return IngestSettings(
        **{"sample_fps": 5.0, "queue_size": 8, "open_timeout_s": 5.0, "read_timeout_s": 5.0, **overrides}
    )


async def _take(source: AvSource, n: int) -> list:
    frames = []
    async for frame in source.frames():
        frames.append(frame)
        if len(frames) == n:
            break
    return frames


@contextlib.contextmanager
def _http_server(handler) -> Iterator[int]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


class _Quiet:
    def log_message(self, *args) -> None:  # keep pytest output readable
        pass


# -- HTTP MJPEG ----------------------------------------------------------------------------------


def _jpegs(n: int) -> list[bytes]:
    codec = av.CodecContext.create("mjpeg", "w")
    codec.width, codec.height, codec.pix_fmt, codec.time_base = 160, 120, "yuvj420p", Fraction(1, 10)
    out = []
    for i in range(n):
        image = np.full((120, 160, 3), (i * 40) % 256, np.uint8)
        frame = av.VideoFrame.from_ndarray(image, format="rgb24").reformat(format="yuvj420p")
        out.append(bytes(codec.encode(frame)[0]))
    return out


def _mjpeg_handler(fps: float):
    jpegs = _jpegs(6)

    class Handler(_Quiet, BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
            self.end_headers()
            with contextlib.suppress(OSError):  # the client hung up
                for i in range(10_000):
                    jpeg = jpegs[i % len(jpegs)]
                    head = f"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: {len(jpeg)}\r\n\r\n".encode()
                    self.wfile.write(head + jpeg + b"\r\n")
                    self.wfile.flush()
                    time.sleep(1 / fps)

    return Handler


@pytest.mark.parametrize("path", ["cam.mjpg", "video"], ids=["mjpg-suffix", "probed"])
async def test_http_mjpeg_frames_arrive(path):
    with _http_server(_mjpeg_handler(fps=20)) as port:
        url = f"http://127.0.0.1:{port}/{path}"
        with pytest.raises(SourceError, match="loopback"):  # the API needs allow_loopback for this host
            make_source(url, "mjpeg", _settings(), (32, 24), trusted=False)
        settings = _settings(sample_fps=5.0, allow_loopback=True)
        source = make_source(url, "mjpeg", settings, (32, 24), trusted=False)
        assert isinstance(source, AvSource)
        frames = await _take(source, 6)
    assert [f.image.shape for f in frames] == [(24, 32, 3)] * 6
    assert len({int(f.image.mean()) for f in frames}) > 1  # different pictures, not one repeated
    pts = np.array([f.pts for f in frames])
    assert np.all(np.diff(pts) > 0)
    # 20 fps sent, 5 fps sampled: MJPEG has no timestamps, so frames are timed by arrival and
    # about every 4th one is taken (FFmpeg's made-up 25 fps clock would give 0.2 s by count).
    assert source.stats.decoded > len(frames)
    assert all(b >= a for a, b in zip([f.ts for f in frames], [f.ts for f in frames[1:]], strict=False))


# -- HLS ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def hls_dir(tmp_path_factory) -> Path:
    """A 3 s VOD HLS stream (1 s H.264 segments) written with FFmpeg's hls muxer through PyAV."""
    root = tmp_path_factory.mktemp("hls")
    options = {"hls_time": "1", "hls_list_size": "0", "hls_playlist_type": "vod"}
    with av.open(str(root / "index.m3u8"), "w", format="hls", options=options) as out:
        stream = out.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = 160, 120, "yuv420p"
        stream.options = {"g": "25", "preset": "ultrafast"}
        for i in range(75):
            image = np.full((120, 160, 3), (i * 3) % 256, np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    secret = root.parent / "secret.ts"  # a real video outside what the server serves
    shutil.copy(root / "index0.ts", secret)
    hostile = {
        "file-url": "file:///etc/passwd",
        "absolute-path": "/etc/passwd",
        "file-url-video": f"file://{secret}",
        "metadata-host": "http://169.254.169.254/latest/meta-data/seg.ts",
    }
    for name, segment in hostile.items():
        (root / f"{name}.m3u8").write_text(
            f"#EXTM3U\n#EXT-X-TARGETDURATION:1\n#EXTINF:1.0,\n{segment}\n#EXT-X-ENDLIST\n"
        )
    return root


@pytest.fixture(scope="module")
def hls_port(hls_dir) -> Iterator[int]:
    class Handler(_Quiet, SimpleHTTPRequestHandler):
        pass

    with _http_server(functools.partial(Handler, directory=str(hls_dir))) as port:
        yield port


@pytest.mark.parametrize("trusted", [True, False], ids=["trusted", "api-with-allow-loopback"])
async def test_hls_stream_over_http_delivers_its_frames(hls_port, trusted):
    url = f"http://127.0.0.1:{hls_port}/index.m3u8"
    settings = _settings(sample_fps=2.0, allow_loopback=True)
    source = make_source(url, "hls", settings, (32, 32), trusted=trusted)
    assert isinstance(source, AvSource)
    frames = [f async for f in source.frames()]
    assert len(frames) == 6  # 3 s at 2 fps
    assert [f.pts - frames[0].pts for f in frames] == pytest.approx([0, 0.5, 1, 1.5, 2, 2.5], abs=0.05)
    assert source.stats.decoded == 75


@pytest.mark.parametrize(
    ("playlist", "reason"),
    [
        ("file-url", r"refused HLS playlist .*: it names file:///etc/passwd, but a playlist may name only http\(s\)"),
        ("file-url-video", r"refused HLS playlist .*: it names file://.*secret\.ts, but a playlist may name only http"),
        ("metadata-host", r"refused HLS playlist .*: it names http://169\.254\.169\.254/.*link-local"),
        # An absolute path in a remote playlist is a path on that server (FFmpeg reads it so too).
        ("absolute-path", r"cannot open HLS stream .*absolute-path\.m3u8: .*\(no segment could be read\)"),
    ],
    ids=["file-url", "file-url-video", "metadata-host", "absolute-path"],
)
async def test_hostile_hls_playlist_is_refused_and_says_why(hls_port, playlist, reason):
    url = f"http://127.0.0.1:{hls_port}/{playlist}.m3u8"
    source = make_source(url, "hls", _settings(), (32, 32))  # even trusted
    with pytest.raises(SourceError, match=reason):
        [f async for f in source.frames()]
    assert source.stats.decoded == 0


def test_protocol_whitelist_alone_stops_a_playlist_from_reading_local_files(hls_port):
    """Defence in depth: without the playlist check, FFmpeg itself refuses the file segment.

    The same playlist opens with "file" on the whitelist, so it is the whitelist that stops it.
    """
    checked = check_url(f"http://127.0.0.1:{hls_port}/file-url-video.m3u8", _settings(), trusted=True)
    assert checked.kind == "hls"
    with pytest.raises(av.error.InvalidDataError):
        av.open(checked.target, format=checked.av_format, options=dict(checked.options), timeout=5)
    loose = {**checked.options, "protocol_whitelist": checked.options["protocol_whitelist"] + ",file"}
    with av.open(checked.target, format="hls", options=loose, timeout=5) as container:
        assert next(container.decode(video=0)) is not None  # the local file was read


# -- V4L2 ----------------------------------------------------------------------------------------


async def test_v4l2_device_is_accepted_and_a_missing_one_is_named():
    device = "/dev/video7"
    if os.path.exists(device):
        pytest.skip(f"{device} exists on this machine")
    camera = _settings(allowed_devices=[device])  # the API opens only devices the settings list
    for url in (device, f"v4l2://{device}"):
        checked = check_url(url, camera, trusted=False)
        assert (checked.kind, checked.target, checked.av_format) == ("v4l2", device, "video4linux2")
    with pytest.raises(SourceError, match=f"^no such camera device {device}$"):
        check_source(device, camera, trusted=False)
    with pytest.raises(SourceError, match=f"^no such camera device {device}$"):
        [f async for f in make_source(device, "cam", _settings(), (32, 32)).frames()]


# -- RTSP ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def rtsp_url() -> Iterator[str]:
    if not os.access(SYSTEM_PYTHON, os.X_OK):
        pytest.fail(f"{SYSTEM_PYTHON} with GStreamer (python3-gi) is missing: run `make apt` (part of `make test`)")
    proc = subprocess.Popen(
        [SYSTEM_PYTHON, str(SERVER), "0", "--fps", "10"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if not line.startswith("port "):
            proc.kill()
            pytest.fail(f"RTSP server did not start: {line!r} {proc.communicate(timeout=5)[1]}")
        yield f"rtsp://127.0.0.1:{int(line.split()[1])}/cam"
    finally:
        proc.kill()
        proc.wait(5)


@pytest.mark.parametrize("transport", ["tcp", "udp"])
async def test_rtsp_stream_over_tcp_and_udp_with_camera_clock_timestamps(rtsp_url, transport):
    settings = _settings(sample_fps=5.0, rtsp_transport=transport)
    checked = check_url(rtsp_url, settings, trusted=True)
    assert checked.options["rtsp_transport"] == transport and int(checked.options["timeout"]) > 0
    source = make_source(rtsp_url, f"rtsp-{transport}", settings, (32, 32))
    assert isinstance(source, AvSource)
    # GStreamer sends RTCP sender reports every few seconds; the first may come before the first
    # frame or seconds after it. Until then frames carry their receive time.
    frames, lags = [], []
    async for frame in source.frames():
        frames.append(frame)
        if source.clock.origin is not None:
            lags.append(time.time() - frame.ts)
        if len(lags) == 20 or len(frames) == 100:
            break
    assert len(lags) == 20 and source.stats.error is None, f"no sender report in {len(frames)} frames"
    assert np.all(np.diff([f.pts for f in frames]) > 0)
    ts = [f.ts for f in frames]
    assert ts == sorted(ts)
    # The report's wall clock (same host clock) times the frames: captured before we take them;
    # once the backlog queued while the stream opened is drained, by the encoder's and network's
    # latency alone.
    assert min(lags) >= 0 and lags[-1] < 1.0, lags


# -- a camera that accepts and says nothing ------------------------------------------------------


@contextlib.contextmanager
def _silent_server() -> Iterator[int]:
    """Accepts TCP connections and never sends a byte."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    conns: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.05)
        while not stop.is_set():
            with contextlib.suppress(TimeoutError, OSError):
                conns.append(server.accept()[0])

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield server.getsockname()[1]
    finally:
        stop.set()
        thread.join(5)
        for conn in conns:
            conn.close()
        server.close()


@pytest.mark.parametrize(
    "url",
    [
        "rtsp://127.0.0.1:{port}/cam",
        "rtsps://127.0.0.1:{port}/cam",
        "http://127.0.0.1:{port}/cam.mjpg",
        "http://127.0.0.1:{port}/live.m3u8",
    ],
    ids=["rtsp", "rtsps", "mjpeg", "hls"],
)
async def test_silent_camera_fails_at_the_open_timeout(url):
    with _silent_server() as port:
        url = url.format(port=port)
        source = make_source(url, "silent", _settings(open_timeout_s=1.0, read_timeout_s=1.0), (32, 32))
        with pytest.raises(SourceError, match=f"^cannot connect to {re.escape(url)}: no response within 1 s") as caught:
            [f async for f in source.frames()]
    assert "open timeout" in str(caught.value)


# -- hostile URLs through the API path -----------------------------------------------------------


HOSTILE = [
    ("outside-media-roots", "{tmp}/elsewhere.mp4", "outside the media roots"),
    ("dotdot-escape", "{media}/../elsewhere.mp4", "outside the media roots"),
    ("concat", "concat:{media}/a.mp4|{tmp}/elsewhere.mp4", "scheme concat: is not allowed"),
    ("subfile", "subfile:,,start,0,end,0,,:/etc/passwd", "scheme subfile: is not allowed"),
    ("cloud-metadata", "http://169.254.169.254/latest/meta-data", "169.254.169.254 is a link-local address"),
    ("link-local-v6", "rtsp://[fe80::1]/", "fe80::1 is a link-local address"),
    ("loopback", "http://127.0.0.1/", "127.0.0.1 is a loopback address"),
    ("file-url-etc-passwd", "file:///etc/passwd", "/etc/passwd: it is outside the media roots"),
    ("gopher", "gopher://example.com/", "scheme gopher: is not allowed"),
    ("ftp", "ftp://example.com/a.mp4", "scheme ftp: is not allowed"),
    ("data", "data:video/mp4;base64,AAAA", "scheme data: is not allowed"),
]


@pytest.mark.parametrize(("url", "reason"), [(u, r) for _, u, r in HOSTILE], ids=[i for i, _, _ in HOSTILE])
def test_hostile_urls_are_refused_for_the_api(tmp_path, url, reason):
    media = tmp_path / "media"
    media.mkdir()
    (tmp_path / "elsewhere.mp4").write_bytes(b"not read")
    url = url.format(media=media, tmp=tmp_path)
    settings = _settings(media_roots=[media])
    with pytest.raises(UrlRefused, match=re.escape(reason)):
        check_source(url, settings, trusted=False)
    with pytest.raises(UrlRefused, match=re.escape(reason)):
        make_source(url, "cam", settings, (32, 32), trusted=False)
