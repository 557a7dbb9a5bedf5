"""PyAV source for video files and rtsp://, rtsps://, http(s):// streams.

Decoding runs in a worker thread; frames are sampled by presentation time, resized and
converted to RGB by FFmpeg's scaler, and handed to the event loop through a `FrameQueue`.

    source = make_source("cam.mp4", stream_id_for("cam.mp4"), IngestSettings(), (224, 224))
    async for frame in source.frames():
        ...
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import math
import os
import re
import threading
import time
import unicodedata
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

import av
import av.container
import av.error
import av.video.stream

from dinostream.errors import SourceError
from dinostream.settings import IngestSettings
from ingest.frame_queue import FrameQueue
from ingest.source import Frame, Source

log = logging.getLogger(__name__)

NETWORK_SCHEMES = ("rtsp", "rtsps", "http", "https")
_CLOSE_GRACE_S = 2.0  # close() waits this long for a decode thread stuck in network I/O
_MAX_BAD_PACKETS = 25  # consecutive undecodable packets a live stream may have before it fails
_STREAM_ID_MAX = 64


@dataclass(frozen=True)
class _Location:
    """Where a source is: what `av.open` gets, and how to name it in messages."""

    target: str  # a local path or a URL
    display: str  # for messages: the path, or the URL without its password
    scheme: str  # "file" or one of NETWORK_SCHEMES

    @property
    def is_network(self) -> bool:
        return self.scheme != "file"


def _locate(url: str) -> _Location:
    """Parse a file path, file:// URL or network URL; raise SourceError for anything else."""
    if not url or not url.strip():
        raise SourceError("empty source: give a video file path or an rtsp://, rtsps://, http(s):// URL")
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme in ("", "file") or len(scheme) == 1:  # len 1: a Windows drive letter
        if scheme == "file":
            if parts.netloc not in ("", "localhost"):
                raise SourceError(f"unsupported file URL {url}: only local files (file:///path) can be read")
            path = unquote(parts.path)
        else:
            path = url
        return _Location(target=path, display=path, scheme="file")
    display = _redact(url)
    if scheme not in NETWORK_SCHEMES:
        raise SourceError(
            f"unsupported source {display}: use a video file path or an rtsp://, rtsps://, http:// or https:// URL"
        )
    if not parts.hostname:
        raise SourceError(f"invalid source URL {display}: it names no host")
    return _Location(target=url, display=display, scheme=scheme)


def _redact(url: str) -> str:
    """The URL with its password replaced, fit for logs and error messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{parts.username}:***@{host}"))


def _reason(exc: BaseException) -> str:
    """FFmpeg's one-line reason for an error, with its last log line when PyAV captured one."""
    if isinstance(exc, av.error.FFmpegError):
        reason = exc.strerror or type(exc).__name__
        entry: Any = exc.log  # (level, name, message) while PyAV logging is on; the stub says otherwise
        if isinstance(entry, tuple) and len(entry) == 3 and str(entry[2]).strip():
            reason = f"{reason} ({str(entry[2]).strip()})"
        return reason
    return str(exc) or type(exc).__name__


def _check_file(path: str) -> None:
    """Raise SourceError when `path` is missing, a directory, or unreadable."""
    if not os.path.exists(path):
        raise SourceError(f"video file not found: {path}")
    if os.path.isdir(path):
        raise SourceError(f"cannot decode {path}: it is a directory, not a video file")
    if not os.access(path, os.R_OK):
        raise SourceError(f"cannot read {path}: permission denied")


def _open(loc: _Location, settings: IngestSettings) -> tuple[av.container.InputContainer, av.video.stream.VideoStream]:
    """Open a container and find its video stream, with the open/read timeouts; raise SourceError."""
    if not loc.is_network:
        _check_file(loc.target)
    options: dict[str, str] = {"rtsp_transport": settings.rtsp_transport} if loc.scheme in ("rtsp", "rtsps") else {}
    started = time.monotonic()
    try:
        container = av.open(
            loc.target,
            timeout=(settings.open_timeout_s, settings.read_timeout_s),
            options=options,
            metadata_errors="replace",
        )
    except Exception as exc:  # FFmpegError mostly; anything else still becomes one clear line
        raise _open_error(loc, exc, time.monotonic() - started, settings.open_timeout_s) from exc
    if not container.streams.video:
        container.close()
        raise SourceError(f"cannot decode {loc.display}: no video stream")
    return container, container.streams.video[0]


def _open_error(loc: _Location, exc: BaseException, elapsed: float, timeout: float) -> SourceError:
    if loc.is_network:
        # FFmpeg reports an expired timeout as ExitError, InvalidDataError or OSError depending
        # on the protocol, so the clock is the reliable witness.
        if isinstance(exc, av.error.ExitError) or elapsed >= timeout:
            return SourceError(f"cannot connect to {loc.display}: no response within {timeout:g} s (open timeout)")
        return SourceError(f"cannot connect to {loc.display}: {_reason(exc)}")
    if isinstance(exc, FileNotFoundError):
        return SourceError(f"video file not found: {loc.display}")
    if isinstance(exc, PermissionError):
        return SourceError(f"cannot read {loc.display}: permission denied")
    return SourceError(f"cannot decode {loc.display}: {_reason(exc)}")


@dataclass(frozen=True)
class VideoInfo:
    """What a source's header says about its video; `size` is None when it does not say
    (some live streams only tell by decoding)."""

    size: tuple[int, int] | None  # (width, height)
    sample_aspect_ratio: float = 1.0


def probe_source(url: str, settings: IngestSettings | None = None) -> VideoInfo:
    """Open a source the way decoding does (same timeouts and errors), read its video header, close.

    Raises SourceError naming the problem. Nothing is decoded.
    """
    container, video = _open(_locate(url), settings or IngestSettings())
    try:
        ctx = video.codec_context
        width, height = int(video.width or ctx.width or 0), int(video.height or ctx.height or 0)
        sar = video.sample_aspect_ratio or ctx.sample_aspect_ratio
    finally:
        container.close()
    size = (width, height) if width > 0 and height > 0 else None
    return VideoInfo(size, float(sar) if sar else 1.0)


def check_source(url: str, settings: IngestSettings | None = None, *, connect: bool = False) -> VideoInfo | None:
    """Validate a source before anything starts; raise SourceError naming the problem.

    Files must exist, be readable and hold a video stream (the header is probed, nothing is
    decoded); URLs must use a supported scheme and name a host. With `connect`, a network
    source is also opened (within the open timeout) and must offer a video stream. Returns what
    the probe found, or None when nothing was opened.
    """
    if _locate(url).is_network and not connect:
        return None
    return probe_source(url, settings)


def make_source(url: str, stream: str, settings: IngestSettings, size: tuple[int, int]) -> Source:
    """The source for `url` (a file path, file://, rtsp://, rtsps://, http:// or https:// URL)."""
    return AvSource(url, stream, settings, size)


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


class AvSource(Source):
    """Decode a file or network stream with PyAV in a worker thread.

    Files are decoded as fast as the consumer takes frames (nothing is dropped), or, with
    `settings.realtime`, at their native rate like live video. Network streams and realtime
    files drop the oldest queued frame when the consumer falls behind (`stats.dropped`).
    """

    def __init__(self, url: str, stream: str, settings: IngestSettings, size: tuple[int, int]) -> None:
        super().__init__(stream)
        width, height = size
        if width < 1 or height < 1:
            raise ValueError(f"size must be a positive (width, height), got {size}")
        self.url = url
        self._loc = _locate(url)
        self._settings = settings
        self._size = (int(width), int(height))
        self.live = self._loc.is_network or settings.realtime  # drop-oldest rather than block
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
        video.thread_type = "AUTO"  # frame and slice threads; must be set before the codec opens
        width, height = self._size
        sampler = PtsSampler(self._settings.sample_fps)
        rate = video.average_rate or video.guessed_rate
        frame_dt = 1.0 / float(rate) if rate else sampler.step  # to time frames that have no pts
        pacer = _Pacer(sampler.step) if self._settings.realtime and not self._loc.is_network else None
        t: float | None = None
        bad_packets = 0
        for packet in self._packets(container, video):
            try:
                decoded = packet.decode()
                bad_packets = 0
            except av.error.FFmpegError as exc:
                bad_packets += 1
                if not self._loc.is_network or bad_packets > _MAX_BAD_PACKETS:
                    at = f" at {t:.2f} s" if t is not None else ""
                    raise SourceError(f"cannot decode {self._loc.display}{at}: {_reason(exc)}") from exc
                continue  # live streams lose packets now and then; the decoder recovers at the next keyframe
            for frame in decoded:
                self.stats.decoded += 1
                t = _frame_time(frame, video.time_base, t, frame_dt)
                if not sampler.take(t):
                    continue
                if pacer is not None and pacer.wait(t, self._stop):
                    return
                ts = time.time()
                image = frame.reformat(width=width, height=height, format="rgb24", interpolation="BILINEAR")
                item = Frame(self.stream, self.stats.sampled, t, ts, image.to_ndarray())
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
        if not self._loc.is_network and end is not None and t is not None and t + frame_dt < end - max(1.0, 0.05 * end):
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
        if not self._loc.is_network:
            return SourceError(f"cannot read {self._loc.display}: {_reason(exc)}")
        timeout = self._settings.read_timeout_s
        if isinstance(exc, av.error.ExitError) or elapsed >= timeout:
            return SourceError(f"no data from {self._loc.display} for {timeout:g} s (read timeout)")
        return SourceError(f"lost connection to {self._loc.display}: {_reason(exc)}")


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
