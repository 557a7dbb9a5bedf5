"""Picture quality from pixels: every kind of damage ranks a generated scene below its clean self,
and the reasons name the damage."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFilter

from dinostream.analytics.quality import block_ratio, jpeg_grey, measure_health, measure_jpeg, measure_quality


def scene(width: int = 640, height: int = 480, seed: int = 0) -> np.ndarray:
    """A lit scene: a gradient backdrop with shapes and lines of many colours."""
    rng = np.random.default_rng(seed)
    y = np.linspace(60, 190, height)[:, None, None]
    x = np.linspace(0, 40, width)[None, :, None]
    im = Image.fromarray(
        np.broadcast_to((y + x + np.array([0, 10, 20])).clip(0, 255), (height, width, 3)).astype(np.uint8)
    )
    d = ImageDraw.Draw(im)
    for _ in range(40):
        x0, y0, s = int(rng.integers(0, width)), int(rng.integers(0, height)), int(rng.integers(10, 120))
        colour = tuple(int(v) for v in rng.integers(20, 235, 3))
        if rng.random() < 0.5:
            d.rectangle([x0, y0, x0 + s, y0 + int(s * 0.7)], fill=colour)
        else:
            d.ellipse([x0, y0, x0 + s, y0 + s], fill=colour)
    for _ in range(30):
        ends = [tuple(int(v) for v in rng.integers(0, width, 2)), tuple(int(v) for v in rng.integers(0, height, 2))]
        d.line(ends, fill=tuple(int(v) for v in rng.integers(0, 255, 3)), width=2)
    return np.asarray(im)


def jpeg(rgb: np.ndarray, quality: int) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def decoded(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


CLEAN = scene()
_rng = np.random.default_rng(1)
DAMAGED = {
    "blurred": (np.asarray(Image.fromarray(CLEAN).filter(ImageFilter.GaussianBlur(6))), "blurred"),
    "dark": ((CLEAN * 0.08).astype(np.uint8), "dark"),
    "overexposed": (np.clip(CLEAN.astype(int) * 3 + 60, 0, 255).astype(np.uint8), "overexposed"),
    "covered": ((np.full_like(CLEAN, 25) + _rng.integers(0, 3, CLEAN.shape)).astype(np.uint8), "low contrast"),
    "noisy": (np.clip(CLEAN + _rng.normal(0, 25, CLEAN.shape), 0, 255).astype(np.uint8), "noisy"),
    "blocky": (decoded(jpeg(CLEAN, 5)), "blocky (JPEG artefacts)"),
}


def test_a_clean_scene_scores_high_with_no_reasons() -> None:
    q = measure_quality(CLEAN)
    assert q.score > 0.9 and q.reasons == ()
    assert measure_quality(decoded(jpeg(CLEAN, 90))).reasons == ()  # ordinary compression is no damage
    assert (q.width, q.height) == (640, 480)


@pytest.mark.parametrize(("picture", "reason"), DAMAGED.values(), ids=DAMAGED.keys())
def test_damage_ranks_below_the_clean_scene_and_is_named(picture: np.ndarray, reason: str) -> None:
    q = measure_quality(picture)
    assert q.score < 0.5 < measure_quality(CLEAN).score
    assert reason in q.reasons


def test_measures_move_the_way_their_names_say() -> None:
    clean, blurred = measure_quality(CLEAN), measure_quality(DAMAGED["blurred"][0])
    assert blurred.sharpness < clean.sharpness / 10
    assert measure_quality(DAMAGED["dark"][0]).dark_clipped > 0.2 > clean.dark_clipped
    assert measure_quality(DAMAGED["overexposed"][0]).bright_clipped > 0.3
    assert measure_quality(DAMAGED["noisy"][0]).noise > 10 > clean.noise
    assert block_ratio(DAMAGED["blocky"][0][..., 1]) > 1.5 > block_ratio(CLEAN[..., 1])
    assert block_ratio(np.full((64, 64), 128, np.uint8)) == 1.0  # a flat picture has no blocks


def test_the_score_is_the_same_at_another_resolution() -> None:
    big = measure_quality(np.asarray(Image.fromarray(CLEAN).resize((1280, 960), Image.Resampling.LANCZOS)))
    assert big.reasons == () and big.score > 0.9


def test_a_thumbnail_is_measured_from_its_jpeg() -> None:
    def thumb(rgb: np.ndarray) -> bytes:
        im = Image.fromarray(rgb)
        im.thumbnail((160, 160))
        return jpeg(np.asarray(im), 75)

    clean = measure_jpeg(thumb(CLEAN))
    assert clean is not None and "blurred" not in clean.reasons
    for name in ("blurred", "dark", "covered"):
        q = measure_jpeg(thumb(DAMAGED[name][0]))
        assert q is not None and q.score < clean.score and q.reasons
    assert measure_jpeg(b"") is None and measure_jpeg(b"\xff\xd8 not really") is None


def test_to_dict_is_plain_json() -> None:
    import json

    d = measure_quality(DAMAGED["blurred"][0]).to_dict()
    assert json.loads(json.dumps(d))["reasons"] == ["blurred"]
    assert set(d["scores"]) == {"sharpness", "exposure", "contrast", "noise", "blockiness"}


@pytest.mark.parametrize(
    ("picture", "message"),
    [
        (np.zeros((64, 64, 4), np.uint8), "uint8 RGB"),
        (np.zeros((64, 64, 3), np.float32), "uint8 RGB"),
        (np.zeros((4, 64, 3), np.uint8), "at least 8x8"),
    ],
    ids=["rgba", "float", "tiny"],
)
def test_a_picture_that_is_not_one_is_refused_by_name(picture: np.ndarray, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        measure_quality(picture)
    with pytest.raises(ValueError, match=message):
        measure_health(picture)


@pytest.mark.parametrize("name", ["clean", *DAMAGED])
def test_health_is_the_quality_s_three_measures(name: str) -> None:
    picture = CLEAN if name == "clean" else DAMAGED[name][0]
    for image in (picture, jpeg_grey(jpeg(picture, 75))):  # RGB at 640x480, and grey decoded from a JPEG
        assert image is not None
        h, q = measure_health(image), measure_quality(image)
        assert (h.sharpness, h.brightness, h.contrast) == (q.sharpness, q.brightness, q.contrast)
    assert jpeg_grey(b"") is None and jpeg_grey(b"\xff\xd8 not really") is None
