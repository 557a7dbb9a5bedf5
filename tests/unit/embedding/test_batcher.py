"""MicroBatcher: when batches close, backpressure, ordering, one-off queries, failures, drain."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable

import numpy as np
import pytest

from dinostream.core.records import FrameEmbedding
from dinostream.embedding.batcher import BatcherClosedError, MicroBatcher
from dinostream.ingest.source import Frame
from tests.waiting import started, wait_for

_IMAGE = np.zeros((16, 16, 3), np.uint8)


def _frame(stream: str, seq: int) -> Frame:
    return Frame(stream=stream, seq=seq, pts=seq / 10, ts=1_700_000_000.0 + seq, image=_IMAGE)


def _record(f: Frame) -> FrameEmbedding:
    v = np.full(4, f.seq, np.float16)
    return FrameEmbedding(f.stream, f.seq, f.pts, f.ts, "fake", True, v, v, v.reshape(1, 1, 4))


class FakeEmbedder:
    """Records each batch it is given (and on which thread); optionally blocks or fails."""

    def __init__(self, *, delay_s: float = 0.0, fail: Exception | None = None) -> None:
        self.batches: list[list[tuple[str, int]]] = []
        self.threads: set[int] = set()
        self.gate = threading.Event()
        self.gate.set()
        self.delay_s = delay_s
        self.fail = fail

    def __call__(self, frames: list[Frame]) -> list[FrameEmbedding]:
        self.threads.add(threading.get_ident())
        self.batches.append([(f.stream, f.seq) for f in frames])
        if not self.gate.wait(timeout=10):
            raise TimeoutError("test gate never opened")
        time.sleep(self.delay_s)
        if self.fail is not None:
            raise self.fail
        return [_record(f) for f in frames]

    @property
    def sizes(self) -> list[int]:
        return [len(b) for b in self.batches]


class Collector:
    """The sink: keeps every record in arrival order."""

    def __init__(self) -> None:
        self.records: list[FrameEmbedding] = []
        self.calls = 0

    async def __call__(self, batch: list[FrameEmbedding]) -> None:
        self.calls += 1
        self.records.extend(batch)

    async def wait_for(self, n: int, timeout: float = 5.0) -> None:
        async with asyncio.timeout(timeout):
            while len(self.records) < n:
                await asyncio.sleep(0.005)

    @property
    def keys(self) -> list[tuple[str, int]]:
        return [(r.stream, r.seq) for r in self.records]


def _batcher(embed_fn: FakeEmbedder, sink: Collector, **kw: float) -> MicroBatcher:
    opts = {"max_batch": 4, "max_wait_s": 30.0, "queue_size": 64, **kw}
    return MicroBatcher(
        embed_fn,
        max_batch=int(opts["max_batch"]),
        max_wait_s=opts["max_wait_s"],
        queue_size=int(opts["queue_size"]),
        sink=sink,
    )


async def test_batch_closes_at_max_batch_without_waiting_for_the_deadline() -> None:
    fake, sink = FakeEmbedder(), Collector()
    b = _batcher(fake, sink, max_batch=4, max_wait_s=30.0)
    b.start()
    start = time.monotonic()
    for seq in range(8):
        await b.put(_frame("cam-1", seq))
        await asyncio.sleep(0.005)  # frames trickle in
    await sink.wait_for(8)

    assert time.monotonic() - start < 5  # far below max_wait_s
    assert fake.sizes == [4, 4]
    assert sink.keys == [("cam-1", s) for s in range(8)]
    await b.stop()


async def test_batch_closes_at_max_wait_when_fewer_frames_arrive() -> None:
    fake, sink = FakeEmbedder(), Collector()
    b = _batcher(fake, sink, max_batch=16, max_wait_s=0.2)
    b.start()
    start = time.monotonic()
    for seq in range(3):
        await b.put(_frame("cam-1", seq))
    await sink.wait_for(3)
    elapsed = time.monotonic() - start

    assert 0.18 <= elapsed < 2.0
    assert fake.sizes == [3]
    stats = b.stats()
    assert (stats.batches, stats.frames, stats.mean_batch_size, stats.queued) == (1, 3, 3.0, 0)
    assert stats.latency_p50_s is not None and stats.latency_p99_s is not None
    assert 0.15 <= stats.latency_p50_s <= stats.latency_p99_s < 2.0
    assert stats.last_batch_at is not None
    await b.stop()


async def test_put_waits_while_the_queue_is_full() -> None:
    fake, sink = FakeEmbedder(), Collector()
    fake.gate.clear()  # the model is stuck on the first batch
    b = _batcher(fake, sink, max_batch=1, max_wait_s=0.0, queue_size=2)
    b.start()
    await b.put(_frame("cam-1", 0))
    async with asyncio.timeout(5):
        while not fake.batches:  # frame 0 is inside the model
            await asyncio.sleep(0.005)
    await b.put(_frame("cam-1", 1))
    await b.put(_frame("cam-1", 2))  # the queue is now full
    blocked = await started(b.put(_frame("cam-1", 3)))

    assert not blocked.done()
    assert b.stats().queued == 2

    fake.gate.set()
    async with asyncio.timeout(5):
        await blocked
    await sink.wait_for(4)
    assert sink.keys == [("cam-1", s) for s in range(4)]
    await b.stop()


async def test_order_is_preserved_per_stream_across_concurrent_producers() -> None:
    fake, sink = FakeEmbedder(delay_s=0.002), Collector()
    b = _batcher(fake, sink, max_batch=5, max_wait_s=0.01, queue_size=8)
    b.start()
    rng = np.random.default_rng(0)

    async def produce(stream: str) -> None:
        for seq in range(30):
            await b.put(_frame(stream, seq))
            await asyncio.sleep(float(rng.uniform(0, 0.003)))

    streams = ["cam-a", "cam-b", "cam-c"]
    await asyncio.gather(*(produce(s) for s in streams))
    await b.stop()

    assert len(sink.records) == 90
    assert max(fake.sizes) > 1  # frames of several streams were batched together
    for s in streams:
        assert [seq for stream, seq in sink.keys if stream == s] == list(range(30))


async def test_embed_runs_on_one_worker_thread_not_the_event_loop() -> None:
    fake, sink = FakeEmbedder(), Collector()
    b = _batcher(fake, sink, max_batch=2, max_wait_s=0.01)
    b.start()
    for seq in range(6):
        await b.put(_frame("cam-1", seq))
    await b.stop()

    assert len(fake.threads) == 1
    assert threading.get_ident() not in fake.threads


async def test_embed_returns_its_own_result_and_skips_the_sink() -> None:
    fake, sink = FakeEmbedder(), Collector()
    b = _batcher(fake, sink, max_batch=8, max_wait_s=0.1)
    b.start()
    await b.put(_frame("cam-1", 0))
    query = asyncio.create_task(b.embed(_frame("query", 7)))
    await b.put(_frame("cam-1", 1))
    rec = await asyncio.wait_for(query, 5)
    await b.stop()

    assert (rec.stream, rec.seq) == ("query", 7)
    assert rec.cls[0] == 7
    assert sink.keys == [("cam-1", 0), ("cam-1", 1)]
    [shared] = fake.batches  # the query rode in the same batch as the stream frames
    assert sorted(shared) == [("cam-1", 0), ("cam-1", 1), ("query", 7)]


async def test_embed_fn_error_reaches_embed_callers_and_the_batcher_goes_on() -> None:
    fake, sink = FakeEmbedder(fail=ValueError("model exploded")), Collector()
    b = _batcher(fake, sink, max_batch=4, max_wait_s=0.01)
    b.start()

    with pytest.raises(ValueError, match="model exploded"):
        await asyncio.wait_for(b.embed(_frame("query", 1)), 5)
    assert b.running  # only one-off callers were affected, and they were told

    fake.fail = None
    rec = await asyncio.wait_for(b.embed(_frame("query", 2)), 5)
    assert rec.seq == 2
    await b.stop()


async def test_embed_fn_error_with_put_frames_ends_the_batcher_loudly(caplog: pytest.LogCaptureFixture) -> None:
    fake, sink = FakeEmbedder(fail=RuntimeError("CUDA error: out of memory")), Collector()
    fake.gate.clear()
    b = _batcher(fake, sink, max_batch=2, max_wait_s=0.0, queue_size=4)
    b.start()
    await b.put(_frame("cam-a", 0))
    await b.put(_frame("cam-b", 0))
    async with asyncio.timeout(5):
        while not fake.batches:
            await asyncio.sleep(0.005)
    queued_query = asyncio.create_task(b.embed(_frame("query", 1)))  # waits behind the failing batch
    await wait_for(lambda: b.stats().queued == 1, 5, "the query to be queued")
    with caplog.at_level(logging.ERROR, logger="dinostream.embedding.batcher"):
        fake.gate.set()
        with pytest.raises(RuntimeError, match="out of memory"):
            await asyncio.wait_for(asyncio.shield(b.task), 5)  # type: ignore[arg-type]

    assert "cam-a" in caplog.text and "cam-b" in caplog.text
    with pytest.raises(RuntimeError, match="out of memory"):
        await asyncio.wait_for(queued_query, 5)
    with pytest.raises(BatcherClosedError, match="ended after an error"):
        await b.put(_frame("cam-a", 1))
    with pytest.raises(RuntimeError, match="out of memory"):
        await b.stop()  # the owner sees it too
    assert sink.records == []


async def test_cancelling_the_run_task_fails_pending_queries_instead_of_hanging() -> None:
    fake, sink = FakeEmbedder(), Collector()
    b = _batcher(fake, sink, max_batch=4, max_wait_s=30.0)
    b.start()
    await b.put(_frame("cam-1", 0))
    query = await started(b.embed(_frame("query", 1)))  # accepted ...
    await wait_for(lambda: b.stats().queued == 0, 5, "the batch to gather it")  # ... and gathered: the deadline is 30 s
    assert b.task is not None
    b.task.cancel()

    with pytest.raises(asyncio.CancelledError):
        await b.stop()
    with pytest.raises(BatcherClosedError, match="cancelled"):
        await asyncio.wait_for(query, 5)
    with pytest.raises(BatcherClosedError, match="cancelled"):
        await b.put(_frame("cam-1", 1))


async def test_stop_drains_everything_accepted_without_waiting_for_deadlines() -> None:
    fake, sink = FakeEmbedder(delay_s=0.01), Collector()
    b = _batcher(fake, sink, max_batch=4, max_wait_s=30.0, queue_size=16)
    b.start()
    for seq in range(10):
        await b.put(_frame("cam-1", seq))
    start = time.monotonic()
    await asyncio.wait_for(b.stop(), 5)

    assert time.monotonic() - start < 2
    assert sink.keys == [("cam-1", s) for s in range(10)]
    assert sum(fake.sizes) == 10 and max(fake.sizes) <= 4
    assert b.stats().frames == 10
    with pytest.raises(BatcherClosedError):
        await b.put(_frame("cam-1", 10))


async def test_put_before_start_is_refused() -> None:
    b = _batcher(FakeEmbedder(), Collector())
    with pytest.raises(BatcherClosedError, match="not started"):
        await b.put(_frame("cam-1", 0))


# --- fairness, shapes, several devices ------------------------------------------------------------


def _shaped(stream: str, seq: int, h: int, w: int) -> Frame:
    return Frame(stream=stream, seq=seq, pts=seq / 10, ts=0.0, image=np.zeros((h, w, 3), np.uint8))


async def _until(predicate, timeout: float = 5.0) -> None:  # type: ignore[no-untyped-def]
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.005)


async def test_a_busy_stream_does_not_starve_a_quiet_one() -> None:
    fake, sink = FakeEmbedder(), Collector()
    fake.gate.clear()
    b = _batcher(fake, sink, max_batch=4, max_wait_s=0.0, queue_size=16)
    b.start()
    await b.put(_frame("busy", 0))
    await _until(lambda: bool(fake.batches))  # the model is stuck on busy#0
    for seq in range(1, 13):
        await b.put(_frame("busy", seq))  # a backlog of 12 frames ...
    await b.put(_frame("quiet", 0))  # ... then the quiet camera's frames arrive
    await b.put(_frame("quiet", 1))
    fake.gate.set()
    await sink.wait_for(15)
    await b.stop()

    # FIFO would embed all 12 busy frames first; round-robin serves quiet in the very next batch.
    assert fake.batches[1] == [("busy", 1), ("quiet", 0), ("busy", 2), ("quiet", 1)]
    assert [s for _, s in sink.keys if _ == "busy"] == list(range(13))


async def test_each_streams_queue_is_bounded_on_its_own() -> None:
    fake, sink = FakeEmbedder(), Collector()
    fake.gate.clear()
    b = _batcher(fake, sink, max_batch=1, max_wait_s=0.0, queue_size=2)
    b.start()
    await b.put(_frame("busy", 0))
    await _until(lambda: bool(fake.batches))
    await b.put(_frame("busy", 1))
    await b.put(_frame("busy", 2))
    blocked = await started(b.put(_frame("busy", 3)))  # busy's queue is full: its decoder waits
    async with asyncio.timeout(1):
        await b.put(_frame("quiet", 0))  # ... but another camera is not held back
        await b.put(_frame("quiet", 1))
    assert not blocked.done()
    assert b.stats().queued == 4

    fake.gate.set()
    async with asyncio.timeout(5):
        await blocked
    await b.stop()
    assert len(sink.records) == 6


async def test_frames_of_different_sizes_are_batched_apart_and_all_delivered_in_order() -> None:
    fake, sink = FakeEmbedder(), Collector()
    shapes: list[set[tuple[int, ...]]] = []

    def embed(frames: list[Frame]) -> list[FrameEmbedding]:
        shapes.append({f.image.shape for f in frames})
        return fake(frames)

    b = MicroBatcher(embed, max_batch=4, max_wait_s=0.02, queue_size=8, sink=sink)
    b.start()

    async def produce(stream: str, h: int, w: int) -> None:
        for seq in range(10):
            await b.put(_shaped(stream, seq, h, w))
            await asyncio.sleep(0.001)

    await asyncio.gather(produce("wide", 16, 32), produce("square", 16, 16), produce("tall", 32, 16))
    query = await asyncio.wait_for(b.embed(_shaped("query", 0, 48, 48)), 5)
    await b.stop()

    assert query.seq == 0
    assert all(len(s) == 1 for s in shapes)  # never two sizes in one batch
    assert max(fake.sizes) > 1
    for stream in ("wide", "square", "tall"):
        assert [seq for s, seq in sink.keys if s == stream] == list(range(10))


async def test_batches_go_to_idle_devices_and_results_stay_in_order() -> None:
    slow, fast, sink = FakeEmbedder(delay_s=0.3), FakeEmbedder(delay_s=0.01), Collector()
    b = MicroBatcher([slow, fast], max_batch=2, max_wait_s=0.0, queue_size=8, sink=sink)
    b.start()
    for seq in range(8):
        await b.put(_frame("cam-1", seq))
        await b.put(_frame("cam-2", seq))
    await b.stop()

    assert slow.batches and fast.batches  # both devices worked
    assert len(fast.batches) > len(slow.batches)  # the idle one gets the next batch
    assert slow.threads.isdisjoint(fast.threads) and threading.get_ident() not in slow.threads | fast.threads
    # the fast device finished later batches first, yet the sink saw each stream in order
    for stream in ("cam-1", "cam-2"):
        assert [seq for s, seq in sink.keys if s == stream] == list(range(8))
    stats = b.stats()
    assert sum(stats.worker_frames) == stats.frames == 16 and min(stats.worker_frames) > 0


async def test_latency_is_measured_from_enqueue_to_embedding() -> None:
    fake, sink = FakeEmbedder(delay_s=0.1), Collector()
    b = _batcher(fake, sink, max_batch=1, max_wait_s=0.0)
    b.start()
    for seq in range(3):
        await b.put(_frame("cam-1", seq))
    await b.stop()

    stats = b.stats()
    assert stats.latency_p50_s is not None and stats.latency_p99_s is not None
    # frame 2 waited for frames 0 and 1 to be embedded: its latency includes that queueing
    assert 0.1 <= stats.latency_p50_s <= stats.latency_p99_s
    assert stats.latency_p99_s >= 0.25


async def test_a_failing_device_ends_the_batcher_and_names_every_frame_it_could_not_deliver(
    caplog: pytest.LogCaptureFixture,
) -> None:
    good, bad, sink = FakeEmbedder(delay_s=0.2), FakeEmbedder(fail=RuntimeError("device lost")), Collector()
    b = MicroBatcher([good, bad], max_batch=1, max_wait_s=0.0, queue_size=8, sink=sink)
    b.start()
    accepted = []
    with caplog.at_level(logging.ERROR, logger="dinostream.embedding.batcher"):
        for seq in range(6):
            try:
                await b.put(_frame("cam-1", seq))
            except BatcherClosedError:
                break
            accepted.append(seq)
            await asyncio.sleep(0.02)
        with pytest.raises(RuntimeError, match="device lost"):
            await asyncio.wait_for(b.stop(), 5)

    assert bad.batches and accepted
    delivered = {seq for _, seq in sink.keys}
    for seq in accepted:
        assert seq in delivered or f"cam-1#{seq}" in caplog.text, seq


class LaunchingFake:
    """A two-step embedder: `launch` on the device thread, the finish step on another; records the
    order of steps, the threads, and how many batches were launched but not finished at once."""

    def __init__(self, *, nan_seqs: frozenset[int] = frozenset()) -> None:
        self.steps: list[str] = []
        self.launch_threads: set[int] = set()
        self.finish_threads: set[int] = set()
        self.in_flight = 0
        self.max_in_flight = 0
        self.release = threading.Event()
        self.nan_seqs = nan_seqs
        self.lock = threading.Lock()

    def warm_up(self) -> None:
        self.steps.append("warm_up")
        self.launch_threads.add(threading.get_ident())

    def launch(self, frames: list[Frame]) -> Callable[[], list[FrameEmbedding | None]]:
        self.launch_threads.add(threading.get_ident())
        self.steps.append(f"launch {frames[0].seq}")
        with self.lock:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)

        def finish() -> list[FrameEmbedding | None]:
            self.finish_threads.add(threading.get_ident())
            if not self.release.wait(timeout=10):
                raise TimeoutError("test never released the finish steps")
            with self.lock:
                self.in_flight -= 1
            return [None if f.seq in self.nan_seqs else _record(f) for f in frames]

        return finish


async def test_a_launching_embedder_keeps_two_batches_in_flight_and_order() -> None:
    fake, sink = LaunchingFake(), Collector()
    b = MicroBatcher(fake, max_batch=2, max_wait_s=0.0, queue_size=16, sink=sink)
    b.start()
    for seq in range(8):
        await b.put(_frame("cam-1", seq))
    async with asyncio.timeout(5):  # the second launch happens while the first batch is unfinished
        while fake.steps.count("launch 2") == 0:
            await asyncio.sleep(0.005)
    assert fake.max_in_flight == 2 and sink.records == []
    # The batcher has seen launch 2 return (its device-thread flag is down): a third batch would be
    # taken from the queue in the very next step of its loop, before this poll wakes.
    await wait_for(lambda: not any(w.launching for w in b._workers), 5, "the batcher to see launch 2 return")
    assert b.stats().queued == 4  # frames 4-7 wait ...
    assert fake.max_in_flight == 2  # never a third: the device thread waits for a finish
    fake.release.set()
    await b.stop()

    assert fake.steps[0] == "warm_up"  # queued on the device thread at start, before any batch
    assert sink.keys == [("cam-1", seq) for seq in range(8)]
    assert fake.launch_threads.isdisjoint(fake.finish_threads)
    assert threading.get_ident() not in fake.launch_threads | fake.finish_threads


async def test_frames_without_an_embedding_are_counted_and_fail_only_their_query() -> None:
    from dinostream.embedding.batcher import FrameDroppedError

    fake, sink = LaunchingFake(nan_seqs=frozenset({1, 5})), Collector()
    fake.release.set()
    b = MicroBatcher(fake, max_batch=4, max_wait_s=0.01, queue_size=16, sink=sink)
    b.start()
    for seq in range(4):
        await b.put(_frame("cam-1", seq))
    with pytest.raises(FrameDroppedError, match="cam-q#5"):
        await b.embed(_frame("cam-q", 5))
    assert (await b.embed(_frame("cam-q", 6))).seq == 6
    await b.stop()

    assert sink.keys == [("cam-1", 0), ("cam-1", 2), ("cam-1", 3)]  # the batcher went on
    assert b.stats().dropped == 2
