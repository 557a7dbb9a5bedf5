"""The held-out "hospital" re-identification family: sites are the same for the same seed and
differ between seeds, every box lies in its frame and covers the pixels drawn for its object, crops
are cut as users draw them, people cross cameras in the layout's order with transit gaps, staff in
the same scrubs, one-camera strangers, a porter with a patient, a stop at the desk are there, the
corridor shrinks people with distance and the waiting area's lens bends the frame, carts, doors,
desks and people hide people in part, and a small site renders every planned frame."""

from __future__ import annotations

import dataclasses
import functools

import numpy as np
import pytest

from generators.reid_families import MARGIN
from generators.reid_hospital import ROLES, HospitalSite, Walk, hospital_site

pytestmark = pytest.mark.timeout(60)

SEEDS = (1, 2, 3)  # the bench's sites: 3 has three cameras (no lift lobby), 1 and 3 a fourth in the same scrubs


@functools.cache
def _site(seed: int) -> HospitalSite:
    return hospital_site(seed)


@pytest.fixture(params=SEEDS, ids=[f"site-{s}" for s in SEEDS])
def site(request: pytest.FixtureRequest) -> HospitalSite:
    return _site(request.param)


def _seen(site: HospitalSite, oid: int, camera: int, t0: float, t1: float, fraction: float = 0.5) -> bool:
    """Whether some sampled frame in [t0, t1] on `camera` shows at least `fraction` of `oid`."""
    for t in (t for t in site.times(camera) if t0 <= t <= t1):
        _, owner, whole = site._compose(camera, t)
        if oid in whole and (owner == oid).sum() >= fraction * whole[oid]:
            return True
    return False


def _busiest(site: HospitalSite, camera: int) -> float:
    def crossing(t: float) -> int:
        return sum(p.camera == camera and 0.25 <= (t - p.t0) / (p.t1 - p.t0) <= 0.75 for p in site.passes)

    return max(site.times(camera), key=crossing)


def test_same_seed_same_site_other_seed_other_site() -> None:
    a, b, other = hospital_site(2), _site(2), _site(1)
    assert a.family == "hospital" and a.passes == b.passes and a.duration == b.duration
    for fa, fb in zip(a.figures, b.figures, strict=True):
        assert (fa.name, fa.look_alike_of) == (fb.name, fb.look_alike_of)
        assert np.array_equal(fa.rgb, fb.rgb) and np.array_equal(fa.alpha, fb.alpha)
    for c in range(len(a.cameras)):
        t = _busiest(a, c)
        img_a, truth_a = a.render(c, t)
        img_b, truth_b = b.render(c, t)
        assert np.array_equal(img_a, img_b) and truth_a == truth_b and truth_a
    assert other.passes != a.passes
    assert not np.array_equal(other.cameras[0].background, a.cameras[0].background)


def test_cameras_are_places_of_their_own(site: HospitalSite) -> None:
    assert site.names == [r for r in ROLES if r != "lift" or site.seed % 3 != 0]
    n = len(site.names)
    assert len({c.gains for c in site.cameras}) == n and len({c.exposure for c in site.cameras}) == n
    assert len({look.quality for look in site.looks}) == n and len({look.noise for look in site.looks}) == n
    warm = site.cameras[site.names.index("waiting")].gains
    cool = site.cameras[site.names.index("corridor")].gains
    assert warm[0] > warm[2] and cool[2] > cool[0]  # tungsten and fluorescent


def test_the_corridor_shrinks_people_with_distance(site: HospitalSite) -> None:
    corridor = site.names.index("corridor")
    walks = [p for p in site.passes if isinstance(p, Walk) and p.camera == corridor]
    assert walks and len(walks) == sum(p.camera == corridor for p in site.passes) and all(p.along for p in walks)
    for p in walks:
        heights = [site.placement(p, t)[3] for t in np.linspace(p.t0, p.t1, 5)]
        assert heights == sorted(heights, reverse=p.d1 > p.d0) and max(heights) > 3 * min(heights)


def test_the_waiting_areas_lens_bends_the_frame(site: HospitalSite) -> None:
    waiting = site.names.index("waiting")
    lens = site.looks[waiting].lens
    assert lens is not None and all(site.looks[c].lens is None for c in range(len(site.names)) if c != waiting)
    rows, cols = lens
    h, w = rows.shape
    # a straight row of the scene is bowed in the frame; the middle magnified, the sides squeezed
    assert rows[h // 8, w // 2] > rows[h // 8, 2] + 10
    assert cols[h // 2, w // 2 + 20] - cols[h // 2, w // 2] < 20 < cols[h // 2, 22] - cols[h // 2, 2]
    assert (rows[0, 0], cols[0, 0]) == (0, 0) and (rows[-1, -1], cols[-1, -1]) == (h - 1, w - 1)


def test_boxes_lie_in_their_frames(site: HospitalSite) -> None:
    width, height = site.size
    for c in range(len(site.cameras)):
        for t in site.times(c)[::9]:
            img, truth = site.render(c, t)
            assert img.shape == (height, width, 3) and img.dtype == np.uint8
            for oid, (x0, y0, x1, y1) in truth:
                assert 0 <= x0 < x1 <= 1 and 0 <= y0 < y1 <= 1, (c, t, oid)
                assert any(p.oid == oid and p.camera == c and p.t0 <= t <= p.t1 for p in site.passes)


def test_truth_boxes_cover_the_pixels_drawn_for_their_object() -> None:
    """Taking an object out of the scene changes the drawn frame exactly inside its box (through
    the lens too), and the delivered frame there too, up to JPEG's 16 px blocks."""
    site = _site(1)
    width, height = site.size

    def bounds(changed: np.ndarray) -> tuple[float, float, float, float]:
        rows, cols = np.flatnonzero(changed.any(1)), np.flatnonzero(changed.any(0))
        return cols[0] / width, rows[0] / height, (cols[-1] + 1) / width, (rows[-1] + 1) / height

    for oid in site.travellers():
        crop = site.crop(oid)
        img, truth = site.render(crop.camera, crop.t)
        box = dict(truth)[oid]
        without = dataclasses.replace(site, passes=[p for p in site.passes if p.oid != oid], _cut={})
        img0, truth0 = without.render(crop.camera, crop.t)
        assert oid not in dict(truth0)
        drawn, drawn0 = site._compose(crop.camera, crop.t)[0], without._compose(crop.camera, crop.t)[0]
        assert bounds((drawn != drawn0).any(2)) == box
        got = bounds(np.abs(img.astype(int) - img0.astype(int)).sum(2) > 60)
        slack = (16 / width, 16 / height, 16 / width, 16 / height)
        assert all(abs(g - b) <= s for g, b, s in zip(got, box, slack, strict=True)), (oid, got, box)


def test_crops_are_cut_as_users_draw_them(site: HospitalSite) -> None:
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


def test_people_walk_the_layout_in_order_with_transit_gaps(site: HospitalSite) -> None:
    travellers = site.travellers()
    assert len(travellers) == 8
    for oid in travellers:
        passes = site.visits(oid)
        assert [p.t0 for p in passes] == sorted(p.t0 for p in passes)
        cams = [p.camera for i, p in enumerate(passes) if i == 0 or p.camera != passes[i - 1].camera]
        assert len(cams) == len(set(cams)) >= 2
        steps = {b - a for a, b in zip(cams, cams[1:], strict=False)}
        assert steps in ({1}, {-1}), (oid, cams)  # along the chain, one way, no camera skipped
        for a, b in zip(passes, passes[1:], strict=False):
            if a.camera != b.camera:
                assert b.t0 - a.t1 >= 2.0, (oid, a, b)
        for cam in set(cams):
            ps = [p for p in passes if p.camera == cam]
            assert _seen(site, oid, cam, ps[0].t0, ps[-1].t1), (oid, cam)
        # drawn facing the way it walks across a camera
        assert all(p.mirror == (p.x1 < p.x0) for p in passes if isinstance(p, Walk) and p.x0 != p.x1)


def test_staff_in_the_same_scrubs_and_strangers(site: HospitalSite) -> None:
    travellers = set(site.travellers())
    alone = [f for f in site.figures if f.oid not in travellers]
    assert 1 <= len(alone) <= 2
    for f in alone:
        (p,) = site.visits(f.oid)
        assert _seen(site, f.oid, p.camera, p.t0, p.t1), f.name
    alikes = [f for f in site.figures if f.look_alike_of is not None]
    assert {f.oid for f in alikes} >= {1, 2} and all(f.look_alike_of == 0 for f in alikes)
    staff = site.figures[0]
    mine, theirs = site.visits(1), site.visits(0)
    assert mine[0].camera != theirs[0].camera and mine[-1].camera != theirs[-1].camera
    for f in alikes:
        assert f.name.startswith("staff-")
        # the same scrubs: their mean colours are close; but they are drawn apart
        assert np.abs(f.rgb[f.alpha].mean(0) - staff.rgb[staff.alpha].mean(0)).max() < 45
        assert f.alpha.shape != staff.alpha.shape or not np.array_equal(f.rgb, staff.rgb)
        if f.oid not in travellers:  # a stranger in the same scrubs is never in view with staff 0
            (one,) = site.visits(f.oid)
            assert all(p.t1 < one.t0 or one.t1 < p.t0 for p in theirs if p.camera == one.camera)


def test_a_porter_pushes_a_patient(site: HospitalSite) -> None:
    porter, patient = site.visits(site.porter), site.visits(site.patient)
    assert site.figures[site.patient].name.split("-")[1] in ("wheelchair", "bed")
    assert [p.camera for p in porter] == [p.camera for p in patient]
    assert site.names[patient[0].camera] == "ward"  # from the ward, towards the lift
    for a, b in zip(patient, porter, strict=True):
        assert isinstance(a, Walk) and isinstance(b, Walk)
        assert (a.t0, a.t1) == (b.t0, b.t1)  # together
        if a.along:
            assert b.d0 > a.d0 and b.d1 > a.d1  # the patient ahead, nearer the camera
        else:
            assert a.mirror == b.mirror and (a.x0 > b.x0) == (a.x1 > a.x0)  # the patient ahead
            t = (a.t0 + a.t1) / 2
            pa, pb = site.placement(a, t), site.placement(b, t)
            assert min(abs(pa[0] - (pb[0] + pb[2])), abs(pb[0] - (pa[0] + pa[2]))) <= 2  # hands on the handles


def test_a_visitor_stops_at_the_desk(site: HospitalSite) -> None:
    waiting = site.names.index("waiting")
    passes = [p for p in site.visits(site.desk) if isinstance(p, Walk) and p.camera == waiting]
    assert len(passes) == 3 and site.desk in site.travellers()
    walk_in, stop, walk_on = passes
    assert stop.still and not walk_in.still and not walk_on.still
    assert walk_in.t1 == stop.t0 and stop.t1 == walk_on.t0 and stop.t1 - stop.t0 >= 4.0
    x, _, w, _ = site.placement(stop, stop.t0 + 1.0)
    assert abs(x + w / 2 - site.desk_x) <= 2  # its middle at the desk's
    assert site.placement(stop, stop.t0 + 1.0) == site.placement(stop, stop.t0 + 2.5)  # stands still
    # at the desk: its legs hidden, its head in view
    t = stop.t0 + 1.0 + (-(stop.t0 + 1.0)) % 0.5
    _, owner, whole = site._compose(waiting, t)
    assert 0.5 * whole[site.desk] <= (owner == site.desk).sum() < whole[site.desk]


def test_carts_doors_desks_and_people_hide_people_in_part(site: HospitalSite) -> None:
    by_people, by_fixtures, most = 0, 0, 0
    width, height = site.size
    for c in range(len(site.cameras)):
        for t in site.times(c)[::2]:
            _, owner, whole = site._compose(c, t)
            most = max(most, sum((owner == oid).sum() >= 0.5 * whole[oid] for oid in whole))
            if site.looks[c].lens is not None:  # sprites lie in the frame before the lens bends it
                continue
            for p in (p for p in site.passes if p.camera == c and p.t0 <= t <= p.t1):
                _, alpha, (x, y, w, h) = site.look(p, t)
                if x < 0 or y < 0 or x + w > width or y + h > height:  # cut by the frame's edge
                    continue
                region = owner[y : y + h, x : x + w]
                hidden = alpha & (region != p.oid)
                by_people += int((hidden & (region >= 0)).sum() > 0.05 * alpha.sum())
                by_fixtures += int((hidden & (region < 0)).sum() > 0.05 * alpha.sum())
    assert most >= 3  # groups and the porter's pair share the view
    assert by_people >= 3 and by_fixtures >= 3


def test_a_small_site_renders_every_planned_frame() -> None:
    small = hospital_site(6, size=(160, 90))
    assert small.names == ["corridor", "waiting", "ward"]
    frames = 0
    for c in range(len(small.cameras)):
        for t in small.times(c):
            img, truth = small.render(c, t)
            assert img.shape == (90, 160, 3) and img.dtype == np.uint8
            assert all(0 <= x0 < x1 <= 1 and 0 <= y0 < y1 <= 1 for _, (x0, y0, x1, y1) in truth)
            frames += 1
    assert frames == sum(int(small.end(c) * 2.0) for c in range(len(small.cameras)))
