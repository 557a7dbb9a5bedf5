"""The supervisor's decisions (StreamTracker, with a fake clock) and its asyncio shell (fake
sources that end, fail, raise or hang; real short timeouts, no timing assertions)."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import random
import time

import numpy as np
import pytest

from dinostream.core.errors import SourceError
from dinostream.core.records import Jump
from dinostream.core.settings import IngestSettings
from dinostream.ingest.source import Frame, Source, SourceStats, session_first_seq
from dinostream.ingest.stream_supervisor import StreamHealth, StreamState, StreamSupervisor, StreamTracker

pytestmark = pytest.mark.timeout(30)

_IMAGE = np.zeros((4, 4, 3), np.uint8)


class FakeClock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t

    def advance(self, dt: float) -> None:
        self.t += dt


def _frame(seq: int, pts: float, ts: float = 0.0) -> Frame:
    return Frame("raw", seq, pts, ts, _IMAGE)


def _tracker(live: bool = True, **settings) -> tuple[StreamTracker, FakeClock]:
    clock = FakeClock()
    tracker = StreamTracker(
        "cam", IngestSettings(**settings), live=live, rng=random.Random(0), clock=clock, wall_clock=clock
    )
    return tracker, clock


# -- StreamTracker: the pure state machine ----------------------------------------------------


def test_connecting_goes_live_on_first_frame_and_counts():
    tracker, clock = _tracker()
    tracker.connecting()
    stats = SourceStats(decoded=3, dropped=1)
    tracker.opened(stats)
    assert tracker.health().state == StreamState.CONNECTING
    clock.advance(2)
    out = tracker.frame(_frame(7, 5.0, ts=123.0))
    health = tracker.health()
    assert health.state == StreamState.LIVE
    assert health.since == clock.t
    assert (health.frames_in, health.frames_out, health.drops, health.reconnects) == (3, 1, 1, 0)
    assert (out.stream, out.seq, out.pts, out.ts) == ("cam", 0, 5.0, 123.0)  # the first source keeps its pts
    assert health.last_frame_ts == 123.0


def test_live_error_backs_off_then_reconnect_is_counted():
    tracker, _ = _tracker(backoff_initial_s=1, backoff_max_s=30, backoff_jitter="decorrelated")
    tracker.connecting()
    tracker.frame(_frame(0, 0.0))
    assert tracker.failed("lost connection to rtsp://cam: Connection reset") == StreamState.BACKOFF
    assert 1.0 <= tracker.delay <= 2.0
    assert tracker.health().last_error == "lost connection to rtsp://cam: Connection reset"
    tracker.connecting()
    health = tracker.health()
    assert health.state == StreamState.CONNECTING
    assert health.reconnects == 1
    assert health.last_error is not None  # kept until something else goes wrong


def test_live_end_of_stream_backs_off():
    tracker, _ = _tracker()
    tracker.connecting()
    tracker.frame(_frame(0, 0.0))
    assert tracker.ended() == StreamState.BACKOFF
    assert tracker.last_error == "stream ended"


def test_file_end_is_ended_and_file_fault_is_failed_with_the_reason():
    tracker, _ = _tracker(live=False)
    tracker.connecting()
    tracker.frame(_frame(0, 0.0))
    assert tracker.ended() == StreamState.ENDED
    with pytest.raises(RuntimeError, match="ended"):
        tracker.connecting()

    tracker, _ = _tracker(live=False)
    tracker.connecting()
    reason = "cannot decode bad.mp4 at 1.50 s: Invalid data found when processing input"
    assert tracker.failed(reason) == StreamState.FAILED
    assert tracker.health().last_error == reason
    assert tracker.health().reconnects == 0


def test_seq_and_pts_stay_monotonic_across_reconnects_and_ts_never_goes_back():
    tracker, _ = _tracker(sample_fps=2.0)
    outs = []
    # source 1: pts 10.0 .. 11.0; source 2 restarts at pts 0 with a clock that is behind; source 3 again.
    for pts_list, ts_list in [([10.0, 10.5, 11.0], [100.0, 100.5, 101.0]), ([0.0, 0.5], [99.0, 102.0]), ([0.0], [103])]:
        tracker.connecting()
        for seq, (pts, ts) in enumerate(zip(pts_list, ts_list, strict=True)):
            outs.append(tracker.frame(_frame(seq, pts, ts)))
        tracker.ended()
    assert [f.seq for f in outs] == list(range(6))
    assert [f.pts for f in outs] == [10.0, 10.5, 11.0, 11.5, 12.0, 12.5]
    assert [f.ts for f in outs] == [100.0, 100.5, 101.0, 101.0, 102.0, 103.0]


def test_a_frames_jump_moves_with_its_pts_across_reconnects():
    """A jump (where the picture changed since the last sample) is on the source's media clock,
    like the frame's pts: a source that restarts its clock has both moved by the same offset."""
    tracker, _ = _tracker(sample_fps=2.0)
    tracker.connecting()
    first = tracker.frame(dataclasses.replace(_frame(0, 10.0), jump=Jump(9.8, 40.0, 2.0)))
    assert first.pts == 10.0 and first.jump == Jump(9.8, 40.0, 2.0)  # the first source keeps its clock
    tracker.ended()
    tracker.connecting()
    restarted = [tracker.frame(_frame(0, 0.0)), tracker.frame(dataclasses.replace(_frame(1, 0.5), jump=Jump(0.3, 9.0)))]
    assert [f.pts for f in restarted] == [10.5, 11.0]
    assert restarted[0].jump is None and restarted[1].jump == Jump(10.8, 9.0)
    assert restarted[1].jump.t <= restarted[1].pts


def test_a_new_session_never_reuses_an_earlier_sessions_frame_numbers():
    """A restarted service (or a stream moved to another ingest node) starts a new tracker: its
    frames must not get the ids (stream, seq) that frames already indexed have."""
    first = session_first_seq(now=1_700_000_000.0)
    earlier = StreamTracker("cam", IngestSettings(), live=True, first_seq=first)
    old = [earlier.frame(_frame(i, i / 2)).seq for i in range(5000)]  # 40 min at 2 fps
    later = StreamTracker("cam", IngestSettings(), live=True, first_seq=session_first_seq(now=1_700_002_400.0))
    new = [later.frame(_frame(i, i / 2)).seq for i in range(3)]
    assert old == list(range(first, first + 5000))
    assert min(new) > max(old) and new == sorted(new)


def test_pts_jump_back_inside_one_source_is_also_continued():
    tracker, _ = _tracker(sample_fps=4.0)
    tracker.connecting()
    pts = [tracker.frame(_frame(i, p)).pts for i, p in enumerate([3.0, 3.25, 0.0, 0.25])]
    assert pts == [3.0, 3.25, 3.5, 3.75]


def test_frames_in_and_drops_add_up_over_sources():
    tracker, _ = _tracker()
    first, second = SourceStats(decoded=10, dropped=2, decode_s=0.5), SourceStats(decoded=4, dropped=1, decode_s=0.25)
    tracker.connecting()
    tracker.opened(first)
    tracker.failed("lost connection")
    first.decoded = 999  # a finished source's counters no longer count (its thread may still write)
    tracker.connecting()
    tracker.opened(second)
    health = tracker.health()
    assert (health.frames_in, health.drops) == (10 + 4, 2 + 1)
    second.decoded, second.dropped = 6, 3  # the current source's counters are read live
    assert (tracker.health().frames_in, tracker.health().drops) == (16, 5)
    assert tracker.health().decode_s == 0.75  # decode time adds up the same way (latency per frame: / frames_in)


def test_backoff_grows_while_failing_and_resets_after_a_long_live_period():
    tracker, clock = _tracker(
        backoff_initial_s=1, backoff_max_s=1000, backoff_multiplier=2, backoff_jitter="full", backoff_reset_s=60
    )
    for _ in range(6):  # failing to connect, again and again
        tracker.connecting()
        tracker.failed("cannot connect to rtsp://cam: Connection refused")
    assert tracker.backoff.attempts == 6
    tracker.connecting()
    tracker.frame(_frame(0, 0.0))
    clock.advance(10)
    tracker.frame(_frame(1, 0.5))
    tracker.failed("lost connection")  # live only 10 s: no reset
    assert tracker.backoff.attempts == 7
    tracker.connecting()
    tracker.frame(_frame(0, 0.0))
    clock.advance(61)
    tracker.frame(_frame(1, 0.5))
    tracker.failed("lost connection")
    assert tracker.backoff.attempts == 1  # reset, then this failure's delay
    assert tracker.delay <= 1.0


def test_max_reconnects_fails_the_stream():
    tracker, _ = _tracker(max_reconnects=2)
    states = []
    for _ in range(3):
        tracker.connecting()
        states.append(tracker.failed("cannot connect to rtsp://cam: Connection refused"))
    assert states == [StreamState.BACKOFF, StreamState.BACKOFF, StreamState.FAILED]
    health = tracker.health()
    assert health.reconnects == 2
    assert health.last_error == "cannot connect to rtsp://cam: Connection refused; gave up after 2 reconnects"


def test_stall_deadline_waits_for_the_source_not_the_sink():
    tracker, clock = _tracker(stall_timeout_s=5, open_timeout_s=3)
    tracker.connecting()
    assert tracker.stall_deadline() == clock.t + 5 + 3  # connecting: the open timeout comes first
    clock.advance(1)
    tracker.frame(_frame(0, 0.0))
    assert tracker.stall_deadline() is None  # the sink holds the frame
    clock.advance(100)
    tracker.sink_done()
    assert tracker.stall_deadline() == clock.t + 5


def test_stall_closes_and_backs_off_live_but_fails_a_file():
    tracker, _ = _tracker(stall_timeout_s=5)
    tracker.connecting()
    tracker.frame(_frame(0, 0.0))
    tracker.sink_done()
    assert tracker.stalled() == StreamState.STALLED
    assert tracker.health().last_error == "no frame for 5 s (stall timeout)"
    assert tracker.after_stall() == StreamState.BACKOFF

    tracker, _ = _tracker(live=False, stall_timeout_s=5)
    tracker.connecting()
    tracker.frame(_frame(0, 0.0))
    tracker.stalled()
    assert tracker.after_stall() == StreamState.FAILED


def test_health_is_json_friendly():
    tracker, _ = _tracker()
    tracker.connecting()
    tracker.frame(_frame(0, 0.0, ts=5.0))
    data = json.loads(json.dumps(dataclasses.asdict(tracker.health())))
    assert data["state"] == "live"
    assert data["stream"] == "cam"
    assert set(data) == {f.name for f in dataclasses.fields(StreamHealth)}


# -- StreamSupervisor: the asyncio shell with fake sources -------------------------------------


class FakeSource(Source):
    """Yields `n` frames (pts from 0 at 2 fps, ts from now), then ends, raises `error`, or hangs."""

    def __init__(self, n: int, then: str = "end", error: BaseException | None = None) -> None:
        super().__init__("raw")
        self.n, self.then, self.error = n, then, error
        self.closed = asyncio.Event()

    async def frames(self):
        for i in range(self.n):
            if self.closed.is_set():
                return
            self.stats.decoded += 1
            self.stats.sampled += 1
            yield Frame("raw", i, i * 0.5, time.time(), _IMAGE)
            await asyncio.sleep(0)
        if self.then == "raise":
            assert self.error is not None
            raise self.error
        if self.then == "hang":
            await self.closed.wait()

    async def close(self) -> None:
        self.closed.set()


class IgnoresClose(FakeSource):
    """A source whose iteration does not end on close(): only cancellation stops it."""

    async def frames(self):
        yield Frame("raw", 0, 0.0, time.time(), _IMAGE)
        await asyncio.Event().wait()


def _fast(**overrides) -> IngestSettings:
    values = dict(
        stall_timeout_s=0.3, open_timeout_s=0.1, backoff_initial_s=0.01, backoff_max_s=0.05, backoff_reset_s=60
    )
    return IngestSettings(**(values | overrides))


class Opener:
    """Hands out the given sources (or raises the given exceptions) one per call, then hangs forever."""

    def __init__(self, *items: Source | BaseException) -> None:
        self.items = list(items)
        self.calls = 0

    def __call__(self) -> Source:
        self.calls += 1
        if not self.items:
            return FakeSource(0, "hang")
        item = self.items.pop(0)
        if isinstance(item, BaseException):
            raise item
        return item


class Collect:
    def __init__(self) -> None:
        self.frames: list[Frame] = []

    async def __call__(self, frame: Frame) -> None:
        self.frames.append(frame)


async def _until(predicate, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.01)


async def test_live_stream_survives_errors_ends_stalls_and_bugs(caplog):
    caplog.set_level(logging.WARNING, "dinostream.ingest.stream_supervisor")
    opener = Opener(
        FakeSource(3, "raise", SourceError("lost connection to rtsp://cam: Connection reset by peer")),
        SourceError("cannot connect to rtsp://cam: Connection refused"),
        FakeSource(2, "end"),
        FakeSource(2, "hang"),  # the watchdog closes it
        FakeSource(1, "raise", ZeroDivisionError("a bug in a source")),
        RuntimeError("a bug in open_source"),
        FakeSource(4, "hang"),
    )
    sink = Collect()
    sup = StreamSupervisor("cam1", opener, sink, _fast(), live=True, rng=random.Random(0))
    task = asyncio.create_task(sup.run())
    await _until(lambda: len(sink.frames) == 12 and sup.health().state == StreamState.LIVE and opener.calls == 7)
    health = sup.health()
    assert health.reconnects == 6
    assert health.frames_out == 12
    assert health.frames_in == 12
    assert [f.seq for f in sink.frames] == list(range(12))
    pts = [f.pts for f in sink.frames]
    assert all(b > a for a, b in zip(pts, pts[1:], strict=False))
    assert {f.stream for f in sink.frames} == {"cam1"}
    messages = caplog.text
    assert "stream cam1" in messages and "ZeroDivisionError" in messages and "a bug in open_source" in messages
    assert "stall timeout" in messages
    await sup.stop()
    await asyncio.wait_for(task, 5)
    assert sup.health().state == StreamState.STOPPED


async def test_states_seen_by_a_watcher_include_stalled_and_backoff():
    class Watched(FakeSource):
        async def close(self) -> None:
            closing_states.append((sup.health().state, sup.health().last_error))
            await super().close()

    closing_states: list[tuple[StreamState, str | None]] = []
    opener = Opener(Watched(1, "hang"), SourceError("cannot connect to rtsp://cam: Connection refused"))
    settings = _fast(backoff_initial_s=0.2, backoff_max_s=0.3, backoff_jitter="decorrelated")
    sup = StreamSupervisor("cam1", opener, Collect(), settings, live=True)
    seen: list[tuple[StreamState, str | None]] = []
    task = asyncio.create_task(sup.run())
    await _until(lambda: seen.append((sup.health().state, sup.health().last_error)) or opener.calls >= 3)
    # The watchdog marks the stream stalled before it closes the silent source.
    assert closing_states[0] == (StreamState.STALLED, "no frame for 0.3 s (stall timeout)")
    assert StreamState.LIVE in [s for s, _ in seen]
    # Each backoff lasts at least 0.2 s (decorrelated jitter), long enough to be seen.
    assert any(s == StreamState.BACKOFF and e and "Connection refused" in e for s, e in seen)
    await sup.stop()
    await asyncio.wait_for(task, 5)


async def test_file_end_is_ended_and_run_returns():
    opener = Opener(FakeSource(5, "end"))
    sink = Collect()
    sup = StreamSupervisor("clip", opener, sink, _fast(), live=False)
    await asyncio.wait_for(sup.run(), 10)
    assert sup.health().state == StreamState.ENDED
    assert [f.pts for f in sink.frames] == [0.0, 0.5, 1.0, 1.5, 2.0]
    assert opener.calls == 1


async def test_corrupt_file_fails_with_the_decoder_reason_and_no_retry():
    reason = "cannot decode bad.mp4 at 2.00 s: Invalid data found when processing input"
    opener = Opener(FakeSource(2, "raise", SourceError(reason)), FakeSource(5, "end"))
    sup = StreamSupervisor("clip", opener, Collect(), _fast(), live=False)
    await asyncio.wait_for(sup.run(), 10)
    health = sup.health()
    assert (health.state, health.last_error, health.frames_out, health.reconnects) == (StreamState.FAILED, reason, 2, 0)
    assert opener.calls == 1


async def test_max_reconnects_ends_run_with_failed():
    opener = Opener(*[SourceError("cannot connect to rtsp://cam: Connection refused")] * 5)
    sup = StreamSupervisor("cam1", opener, Collect(), _fast(max_reconnects=3), live=True)
    await asyncio.wait_for(sup.run(), 10)
    assert sup.health().state == StreamState.FAILED
    assert opener.calls == 4
    assert "gave up after 3 reconnects" in (sup.health().last_error or "")


async def test_slow_sink_is_not_a_stall():
    async def slow(frame: Frame) -> None:
        await asyncio.sleep(0.5)  # longer than the stall timeout, every frame

    opener = Opener(FakeSource(3, "hang"))
    sup = StreamSupervisor("cam1", opener, slow, _fast(stall_timeout_s=0.2), live=True)
    task = asyncio.create_task(sup.run())
    await _until(lambda: sup.health().frames_out == 3)
    assert sup.health().reconnects == 0
    assert sup.health().state == StreamState.LIVE
    assert opener.calls == 1
    await sup.stop()
    await asyncio.wait_for(task, 5)


async def test_a_blocked_sink_holds_back_only_its_own_stream():
    blocked = asyncio.Event()

    async def stuck(frame: Frame) -> None:
        await blocked.wait()

    busy, free = Collect(), Collect()
    slow_sup = StreamSupervisor("slow", Opener(FakeSource(100, "hang")), stuck, _fast(), live=True)
    fast_sup = StreamSupervisor("fast", Opener(FakeSource(100, "hang")), free, _fast(), live=True)
    tasks = [asyncio.create_task(s.run()) for s in (slow_sup, fast_sup)]
    await _until(lambda: len(free.frames) == 100)
    assert slow_sup.health().frames_out == 1
    assert busy.frames == []
    for s in (slow_sup, fast_sup):
        await s.stop()
    await asyncio.wait_for(asyncio.gather(*tasks), 10)
    assert slow_sup.health().state == fast_sup.health().state == StreamState.STOPPED


async def test_stop_is_prompt_in_backoff_and_with_a_source_that_ignores_close():
    sup = StreamSupervisor(
        "cam1",
        Opener(SourceError("cannot connect")),
        Collect(),
        _fast(backoff_initial_s=100, backoff_max_s=100, backoff_jitter="decorrelated"),
        live=True,
    )
    task = asyncio.create_task(sup.run())
    await _until(lambda: sup.health().state == StreamState.BACKOFF)
    await sup.stop()
    await asyncio.wait_for(task, 5)
    assert sup.health().state == StreamState.STOPPED

    sup = StreamSupervisor("cam2", Opener(IgnoresClose(0)), Collect(), _fast(stall_timeout_s=100), live=True)
    task = asyncio.create_task(sup.run())
    await _until(lambda: sup.health().state == StreamState.LIVE)
    await sup.stop()
    await asyncio.wait_for(task, 10)
    assert sup.health().state == StreamState.STOPPED


async def test_failing_sink_ends_run_with_its_error():
    async def broken(frame: Frame) -> None:
        raise RuntimeError("batcher closed")

    source = FakeSource(5, "hang")
    sup = StreamSupervisor("cam1", Opener(source), broken, _fast(), live=True)
    with pytest.raises(RuntimeError, match="batcher closed"):
        await asyncio.wait_for(sup.run(), 10)
    assert sup.health().state == StreamState.FAILED
    assert sup.health().last_error == "sink failed: RuntimeError: batcher closed"
    assert source.closed.is_set()


async def test_cancelling_run_closes_the_source():
    source = FakeSource(1, "hang")
    sup = StreamSupervisor("cam1", Opener(source), Collect(), _fast(stall_timeout_s=100), live=True)
    task = asyncio.create_task(sup.run())
    await _until(lambda: sup.health().state == StreamState.LIVE)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert source.closed.is_set()
    assert sup.health().state == StreamState.STOPPED


async def test_stop_before_run_means_run_does_nothing():
    opener = Opener(FakeSource(3, "end"))
    sup = StreamSupervisor("cam1", opener, Collect(), _fast(), live=True)
    await sup.stop()
    await asyncio.wait_for(sup.run(), 5)
    assert opener.calls == 0
    assert sup.health().state == StreamState.STOPPED
