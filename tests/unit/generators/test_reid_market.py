"""The held-out "market" re-identification family: sites are the same for the same seed and differ
between seeds, every box lies in its frame and covers the pixels drawn for its object, crops are
cut as users draw them, shoppers cross cameras in time order with transit gaps, one-camera
objects, look-alikes, a stop at a stall and a partial view at an edge are there, groups and
counters hide people in part, the light changes, and a small site renders every planned frame."""

from __future__ import annotations

import dataclasses
import functools

import numpy as np
import pytest

from generators.reid_families import MARGIN, Pass, Site
from generators.reid_market import MarketSite, Stroll, market_site

pytestmark = pytest.mark.timeout(60)

SEEDS = (1, 2, 3)  # the bench's sites: 3 has two cameras, 2 and 3 a third look-alike


@functools.cache
def _site(seed: int) -> MarketSite:
    return market_site(seed)


@pytest.fixture(params=SEEDS, ids=[f"site-{s}" for s in SEEDS])
def site(request: pytest.FixtureRequest) -> MarketSite:
    return _site(request.param)


def _seen(site: MarketSite, oid: int, camera: int, t0: float, t1: float, fraction: float = 0.5) -> bool:
    """Whether some sampled frame in [t0, t1] on `camera` shows at least `fraction` of `oid`,
    checked on the composed frame, before light and compression."""
    for t in (t for t in site.times(camera) if t0 <= t <= t1):
        _, owner, whole = site._compose(camera, t)
        if oid in whole and (owner == oid).sum() >= fraction * whole[oid]:
            return True
    return False


def _busiest(site: Site, camera: int) -> float:
    """The sampled time with the most people in the middle of their crossings on `camera`."""

    def crossing(t: float) -> int:
        return sum(p.camera == camera and 0.25 <= (t - p.t0) / (p.t1 - p.t0) <= 0.75 for p in site.passes)

    return max(site.times(camera), key=crossing)


def _footprint(site: MarketSite, p: Pass, t: float) -> np.ndarray:
    """(H, W) bool: where pass `p`'s sprite lies at `t`, hidden or not."""
    width, height = site.size
    _, alpha = site.pass_sprite(p)
    x, y, w, h = site.placement(p, t)
    out = np.zeros((height, width), bool)
    xa, xb, ya, yb = max(x, 0), min(x + w, width), max(y, 0), min(y + h, height)
    if xb > xa and yb > ya:
        out[ya:yb, xa:xb] = alpha[ya - y : yb - y, xa - x : xb - x]
    return out


def test_same_seed_same_site_other_seed_other_site() -> None:
    a, b, other = market_site(2), _site(2), _site(3)
    assert a.family == "market" and a.passes == b.passes and a.duration == b.duration
    for fa, fb in zip(a.figures, b.figures, strict=True):
        assert (fa.name, fa.look_alike_of) == (fb.name, fb.look_alike_of)
        assert np.array_equal(fa.rgb, fb.rgb) and np.array_equal(fa.alpha, fb.alpha)
    for c, (ca, cb) in enumerate(zip(a.cameras, b.cameras, strict=True)):
        assert (ca.name, ca.gains, ca.exposure) == (cb.name, cb.gains, cb.exposure)
        t = _busiest(a, c)
        img_a, truth_a = a.render(c, t)
        img_b, truth_b = b.render(c, t)
        assert np.array_equal(img_a, img_b) and truth_a == truth_b and truth_a
    assert other.passes != a.passes
    assert not np.array_equal(other.cameras[0].background, a.cameras[0].background)
    assert not np.array_equal(other.figures[0].rgb, a.figures[0].rgb)


def test_cameras_are_places_of_their_own(site: MarketSite) -> None:
    names = [c.name for c in site.cameras]
    assert names in (["street", "alley", "hall"], ["street", "hall"])
    assert len({c.gains for c in site.cameras}) == len(names) and len({c.exposure for c in site.cameras}) == len(names)
    assert len({look.quality for look in site.looks}) == len(names)  # compressed differently
    assert len({look.noise for look in site.looks}) == len(names)
    # the same people look larger at the hall's entrance than from the lamp post over the street
    street = [p.scale for p in site.passes if site.cameras[p.camera].name == "street"]
    hall = [p.scale for p in site.passes if site.cameras[p.camera].name == "hall"]
    assert max(street) < max(hall) and min(street) < min(hall)
    # the light changes: a cloud's shadow darkens the street as it passes
    start, dur = site.cloud
    empty = site.cameras[0].background
    before = site._light(0, 0.0, empty).astype(float).mean()
    under = min(site._light(0, start + f * dur, empty).astype(float).mean() for f in (0.3, 0.4, 0.5, 0.6))
    assert under < before - 4
    for c, name in enumerate(names):  # and elsewhere over time: leaf shade sways, exposure hunts
        if name == "alley":
            assert not np.array_equal(site.light_at(c, 1.0), site.light_at(c, 4.0))
        if name == "hall":
            bg = site.cameras[c].background
            means = [site._light(c, t, bg).astype(float).mean() for t in (0.0, 2.0, 4.0, 6.0)]
            assert max(means) - min(means) > 3


def test_boxes_lie_in_their_frames(site: MarketSite) -> None:
    width, height = site.size
    for c in range(len(site.cameras)):
        for t in site.times(c)[::5]:
            img, truth = site.render(c, t)
            assert img.shape == (height, width, 3) and img.dtype == np.uint8
            for oid, (x0, y0, x1, y1) in truth:
                assert 0 <= oid < len(site.figures)
                assert 0 <= x0 < x1 <= 1 and 0 <= y0 < y1 <= 1, (c, t, oid)
                assert any(p.oid == oid and p.camera == c and p.t0 <= t <= p.t1 for p in site.passes)


def test_truth_boxes_cover_the_pixels_drawn_for_their_object(site: MarketSite) -> None:
    """Taking an object out of the scene changes the drawn frame exactly inside its box, and the
    delivered frame there too, up to JPEG's 16 px blocks."""
    width, height = site.size

    def bounds(changed: np.ndarray) -> tuple[float, float, float, float]:
        rows, cols = np.flatnonzero(changed.any(1)), np.flatnonzero(changed.any(0))
        return cols[0] / width, rows[0] / height, (cols[-1] + 1) / width, (rows[-1] + 1) / height

    for oid in site.travellers():
        crop = site.crop(oid)
        img, truth = site.render(crop.camera, crop.t)
        box = dict(truth)[oid]
        without = dataclasses.replace(site, passes=[p for p in site.passes if p.oid != oid])
        img0, truth0 = without.render(crop.camera, crop.t)
        assert oid not in dict(truth0)
        drawn, drawn0 = site._compose(crop.camera, crop.t)[0], without._compose(crop.camera, crop.t)[0]
        assert bounds((drawn != drawn0).any(2)) == box
        got = bounds(np.abs(img.astype(int) - img0.astype(int)).sum(2) > 60)
        slack = (16 / width, 16 / height, 16 / width, 16 / height)
        assert all(abs(g - b) <= s for g, b, s in zip(got, box, slack, strict=True)), (oid, got, box)


def test_crops_are_cut_as_users_draw_them(site: MarketSite) -> None:
    """The crop of a shopper who travels: on its first camera, a frame where nothing hides it, its
    box and 8 px around it, cut out of the frame the camera delivers."""
    width, height = site.size
    for oid in site.travellers():
        crop = site.crop(oid)
        first = site.visits(oid)[0]
        assert crop.camera == first.camera and first.t0 <= crop.t <= first.t1
        _, owner, whole = site._compose(crop.camera, crop.t)
        assert (owner == oid).sum() == whole[oid]  # seen whole
        img, truth = site.render(crop.camera, crop.t)
        x0, y0, x1, y1 = dict(truth)[oid]
        expect = (
            max(0, round(x0 * width) - MARGIN),
            max(0, round(y0 * height) - MARGIN),
            min(width, round(x1 * width) + MARGIN),
            min(height, round(y1 * height) + MARGIN),
        )
        got = tuple(round(v * s) for v, s in zip(crop.box, (width, height, width, height), strict=True))
        assert got == expect
        assert np.array_equal(crop.image, img[expect[1] : expect[3], expect[0] : expect[2]])


def test_travellers_cross_cameras_in_time_order_with_gaps(site: MarketSite) -> None:
    travellers = site.travellers()
    assert len(travellers) == 5
    for oid in travellers:
        passes = site.visits(oid)
        assert all(isinstance(p, Stroll) for p in passes)
        assert [p.t0 for p in passes] == sorted(p.t0 for p in passes)
        cams = [p.camera for i, p in enumerate(passes) if i == 0 or p.camera != passes[i - 1].camera]
        assert len(cams) == len(set(cams)) >= 2, (oid, cams)  # each camera once, in one go
        for a, b in zip(passes, passes[1:], strict=False):
            if a.camera != b.camera:
                assert b.t0 - a.t1 >= 2.0, (oid, a, b)  # a transit between cameras
        for cam in set(cams):
            ps = [p for p in passes if p.camera == cam]
            assert _seen(site, oid, cam, ps[0].t0, ps[-1].t1), (oid, cam)  # seen there
        assert len({p.scale for p in passes}) >= 2  # another apparent size on another camera
        # drawn facing the way it walks
        assert all(p.mirror == (p.x1 < p.x0) for p in passes if isinstance(p, Stroll) and p.x0 != p.x1)


def test_one_camera_objects_and_look_alikes(site: MarketSite) -> None:
    travellers = set(site.travellers())
    alone = [f for f in site.figures if f.oid not in travellers]
    assert 2 <= len(alone) <= 3
    for f in alone:
        assert len({p.camera for p in site.visits(f.oid)}) == 1
        p = site.visits(f.oid)[0]
        assert _seen(site, f.oid, p.camera, p.t0, p.t1), f.name
    alikes = [f for f in site.figures if f.look_alike_of is not None]
    pair = [f for f in alikes if f.oid in travellers]
    assert pair  # a pair of look-alike shoppers, going different ways
    for f in pair:
        assert f.look_alike_of is not None
        mine, theirs = site.visits(f.oid), site.visits(f.look_alike_of)
        assert mine[0].camera != theirs[0].camera and mine[-1].camera != theirs[-1].camera
    for f in alikes:
        assert f.look_alike_of is not None
        original = site.figures[f.look_alike_of]
        assert f.look_alike_of in travellers
        assert f.name.split("-")[0] != original.name.split("-")[0]  # another pattern
        assert np.array_equal(f.alpha, original.alpha) and not np.array_equal(f.rgb, original.rgb)
        # the same colours: their mean colours are close
        assert np.abs(f.rgb[f.alpha].mean(0) - original.rgb[original.alpha].mean(0)).max() < 60
        if f.oid not in travellers:  # a one-camera look-alike is never in view with its original
            (one,) = site.visits(f.oid)
            there = [p for p in site.visits(original.oid) if p.camera == one.camera]
            assert there and all(p.t1 < one.t0 or one.t1 < p.t0 for p in there)


def test_a_shopper_stops_at_a_stall(site: MarketSite) -> None:
    street = site.names.index("street")
    passes = [p for p in site.visits(site.browser) if isinstance(p, Stroll) and p.camera == street]
    assert len(passes) == 3 and site.browser in site.travellers()
    walk_in, stop, walk_on = passes
    assert stop.still and not walk_in.still and not walk_on.still
    assert walk_in.t1 == stop.t0 and stop.t1 == walk_on.t0 and stop.t1 - stop.t0 >= 4.0
    assert walk_in.x1 == stop.x0 == stop.x1 == walk_on.x0 and 0 < stop.x0 < site.size[0]
    lane = {p.scale for p in site.passes if site.names[p.camera] == "street"}
    assert stop.scale == min(lane)  # at the stalls, in the far lane
    t = stop.t0 + 2.0
    assert site.placement(stop, t) == site.placement(stop, t + 1.0)  # stands still
    assert site.browser in dict(site.render(street, t + (-t) % 0.5)[1])


def test_a_stall_holder_is_seen_in_part_at_an_edge(site: MarketSite) -> None:
    (peek,) = site.visits(site.peeker)
    assert peek.back and site.peeker not in site.travellers()
    width = site.size[0]
    boxes = []
    for t in (t for t in site.times(peek.camera) if peek.t0 <= t <= peek.t1):
        box = dict(site.render(peek.camera, t)[1]).get(site.peeker)
        if box is not None:
            boxes.append(box)
        _, owner, whole = site._compose(peek.camera, t)
        assert (owner == site.peeker).sum() < whole[site.peeker]  # never all of it in view
    assert boxes and all(b[0] == 0 or b[2] * width >= width - 1 for b in boxes)  # at the frame's edge


def test_groups_counters_and_crates_hide_people_in_part(site: MarketSite) -> None:
    most, by_people, legs = 0, 0, 0
    for c in range(len(site.cameras)):
        fixtures = site.looks[c].fixtures
        for t in site.times(c):
            _, owner, whole = site._compose(c, t)
            most = max(most, sum((owner == oid).sum() >= 0.5 * whole[oid] for oid in whole))
            for p in (p for p in site.passes if p.camera == c and p.t0 <= t <= p.t1):
                foot = _footprint(site, p, t)
                hidden = foot & (owner != p.oid)
                under = np.zeros_like(hidden)
                for f in fixtures:
                    if f.scale > p.scale:
                        under |= hidden & f.mask
                by_people += int((hidden & (owner >= 0)).sum() > 0.05 * whole[p.oid])
                if under.sum() > 0.05 * whole[p.oid]:
                    rows = np.flatnonzero(foot.any(1))
                    legs += int(np.flatnonzero(under.any(1)).mean() > (rows[0] + rows[-1]) / 2)
    assert most >= 2  # groups share the view
    assert by_people >= 3  # partly hidden by someone nearer
    assert legs >= 3  # counters, crates and stands hide legs, not heads


def test_a_small_site_renders_every_planned_frame() -> None:
    small = market_site(6, size=(160, 90))
    assert [c.name for c in small.cameras] == ["street", "hall"]
    frames = 0
    for c in range(len(small.cameras)):
        for t in small.times(c):
            img, truth = small.render(c, t)
            assert img.shape == (90, 160, 3) and img.dtype == np.uint8
            assert all(0 <= x0 < x1 <= 1 and 0 <= y0 < y1 <= 1 for _, (x0, y0, x1, y1) in truth)
            frames += 1
    assert frames == sum(int(small.end(c) * 2.0) for c in range(len(small.cameras)))  # 2 frames a second
