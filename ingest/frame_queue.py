"""A bounded queue from a decode thread to the event loop.

The producer is a plain thread (it may block); the consumer is one coroutine. Items are handed
over by reference. When full, live video drops the oldest item and counts it; files block the
producer instead, so no frame is lost, until the consumer takes one or closes the queue.

    queue = FrameQueue(32, drop_oldest=True)
    # decode thread:                          # event loop:
    if not queue.put(frame): return           async for frame in queue: ...
    queue.finish()  # or queue.fail(exc)
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from typing import Generic, TypeVar

T = TypeVar("T")


class FrameQueue(Generic[T]):
    """Bounded thread-to-asyncio queue with drop-oldest or blocking back-pressure.

    `put`, `finish` and `fail` may be called from any thread; `get` (and `async for`) from one
    coroutine at a time. `close` may be called from anywhere and wakes both sides.
    """

    def __init__(self, maxsize: int, *, drop_oldest: bool, loop: asyncio.AbstractEventLoop | None = None) -> None:
        if maxsize < 1:
            raise ValueError(f"maxsize must be at least 1, got {maxsize}")
        self.maxsize = maxsize
        self.drop_oldest = drop_oldest
        self.dropped = 0  # items discarded because the queue was full (drop_oldest only)
        self._loop = loop
        self._items: deque[T] = deque()
        self._lock = threading.Lock()
        self._not_full = threading.Condition(self._lock)
        self._waiter: asyncio.Future[None] | None = None  # the consumer's wake-up, set while it waits
        self._ended = False  # the producer has no more items
        self._error: BaseException | None = None  # ... because of this
        self._closed = False  # the consumer has gone: puts are refused, items discarded

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)

    @property
    def closed(self) -> bool:
        return self._closed

    # -- producer side (any thread) ---------------------------------------------------------

    def put(self, item: T) -> bool:
        """Queue `item`; return False (dropping it) when the queue has been closed.

        When full: drop the oldest item if `drop_oldest`, otherwise block until there is room
        or `close()` is called. Never call the blocking form from the event loop's thread.
        """
        with self._lock:
            if self._ended:
                raise RuntimeError("put() after finish() or fail()")
            while not self._closed and len(self._items) >= self.maxsize:
                if self.drop_oldest:
                    self._items.popleft()
                    self.dropped += 1
                else:
                    self._not_full.wait()
            if self._closed:
                return False
            self._items.append(item)
            self._wake_consumer()
            return True

    def finish(self) -> None:
        """Signal the end of the stream; the consumer gets the queued items, then stops."""
        self._end(None)

    def fail(self, exc: BaseException) -> None:
        """Signal that the producer failed; the consumer gets the queued items, then `exc`."""
        self._end(exc)

    def _end(self, exc: BaseException | None) -> None:
        with self._lock:
            if self._ended:
                return
            self._ended, self._error = True, exc
            self._wake_consumer()

    # -- consumer side (one coroutine) ------------------------------------------------------

    async def get(self) -> T:
        """Return the next item; raise StopAsyncIteration at the end, or the producer's error."""
        while True:
            with self._lock:
                if self._items:
                    item = self._items.popleft()
                    self._not_full.notify()
                    return item
                if self._closed:
                    raise StopAsyncIteration
                if self._ended:
                    if self._error is not None:
                        raise self._error
                    raise StopAsyncIteration
                if self._waiter is not None:
                    raise RuntimeError("FrameQueue.get() is already being awaited by another coroutine")
                loop = self._loop or asyncio.get_running_loop()
                waiter = self._waiter = loop.create_future()
            try:
                await waiter
            finally:
                with self._lock:
                    if self._waiter is waiter:
                        self._waiter = None

    def close(self) -> None:
        """Stop both sides: discard queued items, refuse puts, unblock the producer and the consumer."""
        with self._lock:
            self._closed = True
            self._items.clear()
            self._not_full.notify_all()
            self._wake_consumer()

    def __aiter__(self) -> FrameQueue[T]:
        return self

    async def __anext__(self) -> T:
        return await self.get()

    # -- internals (called with the lock held) -----------------------------------------------

    def _wake_consumer(self) -> None:
        waiter, self._waiter = self._waiter, None
        if waiter is None:
            return
        try:
            waiter.get_loop().call_soon_threadsafe(_set_done, waiter)
        except RuntimeError:  # the loop is closed: nobody is left to wake
            pass


def _set_done(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)
