"""Bounded everything (issue 17, part 2): a body limit on every endpoint, a decoded-pixel budget per
request (not per picture), and error bodies without absolute paths or object reprs."""

from __future__ import annotations

import io
import json
from collections.abc import AsyncIterator
from pathlib import Path

from PIL import Image

from dinostream.core.settings import HttpSettings
from tests.pictures import picture
from tests.security.gateway import Gateway, bearer, error_of, token_settings


def png(width: int, height: int) -> bytes:
    """A black PNG: a few kilobytes on the wire, width x height pixels once decoded."""
    buf = io.BytesIO()
    Image.new("1", (width, height)).save(buf, format="PNG")
    return buf.getvalue()


async def chunks(data: bytes, size: int = 65_536) -> AsyncIterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i : i + size]


async def test_a_huge_patch_or_stream_body_is_refused_before_it_is_read(tmp_path: Path) -> None:
    huge = json.dumps({"seed": -1, "warmup_frames": 2, "pad": "x" * 5_500_000}).encode()  # 5.5 MB
    async with Gateway(tmp_path, HttpSettings()) as gw, gw.client() as http:
        patch = await http.patch(
            "/api/v1/streams/cam1/analytics/anomaly", content=huge, headers={"Content-Type": "application/json"}
        )
        assert "65536-byte limit" in error_of(patch, 413, "body_too_large")
        assert len(patch.content) < 1000  # not a 12 MB echo of the input
        streamed = await http.patch(  # no Content-Length: counted while reading
            "/api/v1/streams/cam1/analytics/anomaly", content=chunks(huge), headers={"Content-Type": "application/json"}
        )
        assert "content-length" not in streamed.request.headers
        error_of(streamed, 413, "body_too_large")
        big_stream = json.dumps({"url": "clip.mp4", "id": "x" * 1_000_000}).encode()
        error_of(
            await http.post("/api/v1/streams", content=big_stream, headers={"Content-Type": "application/json"}),
            413,
            "body_too_large",
        )
        assert gw.sent == [] and gw.manager.list() == []
        ok = await http.patch("/api/v1/streams/cam1/analytics/phase", json={"window": 4})
        assert ok.status_code != 413  # a normal body passes the limit


async def test_the_pixel_budget_is_per_request_not_per_picture(tmp_path: Path) -> None:
    eight = [("images", (f"{i}.png", png(3000, 3000), "image/png")) for i in range(8)]  # 9 Mpx each, 72 in all
    async with Gateway(tmp_path, HttpSettings()) as gw, gw.client() as http:
        r = await http.post("/api/v1/images/embed", files=eight)
        assert "50000000 pixels in all" in error_of(r, 413, "too_many_pixels")
        assert gw.embed.calls == 0
        two = await http.post("/api/v1/images/embed", files=eight[:2])  # 18 Mpx: within the budget
        assert two.status_code == 200 and len(two.json()["vectors"]) == 2


async def test_eight_12000_pixel_pngs_are_refused_without_decoding_them(tmp_path: Path) -> None:
    big = png(12000, 12000)  # 144 Mpx, under PIL's own bomb limit
    files = [("images", (f"{i}.png", big, "image/png")) for i in range(8)]
    assert sum(len(f[1][1]) for f in files) < 2_000_000
    async with Gateway(tmp_path, token_settings()) as gw, gw.client(bearer("viewer")) as http:
        error_of(await http.post("/api/v1/images/embed", files=files), 413, "too_many_pixels")
        error_of(await http.post("/api/v1/images/embed", files=files[:1]), 413, "too_many_pixels")
        assert gw.embed.calls == 0


async def test_error_bodies_show_no_object_reprs_or_absolute_paths(tmp_path: Path) -> None:
    async with Gateway(tmp_path, HttpSettings()) as gw, gw.client() as http:
        files = [("images", ("a.png", b"\x89PNG\r\n\x1a\n but not really", "image/png"))]
        message = error_of(await http.post("/api/v1/images/embed", files=files), 415, "not_an_image")
        assert "0x" not in message and "BytesIO" not in message and "<" not in message
        outside = str(tmp_path / "outside.mp4")
        message = error_of(await http.post("/api/v1/streams", json={"url": outside}), 422, "url_refused")
        assert "outside the media roots" in message
        assert str(tmp_path) not in message and str(gw.media) not in message, message
        bad_json = await http.post("/api/v1/streams", json={"url": "clip.mp4", "sample_fps": "x" * 50_000})
        assert len(error_of(bad_json, 422, "invalid_request")) <= 500


async def test_uploads_keep_their_own_limit_and_whip_its_offer_limit(tmp_path: Path) -> None:
    async with Gateway(tmp_path, HttpSettings(max_upload_bytes=100_000)) as gw, gw.client() as http:
        files = [("images", ("a.jpg", picture((9, 9, 9)), "image/jpeg"))]
        assert (await http.post("/api/v1/images/embed", files=files)).status_code == 200
        error_of(
            await http.post("/api/v1/images/embed", files=[("images", ("b.png", b"\0" * 200_000, "image/png"))]),
            413,
            "upload_too_large",
        )
        offer = "v=0\n" + "a=x\n" * 2000  # over the 4096-byte max_offer_bytes, under the upload limit
        r = await http.post("/api/v1/whip/cam1", content=offer, headers={"Content-Type": "application/sdp"})
        error_of(r, 413, "offer_too_large")
