"""Family "market": an outdoor street market and a covered market hall, made apart from `parade`,
`crowd`, `lobby` and `station` (nothing was tuned on it, nobody ran re-identification on it while
it was made) so figures on it are honest.

Only the frame is shared (`Camera`, `Figure`, `Pass`, `Site`: truth and crops are rendered as for
every family). Everything drawn here is this module's own, drawn with PIL shapes and numpy:

- the street of stalls is seen from a lamp post, people small (0.4-0.75): striped awnings with
  scalloped edges over counters of produce, shopfronts behind, stone setts in perspective, and
  stall counters stacked with crates standing in front of the stalls' lane that hide the legs of
  whoever walks behind them; the awnings throw dappled shade and a cloud's shadow passes over;
- the hall's entrance is seen at eye level: a brick front with an arched doorway onto a dim,
  lamp-lit hall, a sign board, stone slabs, a produce stand that hides legs, the sun on one side of
  the frame and the building's shade on the other, and an auto-exposure that hunts;
- the side alley is under a canopy of vines: plaster walls, doors and shutters, cobbles, a stack of
  crates and bins, leaf shade that sways over everything (three-camera sites only);
- each camera has its own white balance (sun, mixed, blue shade), exposure, sensor noise and
  JPEG quality;
- people are cut-outs of their own build (slight, medium or stocky, 1.55-1.95 m) in plain, striped,
  checked, floral, denim or leather tops, with a sun hat, a headscarf, a cap or bare hair, maybe a
  neck scarf, and a tote of shopping, a backpack, a pram pushed in front or a shopping trolley
  pulled behind; walking right to left they are drawn facing left;
- shoppers come in groups of two or three (in along the street, or out of the hall), walking in
  lanes at different depths so they hide one another in part; one shopper stops at a stall on the
  street for a while; transits take a few seconds, prams and trolleys skip the alley;
- two shoppers are look-alikes (same build and colours, another pattern) going opposite ways;
  one or two strangers walk across one camera only (maybe a third look-alike, never in view with
  its original), and a stall-holder steps in at a frame's edge and back out (a partial view).

Planning (`_plan`, numbers only) is apart from drawing (`market_site`); a plan whose shoppers are
never seen whole on their first camera is drawn again from the next sub-seed.

    >>> site = market_site(1)
    >>> image, truth = site.render(0, 10.0)
    >>> crop = site.crop(site.travellers()[0])

Deterministic for a seed; seeds with `seed % 3 == 0` give two cameras (street and hall), others
three.
"""

from __future__ import annotations

import colorsys
import io
from dataclasses import dataclass, field, replace

import numpy as np
from PIL import Image, ImageDraw

from generators.reid_families import FRAME, Camera, Figure, Pass, Site, paste

FAMILY = "market"
PATTERNS = ("plain", "striped", "checked", "floral", "denim", "leather")
HEADS = ("sunhat", "headscarf", "cap", "bare")
WHEELED = ("pram", "trolley")
_BUILD = {"slight": 0.46, "medium": 0.54, "stocky": 0.64}  # body width, metres
_BEHIND = {"backpack": 0.15, "trolley": 0.46}  # what sticks out behind the body (metres)
_AHEAD = {"tote": 0.22, "pram": 0.86}  # ... and in front of it

Colour = np.ndarray  # (3,) float32, 0..255


def _hsv(h: float, s: float, v: float) -> Colour:
    return np.array(colorsys.hsv_to_rgb(h % 1.0, s, v), dtype=np.float32) * 255


def _grid(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    return yy, xx


def _cellhash(i: np.ndarray, j: np.ndarray, salt: float) -> np.ndarray:
    """A value in 0..1 per integer cell (i, j), fixed for a salt."""
    v = np.sin(i * 12.9898 + j * 78.233 + salt * 37.719) * 24634.6345
    return v - np.floor(v)


def _smooth(rng: np.random.Generator, h: int, w: int, cells: int) -> np.ndarray:
    """A smooth random field in 0..1 over (h, w): a coarse random grid, interpolated."""
    grid = rng.random((cells + 2, cells + 2)).astype(np.float32)
    gy = np.linspace(0, cells, h, endpoint=False, dtype=np.float32)
    gx = np.linspace(0, cells, w, endpoint=False, dtype=np.float32)
    iy, ix = gy.astype(int), gx.astype(int)
    fy, fx = (gy - iy)[:, None], (gx - ix)[None, :]
    fy, fx = fy * fy * (3 - 2 * fy), fx * fx * (3 - 2 * fx)
    a, b = grid[iy][:, ix], grid[iy][:, ix + 1]
    c, d = grid[iy + 1][:, ix], grid[iy + 1][:, ix + 1]
    return (a * (1 - fx) + b * fx) * (1 - fy) + (c * (1 - fx) + d * fx) * fy


# --- plans (numbers only) ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Stroll(Pass):
    """A pass of this family: `mirror` draws the object facing left (it walks right to left),
    `still` stands without bobbing (at a stall)."""

    mirror: bool = False
    still: bool = False


@dataclass(frozen=True)
class _Shopper:
    height: float  # metres
    build: str  # "slight", "medium", "stocky"
    hem: float  # where the top ends, a fraction of the height from the head
    c1: Colour
    c2: Colour
    pattern: str
    period: float  # pattern period, metres
    trousers: Colour
    skin: Colour
    hair: Colour
    head: str  # one of HEADS
    hat: Colour
    scarf: bool
    scarf_rgb: Colour
    carry: str  # "none", "tote", "backpack", "pram", "trolley"
    bag1: Colour
    bag2: Colour


@dataclass(frozen=True)
class _Lane:
    """Where people walk on a camera: foot row (a fraction of the frame's height) and size."""

    foot: float
    scale: float


@dataclass
class _Plan:
    roles: list[str]
    lanes: list[list[_Lane]]
    specs: list[_Shopper]
    look_alike_of: list[int | None]
    passes: list[Stroll]
    browser: int  # stops at a stall on the street
    peeker: int  # steps in at an edge and back
    cloud: tuple[float, float]  # when a cloud's shadow starts over the street, how long it takes


def _shopper(rng: np.random.Generator, hue: float, carry: str | None = None) -> _Shopper:
    pattern = str(rng.choice(PATTERNS))
    c1 = _hsv(hue, rng.uniform(0.45, 0.85), rng.uniform(0.5, 0.9))
    if pattern == "denim":
        c1 = _hsv(rng.uniform(0.57, 0.63), rng.uniform(0.45, 0.7), rng.uniform(0.4, 0.75))
    elif pattern == "leather":
        c1 = _hsv(rng.uniform(0.04, 0.09), rng.uniform(0.4, 0.8), rng.uniform(0.2, 0.5))
    return _Shopper(
        height=float(rng.uniform(1.55, 1.95)),
        build=str(rng.choice(list(_BUILD))),
        hem=float(rng.uniform(0.46, 0.56)),
        c1=c1,
        c2=_hsv(hue + rng.choice([0.5, 0.15, -0.25]), rng.uniform(0.1, 0.6), rng.uniform(0.35, 0.95)),
        pattern=pattern,
        period=float(rng.uniform(0.07, 0.12)),
        trousers=_hsv(rng.random(), rng.uniform(0.05, 0.5), rng.uniform(0.15, 0.55)),
        skin=_hsv(rng.uniform(0.03, 0.09), rng.uniform(0.2, 0.6), rng.uniform(0.3, 0.95)),
        hair=_hsv(rng.uniform(0.03, 0.12), rng.uniform(0.1, 0.8), rng.uniform(0.05, 0.8)),
        head=str(rng.choice(HEADS)),
        hat=_hsv(rng.random(), rng.uniform(0.1, 0.7), rng.uniform(0.4, 0.95)),
        scarf=bool(rng.random() < 0.35),
        scarf_rgb=_hsv(rng.random(), rng.uniform(0.5, 0.9), rng.uniform(0.5, 0.95)),
        carry=carry if carry is not None else str(rng.choice(["none", "tote", "backpack"])),
        bag1=_hsv(rng.random(), rng.uniform(0.3, 0.9), rng.uniform(0.3, 0.9)),
        bag2=_hsv(rng.random(), rng.uniform(0.1, 0.5), rng.uniform(0.2, 0.95)),
    )


def _width_m(s: _Shopper) -> float:
    return _BUILD[s.build] + 0.08 + _BEHIND.get(s.carry, 0.0) + _AHEAD.get(s.carry, 0.0)


def _lanes(role: str, rng: np.random.Generator) -> list[_Lane]:
    def j() -> float:
        return float(rng.uniform(-0.012, 0.012))

    if role == "street":  # from a lamp post: small people, lanes far apart in the frame
        return [_Lane(0.5 + j(), 0.42), _Lane(0.67 + j(), 0.56), _Lane(0.88 + j(), 0.72)]
    if role == "alley":
        return [_Lane(0.77 + j(), 0.7), _Lane(0.94 + j(), 0.86)]
    return [_Lane(0.71 + j(), 0.84), _Lane(0.84 + j(), 0.98), _Lane(0.97, 1.12)]  # the hall, at eye level


class _Lanes:
    """Passes on each camera's lanes, one object on a lane at a time (a group walks side by side)."""

    def __init__(self, rng: np.random.Generator, lanes: list[list[_Lane]], size: tuple[int, int]) -> None:
        self.rng, self.lanes, self.size = rng, lanes, size
        self.px = size[1] / 4.0  # pixels per metre at scale 1
        self.busy: dict[tuple[int, int], list[tuple[float, float]]] = {}
        self.passes: list[Stroll] = []

    def _free(self, cam: int, k: int, t0: float, t1: float) -> bool:
        return all(b + 0.5 < t0 or t1 < a - 0.5 for a, b in self.busy.get((cam, k), []))

    def lane_of(self, p: Pass) -> int:
        return next(i for i, ln in enumerate(self.lanes[p.camera]) if ln.scale == p.scale)

    def walk(
        self,
        oid: int,
        cam: int,
        t0: float,
        width_m: float,
        speed: float,
        direction: int,
        avoid: frozenset[int] | set[int] = frozenset(),
        only: frozenset[int] | None = None,
        dwell: float = 0.0,
    ) -> Stroll:
        """Across camera `cam` from `t0`, or the first moment after it that a lane is free (for
        the crossing and `dwell` seconds more); a lane in `avoid` only when no other is free."""
        width, height = self.size
        t = t0
        while True:
            order = [int(i) for i in self.rng.permutation(len(self.lanes[cam]))]
            order.sort(key=lambda i: i in avoid)
            for k in order:
                if only is not None and k not in only:
                    continue
                ln = self.lanes[cam][k]
                w = width_m * self.px * ln.scale
                a, b = (-w - 6, width + 6) if direction > 0 else (width + 6, -w - 6)
                dur = abs(b - a) / (speed * self.px * ln.scale)
                if not self._free(cam, k, t, t + dur + dwell):
                    continue
                p = Stroll(oid, cam, t, t + dur, a, b, ln.foot * height, ln.scale, mirror=direction < 0)
                self.busy.setdefault((cam, k), []).append((t, t + dur + dwell))
                self.passes.append(p)
                return p
            t += 0.5

    def peek(self, oid: int, cam: int, t0: float, width_m: float, from_left: bool) -> Stroll:
        """In at a frame's edge, three quarters of the way, and back out, on the first free lane."""
        width, height = self.size
        t = t0
        while True:
            for k in [int(i) for i in self.rng.permutation(len(self.lanes[cam]))]:
                ln = self.lanes[cam][k]
                w = width_m * self.px * ln.scale
                dur = float(self.rng.uniform(4.5, 6.5))
                if not self._free(cam, k, t, t + dur):
                    continue
                a, b = (-w - 2, -0.25 * w) if from_left else (width + 2, width - 0.75 * w)
                p = Stroll(oid, cam, t, t + dur, a, b, ln.foot * height, ln.scale, back=True, mirror=not from_left)
                self.busy.setdefault((cam, k), []).append((t, t + dur))
                self.passes.append(p)
                return p
            t += 0.5


def _plan(seed: int, attempt: int, size: tuple[int, int]) -> _Plan:
    rng = np.random.default_rng([seed, 0x3A4E, attempt])
    roles = ["street", "hall"] if seed % 3 == 0 else ["street", "alley", "hall"]
    lanes = [_lanes(r, rng) for r in roles]
    street, hall = 0, roles.index("hall")
    alley = roles.index("alley") if "alley" in roles else None

    # Objects: 0 and 1 look-alike shoppers, 2-4 shoppers (one pushes a pram or pulls a trolley),
    # then one or two strangers (the second maybe a look-alike of 2-4), then the stall-holder.
    hue0 = float(rng.random())
    first = _shopper(rng, hue0)
    twin = replace(first, pattern=str(rng.choice([p for p in PATTERNS if p != first.pattern])))
    specs, alike = [first, twin], [None, 0]
    wheeled = 2 + int(rng.integers(0, 3))
    for k in (2, 3, 4):
        carry = str(rng.choice(WHEELED)) if k == wheeled else None
        specs.append(_shopper(rng, hue0 + 0.618 * k, carry))
        alike.append(None)
    specs.append(_shopper(rng, hue0 + 0.3, "trolley" if rng.random() < 0.3 else None))
    alike.append(None)
    if rng.random() < 0.6:
        original = int(rng.choice([2, 3, 4]))
        base = specs[original]
        specs.append(replace(base, pattern=str(rng.choice([p for p in PATTERNS if p != base.pattern]))))
        alike.append(original)
    specs.append(_shopper(rng, hue0 + 0.8, "none"))
    alike.append(None)
    peeker = len(specs) - 1

    sched = _Lanes(rng, lanes, size)
    travellers = [0, 1, 2, 3, 4]
    rest = [int(k) for k in rng.permutation([2, 3, 4])]
    n_in = int(rng.integers(1, 3))
    arrivals, departures = [0, *rest[:n_in]], [1, *rest[n_in:]]
    browser = int(rng.choice(departures))  # stops at a stall on its way out along the street
    routes: dict[int, list[int]] = {}
    for k in travellers:
        skip = alley is None or specs[k].carry in WHEELED or rng.random() < 0.2
        mid = [] if skip or alley is None else [alley]
        routes[k] = [street, *mid, hall] if k in arrivals else [hall, *mid, street]
    groups = [(arrivals, float(rng.uniform(1.0, 3.0))), (departures, float(rng.uniform(5.0, 12.0)))]
    for members, t_start in groups:  # a group keeps to the pace of its slowest, side by side
        used: set[int] = set()
        dirn = int(rng.choice([-1, 1]))
        pace = min(
            float(rng.uniform(0.85, 1.05) if specs[k].carry in WHEELED else rng.uniform(1.05, 1.45)) for k in members
        )
        for i, k in enumerate(members):
            s = specs[k]
            speed = pace * float(rng.uniform(0.97, 1.03))
            t = t_start + i * float(rng.uniform(0.3, 1.0))
            route = routes[k]
            for step, cam in enumerate(route):
                if step:
                    skipped = alley is not None and alley not in route
                    t += float(rng.uniform(6, 10) if skipped else rng.uniform(2, 6))
                d = dirn if step == 0 else int(rng.choice([-1, 1]))
                if k == browser and cam == street:  # walks to a stall, stays a while, walks on
                    dwell = float(rng.uniform(4.0, 8.0))
                    p = sched.walk(k, cam, t, _width_m(s), speed, d, only=frozenset({0}), dwell=dwell)
                    frac = float(rng.uniform(0.35, 0.65))
                    xs, ts = p.x0 + frac * (p.x1 - p.x0), p.t0 + frac * (p.t1 - p.t0)
                    sched.passes[-1] = replace(p, t1=ts, x1=xs)
                    sched.passes.append(replace(p, t0=ts, t1=ts + dwell, x0=xs, x1=xs, still=True))
                    sched.passes.append(replace(p, t0=ts + dwell, t1=p.t1 + dwell, x0=xs))
                    t = p.t1 + dwell
                    continue
                p = sched.walk(k, cam, t, _width_m(s), speed, d, used if step == 0 else frozenset())
                if step == 0:
                    used.add(sched.lane_of(p))
                t = p.t1
    known_end = max(p.t1 for p in sched.passes)

    # Strangers: one camera each, walking across it; a look-alike where its original walks, at
    # another time; the stall-holder steps in at an edge.
    for k in range(5, peeker):
        src = alike[k]
        if src is not None:
            theirs = [p for p in sched.passes if p.oid == src and not p.still]
            cam = theirs[int(rng.integers(len(theirs)))].camera
            t0 = max(p.t1 for p in theirs if p.camera == cam) + float(rng.uniform(3, 8))
        else:
            cam = int(rng.integers(len(roles)))
            t0 = float(rng.uniform(3.0, max(known_end - 10, 4.0)))
        speed = float(rng.uniform(0.9, 1.4))
        while True:
            q = sched.walk(k, cam, t0, _width_m(specs[k]), speed, int(rng.choice([-1, 1])))
            clash = [
                p.t1 for p in sched.passes if p.oid == src and p.camera == cam and p.t0 < q.t1 + 1 and q.t0 < p.t1 + 1
            ]
            if src is None or not clash:
                break
            sched.passes.pop()
            t0 = max(clash) + float(rng.uniform(2, 5))
    cam = int(rng.integers(len(roles)))
    sched.peek(
        peeker, cam, float(rng.uniform(3.0, max(known_end - 8, 4.0))), _width_m(specs[peeker]), rng.random() < 0.5
    )
    cloud = (float(rng.uniform(0.15, 0.55)) * known_end, float(rng.uniform(9.0, 15.0)))
    passes = sorted(sched.passes, key=lambda p: (p.oid not in travellers, p.oid, p.t0))
    return _Plan(roles, lanes, specs, alike, passes, browser, peeker, cloud)


# --- people ---------------------------------------------------------------------------------------------


def _cloth(kind: str, yy: np.ndarray, xx: np.ndarray, c1: Colour, c2: Colour, p: float) -> np.ndarray:
    """An (h, w, 3) texture for a top; (yy, xx) in pixels from the collar's middle, `p` the period."""
    p = max(p, 2.0)
    if kind == "plain":  # one colour, a placket with buttons of the second
        out = np.broadcast_to(c1, yy.shape + (3,)).copy()
        buttons = (np.abs(xx) < max(0.8, 0.12 * p)) & ((yy % (1.6 * p)) < max(1.0, 0.3 * p))
        out[buttons] = c2
        return out
    if kind == "striped":  # a Breton top
        t = ((yy % p) < 0.38 * p).astype(np.float32)
    elif kind == "checked":  # gingham
        a, b = (xx % p) < p / 2, (yy % p) < p / 2
        t = 0.5 * (a.astype(np.float32) + b)
    elif kind == "floral":  # five-petal flowers on a jittered grid, yellow hearts
        i, j = np.floor(xx / (1.4 * p)), np.floor(yy / (1.4 * p))
        cx = (i + 0.3 + 0.4 * _cellhash(i, j, 1.0)) * 1.4 * p
        cy = (j + 0.3 + 0.4 * _cellhash(i, j, 2.0)) * 1.4 * p
        r, ang = np.hypot(xx - cx, yy - cy), np.arctan2(yy - cy, xx - cx)
        petal = r < 0.42 * p * (0.65 + 0.35 * np.cos(5 * ang))
        out = np.where(petal[..., None], c2, c1)
        out[r < 0.12 * p] = (240, 205, 60)
        return out.astype(np.float32)
    elif kind == "denim":  # twill lines, a yoke and a placket in contrast stitching
        out = c1 * (0.9 - 0.14 * (((xx + yy) % max(2.0, 0.3 * p)) < max(1.0, 0.12 * p)))[..., None]
        seam = (np.abs(yy - 1.3 * p) < 0.6) | (np.abs(xx) < 0.6)
        out[seam] = c2
        return out.astype(np.float32)
    elif kind == "leather":  # a sheen down one side, creases, a zip of the second colour
        sheen = 70 * np.exp(-(((xx + 1.6 * p) / (0.9 * p)) ** 2))
        crease = 0.9 + 0.1 * np.cos(2 * np.pi * yy / (2.2 * p) + 0.3 * xx / p)
        out = c1 * crease[..., None] + sheen[..., None]
        out[np.abs(xx - 0.25 * p) < max(0.7, 0.08 * p)] = c2
        return out.astype(np.float32)
    else:
        raise ValueError(f"unknown pattern {kind!r}")
    return c1 * (1 - t)[..., None] + c2 * t[..., None]


def _draw_shopper(s: _Shopper, px: float) -> tuple[np.ndarray, np.ndarray]:
    """The shopper's cut-out at scale 1 (`px` pixels per metre), facing right: a backpack or a
    trolley behind, a tote or a pram in front."""
    hh = max(14, int(round(s.height * px)))
    ww = max(6, int(round(_width_m(s) * px)))
    bw = _BUILD[s.build] * px
    cx = (_BEHIND.get(s.carry, 0.0) + 0.04) * px + bw / 2
    half = bw / 2 * 0.86
    shoulder_y, hip_y, feet = 0.18 * hh, s.hem * hh, hh - 1
    head_r, head_y = 0.06 * hh, 0.078 * hh
    hand_y = 0.5 * hh
    lab = Image.new("L", (ww, hh), 0)
    d = ImageDraw.Draw(lab)
    # 1 backpack, 2 pram or trolley body, 3 frame and handles, 4 legs, 5 shoes, 6 top, 7 sleeves,
    # 8 skin, 9 hair, 10 hat or headscarf, 11 neck scarf, 12 tote, 13 wheels, 14 greens, 15 pram hood
    lw = max(1, int(0.025 * px))
    if s.carry == "backpack":
        d.rounded_rectangle(
            (cx - half - 0.15 * px, shoulder_y + 0.03 * px, cx - half + 0.08 * px, shoulder_y + 0.45 * px),
            max(1, int(0.05 * px)),
            fill=1,
        )
    if s.carry == "trolley":  # a tall bag on two wheels, pulled by its handle
        x0, x1 = 0.04 * px, 0.36 * px
        d.line((x1 - 0.04 * px, hand_y + 0.12 * px, cx - half - 0.02 * px, hand_y), fill=3, width=lw)
        d.rounded_rectangle((x0, hand_y + 0.1 * px, x1, feet - 0.1 * px), max(1, int(0.03 * px)), fill=2)
        d.ellipse((x0 + 0.02 * px, feet - 0.16 * px, x0 + 0.18 * px, feet), fill=13)
    stride = 0.13 * hh
    leg = max(1.5, (0.07 if s.build == "stocky" else 0.055) * px)
    for sgn in (-1, 1):  # the back leg, then the front one
        hip_x = cx + sgn * 0.35 * half
        foot = cx + sgn * stride / 2
        d.polygon(
            [(hip_x - leg, hip_y - 0.04 * hh), (hip_x + leg, hip_y - 0.04 * hh), (foot + leg * 0.75, feet - 0.035 * hh),
             (foot - leg * 0.75, feet - 0.035 * hh)],
            fill=4,
        )  # fmt: skip
        d.ellipse((foot - leg, feet - 0.04 * hh, foot + leg * 2.2, feet), fill=5)  # toes forward
    flare = 1.08 if s.build == "stocky" else 0.98
    d.polygon(
        [(cx - half, shoulder_y + 0.04 * px), (cx - half * 0.6, shoulder_y - 0.01 * px),
         (cx + half * 0.6, shoulder_y - 0.01 * px), (cx + half, shoulder_y + 0.04 * px),
         (cx + half * flare, hip_y), (cx - half * flare, hip_y)],
        fill=6,
    )  # fmt: skip
    arm = max(2, int(0.085 * px))
    front_hand = (cx + half + 0.12 * px, hand_y - 0.05 * px)
    if s.carry == "pram":
        front_hand = (cx + half + 0.3 * px, 0.47 * hh)
    back_hand = (cx - half - 0.04 * px, hand_y) if s.carry == "trolley" else (cx - half - 0.06 * px, hand_y - 0.03 * px)
    for (hx, hy), sx in ((back_hand, cx - half * 0.8), (front_hand, cx + half * 0.8)):
        d.line((sx, shoulder_y + 0.05 * px, hx, hy), fill=7, width=arm)
        d.ellipse((hx - 0.045 * px, hy - 0.04 * px, hx + 0.045 * px, hy + 0.05 * px), fill=8)
    if s.carry == "tote":  # hangs from the front hand, greens sticking out
        hx, hy = front_hand
        tx0, tx1, ty0 = hx - 0.08 * px, hx + 0.14 * px, hy + 0.1 * px
        d.line((hx, hy, tx0 + 0.02 * px, ty0), fill=12, width=max(1, lw // 2))
        d.line((hx, hy, tx1 - 0.02 * px, ty0), fill=12, width=max(1, lw // 2))
        for g in range(3):
            gx = tx0 + (0.05 + 0.05 * g) * px
            d.line((gx, ty0, gx + 0.02 * px * (g - 1), ty0 - 0.14 * px), fill=14, width=max(1, lw))
        d.polygon(
            [(tx0, ty0), (tx1, ty0), (tx1 + 0.02 * px, ty0 + 0.3 * px), (tx0 - 0.02 * px, ty0 + 0.3 * px)], fill=12
        )
    if s.carry == "pram":  # a bassinet with its hood up, on a frame with two wheels in view
        hx, hy = front_hand
        bx0, bx1 = hx + 0.1 * px, ww - 2
        by0, by1 = 0.5 * hh, 0.5 * hh + 0.34 * px
        d.line((hx, hy, bx0 + 0.04 * px, by0 + 0.04 * px), fill=3, width=lw)
        d.line((bx0 + 0.1 * px, by1, bx1 - 0.1 * px, feet - 0.1 * px), fill=3, width=lw)
        d.line((bx1 - 0.1 * px, by1, bx0 + 0.1 * px, feet - 0.1 * px), fill=3, width=lw)
        d.chord((bx0, by0 - (by1 - by0), bx1, by1), 0, 180, fill=2)
        rr = 0.55 * (bx1 - bx0)  # the hood, up over the end nearer the hands
        d.pieslice((bx0, by0 - 0.8 * rr, bx0 + 2 * rr, by0 + 0.8 * rr), 180, 280, fill=15)
        for wx in (bx0 + 0.12 * px, bx1 - 0.12 * px):
            d.ellipse((wx - 0.1 * px, feet - 0.2 * px, wx + 0.1 * px, feet), fill=13)
    d.rectangle((cx - 0.04 * px, head_y + head_r * 0.5, cx + 0.04 * px, shoulder_y + 1), fill=8)  # neck
    if s.head == "headscarf":  # over the head, down to the shoulders
        drape = shoulder_y + 0.02 * px
        d.polygon([(cx - head_r * 1.1, head_y), (cx + head_r * 0.9, head_y), (cx + head_r * 1.2, drape),
                   (cx - head_r * 1.6, drape)], fill=10)  # fmt: skip
        d.ellipse((cx - head_r * 1.15, head_y - head_r * 1.2, cx + head_r * 1.1, head_y + head_r * 0.9), fill=10)
        d.ellipse((cx - head_r * 0.2, head_y - head_r * 0.65, cx + head_r * 0.95, head_y + head_r * 0.85), fill=8)
    else:
        d.ellipse((cx - head_r * 0.9, head_y - head_r, cx + head_r * 0.95, head_y + head_r), fill=8)
        d.chord(
            (cx - head_r * 0.95, head_y - head_r * 1.08, cx + head_r * 0.85, head_y + head_r * 0.5), 150, 360, fill=9
        )
        d.rectangle((cx - head_r * 0.95, head_y - head_r * 0.2, cx - head_r * 0.35, head_y + head_r * 0.6), fill=9)
    if s.head == "sunhat":  # a wide brim and a low crown
        d.ellipse((cx - head_r * 2.1, head_y - head_r * 0.8, cx + head_r * 2.1, head_y - head_r * 0.35), fill=10)
        d.chord((cx - head_r, head_y - head_r * 1.6, cx + head_r, head_y - head_r * 0.1), 180, 360, fill=10)
    elif s.head == "cap":  # a peak to the front
        d.chord((cx - head_r, head_y - head_r * 1.2, cx + head_r, head_y + head_r * 0.2), 180, 360, fill=10)
        d.rectangle((cx, head_y - head_r * 0.55, cx + head_r * 1.7, head_y - head_r * 0.3), fill=10)
    if s.scarf:  # round the neck, one end down the chest
        d.rectangle((cx - half * 0.5, shoulder_y - 0.03 * px, cx + half * 0.55, shoulder_y + 0.05 * px), fill=11)
        d.rectangle((cx + half * 0.15, shoulder_y, cx + half * 0.5, shoulder_y + 0.3 * hh), fill=11)
    labels = np.asarray(lab)
    yy, xx = _grid(hh, ww)
    top = _cloth(s.pattern, yy - shoulder_y, xx - cx, s.c1, s.c2, s.period * px)
    top = top * (0.84 + 0.16 * np.cos(np.clip((xx - cx) / (half + 2), -1, 1) * np.pi / 2))[..., None]
    rgb = np.zeros((hh, ww, 3), np.float32)
    for v, colour in (
        (1, s.bag1),
        (2, s.bag1),
        (3, np.full(3, 65, np.float32)),
        (4, s.trousers),
        (5, s.trousers * 0.3 + 15),
        (8, s.skin),
        (9, s.hair),
        (10, s.hat),
        (11, s.scarf_rgb),
        (12, s.bag1),
        (13, np.full(3, 28, np.float32)),
        (14, np.array([70, 150, 55], np.float32)),
        (15, s.bag2),
    ):
        rgb[labels == v] = colour
    rgb[labels == 6] = top[labels == 6]
    rgb[labels == 7] = top[labels == 7] * 0.86
    carried = (labels == 1) | (labels == 2) | (labels == 12)
    rgb[carried & ((yy % max(3.0, 0.1 * px)) < max(1.0, 0.035 * px))] = s.bag2  # seams or stripes of the bag
    return np.clip(rgb, 0, 255), labels > 0


# --- places ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class _Fixture:
    """Something standing in the scene: hides objects smaller (farther) than `scale`."""

    mask: np.ndarray
    rgb: np.ndarray
    scale: float


def _crates(
    size: tuple[int, int], rng: np.random.Generator, spans: list[tuple[float, float]], foot: float, tall: float
) -> tuple[np.ndarray, np.ndarray]:
    """Wooden crates of produce standing on row `foot`, `tall` pixels high, over column spans."""
    w, h = size
    img = Image.new("RGB", (w, h), (0, 0, 0))
    lab = Image.new("L", (w, h), 0)
    d, m = ImageDraw.Draw(img), ImageDraw.Draw(lab)
    fruit = [(235, 130, 30), (200, 30, 35), (120, 175, 50), (245, 215, 60), (110, 40, 90)]
    for x0, x1 in spans:
        n = max(1, int(round((x1 - x0) / max(tall * 0.9, 4))))
        cw = (x1 - x0) / n
        for i in range(n):
            a, b = x0 + i * cw, x0 + (i + 1) * cw - 1
            wood = tuple(int(c) for c in _hsv(rng.uniform(0.06, 0.1), rng.uniform(0.35, 0.55), rng.uniform(0.5, 0.75)))
            d.rectangle((a, foot - tall, b, foot), fill=wood, outline=(60, 40, 25))
            m.rectangle((a, foot - tall, b, foot), fill=1)
            for r in range(1, 4):  # slats
                y = foot - tall + r * tall / 4
                d.line((a, y, b, y), fill=(80, 55, 35), width=1)
            colour = fruit[int(rng.integers(len(fruit)))]
            r_f = max(1.0, min(tall / 9, cw / 7))
            xs = np.arange(a + r_f, b - r_f + 0.1, 1.8 * r_f)
            for k, fx in enumerate(xs):  # a heap of fruit over the rim
                fy = foot - tall - r_f * (0.6 + 0.8 * (k % 2))
                d.ellipse((fx - r_f, fy - r_f, fx + r_f, fy + r_f), fill=colour)
                m.ellipse((fx - r_f, fy - r_f, fx + r_f, fy + r_f), fill=1)
    return np.asarray(img, dtype=np.float32).copy(), np.asarray(lab) > 0


def _street(
    size: tuple[int, int], rng: np.random.Generator, lanes: list[_Lane]
) -> tuple[np.ndarray, list[_Fixture], np.ndarray]:
    """Stalls under striped awnings below shopfronts, seen from a lamp post; stone setts; counters
    and crates in front of the stalls' lane; the awnings' dappled shade."""
    w, h = size
    yy, xx = _grid(h, w)
    y_v = -0.7 * h  # the vanishing row, above the frame: the camera looks down
    depth = yy - y_v
    u, v = (xx - w / 2) / depth * 14, 26.0 * h / depth
    sett = _hsv(rng.uniform(0.05, 0.11), rng.uniform(0.1, 0.25), rng.uniform(0.55, 0.7))
    jitter = 0.85 + 0.25 * _cellhash(np.floor(u + 0.5 * (np.floor(v) % 2)), np.floor(v), 4.0)
    img = sett * jitter[..., None]
    joints = ((u + 0.5 * (np.floor(v) % 2)) % 1 < 0.07) | (v % 1 < 0.09)
    img[joints] *= 0.55
    fronts = int(0.11 * h)  # shopfronts across the street
    x = 0.0
    while x < w:
        sw = float(rng.uniform(0.12, 0.22)) * w
        img[:fronts, int(x) : int(x + sw)] = _hsv(rng.random(), rng.uniform(0.15, 0.5), rng.uniform(0.5, 0.9))
        img[int(0.03 * h) : int(0.09 * h), int(x + 0.1 * sw) : int(x + 0.9 * sw)] = _hsv(0.58, 0.2, 0.35)
        x += sw
    a_top, a_bot, c_bot = fronts, int(0.25 * h), int(0.37 * h)
    shade = np.ones((h, w), np.float32)
    x = float(rng.uniform(-0.05, 0.02)) * w
    while x < w:
        sw = float(rng.uniform(0.17, 0.26)) * w
        x0, x1 = int(x), int(x + sw)
        c1, c2 = _hsv(rng.random(), rng.uniform(0.55, 0.9), rng.uniform(0.6, 0.9)), np.full(3, 240, np.float32)
        stripe = max(2.0, sw / 9)
        span = slice(max(x0, 0), min(x1, w))
        cols = xx[a_top:a_bot, span]
        rows = yy[a_top:a_bot, span]
        fan = (cols - (x0 + x1) / 2) * (1 - 0.25 * (a_bot - rows) / (a_bot - a_top))  # wider at its edge
        t = ((np.floor(fan / stripe) % 2) == 0)[..., None]
        img[a_top:a_bot, span] = np.where(t, c1, c2) * (0.85 + 0.15 * (rows - a_top) / (a_bot - a_top))[..., None]
        scallop = (yy >= a_bot) & (yy < a_bot + 0.02 * h) & (xx >= x0) & (xx < x1)
        scallop &= np.hypot((xx - x0) % stripe - stripe / 2, yy - a_bot) < stripe / 2
        img[scallop] = c1 * 0.9
        img[a_bot + int(0.02 * h) : c_bot, span] = _hsv(rng.uniform(0.06, 0.1), 0.4, 0.3)  # under the awning
        table = slice(int(0.3 * h), c_bot)
        goods = _cellhash(np.floor(xx[table, span] / 4), np.floor(yy[table, span] / 4), float(x0))
        tint = np.stack([_hsv(g, 0.8, 0.85) for g in (0.02, 0.08, 0.15, 0.3)])
        img[table, span] = tint[(goods * 3.99).astype(int)] * (0.75 + 0.25 * goods)[..., None]
        img[c_bot - int(0.015 * h) : c_bot, span] = c1 * 0.6  # the counter's front cloth
        under = (yy >= a_bot) & (yy < int(0.44 * h)) & (xx >= x0) & (xx < x1)
        holes = _cellhash(np.floor(xx / 5), np.floor(yy / 5), 7.0) > 0.82
        shade[under] = np.where(holes[under], 0.9, 0.62)
        x += sw + float(rng.uniform(0.0, 0.03)) * w
    # counters and crates in front of the stalls' lane: they hide the legs of whoever walks behind
    ln = lanes[0]
    foot = ln.foot * h + 0.03 * h
    scale = ln.scale + 0.02
    tall = 0.85 * h / 4 * scale
    spans, x = [], float(rng.uniform(0.02, 0.2)) * w
    while x < w - 0.08 * w:
        sw = float(rng.uniform(0.1, 0.18)) * w
        spans.append((x, min(x + sw, w - 1.0)))
        x += sw + float(rng.uniform(0.15, 0.35)) * w
    rgb, mask = _crates(size, rng, spans, foot, tall)
    img[mask] = rgb[mask]
    return img.astype(np.float32), [_Fixture(mask, rgb, scale)], shade


def _hall(
    size: tuple[int, int], rng: np.random.Generator, lanes: list[_Lane]
) -> tuple[np.ndarray, list[_Fixture], np.ndarray]:
    """A market hall's brick front at eye level, an arched doorway onto its lamp-lit inside, a sign,
    stone slabs, a produce stand; the sun on one side, the building's shade on the other."""
    w, h = size
    yy, xx = _grid(h, w)
    horizon = int(0.6 * h)
    brick = _hsv(rng.uniform(0.0, 0.07), rng.uniform(0.4, 0.65), rng.uniform(0.45, 0.7))
    bh = max(2.0, 0.022 * h)
    row = np.floor(yy / bh)
    bx = (xx + (row % 2) * 1.2 * bh) / (2.4 * bh)
    img = brick * (0.85 + 0.25 * _cellhash(np.floor(bx), row, 3.0))[..., None]
    mortar = ((yy % bh) < max(1.0, 0.18 * bh)) | ((bx % 1) < 0.06)
    img[mortar] = (200, 195, 185)
    cx, aw = float(rng.uniform(0.35, 0.65)) * w, 0.36 * w
    spring = 0.3 * h  # where the arch begins to curve
    door = (
        (np.abs(xx - cx) < aw / 2)
        & (yy < horizon)
        & ((yy > spring) | (np.hypot(xx - cx, (yy - spring) * 1.6) < aw / 2))
    )
    inside = _hsv(0.08, 0.5, 0.28) * (0.7 + 0.4 * (yy - 0.1 * h) / h)[..., None]
    img[door] = inside[door]
    for i in range(4):  # lamps hanging in the hall, stalls' produce on the floor inside
        lx = cx - aw / 2 + (i + 0.5) * aw / 4
        ly = spring - 0.02 * h + 0.04 * h * (i % 2)
        lamp = door & (np.hypot(xx - lx, yy - ly) < 0.018 * h)
        img[lamp] = (255, 225, 150)
        cable = door & (np.abs(xx - lx) < 0.8) & (yy < ly)
        img[cable] = 30
    stalls = door & (yy > horizon - 0.1 * h)
    heaps = _cellhash(np.floor(xx / 6), np.floor(yy / 6), 5.0)
    img[stalls] = (np.stack([_hsv(g, 0.7, 0.55) for g in (0.03, 0.1, 0.25, 0.9)])[(heaps * 3.99).astype(int)])[stalls]
    edge = (np.abs(xx - cx) < aw / 2 + 0.02 * w) & ~door & (yy < horizon) & (yy > spring - aw / 2 / 1.6 - 0.03 * h)
    img[edge & (np.abs(np.abs(xx - cx) - aw / 2) < 0.02 * w)] = (215, 205, 185)  # stone jambs
    sign = (yy > 0.04 * h) & (yy < 0.12 * h) & (np.abs(xx - cx) < 0.3 * w)
    img[sign] = _hsv(rng.uniform(0.3, 0.7), 0.6, 0.35)
    letters = sign & (np.abs(yy - 0.08 * h) < 0.022 * h) & ((np.floor((xx - cx) / (0.03 * w)) % 2) == 0)
    letters &= np.abs(xx - cx) < 0.24 * w
    img[letters] = (235, 215, 140)
    floor = yy >= horizon
    depth = np.maximum(yy - 0.42 * h, 1)
    u, v = (xx - w / 2) / depth * 2.2, 3.0 * h / depth
    slab = (
        _hsv(rng.uniform(0.08, 0.14), 0.12, 0.62) * (0.85 + 0.2 * _cellhash(np.floor(u), np.floor(v), 9.0))[..., None]
    )
    slab[((u % 1) < 0.04) | ((v % 1) < 0.06)] *= 0.6
    img[floor] = slab[floor]
    img[horizon : horizon + max(2, int(0.012 * h))] = (170, 165, 160)  # the step
    # a produce stand in front of the far lane (about 0.9 m): hides the legs of whoever walks behind
    ln = lanes[0]
    scale = (lanes[0].scale + lanes[1].scale) / 2
    sx = float(rng.uniform(0.0, 0.7)) * w
    rgb, mask = _crates(
        size, rng, [(sx, sx + float(rng.uniform(0.2, 0.3)) * w)], ln.foot * h + 0.035 * h, 0.9 * h / 4 * scale
    )
    img[mask] = rgb[mask]
    # the sun from one side: the building's shade falls over the other, a soft diagonal edge
    side = 1 if rng.random() < 0.5 else -1
    edge_x = float(rng.uniform(0.35, 0.65)) * w + side * 0.25 * (yy - h / 2)
    sun = 1 / (1 + np.exp(-side * (xx - edge_x) / (0.02 * w)))
    shade = (0.68 + 0.5 * sun).astype(np.float32)
    return img.astype(np.float32), [_Fixture(mask, rgb, scale)], shade


def _alley(
    size: tuple[int, int], rng: np.random.Generator, lanes: list[_Lane]
) -> tuple[np.ndarray, list[_Fixture], np.ndarray]:
    """A side alley under vines: a plaster wall with doors and shutters, a drainpipe, cobbles,
    crates and bins; the leaf shade, wider than the frame so it can sway."""
    w, h = size
    yy, xx = _grid(h, w)
    base = int(0.72 * h)
    plaster = _hsv(rng.uniform(0.07, 0.13), rng.uniform(0.35, 0.55), rng.uniform(0.7, 0.9))  # ochre
    stain = _smooth(rng, h, w, 6)
    img = plaster * (0.78 + 0.3 * stain)[..., None]
    for _ in range(int(rng.integers(2, 4))):  # doors and shuttered windows
        dw = float(rng.uniform(0.08, 0.13)) * w
        dx = float(rng.uniform(0.0, 1.0)) * (w - dw)
        if rng.random() < 0.5:
            span = (xx >= dx) & (xx < dx + dw) & (yy >= 0.3 * h) & (yy < base)
            img[span] = _hsv(rng.uniform(0.02, 0.1), 0.55, rng.uniform(0.25, 0.45))
            img[span & ((xx - dx) % max(3.0, dw / 6) < 1)] *= 0.6
        else:
            y0 = float(rng.uniform(0.12, 0.3)) * h
            span = (xx >= dx) & (xx < dx + dw) & (yy >= y0) & (yy < y0 + 0.2 * h)
            img[span] = _hsv(rng.uniform(0.25, 0.5), 0.45, 0.5)
            img[span & ((yy - y0) % max(2.0, 0.02 * h) < 1)] *= 0.55  # louvres
    pipe = np.abs(xx - float(rng.uniform(0.05, 0.95)) * w) < max(1.0, 0.006 * w)
    img[pipe & (yy < base)] = (95, 90, 85)
    ground = yy >= base
    depth = np.maximum(yy - 0.55 * h, 1)
    u, v = (xx - w / 2) / depth * 3.0, 3.2 * h / depth
    fu, fv = u % 1 - 0.5, v % 1 - 0.5
    stone = np.hypot(fu, fv * 1.2) < 0.45
    cobble = _hsv(0.6, 0.06, rng.uniform(0.45, 0.6)) * (0.8 + 0.3 * _cellhash(np.floor(u), np.floor(v), 2.0))[..., None]
    cobble[~stone] *= 0.45
    img[ground] = cobble[ground]
    vines = yy < 0.07 * h + 0.03 * h * _smooth(rng, h, w, 10)  # leaves along the top
    img[vines] = (
        _hsv(0.3, 0.6, 0.3) * (0.7 + 0.6 * _cellhash(np.floor(xx / 3), np.floor(yy / 3), 6.0))[vines][..., None]
    )
    ln = lanes[0]
    scale = ln.scale + 0.03
    sx = float(rng.uniform(0.05, 0.7)) * w
    rgb, mask = _crates(
        size, rng, [(sx, sx + float(rng.uniform(0.12, 0.2)) * w)], ln.foot * h + 0.03 * h, 0.8 * h / 4 * scale
    )
    bin_x = float(rng.uniform(0.0, 0.9)) * w
    bin_ = (
        (xx >= bin_x)
        & (xx < bin_x + 0.07 * w)
        & (yy < ln.foot * h + 0.03 * h)
        & (yy > ln.foot * h + 0.03 * h - 0.95 * h / 4 * scale)
    )
    rgb[bin_] = _hsv(rng.uniform(0.3, 0.6), 0.6, 0.35) * (0.8 + 0.2 * ((xx[bin_] - bin_x) % 4 < 2))[..., None]
    mask = mask | bin_
    img[mask] = rgb[mask]
    pad = max(8, w // 10)
    leaves = 0.6 * _smooth(rng, h, w + 2 * pad, 40) + 0.4 * _smooth(rng, h, w + 2 * pad, 9)
    dapple = 0.74 + 0.4 / (1 + np.exp(-(leaves - 0.58) / 0.025))  # sun flecks through the leaves
    return img.astype(np.float32), [_Fixture(mask, rgb, scale)], dapple


@dataclass(frozen=True, eq=False)
class _Look:
    """How a camera turns light into pixels, and what changes its light over time."""

    role: str
    noise: float
    quality: int  # JPEG quality
    shade: np.ndarray  # (H, W) light and shadow that stay, or (H, W + 2 pad) leaf shade that sways
    fixtures: tuple[_Fixture, ...]


# --- the site -------------------------------------------------------------------------------------------


@dataclass(eq=False)
class MarketSite(Site):
    """A `Site` whose people may face left, stand at a stall, hide behind counters, crates and
    stands, under light that changes (a cloud, swaying leaves, hunting exposure), JPEG-compressed."""

    looks: list[_Look] = field(default_factory=list)
    cloud: tuple[float, float] = (0.0, 0.0)
    browser: int = -1
    peeker: int = -1
    _flipped: dict[tuple[int, float], tuple[np.ndarray, np.ndarray]] = field(default_factory=dict, repr=False)

    def pass_sprite(self, p: Pass) -> tuple[np.ndarray, np.ndarray]:
        """The sprite pass `p` shows: the object's, mirrored when it walks right to left."""
        rgb, alpha = self.sprite(p.oid, p.scale)
        if not getattr(p, "mirror", False):
            return rgb, alpha
        key = (p.oid, p.scale)
        if key not in self._flipped:
            self._flipped[key] = (rgb[:, ::-1].copy(), alpha[:, ::-1].copy())
        return self._flipped[key]

    def placement(self, p: Pass, t: float) -> tuple[int, int, int, int]:
        _, alpha = self.pass_sprite(p)
        h, w = alpha.shape
        u = (t - p.t0) / (p.t1 - p.t0)
        if p.back:
            u = 1 - abs(2 * u - 1)
        x = p.x0 + u * (p.x1 - p.x0)
        still = getattr(p, "still", False)
        bob = 0.0 if still else 2.0 * p.scale * abs(np.sin(np.pi * (t - p.t0) / 0.55 + 0.7 * p.oid))
        return int(round(x)), int(round(p.foot_y - h - bob)), w, h

    def _compose(self, camera: int, t: float) -> tuple[np.ndarray, np.ndarray, dict[int, int]]:
        look = self.looks[camera]
        width, height = self.size
        img = self.cameras[camera].background.copy()
        owner = np.full((height, width), -1, dtype=np.int32)
        live = sorted((p for p in self.passes if p.camera == camera and p.t0 <= t <= p.t1), key=lambda p: p.scale)
        fixtures = sorted(look.fixtures, key=lambda f: f.scale)
        whole: dict[int, int] = {}
        drawn = 0
        for p in live:  # far to near, fixtures in between
            while drawn < len(fixtures) and fixtures[drawn].scale <= p.scale:
                f = fixtures[drawn]
                img[f.mask], owner[f.mask] = f.rgb[f.mask], -1
                drawn += 1
            rgb, alpha = self.pass_sprite(p)
            whole[p.oid] = int(alpha.sum())
            paste(img, owner, rgb, alpha, self.placement(p, t), p.oid)
        for f in fixtures[drawn:]:
            img[f.mask], owner[f.mask] = f.rgb[f.mask], -1
        return img, owner, whole

    def light_at(self, camera: int, t: float) -> np.ndarray:
        """(H, W) light over camera `camera` at `t`, before white balance and exposure."""
        look = self.looks[camera]
        width, height = self.size
        if look.role == "alley":  # leaf shade swaying in the wind
            pad = (look.shade.shape[1] - width) // 2
            off = int(round(pad * (1 + 0.8 * np.sin(0.9 * t) * np.cos(0.37 * t))))
            return look.shade[:, off : off + width]
        light = look.shade
        if look.role == "street" and self.cloud[1] > 0:  # a cloud's shadow sweeping over, a soft edge
            yy, xx = _grid(height, width)
            t0, dur = self.cloud
            front = -0.8 * width + (t - t0) / dur * 2.6 * width
            light = light * (1 - 0.42 * np.exp(-(((xx + 0.5 * yy - front) / (0.45 * width)) ** 2)))
        return light

    def _light(self, camera: int, t: float, img: np.ndarray) -> np.ndarray:
        cam, look = self.cameras[camera], self.looks[camera]
        height, width = img.shape[:2]
        rng = np.random.default_rng([self.seed, camera, int(round(t * 1000)), 0x3A4E])
        gain = cam.exposure
        if look.role == "hall":  # auto-exposure hunting between the sunlit street and the dim door
            gain *= 1 + 0.07 * np.sin(2 * np.pi * t / 9.0)
        lit = img * (np.asarray(cam.gains, dtype=np.float32) * gain)
        lit *= self.light_at(camera, t)[..., None]
        yy, xx = _grid(height, width)
        lit *= (1 - 0.35 * (((xx - width / 2) / width) ** 2 + ((yy - height / 2) / height) ** 2))[..., None]
        lit += look.noise * rng.standard_normal(lit.shape).astype(np.float32)
        lit += look.noise * 0.5 * rng.standard_normal((height, width, 1)).astype(np.float32)
        out = np.clip(lit, 0, 255).astype(np.uint8)
        buf = io.BytesIO()
        Image.fromarray(out).save(buf, "JPEG", quality=look.quality)
        return np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB")).copy()


def _draw(plan: _Plan, seed: int, size: tuple[int, int]) -> MarketSite:
    rng = np.random.default_rng([seed, 0x4A11])
    px = size[1] / 4.0
    cameras, looks = [], []
    for c, role in enumerate(plan.roles):
        lanes = plan.lanes[c]
        if role == "street":  # the sun, warm; bright and clean
            bg, fixtures, shade = _street(size, rng, lanes)
            gains = (1 + rng.uniform(0.06, 0.12), 1 + rng.uniform(0.0, 0.04), 1 - rng.uniform(0.08, 0.16))
            exposure, noise, quality = rng.uniform(1.05, 1.15), 2.0, int(rng.integers(62, 78))
        elif role == "alley":  # shade, blue; dark, noisy and compressed hard
            bg, fixtures, shade = _alley(size, rng, lanes)
            gains = (1 - rng.uniform(0.08, 0.14), 1 - rng.uniform(0.0, 0.04), 1 + rng.uniform(0.08, 0.16))
            exposure, noise, quality = rng.uniform(0.72, 0.82), 5.5, int(rng.integers(24, 34))
        else:  # the hall: mixed light, greenish-yellow
            bg, fixtures, shade = _hall(size, rng, lanes)
            gains = (1 + rng.uniform(0.0, 0.05), 1 + rng.uniform(0.04, 0.09), 1 - rng.uniform(0.1, 0.18))
            exposure, noise, quality = rng.uniform(0.9, 1.0), 3.5, int(rng.integers(38, 52))
        cameras.append(Camera(role, np.clip(bg, 0, 255).astype(np.float32), gains, float(exposure)))
        looks.append(_Look(role, noise, quality, shade.astype(np.float32), tuple(fixtures)))
    figures = []
    for k, spec in enumerate(plan.specs):
        rgb, alpha = _draw_shopper(spec, px)
        figures.append(Figure(k, f"{spec.pattern}-{k}", rgb.astype(np.float32), alpha, plan.look_alike_of[k]))
    duration = max(p.t1 for p in plan.passes) + 2.0
    return MarketSite(
        FAMILY,
        seed,
        cameras,
        figures,
        list(plan.passes),
        duration,
        size=size,
        looks=looks,
        cloud=plan.cloud,
        browser=plan.browser,
        peeker=plan.peeker,
    )


def _seen(site: MarketSite, camera: int, t: float, oid: int, fraction: float) -> bool:
    _, owner, whole = site._compose(camera, t)
    return oid in whole and int((owner == oid).sum()) >= fraction * whole[oid]


def _usable(site: MarketSite) -> bool:
    """Whether every shopper who travels is seen whole on its first camera (so a user can cut a
    crop) and every other object is seen at least half on some frame."""
    travellers = set(site.travellers())
    for f in site.figures:
        first = site.visits(f.oid)[0]
        frac = 1.0 if f.oid in travellers else 0.5
        times = [t for t in site.times(first.camera) if first.t0 <= t <= first.t1]
        if not any(_seen(site, first.camera, t, f.oid, frac) for t in times):
            return False
    return True


def market_site(seed: int, size: tuple[int, int] = FRAME) -> MarketSite:
    """A market site for `seed`: 2 or 3 cameras, 5 shoppers who travel, 1-2 strangers and a
    stall-holder at an edge."""
    for attempt in range(20):
        site = _draw(_plan(seed, attempt, size), seed, size)
        if _usable(site):
            return site
    raise RuntimeError(f"no usable market plan for seed {seed}")  # pragma: no cover
