"""Family "station": a metro station's platform, escalators and ticket hall, made apart from
`parade`, `crowd` and `lobby` (nothing was tuned on it, nobody ran re-identification on it while
it was made) so figures on it are honest.

Only the frame is shared (`Camera`, `Figure`, `Pass`, `Site`: truth and crops are rendered as for
every family). Everything drawn here is this module's own, drawn with PIL shapes and numpy:

- the platform is seen from high up at a steep angle: the far wall with poster panels, the track
  bed with rails and sleepers, the yellow edge line with its tactile strip, stone slabs in
  perspective, and a column standing on the platform that hides whoever walks behind it; people
  are small there (0.5-0.9) and trains come in, stand and leave, or rush through, their
  headlights and windows lighting the scene;
- the escalators are seen from the side: two diagonal flights (up in front, down behind) under a
  hard shadow, people riding them climb or descend the frame as they cross it;
- the ticket hall is at eye level under flickering fluorescent tubes: a departure board, ticket
  machines, and a row of ticket gates that hides the legs of whoever walks behind them;
- each camera has its own white balance, exposure, sensor noise and JPEG quality; lighting
  changes over time (a train's lights, tube flicker with rolling bands, a fixed shadow);
- people are cut-outs of their own build (narrow or broad, short jacket or long coat) in tartan,
  houndstooth, chevron, quilted puffer, raglan or hi-vis, with a beanie, a hood, a flat cap or
  bare hair, and a backpack, a roller case, a holdall or nothing; and a luggage cart of boxes;
- travellers come in groups of two or three (off a train, or in through the gates), walking in
  lanes at different depths, so they hide one another in part and groups going opposite ways
  cross; transits take a few seconds, the cart takes the lift and skips the escalators;
- two travellers are look-alikes (same build and colours, another pattern), going opposite ways;
  one or two strangers appear on one camera only (maybe a third look-alike); one traveller puts
  down a holdall on a camera and walks on without it: the bag, left there, is an object of that
  camera only, and its owner looks different from then on.

Planning (`_plan`, numbers only) is apart from drawing (`station_site`); a plan whose travellers
are never seen whole on their first camera is drawn again from the next sub-seed.

    >>> site = station_site(1)
    >>> image, truth = site.render(0, 10.0)
    >>> crop = site.crop(site.travellers()[0])

Deterministic for a seed; seeds with `seed % 4 == 3` give two cameras (platform and hall), others
three.
"""

from __future__ import annotations

import colorsys
import io
from dataclasses import dataclass, field, replace

import numpy as np
from PIL import Image, ImageDraw

from generators.reid_families import FRAME, Camera, Figure, Pass, Site, paste

FAMILY = "station"
PATTERNS = ("tartan", "houndstooth", "chevron", "quilted", "raglan", "hivis")

Colour = np.ndarray  # (3,) float32, 0..255


def _rgb(h: float, s: float, v: float) -> Colour:
    return np.array(colorsys.hsv_to_rgb(h % 1.0, s, v), dtype=np.float32) * 255


def _grey(v: float) -> Colour:
    return np.full(3, v, dtype=np.float32)


def _coords(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    return yy, xx


# --- plans (numbers only) ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Walk(Pass):
    """A pass of this family: the foot also moves by `rise` pixels over it (the escalators),
    `variant` 1 draws the object without what it carried, `still` stands without bobbing."""

    rise: float = 0.0
    variant: int = 0
    still: bool = False


@dataclass(frozen=True)
class _PersonSpec:
    height: float  # metres
    broad: bool
    long_coat: bool
    c1: Colour
    c2: Colour
    pattern: str
    period: float  # pattern period, metres
    trousers: Colour
    skin: Colour
    hair: Colour
    head: str  # "beanie", "hood", "cap", "bare"
    carry: str  # "none", "backpack", "roller", "holdall"
    bag1: Colour
    bag2: Colour


@dataclass(frozen=True)
class _CartSpec:
    boxes: tuple[tuple[float, float, float], ...]  # (width m, height m, hue) stacked on the deck
    tarp: Colour
    frame: Colour


@dataclass(frozen=True)
class _Lane:
    """Where objects walk on a camera: foot row at the frame's left edge (fraction of height),
    apparent size, and for an escalator the slope of its line (rows per column), its speed (m/s)
    and its direction (+1: left to right, which climbs)."""

    foot: float
    scale: float
    slope: float = 0.0
    speed: float = 0.0
    direction: int = 0


@dataclass
class _Train:
    t0: float  # front enters
    t_stop: float  # comes to rest (== t0 for a train running through)
    t_go: float
    t1: float  # tail gone
    direction: int  # +1 runs left to right
    livery: Colour


@dataclass
class _Plan:
    roles: list[str]
    lanes: list[list[_Lane]]
    specs: list[_PersonSpec | _CartSpec | str]  # "holdall" for the bag that is left
    look_alike_of: list[int | None]
    passes: list[Walk]
    trains: list[_Train]
    bag_owner: int


def _person_spec(rng: np.random.Generator, hue: float, carry: str | None = None) -> _PersonSpec:
    return _PersonSpec(
        height=float(rng.uniform(1.58, 1.92)),
        broad=bool(rng.random() < 0.5),
        long_coat=bool(rng.random() < 0.5),
        c1=_rgb(hue, rng.uniform(0.45, 0.9), rng.uniform(0.45, 0.9)),
        c2=_rgb(hue + rng.choice([0.45, 0.3, -0.2]), rng.uniform(0.2, 0.7), rng.choice([0.18, 0.55, 0.92])),
        pattern=str(rng.choice(PATTERNS)),
        period=float(rng.uniform(0.09, 0.16)),
        trousers=_rgb(rng.random(), rng.uniform(0.05, 0.45), rng.uniform(0.12, 0.5)),
        skin=_rgb(rng.uniform(0.03, 0.09), rng.uniform(0.25, 0.65), rng.uniform(0.35, 0.95)),
        hair=_rgb(rng.uniform(0.04, 0.11), rng.uniform(0.2, 0.8), rng.uniform(0.06, 0.7)),
        head=str(rng.choice(["beanie", "hood", "cap", "bare"])),
        carry=carry if carry is not None else str(rng.choice(["none", "backpack", "roller"])),
        bag1=_rgb(rng.random(), rng.uniform(0.4, 0.9), rng.uniform(0.3, 0.85)),
        bag2=_rgb(rng.random(), rng.uniform(0.1, 0.4), rng.uniform(0.15, 0.9)),
    )


def _cart_spec(rng: np.random.Generator) -> _CartSpec:
    boxes = tuple(
        (float(rng.uniform(0.35, 0.6)), float(rng.uniform(0.22, 0.4)), float(rng.random()))
        for _ in range(int(rng.integers(3, 5)))
    )
    return _CartSpec(
        boxes, _rgb(rng.random(), rng.uniform(0.5, 0.9), rng.uniform(0.4, 0.8)), _grey(rng.uniform(60, 110))
    )


def _lanes(role: str, rng: np.random.Generator) -> list[_Lane]:
    j = lambda: float(rng.uniform(-0.015, 0.015))  # noqa: E731
    if role == "platform":  # from high up: small people, lanes far apart in the frame
        return [_Lane(0.52 + j(), 0.52), _Lane(0.69 + j(), 0.68), _Lane(0.9 + j(), 0.86)]
    if role == "stairs":  # two flights rising to the right: up in front, down behind
        slope = float(rng.uniform(0.22, 0.27))
        speed = float(rng.uniform(0.55, 0.7))
        return [_Lane(0.72 + j(), 0.74, slope, speed, -1), _Lane(0.97, 0.9, slope, speed, 1)]
    return [_Lane(0.7 + j(), 0.8), _Lane(0.83 + j(), 0.96), _Lane(0.97, 1.12)]  # the hall, at eye level


class _Schedule:
    """Passes on each camera's lanes. A walkers' lane holds one object at a time; an escalator
    holds several, one headway apart (all ride it at its speed)."""

    def __init__(self, rng: np.random.Generator, lanes: list[list[_Lane]], size: tuple[int, int]) -> None:
        self.rng, self.lanes, self.size = rng, lanes, size
        self.px = size[1] / 4.0  # pixels per metre at scale 1
        self.busy: dict[tuple[int, int], list[tuple[float, float]]] = {}
        self.passes: list[Walk] = []

    def _free(self, cam: int, k: int, t0: float, t1: float) -> bool:
        return all(b + 0.4 < t0 or t1 < a - 0.4 for a, b in self.busy.get((cam, k), []))

    def walk(
        self,
        oid: int,
        cam: int,
        t0: float,
        width_m: float,
        speed: float,
        direction: int,
        avoid: frozenset[int] | set[int] = frozenset(),
        variant: int = 0,
        never: frozenset[int] = frozenset(),
    ) -> Walk:
        """Across camera `cam` from `t0` or the first moment after it that a lane is free; a lane
        in `avoid` only when no other is free, one in `never` not at all. On the escalators, the
        flight going `direction`."""
        width, height = self.size
        lanes = self.lanes[cam]
        t = t0
        while True:
            order = [int(i) for i in self.rng.permutation(len(lanes))]
            order.sort(key=lambda i: i in avoid)
            for k in order:
                ln = lanes[k]
                if k in never or (ln.direction and ln.direction != direction):
                    continue
                w = width_m * self.px * ln.scale
                v = ln.speed or speed
                a, b = (-w - 8, width + 8) if direction > 0 else (width + 8, -w - 8)
                dur = abs(b - a) / (v * self.px * ln.scale)
                hold = (w + 40) / (v * self.px * ln.scale) if ln.speed else dur  # one headway on an escalator
                if not self._free(cam, k, t, t + hold):
                    continue
                foot = ln.foot * height - ln.slope * (a + w / 2)
                p = Walk(oid, cam, t, t + dur, a, b, foot, ln.scale, rise=-ln.slope * (b - a), variant=variant)
                self.busy.setdefault((cam, k), []).append((t, t + hold))
                self.passes.append(p)
                return p
            t += 0.5

    def stand(
        self, oid: int, cam: int, t0: float, t1: float, x: float, foot: float, scale: float, variant: int
    ) -> Walk:
        p = Walk(oid, cam, t0, t1, x, x, foot, scale, variant=variant, still=True)
        self.passes.append(p)
        return p


def _plan(seed: int, attempt: int, size: tuple[int, int]) -> _Plan:
    rng = np.random.default_rng([seed, 0x57A7, attempt])
    roles = ["platform", "hall"] if seed % 4 == 3 else ["platform", "stairs", "hall"]
    lanes = [_lanes(r, rng) for r in roles]
    hall, platform = roles.index("hall"), 0
    stairs = roles.index("stairs") if "stairs" in roles else None

    # Objects: 0 and 1 look-alike travellers, 2-4 travellers (4 may be a cart), then strangers, then the bag.
    hue0 = float(rng.random())
    specs: list[_PersonSpec | _CartSpec | str] = []
    alike: list[int | None] = []
    coats = [p for p in PATTERNS if p != "hivis"]  # a vest hides the coat's colours: no look-alike wears one
    first = _person_spec(rng, hue0)
    first = replace(first, pattern=str(rng.choice(coats))) if first.pattern == "hivis" else first
    specs += [first, replace(first, pattern=str(rng.choice([p for p in coats if p != first.pattern])))]
    alike += [None, 0]
    owner = 2 + int(rng.integers(0, 2))
    for k in (2, 3):
        specs.append(_person_spec(rng, hue0 + 0.618 * k, "holdall" if k == owner else None))
        alike.append(None)
    specs.append(_cart_spec(rng) if rng.random() < 0.5 else _person_spec(rng, hue0 + 0.618 * 4))
    alike.append(None)
    n_strangers = int(rng.integers(1, 3))
    for s in range(n_strangers):
        sources = [k for k in (2, 3, 4) if k != owner and isinstance(specs[k], _PersonSpec)]
        sources = [k for k in sources if getattr(specs[k], "pattern", "") != "hivis"]
        if s == 1 and sources:  # a look-alike of a traveller that never travels
            src = int(rng.choice(sources))
            base = specs[src]
            assert isinstance(base, _PersonSpec)
            specs.append(replace(base, pattern=str(rng.choice([p for p in coats if p != base.pattern]))))
            alike.append(src)
        else:
            specs.append(_person_spec(rng, hue0 + 0.31 + 0.2 * s))
            alike.append(None)
    specs.append("holdall")
    alike.append(None)
    bag = len(specs) - 1

    sched = _Schedule(rng, lanes, size)
    owner_spec = specs[owner]
    assert isinstance(owner_spec, _PersonSpec)

    def width_m(k: int) -> float:
        s = specs[k]
        if isinstance(s, _CartSpec):
            return 1.45
        assert isinstance(s, _PersonSpec)
        return _person_width_m(s)

    # Trains on the platform: one brings the arrivals in; an express runs through later.
    arrive_at = float(rng.uniform(1.0, 3.0))
    direction = int(rng.choice([-1, 1]))
    livery = _rgb(rng.random(), 0.7, 0.8)
    trains = [_Train(arrive_at, arrive_at + 3.5, arrive_at + 3.5 + float(rng.uniform(8, 11)), 0.0, direction, livery)]
    trains[0].t1 = trains[0].t_go + 4.0

    # Groups: arrivals off the train (platform -> [stairs] -> hall), departures in through the gates.
    travellers = [0, 1, 2, 3, 4]
    rest = [int(k) for k in rng.permutation([2, 3, 4])]
    arrivals = [0, *rest[: int(rng.integers(1, 3))]]
    departures = [1, *[k for k in rest if k not in arrivals]]
    routes: dict[int, list[int]] = {}
    for k in travellers:
        cart = isinstance(specs[k], _CartSpec)
        mid = [] if cart or k == owner or stairs is None else [stairs]
        if stairs is not None and not cart and k != owner and rng.random() < 0.2:
            mid = []  # took the lift
        routes[k] = [platform, *mid, hall] if k in arrivals else [hall, *mid, platform]
    groups = [
        (arrivals, trains[0].t_stop + 1.0, platform, int(rng.choice([-1, 1]))),
        (departures, float(rng.uniform(6, 14)), hall, int(rng.choice([-1, 1]))),
    ]
    for members, t_start, _cam, dirn in groups:
        used: set[int] = set()
        for i, k in enumerate(members):
            speed = float(rng.uniform(0.75, 0.95) if isinstance(specs[k], _CartSpec) else rng.uniform(1.05, 1.45))
            t = t_start + i * float(rng.uniform(0.9, 1.8))
            route = routes[k]
            for step, cam in enumerate(route):
                if step:
                    lift = stairs is not None and cam != stairs and route[step - 1] != stairs
                    t += float(rng.uniform(6, 10) if lift else rng.uniform(2, 6))
                d = dirn if step == 0 else int(rng.choice([-1, 1]))
                if k == owner and step == 1:  # in with the holdall, puts it down, on without it
                    p = sched.walk(k, cam, t, width_m(k), speed, d)
                    frac = float(rng.uniform(0.4, 0.6))
                    x_drop = p.x0 + frac * (p.x1 - p.x0)
                    t_drop = p.t0 + frac * (p.t1 - p.t0)
                    t_on = t_drop + float(rng.uniform(1.5, 3.0))
                    out = Walk(k, cam, t_on, t_on + p.t1 - t_drop, x_drop, p.x1, p.foot_y, p.scale, variant=1)
                    sched.passes[-1] = replace(p, t1=t_drop, x1=x_drop)
                    sched.stand(k, cam, t_drop, t_on, x_drop, p.foot_y, p.scale, 1)
                    sched.passes.append(out)
                    lane = next(i for i, ln in enumerate(lanes[cam]) if ln.scale == p.scale)
                    sched.busy[(cam, lane)].append((t_drop, out.t1))
                    bag_x = x_drop + _holdall_offset_m(owner_spec) * sched.px * p.scale
                    sched.stand(bag, cam, t_drop, t_drop + 1.0, bag_x, p.foot_y, p.scale, 0)
                    t = out.t1
                    continue
                if cam == stairs:
                    d = 1 if k in arrivals else -1  # up to the hall, down to the platform
                # where a group comes in (and crops are cut), nobody walks behind the gates
                behind = frozenset({0}) if step == 0 and cam == hall else frozenset()
                p = sched.walk(k, cam, t, width_m(k), speed, d, used if step == 0 else frozenset(), never=behind)
                if step == 0:
                    used.add(next(i for i, ln in enumerate(lanes[cam]) if ln.scale == p.scale))
                t = p.t1
    known_end = max(p.t1 for p in sched.passes)
    # An express running through the platform while people are about.
    t_x = float(rng.uniform(0.35, 0.8)) * known_end
    trains.append(_Train(t_x, t_x, t_x, t_x + 2.5, -direction, _rgb(rng.random(), 0.5, 0.9)))

    # Strangers: one camera each, walking across it (never the escalator for the look-alike's sake:
    # it goes where its original walks, at another time).
    for k in range(5, bag):
        src = alike[k]
        if src is not None:
            theirs = [p for p in sched.passes if p.oid == src and not p.still]
            mine = theirs[int(rng.integers(len(theirs)))]
            cam = mine.camera
            t0 = mine.t1 + float(rng.uniform(4, 9))
        else:
            cam = int(rng.integers(len(roles)))
            t0 = float(rng.uniform(3.0, known_end - 10))
        while True:
            q = sched.walk(k, cam, t0, width_m(k), float(rng.uniform(1.0, 1.4)), int(rng.choice([-1, 1])))
            clash = [
                p.t1 for p in sched.passes if p.oid == src and p.camera == cam and p.t0 < q.t1 + 1 and q.t0 < p.t1 + 1
            ]
            if src is None or not clash:
                break
            sched.passes.pop()
            t0 = max(clash) + float(rng.uniform(2, 5))
    # The bag stays until its camera's recording ends.
    i_bag = next(i for i, p in enumerate(sched.passes) if p.oid == bag)
    left = sched.passes[i_bag]
    last = max(p.t1 for p in sched.passes if p.camera == left.camera and p.oid != bag)
    sched.passes[i_bag] = replace(left, t1=max(last, left.t0 + 15.0))
    passes = sorted(sched.passes, key=lambda p: (p.oid not in travellers, p.oid, p.t0))
    return _Plan(roles, lanes, specs, alike, passes, trains, owner)


# --- objects --------------------------------------------------------------------------------------------


def _person_width_m(s: _PersonSpec) -> float:
    body = 0.62 if s.broad else 0.52
    return body + {"none": 0.12, "backpack": 0.18, "roller": 0.5, "holdall": 0.38}[s.carry]


def _holdall_offset_m(s: _PersonSpec) -> float:
    """Where the holdall's left edge is in the cut-out of `s` (metres from its left edge)."""
    body = 0.62 if s.broad else 0.52
    return min(_person_width_m(s) - 0.48, body / 2 + 0.04 + body * 0.42)


def _texture(kind: str, yy: np.ndarray, xx: np.ndarray, c1: Colour, c2: Colour, p: float) -> np.ndarray:
    """An (h, w, 3) coat texture; (yy, xx) in pixels from the collar, `p` the period in pixels."""
    p = max(p, 2.0)
    if kind == "tartan":
        band = (np.abs(np.sin(np.pi * xx / p)) > 0.75).astype(np.float32) + (np.abs(np.sin(np.pi * yy / p)) > 0.75)
        line = ((np.abs(xx % (2 * p) - p) < 0.6) | (np.abs(yy % (2 * p) - p) < 0.6)).astype(np.float32)
        out = c1 + (band[..., None] / 2) * (c2 - c1)
        return out * (1 - 0.5 * line[..., None]) + 0.5 * line[..., None] * 235
    if kind == "houndstooth":
        q = p * 0.7
        u, v = xx / q, yy / q
        check = (np.floor(u) + np.floor(v)) % 2
        tooth = ((u % 1) + (v % 1) < 0.6) & (np.floor(u) % 2 == 0)
        t = np.where(tooth, 1 - check, check)
    elif kind == "chevron":
        t = np.floor((np.abs(xx % (2 * p) - p) + yy) / (0.8 * p)) % 2
    elif kind == "quilted":  # a puffer: baffles shaded round, dark seams, a zip down the middle
        ph = (yy % p) / p
        shade = 0.72 + 0.28 * np.sin(np.pi * ph)
        out = c1 * shade[..., None]
        zip_ = np.abs(xx) < 1.0
        out[zip_] = c2 * 0.8
        return out
    elif kind == "raglan":  # plain body with a broad chest band
        t = ((yy > 1.6 * p) & (yy < 2.6 * p)).astype(np.float32)
    elif kind == "hivis":  # a fluorescent vest with two silver bands over a coat of the second colour
        vest = np.array([235, 220, 40], np.float32) if c1[0] > c1[2] else np.array([250, 140, 30], np.float32)
        out = np.broadcast_to(vest, yy.shape + (3,)).copy()
        silver = ((yy > 3.2 * p) & (yy < 3.8 * p)) | ((yy > 5.0 * p) & (yy < 5.6 * p))
        out[silver] = 200
        return out
    else:
        raise ValueError(f"unknown pattern {kind!r}")
    return c1 * (1 - t)[..., None] + c2 * t[..., None]


def _holdall(px: float) -> tuple[np.ndarray, np.ndarray]:
    """The bag that is carried, then left: a holdall in fixed colours of its own (0.48 x 0.3 m)."""
    w, h = max(6, int(round(0.48 * px))), max(5, int(round(0.34 * px)))
    img = Image.new("L", (w, h), 0)
    d = ImageDraw.Draw(img)
    body_top = int(h * 0.28)
    d.rounded_rectangle((0, body_top, w - 1, h - 1), radius=max(1, h // 5), fill=1)
    d.arc((int(w * 0.25), 0, int(w * 0.75), int(h * 0.6)), 180, 360, fill=2, width=max(1, h // 12))
    lab = np.asarray(img)
    yy, xx = _coords(h, w)
    stripes = (np.floor(xx / max(w / 7, 1.0)) % 2)[..., None]
    body = np.array([40, 70, 150], np.float32) * (1 - stripes) + np.array([225, 210, 190], np.float32) * stripes
    ends = (xx < w * 0.12) | (xx > w * 0.88)
    body[ends] = (140, 30, 40)
    rgb = np.where((lab == 1)[..., None], body, np.array([30, 30, 30], np.float32))
    return rgb.astype(np.float32), lab > 0


def _draw_person(s: _PersonSpec, px: float, bare: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """The person's cut-out at scale 1 (`px` pixels per metre); `bare`: without the holdall."""
    hh = max(12, int(round(s.height * px)))
    ww = max(6, int(round(_person_width_m(s) * px)))
    body_w = (0.62 if s.broad else 0.52) * px
    cx = body_w / 2 + (0.25 * px if s.carry == "roller" else 0.06 * px)
    if s.carry == "holdall":
        cx = body_w / 2 + 0.04 * px
    lab = Image.new("L", (ww, hh), 0)
    d = ImageDraw.Draw(lab)
    shoulder = body_w * 0.42
    ys = 0.18 * hh
    hem = ys + (0.5 if s.long_coat else 0.34) * hh
    feet = hh - 1
    head_r = 0.065 * hh
    head_cy = 0.085 * hh
    # 1 backpack, 2 roller case, 3 handle, 4 legs, 5 shoes, 6 coat, 7 sleeves, 8 skin, 9 hair/hat, 10 holdall
    if s.carry == "backpack":
        d.rounded_rectangle(
            (cx - shoulder - 0.06 * px, ys - 0.02 * px, cx + shoulder + 0.06 * px, ys + 0.32 * hh), 3, fill=1
        )
    if s.carry == "roller":
        rx0, rx1 = 0.0, 0.3 * px
        d.rectangle((rx0, 0.56 * hh, rx1, feet - 0.04 * px), fill=2)
        d.line((rx1 * 0.6, 0.56 * hh, cx - shoulder - 0.02 * px, 0.5 * hh), fill=3, width=max(1, int(0.02 * px)))
        d.ellipse((rx0, feet - 0.07 * px, rx0 + 0.07 * px, feet), fill=5)
    step = 0.08 * hh
    leg = max(1.5, 0.055 * px if s.broad else 0.045 * px)
    for sgn in (-1, 1):
        d.polygon(
            [(cx + sgn * 2 * leg - leg, hem - 0.05 * hh), (cx + sgn * 2 * leg + leg, hem - 0.05 * hh),
             (cx + sgn * step + leg * 0.8, feet - 0.03 * hh), (cx + sgn * step - leg * 0.8, feet - 0.03 * hh)],
            fill=4,
        )  # fmt: skip
        d.ellipse((cx + sgn * step - leg * 1.4, feet - 0.045 * hh, cx + sgn * step + leg * 1.6, feet), fill=5)
    flare = 1.15 if s.long_coat else 0.95
    for sgn in (-1, 1):
        d.line(
            (cx + sgn * (shoulder - 0.02 * px), ys + 0.03 * px, cx + sgn * (shoulder + 0.07 * px), 0.5 * hh),
            fill=7,
            width=max(2, int(0.09 * px)),
        )
        d.ellipse((cx + sgn * (shoulder + 0.07 * px) - 0.04 * px, 0.5 * hh - 0.02 * px,
                   cx + sgn * (shoulder + 0.07 * px) + 0.04 * px, 0.5 * hh + 0.06 * px), fill=8)  # fmt: skip
    d.polygon(
        [(cx - shoulder, ys + 0.05 * px), (cx - shoulder * 0.7, ys), (cx + shoulder * 0.7, ys),
         (cx + shoulder, ys + 0.05 * px), (cx + shoulder * flare, hem), (cx - shoulder * flare, hem)],
        fill=6,
    )  # fmt: skip
    d.rectangle((cx - 0.035 * px, head_cy, cx + 0.035 * px, ys + 1), fill=8)
    if s.head == "hood":
        d.ellipse((cx - head_r * 1.45, head_cy - head_r * 1.3, cx + head_r * 1.45, head_cy + head_r * 1.5), fill=6)
    d.ellipse((cx - head_r * 0.85, head_cy - head_r, cx + head_r * 0.85, head_cy + head_r), fill=8)
    if s.head == "beanie":
        d.chord(
            (cx - head_r * 0.95, head_cy - head_r * 1.25, cx + head_r * 0.95, head_cy + head_r * 0.4), 180, 360, fill=9
        )
        d.ellipse((cx - head_r * 0.3, head_cy - head_r * 1.6, cx + head_r * 0.3, head_cy - head_r), fill=9)
    elif s.head == "cap":
        d.chord(
            (cx - head_r * 0.95, head_cy - head_r * 1.1, cx + head_r * 0.95, head_cy + head_r * 0.3), 180, 360, fill=9
        )
        d.rectangle((cx - head_r * 0.2, head_cy - head_r * 0.45, cx + head_r * 1.5, head_cy - head_r * 0.25), fill=9)
    elif s.head == "bare":
        d.chord(
            (cx - head_r * 0.9, head_cy - head_r * 1.05, cx + head_r * 0.9, head_cy + head_r * 0.2), 180, 360, fill=9
        )
    lab_a = np.array(lab)
    if s.carry == "holdall" and not bare:
        brgb, balpha = _holdall(px)
        bh, bw = balpha.shape
        y0 = int(0.5 * hh + 0.04 * px) - int(bh * 0.2)
        x0 = int(round(_holdall_offset_m(s) * px))
        region = lab_a[y0 : y0 + bh, x0 : x0 + bw]
        region[balpha[: region.shape[0], : region.shape[1]]] = 10
    yy, xx = _coords(hh, ww)
    coat = _texture(s.pattern, yy - ys, xx - cx, s.c1, s.c2, s.period * px)
    coat = coat * (0.8 + 0.2 * np.cos(np.clip((xx - cx) / (shoulder + 2), -1, 1) * np.pi / 2))[..., None]
    sleeve = s.c2 if s.pattern == "raglan" else None
    rgb = np.zeros((hh, ww, 3), np.float32)
    for v, colour in (
        (1, s.bag1),
        (2, s.bag1 * 0.8),
        (3, _grey(70)),
        (4, s.trousers),
        (5, _grey(30)),
        (8, s.skin),
        (9, s.c2 * 0.6 + 20 if s.head in ("beanie", "cap") else s.hair),
    ):
        rgb[lab_a == v] = colour
    rgb[lab_a == 6] = coat[lab_a == 6]
    rgb[lab_a == 7] = sleeve if sleeve is not None else coat[lab_a == 7] * 0.85
    if s.carry == "backpack":  # straps over the coat
        strap = (
            (lab_a == 6) & (np.abs(np.abs(xx - cx) - shoulder * 0.55) < max(1.0, 0.025 * px)) & (yy < ys + 0.22 * hh)
        )
        rgb[strap] = s.bag2
    if s.carry == "roller":  # the case's seams and the second colour on its corners
        case = lab_a == 2
        rgb[case & ((yy % max(3.0, 0.12 * px)) < 1.0)] = s.bag2
    if s.carry == "holdall" and not bare:
        bh, bw = balpha.shape
        y0 = int(0.5 * hh + 0.04 * px) - int(bh * 0.2)
        x0 = int(round(_holdall_offset_m(s) * px))
        sub = lab_a[y0 : y0 + bh, x0 : x0 + bw] == 10
        rgb[y0 : y0 + bh, x0 : x0 + bw][sub] = brgb[: sub.shape[0], : sub.shape[1]][sub]
    return np.clip(rgb, 0, 255), lab_a > 0


def _draw_cart(s: _CartSpec, px: float) -> tuple[np.ndarray, np.ndarray]:
    """A flat luggage cart with a push bar, boxes stacked on its deck, a tarp over the top one."""
    ww, hh = max(10, int(round(1.45 * px))), max(8, int(round(1.2 * px)))
    img = Image.new("RGB", (ww, hh), (0, 0, 0))
    lab = Image.new("L", (ww, hh), 0)
    d, m = ImageDraw.Draw(img), ImageDraw.Draw(lab)
    deck = hh - 0.16 * px
    frame = tuple(int(c) for c in s.frame)
    for dd, fill in ((d, frame), (m, 1)):
        dd.rectangle((0.02 * px, deck, ww - 1, deck + 0.06 * px), fill=fill)
        dd.line((0.05 * px, deck, 0.05 * px, 0.02 * px), fill=fill, width=max(1, int(0.04 * px)))
        dd.line((0.05 * px, 0.04 * px, 0.25 * px, 0.04 * px), fill=fill, width=max(1, int(0.04 * px)))
        for wx in (0.2 * px, ww - 0.22 * px):
            dd.ellipse((wx - 0.09 * px, hh - 0.18 * px, wx + 0.09 * px, hh - 1), fill=(25, 25, 25) if dd is d else 1)
    x, y = 0.14 * px, deck
    for i, (bw, bh, hue) in enumerate(s.boxes):
        bw_px, bh_px = bw * px, bh * px
        if x + bw_px > ww - 2:
            x, y = 0.14 * px + 0.1 * px * (i % 2), y - bh_px
        box = (x, y - bh_px, x + bw_px, y)
        card = tuple(int(c) for c in _rgb(0.08 + 0.03 * hue, 0.45 + 0.2 * hue, 0.55 + 0.3 * hue))
        d.rectangle(box, fill=card, outline=(70, 50, 30))
        m.rectangle(box, fill=1)
        tape = tuple(int(c) for c in _rgb(hue, 0.8, 0.9))
        d.rectangle((x + bw_px * 0.45, y - bh_px, x + bw_px * 0.55, y), fill=tape)
        d.rectangle((x + bw_px * 0.1, y - bh_px * 0.7, x + bw_px * 0.35, y - bh_px * 0.4), fill=(240, 240, 235))
        x += bw_px + 0.03 * px
    top = int(y - max(b[1] for b in s.boxes) * px)
    rgb = np.asarray(img, dtype=np.float32).copy()
    alpha = np.asarray(lab) > 0
    yy, xx = _coords(hh, ww)
    tarp = alpha & (yy < top + 0.12 * px) & (yy >= top) & (xx > 0.1 * px)
    rgb[tarp] = s.tarp * (0.85 + 0.15 * np.sin(xx[tarp] / max(1.0, 0.05 * px)))[..., None]
    return rgb, alpha


# --- places ---------------------------------------------------------------------------------------------


def _hash(i: np.ndarray, j: np.ndarray, salt: float) -> np.ndarray:
    v = np.sin(i * 127.1 + j * 311.7 + salt * 74.7) * 43758.5453
    return v - np.floor(v)


@dataclass(frozen=True, eq=False)
class _Fixture:
    """Something standing in the scene: hides objects smaller (farther) than `scale`."""

    mask: np.ndarray
    rgb: np.ndarray
    scale: float


def _posters(img: np.ndarray, rng: np.random.Generator, y0: int, y1: int, n: int) -> None:
    _, w, _ = img.shape
    for i in range(n):
        x0 = int((i + rng.uniform(0.1, 0.3)) * w / n)
        x1 = x0 + int(rng.uniform(0.45, 0.65) * w / n)
        img[y0:y1, x0:x1] = _rgb(rng.random(), rng.uniform(0.4, 0.9), rng.uniform(0.5, 0.95))
        band = y0 + int((y1 - y0) * rng.uniform(0.5, 0.75))
        img[band : band + max(1, (y1 - y0) // 6), x0:x1] = _rgb(rng.random(), 0.3, 0.95)
        img[y0 : y0 + 2, x0:x1] = 40


def _platform(
    size: tuple[int, int], rng: np.random.Generator, lanes: list[_Lane]
) -> tuple[np.ndarray, list[_Fixture], int, int]:
    """Far wall, track bed, edge line and slabs seen from high up; a column on the platform."""
    w, h = size
    yy, xx = _coords(h, w)
    img = np.zeros((h, w, 3), np.float32)
    wall_end, edge = int(0.12 * h), int(rng.uniform(0.3, 0.34) * h)
    tile = _rgb(rng.uniform(0.1, 0.17), 0.2, 0.85)
    img[:wall_end] = tile * (0.9 + 0.1 * ((xx[:wall_end] % max(3, w // 48)) > 1))[..., None]
    _posters(img, rng, int(0.015 * h), wall_end - int(0.02 * h), 4)
    bed = (yy >= wall_end) & (yy < edge)
    ballast = 45 + 35 * _hash(np.floor(xx / 2), np.floor(yy / 2), 3.0)
    img[bed] = (ballast[..., None] * np.array([1.0, 0.93, 0.85], np.float32))[bed]
    sleepers = bed & ((xx % max(4, w // 40)) < max(2, w // 110))
    img[sleepers] = (70, 55, 40)
    for r in (0.35, 0.7):
        ry = int(wall_end + r * (edge - wall_end))
        img[ry : ry + max(1, h // 120) + 1] = (175, 175, 180)
    img[edge : edge + max(2, h // 45)] = (235, 200, 30)  # the yellow line
    tact_y1 = edge + max(2, h // 45) + max(3, h // 22)
    dots = (np.hypot(xx % 6 - 3, yy % 6 - 3) < 1.6) & (yy >= edge + max(2, h // 45)) & (yy < tact_y1)
    img[(yy >= edge + max(2, h // 45)) & (yy < tact_y1)] = (200, 185, 120)
    img[dots] = (160, 145, 90)
    floor = yy >= tact_y1
    y_h = -0.55 * h  # vanishing row above the frame: the camera looks down
    depth = yy - y_h
    v, u = 40.0 * h / depth, (xx - w / 2) / depth * 9
    stone = (_rgb(rng.uniform(0.05, 0.12), 0.12, 0.7), _rgb(rng.uniform(0.55, 0.65), 0.08, 0.55))
    t = (_hash(np.floor(u), np.floor(v), 1.0) > 0.5)[..., None]
    slabs = stone[0] * t + stone[1] * (1 - t)
    grout = ((u % 1) < 0.04) | ((v % 1) < 0.05)
    slabs[grout] *= 0.6
    img[floor] = slabs[floor]
    # a column on the platform, between the middle and near lanes, from the roof to its foot
    col_scale = (lanes[1].scale + lanes[2].scale) / 2
    foot = int(((lanes[1].foot + lanes[2].foot) / 2) * h)
    cw = int(0.06 * w * col_scale / 0.7)
    cx = int(rng.uniform(0.15, 0.8) * w)
    col = (xx >= cx) & (xx < cx + cw) & (yy < foot)
    shade = 0.7 + 0.3 * np.sin(np.pi * (xx - cx) / max(cw, 1))
    col_rgb = np.zeros_like(img)
    col_rgb[col] = (_rgb(rng.random(), 0.25, 0.6) * shade[..., None])[col]
    img[col] = col_rgb[col]
    return img, [_Fixture(col, col_rgb, col_scale)], wall_end, edge


def _stairs(
    size: tuple[int, int], rng: np.random.Generator, lanes: list[_Lane]
) -> tuple[np.ndarray, list[_Fixture], np.ndarray]:
    """Two escalator flights seen from the side under a concrete wall; a handrail in front; a shadow."""
    w, h = size
    yy, xx = _coords(h, w)
    concrete = _rgb(rng.uniform(0.05, 0.15), 0.08, 0.62)
    field_ = _hash(np.floor(xx / 24), np.floor(yy / 24), 5.0)
    img = concrete * (0.88 + 0.12 * field_)[..., None]
    img[: int(0.06 * h)] = 35  # the ceiling's dark edge
    for ln, dark in ((lanes[0], 0.55), (lanes[1], 0.42)):  # the back flight, then the front one
        line = ln.foot * h - ln.slope * xx
        panel = (yy > line) & (yy < line + 0.07 * h)
        steps = panel & (((xx + (yy - line) / max(ln.slope, 0.05)) % 14) < 2)
        img[panel] = _grey(150) * (0.85 + 0.15 * (yy[panel] - line[panel]) / (0.07 * h))[..., None]
        img[steps] = 80
        skirt = (yy >= line + 0.07 * h) & (yy < line + 0.16 * h)
        img[skirt] = _grey(255 * dark) * np.array([1.0, 1.02, 1.08], np.float32)
    # posters along the wall, parallel to the flights
    for i in range(3):
        px0 = int((0.1 + 0.3 * i) * w)
        base = lanes[0].foot * h - lanes[0].slope * px0 - 0.5 * h
        img[int(base) : int(base + 0.16 * h), px0 : px0 + int(0.14 * w)] = _rgb(rng.random(), 0.6, 0.85)
    # the front flight's handrail, at waist height of its riders, in front of both flights
    front = lanes[1]
    rail_y = front.foot * h - front.slope * xx - 1.0 * (h / 4) * front.scale
    rail = np.abs(yy - rail_y) < max(1.5, 0.008 * h)
    rail_rgb = np.zeros_like(img)
    rail_rgb[rail] = (25, 25, 28)
    img[rail] = rail_rgb[rail]
    # a hard diagonal shadow from the landing above, brighter towards the top
    shade = np.where(yy + 0.6 * xx > rng.uniform(0.7, 0.9) * h + 0.6 * rng.uniform(0.3, 0.6) * w, 0.72, 1.0)
    shade = shade * (1.12 - 0.3 * yy / h)
    return img, [_Fixture(rail, rail_rgb, front.scale + 0.01)], shade.astype(np.float32)


def _hall(size: tuple[int, int], rng: np.random.Generator, lanes: list[_Lane]) -> tuple[np.ndarray, list[_Fixture]]:
    """A ticket hall at eye level: a departure board, ticket machines, tiles, a row of gates."""
    w, h = size
    yy, xx = _coords(h, w)
    horizon = int(0.44 * h)
    wall = _rgb(rng.uniform(0.5, 0.7), rng.uniform(0.1, 0.3), rng.uniform(0.6, 0.8))
    img = np.broadcast_to(wall, (h, w, 3)).astype(np.float32).copy()
    img[: int(0.08 * h)] = 210  # ceiling with tubes
    img[int(0.03 * h) : int(0.045 * h), :: max(2, w // 8)] = 250
    bx0 = int(rng.uniform(0.1, 0.5) * w)
    bx1 = bx0 + int(0.35 * w)
    by0, by1 = int(0.12 * h), int(0.24 * h)
    img[by0:by1, bx0:bx1] = 18
    board = (yy >= by0 + 3) & (yy < by1 - 3) & (xx >= bx0 + 4) & (xx < bx1 - 4)
    lit = board & ((yy - by0) % 7 < 3) & (_hash(np.floor(xx / 3), np.floor(yy / 7), 9.0) > 0.45)
    img[lit] = (255, 170, 30)
    for _ in range(int(rng.integers(2, 4))):  # ticket machines against the wall
        mw = int(0.07 * w)
        mx = int(rng.uniform(0, w - mw))
        body = _rgb(rng.choice([0.0, 0.6, 0.33]), 0.7, 0.6)
        img[int(0.27 * h) : horizon, mx : mx + mw] = body
        img[int(0.3 * h) : int(0.36 * h), mx + 3 : mx + mw - 3] = (120, 200, 230)
    floor = yy >= horizon
    depth = np.maximum(yy - horizon, 1)
    u, v = (xx - w / 2) / depth * 1.3, 3.5 * h / depth
    t = ((np.floor(u) + np.floor(v)) % 2)[..., None]
    tiles = _rgb(rng.uniform(0.0, 1.0), 0.1, 0.75) * t + _rgb(rng.uniform(0, 1), 0.25, 0.35) * (1 - t)
    img[floor] = tiles[floor]
    # gates between the far and middle lanes, about a metre high, with passages between them
    g_scale = (lanes[0].scale + lanes[1].scale) / 2
    g_foot = ((lanes[0].foot + lanes[1].foot) / 2) * h
    gh, gw, gap = 1.0 * h / 4 * g_scale, 0.18 * h / 4 * g_scale * 1.6, 0.55 * h / 4 * g_scale
    gates = np.zeros((h, w), bool)
    rgb = np.zeros_like(img)
    x = float(rng.uniform(-gw, gap))
    while x < w:
        cab = (xx >= x) & (xx < x + gw) & (yy < g_foot) & (yy >= g_foot - gh)
        gates |= cab
        rgb[cab] = (165, 168, 175)
        top = cab & (yy < g_foot - gh + 0.12 * gh)
        rgb[top] = (40, 40, 45)
        lamp = cab & (np.abs(yy - (g_foot - gh * 0.8)) < 2) & (np.abs(xx - x - gw / 2) < 2)
        rgb[lamp] = (40, 230, 60) if rng.random() < 0.6 else (230, 40, 40)
        x += gw + gap
    img[gates] = rgb[gates]
    return img, [_Fixture(gates, rgb, g_scale)]


@dataclass(frozen=True, eq=False)
class _Look:
    """How a camera turns light into pixels, and what changes its light over time."""

    role: str
    noise: float
    quality: int  # JPEG quality
    flicker: float  # amplitude of tube flicker
    shade: np.ndarray | None  # (H, W) fixed light and shadow
    fixtures: tuple[_Fixture, ...]
    track: tuple[int, int] = (0, 0)  # rows of the track bed (the platform)


# --- the site -------------------------------------------------------------------------------------------


@dataclass(eq=False)
class StationSite(Site):
    """A `Site` whose passes may climb (escalators), whose objects may change (a bag put down),
    with fixtures at a depth, trains, changing light and JPEG compression."""

    looks: list[_Look] = field(default_factory=list)
    trains: list[_Train] = field(default_factory=list)
    variants: dict[int, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    bag: int = -1
    bag_owner: int = -1
    _scaled: dict[tuple[int, int, int], tuple[np.ndarray, np.ndarray]] = field(default_factory=dict, repr=False)

    def pass_sprite(self, p: Pass) -> tuple[np.ndarray, np.ndarray]:
        """The sprite pass `p` shows: the object's, or its other look (`Walk.variant`)."""
        variant = getattr(p, "variant", 0)
        if not variant:
            return self.sprite(p.oid, p.scale)
        rgb0, alpha0 = self.variants[p.oid]
        h0, w0 = alpha0.shape
        h, w = max(8, int(round(h0 * p.scale))), max(8, int(round(w0 * p.scale)))
        key = (p.oid, variant, h * 10_000 + w)
        if key not in self._scaled:
            iy = np.minimum((np.arange(h) + 0.5) * h0 / h, h0 - 1).astype(int)
            ix = np.minimum((np.arange(w) + 0.5) * w0 / w, w0 - 1).astype(int)
            self._scaled[key] = (rgb0[iy][:, ix], alpha0[iy][:, ix])
        return self._scaled[key]

    def placement(self, p: Pass, t: float) -> tuple[int, int, int, int]:
        _, alpha = self.pass_sprite(p)
        h, w = alpha.shape
        u = (t - p.t0) / (p.t1 - p.t0)
        if p.back:
            u = 1 - abs(2 * u - 1)
        x = p.x0 + u * (p.x1 - p.x0)
        foot = p.foot_y + u * getattr(p, "rise", 0.0)
        bob = 0.0 if getattr(p, "still", False) else 2.5 * np.sin(2 * np.pi * (t - p.t0) / 1.1 + p.oid) * p.scale
        return int(round(x)), int(round(foot - h + bob)), w, h

    def _compose(self, camera: int, t: float) -> tuple[np.ndarray, np.ndarray, dict[int, int]]:
        look = self.looks[camera]
        width, height = self.size
        img = self.cameras[camera].background.copy()
        if look.role == "platform":
            for train in self.trains:
                _draw_train(img, train, t, look.track)
        owner = np.full((height, width), -1, dtype=np.int32)
        live = sorted((p for p in self.passes if p.camera == camera and p.t0 <= t <= p.t1), key=lambda p: p.scale)
        whole: dict[int, int] = {}
        fixtures = sorted(look.fixtures, key=lambda f: f.scale)
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

    def _light(self, camera: int, t: float, img: np.ndarray) -> np.ndarray:
        cam, look = self.cameras[camera], self.looks[camera]
        height, width = img.shape[:2]
        rng = np.random.default_rng([self.seed, camera, int(round(t * 1000)), 0x57A7])
        gain = cam.exposure * (1 + look.flicker * float(rng.standard_normal()))
        lit = img * (np.asarray(cam.gains, dtype=np.float32) * gain)
        if look.shade is not None:
            lit *= look.shade[..., None]
        if look.flicker:  # rolling bands of the tubes, moving between frames
            rows = np.arange(height, dtype=np.float32)
            bands = 1 + 0.6 * look.flicker * np.sin(2 * np.pi * rows / (0.4 * height) + 7.3 * t)
            lit *= bands[:, None, None]
        if look.role == "platform":
            lit += _train_glow(self.trains, t, width, height, look.track)
        yy, xx = _coords(height, width)
        lit *= (1 - 0.22 * (((xx - width / 2) / width) ** 2 + ((yy - height / 2) / height) ** 2) * 2)[..., None]
        lit += look.noise * rng.standard_normal(lit.shape).astype(np.float32)
        lit += look.noise * 0.6 * rng.standard_normal((height, width, 1)).astype(np.float32)  # luma grain
        out = np.clip(lit, 0, 255).astype(np.uint8)
        buf = io.BytesIO()
        Image.fromarray(out).save(buf, "JPEG", quality=look.quality)
        return np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB")).copy()


def _train_front(train: _Train, t: float, width: int) -> float | None:
    """Column of the train's front at `t` (None when no part of it is in view)."""
    length = 3.0 * width
    start, stop, end = -0.1 * width, 0.97 * width, length + 1.2 * width
    if not train.t0 <= t <= train.t1:
        return None
    if train.t_stop == train.t0:  # running through
        x = start + (t - train.t0) / (train.t1 - train.t0) * (end - start)
    elif t <= train.t_stop:
        u = (t - train.t0) / (train.t_stop - train.t0)
        x = start + (1 - (1 - u) ** 2) * (stop - start)
    elif t <= train.t_go:
        x = stop
    else:
        u = (t - train.t_go) / (train.t1 - train.t_go)
        x = stop + u * u * (end - stop)
    return x if train.direction > 0 else width - x


def _draw_train(img: np.ndarray, train: _Train, t: float, track: tuple[int, int]) -> None:
    width = img.shape[1]
    front = _train_front(train, t, width)
    if front is None:
        return
    length = 3.0 * width
    x0, x1 = (front - length, front) if train.direction > 0 else (front, front + length)
    a, b = max(int(x0), 0), min(int(x1), width)
    if b <= a:
        return
    y0, y1 = track[0] + 2, track[1] - 2
    cols = np.arange(a, b)
    img[y0:y1, a:b] = 190
    stripe = y0 + int(0.62 * (y1 - y0))
    img[stripe : stripe + max(2, (y1 - y0) // 8), a:b] = train.livery
    win = ((cols - x0) % 60 < 40) & ((cols - x0) % 240 > 70)
    wy0, wy1 = y0 + int(0.15 * (y1 - y0)), y0 + int(0.5 * (y1 - y0))
    img[wy0:wy1, a:b][:, win] = (250, 235, 190)
    door = ((cols - x0) % 240) < 8
    img[y0:y1, a:b][:, door] = 120


def _train_glow(trains: list[_Train], t: float, width: int, height: int, track: tuple[int, int]) -> np.ndarray:
    """Headlights sweeping the platform, window light spilling onto it while a train stands."""
    glow = np.zeros((height, width, 1), np.float32)
    yy, xx = _coords(height, width)
    for train in trains:
        front = _train_front(train, t, width)
        if front is None:
            continue
        moving = not train.t_stop <= t <= train.t_go or train.t_stop == train.t0
        if moving:
            glow[..., 0] += 110 * np.exp(
                -(((xx - front) / (0.18 * width)) ** 2 + ((yy - track[1]) / (0.25 * height)) ** 2)
            )
        else:
            glow[..., 0] += 28 * np.exp(-np.maximum(yy - track[1], 0) / (0.3 * height))
    return glow * np.array([1.0, 0.95, 0.8], np.float32)


def _draw(plan: _Plan, seed: int, size: tuple[int, int]) -> StationSite:
    rng = np.random.default_rng([seed, 0xD7A3])
    width, height = size
    px = height / 4.0
    cameras, looks = [], []
    for c, role in enumerate(plan.roles):
        lanes = plan.lanes[c]
        shade = None
        track = (0, 0)
        if role == "platform":
            bg, fixtures, y0, y1 = _platform(size, rng, lanes)
            track = (y0, y1)
            gains = (1 - rng.uniform(0.0, 0.05), 1 + rng.uniform(0.04, 0.1), 1 - rng.uniform(0.02, 0.08))  # LED, green
            exposure, noise, quality, flicker = rng.uniform(0.85, 0.95), 4.5, int(rng.integers(40, 55)), 0.0
        elif role == "stairs":
            bg, fixtures, shade = _stairs(size, rng, lanes)
            gains = (1 + rng.uniform(0.06, 0.14), 1 + rng.uniform(-0.02, 0.03), 1 - rng.uniform(0.08, 0.14))  # warm
            exposure, noise, quality, flicker = rng.uniform(0.9, 1.0), 3.0, int(rng.integers(55, 70)), 0.0
        else:
            bg, fixtures = _hall(size, rng, lanes)
            gains = (1 - rng.uniform(0.06, 0.12), 1 + rng.uniform(0.0, 0.04), 1 + rng.uniform(0.08, 0.14))  # cool
            exposure, noise, quality, flicker = rng.uniform(1.0, 1.12), 2.5, int(rng.integers(28, 40)), 0.05
        cameras.append(Camera(role, np.clip(bg, 0, 255).astype(np.float32), gains, float(exposure)))  # type: ignore[arg-type]
        looks.append(_Look(role, noise, quality, flicker, shade, tuple(fixtures), track))
    figures, variants = [], {}
    for k, spec in enumerate(plan.specs):
        if isinstance(spec, _PersonSpec):
            rgb, alpha = _draw_person(spec, px)
            name = f"{spec.pattern}-{k}"
            if spec.carry == "holdall":
                variants[k] = _draw_person(spec, px, bare=True)
        elif isinstance(spec, _CartSpec):
            rgb, alpha = _draw_cart(spec, px)
            name = f"cart-{k}"
        else:
            rgb, alpha = _holdall(px)
            name = f"holdall-{k}"
        figures.append(Figure(k, name, rgb.astype(np.float32), alpha, plan.look_alike_of[k]))
    duration = max(p.t1 for p in plan.passes) + 2.0
    return StationSite(
        FAMILY,
        seed,
        cameras,
        figures,
        list(plan.passes),
        duration,
        size=size,
        looks=looks,
        trains=plan.trains,
        variants=variants,
        bag=len(figures) - 1,
        bag_owner=plan.bag_owner,
    )


def _usable(site: StationSite) -> bool:
    """Whether every traveller is seen whole on its first camera (so a user can cut a crop) and
    every other object is seen at least half on some frame."""
    travellers = set(site.travellers())
    for f in site.figures:
        first = site.visits(f.oid)[0]
        frac = 1.0 if f.oid in travellers else 0.5
        times = [t for t in site.times(first.camera) if first.t0 <= t <= first.t1]
        if not any(_seen(site, first.camera, t, f.oid, frac) for t in times):
            return False
    return True


def _seen(site: StationSite, camera: int, t: float, oid: int, fraction: float) -> bool:
    _, owner, whole = site._compose(camera, t)
    return oid in whole and int((owner == oid).sum()) >= fraction * whole[oid]


def station_site(seed: int, size: tuple[int, int] = FRAME) -> StationSite:
    """A station site for `seed`: 2 or 3 cameras, 5 travellers, 1-2 strangers and a left bag."""
    for attempt in range(20):
        site = _draw(_plan(seed, attempt, size), seed, size)
        if _usable(site):
            return site
    raise RuntimeError(f"no usable station plan for seed {seed}")  # pragma: no cover
