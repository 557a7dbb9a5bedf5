"""The attacks issue 17 lists as having held, kept as tests with tokens configured: bad ids and
numbers, decompression bombs, garbage and huge WHIP offers, hostile websocket first messages, 100
concurrent uploads, 200 websocket clients with one that never reads. (Hostile URLs are in
test_url_checks.py; SIGINT and restarts in tests/integration/test_up_end_to_end.py and
test_streams_runtime.py.)"""

from __future__ import annotations

import asyncio
import io
import json
from pathlib import Path

import pytest
from PIL import Image
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from dinostream.core.records import Event, event_id
from tests.pictures import picture
from tests.security.gateway import TOKENS, Gateway, bearer, error_of, token_settings
from tests.serving import serve


@pytest.mark.parametrize(
    ("path", "status", "code"),
    [
        ("/api/v1/streams/bad$id", 422, "invalid_stream"),
        (f"/api/v1/streams/{'x' * 300}", 422, "invalid_stream"),
        ("/api/v1/streams/..%2F..%2Fetc/analytics", 404, "not_found"),
        ("/api/v1/frames/cam1/-1/thumbnail.jpg", 422, "invalid_seq"),
        ("/api/v1/frames/cam1/1e99/thumbnail.jpg", 422, "invalid_request"),
        ("/api/v1/streams/cam1/summary?k=100000", 422, "invalid_request"),
        ("/api/v1/streams/cam1/summary?k=abc", 422, "invalid_request"),
        ("/api/v1/streams/nope", 404, "stream_not_found"),
    ],
    ids=["dollar-id", "long-id", "encoded-traversal", "negative-seq", "huge-seq", "huge-k", "text-k", "unknown"],
)
async def test_bad_ids_and_numbers_get_one_line_errors(tmp_path: Path, path: str, status: int, code: str) -> None:
    async with Gateway(tmp_path, token_settings()) as gw, gw.client(bearer("viewer")) as http:
        error_of(await http.get(path), status, code)


async def test_a_decompression_bomb_is_refused(tmp_path: Path) -> None:
    buf = io.BytesIO()
    Image.new("1", (20000, 20000)).save(buf, format="PNG")  # 400 Mpx in a few hundred kB
    files = [("images", ("bomb.png", buf.getvalue(), "image/png"))]
    async with Gateway(tmp_path, token_settings()) as gw, gw.client(bearer("viewer")) as http:
        error_of(await http.post("/api/v1/images/embed", files=files), 413, "image_too_large")
        assert gw.embed.calls == 0


async def test_garbage_and_huge_whip_offers_are_refused(tmp_path: Path) -> None:
    sdp = {"Content-Type": "application/sdp", **bearer("operator")}
    async with Gateway(tmp_path, token_settings()) as gw, gw.client() as http:
        error_of(await http.post("/api/v1/whip/cam1", content="hello", headers=sdp), 400, "bad_offer")
        error_of(await http.post("/api/v1/whip/cam1", content=b"\xff\xfe\x00", headers=sdp), 400, "bad_offer")
        huge = "v=0\n" + "a=x\n" * 5000
        error_of(await http.post("/api/v1/whip/cam1", content=huge, headers=sdp), 413, "offer_too_large")
        assert gw.whip.opened == 0 and gw.whip.sessions == {}


async def test_100_concurrent_uploads_are_all_answered(tmp_path: Path) -> None:
    async with Gateway(tmp_path, token_settings()) as gw, gw.client(bearer("viewer")) as http:

        async def upload(i: int) -> int:
            files = [("images", (f"{i}.jpg", picture((i, 255 - i, 7)), "image/jpeg"))]
            return (await http.post("/api/v1/images/embed", files=files)).status_code

        assert await asyncio.gather(*(upload(i) for i in range(100))) == [200] * 100
        assert (await http.get("/api/v1/health")).json()["status"] == "ok"


def ws_url(base: str) -> str:
    return base.replace("http://", "ws://") + "/ws/events"


async def closed_with(ws: ClientConnection) -> tuple[int, str]:
    with pytest.raises(ConnectionClosed) as closed:
        while True:
            await asyncio.wait_for(ws.recv(), 5)
    assert closed.value.rcvd is not None
    return closed.value.rcvd.code, closed.value.rcvd.reason


@pytest.mark.integration
@pytest.mark.parametrize(
    ("first", "reason"),
    [
        (b"\x00\x01binary", "must be JSON text"),
        ("not json", "not JSON"),
        ("[1, 2]", "must be a JSON object"),
        (json.dumps({"token": TOKENS["viewer"], "evil": 1}), "unknown field 'evil'"),
        (json.dumps({"token": TOKENS["viewer"], "streams": "x" * 70_000}), "larger than"),
        (json.dumps({"token": 42}), "token must be a string"),
        (json.dumps({"token": TOKENS["viewer"], "batch": "yes"}), "batch must be true or false"),
    ],
    ids=["binary", "not-json", "array", "unknown-field", "huge", "token-type", "batch-type"],
)
async def test_hostile_first_websocket_messages_close_with_4400(
    tmp_path: Path, first: str | bytes, reason: str
) -> None:
    async with Gateway(tmp_path, token_settings()) as gw, serve(gw.app) as base:
        async with connect(ws_url(base), max_size=None) as ws:
            await ws.send(first)
            code, why = await closed_with(ws)
        assert code == 4400 and reason in why, (code, why)
        assert gw.hub.clients == 0


def make_event(key: int) -> Event:
    return Event(
        id=event_id("cam1", "scene_change", key),
        type="scene_change",
        stream="cam1",
        t=float(key),
        t_start=float(key),
        t_end=float(key),
        ts=1e9 + key,
        score=0.5,
        details={},
    )


@pytest.mark.integration
async def test_200_websocket_clients_with_one_that_never_reads(tmp_path: Path) -> None:
    settings = token_settings()  # ws_queue_size 256: a burst of 40 fits every reader's queue
    first = json.dumps({"token": TOKENS["viewer"], "types": ["scene_change"]})
    async with Gateway(tmp_path, settings) as gw, serve(gw.app) as base:
        stuck = await connect(ws_url(base), max_queue=1)  # sends its subscribe message, then never reads
        await stuck.send(first)
        readers = []
        for _ in range(199):
            ws = await connect(ws_url(base))
            await ws.send(first)
            readers.append(ws)
        try:
            for ws in readers:
                assert json.loads(await asyncio.wait_for(ws.recv(), 10))["kind"] == "hello"
            assert gw.hub.clients == 200
            for k in range(1, 41):
                gw.hub.publish_event(make_event(k))

            async def all_events(ws: ClientConnection) -> list[float]:
                return [json.loads(await asyncio.wait_for(ws.recv(), 10))["event"]["t"] for _ in range(40)]

            got = await asyncio.gather(*(all_events(ws) for ws in readers))
            assert all(ts == [float(k) for k in range(1, 41)] for ts in got)
        finally:
            await asyncio.gather(*(ws.close() for ws in [stuck, *readers]))
