"""Micro-batching across all streams in front of the blocking embedder.

Frames from every stream share one bounded queue. A batch closes when it holds `max_batch`
frames or `max_wait_s` after its first frame was enqueued, whichever comes first; it is then
embedded on the batcher's own single-thread executor (never on the event loop) and the results
go, in enqueue order, to the sink. `embed()` takes the same path but hands its frame's result
back to the caller, for one-off queries.

    >>> batcher = MicroBatcher(embedder.embed, max_batch=16, max_wait_s=0.05, queue_size=64, sink=publish)
    >>> batcher.start()
    >>> await batcher.put(frame)      # waits while the queue is full: backpressure
    >>> await batcher.stop()          # embeds everything accepted, then returns

Errors: when `embed_fn` (or the sink) raises, nothing is dropped silently. Callers of `embed()`
whose frames were in the failed batch get the exception. If the batch also held frames from
`put()`, those frames cannot be delivered: the failure is logged with their stream ids, every
frame still queued fails the same way (their `embed()` callers get the exception, blocked
`put()` calls raise `BatcherClosedError`), and the run task ends with the original exception,
which `stop()` re-raises and `task` exposes, so the owner restarts the stage or exits non-zero.
A model failure (CUDA out of memory, a driver error) is rarely specific to one frame, so
carrying on would only drop frame after frame. A batch made only of `embed()` frames fails
only those callers and the batcher carries on.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from dinostream.records import FrameEmbedding
from ingest.source import Frame

log = logging.getLogger(__name__)

EmbedFn = Callable[[list[Frame]], list[FrameEmbedding]]
Sink = Callable[[list[FrameEmbedding]], Awaitable[None]]


class BatcherClosedError(RuntimeError):
    """The batcher is not running (not started, stopping, or ended by an embedding failure)."""


@dataclass(frozen=True)
class BatcherStats:
    """Counters since start; latencies (enqueue -> result) over the most recent frames."""

    batches: int
    frames: int
    mean_batch_size: float
    latency_p50_s: float | None  # None until a frame has been embedded
    latency_p99_s: float | None
    queued: int  # frames waiting now
    last_batch_at: float | None  # time.monotonic() when the last batch finished: a liveness signal


@dataclass(eq=False)
class _Item:
    frame: Frame
    enqueued: float  # time.monotonic() when accepted into the queue
    future: asyncio.Future[FrameEmbedding] | None  # set for embed(), None for put()


class MicroBatcher:
    """Async micro-batcher; see the module docstring for batching and error semantics."""

    def __init__(
        self,
        embed_fn: EmbedFn,
        *,
        max_batch: int,
        max_wait_s: float,
        queue_size: int,
        sink: Sink,
        latency_window: int = 1024,
    ) -> None:
        if max_batch < 1 or queue_size < 1 or max_wait_s < 0 or latency_window < 1:
            raise ValueError("max_batch, queue_size and latency_window must be >= 1 and max_wait_s >= 0")
        self._embed_fn = embed_fn
        self._sink = sink
        self.max_batch = max_batch
        self.max_wait_s = max_wait_s
        self.queue_size = queue_size
        self._items: collections.deque[_Item] = collections.deque()
        self._cond = asyncio.Condition()
        self._closing = False
        self._failure: BaseException | None = None
        self._current: list[_Item] = []  # the batch being gathered or embedded
        self._task: asyncio.Task[None] | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._latencies: collections.deque[float] = collections.deque(maxlen=latency_window)
        self._batches = 0
        self._frames = 0
        self._last_batch_at: float | None = None

    # --- lifecycle ----------------------------------------------------------------------------

    def start(self) -> None:
        """Start the run task on the running event loop and the model's executor thread."""
        if self._task is not None:
            raise RuntimeError("MicroBatcher.start() called twice")
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="dinostream-embed")
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
            if self._executor is not None:
                self._executor.shutdown(wait=False)

    @property
    def task(self) -> asyncio.Task[None] | None:
        """The run task: done with an exception when embedding failed for `put()` frames."""
        return self._task

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done() and not self._closing

    # --- producers -----------------------------------------------------------------------------

    async def put(self, frame: Frame) -> None:
        """Enqueue a frame whose result goes to the sink; waits while the queue is full."""
        await self._enqueue(_Item(frame, 0.0, None))

    async def embed(self, frame: Frame) -> FrameEmbedding:
        """Enqueue a frame and return its embedding (it does not go to the sink)."""
        fut: asyncio.Future[FrameEmbedding] = asyncio.get_running_loop().create_future()
        await self._enqueue(_Item(frame, 0.0, fut))
        return await fut

    async def _enqueue(self, item: _Item) -> None:
        async with self._cond:
            self._check_open()
            await self._cond.wait_for(lambda: len(self._items) < self.queue_size or self._closing)
            self._check_open()  # stop() or a failure while waiting: the frame was not accepted
            item.enqueued = time.monotonic()  # latency counts from acceptance, not from waiting
            self._items.append(item)
            self._cond.notify_all()

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
                batch = await self._next_batch()
                if not batch:
                    return  # closing and nothing left
                await self._process(batch)
                self._current = []
        except BaseException as exc:
            self._failure = exc
            await self._fail_queued(exc)
            raise

    async def _next_batch(self) -> list[_Item]:
        """Wait for a first frame, then gather more until max_batch or its max_wait_s deadline."""
        loop = asyncio.get_running_loop()
        async with self._cond:
            await self._cond.wait_for(lambda: bool(self._items) or self._closing)
            if not self._items:
                return []
            batch = self._current = [self._items.popleft()]
            deadline = loop.time() + self.max_wait_s - (time.monotonic() - batch[0].enqueued)
            while len(batch) < self.max_batch:
                if self._items:
                    batch.append(self._items.popleft())
                    continue
                remaining = deadline - loop.time()
                if self._closing or remaining <= 0:
                    break  # stopping: flush now rather than wait for frames that cannot come
                self._cond.notify_all()  # room was made: wake producers before waiting
                try:
                    async with asyncio.timeout(remaining):
                        await self._cond.wait_for(lambda: bool(self._items) or self._closing)
                except TimeoutError:
                    break
            self._cond.notify_all()
            return batch

    async def _process(self, batch: list[_Item]) -> None:
        frames = [it.frame for it in batch]
        loop = asyncio.get_running_loop()
        try:
            results = await loop.run_in_executor(self._executor, self._embed_fn, frames)
            if len(results) != len(frames):
                raise RuntimeError(f"embed_fn returned {len(results)} results for {len(frames)} frames")
        except Exception as exc:
            for it in batch:
                if it.future is not None and not it.future.done():
                    it.future.set_exception(exc)
            lost = [it.frame for it in batch if it.future is None]
            if lost:
                log.error(
                    "embedding failed for a batch of %d frames; streams %s lose frames %s; stopping the batcher",
                    len(batch),
                    sorted({f.stream for f in lost}),
                    [f"{f.stream}#{f.seq}" for f in lost],
                    exc_info=exc,
                )
                raise
            log.warning("embedding failed for %d one-off frames: %r", len(batch), exc)
            return
        now = time.monotonic()
        self._latencies.extend(now - it.enqueued for it in batch)
        self._batches += 1
        self._frames += len(batch)
        self._last_batch_at = now
        to_sink = []
        for it, res in zip(batch, results, strict=True):
            if it.future is None:
                to_sink.append(res)
            elif not it.future.done():  # the caller may have been cancelled meanwhile
                it.future.set_result(res)
        if to_sink:
            try:
                await self._sink(to_sink)
            except Exception:
                log.exception(
                    "the sink failed for streams %s; stopping the batcher", sorted({r.stream for r in to_sink})
                )
                raise

    async def _fail_queued(self, exc: BaseException) -> None:
        """After a failure or cancellation: fail every pending embed() future, log the put() frames lost."""
        err = exc if isinstance(exc, Exception) else BatcherClosedError("the micro-batcher was cancelled")
        async with self._cond:
            lost = []
            pending = [*self._current, *self._items]
            self._current = []
            self._items.clear()
            for it in pending:
                if it.future is None:
                    lost.append(it.frame)
                elif not it.future.done():
                    it.future.set_exception(err)
            self._closing = True
            self._cond.notify_all()  # blocked put() calls raise BatcherClosedError
        if lost:
            log.error(
                "micro-batcher stopped with %d accepted frames not delivered (streams %s)",
                len(lost),
                sorted({f.stream for f in lost}),
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
            queued=len(self._items),
            last_batch_at=self._last_batch_at,
        )
