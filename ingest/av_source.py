"""PyAV source for video files, rtsp(s)://, http(s):// (progressive, HLS, MJPEG) and V4L2 cameras.

Every source passes `dinostream.ingest.url_policy.check_url` first. The public functions default to
`trusted=True` (sources the operator gives on the command line); the HTTP API must pass
`trusted=False` so its sources are held to the media roots and public hosts.

Decoding runs in a worker thread; frames are sampled by presentation time, resized and
converted to RGB by FFmpeg's scaler, and handed to the event loop through a `FrameQueue`.
When sampling is far below the stream's rate only keyframes are decoded
(`IngestSettings.decode`), from the first one on; `IngestSettings.hwaccel` asks for a hardware
decoder, with software decoding (and a logged warning) where there is none.

    source = make_source("cam.mp4", stream_id_for("cam.mp4"), IngestSettings(), (224, 224))
    async for frame in source.frames():
        ...
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import functools
import hashlib
import logging
import math
import os
import re
import ssl
import threading
import time
import unicodedata
import urllib.error
import urllib.request
from collections import deque
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, Literal
from urllib.parse import unquote, urlsplit

import av
import av.container
import av.error
import av.video.codeccontext
import av.video.stream
from av.codec.hwaccel import HWAccel, hwdevices_available
from av.video.reformatter import VideoReformatter

from dinostream.core.errors import SourceError
from dinostream.core.settings import IngestSettings
from dinostream.ingest.egress_guard import egress_guard
from dinostream.ingest.frame_queue import FrameQueue
from dinostream.ingest.jumps import JumpTracker
from dinostream.ingest.resize import rgb_array
from dinostream.ingest.source import Frame, Source
from dinostream.ingest.url_policy import CheckedUrl, UrlRefused, check_playlist, check_url

log = logging.getLogger(__name__)

_CLOSE_GRACE_S = 2.0  # close() waits this long for a decode thread stuck in network I/O
_MAX_BAD_PACKETS = 25  # consecutive undecodable packets a live stream may have before it fails
_STREAM_ID_MAX = 64
_PLAYLIST_MAX_BYTES = 1 << 20
_MAX_PLAYLISTS = 8  # a master playlist and its variants read before opening an HLS stream
_MAX_CLOCK_SKEW_S = 60.0  # a camera clock further than this from ours is wrong; receive time is used


def _reason(exc: BaseException) -> str:
    """FFmpeg's one-line reason for an error, with its last log line when PyAV captured one."""
    if isinstance(exc, av.error.FFmpegError):
        reason = exc.strerror or type(exc).__name__
        entry: Any = exc.log  # (level, name, message) while PyAV logging is on; the stub says otherwise
        if isinstance(entry, tuple) and len(entry) == 3 and str(entry[2]).strip():
            reason = f"{reason} ({str(entry[2]).strip()})"
        return reason
    return str(exc) or type(exc).__name__


def _check_file(loc: CheckedUrl) -> None:
    """Raise SourceError when a file is missing, a directory, or unreadable, or a camera is missing."""
    path = loc.target
    if loc.kind == "v4l2":
        if not os.path.exists(path):
            raise SourceError(f"no such camera device {loc.display}")
        return
    if not os.path.exists(path):
        raise SourceError(f"video file not found: {loc.display}")
    if os.path.isdir(path):
        raise SourceError(f"cannot decode {loc.display}: it is a directory, not a video file")
    if not os.access(path, os.R_OK):
        raise SourceError(f"cannot read {loc.display}: permission denied")


def _guarded(loc: CheckedUrl, settings: IngestSettings) -> dict[str, str]:
    """The options FFmpeg opens `loc` with: an untrusted http(s) source's every request (playlists
    again and again, segments, keys, redirects) goes through the egress guard, which checks it."""
    options = dict(loc.options)
    if not loc.trusted and loc.scheme in ("http", "https"):
        options["http_proxy"] = egress_guard(settings).url
        options["protocol_whitelist"] += ",httpproxy"  # https through the proxy is a CONNECT tunnel
    return options


def _open(
    loc: CheckedUrl, settings: IngestSettings, *, probe: bool = False
) -> tuple[av.container.InputContainer, av.video.stream.VideoStream]:
    """Open a container the policy checked and find its video stream, with the open/read timeouts.

    The demuxer and options (protocol whitelist, RTSP transport, socket timeouts) come from the
    policy; `settings.hwaccel` picks a hardware decoder unless only the header is `probe`d.
    Raise SourceError.
    """
    if not loc.is_network:
        _check_file(loc)
    if loc.kind == "hls":
        _check_hls(loc, settings)
    hwaccel = _hwaccel(settings.hwaccel, loc) if settings.hwaccel and not probe else None
    started = time.monotonic()
    try:
        container = av.open(
            loc.target,
            format=loc.av_format,
            timeout=(settings.open_timeout_s, settings.read_timeout_s),
            options=_guarded(loc, settings),
            metadata_errors="replace",
            hwaccel=hwaccel,
        )
    except Exception as exc:  # FFmpegError mostly; anything else still becomes one clear line
        raise _open_error(loc, exc, time.monotonic() - started, settings.open_timeout_s) from exc
    if not container.streams.video:
        container.close()
        raise SourceError(f"cannot decode {loc.display}: no video stream")
    video = container.streams.video[0]
    if hwaccel is not None and not video.codec_context.is_hwaccel:
        log.warning(
            "%s: hwaccel=%r has no decoder for %s; decoding in software",
            loc.display,
            settings.hwaccel,
            video.codec_context.name,
        )
    return container, video


_HWACCEL_PROBE_CODECS = ("h264", "hevc", "av1", "vp9")  # a device is tried with the first that decodes on it


def _hwaccel(setting: str, loc: CheckedUrl) -> HWAccel | None:
    """Hardware decoding as `IngestSettings.hwaccel` asks ('cuda', 'cuda:1', 'vaapi:/dev/dri/renderD128'),
    or None (software) with a warning when it cannot work here."""
    device_type, _, device = setting.partition(":")
    problem = _hwaccel_problem(device_type, device or None)
    if problem is not None:
        log.warning("%s: hwaccel=%r unavailable (%s); decoding in software", loc.display, setting, problem)
        return None
    return _hwaccel_for(device_type, device or None)


@functools.cache
def _hwaccel_problem(device_type: str, device: str | None) -> str | None:
    """Why hardware decoding on this device cannot work here, or None when the device opens.

    Tried once per process: without it, PyAV would fail every open on a missing device (or, for
    an unknown name, pick another device type).
    """
    available = hwdevices_available()
    if device_type not in available:
        return f"this FFmpeg has no {device_type!r} hardware decoding (it has: {', '.join(available) or 'none'})"
    for name in _HWACCEL_PROBE_CODECS:
        codec = av.Codec(name, "r")
        if any(config.device_type.name == device_type for config in codec.hardware_configs):
            try:
                _hwaccel_for(device_type, device).create(codec)
            except Exception as exc:  # the device is missing, busy or not ours: FFmpegError or OSError
                return f"cannot open {device_type} device {device or '(default)'}: {_reason(exc)}"
            return None
    return f"no decoder of this FFmpeg decodes on {device_type}"


def _hwaccel_for(device_type: str, device: str | None) -> HWAccel:
    # One CUDA context per process and GPU, not one per stream (each costs hundreds of MB of GPU memory).
    options: dict[str, object] | None = {"primary_ctx": "1"} if device_type == "cuda" else None
    # Falling back to software mid-stream (a profile the hardware cannot decode) beats failing.
    return HWAccel(device_type, device, allow_software_fallback=True, options=options)


def _check_hls(loc: CheckedUrl, settings: IngestSettings) -> None:
    """Read an HLS playlist (and a master playlist's variants) and check every URI it names.

    FFmpeg's protocol whitelist already stops a playlist from reading local files; this names
    the offending URI in the error and applies the host rules to every segment host.
    """
    pending, read = [loc], 0
    while pending and read < _MAX_PLAYLISTS:
        playlist = pending.pop(0)
        read += 1
        for url in check_playlist(_fetch_text(playlist, settings), playlist, settings):
            if urlsplit(url).path.lower().endswith((".m3u8", ".m3u")):
                pending.append(check_url(url, settings, trusted=playlist.trusted))


class _CheckedRedirects(urllib.request.HTTPRedirectHandler):
    """Follow a redirect only where the policy allows the target (never for untrusted sources)."""

    def __init__(self, loc: CheckedUrl, settings: IngestSettings) -> None:
        self.loc, self.settings = loc, settings

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        if not self.loc.trusted:
            raise UrlRefused(
                f"refused source {self.loc.display}: it redirects (HTTP {code}), and redirects are not followed "
                "for sources added through the API"
            )
        check_url(newurl, self.settings, trusted=True)
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def _fetch_text(loc: CheckedUrl, settings: IngestSettings) -> str:
    """GET a playlist within the open timeout; raise SourceError naming what went wrong."""
    # No proxies: the policy checked the host we connect to. No certificate check, like FFmpeg's tls default.
    context = ssl._create_unverified_context()
    opener = urllib.request.build_opener(
        urllib.request.ProxyHandler({}), urllib.request.HTTPSHandler(context=context), _CheckedRedirects(loc, settings)
    )
    try:
        with opener.open(loc.target, timeout=settings.open_timeout_s) as response:
            data = response.read(_PLAYLIST_MAX_BYTES + 1)
    except urllib.error.HTTPError as exc:
        raise SourceError(f"cannot open HLS stream {loc.display}: HTTP {exc.code} {exc.reason}") from None
    except urllib.error.URLError as exc:
        reason = exc.reason
        if isinstance(reason, TimeoutError):
            reason = f"no response within {settings.open_timeout_s:g} s (open timeout)"
        raise SourceError(f"cannot connect to {loc.display}: {reason}") from None
    except TimeoutError:
        raise SourceError(
            f"cannot connect to {loc.display}: no response within {settings.open_timeout_s:g} s (open timeout)"
        ) from None
    except OSError as exc:
        raise SourceError(f"cannot connect to {loc.display}: {exc.strerror or exc}") from None
    if len(data) > _PLAYLIST_MAX_BYTES:
        raise SourceError(f"cannot open HLS stream {loc.display}: the playlist is over {_PLAYLIST_MAX_BYTES} bytes")
    return data.decode("utf-8", "replace")


def _open_error(loc: CheckedUrl, exc: BaseException, elapsed: float, timeout: float) -> SourceError:
    if loc.kind == "v4l2":
        if isinstance(exc, FileNotFoundError):
            return SourceError(f"no such camera device {loc.display}")
        return SourceError(f"cannot open camera {loc.display}: {_reason(exc)}")
    if loc.is_network:
        # FFmpeg reports an expired timeout as ExitError, InvalidDataError or OSError depending
        # on the protocol, so the clock is the reliable witness.
        if isinstance(exc, av.error.ExitError) or elapsed >= timeout:
            return SourceError(f"cannot connect to {loc.display}: no response within {timeout:g} s (open timeout)")
        if loc.kind == "hls":
            return SourceError(f"cannot open HLS stream {loc.display}: {_reason(exc)} (no segment could be read)")
        hint = ""
        if loc.options.get("max_redirects") == "0" and isinstance(exc, OSError):
            hint = " (if it redirects: redirects are not followed for sources added through the API)"
        return SourceError(f"cannot connect to {loc.display}: {_reason(exc)}{hint}")
    if isinstance(exc, FileNotFoundError):
        return SourceError(f"video file not found: {loc.display}")
    if isinstance(exc, PermissionError):
        return SourceError(f"cannot read {loc.display}: permission denied")
    if "format_whitelist" in loc.options and isinstance(exc, av.error.ArgumentError):
        # FFmpeg's answer (EINVAL) when the file's container is not a listed demuxer.
        return SourceError(
            f"cannot decode {loc.display}: not a video container a file added through the API may be (a playlist "
            "or concat list is refused: it could name files outside the media roots)"
        )
    return SourceError(f"cannot decode {loc.display}: {_reason(exc)}")


@dataclass(frozen=True)
class VideoInfo:
    """What a source's header says about its video; `size` is None when it does not say
    (some live streams only tell by decoding)."""

    size: tuple[int, int] | None  # (width, height)
    sample_aspect_ratio: float = 1.0


def probe_source(url: str, settings: IngestSettings | None = None, *, trusted: bool = True) -> VideoInfo:
    """Open a source the way decoding does (same policy, timeouts and errors), read its video header, close.

    Raises SourceError naming the problem. Nothing is decoded. The HTTP API passes `trusted=False`.
    """
    settings = settings or IngestSettings()
    container, video = _open(check_url(url, settings, trusted=trusted), settings, probe=True)
    try:
        ctx = video.codec_context
        width, height = int(video.width or ctx.width or 0), int(video.height or ctx.height or 0)
        sar = video.sample_aspect_ratio or ctx.sample_aspect_ratio
    finally:
        container.close()
    size = (width, height) if width > 0 and height > 0 else None
    return VideoInfo(size, float(sar) if sar else 1.0)


def check_source(
    url: str, settings: IngestSettings | None = None, *, connect: bool = False, trusted: bool = True
) -> VideoInfo | None:
    """Validate a source before anything starts; raise SourceError naming the problem.

    Every source must pass the URL policy (`dinostream.ingest.url_policy.check_url`; the HTTP API passes
    `trusted=False`). Files must exist, be readable and hold a video stream (the header is
    probed, nothing is decoded); a camera device must exist. With `connect`, a network source or
    camera is also opened (within the open timeout) and must offer a video stream. Returns what
    the probe found, or None when nothing was opened.
    """
    settings = settings or IngestSettings()
    loc = check_url(url, settings, trusted=trusted)
    if loc.kind != "file" and not connect:
        if loc.kind == "v4l2":
            _check_file(loc)
        return None
    return probe_source(url, settings, trusted=trusted)


def make_source(
    url: str, stream: str, settings: IngestSettings, size: tuple[int, int], *, trusted: bool = True
) -> Source:
    """The source for `url`: a file path, file://, rtsp(s)://, http(s):// (HLS, MJPEG) URL, or /dev/videoN.

    Raises SourceError when the URL policy refuses it; the HTTP API passes `trusted=False`.
    """
    return AvSource(url, stream, settings, size, trusted=trusted)


def stream_id_for(url: str) -> str:
    """A valid stream id derived from a file name or URL.

    >>> stream_id_for("/data/or-2.mp4"), stream_id_for("rtsp://cam1.local/live")
    ('or-2', 'cam1.local-live')
    """
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme in ("", "file") or len(scheme) == 1:
        path = unquote(parts.path) if scheme == "file" else url
        raw = Path(path.replace("\\", "/")).stem
    else:
        try:
            port = str(parts.port or "")
        except ValueError:  # not a number: let the sanitising below keep what it can
            port = parts.netloc.rpartition(":")[2]
        pieces = [parts.hostname or "", port, *unquote(parts.path).split("/"), parts.query]
        raw = "-".join(p for p in pieces if p)
    ascii_text = unicodedata.normalize("NFKD", raw).encode("ascii", "ignore").decode()
    sid = re.sub(r"[^A-Za-z0-9_.-]+", "-", ascii_text)
    sid = re.sub(r"-{2,}", "-", sid).lstrip("_.-").rstrip("-")
    if not sid:
        sid = "stream-" + hashlib.sha1(url.encode()).hexdigest()[:8]
    if len(sid) > _STREAM_ID_MAX:  # keep distinct long names distinct
        sid = sid[: _STREAM_ID_MAX - 9].rstrip("_.-") + "-" + hashlib.sha1(url.encode()).hexdigest()[:8]
    return sid


class PtsSampler:
    """Pick frames by presentation time: the first frame at or after each 1/fps grid point.

    The grid restarts at the first frame and whenever time jumps backwards (a stream restart).
    Pure logic, so the rule can be tested without video.
    """

    def __init__(self, fps: float) -> None:
        self.step = 1.0 / fps
        self.origin: float | None = None
        self.next: float = 0.0
        self.last: float | None = None

    _EPS = 1e-6  # seconds; a frame this close to a grid point is on it (0.04 * 35 > 1.4 in floats)

    def take(self, t: float) -> bool:
        """Whether the frame at media time `t` (seconds) is sampled."""
        if self.origin is None or (self.last is not None and t < self.last):
            self.origin, self.next = t, t
        self.last = t
        if t < self.next - self._EPS:
            return False
        # The next grid point after t; computed, not accumulated, so a jump forward costs
        # nothing and rounding does not drift.
        k = math.floor((t - self.origin) / self.step + self._EPS) + 1
        self.next = self.origin + k * self.step
        return True


class KeyframePlan:
    """Whether only keyframes need decoding: the decode cost of sampling far below the stream rate.

    "keyframes": always; "all": never; "auto": once the keyframe interval (learnt from the
    media times of keyframe packets, as the demuxer sees them) is no longer than the sampling
    step, so every sampling interval still holds a keyframe; if the GOP grows longer, every frame
    is decoded again. The caller applies a change only at a keyframe packet.

    The interval is the longest of the last `WINDOW` ones, not the latest: encoders put an extra
    keyframe at a scene cut, and one short interval in a GOP longer than the step must not switch
    to keyframes only (the samples until the next regular keyframe would be lost: a 0.92 s MPEG-4
    GOP with a cut keyframe 0.48 s after a regular one left gaps of 1.2 s at 2 fps).
    Pure logic, so the rule can be tested without video.
    """

    SLACK = 1.02  # a 30000/1001 fps stream with a 30-frame GOP still counts as 1 s
    WINDOW = 8  # keyframe intervals remembered

    def __init__(self, mode: Literal["auto", "all", "keyframes"], step: float) -> None:
        self.mode = mode
        self.step = step
        self.last_key: float | None = None
        self.recent: deque[float] = deque(maxlen=self.WINDOW)  # the last intervals, seconds

    @property
    def interval(self) -> float | None:
        """The longest of the recent keyframe intervals (None until one is known)."""
        return max(self.recent) if self.recent else None

    @property
    def keyframes_only(self) -> bool:
        if self.mode != "auto":
            return self.mode == "keyframes"
        return self.interval is not None and self.interval <= self.step * self.SLACK + 1e-6

    def keyframe(self, t: float) -> None:
        """A keyframe at media time `t` (seconds) is next."""
        if self.last_key is not None:
            # Backwards (a restarted stream) or the same time: unknown until the next keyframe.
            if t > self.last_key:
                self.recent.append(t - self.last_key)
            else:
                self.recent.clear()
        self.last_key = t


class CaptureClock:
    """Each frame's capture wall-clock time, never decreasing.

    The sender's clock when an RTSP camera has sent an RTCP sender report, else receive time.
    FFmpeg turns the first report into `start_time_realtime`, documented as the wall-clock time
    at which pts 0 was captured, so a frame at media time t was captured at that plus t. (Its
    RTP demuxer corrects the report by the RTP time between it and the first packet, so a report
    that comes seconds after the first frame, as GStreamer's often does, is exact too; frames
    before it keep their receive time.) A sender clock more than a minute off ours is ignored:
    cameras with unsynchronised clocks are common.
    """

    def __init__(self) -> None:
        self.origin: float | None = None  # sender wall-clock time of media time 0
        self.last = -math.inf
        self._skew_warned = False

    def sender_report(self, start_time_realtime: int | None) -> None:
        if self.origin is None and start_time_realtime is not None:
            self.origin = start_time_realtime / 1e6

    def stamp(self, t: float, received: float) -> float:
        ts = received
        if self.origin is not None:
            sender = self.origin + t
            if abs(sender - received) <= _MAX_CLOCK_SKEW_S:
                ts = sender
            elif not self._skew_warned:
                self._skew_warned = True
                log.warning("sender clock is %.0f s off ours; frames keep their receive time", sender - received)
        self.last = max(self.last, ts)
        return self.last


class AvSource(Source):
    """Decode a file or network stream with PyAV in a worker thread.

    Files are decoded as fast as the consumer takes frames (nothing is dropped), or, with
    `settings.realtime`, at their native rate like live video. Network streams and realtime
    files drop the oldest queued frame when the consumer falls behind (`stats.dropped`).
    """

    def __init__(
        self, url: str, stream: str, settings: IngestSettings, size: tuple[int, int], *, trusted: bool = True
    ) -> None:
        super().__init__(stream)
        width, height = size
        if width < 1 or height < 1:
            raise ValueError(f"size must be a positive (width, height), got {size}")
        self.url = url
        self._loc = check_url(url, settings, trusted=trusted)  # raises UrlRefused (a SourceError)
        self._settings = settings
        self._size = (int(width), int(height))
        self.live = self._loc.is_live or settings.realtime  # drop-oldest rather than block
        self.clock = CaptureClock()  # times frames: the camera's clock where RTSP tells it
        self._stop = threading.Event()
        self._queue: FrameQueue[Frame] | None = None
        self._done: asyncio.Future[None] | None = None  # resolved when the decode thread has exited
        self._started = False

    async def frames(self) -> AsyncIterator[Frame]:
        """Yield sampled frames until the source ends; raise SourceError when it fails.

        Iterate once per source. Leaving the loop (break, cancellation) stops the decode
        thread; `close()` from another task ends the iteration.
        """
        if self._started:
            raise RuntimeError("AvSource.frames() can be iterated only once; create a new source to reopen")
        self._started = True
        if self._stop.is_set():
            return
        loop = asyncio.get_running_loop()
        queue = self._queue = FrameQueue[Frame](self._settings.queue_size, drop_oldest=self.live, loop=loop)
        self._done = loop.create_future()
        thread = threading.Thread(
            target=self._run, args=(queue, loop, self._done), name=f"decode-{self.stream}", daemon=True
        )
        thread.start()
        try:
            async for frame in queue:
                yield frame
        finally:
            await self.close()

    async def close(self) -> None:
        """Stop the decode thread and let it close the container; wait for it briefly."""
        self._stop.set()
        if self._queue is not None:
            self._queue.close()
        if self._done is None or self._done.done():
            return
        try:
            await asyncio.wait_for(asyncio.shield(self._done), _CLOSE_GRACE_S)
        except TimeoutError:
            # Blocked in a network read: FFmpeg's read timeout ends it, then the thread closes
            # the container itself.
            log.warning(
                "%s: decode thread still waiting on %s; it exits within the %g s read timeout",
                self.stream,
                self._loc.display,
                self._settings.read_timeout_s,
            )

    # -- decode thread ----------------------------------------------------------------------

    def _run(self, queue: FrameQueue[Frame], loop: asyncio.AbstractEventLoop, done: asyncio.Future[None]) -> None:
        container = None
        try:
            container, video = _open(self._loc, self._settings)
            if not self._stop.is_set():
                self._decode(container, video, queue)
            queue.finish()
        except SourceError as exc:
            self.stats.error = str(exc)
            queue.fail(exc)
        except Exception as exc:  # a bug or an FFmpeg surprise: still one clear line
            error = SourceError(f"cannot decode {self._loc.display}: {type(exc).__name__}: {_reason(exc)}")
            error.__cause__ = exc
            self.stats.error = str(error)
            log.exception("%s: decode thread failed", self.stream)
            queue.fail(error)
        finally:
            if container is not None:
                container.close()
            with contextlib.suppress(RuntimeError):  # the loop is closed: nobody is waiting
                loop.call_soon_threadsafe(_resolve, done)

    def _decode(
        self, container: av.container.InputContainer, video: av.video.stream.VideoStream, queue: FrameQueue[Frame]
    ) -> None:
        codec = video.codec_context
        width, height = self._size
        sampler = PtsSampler(self._settings.sample_fps)
        plan = KeyframePlan(self._settings.decode, sampler.step)
        decoder = _SparseDecoder(codec, plan, sampler, video.time_base, self._settings.decode_threads)
        rate = video.average_rate or video.guessed_rate
        frame_dt = 1.0 / float(rate) if rate else sampler.step  # to time frames that have no pts
        pacer = _Pacer(sampler.step) if self._settings.realtime and not self._loc.is_live else None
        clock = self.clock
        sender_clock = self._loc.kind == "rtsp"  # RTCP sender reports give the camera's wall clock
        reformatter = VideoReformatter()  # keeps its scaler context from frame to frame
        # Where the picture changed between samples, from every decoded frame.
        jumps = JumpTracker(self._settings.cut_timing)
        started = time.monotonic()
        # Live frames without timestamps are timed by arrival; MJPEG over HTTP has none (FFmpeg
        # makes some up at a guessed 25 fps).
        arrival_timed = self._loc.is_live and container.format.name == "mpjpeg"
        t: float | None = None
        packet_end: float | None = None  # media time where the last demuxed packet ends
        bad_packets = 0
        for packet in self._packets(container, video):
            packet_t = _packet_time(packet, video.time_base)
            if packet_t is not None:
                packet_end = packet_t + frame_dt
            if sender_clock and clock.origin is None:
                clock.sender_report(container.start_time_realtime)
            for todo in decoder.schedule(packet, packet_t):
                began = time.perf_counter()
                try:
                    decoded = decoder.decode(todo)
                    bad_packets = 0
                except av.error.FFmpegError as exc:
                    bad_packets += 1
                    if not self._loc.is_live or bad_packets > _MAX_BAD_PACKETS:
                        at = f" at {t:.2f} s" if t is not None else ""
                        raise SourceError(f"cannot decode {self._loc.display}{at}: {_reason(exc)}") from exc
                    continue  # live streams lose packets now and then; the decoder recovers at the next keyframe
                finally:
                    self.stats.decode_s += time.perf_counter() - began
                for frame in decoded:
                    self.stats.decoded += 1
                    if arrival_timed or (self._loc.is_live and frame.pts is None and frame.dts is None):
                        t = time.monotonic() - started
                    else:
                        t = _frame_time(frame, video.time_base, t, frame_dt)
                    if frame.key_frame and frame.pts is None and frame.dts is None:
                        plan.keyframe(t)  # untimed packets (raw H.264): learn from the frames' estimated times
                    jumps.see_frame(frame, t)
                    if not sampler.take(t):
                        continue
                    if pacer is not None and pacer.wait(t, self._stop):
                        return
                    ts = clock.stamp(t, time.time())
                    began = time.perf_counter()
                    image = reformatter.reformat(frame, width, height, "rgb24", interpolation="BILINEAR")
                    item = Frame(self.stream, self.stats.sampled, t, ts, rgb_array(image), jumps.take())
                    self.stats.decode_s += time.perf_counter() - began
                    if not queue.put(item):
                        return  # closed by the consumer
                    self.stats.sampled += 1
                    self.stats.dropped = queue.dropped
            if self._stop.is_set():
                return
        if self._stop.is_set():  # closed, not ended: none of the end-of-file checks apply
            return
        if self.stats.decoded == 0:
            raise SourceError(f"cannot decode {self._loc.display}: no decodable video frames")
        end = _declared_end(container, video)
        if t is not None and packet_end is not None:
            t = max(t, packet_end - frame_dt)  # keyframe decoding stops before the last packet
        if self._loc.kind == "file" and end is not None and t is not None and t + frame_dt < end - max(1.0, 0.05 * end):
            # FFmpeg decodes a cut-off file up to the cut and reports a clean end (frame
            # threading even swallows the error of the last, partial packet); the header knows
            # better.
            raise SourceError(
                f"cannot decode {self._loc.display}: file is truncated, video ends at {t:.1f} s of {end:.1f} s"
            )

    def _packets(
        self, container: av.container.InputContainer, video: av.video.stream.VideoStream
    ) -> Iterator[av.Packet]:
        """Demux the video stream, turning read errors into SourceError."""
        packets = container.demux(video)
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                packet = next(packets, None)
            except (av.error.FFmpegError, OSError) as exc:
                raise self._read_error(exc, time.monotonic() - started) from exc
            if packet is None:
                return
            yield packet

    def _read_error(self, exc: BaseException, elapsed: float) -> SourceError:
        if self._loc.kind == "v4l2":
            return SourceError(f"lost camera {self._loc.display}: {_reason(exc)}")
        if not self._loc.is_network:
            return SourceError(f"cannot read {self._loc.display}: {_reason(exc)}")
        timeout = self._settings.read_timeout_s
        if isinstance(exc, av.error.ExitError) or elapsed >= timeout:
            return SourceError(f"no data from {self._loc.display} for {timeout:g} s (read timeout)")
        return SourceError(f"lost connection to {self._loc.display}: {_reason(exc)}")


ONE_THREAD_PIXELS = 1920 * 1088  # up to 1080p (coded height 1088) one core decodes in real time with room


def decoder_threads(setting: int | None, width: int, height: int) -> int:
    """FFmpeg threads for a decoder of `width` x `height` pictures (`IngestSettings.decode_threads`):
    the setting when given (0: FFmpeg's choice), else 1 up to 1080p and FFmpeg's choice above (a
    picture size not yet known counts as small)."""
    if setting is not None:
        return setting
    return 1 if width * height <= ONE_THREAD_PIXELS else 0


class _SparseDecoder:
    """Hands the decoder only the packets sampling needs, as `KeyframePlan` decides.

    Keyframes only: the other packets are not even read by the decoder, nor a keyframe sampling
    will not take (keyframes closer together than samples), and the decoder is drained after each
    keyframe, so its frame comes out at once rather than after the next few keyframes (frame
    threads and B-frame reordering hold frames back). "auto" holds the packets that follow a
    keyframe until it knows the keyframe interval (the next keyframe, or a sampling step without
    one): the first GOP is not decoded whole just to learn that keyframes suffice. A live stream's
    first frame waits for that, at most one sampling step.

    Every frame ("auto" with keyframes too far apart): a packet whose frame sampling will not take
    is decoded with `skip_frame` NONREF, so the decoder drops it if nothing references it (B-frames
    that are not references: about half the frames of a typical x264 file, none of an IP-only
    camera's). A frame is not taken when an earlier frame of its sampling interval comes out: one
    that already did (the sampler's state) or one whose packet went to the decoder unskipped
    (frames come out in media-time order). References and the frames sampling takes are decoded
    as before, so the pictures handed on are the same. `stats.decoded` counts what came out.
    """

    def __init__(
        self,
        codec: av.video.codeccontext.VideoCodecContext,
        plan: KeyframePlan,
        sampler: PtsSampler | None = None,
        time_base: Fraction | None = None,
        threads: int | None = 0,
    ) -> None:
        self.codec = codec
        self.threads = threads  # IngestSettings.decode_threads (0: FFmpeg's choice; None: by picture size)
        self.plan = plan
        self.auto = plan.mode == "auto"
        self.sampler = sampler if plan.mode != "all" else None  # "all" decodes every frame whole
        self.time_base = time_base
        self.skipping = False  # skip_frame is NONREF for the packet being decoded
        self.coming: list[float] = []  # media times of packets decoded unskipped whose frame is not out yet
        self.held: list[av.Packet] = []  # "auto": a keyframe and what follows it, interval unknown
        self.hold_until = 0.0
        self.keyed = False  # the demuxer flags keyframe packets, so the others can be left unread
        if plan.keyframes_only:
            codec.skip_frame = "NONKEY"

    def schedule(self, packet: av.Packet, packet_t: float | None) -> list[av.Packet]:
        """The packets to decode now, in order, given the next demuxed one (its media time `packet_t`)."""
        key = packet.is_keyframe
        if key:
            self.keyed = True
            if self.auto and packet_t is not None:  # learn from the demuxer: known before anything is decoded
                self.plan.keyframe(packet_t)
        todo: list[av.Packet] = []
        if self.held:
            if not key and packet_t is not None and packet_t <= self.hold_until:
                self.held.append(packet)
                return []
            # The interval is known now: a keyframe came (within a step: only the held keyframe is
            # needed), or a step passed without one (everything held is).
            todo, self.held = (self.held[:1] if self.plan.keyframes_only else self.held), []
        if key and self.auto and self.plan.interval is None and packet_t is not None:
            self.held, self.hold_until = [packet], packet_t + self.plan.step * KeyframePlan.SLACK + 1e-6
            return todo
        todo.append(packet)
        return todo

    def decode(self, packet: av.Packet) -> list[av.VideoFrame]:
        """Decode one scheduled packet; FFmpegError for a bad one."""
        codec, keyframes_only = self.codec, self.plan.keyframes_only
        if not codec.is_open:
            # Frame threads only help when consecutive frames are decoded; slice threads still
            # split a frame when the encoder made slices. Fixed once the codec opens. One thread
            # decodes in the caller's thread.
            threads = decoder_threads(self.threads, codec.width, codec.height)
            if threads == 1:
                codec.thread_type, codec.thread_count = "NONE", 1
            else:
                codec.thread_type, codec.thread_count = ("SLICE" if keyframes_only else "AUTO"), threads
        if packet.is_keyframe and self.auto:
            # Switch only at a keyframe: the frames after it never reference a skipped one.
            codec.skip_frame = "NONKEY" if keyframes_only else "DEFAULT"
            self.skipping = False
        if keyframes_only and self.keyed and not packet.is_keyframe and packet.size:
            return []  # skip_frame would drop it anyway
        if keyframes_only and packet.size and self._unsampled(_packet_time(packet, self.time_base)):
            return []  # keyframes closer together than samples: one the sampler would not take
        if not keyframes_only and self.auto and packet.size:  # not the end's drain
            t = _packet_time(packet, self.time_base)
            skip = self._unsampled(t)
            if skip != self.skipping:  # frame threads copy it at each packet they take
                codec.skip_frame = "NONREF" if skip else "DEFAULT"
                self.skipping = skip
            if not skip and t is not None:
                self.coming.append(t)
        try:
            frames = packet.decode()
        except av.error.FFmpegError:
            if self.skipping:  # a frame nobody needs (or, draining, a cut-off last one): the end-of-file checks judge
                return []
            raise
        if keyframes_only and packet.is_keyframe:
            frames += codec.decode(None)  # drain: nothing before the next keyframe is decoded
            codec.flush_buffers()
        return frames

    def _unsampled(self, t: float | None) -> bool:
        """Whether sampling cannot take the frame at media time `t`: the sampler, copied, is shown
        the frames known to come out before it (in media-time order); frames still unknown can only
        add an earlier frame to its interval. Not before the first frame is out, nor for a frame
        before the last one out (a restarted stream's), nor without a time."""
        sampler = self.sampler
        if sampler is None or sampler.last is None or t is None or t <= sampler.last:
            return False
        last = sampler.last
        self.coming = [q for q in self.coming if q > last]  # the sampler has seen the others
        trial = copy.copy(sampler)
        for q in sorted(q for q in self.coming if q < t):
            trial.take(q)
        return not trial.take(t)


class _Pacer:
    """Sleep so sampled frames leave at the pace of their timestamps (realtime file playback)."""

    def __init__(self, step: float) -> None:
        self.max_wait = 2 * step + 1.0  # a longer wait is a timestamp jump, not playback
        self.anchor: tuple[float, float] | None = None  # (media time, monotonic time)

    def wait(self, t: float, stop: threading.Event) -> bool:
        """Wait until media time `t` is due; return True if `stop` was set meanwhile."""
        now = time.monotonic()
        if self.anchor is not None:
            delay = (t - self.anchor[0]) - (now - self.anchor[1])
            if 0 < delay <= self.max_wait:
                return stop.wait(delay)
            if delay <= 0 and -delay <= self.max_wait:
                return stop.is_set()  # behind: the queue drops what the consumer cannot take
        self.anchor = (t, now)
        return stop.is_set()


def _frame_time(frame: av.VideoFrame, stream_time_base: Fraction | None, last: float | None, frame_dt: float) -> float:
    """A frame's presentation time in seconds; estimated from the previous one when it has none."""
    stamp = frame.pts if frame.pts is not None else frame.dts
    time_base = frame.time_base or stream_time_base
    if stamp is not None and time_base:
        return float(stamp * time_base)
    return 0.0 if last is None else last + frame_dt


def _packet_time(packet: av.Packet, stream_time_base: Fraction | None) -> float | None:
    stamp = packet.pts if packet.pts is not None else packet.dts
    time_base = packet.time_base or stream_time_base
    return float(stamp * time_base) if stamp is not None and time_base else None


def _declared_end(container: av.container.InputContainer, video: av.video.stream.VideoStream) -> float | None:
    """When the video stream should end according to the file's header, in seconds, if it says."""
    if video.duration and video.time_base:
        return float(((video.start_time or 0) + video.duration) * video.time_base)
    if container.duration and len(container.streams) == 1:  # other streams may run longer
        return ((container.start_time or 0) + container.duration) / av.time_base
    return None


def _resolve(done: asyncio.Future[None]) -> None:
    if not done.done():
        done.set_result(None)
