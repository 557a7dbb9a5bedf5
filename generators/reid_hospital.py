"""Family "hospital": a lift lobby, a corridor, a waiting area and a ward entrance, made apart from
`parade`, `crowd`, `lobby`, `station` and `market` (nothing was tuned on it, nobody ran
re-identification on it while it was made) so figures on it are honest.

Only the frame is shared (`Camera`, `Figure`, `Pass`, `Site`: truth and crops are rendered as for
every family). Everything drawn here is this module's own, drawn with PIL shapes and numpy:

- the lift lobby is seen by an ordinary ceiling camera: brushed-steel lift doors under floor
  displays, a call panel, a bench, a linen cart in front of the far lane; daylight mixed with
  ceiling light;
- the corridor is seen from one end, looking along it: walls with handrails and doors, ceiling
  panels, a window at the far end; people walk along it and shrink with distance, a cart against a
  wall and a half-open door hide whoever is behind them; cool fluorescent light that flickers;
- the waiting area is seen through a wide-angle lens with barrel distortion (the whole frame,
  truth included, is bent): rows of chairs, a reception desk where a visitor stops, a window;
  warm tungsten light;
- the ward entrance is seen by a steep camera, almost top-down: people are foreshortened, the
  tops of heads and shoulders show; a drug trolley stands in front of the far lane (three-camera
  sites have no lift lobby);
- each camera has its own white balance, exposure, sensor noise and JPEG quality;
- staff wear scrubs, three of them of the SAME colour (look-alikes that differ in two or three of:
  the scrubs' pattern, a surgical cap, a lanyard, build, what they carry); a porter pushes a
  patient in a wheelchair or on a bed (two identities that move together, the patient ahead);
  visitors wear their own clothes, two of them walk side by side, one stops at the desk; people
  carry clipboards, tablets, bags or flowers that stay with them; one or two strangers cross one
  camera only (maybe a fourth in the same scrubs, never in view with the one it resembles).

The site's layout is a chain, lift lobby - corridor - waiting area - ward entrance: everyone walks
along a stretch of it, in either direction, each camera walked the way the layout says (the
corridor camera stands at the lift end), with transit times from the distance between cameras and
the walker's pace. Planning (`_plan`, numbers only) is apart from drawing (`hospital_site`); a plan
whose people are never seen whole on their first camera is drawn again from the next sub-seed.

    >>> site = hospital_site(1)
    >>> image, truth = site.render(0, 10.0)
    >>> crop = site.crop(site.travellers()[0])

Deterministic for a seed; seeds with `seed % 3 == 0` give three cameras (no lift lobby), others
four.
"""

from __future__ import annotations

import colorsys
import io
from dataclasses import dataclass, field, replace

import numpy as np
from PIL import Image, ImageDraw

from generators.reid_families import FRAME, Camera, Figure, Pass, Site

FAMILY = "hospital"
ROLES = ("lift", "corridor", "waiting", "ward")  # the layout's chain, in order
SCRUBS = ("plain", "pinstripe", "print", "piped")
CLOTHES = ("plain", "striped", "checked", "knit", "jacket", "hoodie")
STAFF_CARRY = ("none", "clipboard", "tablet")
VISITOR_CARRY = ("none", "bag", "handbag", "flowers", "backpack")
_BUILD = {"slight": 0.44, "medium": 0.52, "stocky": 0.62}  # body width, metres
_BEHIND = {"bag": 0.16, "backpack": 0.16, "handbag": 0.1}  # what sticks out behind the body (metres)
_AHEAD = {"clipboard": 0.2, "tablet": 0.2, "flowers": 0.24, "push": 0.26}  # ... and in front of it
_SEAT = {"wheelchair": 0.95, "bed": 2.05}  # a patient's length, metres
_D0 = 4.0  # corridor: the distance (metres) at which a person is drawn at scale 1
_STEEP = 0.45  # ward: how much a steep view shortens what stands upright

Colour = np.ndarray  # (3,) float32, 0..255


def _hsv(h: float, s: float, v: float) -> Colour:
    return np.array(colorsys.hsv_to_rgb(h % 1.0, s, v), dtype=np.float32) * 255


def _grid(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    return yy, xx


def _noise(i: np.ndarray, j: np.ndarray, salt: float) -> np.ndarray:
    """A fixed value in 0..1 per integer cell (i, j) for a salt."""
    v = np.sin(i * 127.1 + j * 311.7 + salt * 74.7) * 43758.5453
    return v - np.floor(v)


# --- plans (numbers only) ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Walk(Pass):
    """A pass of this family. `mirror` draws the object facing left (it walks right to left),
    `still` stands without bobbing (at the desk). On the corridor camera the object walks along
    it instead of across: from `d0` to `d1` metres away, `lateral` metres off the corridor's
    middle, and its scale changes with the distance (`scale` is the scale at `t0`)."""

    mirror: bool = False
    still: bool = False
    d0: float = 0.0
    d1: float = 0.0
    lateral: float = 0.0

    @property
    def along(self) -> bool:
        return self.d0 > 0


@dataclass(frozen=True)
class _Person:
    role: str  # "staff", "porter", "visitor", "patient"
    height: float  # metres (a patient's: the wheelchair's or bed's height with them on it)
    build: str
    c1: Colour  # the top
    c2: Colour  # its accent or pattern colour
    pattern: str
    period: float  # pattern period, metres
    legs: Colour
    shoes: Colour
    skin: Colour
    hair: Colour
    head: str  # "cap" (surgical), "bare", "bun", "hat"
    cap: Colour
    cap_print: bool
    lanyard: Colour | None
    carry: str  # "none", "clipboard", "tablet", "bag", "handbag", "flowers", "backpack", "push"
    bag: Colour
    seat: str = ""  # a patient's: "wheelchair" or "bed"
    blanket: Colour = field(default_factory=lambda: np.zeros(3, np.float32))


def _width_m(s: _Person) -> float:
    if s.seat:
        return _SEAT[s.seat]
    return _BUILD[s.build] + 0.08 + _BEHIND.get(s.carry, 0.0) + _AHEAD.get(s.carry, 0.0)


def _skin(rng: np.random.Generator) -> Colour:
    return _hsv(rng.uniform(0.03, 0.09), rng.uniform(0.25, 0.6), rng.uniform(0.3, 0.95))


def _staff(rng: np.random.Generator, scrubs: Colour) -> _Person:
    return _Person(
        role="staff",
        height=float(rng.uniform(1.58, 1.92)),
        build=str(rng.choice(list(_BUILD))),
        c1=scrubs,
        c2=np.clip(scrubs * 0.55 + 110, 0, 255).astype(np.float32),
        pattern=str(rng.choice(SCRUBS)),
        period=float(rng.uniform(0.05, 0.08)),
        legs=scrubs * 0.93,
        shoes=_hsv(rng.random(), rng.uniform(0.0, 0.3), rng.uniform(0.85, 0.98)),  # clogs, pale
        skin=_skin(rng),
        hair=_hsv(rng.uniform(0.03, 0.12), rng.uniform(0.1, 0.8), rng.uniform(0.05, 0.7)),
        head=str(rng.choice(["cap", "bare", "bun"])),
        cap=_hsv(rng.random(), rng.uniform(0.3, 0.7), rng.uniform(0.5, 0.9)),
        cap_print=bool(rng.random() < 0.5),
        lanyard=_hsv(rng.random(), 0.8, 0.8) if rng.random() < 0.6 else None,
        carry=str(rng.choice(STAFF_CARRY)),
        bag=_hsv(rng.random(), rng.uniform(0.3, 0.8), rng.uniform(0.3, 0.8)),
    )


def _visitor(rng: np.random.Generator, hue: float, carry: str | None = None) -> _Person:
    return _Person(
        role="visitor",
        height=float(rng.uniform(1.55, 1.95)),
        build=str(rng.choice(list(_BUILD))),
        c1=_hsv(hue, rng.uniform(0.35, 0.85), rng.uniform(0.35, 0.9)),
        c2=_hsv(hue + rng.choice([0.5, 0.2, -0.3]), rng.uniform(0.05, 0.6), rng.uniform(0.3, 0.95)),
        pattern=str(rng.choice(CLOTHES)),
        period=float(rng.uniform(0.07, 0.12)),
        legs=_hsv(rng.uniform(0.55, 0.7) if rng.random() < 0.5 else rng.random(), rng.uniform(0.05, 0.5), 0.35),
        shoes=_hsv(rng.random(), rng.uniform(0.0, 0.4), rng.uniform(0.1, 0.5)),
        skin=_skin(rng),
        hair=_hsv(rng.uniform(0.03, 0.12), rng.uniform(0.1, 0.8), rng.uniform(0.05, 0.85)),
        head=str(rng.choice(["bare", "bare", "hat", "bun"])),
        cap=_hsv(rng.random(), rng.uniform(0.3, 0.8), rng.uniform(0.3, 0.9)),
        cap_print=False,
        lanyard=None,
        carry=carry if carry is not None else str(rng.choice(VISITOR_CARRY)),
        bag=_hsv(rng.random(), rng.uniform(0.3, 0.9), rng.uniform(0.25, 0.85)),
    )


def _porter(rng: np.random.Generator) -> _Person:
    base = _visitor(rng, 0.6, "push")
    navy = _hsv(rng.uniform(0.58, 0.66), rng.uniform(0.5, 0.8), rng.uniform(0.25, 0.45))
    return replace(
        base,
        role="porter",
        c1=navy,
        c2=_hsv(rng.uniform(0.1, 0.16), 0.9, 0.95),  # a hi-vis band
        pattern="polo",
        legs=np.full(3, 45, np.float32),
        head="bare",
        lanyard=_hsv(rng.random(), 0.8, 0.8),
    )


def _patient(rng: np.random.Generator, seat: str) -> _Person:
    base = _visitor(rng, float(rng.random()), "none")
    return replace(
        base,
        role="patient",
        height=1.28 if seat == "wheelchair" else 1.0,
        c1=_hsv(rng.uniform(0.5, 0.62), rng.uniform(0.15, 0.4), rng.uniform(0.75, 0.92)),  # a gown
        c2=_hsv(rng.uniform(0.5, 0.7), 0.5, 0.5),
        pattern="gown",
        head="bare",
        seat=seat,
        blanket=_hsv(rng.random(), rng.uniform(0.3, 0.7), rng.uniform(0.45, 0.85)),
    )


@dataclass(frozen=True)
class _Lane:
    """Where people walk on a camera. Across: foot row (a fraction of the frame's height) and
    scale. Along the corridor: `foot` is the offset from its middle (metres), `scale` is 0."""

    foot: float
    scale: float


@dataclass(frozen=True)
class _Corridor:
    """The corridor camera's geometry: vanishing point (pixels), floor drop per unit of scale."""

    vx: float
    vy: float
    fy: float
    far: float = 16.0  # metres: where walkers appear and vanish at the end wall
    near: float = _D0 / 1.5  # ... and where they leave the frame below, half out of view

    def scale(self, d: float) -> float:
        return _D0 / d

    def foot(self, s: float) -> float:
        return self.vy + s * self.fy


@dataclass
class _Plan:
    roles: list[str]
    lanes: list[list[_Lane]]
    corridor: _Corridor
    specs: list[_Person]
    look_alike_of: list[int | None]
    passes: list[Walk]
    porter: int
    patient: int
    group: tuple[int, int]
    desk: int  # stops at the reception desk
    desk_x: float  # where the desk's middle is (pixels, before the lens bends it)


def _lanes(role: str, rng: np.random.Generator) -> list[_Lane]:
    def j() -> float:
        return float(rng.uniform(-0.01, 0.01))

    if role == "lift":
        return [_Lane(0.62 + j(), 0.64), _Lane(0.78 + j(), 0.8), _Lane(0.95, 0.96)]
    if role == "corridor":
        return [_Lane(-0.5, 0.0), _Lane(0.5, 0.0)]
    if role == "waiting":
        return [_Lane(0.6 + j(), 0.6), _Lane(0.75 + j(), 0.76), _Lane(0.92, 0.92)]
    return [_Lane(0.45 + j(), 1.0), _Lane(0.68 + j(), 1.04), _Lane(0.92, 1.08)]  # the ward, steep: all alike


class _Schedule:
    """Passes on each camera's lanes, one walker (or a porter and patient) on a lane at a time."""

    def __init__(self, rng: np.random.Generator, plan_lanes: list[list[_Lane]], roles: list[str], cor: _Corridor):
        self.rng, self.lanes, self.roles, self.cor = rng, plan_lanes, roles, cor
        self.size = FRAME
        self.busy: dict[tuple[int, int], list[tuple[float, float]]] = {}
        self.passes: list[Walk] = []

    def _free(self, cam: int, k: int, t0: float, t1: float) -> bool:
        return all(b + 0.5 < t0 or t1 < a - 0.5 for a, b in self.busy.get((cam, k), []))

    def walk(
        self,
        oids: list[tuple[int, float]],
        cam: int,
        t0: float,
        speed: float,
        direction: int,
        size: tuple[int, int],
        avoid: frozenset[int] | set[int] = frozenset(),
        only: frozenset[int] | None = None,
        dwell: float = 0.0,
    ) -> list[Walk]:
        """Walkers `oids` ((object, width in metres), the first ahead) across camera `cam` (or
        along it, for the corridor) from `t0`, or the first moment after it a lane is free; a
        lane in `avoid` only when no other is free. Direction +1 is left to right (across) or
        away from the camera (along the corridor)."""
        width, height = size
        px = height / 4.0
        total = sum(w for _, w in oids)
        t = t0
        while True:
            order = [int(i) for i in self.rng.permutation(len(self.lanes[cam]))]
            order.sort(key=lambda i: i in avoid)
            for k in order:
                if only is not None and k not in only:
                    continue
                ln = self.lanes[cam][k]
                if self.roles[cam] == "corridor":
                    a_d, b_d = (self.cor.near, self.cor.far) if direction > 0 else (self.cor.far, self.cor.near)
                    dur = abs(b_d - a_d) / speed
                    if not self._free(cam, k, t, t + dur):
                        continue
                    out, gap = [], 0.0
                    for oid, w in oids:  # the first ahead, the others behind it along the corridor
                        d0, d1 = max(a_d - direction * gap, 0.8), max(b_d - direction * gap, 0.8)
                        s0 = self.cor.scale(d0)
                        x0 = self.cor.vx + ln.foot * px * s0
                        out.append(
                            Walk(oid, cam, t, t + dur, x0, x0, self.cor.foot(s0), s0, d0=d0, d1=d1, lateral=ln.foot)
                        )
                        gap += w
                    self.busy.setdefault((cam, k), []).append((t, t + dur))
                    self.passes += out
                    return out
                span = total * px * ln.scale
                a, b = (-span - 6, width + 6) if direction > 0 else (width + 6, -span - 6)
                dur = abs(b - a) / (speed * px * ln.scale)
                if not self._free(cam, k, t, t + dur + dwell):
                    continue
                out, offset = [], 0.0  # walking right, the first's left edge is the group's right end
                for oid, w in oids:
                    ww = w * px * ln.scale
                    off = span - offset - ww if direction > 0 else offset
                    out.append(
                        Walk(oid, cam, t, t + dur, a + off, b + off, ln.foot * height, ln.scale, mirror=direction < 0)
                    )
                    offset += ww
                self.busy.setdefault((cam, k), []).append((t, t + dur + dwell))
                self.passes += out
                return out
            t += 0.5


def _plan(seed: int, attempt: int, size: tuple[int, int]) -> _Plan:
    rng = np.random.default_rng([seed, 0x405B, attempt])
    roles = [r for r in ROLES if r != "lift" or seed % 3 != 0]
    lanes = [_lanes(r, rng) for r in roles]
    width, height = size
    cor = _Corridor(vx=float(rng.uniform(0.44, 0.56)) * width, vy=0.36 * height, fy=0.64 * height)
    # across-camera directions that agree with the layout: walking on towards the ward is +1 or -1
    onward = {c: int(rng.choice([-1, 1])) for c in range(len(roles))}
    onward[roles.index("corridor")] = 1  # the corridor camera stands at the lift end: onward is away
    gaps = [float(rng.uniform(3.5, 9.0)) for _ in range(len(roles) - 1)]  # metres between cameras

    # Objects: 0-2 staff in the same scrubs (1 and 2 look-alikes of 0), 3 the porter, 4 the patient,
    # 5-6 two visitors walking side by side, 7 a visitor who stops at the desk, then one or two
    # strangers (the second maybe in the same scrubs too).
    scrubs = _hsv(
        float(rng.choice([0.47, 0.52, 0.58, 0.66, 0.88])), float(rng.uniform(0.35, 0.6)), float(rng.uniform(0.5, 0.7))
    )
    first = _staff(rng, scrubs)
    specs: list[_Person] = [first]
    alike: list[int | None] = [None]
    for _ in range(2):  # look-alikes: the same scrubs, two or three other details
        other = _staff(rng, scrubs)
        keys = [str(k) for k in rng.choice(["pattern", "head", "lanyard", "build", "carry"], 3, replace=False)]
        keys = keys[: int(rng.integers(2, 4))]
        twin = first
        for key in keys:
            value = getattr(other, key)
            if key == "pattern":
                value = str(rng.choice([p for p in SCRUBS if p != first.pattern]))
            elif key == "head":
                value = "cap" if first.head != "cap" else str(rng.choice(["bare", "bun"]))
            elif key == "lanyard":
                value = None if first.lanyard is not None else _hsv(rng.random(), 0.8, 0.8)
            elif key == "build":
                value = str(rng.choice([b for b in _BUILD if b != first.build]))
            elif key == "carry":
                value = str(rng.choice([c for c in STAFF_CARRY if c != first.carry]))
            twin = replace(twin, **{key: value})
        specs.append(replace(twin, height=float(np.clip(first.height + rng.uniform(-0.06, 0.06), 1.55, 1.95))))
        alike.append(0)
    seat = str(rng.choice(["wheelchair", "bed"]))
    specs += [_porter(rng), _patient(rng, seat)]
    alike += [None, None]
    hue0 = float(rng.random())
    for k in range(3):
        specs.append(_visitor(rng, hue0 + 0.31 * k))
        alike.append(None)
    specs.append(_visitor(rng, hue0 + 0.5))
    alike.append(None)
    if rng.random() < 0.6:
        specs.append(replace(_staff(rng, scrubs), pattern=str(rng.choice([p for p in SCRUBS if p != first.pattern]))))
        alike.append(0)
    porter, patient, group, desk = 3, 4, (5, 6), 7

    n = len(roles)
    waiting = roles.index("waiting")

    def route(forward: bool) -> list[int]:
        """A stretch of the chain, through the corridor and the waiting area, maybe the lift lobby
        or the ward at its ends."""
        a = int(rng.integers(0, max(1, n - 2)))
        b = int(rng.integers(max(a + 1, n - 2), n))
        stretch = list(range(a, b + 1))
        return stretch if forward else stretch[::-1]

    plans: list[tuple[list[int], list[int], float, float]] = []  # (oids, cameras, start, pace)
    dirs = [bool(rng.random() < 0.5)]
    dirs.append(not dirs[0])  # 1 walks the other way from 0
    for k in (0, 1, 2):
        fwd = dirs[k] if k < 2 else bool(rng.random() < 0.5)
        stretch = route(fwd)
        if k == 1:  # the look-alike starts and ends elsewhere than 0
            while stretch[0] == plans[0][1][0] or stretch[-1] == plans[0][1][-1]:
                stretch = route(fwd)
        plans.append(([k], stretch, float(rng.uniform(1.0, 18.0)), float(rng.uniform(1.15, 1.5))))
    # the patient, from the ward (where nothing comes between them) towards the lift
    plans.append(
        (
            [patient, porter],
            list(range(int(rng.integers(0, n - 2)), n))[::-1],
            float(rng.uniform(2.0, 12.0)),
            float(rng.uniform(0.85, 1.05)),
        )
    )
    plans.append(
        ([group[0]], route(bool(rng.random() < 0.5)), float(rng.uniform(1.0, 14.0)), float(rng.uniform(1.0, 1.3)))
    )
    plans.append(
        (
            [desk],
            route(bool(rng.random() < 0.5)),
            float(rng.uniform(1.0, 16.0)),
            float(rng.uniform(1.1, 1.4)),
        )
    )
    desk_x = float(rng.uniform(0.32, 0.68)) * width
    sched = _Schedule(rng, lanes, roles, cor)
    for oids, stretch, t_start, pace in plans:
        fwd = stretch[-1] > stretch[0]
        t = t_start
        walkers = [(oid, _width_m(specs[oid])) for oid in oids]
        if oids[0] == patient:  # the porter pushes from behind: the patient ahead, the porter's hands at its back
            walkers = [(patient, _width_m(specs[patient])), (porter, _width_m(specs[porter]))]
        for step, cam in enumerate(stretch):
            if step:
                gap = gaps[min(cam, stretch[step - 1])]
                t += gap / pace + float(rng.uniform(0.3, 1.2))
            d = onward[cam] if fwd else -onward[cam]
            if oids[0] == desk and cam == waiting:  # to the desk on the far lane, a while there, and on
                dwell = float(rng.uniform(4.0, 8.0))
                (p,) = sched.walk(walkers, cam, t, pace, d, size, only=frozenset({0}), dwell=dwell)
                xs = desk_x - _width_m(specs[desk]) * height / 4.0 * p.scale / 2  # its middle at the desk's
                ts = p.t0 + (xs - p.x0) / (p.x1 - p.x0) * (p.t1 - p.t0)
                sched.passes[-1] = replace(p, t1=ts, x1=xs)
                sched.passes.append(replace(p, t0=ts, t1=ts + dwell, x0=xs, x1=xs, still=True))
                sched.passes.append(replace(p, t0=ts + dwell, t1=p.t1 + dwell, x0=xs))
                t = p.t1 + dwell
                continue
            out = sched.walk(walkers, cam, t, pace * float(rng.uniform(0.98, 1.02)), d, size)
            if oids[0] == group[0]:  # the second of the pair beside the first, on another lane
                lane = next(i for i, ln in enumerate(lanes[cam]) if _same_lane(ln, out[0], roles[cam]))
                (q,) = sched.walk(
                    [(group[1], _width_m(specs[group[1]]))], cam, out[0].t0 + float(rng.uniform(0.0, 0.4)),
                    pace * float(rng.uniform(0.98, 1.02)), d, size, avoid={lane},
                )  # fmt: skip
                t = max(out[0].t1, q.t1)  # the pair goes on together
                continue
            t = out[0].t1
    known_end = max(p.t1 for p in sched.passes)

    # strangers: one camera each; a look-alike where its original walks, at another time
    for k in range(8, len(specs)):
        src = alike[k]
        if src is not None:
            theirs = [p for p in sched.passes if p.oid == src]
            cam = theirs[int(rng.integers(len(theirs)))].camera
            t0 = max(p.t1 for p in theirs if p.camera == cam) + float(rng.uniform(3, 8))
        else:
            cam = int(rng.integers(n))
            t0 = float(rng.uniform(3.0, max(known_end - 12, 4.0)))
        sched.walk([(k, _width_m(specs[k]))], cam, t0, float(rng.uniform(1.0, 1.4)), int(rng.choice([-1, 1])), size)
    passes = sorted(sched.passes, key=lambda p: (p.oid, p.t0))
    return _Plan(roles, lanes, cor, specs, alike, passes, porter, patient, group, desk, desk_x)


def _same_lane(ln: _Lane, p: Walk, role: str) -> bool:
    return ln.foot == p.lateral if role == "corridor" else ln.scale == p.scale


# --- people ---------------------------------------------------------------------------------------------

# labels of a cut-out's parts
_BAG, _LEGS, _SHOES, _TOP, _SLEEVE, _SKIN, _HAIR, _CAP, _LANYARD, _BOARD, _PAPER = range(1, 12)
_DARK, _METAL, _BLANKET, _WHITE, _GREEN, _BLOSSOM, _BADGE = range(12, 19)


def _cloth(kind: str, yy: np.ndarray, xx: np.ndarray, c1: Colour, c2: Colour, p: float) -> np.ndarray:
    """An (h, w, 3) texture for a top; (yy, xx) in pixels from the collar's middle, `p` the period."""
    p = max(p, 2.0)
    out = np.broadcast_to(c1, yy.shape + (3,)).astype(np.float32).copy()
    if kind in ("plain", "polo"):  # a V-neck (scrubs, plain) or a collar and a hi-vis band (the porter)
        if kind == "polo":
            out[(yy > 2.2 * p) & (yy < 2.9 * p)] = c2
            out[(yy < 0.35 * p) & (np.abs(xx) < 1.2 * p)] = c1 * 0.75
        else:
            out[(np.abs(np.abs(xx) - (1.4 * p - yy)) < 0.18 * p) & (yy < 1.4 * p)] = c1 * 0.7
        return out
    if kind == "pinstripe":  # fine vertical stripes, a shade lighter
        out[(xx % p) < max(0.7, 0.18 * p)] = c1 * 0.6 + c2 * 0.4
    elif kind == "print":  # small motifs scattered on a grid
        i, j = np.floor(xx / p), np.floor(yy / p)
        cx, cy = (i + 0.5) * p, (j + 0.5 + 0.3 * (i % 2)) * p
        out[np.hypot(xx - cx, yy - cy) < 0.24 * p] = c2
    elif kind == "piped":  # contrast piping round the V-neck, a chest pocket and the hem
        out[(np.abs(np.abs(xx) - (1.4 * p - yy)) < 0.22 * p) & (yy < 1.4 * p)] = c2
        pocket = (xx > -2.6 * p) & (xx < -1.0 * p) & (np.abs(yy - 2.4 * p) < 0.16 * p)
        out[pocket] = c2
    elif kind == "striped":
        out[(yy % p) < 0.45 * p] = c2
    elif kind == "checked":  # tartan-ish: two sets of bands crossing
        a = ((xx % (2 * p)) < 0.7 * p).astype(np.float32)
        b = ((yy % (2 * p)) < 0.7 * p).astype(np.float32)
        out = c1 * (1 - 0.5 * (a + b))[..., None] + c2 * (0.5 * (a + b))[..., None]
    elif kind == "knit":  # cable-knit: vertical bands of little chevrons
        band = (xx % (1.2 * p)) < 0.6 * p
        chevron = ((yy + np.abs((xx % (0.6 * p)) - 0.3 * p)) % (0.5 * p)) < 0.2 * p
        out *= (0.8 + 0.2 * (band & chevron))[..., None]
    elif kind == "jacket":  # an open jacket over a shirt of the second colour
        out[np.abs(xx) < 0.9 * p] = c2
        out[np.abs(np.abs(xx) - 0.9 * p) < 0.2 * p] = c1 * 0.6
    elif kind == "hoodie":  # a kangaroo pocket and the hood's strings
        out[(yy > 3.2 * p) & (yy < 4.6 * p) & (np.abs(xx) < 1.6 * p)] = c1 * 0.8
        out[(np.abs(np.abs(xx) - 0.5 * p) < 0.12 * p) & (yy < 1.8 * p)] = c2
    elif kind == "gown":  # a hospital gown: a tiny diamond print
        d = (np.abs((xx % p) - p / 2) + np.abs((yy % p) - p / 2)) < 0.22 * p
        out[d] = c2
    else:
        raise ValueError(f"unknown pattern {kind!r}")
    return out


def _colours(s: _Person) -> dict[int, Colour]:
    grey = np.full(3, 1, np.float32)
    return {
        _BAG: s.bag,
        _LEGS: s.legs,
        _SHOES: s.shoes,
        _SKIN: s.skin,
        _HAIR: s.hair,
        _CAP: s.cap,
        _LANYARD: s.lanyard if s.lanyard is not None else grey * 60,
        _BOARD: np.array([150, 105, 60], np.float32) if s.carry == "clipboard" else grey * 35,
        _PAPER: grey * 240 if s.carry == "clipboard" else np.array([90, 140, 200], np.float32),
        _DARK: grey * 30,
        _METAL: grey * 165,
        _BLANKET: s.blanket,
        _WHITE: grey * 236,
        _GREEN: np.array([60, 140, 50], np.float32),
        _BLOSSOM: _hsv(0.95, 0.6, 0.95),
        _BADGE: grey * 245,
    }


def _paint(s: _Person, labels: np.ndarray, px: float, collar: tuple[float, float]) -> np.ndarray:
    """Colours for a cut-out's labels: the top's pattern, measured from `collar` (y, x)."""
    hh, ww = labels.shape
    yy, xx = _grid(hh, ww)
    rgb = np.zeros((hh, ww, 3), np.float32)
    for v, colour in _colours(s).items():
        rgb[labels == v] = colour
    top = _cloth(s.pattern, yy - collar[0], xx - collar[1], s.c1, s.c2, s.period * px)
    rgb[labels == _TOP] = top[labels == _TOP]
    rgb[labels == _SLEEVE] = top[labels == _SLEEVE] * 0.85
    if s.head == "cap" and s.cap_print:  # a printed scrub cap
        dots = ((xx % 4) < 1.5) & ((yy % 4) < 1.5) & (labels == _CAP)
        rgb[dots] = 245
    shade = 0.86 + 0.14 * np.cos(np.clip((xx - collar[1]) / max(ww / 2, 1), -1, 1) * np.pi / 2)
    rgb[labels == _TOP] *= shade[labels == _TOP][..., None]
    return np.clip(rgb, 0, 255)


def _draw_walker(s: _Person, px: float) -> tuple[np.ndarray, tuple[float, float]]:
    """A standing person's labels at scale 1, facing right, and where its collar is (y, x)."""
    hh = max(14, int(round(s.height * px)))
    ww = max(6, int(round(_width_m(s) * px)))
    bw = _BUILD[s.build] * px
    cx = (_BEHIND.get(s.carry, 0.0) + 0.04) * px + bw / 2
    half = bw / 2 * 0.85
    shoulder, hip, feet = 0.185 * hh, 0.52 * hh, hh - 1
    head_r, head_y = 0.062 * hh, 0.075 * hh
    lab = Image.new("L", (ww, hh), 0)
    d = ImageDraw.Draw(lab)
    lw = max(1, int(0.025 * px))
    if s.carry == "backpack":
        d.rounded_rectangle(
            (cx - half - 0.16 * px, shoulder + 0.03 * px, cx - half + 0.06 * px, shoulder + 0.45 * px),
            max(1, int(0.05 * px)),
            fill=_BAG,
        )
    stride = 0.12 * hh
    leg = max(1.5, (0.075 if s.build == "stocky" else 0.058) * px)
    for sgn in (-1, 1):
        hx, fx = cx + sgn * 0.3 * half, cx + sgn * stride / 2
        d.polygon(
            [(hx - leg, hip - 0.03 * hh), (hx + leg, hip - 0.03 * hh), (fx + leg * 0.8, feet - 0.035 * hh),
             (fx - leg * 0.8, feet - 0.035 * hh)],
            fill=_LEGS,
        )  # fmt: skip
        d.ellipse((fx - leg * 1.1, feet - 0.045 * hh, fx + leg * 2.1, feet), fill=_SHOES)
    wide = 1.1 if s.build == "stocky" else 1.0
    d.polygon(
        [(cx - half, shoulder + 0.04 * px), (cx - half * 0.55, shoulder - 0.015 * px),
         (cx + half * 0.55, shoulder - 0.015 * px), (cx + half, shoulder + 0.04 * px),
         (cx + half * wide, hip), (cx - half * wide, hip)],
        fill=_TOP,
    )  # fmt: skip
    arm = max(2, int(0.08 * px))
    back_hand = (cx - half * 0.6, 0.5 * hh)
    front_hand = (cx + half + 0.08 * px, 0.47 * hh)
    if s.carry in ("clipboard", "tablet"):
        front_hand = (cx + half + 0.1 * px, 0.36 * hh)
    elif s.carry == "push":  # both hands forward to the handles at the sprite's front edge
        front_hand = (ww - 0.03 * px, 0.95 * px if hh > px else 0.5 * hh)
        back_hand = (ww - 0.08 * px, 0.95 * px + 0.03 * px)
    elif s.carry == "flowers":
        front_hand = (cx + half + 0.12 * px, 0.42 * hh)
    elif s.carry == "handbag":
        back_hand = (cx - half - 0.04 * px, 0.5 * hh)
    for (hx, hy), sx in ((back_hand, cx - half * 0.75), (front_hand, cx + half * 0.75)):
        d.line((sx, shoulder + 0.05 * px, hx, hy), fill=_SLEEVE, width=arm)
        d.ellipse((hx - 0.04 * px, hy - 0.04 * px, hx + 0.04 * px, hy + 0.045 * px), fill=_SKIN)
    if s.carry in ("clipboard", "tablet"):  # held out at the chest, tilted towards the face
        hx, hy = front_hand
        t = 0.025 * px
        poly = [(hx - 0.02 * px, hy - 0.22 * px), (hx + 0.08 * px, hy - 0.2 * px), (hx + 0.11 * px, hy + 0.08 * px),
                (hx + 0.01 * px, hy + 0.06 * px)]  # fmt: skip
        d.polygon(poly, fill=_BOARD)
        d.polygon(
            [(x + t, y + t * 0.5) for x, y in poly[:2]] + [(x - t * 0.3, y - t) for x, y in poly[2:]], fill=_PAPER
        )
    elif s.carry == "flowers":
        hx, hy = front_hand
        for g in range(4):
            d.line((hx, hy, hx + 0.04 * px * (g - 1.5), hy - 0.22 * px), fill=_GREEN, width=max(1, lw))
        for g in range(4):
            bx, by = hx + 0.045 * px * (g - 1.5), hy - 0.24 * px - 0.03 * px * (g % 2)
            d.ellipse((bx - 0.045 * px, by - 0.045 * px, bx + 0.045 * px, by + 0.045 * px), fill=_BLOSSOM)
    elif s.carry == "handbag":
        hx, hy = back_hand
        d.line((hx, hy, hx - 0.05 * px, hy + 0.08 * px), fill=_BAG, width=max(1, lw))
        d.rounded_rectangle((hx - 0.12 * px, hy + 0.07 * px, hx + 0.06 * px, hy + 0.26 * px), 2, fill=_BAG)
    elif s.carry == "bag":  # over the shoulder, at the hip behind
        d.line((cx + half * 0.5, shoulder, cx - half - 0.05 * px, hip - 0.06 * hh), fill=_BAG, width=max(1, lw))
        d.rectangle((cx - half - 0.16 * px, hip - 0.07 * hh, cx - half + 0.1 * px, hip + 0.1 * hh), fill=_BAG)
    d.rectangle((cx - 0.04 * px, head_y + head_r * 0.5, cx + 0.04 * px, shoulder + 1), fill=_SKIN)  # neck
    d.ellipse((cx - head_r * 0.9, head_y - head_r, cx + head_r * 0.95, head_y + head_r), fill=_SKIN)
    if s.head == "cap":  # a surgical cap over the hair, tied at the back
        d.chord(
            (cx - head_r * 1.0, head_y - head_r * 1.15, cx + head_r * 0.9, head_y + head_r * 0.6), 150, 370, fill=_CAP
        )
        d.line((cx - head_r, head_y + head_r * 0.1, cx - head_r * 1.5, head_y + head_r * 0.6), fill=_CAP, width=lw)
    elif s.head == "hat":  # a woolly hat with a bobble
        d.chord((cx - head_r, head_y - head_r * 1.3, cx + head_r, head_y + head_r * 0.5), 180, 360, fill=_CAP)
        d.ellipse((cx - head_r * 0.35, head_y - head_r * 1.65, cx + head_r * 0.35, head_y - head_r * 1.0), fill=_CAP)
    else:
        d.chord(
            (cx - head_r * 0.95, head_y - head_r * 1.1, cx + head_r * 0.85, head_y + head_r * 0.5), 150, 360, fill=_HAIR
        )
        d.rectangle((cx - head_r * 0.95, head_y - head_r * 0.2, cx - head_r * 0.35, head_y + head_r * 0.6), fill=_HAIR)
        if s.head == "bun":
            d.ellipse((cx - head_r * 1.6, head_y - head_r * 0.9, cx - head_r * 0.7, head_y), fill=_HAIR)
    if s.lanyard is not None:  # a strap down the chest, a badge at its end
        d.line((cx + half * 0.2, shoulder, cx + half * 0.45, 0.33 * hh), fill=_LANYARD, width=max(1, lw))
        d.rectangle((cx + half * 0.3, 0.33 * hh, cx + half * 0.3 + 0.06 * px, 0.33 * hh + 0.085 * px), fill=_BADGE)
    return np.asarray(lab).copy(), (shoulder, cx)


def _draw_patient(s: _Person, px: float) -> tuple[np.ndarray, tuple[float, float]]:
    """A patient's labels at scale 1, facing right: in a wheelchair, or lying on a bed (head at the
    back, where the porter pushes); and where the gown's collar is."""
    hh = max(10, int(round(s.height * px)))
    ww = max(6, int(round(_SEAT[s.seat] * px)))
    lab = Image.new("L", (ww, hh), 0)
    d = ImageDraw.Draw(lab)
    lw = max(1, int(0.03 * px))
    feet = hh - 1
    head_r = 0.11 * px
    if s.seat == "wheelchair":
        seat_y, back_x = feet - 0.5 * px, 0.1 * px
        d.line((back_x, feet - 0.95 * px, back_x + 0.06 * px, seat_y), fill=_METAL, width=lw)  # backrest
        d.line((0.02 * px, feet - 0.95 * px, back_x, feet - 0.95 * px), fill=_DARK, width=lw * 2)  # handles
        # the person: torso upright, thighs forward, shins down to the footrest
        tx = back_x + 0.2 * px
        chest = seat_y - 0.52 * px
        d.polygon([(back_x + 0.06 * px, seat_y), (back_x + 0.08 * px, chest), (tx + 0.14 * px, chest),
                   (tx + 0.16 * px, seat_y)], fill=_TOP)  # fmt: skip
        hy = seat_y - 0.52 * px - head_r * 0.9
        d.rectangle((tx - 0.03 * px, hy, tx + 0.03 * px, seat_y - 0.48 * px), fill=_SKIN)
        d.ellipse((tx - head_r, hy - head_r, tx + head_r, hy + head_r), fill=_SKIN)
        d.chord((tx - head_r * 1.05, hy - head_r * 1.1, tx + head_r * 0.9, hy + head_r * 0.4), 150, 360, fill=_HAIR)
        d.line((tx, seat_y - 0.45 * px, tx + 0.3 * px, seat_y - 0.2 * px), fill=_SLEEVE, width=max(2, int(0.08 * px)))
        knee = (back_x + 0.62 * px, seat_y - 0.06 * px)
        shin = knee[0] - 0.12 * px
        lap = [(back_x + 0.08 * px, seat_y - 0.16 * px), knee, (knee[0], feet - 0.12 * px), (shin, feet - 0.12 * px),
               (shin, seat_y + 0.06 * px), (back_x + 0.08 * px, seat_y + 0.04 * px)]  # fmt: skip
        d.polygon(lap, fill=_BLANKET)
        d.rectangle((knee[0] - 0.12 * px, feet - 0.12 * px, knee[0] + 0.1 * px, feet - 0.06 * px), fill=_SHOES)
        d.line((knee[0] - 0.1 * px, feet - 0.06 * px, knee[0] + 0.12 * px, feet - 0.06 * px), fill=_METAL, width=lw)
        r = 0.3 * px  # the big wheel, a caster in front
        cxw = back_x + 0.28 * px
        d.ellipse((cxw - r, feet - 2 * r, cxw + r, feet), outline=_DARK, width=max(1, int(0.04 * px)))
        d.line((cxw - r * 0.7, feet - r, cxw + r * 0.7, feet - r), fill=_METAL, width=1)
        d.line((cxw, feet - 1.7 * r, cxw, feet - 0.3 * r), fill=_METAL, width=1)
        d.ellipse((knee[0] - 0.06 * px, feet - 0.1 * px, knee[0] + 0.04 * px, feet), fill=_DARK)
        return np.asarray(lab).copy(), (seat_y - 0.52 * px, tx)
    mattress = feet - 0.62 * px
    d.rectangle((0.02 * px, feet - 1.0 * px, 0.08 * px, feet - 0.15 * px), fill=_METAL)  # the head end, pushed
    d.rectangle((ww - 0.08 * px, feet - 0.8 * px, ww - 0.02 * px, feet - 0.15 * px), fill=_METAL)
    d.rectangle((0.04 * px, feet - 0.3 * px, ww - 0.04 * px, feet - 0.22 * px), fill=_METAL)  # the frame
    for wx in (0.2 * px, ww - 0.2 * px):
        d.line((wx, feet - 0.22 * px, wx, feet - 0.1 * px), fill=_METAL, width=lw)
        d.ellipse((wx - 0.06 * px, feet - 0.12 * px, wx + 0.06 * px, feet), fill=_DARK)
    d.rectangle((0.08 * px, mattress, ww - 0.08 * px, feet - 0.3 * px), fill=_WHITE)  # mattress and sheet
    d.rounded_rectangle((0.1 * px, mattress - 0.14 * px, 0.42 * px, mattress + 0.02 * px), 3, fill=_WHITE)  # pillow
    hx, hy = 0.28 * px, mattress - 0.14 * px - head_r * 0.7
    d.ellipse((hx - head_r, hy - head_r, hx + head_r, hy + head_r), fill=_SKIN)
    d.chord((hx - head_r * 1.1, hy - head_r * 1.0, hx + head_r * 0.5, hy + head_r * 1.0), 90, 270, fill=_HAIR)
    d.rectangle((hx + 0.1 * px, mattress - 0.14 * px, hx + 0.4 * px, mattress), fill=_TOP)  # the gown's shoulders
    m = mattress
    body = [(hx + 0.3 * px, m - 0.22 * px), (ww - 0.5 * px, m - 0.2 * px), (ww - 0.22 * px, m - 0.26 * px),
            (ww - 0.1 * px, m + 0.04 * px), (hx + 0.3 * px, m + 0.04 * px)]  # fmt: skip
    d.polygon(body, fill=_BLANKET)  # the blanket over the body and feet
    d.line((0.5 * px, mattress - 0.04 * px, ww - 0.3 * px, mattress - 0.04 * px), fill=_METAL, width=lw)  # side rail
    return np.asarray(lab).copy(), (mattress - 0.14 * px, hx + 0.2 * px)


def _draw_person(s: _Person, px: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A person's cut-out at scale 1 (`px` pixels per metre), facing right: RGB, silhouette and
    labels."""
    if s.seat:
        labels, collar = _draw_patient(s, px)
    else:
        labels, collar = _draw_walker(s, px)
    return _paint(s, labels, px, collar), labels > 0, labels


def _draw_steep(s: _Person, px: float) -> tuple[np.ndarray, np.ndarray]:
    """The person seen from steeply above, facing right: what stands upright shortened to
    `_STEEP` of its height, and the tops of the head and shoulders (or a bed's blanket, a
    wheelchair's seat) seen from above over it."""
    _, _, labels = _draw_person(s, px)
    hh, ww = labels.shape
    sh = max(6, int(round(hh * _STEEP)))
    rows = np.minimum((np.arange(sh) + 0.5) * hh / sh, hh - 1).astype(int)
    body = labels[rows]
    depth_m = 0.85 if s.seat == "bed" else (0.55 if s.seat else _BUILD[s.build] * 0.9)
    band = max(4, int(round(depth_m * px * 0.8)))
    lab = Image.new("L", (ww, band + sh), 0)
    lab.paste(Image.fromarray(body), (0, band))
    d = ImageDraw.Draw(lab)
    if s.seat == "bed":  # the sheet, the blanket, the pillow and the head, from above
        d.rectangle((0.08 * px, band * 0.25, ww - 0.08 * px, band + 0.08 * sh), fill=_WHITE)
        d.rectangle((0.5 * px, band * 0.32, ww - 0.15 * px, band + 0.02 * sh), fill=_BLANKET)
        d.ellipse((0.1 * px, band * 0.35, 0.45 * px, band * 0.95), fill=_WHITE)
        d.ellipse((0.18 * px, band * 0.45, 0.4 * px, band * 0.85), fill=_HAIR)
        d.rectangle((0.4 * px, band * 0.4, 0.55 * px, band * 0.9), fill=_TOP)
    elif s.seat:  # a wheelchair: the blanket on the lap, the shoulders and the head from above
        d.rectangle((0.12 * px, band * 0.35, 0.75 * px, band + 0.1 * sh), fill=_BLANKET)
        d.ellipse((0.15 * px, band * 0.15, 0.45 * px, band * 1.05), fill=_TOP)
        d.ellipse((0.22 * px, band * 0.35, 0.38 * px, band * 0.85), fill=_HAIR)
    else:
        cx = (_BEHIND.get(s.carry, 0.0) + 0.04) * px + _BUILD[s.build] * px / 2
        half = _BUILD[s.build] * px / 2
        d.ellipse((cx - half * 0.55, band * 0.1, cx + half * 0.55, band + 0.12 * sh), fill=_TOP)  # shoulders
        r = 0.1 * px
        top = _CAP if s.head in ("cap", "hat") else _HAIR
        d.ellipse((cx - r, band * 0.45 - r * 0.8, cx + r, band * 0.45 + r * 1.1), fill=top)
        if s.carry == "clipboard":  # the board in front, seen flat
            d.rectangle((cx + half * 0.6, band * 0.4, cx + half * 0.6 + 0.15 * px, band + 0.05 * sh), fill=_PAPER)
        elif s.carry in ("bag", "backpack"):
            d.rectangle((cx - half * 0.95, band * 0.35, cx - half * 0.55, band * 0.95), fill=_BAG)
    labels2 = np.asarray(lab).copy()
    return _paint(s, labels2, px, (band * 0.5, ww / 2)), labels2 > 0


# --- places ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class _Fixture:
    """Something standing in the scene: hides objects smaller (farther) than `scale`."""

    mask: np.ndarray
    rgb: np.ndarray
    scale: float


def _box(
    size: tuple[int, int], x0: float, x1: float, foot: float, tall: float, body: Colour, top: Colour
) -> tuple[np.ndarray, np.ndarray]:
    """A cart or a desk: a front of `tall` pixels standing on row `foot` over [x0, x1], a lighter
    top, a dark kick strip; RGB and mask over the frame."""
    w, h = size
    img = Image.new("RGB", (w, h), (0, 0, 0))
    lab = Image.new("L", (w, h), 0)
    d, m = ImageDraw.Draw(img), ImageDraw.Draw(lab)
    lid = max(2.0, 0.12 * tall)
    d.rectangle((x0, foot - tall, x1, foot), fill=tuple(int(c) for c in body), outline=(50, 50, 55))
    d.rectangle((x0 - 2, foot - tall - lid, x1 + 2, foot - tall), fill=tuple(int(c) for c in top))
    d.rectangle((x0 + 2, foot - 0.08 * tall, x1 - 2, foot), fill=(40, 40, 45))
    for k in range(1, 3):  # drawers or panels
        y = foot - tall + k * tall / 3
        d.line((x0 + 2, y, x1 - 2, y), fill=(60, 60, 70), width=1)
    m.rectangle((x0 - 2, foot - tall - lid, x1 + 2, foot), fill=1)
    return np.asarray(img, dtype=np.float32).copy(), np.asarray(lab) > 0


def _floor(yy: np.ndarray, xx: np.ndarray, w: int, vy: float, base: Colour, tile: float, salt: float) -> np.ndarray:
    """Speckled vinyl in big tiles, in perspective towards row `vy` (above the frame or in it)."""
    depth = np.maximum(yy - vy, 1.0)
    u, v = (xx - w / 2) / depth * tile, 40.0 * tile / depth
    out = base * (0.9 + 0.12 * _noise(np.floor(xx / 2), np.floor(yy / 2), salt))[..., None]
    out[((u % 1) < 0.025) | ((v % 1) < 0.03)] *= 0.8
    return out


def _lift(
    size: tuple[int, int], rng: np.random.Generator, lanes: list[_Lane]
) -> tuple[np.ndarray, list[_Fixture], np.ndarray]:
    """A lift lobby from a ceiling camera: steel doors in a painted wall, floor displays, a call
    panel, a bench; a linen cart in front of the far lane; a window's daylight from one side."""
    w, h = size
    yy, xx = _grid(h, w)
    base = int(0.52 * h)
    paint = _hsv(rng.uniform(0.05, 0.6), rng.uniform(0.05, 0.25), rng.uniform(0.75, 0.9))
    img = np.broadcast_to(paint, (h, w, 3)).astype(np.float32).copy()
    floor = _floor(
        yy, xx, w, -0.3 * h, _hsv(rng.uniform(0.05, 0.6), rng.uniform(0.1, 0.3), rng.uniform(0.5, 0.7)), 6, 1.0
    )
    img[yy >= base] = floor[yy >= base]
    img[base - 3 : base] = (90, 90, 95)  # skirting
    n = int(rng.integers(2, 4))
    dw = 0.16 * w
    xs = np.linspace(0.08 * w, 0.92 * w - dw, n) + rng.uniform(-0.03, 0.03, n) * w
    for x0 in xs:
        door = (xx >= x0) & (xx < x0 + dw) & (yy >= 0.12 * h) & (yy < base)
        steel = 150 + 40 * _noise(np.floor(xx / 1.0), np.zeros_like(xx), 3.0) * 0.5
        img[door] = steel[door][..., None] * np.array([0.97, 1.0, 1.03], np.float32)
        img[door & (np.abs(xx - x0 - dw / 2) < 1.0)] = 70  # the doors' seam
        frame = (xx >= x0 - 4) & (xx < x0 + dw + 4) & (yy >= 0.12 * h - 4) & (yy < base) & ~door
        img[frame] = (120, 120, 125)
        disp = (np.abs(xx - x0 - dw / 2) < 0.035 * w) & (yy > 0.04 * h) & (yy < 0.09 * h)
        img[disp] = (25, 25, 25)
        img[disp & (np.abs(xx - x0 - dw / 2) < 0.012 * w)] = (255, 140, 40)  # the floor number
        panel = (np.abs(xx - x0 - dw - 0.03 * w) < 0.008 * w) & (np.abs(yy - 0.33 * h) < 0.04 * h)
        img[panel] = (200, 200, 205)
    bx = float(rng.uniform(0.05, 0.7)) * w  # a bench against the wall
    bench = (xx > bx) & (xx < bx + 0.2 * w) & (yy > base - 0.1 * h) & (yy < base - 0.06 * h)
    img[bench] = _hsv(rng.random(), 0.5, 0.5)
    ln = lanes[0]
    scale = (lanes[0].scale + lanes[1].scale) / 2
    cx = float(rng.uniform(0.05, 0.75)) * w
    rgb, mask = _box(
        size,
        cx,
        cx + 0.14 * w,
        ln.foot * h + 0.04 * h,
        1.0 * h / 4 * scale,
        _hsv(rng.uniform(0.5, 0.7), 0.3, 0.75),
        np.array([230, 230, 235], np.float32),
    )
    img[mask] = rgb[mask]
    side = 1 if rng.random() < 0.5 else -1
    shade = (0.82 + 0.3 / (1 + np.exp(-side * (xx - w / 2) / (0.2 * w)))).astype(np.float32)
    return img, [_Fixture(mask, rgb, scale)], shade


def _corridor(
    size: tuple[int, int], rng: np.random.Generator, cor: _Corridor
) -> tuple[np.ndarray, list[_Fixture], np.ndarray]:
    """A corridor from its end: floor, walls with handrails and doors, ceiling panels, a window at
    the far end, traced per pixel in one-point perspective; a cart against a wall and a
    half-open door stand in it."""
    w, h = size
    px = h / 4.0
    yy, xx = _grid(h, w)
    half, ceil_h, cam_h = 1.2, 2.75, cor.fy / px  # metres
    s_floor = np.where(yy > cor.vy, (yy - cor.vy) / cor.fy, 0.0)
    s_ceil = np.where(yy < cor.vy, (cor.vy - yy) / ((ceil_h - cam_h) * px), 0.0)
    s_wall = np.abs(xx - cor.vx) / (half * px)
    s = np.maximum(np.maximum(s_floor, s_ceil), s_wall)
    far = _D0 / cor.far
    d = _D0 / np.maximum(s, far)
    lat = (xx - cor.vx) / (px * np.maximum(s, far))
    up = cam_h - (yy - cor.vy) / (px * np.maximum(s, far))  # height above the floor
    wall_c = _hsv(rng.uniform(0.25, 0.6), rng.uniform(0.05, 0.2), rng.uniform(0.78, 0.9))
    floor_c = _hsv(rng.uniform(0.3, 0.6), rng.uniform(0.1, 0.35), rng.uniform(0.5, 0.65))
    img = np.broadcast_to(wall_c, (h, w, 3)).astype(np.float32).copy()
    on_floor = (s == s_floor) & (s >= far)
    on_ceil = (s == s_ceil) & (s >= far) & ~on_floor
    on_wall = (s == s_wall) & (s >= far) & ~on_floor & ~on_ceil
    tiles = floor_c * (0.9 + 0.15 * _noise(np.floor(d / 0.6), np.floor(lat / 0.6), 2.0))[..., None]
    tiles[(np.abs(lat) < 0.06)] = floor_c * 0.7 + 40  # a wayfinding line down the middle
    img[on_floor] = tiles[on_floor]
    panels = (np.floor(d / 3.0) % 1 == 0) & ((d % 3.0) < 0.6) & (np.abs(lat) < 0.35)
    ceiling = np.where(panels[..., None], np.float32(250), np.float32(205))
    img[on_ceil] = ceiling[on_ceil] * np.ones(3, np.float32)
    doors = [(float(rng.uniform(5.0, 14.0)), int(rng.choice([-1, 1]))) for _ in range(4)]
    wall = np.broadcast_to(wall_c, (h, w, 3)).astype(np.float32).copy()
    for dd, side in doors:
        leaf = (np.sign(lat) == side) & (d > dd) & (d < dd + 1.1) & (up < 2.1)
        wall[leaf] = _hsv(rng.uniform(0.05, 0.12), 0.45, rng.uniform(0.45, 0.65))
    wall[(up > 0.85) & (up < 0.95)] = (120, 115, 110)  # handrails
    wall[up < 0.12] = (80, 85, 90)  # kick boards
    img[on_wall] = wall[on_wall]
    end = s < far
    window = (
        end & (np.abs(xx - cor.vx) < 0.5 * px * far) & (yy > cor.vy - 1.9 * px * far) & (yy < cor.vy - 0.9 * px * far)
    )
    img[end] = wall_c * 0.9
    img[window] = (235, 245, 255)
    # light: pools under the ceiling panels, darker towards the far end
    pools = 0.85 + 0.3 * np.exp(-(((d % 3.0) - 0.3) ** 2) / 0.6)
    shade = np.where(on_floor | on_wall, pools * (0.75 + 0.25 * np.minimum(s / 0.5, 1)), 1.0).astype(np.float32)
    fixtures = []
    # a cart against one wall, and a door standing half open from the other, farther along
    cd, cside = float(rng.uniform(5.5, 8.5)), int(rng.choice([-1, 1]))
    cs = _D0 / cd
    xa, xb = sorted((cor.vx + cside * 0.45 * px * cs, cor.vx + cside * 1.15 * px * cs))
    rgb, mask = _box(
        size,
        xa,
        xb,
        cor.foot(cs),
        1.05 * px * cs,
        _hsv(rng.uniform(0.5, 0.65), 0.4, 0.6),
        np.array([220, 220, 225], np.float32),
    )
    fixtures.append(_Fixture(mask, rgb, cs))
    od = float(rng.uniform(10.0, 13.0))
    a_s, b_s = _D0 / od, _D0 / (od - 0.8)  # the hinge on the wall, the leaf's edge swung 0.8 m towards us
    hinge_x, edge_x = cor.vx - cside * half * px * a_s, cor.vx - cside * (half - 0.7) * px * b_s
    poly = [(hinge_x, cor.foot(a_s)), (edge_x, cor.foot(b_s)), (edge_x, cor.foot(b_s) - 2.1 * px * b_s),
            (hinge_x, cor.foot(a_s) - 2.1 * px * a_s)]  # fmt: skip
    lab = Image.new("L", (w, h), 0)
    ImageDraw.Draw(lab).polygon(poly, fill=1)
    mask = np.asarray(lab) > 0
    rgb = np.zeros((h, w, 3), np.float32)
    rgb[mask] = _hsv(rng.uniform(0.05, 0.12), 0.45, 0.55)
    fixtures.append(_Fixture(mask, rgb, b_s))
    for f in fixtures:
        img[f.mask] = f.rgb[f.mask]
    return img, fixtures, shade


def _waiting(
    size: tuple[int, int], rng: np.random.Generator, lanes: list[_Lane], desk_x: float
) -> tuple[np.ndarray, list[_Fixture], np.ndarray]:
    """A waiting area (before the lens bends it): a wall with a window and a screen, carpet tiles,
    a reception desk in front of the far lane, a row of chairs in front of the middle one."""
    w, h = size
    yy, xx = _grid(h, w)
    base = int(0.5 * h)
    wall_c = _hsv(rng.uniform(0.05, 0.15), rng.uniform(0.15, 0.35), rng.uniform(0.7, 0.85))
    img = np.broadcast_to(wall_c, (h, w, 3)).astype(np.float32).copy()
    carpet = _hsv(rng.uniform(0.55, 0.75), rng.uniform(0.2, 0.45), rng.uniform(0.3, 0.45))
    fl = _floor(yy, xx, w, -0.1 * h, carpet, 4, 5.0)
    img[yy >= base] = fl[yy >= base]
    wx = float(rng.uniform(0.05, 0.55)) * w
    window = (xx > wx) & (xx < wx + 0.3 * w) & (yy > 0.1 * h) & (yy < 0.38 * h)
    img[window] = (200, 220, 240)
    img[window & ((np.abs((xx - wx) % (0.1 * w)) < 2) | (np.abs(yy - 0.24 * h) < 1.5))] = (230, 230, 230)
    sx = (wx + 0.45 * w) % (0.8 * w)
    screen = (xx > sx) & (xx < sx + 0.12 * w) & (yy > 0.14 * h) & (yy < 0.26 * h)
    img[screen] = (20, 30, 60)
    img[screen & (yy < 0.18 * h) & (xx < sx + 0.08 * w)] = (210, 210, 230)
    fixtures = []
    ln = lanes[0]
    scale = ln.scale + 0.03
    dw = 0.26 * w
    rgb, mask = _box(
        size,
        desk_x - dw / 2,
        desk_x + dw / 2,
        ln.foot * h + 0.03 * h,
        0.75 * h / 4 * scale,  # a low counter: whoever stands at it shows its head and chest
        _hsv(rng.uniform(0.05, 0.1), 0.45, 0.6),
        np.array([235, 230, 220], np.float32),
    )
    fixtures.append(_Fixture(mask, rgb, scale))
    ln1 = lanes[1]
    cs = ln1.scale + 0.03
    lab = Image.new("L", (w, h), 0)
    dl = ImageDraw.Draw(lab)
    cw = 0.5 * h / 4 * cs
    c0 = float(rng.uniform(0.0, 0.5)) * w
    for k in range(int(rng.integers(3, 6))):  # the backs of a row of chairs
        x0 = c0 + k * cw * 1.15
        dl.rounded_rectangle(
            (x0, ln1.foot * h + 0.03 * h - 0.5 * h / 4 * cs, x0 + cw, ln1.foot * h + 0.03 * h), 3, fill=1
        )
    mask = np.asarray(lab) > 0
    rgb = np.zeros((h, w, 3), np.float32)
    rgb[mask] = _hsv(rng.random(), rng.uniform(0.4, 0.7), rng.uniform(0.35, 0.6))
    fixtures.append(_Fixture(mask, rgb, cs))
    for f in fixtures:
        img[f.mask] = f.rgb[f.mask]
    shade = (0.9 + 0.2 * np.exp(-(((xx - wx - 0.15 * w) / (0.3 * w)) ** 2))).astype(np.float32)
    return img, fixtures, shade


def _ward(
    size: tuple[int, int], rng: np.random.Generator, lanes: list[_Lane]
) -> tuple[np.ndarray, list[_Fixture], np.ndarray]:
    """A ward's entrance from steeply above: a strip of wall with the ward's double doors at the
    top, the floor below with a wayfinding line, a nurses' counter along one side; a drug
    trolley in front of the far lane."""
    w, h = size
    yy, xx = _grid(h, w)
    top = int(0.16 * h)
    floor_c = _hsv(rng.uniform(0.08, 0.5), rng.uniform(0.05, 0.25), rng.uniform(0.6, 0.75))
    img = _floor(yy, xx, w, -2.5 * h, floor_c, 10, 7.0)
    img[yy < top] = _hsv(rng.uniform(0.5, 0.65), 0.2, 0.8)
    dx = float(rng.uniform(0.25, 0.6)) * w
    doors = (xx > dx) & (xx < dx + 0.28 * w) & (yy < top)
    img[doors] = _hsv(rng.uniform(0.05, 0.12), 0.4, 0.6)
    img[doors & (np.abs(xx - dx - 0.14 * w) < 1.2)] = 60
    for k in (0.07, 0.21):
        win = (np.hypot(xx - dx - k * w, (yy - 0.06 * h) * 1.3) < 0.025 * w) & doors
        img[win] = (220, 230, 240)
    line = np.abs(yy - 0.3 * h - 0.02 * h * np.sin(xx / w * 6)) < 0.012 * h
    img[line] = _hsv(rng.random(), 0.7, 0.7)
    side = rng.random() < 0.5
    counter = (xx < 0.12 * w) if side else (xx > 0.88 * w)
    counter &= yy > top
    img[counter] = (235, 232, 225)
    ln = lanes[0]
    scale = (lanes[0].scale + lanes[1].scale) / 2
    tx = float(rng.uniform(0.15, 0.7)) * w
    rgb, mask = _box(
        size,
        tx,
        tx + 0.1 * w,
        ln.foot * h + 0.05 * h,
        1.0 * h / 4 * scale * _STEEP,
        _hsv(rng.uniform(0.55, 0.7), 0.35, 0.55),
        np.array([215, 220, 225], np.float32),
    )
    # its top, seen from above
    tops = (
        (xx >= tx - 2)
        & (xx <= tx + 0.1 * w + 2)
        & (yy < ln.foot * h + 0.05 * h - 1.0 * h / 4 * scale * _STEEP)
        & (yy > ln.foot * h + 0.05 * h - 1.0 * h / 4 * scale * _STEEP - 0.1 * h)
    )
    rgb[tops] = (225, 228, 232)
    mask = mask | tops
    img[mask] = rgb[mask]
    shade = (0.85 + 0.25 * np.exp(-(((xx - w / 2) / (0.45 * w)) ** 2 + ((yy - h / 2) / (0.6 * h)) ** 2))).astype(
        np.float32
    )
    return img, [_Fixture(mask, rgb, scale)], shade


@dataclass(frozen=True, eq=False)
class _Look:
    """How a camera turns light into pixels, and what stands in its view."""

    role: str
    noise: float
    quality: int  # JPEG quality
    shade: np.ndarray  # (H, W) light and shadow, in the frame as delivered
    fixtures: tuple[_Fixture, ...]
    lens: tuple[np.ndarray, np.ndarray] | None = None  # (rows, cols): where each delivered pixel comes from


def _barrel(size: tuple[int, int], k: float) -> tuple[np.ndarray, np.ndarray]:
    """A wide-angle lens's barrel distortion as a lookup: the middle magnified, the edges squeezed,
    straight lines bowed; the corners stay the corners."""
    w, h = size
    yy, xx = _grid(h, w)
    nx, ny = (xx + 0.5 - w / 2) / (w / 2), (yy + 0.5 - h / 2) / (w / 2)
    r2, corner = nx * nx + ny * ny, 1 + (h / w) ** 2
    f = (1 + k * r2) / (1 + k * corner)
    sx = np.clip(w / 2 + nx * f * (w / 2) - 0.5, 0, w - 1)
    sy = np.clip(h / 2 + ny * f * (w / 2) - 0.5, 0, h - 1)
    return np.round(sy).astype(np.intp), np.round(sx).astype(np.intp)


# --- the site -------------------------------------------------------------------------------------------


@dataclass(eq=False)
class HospitalSite(Site):
    """A `Site` whose people face the way they walk, walk along the corridor (shrinking with
    distance), are seen steeply from above at the ward, bent by the waiting area's lens, stop at a
    desk, hide behind carts, doors, desks and each other; JPEG-compressed."""

    looks: list[_Look] = field(default_factory=list)
    corridor: _Corridor = field(default_factory=lambda: _Corridor(320.0, 130.0, 230.0))
    steep: list[tuple[np.ndarray, np.ndarray]] = field(default_factory=list)
    porter: int = -1
    patient: int = -1
    group: tuple[int, int] = (-1, -1)
    desk: int = -1
    desk_x: float = 0.0
    _cut: dict[tuple[int, bool, int, bool], tuple[np.ndarray, np.ndarray]] = field(default_factory=dict, repr=False)

    def _sprite(self, oid: int, steep: bool, scale: float, mirror: bool) -> tuple[np.ndarray, np.ndarray]:
        q = max(1, int(round(scale * 64)))  # scales in steps of 1/64: few sizes to keep
        key = (oid, steep, q, mirror)
        if key not in self._cut:
            rgb0, a0 = self.steep[oid] if steep else (self.figures[oid].rgb, self.figures[oid].alpha)
            h0, w0 = a0.shape
            h, w = max(6, int(round(h0 * q / 64))), max(4, int(round(w0 * q / 64)))
            iy = np.minimum((np.arange(h) + 0.5) * h0 / h, h0 - 1).astype(int)
            ix = np.minimum((np.arange(w) + 0.5) * w0 / w, w0 - 1).astype(int)
            if mirror:
                ix = ix[::-1]
            self._cut[key] = (rgb0[iy][:, ix], a0[iy][:, ix])
        return self._cut[key]

    def scale_at(self, p: Pass, t: float) -> float:
        """The apparent size of pass `p`'s object at `t` (it changes along the corridor)."""
        if isinstance(p, Walk) and p.along:
            u = (t - p.t0) / (p.t1 - p.t0)
            return _D0 / (p.d0 + u * (p.d1 - p.d0))
        return p.scale

    def look(self, p: Pass, t: float) -> tuple[np.ndarray, np.ndarray, tuple[int, int, int, int]]:
        """Pass `p`'s sprite at `t` (RGB, silhouette) and where it lies, (x, y, w, h) in pixels."""
        walk = p if isinstance(p, Walk) else Walk(**{f: getattr(p, f) for f in p.__dataclass_fields__})
        steep = self.looks[p.camera].role == "ward"
        s = self.scale_at(p, t)
        rgb, alpha = self._sprite(p.oid, steep, s, walk.mirror)
        h, w = alpha.shape
        bob = 0.0 if walk.still else 1.8 * s * abs(np.sin(np.pi * (t - p.t0) / 0.55 + 0.9 * p.oid))
        if walk.along:
            q = max(1, int(round(s * 64))) / 64
            x = self.corridor.vx + walk.lateral * self.size[1] / 4.0 * q - w / 2
            return rgb, alpha, (int(round(x)), int(round(self.corridor.foot(q) - h - bob)), w, h)
        u = (t - p.t0) / (p.t1 - p.t0)
        x = p.x0 + u * (p.x1 - p.x0)
        return rgb, alpha, (int(round(x)), int(round(p.foot_y - h - bob)), w, h)

    def placement(self, p: Pass, t: float) -> tuple[int, int, int, int]:
        return self.look(p, t)[2]

    def _compose(self, camera: int, t: float) -> tuple[np.ndarray, np.ndarray, dict[int, int]]:
        look = self.looks[camera]
        width, height = self.size
        img = self.cameras[camera].background.copy()
        owner = np.full((height, width), -1, dtype=np.int32)
        live = [
            (self.scale_at(p, t), i, p) for i, p in enumerate(self.passes) if p.camera == camera and p.t0 <= t <= p.t1
        ]
        live.sort(key=lambda e: (e[0], e[1]))
        fixtures = sorted(look.fixtures, key=lambda f: f.scale)
        whole: dict[int, int] = {}
        prints: dict[int, np.ndarray] = {}
        drawn = 0
        for s, _, p in live:  # far to near, fixtures in between
            while drawn < len(fixtures) and fixtures[drawn].scale <= s:
                f = fixtures[drawn]
                img[f.mask], owner[f.mask] = f.rgb[f.mask], -1
                drawn += 1
            rgb, alpha, (x, y, w, h) = self.look(p, t)
            whole[p.oid] = int(alpha.sum())
            xa, xb, ya, yb = max(x, 0), min(x + w, width), max(y, 0), min(y + h, height)
            if xb <= xa or yb <= ya:
                continue
            a = alpha[ya - y : yb - y, xa - x : xb - x]
            img[ya:yb, xa:xb][a] = rgb[ya - y : yb - y, xa - x : xb - x][a]
            owner[ya:yb, xa:xb][a] = p.oid
            if look.lens is not None:
                fp = np.zeros((height, width), bool)
                fp[ya:yb, xa:xb] = a
                prints[p.oid] = fp
        for f in fixtures[drawn:]:
            img[f.mask], owner[f.mask] = f.rgb[f.mask], -1
        if look.lens is not None:  # the lens bends the frame, and each object's outline with it
            rows, cols = look.lens
            img, owner = img[rows, cols], owner[rows, cols]
            for oid, fp in prints.items():
                inside = int(fp.sum())
                if inside == 0:
                    continue
                whole[oid] = max(1, int(round(int(fp[rows, cols].sum()) * whole[oid] / inside)))
        return img, owner, whole

    def _light(self, camera: int, t: float, img: np.ndarray) -> np.ndarray:
        cam, look = self.cameras[camera], self.looks[camera]
        height, width = img.shape[:2]
        rng = np.random.default_rng([self.seed, camera, int(round(t * 1000)), 0x405B])
        gain = cam.exposure
        if look.role == "corridor":  # fluorescent tubes beating with the sampling
            gain *= 1 + 0.05 * np.sin(2 * np.pi * t / 3.3) * np.sin(2 * np.pi * t / 1.7)
        lit = img * (np.asarray(cam.gains, dtype=np.float32) * gain)
        lit *= look.shade[..., None]
        yy, xx = _grid(height, width)
        fall = 0.6 if look.role == "waiting" else 0.25  # the wide-angle lens darkens its corners more
        lit *= (1 - fall * (((xx - width / 2) / width) ** 2 + ((yy - height / 2) / height) ** 2))[..., None]
        lit += look.noise * rng.standard_normal(lit.shape).astype(np.float32)
        out = np.clip(lit, 0, 255).astype(np.uint8)
        buf = io.BytesIO()
        Image.fromarray(out).save(buf, "JPEG", quality=look.quality)
        return np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB")).copy()


def _draw(plan: _Plan, seed: int, size: tuple[int, int]) -> HospitalSite:
    rng = np.random.default_rng([seed, 0x40D7])
    px = size[1] / 4.0
    cameras, looks = [], []
    for c, role in enumerate(plan.roles):
        lanes, lens = plan.lanes[c], None
        if role == "lift":  # mixed daylight: near neutral, a touch warm; clean
            bg, fixtures, shade = _lift(size, rng, lanes)
            gains = (1 + rng.uniform(0.02, 0.06), 1.0, 1 - rng.uniform(0.0, 0.05))
            exposure, noise, quality = rng.uniform(1.0, 1.1), 2.5, int(rng.integers(60, 75))
        elif role == "corridor":  # cool fluorescent, dimmer, noisy, compressed hard
            bg, fixtures, shade = _corridor(size, rng, plan.corridor)
            gains = (1 - rng.uniform(0.08, 0.14), 1 + rng.uniform(0.0, 0.04), 1 + rng.uniform(0.08, 0.15))
            exposure, noise, quality = rng.uniform(0.82, 0.92), 5.0, int(rng.integers(28, 38))
        elif role == "waiting":  # warm tungsten through a wide-angle lens
            bg, fixtures, shade = _waiting(size, rng, lanes, plan.desk_x)
            gains = (1 + rng.uniform(0.12, 0.2), 1 + rng.uniform(0.0, 0.03), 1 - rng.uniform(0.18, 0.26))
            exposure, noise, quality = rng.uniform(0.9, 0.98), 3.5, int(rng.integers(42, 55))
            lens = _barrel(size, float(rng.uniform(0.3, 0.4)))
            shade = shade[lens[0], lens[1]]
        else:  # the ward: greenish fluorescent with daylight from the doors, bright
            bg, fixtures, shade = _ward(size, rng, lanes)
            gains = (1 - rng.uniform(0.02, 0.06), 1 + rng.uniform(0.05, 0.1), 1 + rng.uniform(0.0, 0.04))
            exposure, noise, quality = rng.uniform(1.08, 1.16), 4.0, int(rng.integers(76, 88))
        cameras.append(Camera(role, np.clip(bg, 0, 255).astype(np.float32), gains, float(exposure)))
        looks.append(_Look(role, noise, quality, shade.astype(np.float32), tuple(fixtures), lens))
    figures, steep = [], []
    for k, spec in enumerate(plan.specs):
        rgb, alpha, _ = _draw_person(spec, px)
        name = f"{spec.role}-{spec.seat or spec.pattern}-{k}"
        figures.append(Figure(k, name, rgb.astype(np.float32), alpha, plan.look_alike_of[k]))
        srgb, salpha = _draw_steep(spec, px)
        steep.append((srgb.astype(np.float32), salpha))
    duration = max(p.t1 for p in plan.passes) + 2.0
    return HospitalSite(
        FAMILY,
        seed,
        cameras,
        figures,
        list(plan.passes),
        duration,
        size=size,
        looks=looks,
        corridor=plan.corridor,
        steep=steep,
        porter=plan.porter,
        patient=plan.patient,
        group=plan.group,
        desk=plan.desk,
        desk_x=plan.desk_x,
    )


def _seen(site: HospitalSite, camera: int, t: float, oid: int, fraction: float) -> bool:
    _, owner, whole = site._compose(camera, t)
    return oid in whole and int((owner == oid).sum()) >= fraction * whole[oid]


def _usable(site: HospitalSite) -> bool:
    """Whether everyone who travels is seen whole on its first camera (so a user can cut a crop)
    and every other object is seen at least half on some frame."""
    travellers = set(site.travellers())
    for f in site.figures:
        first = site.visits(f.oid)[0]
        frac = 1.0 if f.oid in travellers else 0.5
        times = [t for t in site.times(first.camera) if first.t0 <= t <= first.t1]
        if not any(_seen(site, first.camera, t, f.oid, frac) for t in times):
            return False
    return True


def hospital_site(seed: int, size: tuple[int, int] = FRAME) -> HospitalSite:
    """A hospital site for `seed`: 3 or 4 cameras, 8 people who travel (three staff in the same
    scrubs, a porter and the patient they push, three visitors) and 1-2 strangers."""
    for attempt in range(20):
        site = _draw(_plan(seed, attempt, size), seed, size)
        if _usable(site):
            return site
    raise RuntimeError(f"no usable hospital plan for seed {seed}")  # pragma: no cover
