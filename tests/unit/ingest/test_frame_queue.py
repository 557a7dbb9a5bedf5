import asyncio
import threading

import pytest

from dinostream.ingest.frame_queue import FrameQueue
from tests.waiting import started, wait_for_sync, waiting_in

pytestmark = pytest.mark.timeout(20)


async def _drain(queue: FrameQueue) -> list:
    return [item async for item in queue]


async def test_drop_oldest_counts_drops_and_keeps_newest():
    queue: FrameQueue[int] = FrameQueue(3, drop_oldest=True)
    producer = threading.Thread(target=lambda: ([queue.put(i) for i in range(10)], queue.finish()))
    producer.start()
    producer.join(5)

    assert await _drain(queue) == [7, 8, 9]
    assert queue.dropped == 7


async def test_blocking_mode_blocks_the_producer_and_loses_nothing():
    queue: FrameQueue[int] = FrameQueue(4, drop_oldest=False)
    produced = []

    def produce():
        for i in range(200):
            queue.put(i)
            produced.append(i)
        queue.finish()

    producer = threading.Thread(target=produce)
    producer.start()
    wait_for_sync(lambda: waiting_in(producer, FrameQueue.put), 5, "the producer to wait in a put")
    assert len(queue) == 4
    assert producer.is_alive() and len(produced) == 4  # the fifth put waits for room

    items = []
    async for item in queue:
        items.append(item)
        assert len(queue) <= 4
        if item % 16 == 0:
            await asyncio.sleep(0.001)  # a slow consumer
    producer.join(5)

    assert items == list(range(200))
    assert queue.dropped == 0


async def test_close_unblocks_a_blocked_producer():
    queue: FrameQueue[int] = FrameQueue(2, drop_oldest=False)
    queue.put(0)
    queue.put(1)
    result = []
    producer = threading.Thread(target=lambda: result.append(queue.put(2)))
    producer.start()
    wait_for_sync(lambda: waiting_in(producer, FrameQueue.put), 5, "the producer to wait for room")
    assert producer.is_alive()

    queue.close()
    producer.join(5)

    assert not producer.is_alive()
    assert result == [False]  # the producer learns that nobody is listening
    assert queue.put(3) is False
    with pytest.raises(StopAsyncIteration):
        await queue.get()


async def test_producer_exception_reaches_the_consumer_after_queued_items():
    queue: FrameQueue[int] = FrameQueue(8, drop_oldest=False)
    queue.put(1)
    queue.put(2)
    queue.fail(ValueError("decoder exploded"))

    items = []
    with pytest.raises(ValueError, match="decoder exploded"):
        async for item in queue:
            items.append(item)
    assert items == [1, 2]


async def test_end_of_stream_stops_iteration_every_time():
    queue: FrameQueue[str] = FrameQueue(2, drop_oldest=True)
    queue.put("a")
    queue.finish()

    assert await _drain(queue) == ["a"]
    with pytest.raises(StopAsyncIteration):
        await queue.get()
    with pytest.raises(RuntimeError, match="after finish"):
        queue.put("b")


@pytest.mark.parametrize("signal", ["put", "finish", "fail", "close"])
async def test_a_waiting_consumer_is_woken_from_another_thread(signal):
    queue: FrameQueue[str] = FrameQueue(2, drop_oldest=False)
    action = {
        "put": lambda: queue.put("late"),
        "finish": queue.finish,
        "fail": lambda: queue.fail(OSError("gone")),
        "close": queue.close,
    }[signal]
    getting = await started(queue.get())  # the queue is empty: it waits
    assert not getting.done()
    waker = threading.Thread(target=action)
    waker.start()
    try:
        if signal == "put":
            assert await asyncio.wait_for(getting, 5) == "late"
        elif signal == "fail":
            with pytest.raises(OSError, match="gone"):
                await asyncio.wait_for(getting, 5)
        else:
            with pytest.raises(StopAsyncIteration):
                await asyncio.wait_for(getting, 5)
    finally:
        waker.join(5)


async def test_a_cancelled_get_leaves_the_queue_usable():
    queue: FrameQueue[int] = FrameQueue(2, drop_oldest=False)
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(queue.get(), 0.05)
    queue.put(7)
    assert await asyncio.wait_for(queue.get(), 5) == 7


def test_maxsize_must_be_positive():
    with pytest.raises(ValueError, match="maxsize"):
        FrameQueue(0, drop_oldest=True)
