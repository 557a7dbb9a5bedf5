"""Watchlists: click-to-segment and exemplars on synthetic patch grids, matches on other streams."""

from __future__ import annotations

import json
import zlib

import numpy as np
import pytest

from dinostream.analytics.regions import unit_rows
from dinostream.analytics.watchlist import (
    Exemplar,
    Watchlist,
    WatchlistProcessor,
    click_to_segment,
    exemplar_from_image_embedding,
    exemplar_from_patches,
)
from dinostream.core.records import Box, Event, FrameEmbedding
from dinostream.core.settings import ReidSettings

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
