"""Family "lobby": a building's entrance hall, a corridor and a lift lobby, made apart from the
families of `reid_families` (nothing was tuned on it) so re-identification and watchlist figures
on it are honest.

Only the frame is shared (`Camera`, `Figure`, `Pass`, `Site`: how frames, truth and crops are
rendered). Everything drawn here is this module's own:

- rooms are ray-cast boxes (floor, walls, ceiling, back wall) seen by a pinhole camera with its
  own height, focal length, horizon and yaw, textured in world metres (tiles in perspective,
  skirting, doors, glass doors, lift doors, ceiling lights) and supersampled 2x; plants, benches
  and bins stand on the floor, projected by the same camera;
- objects are paper dolls at 90 px per metre: people of several builds (narrow or wide
  shoulders, short jacket or long coat) with a shoulder bag, a backpack, a tote or nothing, in
  coats with slanted stripes, gingham checks, colour fades, chest prints or a colour-blocked yoke;
  and luggage: hard-shell suitcases and trolleys stacked with a box and a holdall;
- every pass walks a lane of the floor: its apparent size follows from where its feet are
  (nearer is lower and larger, 0.7-1.3), so an object seen on two cameras is seen at two scales;
- the entrance is bright and warm, the corridor cool with a planter in the foreground that hides
  the legs of whoever walks the nearest lane behind it, the lift lobby dark (two-camera sites
  keep the entrance and a dark lift lobby with the planter);
- four known objects per site come in through the entrance two or three at a time, crossing
  each other in different lanes, then walk on to the corridor and/or the lift lobby; some only
  peek in at the edge of a camera; two or three distractors appear on one camera only, one or
  two of them look-alikes of a known object (same shape and colours, another texture).

Watchlist crops are `Site.crop`: every known object's first pass is on the entrance, so the
crops of the four known objects come from that camera, cut with `MARGIN` as a user draws them.

    >>> site = lobby_site(1)
    >>> image, truth = site.render(0, 10.0)
    >>> crop = site.crop(site.travellers()[0])

Deterministic for a seed; seeds divisible by 3 give two cameras, others three.
"""

from __future__ import annotations

import colorsys
from dataclasses import dataclass, replace

import numpy as np

from generators.reid_families import FRAME, Camera, Figure, Pass, Site

FAMILY = "lobby"
PX_PER_M = 90.0  # sprite pixels per metre at scale 1
SCALES = (0.7, 1.3)  # apparent sizes a pass may have
PATTERNS = ("slant", "gingham", "fade", "print", "yoke")

Colour = np.ndarray  # (3,) float32, 0..255


def _rgb(h: float, s: float, v: float) -> Colour:
    return np.array(colorsys.hsv_to_rgb(h % 1.0, s, v), dtype=np.float32) * 255


def _grey(v: float) -> Colour:
    return np.full(3, v, dtype=np.float32)


# --- raster helpers ---------------------------------------------------------------------------------------


def _grid(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel-centre coordinates (y, x) of an (h, w) canvas."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    return yy + 0.5, xx + 0.5


def _ellipse(yy: np.ndarray, xx: np.ndarray, cy: float, cx: float, ry: float, rx: float) -> np.ndarray:
    return ((yy - cy) / max(ry, 0.5)) ** 2 + ((xx - cx) / max(rx, 0.5)) ** 2 <= 1.0


def _polygon(yy: np.ndarray, xx: np.ndarray, pts: list[tuple[float, float]]) -> np.ndarray:
    """Even-odd fill of the polygon with vertices `pts` ((x, y) pairs)."""
    inside = np.zeros(yy.shape, dtype=bool)
    for (x0, y0), (x1, y1) in zip(pts, pts[1:] + pts[:1], strict=True):
        if y0 == y1:
            continue
        span = (yy >= min(y0, y1)) & (yy < max(y0, y1))
        cross = x0 + (yy - y0) * (x1 - x0) / (y1 - y0)
        inside ^= span & (xx < cross)
    return inside


def _rect(yy: np.ndarray, xx: np.ndarray, x0: float, y0: float, x1: float, y1: float) -> np.ndarray:
    return (xx >= x0) & (xx < x1) & (yy >= y0) & (yy < y1)


def _bar(yy: np.ndarray, xx: np.ndarray, a: tuple[float, float], b: tuple[float, float], half: float) -> np.ndarray:
    """A straight stroke from a to b ((x, y) points), `half` pixels either side."""
    (ax, ay), (bx, by) = a, b
    dx, dy = bx - ax, by - ay
    u = np.clip(((xx - ax) * dx + (yy - ay) * dy) / max(dx * dx + dy * dy, 1e-6), 0, 1)
    return (xx - ax - u * dx) ** 2 + (yy - ay - u * dy) ** 2 <= half * half


def _hash01(i: np.ndarray, j: np.ndarray, salt: float) -> np.ndarray:
    """A repeatable pseudo-random value in 0..1 per integer cell (i, j)."""
    v = np.sin(i * 12.9898 + j * 78.233 + salt * 37.719) * 43758.5453
    return v - np.floor(v)


# --- textures of coats and luggage ------------------------------------------------------------------------


def _pattern(
    kind: str, yy: np.ndarray, xx: np.ndarray, c1: Colour, c2: Colour, angle: float, period: float
) -> np.ndarray:
    """An (h, w, 3) texture in two colours; (yy, xx) are relative to the garment's top centre."""
    ca, sa = np.cos(angle), np.sin(angle)
    if kind == "slant":  # stripes at `angle`, the second colour the narrower band
        s = (xx * ca + yy * sa) / period
        t = ((s - np.floor(s)) < 0.38).astype(np.float32)
    elif kind == "gingham":  # woven checks: one colour, the other, and their mix where bands cross
        bx = ((xx / period) % 1.0) < 0.5
        by = ((yy / period) % 1.0) < 0.5
        t = 0.5 * bx.astype(np.float32) + 0.5 * by.astype(np.float32)
    elif kind == "fade":  # a smooth ramp from one colour to the other along `angle`
        s = xx * ca + yy * sa
        lo, hi = float(s.min()), float(s.max())
        t = np.clip((s - lo) / max(hi - lo, 1.0), 0, 1) ** 1.3
    elif kind == "print":  # plain, with an emblem on the chest: a ring or a star, and a name bar
        r = np.hypot(xx, yy - 3.2 * period)
        theta = np.arctan2(yy - 3.2 * period, xx) + angle
        if int(period) % 2:
            emblem = (r < 2.1 * period) & (r > 1.3 * period)
        else:
            emblem = r < period * (1.3 + 0.8 * np.cos(5 * theta))
        bar = (np.abs(xx) < 1.8 * period) & (np.abs(yy - 5.6 * period) < 0.35 * period)
        t = (emblem | bar).astype(np.float32)
    elif kind == "yoke":  # colour-blocked: a shoulder yoke cut at `angle` and a band at the hem
        cut = yy - 2.6 * period - np.tan(angle * 0.4) * xx
        t = ((cut < 0) | ((yy > 7.5 * period) & (yy < 8.5 * period))).astype(np.float32)
    else:
        raise ValueError(f"unknown pattern {kind!r}")
    return c1 * (1 - t)[..., None] + c2 * t[..., None]


# --- objects ------------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class _Person:
    height: int  # px at scale 1
    shoulder: float  # half-width of the shoulders, px
    hem: float  # half-width of the coat's hem, px
    coat_len: float  # shoulder to hem, fraction of the height
    c1: Colour
    c2: Colour
    pattern: str
    angle: float
    period: float
    trousers: Colour
    skin: Colour
    hair: Colour
    hair_style: str  # "short", "long", "cap"
    carry: str  # "none", "shoulder", "backpack", "tote"
    bag: Colour


@dataclass(frozen=True, eq=False)
class _Luggage:
    kind: str  # "suitcase", "trolley"
    height: int
    width: int
    c1: Colour
    c2: Colour
    pattern: str
    angle: float
    period: float


def _draw_person(p: _Person) -> tuple[np.ndarray, np.ndarray]:
    hh = p.height
    side = 16 if p.carry in ("shoulder", "tote") else 9
    ww = int(2 * (max(p.shoulder + 7, p.hem) + side))
    cx = ww / 2
    yy, xx = _grid(hh, ww)
    rgb = np.zeros((hh, ww, 3), np.float32)
    alpha = np.zeros((hh, ww), bool)

    def put(mask: np.ndarray, colour: np.ndarray) -> None:
        rgb[mask] = colour[mask] if colour.ndim == 3 else colour
        alpha[mask] = True

    ys = 0.165 * hh  # shoulder line
    yh = ys + p.coat_len * hh  # hem
    feet = 0.965 * hh
    head_cy, head_ry, head_rx = 0.075 * hh, 0.066 * hh, 0.05 * hh
    rel_y, rel_x = yy - ys, xx - cx
    coat_tex = _pattern(p.pattern, rel_y, rel_x, p.c1, p.c2, p.angle, p.period)
    # volume: the coat darkens towards its sides
    coat_tex = coat_tex * (0.78 + 0.22 * np.cos(np.clip(rel_x / (p.shoulder + 8), -1, 1) * np.pi / 2))[..., None]

    if p.carry == "backpack":  # behind the body: shows at the sides and above a shoulder
        put(_rect(yy, xx, cx - p.shoulder - 5, ys - 7, cx + p.shoulder + 5, ys + 0.3 * hh), p.bag)
        put(_ellipse(yy, xx, ys - 6, cx, 6, p.shoulder + 4), p.bag * 0.85)
    if p.hair_style == "long":
        put(_ellipse(yy, xx, head_cy + 0.05 * hh, cx, 0.09 * hh, head_rx * 1.35), p.hair)
    # legs, then shoes
    stride = 0.06 * hh
    leg_w = 0.037 * hh + 0.12 * (p.hem - 18)
    top = min(yh, 0.55 * hh) - 2
    for sgn in (-1, 1):
        hip_x = cx + sgn * (leg_w + 1)
        foot_x = cx + sgn * stride
        leg = _polygon(
            yy,
            xx,
            [(hip_x - leg_w, top), (hip_x + leg_w, top), (foot_x + leg_w * 0.75, feet), (foot_x - leg_w * 0.75, feet)],
        )
        put(leg, p.trousers * (1.0 if sgn < 0 else 0.88))
        put(_ellipse(yy, xx, feet, foot_x + sgn * 3, 0.022 * hh, leg_w + 3), _grey(38))
    # arms (sleeves in the coat's texture, darker) and hands
    arm_end = 0.5 * hh
    for sgn in (-1, 1):
        sx = cx + sgn * (p.shoulder - 2)
        ex = cx + sgn * (p.shoulder + 5)
        arm = _bar(yy, xx, (sx, ys + 5), (ex, arm_end), 0.032 * hh)
        put(arm, coat_tex * 0.82)
        put(_ellipse(yy, xx, arm_end + 4, ex, 5, 4), p.skin)
    # coat body
    body = _polygon(
        yy,
        xx,
        [
            (cx - p.shoulder, ys + 5),
            (cx - p.shoulder + 5, ys),
            (cx + p.shoulder - 5, ys),
            (cx + p.shoulder, ys + 5),
            (cx + p.hem, yh),
            (cx - p.hem, yh),
        ],
    )
    put(body, coat_tex)
    put(_polygon(yy, xx, [(cx - 6, ys), (cx + 6, ys), (cx, ys + 0.07 * hh)]), p.skin * 0.9)  # open collar
    # neck, head, hair
    put(_rect(yy, xx, cx - 0.024 * hh, head_cy, cx + 0.024 * hh, ys + 1), p.skin * 0.92)
    put(_ellipse(yy, xx, head_cy, cx, head_ry, head_rx), p.skin)
    if p.hair_style == "cap":
        put(
            _ellipse(yy, xx, head_cy - 0.35 * head_ry, cx, 0.7 * head_ry, head_rx * 1.05)
            & (yy < head_cy - 0.2 * head_ry),
            p.c2,
        )
        put(
            _rect(yy, xx, cx - head_rx * 1.1, head_cy - 0.28 * head_ry, cx + head_rx * 1.7, head_cy - 0.12 * head_ry),
            p.c2 * 0.7,
        )
    else:
        cap = _ellipse(yy, xx, head_cy - 0.15 * head_ry, cx, head_ry * 0.95, head_rx * 1.08) & (
            yy < head_cy - 0.3 * head_ry
        )
        put(cap, p.hair)
    # things carried in front
    if p.carry == "backpack":
        for sgn in (-1, 1):
            put(
                _rect(
                    yy, xx, cx + sgn * p.shoulder * 0.55 - 2.5, ys, cx + sgn * p.shoulder * 0.55 + 2.5, ys + 0.2 * hh
                ),
                p.bag * 0.8,
            )
    elif p.carry == "shoulder":
        put(_bar(yy, xx, (cx - p.shoulder + 4, ys + 1), (cx + p.hem + 4, 0.47 * hh), 1.6), p.bag * 0.7)
        put(_rect(yy, xx, cx + p.hem - 4, 0.46 * hh, cx + p.hem + 14, 0.59 * hh), p.bag)
        put(_rect(yy, xx, cx + p.hem - 4, 0.46 * hh, cx + p.hem + 14, 0.49 * hh), p.bag * 0.75)  # flap
    elif p.carry == "tote":
        hx = cx - p.shoulder - 5
        put(
            _bar(yy, xx, (hx - 6, 0.56 * hh), (hx, arm_end + 4), 1.4)
            | _bar(yy, xx, (hx + 6, 0.56 * hh), (hx, arm_end + 4), 1.4),
            p.bag * 0.6,
        )
        put(
            _polygon(yy, xx, [(hx - 10, 0.56 * hh), (hx + 10, 0.56 * hh), (hx + 12, 0.72 * hh), (hx - 12, 0.72 * hh)]),
            p.bag,
        )
    return rgb, alpha


def _draw_luggage(g: _Luggage) -> tuple[np.ndarray, np.ndarray]:
    hh, ww = g.height, g.width
    yy, xx = _grid(hh, ww)
    rgb = np.zeros((hh, ww, 3), np.float32)
    alpha = np.zeros((hh, ww), bool)

    def put(mask: np.ndarray, colour: np.ndarray) -> None:
        rgb[mask] = colour[mask] if colour.ndim == 3 else colour
        alpha[mask] = True

    metal, tyre = _grey(150), _grey(30)
    if g.kind == "suitcase":
        body_top, body_bot = 0.36 * hh, 0.93 * hh
        x0, x1 = 3.0, ww - 3.0
        for bx in (x0 + 0.28 * (x1 - x0), x1 - 0.28 * (x1 - x0)):  # telescopic handle
            put(_rect(yy, xx, bx - 1.5, 2, bx + 1.5, body_top), metal)
        put(_rect(yy, xx, x0 + 0.22 * (x1 - x0), 0, x1 - 0.22 * (x1 - x0), 5), _grey(45))
        r = 7.0
        shell = _rect(yy, xx, x0, body_top + r, x1, body_bot - r) | _rect(yy, xx, x0 + r, body_top, x1 - r, body_bot)
        for cy in (body_top + r, body_bot - r):
            for cxx in (x0 + r, x1 - r):
                shell |= _ellipse(yy, xx, cy, cxx, r, r)
        tex = _pattern(g.pattern, yy - body_top, xx - ww / 2, g.c1, g.c2, g.angle, g.period)
        ribs = 0.9 + 0.1 * np.cos((xx - x0) / (x1 - x0) * 6 * np.pi)  # the shell's moulded grooves
        put(shell, tex * ribs[..., None])
        put(_rect(yy, xx, x0, (body_top + body_bot) / 2 - 1, x1, (body_top + body_bot) / 2 + 1), _grey(55))  # zip
        for wx in (x0 + 6, x1 - 6):
            put(_ellipse(yy, xx, hh - 4, wx, 4, 4), tyre)
    else:  # trolley: a frame on wheels with a box and a holdall on its base
        base = 0.9 * hh
        put(_rect(yy, xx, 4, 2, 8, base), metal)  # upright
        put(_rect(yy, xx, 4, 2, 22, 6), metal)  # handle
        put(_rect(yy, xx, 4, base - 3, ww - 2, base + 3), _grey(80))  # platform
        for wx in (12, ww - 10):
            put(_ellipse(yy, xx, hh - 5, wx, 5, 5), tyre)
        box_top = base - 0.42 * hh
        tex = _pattern(g.pattern, yy - box_top, xx - (ww + 8) / 2, g.c1, g.c2, g.angle, g.period)
        put(_rect(yy, xx, 10, box_top, ww - 4, base - 3), tex)
        put(_rect(yy, xx, (ww + 8) / 2 - 3, box_top, (ww + 8) / 2 + 3, base - 3), g.c2 * 0.6 + 60)  # tape
        bag = _ellipse(yy, xx, box_top - 0.13 * hh, (ww + 6) / 2, 0.14 * hh, (ww - 12) / 2)
        put(bag, _pattern("slant" if g.pattern != "slant" else "fade", yy, xx, g.c2, g.c2 * 0.6, 1.2, 7.0))
        put(_bar(yy, xx, (ww * 0.35, box_top - 0.26 * hh), (ww * 0.7, box_top - 0.26 * hh), 2.0), _grey(35))
    return rgb, alpha


def _figure(oid: int, name: str, spec: _Person | _Luggage, look_alike_of: int | None = None) -> Figure:
    rgb, alpha = _draw_person(spec) if isinstance(spec, _Person) else _draw_luggage(spec)
    return Figure(oid, name, np.clip(rgb, 0, 255).astype(np.float32), alpha, look_alike_of)


def _person(rng: np.random.Generator, hue: float) -> _Person:
    wide = rng.random() < 0.5
    height = int(round(rng.uniform(1.58, 1.9) * PX_PER_M))
    shoulder = height * (rng.uniform(0.125, 0.15) if wide else rng.uniform(0.095, 0.112))
    long_coat = rng.random() < 0.5
    return _Person(
        height=height,
        shoulder=shoulder,
        hem=shoulder * (rng.uniform(1.0, 1.2) if long_coat else rng.uniform(0.82, 0.95)),
        coat_len=rng.uniform(0.46, 0.52) if long_coat else rng.uniform(0.33, 0.38),
        c1=_rgb(hue, rng.uniform(0.55, 0.9), rng.uniform(0.55, 0.9)),
        c2=_rgb(hue + rng.choice([0.5, 0.33, -0.15]), rng.uniform(0.2, 0.8), rng.choice([0.2, 0.95])),
        pattern=str(rng.choice(PATTERNS)),
        angle=float(rng.uniform(0.35, 1.2) * rng.choice([-1, 1])),
        period=float(rng.integers(5, 10)),
        trousers=_rgb(rng.random(), rng.uniform(0.1, 0.5), rng.uniform(0.15, 0.55)),
        skin=_rgb(rng.uniform(0.04, 0.09), rng.uniform(0.3, 0.6), rng.uniform(0.45, 0.92)),
        hair=_rgb(rng.uniform(0.05, 0.1), rng.uniform(0.2, 0.7), rng.uniform(0.08, 0.6)),
        hair_style=str(rng.choice(["short", "long", "cap"])),
        carry=str(rng.choice(["none", "shoulder", "backpack", "tote"])),
        bag=_rgb(rng.random(), rng.uniform(0.3, 0.8), rng.uniform(0.25, 0.7)),
    )


def _luggage(rng: np.random.Generator, hue: float, kind: str) -> _Luggage:
    tall = kind == "trolley"
    return _Luggage(
        kind=kind,
        height=int(round((rng.uniform(1.2, 1.35) if tall else rng.uniform(0.7, 0.85)) * PX_PER_M)),
        width=int(round((rng.uniform(0.75, 0.9) if tall else rng.uniform(0.42, 0.52)) * PX_PER_M)),
        c1=_rgb(hue, rng.uniform(0.5, 0.9), rng.uniform(0.5, 0.9)),
        c2=_rgb(hue + 0.5, rng.uniform(0.1, 0.6), rng.choice([0.25, 0.9])),
        pattern=str(rng.choice(PATTERNS)),
        angle=float(rng.uniform(0.35, 1.2) * rng.choice([-1, 1])),
        period=float(rng.integers(5, 9)),
    )


def _other_pattern(rng: np.random.Generator, spec: _Person | _Luggage) -> _Person | _Luggage:
    """The same object in another texture (same shape, same two colours)."""
    return replace(spec, pattern=str(rng.choice([k for k in PATTERNS if k != spec.pattern])))


# --- rooms --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _View:
    """A pinhole camera at (0, eye, 0) turned `yaw` to the right, in a box room: floor y=0,
    ceiling y=height, side walls x=left and x=right, back wall z=depth (metres)."""

    eye: float
    focal: float
    horizon: float  # pixel row of the horizon
    yaw: float
    left: float
    right: float
    depth: float
    height: float

    def project(self, x: float, y: float, z: float, width: int) -> tuple[float, float, float]:
        """Pixel (column, row) of a world point and pixels per metre there."""
        c, s = np.cos(self.yaw), np.sin(self.yaw)
        xc, zc = x * c - z * s, x * s + z * c
        zc = max(zc, 0.1)
        return width / 2 + self.focal * xc / zc, self.horizon - self.focal * (y - self.eye) / zc, self.focal / zc

    def foot_row(self, scale: float) -> float:
        """The row where an object stands that appears at `scale` (90 px per metre at 1)."""
        return self.horizon + scale * self.eye * PX_PER_M


def _raycast(view: _View, width: int, height: int, ss: int) -> dict[str, np.ndarray]:
    """Per (supersampled) pixel: which surface it sees (0 floor, 1 ceiling, 2 left, 3 right, 4 back)
    and the world point hit."""
    yy, xx = _grid(height * ss, width * ss)
    dx = (xx / ss - width / 2) / view.focal
    dy = (view.horizon - yy / ss) / view.focal
    c, s = np.cos(view.yaw), np.sin(view.yaw)
    wx, wz = dx * c + s, -dx * s + c
    with np.errstate(divide="ignore", invalid="ignore"):
        ts = np.stack(
            [
                np.where(dy < 0, -view.eye / dy, np.inf),
                np.where(dy > 0, (view.height - view.eye) / dy, np.inf),
                np.where(wx < 0, view.left / wx, np.inf),
                np.where(wx > 0, view.right / wx, np.inf),
                np.where(wz > 0, view.depth / wz, np.inf),
            ]
        )
    surface = np.argmin(ts, axis=0)
    t = np.take_along_axis(ts, surface[None], 0)[0]
    return {"surface": surface, "x": wx * t, "y": view.eye + dy * t, "z": wz * t}


@dataclass(frozen=True, eq=False)
class _Decor:
    floor: str  # "diamond", "grid", "inlay"
    tile: float  # metres
    stone: tuple[Colour, Colour]
    wall: Colour
    trim: Colour
    ceiling: Colour
    back: str  # "glass", "doors", "lifts"
    side_doors: int


def _room_pixels(view: _View, decor: _Decor, rng: np.random.Generator, size: tuple[int, int]) -> np.ndarray:
    width, height = size
    ss = 2
    hit = _raycast(view, width, height, ss)
    surf, X, Y, Z = hit["surface"], hit["x"], hit["y"], hit["z"]
    img = np.zeros(surf.shape + (3,), np.float32)
    s0, s1 = decor.stone
    # floor: tiles in world metres
    if decor.floor == "diamond":
        u, v = (X + Z) / (decor.tile * 1.414), (X - Z) / (decor.tile * 1.414)
    else:
        u, v = X / decor.tile, Z / decor.tile
    iu, iv = np.floor(u), np.floor(v)
    fu, fv = u - iu, v - iv
    if decor.floor == "diamond":
        t = ((iu + iv) % 2).astype(np.float32)
    elif decor.floor == "grid":
        t = 0.35 * _hash01(iu, iv, 1.0)
    else:  # "inlay": dark tiles with a light cross at every fourth seam
        t = ((iu % 4 == 0) | (iv % 4 == 0)).astype(np.float32) * 0.8
    floor = s0 * (1 - t)[..., None] + s1 * t[..., None]
    grout = (np.minimum(np.minimum(fu, 1 - fu), np.minimum(fv, 1 - fv)) < 0.035)[..., None]
    floor = np.where(grout, floor * 0.7, floor)
    dist = np.hypot(X, Z)
    far = np.clip((dist - 9) / 14, 0, 1)[..., None]  # the far floor fades to its mean, as a lens blurs it
    floor = floor * (1 - far) + floor[surf == 0].mean(0) * far
    img[surf == 0] = floor[surf == 0]
    # ceiling: light panels on a grid
    panel = ((X % 2.4) < 0.9) & ((Z % 3.0) < 1.2)
    ceil = np.where(panel[..., None], _grey(245), decor.ceiling)
    img[surf == 1] = ceil[surf == 1]
    # walls: paint, skirting, a dado rail, doors
    along = np.where(surf == 4, X, Z)  # the wall's own horizontal coordinate
    wall = np.broadcast_to(decor.wall, img.shape).copy()
    wall[Y < 0.12] = decor.trim * 0.6
    wall[np.abs(Y - 1.0) < 0.04] = decor.trim
    sides = (surf == 2) | (surf == 3)
    for k in range(decor.side_doors):
        z0 = view.depth * (0.3 + 0.6 * k / max(decor.side_doors, 1)) + rng.uniform(-0.5, 0.5)
        which = 2 + k % 2
        door = (surf == which) & (np.abs(along - z0) < 0.5) & (Y < 2.1)
        frame = (surf == which) & (np.abs(along - z0) < 0.6) & (Y < 2.2) & ~door
        wood = _rgb(rng.uniform(0.05, 0.1), rng.uniform(0.4, 0.7), rng.uniform(0.35, 0.65))
        wall[frame] = decor.trim
        wall[door] = wood * (0.92 + 0.08 * np.sin(Y[door] * 40))[..., None]
        wall[door & (np.abs(along - (z0 + 0.38)) < 0.05) & (np.abs(Y - 1.0) < 0.03)] = _grey(210)
    back = surf == 4
    if decor.back == "glass":  # entrance: glazed double doors between windows, daylight behind
        sky = np.stack([170 + 30 * Y, 200 + 20 * Y, 235 + 5 * Y], -1).astype(np.float32)
        glass = back & (Y > 0.1) & (Y < 2.6) & (np.abs(X) < 3.2)
        mullion = glass & ((np.abs(X) % 1.05 < 0.07) | (np.abs(Y - 2.3) < 0.05))
        wall[glass] = sky[glass]
        wall[mullion] = _grey(60)
    elif decor.back == "lifts":  # two lift doors in steel frames, a floor indicator above each
        for lx in (-1.3, 1.3):
            frame = back & (np.abs(X - lx) < 0.7) & (Y < 2.35)
            door = back & (np.abs(X - lx) < 0.55) & (Y < 2.2)
            wall[frame] = _grey(105)
            steel = (150 + 40 * np.cos((X - lx) * 9)).astype(np.float32)[..., None] * np.ones(3, np.float32)
            wall[door] = steel[door]
            wall[door & (np.abs(X - lx) < 0.015)] = _grey(40)
            ind = back & (np.abs(X - lx) < 0.2) & (np.abs(Y - 2.5) < 0.07)
            wall[ind] = _grey(25)
            wall[ind & (np.abs(X - lx - 0.08) < 0.03)] = np.array([255, 140, 30], np.float32)
        wall[back & (np.abs(X) < 0.06) & (np.abs(Y - 1.1) < 0.1)] = _grey(200)  # call buttons
    else:  # a corridor's far end: a door and a window
        wall[back & (np.abs(X - 0.8) < 0.5) & (Y < 2.1)] = decor.trim * 0.8
        wall[back & (np.abs(X + 1.4) < 0.8) & (np.abs(Y - 1.6) < 0.6)] = np.array([200, 215, 235], np.float32)
    walls = sides | back
    img[walls] = wall[walls]
    # light: brighter near the camera and under the ceiling, a soft falloff with distance
    shade = 1.05 - 0.3 * np.clip(dist / 20, 0, 1) + 0.05 * np.clip(Y / view.height, 0, 1)
    img *= shade[..., None]
    img = img.reshape(height, ss, width, ss, 3).mean((1, 3))
    return img.astype(np.float32)


def _props(img: np.ndarray, view: _View, rng: np.random.Generator, kinds: list[str]) -> None:
    """Plants, benches and bins standing near the walls, beyond the lanes people walk."""
    height, width = img.shape[:2]
    yy, xx = _grid(height, width)
    far_z = view.focal * view.eye / (view.foot_row(SCALES[0]) - view.horizon) + 0.8  # behind the far lane
    spots = []
    for kind in kinds:
        z = rng.uniform(far_z, view.depth - 0.4)
        x = rng.uniform(view.left + 0.6, view.right - 0.6)
        spots.append((z, x, kind))
    for z, x, kind in sorted(spots, reverse=True):  # far to near
        u, v, ppm = view.project(x, 0.0, z, width)
        if not (-40 < u < width + 40):
            continue
        if kind == "plant":
            pot = _polygon(
                yy,
                xx,
                [
                    (u - 0.22 * ppm, v - 0.45 * ppm),
                    (u + 0.22 * ppm, v - 0.45 * ppm),
                    (u + 0.16 * ppm, v),
                    (u - 0.16 * ppm, v),
                ],
            )
            img[pot] = np.array([150, 80, 50], np.float32)
            for _ in range(9):
                lx, ly = u + rng.normal(0, 0.22) * ppm, v - (0.6 + rng.uniform(0, 0.7)) * ppm
                leaf = _ellipse(yy, xx, ly, lx, rng.uniform(0.12, 0.22) * ppm, rng.uniform(0.06, 0.12) * ppm)
                img[leaf] = _rgb(rng.uniform(0.25, 0.38), rng.uniform(0.5, 0.8), rng.uniform(0.3, 0.6))
        elif kind == "bench":
            seat = _rect(yy, xx, u - 0.8 * ppm, v - 0.48 * ppm, u + 0.8 * ppm, v - 0.4 * ppm)
            backrest = _rect(yy, xx, u - 0.8 * ppm, v - 0.9 * ppm, u + 0.8 * ppm, v - 0.78 * ppm)
            legs = _rect(yy, xx, u - 0.7 * ppm, v - 0.45 * ppm, u - 0.64 * ppm, v) | _rect(
                yy, xx, u + 0.64 * ppm, v - 0.45 * ppm, u + 0.7 * ppm, v
            )
            wood = _rgb(rng.uniform(0.06, 0.1), 0.55, rng.uniform(0.45, 0.7))
            img[legs] = _grey(50)
            img[seat | backrest] = wood
        else:  # bin
            body = _rect(yy, xx, u - 0.17 * ppm, v - 0.7 * ppm, u + 0.17 * ppm, v)
            img[body] = _grey(rng.uniform(90, 140))
            img[_rect(yy, xx, u - 0.19 * ppm, v - 0.74 * ppm, u + 0.19 * ppm, v - 0.66 * ppm)] = _grey(60)


def _planter(size: tuple[int, int], rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A long planter in the camera's foreground: its mask and pixels (a `Camera.occluder`)."""
    width, height = size
    yy, xx = _grid(height, width)
    x0 = rng.uniform(0.2, 0.45) * width
    x1 = x0 + rng.uniform(0.28, 0.36) * width
    top = height - rng.uniform(50, 60)
    rgb = np.zeros((height, width, 3), np.float32)
    box = _rect(yy, xx, x0, top, x1, height)
    rgb[box] = (np.array([120, 110, 100], np.float32) * (0.9 + 0.1 * np.sin(xx[box] * 0.8))[..., None]).astype(
        np.float32
    )
    rim = _rect(yy, xx, x0 - 3, top - 4, x1 + 3, top + 3)
    rgb[rim] = _grey(160)
    mask = box | rim
    for _ in range(16):
        lx, ly = rng.uniform(x0 + 8, x1 - 8), top - rng.uniform(2, 26)
        leaf = _ellipse(yy, xx, ly, lx, rng.uniform(8, 15), rng.uniform(5, 10))
        rgb[leaf] = _rgb(rng.uniform(0.24, 0.36), rng.uniform(0.5, 0.85), rng.uniform(0.3, 0.65))
        mask |= leaf
    return mask, rgb


def _camera(role: str, rng: np.random.Generator, size: tuple[int, int], planter: bool) -> tuple[Camera, _View]:
    """One camera of the site: its room, white balance and exposure, and a planter in front if asked."""
    _, height = size
    eye = rng.uniform(1.45, 1.75)
    low = height - 12 - SCALES[1] * eye * PX_PER_M  # the nearest lane still stands inside the frame
    if role == "entrance":
        yaw = rng.uniform(-0.15, 0.15)
    elif role == "corridor":  # looking along one wall
        yaw = rng.choice([-1, 1]) * rng.uniform(0.3, 0.45)
    else:
        yaw = rng.uniform(-0.1, 0.1)
    view = _View(
        eye=eye,
        focal=rng.uniform(380, 460),
        horizon=rng.uniform(low - 30, low),
        yaw=float(yaw),
        left=-rng.uniform(5.5, 7.5),
        right=rng.uniform(5.5, 7.5),
        depth=rng.uniform(11, 16),
        height=rng.uniform(3.2, 4.5),
    )
    gains: tuple[float, float, float]
    if role == "entrance":  # bright, warm
        stone = (_rgb(0.08, 0.15, 0.85), _rgb(0.6, 0.1, 0.35))
        decor = _Decor(
            "diamond", rng.uniform(0.5, 0.7), stone, _rgb(0.1, 0.12, 0.88), _grey(120), _grey(225), "glass", 2
        )
        gains = (1 + rng.uniform(0.05, 0.13), 1 + rng.uniform(-0.03, 0.03), 1 - rng.uniform(0.05, 0.13))
        exposure = rng.uniform(1.0, 1.1)
        props = ["plant", "plant", "bench"]
    elif role == "corridor":  # fluorescent, cool
        stone = (_rgb(0.55, 0.1, 0.7), _rgb(0.55, 0.2, 0.4))
        decor = _Decor("grid", rng.uniform(0.3, 0.45), stone, _rgb(0.3, 0.1, 0.8), _grey(90), _grey(235), "doors", 4)
        gains = (1 - rng.uniform(0.05, 0.12), 1 + rng.uniform(0.0, 0.06), 1 + rng.uniform(0.06, 0.15))
        exposure = rng.uniform(0.92, 1.05)
        props = ["bench", "plant", "bin"]
    else:  # the lift lobby: dim, a cast of its own
        stone = (_rgb(0.1, 0.2, 0.35), _rgb(0.12, 0.15, 0.8))
        decor = _Decor("inlay", rng.uniform(0.5, 0.8), stone, _rgb(0.08, 0.3, 0.7), _grey(70), _grey(200), "lifts", 0)
        cast = rng.normal(size=3)
        cast = (cast - cast.mean()) / np.abs(cast - cast.mean()).max() * rng.uniform(0.07, 0.13)
        gains = (1 + float(cast[0]), 1 + float(cast[1]), 1 + float(cast[2]))
        exposure = rng.uniform(0.62, 0.74)
        props = ["bench", "plant", "bin"]
    background = _room_pixels(view, decor, rng, size)
    _props(background, view, rng, props)
    occluder = occluder_rgb = None
    if planter:
        occluder, occluder_rgb = _planter(size, rng)
        background[occluder] = occluder_rgb[occluder]
    background = np.clip(background, 0, 255).astype(np.float32)
    return Camera(role, background, gains, float(exposure), occluder, occluder_rgb), view


# --- the site -----------------------------------------------------------------------------------------------


@dataclass
class _Lane:
    scale: float
    busy: list[tuple[float, float]]


class _Schedule:
    """Passes on each camera's lanes; a lane holds one object at a time, so objects that share a
    camera at once walk at different depths and cross, the nearer hiding part of the farther."""

    def __init__(self, rng: np.random.Generator, views: list[_View], width: int, planted: int) -> None:
        self.rng, self.views, self.width = rng, views, width
        lo, hi = SCALES
        self.lanes = [
            [_Lane(float(rng.uniform(a, b)), []) for a, b in ((lo, lo + 0.12), (0.9, 1.05), (hi - 0.15, hi - 0.01))]
            for _ in views
        ]
        self.front = self.lanes[planted][-1]  # the lane behind the planter: someone walks it
        self.passes: list[Pass] = []

    def _lane(self, cam: int, t0: float, t1: float, avoid: list[float]) -> _Lane:
        """A lane free between t0 and t1, at a scale unlike `avoid` (the object's scales on other
        cameras); a lane near those scales counts as two objects already there. The first object
        that may walk the lane behind the planter does."""

        def cost(lane: _Lane) -> tuple[int, int, float]:
            clash = sum(1 for a, b in lane.busy if a < t1 + 0.5 and t0 < b + 0.5)
            near = any(abs(lane.scale - s) < 0.12 for s in avoid)
            first_behind_planter = lane is self.front and not lane.busy and not near
            return 2 * near + clash - 3 * first_behind_planter, clash, float(self.rng.random())

        return min(self.lanes[cam], key=cost)

    def cross(self, oid: int, cam: int, t0: float, sprite_w: int, avoid: list[float], speed: float) -> Pass:
        """A walk across the whole frame, from a random side, at `speed` m/s."""
        dur = (self.width + sprite_w + 20) / (speed * PX_PER_M)  # at scale 1, to pick a lane
        lane = self._lane(cam, t0, t0 + dur, avoid)
        w = sprite_w * lane.scale
        dur = (self.width + w + 20) / (speed * PX_PER_M * lane.scale)
        left_in = self.rng.random() < 0.5
        a, b = -w - 10, self.width + 10
        p = Pass(
            oid,
            cam,
            t0,
            t0 + dur,
            a if left_in else b,
            b if left_in else a,
            self.views[cam].foot_row(lane.scale),
            lane.scale,
        )
        lane.busy.append((p.t0, p.t1))
        self.passes.append(p)
        return p

    def peek(self, oid: int, cam: int, t0: float, sprite_w: int, avoid: list[float]) -> Pass:
        """In at one edge, a part of it into view, and out again."""
        dur = float(self.rng.uniform(3.0, 4.5))
        lane = self._lane(cam, t0, t0 + dur, avoid)
        w = sprite_w * lane.scale
        reach = w * self.rng.uniform(0.35, 0.7)
        if self.rng.random() < 0.5:
            x0, x1 = -w - 2, -w + reach
        else:
            x0, x1 = self.width + 2, self.width - reach
        p = Pass(oid, cam, t0, t0 + dur, x0, x1, self.views[cam].foot_row(lane.scale), lane.scale, back=True)
        lane.busy.append((p.t0, p.t1))
        self.passes.append(p)
        return p

    def undo(self, p: Pass) -> None:
        """Take back the last pass made."""
        assert self.passes[-1] is p
        self.passes.pop()
        next(ln for ln in self.lanes[p.camera] if ln.scale == p.scale).busy.remove((p.t0, p.t1))

    def loiter(self, oid: int, cam: int, t0: float, sprite_w: int) -> Pass:
        """Waiting about: a slow drift inside the frame (at the lifts, by the door)."""
        dur = float(self.rng.uniform(8, 12))
        lane = self._lane(cam, t0, t0 + dur, [])
        w = sprite_w * lane.scale
        x0 = self.rng.uniform(0.15, 0.75) * self.width
        x1 = min(max(x0 + self.rng.choice([-1, 1]) * self.rng.uniform(40, 90), 5.0), self.width - w - 5)
        p = Pass(oid, cam, t0, t0 + dur, x0, x1, self.views[cam].foot_row(lane.scale), lane.scale)
        lane.busy.append((p.t0, p.t1))
        self.passes.append(p)
        return p


def lobby_site(seed: int, size: tuple[int, int] = FRAME) -> Site:
    """A lobby site for `seed`: 2 or 3 cameras, 4 known objects, 2-3 distractors."""
    rng = np.random.default_rng([seed, 0x10BB7])
    width, _ = size
    roles = ["entrance", "lift"] if seed % 3 == 0 else ["entrance", "corridor", "lift"]
    planted = "corridor" if "corridor" in roles else "lift"
    cams, views = [], []
    for role in roles:
        cam, view = _camera(role, rng, size, planter=role == planted)
        cams.append(cam)
        views.append(view)
    n_cams = len(cams)

    # objects: four known (three or two people, the rest luggage), then the distractors
    hue0 = rng.random()
    luggage = ["suitcase"] if rng.random() < 0.5 else ["suitcase", "trolley"]
    rng.shuffle(luggage)
    kinds = ["person"] * (4 - len(luggage)) + luggage
    specs: list[_Person | _Luggage] = []
    for k, kind in enumerate(kinds):
        hue = hue0 + k * 0.618
        specs.append(_person(rng, hue) if kind == "person" else _luggage(rng, hue, kind))
    figures = [_figure(k, f"{kinds[k]}-{k}", s) for k, s in enumerate(specs)]
    people = [k for k, kind in enumerate(kinds) if kind == "person"]
    n_distractors = int(rng.integers(2, 4))  # one or two look-alikes and at least one stranger
    originals = [int(rng.choice(people))]
    if n_distractors == 3 and rng.random() < 0.6:
        originals.append(int(rng.choice([k for k in range(4) if k not in originals])))
    for src in originals:
        oid = len(figures)
        figures.append(_figure(oid, f"like-{src}", _other_pattern(rng, specs[src]), look_alike_of=src))
    while len(figures) < 4 + n_distractors:  # a stranger of its own colours
        oid = len(figures)
        stranger = _person(rng, hue0 + 0.31) if rng.random() < 0.7 else _luggage(rng, hue0 + 0.31, "suitcase")
        figures.append(_figure(oid, f"stranger-{oid}", stranger))

    # known objects: in through the entrance two or three at a time, then on
    sched = _Schedule(rng, views, width, roles.index(planted))
    gap = rng.uniform(3.5, 5.0)
    order = rng.permutation(4)
    peekers = set(rng.choice(4, size=int(rng.integers(1, 3)), replace=False).tolist())
    routes = [[1]] * 4  # after the entrance: the lift lobby of a two-camera site
    while n_cams == 3 and min(sum(c in r for r in routes) for c in (1, 2)) < 2:  # both seen by two or more
        options = ([1, 2], [1, 2], [2, 1], [1], [2])
        routes = [list(options[int(rng.integers(len(options)))]) for _ in range(4)]
    for i, k in enumerate(order):
        k = int(k)
        sw = figures[k].alpha.shape[1]
        speed = rng.uniform(0.8, 1.2) if kinds[k] == "person" else rng.uniform(0.7, 0.95)
        p = sched.cross(k, 0, 1.0 + i * gap + rng.uniform(0, 0.8), sw, [], speed)
        scales = [p.scale]
        route = list(routes[k])
        if k in peekers:  # it also peeks into a camera, before or after its walk there
            at = int(rng.integers(0, len(route) + 1))
            peek_cam = int(rng.choice([c for c in range(n_cams) if c not in route or n_cams == 2]))
            route.insert(at, -1 - peek_cam)
        t = p.t1
        for step in route:
            t += rng.uniform(2.0, 6.0)
            if step < 0:
                q = sched.peek(k, -1 - step, t, sw, scales)
            else:
                q = sched.cross(k, step, t, sw, scales, speed)
                scales.append(q.scale)
            t = q.t1
    known_end = max(p.t1 for p in sched.passes)

    # distractors: one camera each; a look-alike where its original also walks, at another time
    for fig in figures[4:]:
        sw = fig.alpha.shape[1]
        behind = False
        if fig.look_alike_of is not None:
            theirs = [p for p in sched.passes if p.oid == fig.look_alike_of and not p.back]
            mine = theirs[int(rng.integers(len(theirs)))]
            where = mine.camera
            before = mine.t0 - rng.uniform(10, 14)
            t0 = before if before > 0.5 and rng.random() < 0.5 else mine.t1 + rng.uniform(3, 8)
        else:  # a stranger; the first walks behind the planter if no known object did
            behind = not sched.front.busy
            where = roles.index(planted) if behind else int(rng.integers(n_cams))
            t0 = rng.uniform(2.0, known_end - 8)
        if where == n_cams - 1 and fig.look_alike_of is None and not behind and rng.random() < 0.6:
            sched.loiter(fig.oid, where, t0, sw)
            continue
        speed = float(rng.uniform(0.8, 1.2))
        original = [(p.t0, p.t1) for p in sched.passes if p.oid == fig.look_alike_of and p.camera == where]
        while True:  # a look-alike is never in view with its original
            q = sched.cross(fig.oid, where, t0, sw, [], speed)
            clash = [b for a, b in original if a < q.t1 + 1 and q.t0 < b + 1]
            if not clash:
                break
            sched.undo(q)
            t0 = max(clash) + rng.uniform(2, 5)

    passes = sorted(sched.passes, key=lambda p: (p.oid >= 4, p.t0))  # the known first, each from its entrance walk
    duration = max(p.t1 for p in passes) + 2.0
    return Site(FAMILY, seed, cams, figures, passes, duration, size=size)
