"""A `Source` fed by a received WebRTC video track (aiortc), for WHIP publishers.

aiortc decodes the track in its own thread; this source reads every decoded frame as soon as it
arrives (an unread aiortc track queues frames without bound, aiortc #554), samples by media
time, resizes with FFmpeg's scaler in a worker thread, and hands frames over through a
bounded drop-oldest `FrameQueue`.

Timestamps: `pts` is the RTP media time aiortc gives the frame (90 kHz clock, from 0 at the
first packet), made monotonic. `ts` is the receive wall-clock time: aiortc 1.16 keeps only the
NTP half of an RTCP sender report (`remote-outbound-rtp` stats), not its RTP timestamp, so the
sender's NTP/RTP mapping is not available to turn media time into capture time.

    source = WhipSource("cam1", track, IngestSettings(), (224, 224))
    source.start()              # begins draining the track at once
    async for frame in source.frames():
        ...
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from dinostream.core.errors import SourceError
from dinostream.core.settings import IngestSettings
from dinostream.ingest.av_source import PtsSampler
from dinostream.ingest.frame_queue import FrameQueue
from dinostream.ingest.jumps import JumpTracker
from dinostream.ingest.resize import rgb_array
from dinostream.ingest.source import Frame, Source

log = logging.getLogger(__name__)

Size = tuple[int, int]
# The resize target: a fixed (width, height), or chosen from the stream id and the first
# frame's (width, height) (the service passes the model's input size for that shape).
SizeSpec = Size | Callable[[str, Size], Size]


class MediaClock:
    """Monotonic media time from a track's timestamps: a jump backwards (a publisher restarting
    its encoder) continues one frame after the last time instead. Pure logic."""

    def __init__(self, frame_dt: float = 1 / 30) -> None:
        self.frame_dt = frame_dt
        self.offset = 0.0
        self.last: float | None = None

    def time(self, raw: float) -> float:
        t = raw + self.offset
        if self.last is not None and t <= self.last:
            self.offset += self.last + self.frame_dt - t
            t = self.last + self.frame_dt
        self.last = t
        return t


class WhipSource(Source):
    """Frames of one received aiortc video track, sampled at `settings.sample_fps` by media time.

    Live: when the consumer falls behind, the oldest queued frame is dropped (`stats.dropped`).
    The frame size is fixed at the first frame (a publisher that changes resolution mid-stream,
    as WebRTC does under load, is scaled to the same size, so the patch grid stays the same).
    `frames()` ends cleanly when the track ends or the source is stopped.
    """

    def __init__(self, stream: str, track: MediaStreamTrack, settings: IngestSettings, size: SizeSpec) -> None:
        super().__init__(stream)
        if track.kind != "video":
            raise ValueError(f"WhipSource reads video; got a track of kind {track.kind!r}")
        if not callable(size):
            size = _check_size(size)
        self.track = track
        self._settings = settings
        self._size_spec: SizeSpec = size
        self.size: Size | None = None  # the resize target, known at the first frame
        self.source_size: Size | None = None  # the first frame's (width, height)
        self._queue = FrameQueue[Frame](settings.queue_size, drop_oldest=True)
        self._reader: asyncio.Task[None] | None = None
        self._iterated = False
        self.receiving = asyncio.Event()  # set at the first decoded frame
        self.ended = asyncio.Event()  # set when reading has stopped (track ended, stopped, or failed)

    def start(self) -> None:
        """Start draining the track (call at once: an unread track grows memory)."""
        if self._reader is None:
            self._reader = asyncio.create_task(self._read(), name=f"whip-read-{self.stream}")

    @property
    def running(self) -> bool:
        return self._reader is not None and not self._reader.done()

    async def frames(self) -> AsyncIterator[Frame]:
        """Yield sampled frames until the track ends; raise SourceError if reading failed.

        Iterate once. Leaving the loop stops reading; `close()` from another task ends it.
        """
        if self._iterated:
            raise RuntimeError("WhipSource.frames() can be iterated only once")
        self._iterated = True
        self.start()
        try:
            async for frame in self._queue:
                yield frame
        finally:
            await self.close()

    async def stop(self) -> None:
        """Stop reading; frames already queued are still yielded, then `frames()` ends."""
        reader = self._reader
        if reader is not None and not reader.done() and reader is not asyncio.current_task():
            reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)
        self._queue.finish()
        self.ended.set()

    async def close(self) -> None:
        """Stop reading and discard queued frames; `frames()` ends at once."""
        await self.stop()
        self._queue.close()

    async def _read(self) -> None:
        sampler = PtsSampler(self._settings.sample_fps)
        # Where the picture changed between samples, from every received frame.
        jumps = JumpTracker(self._settings.cut_timing)
        clock = MediaClock()
        first_wall: float | None = None
        try:
            while True:
                try:
                    vf: Any = await self.track.recv()
                except MediaStreamError:
                    break  # the track ended: the publisher left or the connection closed
                received = time.time()
                self.stats.decoded += 1
                self.receiving.set()
                if vf.pts is not None and vf.time_base:
                    raw = float(vf.pts * vf.time_base)
                else:  # no media time: the receive clock stands in
                    first_wall = received if first_wall is None else first_wall
                    raw = received - first_wall
                t = clock.time(raw)
                jumps.see_frame(vf, t)
                if not sampler.take(t):
                    continue
                size = self.size or self._first_size(int(vf.width), int(vf.height))
                image = await asyncio.to_thread(_to_rgb, vf, size)
                if not self._queue.put(Frame(self.stream, self.stats.sampled, t, received, image, jumps.take())):
                    break  # closed by the consumer
                self.stats.sampled += 1
                self.stats.dropped = self._queue.dropped
            self._queue.finish()
        except asyncio.CancelledError:
            self._queue.finish()
            raise
        except Exception as exc:  # one clear line for the consumer; the traceback goes to the log
            error = SourceError(f"cannot read WebRTC stream {self.stream}: {type(exc).__name__}: {exc}")
            self.stats.error = str(error)
            log.exception("%s: reading the WebRTC track failed", self.stream)
            self._queue.fail(error)
        finally:
            self.ended.set()

    def _first_size(self, width: int, height: int) -> Size:
        self.source_size = (width, height)
        spec = self._size_spec
        self.size = _check_size(spec(self.stream, (width, height)) if callable(spec) else spec)
        log.info("stream %s: WebRTC video %dx%d, frames resized to %dx%d", self.stream, width, height, *self.size)
        return self.size


def _check_size(size: Any) -> Size:
    try:
        width, height = (int(v) for v in size)
    except (TypeError, ValueError):
        raise ValueError(f"size must be a (width, height) pair, got {size!r}") from None
    if width < 1 or height < 1:
        raise ValueError(f"size must be a positive (width, height), got {size!r}")
    return (width, height)


def _to_rgb(frame: Any, size: Size) -> Any:
    """Resize and convert with FFmpeg's scaler, as the file and RTSP decoder does."""
    width, height = size
    return rgb_array(frame.reformat(width=width, height=height, format="rgb24", interpolation="BILINEAR"))
