"""Click-to-segment at picture size: the mask follows the clicked object at the picture's pixels,
several clicks join objects, negative clicks take them out, and the PNGs are the picture's size."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from dinostream.analytics.exemplars import click_to_segment
from dinostream.analytics.segmentation import heatmap_png, overlay_png, segment_picture, upsample

GRID = (12, 16)
DIM = 32
SIZE = (320, 240)  # width, height: 20 pixels a cell
CLICK = 0.6


def look(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=DIM)


def grid(objects: list[tuple[int, int, int, int, int]]) -> np.ndarray:
    """A background of random patches with objects (look, row, col, rows, cols) pasted in."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(*GRID, DIM))
    for seed, r, c, h, w in objects:
        x[r : r + h, c : c + w] = look(seed) + 0.2 * rng.normal(size=(h, w, DIM))
    return x.astype(np.float16)


def cells(r: int, c: int, h: int, w: int) -> np.ndarray:
    m = np.zeros(GRID, dtype=bool)
    m[r : r + h, c : c + w] = True
    return m


def pixels(r: int, c: int, h: int, w: int) -> np.ndarray:
    m = np.zeros((SIZE[1], SIZE[0]), dtype=bool)
    m[r * 20 : (r + h) * 20, c * 20 : (c + w) * 20] = True
    return m


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / (a | b).sum())


def test_one_click_gives_the_patch_mask_of_click_to_segment_and_the_object_at_picture_size() -> None:
    patches = grid([(1, 3, 4, 4, 5)])
    seg = segment_picture(patches, SIZE, [(0.4, 0.4)], threshold=CLICK, centering=0.0)
    old = click_to_segment(patches, (0.4, 0.4), CLICK, centering=0.0)
    np.testing.assert_array_equal(seg.mask, old.mask)
    np.testing.assert_array_equal(seg.mask, cells(3, 4, 4, 5))
    np.testing.assert_allclose(seg.similarity, old.similarity, atol=1e-5)
    assert seg.picture_mask.shape == seg.heatmap.shape == (240, 320)
    assert iou(seg.picture_mask, pixels(3, 4, 4, 5)) > 0.75
    assert (seg.box.x0, seg.box.y0, seg.box.x1, seg.box.y1) == pytest.approx((4 / 16, 3 / 12, 9 / 16, 7 / 12), abs=0.04)


def test_the_picture_mask_is_smooth_not_the_grid_steps() -> None:
    patches = grid([(1, 3, 4, 4, 5)])
    seg = segment_picture(patches, SIZE, [(0.4, 0.4)], threshold=CLICK, centering=0.0)
    block = pixels(3, 4, 4, 5)
    assert not np.array_equal(seg.picture_mask, block)  # edges follow the interpolated similarity
    h = seg.heatmap
    assert h[100, 120] > 0.9 and h[5, 5] < 0.5
    row = h[100, 60:200]
    assert np.all(np.abs(np.diff(row)) < 0.2)  # no jump from one cell to the next


def test_several_positive_clicks_join_objects_and_a_negative_click_takes_one_out() -> None:
    patches = grid([(1, 1, 1, 3, 3), (2, 7, 10, 3, 4)])
    a, b = (0.15, 0.2), (0.75, 0.7)
    both = segment_picture(patches, SIZE, [a, b], threshold=CLICK, centering=0.0)
    np.testing.assert_array_equal(both.mask, cells(1, 1, 3, 3) | cells(7, 10, 3, 4))
    assert iou(both.picture_mask, pixels(1, 1, 3, 3) | pixels(7, 10, 3, 4)) > 0.65
    # The same look twice, apart: one click takes the part connected to it only.
    twins = grid([(1, 1, 1, 3, 3), (1, 7, 10, 3, 4)])
    one = segment_picture(twins, SIZE, [a], threshold=CLICK, centering=0.0)
    np.testing.assert_array_equal(one.mask, cells(1, 1, 3, 3))
    assert not one.picture_mask[pixels(7, 10, 3, 4)].any()


def test_a_negative_click_beside_the_object_trims_its_edge() -> None:
    # Object and a similar neighbour (same look, a little different): one click takes both, a
    # negative click on the neighbour leaves the object.
    rng = np.random.default_rng(3)
    patches = grid([(1, 3, 3, 4, 4)]).astype(np.float64)
    patches[3:7, 7:10] = look(1) + 0.6 * look(9) + 0.2 * rng.normal(size=(4, 3, DIM))
    joined = segment_picture(patches, SIZE, [(0.3, 0.4)], threshold=0.5, centering=0.0)
    assert joined.mask[4, 8]
    trimmed = segment_picture(patches, SIZE, [(0.3, 0.4)], negative=[(0.53, 0.4)], threshold=0.5, centering=0.0)
    np.testing.assert_array_equal(trimmed.mask, cells(3, 3, 4, 4))
    assert trimmed.picture_mask.sum() < joined.picture_mask.sum()


def test_pngs_are_the_pictures_size() -> None:
    patches = grid([(1, 3, 4, 4, 5)])
    rgb = np.full((240, 320, 3), 90, np.uint8)
    seg = segment_picture(patches, SIZE, [(0.4, 0.4)], threshold=CLICK, centering=0.0)
    over = np.asarray(Image.open(io.BytesIO(overlay_png(rgb, seg.picture_mask))))
    assert over.shape == (240, 320, 3)
    assert over[100, 120, 0] > 150 and tuple(over[5, 5]) == (90, 90, 90)  # tinted inside, untouched outside
    for png in (heatmap_png(seg.heatmap), heatmap_png(seg.heatmap, rgb)):
        hm = np.asarray(Image.open(io.BytesIO(png)))
        assert hm.shape == (240, 320, 3)
        assert hm[100, 120, 0] > hm[100, 120, 2] and hm[5, 5, 2] > hm[5, 5, 0]  # red on the object, blue away


def test_upsample_is_bilinear_between_cell_centres() -> None:
    up = upsample(np.array([[0.0, 1.0]], np.float32), (4, 1))
    np.testing.assert_allclose(up[0], [0.0, 0.25, 0.75, 1.0], atol=1e-6)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"points": []}, "at least one positive click"),
        ({"points": [(1.2, 0.5)]}, "outside the picture"),
        ({"points": [(0.5, 0.5)], "negative": [("a", 1)]}, "negative"),
        ({"points": [(0.5,)]}, r"\(x, y\)"),
        ({"points": [(0.5, 0.5)] * 33}, "at most 32"),
    ],
    ids=["none", "outside", "bad-negative", "one-number", "too-many"],
)
def test_bad_clicks_are_refused_by_name(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        segment_picture(grid([]), SIZE, threshold=CLICK, centering=0.0, **kwargs)


def test_overlay_refuses_a_mask_of_another_size() -> None:
    with pytest.raises(ValueError, match="not the picture's size"):
        overlay_png(np.zeros((10, 10, 3), np.uint8), np.zeros((5, 5), bool))
