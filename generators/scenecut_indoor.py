"""The `indoor` family of shot-boundary videos: CCTV, broadcast and screen-recording footage of rooms.

A fifth, held-out family, made independently of the other generators' pictures (only the records of
`generators.groundtruth`, and the `CUT_KINDS` / `true_time` conventions and the encoder set-up of
`generators.scenecut_families` are shared), so that a detector tuned on those is reported on
pictures it was never shaped by.

A video visits several *scenes*. Offices, corridors and TV studios are rooms drawn in one-point
perspective from a viewpoint (floor tiles, walls, doors, windows, posters with procedural patterns,
desks, cabinets and monitors as shaded boxes, ceiling lights and their pools of light); a sports
pitch is drawn from a high side camera (mowing stripes, lines, advertising boards, a crowd in the
stands); a screen recording scrolls through slides (title bars, bullets, charts). People are
articulated silhouettes that walk, stand and gesture or run after a ball. A camera looks at the
scene's picture: a fixed CCTV camera with a burnt-in clock, a tripod, a pan, a tilt, a zoom, a slow
roll, a handheld camera, a scrolling screen. Shots are joined by hard cuts, cuts to another
viewpoint of the same scene (`view_cut`: the room drawn again from elsewhere), dissolves and fades
through black or white. Inside shots, things that are not shot changes: a camera flash (`flash`); a
whip pan or a fast scroll (`fast_pan`); a person walking right past the lens, a hand over the lens,
a dialog popping up on the screen (`occluder`); the lights switched off or on, an auto-exposure step,
a door opening to a bright room (`drift`). On top: slow brightness drift, sensor noise, broadcast
graphics, and H.264 (crf 18-40, GOPs from a few frames to several seconds) or MPEG-4 Part 2
encodes, 320x180 to 1280x720, 24/25/30 fps.

Planning (`plan_indoor_video`: shots, transitions, effects) is separate from drawing and cheap.
Everything is deterministic for a seed.

    >>> plan_indoor_video(seed=3).truth("indoor-3.mp4").transitions[:2]  # doctest: +SKIP
    >>> truth = make_indoor_video("indoor-3.mp4", seed=3)  # doctest: +SKIP
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

from generators.groundtruth import Distractor, DistractorKind, GroundTruth, ShotInfo, Transition
from generators.scenecut_families import (
    CUT_KINDS,
    Encoding,
    lay_out,
    pick_weighted,
    plan_shot_lengths,
    transition_frames,
    true_time,
    write_video,
)

__all__ = [
    "CALM",
    "CAMERA_MOVES",
    "CUT_KINDS",
    "INDOOR_EFFECTS",
    "INDOOR_FAMILY",
    "INDOOR_TRANSITION_KINDS",
    "SCENE_KINDS",
    "SIZES",
    "Encoding",
    "IndoorPlan",
    "IndoorStyle",
    "make_indoor_video",
    "plan_indoor_video",
    "true_time",
]

INDOOR_FAMILY = "indoor"
INDOOR_TRANSITION_KINDS = ("cut", "view_cut", "dissolve", "fade", "fade_white")
_TRANSITION_WEIGHTS = (0.45, 0.2, 0.15, 0.12, 0.08)
# What happens inside a shot, and the distractor kind it is recorded as.
INDOOR_EFFECTS: dict[str, DistractorKind] = {
    "flash": "flash",  # a photographer's flash: 1-3 bright frames
    "whip": "fast_pan",  # a whip pan to another part of the scene (on a screen: a fast scroll)
    "passer": "occluder",  # a person walking right past the lens
    "hand": "occluder",  # a hand reaching over the lens
    "popup": "occluder",  # a dialog popping up over a screen recording
    "lights_off": "drift",  # the room's lights switched off
    "lights_on": "drift",  # the room's lights switched on (fluorescent tubes flicker first)
    "exposure": "drift",  # an auto-exposure step
    "door": "drift",  # a door opening to a bright room
}
SCENE_KINDS = ("office", "corridor", "studio", "pitch", "slides")
_SCENE_EFFECTS: dict[str, tuple[str, ...]] = {
    "office": ("flash", "whip", "passer", "hand", "lights_off", "lights_on", "exposure", "door"),
    "corridor": ("flash", "whip", "passer", "hand", "lights_off", "lights_on", "exposure", "door"),
    "studio": ("flash", "whip", "passer", "lights_off", "lights_on", "exposure"),
    "pitch": ("flash", "whip", "passer", "exposure"),
    "slides": ("whip", "popup"),
}
_EFFECT_WEIGHTS = {
    "flash": 1.0,
    "whip": 1.0,
    "passer": 0.8,
    "hand": 0.8,
    "popup": 1.5,
    "lights_off": 1.0,
    "lights_on": 1.0,
    "exposure": 0.8,
    "door": 2.2,
}
CAMERA_MOVES = ("cctv", "static", "pan", "tilt", "zoom", "roll", "handheld", "screen")
_SCENE_MOVES: dict[str, dict[str, float]] = {
    "office": {"cctv": 3, "static": 1, "pan": 2, "tilt": 1, "zoom": 1, "roll": 0.5, "handheld": 2},
    "corridor": {"cctv": 4, "static": 1, "pan": 1, "tilt": 0.5, "zoom": 1, "handheld": 2},
    "studio": {"static": 2, "pan": 2, "tilt": 1, "zoom": 2, "roll": 1, "handheld": 0.5},
    "pitch": {"static": 1, "pan": 4, "tilt": 0.5, "zoom": 2, "handheld": 1},
    "slides": {"screen": 1},
}
SIZES = ((320, 180), (480, 270), (640, 360), (854, 480), (960, 540), (1280, 720))
_SIZE_TURNS = (3, 0, 4, 2, 5, 1)  # seed % 6 -> size: any six consecutive seeds show all sizes
FRAME_RATES = (24, 25, 30)
_SALT = 0x1D0025
_MARGIN_S = 1.0  # effects keep this far from transitions
_EDGE_S = 0.5  # and this far from the video's start and end
_GAP_S = 0.5  # between two effects in one shot
_LONGEST_TRANSITION_S = 2.2
_WORK_WIDTH = 480  # frames are drawn at most this wide, then scaled to the video's size
_NOISE_FIELDS = 6  # sensor noise: this many fields, one per frame in turn

RGB = tuple[int, int, int]
Point = tuple[float, float]


@dataclass(frozen=True)
class IndoorStyle:
    """How hard the camera, the people and the sensor work; `CALM` is a still camera without people,
    noise or brightness drift (for tests that compare pixels)."""

    move: float = 1.0  # scales every camera speed
    shake: float = 1.0  # scales handheld shake
    noise: tuple[float, float] = (0.0, 7.0)  # sensor noise sigma range, grey levels (CCTV: more)
    drift: float = 0.06  # largest slow brightness drift, relative gain
    people: float = 1.0  # scales how many people walk about
    effect_rate: float = 0.75  # chance that a shot holds something that is not a shot change


CALM = IndoorStyle(move=0.0, shake=0.0, noise=(0.0, 0.0), drift=0.0, people=0.0)


# --- the plan: scenes, shots, transitions and what happens inside shots -----------------------------


@dataclass(frozen=True)
class Scene:
    kind: str  # one of SCENE_KINDS
    dark: bool  # the lights are off when it is first seen
    night: bool  # dark windows


@dataclass
class Effect:
    """Something inside a shot that is not a shot change, over the shot's frames [a, b)."""

    name: str
    a: int
    b: int


@dataclass
class PlannedShot:
    into: str | None  # transition kind into this shot
    into_frames: tuple[int, int, int]  # (fade out, dissolve or hold, fade in) frames of that transition
    solo: int  # frames seen alone
    wanted: list[str] = field(default_factory=list)  # effect names, before they are placed
    scene: int = 0
    view: int = 0  # 0, 1, ... for consecutive views of one scene
    camera: str = "static"
    first: int = 0  # first frame of the video showing it
    last: int = 0  # first frame not showing it
    solo_start: int = 0
    solo_end: int = 0
    effects: list[Effect] = field(default_factory=list)


@dataclass
class IndoorPlan:
    """Everything about a video that is decided before drawing it, and its ground truth."""

    seed: int
    size: tuple[int, int]
    fps: int
    encoding: Encoding
    style: IndoorStyle
    scenes: list[Scene]
    shots: list[PlannedShot]
    transitions: list[Transition]

    @property
    def frames(self) -> int:
        return self.shots[-1].last

    @property
    def distractors(self) -> list[Distractor]:
        out = [
            Distractor(INDOOR_EFFECTS[fx.name], (sh.first + fx.a) / self.fps, (sh.first + fx.b) / self.fps, k)
            for k, sh in enumerate(self.shots)
            for fx in sh.effects
        ]
        return sorted(out, key=lambda d: (d.start, d.end))

    def truth(self, path: str | os.PathLike[str]) -> GroundTruth:
        infos = [
            ShotInfo(
                f"indoor-{self.seed}-scene{sh.scene}-{self.scenes[sh.scene].kind}-view{sh.view}-{sh.camera}",
                sh.first / self.fps,
                sh.last / self.fps,
            )
            for sh in self.shots
        ]
        return GroundTruth(
            os.fspath(path), self.seed, self.fps, self.frames, self.size, infos, self.transitions, self.distractors
        )


def plan_indoor_video(
    seed: int = 0,
    *,
    duration: float = 60.0,
    size: tuple[int, int] | None = None,
    fps: int | None = None,
    shot_s: tuple[float, float] = (1.5, 10.0),
    plan: Sequence[tuple[str | None, str | None]] | None = None,
    style: IndoorStyle = IndoorStyle(),
    encoding: Encoding | None = None,
) -> IndoorPlan:
    """The shots, transitions and effects of `make_indoor_video` for the same arguments, without
    drawing anything (see there)."""
    rng = np.random.default_rng([_SALT, seed, 0])
    drawn_size = SIZES[_SIZE_TURNS[seed % 6]]
    drawn_fps = FRAME_RATES[seed % 3]
    drawn_encoding = _draw_encoding(rng, (seed // 2) % 6 if seed % 2 else (seed + 3) % 6)
    width, height = size or drawn_size
    fps = fps or drawn_fps
    if width < 32 or height < 32 or width % 2 or height % 2:
        raise ValueError(f"size must be even and at least 32x32, got {width}x{height}")
    if not 0 < shot_s[0] <= shot_s[1] or duration < shot_s[0]:
        raise ValueError(f"need 0 < shot_s[0] <= shot_s[1] <= duration, got {shot_s}, {duration}")
    if drawn_encoding.codec == "libx264" and width * height > 640 * 360:
        drawn_encoding = replace(drawn_encoding, preset="superfast")
    shots = _plan_shots(rng, fps, duration, shot_s, plan)
    scenes = _plan_scenes(rng, shots, planned=plan is not None)
    if plan is None:
        _choose_effects(rng, shots, scenes, fps, style.effect_rate)
    transitions = lay_out(shots, fps)
    _place_effects(rng, shots, fps, strict=plan is not None)
    return IndoorPlan(seed, (width, height), fps, encoding or drawn_encoding, style, scenes, shots, transitions)


def _draw_encoding(rng: np.random.Generator, turn: int) -> Encoding:
    """Six turns: H.264 with the default GOP, a very short, a medium and a long one; MPEG-4 Part 2 with a
    short and a long GOP."""
    crf = int(rng.integers(18, 41))
    if turn == 1:
        return Encoding(crf=crf, gop=int(rng.integers(4, 13)))
    if turn == 2:
        return Encoding("mpeg4", bits_per_pixel=float(rng.uniform(0.04, 0.2)), gop=int(rng.integers(10, 40)))
    if turn == 3:
        return Encoding(crf=crf, gop=int(rng.integers(150, 301)))
    if turn == 4:
        return Encoding(crf=crf, gop=int(rng.integers(20, 75)))
    if turn == 5:
        return Encoding("mpeg4", bits_per_pixel=float(rng.uniform(0.04, 0.2)), gop=int(rng.integers(60, 200)))
    return Encoding(crf=crf)


def _transition_frames(rng: np.random.Generator, kind: str, fps: int) -> tuple[int, int, int]:
    return transition_frames(rng, kind, fps, dissolve_s=(0.4, 1.6), fade_s=(0.25, 0.8), hold_s=(0.0, 0.5))


def _plan_shots(
    rng: np.random.Generator,
    fps: int,
    duration: float,
    shot_s: tuple[float, float],
    plan: Sequence[tuple[str | None, str | None]] | None,
) -> list[PlannedShot]:
    """Shot lengths and transitions: lengths that add up to `duration`, or one shot per `plan` entry."""
    lengths = plan_shot_lengths(
        rng,
        fps,
        duration,
        shot_s,
        plan,
        kinds=INDOOR_TRANSITION_KINDS,
        weights=_TRANSITION_WEIGHTS,
        effects=INDOOR_EFFECTS,
        longest_s=_LONGEST_TRANSITION_S,
        frames_of=_transition_frames,
    )
    return [PlannedShot(*shot) for shot in lengths]


def _plan_scenes(rng: np.random.Generator, shots: list[PlannedShot], planned: bool) -> list[Scene]:
    """A new scene for every shot but those entered by a view cut; kinds in shuffled rounds (in a fixed
    plan, a kind where every effect wanted in the scene can happen). Cameras per shot."""
    kinds: list[str] = []
    scenes: list[Scene] = []
    groups: list[list[int]] = []
    for k, shot in enumerate(shots):
        if k == 0 or shot.into != "view_cut":
            groups.append([k])
            shot.view = 0
        else:
            groups[-1].append(k)
            shot.view = shots[k - 1].view + 1
    for g, members in enumerate(groups):
        wanted = {w for k in members for w in shots[k].wanted}
        if not kinds:
            kinds = [SCENE_KINDS[i] for i in rng.permutation(len(SCENE_KINDS))]
            if scenes and kinds[0] == scenes[-1].kind:
                kinds.append(kinds.pop(0))
        fits = [kd for kd in kinds if wanted <= set(_SCENE_EFFECTS[kd])]
        if not fits:
            fits = [kd for kd in SCENE_KINDS if wanted <= set(_SCENE_EFFECTS[kd])]
            if not fits:
                raise ValueError(f"no scene kind holds all of {sorted(wanted)}")
            kind = fits[0]
        else:
            kind = fits[0]
            kinds.remove(kind)
        lights = [w for k in members for w in shots[k].wanted if w in ("lights_off", "lights_on")]
        if planned:
            dark = bool(lights) and lights[0] == "lights_on"
            night = False
        else:
            dark = kind in ("office", "corridor", "studio") and bool(rng.random() < 0.2)
            night = kind in ("office", "corridor") and bool(rng.random() < 0.3)
        scenes.append(Scene(kind, dark, night))
        for k in members:
            shots[k].scene = g
            shots[k].camera = pick_weighted(rng, _SCENE_MOVES[kind])
    return scenes


def _choose_effects(
    rng: np.random.Generator, shots: list[PlannedShot], scenes: list[Scene], fps: int, rate: float
) -> None:
    lit = {i: not sc.dark for i, sc in enumerate(scenes)}
    for shot in shots:
        if rng.random() >= rate:
            continue
        scene = scenes[shot.scene]
        names = [n for n in _SCENE_EFFECTS[scene.kind] if n not in ("lights_off", "lights_on")]
        if "lights_off" in _SCENE_EFFECTS[scene.kind]:
            names.append("lights_off" if lit[shot.scene] else "lights_on")
        weights = np.array([_EFFECT_WEIGHTS[n] for n in names])
        count = 2 if shot.solo > 6 * fps and rng.random() < 0.4 else 1
        picked = rng.choice(len(names), size=count, replace=False, p=weights / weights.sum())
        shot.wanted = [names[int(i)] for i in picked]
        for w in shot.wanted:
            if w in ("lights_off", "lights_on"):
                lit[shot.scene] = w == "lights_on"


def _effect_frames(rng: np.random.Generator, name: str, fps: int) -> int:
    def span(lo: float, hi: float, least: int = 1) -> int:
        return max(least, round(rng.uniform(lo, hi) * fps))

    if name == "flash":
        return int(rng.integers(1, 4))
    if name == "whip":
        return span(0.25, 0.7, 3)
    if name == "passer":
        return span(0.5, 1.4, 5)
    if name == "hand":
        return span(0.8, 2.0, 8)
    if name == "popup":
        return span(0.8, 2.5, 6)
    if name == "lights_off":
        return int(rng.integers(1, 4))
    if name == "lights_on":
        return int(rng.integers(1, 3)) if rng.random() < 0.4 else span(0.25, 0.7, 5)  # tubes flicker
    if name == "exposure":
        return int(rng.integers(2, 7))
    if name == "door":
        return span(0.6, 1.6, 5)
    raise ValueError(f"unknown effect {name!r}")


def _place_effects(rng: np.random.Generator, shots: list[PlannedShot], fps: int, strict: bool) -> None:
    """Put each shot's effects where it is seen alone, `_MARGIN_S` from transitions and `_EDGE_S` from
    the video's ends, in the order wanted, at least `_GAP_S` apart."""
    margin, edge, gap = round(_MARGIN_S * fps), round(_EDGE_S * fps), round(_GAP_S * fps)
    for k, shot in enumerate(shots):
        lo = shot.solo_start - shot.first + (margin if k else edge)
        hi = shot.solo_end - shot.first - (margin if k + 1 < len(shots) else edge)
        sized = [(name, _effect_frames(rng, name, fps)) for name in shot.wanted]
        while sized and sum(n for _, n in sized) + gap * (len(sized) - 1) > hi - lo:
            if strict:
                raise ValueError(f"shot {k} is too short for {shot.wanted}")
            sized.pop()
        spare = hi - lo - sum(n for _, n in sized) - gap * (len(sized) - 1)
        at = lo
        for name, n in sized:
            wait = int(rng.integers(0, spare + 1))
            at += wait
            spare -= wait
            shot.effects.append(Effect(name, at, at + n))
            at += n + gap


def _timeline(shots: list[PlannedShot]) -> Iterator[tuple[list[tuple[int, float]], float, float]]:
    """Per frame: the shots it shows with their weights, and a fill level (0 black, 255 white) with its
    weight."""
    for k, shot in enumerate(shots):
        if k:
            n_out, mid, n_in = shot.into_frames
            if shot.into == "dissolve":
                for w in _ramp(mid):
                    yield [(k - 1, 1 - w), (k, w)], 0.0, 0.0
            elif shot.into in ("fade", "fade_white"):
                fill = 0.0 if shot.into == "fade" else 255.0
                for w in _ramp(n_out):
                    yield [(k - 1, 1 - w)], fill, w
                for _ in range(mid):
                    yield [], fill, 1.0
                for w in _ramp(n_in):
                    yield [(k, w)], fill, 1 - w
        for _ in range(shot.solo):
            yield [(k, 1.0)], 0.0, 0.0


def _ramp(n: int) -> list[float]:
    return [(i + 1) / (n + 1) for i in range(n)]


# --- drawing helpers --------------------------------------------------------------------------------


def _rgb(c: Sequence[float] | np.ndarray, k: float = 1.0) -> RGB:
    return (int(np.clip(c[0] * k, 0, 255)), int(np.clip(c[1] * k, 0, 255)), int(np.clip(c[2] * k, 0, 255)))


def _colour(rng: np.random.Generator, lo: float = 40, hi: float = 220) -> RGB:
    return _rgb(rng.uniform(lo, hi, 3))


def _smoothstep(x: float) -> float:
    x = min(max(x, 0.0), 1.0)
    return x * x * (3 - 2 * x)


def _pattern(rng: np.random.Generator, w: int, h: int) -> Image.Image:
    """A poster or screen picture: stripes, rings, blobs, a checkerboard or a bar chart."""
    w, h = max(w, 2), max(h, 2)
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    x, y = x / max(w, h), y / max(w, h)
    kind = int(rng.integers(5))
    if kind == 0:
        a, f = rng.uniform(0, math.pi), rng.uniform(4, 14)
        v = 0.5 + 0.5 * np.sign(np.sin(2 * math.pi * f * (x * math.cos(a) + y * math.sin(a))))
    elif kind == 1:
        cx, cy, f = rng.uniform(0, 1), rng.uniform(0, 1), rng.uniform(5, 15)
        v = 0.5 + 0.5 * np.cos(2 * math.pi * f * np.hypot(x - cx, y - cy))
    elif kind == 2:
        v = np.zeros((h, w), np.float32)
        for _ in range(6):
            cx, cy, r = rng.uniform(0, 1), rng.uniform(0, 1), rng.uniform(0.08, 0.3)
            v += np.exp(-((x - cx) ** 2 + (y - cy) ** 2) / (2 * r * r))
        v = np.clip(v, 0, 1)
    elif kind == 3:
        n = rng.uniform(4, 10)
        v = ((np.floor(x * n) + np.floor(y * n)) % 2).astype(np.float32)
    else:
        bars = int(rng.integers(3, 8))
        tops = rng.uniform(0.1, 0.9, bars)
        col = np.minimum((x * max(w, h) / w * bars).astype(int), bars - 1)
        v = ((y * max(w, h) / h) > tops[col]).astype(np.float32) * (((x * max(w, h) / w * bars) % 1) < 0.75)
    lo, hi = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)
    arr = lo + (hi - lo) * v[..., None]
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))


def _grain(rng: np.random.Generator, w: int, h: int, amount: float) -> np.ndarray:
    """Smooth blotches plus fine grain, zero mean, about `amount` grey levels: surfaces are not flat."""
    coarse = rng.standard_normal((max(2, h // 24), max(2, w // 24))).astype(np.float32)
    smooth = np.asarray(Image.fromarray(coarse).resize((w, h), Image.Resampling.BICUBIC))
    fine = rng.standard_normal((h, w)).astype(np.float32)
    out: np.ndarray = amount * (0.7 * smooth + 0.4 * fine)
    return out


# people: articulated silhouettes


@dataclass
class _Person:
    x: float  # metres, across the room (or along the pitch)
    z: float  # metres, into the room
    vx: float
    vz: float
    height: float
    shirt: RGB
    legs: RGB
    skin: RGB
    cadence: float  # steps per second
    phase: float
    wobble: tuple[float, float, float] = (0.0, 0.0, 0.0)  # amplitude x, amplitude z, rate (players)
    gesture: float = 0.0  # arm waving of a standing person

    def at(self, t: float, bounds: tuple[float, float, float, float]) -> tuple[float, float, float]:
        """(x, z, stride phase) at `t` seconds, kept inside bounds = (x0, x1, z0, z1)."""
        ax, az, rate = self.wobble
        x = self.x + self.vx * t + ax * math.sin(rate * t + self.phase)
        z = self.z + self.vz * t + az * math.cos(0.7 * rate * t + self.phase)
        x0, x1, z0, z1 = bounds
        x = x0 + abs((x - x0) % (2 * (x1 - x0)) - (x1 - x0)) if x1 > x0 else x  # bounce between walls
        z = z0 + abs((z - z0) % (2 * (z1 - z0)) - (z1 - z0)) if z1 > z0 else z
        moving = self.vx or self.vz or ax or az
        return x, z, (2 * math.pi * self.cadence * t + self.phase) if moving else 0.0


def _skeleton(u: float, v: float, hp: float, phase: float, gesture: float, t: float) -> dict[str, Point]:
    """Joints of a walking figure whose feet are at (u, v), `hp` pixels tall."""
    swing = 0.45 * math.sin(phase)
    hip = (u, v - 0.52 * hp)
    neck = (u, v - 0.84 * hp)
    j: dict[str, Point] = {"hip": hip, "neck": neck, "head": (u, v - 0.93 * hp)}
    for side, s in (("l", 1.0), ("r", -1.0)):
        a = s * swing
        knee = (hip[0] + 0.26 * hp * math.sin(a), hip[1] + 0.26 * hp * math.cos(a))
        bend = a - 0.35 * max(0.0, math.sin(phase * s)) if phase else a
        j[f"knee{side}"] = knee
        j[f"foot{side}"] = (knee[0] + 0.26 * hp * math.sin(bend), knee[1] + 0.26 * hp * math.cos(bend))
        b = -s * swing * 0.8 + (s * gesture * (0.8 + 0.5 * math.sin(3 * t + s)) if gesture else 0.0)
        elbow = (neck[0] + 0.17 * hp * math.sin(b), neck[1] + 0.02 * hp + 0.17 * hp * math.cos(b))
        j[f"elbow{side}"] = elbow
        b2 = b + (0.6 * abs(swing) + (1.2 * gesture if gesture else 0.0)) * (1 if b >= 0 else -1)
        j[f"hand{side}"] = (elbow[0] + 0.16 * hp * math.sin(b2), elbow[1] + 0.16 * hp * math.cos(b2))
    return j


def _draw_person(
    d: ImageDraw.ImageDraw,
    joints: dict[str, Point],
    hp: float,
    colours: tuple[RGB, RGB, RGB] | None,
    fill: int = 255,
) -> None:
    """The figure on `d`: legs, torso, arms, head; `colours` (shirt, legs, skin), or `fill` on a mask."""
    shirt, legs, skin = colours if colours is not None else ((fill,) * 3, (fill,) * 3, (fill,) * 3)
    limb = max(1, round(0.075 * hp))

    def c(rgb: RGB) -> RGB | int:
        return rgb if colours is not None else fill

    for side in ("l", "r"):
        d.line([joints["hip"], joints[f"knee{side}"], joints[f"foot{side}"]], fill=c(legs), width=limb, joint="curve")
    hx, hy = joints["hip"]
    nx, ny = joints["neck"]
    w = 0.12 * hp
    d.polygon([(nx - w, ny), (nx + w, ny), (hx + 0.8 * w, hy), (hx - 0.8 * w, hy)], fill=c(shirt))
    for side in ("l", "r"):
        d.line(
            [joints["neck"], joints[f"elbow{side}"], joints[f"hand{side}"]],
            fill=c(shirt),
            width=max(1, round(0.06 * hp)),
            joint="curve",
        )
    r = 0.065 * hp
    ux, uy = joints["head"]
    d.ellipse((ux - r, uy - r, ux + r, uy + r), fill=c(skin))


def _random_person(rng: np.random.Generator, x: float, z: float, speed: float, along_z: bool) -> _Person:
    heading = rng.choice([-1.0, 1.0])
    vx, vz = (0.0, heading * speed) if along_z else (heading * speed, rng.uniform(-0.1, 0.1) * speed)
    skin = _rgb(np.array([225, 180, 150]) * rng.uniform(0.35, 1.05))
    return _Person(
        x,
        z,
        vx,
        vz,
        rng.uniform(1.55, 1.9),
        _colour(rng, 20, 230),
        _colour(rng, 15, 120),
        skin,
        cadence=speed * rng.uniform(0.75, 0.95),
        phase=rng.uniform(0, 2 * math.pi),
    )


# --- worlds: a scene's picture from one viewpoint -----------------------------------------------------


@dataclass
class _Proj:
    """One-point perspective: a point (x, y up, z into the scene) in metres to world-picture pixels."""

    u0: float
    v0: float
    f: float
    ex: float
    ey: float
    d0: float

    def __call__(self, x: float, y: float, z: float) -> Point:
        k = self.f / (z + self.d0)
        return (self.u0 + k * (x - self.ex), self.v0 + k * (self.ey - y))

    def scale(self, z: float) -> float:
        return self.f / (z + self.d0)


@dataclass
class _World:
    """A scene's picture from one viewpoint: lit and (lazily) with the lights off, what is redrawn over
    people, where its doors are, its people and where they may go."""

    kind: str
    size: tuple[int, int]
    proj: _Proj | None
    draw: Callable[[bool], tuple[Image.Image, list[tuple[list[Point], RGB]]]]
    dark_level: float
    doors: list[list[Point]] = field(default_factory=list)
    people: list[_Person] = field(default_factory=list)
    bounds: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0)
    _pictures: dict[bool, tuple[Image.Image, list[tuple[list[Point], RGB]]]] = field(default_factory=dict)

    def picture(self, lit: bool) -> tuple[Image.Image, list[tuple[list[Point], RGB]]]:
        if lit not in self._pictures:
            self._pictures[lit] = self.draw(lit)
        return self._pictures[lit]


@dataclass
class _Room:
    """A box-shaped room in metres: walls, what hangs on them, furniture and ceiling lights."""

    w: float
    h: float
    d: float
    floor: RGB
    wall: RGB
    back: RGB
    ceiling: RGB
    tile: float
    boxes: list[tuple[float, float, float, float, float, float, RGB, str]] = field(default_factory=list)
    panels: list[tuple[str, float, float, float, float, str, RGB]] = field(default_factory=list)
    lamps: list[tuple[float, float]] = field(default_factory=list)  # (x, z) under the ceiling
    patterns: dict[int, Image.Image] = field(default_factory=dict)  # panel index -> picture
    dark: float = 0.3  # how much light is left with the lights off
    night: bool = False
    lamp_colour: RGB = (255, 248, 230)


def _room_scene(rng: np.random.Generator, kind: str, night: bool) -> _Room:
    """An office, a corridor or a TV studio: size, colours, panels, furniture, lamps."""
    if kind == "corridor":
        w, h, d = rng.uniform(2.2, 3.2), rng.uniform(2.6, 3.0), rng.uniform(22, 40)
        wall = _rgb(np.array([200, 196, 184]) * rng.uniform(0.6, 1.15))
        room = _Room(w, h, d, _colour(rng, 60, 170), wall, wall, (215, 215, 210), rng.uniform(0.4, 0.8))
        room.dark = rng.uniform(0.08, 0.2)
        z = rng.uniform(1.5, 3.5)
        door_colour = _colour(rng, 50, 190)
        while z < d - 2:
            side = "left" if rng.random() < 0.5 else "right"
            room.panels.append((side, z, z + rng.uniform(0.9, 1.1), 0.0, 2.05, "door", door_colour))
            if rng.random() < 0.3:
                other = "right" if side == "left" else "left"
                room.panels.append((other, z + 0.2, z + 0.9, 1.2, 1.9, "poster", _colour(rng)))
            z += rng.uniform(2.5, 5.0)
        for side in ("left", "right"):  # a dado rail along both walls
            room.panels.append((side, 0.0, d, 0.9, 1.0, "rail", _rgb(np.array(wall) * 0.7)))
        room.panels.append(("back", w / 2 - 0.5, w / 2 + 0.5, 0.0, 2.05, "door", door_colour))
        room.panels.append(("back", w / 2 - 0.25, w / 2 + 0.25, 2.2, 2.45, "sign", (40, 200, 90)))
        for zz in np.arange(1.5, d, rng.uniform(2.5, 4.0)):
            room.lamps.append((w / 2, float(zz)))
        if rng.random() < 0.6:  # a fire extinguisher box, a bench
            zz = rng.uniform(3, d / 2)
            room.boxes.append((0.0, 0.3, 0.8, 1.4, zz, zz + 0.25, (190, 30, 30), ""))
        if rng.random() < 0.5:
            zz = rng.uniform(3, d / 2)
            room.boxes.append((w - 0.45, w, 0.0, 0.45, zz, zz + 1.6, _colour(rng, 40, 160), ""))
        return room
    if kind == "studio":
        w, h, d = rng.uniform(10, 14), rng.uniform(4.5, 6.0), rng.uniform(7, 10)
        room = _Room(w, h, d, _colour(rng, 10, 60), _colour(rng, 10, 60), _colour(rng, 20, 80), (25, 25, 30), 0.0)
        room.dark = rng.uniform(0.06, 0.15)
        sw = rng.uniform(0.45, 0.7) * w
        room.panels.append(("back", w / 2 - sw / 2, w / 2 + sw / 2, 0.6, 0.6 + sw * 9 / 16 * 0.7, "screen", (0, 0, 0)))
        dz = d - rng.uniform(2.5, 3.5)
        dw = rng.uniform(2.5, 4.0)
        desk = _colour(rng, 60, 230)
        room.boxes.append((w / 2 - dw / 2, w / 2 + dw / 2, 0.0, 0.8, dz, dz + 0.7, desk, "front"))
        room.boxes.append((w / 2 - dw / 2, w / 2 + dw / 2, 0.3, 0.42, dz - 0.01, dz, _colour(rng, 150, 255), "front"))
        for _ in range(int(rng.integers(1, 3))):  # monitors on stands at the sides
            x = rng.choice([rng.uniform(0.5, w / 2 - dw / 2 - 1.2), rng.uniform(w / 2 + dw / 2 + 0.2, w - 1.5)])
            zz = rng.uniform(2, d - 2)
            room.boxes.append((x + 0.45, x + 0.55, 0.0, 1.2, zz, zz + 0.1, (40, 40, 40), ""))
            room.boxes.append((x, x + 1.0, 1.2, 1.8, zz - 0.05, zz, (10, 10, 10), "glow"))
        for xx in np.linspace(1, w - 1, int(rng.integers(4, 8))):
            room.lamps.append((float(xx), rng.uniform(1, d - 1)))
        room.lamp_colour = _rgb(np.array([255, 240, 215]) * rng.uniform(0.9, 1.0))
        return room
    # an office
    w, h, d = rng.uniform(6, 10), rng.uniform(2.6, 3.2), rng.uniform(6, 11)
    wall = _rgb(np.array(_colour(rng, 120, 235)))
    room = _Room(w, h, d, _colour(rng, 50, 180), wall, _rgb(np.array(wall) * rng.uniform(0.8, 1.1)), (225, 225, 220), 0)
    room.tile = rng.uniform(0.5, 1.0) if rng.random() < 0.6 else 0.0
    room.dark = rng.uniform(0.12, 0.3)
    win_side = "left" if rng.random() < 0.5 else "right"
    for zz in np.arange(rng.uniform(0.8, 1.5), d - 1.5, rng.uniform(1.8, 2.6)):
        room.panels.append((win_side, float(zz), float(zz) + 1.3, 0.9, 2.3, "window", (0, 0, 0)))
    door_x = rng.uniform(0.8, w - 1.8)
    room.panels.append(("back", door_x, door_x + 1.0, 0.0, 2.1, "door", _colour(rng, 60, 200)))
    other = "right" if win_side == "left" else "left"
    room.panels.append(
        (other, d * rng.uniform(0.3, 0.6), d * rng.uniform(0.3, 0.6) + 1.0, 0.0, 2.1, "door", _colour(rng, 60, 200))
    )
    for _ in range(int(rng.integers(2, 5))):  # posters, a whiteboard, a clock
        pw, ph = rng.uniform(0.5, 1.6), rng.uniform(0.5, 1.1)
        px = rng.uniform(0.2, w - pw - 0.2)
        if px + pw > door_x - 0.1 and px < door_x + 1.1:
            continue
        room.patterns[len(room.panels)] = _pattern(rng, 64, 48)
        room.panels.append(("back", px, px + pw, 1.2, 1.2 + ph, "poster", (255, 255, 255)))
    room.panels.append((other, 0.5, 0.5 + rng.uniform(1.2, 2.0), 1.0, 2.0, "board", (238, 238, 236)))
    desk = _colour(rng, 80, 220)
    for row in np.arange(d * 0.45, d - 1.2, rng.uniform(1.8, 2.5)):
        for x in np.arange(rng.uniform(0.6, 1.2), w - 1.6, rng.uniform(1.9, 2.6)):
            if rng.random() < 0.2:
                continue
            x, z = float(x), float(row)
            room.boxes.append((x, x + 1.4, 0.68, 0.75, z, z + 0.75, desk, ""))
            room.boxes.append((x + 0.05, x + 0.1, 0.0, 0.68, z, z + 0.05, _rgb(np.array(desk) * 0.6), ""))
            room.boxes.append((x + 1.3, x + 1.35, 0.0, 0.68, z, z + 0.05, _rgb(np.array(desk) * 0.6), ""))
            room.boxes.append((x + 0.45, x + 0.95, 0.78, 1.12, z + 0.35, z + 0.4, (15, 15, 18), "glow"))
            room.boxes.append((x + 0.45, x + 0.9, 0.0, 0.5, z - 0.55, z - 0.1, _colour(rng, 20, 90), ""))
    for _ in range(int(rng.integers(1, 4))):  # cabinets and plants along the walls
        x = float(rng.choice([0.05, w - 0.65]))
        z = rng.uniform(1.0, d - 1.0)
        if rng.random() < 0.6:
            room.boxes.append((x, x + 0.6, 0.0, rng.uniform(1.0, 2.0), z, z + 0.5, _colour(rng, 90, 200), ""))
        else:
            room.boxes.append((x + 0.1, x + 0.5, 0.0, 0.45, z, z + 0.4, (120, 70, 40), ""))
            room.boxes.append((x, x + 0.6, 0.45, 1.3, z, z + 0.1, (50, 110, 50), ""))
    for zz in np.arange(1.5, d, rng.uniform(2.0, 3.0)):
        for xx in np.arange(1.5, w, rng.uniform(2.0, 3.0)):
            room.lamps.append((float(xx), float(zz)))
    room.night = night
    return room


def _room_world(
    rng: np.random.Generator, kind: str, room: _Room, size: tuple[int, int], view: int, cctv: bool
) -> _World:
    """The room's picture from a viewpoint: view 0 from the front, later views from elsewhere."""
    W, H = size
    if kind == "corridor":
        ex = room.w * rng.uniform(0.3, 0.7)
    else:
        ex = room.w * (
            rng.uniform(0.35, 0.65) if view == 0 else rng.choice([rng.uniform(0.1, 0.3), rng.uniform(0.7, 0.9)])
        )
    ey = rng.uniform(2.2, room.h - 0.15) if cctv else rng.uniform(1.3, 1.8)
    d0 = rng.uniform(0.8, 2.5) if view == 0 else rng.uniform(0.5, 4.0)
    f = W * rng.uniform(0.45, 0.7)
    if kind == "corridor":
        f = W * rng.uniform(0.5, 0.9)
    elif kind == "studio":
        f = W * rng.uniform(0.9, 1.3)
    v0 = H * (0.5 - 0.12 * (ey - 1.6)) + rng.uniform(-0.05, 0.05) * H
    proj = _Proj(W / 2 + rng.uniform(-0.05, 0.05) * W, v0, f, ex, ey, d0)
    doors: list[list[Point]] = []
    for wall, a0, a1, b0, b1, what, _ in room.panels:
        if what == "door":
            doors.append(_panel_quad(proj, room, wall, a0, a1, b0, b1))

    look = int(rng.integers(1 << 30))

    def draw(lit: bool) -> tuple[Image.Image, list[tuple[list[Point], RGB]]]:
        return _draw_room(np.random.default_rng([_SALT, look]), room, proj, size, lit)

    people: list[_Person] = []
    bounds = (
        0.4,
        room.w - 0.4,
        room.d * (0.3 if kind == "office" else 0.05),
        room.d * (0.42 if kind == "office" else 0.9),
    )
    if kind == "studio":
        dz = max(b[4] for b in room.boxes if b[7] == "front")
        for i in range(int(rng.integers(1, 3))):
            x = room.w / 2 + (i - 0.5) * rng.uniform(0.6, 1.2)
            p = _random_person(rng, x, dz + 0.5, 0.0, False)
            p.vx, p.vz, p.gesture = 0.0, 0.0, rng.uniform(0.1, 0.4)
            people.append(p)
        bounds = (0.0, 0.0, 0.0, 0.0)
    else:
        for _ in range(int(rng.integers(0, 4))):
            along_z = kind == "corridor" or rng.random() < 0.3
            z = rng.uniform(bounds[2], bounds[3])
            people.append(_random_person(rng, rng.uniform(bounds[0], bounds[1]), z, rng.uniform(0.9, 1.6), along_z))
    return _World(kind, size, proj, draw, room.dark, doors, people, bounds)


def _panel_quad(proj: _Proj, room: _Room, wall: str, a0: float, a1: float, b0: float, b1: float) -> list[Point]:
    if wall == "back":
        return [proj(a0, b0, room.d), proj(a1, b0, room.d), proj(a1, b1, room.d), proj(a0, b1, room.d)]
    x = 0.0 if wall == "left" else room.w
    if wall in ("floor", "ceiling"):
        y = 0.0 if wall == "floor" else room.h
        return [proj(a0, y, b0), proj(a1, y, b0), proj(a1, y, b1), proj(a0, y, b1)]
    return [proj(x, b0, a0), proj(x, b0, a1), proj(x, b1, a1), proj(x, b1, a0)]


def _box_faces(
    proj: _Proj, box: tuple[float, float, float, float, float, float, RGB, str]
) -> list[tuple[list[Point], RGB]]:
    x0, x1, y0, y1, z0, z1, c, _ = box
    faces: list[tuple[list[Point], RGB]] = []
    if proj.ey > y1:
        faces.append(([proj(x0, y1, z0), proj(x1, y1, z0), proj(x1, y1, z1), proj(x0, y1, z1)], _rgb(c, 1.15)))
    if proj.ex < x0:
        faces.append(([proj(x0, y0, z0), proj(x0, y0, z1), proj(x0, y1, z1), proj(x0, y1, z0)], _rgb(c, 0.72)))
    if proj.ex > x1:
        faces.append(([proj(x1, y0, z0), proj(x1, y0, z1), proj(x1, y1, z1), proj(x1, y1, z0)], _rgb(c, 0.8)))
    faces.append(([proj(x0, y0, z0), proj(x1, y0, z0), proj(x1, y1, z0), proj(x0, y1, z0)], c))
    return faces


def _draw_room(
    rng: np.random.Generator, room: _Room, proj: _Proj, size: tuple[int, int], lit: bool
) -> tuple[Image.Image, list[tuple[list[Point], RGB]]]:
    """The room lit or with the lights off: surfaces, then light, then what glows."""
    W, H = size
    w, h, d = room.w, room.h, room.d
    img = Image.new("RGB", size, room.ceiling)
    dr = ImageDraw.Draw(img)
    dr.polygon([proj(0, 0, 0), proj(w, 0, 0), proj(w, 0, d), proj(0, 0, d)], fill=room.floor)
    dr.polygon([proj(0, h, 0), proj(w, h, 0), proj(w, h, d), proj(0, h, d)], fill=_rgb(room.ceiling, 0.95))
    dr.polygon([proj(0, 0, 0), proj(0, 0, d), proj(0, h, d), proj(0, h, 0)], fill=_rgb(room.wall, 0.82))
    dr.polygon([proj(w, 0, 0), proj(w, 0, d), proj(w, h, d), proj(w, h, 0)], fill=_rgb(room.wall, 0.9))
    dr.polygon([proj(0, 0, d), proj(w, 0, d), proj(w, h, d), proj(0, h, d)], fill=room.back)
    if room.tile:
        line = _rgb(room.floor, 0.75)
        for x in np.arange(0, w, room.tile):
            dr.line([proj(float(x), 0, 0), proj(float(x), 0, d)], fill=line, width=1)
        for z in np.arange(0, d, room.tile):
            dr.line([proj(0, 0, float(z)), proj(w, 0, float(z))], fill=line, width=1)
    glow: list[tuple[list[Point], str, int]] = []
    for i, (wall, a0, a1, b0, b1, what, colour) in enumerate(room.panels):
        quad = _panel_quad(proj, room, wall, a0, a1, b0, b1)
        if what in ("window", "screen", "sign"):
            glow.append((quad, what, i))
            continue
        if what == "door":
            dr.polygon(quad, fill=_rgb(colour, 0.6))
            inner = _panel_quad(proj, room, wall, a0 + 0.06, a1 - 0.06, b0, b1 - 0.06)
            dr.polygon(inner, fill=colour)
            hx = a1 - 0.15 if wall != "left" else a0 + 0.15
            knob = _panel_quad(proj, room, wall, hx - 0.04, hx + 0.04, 1.0, 1.06)
            dr.polygon(knob, fill=(200, 200, 190))
        elif what == "poster" and i in room.patterns and wall == "back":
            xs, ys = [p[0] for p in quad], [p[1] for p in quad]
            rect = (round(min(xs)), round(min(ys)), round(max(xs)), round(max(ys)))
            if rect[2] - rect[0] >= 2 and rect[3] - rect[1] >= 2:
                img.paste(room.patterns[i].resize((rect[2] - rect[0], rect[3] - rect[1])), rect[:2])
                dr.rectangle(rect, outline=(30, 30, 30))
        else:
            dr.polygon(quad, fill=colour, outline=_rgb(colour, 0.6))
    for box in sorted(room.boxes, key=lambda b: -b[4]):
        for poly, c in _box_faces(proj, box):
            dr.polygon(poly, fill=c)
    # light: pools under the lamps, or what comes through the windows
    light = Image.new("L", size, 0)
    dl = ImageDraw.Draw(light)
    if lit:
        for x, z in room.lamps:
            r = 1.3 if room.d > 12 or room.w > 9 else 1.6
            dl.polygon(
                [proj(x - r, 0, z - r), proj(x + r, 0, z - r), proj(x + r, 0, z + r), proj(x - r, 0, z + r)], fill=200
            )
            if z > d - 2:  # a lamp near the back wall lights it too
                dl.polygon(_panel_quad(proj, room, "back", x - r, x + r, 1.0, h), fill=90)
    elif not room.night:
        for wall, a0, a1, _, _, what, _ in room.panels:
            if what == "window":
                x0, x1 = (0.0, 2.5) if wall == "left" else (room.w - 2.5, room.w)
                dl.polygon([proj(x0, 0, a0), proj(x1, 0, a0), proj(x1, 0, a1 + 0.8), proj(x0, 0, a1 + 0.8)], fill=230)
    pools = np.asarray(light.filter(ImageFilter.GaussianBlur(0.02 * W)), np.float32)[..., None] / 255
    arr = np.asarray(img, np.float32)
    arr += _grain(rng, W, H, 5.0)[..., None]
    if lit:
        depth = np.linspace(0.9, 1.05, H, dtype=np.float32)[:, None, None]
        arr *= (0.72 + 0.55 * pools) * depth * (np.array(room.lamp_colour, np.float32) / 255)
    else:
        arr *= room.dark + 0.55 * pools
    img = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))
    dr = ImageDraw.Draw(img)
    for quad, what, i in glow:
        if what == "window":
            sky = (20, 28, 55) if room.night else (200, 222, 245)
            dr.polygon(quad, fill=sky, outline=(70, 70, 70))
            (x0, y0), (x1, y1), (x2, y2), (x3, y3) = quad  # a mullion down the middle
            dr.line([((x0 + x1) / 2, (y0 + y1) / 2), ((x2 + x3) / 2, (y2 + y3) / 2)], fill=(80, 80, 80), width=2)
        elif what == "screen":
            xs, ys = [p[0] for p in quad], [p[1] for p in quad]
            rect = (round(min(xs)), round(min(ys)), round(max(xs)), round(max(ys)))
            pic = _pattern(np.random.default_rng([_SALT, 7, i, int(room.w * 1000)]), 96, 54)
            img.paste(pic.resize((max(2, rect[2] - rect[0]), max(2, rect[3] - rect[1]))), rect[:2])
            for k in range(1, 4):  # the video wall's panel seams
                xk = rect[0] + k * (rect[2] - rect[0]) / 4
                dr.line([(xk, rect[1]), (xk, rect[3])], fill=(15, 15, 15), width=1)
        else:
            dr.polygon(quad, fill=(60, 230, 110))
    for x, z in room.lamps:  # the light fittings themselves
        r = 0.3
        quad = [proj(x - r, h, z - r), proj(x + r, h, z - r), proj(x + r, h, z + r), proj(x - r, h, z + r)]
        dr.polygon(quad, fill=(250, 250, 245) if lit else (110, 110, 108))
    for box in room.boxes:
        if box[7] == "glow":  # monitors: lit whether the room is or not, some asleep
            screen = _colour(rng, 70, 240)
            asleep = rng.random() < 0.2
            dr.polygon(_box_faces(proj, box)[-1][0], fill=(20, 20, 24) if asleep else screen)
    level = 1.0 if lit else room.dark
    fronts = [(poly, _rgb(c, level)) for box in room.boxes if box[7] == "front" for poly, c in _box_faces(proj, box)]
    return img, fronts


def _pitch_world(rng: np.random.Generator, size: tuple[int, int], view: int) -> _World:
    """A football pitch seen from a high camera at the side: stripes, lines, boards, crowd, players."""
    W, H = size
    ex = 52.5 + (rng.uniform(-12, 12) if view == 0 else rng.choice([-1.0, 1.0]) * rng.uniform(20, 35))
    ey = rng.uniform(9, 16) if view == 0 else rng.uniform(4, 20)
    d0 = rng.uniform(18, 30) if view == 0 else rng.uniform(8, 40)
    f = W * rng.uniform(0.55, 0.8) * (d0 / 22)
    v0 = H * rng.uniform(0.25, 0.35) - f * ey / (68 + d0)  # the far touchline a third of the way down
    proj = _Proj(W / 2, v0, f, ex, ey, d0)
    greens = (np.array([52, 120, 50]) * rng.uniform(0.8, 1.15), np.array([66, 140, 60]) * rng.uniform(0.8, 1.15))
    boards = [_colour(rng, 30, 240) for _ in range(8)]
    kits = (_colour(rng, 20, 235), _colour(rng, 20, 235))
    crowd_seed = int(rng.integers(1 << 30))

    def draw(lit: bool) -> tuple[Image.Image, list[tuple[list[Point], RGB]]]:
        r = np.random.default_rng([_SALT, crowd_seed])
        img = Image.new("RGB", size, (30, 32, 40))
        dr = ImageDraw.Draw(img)
        # stands: a slope of crowd above the far side
        stands = [proj(-40, 0, 72), proj(145, 0, 72), proj(145, 28, 100), proj(-40, 28, 100)]
        mask = Image.new("L", size, 0)
        ImageDraw.Draw(mask).polygon(stands, fill=255)
        cw, ch = max(2, W // 3), max(2, H // 3)
        crowd = r.uniform(30, 230, (ch, cw, 3)) * r.uniform(0.4, 1.0, (ch, 1, 1))
        crowd_img = Image.fromarray(crowd.astype(np.uint8)).resize(size, Image.Resampling.NEAREST)
        img.paste(crowd_img, (0, 0), mask)
        dr.polygon([proj(-40, 28, 100), proj(145, 28, 100), proj(145, 60, 100), proj(-40, 60, 100)], fill=(60, 62, 70))
        for k, x in enumerate(np.arange(-40, 145, 10.5)):  # grass stripes
            x = float(x)
            c = _rgb(greens[k % 2])
            dr.polygon([proj(x, 0, -8), proj(x + 10.5, 0, -8), proj(x + 10.5, 0, 72), proj(x, 0, 72)], fill=c)
        for k, x in enumerate(np.arange(-10, 115, 8.0)):  # advertising boards
            q = [proj(float(x), 0, 70), proj(float(x) + 8, 0, 70), proj(float(x) + 8, 0.9, 70), proj(float(x), 0.9, 70)]
            dr.polygon(q, fill=boards[k % len(boards)])
            m = [proj(float(x) + 1.5, 0.25, 70), proj(float(x) + 6.5, 0.65, 70)]
            dr.rectangle((m[0][0], m[1][1], m[1][0], m[0][1]), fill=_rgb(boards[(k + 3) % len(boards)], 1.3))

        def line(pts: list[tuple[float, float]]) -> None:
            for (x0, z0), (x1, z1) in zip(pts, pts[1:], strict=False):
                wpx = max(1, round(0.12 * proj.scale((z0 + z1) / 2)))
                dr.line([proj(x0, 0, z0), proj(x1, 0, z1)], fill=(235, 235, 230), width=wpx)

        line([(0, 0), (105, 0), (105, 68), (0, 68), (0, 0)])
        line([(52.5, 0), (52.5, 68)])
        circle = [(52.5 + 9.15 * math.cos(a), 34 + 9.15 * math.sin(a)) for a in np.linspace(0, 2 * math.pi, 40)]
        line(circle)
        for x0, s in ((0.0, 1.0), (105.0, -1.0)):
            line([(x0, 13.84), (x0 + s * 16.5, 13.84), (x0 + s * 16.5, 54.16), (x0, 54.16)])
            line([(x0, 24.84), (x0 + s * 5.5, 24.84), (x0 + s * 5.5, 43.16), (x0, 43.16)])
            dr.polygon(
                [proj(x0, 0, 30.34), proj(x0, 0, 37.66), proj(x0, 2.44, 37.66), proj(x0, 2.44, 30.34)],
                outline=(250, 250, 250),
            )
        arr = np.asarray(img, np.float32) + _grain(r, W, H, 6.0)[..., None]
        return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8)), []

    people: list[_Person] = []
    centre = (rng.uniform(25, 80), rng.uniform(15, 55))
    for i in range(int(rng.integers(8, 16))):
        kit = kits[i % 2]
        speed = rng.uniform(0.5, 5.0)
        a = rng.uniform(0, 2 * math.pi)
        p = _Person(
            centre[0] + rng.normal(0, 12),
            centre[1] + rng.normal(0, 9),
            speed * math.cos(a),
            speed * math.sin(a) * 0.5,
            rng.uniform(1.7, 1.9),
            kit,
            (240, 240, 240) if i % 2 else (20, 20, 30),
            _rgb(np.array([225, 180, 150]) * rng.uniform(0.35, 1.05)),
            cadence=1.2 + 0.35 * speed,
            phase=rng.uniform(0, 2 * math.pi),
            wobble=(rng.uniform(0, 4), rng.uniform(0, 3), rng.uniform(0.3, 1.2)),
        )
        people.append(p)
    return _World("pitch", size, proj, draw, 1.0, [], people, (0.0, 105.0, 0.0, 68.0))


def _slides_world(rng: np.random.Generator, size: tuple[int, int]) -> _World:
    """A document of slides stacked down a viewer, as a screen recording scrolls through it."""
    W, H = size
    theme = rng.random() < 0.3
    bg = (245, 245, 242) if not theme else (30, 34, 48)
    ink = (60, 60, 64) if not theme else (220, 220, 225)
    accent = _colour(rng, 30, 220)
    seed = int(rng.integers(1 << 30))

    def draw(lit: bool) -> tuple[Image.Image, list[tuple[list[Point], RGB]]]:
        r = np.random.default_rng([_SALT, seed])
        img = Image.new("RGB", size, (88, 90, 96))
        dr = ImageDraw.Draw(img)
        pw = 0.86 * W
        ph = pw * 9 / 16
        x0 = (W - pw) / 2
        y = 0.03 * H
        while y < H:
            dr.rectangle((x0, y, x0 + pw, y + ph), fill=bg)
            dr.rectangle((x0, y, x0 + pw, y + 0.16 * ph), fill=accent)
            dr.rectangle((x0 + 0.05 * pw, y + 0.05 * ph, x0 + r.uniform(0.3, 0.7) * pw, y + 0.1 * ph), fill=bg)
            split = r.uniform(0.45, 0.6)
            by = y + 0.24 * ph
            while by < y + 0.88 * ph:
                indent = 0.05 * pw if r.random() < 0.7 else 0.09 * pw
                dr.ellipse((x0 + indent - 0.02 * pw, by, x0 + indent - 0.01 * pw, by + 0.02 * pw), fill=accent)
                dr.rectangle(
                    (x0 + indent, by, x0 + indent + r.uniform(0.15, split - 0.1) * pw, by + 0.022 * pw), fill=ink
                )
                by += r.uniform(0.07, 0.11) * ph
            fx0, fy0 = x0 + (split + 0.03) * pw, y + 0.24 * ph
            fw, fh = (0.92 - split) * pw, 0.62 * ph
            if r.random() < 0.5:
                img.paste(_pattern(r, round(fw), round(fh)), (round(fx0), round(fy0)))
            else:  # a chart
                n = int(r.integers(4, 9))
                dr.line([(fx0, fy0 + fh), (fx0 + fw, fy0 + fh)], fill=ink, width=2)
                for k, v in enumerate(r.uniform(0.1, 1.0, n)):
                    bx = fx0 + (k + 0.2) * fw / n
                    dr.rectangle((bx, fy0 + fh * (1 - v), bx + 0.6 * fw / n, fy0 + fh), fill=_colour(r, 40, 230))
            dr.text((x0 + pw - 0.08 * pw, y + ph - 0.08 * ph), str(int(y // ph) + 1), fill=ink)
            y += ph + 0.04 * H
        return img, []

    return _World("slides", size, None, draw, 1.0)


# --- the camera ------------------------------------------------------------------------------------------


@dataclass
class _Rig:
    """A view of a world picture: where it looks (world pixels), how much it sees, its roll and shake."""

    centre: np.ndarray
    velocity: np.ndarray  # world pixels per second
    scale: float  # world pixels per view pixel
    zoom: float  # log rate per second
    angle: float  # degrees
    roll: float  # degrees per second
    shake: list[tuple[float, float, float, float]]  # (amplitude x, amplitude y, Hz, phase), view pixels
    whip: tuple[int, int, np.ndarray] | None = None  # frames [a, b) and the offset, world pixels

    def pose(self, t: float, j: int, fps: int) -> tuple[np.ndarray, float, float]:
        s = self.scale * math.exp(self.zoom * t)
        ox = sum(ax * math.sin(2 * math.pi * hz * t + ph) for ax, _, hz, ph in self.shake)
        oy = sum(ay * math.sin(2 * math.pi * hz * 1.3 * t + 2 * ph) for _, ay, hz, ph in self.shake)
        c = self.centre + self.velocity * t + s * np.array([ox, oy])
        if self.whip is not None:
            a, b, off = self.whip
            c = c + off * _smoothstep((j - a + 0.5) / max(b - a, 1))
        return c, s, self.angle + self.roll * t

    def coeffs(
        self, view: tuple[int, int], world: tuple[int, int], c: np.ndarray, s: float, angle: float
    ) -> tuple[float, ...]:
        """PIL's affine coefficients (view pixel -> world pixel), the view kept inside the world."""
        w, h = view
        a = math.radians(angle)
        ca, sa = abs(math.cos(a)), abs(math.sin(a))
        hw, hh = (w * ca + h * sa) / 2, (w * sa + h * ca) / 2
        s = min(s, 0.99 * world[0] / (2 * hw), 0.99 * world[1] / (2 * hh))
        cx = min(max(float(c[0]), s * hw), world[0] - s * hw)
        cy = min(max(float(c[1]), s * hh), world[1] - s * hh)
        cs, sn = math.cos(a) * s, math.sin(a) * s
        return (cs, -sn, cx - cs * w / 2 + sn * h / 2, sn, cs, cy - sn * w / 2 - cs * h / 2)


def _make_rig(
    rng: np.random.Generator,
    move: str,
    view: tuple[int, int],
    world: tuple[int, int],
    seconds: float,
    style: IndoorStyle,
    zoomed: bool,
) -> _Rig:
    w, h = view
    m = style.move
    scale = rng.uniform(0.55, 0.9) if move != "screen" else 0.97 * world[0] / w
    if zoomed:
        scale *= rng.uniform(0.45, 0.7)
    velocity, zoom, roll, shake = np.zeros(2), 0.0, 0.0, []
    if move == "static":
        velocity = rng.uniform(-0.01, 0.01, 2) * w * scale * m
    elif move == "pan":
        velocity = (
            np.array([rng.choice([-1.0, 1.0]) * rng.uniform(0.04, 0.12), rng.uniform(-0.01, 0.01)]) * w * scale * m
        )
    elif move == "tilt":
        velocity = (
            np.array([rng.uniform(-0.01, 0.01), rng.choice([-1.0, 1.0]) * rng.uniform(0.03, 0.08)]) * h * scale * m
        )
    elif move == "zoom":
        zoom = rng.choice([-1.0, 1.0]) * rng.uniform(0.03, 0.1) * m
    elif move == "roll":
        roll = rng.choice([-1.0, 1.0]) * rng.uniform(1.0, 3.5) * m
        velocity = rng.uniform(-0.02, 0.02, 2) * w * scale * m
    elif move == "handheld":
        amp = rng.uniform(0.006, 0.02) * w * style.shake
        shake = [
            (amp * rng.uniform(0.3, 1), amp * rng.uniform(0.3, 1), rng.uniform(0.3, 2.5), rng.uniform(0, 6.3))
            for _ in range(3)
        ]
        velocity = rng.uniform(-0.03, 0.03, 2) * w * scale * m
    elif move == "screen":
        velocity = np.array([0.0, rng.choice([0.0, rng.uniform(0.02, 0.12)]) * h * scale * m])
    centre = np.array(world, float) / 2 + rng.uniform(-0.08, 0.08, 2) * np.array(world) - velocity * seconds / 2
    if move == "screen":
        centre = np.array([world[0] / 2, rng.uniform(0.25, 0.5) * world[1]]) - velocity * seconds / 2
    angle = 0.0 if move in ("screen", "pan", "tilt") else rng.uniform(-2.5, 2.5) * (m > 0)
    return _Rig(centre, velocity, scale, zoom, angle, roll, shake)


# --- drawing a shot ---------------------------------------------------------------------------------------


_FONT: ImageFont.FreeTypeFont | ImageFont.ImageFont | None = None


def _font() -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    global _FONT
    if _FONT is None:
        _FONT = ImageFont.load_default()
    return _FONT


class _ShotRenderer:
    """Draws one shot's frames: the scene's picture through the camera, its people and its effects."""

    def __init__(
        self,
        world: _World,
        rig: _Rig,
        shot: PlannedShot,
        lit_before: bool,
        size: tuple[int, int],
        fps: int,
        rng: np.random.Generator,
        style: IndoorStyle,
        clock: int,
    ) -> None:
        self.world, self.rig, self.shot, self.size, self.fps = world, rig, shot, size, fps
        w, h = size
        self.lit_before = lit_before
        self.lights: tuple[Effect, bool, list[float]] | None = None  # effect, switching on, levels per frame
        self.flash: dict[int, float] = {}
        self.gain_steps: list[tuple[Effect, float]] = []
        self.occluders: list[tuple[Effect, dict[str, float], RGB]] = []
        self.door: tuple[Effect, int, RGB] | None = None
        self.popup: tuple[Effect, tuple[float, float, float, float], RGB] | None = None
        self.camera = shot.camera
        self.drift = (style.drift * rng.uniform(0.2, 1.0), rng.uniform(3, 12), rng.uniform(0, 6.3))
        self.people = world.people if style.people > 0 else []
        self.clock = clock
        for fx in shot.effects:
            if fx.name == "flash":
                for k, j in enumerate(range(fx.a, fx.b)):
                    self.flash[j] = rng.uniform(0.6, 0.85) * (0.6**k)
            elif fx.name in ("lights_off", "lights_on"):
                on = fx.name == "lights_on"
                n = fx.b - fx.a
                levels = (
                    list(np.linspace(0, 1, n + 1)[1:])
                    if n <= 3 or not on
                    else [float(v) for v in (rng.random(n) < 0.5)]
                )
                if on and n > 3:
                    levels[-1] = 1.0
                self.lights = (fx, on, levels if on else [1 - v for v in levels])
            elif fx.name == "exposure":
                g = rng.uniform(1.2, 1.45) if rng.random() < 0.5 else rng.uniform(0.65, 0.82)
                self.gain_steps.append((fx, g))
            elif fx.name in ("passer", "hand"):
                p = {
                    "dir": float(rng.choice([-1.0, 1.0])),
                    "y": rng.uniform(0.3, 0.9) * h,
                    "size": rng.uniform(1.4, 2.4) * h,
                    "blur": rng.uniform(0.01, 0.03) * w,
                    "phase": rng.uniform(0, 6.3),
                    "reach": rng.uniform(0.35, 0.6),
                }
                colour = (
                    _colour(rng, 10, 90)
                    if fx.name == "passer"
                    else _rgb(np.array([220, 170, 140]) * rng.uniform(0.4, 1.0))
                )
                self.occluders.append((fx, p, colour))
            elif fx.name == "door":
                self.door = (fx, -1, _rgb(np.array([255, 248, 230]) * rng.uniform(0.92, 1.0)))
            elif fx.name == "popup":
                pw, ph = rng.uniform(0.35, 0.6) * w, rng.uniform(0.25, 0.45) * h
                px, py = rng.uniform(0.05, 0.95) * (w - pw), rng.uniform(0.1, 0.9) * (h - ph)
                self.popup = (fx, (px, py, pw, ph), _colour(rng, 30, 220))
            elif fx.name == "whip":
                vw = w * rig.scale
                if world.kind == "slides":
                    off = np.array([0.0, rng.choice([-1.0, 1.0]) * rng.uniform(0.8, 1.5) * h * rig.scale])
                else:
                    off = np.array([rng.choice([-1.0, 1.0]) * rng.uniform(0.5, 0.85) * vw, rng.uniform(-0.1, 0.1) * vw])
                rig.centre = rig.centre - off / 2
                rig.whip = (fx.a, fx.b, off)
        self.cursor = [rng.uniform(0.1, 0.9, 2) * np.array(size) for _ in range(4)] if world.kind == "slides" else []
        self.broadcast = world.kind in ("studio", "pitch") and rng.random() < 0.7
        self.overlay_colour = _colour(rng, 30, 200)
        self.overlays: dict[int, tuple[np.ndarray, np.ndarray, int, int]] = {}
        self.cam_id = int(rng.integers(1, 17))
        self.radial = self._radial(rng)

    def _radial(self, rng: np.random.Generator) -> np.ndarray:
        w, h = self.size
        y, x = np.mgrid[0:h, 0:w].astype(np.float32)
        cx, cy = rng.uniform(0.3, 0.7) * w, rng.uniform(0.3, 0.7) * h
        out: np.ndarray = (0.6 + 0.4 * np.exp(-((x - cx) ** 2 + (y - cy) ** 2) / (2 * (0.5 * w) ** 2)))[..., None]
        return out

    def light_level(self, j: int) -> float:
        """How much of the room's light is on at shot frame `j` (1 lit, 0 off)."""
        if self.lights is None:
            return 1.0 if self.lit_before else 0.0
        fx, on, levels = self.lights
        if j < fx.a:
            return 0.0 if on else 1.0
        if j >= fx.b:
            return 1.0 if on else 0.0
        return levels[j - fx.a]

    @property
    def lit_after(self) -> bool:
        return self.light_level(10**9) > 0.5

    def _view(self, coeffs: tuple[float, ...], level: float) -> tuple[Image.Image, list[tuple[list[Point], RGB]]]:
        w = self.world
        aff, bil = Image.Transform.AFFINE, Image.Resampling.BILINEAR
        if level >= 1.0 or w.kind in ("pitch", "slides"):
            pic, fronts = w.picture(True)
            return pic.transform(self.size, aff, coeffs, bil), fronts
        if level <= 0.0:
            pic, fronts = w.picture(False)
            return pic.transform(self.size, aff, coeffs, bil), fronts
        on, fronts = w.picture(True)
        off, _ = w.picture(False)
        a = on.transform(self.size, aff, coeffs, bil)
        b = off.transform(self.size, aff, coeffs, bil)
        return Image.blend(b, a, level), fronts

    def frame(self, j: int) -> np.ndarray:
        """Shot frame `j` (float32 RGB, 0-255)."""
        t = j / self.fps
        c, s, angle = self.rig.pose(t, j, self.fps)
        coeffs = self.rig.coeffs(self.size, self.world.size, c, s, angle)
        level = self.light_level(j)
        if self.rig.whip is not None and self.rig.whip[0] <= j < self.rig.whip[1]:  # motion blur
            views = []
            for dt in (-0.33, 0.0, 0.33):
                cc, ss, aa = self.rig.pose(t + dt / self.fps, j, self.fps)
                a, b, off = self.rig.whip
                cc = cc + off * (
                    _smoothstep((j + dt - a + 0.5) / max(b - a, 1)) - _smoothstep((j - a + 0.5) / max(b - a, 1))
                )
                views.append(
                    np.asarray(
                        self._view(self.rig.coeffs(self.size, self.world.size, cc, ss, aa), level)[0], np.float32
                    )
                )
            im = Image.fromarray(np.mean(np.stack(views), axis=0).astype(np.uint8))
            fronts = self.world.picture(level >= 0.5)[1]
        else:
            im, fronts = self._view(coeffs, level)
        # world pixel -> view pixel
        m = np.array([[coeffs[0], coeffs[1]], [coeffs[3], coeffs[4]]])
        inv = np.linalg.inv(m)
        off = np.array([coeffs[2], coeffs[5]])
        scale = math.hypot(coeffs[0], coeffs[3])

        def to_view(p: Point) -> Point:
            q = inv @ (np.array(p) - off)
            return (float(q[0]), float(q[1]))

        d = ImageDraw.Draw(im)
        if self.door is not None:
            self._draw_door(im, j, to_view)
        self._draw_people(d, t, level, to_view, scale)
        for poly, colour in fronts:
            d.polygon([to_view(p) for p in poly], fill=colour)
        if self.world.kind == "slides":
            self._draw_screen(d, j, t)
        pic = np.asarray(im, np.float32)
        gain = 1 + self.drift[0] * math.sin(2 * math.pi * t / self.drift[1] + self.drift[2])
        for fx, g in self.gain_steps:
            gain *= 1 + (g - 1) * min(1.0, max(0.0, (j - fx.a + 1) / (fx.b - fx.a)))
        if self.door is not None:
            fx = self.door[0]
            gain *= 1 - 0.12 * _smoothstep((j - fx.a) / (fx.b - fx.a))  # the camera's exposure reacts
        if gain != 1.0:
            pic = pic * np.float32(gain)
        for fx, p, colour in self.occluders:
            if fx.a <= j < fx.b:
                alpha = np.asarray(self._occluder_mask(fx, p, j), np.float32)[..., None] / 255
                pic += (np.array(colour, np.float32) * 0.8 - pic) * alpha
        if j in self.flash:
            pic += (255 - pic) * (self.flash[j] * self.radial)
        self._overlay(pic, j)
        return pic

    def _draw_people(
        self, d: ImageDraw.ImageDraw, t: float, level: float, to_view: Callable[[Point], Point], scale: float
    ) -> None:
        proj = self.world.proj
        if proj is None or not self.people:
            return
        light = self.world.dark_level + (1 - self.world.dark_level) * level
        placed = [(p, *p.at(t, self.world.bounds)) for p in self.people]
        for p, x, z, phase in sorted(placed, key=lambda q: -q[2]):
            u, v = proj(x, 0.0, z)
            hp = proj.scale(z) * p.height
            joints = _skeleton(u, v, hp, phase, p.gesture, t + p.phase)
            joints = {k: to_view(q) for k, q in joints.items()}
            colours = (_rgb(p.shirt, light), _rgb(p.legs, light), _rgb(p.skin, light))
            _draw_person(d, joints, hp / scale, colours)
        if self.world.kind == "pitch":  # the ball, near the first player
            x, z, _ = placed[0][1:]
            u, v = to_view(proj(x + 0.6, 0.11, z - 0.3))
            r = max(1.0, 0.12 * proj.scale(z) / scale)
            d.ellipse((u - r, v - r, u + r, v + r), fill=(245, 245, 245))

    def _draw_door(self, im: Image.Image, j: int, to_view: Callable[[Point], Point]) -> None:
        """The door most in view opens onto a bright room, and its light spills onto the floor."""
        door = self.door
        assert door is not None
        fx, pick, colour = door
        if j < fx.a:
            return
        w, h = self.size
        doors = [[to_view(p) for p in q] for q in self.world.doors]
        if not doors:
            return

        def seen(q: list[Point]) -> float:
            xs, ys = [p[0] for p in q], [p[1] for p in q]
            ix = max(0.0, min(max(xs), w) - max(min(xs), 0))
            iy = max(0.0, min(max(ys), h) - max(min(ys), 0))
            return ix * iy

        if pick < 0:  # the door most in view when it starts opening
            pick = max(range(len(doors)), key=lambda i: seen(doors[i]))
            self.door = (fx, pick, colour)
        q = doors[pick]
        s = _smoothstep((j - fx.a + 1) / (fx.b - fx.a))
        (x0, y0), (x1, y1), (x2, y2), (x3, y3) = q  # bottom-left, bottom-right, top-right, top-left
        opening = [
            (x0, y0),
            (x0 + s * (x1 - x0), y0 + s * (y1 - y0)),
            (x3 + s * (x2 - x3), y3 + s * (y2 - y3)),
            (x3, y3),
        ]
        d = ImageDraw.Draw(im)
        d.polygon(opening, fill=colour)
        spill = Image.new("L", self.size, 0)
        bw = abs(x1 - x0) * s
        ImageDraw.Draw(spill).polygon(
            [
                (x0, y0),
                (x0 + s * (x1 - x0), y1),
                (x1 + bw * 1.2, y1 + 0.8 * bw + 2),
                (x0 - bw * 1.2, y0 + 0.8 * bw + 2),
            ],
            fill=round(160 * s),
        )
        spill = spill.filter(ImageFilter.GaussianBlur(max(1.0, 0.3 * bw)))
        im.paste(Image.new("RGB", self.size, colour), (0, 0), spill)

    def _occluder_mask(self, fx: Effect, p: dict[str, float], j: int) -> Image.Image:
        w, h = self.size
        img = Image.new("L", (w, h), 0)
        d = ImageDraw.Draw(img)
        s = (j - fx.a + 0.5) / (fx.b - fx.a)
        if fx.name == "passer":  # a person close to the lens, walking across
            hp = p["size"]
            x = -0.3 * hp + s * (w + 0.6 * hp)
            x = w - x if p["dir"] < 0 else x
            joints = _skeleton(x, p["y"] + 0.55 * hp, hp, p["phase"] + 2 * math.pi * 2 * s, 0.0, 0.0)
            _draw_person(d, joints, hp, None)
        else:  # a hand reaching in over the lens and back
            reach = math.sin(math.pi * s) * p["reach"]
            cx = w * (0.15 + reach) if p["dir"] > 0 else w * (0.85 - reach)
            cy = h * (1.05 - 0.9 * reach)
            r = 0.35 * h
            d.ellipse((cx - r, cy - 0.8 * r, cx + r, cy + 1.2 * r), fill=255)
            for k in range(4):
                fxx = cx - 0.6 * r + k * 0.4 * r
                d.ellipse((fxx - 0.14 * r, cy - 1.9 * r, fxx + 0.14 * r, cy - 0.3 * r), fill=255)
            thumb = sorted((cx + p["dir"] * 0.7 * r, cx + p["dir"] * 1.4 * r))
            d.ellipse((thumb[0], cy - 0.9 * r, thumb[1], cy), fill=255)
            d.rectangle((cx - 0.7 * r, cy + r, cx + 0.7 * r, max(h, cy) + 2 * r), fill=255)  # the wrist
        return img.filter(ImageFilter.GaussianBlur(p["blur"]))

    def _draw_screen(self, d: ImageDraw.ImageDraw, j: int, t: float) -> None:
        """A screen recording's chrome (a toolbar), the mouse cursor and perhaps a dialog."""
        w, h = self.size
        bar = max(6, round(0.07 * h))
        d.rectangle((0, 0, w, bar), fill=(48, 50, 56))
        for k in range(3):
            d.ellipse(
                (6 + k * bar, bar * 0.3, 6 + k * bar + bar * 0.4, bar * 0.7),
                fill=((230, 90, 80), (240, 190, 60), (90, 200, 90))[k],
            )
        d.rectangle((w * 0.3, bar * 0.25, w * 0.7, bar * 0.75), fill=(72, 74, 80))
        if self.popup is not None:
            fx, (px, py, pw, ph), colour = self.popup
            if fx.a <= j < fx.b:
                d.rectangle((px + 4, py + 4, px + pw + 4, py + ph + 4), fill=(20, 20, 20))
                d.rectangle((px, py, px + pw, py + ph), fill=(236, 236, 236), outline=(120, 120, 120))
                d.rectangle((px, py, px + pw, py + 0.2 * ph), fill=colour)
                d.rectangle((px + 0.1 * pw, py + 0.35 * ph, px + 0.8 * pw, py + 0.45 * ph), fill=(90, 90, 90))
                d.rectangle((px + 0.6 * pw, py + 0.7 * ph, px + 0.9 * pw, py + 0.88 * ph), fill=colour)
        pts = self.cursor
        leg = t / 3.0  # the cursor moves from point to point, three seconds each
        i = int(leg) % len(pts)
        a, b = pts[i], pts[(i + 1) % len(pts)]
        x, y = a + (b - a) * _smoothstep(leg - int(leg))
        c = max(6.0, 0.045 * h)
        d.polygon(
            [(x, y), (x, y + c), (x + 0.3 * c, y + 0.75 * c), (x + 0.7 * c, y + 0.7 * c)],
            fill=(255, 255, 255),
            outline=(0, 0, 0),
        )

    def _overlay(self, pic: np.ndarray, j: int) -> None:
        """Burnt-in graphics, after exposure: a CCTV clock, a broadcaster's score bug or name strap."""
        if self.camera != "cctv" and not self.broadcast:
            return
        second = self.clock + j // self.fps
        if second not in self.overlays:
            self.overlays[second] = self._make_overlay(second)
        rgb, alpha, x, y = self.overlays[second]
        hh, ww = alpha.shape[:2]
        region = pic[y : y + hh, x : x + ww]
        region += (rgb[: region.shape[0], : region.shape[1]] - region) * alpha[: region.shape[0], : region.shape[1]]

    def _make_overlay(self, second: int) -> tuple[np.ndarray, np.ndarray, int, int]:
        w, h = self.size
        if self.camera == "cctv":
            hh, mm, ss = (second // 3600) % 24, (second // 60) % 60, second % 60
            text = f"2024-03-{11 + second // 86400 % 18:02d} {hh:02d}:{mm:02d}:{ss:02d}  CAM{self.cam_id:02d}"
            box = Image.new("RGBA", (min(w, 8 * len(text) + 8), 16), (0, 0, 0, 0))
            d = ImageDraw.Draw(box)
            d.text((3, 2), text, fill=(0, 0, 0, 255), font=_font())
            d.text((2, 1), text, fill=(255, 255, 255, 255), font=_font())
            x, y = 4, 4
        elif self.world.kind == "pitch":
            box = Image.new("RGBA", (min(w - 8, 120), 16), (0, 0, 0, 0))
            d = ImageDraw.Draw(box)
            d.rectangle((0, 0, box.width - 1, 15), fill=(20, 20, 30, 230))
            d.rectangle((0, 0, 5, 15), fill=(*self.overlay_colour, 255))
            mm, ss = (second // 60) % 90, second % 60
            d.text((9, 2), f"HOM 1-0 AWY  {mm:02d}:{ss:02d}", fill=(255, 255, 255, 255), font=_font())
            x, y = 6, 6
        else:
            bw = min(w - 8, max(60, w // 2))
            box = Image.new("RGBA", (bw, 22), (0, 0, 0, 0))
            d = ImageDraw.Draw(box)
            d.rectangle((0, 0, bw - 1, 13), fill=(*self.overlay_colour, 235))
            d.rectangle((0, 13, bw * 2 // 3, 21), fill=(240, 240, 240, 235))
            d.text((4, 1), "NEWS LIVE", fill=(255, 255, 255, 255), font=_font())
            x, y = 8, max(0, h - 30)
        arr = np.asarray(box, np.float32)
        return arr[..., :3], arr[..., 3:4] / 255, x, y


# --- the video -----------------------------------------------------------------------------------------


def make_indoor_video(
    path: str | os.PathLike[str],
    seed: int = 0,
    *,
    duration: float = 60.0,
    size: tuple[int, int] | None = None,
    fps: int | None = None,
    shot_s: tuple[float, float] = (1.5, 10.0),
    plan: Sequence[tuple[str | None, str | None]] | None = None,
    style: IndoorStyle = IndoorStyle(),
    encoding: Encoding | None = None,
) -> GroundTruth:
    """Write an `indoor` video of about `duration` seconds and return its ground truth.

    Size, frame rate and encoding are drawn from the seed unless given. `plan` fixes the shots
    instead: one (transition into the shot, effect in it) pair per shot, the first transition None,
    each effect a key of `INDOOR_EFFECTS`; the video is then as long as the plan makes it.
    """
    p = plan_indoor_video(
        seed, duration=duration, size=size, fps=fps, shot_s=shot_s, plan=plan, style=style, encoding=encoding
    )
    write_video(path, p.encoding, p.size, p.fps, _frames(p))
    return p.truth(path)


def _frames(p: IndoorPlan) -> Iterator[np.ndarray]:
    """The video's frames at the working size, RGB uint8, in order."""
    seed, style = p.seed, p.style
    width, height = p.size
    work_w = min(width, _WORK_WIDTH)
    work_h = 2 * max(1, round(work_w * height / width / 2))
    work = (work_w, work_h)
    world_size = (round(2.0 * work_w), round(1.7 * work_h))
    rooms: dict[int, _Room] = {}
    lit = {i: not sc.dark for i, sc in enumerate(p.scenes)}
    last_use = {s: max(sh.last for sh in p.shots if sh.scene == s) for s in range(len(p.scenes))}
    noise_rng = np.random.default_rng([_SALT, seed, 4])
    noise = [noise_rng.standard_normal((work_h, work_w, 3), dtype=np.float32) for _ in range(_NOISE_FIELDS)]
    sigmas = [
        float(noise_rng.uniform(*style.noise)) * (1.6 if sh.camera == "cctv" else 0.0 if sh.camera == "screen" else 1.0)
        for sh in p.shots
    ]
    clock = int(noise_rng.integers(6 * 3600, 22 * 3600))
    renderers: dict[int, _ShotRenderer] = {}
    for i, (parts, fill, fill_w) in enumerate(_timeline(p.shots)):
        acc = np.full((work_h, work_w, 3), fill * fill_w, np.float32)
        for k, weight in parts:
            if k not in renderers:
                shot = p.shots[k]
                scene = p.scenes[shot.scene]
                rng = np.random.default_rng([_SALT, seed, 1, k])
                if scene.kind in ("office", "corridor", "studio"):
                    if shot.scene not in rooms:
                        rooms[shot.scene] = _room_scene(
                            np.random.default_rng([_SALT, seed, 2, shot.scene]), scene.kind, scene.night
                        )
                    world = _room_world(
                        rng, scene.kind, rooms[shot.scene], world_size, shot.view, shot.camera == "cctv"
                    )
                elif scene.kind == "pitch":
                    world = _pitch_world(rng, world_size, shot.view)
                else:
                    slides_size = (world_size[0], 6 * work_h)
                    world = _slides_world(np.random.default_rng([_SALT, seed, 2, shot.scene]), slides_size)
                seconds = (shot.last - shot.first) / p.fps
                rig = _make_rig(rng, shot.camera, work, world.size, seconds, style, zoomed=shot.view % 2 == 1)
                renderers[k] = _ShotRenderer(
                    world, rig, shot, lit[shot.scene], work, p.fps, rng, style, clock + shot.first // p.fps
                )
                lit[shot.scene] = renderers[k].lit_after
            acc += renderers[k].frame(i - p.shots[k].first) * np.float32(weight)
        sigma = max((sigmas[k] for k, _ in parts), default=0.0)
        if sigma > 0:
            acc += noise[i % _NOISE_FIELDS] * np.float32(sigma)
        acc += 0.5
        yield np.clip(acc, 0, 255, out=acc).astype(np.uint8)
        for k in [k for k in renderers if p.shots[k].last <= i + 1]:
            del renderers[k]
        for s in [s for s in rooms if last_use[s] <= i + 1]:
            del rooms[s]
