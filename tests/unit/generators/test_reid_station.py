"""The held-out "station" re-identification family: sites are the same for the same seed and
differ between seeds, every box lies in its frame, travellers cross cameras in time order with
transit gaps, one-camera objects, look-alikes and a left bag are there, groups share the view,
and a small site renders every planned frame at its size."""

from __future__ import annotations

import functools

import numpy as np
import pytest

from generators.reid_families import Site
from generators.reid_station import StationSite, Walk, station_site

pytestmark = pytest.mark.timeout(60)

SEEDS = (3, 4, 5)  # the bench's sites: 3 has two cameras, 5 leaves its bag on the platform


@functools.cache
def _site(seed: int) -> StationSite:
    return station_site(seed)


@pytest.fixture(params=SEEDS, ids=[f"site-{s}" for s in SEEDS])
def site(request: pytest.FixtureRequest) -> StationSite:
    return _site(request.param)


def _seen(site: StationSite, oid: int, camera: int, t0: float, t1: float) -> bool:
    """Whether some sampled frame in [t0, t1] on `camera` shows at least half of `oid` (what puts
    it in the truth), checked on the composed frame, before light and compression."""
    for t in (t for t in site.times(camera) if t0 <= t <= t1):
        _, owner, whole = site._compose(camera, t)
        if oid in whole and (owner == oid).sum() >= 0.5 * whole[oid]:
            return True
    return False


def _busiest(site: Site, camera: int) -> float:
    return max(site.times(camera), key=lambda t: sum(p.camera == camera and p.t0 <= t <= p.t1 for p in site.passes))


def test_same_seed_same_site_other_seed_other_site() -> None:
    a, b, other = station_site(4), _site(4), _site(5)
    assert a.family == "station" and a.passes == b.passes and a.duration == b.duration
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


def test_cameras_are_places_of_their_own(site: StationSite) -> None:
    names = [c.name for c in site.cameras]
    assert names in (["platform", "stairs", "hall"], ["platform", "hall"])
    assert len({c.gains for c in site.cameras}) == len(names) and len({c.exposure for c in site.cameras}) == len(names)
    assert len({look.quality for look in site.looks}) == len(names)  # compressed differently
    # the same object looks larger in the hall than from high up on the platform
    platform = [p.scale for p in site.passes if site.cameras[p.camera].name == "platform"]
    hall = [p.scale for p in site.passes if site.cameras[p.camera].name == "hall"]
    assert max(platform) < max(hall) and min(platform) < min(hall)
    # the light changes over time: a train lights up the platform, the hall's tubes flicker
    before = site._light(0, 0.0, site.cameras[0].background).astype(float).mean()
    train = site.trains[0]
    lit = site._light(0, (train.t0 + train.t_stop) / 2, site.cameras[0].background).astype(float).mean()
    assert lit > before + 3


def test_boxes_lie_in_their_frames(site: StationSite) -> None:
    width, height = site.size
    for c in range(len(site.cameras)):
        for t in site.times(c)[::4]:
            img, truth = site.render(c, t)
            assert img.shape == (height, width, 3) and img.dtype == np.uint8
            for oid, (x0, y0, x1, y1) in truth:
                assert 0 <= oid < len(site.figures)
                assert 0 <= x0 < x1 <= 1 and 0 <= y0 < y1 <= 1, (c, t, oid)
                assert any(p.oid == oid and p.camera == c and p.t0 <= t <= p.t1 for p in site.passes)


def test_travellers_cross_cameras_in_time_order_with_gaps(site: StationSite) -> None:
    travellers = site.travellers()
    assert len(travellers) == 5
    for oid in travellers:
        passes = site.visits(oid)
        assert all(isinstance(p, Walk) for p in passes)
        assert [p.t0 for p in passes] == sorted(p.t0 for p in passes)
        cams = [p.camera for i, p in enumerate(passes) if i == 0 or p.camera != passes[i - 1].camera]
        assert len(cams) == len(set(cams)) >= 2, (oid, cams)  # each camera once, in one go
        for a, b in zip(passes, passes[1:], strict=False):
            if a.camera != b.camera:
                assert b.t0 - a.t1 >= 2.0, (oid, a, b)  # a transit between cameras
        for cam in set(cams):
            ps = [p for p in passes if p.camera == cam]
            assert _seen(site, oid, cam, ps[0].t0, ps[-1].t1), (oid, cam)  # seen there
        scales = {p.scale for p in passes}
        assert len(scales) >= 2  # another apparent size on another camera
        crop = site.crop(oid)  # seen whole on its first camera
        assert crop.camera == passes[0].camera and crop.image.size


def test_one_camera_objects_and_look_alikes(site: StationSite) -> None:
    travellers = set(site.travellers())
    alone = [f for f in site.figures if f.oid not in travellers]
    assert 2 <= len(alone) <= 3
    for f in alone:
        assert len({p.camera for p in site.visits(f.oid)}) == 1
        p = site.visits(f.oid)[0]
        assert _seen(site, f.oid, p.camera, p.t0, p.t1), f.name
    alikes = [f for f in site.figures if f.look_alike_of is not None]
    assert alikes and any(f.oid in travellers for f in alikes)  # a pair of look-alike travellers
    for f in alikes:
        assert f.look_alike_of is not None
        original = site.figures[f.look_alike_of]
        assert f.look_alike_of in travellers
        assert np.array_equal(f.alpha, original.alpha) and not np.array_equal(f.rgb, original.rgb)
        # the same colours: their mean colours are close, unlike a stranger's
        assert np.abs(f.rgb[f.alpha].mean(0) - original.rgb[original.alpha].mean(0)).max() < 60
        if f.oid not in travellers:  # a one-camera look-alike is never in view with its original
            mine = site.visits(f.oid)[0]
            theirs = [p for p in site.visits(original.oid) if p.camera == mine.camera]
            assert theirs and all(p.t1 < mine.t0 or mine.t1 < p.t0 for p in theirs)


def test_a_bag_is_carried_then_left(site: StationSite) -> None:
    (left,) = site.visits(site.bag)
    owner = site.visits(site.bag_owner)
    assert left.x0 == left.x1 and left.t1 - left.t0 >= 10  # it stays put
    before = [p for p in owner if p.t1 <= left.t0]
    after = [p for p in owner if p.t0 >= left.t0]
    assert before and after and all(p.variant == 0 for p in before) and all(p.variant == 1 for p in after)
    assert any(p.camera == left.camera for p in before) and any(p.still for p in after)
    # the bag's pixels are the ones the owner carried
    carried, _ = site.sprite(site.bag_owner, 1.0)
    bare, _ = site.variants[site.bag_owner]
    bag = site.figures[site.bag]
    assert carried.shape == bare.shape and not np.array_equal(carried, bare)
    colours = {tuple(c) for c in bag.rgb[bag.alpha].astype(int)}
    assert colours <= {tuple(c) for c in carried.reshape(-1, 3).astype(int)}
    t = left.t0 + 1.0
    assert site.bag in dict(site.render(left.camera, t + (-t) % 0.5)[1])  # on the floor, in the truth


def test_groups_share_the_view_and_hide_one_another(site: StationSite) -> None:
    most, hidden = 0, 0
    for c in range(len(site.cameras)):
        for t in site.times(c)[::3]:
            _, owner, whole = site._compose(c, t)
            most = max(most, sum((owner == oid).sum() >= 0.5 * whole[oid] for oid in whole))
            hidden += sum(0 < (owner == oid).sum() < whole[oid] * 0.95 for oid in whole)
    assert most >= 2
    assert hidden >= 3  # partly hidden by someone nearer or a fixture on some frames


def test_a_small_site_renders_every_planned_frame() -> None:
    small = station_site(7, size=(160, 90))
    assert len(small.cameras) == 2
    frames = 0
    for c in range(len(small.cameras)):
        for t in small.times(c):
            img, truth = small.render(c, t)
            assert img.shape == (90, 160, 3) and img.dtype == np.uint8
            frames += 1
    assert frames == sum(int(small.end(c) * 2.0) for c in range(len(small.cameras)))  # 2 frames a second
