import asyncio
import contextlib
import os
import re
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import av
import numpy as np
import pytest

from dinostream.core.errors import SourceError
from dinostream.core.settings import IngestSettings
from dinostream.demo_video import make_video
from dinostream.ingest.av_source import (
    AvSource,
    CaptureClock,
    KeyframePlan,
    PtsSampler,
    _SparseDecoder,
    check_source,
    decoder_threads,
    make_source,
    probe_source,
    stream_id_for,
)
from dinostream.ingest.resize import resize_rgb

pytestmark = pytest.mark.timeout(30)

FPS = 25
DURATION_S = 4.0  # 2 shots of 2 s


@pytest.fixture(scope="module")
def video(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("video") / "two-shots.mp4"
    make_video(path, shots=2, shot_s=DURATION_S / 2, fps=FPS, size=(320, 240), seed=1)
    return path


def _settings(**overrides) -> IngestSettings:
    return IngestSettings(**{"sample_fps": 2.0, "queue_size": 8, **overrides})


async def _collect(source: AvSource) -> list:
    return [frame async for frame in source.frames()]


def _remux(src: Path, dst: Path, fmt: str, **options: str) -> None:
    """Copy the video packets of `src` into another container format, without re-encoding."""
    with av.open(str(src)) as inp, av.open(str(dst), "w", format=fmt, options=options) as out:
        stream = out.add_stream_from_template(inp.streams.video[0])
        for packet in inp.demux(video=0):
            if packet.dts is not None:  # skip the flush packet
                packet.stream = stream
                out.mux(packet)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def _tcp_server(respond=None):
    """A loopback server; `respond(conn)` runs per connection, the default says nothing at all."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    server.settimeout(0.05)  # so the accept loop notices `stop`
    conns: list[socket.socket] = []
    stop = threading.Event()

    def serve():
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            conns.append(conn)
            if respond is not None:
                with contextlib.suppress(OSError):
                    respond(conn)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield server.getsockname()[1]
    finally:
        stop.set()
        thread.join(5)
        server.close()
        for conn in conns:
            conn.close()


def _decode_threads(stream: str) -> list[threading.Thread]:
    """The source's worker threads still alive (counted by name: other tests' threads come and go)."""
    return [t for t in threading.enumerate() if stream in t.name]


async def _until_no_decode_threads(stream: str, timeout: float = 5.0) -> list[threading.Thread]:
    deadline = time.monotonic() + timeout
    while _decode_threads(stream) and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    return _decode_threads(stream)


# -- sampling and frames ---------------------------------------------------------------------


@pytest.mark.parametrize("sample_fps", [2.0, 5.0, 25.0, 30.0], ids=["2fps", "5fps", "native-fps", "above-native-fps"])
async def test_samples_frames_by_presentation_time(video, sample_fps):
    source = AvSource(str(video), "cam", _settings(sample_fps=sample_fps), (64, 64))
    frames = await _collect(source)

    expected = DURATION_S * min(sample_fps, FPS)
    assert abs(len(frames) - expected) <= 1
    assert [f.seq for f in frames] == list(range(len(frames)))
    assert all(f.stream == "cam" for f in frames)
    pts = np.array([f.pts for f in frames])
    assert pts[0] == pytest.approx(0.0, abs=1 / FPS)
    gaps = np.diff(pts)
    assert np.all(gaps > 0)
    step = max(1 / sample_fps, 1 / FPS)
    assert np.all(np.abs(gaps - step) <= 1 / FPS + 1e-6)  # on the 1/fps grid, give or take a frame
    # Below the stream's rate, B-frames that sampling does not take and nothing references are
    # left undecoded (test_auto_leaves_unreferenced_frames_sampling_does_not_take_undecoded).
    if sample_fps >= FPS:
        assert source.stats.decoded == DURATION_S * FPS
    assert len(frames) <= source.stats.decoded <= DURATION_S * FPS
    assert source.stats.sampled == len(frames)
    assert source.stats.dropped == 0 and source.stats.error is None


async def test_frames_without_timestamps_are_timed_by_frame_rate(video, tmp_path):
    """A raw H.264 elementary stream has no pts at all; frames are timed at the stream's rate."""
    raw = tmp_path / "raw.h264"
    _remux(video, raw, "h264")
    with av.open(str(raw)) as container:
        assert next(container.decode(video=0)).pts is None  # the case under test

    frames = await _collect(AvSource(str(raw), "cam", _settings(sample_fps=2.0), (32, 32)))

    assert len(frames) == DURATION_S * 2
    assert [f.pts for f in frames] == pytest.approx([i / 2 for i in range(len(frames))], abs=1 / FPS)


@pytest.mark.parametrize("size", [(224, 224), (256, 144)], ids=["square", "wide"])
async def test_frames_are_rgb_at_the_requested_size(video, size):
    started = time.time()
    frames = await _collect(AvSource(str(video), "cam", _settings(), size))
    width, height = size

    for frame in frames:
        assert frame.image.shape == (height, width, 3)
        assert frame.image.dtype == np.uint8 and frame.image.flags.c_contiguous
        assert started <= frame.ts <= time.time()
    # Same pixels as decoding at full size and resizing with the shared scaler: RGB order, no crop.
    with av.open(str(video)) as container:
        first = next(container.decode(video=0)).to_ndarray(format="rgb24")
    reference = resize_rgb(first, size)
    assert np.abs(frames[0].image.astype(int) - reference.astype(int)).mean() < 3


async def test_make_source_returns_a_working_source(video):
    source = make_source(f"file://{video}", stream_id_for(str(video)), _settings(), (32, 32))
    frames = await _collect(source)
    assert source.stream == "two-shots"
    assert len(frames) >= DURATION_S * 2 - 1


# -- file errors -----------------------------------------------------------------------------


async def test_missing_file_names_the_path(tmp_path):
    path = tmp_path / "nowhere" / "cam.mp4"
    with pytest.raises(SourceError, match=f"^video file not found: {re.escape(str(path))}$"):
        await _collect(AvSource(str(path), "cam", _settings(), (32, 32)))
    with pytest.raises(SourceError, match="video file not found"):
        check_source(str(path))


async def test_unreadable_file_says_permission_denied(video, tmp_path):
    path = tmp_path / "locked.mp4"
    path.write_bytes(video.read_bytes())
    path.chmod(0)
    if os.geteuid() != 0:
        with pytest.raises(SourceError, match="cannot read .*locked.mp4: permission denied"):
            await _collect(AvSource(str(path), "cam", _settings(), (32, 32)))
        return
    # Root reads everything: check in a child without the capabilities that bypass file modes.
    code = (
        "import asyncio, sys\n"
        "from dinostream.core.settings import IngestSettings\n"
        "from dinostream.ingest.av_source import AvSource\n"
        "async def main():\n"
        "    async for _ in AvSource(sys.argv[1], 'cam', IngestSettings(), (32, 32)).frames():\n"
        "        pass\n"
        "asyncio.run(main())\n"
    )
    cp = subprocess.run(
        ["setpriv", "--bounding-set", "-dac_override,-dac_read_search", "--", sys.executable, "-c", code, str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert cp.returncode != 0
    assert re.search(r"SourceError: cannot read .*locked.mp4: permission denied", cp.stderr), cp.stderr


@pytest.mark.parametrize(
    "content",
    [np.random.default_rng(0).bytes(100_000), b"", b"just some text\n"],
    ids=["random-bytes", "empty", "text"],
)
async def test_corrupt_file_raises_instead_of_yielding_nothing(tmp_path, content):
    path = tmp_path / "broken.mp4"
    path.write_bytes(content)
    source = AvSource(str(path), "cam", _settings(), (32, 32))
    with pytest.raises(SourceError, match=f"^cannot decode {re.escape(str(path))}: .+"):
        await _collect(source)
    assert source.stats.error is not None and "cannot decode" in source.stats.error
    with pytest.raises(SourceError, match="cannot decode"):
        check_source(str(path))


async def test_file_without_video_stream(tmp_path):
    path = tmp_path / "tone.wav"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("pcm_s16le", rate=8000)
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 800), np.int16), format="s16", layout="mono")
        frame.rate = 8000
        container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    with pytest.raises(SourceError, match="no video stream"):
        check_source(str(path))
    with pytest.raises(SourceError, match="no video stream"):
        await _collect(AvSource(str(path), "cam", _settings(), (32, 32)))


@pytest.mark.timeout(15)
@pytest.mark.parametrize("layout", ["index-at-end", "index-first"])
async def test_truncated_file_delivers_what_it_has_then_raises(video, tmp_path, layout):
    """Half a file is an error either way: no index at all, or frames that stop halfway.

    With the index at the end (the encoder's default) nothing is decodable; with it first,
    FFmpeg decodes up to the cut and reports a clean end, which the declared duration exposes.
    """
    full = video
    if layout == "index-first":
        full = tmp_path / "faststart.mp4"
        _remux(video, full, "mp4", movflags="faststart")  # the index first, as streaming files have it
    data = full.read_bytes()
    path = tmp_path / "half.mp4"
    path.write_bytes(data[: len(data) // 2])

    frames = []
    with pytest.raises(SourceError, match=f"^cannot decode {re.escape(str(path))}: ") as caught:
        async for frame in AvSource(str(path), "cam", _settings(), (32, 32)).frames():
            frames.append(frame)

    if layout == "index-at-end":
        assert frames == []
    else:
        assert 0 < len(frames) < DURATION_S * 2
        assert "truncated" in str(caught.value)


# -- network errors --------------------------------------------------------------------------


async def test_unreachable_rtsp_url_fails_fast():
    url = f"rtsp://127.0.0.1:{_free_port()}/live"
    started = time.monotonic()
    with pytest.raises(SourceError, match=f"^cannot connect to {re.escape(url)}: .+"):
        await _collect(AvSource(url, "cam", _settings(open_timeout_s=5.0), (32, 32)))
    assert time.monotonic() - started < 5.0  # refused, not timed out


@pytest.mark.integration  # a server on a real loopback socket
@pytest.mark.timeout(20)
@pytest.mark.parametrize("scheme", ["rtsp", "http"])
async def test_silent_server_times_out_at_the_open_timeout(scheme):
    with _tcp_server() as port:
        url = f"{scheme}://127.0.0.1:{port}/live"
        source = AvSource(url, "cam", _settings(open_timeout_s=1.5, read_timeout_s=1.5), (32, 32))
        with pytest.raises(SourceError, match=f"^cannot connect to {re.escape(url)}: .*1.5 s") as caught:
            await _collect(source)
    assert "timeout" in str(caught.value)


@pytest.mark.integration  # a server on a real loopback socket
@pytest.mark.timeout(20)
async def test_stream_that_stalls_delivers_frames_then_times_out(video, tmp_path):
    ts = tmp_path / "live.ts"
    _remux(video, ts, "mpegts")
    data = ts.read_bytes()

    def respond(conn):
        conn.recv(4096)
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: video/mp2t\r\n\r\n" + data[: len(data) // 2])
        # ... and then nothing, with the connection left open

    with _tcp_server(respond) as port:
        url = f"http://127.0.0.1:{port}/live.ts"
        frames = []
        with pytest.raises(SourceError, match=f"^no data from {re.escape(url)} for 1.5 s"):
            async for frame in AvSource(url, "cam", _settings(read_timeout_s=1.5), (32, 32)).frames():
                frames.append(frame)
    assert len(frames) > 0


@pytest.mark.parametrize("url", ["udp://127.0.0.1:5000", "ftp://example.com/a.mp4", "rtsp:///no-host", ""], ids=repr)
def test_unsupported_or_malformed_urls_are_refused_up_front(url):
    with pytest.raises(SourceError):
        check_source(url)
    with pytest.raises(SourceError):
        make_source(url, "cam", _settings(), (32, 32))


def test_check_source_does_not_connect_to_network_sources():
    check_source(f"rtsp://127.0.0.1:{_free_port()}/live")  # nothing listens; no error until frames()


# -- pacing, back-pressure and shutdown ------------------------------------------------------


@pytest.mark.timeout(15)
async def test_realtime_file_plays_at_native_rate_and_drops_when_consumer_is_slow(tmp_path):
    path = tmp_path / "short.mp4"
    make_video(path, shots=1, shot_s=1.0, fps=FPS, size=(64, 48))
    source = AvSource(str(path), "cam", _settings(realtime=True, sample_fps=FPS, queue_size=2), (32, 32))

    started = time.monotonic()
    received = []
    async for frame in source.frames():
        received.append(frame.seq)
        await asyncio.sleep(0.1)  # a consumer at 10 fps behind a 25 fps stream
    elapsed = time.monotonic() - started

    assert elapsed > 0.6  # paced by timestamps, not decoded as fast as possible
    assert source.stats.sampled == FPS
    assert source.stats.dropped > 0
    assert len(received) + source.stats.dropped == FPS
    assert received == sorted(received) and received[-1] == FPS - 1  # the newest frames survive


async def test_file_with_slow_consumer_loses_nothing(video):
    source = AvSource(str(video), "cam", _settings(sample_fps=FPS, queue_size=2), (16, 16))
    seqs = []
    async for frame in source.frames():
        seqs.append(frame.seq)
        if frame.seq % 10 == 0:
            await asyncio.sleep(0.01)
    assert seqs == list(range(int(DURATION_S * FPS)))
    assert source.stats.dropped == 0


@pytest.mark.parametrize("how", ["close", "break"])
async def test_stopping_mid_stream_ends_the_decode_thread(video, how):
    stream = f"stop-by-{how}"
    source = AvSource(str(video), stream, _settings(sample_fps=FPS, queue_size=2), (32, 32))
    frames = source.frames()
    got = [await anext(frames), await anext(frames)]
    assert len(_decode_threads(stream)) == 1  # blocked on the full queue

    if how == "close":  # from another task, e.g. on shutdown
        await source.close()
        with pytest.raises(StopAsyncIteration):
            await anext(frames)
    else:
        async with contextlib.aclosing(frames):
            async for _ in frames:
                break

    assert await _until_no_decode_threads(stream) == []
    assert source.stats.error is None  # stopped, not failed
    assert [f.seq for f in got] == [0, 1]
    assert source.stats.sampled < DURATION_S * FPS


@pytest.mark.parametrize("where", ["waiting-for-a-frame", "handling-a-frame"])
async def test_cancelling_the_consumer_ends_the_decode_thread(video, where):
    stream = f"cancel-while-{where}"
    # Realtime pacing makes the source slower than a consumer that does nothing.
    realtime = where == "waiting-for-a-frame"
    source = AvSource(str(video), stream, _settings(sample_fps=FPS, queue_size=2, realtime=realtime), (32, 32))
    first = asyncio.Event()

    async def consume():
        async for _ in source.frames():
            first.set()
            if not realtime:
                await asyncio.sleep(10)  # cancelled here, outside the generator

    consumer = asyncio.create_task(consume())
    await asyncio.wait_for(first.wait(), 5)
    assert len(_decode_threads(stream)) == 1
    consumer.cancel()
    with pytest.raises(asyncio.CancelledError):
        await consumer
    del consumer  # the abandoned generator is closed by the event loop's async-generator finalizer

    assert await _until_no_decode_threads(stream) == []
    assert source.stats.error is None  # stopped, not failed
    assert source.stats.sampled < DURATION_S * FPS


async def test_frames_can_be_iterated_once(video):
    source = AvSource(str(video), "cam", _settings(), (16, 16))
    await _collect(source)
    with pytest.raises(RuntimeError, match="only once"):
        await _collect(source)


# -- pure pieces -----------------------------------------------------------------------------


def test_sampler_takes_first_frame_at_or_after_each_grid_point():
    sampler = PtsSampler(2.0)
    times = [i / 25 for i in range(50)]
    taken = [t for t in times if sampler.take(t)]
    assert taken == pytest.approx([0.0, 0.52, 1.0, 1.52])


def test_sampler_at_the_native_rate_takes_every_frame():
    sampler = PtsSampler(25.0)
    assert all(sampler.take(i * 512 / 12800) for i in range(1000))  # 25 fps in a 1/12800 time base


def test_sampler_survives_timestamp_jumps():
    sampler = PtsSampler(1.0)
    assert sampler.take(100.0)
    assert not sampler.take(100.5)
    assert sampler.take(1e9)  # a jump forward: one frame, not a burst
    assert not sampler.take(1e9 + 0.5)
    assert sampler.take(3.0)  # backwards (a restarted stream): the grid restarts
    assert not sampler.take(3.5)
    assert sampler.take(4.0)


_STREAM_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("/data/or-2.mp4", "or-2"),
        ("rtsp://cam1.local/live", "cam1.local-live"),
        ("file:///data/My%20Clip%20(1).mov", "My-Clip-1"),
        ("rtsp://admin:secret@10.0.0.5:554/Streaming/Channels/101", "10.0.0.5-554-Streaming-Channels-101"),
        ("https://example.com/hls/index.m3u8?cam=3", "example.com-hls-index.m3u8-cam-3"),
        ("/videos/café été.mp4", "cafe-ete"),
        ("/videos/_hidden.mp4", "hidden"),
        ("rtsp://cam:port/x", "cam-port-x"),
        ("/videos/日本.mp4", None),
        ("/videos/" + "x" * 100 + ".mp4", None),
    ],
)
def test_stream_id_for(url, expected):
    sid = stream_id_for(url)
    assert _STREAM_ID.match(sid), sid
    if expected is not None:
        assert sid == expected
    assert "secret" not in sid


def test_long_stream_ids_stay_distinct():
    a, b = stream_id_for("/v/" + "x" * 100 + "a.mp4"), stream_id_for("/v/" + "x" * 100 + "b.mp4")
    assert a != b and len(a) <= 64 and len(b) <= 64


# -- decode cost: keyframes only when sampling is sparse --------------------------------------

GOP = 25  # 1 s at 25 fps


@pytest.fixture(scope="module")
def gop_video(tmp_path_factory) -> Path:
    """10 s of moving content, H.264 with a keyframe exactly every second (no scene-cut keyframes)."""
    path = tmp_path_factory.mktemp("gop") / "gop25.mp4"
    rng = np.random.default_rng(3)
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = 160, 120, "yuv420p"
        stream.options = {"g": str(GOP), "keyint_min": str(GOP), "sc_threshold": "0", "preset": "ultrafast"}
        for i in range(10 * FPS):
            img = rng.integers(0, 40, (120, 160, 3), dtype=np.uint8)
            img[:, (i * 4) % 140 : (i * 4) % 140 + 20] = 255
            for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return path


@pytest.mark.parametrize("decode", ["keyframes", "auto"])
async def test_sparse_sampling_decodes_keyframes_only(gop_video, decode):
    every = AvSource(str(gop_video), "all", _settings(sample_fps=1.0, decode="all"), (32, 32))
    sparse = AvSource(str(gop_video), "sparse", _settings(sample_fps=1.0, decode=decode), (32, 32))
    all_frames, sparse_frames = await _collect(every), await _collect(sparse)

    assert every.stats.decoded == 10 * FPS
    # "auto" does not decode the first GOP whole: it holds its packets until the second keyframe
    # packet tells the interval.
    assert sparse.stats.decoded == 10
    assert len(sparse_frames) == len(all_frames) == 10
    assert np.diff([f.pts for f in sparse_frames]) == pytest.approx(np.ones(9), abs=1 / FPS)
    assert [f.pts for f in sparse_frames] == pytest.approx([f.pts for f in all_frames], abs=1e-6)
    # The same pictures: a keyframe decoded alone equals the frame decoded in sequence.
    for a, b in zip(all_frames, sparse_frames, strict=True):
        assert np.array_equal(a.image, b.image)


@pytest.mark.parametrize("decode", ["keyframes", "auto"])
async def test_keyframes_closer_than_samples_are_decoded_only_when_sampled(gop_video, decode):
    """Keyframes every second, a sample every two: every other keyframe is left undecoded."""
    every = AvSource(str(gop_video), "all", _settings(sample_fps=0.5, decode="all"), (32, 32))
    sparse = AvSource(str(gop_video), "sparse", _settings(sample_fps=0.5, decode=decode), (32, 32))
    all_frames, sparse_frames = await _collect(every), await _collect(sparse)

    assert [round(f.pts) for f in all_frames] == [0, 2, 4, 6, 8]
    assert sparse.stats.decoded == 5
    assert [f.pts for f in sparse_frames] == [f.pts for f in all_frames]
    for a, b in zip(all_frames, sparse_frames, strict=True):
        assert np.array_equal(a.image, b.image)


async def test_auto_decodes_every_frame_when_keyframes_are_further_apart_than_samples(gop_video):
    source = AvSource(str(gop_video), "cam", _settings(sample_fps=2.0, decode="auto"), (32, 32))
    frames = await _collect(source)
    assert source.stats.decoded == 10 * FPS
    assert len(frames) == 20


async def test_keyframes_only_does_not_mistake_the_last_gop_for_truncation(gop_video):
    source = AvSource(str(gop_video), "cam", _settings(sample_fps=0.25, decode="keyframes"), (32, 32))
    frames = await _collect(source)  # the last keyframe is at 9 s of 10 s: not a truncated file
    assert [round(f.pts) for f in frames] == [0, 4, 8]


def _write_gop_video(path: Path, options: dict[str, str]) -> None:
    """10 s of 160x120 at 25 fps, a keyframe every second, with these extra libx264 options."""
    rng = np.random.default_rng(3)
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = 160, 120, "yuv420p"
        stream.options = {"g": str(GOP), "keyint_min": str(GOP), "sc_threshold": "0", **options}
        for i in range(10 * FPS):
            img = rng.integers(0, 40, (120, 160, 3), dtype=np.uint8)
            img[:, (i * 4) % 140 : (i * 4) % 140 + 20] = 255
            for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)


@pytest.fixture(scope="module")
def bframe_video(tmp_path_factory) -> Path:
    """Like gop_video, but every third frame of four is a B-frame that nothing references."""
    path = tmp_path_factory.mktemp("bframes") / "ibbbp.mp4"
    _write_gop_video(path, {"preset": "fast", "bf": "3", "x264-params": "b-adapt=0:b-pyramid=none"})
    with av.open(str(path)) as container:
        container.streams.video[0].codec_context.skip_frame = "NONREF"
        assert sum(1 for _ in container.decode(video=0)) < 10 * FPS // 2  # most frames are not references
    return path


async def test_auto_leaves_unreferenced_frames_sampling_does_not_take_undecoded(bframe_video):
    """Keyframes 1 s apart, samples every 0.5 s: every frame is needed as a reference or a sample,
    except B-frames between samples, which "auto" has the decoder drop; "all" decodes them."""
    every = AvSource(str(bframe_video), "all", _settings(sample_fps=2.0, decode="all"), (32, 32))
    auto = AvSource(str(bframe_video), "auto", _settings(sample_fps=2.0, decode="auto"), (32, 32))
    all_frames, auto_frames = await _collect(every), await _collect(auto)

    assert every.stats.decoded == 10 * FPS
    assert auto.stats.decoded < 0.5 * every.stats.decoded
    assert len(auto_frames) == len(all_frames) == 20
    assert [f.pts for f in auto_frames] == [f.pts for f in all_frames]  # the same frames taken
    for a, b in zip(all_frames, auto_frames, strict=True):  # and the same pictures
        assert np.array_equal(a.image, b.image)


async def test_auto_decodes_every_frame_it_samples_at_the_stream_rate(bframe_video):
    """Sampling at the frame rate takes every frame: none is skipped."""
    source = AvSource(str(bframe_video), "cam", _settings(sample_fps=float(FPS), decode="auto"), (32, 32))
    frames = await _collect(source)
    assert source.stats.decoded == len(frames) == 10 * FPS


@pytest.mark.timeout(30)
async def test_live_keyframe_sampling_hands_on_each_keyframe_without_waiting_for_the_next(tmp_path):
    """B-frame reordering and frame threads hold a decoded frame back until more frames are decoded;
    decoding keyframes only, those would be the next keyframes, seconds later on a live stream."""
    mp4, ts = tmp_path / "bframes.mp4", tmp_path / "live.ts"
    _write_gop_video(mp4, {"preset": "fast", "bf": "3"})
    _remux(mp4, ts, "mpegts")
    with av.open(str(ts)) as container:
        packets = [(p.pos, p.is_keyframe, p.pts) for p in container.demux(video=0) if p.dts is not None]
    assert [pts for *_, pts in packets] != sorted(pts for *_, pts in packets)  # B-frames: decode order is not pts order
    keys = [i for i, (_, key, _) in enumerate(packets) if key]
    cut = packets[keys[2] + 5][0]  # the third keyframe (2 s) and a few frames after it; not the fourth
    data = ts.read_bytes()[:cut]

    def respond(conn):
        conn.recv(4096)
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: video/mp2t\r\n\r\n" + data)
        # ... and then nothing yet, with the connection left open: a live stream between keyframes

    with _tcp_server(respond) as port:
        source = AvSource(
            f"http://127.0.0.1:{port}/live.ts",
            "cam",
            _settings(sample_fps=1.0, decode="keyframes", read_timeout_s=20),
            (32, 32),
        )
        pts = []
        async with asyncio.timeout(15):  # well within the read timeout: the frames come from what was sent
            async for frame in source.frames():
                pts.append(frame.pts)
                if len(pts) == 3:
                    break
    assert np.diff(pts) == pytest.approx([1.0, 1.0], abs=1e-6)  # the first three keyframes, one per second
    assert source.stats.decoded == 3


@pytest.mark.parametrize("hwaccel", ["no-such-device", "cuda:99"], ids=["unknown-type", "missing-device"])
async def test_unavailable_hardware_decoding_falls_back_to_software_with_a_warning(gop_video, hwaccel, caplog):
    software = await _collect(AvSource(str(gop_video), "sw", _settings(sample_fps=1.0), (32, 32)))
    with caplog.at_level("WARNING", logger="dinostream.ingest.av_source"):
        source = AvSource(str(gop_video), "hw", _settings(sample_fps=1.0, hwaccel=hwaccel), (32, 32))
        frames = await _collect(source)

    assert [r.getMessage() for r in caplog.records if f"hwaccel={hwaccel!r} unavailable" in r.getMessage()]
    assert "decoding in software" in caplog.text
    assert source.stats.error is None
    assert [f.pts for f in frames] == [f.pts for f in software]
    assert all(np.array_equal(a.image, b.image) for a, b in zip(frames, software, strict=True))


def test_keyframe_plan_learns_the_interval_per_keyframe():
    plan = KeyframePlan("auto", step=1.0)
    assert not plan.keyframes_only  # nothing known yet: decode everything
    plan.keyframe(0.0)
    assert not plan.keyframes_only
    plan.keyframe(1.001)  # 30000/1001 fps, 30-frame GOP
    assert plan.keyframes_only
    plan.keyframe(3.5)  # the GOP grew past the sampling step: back to every frame
    assert not plan.keyframes_only
    for k in range(KeyframePlan.WINDOW - 1):  # short again, but the long interval is still remembered
        plan.keyframe(4.0 + k)
        assert not plan.keyframes_only
    plan.keyframe(4.0 + KeyframePlan.WINDOW - 1)  # the long one is out of the window
    assert plan.keyframes_only
    plan.keyframe(0.0)  # restarted stream: unknown again
    assert not plan.keyframes_only
    assert KeyframePlan("keyframes", 10.0).keyframes_only and not KeyframePlan("all", 0.01).keyframes_only


def test_keyframe_plan_is_not_fooled_by_a_scene_cut_keyframe():
    """A 0.92 s GOP with an extra keyframe at a cut 0.48 s after a regular one: sampling at 2 fps
    needs every frame throughout, or the samples until the next regular keyframe are lost."""
    plan = KeyframePlan("auto", step=0.5)
    for t in (0.0, 0.92, 1.84, 2.76, 3.24, 4.16, 5.08):
        plan.keyframe(t)
        assert not plan.keyframes_only


async def test_auto_keeps_every_sample_when_an_encoder_adds_keyframes_at_cuts(tmp_path):
    """MPEG-4 with a 23-frame GOP at 25 fps and keyframes forced at cuts (some 12 frames after a
    regular one): sampled at 2 fps, no sampling interval is left without a frame."""
    path = tmp_path / "cuts.mp4"
    rng = np.random.default_rng(5)
    cuts = {40, 57, 150, 170}
    with av.open(str(path), "w") as out:
        stream = out.add_stream("mpeg4", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = 160, 120, "yuv420p"
        stream.options = {"g": "23", "sc_threshold": "1000000000"}
        for i in range(10 * FPS):
            img = rng.integers(0, 40, (120, 160, 3), dtype=np.uint8)
            img[:, (i * 4) % 140 : (i * 4) % 140 + 20] = 255
            frame = av.VideoFrame.from_ndarray(img, format="rgb24")
            if i in cuts:
                frame.pict_type = av.video.frame.PictureType.I
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    with av.open(str(path)) as probe:
        keys = [p.pts for p in probe.demux(probe.streams.video[0]) if p.is_keyframe and p.pts is not None]
    assert len(keys) > 10 * FPS // 23 + 1  # the forced keyframes are there: the case this is about
    every = await _collect(AvSource(str(path), "all", _settings(sample_fps=2.0, decode="all"), (32, 32)))
    auto = await _collect(AvSource(str(path), "auto", _settings(sample_fps=2.0, decode="auto"), (32, 32)))
    assert len(every) == 20
    assert [f.pts for f in auto] == [f.pts for f in every]


def test_capture_clock_uses_the_sender_clock_and_never_goes_back():
    clock = CaptureClock()
    assert clock.stamp(0.0, received=1000.0) == 1000.0  # no sender report yet: receive time
    clock.sender_report(1000.2e6)  # pts 0 was captured at 1000.2
    assert clock.stamp(0.5, received=1001.0) == pytest.approx(1000.7)
    assert clock.stamp(0.6, received=1001.0) == pytest.approx(1000.8)
    assert clock.stamp(0.55, received=1001.1) == pytest.approx(1000.8)  # never decreasing
    skewed = CaptureClock()
    skewed.sender_report(0)  # a camera that thinks it is 1970
    assert skewed.stamp(1.0, received=1e9) == 1e9


# -- the URL policy at the source ---------------------------------------------------------------


async def test_untrusted_files_must_lie_under_a_media_root(video, tmp_path):
    with pytest.raises(SourceError, match="outside the media roots"):
        make_source(str(video), "cam", _settings(media_roots=[tmp_path]), (32, 32), trusted=False)
    with pytest.raises(SourceError, match="outside the media roots"):
        check_source(str(video), _settings(media_roots=[tmp_path]), trusted=False)
    settings = _settings(media_roots=[video.parent])
    assert check_source(str(video), settings, trusted=False) is not None
    assert probe_source(str(video), settings, trusted=False).size == (320, 240)
    frames = await _collect(make_source(str(video), "cam", settings, (32, 32), trusted=False))
    assert len(frames) == DURATION_S * 2


def test_untrusted_loopback_urls_are_refused_unless_allowed():
    url = f"rtsp://127.0.0.1:{_free_port()}/live"
    with pytest.raises(SourceError, match="loopback"):
        check_source(url, _settings(), trusted=False)
    assert check_source(url, _settings(allow_loopback=True), trusted=False) is None  # accepted, not connected


async def test_missing_camera_device_is_named():
    device = "/dev/video7"
    if os.path.exists(device):
        pytest.skip(f"{device} exists here")
    with pytest.raises(SourceError, match=f"^no such camera device {device}$"):
        check_source(device)
    with pytest.raises(SourceError, match=f"^no such camera device {device}$"):
        camera = _settings(allowed_devices=[device])  # the API opens only devices the settings list
        await _collect(make_source(f"v4l2://{device}", "cam", camera, (32, 32), trusted=False))


@pytest.mark.parametrize("decode", ["all", "auto", "keyframes"])
async def test_one_decoder_thread_gives_the_same_frames_as_ffmpegs_threads(bframe_video, decode):
    """decode_threads=1 (the default up to 1080p: the cheapest CPU per frame for a node of many streams) and 0
    (FFmpeg's frame threads) sample the same frames, picture for picture. Frame threads hold frames
    back, so "auto" knows less of what is coming out and may decode a frame or two more."""
    got = {}
    for threads in (1, 0):
        source = AvSource(str(bframe_video), "cam", _settings(decode=decode, decode_threads=threads), (32, 32))
        got[threads] = (await _collect(source), source.stats.decoded)
    (one, decoded_one), (many, decoded_many) = got[1], got[0]
    assert len(one) == len(many) > 0 and decoded_one <= decoded_many
    assert [f.pts for f in one] == [f.pts for f in many]
    for a, b in zip(one, many, strict=True):
        assert np.array_equal(a.image, b.image)


@pytest.mark.parametrize(
    ("threads", "kind"),
    [(None, av.codec.context.ThreadType.NONE), (1, av.codec.context.ThreadType.NONE), (0, None), (3, None)],
)
def test_the_decoder_runs_the_threads_it_is_asked_for(bframe_video, threads, kind):
    """The codec opens with decode_threads threads: 1 is no FFmpeg threading at all; otherwise frame
    threads (slice threads for keyframes only) with that count (0: FFmpeg's choice, at least one);
    the default (None) is one thread for this small video."""
    with av.open(str(bframe_video)) as container:
        codec = container.streams.video[0].codec_context
        decoder = _SparseDecoder(codec, KeyframePlan("all", 0.5), threads=threads)
        decoder.decode(next(container.demux(video=0)))
        assert codec.is_open
        assert (
            codec.thread_count == (threads if threads is not None else 1) if threads != 0 else codec.thread_count >= 1
        )
        assert codec.thread_type == (kind if kind is not None else av.codec.context.ThreadType.AUTO)


def test_decoder_threads_default_to_one_up_to_1080p_and_to_ffmpegs_choice_above():
    assert (
        decoder_threads(None, 320, 240) == decoder_threads(None, 1920, 1080) == decoder_threads(None, 1920, 1088) == 1
    )
    assert decoder_threads(None, 0, 0) == 1  # size not known yet
    assert decoder_threads(None, 2560, 1440) == decoder_threads(None, 3840, 2160) == 0
    assert (
        decoder_threads(1, 3840, 2160) == 1 and decoder_threads(0, 320, 240) == 0 and decoder_threads(4, 640, 360) == 4
    )
