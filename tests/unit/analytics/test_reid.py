"""Re-identification across streams on synthetic patch grids with known identities."""

from __future__ import annotations

import dataclasses
import json
import zlib
from pathlib import Path

import numpy as np
import pytest

from dinostream.analytics.gallery import EdgeTrackGallery, GalleryHit, MemoryTrackGallery
from dinostream.analytics.reid import ReidProcessor, best_link, ready
from dinostream.analytics.track_colour import signature_dim
from dinostream.analytics.tracking import Track
from dinostream.core.records import Box, Event, FrameEmbedding
from dinostream.core.settings import ReidSettings
from tests.pictures import jpeg

DIM = 32
GRID = (8, 10)
T0 = 1_700_000_000.0
FPS = 2.0


def seed(name: str) -> int:
    return zlib.crc32(name.encode())


def look(obj: str) -> np.ndarray:
    return np.random.default_rng(seed(obj)).normal(size=DIM).astype(np.float32)


def grid(stream: str, seq: int, obj: str | None, col: int, row: int = 3, size: int = 3) -> np.ndarray:
    """The stream's own background, sensor noise, and `obj` (if any) with its left edge at `col`."""
    bg = np.random.default_rng(seed(stream)).normal(size=(*GRID, DIM))
    rng = np.random.default_rng([seed(stream), seq])
    x = bg + 0.05 * rng.normal(size=bg.shape)
    if obj is not None:
        c0, c1 = max(col, 0), min(col + size, GRID[1])
        if c1 > c0:
            x[row : row + size, c0:c1] = look(obj) + 0.2 * rng.normal(size=(size, c1 - c0, DIM))
    return x


def record(stream: str, seq: int, patches: np.ndarray) -> FrameEmbedding:
    return FrameEmbedding(
        stream=stream,
        seq=seq,
        pts=seq / FPS,
        ts=T0 + seq / FPS,
        model="test",
        untrained=True,
        cls=patches.mean(axis=(0, 1)),
        pooled=patches.mean(axis=(0, 1)),
        patches=patches,
    )


def stream(name: str, visits: list[tuple[str, int]], frames: int) -> list[FrameEmbedding]:
    """Records of one camera; `visits` are (object, first frame): it walks across, one cell a frame."""
    out = []
    for seq in range(frames):
        obj, col = None, 0
        for o, start in visits:
            if start <= seq < start + GRID[1] + 3:
                obj, col = o, seq - start - 2  # enters cut by the left edge, leaves by the right
        out.append(record(name, seq, grid(name, seq, obj, col)))
    return out


def interleave(*streams: list[FrameEmbedding]) -> list[FrameEmbedding]:
    return [r for frame in zip(*streams, strict=True) for r in frame]


def run(proc: ReidProcessor, records: list[FrameEmbedding], flush: bool = True) -> list[Event]:
    events = [e for r in records for e in proc.process(r)]
    if flush:
        for name in dict.fromkeys(r.stream for r in records):
            events += proc.flush(name)
    return events


def by_id(events: list[Event]) -> dict[str, list[Event]]:
    out: dict[str, list[Event]] = {}
    for e in events:
        out.setdefault(e.id, []).append(e)
    return out


def test_an_object_leaving_a_and_entering_b_is_linked_once() -> None:
    a = stream("cam-a", [("suitcase", 5)], 40)
    b = stream("cam-b", [("suitcase", 22)], 40)
    events = run(ReidProcessor(ReidSettings(), MemoryTrackGallery()), interleave(a, b))
    (occurrence,) = by_id(events).values()
    statuses = [e.status for e in occurrence]
    assert statuses[0] == "open" and statuses[-1] == "closed" and set(statuses[1:-1]) <= {"update"}
    first = occurrence[0]
    assert first.type == "reid" and first.stream == "cam-b"
    assert first.details["matched_stream"] == "cam-a"
    assert first.details["identity"] == f"cam-a/{first.details['matched_track']}"
    assert first.score >= ReidSettings().link_threshold
    # The box is where the object is on cam-b at that frame (rows 3-5, three columns).
    (box,) = first.boxes
    col = first.frames[1] - 22 - 2
    assert (box.y0, box.y1) == (3 / 8, 6 / 8)
    assert (box.x0, box.x1) == pytest.approx((max(col, 0) / 10, min(col + 3, 10) / 10))
    assert box.label == first.details["identity"]


def test_distinct_objects_are_not_linked() -> None:
    a = stream("cam-a", [("suitcase", 5)], 40)
    b = stream("cam-b", [("stroller", 22)], 40)
    assert run(ReidProcessor(ReidSettings(), MemoryTrackGallery()), interleave(a, b)) == []


def test_links_chain_into_one_identity_across_three_streams() -> None:
    a = stream("cam-a", [("cart", 3)], 60)
    b = stream("cam-b", [("cart", 20)], 60)
    c = stream("cam-c", [("cart", 38)], 60)
    events = run(ReidProcessor(ReidSettings(), MemoryTrackGallery()), interleave(a, b, c))
    opened = [e for e in events if e.status == "open"]
    assert [e.stream for e in opened] == ["cam-b", "cam-c"]
    assert len({e.details["identity"] for e in opened}) == 1


def test_tracks_older_than_the_window_are_not_searched() -> None:
    a = stream("cam-a", [("cart", 3)], 60)
    b = stream("cam-b", [("cart", 40)], 60)  # about 15 s after cam-a last saw it
    linked = run(ReidProcessor(ReidSettings(window_s=60), MemoryTrackGallery()), interleave(a, b))
    assert linked
    assert run(ReidProcessor(ReidSettings(window_s=5), MemoryTrackGallery()), interleave(a, b)) == []


def test_per_stream_settings_apply_to_that_stream_only() -> None:
    proc = ReidProcessor(ReidSettings(), MemoryTrackGallery())
    proc.configure("cam-b", {"link_threshold": 0.999})
    a = stream("cam-a", [("cart", 3), ("lamp", 30)], 50)
    b = stream("cam-b", [("lamp", 4), ("cart", 20)], 50)
    events = run(proc, interleave(a, b))
    # cam-b's cart would match cam-a's, but not at 0.999; cam-a's lamp matches cam-b's at the default.
    assert {(e.stream, e.details["matched_stream"]) for e in events} == {("cam-a", "cam-b")}
    assert len(by_id(events)) == 1
    with pytest.raises(ValueError, match="link_threshold"):
        proc.configure("cam-b", {"link_threshold": 3})


def test_workers_share_links_through_a_qdrant_edge_gallery(tmp_path: Path) -> None:
    """Two processors (as on two Faust workers), each with one stream, one Edge gallery."""
    gallery = EdgeTrackGallery(tmp_path / "tracks", signature_dim(DIM))
    try:
        one, two = ReidProcessor(ReidSettings(), gallery), ReidProcessor(ReidSettings(), gallery)
        a = stream("cam-a", [("suitcase", 5)], 40)
        b = stream("cam-b", [("suitcase", 22)], 40)
        events = [e for ra, rb in zip(a, b, strict=True) for e in one.process(ra) + two.process(rb)]
    finally:
        gallery.close()
    assert {(e.stream, e.details["matched_stream"]) for e in events} == {("cam-b", "cam-a")}


def test_snapshot_and_restore_mid_stream_continue_identically() -> None:
    records = interleave(stream("cam-a", [("suitcase", 5)], 40), stream("cam-b", [("suitcase", 22)], 40))
    expected = run(ReidProcessor(ReidSettings(), MemoryTrackGallery()), records)
    cut = 2 * 28  # cam-b's track is live and linked here
    gallery = MemoryTrackGallery()
    before = ReidProcessor(ReidSettings(), gallery)
    events = run(before, records[:cut], flush=False)
    states = {name: json.loads(json.dumps(before.snapshot(name))) for name in ("cam-a", "cam-b")}
    after = ReidProcessor(ReidSettings(), gallery)  # the restarted worker; the gallery lives on
    for name, state in states.items():
        after.restore(name, state)
    events += run(after, records[cut:])
    assert [e.to_dict() for e in events] == [e.to_dict() for e in expected]
    assert any(e.status == "update" for e in events[: len(events) - 1])


def test_restoring_an_empty_state_resets_the_stream() -> None:
    proc = ReidProcessor(ReidSettings(), MemoryTrackGallery())
    run(proc, stream("cam-a", [("cart", 3)], 10), flush=False)
    assert proc.tracks("cam-a")
    proc.restore("cam-a", {})
    assert proc.tracks("cam-a") == [] and proc.snapshot("cam-a") == {}


def hit(identity: str, score: float) -> GalleryHit:
    return GalleryHit("cam", identity, identity, 0.0, 0.0, score)


@pytest.mark.parametrize(
    ("hits", "expected"),
    [
        ([], None),
        ([hit("x", 0.5)], None),
        ([hit("x", 0.9)], "x"),
        ([hit("x", 0.9), hit("x", 0.89)], "x"),
        ([hit("x", 0.9), hit("y", 0.88)], None),
        ([hit("x", 0.9), hit("y", 0.7)], "x"),
    ],
    ids=["empty", "below-threshold", "clear", "same-identity-twice", "ambiguous", "clear-margin"],
)
def test_best_link(hits: list[GalleryHit], expected: str | None) -> None:
    got = best_link(hits, threshold=0.6, margin=0.05)
    assert (got.identity if got else None) == expected


def test_the_gallery_is_pruned_to_the_window() -> None:
    gallery = MemoryTrackGallery()
    proc = ReidProcessor(ReidSettings(window_s=5), gallery)
    records = stream("cam-a", [("cart", 3)], 100)
    run(proc, records[:30], flush=False)
    assert len(gallery) == 1
    run(proc, records[30:], flush=False)  # the 100th frame prunes what was last seen 40 s earlier
    assert len(gallery) == 0


def crossing_grid(stream: str, seq: int, placed: list[tuple[str, int, int]]) -> np.ndarray:
    """The stream's background with several 3x3 objects (object, left column, top row)."""
    bg = np.random.default_rng(seed(stream)).normal(size=(*GRID, DIM))
    rng = np.random.default_rng([seed(stream), seq])
    x = bg + 0.05 * rng.normal(size=bg.shape)
    for obj, col, row in placed:
        c0, c1 = max(col, 0), min(col + 3, GRID[1])
        if c1 > c0:
            x[row : row + 3, c0:c1] = look(obj) + 0.2 * rng.normal(size=(3, c1 - c0, DIM))
    return x


@pytest.mark.parametrize("first_on_b", ["lamp", "cart"])
def test_objects_passing_each_other_keep_their_identities(first_on_b: str) -> None:
    """On cam-a a cart walks right on rows 1-3 and a lamp walks left on rows 4-6: where they pass,
    their regions touch and make one component. Later each walks across cam-b alone, and each is
    linked to its own track on cam-a."""
    row_a, row_b = 1, 4
    second_on_b = "cart" if first_on_b == "lamp" else "lamp"
    a, b = [], []
    for seq in range(60):
        placed = []
        if 3 <= seq < 3 + GRID[1] + 3:
            placed += [("cart", seq - 3 - 2, row_a), ("lamp", GRID[1] - (seq - 3), row_b)]
        a.append(record("cam-a", seq, crossing_grid("cam-a", seq, placed)))
        obj = first_on_b if 22 <= seq < 35 else second_on_b if 38 <= seq < 51 else None
        start = 22 if obj == first_on_b else 38
        b.append(record("cam-b", seq, crossing_grid("cam-b", seq, [(obj, seq - start - 2, 3)] if obj else [])))
    proc = ReidProcessor(ReidSettings(), MemoryTrackGallery())
    tracks_a: dict[str, set[str]] = {}
    events = []
    for ra, rb in zip(a, b, strict=True):
        events += proc.process(ra)
        for t in proc.tracks("cam-a"):
            if t.confirmed and t.last_seq == ra.seq:
                tracks_a.setdefault(t.track_id, set()).add("top" if t.box.y0 < (row_a + 2) / GRID[0] else "bottom")
        events += proc.process(rb)
    assert sorted(tracks_a.values(), key=sorted) == [{"bottom"}, {"top"}]  # two tracks, no switch
    opened = {e.details["identity"]: e for e in events if e.status == "open"}
    assert len(opened) == 2
    by_track = {tid: next(iter(where)) for tid, where in tracks_a.items()}
    lane = {e.details["matched_track"]: by_track[e.details["matched_track"]] for e in opened.values()}
    first = min(opened.values(), key=lambda e: e.frames[0])
    assert lane[first.details["matched_track"]] == ("bottom" if first_on_b == "lamp" else "top")
    assert len(set(lane.values())) == 2


def test_a_track_enters_the_gallery_once_it_is_seen_enough_to_link() -> None:
    s = ReidSettings()
    gallery = MemoryTrackGallery()
    proc = ReidProcessor(s, gallery)
    records = stream("cam-a", [("cart", 3)], 40)
    confirmed_not_ready = False
    for rec in records:
        proc.process(rec)
        for t in proc.tracks("cam-a"):
            if t.confirmed and t.full_views < s.link_min_views:
                confirmed_not_ready = True
                assert len(gallery) == 0  # a glimpse is neither searched nor a link target
    assert confirmed_not_ready and len(gallery) == 1


@pytest.mark.parametrize(
    ("confirmed", "full_views", "hits", "expected"),
    [(True, 4, 4, True), (True, 3, 7, False), (True, 0, 8, True), (False, 4, 9, False)],
    ids=["seen-whole-enough", "glimpses", "never-whole-twice-as-long", "unconfirmed"],
)
def test_a_track_is_ready_when_seen_whole_enough_or_twice_as_long(
    confirmed: bool, full_views: int, hits: int, expected: bool
) -> None:
    """link_min_views (4) whole views, or twice as many frames for an object never seen whole (a
    person at the bottom edge: its colours are a whole view's)."""
    t = Track("1.0", Box(0, 0.5, 0.2, 1.0), np.ones(DIM, np.float32), 1, 0.0, T0, 1, 0.0, T0)
    t.confirmed, t.full_views, t.hits = confirmed, full_views, hits
    assert ready(t, ReidSettings()) is expected


def test_the_open_link_says_when_and_where_the_matched_track_was_seen() -> None:
    a = stream("cam-a", [("suitcase", 5)], 40)
    b = stream("cam-b", [("suitcase", 22)], 40)
    events = run(ReidProcessor(ReidSettings(), MemoryTrackGallery()), interleave(a, b))
    first, *rest = next(iter(by_id(events).values()))
    d = first.details
    # cam-a's suitcase entered at frame 5 (2.5 s) and was last seen at the right edge.
    assert d["matched_t_start"] == pytest.approx(3.0) and d["matched_t_end"] <= first.t_start
    assert d["matched_box"][2] == pytest.approx(1.0) and d["matched_box"][1:4:2] == pytest.approx([3 / 8, 6 / 8])
    assert d["threshold"] == ReidSettings().link_threshold  # nothing to calibrate on yet
    assert all("matched_t_start" not in e.details for e in rest)  # the updates carry the box alone


def alike_looks(n: int, alike: float, seed: int) -> list[np.ndarray]:
    """`n` looks sharing one component (`alike` of it): look-alikes when `alike` is near 1."""
    rng = np.random.default_rng(seed)
    common = rng.normal(size=DIM)
    return [(alike * common + np.sqrt(1 - alike**2) * rng.normal(size=DIM)).astype(np.float32) for _ in range(n)]


def crossing(seq: int, first: int, n: int) -> tuple[int, int, int] | None:
    """In a parade of `n` objects from frame `first`: which one crosses at `seq` and the columns
    [c0, c1) it covers (it enters cut by the left edge, leaves by the right); None between them."""
    k, t = divmod(seq - first, GRID[1] + 5)
    if seq < first or k >= n or t >= GRID[1] + 3:
        return None
    col = t - 2
    return k, max(col, 0), min(col + 3, GRID[1])


def parade(name: str, looks: list[np.ndarray], frames: int, first: int = 2) -> list[FrameEmbedding]:
    """Objects of the given looks cross one after another (3x3 cells, one cell a frame)."""
    bg = np.random.default_rng(seed(name)).normal(size=(*GRID, DIM))
    out = []
    for seq in range(frames):
        rng = np.random.default_rng([seed(name), seq])
        x = bg + 0.05 * rng.normal(size=bg.shape)
        if (now := crossing(seq, first, len(looks))) is not None:
            k, c0, c1 = now
            x[3:6, c0:c1] = looks[k] + 0.2 * rng.normal(size=(3, c1 - c0, DIM))
        out.append(record(name, seq, x))
    return out


@pytest.mark.parametrize(("alike", "linked"), [(0.3, True), (0.9, False)], ids=["all-different", "look-alikes"])
def test_a_camera_of_look_alikes_raises_the_link_threshold(alike: float, linked: bool) -> None:
    """cam-a shows six objects; cam-b then shows one much like the last of them (about 0.8), but
    not it. Among objects that all differ that links at the configured threshold; among
    look-alikes (about 0.85 to each other), whose similarities set the threshold, it does not
    (at the configured 0.7 alone it would)."""
    looks = alike_looks(6, alike, seed=4)
    last, other = looks[5], np.random.default_rng(9).normal(size=DIM)
    visitor = (
        0.85 * last / np.linalg.norm(last) + np.sqrt(1 - 0.85**2) * other / np.linalg.norm(other)
    ) * np.linalg.norm(last)
    a = parade("cam-a", looks, 6 * 15 + 30)
    b = parade("cam-b", [visitor.astype(np.float32)], 6 * 15 + 30, first=6 * 15 + 4)
    proc = ReidProcessor(ReidSettings(), MemoryTrackGallery())
    opened = [e for e in run(proc, interleave(a, b)) if e.status == "open"]
    threshold = proc.objects.threshold(ReidSettings().link_threshold)
    assert bool(opened) is linked
    if linked:
        (link,) = opened
        assert link.details["matched_stream"] == "cam-a" and link.details["threshold"] == threshold == 0.7
    else:
        assert 0.85 < threshold < 0.9


def test_an_object_seen_meanwhile_on_another_camera_is_someone_else() -> None:
    """The same look crosses both cameras at the same time: two objects (one is not in two rooms at
    once), so they are not linked; a minute later it would be."""
    a = stream("cam-a", [("suitcase", 5)], 40)
    at_once = stream("cam-b", [("suitcase", 6)], 40)
    assert run(ReidProcessor(ReidSettings(), MemoryTrackGallery()), interleave(a, at_once)) == []
    later = stream("cam-b", [("suitcase", 22)], 40)
    assert run(ReidProcessor(ReidSettings(), MemoryTrackGallery()), interleave(a, later))


CELL = 8  # thumbnail pixels per patch cell


def unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v)


def coloured_parade(
    name: str, objects: list[tuple[np.ndarray, np.ndarray]], cast: np.ndarray, frames: int, first: int = 2
) -> list[FrameEmbedding]:
    """`parade` with thumbnails seen through a camera's `cast`: each object (look, (top, bottom)
    colours) has its top two rows one colour and its bottom row another, on a grey background."""
    out = []
    for r in parade(name, [look for look, _ in objects], frames, first):
        rng = np.random.default_rng([seed(name), r.seq, 1])
        cells = np.full((*GRID, 3), 0.5) + 0.03 * rng.normal(size=(*GRID, 3))
        if (now := crossing(r.seq, first, len(objects))) is not None:
            k, c0, c1 = now
            cells[3:5, c0:c1], cells[5, c0:c1] = objects[k][1]
        px = np.kron(np.clip(cells, 0, 1) * cast, np.ones((CELL, CELL, 1))) * 200
        out.append(dataclasses.replace(r, thumbnail=jpeg(np.clip(px, 0, 255).astype(np.uint8))))
    return out


@pytest.mark.parametrize(("weight", "right"), [(0.5, 4), (0.0, 0)], ids=["colours", "appearance-alone"])
def test_look_alikes_are_told_apart_by_their_colours_under_each_cameras_white_balance(
    weight: float, right: int
) -> None:
    """Four look-alikes (features about 0.9 alike) in different clothes cross cam-a, then cam-b,
    whose white balance is far from cam-a's (red up a third, blue down a third), in another order.
    Both cameras first see the same six passers-by in the same clothes (their white balances are
    learnt from them; each camera's passers-by look unlike the other's, so none links). The
    look-alikes' features alone cannot tell them apart (their similarity sets a threshold that
    none reaches); their colours, the cast taken out, link each to itself."""
    rng = np.random.default_rng(11)
    clothes = [rng.uniform(0.25, 0.85, (2, 3)) for _ in range(10)]  # none near black: its chroma is noise
    passers_a = [(look(f"passer-a{i}"), clothes[i]) for i in range(6)]
    passers_b = [(look(f"passer-b{i}"), clothes[i]) for i in range(6)]
    looks_a = alike_looks(4, 0.95, seed=5)
    # cam-b sees each from another side: its features there are about 0.85 like cam-a's.
    looks_b = [0.85 * v + 0.53 * np.linalg.norm(v) * unit(rng.normal(size=DIM)) for v in looks_a]
    cast = np.array([1.3, 1.0, 0.67])
    a = coloured_parade("cam-a", passers_a + list(zip(looks_a, clothes[6:], strict=True)), np.ones(3), 10 * 15 + 80)
    order = [2, 0, 3, 1]
    alike_b = [(looks_b[i].astype(np.float32), clothes[6 + i]) for i in order]
    b = coloured_parade("cam-b", passers_b + alike_b, cast, 10 * 15 + 80, first=60)
    proc = ReidProcessor(ReidSettings(colour_weight=weight), MemoryTrackGallery())
    opened = [e for e in run(proc, interleave(a, b)) if e.status == "open"]
    assert all(e.stream == "cam-b" for e in opened)

    def slot(t: float, first: int) -> int:  # which object of a parade was crossing at media time t
        return int((t * FPS - first) // 15)

    linked = {order[slot(e.t_start, 60) - 6]: slot(e.details["matched_t_start"], 2) - 6 for e in opened}
    assert all(slot(e.t_start, 60) >= 6 for e in opened)  # no passer-by is linked
    assert sum(i == j for i, j in linked.items()) == right, [(e.score, e.details["threshold"]) for e in opened]
    assert all(i == j for i, j in linked.items())  # and none wrongly


def test_a_restarted_worker_keeps_the_tracks_colours_and_the_cameras_white_balance() -> None:
    """As `test_snapshot_and_restore_mid_stream_continue_identically`, with thumbnails: the colours
    a track kept and the camera's reference come back with the state, so links are the same."""
    rng = np.random.default_rng(3)
    objects = [(look(f"o{i}"), rng.uniform(0.25, 0.85, (2, 3))) for i in range(3)]
    records = interleave(
        coloured_parade("cam-a", objects, np.ones(3), 3 * 15 + 30),
        coloured_parade("cam-b", objects[::-1], np.array([1.3, 1.0, 0.67]), 3 * 15 + 30, first=20),
    )
    expected = run(ReidProcessor(ReidSettings(), MemoryTrackGallery()), records)
    assert len([e for e in expected if e.status == "open"]) >= 2
    cut = 2 * 40  # mid-parade on both cameras
    gallery = MemoryTrackGallery()
    before = ReidProcessor(ReidSettings(), gallery)
    events = run(before, records[:cut], flush=False)
    states = {name: json.loads(json.dumps(before.snapshot(name))) for name in ("cam-a", "cam-b")}
    assert any(t.colours is not None for t in before.tracks("cam-b"))
    after = ReidProcessor(ReidSettings(), gallery)
    for name, state in states.items():
        after.restore(name, state)
    assert after.snapshot("cam-b") == states["cam-b"]
    events += run(after, records[cut:])
    assert [e.to_dict() for e in events] == [e.to_dict() for e in expected]
