"""Stored assets over HTTP, served by uvicorn on port 0: upload a picture or a video once, read
and delete it, and use its `asset_id` in the image utilities and search. Real parts: the asset
store on disk, PyAV probing a generated video, a Qdrant Edge index; the colour embedder stands
in for DINOv3 (tests.pictures)."""

from __future__ import annotations

import contextlib
import io
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from fastapi import FastAPI
from PIL import Image

from dinostream.core.records import FrameEmbedding
from dinostream.core.settings import HttpSettings
from dinostream.dashboard.app import create_app
from dinostream.dashboard.live_hub import LiveHub
from dinostream.demo_video import make_video
from dinostream.sinks.asset_store import AssetStore
from dinostream.sinks.qdrant_edge_index import QdrantEdgeIndex
from tests.pictures import ColourEmbedder, colour_features, jpeg, picture
from tests.security.gateway import bearer, token_settings
from tests.serving import serve as serve_on_port

pytestmark = pytest.mark.integration  # uvicorn on a real socket

RED, ORANGE, BLUE = (230, 20, 20), (240, 140, 10), (30, 40, 220)
T0 = 1_700_000_000.0


def frame(seq: int, colour: tuple[int, int, int]) -> FrameEmbedding:
    rgb = np.asarray(Image.new("RGB", (64, 64), colour))
    vec = colour_features(rgb)
    return FrameEmbedding("cam1", seq, seq * 0.5, T0 + seq, "test", False, vec, vec, np.tile(vec, (4, 4, 1)), jpeg(rgb))


class World:
    def __init__(self, tmp: Path, index: QdrantEdgeIndex) -> None:
        self.tmp = tmp
        self.index = index
        self.embed = ColourEmbedder()
        self.http = HttpSettings(max_upload_bytes=200_000, max_asset_bytes=2_000_000)
        self.store = AssetStore(tmp / "assets", max_bytes=2_000_000, retention_days=1.0)

    def app(self) -> FastAPI:
        return create_app(
            settings=self.http,
            hub=LiveHub(16),
            index=self.index,
            embed_images=self.embed,
            health=lambda: {},
            assets=self.store,
        )


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    index = QdrantEdgeIndex(tmp_path / "qdrant", 12)
    index.upsert_frames([frame(0, BLUE), frame(1, BLUE), frame(2, RED), frame(3, RED), frame(4, BLUE)])
    yield World(tmp_path, index)
    index.close()


@pytest.fixture(scope="module")
def video(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    path = tmp_path_factory.mktemp("video") / "clip.mp4"
    make_video(path, shots=2, shot_s=1.0, fps=10, size=(64, 48))
    return path.read_bytes()


@contextlib.asynccontextmanager
async def serve(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with serve_on_port(app) as base, httpx.AsyncClient(base_url=base, timeout=30) as http:
        yield http


def assert_error(resp: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert resp.status_code == status, resp.text
    error = resp.json()["error"]
    assert error["code"] == code and "\n" not in error["message"], error
    return error


async def upload(http: httpx.AsyncClient, data: bytes, name: str = "x") -> httpx.Response:
    return await http.post("/api/v1/assets", files={"file": (name, data)})


async def test_a_picture_is_stored_read_listed_and_deleted(world: World) -> None:
    data = picture(RED, (80, 60), "PNG")
    async with serve(world.app()) as http:
        made = await upload(http, data, "../secret/red.png")
        assert made.status_code == 201, made.text
        meta = made.json()
        asset_id = meta["id"]
        got = (await http.get(f"/api/v1/assets/{asset_id}")).json()
        listed = (await http.get("/api/v1/assets")).json()["assets"]
        stats = (await http.get("/api/v1/stats")).json()["assets"]
        deleted = await http.delete(f"/api/v1/assets/{asset_id}")
        after = await http.get(f"/api/v1/assets/{asset_id}")
        again = await http.delete(f"/api/v1/assets/{asset_id}")
        bad = await http.get("/api/v1/assets/red.png")

    assert (meta["kind"], meta["media_type"], meta["bytes"], meta["filename"]) == (
        "image",
        "image/png",
        len(data),
        "red.png",
    )
    assert meta["info"] == {"width": 80, "height": 60} and meta["url"] == f"/api/v1/assets/{asset_id}"
    assert meta["expires_at"] == pytest.approx(meta["created_at"] + 86400)
    assert got == meta and [a["id"] for a in listed] == [asset_id]
    assert stats == {"count": 1, "bytes": len(data), "images": 1, "videos": 0}
    assert deleted.status_code == 200 and deleted.json() == {"id": asset_id, "deleted": True}
    assert_error(after, 404, "asset_not_found")
    assert_error(again, 404, "asset_not_found")
    assert_error(bad, 422, "invalid_asset_id")
    assert list((world.tmp / "assets").iterdir()) == []


async def test_a_video_is_stored_with_what_its_header_says(world: World, video: bytes) -> None:
    async with serve(world.app()) as http:
        made = await upload(http, video, "clip.bin")  # the name says nothing; the content does
        meta = made.json()
        as_picture = await http.post(
            "/api/v1/images/compare", files=[("images", (None, meta["id"])), ("images", ("b", picture(RED)))]
        )

    assert made.status_code == 201, made.text
    assert (meta["kind"], meta["format"]) == ("video", "mp4")
    info = meta["info"]
    assert (info["width"], info["height"], info["codec"]) == (64, 48, "h264")
    assert info["duration_s"] == pytest.approx(2.0, abs=0.15) and info["fps"] == pytest.approx(10.0)
    error = assert_error(as_picture, 422, "wrong_asset_kind")
    assert error["details"] == {"asset_id": meta["id"], "kind": "video", "expected": "image"}


async def test_the_type_is_checked_by_content_and_size_is_limited(world: World, video: bytes) -> None:
    world.http = HttpSettings(max_upload_bytes=200_000, max_asset_bytes=4096)
    png_named_mp4 = picture(BLUE, (32, 32), "PNG")
    fake_mp4 = video[:32] + b"\x00" * 2000  # an mp4's first bytes, then nothing a decoder can read
    async with serve(world.app()) as http:
        ok = await upload(http, png_named_mp4, "clip.mp4")
        text = await upload(http, b"just some text, named like a picture", "photo.jpg")
        broken = await upload(http, fake_mp4, "clip.mp4")
        broken_png = await upload(http, picture(BLUE, (32, 32), "PNG")[:60], "a.png")
        too_big = await upload(http, video, "clip.mp4")
        empty = await upload(http, b"", "a.png")
        no_file = await http.post("/api/v1/assets", data={"file": "text"}, files={"other": ("x", b"1")})
        listed = (await http.get("/api/v1/assets")).json()["assets"]

    assert ok.status_code == 201 and ok.json()["kind"] == "image"
    assert_error(text, 415, "unsupported_asset")
    assert_error(broken, 415, "not_a_video")
    assert_error(broken_png, 415, "not_an_image")
    assert assert_error(too_big, 413, "upload_too_large")["details"]["limit_bytes"] == 4096
    assert_error(empty, 415, "empty_asset")
    assert_error(no_file, 422, "missing_file")
    assert [a["id"] for a in listed] == [ok.json()["id"]], "nothing that failed is kept"


async def test_image_utilities_take_asset_ids_as_well_as_uploads(world: World) -> None:
    async with serve(world.app()) as http:
        red = (await upload(http, picture(RED, (200, 120), "PNG"))).json()["id"]
        blue = (await upload(http, picture(BLUE))).json()["id"]
        compare = await http.post(
            "/api/v1/images/compare", files=[("images", (None, red)), ("images", ("b", picture(RED)))]
        )
        by_upload = await http.post(
            "/api/v1/images/compare",
            files=[("images", ("a", picture(RED, (200, 120), "PNG"))), ("images", ("b", picture(RED)))],
        )
        match = await http.post(
            "/api/v1/images/match",
            files=[("query", (None, red)), ("candidates", (None, blue)), ("candidates", ("o", picture(ORANGE)))],
        )
        sim = await http.post("/api/v1/images/similarity", files=[("images", (None, red)), ("images", (None, blue))])
        embed = await http.post("/api/v1/images/embed", files=[("images", (None, blue))])
        unknown = await http.post("/api/v1/images/embed", files=[("images", (None, "a_" + "0" * 24))])
        not_an_id = await http.post("/api/v1/images/embed", files=[("images", (None, "red.png"))])

    assert compare.status_code == 200, compare.text
    assert compare.json()["cosine"] == pytest.approx(by_upload.json()["cosine"], abs=1e-6)
    assert compare.json()["same_subject"] is True
    assert match.json()["best"] == 1  # orange is nearer red than blue is
    assert np.asarray(sim.json()["matrix"]).shape == (2, 2)
    assert np.asarray(embed.json()["vectors"]).shape == (1, 12)
    assert_error(unknown, 404, "asset_not_found")
    assert_error(not_an_id, 422, "invalid_asset_id")


async def test_search_takes_an_asset_id_in_a_form_or_json(world: World) -> None:
    async with serve(world.app()) as http:
        red = (await upload(http, picture(RED))).json()["id"]
        by_upload = await http.post("/api/v1/search", files={"image": ("q.jpg", picture(RED))})
        by_form = await http.post("/api/v1/search", files={"asset_id": (None, red)})
        by_json = await http.post("/api/v1/search", json={"asset_id": red})
        both = await http.post("/api/v1/search", json={"asset_id": red, "event": "e1"})
        neither = await http.post("/api/v1/search", files={"limit": (None, "3")})

    assert by_form.status_code == 200 and by_json.status_code == 200, (by_form.text, by_json.text)
    results = by_upload.json()["results"]
    assert results[0]["seq"] in (2, 3) and results[0]["score"] == pytest.approx(1.0, abs=0.01)
    assert by_form.json()["results"] == results == by_json.json()["results"]
    assert by_json.json()["query"] == {"kind": "image", "asset_id": red}
    assert_error(both, 422, "invalid_query")
    assert_error(neither, 422, "missing_image")


async def test_without_a_store_assets_are_not_served(world: World) -> None:
    app = create_app(settings=world.http, hub=LiveHub(16), index=world.index, embed_images=world.embed, health=dict)
    async with serve(app) as http:
        assert_error(await upload(http, picture(RED)), 404, "not_found")
        asset = await http.post("/api/v1/images/embed", files=[("images", (None, "a_" + "0" * 24))])
        assert_error(asset, 503, "assets_unavailable")


async def test_assets_need_a_viewer_token_where_tokens_are_set(world: World) -> None:
    world.http = token_settings(max_asset_bytes=2_000_000)
    async with serve(world.app()) as http:
        anonymous = await upload(http, picture(RED))
        made = await http.post("/api/v1/assets", files={"file": ("a", picture(RED))}, headers=bearer("viewer"))
        read = await http.get(f"/api/v1/assets/{made.json()['id']}", headers=bearer("viewer"))

    assert_error(anonymous, 401, "missing_token")
    assert made.status_code == 201 and read.status_code == 200


def noise_png(side: int, seed: int) -> bytes:
    """A picture PNG cannot compress: about 3 bytes a pixel."""
    rgb = np.random.default_rng(seed).integers(0, 255, (side, side, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="PNG")
    return buf.getvalue()


async def test_pictures_by_id_count_against_the_request_upload_limit(world: World) -> None:
    limit = world.http.max_upload_bytes  # 200 kB
    big, a, b = noise_png(300, 0), noise_png(200, 1), noise_png(200, 2)
    assert len(big) > limit and limit / 2 < len(a) < limit and limit / 2 < len(b) < limit
    async with serve(world.app()) as http:
        refused = await upload(http, big, "big.png")
        ida, idb = [(await upload(http, p)).json()["id"] for p in (a, b)]
        each = [await http.post("/api/v1/images/embed", files=[("images", (None, i))]) for i in (ida, idb)]
        both = await http.post("/api/v1/images/embed", files=[("images", (None, ida)), ("images", (None, idb))])
        listed = (await http.get("/api/v1/assets")).json()["assets"]

    assert assert_error(refused, 413, "upload_too_large")["details"]["setting"] == "http.max_upload_bytes"
    assert [r.status_code for r in each] == [200, 200]
    assert assert_error(both, 413, "upload_too_large")["details"]["asset_id"] == idb
    assert sorted(m["id"] for m in listed) == sorted([ida, idb]), "the refused picture is not kept"
