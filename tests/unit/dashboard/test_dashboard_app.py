"""The dashboard app served for real by uvicorn on port 0, driven with httpx and websockets."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import re
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

import httpx
import numpy as np
import pytest
from fastapi import FastAPI
from PIL import Image
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from dinostream.core.records import Event, FrameEmbedding, event_id, frame_point_id
from dinostream.core.settings import HttpSettings
from dinostream.dashboard.app import create_app
from dinostream.dashboard.live_hub import LiveHub
from dinostream.dashboard.recent_frames import RecentFrames
from dinostream.sinks.vector_index import FrameHit, VectorIndex
from tests.pictures import ColourEmbedder, colour_features, picture
from tests.serving import serve

pytestmark = pytest.mark.integration  # uvicorn on a real socket

RED, ORANGE, GREEN, BLUE = (230, 20, 20), (240, 140, 10), (20, 200, 40), (30, 40, 220)


# ---------- a real (brute-force, in-memory) index and a deterministic embedder ----------


class BruteForceIndex(VectorIndex):
    """Exact cosine search over every stored CLS vector: the VectorIndex contract, without Qdrant."""

    def __init__(self) -> None:
        self._frames: dict[str, FrameEmbedding] = {}
        self._events: dict[str, Event] = {}

    def upsert_frames(self, records: Sequence[FrameEmbedding]) -> None:
        for r in records:
            self._frames[r.point_id] = r

    def upsert_events(self, events: Sequence[Event]) -> None:
        for e in events:
            self._events[e.id] = e

    def search_frames(
        self, vector: np.ndarray, limit: int = 10, streams: Sequence[str] | None = None
    ) -> list[FrameHit]:
        recs = [r for r in self._frames.values() if streams is None or r.stream in streams]
        if not recs:
            return []
        m = np.stack([r.cls.astype(np.float32) for r in recs])
        q = np.asarray(vector, dtype=np.float32)
        sims = m @ q / (np.linalg.norm(m, axis=1) * np.linalg.norm(q) + 1e-12)
        order = np.argsort(-sims, kind="stable")[:limit]
        return [
            FrameHit(recs[i].stream, recs[i].seq, recs[i].pts, recs[i].ts, float(sims[i]), recs[i].point_id)
            for i in order
        ]

    def thumbnail(self, stream: str, seq: int) -> bytes | None:
        r = self._frames.get(frame_point_id(stream, seq))
        return r.thumbnail if r else None

    def count_frames(self) -> int:
        return len(self._frames)

    def count_events(self) -> int:
        return len(self._events)

    def close(self) -> None:
        self._frames.clear()


def frame(stream: str, seq: int, colour: tuple[int, int, int]) -> FrameEmbedding:
    rgb = np.asarray(Image.new("RGB", (64, 48), colour))
    vec = colour_features(rgb)
    return FrameEmbedding(
        stream=stream,
        seq=seq,
        pts=seq * 0.5,
        ts=1_700_000_000.0 + seq,
        model="test-colour",
        untrained=False,
        cls=vec,
        pooled=vec,
        patches=np.tile(vec, (2, 2, 1)),
        thumbnail=picture(colour),
    )


def make_event(stream: str, key: int, t: float, *, details: dict[str, Any] | None = None) -> Event:
    return Event(
        id=event_id(stream, "scene_change", key),
        type="scene_change",
        stream=stream,
        t=t,
        t_start=t,
        t_end=t,
        ts=1_700_000_000.0 + t,
        score=0.75,
        frames=(key - 1, key),
        details=details or {},
    )


# ---------- uvicorn on port 0 ----------


class World:
    def __init__(self, *, max_upload_bytes: int = 1_000_000, queue_size: int = 64) -> None:
        self.settings = HttpSettings(max_upload_bytes=max_upload_bytes)
        self.hub = LiveHub(queue_size=queue_size, recent=50)
        self.index: BruteForceIndex | None = BruteForceIndex()
        self.embed: ColourEmbedder | None = ColourEmbedder()
        self.health: Callable[[], dict[str, Any]] = lambda: {"kafka": "ok"}
        self.recent: RecentFrames | None = None

    def app(self) -> FastAPI:
        return create_app(
            settings=self.settings,
            hub=self.hub,
            index=self.index,
            embed_images=self.embed,
            health=self.health,
            recent=self.recent,
        )


@pytest.fixture
def world() -> World:
    w = World()
    assert w.index is not None
    w.index.upsert_frames(
        [frame("cam1", 0, RED), frame("cam1", 1, GREEN), frame("cam2", 0, BLUE), frame("cam2", 1, ORANGE)]
    )
    return w


async def recv_json(ws: ClientConnection, timeout: float = 2.0) -> dict[str, Any]:
    return json.loads(await asyncio.wait_for(ws.recv(), timeout))


def ws_url(base: str) -> str:
    return base.replace("http://", "ws://") + "/ws/events"


def assert_error(resp: httpx.Response, status: int, code: str) -> str:
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "details", "timestamp"}
    assert body["error"]["code"] == code
    message = body["error"]["message"]
    assert message and "\n" not in message
    return message


# ---------- page and health ----------


async def test_page_is_served_with_local_assets_only(world: World) -> None:
    async with serve(world.app()) as base, httpx.AsyncClient(base_url=base) as http:
        page = await http.get("/")
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        html = page.text
        for element_id in ("stream-grid", "event-feed", "search-form", "search-image", "untrained-banner"):
            assert f'id="{element_id}"' in html
        assert "features are untrained: random weights — pass --model with a DINOv3 checkpoint" in html
        assets = re.findall(r'(?:src|href)="([^"]+)"', html)
        assert {"/static/app.js", "/static/style.css"} <= set(assets)
        texts = [html]
        for asset in assets:
            resp = await http.get(asset)
            assert resp.status_code == 200, asset
            texts.append(resp.text)
        for text in texts:  # no CDN, no external fonts: works on an isolated network
            assert "http://" not in text and "https://" not in text


@pytest.mark.parametrize(
    ("health", "status"),
    [
        (lambda: {"kafka": "ok", "model": "dinov3"}, "ok"),
        (lambda: {"kafka": "down", "problems": ["kafka unreachable at localhost:9092"]}, "degraded"),
        (lambda: {"streams": {"cam1": {"frames": 3, "failed": True}}}, "ok"),  # that camera's, not the service's
        (lambda: {"index": {"ok": False}}, "degraded"),
        (lambda: 1 / 0, "degraded"),
    ],
    ids=["healthy", "reports-problems", "stream-failed", "component-not-ok", "probe-raises"],
)
async def test_health_reports_status(world: World, health: Callable[[], dict[str, Any]], status: str) -> None:
    world.health = health
    async with serve(world.app()) as base, httpx.AsyncClient(base_url=base) as http:
        resp = await http.get("/api/v1/health")
    assert resp.status_code == (200 if status == "ok" else 503)  # probes and load balancers read the code
    body = resp.json()
    assert body["status"] == status
    assert body["dashboard"]["clients"] == 0
    if "streams" in body:
        assert body["streams"]["cam1"]["failed"] is True  # shown under the camera
    elif status == "ok":
        assert body["kafka"] == "ok" and body["model"] == "dinov3"
    else:
        assert body.get("problems") or body["index"]["ok"] is False


# ---------- websocket ----------

# uvicorn 0.54 deprecates "websockets" (legacy) in favour of "websockets-sansio" (what "auto" picks):
# the live feed must behave the same on both.
WS_IMPLS = pytest.mark.parametrize("ws_impl", ["websockets", "websockets-sansio"])


async def test_openapi_documents_the_api_at_docs(world: World) -> None:
    async with serve(world.app()) as base, httpx.AsyncClient(base_url=base) as http:
        page = await http.get("/docs")
        schema = (await http.get("/openapi.json")).json()
    assert page.status_code == 200 and "swagger" in page.text.lower()
    assert {"/api/v1/health", "/api/v1/search", "/api/v1/images/compare"} <= set(schema["paths"])


@WS_IMPLS
async def test_websocket_sends_hello_then_recent_then_live(world: World, ws_impl: str) -> None:
    hub = world.hub
    hub.publish_frame("cam1", 4, 2.0, picture(RED), model="random:vits16", untrained=True)
    for k in (1, 2, 3):
        hub.publish_event(make_event("cam1", k, float(k)))
    async with (
        serve(world.app(), ws_impl) as base,
        connect(ws_url(base)) as ws,
        httpx.AsyncClient(base_url=base) as http,
    ):
        hello = await recv_json(ws)
        assert hello["kind"] == "hello"
        assert hello["streams"]["cam1"]["seq"] == 4 and hello["streams"]["cam1"]["untrained"] is True
        recent = [await recv_json(ws) for _ in range(3)]
        assert [m["kind"] for m in recent] == ["event"] * 3
        assert [m["event"]["t"] for m in recent] == [1.0, 2.0, 3.0]

        hub.publish_event(make_event("cam2", 9, 4.5))
        live = await recv_json(ws)
        assert live["kind"] == "event" and live["event"] == make_event("cam2", 9, 4.5).to_dict()

        hub.publish_frame("cam2", 5, 2.5, picture(BLUE), model="dinov3", untrained=False)
        notice = await recv_json(ws)
        assert notice["kind"] == "frame" and (notice["stream"], notice["seq"], notice["t"]) == ("cam2", 5, 2.5)
        thumb = await http.get(notice["thumbnail_url"])
        assert thumb.status_code == 200 and thumb.headers["content-type"] == "image/jpeg"
        assert thumb.content == picture(BLUE)

        streams = (await http.get("/api/v1/streams")).json()["streams"]
        assert set(streams) == {"cam1", "cam2"} and streams["cam2"]["seq"] == 5
        assert streams["cam2"]["last_event_t"] == 4.5
        assert_error(await http.get("/api/v1/streams/cam9/thumbnail.jpg"), 404, "thumbnail_not_found")
        assert hub.clients == 1

    async with asyncio.timeout(2):  # a client that leaves is unsubscribed
        while hub.clients:
            await asyncio.sleep(0.01)


@WS_IMPLS
async def test_slow_client_is_dropped_while_a_normal_client_gets_everything(ws_impl: str) -> None:
    world = World(queue_size=8)
    hub = world.hub
    rng = np.random.default_rng(7)
    async with serve(world.app(), ws_impl) as base:
        async with connect(ws_url(base), max_queue=1) as slow, connect(ws_url(base), max_size=None) as normal:
            assert (await recv_json(normal))["kind"] == "hello"
            assert (await recv_json(slow))["kind"] == "hello"
            sent: list[str] = []
            for k in range(1, 1000):
                # Big, incompressible (permessage-deflate is on) events fill the buffers of a client that
                # stops reading quickly.
                pad = base64.b64encode(rng.bytes(48_000)).decode()
                event = make_event("cam1", k, float(k), details={"pad": pad})
                hub.publish_event(event)
                sent.append(event.id)
                got = await recv_json(normal)  # lockstep: the normal client is never behind
                assert got["event"]["id"] == event.id
                if hub.dropped_clients:
                    break
            assert hub.dropped_clients == 1 and hub.clients == 1, "the slow client was never dropped"
            for k in range(3):  # the normal client keeps receiving after the drop
                hub.publish_event(make_event("cam2", k + 1, float(k)))
                assert (await recv_json(normal))["event"]["stream"] == "cam2"

            received: list[str] = []
            with pytest.raises(ConnectionClosed) as closed:
                while True:
                    received.append(json.loads(await asyncio.wait_for(slow.recv(), 5))["event"]["id"])
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 1013
            assert "too slow" in closed.value.rcvd.reason
            assert received == sent[: len(received)]  # what it got before the close is in order, no gaps


# ---------- search ----------


# Image search results are moments now: tests/unit/dashboard/test_search_api.py covers the nearest
# results, their thumbnails and the untrained flag over a real index.


async def test_search_rejects_what_is_not_an_image(world: World) -> None:
    async with serve(world.app()) as base, httpx.AsyncClient(base_url=base) as http:
        resp = await http.post("/api/v1/search", files={"image": ("q.jpg", b"GIF89a but not really", "image/jpeg")})
        assert "not a readable image" in assert_error(resp, 415, "not_an_image")
        assert_error(await http.post("/api/v1/search", json={"image": "red"}), 415, "unsupported_media_type")
        no_file = await http.post("/api/v1/search", data={"limit": "3"}, files={"other": ("x", b"1")})
        assert_error(no_file, 422, "missing_image")
    assert world.embed is not None and world.embed.seen == []


async def test_search_rejects_oversize_uploads(world: World) -> None:
    world.settings = HttpSettings(max_upload_bytes=4096)
    noise = np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(noise).save(buf, format="PNG")
    big = buf.getvalue()
    assert len(big) > 4096
    boundary = "dinostreamtestboundary"
    multipart = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="q.png"\r\n'
        f"Content-Type: image/png\r\n\r\n".encode()
        + big
        + f"\r\n--{boundary}--\r\n".encode()
    )

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: the server must count what it reads
        for i in range(0, len(multipart), 1024):
            yield multipart[i : i + 1024]

    async with serve(world.app()) as base, httpx.AsyncClient(base_url=base) as http:
        declared = await http.post("/api/v1/search", files={"image": ("q.png", big, "image/png")})
        assert "4096" in assert_error(declared, 413, "upload_too_large")
        streamed = await http.post(
            "/api/v1/search", content=chunks(), headers={"content-type": f"multipart/form-data; boundary={boundary}"}
        )
        assert "content-length" not in streamed.request.headers
        assert_error(streamed, 413, "upload_too_large")
        small = await http.post("/api/v1/search", files={"image": ("q.jpg", picture(RED), "image/jpeg")})
        assert small.status_code == 200  # the limit is about size, not about search
    assert world.embed is not None and len(world.embed.seen) == 1


@pytest.mark.parametrize("limit", ["abc", "0", "101", "2.5", "-3"])
async def test_search_rejects_a_bad_limit(world: World, limit: str) -> None:
    async with serve(world.app()) as base, httpx.AsyncClient(base_url=base) as http:
        resp = await http.post(
            "/api/v1/search", files={"image": ("q.jpg", picture(RED), "image/jpeg")}, data={"limit": limit}
        )
    assert limit in assert_error(resp, 422, "invalid_limit")


async def test_unknown_frames_and_routes_are_404(world: World) -> None:
    async with serve(world.app()) as base, httpx.AsyncClient(base_url=base) as http:
        assert_error(await http.get("/api/v1/frames/cam1/999/thumbnail.jpg"), 404, "frame_not_found")
        assert_error(await http.get("/api/v1/frames/cam7/0/thumbnail.jpg"), 404, "frame_not_found")
        assert_error(await http.get("/api/v1/nothing-here"), 404, "not_found")
        assert_error(await http.get("/api/v1/frames/cam1/first/thumbnail.jpg"), 422, "invalid_request")


async def test_a_frame_the_index_has_not_stored_yet_comes_from_the_recent_frames(world: World) -> None:
    """An event names its frames as soon as the analytics see them; the index writes them a moment
    later (seconds, under load). The gateway's recent frames answer meanwhile, not a 404."""
    fresh = frame("cam1", 7, ORANGE)
    async with serve(world.app()) as base, httpx.AsyncClient(base_url=base) as http:
        assert_error(await http.get("/api/v1/frames/cam1/7/thumbnail.jpg"), 404, "frame_not_found")  # without
    world.recent = RecentFrames(per_stream=4)
    world.recent.add(fresh.encode())
    async with serve(world.app()) as base, httpx.AsyncClient(base_url=base) as http:
        got = await http.get("/api/v1/frames/cam1/7/thumbnail.jpg")
        assert got.status_code == 200 and got.headers["content-type"] == "image/jpeg"
        assert got.content == fresh.thumbnail
        indexed = await http.get("/api/v1/frames/cam1/0/thumbnail.jpg")  # the index still answers first
        assert indexed.status_code == 200 and indexed.content == picture(RED)
        assert_error(await http.get("/api/v1/frames/cam1/8/thumbnail.jpg"), 404, "frame_not_found")  # in neither


@pytest.mark.parametrize("missing", ["index", "embed"])
async def test_search_without_index_or_embedder_is_503(world: World, missing: str) -> None:
    setattr(world, missing, None)
    async with serve(world.app()) as base, httpx.AsyncClient(base_url=base) as http:
        resp = await http.post("/api/v1/search", files={"image": ("q.jpg", picture(RED), "image/jpeg")})
        message = assert_error(resp, 503, "search_unavailable")
        assert ("vector index" if missing == "index" else "embedder") in message
        if missing == "index":
            assert_error(await http.get("/api/v1/frames/cam1/0/thumbnail.jpg"), 503, "search_unavailable")
        assert (await http.get("/api/v1/health")).json()["status"] == "ok"  # the rest still works


async def test_an_embedder_failure_is_a_json_500(world: World) -> None:
    async def broken(images: list[np.ndarray]) -> np.ndarray:
        raise RuntimeError("CUDA out of memory")

    world.embed = broken  # type: ignore[assignment]
    async with serve(world.app()) as base, httpx.AsyncClient(base_url=base) as http:
        resp = await http.post("/api/v1/search", files={"image": ("q.jpg", picture(RED), "image/jpeg")})
        assert "/api/v1/search" in assert_error(resp, 500, "internal_error")
        assert (await http.get("/api/v1/health")).status_code == 200  # the server is still up
