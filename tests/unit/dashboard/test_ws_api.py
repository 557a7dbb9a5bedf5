"""/ws/events served for real by uvicorn on port 0: filters, token auth, Origin allowlist, resume, 1013."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

import numpy as np
import pytest
from fastapi import FastAPI
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from dinostream.core.records import Event, RecordError, event_id
from dinostream.core.settings import HttpSettings
from dinostream.dashboard.live_hub import LiveHub
from dinostream.dashboard.ws_api import origin_allowed, parse_subscribe, pick_subprotocol, ws_router
from tests.serving import serve as serve_on_port

TOKEN = "s3cret-token-42"


def make_event(stream: str, key: int, *, type_: str = "scene_change", score: float = 0.5, **details: Any) -> Event:
    return Event(
        id=event_id(stream, type_, key),
        type=type_,
        stream=stream,
        t=float(key),
        t_start=float(key),
        t_end=float(key),
        ts=1e9 + key,
        score=score,
        details=details,
    )


@contextlib.asynccontextmanager
async def serve(hub: LiveHub, ws_impl: str = "websockets-sansio", **settings: Any) -> AsyncIterator[str]:
    app = FastAPI()
    app.include_router(ws_router(settings=HttpSettings(**settings), hub=hub))
    async with serve_on_port(app, ws_impl) as base:
        yield base.replace("http://", "ws://") + "/ws/events"


async def recv(ws: ClientConnection) -> dict[str, Any]:
    return json.loads(await asyncio.wait_for(ws.recv(), 5))


async def open_sub(url: str, first: dict[str, Any] | None = None, **kw: Any) -> ClientConnection:
    ws = await connect(url, **kw)
    await ws.send(json.dumps(first or {}))
    return ws


async def events_until(ws: ClientConnection, last_id: str) -> list[dict[str, Any]]:
    """Event messages up to and including the one with `last_id` (frame notices kept too)."""
    out = []
    while True:
        msg = await recv(ws)
        if msg["kind"] == "hello":
            continue
        out.append(msg)
        if msg["kind"] == "event" and msg["event"]["id"] == last_id:
            return out


async def closed_with(ws: ClientConnection) -> tuple[int, str]:
    with pytest.raises(ConnectionClosed) as closed:
        while True:
            await asyncio.wait_for(ws.recv(), 5)
    rcvd = closed.value.rcvd
    assert rcvd is not None
    return rcvd.code, rcvd.reason


# ---------- filters ----------


@pytest.mark.integration  # uvicorn on a real socket
async def test_filters_apply_to_events_and_frame_notices_by_stream() -> None:
    hub = LiveHub(queue_size=64)
    async with serve(hub) as url:
        ws = await open_sub(url, {"streams": ["cam1", "cam2"], "types": ["anomaly"], "min_score": 0.5})
        everything = await open_sub(url)
        hello = await recv(ws)
        assert hello["kind"] == "hello"
        await recv(everything)
        sent = [
            make_event("cam1", 1, type_="anomaly", score=0.9),  # yes
            make_event("cam1", 2, type_="anomaly", score=0.2),  # score too low
            make_event("cam3", 3, type_="anomaly", score=0.9),  # other stream
            make_event("cam2", 4, type_="scene_change", score=0.9),  # other type
            make_event("cam2", 5, type_="anomaly", score=0.5),  # yes (>=)
        ]
        for e in sent[:3]:
            hub.publish_event(e)
        hub.publish_frame("cam3", 0, 0.0, b"\xff\xd8", model="m", untrained=False)  # other stream
        hub.publish_frame("cam2", 0, 0.0, b"\xff\xd8", model="m", untrained=False)  # yes
        for e in sent[3:]:
            hub.publish_event(e)
        got = await events_until(ws, sent[4].id)
        assert [(m["kind"], m.get("event", m).get("stream"), m.get("event", {}).get("t")) for m in got] == [
            ("event", "cam1", 1.0),
            ("frame", "cam2", None),
            ("event", "cam2", 5.0),
        ]
        assert len(await events_until(everything, sent[4].id)) == 7  # the others still get everything
        await ws.close()
        await everything.close()


@pytest.mark.integration  # uvicorn on a real socket
@pytest.mark.parametrize(
    ("first", "problem"),
    [
        ("not json", "not JSON"),
        ('["cam1"]', "JSON object"),
        ('{"stream": ["cam1"]}', "unknown field 'stream'"),
        ('{"streams": ["../x"]}', "invalid stream id"),
        ('{"types": ["explosion"]}', "unknown event type 'explosion'"),
        ('{"min_score": "high"}', "min_score must be a finite number"),
        ('{"resume_from": ""}', "resume_from"),
        ('{"batch": "yes"}', "batch must be true or false"),
    ],
    ids=["not-json", "not-object", "unknown-field", "bad-stream", "bad-type", "bad-score", "empty-resume", "bad-batch"],
)
async def test_bad_subscribe_message_is_closed_with_4400_and_the_problem(first: str, problem: str) -> None:
    with pytest.raises(RecordError, match=problem):
        parse_subscribe(first)
    async with serve(LiveHub(queue_size=8)) as url, connect(url) as ws:
        await ws.send(first)
        code, reason = await closed_with(ws)
    assert code == 4400 and problem in reason


# ---------- batches ----------


@pytest.mark.integration  # uvicorn on a real socket
async def test_batch_client_gets_what_queued_up_as_one_batch_and_single_messages_otherwise() -> None:
    hub = LiveHub(queue_size=64, recent=3)
    for k in range(3):
        hub.publish_event(make_event("cam1", k))
    async with serve(hub) as url:
        batched = await open_sub(url, {"batch": True})
        plain = await open_sub(url, {"batch": False})
        assert (await recv(batched))["kind"] == "hello"  # alone: clients wait for it
        assert (await recv(plain))["kind"] == "hello"
        with hub.subscribe() as probe:
            recent = [json.loads(t) for t in probe.initial[1:]]
        assert await recv(batched) == {"kind": "batch", "messages": recent}  # the backlog in one message
        assert [await recv(plain) for _ in recent] == recent

        # Published together (as the live feed does with what it fetched): queued, sent as one.
        live = [make_event("cam2", k, type_="anomaly") for k in range(5)]
        for e in live[:3]:
            hub.publish_event(e)
        hub.publish_frame("cam2", 0, 0.0, b"\xff\xd8", model="m", untrained=False)
        for e in live[3:]:
            hub.publish_event(e)
        batch = await recv(batched)
        assert batch["kind"] == "batch"
        singles = [await recv(plain) for _ in range(6)]
        assert batch["messages"] == singles  # each message unchanged inside, in order
        assert [m.get("event", {}).get("id") for m in singles] == [e.id for e in live[:3]] + [None] + [
            e.id for e in live[3:]
        ]

        # A client that keeps up gets one message at a time, not a batch of one.
        hub.publish_event(one := make_event("cam3", 1))
        assert (await recv(batched))["event"]["id"] == one.id
        assert (await recv(plain))["event"]["id"] == one.id
        await batched.close()
        await plain.close()
    assert hub.stats()["messages_sent"] == 2 * (1 + 3 + 6 + 1)  # messages, not websocket frames


# ---------- auth ----------


@pytest.mark.integration  # uvicorn on a real socket
@pytest.mark.parametrize("ws_impl", ["websockets", "websockets-sansio"])
async def test_token_in_the_first_message_or_as_subprotocol(ws_impl: str) -> None:
    hub = LiveHub(queue_size=8)
    hub.publish_event(make_event("cam1", 1))
    async with serve(hub, ws_impl, api_token=TOKEN) as url:
        async with connect(url) as ws:
            await ws.send(json.dumps({"token": TOKEN}))
            assert (await recv(ws))["kind"] == "hello"
            assert (await recv(ws))["event"]["t"] == 1.0
        # Subprotocol: no message needed; the server echoes dinostream.v1, never the token.
        async with connect(url, subprotocols=["dinostream.v1", f"dinostream.token.{TOKEN}"]) as ws:  # type: ignore[list-item]
            assert ws.subprotocol == "dinostream.v1"
            assert (await recv(ws))["kind"] == "hello"
        async with connect(url, subprotocols=[f"dinostream.token.{TOKEN}"]) as ws:  # type: ignore[list-item]
            assert ws.subprotocol == f"dinostream.token.{TOKEN}"
            await ws.send("{}")
            assert (await recv(ws))["kind"] == "hello"


@pytest.mark.integration  # uvicorn on a real socket
@pytest.mark.parametrize(
    ("subprotocols", "first", "reason"),
    [
        (None, {"token": "wrong-token"}, "invalid token"),
        (None, {"streams": ["cam1"]}, "missing token"),
        (["dinostream.token.wrong-token"], None, "invalid token"),
        (None, None, "no subscribe message within 0.2 s"),
    ],
    ids=["wrong-in-message", "missing", "wrong-subprotocol", "silent"],
)
async def test_bad_or_missing_token_closes_with_4401_or_4408(
    subprotocols: list[str] | None, first: dict[str, Any] | None, reason: str
) -> None:
    hub = LiveHub(queue_size=8)
    hub.publish_event(make_event("cam1", 1))
    async with serve(hub, api_token=TOKEN, ws_first_message_timeout_s=0.2) as url:
        async with connect(url, subprotocols=subprotocols) as ws:  # type: ignore[arg-type]
            if first is not None:
                await ws.send(json.dumps(first))
            with pytest.raises(ConnectionClosed) as closed:
                while True:  # nothing may arrive before the close: no hello, no event
                    msg = await asyncio.wait_for(ws.recv(), 5)
                    pytest.fail(f"got a message before authenticating: {msg!r}")
    rcvd = closed.value.rcvd
    assert rcvd is not None and reason in rcvd.reason
    assert rcvd.code == (4408 if reason.startswith("no subscribe") else 4401)
    assert hub.clients == 0


@pytest.mark.integration  # uvicorn on a real socket
async def test_silent_client_gets_everything_when_no_token_is_required() -> None:
    hub = LiveHub(queue_size=8)
    hub.publish_event(make_event("cam1", 1))
    async with serve(hub, ws_first_message_timeout_s=0.2) as url, connect(url) as ws:
        assert (await recv(ws))["kind"] == "hello"
        assert (await recv(ws))["event"]["t"] == 1.0


# ---------- Origin ----------


@pytest.mark.integration  # uvicorn on a real socket
@pytest.mark.parametrize("ws_impl", ["websockets", "websockets-sansio"])
async def test_foreign_origin_is_refused_at_the_handshake(ws_impl: str) -> None:
    hub = LiveHub(queue_size=8)
    async with serve(hub, ws_impl, allowed_origins=["https://ops.example.com"]) as url:
        with pytest.raises(InvalidStatus) as refused:
            await connect(url, origin="http://evil.example")  # type: ignore[arg-type]
        assert refused.value.response.status_code == 403
        same = "http://" + url.split("/")[2]
        for origin in (same, "https://ops.example.com", None):  # same-origin, listed, not a browser
            async with connect(url, origin=origin) as ws:  # type: ignore[arg-type]
                await ws.send("{}")
                assert (await recv(ws))["kind"] == "hello"
    assert hub.clients == 0


@pytest.mark.parametrize(
    ("origin", "host", "allowed", "ok"),
    [
        ("http://127.0.0.1:8000", "127.0.0.1:8000", [], True),
        ("http://LOCALHOST", "localhost:80", [], True),
        ("https://dash.example:443", "dash.example", [], True),
        ("http://127.0.0.1:8001", "127.0.0.1:8000", [], False),
        ("https://127.0.0.1:8000", "127.0.0.1:8000", [], True),  # Host has no scheme (TLS may end at a proxy)
        ("https://127.0.0.1", "127.0.0.1:80", [], False),  # https default port 443 != 80
        ("http://evil.example", "dash.example", [], False),
        ("null", "dash.example", [], False),
        ("http://evil.example", "dash.example", ["*"], True),
        ("https://ops.example.com", "dash.example", ["https://ops.example.com/"], True),
        (None, "dash.example", [], True),
    ],
)
def test_origin_rules(origin: str | None, host: str, allowed: list[str], ok: bool) -> None:
    assert origin_allowed(origin, host, allowed) is ok


def test_subprotocol_choice() -> None:
    assert pick_subprotocol(["dinostream.v1"]) == ("dinostream.v1", None)
    assert pick_subprotocol(["x", "dinostream.token.abc"]) == ("dinostream.token.abc", "abc")
    assert pick_subprotocol(["chat"]) == (None, None)


# ---------- resume ----------


@pytest.mark.integration  # uvicorn on a real socket
async def test_resume_from_cursor_or_event_id_gets_exactly_the_missed_events() -> None:
    hub = LiveHub(queue_size=64, recent=2)
    async with serve(hub) as url:
        ws = await open_sub(url)
        assert (await recv(ws))["kind"] == "hello"  # subscribed: what follows is live
        first = [make_event(f"cam{k % 3}", k) for k in range(6)]
        for e in first:
            hub.publish_event(e)
        got = await events_until(ws, first[2].id)
        cursor = got[-1]["cursor"]
        await ws.close()
        missed = [make_event("cam9", k) for k in range(10, 14)]
        for e in missed:
            hub.publish_event(e)
        hub.publish_event(make_event("cam1", 1))  # an update of first[1]: its last message is now here

        ws = await open_sub(url, {"resume_from": cursor})
        hub.publish_event(live := make_event("cam5", 99))
        ids = [m["event"]["id"] for m in await events_until(ws, live.id)]
        assert ids == [e.id for e in first[3:] + missed] + [first[1].id, live.id]  # in order, once
        await ws.close()

        ws = await open_sub(url, {"resume_from": missed[1].id})  # after that event's last message
        hub.publish_event(live2 := make_event("cam5", 100))
        ids = [m["event"]["id"] for m in await events_until(ws, live2.id)]
        assert ids == [e.id for e in missed[2:]] + [first[1].id, live.id, live2.id]
        await ws.close()

        ws = await open_sub(url, {"resume_from": "no-such-event"})
        assert (await recv(ws))["kind"] == "hello"
        gap = await recv(ws)
        assert gap["kind"] == "resume_gap" and gap["reason"] == "unknown_event" and "no-such-event" in gap["message"]
        assert [(await recv(ws))["event"]["id"] for _ in range(2)] == [live.id, live2.id]  # then the recent ring
        await ws.close()
    assert hub.stats()["resumes"] == 3 and hub.stats()["resume_gaps"] == 1


@pytest.mark.integration  # uvicorn on a real socket
async def test_resume_from_before_memory_without_event_log_says_resume_gap() -> None:
    hub = LiveHub(queue_size=64, resume_memory=3)
    async with serve(hub) as url:
        ws = await open_sub(url)
        assert (await recv(ws))["kind"] == "hello"
        hub.publish_event(e0 := make_event("cam1", 0))
        cursor = (await events_until(ws, e0.id))[-1]["cursor"]
        await ws.close()
        for k in range(1, 6):  # more than the hub remembers
            hub.publish_event(make_event("cam1", k))
        ws = await open_sub(url, {"resume_from": cursor})
        assert (await recv(ws))["kind"] == "hello"
        gap = await recv(ws)
        assert gap["kind"] == "resume_gap" and gap["reason"] == "no_store"
        hub.publish_event(live := make_event("cam1", 50))
        assert (await recv(ws))["event"]["id"] == live.id
        await ws.close()


# ---------- slow clients ----------


@pytest.mark.integration  # uvicorn on a real socket
@pytest.mark.parametrize("ws_impl", ["websockets", "websockets-sansio"])
async def test_stuck_client_is_closed_1013_while_another_keeps_receiving(ws_impl: str) -> None:
    hub = LiveHub(queue_size=8)
    rng = np.random.default_rng(7)
    async with serve(hub, ws_impl) as url:
        stuck = await open_sub(url, max_queue=1)
        normal = await open_sub(url, max_size=None)
        assert (await recv(normal))["kind"] == "hello"
        assert (await recv(stuck))["kind"] == "hello"
        sent: list[str] = []
        for k in range(1, 1000):
            # Big incompressible events fill the buffers of a client that stops reading quickly.
            event = make_event("cam1", k, pad=base64.b64encode(rng.bytes(48_000)).decode())
            hub.publish_event(event)
            sent.append(event.id)
            assert (await recv(normal))["event"]["id"] == event.id  # lockstep: never behind
            if hub.dropped_clients:
                break
        assert hub.dropped_clients == 1 and hub.clients == 1, "the stuck client was never dropped"
        for k in range(3):
            hub.publish_event(e := make_event("cam2", k))
            assert (await recv(normal))["event"]["id"] == e.id
        received: list[str] = []
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                received.append(json.loads(await asyncio.wait_for(stuck.recv(), 5))["event"]["id"])
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1013
        assert "too slow" in closed.value.rcvd.reason
        assert received == sent[: len(received)]
        stats = hub.stats()
        assert stats["dropped_clients"] == 1 and stats["clients"] == 1
        # hellos + the normal client's events + what the stuck one got (the last may be cut by the close)
        assert stats["messages_sent"] >= 2 + len(sent) + 3 + len(received) - 1
        await normal.close()
