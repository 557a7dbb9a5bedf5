"""Watchlist management over HTTP: crops, clicks and boxes on recent frames, removal, errors."""

from __future__ import annotations

import io
import zlib

import httpx
import numpy as np
import pytest
from PIL import Image

from dinostream.analytics.watchlist import Exemplar, Watchlist
from dinostream.core.records import FrameEmbedding
from dinostream.core.settings import AnalyticsSettings, HttpSettings, ReidSettings
from dinostream.dashboard.analytics_control import AnalyticsControl
from dinostream.dashboard.app import create_app
from dinostream.dashboard.live_hub import LiveHub
from dinostream.dashboard.recent_frames import RecentFrames
from dinostream.dashboard.watchlist_api import watchlist_router

DIM = 32
GRID = (8, 10)


def _look(name: str) -> np.ndarray:
    return np.random.default_rng(zlib.crc32(name.encode())).normal(size=DIM)


def _frame(seq: int, obj_col: int | None = 4) -> FrameEmbedding:
    """A room with a 3x3-patch suitcase at rows 3-5 from column `obj_col`."""
    rng = np.random.default_rng(seq)
    p = np.random.default_rng(1).normal(size=(*GRID, DIM)) + 0.05 * rng.normal(size=(*GRID, DIM))
    if obj_col is not None:
        p[3:6, obj_col : obj_col + 3] = _look("suitcase") + 0.1 * rng.normal(size=(3, 3, DIM))
    return FrameEmbedding(
        stream="cam-1",
        seq=seq,
        pts=seq / 2,
        ts=1e9 + seq,
        model="t",
        untrained=True,
        cls=p.mean(axis=(0, 1)),
        pooled=p.mean(axis=(0, 1)),
        patches=p,
    )


F5 = {"stream": "cam-1", "seq": 5}  # a frame still kept
MID = {"x": 0.5, "y": 0.5}  # on the suitcase


class World:
    def __init__(self) -> None:
        self.watchlist = Watchlist()
        self.published: list[tuple[str, Exemplar | None]] = []
        self.recent = RecentFrames(per_stream=4)
        for seq in range(6):
            self.recent.add(_frame(seq).encode())

        async def publish(ex_id: str, ex: Exemplar | None) -> None:
            self.published.append((ex_id, ex))

        async def embed_record(rgb: np.ndarray) -> FrameEmbedding:
            # The crop "is" the suitcase: its patch grid is the suitcase's look (the model's job).
            rng = np.random.default_rng(int(rgb.sum()) % 1000)
            p = _look("suitcase") + 0.1 * rng.normal(size=(2, 2, DIM))
            return FrameEmbedding(
                stream="query", seq=0, pts=0, ts=0, model="t", untrained=True, cls=p[0, 0], pooled=p[0, 0], patches=p
            )

        app = create_app(settings=HttpSettings(), hub=LiveHub(16), index=None, embed_images=None, health=dict)
        app.include_router(
            watchlist_router(self.watchlist, publish, self.recent, embed_record, ReidSettings(), 100_000)
        )
        self.client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://localhost")


@pytest.fixture
async def world() -> World:
    w = World()
    yield w  # type: ignore[misc]
    await w.client.aclose()


def _png() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (40, 30), (200, 30, 30)).save(buf, format="PNG")
    return buf.getvalue()


async def test_click_on_a_recent_frame_registers_the_clicked_object(world: World) -> None:
    r = await world.client.post(
        "/api/v1/watchlist",
        json={"id": "bag-1", "label": "red suitcase", "frame": F5, "point": MID},
    )
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["id"] == "bag-1" and body["source"] == "frame"
    assert (body["box"]["x0"], body["box"]["x1"], body["box"]["y0"], body["box"]["y1"]) == (0.4, 0.7, 3 / 8, 6 / 8)
    (ex_id, ex), = world.published  # fmt: skip
    assert ex_id == "bag-1" and ex is not None and ex.label == "red suitcase"
    listed = (await world.client.get("/api/v1/watchlist")).json()["exemplars"]
    assert listed == [{"id": "bag-1", "label": "red suitcase", "dim": DIM}]


async def test_box_and_crop_make_exemplars_close_to_the_clicked_one(world: World) -> None:
    click = {"frame": {"stream": "cam-1", "seq": 4}, "point": {"x": 0.55, "y": 0.5}}
    box = {"frame": {"stream": "cam-1", "seq": 4}, "box": {"x0": 0.4, "y0": 0.375, "x1": 0.7, "y1": 0.75}}
    for i, body in enumerate((click, box)):
        r = await world.client.post("/api/v1/watchlist", json={"id": f"e{i}", **body})
        assert r.status_code == 201, r.text
    r = await world.client.post(
        "/api/v1/watchlist", files={"image": ("crop.png", _png(), "image/png")}, data={"label": "crop"}
    )
    assert r.status_code == 201, r.text
    assert r.json()["source"] == "image" and r.json()["id"].startswith("ex-")
    vecs = [ex.vector for _, ex in world.published if ex is not None]
    assert len(vecs) == 3
    assert float(vecs[0] @ vecs[1]) > 0.9  # click and box select the same patches


async def test_segment_preview_returns_heatmap_mask_and_box(world: World) -> None:
    r = await world.client.post(
        "/api/v1/segment", json={"frame": {"stream": "cam-1", "seq": 5}, "point": {"x": 0.5, "y": 0.5}}
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["grid"] == list(GRID)
    mask = np.array(body["mask"])
    assert mask.sum() == 9 and mask[3:6, 4:7].all()
    sim = np.array(body["similarity"])
    assert sim[4, 5] == pytest.approx(1.0, abs=1e-3) and sim[0, 0] < 0.5
    assert world.published == []


async def test_delete_publishes_a_removal(world: World) -> None:
    world.watchlist.add(Exemplar("old", "", np.ones(DIM)))
    assert (await world.client.delete("/api/v1/watchlist/old")).status_code == 200
    assert world.published == [("old", None)]
    r = await world.client.delete("/api/v1/watchlist/old")
    assert r.status_code == 404 and r.json()["error"]["code"] == "exemplar_not_found"


BAD = {
    "frame-not-kept": ({"frame": {"stream": "cam-1", "seq": 0}, "point": {"x": 0.5, "y": 0.5}}, 404, "frame_not_found"),
    "unknown-stream": ({"frame": {"stream": "nope", "seq": 5}, "point": {"x": 0.5, "y": 0.5}}, 404, "frame_not_found"),
    "bad-stream-id": ({"frame": {"stream": "a b/c", "seq": 5}, "point": {"x": 0.5, "y": 0.5}}, 422, "invalid_stream"),
    "point-outside": ({"frame": F5, "point": {"x": 1.5, "y": 0.5}}, 422, "invalid_request"),
    "point-and-box": (
        {"frame": F5, "point": MID, "box": {"x0": 0, "y0": 0, "x1": 1, "y1": 1}},
        422,
        "invalid_request",
    ),
    "neither": ({"frame": F5}, 422, "invalid_request"),
    "inverted-box": ({"frame": F5, "box": {"x0": 0.6, "y0": 0, "x1": 0.2, "y1": 1}}, 422, "invalid_request"),
    "bad-id": ({"id": "no spaces", "frame": F5, "point": MID}, 422, "invalid_id"),
}


@pytest.mark.parametrize(("body", "status", "code"), BAD.values(), ids=BAD.keys())
async def test_bad_requests_get_clear_errors(world: World, body: dict, status: int, code: str) -> None:  # type: ignore[type-arg]
    r = await world.client.post("/api/v1/watchlist", json=body)
    assert r.status_code == status, r.text
    assert r.json()["error"]["code"] == code
    assert world.published == []


async def test_not_an_image_and_wrong_content_type(world: World) -> None:
    r = await world.client.post("/api/v1/watchlist", files={"image": ("x.png", b"not a picture", "image/png")})
    assert r.status_code == 415 and r.json()["error"]["code"] == "not_an_image"
    r = await world.client.post("/api/v1/watchlist", content=b"x", headers={"content-type": "text/plain"})
    assert r.status_code == 415
    r = await world.client.post("/api/v1/watchlist", files={"image": ("big.png", b"x" * 200_000, "image/png")})
    assert r.status_code == 413


async def test_recent_frames_are_bounded_per_stream_and_in_bytes() -> None:
    recent = RecentFrames(per_stream=3)
    for seq in range(5):
        recent.add(_frame(seq).encode())
    assert recent.seqs("cam-1") == [2, 3, 4]
    one = len(_frame(0).encode())
    small = RecentFrames(per_stream=10, max_bytes=2 * one + 10)
    for seq in range(5):
        small.add(_frame(seq).encode())
    assert small.seqs("cam-1") == [3, 4] and small.nbytes <= small.max_bytes and small.evicted == 3
    rec = await small.get("cam-1", 4)
    assert rec is not None and rec.seq == 4 and await small.get("cam-1", 2) is None


async def test_a_click_segments_with_the_stream_s_own_threshold() -> None:
    w = World()
    control = AnalyticsControl(AnalyticsSettings(), _ignore)
    app = create_app(settings=HttpSettings(), hub=LiveHub(16), index=None, embed_images=None, health=dict)
    app.include_router(watchlist_router(w.watchlist, _ignore, w.recent, None, control.reid, 100_000))
    click = {"frame": F5, "point": MID}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://localhost") as http:
        before = (await http.post("/api/v1/segment", json=click)).json()
        assert before["threshold"] == ReidSettings().click_threshold and np.array(before["mask"]).sum() == 9
        await control.change("cam-1", "reid", {"click_threshold": 0.999})  # as PATCH .../analytics/reid does
        after = (await http.post("/api/v1/segment", json=click)).json()
    assert after["threshold"] == 0.999 and np.array(after["mask"]).sum() < 9, "read at each click, per stream"
    await w.client.aclose()


async def _ignore(*args: object) -> None:
    pass
