"""The `stage` family of shot-boundary videos: 2.5D stage sets filmed by a moving camera.

A third, held-out family, made independently of `generators.groundtruth` and
`generators.scenecut_families` (only their records, the `true_time` convention and the encoder
set-up are shared), so that a detector tuned on those is reported on pictures it was never shaped by.

Each shot films a *set*: a painted backdrop at the back (sky and buildings, a brick or papered
wall with shelves and a window, hills and foliage, a curtained hall with spotlights), two to four
flat layers of props standing at different depths (lamp posts, trees, cars, tables, cabinets,
plants, crates, barrels, railings) and sometimes foreground props close to the lens. A pinhole
camera trucks, pedestals, dollies, pans, tilts and zooms, so near layers move more than far ones,
and some shots are handheld. Shots are joined by hard cuts, cuts to another framing of the same
set (a close-up, a reverse angle, another part; kind `view_cut`), dissolves and fades through black
or white. Inside shots, things that are not shot changes: flash or strobe frames, a whip pan
within the set, a large object passing right in front of the lens, part of the set lit or darkened
at once, people walking through. On top: sensor noise, exposure and colour-temperature drift, and
H.264 (crf 18-38, some with short GOPs) or MPEG-4 Part 2 encodes, 320x180 to 1280x720, 24/25/30 fps.

Everything is deterministic for a seed.

    >>> truth = make_stage_video("stage-3.mp4", seed=3)  # doctest: +SKIP
    >>> [(t.kind, t.start, t.end) for t in truth.transitions][:2]  # doctest: +SKIP
"""

from __future__ import annotations

import colorsys
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from fractions import Fraction

import av
import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from generators.groundtruth import Distractor, DistractorKind, GroundTruth, ShotInfo, Transition
from generators.scenecut_families import CUT_KINDS, Encoding, add_video_stream, true_time

__all__ = [
    "CALM",
    "CUT_KINDS",
    "STAGE_EFFECTS",
    "STAGE_FAMILY",
    "STAGE_TRANSITION_KINDS",
    "Encoding",
    "StageStyle",
    "make_stage_video",
    "true_time",
]

STAGE_FAMILY = "stage"
STAGE_TRANSITION_KINDS = ("cut", "view_cut", "dissolve", "fade", "fade_white")
_TRANSITION_WEIGHTS = (0.5, 0.17, 0.15, 0.1, 0.08)  # hard cuts of either kind: about two thirds
# What happens inside a shot, and the distractor kind it is recorded as.
STAGE_EFFECTS: dict[str, DistractorKind] = {
    "flash": "flash",  # camera flash or strobe: 1-3 much brighter frames
    "whip": "fast_pan",  # a whip pan to another part of the same set
    "occluder": "occluder",  # something large passing right in front of the lens
    "walker": "occluder",  # a person walking through the set
    "lights": "drift",  # part of the set lit up or darkened at once
}
SIZES = ((320, 180), (480, 270), (640, 360), (854, 480), (960, 540), (1280, 720))
FRAME_RATES = (24, 25, 30)
_MARGIN_S = 1.0  # effects keep this far from transitions
_EDGE_S = 0.5  # and this far from the video's start and end
_WORK_WIDTH = 640  # sets are filmed at most this wide, then scaled to the video's size
_BACK_Z = 10.0  # the backdrop's distance from the camera's rest position (world units)
_EYE = 1.2  # the camera's height above the floor
_MAX_CANVAS = 6_000_000  # pixels of one layer's picture


@dataclass(frozen=True)
class StageStyle:
    """How hard the camera and the sensor work; `CALM` is a still camera without noise or drift."""

    move: float = 1.0  # scales every camera speed
    handheld: float = 0.4  # share of shots filmed handheld
    shake: float = 0.008  # largest handheld shake, share of the view's width
    noise: tuple[float, float] = (0.0, 7.0)  # sensor noise sigma range, grey levels
    exposure: float = 0.1  # largest slow exposure drift, relative gain
    warmth: float = 0.06  # largest slow colour-temperature drift, relative red/blue gain
    effect_rate: float = 0.75  # chance that a shot holds something that is not a shot change


CALM = StageStyle(move=0.1, handheld=0.0, noise=(0.0, 0.0), exposure=0.0, warmth=0.0)


# --- the plan: shots, transitions and what happens inside them ---------------------------------


@dataclass
class _Effect:
    name: str
    a: int  # first local frame it changes
    b: int  # first local frame it no longer changes
    params: dict[str, float] = field(default_factory=dict)


@dataclass
class _Shot:
    set_id: int
    view: int
    into: str | None  # transition kind into this shot
    into_frames: tuple[int, int, int]  # (out, hold, in) frames of that transition
    solo: int  # frames seen alone
    effects: list[str] = field(default_factory=list)
    first: int = 0  # first global frame showing it
    last: int = 0  # first global frame not showing it
    solo_start: int = 0
    solo_end: int = 0
    placed: list[_Effect] = field(default_factory=list)


def _transition_frames(rng: np.random.Generator, kind: str, fps: int) -> tuple[int, int, int]:
    if kind in CUT_KINDS:
        return (0, 0, 0)
    if kind == "dissolve":
        return (0, round(rng.uniform(0.5, 2.0) * fps), 0)
    if kind in ("fade", "fade_white"):
        return (
            round(rng.uniform(0.3, 0.9) * fps),
            round(rng.uniform(0.0, 0.4) * fps),
            round(rng.uniform(0.3, 0.9) * fps),
        )
    raise ValueError(f"unknown transition kind {kind!r}")


def _plan_shots(
    rng: np.random.Generator,
    fps: int,
    duration: float,
    shot_s: tuple[float, float],
    plan: Sequence[tuple[str | None, str | None]] | None,
    effect_rate: float,
) -> list[_Shot]:
    """Shot lengths and transitions: the lengths fill `duration`, or follow `plan` (one shot each)."""
    shots: list[_Shot] = []
    min_solo, max_solo = round(shot_s[0] * fps), round(shot_s[1] * fps)
    if plan is not None:
        if not plan or plan[0][0] is not None:
            raise ValueError("the first shot of a plan has no transition into it")
        for kind, effect in plan:
            if kind is not None and kind not in STAGE_TRANSITION_KINDS:
                raise ValueError(f"unknown transition kind {kind!r}")
            if effect is not None and effect not in STAGE_EFFECTS:
                raise ValueError(f"unknown effect {effect!r}")
            frames = _transition_frames(rng, kind, fps) if kind else (0, 0, 0)
            solo = int(rng.integers(min_solo, max_solo + 1))
            shots.append(_Shot(0, 0, kind, frames, solo, [effect] if effect else []))
    else:
        total = round(duration * fps)
        longest_transition = round(2.2 * fps)
        rest, kind, frames = total, None, (0, 0, 0)
        while True:
            if rest <= max_solo:
                shots.append(_Shot(0, 0, kind, frames, rest))
                break
            solo = min(int(rng.integers(min_solo, max_solo + 1)), rest - longest_transition - min_solo)
            shots.append(_Shot(0, 0, kind, frames, solo))
            kind = STAGE_TRANSITION_KINDS[rng.choice(len(STAGE_TRANSITION_KINDS), p=_TRANSITION_WEIGHTS)]
            frames = _transition_frames(rng, kind, fps)
            rest -= solo + sum(frames)
        names = list(STAGE_EFFECTS)
        for shot in shots:
            if rng.random() < effect_rate:
                count = 2 if shot.solo > 7 * fps and rng.random() < 0.4 else 1
                shot.effects = [names[int(rng.integers(len(names)))] for _ in range(count)]
    set_id = view = 0
    for shot in shots[1:]:
        if shot.into == "view_cut":
            view += 1
        else:
            set_id, view = set_id + 1, 0
        shot.set_id, shot.view = set_id, view
    return shots


Timeline = list[tuple[list[tuple[int, float]], float, float]]  # per frame: (shot, weight)s, fill value, fill weight


def _lay_out(shots: list[_Shot], fps: int) -> tuple[Timeline, list[Transition]]:
    """Which shots each frame shows and how much of each; the transitions' times."""
    timeline: Timeline = []
    transitions: list[Transition] = []
    for k, shot in enumerate(shots):
        if k:
            n_out, hold, n_in = shot.into_frames
            start = len(timeline)
            shot.first = start
            if shot.into == "dissolve":
                m = hold
                for j in range(m):
                    w = (j + 1) / (m + 1)
                    timeline.append(([(k - 1, 1 - w), (k, w)], 0.0, 0.0))
                shots[k - 1].last = len(timeline)
            elif shot.into in ("fade", "fade_white"):
                fill = 0.0 if shot.into == "fade" else 255.0
                for j in range(n_out):
                    w = (j + 1) / (n_out + 1)
                    timeline.append(([(k - 1, 1 - w)], fill, w))
                shots[k - 1].last = len(timeline)
                timeline.extend(([], fill, 1.0) for _ in range(hold))
                shot.first = len(timeline)
                for j in range(n_in):
                    w = (j + 1) / (n_in + 1)
                    timeline.append(([(k, w)], fill, 1 - w))
            transitions.append(Transition(shot.into, start / fps, len(timeline) / fps, k - 1, k))  # type: ignore[arg-type]
        shot.solo_start = len(timeline)
        timeline.extend(([(k, 1.0)], 0.0, 0.0) for _ in range(shot.solo))
        shot.solo_end = shot.last = len(timeline)
    return timeline, transitions


def _place_effects(rng: np.random.Generator, shots: list[_Shot], fps: int, strict: bool) -> None:
    """Put each shot's effects in the part it is seen alone, `_MARGIN_S` from its transitions."""
    margin, edge = round(_MARGIN_S * fps), round(_EDGE_S * fps)
    for k, shot in enumerate(shots):
        lo = shot.solo_start - shot.first + (margin if k else edge)
        hi = shot.solo_end - shot.first - (margin if k + 1 < len(shots) else edge)
        lengths = [_effect_length(rng, name, fps) for name in shot.effects]
        gap = round(0.5 * fps)
        room = hi - lo - sum(lengths) - gap * (len(lengths) - 1)
        if room < 0:
            if strict:
                raise ValueError(f"shot {k} is too short for {shot.effects}")
            continue
        slack = np.sort(rng.uniform(0, room, len(lengths))).astype(int)  # spare frames before each effect
        at, used = lo, 0
        for name, n, before in zip(shot.effects, lengths, slack, strict=True):
            at += int(before) - used
            used = int(before)
            shot.placed.append(_Effect(name, at, at + n))
            at += n + gap


def _effect_length(rng: np.random.Generator, name: str, fps: int) -> int:
    if name == "flash":
        return int(rng.integers(1, 4)) if rng.random() < 0.6 else int(rng.integers(4, 8))  # a flash or a strobe
    if name == "whip":
        return max(3, round(rng.uniform(0.25, 0.5) * fps))
    if name == "occluder":
        return max(4, round(rng.uniform(0.3, 0.9) * fps))
    if name == "walker":
        return round(rng.uniform(1.5, 3.5) * fps)
    return round(rng.uniform(0.6, 2.5) * fps) if rng.random() < 0.5 else int(rng.integers(1, 4))  # lights


# --- the camera -----------------------------------------------------------------------------------


@dataclass
class _Path:
    """A pinhole camera per frame: position (cx, cy, cz), zoom, pan and tilt (share of the view's
    width, the same for every depth) and whether the set is seen mirrored (a reverse angle)."""

    cx: np.ndarray
    cy: np.ndarray
    cz: np.ndarray
    zoom: np.ndarray
    pan: np.ndarray
    tilt: np.ndarray
    mirror: float

    def inverse(self, j: int, z: float, w: int, h: int) -> tuple[float, float, float, float]:
        """Screen pixel to layer units at depth `z` for frame `j`: u = a*x + c, v = e*y + f."""
        k = (z - self.cz[j]) / (w * self.zoom[j] * z)
        s = self.mirror
        a = s * k
        c = s * (k * (-w / 2 - self.pan[j] * w) + self.cx[j] / z)
        e = k
        f = k * (-h / 2 - self.tilt[j] * w) + self.cy[j] / z
        return a, c, e, f


@dataclass(frozen=True)
class _View:
    cx: float
    cy: float
    cz: float
    zoom: float
    pan: float
    tilt: float
    mirror: float


def _first_view(rng: np.random.Generator) -> _View:
    return _View(
        rng.uniform(-1.0, 1.0),
        rng.uniform(-0.2, 0.2),
        rng.uniform(-0.6, 0.2),
        rng.uniform(0.9, 1.3),
        rng.uniform(-0.08, 0.08),
        rng.uniform(-0.04, 0.04),
        1.0,
    )


def _next_view(rng: np.random.Generator, prev: _View) -> _View:
    """Another framing of the same set, far enough from `prev` to be a different picture."""
    how = ("close", "reverse", "aside")[int(rng.integers(3))]
    if how == "close" and prev.zoom < 2.0:
        side = rng.choice([-1.0, 1.0])
        return _View(
            prev.cx + side * rng.uniform(0.3, 1.0),
            prev.cy + rng.uniform(-0.1, 0.3),
            prev.cz,
            prev.zoom * rng.uniform(2.0, 2.8),
            prev.pan + side * rng.uniform(0.05, 0.2),
            prev.tilt + rng.uniform(-0.03, 0.05),
            prev.mirror,
        )
    if how == "reverse":
        return _View(
            -prev.cx + rng.uniform(-1.0, 1.0),
            rng.uniform(-0.2, 0.2),
            rng.uniform(-0.6, 0.2),
            rng.uniform(0.9, 1.6),
            rng.uniform(-0.1, 0.1),
            rng.uniform(-0.04, 0.04),
            -prev.mirror,
        )
    side = rng.choice([-1.0, 1.0])
    return _View(
        prev.cx + side * rng.uniform(2.0, 3.5),
        rng.uniform(-0.2, 0.2),
        rng.uniform(-0.6, 0.2),
        rng.uniform(0.9, 1.5) if prev.zoom >= 2.0 else prev.zoom * rng.uniform(0.8, 1.2),
        side * rng.uniform(0.15, 0.35),
        rng.uniform(-0.04, 0.04),
        prev.mirror,
    )


def _camera_path(
    rng: np.random.Generator, view: _View, n: int, fps: int, style: StageStyle, nearest: float, effects: list[_Effect]
) -> _Path:
    """The camera over a shot's `n` frames: a slow move or two, handheld shake, whip pans."""
    t = np.arange(n) / fps
    speeds = {"truck": 0.0, "pedestal": 0.0, "dolly": 0.0, "pan": 0.0, "tilt": 0.0, "zoom": 0.0}
    for move in rng.choice(list(speeds), size=int(rng.integers(1, 3)), replace=False):
        sign = rng.choice([-1.0, 1.0])
        speeds[str(move)] = (
            sign
            * {
                "truck": rng.uniform(0.05, 0.35),
                "pedestal": rng.uniform(0.02, 0.08),
                "dolly": rng.uniform(0.05, 0.25),
                "pan": rng.uniform(0.01, 0.05),
                "tilt": rng.uniform(0.005, 0.02),
                "zoom": rng.uniform(0.02, 0.08),
            }[str(move)]
        )
    m = style.move
    cx = view.cx + m * speeds["truck"] * t
    cy = view.cy + m * speeds["pedestal"] * t
    cz = np.minimum(view.cz + m * speeds["dolly"] * t, nearest - 0.7)  # never through the nearest layer
    zoom = view.zoom * np.exp(m * speeds["zoom"] * t)
    pan = view.pan + m * speeds["pan"] * t
    tilt = view.tilt + m * speeds["tilt"] * t
    if rng.random() < style.handheld:
        for _ in range(3):
            amp, freq, phase = style.shake * rng.uniform(0.2, 1.0), rng.uniform(0.4, 3.0), rng.uniform(0, 2 * np.pi)
            pan = pan + amp * np.sin(2 * np.pi * freq * t + phase)
            amp, freq, phase = style.shake * rng.uniform(0.1, 0.6), rng.uniform(0.4, 3.0), rng.uniform(0, 2 * np.pi)
            tilt = tilt + amp * np.sin(2 * np.pi * freq * t + phase)
    for fx in effects:
        if fx.name == "whip":
            swing = rng.choice([-1.0, 1.0]) * rng.uniform(0.7, 1.3) / float(zoom[fx.a])
            s = np.clip((np.arange(n) - fx.a + 0.5) / (fx.b - fx.a), 0.0, 1.0)
            pan = pan + swing * s * s * (3 - 2 * s)
            fx.params["swing"] = swing
    return _Path(cx, cy, cz, zoom, pan, tilt, view.mirror)


# --- the sets ---------------------------------------------------------------------------------------

THEMES = ("street", "room", "woods", "hall")
RGB = tuple[int, int, int]


def _rgb(h: float, s: float, v: float) -> RGB:
    r, g, b = colorsys.hsv_to_rgb(h % 1.0, min(max(s, 0.0), 1.0), min(max(v, 0.0), 1.0))
    return (int(r * 255), int(g * 255), int(b * 255))


@dataclass(frozen=True)
class _Palette:
    hue: float
    key: float  # overall brightness
    sat: float

    def pick(self, rng: np.random.Generator, dh: float = 0.08, dv: float = 0.25, v: float = 1.0) -> RGB:
        return _rgb(
            self.hue + rng.uniform(-dh, dh),
            self.sat * rng.uniform(0.6, 1.2),
            self.key * v * rng.uniform(1 - dv, 1 + dv),
        )


class _Canvas:
    """One layer's picture: world coordinates (X across, Y up from the floor) at depth z map to
    layer units u = X / z, v = (_EYE - Y) / z, and those to pixels at `res` units per pixel."""

    def __init__(self, box: tuple[float, float, float, float], res: float, z: float, mode: str, fill: object) -> None:
        self.u0, self.v0, self.u1, self.v1 = (float(b) for b in box)
        self.res, self.z = float(res), float(z)
        self.size = (int(math.ceil((self.u1 - self.u0) / res)) + 2, int(math.ceil((self.v1 - self.v0) / res)) + 2)
        self.img = Image.new(mode, self.size, fill)  # type: ignore[arg-type]
        self.draw = ImageDraw.Draw(self.img)

    @property
    def x_range(self) -> tuple[float, float]:
        return self.u0 * self.z, self.u1 * self.z

    @property
    def y_range(self) -> tuple[float, float]:
        return _EYE - self.v1 * self.z, _EYE - self.v0 * self.z

    def px(self, x: float, y: float) -> tuple[float, float]:
        return ((x / self.z - self.u0) / self.res, ((_EYE - y) / self.z - self.v0) / self.res)

    def rect(self, x0: float, y0: float, x1: float, y1: float, colour: RGB, outline: RGB | None = None) -> None:
        (a, b), (c, d) = self.px(x0, y1), self.px(x1, y0)
        self.draw.rectangle((min(a, c), min(b, d), max(a, c), max(b, d)), fill=colour, outline=outline)

    def ellipse(self, x: float, y: float, rx: float, ry: float, colour: RGB) -> None:
        (a, b), (c, d) = self.px(x - rx, y + ry), self.px(x + rx, y - ry)
        self.draw.ellipse((a, b, c, d), fill=colour)

    def poly(self, points: Sequence[tuple[float, float]], colour: RGB) -> None:
        self.draw.polygon([self.px(x, y) for x, y in points], fill=colour)

    def line(self, x0: float, y0: float, x1: float, y1: float, colour: RGB, width: float) -> None:
        self.draw.line([self.px(x0, y0), self.px(x1, y1)], fill=colour, width=max(1, round(width / self.z / self.res)))

    def along(self, rng: np.random.Generator, gap: tuple[float, float]) -> list[float]:
        """X positions across the canvas, `gap` world units apart."""
        x0, x1 = self.x_range
        out, x = [], x0 + rng.uniform(0, gap[1])
        while x < x1:
            out.append(x)
            x += rng.uniform(*gap)
        return out


@dataclass
class _Set:
    theme: str
    palette: _Palette
    depths: list[float]  # of the prop layers, far to near
    layers: list[Image.Image] = field(default_factory=list)  # backdrop first
    boxes: list[tuple[float, float, float, float, float]] = field(default_factory=list)  # u0, v0, u1, v1, res


def _new_set(rng: np.random.Generator, previous: _Set | None) -> _Set:
    themes = [t for t in THEMES if previous is None or t != previous.theme]
    hue = rng.random() if previous is None else previous.palette.hue + rng.uniform(0.25, 0.75)
    palette = _Palette(hue % 1.0, rng.uniform(0.45, 0.95), rng.uniform(0.25, 0.75))
    n = int(rng.integers(2, 5))
    depths = sorted(rng.uniform(2.5, 7.5, n - 1).tolist(), reverse=True)
    depths.append(float(rng.uniform(1.3, 1.9)) if rng.random() < 0.7 else float(rng.uniform(2.0, 2.5)))
    return _Set(themes[int(rng.integers(len(themes)))], palette, depths)


def _build_set(rng: np.random.Generator, stage: _Set, paths: list[_Path], w: int, h: int) -> None:
    """Draw the backdrop and the prop layers, each covering all that `paths` will see of it."""
    for i, z in enumerate([_BACK_Z, *stage.depths]):
        us, vs, res = [], [], math.inf
        for p in paths:
            for j in range(len(p.cx)):
                a, c, e, f = p.inverse(j, z, w, h)
                us += [c, a * w + c]
                vs += [f, e * h + f]
                res = min(res, abs(e))
        pad = 0.05
        box = (min(us) - pad, min(vs) - pad, max(us) + pad, max(vs) + pad)
        area = (box[2] - box[0]) * (box[3] - box[1])
        res = max(res, math.sqrt(area / _MAX_CANVAS))
        if i == 0:
            img = _backdrop(rng, stage, _Canvas(box, res, z, "RGB", (0, 0, 0)))
        else:
            img = _props(rng, stage, _Canvas(box, res, z, "RGBA", (0, 0, 0, 0)), near=i == len(stage.depths))
        stage.layers.append(img)
        stage.boxes.append((*box, res))


def _backdrop(rng: np.random.Generator, stage: _Set, cv: _Canvas) -> Image.Image:
    pal = stage.palette
    outdoor = stage.theme in ("street", "woods")
    top = _rgb(0.58 + rng.uniform(-0.08, 0.08), 0.5, pal.key) if outdoor else pal.pick(rng, v=0.8)
    low = _rgb(0.55 + rng.uniform(-0.1, 0.1), 0.2, min(1.0, pal.key * 1.2)) if outdoor else pal.pick(rng, v=1.0)
    ground = _rgb(pal.hue + 0.5, pal.sat * 0.6, pal.key * 0.6)
    ground2 = _rgb(pal.hue + 0.45, pal.sat * 0.5, pal.key * 0.35)
    y = _EYE - (cv.v0 + (np.arange(cv.size[1]) + 0.5) * cv.res) * cv.z  # height of each row
    t_sky = np.clip(y / 8.0, 0, 1)[:, None]
    t_gnd = np.clip(-y / 6.0, 0, 1)[:, None]
    sky = np.asarray(low, np.float32) * (1 - t_sky) + np.asarray(top, np.float32) * t_sky
    gnd = np.asarray(ground, np.float32) * (1 - t_gnd) + np.asarray(ground2, np.float32) * t_gnd
    rows = np.where((y >= 0)[:, None], sky, gnd)
    cv.img = Image.fromarray(np.repeat(rows[:, None, :], cv.size[0], axis=1).astype(np.uint8))
    cv.draw = ImageDraw.Draw(cv.img)
    x0, x1 = cv.x_range
    if stage.theme == "street":
        for _ in range(int((x1 - x0) / 6) + 2):  # clouds
            cx, cy = rng.uniform(x0, x1), rng.uniform(5, 12)
            for _ in range(5):
                cv.ellipse(
                    cx + rng.uniform(-1.5, 1.5), cy + rng.uniform(-0.3, 0.3), rng.uniform(0.8, 2), 0.5, (235, 238, 242)
                )
        for x in cv.along(rng, (1.2, 3.2)):
            bw, bh = rng.uniform(1.0, 3.0), rng.uniform(2.5, 11.0)
            wall = pal.pick(rng, dh=0.15, dv=0.35, v=0.7)
            cv.rect(x, 0, x + bw, bh, wall)
            ww, wh = rng.uniform(0.12, 0.22), rng.uniform(0.18, 0.3)
            for wy in np.arange(0.6, bh - 0.4, wh * 2.2):
                for wx in np.arange(x + 0.2, x + bw - 0.2 - ww, ww * 2):
                    lit = rng.random() < 0.3
                    cv.rect(wx, wy, wx + ww, wy + wh, (250, 215, 120) if lit else _rgb(0.6, 0.3, pal.key * 0.3))
    elif stage.theme == "room":
        mortar = pal.pick(rng, v=1.1, dv=0.05)
        if rng.random() < 0.5:  # bricks
            bw, bh = rng.uniform(0.22, 0.35), rng.uniform(0.07, 0.11)
            for r, yy in enumerate(np.arange(0, cv.y_range[1], bh)):
                off = (r % 2) * bw / 2
                for xx in np.arange(x0 - off, x1, bw):
                    cv.rect(
                        xx + 0.015,
                        yy + 0.015,
                        xx + bw - 0.015,
                        yy + bh - 0.015,
                        pal.pick(rng, dh=0.03, dv=0.15, v=0.75),
                    )
        else:  # wallpaper: stripes and dots
            sw = rng.uniform(0.1, 0.3)
            other = pal.pick(rng, dh=0.2, v=0.85)
            for i, xx in enumerate(np.arange(x0, x1, sw)):
                if i % 2:
                    cv.rect(xx, 0, xx + sw, cv.y_range[1], other)
                for yy in np.arange(0.2, cv.y_range[1], sw * 1.5):
                    cv.ellipse(xx + sw / 2, yy, 0.025, 0.025, mortar)
        for x in cv.along(rng, (3.0, 7.0)):
            if rng.random() < 0.5:  # a window onto a sky
                ww, wh, wy = rng.uniform(1.0, 2.2), rng.uniform(1.2, 2.0), rng.uniform(0.9, 1.4)
                cv.rect(x - 0.08, wy - 0.08, x + ww + 0.08, wy + wh + 0.08, (235, 230, 220))
                cv.rect(x, wy, x + ww, wy + wh, _rgb(0.58, 0.35, min(1, pal.key * 1.15)))
                cv.rect(x + ww / 2 - 0.03, wy, x + ww / 2 + 0.03, wy + wh, (235, 230, 220))
            else:  # shelves of books
                sw = rng.uniform(1.2, 2.6)
                wood = _rgb(0.08, 0.6, pal.key * 0.55)
                for sy in np.arange(0.4, rng.uniform(1.6, 2.6), 0.45):
                    cv.rect(x, sy - 0.04, x + sw, sy, wood)
                    bx = x + 0.05
                    while bx < x + sw - 0.1:
                        bw = rng.uniform(0.04, 0.1)
                        cv.rect(
                            bx, sy, bx + bw, sy + rng.uniform(0.2, 0.36), _rgb(rng.random(), 0.6, rng.uniform(0.3, 0.9))
                        )
                        bx += bw + 0.01
        for yy in np.arange(-0.3, cv.y_range[0], -0.35):  # floor boards
            cv.line(x0, yy, x1, yy, ground2, 0.02)
    elif stage.theme == "woods":
        for ridge, v in ((6.0, 0.8), (3.5, 0.6)):
            xs = np.linspace(x0, x1, 40)
            ys = ridge * (0.6 + 0.4 * np.sin(xs * rng.uniform(0.3, 0.8) + rng.uniform(0, 6))) + rng.uniform(
                -0.5, 0.5, 40
            )
            colour = _rgb(0.3 + rng.uniform(-0.08, 0.08), 0.3, pal.key * v)
            cv.poly([(x0, 0), *zip(xs.tolist(), ys.tolist(), strict=True), (x1, 0)], colour)
        for x in cv.along(rng, (0.3, 1.5)):
            gh = rng.uniform(0.8, 3.0)
            cv.rect(x - 0.05, 0, x + 0.05, gh * 0.6, _rgb(0.08, 0.5, pal.key * 0.35))
            for _ in range(int(rng.integers(6, 14))):
                cv.ellipse(
                    x + rng.uniform(-0.6, 0.6),
                    gh + rng.uniform(-0.5, 0.5),
                    rng.uniform(0.2, 0.5),
                    rng.uniform(0.15, 0.4),
                    _rgb(0.28 + rng.uniform(-0.07, 0.07), 0.6, pal.key * rng.uniform(0.3, 0.8)),
                )
    else:  # hall: curtains, pillars, spotlights
        across = (cv.u0 + (np.arange(cv.size[0]) + 0.5) * cv.res) * cv.z
        folds = 0.75 + 0.25 * np.sin(across * rng.uniform(4, 9))
        arr = np.asarray(cv.img, np.float32) * folds[None, :, None]
        cv.img = Image.fromarray(arr.astype(np.uint8))
        cv.draw = ImageDraw.Draw(cv.img)
        for x in cv.along(rng, (2.0, 5.0)):
            cv.rect(x, 0, x + rng.uniform(0.3, 0.6), 9, pal.pick(rng, dh=0.02, dv=0.1, v=0.5), outline=(20, 20, 20))
        glow = Image.new("L", cv.size, 0)
        gd = ImageDraw.Draw(glow)
        for x in cv.along(rng, (2.5, 6.0)):
            (a, b), (c, d) = cv.px(x - 1.0, rng.uniform(1.5, 4.0)), cv.px(x + 1.0, 0.0)
            gd.ellipse((a, b, c, d), fill=int(rng.uniform(90, 170)))
        glow = glow.filter(ImageFilter.GaussianBlur(max(1.0, 0.3 / cv.z / cv.res)))
        tint = np.asarray(_rgb(pal.hue + 0.1, 0.2, 1.0), np.float32) / 255
        arr = np.asarray(cv.img, np.float32) + np.asarray(glow, np.float32)[:, :, None] * tint
        cv.img = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))
    # Grime: slow variations of brightness, and a slight blur (the backdrop is out of focus).
    gy, gx = max(2, cv.size[1] // 80), max(2, cv.size[0] // 80)
    grime = Image.fromarray((rng.uniform(0.8, 1.15, (gy, gx)) * 200).astype(np.uint8)).resize(
        cv.size, Image.Resampling.BICUBIC
    )
    arr = np.asarray(cv.img, np.float32) * (np.asarray(grime, np.float32)[:, :, None] / 200)
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8)).filter(ImageFilter.GaussianBlur(0.8))


def _props(rng: np.random.Generator, stage: _Set, cv: _Canvas, near: bool) -> Image.Image:
    pal, theme = stage.palette, stage.theme
    x0, x1 = cv.x_range
    floor = _rgb(pal.hue + 0.5 + rng.uniform(-0.03, 0.03), pal.sat * 0.5, pal.key * rng.uniform(0.45, 0.6))
    if not near:  # the floor in front of this layer's things, with tiles, boards or grass on it
        cv.rect(x0, cv.y_range[0], x1, 0.0, floor)
        for yy in np.arange(-0.25, cv.y_range[0], -0.3):
            cv.line(x0, yy, x1, yy, _rgb(pal.hue + 0.5, pal.sat * 0.4, pal.key * 0.3), 0.02)
    draw_thing: dict[str, list[Callable[[float], None]]] = {
        "street": [lambda x: _lamp(rng, cv, x, pal), lambda x: _tree(rng, cv, x, pal), lambda x: _car(rng, cv, x, pal)],
        "room": [
            lambda x: _table(rng, cv, x, pal),
            lambda x: _cabinet(rng, cv, x, pal),
            lambda x: _plant(rng, cv, x, pal),
        ],
        "woods": [lambda x: _tree(rng, cv, x, pal), lambda x: _bush(rng, cv, x, pal), lambda x: _rock(rng, cv, x, pal)],
        "hall": [
            lambda x: _crate(rng, cv, x, pal),
            lambda x: _barrel(rng, cv, x, pal),
            lambda x: _lamp(rng, cv, x, pal),
        ],
    }
    things = draw_thing[theme]
    if near:  # foreground props close to the lens: a railing, big leaves, a table's edge
        kind = int(rng.integers(3))
        if kind == 0:
            colour = pal.pick(rng, v=0.4)
            cv.rect(x0, 0.95, x1, 1.02, colour)
            for x in np.arange(x0, x1, rng.uniform(0.25, 0.5)):
                cv.rect(x, 0.0, x + 0.04, 1.0, colour)
        elif kind == 1:
            for x in cv.along(rng, (0.6, 1.6)):
                for _ in range(5):
                    cv.ellipse(
                        x + rng.uniform(-0.2, 0.2),
                        rng.uniform(0.3, 1.0),
                        rng.uniform(0.08, 0.2),
                        rng.uniform(0.2, 0.4),
                        _rgb(0.3 + rng.uniform(-0.06, 0.06), 0.7, pal.key * rng.uniform(0.2, 0.6)),
                    )
        else:
            top = rng.uniform(0.55, 0.8)
            cv.rect(x0, 0.0, x1, top, _rgb(0.07, 0.55, pal.key * 0.45))
            for x in cv.along(rng, (0.5, 2.0)):  # cups and books on it
                cv.rect(
                    x, top, x + rng.uniform(0.06, 0.2), top + rng.uniform(0.05, 0.15), _rgb(rng.random(), 0.5, 0.85)
                )
        return cv.img.filter(ImageFilter.GaussianBlur(max(1.0, 0.01 / cv.z / cv.res)))  # out of focus
    for x in cv.along(rng, (1.2, 4.5)):
        things[int(rng.integers(len(things)))](x)
    return cv.img


def _lamp(rng: np.random.Generator, cv: _Canvas, x: float, pal: _Palette) -> None:
    h = rng.uniform(2.2, 4.0)
    cv.rect(x - 0.04, 0, x + 0.04, h, (40, 42, 45))
    cv.ellipse(x, h, 0.2, 0.12, (255, 236, 170) if rng.random() < 0.6 else (90, 90, 90))


def _tree(rng: np.random.Generator, cv: _Canvas, x: float, pal: _Palette) -> None:
    h = rng.uniform(2.0, 5.0)
    cv.rect(x - 0.1, 0, x + 0.1, h * 0.7, _rgb(0.07, 0.55, pal.key * 0.4))
    for _ in range(int(rng.integers(5, 10))):
        cv.ellipse(
            x + rng.uniform(-0.7, 0.7),
            h + rng.uniform(-0.5, 0.5),
            rng.uniform(0.35, 0.8),
            rng.uniform(0.3, 0.6),
            _rgb(0.27 + rng.uniform(-0.08, 0.08), 0.65, pal.key * rng.uniform(0.3, 0.75)),
        )


def _car(rng: np.random.Generator, cv: _Canvas, x: float, pal: _Palette) -> None:
    body = _rgb(rng.random(), 0.7, rng.uniform(0.35, 0.9))
    length = rng.uniform(3.6, 4.6)
    cv.rect(x, 0.25, x + length, 0.9, body)
    cv.poly([(x + 0.8, 0.9), (x + 1.2, 1.4), (x + length - 1.2, 1.4), (x + length - 0.6, 0.9)], body)
    cv.poly([(x + 1.0, 0.95), (x + 1.3, 1.32), (x + length - 1.3, 1.32), (x + length - 0.8, 0.95)], (120, 150, 170))
    for wx in (x + 0.8, x + length - 0.8):
        cv.ellipse(wx, 0.3, 0.3, 0.3, (25, 25, 25))


def _table(rng: np.random.Generator, cv: _Canvas, x: float, pal: _Palette) -> None:
    wood = _rgb(0.08 + rng.uniform(-0.03, 0.03), 0.6, pal.key * rng.uniform(0.4, 0.8))
    w = rng.uniform(0.8, 1.8)
    cv.rect(x, 0.72, x + w, 0.78, wood)
    for lx in (x + 0.05, x + w - 0.1):
        cv.rect(lx, 0, lx + 0.05, 0.72, wood)
    if rng.random() < 0.6:
        cv.ellipse(x + w / 2, 0.88, 0.08, 0.1, _rgb(rng.random(), 0.5, 0.9))


def _cabinet(rng: np.random.Generator, cv: _Canvas, x: float, pal: _Palette) -> None:
    w, h = rng.uniform(0.6, 1.4), rng.uniform(0.8, 2.0)
    colour = pal.pick(rng, dh=0.3, v=0.75)
    cv.rect(x, 0, x + w, h, colour, outline=(30, 30, 30))
    cv.line(x + w / 2, 0.05, x + w / 2, h - 0.05, (30, 30, 30), 0.02)
    cv.ellipse(x + w / 2 - 0.06, h / 2, 0.025, 0.025, (200, 190, 120))
    cv.ellipse(x + w / 2 + 0.06, h / 2, 0.025, 0.025, (200, 190, 120))


def _plant(rng: np.random.Generator, cv: _Canvas, x: float, pal: _Palette) -> None:
    cv.poly([(x - 0.2, 0.45), (x + 0.2, 0.45), (x + 0.14, 0), (x - 0.14, 0)], _rgb(0.04, 0.6, pal.key * 0.6))
    for _ in range(int(rng.integers(5, 10))):
        cv.ellipse(
            x + rng.uniform(-0.35, 0.35),
            rng.uniform(0.6, 1.3),
            0.1,
            rng.uniform(0.15, 0.3),
            _rgb(0.3 + rng.uniform(-0.05, 0.05), 0.7, pal.key * rng.uniform(0.35, 0.75)),
        )


def _bush(rng: np.random.Generator, cv: _Canvas, x: float, pal: _Palette) -> None:
    for _ in range(int(rng.integers(4, 9))):
        cv.ellipse(
            x + rng.uniform(-0.6, 0.6),
            rng.uniform(0.2, 0.7),
            rng.uniform(0.25, 0.5),
            rng.uniform(0.2, 0.4),
            _rgb(0.25 + rng.uniform(-0.06, 0.06), 0.6, pal.key * rng.uniform(0.25, 0.6)),
        )


def _rock(rng: np.random.Generator, cv: _Canvas, x: float, pal: _Palette) -> None:
    r = rng.uniform(0.3, 0.9)
    angles = np.sort(rng.uniform(0, np.pi, 7))
    pts = [(x + r * math.cos(a) * rng.uniform(0.8, 1.2), r * math.sin(a) * rng.uniform(0.6, 1.0)) for a in angles]
    cv.poly(pts, _rgb(pal.hue, 0.1, pal.key * rng.uniform(0.4, 0.7)))


def _crate(rng: np.random.Generator, cv: _Canvas, x: float, pal: _Palette) -> None:
    wood = _rgb(0.09 + rng.uniform(-0.02, 0.02), 0.55, pal.key * rng.uniform(0.5, 0.85))
    dark = _rgb(0.08, 0.6, pal.key * 0.3)
    y = 0.0
    for _ in range(int(rng.integers(1, 4))):
        s = rng.uniform(0.5, 0.9)
        cv.rect(x, y, x + s, y + s, wood, outline=dark)
        cv.line(x, y, x + s, y + s, dark, 0.04)
        cv.line(x, y + s, x + s, y, dark, 0.04)
        x, y = x + rng.uniform(-0.15, 0.15), y + s


def _barrel(rng: np.random.Generator, cv: _Canvas, x: float, pal: _Palette) -> None:
    colour = _rgb(rng.random(), 0.6, rng.uniform(0.3, 0.8))
    cv.rect(x, 0.0, x + 0.6, 0.9, colour)
    cv.ellipse(x + 0.3, 0.9, 0.3, 0.07, tuple(min(255, c + 40) for c in colour))  # type: ignore[arg-type]
    for yy in (0.2, 0.7):
        cv.line(x, yy, x + 0.6, yy, (40, 40, 40), 0.03)


# --- rendering --------------------------------------------------------------------------------------


@dataclass
class _Walker:
    z: float
    x0: float  # world X at the first frame
    x1: float  # and at the last
    a: int
    b: int
    clothes: tuple[RGB, RGB]
    step: float


@dataclass
class _Occluder:
    sprite: Image.Image
    a: int
    b: int
    leftwards: bool


class _ShotRenderer:
    """Draws one shot's frames: the set through its camera, with its effects."""

    def __init__(
        self, stage: _Set, path: _Path, effects: list[_Effect], w: int, h: int, rng: np.random.Generator
    ) -> None:
        self.stage, self.path, self.w, self.h = stage, path, w, h
        self.flashes: dict[int, float] = {}
        self.walkers: list[_Walker] = []
        self.occluders: list[_Occluder] = []
        self.lights: list[tuple[_Effect, float, float, float, float, float, RGB]] = []
        for fx in effects:
            if fx.name == "flash":
                n = fx.b - fx.a
                on = [fx.a] if n <= 3 and rng.random() < 0.5 else list(range(fx.a, fx.b, 2 if n > 3 else 1))
                for j in on:
                    self.flashes[j] = rng.uniform(0.55, 0.9)
                if fx.b - 1 not in self.flashes:  # its last frame is lit, so that it ends where it says
                    self.flashes[fx.b - 1] = rng.uniform(0.55, 0.9)
            elif fx.name == "walker":
                self.walkers.append(self._walker(rng, fx))
            elif fx.name == "occluder":
                self.occluders.append(self._occluder(rng, fx))
            elif fx.name == "lights":
                j = fx.a
                a, c, e, f = path.inverse(j, _BACK_Z, w, h)
                uc, vc = a * w * rng.uniform(0.3, 0.7) + c, e * h * rng.uniform(0.3, 0.7) + f
                ru, rv = abs(a) * w * rng.uniform(0.25, 0.45), abs(e) * h * rng.uniform(0.35, 0.6)
                gain = rng.uniform(1.7, 2.4) if rng.random() < 0.5 else rng.uniform(0.25, 0.45)
                stays = fx.b - fx.a <= 3  # a switch that stays; else it switches back at the end
                if stays:
                    fx.params["stays"] = 1.0
                self.lights.append((fx, uc, vc, ru, rv, gain, _rgb(0.1, 0.35, 1.0) if gain > 1 else (255, 255, 255)))

    def _walker(self, rng: np.random.Generator, fx: _Effect) -> _Walker:
        depths = self.stage.depths
        z = rng.uniform(depths[-1] + 0.6, _BACK_Z - 1.0) if len(depths) else rng.uniform(3, 8)
        p, w = self.path, self.w
        a0, c0, _, _ = p.inverse(fx.a, z, w, self.h)
        a1, c1, _, _ = p.inverse(fx.b - 1, z, w, self.h)
        pad = 0.08 * w
        left = rng.random() < 0.5
        u_start = (a0 * (-pad) + c0) if left else (a0 * (w + pad) + c0)
        u_end = (a1 * (w + pad) + c1) if left else (a1 * (-pad) + c1)
        clothes = (_rgb(rng.random(), 0.6, rng.uniform(0.3, 0.9)), _rgb(rng.random(), 0.4, rng.uniform(0.15, 0.6)))
        return _Walker(z, u_start * z, u_end * z, fx.a, fx.b, clothes, rng.uniform(0.6, 0.8))

    def _occluder(self, rng: np.random.Generator, fx: _Effect) -> _Occluder:
        w, h = self.w, self.h
        cover = rng.uniform(0.6, 0.8)
        sw, sh = int(cover * w), int(h * rng.uniform(1.0, 1.4))
        mask = Image.new("L", (sw, sh), 0)
        d = ImageDraw.Draw(mask)
        if rng.random() < 0.5:  # a shoulder and head of someone passing close
            d.ellipse((0, int(sh * 0.35), sw, int(sh * 1.6)), fill=255)
            d.ellipse((int(sw * 0.25), int(sh * 0.02), int(sw * 0.7), int(sh * 0.55)), fill=255)
        else:  # a pillar or a door frame, nearly flat-topped
            d.rounded_rectangle((int(sw * 0.05), -sh, int(sw * 0.95), sh * 2), radius=int(sw * 0.2), fill=255)
        mask = mask.filter(ImageFilter.GaussianBlur(max(2.0, 0.03 * w)))  # so close to the lens it is out of focus
        colour = _rgb(rng.random(), rng.uniform(0.1, 0.4), rng.uniform(0.06, 0.3))
        sprite = Image.new("RGBA", (sw, sh), colour + (0,))
        sprite.putalpha(mask)
        return _Occluder(sprite, fx.a, fx.b, bool(rng.random() < 0.5))

    def frame(self, j: int) -> np.ndarray:
        w, h, stage, p = self.w, self.h, self.stage, self.path
        out: Image.Image | None = None
        for i, z in enumerate([_BACK_Z, *stage.depths]):
            u0, v0, _, _, res = stage.boxes[i]
            a, c, e, f = p.inverse(j, z, w, h)
            data = (a / res, 0.0, (c - u0) / res, 0.0, e / res, (f - v0) / res)
            tile = stage.layers[i].transform((w, h), Image.Transform.AFFINE, data, resample=Image.Resampling.BILINEAR)
            if out is None:
                out = tile
            else:
                for walker in self.walkers:
                    if walker.a <= j < walker.b and z < walker.z <= ([_BACK_Z, *stage.depths][i - 1]):
                        self._draw_walker(out, walker, j)
                out.paste(tile, (0, 0), tile)
        assert out is not None
        for walker in self.walkers:
            if walker.a <= j < walker.b and walker.z <= stage.depths[-1]:
                self._draw_walker(out, walker, j)
        for occ in self.occluders:
            if occ.a <= j < occ.b:
                s = (j - occ.a + 0.5) / (occ.b - occ.a)
                s = 1 - s if occ.leftwards else s
                x = round(-occ.sprite.width + s * (w + occ.sprite.width))
                out.paste(occ.sprite, (x, h - occ.sprite.height + int(0.1 * h)), occ.sprite)
        pic = np.asarray(out, np.float32)
        for fx, uc, vc, ru, rv, gain, tint in self.lights:
            level = self._light_level(fx, j)
            if level > 0:
                a, c, e, f = p.inverse(j, _BACK_Z, w, h)
                uu = (a * (np.arange(w) + 0.5) + c - uc) / ru
                vv = (e * (np.arange(h) + 0.5) + f - vc) / rv
                m = np.clip((1 - vv[:, None] ** 2 - uu[None, :] ** 2) * 3, 0, 1)[:, :, None] * level
                g = 1 + (gain - 1) * m * (np.asarray(tint, np.float32) / 255 if gain > 1 else 1.0)
                pic = pic * g
        if j in self.flashes:
            k = self.flashes[j]
            pic = 255 - (255 - np.clip(pic, 0, 255)) * (1 - k)
        return pic

    @staticmethod
    def _light_level(fx: _Effect, j: int) -> float:
        ramp = 2  # frames to switch fully
        if j < fx.a:
            return 0.0
        on = min(1.0, (j - fx.a + 1) / ramp)
        if fx.params.get("stays") or j < fx.b - ramp:
            return on
        return min(on, max(0.0, (fx.b - j - 1) / ramp))

    def _draw_walker(self, img: Image.Image, wk: _Walker, j: int) -> None:
        p, w, h = self.path, self.w, self.h
        s = (j - wk.a) / max(1, wk.b - 1 - wk.a)
        x_world = wk.x0 + (wk.x1 - wk.x0) * s
        a, c, e, f = p.inverse(j, wk.z, w, h)

        def scr(x: float, y: float) -> tuple[float, float]:
            return ((x / wk.z - c) / a, ((_EYE - y) / wk.z - f) / e)

        d = ImageDraw.Draw(img)
        swing = 0.3 * math.sin(abs(x_world - wk.x0) / wk.step * math.pi)
        top, trousers = wk.clothes
        lw = max(1, round(0.14 / wk.z / e))
        for sgn in (1, -1):
            d.line([scr(x_world, 0.9), scr(x_world + sgn * swing * 0.9, 0.0)], fill=trousers, width=lw)
            d.line([scr(x_world, 1.45), scr(x_world - sgn * swing * 0.6, 0.8)], fill=top, width=max(1, lw * 2 // 3))
        (x0, y0), (x1, y1) = scr(x_world - 0.2, 1.5), scr(x_world + 0.2, 0.85)
        d.rounded_rectangle(
            (min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1)), radius=max(1, round(abs(x1 - x0) / 4)), fill=top
        )
        (x0, y0), (x1, y1) = scr(x_world - 0.11, 1.78), scr(x_world + 0.11, 1.52)
        d.ellipse((min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1)), fill=(224, 180, 150))


def make_stage_video(
    path: str | os.PathLike[str],
    seed: int = 0,
    *,
    duration: float = 60.0,
    size: tuple[int, int] | None = None,
    fps: int | None = None,
    shot_s: tuple[float, float] = (1.5, 10.0),
    plan: Sequence[tuple[str | None, str | None]] | None = None,
    style: StageStyle = StageStyle(),
    encoding: Encoding | None = None,
) -> GroundTruth:
    """Write a `stage` video of about `duration` seconds and return its ground truth.

    Size, frame rate and encoding are drawn from the seed unless given. `plan` fixes the shots
    instead: one (transition into the shot, effect in it) pair per shot, the first transition
    None, each effect a key of `STAGE_EFFECTS`; the video is then as long as the plan makes it.
    """
    root = np.random.SeedSequence([0x57A9E, seed])
    plan_rng, set_rng, cam_rng, fx_rng, noise_rng = (np.random.default_rng(s) for s in root.spawn(5))
    # Sizes and encoders take turns over consecutive seeds, so any six videos show all sizes.
    drawn_size = SIZES[(seed * 5 + 2) % len(SIZES)]
    drawn_fps = FRAME_RATES[int(plan_rng.integers(len(FRAME_RATES)))]
    drawn_encoding = _draw_encoding(plan_rng, seed % 5)
    width, height = size or drawn_size
    fps = fps or drawn_fps
    encoding = encoding or drawn_encoding
    if width < 32 or height < 32 or width % 2 or height % 2:
        raise ValueError(f"size must be even and at least 32x32, got {width}x{height}")
    if not 0 < shot_s[0] <= shot_s[1] or duration < shot_s[0]:
        raise ValueError(f"need 0 < shot_s[0] <= shot_s[1] <= duration, got {shot_s}, {duration}")

    shots = _plan_shots(plan_rng, fps, duration, shot_s, plan, style.effect_rate)
    timeline, transitions = _lay_out(shots, fps)
    _place_effects(fx_rng, shots, fps, strict=plan is not None)
    work_w = min(width, _WORK_WIDTH)
    work_h = max(2, round(work_w * height / width))

    sets: list[_Set] = []
    views: dict[tuple[int, int], _View] = {}
    paths: list[_Path] = []
    for shot in shots:
        if shot.set_id == len(sets):
            sets.append(_new_set(set_rng, sets[-1] if sets else None))
        key = (shot.set_id, shot.view)
        if key not in views:
            prev = views.get((shot.set_id, shot.view - 1))
            views[key] = _first_view(cam_rng) if prev is None else _next_view(cam_rng, prev)
        nearest = min(sets[shot.set_id].depths)
        paths.append(_camera_path(cam_rng, views[key], shot.last - shot.first, fps, style, nearest, shot.placed))
    last_use = {s: max(sh.last for sh in shots if sh.set_id == s) for s in range(len(sets))}

    renderers: dict[int, _ShotRenderer] = {}
    sigma = noise_rng.uniform(*style.noise)
    exp_amp, exp_period, exp_phase = (
        style.exposure * noise_rng.uniform(0.3, 1.0),
        noise_rng.uniform(8, 30),
        noise_rng.uniform(0, 6.3),
    )
    warm_amp, warm_period, warm_phase = (
        style.warmth * noise_rng.uniform(0.3, 1.0),
        noise_rng.uniform(10, 40),
        noise_rng.uniform(0, 6.3),
    )

    with av.open(os.fspath(path), "w") as container:
        stream = add_video_stream(container, encoding, (width, height), fps)
        for i, (parts, fill, fill_w) in enumerate(timeline):
            acc = np.full((work_h, work_w, 3), fill * fill_w, np.float32)
            for k, wgt in parts:
                if k not in renderers:
                    stage = sets[shots[k].set_id]
                    if not stage.layers:
                        set_paths = [paths[m] for m, sh in enumerate(shots) if sh.set_id == shots[k].set_id]
                        _build_set(set_rng, stage, set_paths, work_w, work_h)
                    renderers[k] = _ShotRenderer(stage, paths[k], shots[k].placed, work_w, work_h, fx_rng)
                acc += wgt * renderers[k].frame(i - shots[k].first)
            t = i / fps
            gain = 1 + exp_amp * math.sin(2 * math.pi * t / exp_period + exp_phase)
            warm = warm_amp * math.sin(2 * math.pi * t / warm_period + warm_phase)
            acc *= np.asarray([gain * (1 + warm), gain, gain * (1 - warm)], np.float32)
            if sigma > 0:
                acc += noise_rng.standard_normal(acc.shape, dtype=np.float32) * sigma
            rgb = np.clip(acc, 0, 255).astype(np.uint8)
            if (work_w, work_h) != (width, height):
                rgb = np.asarray(Image.fromarray(rgb).resize((width, height), Image.Resampling.BICUBIC))
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuv420p")
            frame.pts, frame.time_base = i, Fraction(1, fps)
            container.mux(stream.encode(frame))
            for k in [k for k in renderers if shots[k].last <= i + 1]:
                del renderers[k]
            for s, end in last_use.items():
                if end <= i + 1 and sets[s].layers:
                    sets[s].layers, sets[s].boxes = [], []
        container.mux(stream.encode(None))

    infos = [ShotInfo(f"stage-{seed}-set{sh.set_id}-view{sh.view}", sh.first / fps, sh.last / fps) for sh in shots]
    distractors = [
        Distractor(STAGE_EFFECTS[fx.name], (sh.first + fx.a) / fps, (sh.first + fx.b) / fps, k)
        for k, sh in enumerate(shots)
        for fx in sh.placed
    ]
    distractors.sort(key=lambda d: (d.start, d.end))
    return GroundTruth(os.fspath(path), seed, fps, len(timeline), (width, height), infos, transitions, distractors)


def _draw_encoding(rng: np.random.Generator, turn: int) -> Encoding:
    """H.264 at crf 18-38 (turns 0 and 3), with a short GOP (1 and 4), or MPEG-4 Part 2 (2)."""
    crf = int(rng.integers(18, 39))
    if turn == 2:
        return Encoding("mpeg4", bits_per_pixel=float(rng.uniform(0.04, 0.25)), gop=int(rng.integers(6, 31)))
    if turn in (1, 4):
        return Encoding("libx264", crf=crf, gop=int(rng.integers(4, 16)))
    return Encoding("libx264", crf=crf)
