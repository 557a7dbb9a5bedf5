"""Camera motion from thumbnails: the FFT surface is the brute-force NCC, pans are found at their
shift, cuts and blends are not taken for motion."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from PIL import Image

from dinostream.analytics.frame_motion import (
    align,
    detail,
    frame_motion_image,
    motion_image,
    ncc_surface,
    overlap_sums,
    prepare,
    relighting,
)
from generators.groundtruth import synthetic_images
from tests.pictures import jpeg

PICTURES = list(synthetic_images(3, seed=7, size=(320, 240)).values())


def _grey(rgb: np.ndarray) -> np.ndarray:
    return np.asarray(Image.fromarray(rgb).convert("L"), dtype=np.float32)


def _view(picture: np.ndarray, x: int, y: int, w: int = 160, h: int = 120) -> np.ndarray:
    return _grey(picture[y : y + h, x : x + w])


def _brute_force(a: np.ndarray, b: np.ndarray, dy: int, dx: int) -> float:
    h, w = a.shape
    x = a[max(dy, 0) : h + min(dy, 0), max(dx, 0) : w + min(dx, 0)]
    y = b[max(-dy, 0) : h + min(-dy, 0), max(-dx, 0) : w + min(-dx, 0)]
    x, y = x - x.mean(), y - y.mean()
    return float((x * y).sum() / np.sqrt((x * x).sum() * (y * y).sum()))


@pytest.mark.parametrize("dy,dx", [(0, 0), (1, -2), (-3, 6), (8, 11), (-9, -13)], ids=str)
def test_surface_is_the_brute_force_ncc(dy: int, dx: int) -> None:
    rng = np.random.default_rng(0)
    a, b = rng.random((12, 16)) * 255, rng.random((12, 16)) * 255
    r = ncc_surface(prepare(a), prepare(b), 0.0)
    assert r[dy % 24, dx % 32] == pytest.approx(_brute_force(detail(a), detail(b), dy, dx), abs=1e-9)


@pytest.mark.parametrize("shape", [(60, 80), (45, 80), (7, 5), (1, 3), (1, 1)])
def test_overlap_sums_are_the_correlation_with_a_mask_of_ones(shape: tuple[int, int]) -> None:
    # Brute force: at index (i, j) of the (2h, 2w) surface, the shift is (i or i - 2h, j or j - 2w),
    # and x[p + shift] is summed over the pixels p of the image where p + shift lies inside it.
    h, w = shape
    x = np.random.default_rng(3).normal(size=shape) * 30
    want = np.zeros((2 * h, 2 * w))
    for i in range(2 * h):
        for j in range(2 * w):
            dy, dx = (i if i < h else i - 2 * h), (j if j < w else j - 2 * w)
            want[i, j] = x[max(dy, 0) : h + min(dy, 0), max(dx, 0) : w + min(dx, 0)].sum()
    assert np.allclose(overlap_sums(x), want, rtol=0, atol=1e-9)


def test_prepared_frames_give_the_same_alignment() -> None:
    a, b, c = (_view(PICTURES[0], x, 60) for x in (80, 100, 130))
    pa, pb, pc = prepare(a), prepare(b), prepare(c)
    assert align(pa, pb) == align(a, b) and align(pb, pc) == align(b, c)  # b serves both pairs


@pytest.mark.parametrize("shift", [(0, 12), (0, -40), (6, 30), (-5, -64)], ids=lambda s: f"dy{s[0]}-dx{s[1]}")
def test_a_pan_is_found_at_its_shift(shift: tuple[int, int]) -> None:
    dy, dx = shift
    x0, y0 = 80, 60
    before = _view(PICTURES[0], x0, y0)
    after = _view(PICTURES[0], x0 + dx, y0 + dy)  # the camera moved right/down by (dx, dy)
    m = align(before, after)
    assert (m.dy, m.dx) == (dy, dx)
    assert m.similarity > 0.9 > m.still  # not 1: the blur near the edges sees different surroundings
    assert m.shift == pytest.approx(max(abs(dy), abs(dx)) / 160)


def test_a_cut_matches_nowhere_and_a_blend_best_unmoved() -> None:
    a, b = _view(PICTURES[0], 80, 60), _view(PICTURES[1], 80, 60)
    assert align(a, b).similarity < 0.7
    blend = [0.3 * a + 0.7 * b, 0.5 * a + 0.5 * b]  # two frames of a dissolve
    m = align(*blend)
    assert max(abs(m.dy), abs(m.dx)) <= 1 and m.similarity == pytest.approx(m.still, abs=0.02)


def test_relighting_tells_other_light_from_another_picture() -> None:
    view = _view(PICTURES[0], 80, 60)
    lamp = view.copy()
    lamp[:, :60] = 1.6 * lamp[:, :60] + 15  # a lamp over the left part, and the camera shaken by 2 px
    lit = relighting(prepare(view), prepare(np.roll(lamp, (1, 2), axis=(0, 1))))
    assert lit.similarity > 0.85 and 2 / 3 < lit.detail_ratio < 1.5
    darker = relighting(prepare(view), prepare(0.8 * view - 5))  # an exposure step down
    assert darker.similarity > 0.99 and darker.detail_ratio == pytest.approx(0.8, abs=0.01)
    other = relighting(prepare(view), prepare(_view(PICTURES[1], 80, 60)))
    assert other.similarity < 0.6
    flat = np.full_like(view, 128.0) + np.linspace(0, 40, view.shape[1])[None]
    half_way = relighting(prepare(view), prepare(0.3 * view + 0.7 * flat))  # a dissolve to a plain picture
    assert half_way.similarity > 0.9 and half_way.detail_ratio < 0.5  # matches, with little of the detail
    moved = relighting(prepare(view), prepare(_view(PICTURES[0], 100, 60)))  # a pan: not within the shake
    assert moved.similarity < 0.6 < align(view, _view(PICTURES[0], 100, 60)).similarity


def test_blank_and_mismatched_images_compare_as_nothing() -> None:
    a = _view(PICTURES[0], 0, 0)
    assert align(np.full_like(a, 20.0), a).similarity == -1.0  # black: nothing to correlate
    assert align(a, a[:, :100]).similarity == -1.0


def test_motion_image_decodes_a_thumbnail_small_and_grey() -> None:
    img = motion_image(jpeg(PICTURES[0][:120, :160]))
    assert img is not None and img.shape == (60, 80) and img.dtype == np.float32
    assert motion_image(jpeg(PICTURES[0][:90, :160]), width=40).shape == (22, 40)  # type: ignore[union-attr]
    assert motion_image(b"") is None
    assert motion_image(b"\xff\xd8 not really a jpeg") is None


def test_a_record_s_motion_image_is_decoded_once_whoever_reads_it() -> None:
    """Scene change and the anomaly's light step read the same decode of a frame's thumbnail."""
    from tests.records import shots

    rec = shots("cam", [1], seed=0)[0]
    rec = dataclasses.replace(rec, thumbnail=jpeg(PICTURES[0][:120, :160]))
    img = frame_motion_image(rec)
    assert img is not None and img is frame_motion_image(rec)
    assert np.array_equal(img, motion_image(rec.thumbnail))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="read-only"):
        img[0, 0] = 1.0
    assert frame_motion_image(dataclasses.replace(rec, thumbnail=b"")) is None
