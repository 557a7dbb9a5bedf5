"""Search, summaries and image utilities, served for real by uvicorn on port 0 over a real Qdrant
Edge index, with a deterministic colour embedder standing in for DINOv3."""

from __future__ import annotations

import contextlib
import datetime
import io
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from fastapi import FastAPI
from PIL import Image

from dinostream.core.records import Event, FrameEmbedding, Heatmap, event_id
from dinostream.core.settings import AnalyticsSettings, HttpSettings, IndexSettings, ReidSettings
from dinostream.dashboard.analytics_control import AnalyticsControl
from dinostream.dashboard.app import create_app
from dinostream.dashboard.live_hub import LiveHub
from dinostream.sinks.qdrant_edge_index import QdrantEdgeIndex
from tests.pictures import ColourEmbedder, colour_features, jpeg, picture
from tests.serving import serve as serve_on_port

pytestmark = pytest.mark.integration  # uvicorn on a real socket

RED, ORANGE, GREEN, BLUE = (230, 20, 20), (240, 140, 10), (20, 200, 40), (30, 40, 220)
T0 = 1_700_000_000.0
GRID = 4
# cam1, seq 0..9 (1 s apart): a red square in the top-left cell in frames 2-3, bottom-right in 7-8.
RED_AT = {2: (0, 0), 3: (0, 0), 7: (3, 3), 8: (3, 3)}


# ---------- a deterministic embedder and frames made from pictures ----------


def scene_rgb(red_at: tuple[int, int] | None, background: tuple[int, int, int] = BLUE) -> np.ndarray:
    rgb = np.zeros((GRID * 16, GRID * 16, 3), dtype=np.uint8) + np.array(background, dtype=np.uint8)
    if red_at is not None:
        r, c = red_at
        rgb[r * 16 : (r + 1) * 16, c * 16 : (c + 1) * 16] = RED
    return rgb


def frame(stream: str, seq: int, rgb: np.ndarray) -> FrameEmbedding:
    cells = rgb.reshape(GRID, 16, GRID, 16, 3).mean(axis=(1, 3)) / 255.0 - 0.5
    patches = np.tile(cells, (1, 1, 4))  # (4, 4, 12): the cell's colour, as wide as the CLS
    vec = colour_features(rgb)
    return FrameEmbedding(stream, seq, seq * 0.5, T0 + seq, "test-colour", False, vec, vec, patches, jpeg(rgb))


# ---------- the served app ----------


@contextlib.asynccontextmanager
async def serve(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """The app under uvicorn on a free port, and a client for it."""
    async with serve_on_port(app) as base, httpx.AsyncClient(base_url=base, timeout=30) as http:
        yield http


class World:
    def __init__(self, index: QdrantEdgeIndex) -> None:
        self.index: QdrantEdgeIndex | None = index
        self.embed: ColourEmbedder | None = ColourEmbedder()
        self.hub = LiveHub(queue_size=16, recent=10)
        self.http = HttpSettings(max_upload_bytes=200_000)
        self.health: Callable[[], dict[str, Any]] = lambda: {"kafka": "ok"}
        self.reid = ReidSettings()
        self.analytics: AnalyticsControl | None = None

    def app(self) -> FastAPI:
        return create_app(
            settings=self.http,
            hub=self.hub,
            index=self.index,
            embed_images=self.embed,
            health=self.health,
            index_settings=IndexSettings(moment_gap_s=1.5),
            reid_settings=self.reid,
            analytics=self.analytics,
        )


ANOMALY = Event(event_id("cam1", "anomaly", 8), "anomaly", "cam1", 4.0, 4.0, 4.0, T0 + 8, 0.9, (8,))
CUT = Event(event_id("cam1", "scene_change", 7), "scene_change", "cam1", 3.5, 3.5, 3.5, T0 + 7, 0.6, (6, 7))


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    index = QdrantEdgeIndex(tmp_path / "qdrant", 12)
    index.upsert_frames([frame("cam1", seq, scene_rgb(RED_AT.get(seq))) for seq in range(10)])
    index.upsert_frames([frame("cam2", seq, scene_rgb(None, GREEN)) for seq in range(3)])
    index.upsert_events([ANOMALY, CUT])
    yield World(index)
    index.close()


def assert_error(resp: httpx.Response, status: int, code: str) -> str:
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert set(body) == {"error"} and body["error"]["code"] == code, body
    message = body["error"]["message"]
    assert message and "\n" not in message
    return message


def spans(body: dict[str, Any]) -> list[tuple[str, int, int]]:
    """Each result as (stream, first seq, last seq), from its wall-clock span."""
    return [(r["stream"], round(r["start_ts"] - T0), round(r["end_ts"] - T0)) for r in body["results"]]


# ---------- queries ----------


async def test_a_point_query_finds_every_moment_the_object_appears(world: World) -> None:
    async with serve(world.app()) as http:
        resp = await http.post("/api/v1/search", json={"point": {"stream": "cam1", "t": 1.0, "x": 0.1, "y": 0.1}})

    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert sorted(spans(body)) == [("cam1", 2, 3), ("cam1", 7, 8)]  # both appearances, nothing else
    assert body["results"][0]["score"] == pytest.approx(1.0, abs=0.02)
    query = body["query"]
    assert (query["kind"], query["stream"], query["seq"]) == ("point", "cam1", 2)
    heat = Heatmap.from_dict(query["heatmap"]).values
    assert heat.shape == (GRID, GRID) and heat[0, 0] == heat.max() and heat[3, 3] < 0.5
    assert query["box"]["x1"] == pytest.approx(0.25) and query["box"]["y1"] == pytest.approx(0.25)


def _box(body: dict[str, Any]) -> tuple[float, float, float, float]:
    box = body["query"]["box"]
    return box["x0"], box["y0"], box["x1"], box["y1"]


RED_CELL = (0.0, 0.0, pytest.approx(0.25), pytest.approx(0.25))  # the clicked cell alone
WHOLE_FRAME = (0.0, 0.0, 1.0, 1.0)  # every cell passes a threshold of -1


async def test_a_point_query_segments_with_the_configured_click_threshold(world: World) -> None:
    click = {"point": {"stream": "cam1", "t": 1.0, "x": 0.1, "y": 0.1}}
    async with serve(world.app()) as http:
        default = (await http.post("/api/v1/search", json=click)).json()
    world.reid = ReidSettings(click_threshold=-1.0)
    async with serve(world.app()) as http:
        configured = (await http.post("/api/v1/search", json=click)).json()

    assert _box(default) == RED_CELL and _box(configured) == WHOLE_FRAME


async def test_a_point_query_segments_with_the_streams_own_threshold_read_at_each_request(world: World) -> None:
    control = AnalyticsControl(AnalyticsSettings(), _ignore)
    world.analytics = control
    click = {"point": {"stream": "cam1", "t": 1.0, "x": 0.1, "y": 0.1}}
    async with serve(world.app()) as http:
        before = (await http.post("/api/v1/search", json=click)).json()
        await control.change("cam1", "reid", {"click_threshold": -1.0})  # as PATCH .../analytics/reid does
        after = (await http.post("/api/v1/search", json=click)).json()

    assert _box(before) == RED_CELL and _box(after) == WHOLE_FRAME


async def _ignore(*args: object) -> None:
    pass


async def test_a_frame_query_and_an_event_query_search_with_that_frames_vector(world: World) -> None:
    async with serve(world.app()) as http:
        by_frame = (
            await http.post("/api/v1/search", json={"frame": {"stream": "cam1", "t": 3.6}, "min_score": 0.99})
        ).json()
        by_event = (await http.post("/api/v1/search", json={"event": ANOMALY.id, "min_score": 0.99})).json()

    assert (by_frame["query"]["kind"], by_frame["query"]["seq"]) == ("frame", 7)  # t 3.5 is nearest 3.6
    assert spans(by_frame)[0] == ("cam1", 7, 8)
    assert by_event["query"]["event"] == {"id": ANOMALY.id, "type": "anomaly"}
    assert by_event["query"]["seq"] == 8 and spans(by_event) == [("cam1", 7, 8)]
    assert by_event["results"][0]["thumbnail_url"] in (
        "/api/v1/frames/cam1/7/thumbnail.jpg",
        "/api/v1/frames/cam1/8/thumbnail.jpg",
    )


async def test_image_search_keeps_its_multipart_form_and_filters_by_stream_and_time(world: World) -> None:
    red_corner = jpeg(scene_rgb((0, 0)))
    async with serve(world.app()) as http:
        form = {"image": ("q.jpg", red_corner, "image/jpeg")}
        plain = (await http.post("/api/v1/search", files=form, data={"min_score": "0.99"})).json()
        window = await http.post(
            "/api/v1/search",
            files={"image": ("q.jpg", red_corner, "image/jpeg")},
            data={"from": str(T0 + 3), "to": str(T0 + 9), "streams": "cam1", "min_score": "-1", "gap_s": "0"},
        )
        thumb = await http.get(plain["results"][0]["thumbnail_url"])
        rgba = io.BytesIO()
        Image.new("RGBA", (120, 90), (*GREEN, 128)).save(rgba, format="PNG")  # alpha: must become RGB
        only_cam2 = await http.post(
            "/api/v1/search", files={"image": ("q.png", rgba.getvalue(), "image/png")}, data={"streams": " cam2 ,"}
        )

    top = plain["results"][0]
    assert (top["stream"], round(top["start_ts"] - T0), round(top["end_ts"] - T0)) == ("cam1", 2, 3)
    assert set(top) >= {"stream", "seq", "t", "ts", "score", "thumbnail_url", "hits"} and top["hits"] == 2
    assert plain["query"] == {"kind": "image"} and plain["untrained"] is False
    assert thumb.status_code == 200 and thumb.content[:2] == b"\xff\xd8"
    assert sorted(s for _, s, _ in spans(window.json())) == list(range(3, 10))  # every cam1 frame in [3, 9]
    assert spans(only_cam2.json()) == [("cam2", 0, 2)]
    assert world.embed is not None and world.embed.seen[-1] == ((90, 120, 3), "uint8")


async def test_event_types_restrict_a_search_to_frames_those_events_refer_to(world: World) -> None:
    async with serve(world.app()) as http:
        resp = await http.post(
            "/api/v1/search", json={"frame": {"stream": "cam1", "t": 1.0}, "event_types": ["anomaly"], "min_score": -1}
        )
    body = resp.json()
    assert spans(body) == [("cam1", 8, 8)]
    assert body["results"][0]["events"] == [{"id": ANOMALY.id, "type": "anomaly", "t": 4.0, "ts": T0 + 8}]


async def test_pages_follow_the_cursor_to_the_end_without_repeats(world: World) -> None:
    query: dict[str, Any] = {"frame": {"stream": "cam2", "t": 0}, "min_score": -1, "gap_s": 0, "limit": 4}
    seen: list[tuple[str, int, int]] = []
    async with serve(world.app()) as http:
        cursor = None
        for _ in range(10):
            body = (await http.post("/api/v1/search", json={**query, "cursor": cursor})).json()
            seen += spans(body)
            cursor = body["next_cursor"]
            if cursor is None:
                break
        first = (await http.post("/api/v1/search", json=query)).json()["next_cursor"]
        other = await http.post("/api/v1/search", json={**query, "frame": {"stream": "cam1", "t": 0}, "cursor": first})
        garbage = await http.post("/api/v1/search", json={**query, "cursor": "not a cursor!"})

    assert len(seen) == len(set(seen)) == 13 == body["total"]  # every frame, each once
    assert "another query" in assert_error(other, 422, "invalid_cursor")
    assert_error(garbage, 422, "invalid_cursor")


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"frame": {"stream": "cam1"}}, 422, "invalid_request"),
        ({"point": {"stream": "cam1", "t": 0, "x": 1.5, "y": 0}}, 422, "invalid_request"),
        ({"frame": {"stream": "cam1", "t": 0}, "event": "x"}, 422, "invalid_query"),
        ({}, 422, "invalid_query"),
        ({"frame": {"stream": "cam1", "t": 0}, "from": 10, "to": 5}, 422, "invalid_time_range"),
        ({"frame": {"stream": "cam1", "t": 0}, "event_types": ["explosion"]}, 422, "invalid_event_type"),
        ({"frame": {"stream": "cam1", "t": 0}, "streams": ["bad id!"]}, 422, "invalid_stream"),
        ({"frame": {"stream": "cam1", "t": 0}, "limit": 0}, 422, "invalid_request"),
        ({"frame": {"stream": "cam1", "t": 0}, "colour": "red"}, 422, "invalid_request"),
        ({"frame": {"stream": "cam9", "t": 0}}, 404, "frame_not_found"),
        ({"event": event_id("cam1", "anomaly", 99)}, 404, "event_not_found"),
        ({"image": "red"}, 415, "unsupported_media_type"),
    ],
    ids=[
        "frame-without-t",
        "point-outside-the-frame",
        "two-queries",
        "no-query",
        "from-after-to",
        "unknown-event-type",
        "bad-stream-id",
        "limit-zero",
        "unknown-field",
        "stream-without-frames",
        "unknown-event",
        "image-as-json",
    ],
)
async def test_bad_queries_get_one_line_errors(world: World, body: dict[str, Any], status: int, code: str) -> None:
    async with serve(world.app()) as http:
        assert_error(await http.post("/api/v1/search", json=body), status, code)


async def test_bodies_that_are_not_json_or_a_picture_are_refused(world: World) -> None:
    async with serve(world.app()) as http:
        assert_error(await http.post("/api/v1/search", content=b"red please"), 415, "unsupported_media_type")
        broken = await http.post("/api/v1/search", content=b"{nope", headers={"content-type": "application/json"})
        assert_error(broken, 422, "invalid_request")
        huge = await http.post("/api/v1/search", json={"event": "x" * 300_000})
        assert "200000" in assert_error(huge, 413, "upload_too_large")
        text = await http.post("/api/v1/search", files={"image": ("q.jpg", b"GIF89a not really", "image/jpeg")})
        assert_error(text, 415, "not_an_image")
    assert world.embed is not None and world.embed.calls == 0


@pytest.mark.parametrize("source", ["stream", "health"])
async def test_search_reports_untrained_features(world: World, source: str) -> None:
    if source == "stream":
        world.hub.publish_frame("cam1", 0, 0.0, picture(RED), model="random:vits16", untrained=True)
    else:
        world.health = lambda: {"model": {"id": "random:vits16", "untrained": True}}
    async with serve(world.app()) as http:
        resp = await http.post("/api/v1/search", json={"frame": {"stream": "cam2", "t": 0}})
    assert resp.json()["untrained"] is True and spans(resp.json()) == [("cam2", 0, 2)]


async def test_without_an_index_search_and_summaries_are_503(world: World) -> None:
    world.index = None
    async with serve(world.app()) as http:
        resp = await http.post("/api/v1/search", json={"frame": {"stream": "cam1", "t": 0}})
        assert "vector index" in assert_error(resp, 503, "search_unavailable")
        assert_error(await http.get("/api/v1/streams/cam1/summary"), 503, "search_unavailable")


# ---------- summaries ----------


async def test_a_summary_picks_k_keyframes_of_the_window_in_time_order(world: World) -> None:
    async with serve(world.app()) as http:
        resp = await http.get("/api/v1/streams/cam1/summary", params={"from": T0 + 1, "to": T0 + 9, "k": 3})
        body = resp.json()
        thumbs = [(await http.get(k["thumbnail_url"])).status_code for k in body["keyframes"]]

    assert resp.status_code == 200, resp.text
    seqs = [k["seq"] for k in body["keyframes"]]
    assert len(seqs) == 3 and seqs == sorted(seqs) and all(1 <= s <= 9 for s in seqs)
    assert seqs[0] <= 3 and seqs[-1] >= 7  # covers the window, not its start
    assert body["frames_in_window"] == body["frames_considered"] == 9 and thumbs == [200, 200, 200]


@pytest.mark.parametrize(
    ("path", "params", "status", "code"),
    [
        ("/api/v1/streams/cam1/summary", {"from": T0 + 5, "to": T0 + 1}, 422, "invalid_time_range"),
        ("/api/v1/streams/cam1/summary", {"k": 0}, 422, "invalid_request"),
        ("/api/v1/streams/cam1/summary", {"from": T0 + 100, "to": T0 + 200}, 404, "no_frames"),
        ("/api/v1/streams/bad!id/summary", {}, 422, "invalid_stream"),
    ],
    ids=["from-after-to", "k-zero", "empty-window", "bad-stream"],
)
async def test_bad_summary_requests(world: World, path: str, params: dict[str, Any], status: int, code: str) -> None:
    async with serve(world.app()) as http:
        assert_error(await http.get(path, params=params), status, code)


# ---------- image utilities ----------


async def test_embed_compare_similarity_and_match(world: World) -> None:
    red, red_big, blue, orange = picture(RED), picture(RED, (200, 120), "PNG"), picture(BLUE), picture(ORANGE)
    async with serve(world.app()) as http:
        emb = await http.post("/api/v1/images/embed", files=[("images", ("a.jpg", red)), ("images", ("b.jpg", blue))])
        same = await http.post("/api/v1/images/compare", files=[("images", ("a", red)), ("images", ("b", red_big))])
        diff = await http.post("/api/v1/images/compare", files=[("images", ("a", red)), ("images", ("b", blue))])
        sim = await http.post(
            "/api/v1/images/similarity",
            files=[("images", ("a", red)), ("images", ("b", blue)), ("images", ("c", orange))],
        )
        match = await http.post(
            "/api/v1/images/match",
            files=[
                ("query", ("q", red_big)),
                ("candidates", ("0", blue)),
                ("candidates", ("1", orange)),
                ("candidates", ("2", red)),
            ],
        )

    vectors = np.asarray(emb.json()["vectors"])
    assert emb.json()["dim"] == 12 and vectors.shape == (2, 12)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert same.json()["same_subject"] is True and same.json()["cosine"] == pytest.approx(1.0, abs=0.01)
    assert diff.json()["same_subject"] is False and diff.json()["threshold"] == IndexSettings().same_subject_threshold
    matrix = np.asarray(sim.json()["matrix"])
    np.testing.assert_allclose(matrix, matrix.T, atol=1e-6)
    np.testing.assert_allclose(np.diag(matrix), 1.0, atol=1e-5)
    assert matrix[0, 2] > matrix[0, 1]  # red is more like orange than like blue
    assert match.json()["best"] == 2 and len(match.json()["scores"]) == 3 and match.json()["same_subject"] is True


async def test_image_utilities_refuse_bad_uploads(world: World) -> None:
    world.http = HttpSettings(max_upload_bytes=4096)
    noise = np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)
    big = io.BytesIO()
    Image.fromarray(noise).save(big, format="PNG")
    async with serve(world.app()) as http:
        one = await http.post("/api/v1/images/compare", files=[("images", ("a", picture(RED)))])
        assert "2" in assert_error(one, 422, "missing_image")
        not_image = await http.post("/api/v1/images/embed", files=[("images", ("a.jpg", b"\x00\x01 not an image"))])
        assert_error(not_image, 415, "not_an_image")
        too_big = await http.post("/api/v1/images/embed", files=[("images", ("a.png", big.getvalue()))])
        assert_error(too_big, 413, "upload_too_large")
        assert_error(await http.post("/api/v1/images/embed", json={"images": []}), 415, "unsupported_media_type")
        no_query = await http.post("/api/v1/images/match", files=[("candidates", ("0", picture(RED)))])
        assert "'query'" in assert_error(no_query, 422, "missing_image")
    world.embed = None
    async with serve(world.app()) as http:
        resp = await http.post("/api/v1/images/embed", files=[("images", ("a.jpg", picture(RED)))])
        assert "embedder" in assert_error(resp, 503, "search_unavailable")


# ---------- richer answers and errors (issue 16) ----------


async def test_compare_says_distance_percentage_and_confidence_at_its_threshold(world: World) -> None:
    red, red_big, orange, blue = picture(RED), picture(RED, (200, 120), "PNG"), picture(ORANGE), picture(BLUE)
    async with serve(world.app()) as http:
        same = await http.post("/api/v1/images/compare", files=[("images", ("a", red)), ("images", ("b", red_big))])
        near = await http.post("/api/v1/images/compare", files=[("images", ("a", red)), ("images", ("b", orange))])
        diff = await http.post("/api/v1/images/compare", files=[("images", ("a", red)), ("images", ("b", blue))])

    threshold = IndexSettings().same_subject_threshold
    for resp in (same, near, diff):
        body = resp.json()
        assert resp.status_code == 200 and body["threshold"] == threshold
        assert body["distance"] == pytest.approx(1 - body["cosine"])
        assert body["percent"] == pytest.approx(max(0.0, body["cosine"]) * 100, abs=0.01)
        assert body["margin"] == pytest.approx(body["cosine"] - threshold)
        assert body["confidence"] in ("low", "medium", "high") and f"{threshold:.2f}" in body["explanation"]
    assert same.json()["same_subject"] is True and same.json()["confidence"] == "high"
    assert diff.json()["same_subject"] is False and diff.json()["confidence"] == "high"
    assert "different subjects" in diff.json()["explanation"]
    assert same.json()["percent"] > near.json()["percent"] > diff.json()["percent"]


async def test_match_ranks_every_candidate_best_first(world: World) -> None:
    files = [("query", ("q", picture(RED, (200, 120), "PNG")))]
    files += [("candidates", (str(i), picture(c))) for i, c in enumerate([BLUE, ORANGE, RED, GREEN])]
    async with serve(world.app()) as http:
        resp = await http.post("/api/v1/images/match", files=files)

    body = resp.json()
    assert resp.status_code == 200 and body["best"] == 2
    ranked = body["ranked"]
    assert [r["rank"] for r in ranked] == [1, 2, 3, 4]
    assert [r["index"] for r in ranked][:2] == [2, 1]  # red, then orange
    assert [r["cosine"] for r in ranked] == sorted(body["scores"], reverse=True)
    assert ranked[0]["same_subject"] is True and ranked[0]["confidence"] == body["confidence"]
    assert all(r["distance"] == pytest.approx(1 - r["cosine"]) for r in ranked)


async def test_similarity_of_100_pictures_embeds_in_bounded_batches(world: World) -> None:
    rng = np.random.default_rng(1)
    colours = [tuple(int(v) for v in rng.integers(0, 255, 3)) for _ in range(100)]
    files = [("images", (f"{i}.jpg", picture(c, (32, 24)))) for i, c in enumerate(colours)]
    async with serve(world.app()) as http:
        resp = await http.post("/api/v1/images/similarity", files=files)

    assert resp.status_code == 200, resp.text
    matrix = np.asarray(resp.json()["matrix"])
    assert matrix.shape == (100, 100) and resp.json()["count"] == 100
    np.testing.assert_allclose(np.diag(matrix), 1.0, atol=1e-5)
    embedder = world.embed
    assert embedder is not None and len(embedder.seen) == 100
    assert embedder.calls == 7, "100 pictures embedded 16 at a time, never all at once"


async def test_too_many_and_too_few_pictures_get_the_same_status_with_details(world: World) -> None:
    one = [("images", ("0.jpg", picture(RED, (16, 16))))]
    many = [("images", (f"{i}.jpg", picture(RED, (16, 16)))) for i in range(101)]
    async with serve(world.app()) as http:
        few = await http.post("/api/v1/images/similarity", files=one)
        lots = await http.post("/api/v1/images/similarity", files=many)
        two_queries = await http.post(
            "/api/v1/images/match", files=[("query", ("a", picture(RED))), ("query", ("b", picture(BLUE)))] + one
        )

    assert_error(few, 422, "missing_image")
    assert few.json()["error"]["details"] == {"field": "images", "min": 2, "max": 100, "got": 1}
    assert "100" in assert_error(lots, 422, "too_many_images")
    assert "'query'" in assert_error(two_queries, 422, "too_many_images")
    assert two_queries.json()["error"]["details"]["got"] == 2
    assert world.embed is not None and world.embed.calls == 0


async def test_error_bodies_carry_details_and_a_timestamp_and_no_reprs(world: World) -> None:
    async with serve(world.app()) as http:
        not_image = await http.post("/api/v1/images/embed", files=[("images", ("a.jpg", b"\x00 not an image"))])
        invalid = await http.post("/api/v1/search", json={"frame": {"stream": "cam1"}, "limit": 0})
        nowhere = await http.get("/api/v1/nowhere")

    for resp, status, code in (
        (not_image, 415, "not_an_image"),
        (invalid, 422, "invalid_request"),
        (nowhere, 404, "not_found"),
    ):
        message = assert_error(resp, status, code)
        error = resp.json()["error"]
        assert isinstance(error["details"], dict)
        stamp = datetime.datetime.fromisoformat(error["timestamp"].replace("Z", "+00:00"))
        assert abs(stamp.timestamp() - time.time()) < 600 and stamp.tzinfo is not None
        assert "0x" not in resp.text and "BytesIO" not in resp.text and "<" not in message
    assert nowhere.json()["error"]["details"] == {"method": "GET", "path": "/api/v1/nowhere"}


async def test_stats_count_streams_events_index_uptime_and_requests_by_status(world: World) -> None:
    world.hub.publish_frame("cam1", 0, 0.0, jpeg(scene_rgb(None)), model="test-colour", untrained=False)
    world.hub.publish_event(CUT)
    async with serve(world.app()) as http:
        await http.get("/api/v1/health")
        await http.get("/api/v1/nowhere")
        await http.post("/api/v1/images/compare", files=[("images", ("a", picture(RED)))])
        first = (await http.get("/api/v1/stats")).json()
        second = (await http.get("/api/v1/stats")).json()

    assert first["index"] == {"frames": 13, "events": 2}
    assert first["streams"] == 1 and first["frames_seen"] == 1 and first["events_seen"] == 1
    assert first["requests"]["by_status"] == {"200": 1, "404": 1, "422": 1} and first["requests"]["total"] == 3
    assert second["requests"]["by_status"]["200"] == 2  # the first stats request counts too
    assert second["uptime_s"] >= first["uptime_s"] >= 0
    world.index = None
    async with serve(world.app()) as http:
        assert (await http.get("/api/v1/stats")).json()["index"] is None
