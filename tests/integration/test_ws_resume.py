"""Resume without gaps on the real broker: a client that reconnects with its last cursor gets exactly
the events it missed, in order, then live ones, from the same gateway and from a restarted one;
one message at a time and in batches ({"batch": true}, as the dashboard asks)."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections import deque
from collections.abc import AsyncIterator
from typing import Any

import pytest
import uvicorn
from fastapi import FastAPI
from websockets.asyncio.client import ClientConnection, connect

from dinostream.core.embedded_broker import EmbeddedBroker
from dinostream.core.kafka_io import ensure_topics, make_producer
from dinostream.core.records import Event, event_id
from dinostream.core.settings import HttpSettings, KafkaSettings
from dinostream.dashboard.live_feed import LiveFeed
from dinostream.dashboard.live_hub import LiveHub
from dinostream.dashboard.ws_api import ws_router

pytestmark = pytest.mark.integration

STREAMS = ("cam0", "cam1", "cam2", "cam3")  # keyed by stream: spread over the 2 partitions


def make_event(k: int, stream: str | None = None) -> Event:
    stream = stream or STREAMS[k % len(STREAMS)]
    return Event(
        id=event_id(stream, "scene_change", k),
        type="scene_change",
        stream=stream,
        t=float(k),
        t_start=float(k),
        t_end=float(k),
        ts=1e9 + k,
        score=0.5,
        frames=(k, k + 1),
    )


@contextlib.asynccontextmanager
async def gateway(broker: EmbeddedBroker, kafka: KafkaSettings) -> AsyncIterator[tuple[str, LiveHub]]:
    """A fresh hub + live feed + uvicorn on port 0: what `dinostream up` serves, without the rest."""
    hub = LiveHub(queue_size=256, recent=0)
    feed = LiveFeed(hub, broker.bootstrap, kafka)
    await feed.start()
    feed_task = asyncio.create_task(feed.run())
    app = FastAPI()
    app.include_router(ws_router(settings=HttpSettings(), hub=hub, event_log=feed.event_log))
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="off"))
    task = asyncio.create_task(server.serve())
    try:
        async with asyncio.timeout(10):
            while not server.started:
                assert not task.done(), "uvicorn exited before it started"
                await asyncio.sleep(0.01)
        host, port = server.servers[0].sockets[0].getsockname()[:2]
        yield f"ws://{host}:{port}/ws/events", hub
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 10)
        feed_task.cancel()
        await asyncio.gather(feed_task, return_exceptions=True)


class Client:
    """A subscribed websocket that hands out messages one by one, unpacking batches."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.batches = 0
        self._pending: deque[dict[str, Any]] = deque()

    async def next_event(self) -> dict[str, Any]:
        while True:
            if not self._pending:
                msg = json.loads(await asyncio.wait_for(self.ws.recv(), 30))
                if msg["kind"] == "batch":
                    self.batches += 1
                    self._pending.extend(msg["messages"])
                else:
                    self._pending.append(msg)
                continue
            msg = self._pending.popleft()
            if msg["kind"] != "hello":
                return msg

    async def close(self) -> None:
        await self.ws.close()


async def subscribe(url: str, batch: bool, **first: Any) -> Client:
    ws = await connect(url, subprotocols=["dinostream.v1"])  # type: ignore[list-item]
    await ws.send(json.dumps({**first, "batch": batch}))
    return Client(ws)


async def produce(producer: Any, topic: str, events: list[Event]) -> None:
    for e in events:
        await producer.send_and_wait(topic, e.encode(), key=e.key)


def sentinels(k: int) -> list[Event]:
    """One marker event per stream: each stream stays in order, so once a stream's marker arrived
    everything produced before it on that stream has arrived (or never will)."""
    return [make_event(k + i, s) for i, s in enumerate(STREAMS)]


async def read_until_sentinels(ws: Client, marks: list[Event]) -> list[dict[str, Any]]:
    """Every event message up to the markers (excluded), until all markers arrived."""
    got = []
    waiting = {e.id for e in marks}
    while waiting:
        msg = await ws.next_event()
        assert msg["kind"] == "event", msg
        if msg["event"]["id"] in waiting:
            waiting.discard(msg["event"]["id"])
        else:
            assert msg["event"]["id"] not in {e.id for e in marks}, "a marker came twice"
            got.append(msg)
    return got


def assert_exactly(got: list[dict[str, Any]], expected: list[Event]) -> None:
    ids = [m["event"]["id"] for m in got]
    assert len(ids) == len(set(ids)), "an event was delivered twice"
    assert sorted(ids) == sorted(e.id for e in expected), "missing or extra events"
    for stream in STREAMS:  # each stream (one partition) in the order it was produced
        assert [m["event"]["t"] for m in got if m["event"]["stream"] == stream] == [
            e.t for e in expected if e.stream == stream
        ]


@pytest.mark.parametrize("batch", [False, True], ids=["one-by-one", "batched"])
async def test_resume_from_cursor_gets_exactly_the_missed_events_then_live(
    broker: EmbeddedBroker, kafka_settings: KafkaSettings, batch: bool
) -> None:
    await ensure_topics(broker.bootstrap, kafka_settings)
    producer = make_producer(broker.bootstrap, kafka_settings, embedded=True)
    await producer.start()
    topic = kafka_settings.events_topic
    try:
        first = [make_event(k) for k in range(12)]
        missed = [make_event(k) for k in range(12, 30)]
        async with gateway(broker, kafka_settings) as (url, hub):
            ws = await subscribe(url, batch)
            await produce(producer, topic, first)
            seen = [await ws.next_event() for _ in range(5)]
            assert {m["event"]["id"] for m in seen} <= {e.id for e in first}
            cursor = seen[-1]["cursor"]
            await ws.close()

            await produce(producer, topic, missed)
            marks = sentinels(900)
            ws = await subscribe(url, batch, resume_from=cursor)
            await produce(producer, topic, marks)
            got = await read_until_sentinels(ws, marks)
            seen_ids = {m["event"]["id"] for m in seen}
            assert_exactly(got, [e for e in first + missed if e.id not in seen_ids])
            assert all(m["cursor"] for m in got)
            live = make_event(1000, "cam1")  # then live, once
            await produce(producer, topic, [live])
            assert (await ws.next_event())["event"]["id"] == live.id
            last_cursor = (await asyncio.wait_for(_last_cursor_after(ws, producer, topic), 30))["cursor"]
            await ws.close()
            assert hub.stats()["resumes"] == 1 and hub.stats()["resume_gaps"] == 0

        # The gateway restarts (a new hub and feed that start at the topic's end): events produced
        # while it was down and the cursor from before come back from the topic.
        down = [make_event(k) for k in range(2000, 2010)]
        await produce(producer, topic, down)
        async with gateway(broker, kafka_settings) as (url, hub):
            ws = await subscribe(url, batch, resume_from=last_cursor)
            after = [make_event(k) for k in range(3000, 3006)]
            await produce(producer, topic, after)
            marks = sentinels(3900)
            await produce(producer, topic, marks)
            got = await read_until_sentinels(ws, marks)
            assert_exactly(got, down + after)
            await ws.close()
            # The events read back from the topic go out together to a client that asked for batches.
            assert (ws.batches > 0) is batch
    finally:
        await producer.stop()


async def _last_cursor_after(ws: Client, producer: Any, topic: str) -> dict[str, Any]:
    marker = make_event(1001, "cam3")
    await produce(producer, topic, [marker])
    msg = await ws.next_event()
    assert msg["event"]["id"] == marker.id
    return msg
