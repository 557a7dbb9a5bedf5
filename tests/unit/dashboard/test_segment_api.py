"""Click-to-segment on an uploaded or stored picture, with several positive and negative clicks,
at picture size (mask, overlay and heatmap PNGs), and picture quality, served by uvicorn on
port 0. The model's patch grid is stood in for by each 16-pixel cell's mean colour: a click on a
colour selects the cells of that colour."""

from __future__ import annotations

import base64
import contextlib
import io
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from fastapi import FastAPI
from PIL import Image

from dinostream.analytics.watchlist import Exemplar, Watchlist
from dinostream.core.records import FrameEmbedding
from dinostream.core.settings import HttpSettings, ReidSettings
from dinostream.dashboard.app import create_app
from dinostream.dashboard.live_hub import LiveHub
from dinostream.dashboard.recent_frames import RecentFrames
from dinostream.dashboard.watchlist_api import watchlist_router
from dinostream.sinks.asset_store import AssetStore
from tests.pictures import jpeg
from tests.serving import serve as serve_on_port

pytestmark = pytest.mark.integration  # uvicorn on a real socket

BLUE, RED, GREEN = (30, 40, 220), (230, 20, 20), (20, 200, 40)
W, H = 160, 128  # a 10 x 8 grid of 16-pixel cells
RED_BOX = (32, 32, 80, 80)  # x0, y0, x1, y1 in pixels: cells 2-4 across, 2-4 down
GREEN_BOX = (112, 80, 160, 128)


def scene() -> np.ndarray:
    rgb = np.zeros((H, W, 3), np.uint8) + np.array(BLUE, np.uint8)
    for (x0, y0, x1, y1), colour in ((RED_BOX, RED), (GREEN_BOX, GREEN)):
        rgb[y0:y1, x0:x1] = colour
    return rgb


def png(rgb: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="PNG")
    return buf.getvalue()


def cell_patches(rgb: np.ndarray) -> np.ndarray:
    gh, gw = rgb.shape[0] // 16, rgb.shape[1] // 16
    cells = rgb[: gh * 16, : gw * 16].reshape(gh, 16, gw, 16, 3).mean(axis=(1, 3)) / 255.0 - 0.5
    return np.tile(cells, (1, 1, 4)).astype(np.float32)


async def embed_record(rgb: np.ndarray) -> FrameEmbedding:
    p = cell_patches(rgb)
    v = p.mean(axis=(0, 1))
    return FrameEmbedding("query", 0, 0.0, 0.0, "test", False, v, v, p)


def box_mask(box: tuple[int, int, int, int]) -> np.ndarray:
    m = np.zeros((H, W), bool)
    x0, y0, x1, y1 = box
    m[y0:y1, x0:x1] = True
    return m


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / (a | b).sum())


def decoded(b64: str) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(b64))))


class World:
    def __init__(self, tmp: Path) -> None:
        self.store = AssetStore(tmp / "assets", max_bytes=2_000_000, retention_days=1.0)
        self.recent = RecentFrames(per_stream=4)
        rgb = scene()
        self.recent.add(FrameEmbedding("cam1", 3, 1.5, 1e9, "t", False, *[cell_patches(rgb).mean(axis=(0, 1))] * 2,
                                       cell_patches(rgb), jpeg(rgb)).encode())  # fmt: skip

    def app(self) -> FastAPI:
        async def publish(ex_id: str, ex: Exemplar | None) -> None:
            return None

        app = create_app(
            settings=HttpSettings(), hub=LiveHub(16), index=None, embed_images=None, health=dict, assets=self.store
        )
        reid = ReidSettings(click_threshold=0.3, feature_centering=0.0)  # the edge half way between cell centres
        app.include_router(
            watchlist_router(Watchlist(), publish, self.recent, embed_record, reid, 1_000_000, self.store)
        )
        return app


@contextlib.asynccontextmanager
async def serve(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with serve_on_port(app) as base, httpx.AsyncClient(base_url=base, timeout=30) as http:
        yield http


RED_CLICK, GREEN_CLICK, BLUE_CLICK = [0.35, 0.4], [0.85, 0.8], [0.05, 0.05]
NOWHERE = "a_" + "0" * 24


def pt(xy: list[float]) -> dict[str, float]:
    return {"x": xy[0], "y": xy[1]}


async def test_an_uploaded_picture_is_segmented_at_its_size_with_pngs(tmp_path: Path) -> None:
    async with serve(World(tmp_path).app()) as http:
        resp = await http.post(
            "/api/v1/segment", files={"image": ("s.png", png(scene())), "points": (None, f"[{RED_CLICK}]")}
        )

    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["size"] == [W, H] and body["grid"] == [8, 10]
    assert np.asarray(body["mask"]).sum() == 9, "the red square's 3 x 3 cells"
    mask = decoded(body["mask_png"]) > 127
    assert mask.shape == (H, W) and iou(mask, box_mask(RED_BOX)) > 0.8
    assert body["area"] == pytest.approx(mask.mean(), abs=1e-3)
    overlay, heat = decoded(body["overlay_png"]), decoded(body["heatmap_png"])
    assert overlay.shape == (H, W, 3) and heat.shape == (H, W, 3)
    box = body["box"]
    assert box["x0"] == pytest.approx(RED_BOX[0] / W, abs=0.06) and box["x1"] == pytest.approx(RED_BOX[2] / W, abs=0.06)


async def test_several_positive_and_negative_clicks_on_a_stored_picture(tmp_path: Path) -> None:
    world = World(tmp_path)
    asset = world.store.put(png(scene()), filename="s.png").id
    async with serve(world.app()) as http:
        both = await http.post(
            "/api/v1/segment", json={"asset_id": asset, "points": [pt(RED_CLICK), pt(GREEN_CLICK)], "pictures": False}
        )
        everything = await http.post(
            "/api/v1/segment", json={"asset_id": asset, "point": pt(RED_CLICK), "threshold": -1.0}
        )
        without_blue = await http.post(
            "/api/v1/segment",
            json={
                "asset_id": asset,
                "point": pt(RED_CLICK),
                "negative": [pt(BLUE_CLICK)],
                "threshold": -1.0,
            },
        )

    assert both.status_code == 200, both.text
    assert np.asarray(both.json()["mask"]).sum() == 9 + 9 and "mask_png" not in both.json()
    assert np.asarray(everything.json()["mask"]).all(), "threshold -1 keeps every cell"
    kept = decoded(without_blue.json()["mask_png"]) > 127
    assert np.asarray(without_blue.json()["mask"]).sum() < 80
    background = ~(box_mask(RED_BOX) | box_mask(GREEN_BOX))
    assert kept[box_mask(RED_BOX)].mean() > 0.8 and kept[background].mean() < 0.1, "the negative click took the blue"


async def test_several_clicks_on_a_recent_frame_and_the_single_click_answer_kept(tmp_path: Path) -> None:
    frame = {"stream": "cam1", "seq": 3}
    async with serve(World(tmp_path).app()) as http:
        single = await http.post("/api/v1/segment", json={"frame": frame, "point": pt(RED_CLICK)})
        several = await http.post(
            "/api/v1/segment",
            json={"frame": frame, "points": [pt(RED_CLICK), pt(GREEN_CLICK)]},
        )

    assert set(single.json()) == {"grid", "similarity", "mask", "box", "threshold"}  # as before
    assert np.asarray(single.json()["mask"]).sum() == 9
    body = several.json()
    assert several.status_code == 200 and body["size"] == [W, H] and np.asarray(body["mask"]).sum() == 18
    mask = decoded(body["mask_png"]) > 127
    assert iou(mask, box_mask(RED_BOX) | box_mask(GREEN_BOX)) > 0.7


async def test_bad_segment_requests_name_the_problem(tmp_path: Path) -> None:
    world = World(tmp_path)
    video_like = world.store.put(b"\x00\x00\x00\x20ftypisom" + b"\x00" * 64).id
    async with serve(world.app()) as http:
        image = ("s.png", png(scene()))
        cases = [
            (await http.post("/api/v1/segment", files={"points": (None, f"[{RED_CLICK}]")}), 422, "missing_image"),
            (
                await http.post("/api/v1/segment", files={"image": image, "points": (None, "red")}),
                422,
                "invalid_request",
            ),
            (
                await http.post("/api/v1/segment", files={"image": image, "points": (None, "[[2, 0]]")}),
                422,
                "invalid_request",
            ),
            (
                await http.post("/api/v1/segment", json={"asset_id": NOWHERE, "points": [pt([0, 0])]}),
                404,
                "asset_not_found",
            ),
            (
                await http.post("/api/v1/segment", json={"asset_id": video_like, "points": [pt([0, 0])]}),
                422,
                "wrong_asset_kind",
            ),
            (await http.post("/api/v1/segment", json={"asset_id": video_like}), 422, "invalid_request"),
            (
                await http.post(
                    "/api/v1/segment", files={"image": ("s.png", b"not a picture"), "points": (None, "[[0, 0]]")}
                ),
                415,
                "not_an_image",
            ),
        ]
    for resp, status, code in cases:
        assert resp.status_code == status, resp.text
        error = resp.json()["error"]
        assert error["code"] == code and "\n" not in error["message"]


async def test_picture_quality_ranks_a_blurred_dark_copy_below_the_clean_one(tmp_path: Path) -> None:
    world = World(tmp_path)
    rng = np.random.default_rng(0)
    clean = rng.integers(0, 255, (96, 128, 3), dtype=np.uint8)
    dark = (clean // 12).astype(np.uint8)
    stored = world.store.put(png(dark)).id
    async with serve(world.app()) as http:
        resp = await http.post(
            "/api/v1/images/quality", files=[("images", ("a", png(clean))), ("images", (None, stored))]
        )
        none = await http.post("/api/v1/images/quality", files={"other": ("x", b"1")})

    assert resp.status_code == 200, resp.text
    first, second = resp.json()["results"]
    assert (first["index"], second["index"]) == (0, 1)
    assert second["score"] < first["score"] and "dark" in second["reasons"] and "dark" not in first["reasons"]
    assert {"sharpness", "brightness", "contrast", "noise", "blockiness", "scores"} <= set(first)
    assert none.status_code == 422 and none.json()["error"]["code"] == "missing_image"
