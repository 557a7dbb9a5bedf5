"""Waiting in tests: poll a condition until it holds or a deadline passes, never sleep a fixed time.

The deadline only bounds a failure; a passing test returns as soon as the condition holds, so a
loaded machine makes tests slower, not red. A check that something did NOT happen first waits
for a marker that must happen after it (a later record, the watcher's next step), then asserts.

    await wait_for(lambda: sink.stats.frames == 30, 60, "the sink to index 30 frames")
    wait_for_sync(lambda: len(queue) == 4, 5, "the producer to fill the queue")
    await wait_for(lambda: http_ready(), 30, "the server")      # an awaitable result is awaited
"""

from __future__ import annotations

import asyncio
import inspect
import sys
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any


async def wait_for(
    predicate: Callable[[], object | Awaitable[object]], timeout: float, what: str, *, interval: float = 0.02
) -> None:
    """Return once `predicate()` is truthy (awaited if it returns an awaitable); fail naming
    `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up after {timeout} s waiting for {what}")
        await asyncio.sleep(interval)


def wait_for_sync(predicate: Callable[[], object], timeout: float, what: str, *, interval: float = 0.01) -> None:
    """`wait_for` for code outside an event loop."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up after {timeout} s waiting for {what}")
        time.sleep(interval)


def waiting_in(thread: threading.Thread, function: Callable[..., Any]) -> bool:
    """Whether `thread` is blocked in a `threading` wait (a condition, an event) called from
    `function`: the proof, for a check that a call does not return, that it was made and waits."""
    frame = sys._current_frames().get(thread.ident or -1)
    if frame is None or frame.f_code.co_filename != threading.__file__:
        return False
    code = getattr(function, "__code__", None)
    while frame is not None:
        if frame.f_code is code:
            return True
        frame = frame.f_back
    return False


async def started(coro: Awaitable[Any]) -> asyncio.Task[Any]:
    """A task for `coro` that has already run up to its first wait (or to its end): the proof,
    for a check that an awaited call does not finish, that the call was made."""
    entered = asyncio.Event()

    async def run() -> Any:
        entered.set()
        return await coro

    task = asyncio.create_task(run())
    await entered.wait()  # the task's first step runs on from entered.set() to its first real wait
    return task
