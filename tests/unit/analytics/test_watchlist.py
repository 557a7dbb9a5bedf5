"""Watchlists: click-to-segment and exemplars on synthetic patch grids, matches on other streams."""

from __future__ import annotations

import json
import zlib

import numpy as np
import pytest

from dinostream.analytics.exemplars import CROP_SHIFTS, CropExemplar
from dinostream.analytics.regions import centred_patches, region_embedding, unit_rows
from dinostream.analytics.watchlist import (
    Exemplar,
    Watchlist,
    WatchlistProcessor,
    click_to_segment,
    exemplar_from_image_embedding,
    exemplar_from_patches,
)
from dinostream.core.records import Box, Event, FrameEmbedding
from dinostream.core.settings import ModelSettings, ReidSettings
from dinostream.embedding.embedder import Embedder
from dinostream.embedding.input_size import model_input_size
from dinostream.embedding.model_loader import load_model
from dinostream.ingest.resize import resize_rgb
from dinostream.ingest.source import Frame
from generators.reid_families import make_site

DIM = 32
GRID = (8, 10)
T0 = 1_700_000_000.0
CLICK = ReidSettings().click_threshold
CENTERING = ReidSettings().feature_centering


def seed(name: str) -> int:
    return zlib.crc32(name.encode())


def look(obj: str) -> np.ndarray:
    return np.random.default_rng(seed(obj)).normal(size=DIM)


def grid(stream: str, seq: int, objects: list[tuple[str, int, int, int, int]]) -> np.ndarray:
    """The stream's background plus noise, with objects (name, row, col, rows, cols) pasted in."""
    x = np.random.default_rng(seed(stream)).normal(size=(*GRID, DIM))
    rng = np.random.default_rng([seed(stream), seq])
    x = x + 0.05 * rng.normal(size=x.shape)
    for name, r, c, h, w in objects:
        c0, c1 = max(c, 0), min(c + w, GRID[1])
        if c1 > c0:
            x[r : r + h, c0:c1] = look(name) + 0.2 * rng.normal(size=(h, c1 - c0, DIM))
    return x


def record(stream: str, seq: int, patches: np.ndarray) -> FrameEmbedding:
    return FrameEmbedding(
        stream=stream,
        seq=seq,
        pts=seq / 2,
        ts=T0 + seq / 2,
        model="test",
        untrained=True,
        cls=patches.mean(axis=(0, 1)),
        pooled=patches.mean(axis=(0, 1)),
        patches=patches,
    )


def walking(stream: str, obj: str, starts: list[int], frames: int, row: int = 3) -> list[FrameEmbedding]:
    """`obj` (3x3 cells) walks across once from each start frame, one cell a frame."""
    out = []
    for seq in range(frames):
        objects = [(obj, row, seq - s - 2, 3, 3) for s in starts if s <= seq < s + GRID[1] + 3]
        out.append(record(stream, seq, grid(stream, seq, objects)))
    return out


def cells(r: int, c: int, h: int, w: int) -> tuple[float, float, float, float]:
    gh, gw = GRID
    return (c / gw, r / gh, (c + w) / gw, (r + h) / gh)


def coords(box: Box) -> tuple[float, float, float, float]:
    return (box.x0, box.y0, box.x1, box.y1)


CLICKS = {
    "square-in-the-middle": ((3, 4, 3, 3), (0.45, 0.45)),
    "wide-at-the-edge": ((6, 5, 2, 5), (0.95, 0.9)),
    "one-cell": ((0, 0, 1, 1), (0.05, 0.05)),
}


@pytest.mark.parametrize(("block", "point"), CLICKS.values(), ids=CLICKS.keys())
def test_click_selects_the_object_under_the_click(block: tuple[int, int, int, int], point: tuple[float, float]) -> None:
    patches = grid("cam-a", 0, [("suitcase", *block)])
    seg = click_to_segment(patches, point, CLICK, centering=CENTERING)
    expected = np.zeros(GRID, dtype=bool)
    r, c, h, w = block
    expected[r : r + h, c : c + w] = True
    assert np.array_equal(seg.mask, expected)
    assert coords(seg.box) == pytest.approx(cells(*block))
    assert seg.similarity.shape == GRID
    drawn = exemplar_from_patches(patches, Box(*cells(*block)), centering=CENTERING)
    assert float(seg.vector @ drawn) > 0.95


def test_click_takes_only_the_connected_part_under_the_click() -> None:
    patches = grid("cam-a", 0, [("suitcase", 1, 1, 2, 2), ("suitcase", 5, 6, 2, 2)])  # two alike, apart
    seg = click_to_segment(patches, (0.15, 0.2), CLICK, centering=CENTERING)
    assert coords(seg.box) == pytest.approx(cells(1, 1, 2, 2))
    assert seg.similarity[5:7, 6:8].min() >= CLICK  # the other one is similar, just not connected


def test_click_on_plain_background_selects_the_clicked_patch_only() -> None:
    seg = click_to_segment(grid("cam-a", 0, []), (0.55, 0.3), CLICK, centering=CENTERING)
    assert seg.mask.sum() == 1 and seg.mask[2, 5]


@pytest.mark.parametrize("point", [(-0.1, 0.5), (0.5, 1.2)], ids=["left-of-frame", "below-frame"])
def test_click_outside_the_frame_is_refused(point: tuple[float, float]) -> None:
    with pytest.raises(ValueError, match="normalised"):
        click_to_segment(grid("cam-a", 0, []), point, CLICK, centering=CENTERING)


def test_exemplar_from_an_uploaded_crop_is_the_unit_mean_of_its_patches() -> None:
    crop = np.stack([np.stack([look("suitcase") * (1 + 0.1 * i) for i in range(4)])] * 4)
    v = exemplar_from_image_embedding(record("query", 0, crop))
    assert v == pytest.approx(unit_rows(look("suitcase")), abs=1e-3)


def register(obj: str) -> Watchlist:
    """An exemplar made by clicking on `obj` in a frame of another camera."""
    frame = grid("cam-z", 0, [(obj, 2, 2, 3, 3)])
    seg = click_to_segment(frame, (0.35, 0.45), CLICK, centering=CENTERING)
    return Watchlist([Exemplar(f"ex-{obj}", f"the {obj}", seg.vector)])


def occurrences(events: list[Event]) -> dict[str, list[Event]]:
    out: dict[str, list[Event]] = {}
    for e in events:
        out.setdefault(e.id, []).append(e)
    return out


def run(proc: WatchlistProcessor, records: list[FrameEmbedding]) -> list[Event]:
    events = [e for r in records for e in proc.process(r)]
    for name in dict.fromkeys(r.stream for r in records):
        events += proc.flush(name)
    return events


def test_a_registered_exemplar_raises_one_event_with_the_box_on_another_stream() -> None:
    proc = WatchlistProcessor(ReidSettings(), register("suitcase"))
    events = run(proc, walking("cam-b", "suitcase", [6], 24))
    (occ,) = occurrences(events).values()
    assert [e.status for e in occ][0] == "open" and occ[-1].status == "closed"
    assert {e.status for e in occ[1:-1]} <= {"update"}
    for e in occ[:-1]:
        (box,) = e.boxes
        col = e.frames[1] - 6 - 2
        assert coords(box) == pytest.approx(cells(3, max(col, 0), 3, min(col + 3, 10) - max(col, 0)))
        assert box.label == "the suitcase" and e.details["exemplar"] == "ex-suitcase"
    assert occ[0].type == "watchlist" and occ[0].stream == "cam-b"
    assert occ[0].score >= ReidSettings().watch_threshold


def test_other_objects_raise_nothing() -> None:
    proc = WatchlistProcessor(ReidSettings(), register("suitcase"))
    assert run(proc, walking("cam-c", "stroller", [6], 24)) == []


@pytest.mark.parametrize(("cooldown", "expected"), [(0.0, 2), (60.0, 1)], ids=["no-cooldown", "cooldown-60s"])
def test_cooldown_holds_back_a_new_occurrence(cooldown: float, expected: int) -> None:
    proc = WatchlistProcessor(ReidSettings(watch_cooldown_s=cooldown), register("suitcase"))
    events = run(proc, walking("cam-b", "suitcase", [4, 24], 44))
    assert len(occurrences(events)) == expected


def test_removing_an_exemplar_closes_its_occurrence() -> None:
    wl = register("suitcase")
    proc = WatchlistProcessor(ReidSettings(), wl)
    records = walking("cam-b", "suitcase", [4], 24)
    events = [e for r in records[:12] for e in proc.process(r)]
    assert [e.status for e in events][0] == "open"
    wl.remove("ex-suitcase")
    closing = proc.process(records[12])
    assert [e.status for e in closing] == ["closed"] and closing[0].id == events[0].id


def test_snapshot_and_restore_continue_identically() -> None:
    records = walking("cam-b", "suitcase", [4], 24)
    expected = run(WatchlistProcessor(ReidSettings(), register("suitcase")), records)
    before = WatchlistProcessor(ReidSettings(), register("suitcase"))
    events = [e for r in records[:11] for e in before.process(r)]
    after = WatchlistProcessor(ReidSettings(), register("suitcase"))
    after.restore("cam-b", json.loads(json.dumps(before.snapshot("cam-b"))))
    events += run(after, records[11:])
    assert [e.to_dict() for e in events] == [e.to_dict() for e in expected]
    after.restore("cam-b", {})
    assert after.snapshot("cam-b") == {}


def test_exemplars_and_watchlists_validate_and_round_trip() -> None:
    with pytest.raises(ValueError, match="non-zero"):
        Exemplar("x", "x", np.zeros(DIM))
    with pytest.raises(ValueError, match="id"):
        Exemplar("", "x", np.ones(DIM))
    wl = Watchlist([Exemplar("a", "first", np.ones(DIM))])
    with pytest.raises(ValueError, match="dim"):
        wl.add(Exemplar("b", "other model", np.ones(DIM + 1)))
    wl.add(Exemplar("a", "replaced", -np.ones(DIM)))
    again = Watchlist.from_state(json.loads(json.dumps(wl.to_state())))
    (ex,) = list(again)
    assert (ex.id, ex.label) == ("a", "replaced") and ex.vector == pytest.approx(-np.ones(DIM) / np.sqrt(DIM))
    assert len(again) == 1 and again.remove("a") and not again.remove("a")


def test_a_track_matches_only_the_exemplar_it_is_most_like() -> None:
    wl = register("suitcase")
    (exact,) = list(wl)
    other = unit_rows(np.random.default_rng(5).normal(size=DIM))
    alike = unit_rows(exact.vector + 0.6 * (other - (other @ exact.vector) * exact.vector))  # cosine ~0.86
    wl.add(Exemplar("ex-lookalike", "a similar bag", alike))
    events = run(WatchlistProcessor(ReidSettings(), wl), walking("cam-b", "suitcase", [6], 24))
    assert {e.details["exemplar"] for e in events} == {"ex-suitcase"}
    assert float(alike @ exact.vector) > ReidSettings().watch_threshold + 0.1


def bordered(obj: tuple[int, int], margin: int = 8, seed_: int = 0) -> np.ndarray:
    """A crop as a user cuts it: a red-and-white striped object with `margin` px of grey floor around it."""
    rng = np.random.default_rng(seed_)
    h, w = obj
    crop = np.full((h + 2 * margin, w + 2 * margin, 3), 90, dtype=np.float32) + rng.normal(
        0, 2, (h + 2 * margin, w + 2 * margin, 3)
    )
    stripes = (np.arange(h)[:, None] // 6 % 2).astype(np.float32)
    crop[margin : margin + h, margin : margin + w] = np.array([220, 30, 30]) * stripes[..., None] + 240 * (
        1 - stripes[..., None]
    )
    return np.clip(crop, 0, 255).astype(np.uint8)


def test_a_crop_is_seen_on_a_frame_sized_canvas_at_its_own_scale() -> None:
    crop = bordered((60, 40))
    plan = CropExemplar(crop, (640, 360))
    views = plan.views(grid=(10, 18))
    assert len(views) == CROP_SHIFTS
    cell = 640 / 18
    for k, v in enumerate(views):
        assert v.scene.shape == v.empty.shape == (360, 640, 3)
        x0, y0 = round(v.box.x0 * 640), round(v.box.y0 * 360)
        assert (v.box.x1 - v.box.x0, v.box.y1 - v.box.y0) == pytest.approx(
            (56 / 640, 76 / 360)
        )  # one crop px, one frame px
        assert x0 - round(views[0].box.x0 * 640) == pytest.approx(k * cell / CROP_SHIFTS, abs=1)
        assert np.array_equal(v.scene[y0 : y0 + 76, x0 : x0 + 56], crop)
        outside = np.ones((360, 640), dtype=bool)
        outside[y0 : y0 + 76, x0 : x0 + 56] = False
        assert np.array_equal(v.scene[outside], v.empty[outside])  # only the crop differs
        inside = v.empty[y0 + 8 : y0 + 68, x0 + 8 : x0 + 48].astype(float)
        assert np.abs(inside - 90).max() < 8  # the margin continued across, the object gone
    assert plan.centred().box == views[0].box


def test_a_crop_larger_than_its_frames_is_fitted_whole() -> None:
    plan = CropExemplar(bordered((300, 100)), (320, 180))
    (view,) = plan.views(grid=(10, 18))[:1]
    assert view.box.y0 >= 0 and view.box.y1 <= 1 and view.box.y1 - view.box.y0 == pytest.approx(1.0, abs=0.02)


@pytest.mark.parametrize("crop", [np.zeros((5, 5), np.uint8), np.zeros((1, 9, 3), np.uint8)], ids=["grey", "one-row"])
def test_a_crop_that_is_no_picture_is_refused(crop: np.ndarray) -> None:
    with pytest.raises(ValueError, match="crop"):
        CropExemplar(crop, (640, 360))


def test_the_crop_exemplar_is_the_region_that_differs_from_the_empty_canvas() -> None:
    plan = CropExemplar(bordered((60, 40)), (100, 80), shifts=2)
    views = plan.views(grid=GRID)
    empty = grid("canvas", 0, [])
    scenes = []
    for v in views:  # the object covers the 3x3 cells around the box's centre
        r, c = int((v.box.y0 + v.box.y1) / 2 * GRID[0]), int((v.box.x0 + v.box.x1) / 2 * GRID[1])
        scenes.append(grid("canvas", 0, [("suitcase", r - 1, c - 1, 3, 3)]))
    vector = plan.vector(views, scenes, [empty] * len(views), ReidSettings())
    centred = [centred_patches(s, CENTERING) for s in scenes]
    expected = unit_rows(
        np.mean([region_embedding(c, ~np.isclose(s, empty).all(-1)) for c, s in zip(centred, scenes, strict=True)], 0)
    )
    assert float(vector @ expected) > 0.999
    assert float(vector @ unit_rows(look("suitcase"))) > 0.8
    nothing = plan.vector(views, [empty] * len(views), [empty] * len(views), ReidSettings())  # nothing stands out
    assert np.isfinite(nothing).all() and np.linalg.norm(nothing) == pytest.approx(1.0)


@pytest.fixture(scope="module")
def tiny_embedder() -> Embedder:
    return Embedder(load_model("random:tiny", device="cpu"), ModelSettings(model="random:tiny"))


@pytest.mark.parametrize("site_seed", [1, 2], ids=["parade-1", "parade-2"])
def test_a_crop_cut_from_a_frame_is_found_on_its_video_every_time(tiny_embedder: Embedder, site_seed: int) -> None:
    """Camera A of a generated site (generators/reid_families.py): four figures cross one at a
    time; each figure's crop, cut from a frame of A with an 8 px margin, raises one occurrence,
    during that figure's pass and on it, and no other."""
    site = make_site("parade", site_seed)
    size = model_input_size(site.size, image_size=224, aspect="preserve")
    frames = [Frame("A", i, t, T0 + t, resize_rgb(site.render(0, t)[0], size)) for i, t in enumerate(site.times(0))]
    records = [r for k in range(0, len(frames), 16) for r in tiny_embedder.embed(frames[k : k + 16])]
    wl = Watchlist()
    for oid in site.travellers():
        plan = CropExemplar(site.crop(oid).image, site.size)
        views = plan.views(records[0].patches.shape[:2])
        embedded = tiny_embedder.embed(
            [Frame("q", 0, 0, 0, resize_rgb(p, size)) for v in views for p in (v.scene, v.empty)]
        )
        patches = [r.patches for r in embedded]
        wl.add(
            Exemplar(
                f"o{oid}", site.figures[oid].name, plan.vector(views, patches[0::2], patches[1::2], ReidSettings())
            )
        )
    events = run(WatchlistProcessor(ReidSettings(), wl), records)
    found = {}
    for occ in occurrences(events).values():
        oid = int(occ[0].details["exemplar"][1:])
        assert oid not in found, f"figure {oid} found twice"
        (p,) = [p for p in site.visits(oid) if p.camera == 0]
        assert p.t0 <= occ[0].t_start and occ[-1].t_end <= p.t1 + 1
        found[oid] = occ[0].score
    assert sorted(found) == sorted(site.travellers())
