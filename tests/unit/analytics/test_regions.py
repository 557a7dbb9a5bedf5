"""Regions from patch grids: a background model per stream, foreground components, their boxes."""

from __future__ import annotations

import json

import numpy as np
import pytest

from dinostream.analytics.regions import (
    BackgroundModel,
    box_iou,
    box_mask,
    centred_patches,
    components,
    foreground_mask,
    mask_box,
    region_embedding,
)
from dinostream.core.records import Box
from dinostream.core.settings import ReidSettings

DIM = 32
GRID = (8, 10)  # rows, columns
S = ReidSettings()


def background(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(*GRID, DIM)).astype(np.float32)


def look(seed: int) -> np.ndarray:
    """An object's appearance: a base vector; its cells are that plus a little variation."""
    return np.random.default_rng(1000 + seed).normal(size=DIM).astype(np.float32)


def frame(bg: np.ndarray, objects: list[tuple[int, tuple[int, int, int, int]]], rng: np.random.Generator) -> np.ndarray:
    """`bg` with each object (look seed, (row0, col0, rows, cols)) pasted in, plus sensor noise."""
    x = bg + 0.05 * rng.normal(size=bg.shape)
    for seed, (r, c, h, w) in objects:
        x[r : r + h, c : c + w] = look(seed) + 0.2 * rng.normal(size=(h, w, DIM))
    return x.astype(np.float16)


def cells_box(r: int, c: int, h: int, w: int) -> Box:
    gh, gw = GRID
    return Box(c / gw, r / gh, (c + w) / gw, (r + h) / gh)


def coords(box: Box) -> tuple[float, float, float, float]:
    return (box.x0, box.y0, box.x1, box.y1)


def warm(model: BackgroundModel, bg: np.ndarray, rng: np.random.Generator, s: ReidSettings = S) -> None:
    for _ in range(s.bg_warmup + 2):
        regions, _ = model.observe(frame(bg, [], rng), s)
        assert regions == []


PLACEMENTS = {
    "corner-2x2": [(1, (0, 0, 2, 2))],
    "centre-3x4": [(2, (3, 3, 3, 4))],
    "bottom-edge-2x5": [(3, (6, 5, 2, 5))],
    "two-objects": [(4, (0, 0, 3, 3)), (5, (4, 6, 4, 4))],
}


@pytest.mark.parametrize("objects", PLACEMENTS.values(), ids=PLACEMENTS.keys())
def test_objects_become_regions_with_their_boxes(objects: list[tuple[int, tuple[int, int, int, int]]]) -> None:
    rng = np.random.default_rng(0)
    bg = background(0)
    model = BackgroundModel.empty()
    warm(model, bg, rng)
    regions, sim = model.observe(frame(bg, objects, rng), S)
    assert sorted(coords(r.box) for r in regions) == sorted(coords(cells_box(*cells)) for _, cells in objects)
    assert all(r.area == r.mask.sum() for r in regions)
    assert sim.shape == GRID


def test_no_regions_while_warming_up_or_when_nothing_moves() -> None:
    rng = np.random.default_rng(1)
    bg = background(1)
    model = BackgroundModel.empty()
    for _ in range(S.bg_warmup):
        regions, sim = model.observe(frame(bg, [(1, (2, 2, 3, 3))], rng), S)
        assert regions == [] and np.all(sim == 1)
    model = BackgroundModel.empty()
    warm(model, bg, rng)
    for _ in range(20):
        assert model.observe(frame(bg, [], rng), S)[0] == []


def test_region_embedding_follows_the_object_not_the_camera() -> None:
    rng = np.random.default_rng(2)
    seen = {}
    for cam, obj in [("a", 1), ("b", 1), ("a", 2)]:
        model = BackgroundModel.empty()
        bg = background({"a": 10, "b": 11}[cam])
        warm(model, bg, rng)
        (region,) = model.observe(frame(bg, [(obj, (2, 3, 3, 3))], rng), S)[0]
        seen[(cam, obj)] = region.embedding
    same_object = float(seen[("a", 1)] @ seen[("b", 1)])
    other_object = float(seen[("a", 1)] @ seen[("a", 2)])
    assert same_object > 0.8 > 0.3 > other_object
    assert np.linalg.norm(seen[("a", 1)]) == pytest.approx(1.0, abs=1e-5)


def test_a_new_view_relearns_the_background_instead_of_reporting_everything() -> None:
    rng = np.random.default_rng(3)
    model = BackgroundModel.empty()
    warm(model, background(3), rng)
    regions, _ = model.observe(frame(background(4), [], rng), S)  # the camera was moved
    assert regions == [] and model.resets == 1
    warm(model, background(4), rng)
    (region,) = model.observe(frame(background(4), [(1, (1, 1, 2, 3))], rng), S)[0]
    assert coords(region.box) == coords(cells_box(1, 1, 2, 3))


@pytest.mark.parametrize(("rate", "still_seen"), [(0.5, False), (0.005, True)], ids=["fast-fade", "default"])
def test_an_object_that_stops_fades_into_the_background_at_its_rate(rate: float, still_seen: bool) -> None:
    s = S.model_copy(update={"bg_fg_rate": rate})
    rng = np.random.default_rng(4)
    bg = background(5)
    model = BackgroundModel.empty()
    warm(model, bg, rng, s)
    parked = [(1, (2, 2, 3, 3))]
    for _ in range(15):
        regions, _ = model.observe(frame(bg, parked, rng), s)
    assert bool(regions) is still_seen


def test_foreground_threshold_adapts_when_every_cell_changes_a_little() -> None:
    sim = np.full(GRID, 0.95, dtype=np.float32)
    sim[2, 3] = 0.2
    assert foreground_mask(sim, 0.7, 4.0).sum() == 1
    dimmed = sim - 0.4  # a lighting change: every cell 0.55, below the absolute threshold
    dimmed[2, 3] = 0.2
    assert np.argwhere(foreground_mask(dimmed, 0.7, 4.0)).tolist() == [[2, 3]]


def test_components_are_four_connected() -> None:
    mask = np.zeros((4, 4), dtype=bool)
    mask[0, 0] = mask[1, 1] = True  # diagonal neighbours: two objects
    mask[3, 2:4] = True
    _, n = components(mask)
    assert n == 3


def test_boxes_and_masks_round_trip() -> None:
    mask = np.zeros(GRID, dtype=bool)
    mask[2:5, 3:7] = True
    box = mask_box(mask)
    assert coords(box) == (0.3, 0.25, 0.7, 0.625)
    assert np.array_equal(box_mask(box, GRID), mask)
    tiny = Box(0.51, 0.51, 0.52, 0.52)  # inside one cell, covers no cell centre
    assert box_mask(tiny, GRID).sum() == 1
    assert box_iou(box, box) == pytest.approx(1.0)
    assert box_iou(box, Box(0.0, 0.0, 0.1, 0.1)) == 0.0
    assert box_iou(Box(0, 0, 0.5, 1), Box(0.25, 0, 0.75, 1)) == pytest.approx(1 / 3)


def test_region_embedding_uses_the_interior_when_there_is_one() -> None:
    x = np.zeros((5, 5, 2), dtype=np.float32)
    x[..., 0] = 1.0  # outline cells point one way ...
    x[2, 2] = (0.0, 1.0)  # ... the only interior cell the other
    mask = np.zeros((5, 5), dtype=bool)
    mask[1:4, 1:4] = True
    assert region_embedding(x, mask) == pytest.approx([0.0, 1.0])
    thin = np.zeros((5, 5), dtype=bool)
    thin[1, 1:4] = True  # no interior: every cell counts
    assert region_embedding(x, thin) == pytest.approx([1.0, 0.0])


def test_centring_removes_part_of_the_frame_mean() -> None:
    rng = np.random.default_rng(6)
    x = rng.normal(size=(*GRID, DIM)) + 3.0  # a shared component
    unit = centred_patches(x, 0.0)
    assert np.linalg.norm(unit, axis=-1) == pytest.approx(np.ones(GRID), abs=1e-5)
    shared = unit.reshape(-1, DIM).mean(axis=0)
    assert centred_patches(x, 0.5) == pytest.approx(unit - 0.5 * shared, abs=1e-5)


def test_background_state_is_json_and_restores_exactly() -> None:
    rng = np.random.default_rng(7)
    bg = background(8)
    model = BackgroundModel.empty()
    warm(model, bg, rng)
    state = json.loads(json.dumps(model.to_state()))
    copy = BackgroundModel.from_state(state)
    nxt = frame(bg, [(1, (1, 2, 3, 3))], rng)
    (a,), sim_a = model.observe(nxt, S)
    (b,), sim_b = copy.observe(nxt, S)
    assert np.array_equal(sim_a, sim_b) and a.box == b.box
    assert np.array_equal(a.embedding, b.embedding)
    assert BackgroundModel.from_state(BackgroundModel.empty().to_state()).mean is None


def striped(seed: int, h: int, w: int, bg_cells: np.ndarray, col: int) -> np.ndarray:
    """An object `look(seed)` whose column `col` shows what is behind it (a stripe of its pattern
    the colour of the wall), a little less unlike the background than the rest of it."""
    x = np.broadcast_to(look(seed), (h, w, DIM)).copy()
    x[:, col] = 0.6 * bg_cells[:, col] + 0.4 * look(seed)
    return x


@pytest.mark.parametrize(
    ("grow", "regions_expected"),
    [(S.fg_grow_threshold, 1), (S.fg_threshold, 2)],
    ids=["hysteresis-one-object", "no-growth-cut-in-two"],
)
def test_a_stripe_that_looks_like_the_background_does_not_cut_an_object(grow: float, regions_expected: int) -> None:
    s = S.model_copy(update={"fg_grow_threshold": grow})
    rng = np.random.default_rng(11)
    bg = background(11)
    model = BackgroundModel.empty()
    warm(model, bg, rng, s)
    x = frame(bg, [], rng).astype(np.float32)
    x[2:5, 3:8] = striped(3, 3, 5, bg[2:5, 3:8], 2)
    regions, sim = model.observe(x.astype(np.float16), s)
    assert S.fg_threshold < float(sim[2:5, 5].max()) < S.fg_grow_threshold  # the stripe is a weak cell
    assert len(regions) == regions_expected
    if regions_expected == 1:
        assert coords(regions[0].box) == coords(cells_box(2, 3, 3, 5))


def test_growth_stops_at_cells_that_look_like_the_background() -> None:
    sim = np.full(GRID, 0.99, dtype=np.float32)
    sim[2:4, 2:4] = 0.2  # an object ...
    sim[2:4, 4] = 0.8  # ... and a weak rim joined to it
    sim[6, 6:8] = 0.8  # weak cells with no seed: noise, not an object
    sim += np.random.default_rng(0).normal(0, 0.002, GRID).astype(np.float32)
    fg = foreground_mask(sim, 0.7, 4.0, 0.9)
    assert np.argwhere(fg).tolist() == [[r, c] for r in (2, 3) for c in (2, 3, 4)]
    assert foreground_mask(sim, 0.7, 4.0).sum() == 4  # without growth: the seeds only


TOUCHING = {
    # (objects, priors as cell boxes (row0, col0, rows, cols), regions expected as cell boxes)
    "two-tracked-objects-touching": (
        [(1, (1, 1, 3, 3)), (2, (4, 2, 3, 3))],
        [(1, 1, 3, 3), (4, 2, 3, 3)],
        [(1, 1, 3, 3), (4, 2, 3, 3)],
    ),
    "newcomer-touching-a-tracked-object": (  # the track keeps the cells within one cell of it
        [(1, (1, 1, 3, 3)), (2, (4, 2, 4, 3))],
        [(1, 1, 3, 3)],
        [(1, 1, 4, 4), (5, 2, 3, 3)],
    ),
    "small-bump-stays-with-the-track": ([(1, (1, 1, 3, 3)), (2, (4, 2, 2, 1))], [(1, 1, 3, 3)], [(1, 1, 5, 3)]),
    "untracked-pair-stays-one": ([(1, (1, 1, 3, 3)), (2, (4, 2, 3, 3))], [], [(1, 1, 6, 4)]),
    "two-tracks-on-one-object": ([(1, (1, 1, 4, 4))], [(1, 1, 4, 4), (1, 2, 4, 3)], [(1, 1, 4, 4)]),
    "one-object-moving-on": ([(1, (2, 3, 3, 4))], [(2, 2, 3, 4)], [(2, 3, 3, 4)]),
}


@pytest.mark.parametrize(("objects", "priors", "expected"), TOUCHING.values(), ids=TOUCHING.keys())
def test_a_component_is_cut_between_the_objects_expected_in_it(
    objects: list[tuple[int, tuple[int, int, int, int]]],
    priors: list[tuple[int, int, int, int]],
    expected: list[tuple[int, int, int, int]],
) -> None:
    rng = np.random.default_rng(12)
    bg = background(12)
    model = BackgroundModel.empty()
    warm(model, bg, rng)
    regions, _ = model.observe(frame(bg, objects, rng), S, [cells_box(*p) for p in priors])
    assert sorted(coords(r.box) for r in regions) == sorted(coords(cells_box(*e)) for e in expected)
    assert all(r.area == r.mask.sum() for r in regions)
