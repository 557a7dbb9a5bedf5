"""Keep one stream alive: reopen its source after errors, ends and stalls, with backoff.

A `StreamSupervisor` owns one stream. It opens a source, hands every frame to an async sink,
and when a live source fails, ends or stalls (no frame for `stall_timeout_s`), it waits a
jittered exponential backoff and opens a fresh source. A file (``live=False``) that ends is
ENDED; a file that fails (corrupt or truncated media) is FAILED with the decoder's reason and
not retried, since replaying it would repeat frames.

The decisions live in `StreamTracker`, a pure state machine driven with explicit calls and an
injectable clock; `StreamSupervisor` is the asyncio shell around it.

    sup = StreamSupervisor("cam1", lambda: make_source(url, "cam1", settings, (224, 224)),
                           batcher.put, settings, live=True)
    task = asyncio.create_task(sup.run())
    sup.health()        # StreamHealth(stream="cam1", state=StreamState.LIVE, ...)
    await sup.stop()    # closes the source; run() returns with state STOPPED

State machine::

    CONNECTING --first frame--> LIVE --error / end (live) / no frame--> [STALLED] --> BACKOFF
    BACKOFF --delay--> CONNECTING        (reconnects += 1; FAILED once max_reconnects is spent)
    file: end --> ENDED, error --> FAILED;   stop() from anywhere --> STOPPED
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, replace
from enum import StrEnum

from dinostream.core.errors import SourceError
from dinostream.core.settings import IngestSettings
from dinostream.ingest.backoff import Backoff
from dinostream.ingest.source import Frame, Source, SourceStats

log = logging.getLogger(__name__)

_CLOSE_GRACE_S = 3.0  # after close(), how long a source's iteration may take to end before it is cancelled
_SINK_POLL_S = 1.0  # while the sink holds a frame, the watchdog looks again this often


class StreamState(StrEnum):
    CONNECTING = "connecting"  # opening a source, no frame from it yet
    LIVE = "live"  # frames are flowing
    STALLED = "stalled"  # no frame for stall_timeout_s: the source is being closed
    BACKOFF = "backoff"  # waiting before the next reconnect
    FAILED = "failed"  # given up: a broken file, max_reconnects spent, or the sink failed
    ENDED = "ended"  # a file reached its end
    STOPPED = "stopped"  # stop() was called

    @property
    def final(self) -> bool:
        return self in (StreamState.FAILED, StreamState.ENDED, StreamState.STOPPED)


@dataclass(frozen=True)
class StreamHealth:
    """A stream's health, JSON-friendly through `dataclasses.asdict` (the state is a str enum)."""

    stream: str
    state: StreamState
    last_error: str | None  # the most recent failure, kept after the stream recovers
    frames_in: int  # frames decoded, over every source opened
    frames_out: int  # frames sampled and handed to the sink
    drops: int  # frames the sources' queues dropped because the sink fell behind
    reconnects: int  # sources opened after the first
    decode_s: float  # seconds spent decoding and scaling, over every source (latency: decode_s / frames_in)
    since: float  # wall-clock time (unix seconds) of the last state change
    last_frame_ts: float | None  # capture time of the last frame handed on


class StreamTracker:
    """The supervisor's decisions, without I/O: states, counters, backoff, renumbering, watchdog.

    Call `connecting()` before each open, `opened(stats)` with the new source's counters,
    `frame()` for each frame (it returns the renumbered frame to hand on), `sink_done()` after
    the sink took it, and one of `ended()`, `failed()`, `stalled()` when the source stops; they
    return the next state (BACKOFF with `delay` set, or a final state). `stall_deadline()` is
    when the watchdog fires (None while the sink holds a frame: a slow sink is not a stalled
    source).
    """

    def __init__(
        self,
        stream: str,
        settings: IngestSettings,
        *,
        live: bool,
        rng: random.Random | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        first_seq: int = 0,
    ) -> None:
        self.stream = stream
        self.settings = settings
        self.live = live
        self.first_seq = first_seq
        self.clock = clock
        self.wall_clock = wall_clock
        self.backoff = Backoff(
            settings.backoff_initial_s,
            settings.backoff_max_s,
            settings.backoff_multiplier,
            settings.backoff_jitter,
            rng,
        )
        self.state = StreamState.CONNECTING
        self.since = wall_clock()
        self.last_error: str | None = None
        self.delay = 0.0  # the current backoff wait (state BACKOFF)
        self.reconnects = 0
        self.frames_out = 0
        self._attempts = 0  # sources opened (or tried)
        self._closed_in = 0  # frames decoded by sources already done with
        self._closed_drops = 0
        self._closed_decode_s = 0.0
        self._stats: SourceStats | None = None  # the current source's counters
        self._live_since: float | None = None  # monotonic: when the current source went live
        self._waiting_since: float | None = None  # monotonic: waiting for the source's next frame
        self._step = 1.0 / settings.sample_fps  # pts gap put between two sources' frames
        self._pts_offset = 0.0
        self._last_pts: float | None = None
        self._last_ts: float | None = None

    # -- transitions ------------------------------------------------------------------------

    def _set(self, state: StreamState) -> StreamState:
        if state != self.state:
            self.state = state
            self.since = self.wall_clock()
        return state

    def connecting(self) -> None:
        """A source is about to be opened."""
        if self.state.final:
            raise RuntimeError(f"stream {self.stream} is {self.state}: it cannot connect again")
        if self._attempts:
            self.reconnects += 1
        self._attempts += 1
        self._live_since = None
        self._waiting_since = self.clock()
        self._set(StreamState.CONNECTING)

    def opened(self, stats: SourceStats) -> None:
        """The new source's counters (read live, so frames_in and drops include it)."""
        self._stats = stats

    def frame(self, frame: Frame) -> Frame:
        """Count a frame and return it renumbered: seq and pts continue across reconnects, ts never
        goes backwards."""
        now = self.clock()
        if self.state == StreamState.CONNECTING:
            self._set(StreamState.LIVE)
            self._live_since = now
        elif self._live_since is not None and now - self._live_since >= self.settings.backoff_reset_s:
            self.backoff.reset()  # healthy for a while: the next outage starts from the initial wait
        self._waiting_since = None
        pts = frame.pts + self._pts_offset
        if self._last_pts is not None and pts <= self._last_pts:
            # A new source (or a camera restart) begins its media time again: continue after the last frame.
            self._pts_offset = self._last_pts + self._step - frame.pts
            pts = self._last_pts + self._step
        ts = frame.ts if self._last_ts is None else max(frame.ts, self._last_ts)
        jump = frame.jump  # on the source's media clock, like its pts: moved with it
        if jump is not None and self._pts_offset:
            jump = replace(jump, t=jump.t + self._pts_offset)
        out = replace(frame, stream=self.stream, seq=self.first_seq + self.frames_out, pts=pts, ts=ts, jump=jump)
        self._last_pts, self._last_ts = pts, ts
        self.frames_out += 1
        return out

    def sink_done(self) -> None:
        """The sink took the last frame; the watchdog waits for the source again."""
        self._waiting_since = self.clock()

    def stall_deadline(self) -> float | None:
        """Monotonic time at which the source counts as stalled; None while the sink holds a frame."""
        if self._waiting_since is None or self.state.final:
            return None
        timeout = self.settings.stall_timeout_s
        if self.state == StreamState.CONNECTING:  # the source's own open timeout goes first
            timeout += self.settings.open_timeout_s
        return self._waiting_since + timeout

    def ended(self) -> StreamState:
        """The source ended by itself: a file is done; a live stream reconnects."""
        self._source_done()
        if not self.live:
            return self._set(StreamState.ENDED)
        return self._retry("stream ended" if self.state == StreamState.LIVE else "stream ended before any frame")

    def failed(self, error: str) -> StreamState:
        """The source failed (open, read or decode): a file is FAILED, a live stream backs off."""
        self._source_done()
        if not self.live:
            self.last_error = error
            return self._set(StreamState.FAILED)
        return self._retry(error)

    def stalled(self) -> StreamState:
        """The watchdog fired; the caller closes the source, then calls `after_stall()`."""
        waited = self.settings.stall_timeout_s
        if self.state == StreamState.CONNECTING:
            waited += self.settings.open_timeout_s
        self.last_error = f"no frame for {waited:g} s (stall timeout)"
        return self._set(StreamState.STALLED)

    def after_stall(self) -> StreamState:
        """The stalled source is closed: back off (a file that stalls is FAILED)."""
        error = self.last_error or "stalled"
        self._source_done()
        if not self.live:
            return self._set(StreamState.FAILED)
        return self._retry(error)

    def fail(self, error: str) -> StreamState:
        """Give up for good (the sink failed)."""
        self._source_done()
        self.last_error = error
        return self._set(StreamState.FAILED)

    def stop(self) -> StreamState:
        self._source_done()
        if self.state in (StreamState.FAILED, StreamState.ENDED):
            return self.state
        return self._set(StreamState.STOPPED)

    def _retry(self, error: str) -> StreamState:
        self.last_error = error
        limit = self.settings.max_reconnects
        if limit is not None and self.backoff.attempts >= limit:
            self.last_error = f"{error}; gave up after {limit} reconnects"
            return self._set(StreamState.FAILED)
        self.delay = self.backoff.next_delay()
        return self._set(StreamState.BACKOFF)

    def _source_done(self) -> None:
        if self._stats is not None:
            self._closed_in += self._stats.decoded
            self._closed_drops += self._stats.dropped
            self._closed_decode_s += self._stats.decode_s
            self._stats = None
        self._waiting_since = None
        if self._live_since is not None and self.clock() - self._live_since >= self.settings.backoff_reset_s:
            self.backoff.reset()
        self._live_since = None

    # -- reporting --------------------------------------------------------------------------

    def health(self) -> StreamHealth:
        stats = self._stats
        return StreamHealth(
            stream=self.stream,
            state=self.state,
            last_error=self.last_error,
            frames_in=self._closed_in + (stats.decoded if stats else 0),
            frames_out=self.frames_out,
            drops=self._closed_drops + (stats.dropped if stats else 0),
            reconnects=self.reconnects,
            decode_s=round(self._closed_decode_s + (stats.decode_s if stats else 0.0), 6),
            since=self.since,
            last_frame_ts=self._last_ts,
        )


class StreamSupervisor:
    """Run one stream's sources one after another until `stop()`, a file's end, or a permanent failure.

    `open_source` makes a fresh `Source` for each (re)connect; `sink` is awaited for every frame
    and may apply backpressure (the model's per-stream queue is bounded): the watchdog does not
    count the time a frame spends in the sink. Run each supervisor as its own task, so a slow
    sink or a dead camera holds back only its own stream. A source's unexpected exception is
    logged with the stream id and handled like a source error; only a failing sink ends `run()`
    with that exception (state FAILED), since its frames can no longer go anywhere. `run()` runs
    once: to bring back a FAILED, ENDED or STOPPED stream, make a new supervisor.
    """

    def __init__(
        self,
        stream: str,
        open_source: Callable[[], Source],
        sink: Callable[[Frame], Awaitable[None]],
        settings: IngestSettings,
        *,
        live: bool,
        rng: random.Random | None = None,
        first_seq: int = 0,
    ) -> None:
        """`first_seq`: the number of the first frame handed on (`dinostream.ingest.source.session_first_seq()`
        keeps numbers unique across sessions); then one more per frame, across reconnects."""
        self.stream = stream
        self.open_source = open_source
        self.sink = sink
        self.settings = settings
        self.tracker = StreamTracker(stream, settings, live=live, rng=rng, first_seq=first_seq)
        self._source: Source | None = None
        self._stopping = asyncio.Event()
        self._running = False

    def health(self) -> StreamHealth:
        return self.tracker.health()

    @property
    def state(self) -> StreamState:
        return self.tracker.state

    async def stop(self) -> None:
        """Stop the stream: close the current source; `run()` returns soon after with STOPPED."""
        self._stopping.set()
        source = self._source
        if source is not None:
            await _close(source, self.stream)
        if not self._running and not self.tracker.state.final:
            self.tracker.stop()

    async def run(self) -> None:
        """Supervise until `stop()`, a file's end (ENDED), or a permanent failure (FAILED)."""
        if self._running:
            raise RuntimeError(f"stream {self.stream} is already running")
        self._running = True
        try:
            while not self._stopping.is_set():
                state = await self._attempt()
                if state.final or self._stopping.is_set():
                    break
                if state == StreamState.BACKOFF:
                    error, delay = self.tracker.last_error, self.tracker.delay
                    log.warning("stream %s: %s; reconnecting in %.1f s", self.stream, error, delay)
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._stopping.wait(), self.tracker.delay)
            if self.tracker.state == StreamState.FAILED:
                log.error("stream %s failed: %s", self.stream, self.tracker.last_error)
            elif self.tracker.state == StreamState.ENDED:
                log.info("stream %s ended after %d frames", self.stream, self.tracker.frames_out)
        finally:
            if self._source is not None:  # cancelled: do not leave a decode thread behind
                with contextlib.suppress(Exception):
                    await asyncio.shield(_close(self._source, self.stream))
                self._source = None
            if not self.tracker.state.final:
                self.tracker.stop()
            self._running = False

    async def _attempt(self) -> StreamState:
        """Open one source and pump it until it ends, fails or stalls; return the next state."""
        tracker = self.tracker
        tracker.connecting()
        try:
            source = self.open_source()
        except SourceError as exc:
            return tracker.failed(str(exc))
        except Exception as exc:
            log.exception("stream %s: opening the source raised", self.stream)
            return tracker.failed(f"cannot open source: {type(exc).__name__}: {exc}")
        self._source = source
        tracker.opened(source.stats)
        sink_error: list[BaseException] = []
        pump = asyncio.create_task(self._pump(source, sink_error), name=f"pump-{self.stream}")
        try:
            stalled = await self._watch(pump)
            if stalled:
                log.warning("stream %s: %s; closing the source", self.stream, tracker.last_error)
                await _close(source, self.stream)
                await _finish(pump, self.stream)
                return tracker.after_stall()
            if self._stopping.is_set():
                await _finish(pump, self.stream)
                return tracker.stop()
            if sink_error:
                tracker.fail(f"sink failed: {type(sink_error[0]).__name__}: {sink_error[0]}")
                log.error("stream %s: %s; stopping the stream", self.stream, tracker.last_error)
                raise sink_error[0]
            if pump.cancelled():  # the sink or the source cancelled it: an error like any other
                return tracker.failed("source task was cancelled")
            error = pump.exception()
            if error is None:
                return tracker.ended()
            if isinstance(error, SourceError):
                return tracker.failed(str(error))
            log.error("stream %s: source raised unexpectedly", self.stream, exc_info=error)
            return tracker.failed(f"source error: {type(error).__name__}: {error}")
        finally:
            if not pump.done():
                pump.cancel()
                await asyncio.wait({pump})  # our own cancellation still propagates
            if pump.done() and not pump.cancelled():
                pump.exception()  # retrieved (a stalled source's late error is of no interest)
            self._source = None
            await _close(source, self.stream)

    async def _watch(self, pump: asyncio.Task[None]) -> bool:
        """Wait for the pump to finish or for stop(); return True when the watchdog fired first."""
        stopping = asyncio.ensure_future(self._stopping.wait())
        try:
            while not pump.done() and not self._stopping.is_set():
                deadline = self.tracker.stall_deadline()
                if deadline is None:  # the sink holds a frame: check again soon
                    timeout = min(self.settings.stall_timeout_s, _SINK_POLL_S)
                else:
                    timeout = deadline - self.tracker.clock()
                    if timeout <= 0:
                        self.tracker.stalled()
                        return True
                await asyncio.wait({pump, stopping}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
            return False
        finally:
            stopping.cancel()

    async def _pump(self, source: Source, sink_error: list[BaseException]) -> None:
        frames: AsyncIterator[Frame] = source.frames()
        try:
            async for frame in frames:
                out = self.tracker.frame(frame)
                try:
                    await self.sink(out)
                except Exception as exc:
                    sink_error.append(exc)
                    return
                self.tracker.sink_done()
        finally:
            aclose = getattr(frames, "aclose", None)
            if aclose is not None:
                with contextlib.suppress(Exception):
                    await aclose()


async def _close(source: Source, stream: str) -> None:
    """Close a source; a failing close() is logged, never raised."""
    try:
        await source.close()
    except Exception:
        log.exception("stream %s: closing the source raised", stream)


async def _finish(task: asyncio.Task[None], stream: str) -> None:
    """Give a closed source's pump a moment to end by itself, then cancel it."""
    done, _ = await asyncio.wait({task}, timeout=_CLOSE_GRACE_S)
    if not done:
        log.warning("stream %s: source did not end after close(); cancelling it", stream)
        task.cancel()
        await asyncio.wait({task})
