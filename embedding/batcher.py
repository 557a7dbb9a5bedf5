"""Fair micro-batching across all streams in front of one or more blocking embedders.

Each stream has its own bounded queue: `put()` waits while its stream's queue is full
(backpressure reaches that stream's decoder, and only that one). A batch is made of frames of
one shape (the embedder stacks them into one tensor; different input sizes form separate
batches), taken round-robin across the streams whose next frame has that shape, so a busy
camera cannot starve a quiet one. It closes when it holds `max_batch` frames or `max_wait_s`
after its oldest frame was enqueued, whichever comes first. The batch led by the stream with
the oldest waiting frame goes next, so no frame waits behind other shapes for long.

Each embedder (one per device) runs on its own single-thread executor, never on the event loop;
a batch goes to an idle embedder, the least used first. An embedder with a `launch` method
(`dinostream.embedding.embedder.Embedder`) keeps two batches in flight: its device thread
launches the next batch while another thread finishes the last one (waits for the device,
builds the records); its `warm_up`, if any, runs on the device thread at `start()`, before any
batch. Results reach the sink in dispatch order, so every stream's records stay in order even
when devices finish out of order. A frame that the embedder could not embed (None in its
results: a non-finite embedding) is counted in `stats().dropped`; an `embed()` caller gets
`FrameDroppedError` for it.
`embed()` takes the same path but hands its frame's result back to the caller, for one-off
queries. Latency per frame (enqueue -> embedding) is kept for `stats()`.

    >>> batcher = MicroBatcher([gpu0.embed, gpu1.embed], max_batch=16, max_wait_s=0.05, queue_size=16,
    ...                        sink=publish)
    >>> batcher.start()
    >>> await batcher.put(frame)      # waits while frame.stream's queue is full: backpressure
    >>> await batcher.stop()          # embeds everything accepted, then returns

Errors: when an embedder (or the sink) raises, nothing is dropped silently. Callers of
`embed()` whose frames were in the failed batch get the exception. If the batch also held
frames from `put()`, those frames cannot be delivered: the failure is logged with their stream
ids, every frame still queued or in flight fails the same way (their `embed()` callers get the
exception, blocked `put()` calls raise `BatcherClosedError`), and the run task ends with the
original exception, which `stop()` re-raises and `task` exposes, so the owner restarts the
stage or exits non-zero. A model failure (a driver error, out of memory even for one frame) is
rarely specific to one frame, so carrying on would only drop frame after frame. A batch made
only of `embed()` frames fails only those callers and the batcher carries on.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from collections.abc import Awaitable, Callable, Hashable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Protocol, cast, runtime_checkable

import numpy as np

from dinostream.core.records import FrameEmbedding
from dinostream.ingest.source import Frame

log = logging.getLogger(__name__)

# One result per frame, in order; None for a frame that got no embedding.
Results = list[FrameEmbedding] | list[FrameEmbedding | None]
EmbedFn = Callable[[list[Frame]], Results]
Finish = Callable[[], Results]
Sink = Callable[[list[FrameEmbedding]], Awaitable[None]]


@runtime_checkable
class LaunchingEmbedder(Protocol):
    """An embedder whose batches are queued on the device by `launch` (on the device's thread)
    and completed by the finish step it returns (on another thread), so two are in flight."""

    def launch(self, frames: list[Frame]) -> Finish: ...


class BatcherClosedError(RuntimeError):
    """The batcher is not running (not started, stopping, or ended by an embedding failure)."""


class FrameDroppedError(RuntimeError):
    """The embedder produced no embedding for this frame (it logged why: a non-finite output)."""


@dataclass(frozen=True)
class BatcherStats:
    """Counters since start; latencies (enqueue -> embedding) over the most recent frames."""

    batches: int
    frames: int
    mean_batch_size: float
    latency_p50_s: float | None  # None until a frame has been embedded
    latency_p99_s: float | None
    queued: int  # frames waiting now, all streams
    last_batch_at: float | None  # time.monotonic() when the last batch finished: a liveness signal
    worker_frames: tuple[int, ...] = ()  # frames embedded by each embedder (device)
    dropped: int = 0  # frames the embedder returned no embedding for (non-finite output)


@dataclass(eq=False)
class _Item:
    frame: Frame
    enqueued: float  # time.monotonic() when accepted into its stream's queue
    future: asyncio.Future[FrameEmbedding] | None  # set for embed(), None for put()


@dataclass(eq=False)
class _Worker:
    index: int
    launch: Callable[[list[Frame]], Finish]
    depth: int  # batches in flight at once: 2 for a launching embedder, 1 for a plain function
    warm_up: Callable[[], None] | None = None
    executor: ThreadPoolExecutor | None = None  # the device's thread: launches (the whole call for a function)
    finisher: ThreadPoolExecutor | None = None  # waits for the device and builds records
    launching: bool = False
    in_flight: int = 0  # launched, not yet finished
    frames: int = 0

    @property
    def free(self) -> bool:
        return not self.launching and self.in_flight < self.depth


def _worker(index: int, embedder: EmbedFn | LaunchingEmbedder) -> _Worker:
    if isinstance(embedder, LaunchingEmbedder):
        warm_up = getattr(embedder, "warm_up", None)
        return _Worker(index, embedder.launch, 2, warm_up if callable(warm_up) else None)
    fn = embedder

    def launch(frames: list[Frame]) -> Finish:
        results = fn(frames)
        return lambda: results

    return _Worker(index, launch, 1)


@dataclass(eq=False)
class _Flight:
    """A dispatched batch until its results are delivered."""

    items: list[_Item]
    delivered: asyncio.Future[None] = field(repr=False)


def _shape(frame: Frame) -> Hashable:
    return getattr(frame.image, "shape", None)


class MicroBatcher:
    """Async fair micro-batcher; see the module docstring for batching and error semantics."""

    def __init__(
        self,
        embed_fn: EmbedFn | LaunchingEmbedder | Sequence[EmbedFn | LaunchingEmbedder],
        *,
        max_batch: int,
        max_wait_s: float,
        queue_size: int,
        sink: Sink,
        latency_window: int = 1024,
    ) -> None:
        one = callable(embed_fn) or isinstance(embed_fn, LaunchingEmbedder)
        fns = cast("list[EmbedFn | LaunchingEmbedder]", [embed_fn] if one else list(embed_fn))  # type: ignore[arg-type]
        if not fns:
            raise ValueError("at least one embed function is needed")
        if max_batch < 1 or queue_size < 1 or max_wait_s < 0 or latency_window < 1:
            raise ValueError("max_batch, queue_size and latency_window must be >= 1 and max_wait_s >= 0")
        self._workers = [_worker(i, fn) for i, fn in enumerate(fns)]
        self._sink = sink
        self.max_batch = max_batch
        self.max_wait_s = max_wait_s
        self.queue_size = queue_size  # per stream
        self._queues: dict[str, collections.deque[_Item]] = {}  # streams with waiting frames, first come first
        self._cond = asyncio.Condition()
        self._closing = False
        self._failure: BaseException | None = None  # what ended (or is ending) the run task
        self._current: list[_Item] = []  # the batch being gathered
        self._flights: list[_Flight] = []  # dispatched, not yet delivered, in dispatch order
        self._tasks: set[asyncio.Task[None]] = set()
        self._task: asyncio.Task[None] | None = None
        self._latencies: collections.deque[float] = collections.deque(maxlen=latency_window)
        self._batches = 0
        self._frames = 0
        self._dropped = 0
        self._last_batch_at: float | None = None

    # --- lifecycle ----------------------------------------------------------------------------

    def start(self) -> None:
        """Start the run task on the running event loop and the threads of each embedder; queue each
        embedder's warm-up (compilation) on its device thread, ahead of any batch."""
        if self._task is not None:
            raise RuntimeError("MicroBatcher.start() called twice")
        for w in self._workers:
            w.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"dinostream-embed-{w.index}")
            w.finisher = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"dinostream-finish-{w.index}")
            if w.warm_up is not None:
                w.executor.submit(w.warm_up).add_done_callback(_log_warm_up_failure)
        self._task = asyncio.get_running_loop().create_task(self._run(), name="micro-batcher")

    async def stop(self) -> None:
        """Stop accepting frames, embed and deliver everything accepted, then end.

        Re-raises the exception that ended the run task, if any.
        """
        if self._task is None:
            return
        async with self._cond:
            self._closing = True
            self._cond.notify_all()
        try:
            await self._task
        finally:
            for w in self._workers:
                for ex in (w.executor, w.finisher):
                    if ex is not None:
                        ex.shutdown(wait=False)

    @property
    def task(self) -> asyncio.Task[None] | None:
        """The run task: done with an exception when embedding failed for `put()` frames."""
        return self._task

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done() and not self._closing

    # --- producers -----------------------------------------------------------------------------

    async def put(self, frame: Frame) -> None:
        """Enqueue a frame whose result goes to the sink; waits while its stream's queue is full."""
        await self._enqueue(_Item(frame, 0.0, None))

    async def embed(self, frame: Frame) -> FrameEmbedding:
        """Enqueue a frame and return its embedding (it does not go to the sink)."""
        fut: asyncio.Future[FrameEmbedding] = asyncio.get_running_loop().create_future()
        await self._enqueue(_Item(frame, 0.0, fut))
        return await fut

    async def _enqueue(self, item: _Item) -> None:
        stream = item.frame.stream
        async with self._cond:
            self._check_open()
            await self._cond.wait_for(
                lambda: len(self._queues.get(stream, ())) < self.queue_size or self._closing or self._failed
            )
            self._check_open()  # stop() or a failure while waiting: the frame was not accepted
            item.enqueued = time.monotonic()  # latency counts from acceptance, not from waiting
            self._queues.setdefault(stream, collections.deque()).append(item)
            self._cond.notify_all()

    @property
    def _failed(self) -> bool:
        return self._failure is not None

    def _check_open(self) -> None:
        if self._task is None:
            raise BatcherClosedError("the micro-batcher is not started")
        if isinstance(self._failure, asyncio.CancelledError):
            raise BatcherClosedError("the micro-batcher was cancelled")
        if self._failure is not None:
            raise BatcherClosedError(f"the micro-batcher ended after an error: {self._failure!r}")
        if self._closing:
            raise BatcherClosedError("the micro-batcher is stopping")

    # --- consumer ------------------------------------------------------------------------------

    async def _run(self) -> None:
        try:
            while True:
                worker = await self._free_worker()
                batch = await self._next_batch()
                if not batch:
                    break  # closing and nothing left
                self._dispatch(worker, batch)
            while self._tasks:  # let every dispatched batch finish and be delivered
                await asyncio.wait(set(self._tasks))
            if self._failure is not None:
                raise self._failure
        except BaseException as exc:
            if self._failure is None:
                self._failure = exc
            for t in self._tasks:
                t.cancel()
            await self._fail_pending(self._failure)
            raise

    async def _free_worker(self) -> _Worker:
        """An embedder that can take a batch (the least loaded, then the least used), once fewer
        batches await delivery than the embedders hold in flight, plus one."""
        limit = sum(w.depth for w in self._workers) + 1
        async with self._cond:
            await self._cond.wait_for(
                lambda: self._failed or (len(self._flights) < limit and any(w.free for w in self._workers))
            )
            self._raise_failure()
            return min((w for w in self._workers if w.free), key=lambda w: (w.in_flight, w.frames))

    def _raise_failure(self) -> None:
        if self._failure is not None:
            raise self._failure

    async def _next_batch(self) -> list[_Item]:
        """Wait for a frame, then gather frames of its shape round-robin until max_batch or the deadline."""
        loop = asyncio.get_running_loop()
        async with self._cond:
            await self._cond.wait_for(lambda: bool(self._queues) or self._closing or self._failed)
            self._raise_failure()
            if not self._queues:
                return []
            # The stream with the oldest waiting frame leads: its frame's shape is the batch's shape.
            leader = min(self._queues, key=lambda s: self._queues[s][0].enqueued)
            first = self._queues[leader][0]
            shape = _shape(first.frame)
            deadline = loop.time() + self.max_wait_s - (time.monotonic() - first.enqueued)
            batch = self._current = []
            while True:
                self._gather(batch, leader, shape)
                remaining = deadline - loop.time()
                if len(batch) >= self.max_batch or self._closing or remaining <= 0:
                    break  # full, stopping (flush now rather than wait for frames that cannot come), or due
                self._cond.notify_all()  # room was made: wake producers before waiting
                try:
                    async with asyncio.timeout(remaining):
                        await self._cond.wait_for(lambda: self._has_frames_of(shape) or self._closing or self._failed)
                except TimeoutError:
                    self._gather(batch, leader, shape)
                    break
                self._raise_failure()
            self._current = []
            self._cond.notify_all()
            return batch

    def _gather(self, batch: list[_Item], leader: str, shape: Hashable) -> None:
        """Take frames of `shape` in rounds, one per stream per round, starting with `leader`."""
        streams = list(self._queues)
        start = streams.index(leader) if leader in streams else 0
        order = streams[start:] + streams[:start]
        while len(batch) < self.max_batch:
            took = False
            for stream in order:
                queue = self._queues.get(stream)
                if queue and _shape(queue[0].frame) == shape:
                    batch.append(queue.popleft())
                    took = True
                    if not queue:
                        del self._queues[stream]
                    if len(batch) >= self.max_batch:
                        break
            if not took:
                break

    def _has_frames_of(self, shape: Hashable) -> bool:
        return any(_shape(q[0].frame) == shape for q in self._queues.values())

    def _dispatch(self, worker: _Worker, batch: list[_Item]) -> None:
        loop = asyncio.get_running_loop()
        previous = self._flights[-1].delivered if self._flights else None
        flight = _Flight(batch, loop.create_future())
        self._flights.append(flight)
        worker.launching = True
        worker.in_flight += 1
        task = loop.create_task(self._process(worker, flight, previous), name=f"embed-batch-{worker.index}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _process(self, worker: _Worker, flight: _Flight, previous: asyncio.Future[None] | None) -> None:
        batch = flight.items
        frames = [it.frame for it in batch]
        loop = asyncio.get_running_loop()
        try:
            try:
                try:
                    finish = await loop.run_in_executor(worker.executor, worker.launch, frames)
                finally:
                    worker.launching = False  # the device thread may launch the next batch
                    await self._notify()
                results = await loop.run_in_executor(worker.finisher, finish)
                if len(results) != len(frames):
                    raise RuntimeError(f"embed_fn returned {len(results)} results for {len(frames)} frames")
            except Exception as exc:
                self._embedding_failed(batch, exc)  # before the worker is free: no batch may start after it
                await self._release(worker)
                return
            now = time.monotonic()
            self._latencies.extend(now - it.enqueued for it in batch)
            self._batches += 1
            self._frames += len(batch)
            worker.frames += len(batch)
            self._last_batch_at = now
            await self._release(worker)
            to_sink = []
            for it, res in zip(batch, results, strict=True):
                if res is None:  # the embedder logged why
                    self._dropped += 1
                    if it.future is not None and not it.future.done():
                        it.future.set_exception(FrameDroppedError(f"no embedding for {it.frame.stream}#{it.frame.seq}"))
                elif it.future is None:
                    to_sink.append(res)
                elif not it.future.done():  # the caller may have been cancelled meanwhile
                    it.future.set_result(res)
            if previous is not None:
                await previous  # deliver in dispatch order: each stream stays in order
            if self._failure is not None:
                return  # the batcher is failing: its frames are reported with the others not delivered
            if to_sink:
                try:
                    await self._sink(to_sink)
                except Exception as exc:
                    log.exception(
                        "the sink failed for streams %s; stopping the batcher", sorted({r.stream for r in to_sink})
                    )
                    await self._fail(exc)
                    return
            if flight in self._flights:
                self._flights.remove(flight)
        finally:
            if not flight.delivered.done():
                flight.delivered.set_result(None)
            await self._notify()

    async def _notify(self) -> None:
        async with self._cond:
            self._cond.notify_all()

    async def _release(self, worker: _Worker) -> None:
        worker.in_flight -= 1
        await self._notify()

    def _embedding_failed(self, batch: list[_Item], exc: Exception) -> None:
        for it in batch:
            if it.future is not None and not it.future.done():
                it.future.set_exception(exc)
        lost = [it.frame for it in batch if it.future is None]
        if not lost:
            log.warning("embedding failed for %d one-off frames: %r", len(batch), exc)
            self._flights = [f for f in self._flights if f.items is not batch]  # nothing to deliver
            return
        log.error(
            "embedding failed for a batch of %d frames; streams %s lose frames %s; stopping the batcher",
            len(batch),
            sorted({f.stream for f in lost}),
            [f"{f.stream}#{f.seq}" for f in lost],
            exc_info=exc,
        )
        if self._failure is None:
            self._failure = exc

    async def _fail(self, exc: BaseException) -> None:
        async with self._cond:
            if self._failure is None:
                self._failure = exc
            self._cond.notify_all()

    async def _fail_pending(self, exc: BaseException) -> None:
        """After a failure or cancellation: fail every pending embed() future, log the put() frames lost."""
        err = exc if isinstance(exc, Exception) else BatcherClosedError("the micro-batcher was cancelled")
        async with self._cond:
            pending = [*self._current, *(it for f in self._flights for it in f.items)]
            pending += [it for q in self._queues.values() for it in q]
            self._current = []
            self._flights = []
            self._queues.clear()
            lost = []
            for it in pending:
                if it.future is None:
                    lost.append(it.frame)
                elif not it.future.done():
                    it.future.set_exception(err)
            self._closing = True
            self._cond.notify_all()  # blocked put() calls raise BatcherClosedError
        if lost:
            log.error(
                "micro-batcher stopped with %d accepted frames not delivered (streams %s): %s%s",
                len(lost),
                sorted({f.stream for f in lost}),
                [f"{f.stream}#{f.seq}" for f in lost[:50]],
                " ..." if len(lost) > 50 else "",
            )

    # --- observability -------------------------------------------------------------------------

    def stats(self) -> BatcherStats:
        lat = np.fromiter(self._latencies, dtype=np.float64, count=len(self._latencies))
        p50, p99 = (float(v) for v in np.percentile(lat, [50, 99])) if lat.size else (None, None)
        return BatcherStats(
            batches=self._batches,
            frames=self._frames,
            mean_batch_size=self._frames / self._batches if self._batches else 0.0,
            latency_p50_s=p50,
            latency_p99_s=p99,
            queued=sum(len(q) for q in self._queues.values()),
            last_batch_at=self._last_batch_at,
            worker_frames=tuple(w.frames for w in self._workers),
            dropped=self._dropped,
        )


def _log_warm_up_failure(fut: object) -> None:
    """A failed warm-up is logged; the first batch then meets the same error and fails loudly."""
    exc = fut.exception()  # type: ignore[attr-defined]
    if exc is not None:
        log.error("embedder warm-up failed: %r", exc, exc_info=exc)
