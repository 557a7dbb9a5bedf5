"""The `nature` family of shot-boundary videos: wildlife documentary and outdoor footage.

A sixth, held-out family, made independently of the other generators' pictures (only the records of
`generators.groundtruth`, and the `CUT_KINDS` / `true_time` conventions, the shot planning and the
encoder set-up of `generators.scenecut_families` are shared), so that a detector tuned on those is
reported on pictures it was never shaped by.

A video visits several *scenes*: mountains (ridges by midpoint displacement, snow caps), a lake (a
far shore mirrored in rippling water), a forest, a meadow, desert dunes, a snow field, a sea coast
and the underwater world of a reef. Each is drawn once as layers at different depths (sky with
clouds, far, middle and near ground), graded in its own colours, hazed with distance and put
together again for every frame, so that a moving camera sees parallax. Flocks of birds, grazing
four-legged animals and schools of fish move about; rain, snowfall, fog and haze lie over some
scenes. A camera looks at the layers: a tripod, a slow pan, a tilt, a zoom in or out, a drone's
glide forward, a handheld camera, a time-lapse of racing clouds. Shots are joined by hard cuts,
cuts to another viewpoint of the same landscape (`view_cut`), dissolves and fades through black or
white. Inside shots, things that are not shot changes: lightning (`flash`); a whip pan after a bird
(`fast_pan`); a branch, a bird, an animal or a fish passing right in front of the lens
(`occluder`); the sun coming out from behind a cloud or going behind one, a cloud's shadow
sweeping over the land, an auto-exposure step (`drift`). On top: slow brightness drift, sensor
noise, and H.264 (crf 18-40, GOPs from a few frames to several seconds) or MPEG-4 Part 2 encodes,
320x180 to 1280x720, 24/25/30 fps.

Planning (`plan_nature_video`: shots, transitions, effects) is separate from drawing and cheap.
Everything is deterministic for a seed.

    >>> plan_nature_video(seed=3).truth("nature-3.mp4").transitions[:2]  # doctest: +SKIP
    >>> truth = make_nature_video("nature-3.mp4", seed=3)  # doctest: +SKIP
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

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
    "NATURE_EFFECTS",
    "NATURE_FAMILY",
    "NATURE_TRANSITION_KINDS",
    "SCENE_KINDS",
    "SIZES",
    "WEATHERS",
    "Encoding",
    "NaturePlan",
    "NatureStyle",
    "make_nature_video",
    "plan_nature_video",
    "true_time",
]

NATURE_FAMILY = "nature"
NATURE_TRANSITION_KINDS = ("cut", "view_cut", "dissolve", "fade", "fade_white")
_TRANSITION_WEIGHTS = (0.42, 0.2, 0.19, 0.11, 0.08)
# What happens inside a shot, and the distractor kind it is recorded as.
NATURE_EFFECTS: dict[str, DistractorKind] = {
    "lightning": "flash",  # lightning in a storm: 1-3 bright frames
    "whip": "fast_pan",  # a whip pan following a bird (under water: a fish)
    "branch": "occluder",  # a branch swaying right across the lens
    "bird": "occluder",  # a bird flying right past the lens
    "animal": "occluder",  # an animal walking close past the camera
    "fish": "occluder",  # a fish swimming right past the lens
    "sun": "drift",  # the sun coming out from behind a cloud (or going behind one)
    "cloud_shadow": "drift",  # a cloud's shadow sweeping over the land
    "exposure": "drift",  # an auto-exposure step
}
SCENE_KINDS = ("mountains", "lake", "forest", "meadow", "desert", "snow", "sea", "underwater")
_SKY = ("lightning", "whip", "bird", "sun", "cloud_shadow", "exposure")
_SCENE_EFFECTS: dict[str, tuple[str, ...]] = {
    "mountains": (*_SKY, "branch"),
    "lake": (*_SKY, "branch"),
    "forest": ("lightning", "whip", "bird", "sun", "exposure", "branch", "animal"),
    "meadow": (*_SKY, "branch", "animal"),
    "desert": ("whip", "bird", "sun", "cloud_shadow", "exposure", "animal"),
    "snow": ("whip", "bird", "sun", "cloud_shadow", "exposure", "branch", "animal"),
    "sea": _SKY,
    "underwater": ("whip", "fish", "exposure"),
}
_EFFECT_WEIGHTS = {
    "lightning": 0.6,
    "whip": 1.0,
    "branch": 0.8,
    "bird": 0.8,
    "animal": 0.9,
    "fish": 2.0,
    "sun": 1.0,
    "cloud_shadow": 1.0,
    "exposure": 0.8,
}
CAMERA_MOVES = ("still", "pan", "tilt", "zoom_in", "zoom_out", "glide", "handheld", "timelapse")
_LAND_MOVES = {
    "still": 2,
    "pan": 2,
    "tilt": 1,
    "zoom_in": 1,
    "zoom_out": 1,
    "glide": 1.5,
    "handheld": 1,
    "timelapse": 1,
}
_SCENE_MOVES: dict[str, dict[str, float]] = {
    kind: dict(_LAND_MOVES) for kind in SCENE_KINDS if kind not in ("forest", "underwater")
} | {
    "forest": {**_LAND_MOVES, "timelapse": 0.4, "handheld": 2},
    "underwater": {"still": 1, "pan": 1.5, "tilt": 0.5, "zoom_in": 0.5, "zoom_out": 0.5, "glide": 2, "handheld": 1.5},
}
WEATHERS = ("clear", "haze", "fog", "rain", "snow", "storm")
_SCENE_WEATHER: dict[str, dict[str, float]] = {
    "mountains": {"clear": 3, "haze": 1, "fog": 1, "rain": 0.5, "snow": 0.7, "storm": 0.4},
    "lake": {"clear": 3, "haze": 0.7, "fog": 1.2, "rain": 0.8, "storm": 0.4},
    "forest": {"clear": 3, "fog": 1.5, "rain": 1},
    "meadow": {"clear": 3, "haze": 1, "rain": 1, "storm": 0.5},
    "desert": {"clear": 3, "haze": 1.5},
    "snow": {"clear": 2, "snow": 2, "fog": 0.7},
    "sea": {"clear": 3, "haze": 1, "rain": 0.6, "fog": 0.6, "storm": 0.4},
    "underwater": {"clear": 1},
}
TIMES = ("day", "golden", "overcast", "dusk")
SIZES = ((320, 180), (480, 270), (640, 360), (854, 480), (960, 540), (1280, 720))
_SIZE_TURNS = (2, 5, 0, 4, 1, 3)  # seed % 6 -> size: any six consecutive seeds show all sizes
FRAME_RATES = (24, 25, 30)
_SALT = 0x5A7E2
_MARGIN_S = 1.0  # effects keep this far from transitions
_EDGE_S = 0.5  # and this far from the video's start and end
_GAP_S = 0.5  # between two effects in one shot
_LONGEST_TRANSITION_S = 2.4
_WORK_WIDTH = 480  # frames are drawn at most this wide, then scaled to the video's size
_WORLD = (3.0, 1.9)  # a scene's layers, in frame widths and heights
_NOISE_FIELDS = 6  # sensor noise: this many fields, one per frame in turn

RGB = tuple[int, int, int]
Point = tuple[float, float]


@dataclass(frozen=True)
class NatureStyle:
    """How hard the camera, nature and the sensor work; `CALM` is a still camera over a still world
    (no animals, ripples, drifting clouds, rain or snowfall), without noise or brightness drift (for
    tests that compare pixels)."""

    move: float = 1.0  # scales every camera speed
    shake: float = 1.0  # scales handheld shake
    noise: tuple[float, float] = (0.0, 6.0)  # sensor noise sigma range, grey levels
    drift: float = 0.05  # largest slow brightness drift, relative gain
    life: float = 1.0  # scales animals, ripples, light rays, drifting clouds and fog
    weather: float = 1.0  # scales rain and snowfall (0: none)
    effect_rate: float = 0.75  # chance that a shot holds something that is not a shot change


CALM = NatureStyle(move=0.0, shake=0.0, noise=(0.0, 0.0), drift=0.0, life=0.0, weather=0.0)


# --- the plan: scenes, shots, transitions and what happens inside shots -----------------------------


@dataclass(frozen=True)
class Scene:
    kind: str  # one of SCENE_KINDS
    weather: str  # one of WEATHERS
    time: str  # one of TIMES


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
    camera: str = "still"
    first: int = 0  # first frame of the video showing it
    last: int = 0  # first frame not showing it
    solo_start: int = 0
    solo_end: int = 0
    effects: list[Effect] = field(default_factory=list)


@dataclass
class NaturePlan:
    """Everything about a video that is decided before drawing it, and its ground truth."""

    seed: int
    size: tuple[int, int]
    fps: int
    encoding: Encoding
    style: NatureStyle
    scenes: list[Scene]
    shots: list[PlannedShot]
    transitions: list[Transition]
    sun_out: dict[int, bool]  # shot index -> the sun comes out (True) or goes in, for a shot with "sun"

    @property
    def frames(self) -> int:
        return self.shots[-1].last

    @property
    def distractors(self) -> list[Distractor]:
        out = [
            Distractor(NATURE_EFFECTS[fx.name], (sh.first + fx.a) / self.fps, (sh.first + fx.b) / self.fps, k)
            for k, sh in enumerate(self.shots)
            for fx in sh.effects
        ]
        return sorted(out, key=lambda d: (d.start, d.end))

    def truth(self, path: str | os.PathLike[str]) -> GroundTruth:
        infos = [
            ShotInfo(
                f"nature-{self.seed}-scene{sh.scene}-{self.scenes[sh.scene].kind}-view{sh.view}-{sh.camera}",
                sh.first / self.fps,
                sh.last / self.fps,
            )
            for sh in self.shots
        ]
        return GroundTruth(
            os.fspath(path), self.seed, self.fps, self.frames, self.size, infos, self.transitions, self.distractors
        )


def plan_nature_video(
    seed: int = 0,
    *,
    duration: float = 60.0,
    size: tuple[int, int] | None = None,
    fps: int | None = None,
    shot_s: tuple[float, float] = (1.5, 10.0),
    plan: Sequence[tuple[str | None, str | None]] | None = None,
    style: NatureStyle = NatureStyle(),
    encoding: Encoding | None = None,
) -> NaturePlan:
    """The shots, transitions and effects of `make_nature_video` for the same arguments, without
    drawing anything (see there)."""
    rng = np.random.default_rng([_SALT, seed, 0])
    drawn_size = SIZES[_SIZE_TURNS[seed % 6]]
    drawn_fps = FRAME_RATES[(seed + 1) % 3]
    drawn_encoding = _draw_encoding(rng, (5 * seed + 2) % 6)  # any six consecutive seeds: all six
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
    for shot in shots:  # lightning comes with a storm
        if "lightning" in shot.wanted:
            scenes[shot.scene] = replace(scenes[shot.scene], weather="storm", time="overcast")
    transitions = lay_out(shots, fps)
    _place_effects(rng, shots, fps, strict=plan is not None)
    sun_out = {
        k: plan is not None or bool(rng.random() < 0.7)
        for k, shot in enumerate(shots)
        if any(fx.name == "sun" for fx in shot.effects)
    }
    return NaturePlan(
        seed, (width, height), fps, encoding or drawn_encoding, style, scenes, shots, transitions, sun_out
    )


def _draw_encoding(rng: np.random.Generator, turn: int) -> Encoding:
    """Six turns: H.264 with the default GOP, a very short, a medium and a long one; MPEG-4 Part 2 with a
    short and a long GOP."""
    crf = int(rng.integers(18, 41))
    if turn == 1:
        return Encoding(crf=crf, gop=int(rng.integers(3, 12)))
    if turn == 2:
        return Encoding("mpeg4", bits_per_pixel=float(rng.uniform(0.05, 0.25)), gop=int(rng.integers(12, 48)))
    if turn == 3:
        return Encoding(crf=crf, gop=int(rng.integers(150, 320)))
    if turn == 4:
        return Encoding(crf=crf, gop=int(rng.integers(24, 90)))
    if turn == 5:
        return Encoding("mpeg4", bits_per_pixel=float(rng.uniform(0.05, 0.25)), gop=int(rng.integers(72, 250)))
    return Encoding(crf=crf)


def _transition_frames(rng: np.random.Generator, kind: str, fps: int) -> tuple[int, int, int]:
    return transition_frames(rng, kind, fps, dissolve_s=(0.5, 2.0), fade_s=(0.3, 0.9), hold_s=(0.0, 0.6))


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
        kinds=NATURE_TRANSITION_KINDS,
        weights=_TRANSITION_WEIGHTS,
        effects=NATURE_EFFECTS,
        longest_s=_LONGEST_TRANSITION_S,
        frames_of=_transition_frames,
    )
    return [PlannedShot(*shot) for shot in lengths]


def _plan_scenes(rng: np.random.Generator, shots: list[PlannedShot], planned: bool) -> list[Scene]:
    """A new scene for every shot but those entered by a view cut; kinds in shuffled rounds (in a fixed
    plan, a kind where every effect wanted in the scene can happen); weather, time of day and a camera
    per shot."""
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
        if planned or kind == "underwater":
            weather, time = "clear", "day"
        else:
            weather = pick_weighted(rng, _SCENE_WEATHER[kind])
            time = pick_weighted(rng, {"day": 3, "golden": 1.2, "overcast": 1, "dusk": 0.5})
            if weather in ("rain", "snow", "fog") and time in ("day", "golden"):
                time = "overcast"
        scenes.append(Scene(kind, weather, time))
        for k in members:
            shots[k].scene = g
            shots[k].camera = "still" if planned else pick_weighted(rng, _SCENE_MOVES[kind])
    return scenes


def _choose_effects(
    rng: np.random.Generator, shots: list[PlannedShot], scenes: list[Scene], fps: int, rate: float
) -> None:
    for shot in shots:
        if rng.random() >= rate:
            continue
        names = list(_SCENE_EFFECTS[scenes[shot.scene].kind])
        weights = np.array([_EFFECT_WEIGHTS[n] for n in names])
        count = 2 if shot.solo > 6 * fps and rng.random() < 0.4 else 1
        picked = rng.choice(len(names), size=count, replace=False, p=weights / weights.sum())
        shot.wanted = [names[int(i)] for i in picked]


def _effect_frames(rng: np.random.Generator, name: str, fps: int) -> int:
    def span(lo: float, hi: float, least: int = 1) -> int:
        return max(least, round(rng.uniform(lo, hi) * fps))

    if name == "lightning":
        return int(rng.integers(1, 4))
    if name == "whip":
        return span(0.25, 0.7, 3)
    if name == "branch":
        return span(0.4, 1.2, 4)
    if name == "bird":
        return span(0.25, 0.8, 3)
    if name == "animal":
        return span(0.8, 2.0, 8)
    if name == "fish":
        return span(0.4, 1.2, 4)
    if name == "sun":
        return span(0.6, 2.0, 5)
    if name == "cloud_shadow":
        return span(1.0, 3.0, 8)
    if name == "exposure":
        return int(rng.integers(2, 7))
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
                for i in range(mid):
                    w = (i + 1) / (mid + 1)
                    yield [(k - 1, 1 - w), (k, w)], 0.0, 0.0
            elif shot.into in ("fade", "fade_white"):
                fill = 0.0 if shot.into == "fade" else 255.0
                for i in range(n_out):
                    w = (i + 1) / (n_out + 1)
                    yield [(k - 1, 1 - w)], fill, w
                for _ in range(mid):
                    yield [], fill, 1.0
                for i in range(n_in):
                    w = (i + 1) / (n_in + 1)
                    yield [(k, w)], fill, 1 - w
        for _ in range(shot.solo):
            yield [(k, 1.0)], 0.0, 0.0


# --- drawing helpers --------------------------------------------------------------------------------


def _smoothstep(x: float) -> float:
    x = min(max(x, 0.0), 1.0)
    return x * x * (3 - 2 * x)


def _smooth(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    out: np.ndarray = x * x * (3 - 2 * x)
    return out


def _jitter(rng: np.random.Generator, colour: Sequence[float], spread: float = 18.0) -> np.ndarray:
    return np.clip(np.asarray(colour, np.float32) + rng.uniform(-spread, spread, 3), 0, 255).astype(np.float32)


def _rgb(c: Sequence[float] | np.ndarray) -> RGB:
    return (int(np.clip(c[0], 0, 255)), int(np.clip(c[1], 0, 255)), int(np.clip(c[2], 0, 255)))


def _fractal(rng: np.random.Generator, h: int, w: int, beta: float, aspect: float = 1.0) -> np.ndarray:
    """Periodic 1/f^beta noise in [0, 1], `h` x `w`; `aspect` > 1 stretches its features across."""
    fy = np.fft.fftfreq(h).astype(np.float32)[:, None]
    fx = np.fft.rfftfreq(w).astype(np.float32)[None, :] * aspect
    f = np.sqrt(fx * fx + fy * fy)
    f[0, 0] = 1.0
    spec = (rng.standard_normal(f.shape) + 1j * rng.standard_normal(f.shape)) / f**beta
    spec[0, 0] = 0
    n = np.fft.irfft2(spec, s=(h, w)).astype(np.float32)
    lo, hi = float(n.min()), float(n.max())
    out: np.ndarray = (n - lo) / max(hi - lo, 1e-6)
    return out


def _noise(rng: np.random.Generator, h: int, w: int, beta: float, shrink: int = 3, aspect: float = 1.0) -> np.ndarray:
    """Smooth fractal noise in [0, 1] drawn `shrink` times smaller and scaled up (cheap)."""
    small = _fractal(rng, max(8, h // shrink), max(8, w // shrink), beta, aspect)
    big = Image.fromarray(small).resize((w, h), Image.Resampling.BICUBIC)
    return np.clip(np.asarray(big, np.float32), 0, 1)


def _ridge(rng: np.random.Generator, n: int, rough: float) -> np.ndarray:
    """A ridge line by midpoint displacement: `n` heights in [0, 1]; `rough` near 0.4 is smooth hills,
    near 0.65 jagged peaks."""
    size = 1
    while size < n:
        size *= 2
    y = np.zeros(size + 1)
    y[0], y[-1] = rng.uniform(-0.5, 0.5, 2)
    step, amp = size, 1.0
    while step > 1:
        half = step // 2
        mids = (y[0:-1:step] + y[step::step]) / 2
        y[half::step] = mids + rng.uniform(-amp, amp, len(mids))
        amp *= rough
        step = half
    y = y[:n]
    return (y - y.min()) / max(float(y.max() - y.min()), 1e-6)


def _perspective(tex: np.ndarray, width: int, rows: int, spread: float, cols_per_unit: float) -> np.ndarray:
    """`tex` (any size, periodic) laid on the ground from the horizon (row 0) to the bottom (row
    `rows` - 1) in perspective: compressed toward the horizon, larger in front."""
    th, tw = tex.shape
    d = (np.arange(rows, dtype=np.float32) + 1.5) / rows  # 0 at the horizon, 1 at the bottom
    dist = spread / d  # distance along the ground
    r = (dist * th / spread * 0.25).astype(np.int64) % th
    x = (np.arange(width, dtype=np.float32) - width / 2)[None, :] * (dist[:, None] / spread) * cols_per_unit
    c = x.astype(np.int64) % tw
    out: np.ndarray = tex[r[:, None], c]
    return out


@dataclass(frozen=True)
class _Grade:
    """A scene's colour grading: saturation, contrast, per-channel gain and a lift of the blacks."""

    gain: tuple[float, float, float]
    contrast: float
    saturation: float
    lift: float

    def __call__(self, rgb: np.ndarray) -> np.ndarray:
        x = rgb.astype(np.float32) / 255
        lum = x @ np.array([0.3, 0.59, 0.11], np.float32)
        x = lum[..., None] + (x - lum[..., None]) * self.saturation
        x = (x - 0.45) * self.contrast + 0.45
        x = x * np.array(self.gain, np.float32) + self.lift
        out: np.ndarray = np.clip(x * 255, 0, 255)
        return out

    def colour(self, c: Sequence[float] | np.ndarray) -> RGB:
        return _rgb(self(np.asarray(c, np.float32)[None, :])[0])


def _make_grade(rng: np.random.Generator, scene: Scene) -> _Grade:
    looks = {
        "neutral": ((1.0, 1.0, 1.0), 1.0, 1.0, 0.0),
        "warm": ((1.08, 1.0, 0.88), 1.05, 1.1, 0.01),
        "cool": ((0.9, 1.0, 1.1), 1.0, 0.95, 0.01),
        "teal_orange": ((1.06, 0.98, 0.97), 1.15, 1.2, 0.0),
        "faded": ((1.0, 0.98, 0.95), 0.8, 0.75, 0.06),
        "vivid": ((1.0, 1.02, 1.0), 1.2, 1.35, -0.02),
    }
    name = list(looks)[int(rng.integers(len(looks)))]
    gain, contrast, sat, lift = looks[name]
    g = np.array(gain) * rng.uniform(0.96, 1.04, 3)
    level = {"clear": 1.0, "haze": 0.98, "fog": 0.95, "rain": 0.78, "snow": 0.92, "storm": 0.6}[scene.weather]
    level *= {"day": 1.0, "golden": 0.95, "overcast": 0.88, "dusk": 0.62}[scene.time]
    if scene.weather in ("rain", "storm", "fog"):
        sat *= 0.7
    return _Grade(
        (float(g[0] * level), float(g[1] * level), float(g[2] * level)),
        float(contrast * rng.uniform(0.92, 1.08)),
        float(sat * rng.uniform(0.9, 1.1)),
        float(lift),
    )


# --- worlds: a scene's layers --------------------------------------------------------------------------


@dataclass
class _Layer:
    """One depth of a scene: an RGB (the sky) or premultiplied RGBa picture of the world's size (clouds:
    three world widths, scrolled), how much it moves with the camera (`parallax`, 1 for the nearest
    ground) and where its water is."""

    image: Image.Image
    parallax: float
    tiled: bool = False
    land: bool = True  # ground (not sky or clouds)
    water: Image.Image | None = None  # L mask of rippling water


@dataclass
class _World:
    kind: str
    size: tuple[int, int]
    horizon: int  # the world row where the land (or the seabed) begins
    layers: list[_Layer]
    grade: _Grade
    haze: np.ndarray  # the colour far things fade to
    weather: str
    time: str
    fauna: str  # who grazes here: "deer", "cattle", "camel", "reindeer", "goat" or ""
    ground: tuple[float, float]  # world rows where animals walk


def _premultiplied_ok(rgb: np.ndarray, alpha: np.ndarray) -> Image.Image:
    """An RGBA image of float `rgb` (0-255) and `alpha` (0-1); transparent pixels take the layer's mean
    colour, so that scaling does not darken edges."""
    a = np.clip(alpha, 0, 1)
    if (a > 0.5).any():
        mean = rgb[a > 0.5].mean(axis=0)
        rgb = np.where(a[..., None] > 0.02, rgb, mean)
    arr = np.dstack([np.clip(rgb, 0, 255), a * 255]).astype(np.uint8)
    return Image.fromarray(arr, "RGBA")


def _sky_palette(rng: np.random.Generator, scene: Scene) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(top, horizon, cloud) colours of the sky for the weather and time of day."""
    if scene.kind == "underwater":
        return _jitter(rng, (20, 110, 150), 20), _jitter(rng, (10, 45, 85), 12), np.zeros(3, np.float32)
    if scene.weather == "storm":
        return _jitter(rng, (45, 50, 62), 8), _jitter(rng, (105, 108, 118), 10), _jitter(rng, (70, 72, 82), 8)
    if scene.time == "overcast" or scene.weather in ("rain", "snow", "fog"):
        return _jitter(rng, (150, 156, 166), 15), _jitter(rng, (196, 198, 202), 10), _jitter(rng, (180, 182, 188), 10)
    if scene.time == "golden":
        return _jitter(rng, (80, 110, 170), 15), _jitter(rng, (250, 185, 120), 12), _jitter(rng, (250, 215, 190), 10)
    if scene.time == "dusk":
        return _jitter(rng, (30, 40, 90), 10), _jitter(rng, (215, 120, 95), 15), _jitter(rng, (150, 100, 120), 15)
    return _jitter(rng, (70, 130, 210), 20), _jitter(rng, (185, 210, 238), 12), _jitter(rng, (248, 248, 250), 5)


def _sky(
    rng: np.random.Generator, size: tuple[int, int], horizon: int, top: np.ndarray, bottom: np.ndarray
) -> np.ndarray:
    """A vertical gradient from `top` to `bottom` at the horizon (and below), with the sun's glow."""
    w, h = size
    t = np.clip(np.arange(h, dtype=np.float32) / max(horizon, 1), 0, 1) ** 0.7
    col = top + (bottom - top) * t[:, None]
    rgb = np.repeat(col[:, None, :], w, axis=1)
    sx, sy, r = rng.uniform(0, w), rng.uniform(0.3, 0.9) * horizon, rng.uniform(0.08, 0.2) * h
    yy, xx = np.ogrid[0:h, 0:w]
    glow = np.exp(-((xx - sx) ** 2 + (yy - sy) ** 2) / (2 * r * r)).astype(np.float32) * rng.uniform(0.2, 0.5)
    rgb += (np.float32(255) - rgb) * glow[..., None]
    return rgb


def _clouds(
    rng: np.random.Generator, width: int, horizon: int, cover: float, colour: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Clouds above the horizon, periodic across `width`: rgb and alpha, `horizon` rows."""
    h = max(horizon, 8)
    small = _fractal(
        rng, max(8, h // 2), max(8, width // 2), float(rng.uniform(1.9, 2.5)), aspect=float(rng.uniform(2, 4))
    )
    wide = Image.fromarray(np.tile(small, (1, 3))).resize((3 * width, h), Image.Resampling.BICUBIC)
    n = np.asarray(wide, np.float32)[:, width : 2 * width]  # still periodic across `width`
    # perspective: rows near the horizon show clouds further away, squeezed
    rows = np.arange(h, dtype=np.float32) / h
    src = ((1 - (1 - rows) ** 0.5) * 0.999 * h).astype(np.int64)
    n = n[src]
    density = _smooth((n - (1 - cover)) / 0.18)
    alpha = density * np.clip((1 - rows) * 3, 0, 1)[:, None] ** 0.7
    below = np.roll(n, -4, axis=0)
    shade = np.clip(1 - 4 * (n - below), 0.6, 1.05)  # undersides darker
    rgb = colour * shade[..., None]
    return rgb.astype(np.float32), alpha.astype(np.float32)


def _ridge_rgb(
    rng: np.random.Generator,
    size: tuple[int, int],
    profile: np.ndarray,
    colour: np.ndarray,
    *,
    relief: float = 0.35,
    snow: float | None = None,
    streaks: float = 1.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Land below `profile` (a row per column), shaded by its relief; snow above row `snow`."""
    w, h = size
    ys = np.arange(h, dtype=np.float32)[:, None]
    alpha = np.clip(ys - profile[None, :] + 0.5, 0, 1)
    n = _noise(rng, h, w, 1.7, shrink=2, aspect=streaks)
    relief_x = (np.roll(n, -2, axis=1) - np.roll(n, 2, axis=1)) + 0.7 * (np.roll(n, -2, axis=0) - np.roll(n, 2, axis=0))
    slope = np.gradient(profile)
    light = (
        1
        + relief * np.clip(relief_x * 4, -1, 1)
        + 0.2
        * np.clip(-np.convolve(slope, np.ones(9) / 9, "same"), -1, 1)[None, :]
        * np.exp(-np.clip(ys - profile[None, :], 0, None) / (0.08 * h))
    )
    depth = np.clip((ys - profile[None, :]) / (0.35 * h), 0, 1)
    shade = light * (0.85 + 0.3 * n) * (1 - 0.15 * depth)
    rgb = colour * shade[..., None]
    if snow is not None:
        fine = _noise(rng, h, w, 1.2, shrink=1)
        capped = (profile[None, :] < snow) & (ys - profile[None, :] < (snow - profile[None, :]) * (0.3 + fine))
        white = np.array([238, 242, 250], np.float32) * np.clip(light, 0.7, 1.15)[..., None]
        rgb = np.where(capped[..., None], white, rgb)
    return rgb.astype(np.float32), alpha.astype(np.float32)


def _conifer(d: ImageDraw.ImageDraw, x: float, y: float, h: float, colour: RGB, snow: bool = False) -> None:
    """A fir tree standing at (x, y), `h` pixels tall: stacked triangles on a short trunk."""
    wid = 0.38 * h
    d.rectangle((x - 0.05 * h, y - 0.15 * h, x + 0.05 * h, y), fill=(60, 42, 30))
    for k in range(3):
        base = y - 0.12 * h - k * 0.25 * h
        half = wid * (1 - 0.25 * k)
        d.polygon([(x - half, base), (x + half, base), (x, base - 0.45 * h)], fill=colour)
        if snow:
            d.polygon(
                [(x - 0.4 * half, base - 0.27 * h), (x + 0.4 * half, base - 0.27 * h), (x, base - 0.45 * h)],
                fill=(232, 236, 242),
            )


def _broadleaf(d: ImageDraw.ImageDraw, rng: np.random.Generator, x: float, y: float, h: float, colour: RGB) -> None:
    """A deciduous tree at (x, y), `h` pixels tall: a trunk and a crown of blobs, lit from above."""
    d.line([(x, y), (x, y - 0.5 * h)], fill=(70, 52, 36), width=max(1, round(0.06 * h)))
    for k in range(int(rng.integers(4, 8))):
        cx = x + rng.uniform(-0.25, 0.25) * h
        cy = y - rng.uniform(0.5, 0.85) * h
        r = rng.uniform(0.14, 0.26) * h
        light = 0.75 + 0.1 * k if k < 4 else 1.1
        d.ellipse((cx - r, cy - r * 0.85, cx + r, cy + r * 0.85), fill=_rgb(np.array(colour) * light))


def _treeline(
    rng: np.random.Generator,
    size: tuple[int, int],
    base: np.ndarray,
    height: tuple[float, float],
    colour: np.ndarray,
    kind: str,
    step: tuple[float, float],
    fill: np.ndarray | None = None,
    snow: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """A band of trees standing on `base` (a row per column) and whatever is below it."""
    w, h = size
    ys = np.arange(h, dtype=np.float32)[:, None]
    under = fill if fill is not None else colour * 0.55
    rgb = np.broadcast_to(under, (h, w, 3)).astype(np.float32).copy()
    alpha = np.clip(ys - base[None, :] + 0.5, 0, 1)
    shade = 0.85 + 0.3 * _noise(rng, h, w, 1.5, shrink=3)
    rgb *= shade[..., None]
    im = Image.fromarray(np.dstack([np.clip(rgb, 0, 255), alpha * 255]).astype(np.uint8), "RGBA")
    d = ImageDraw.Draw(im)
    x = rng.uniform(0, step[1])
    while x < w:
        y = float(base[min(int(x), w - 1)]) + rng.uniform(0, 0.3) * height[0]
        th = rng.uniform(*height)
        c = _rgb(colour * rng.uniform(0.75, 1.2))
        if kind == "conifer" or (kind == "mixed" and rng.random() < 0.5):
            _conifer(d, x, y + 0.1 * th, th, c, snow=snow)
        else:
            _broadleaf(d, rng, x, y + 0.1 * th, th, c)
        x += rng.uniform(*step)
    arr = np.asarray(im, np.float32)
    return arr[..., :3].copy(), arr[..., 3] / 255


def _ground(
    rng: np.random.Generator,
    size: tuple[int, int],
    top: np.ndarray,
    colour: np.ndarray,
    texture: str,
    horizon: int,
) -> tuple[np.ndarray, np.ndarray]:
    """The nearest ground below `top` (a row per column), its texture (grass, sand ripples, snow, moss,
    seabed sand) laid in perspective from `horizon`."""
    w, h = size
    rows = h - horizon
    if texture == "grass":
        tex = _fractal(rng, 64, 256, 1.0, aspect=0.15)  # short vertical streaks
        amp = 0.45
    elif texture == "sand":
        y = np.arange(64, dtype=np.float32)[:, None]
        warp = _fractal(rng, 64, 256, 1.8)
        tex = 0.5 + 0.5 * np.sin(2 * math.pi * (y / 6 + 2.5 * warp))  # wind ripples
        amp = 0.22
    elif texture == "snow":
        tex = _fractal(rng, 64, 256, 1.6, aspect=3.0)
        amp = 0.12
    else:  # moss, leaf litter, seabed
        tex = _fractal(rng, 64, 256, 1.1)
        amp = 0.35
    fine = _perspective(tex, w, rows, 1.0, 0.4)
    big = _noise(rng, rows, w, 2.0, shrink=4)
    shade = (1 - amp / 2 + amp * fine) * (0.8 + 0.4 * big)
    d = (np.arange(rows, dtype=np.float32) / rows)[:, None]
    shade *= 0.88 + 0.24 * d  # nearer ground a little brighter
    rgb = np.zeros((h, w, 3), np.float32)
    rgb[horizon:] = colour * shade[..., None]
    rgb[:horizon] = colour * 0.9
    ys = np.arange(h, dtype=np.float32)[:, None]
    alpha = np.clip(ys - top[None, :] + 0.5, 0, 1)
    return rgb, alpha


def _dots(
    rng: np.random.Generator,
    im: Image.Image,
    horizon: int,
    count: int,
    colours: Sequence[RGB],
    size: tuple[float, float],
    shape: str = "dot",
) -> None:
    """Flowers, stones or tufts scattered on the ground, larger nearer the camera."""
    w, h = im.size
    d = ImageDraw.Draw(im)
    ys = horizon + (h - horizon) * np.sqrt(rng.random(count))
    for x, y in zip(rng.uniform(0, w, count), np.sort(ys), strict=True):
        depth = (y - horizon) / max(h - horizon, 1)
        r = size[0] + (size[1] - size[0]) * depth
        c = colours[int(rng.integers(len(colours)))]
        if shape == "rock":
            d.ellipse((x - r, y - 0.7 * r, x + r, y + 0.3 * r), fill=_rgb(np.array(c) * rng.uniform(0.7, 1.1)))
            d.ellipse((x - 0.6 * r, y - 0.65 * r, x + 0.3 * r, y - 0.2 * r), fill=_rgb(np.array(c) * 1.2))
        elif shape == "tuft":
            for k in range(3):
                d.line([(x, y), (x + (k - 1) * r * 0.6, y - 2.5 * r)], fill=c, width=max(1, round(r / 3)))
        else:
            d.ellipse((x - r, y - r, x + r, y + r), fill=c)


def _finish(
    parts: list[tuple[np.ndarray, np.ndarray, float, float]],
    haze: np.ndarray,
    grade: _Grade,
) -> list[tuple[np.ndarray, np.ndarray, float]]:
    """Haze each part toward `haze` by its amount, grade it: (rgb, alpha, parallax) per part."""
    out = []
    for rgb, alpha, parallax, amount in parts:
        hazed = rgb + (haze - rgb) * np.float32(amount)
        out.append((grade(hazed), alpha, parallax))
    return out


def _composite(parts: Sequence[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    acc = np.zeros_like(parts[0][0])
    for rgb, alpha in parts:
        if rgb.shape[0] < acc.shape[0]:  # clouds: only the upper rows
            n = rgb.shape[0]
            acc[:n] += (rgb - acc[:n]) * alpha[..., None]
        else:
            acc += (rgb - acc) * alpha[..., None]
    return acc


def _build_world(rng: np.random.Generator, scene: Scene, size: tuple[int, int]) -> _World:
    """A scene's layers, far to near, each graded and hazed by its distance."""
    w, h = size
    kind = scene.kind
    horizon = round(h * rng.uniform(0.46, 0.54))
    top, bottom, cloud_colour = _sky_palette(rng, scene)
    grade = _make_grade(rng, scene)
    haze = bottom.copy()
    hz = {"haze": 0.25, "fog": 0.3, "rain": 0.2, "storm": 0.15, "snow": 0.2}.get(scene.weather, 0.0)
    sky = _sky(rng, size, horizon, top, bottom)
    cover = {"clear": rng.uniform(0.15, 0.5), "haze": rng.uniform(0.05, 0.3)}.get(scene.weather, rng.uniform(0.6, 0.9))
    clouds = _clouds(rng, w, horizon, float(cover), cloud_colour) if kind != "underwater" else None
    xs = np.arange(w, dtype=np.float32)
    water: np.ndarray | None = None
    fauna = ""
    ground_rows = (horizon + 0.15 * (h - horizon), h - 0.05 * (h - horizon))
    parts: list[tuple[np.ndarray, np.ndarray, float, float]] = []  # (rgb, alpha, parallax, haze)
    if kind == "mountains":
        far = horizon - h * rng.uniform(0.12, 0.28) * _ridge(rng, w, float(rng.uniform(0.55, 0.68)))
        rock = _jitter(rng, (120, 125, 140), 20)
        parts.append((*_ridge_rgb(rng, size, far, rock, snow=horizon - 0.16 * h), 0.3, 0.45 + hz))
        mid = horizon + 0.03 * h - h * rng.uniform(0.1, 0.2) * _ridge(rng, w, float(rng.uniform(0.5, 0.6)))
        green = _jitter(rng, (85, 105, 60), 20)
        mrgb, malpha = _ridge_rgb(rng, size, mid, green, relief=0.45)
        im = _premultiplied_ok(mrgb, malpha)
        d = ImageDraw.Draw(im)
        for x in rng.uniform(0, w, int(w / 5)):
            y = mid[int(x)] + rng.uniform(0.04, 0.25) * h
            _conifer(d, x, y, rng.uniform(0.015, 0.03) * h, _rgb(_jitter(rng, (35, 60, 40), 10)))
        arr = np.asarray(im, np.float32)
        parts.append((arr[..., :3], malpha, 0.6, 0.2 + hz))
        near = horizon + 0.12 * h + 0.06 * h * _ridge(rng, w, 0.45)
        grass = _jitter(rng, (110, 130, 70), 20)
        grgb, galpha = _ground(rng, size, near, grass, "grass", horizon)
        im = _premultiplied_ok(grgb, galpha)
        _dots(rng, im, round(near.min()), int(w / 6), [(130, 128, 125), (110, 105, 100)], (1, 7), "rock")
        _dots(rng, im, round(near.min()), int(w / 2), [(240, 230, 90), (250, 250, 250), (200, 80, 160)], (0.4, 2))
        parts.append((np.asarray(im, np.float32)[..., :3], galpha, 1.0, hz * 0.3))
        fauna = "goat"
        ground_rows = (float(near.max()) + 0.05 * h, h - 0.05 * h)
    elif kind == "lake":
        far = horizon - h * rng.uniform(0.08, 0.25) * _ridge(rng, w, float(rng.uniform(0.45, 0.62)))
        parts.append((*_ridge_rgb(rng, size, far, _jitter(rng, (90, 110, 120), 20), relief=0.3), 0.3, 0.4 + hz))
        base = horizon - 0.005 * h - 0.02 * h * _ridge(rng, w, 0.4)
        trees = _treeline(rng, size, base, (0.03 * h, 0.07 * h), _jitter(rng, (40, 75, 45), 12), "mixed", (2.0, 5.0))
        parts.append((*trees, 0.6, 0.15 + hz))
        upper = _composite([(sky, np.ones((h, w), np.float32)), *([clouds] if clouds else []), *[p[:2] for p in parts]])
        below = np.arange(horizon, h)
        mirror = np.clip(2 * horizon - 1 - below, 0, h - 1)
        reflected = upper[mirror]
        reflected = np.asarray(
            Image.fromarray(np.clip(reflected, 0, 255).astype(np.uint8)).filter(ImageFilter.BoxBlur(1)), np.float32
        )
        tint = _jitter(rng, (40, 70, 80), 15)
        depth = ((below - horizon) / max(h - horizon, 1)).astype(np.float32)[:, None, None]
        streak = _perspective(_fractal(rng, 64, 256, 1.2, aspect=4.0), w, h - horizon, 1.0, 0.3)[..., None]
        lake = reflected * (0.8 - 0.25 * depth) + tint * (0.2 + 0.35 * depth) + 18 * (streak - 0.5)
        rgb = np.zeros((h, w, 3), np.float32)
        rgb[horizon:] = lake
        rgb[:horizon] = lake[0]
        alpha = np.zeros((h, w), np.float32)
        alpha[horizon:] = 1
        im = _premultiplied_ok(rgb, alpha)
        d = ImageDraw.Draw(im)
        reed = _rgb(_jitter(rng, (60, 80, 40), 15))
        for x in rng.uniform(0, w, int(w / 3)):  # reeds along the near shore
            hh = rng.uniform(0.04, 0.12) * h
            lean = rng.uniform(-0.2, 0.2) * hh
            d.line([(x, h), (x + lean, h - hh)], fill=reed, width=int(rng.integers(1, 3)))
        arr = np.asarray(im, np.float32)
        water = alpha.copy()
        water[arr[..., 1] == reed[1]] = 0
        parts.append((arr[..., :3], arr[..., 3] / 255, 1.0, 0.0))
        fauna = ""
    elif kind == "forest":
        far = horizon - h * rng.uniform(0.06, 0.16) * _ridge(rng, w, 0.45)
        hill = _treeline(rng, size, far, (0.02 * h, 0.04 * h), _jitter(rng, (40, 70, 60), 10), "conifer", (1.5, 3.0))
        parts.append((*hill, 0.3, 0.4 + hz))
        mid = horizon + 0.02 * h + 0.03 * h * _ridge(rng, w, 0.5)
        forest = _treeline(rng, size, mid, (0.15 * h, 0.35 * h), _jitter(rng, (45, 85, 45), 15), "mixed", (6.0, 16.0))
        parts.append((*forest, 0.6, 0.12 + hz))
        near = horizon + 0.18 * h + 0.04 * h * _ridge(rng, w, 0.5)
        grgb, galpha = _ground(rng, size, near, _jitter(rng, (80, 85, 45), 20), "moss", horizon)
        im = _premultiplied_ok(grgb, galpha)
        _dots(rng, im, round(near.min()), int(w / 3), [(50, 90, 40), (70, 110, 50)], (1, 5), "tuft")
        d = ImageDraw.Draw(im)
        bark = _jitter(rng, (70, 55, 40), 15)
        for x in rng.uniform(0, w, int(rng.integers(6, 14))):  # big trunks in front
            tw = rng.uniform(0.03, 0.08) * w / 3
            foot = near[int(x)] + rng.uniform(0.05, 0.3) * h
            d.rectangle((x - tw, 0, x + tw, foot), fill=_rgb(bark * rng.uniform(0.7, 1.1)))
            d.rectangle((x - tw, 0, x - 0.4 * tw, foot), fill=_rgb(bark * 0.6))
        arr = np.asarray(im, np.float32)
        parts.append((arr[..., :3], arr[..., 3] / 255, 1.0, hz * 0.3))
        fauna = "deer"
        ground_rows = (float(near.max()) + 0.05 * h, h - 0.05 * h)
    elif kind == "meadow":
        far = horizon - h * rng.uniform(0.06, 0.16) * _ridge(rng, w, 0.4)
        parts.append((*_ridge_rgb(rng, size, far, _jitter(rng, (80, 115, 80), 15), relief=0.2), 0.3, 0.35 + hz))
        mid = horizon + 0.01 * h + 0.01 * h * _ridge(rng, w, 0.4)
        hedge = _treeline(rng, size, mid, (0.04 * h, 0.1 * h), _jitter(rng, (55, 95, 45), 15), "broad", (3.0, 12.0))
        parts.append((*hedge, 0.6, 0.12 + hz))
        near = horizon + 0.05 * h + 0.02 * h * _ridge(rng, w, 0.4)
        grgb, galpha = _ground(rng, size, near, _jitter(rng, (115, 150, 65), 20), "grass", horizon)
        im = _premultiplied_ok(grgb, galpha)
        flowers = [(245, 230, 70), (250, 250, 250), (210, 60, 70), (170, 110, 210)]
        _dots(rng, im, round(near.min()), int(w * 1.2), flowers, (0.3, 2.2))
        d = ImageDraw.Draw(im)
        for _ in range(int(rng.integers(1, 4))):  # lone trees
            x = rng.uniform(0, w)
            y = near[int(x)] + rng.uniform(0.1, 0.4) * (h - near[int(x)])
            _broadleaf(d, rng, x, y, rng.uniform(0.25, 0.5) * h, _rgb(_jitter(rng, (60, 105, 45), 12)))
        arr = np.asarray(im, np.float32)
        parts.append((arr[..., :3], arr[..., 3] / 255, 1.0, hz * 0.3))
        fauna = "cattle" if rng.random() < 0.5 else "deer"
        ground_rows = (float(near.max()) + 0.05 * h, h - 0.05 * h)
    elif kind == "desert":
        mesa = np.minimum(_ridge(rng, w, 0.6) * 1.6, 1.0) * _smooth((_noise(rng, 8, w, 2.0)[0] - 0.45) / 0.08)
        far = horizon - h * rng.uniform(0.06, 0.18) * mesa
        parts.append((*_ridge_rgb(rng, size, far, _jitter(rng, (175, 110, 80), 15), streaks=0.6), 0.3, 0.4 + hz))
        sand = _jitter(rng, (215, 170, 115), 15)
        for dz, parallax, amp in ((0.02, 0.55, 0.06), (0.12, 1.0, 0.1)):
            phase = rng.uniform(0, 2 * math.pi, 3)
            freq = rng.uniform(1.5, 4.0, 3) * 2 * math.pi / w
            wave = sum(np.abs(np.sin(freq[k] * xs + phase[k])) ** 0.7 * rng.uniform(0.5, 1.0) for k in range(3))
            crest = horizon + dz * h - amp * h * (wave / 3)
            rgb, alpha = _ground(rng, size, crest, sand, "sand", horizon)
            below = np.clip((np.arange(h)[:, None] - crest) / (0.04 * h), 0, 1)
            lit = (
                np.tanh(np.gradient(crest) * 2)[None, :] * below * np.exp(-(np.arange(h)[:, None] - crest) / (0.05 * h))
            )
            rgb *= (1 + 0.15 * lit)[..., None]
            parts.append((rgb, alpha, parallax, (0.15 if parallax < 1 else 0.0) + hz))
        fauna = "camel"
        ground_rows = (horizon + 0.2 * h, h - 0.05 * h)
    elif kind == "snow":
        far = horizon - h * rng.uniform(0.15, 0.32) * _ridge(rng, w, float(rng.uniform(0.55, 0.66)))
        parts.append((*_ridge_rgb(rng, size, far, _jitter(rng, (110, 115, 130), 15), snow=horizon), 0.3, 0.4 + hz))
        mid = horizon + 0.01 * h - 0.04 * h * _ridge(rng, w, 0.45)
        firs = _treeline(
            rng,
            size,
            mid,
            (0.04 * h, 0.1 * h),
            _jitter(rng, (30, 60, 45), 10),
            "conifer",
            (3.0, 14.0),
            fill=np.array([225, 230, 240], np.float32),
            snow=True,
        )
        parts.append((*firs, 0.6, 0.15 + hz))
        near = horizon + 0.08 * h + 0.03 * h * _ridge(rng, w, 0.45)
        grgb, galpha = _ground(rng, size, near, _jitter(rng, (232, 238, 248), 6), "snow", horizon)
        im = _premultiplied_ok(grgb, galpha)
        _dots(rng, im, round(near.min()), int(w / 10), [(90, 90, 95), (70, 72, 80)], (0.5, 5), "rock")
        parts.append((np.asarray(im, np.float32)[..., :3], galpha, 1.0, hz * 0.3))
        fauna = "reindeer"
        ground_rows = (float(near.max()) + 0.05 * h, h - 0.05 * h)
    elif kind == "sea":
        cliff = _ridge(rng, w, 0.55) * _smooth((xs / w - rng.uniform(0.1, 0.6)) * 6)
        if rng.random() < 0.5:
            cliff = cliff[::-1]
        far = horizon + 2 - h * rng.uniform(0.1, 0.25) * cliff
        parts.append((*_ridge_rgb(rng, size, far, _jitter(rng, (120, 110, 95), 20), streaks=0.5), 0.3, 0.3 + hz))
        deep, shallow = _jitter(rng, (25, 70, 110), 15), _jitter(rng, (40, 140, 150), 15)
        rows = h - horizon
        waves = _perspective(_fractal(rng, 64, 256, 1.3, aspect=5.0), w, rows, 1.0, 0.35)
        dd = (np.arange(rows, dtype=np.float32) / rows)[:, None, None]
        sea = deep + (shallow - deep) * dd + 70 * (waves[..., None] - 0.5) * (0.3 + dd)
        sea = sea + (bottom - sea) * np.float32(0.35) * np.clip(1 - 8 * dd, 0, 1)  # the sky's sheen far out
        rgb = np.zeros((h, w, 3), np.float32)
        rgb[horizon:] = sea
        rgb[:horizon] = sea[0]
        shore = horizon + rows * rng.uniform(0.55, 0.8) + 0.04 * h * np.sin(xs / w * 2 * math.pi * rng.uniform(1, 3))
        ys = np.arange(h, dtype=np.float32)[:, None]
        beach = np.clip(ys - shore[None, :], 0, 1)
        sand = _jitter(rng, (205, 185, 150), 15) * (0.9 + 0.2 * _noise(rng, h, w, 1.5))[..., None]
        rgb = (rgb * (1 - beach[..., None]) + sand * beach[..., None]).astype(np.float32)
        foam = np.exp(-(((ys - shore[None, :] + 2) / (0.012 * h)) ** 2))
        rgb += (np.float32(245) - rgb) * foam[..., None] * 0.9
        alpha = np.zeros((h, w), np.float32)
        alpha[horizon:] = 1
        water = alpha * (1 - beach) * (ys >= horizon)
        parts.append((rgb, alpha, 1.0, 0.0))
        fauna = ""
    else:  # underwater
        haze = top * 0.6 + bottom * 0.4
        rays = np.clip(1 - np.arange(h, dtype=np.float32) / (0.12 * h), 0, 1)[:, None]
        shimmer = _noise(rng, h, w, 1.0, shrink=2, aspect=2.0)
        sky = sky + (np.float32(200) - sky) * (rays * shimmer * 0.6)[..., None]  # the surface, from below
        far = horizon - h * rng.uniform(0.1, 0.25) * _ridge(rng, w, 0.6)
        parts.append((*_ridge_rgb(rng, size, far, _jitter(rng, (60, 80, 90), 15), relief=0.5), 0.3, 0.65))
        mid = horizon + 0.03 * h - 0.04 * h * _ridge(rng, w, 0.5)
        rgb, alpha = _ridge_rgb(rng, size, mid, _jitter(rng, (120, 100, 80), 20), relief=0.5)
        im = _premultiplied_ok(rgb, alpha)
        d = ImageDraw.Draw(im)
        for x in rng.uniform(0, w, int(w / 12)):  # kelp
            y0 = mid[int(x)] + 0.02 * h
            hh = rng.uniform(0.15, 0.5) * h
            pts = [(x + 0.04 * hh * math.sin(k * 0.9 + x), y0 - k * hh / 8) for k in range(9)]
            d.line(pts, fill=_rgb(_jitter(rng, (70, 110, 50), 15)), width=int(rng.integers(2, 5)))
        arr = np.asarray(im, np.float32)
        parts.append((arr[..., :3], arr[..., 3] / 255, 0.6, 0.35))
        near = horizon + 0.12 * h + 0.05 * h * _ridge(rng, w, 0.5)
        grgb, galpha = _ground(rng, size, near, _jitter(rng, (190, 175, 140), 15), "moss", horizon)
        im = _premultiplied_ok(grgb, galpha)
        corals = [(230, 110, 90), (240, 170, 80), (180, 90, 160), (120, 120, 110)]
        _dots(rng, im, round(near.min()), int(w / 8), corals, (1, 9), "rock")
        parts.append((np.asarray(im, np.float32)[..., :3], galpha, 1.0, 0.15))
        fauna = ""
    layers = [_Layer(Image.fromarray(np.clip(grade(sky), 0, 255).astype(np.uint8), "RGB"), 0.15, land=False)]
    if clouds is not None:
        crgb, calpha = clouds
        crgb = np.concatenate([crgb, np.repeat(crgb[-1:], h - len(crgb), axis=0)])
        calpha = np.concatenate([calpha, np.zeros((h - len(calpha), w), np.float32)])
        tiled_rgb = np.tile(grade(crgb + (haze - crgb) * np.float32(0.1)), (1, 3, 1))
        layers.append(
            _Layer(_premultiplied_ok(tiled_rgb, np.tile(calpha, (1, 3))).convert("RGBa"), 0.25, tiled=True, land=False)
        )
    for rgb, alpha, parallax in _finish(parts, haze, grade):
        layers.append(_Layer(_premultiplied_ok(rgb, alpha).convert("RGBa"), parallax))
    if water is not None:
        layers[-1].water = Image.fromarray((np.clip(water, 0, 1) * 255).astype(np.uint8), "L")
    return _World(
        kind, size, horizon, layers, grade, grade(haze[None, :])[0], scene.weather, scene.time, fauna, ground_rows
    )


# --- the camera -------------------------------------------------------------------------------------------


@dataclass
class _Rig:
    """Where the camera looks in the nearest layer's pixels over a shot: a centre, a scale (world pixels
    per frame pixel), a roll; a glide makes near layers grow faster than far ones."""

    start: np.ndarray
    velocity: np.ndarray  # world pixels per second
    scale: float
    zoom: float  # per second, log scale: > 0 zooms in
    glide: float  # per second, log scale, of the nearest layer
    shake: list[tuple[float, float, float, float]]  # (x amplitude, y amplitude, Hz, phase)
    roll: float  # handheld roll, degrees
    whip: tuple[int, int, np.ndarray] | None  # frames [a, b) and the offset the camera swings by
    fps: int
    motion: float = 1.0  # scales every movement, to keep the view inside the world

    def pose(self, jf: float) -> tuple[np.ndarray, float, float]:
        """(centre, scale, roll in radians) at frame `jf` of the shot (fractions for motion blur)."""
        t, m = jf / self.fps, self.motion
        c = self.start + self.velocity * (t * m)
        angle = 0.0
        for k, (ax, ay, f, ph) in enumerate(self.shake):
            c = c + m * np.array(
                [ax * math.sin(2 * math.pi * f * t + ph), ay * math.sin(2 * math.pi * 1.37 * f * t + 2 * ph)]
            )
            angle += self.roll / (k + 1) * math.sin(2 * math.pi * 0.7 * f * t + 3 * ph)
        if self.whip is not None:
            a, b, off = self.whip
            c = c + off * (m * _smoothstep((jf - a + 0.5) / max(b - a, 1)))
        s = self.scale * math.exp(-self.zoom * m * t)
        return c, s, math.radians(angle * m)


def _make_rig(
    rng: np.random.Generator,
    move: str,
    view: tuple[int, int],
    world: tuple[int, int],
    centre: np.ndarray,
    scale: float,
    seconds: float,
    style: NatureStyle,
    fps: int,
    whip: Effect | None,
) -> _Rig:
    w, h = view
    m = style.move
    velocity, zoom, glide, roll = np.zeros(2), 0.0, 0.0, 0.0
    shake: list[tuple[float, float, float, float]] = []
    sign = float(rng.choice([-1.0, 1.0]))
    if move == "still":
        velocity = rng.uniform(-0.004, 0.004, 2) * w * scale * m
    elif move == "pan":
        velocity = np.array([sign * rng.uniform(0.03, 0.1) * w, rng.uniform(-0.005, 0.005) * h]) * scale * m
    elif move == "tilt":
        velocity = np.array([rng.uniform(-0.005, 0.005) * w, sign * rng.uniform(0.02, 0.06) * h]) * scale * m
    elif move == "zoom_in":
        zoom = rng.uniform(0.03, 0.09) * m
        scale *= math.exp(zoom * seconds / 3)
    elif move == "zoom_out":
        zoom = -rng.uniform(0.03, 0.09) * m
        scale *= math.exp(zoom * seconds * 0.8)
    elif move == "glide":
        glide = rng.uniform(0.03, 0.1) * m
        velocity = np.array([rng.uniform(-0.01, 0.01) * w, rng.uniform(-0.015, 0.005) * h]) * scale * m
    elif move == "handheld":
        amp = rng.uniform(0.004, 0.014) * w * scale * style.shake
        shake = [
            (amp * rng.uniform(0.3, 1), amp * rng.uniform(0.3, 1), rng.uniform(0.3, 2.5), rng.uniform(0, 6.3))
            for _ in range(3)
        ]
        roll = rng.uniform(0.2, 0.8) * style.shake
        velocity = rng.uniform(-0.02, 0.02, 2) * w * scale * m
    elif move == "timelapse":
        velocity = np.array([sign * rng.uniform(0.0, 0.01) * w, 0.0]) * scale * m
    swing = None
    if whip is not None:  # toward the side with more room
        side = -1.0 if centre[0] > world[0] / 2 else 1.0
        off = np.array([side * rng.uniform(0.9, 1.5) * w, rng.uniform(-0.1, 0.1) * h]) * scale
        swing = (whip.a, whip.b, off)
    start = centre - velocity * seconds / 2
    return _Rig(start, velocity, scale, zoom, glide, shake, roll, swing, fps)


def _fit(rig: _Rig, frames: int, view: tuple[int, int], world: tuple[int, int]) -> None:
    """Shift the camera's path, or calm it, until every frame's view lies inside the world."""
    w, h = view
    big_w, big_h = world
    for _ in range(60):
        poses = [rig.pose(j) for j in range(0, frames, max(1, frames // 200))] + [rig.pose(frames - 1)]
        c = np.array([p[0] for p in poses])
        s = np.array([p[1] for p in poses])
        sin = np.abs(np.sin([p[2] for p in poses]))
        ex = s * (w / 2 * 1.02 + sin * h / 2) + 1
        ey = s * (h / 2 * 1.02 + sin * w / 2) + 1
        lo = np.array([(c[:, 0] - ex).min(), (c[:, 1] - ey).min()])
        hi = np.array([(c[:, 0] + ex).max(), (c[:, 1] + ey).max()])
        if (hi - lo <= np.array([big_w, big_h])).all():
            rig.start = rig.start + np.maximum(0.0, -lo) - np.maximum(0.0, hi - np.array([big_w, big_h]))
            return
        if s.max() * h * 1.05 > big_h or s.max() * w * 1.05 > big_w:
            rig.scale *= 0.92
        else:
            rig.motion *= 0.85
    rig.motion = 0.0
    rig.scale = min(rig.scale, 0.9 * big_w / w, 0.9 * big_h / h)
    rig.start = np.clip(
        rig.start,
        [rig.scale * w / 2 + 1, rig.scale * h / 2 + 1],
        [big_w - rig.scale * w / 2 - 1, big_h - rig.scale * h / 2 - 1],
    )


def _view(rng: np.random.Generator, world: _World, view: int, work: tuple[int, int]) -> tuple[np.ndarray, float]:
    """Where view `view` of a scene looks (centre in the world) and how wide (scale): view 0 a wide
    shot, odd views close-ups of the ground or the skyline, each elsewhere than the view before."""
    big_w, _ = world.size
    w, h = work
    x = rng.uniform(0.3, 0.7)
    scale, frac = 1.0, 0.5
    for v in range(view + 1):
        if v:
            x += (-1 if x > 0.5 else 1) * rng.uniform(0.22, 0.36)
        if v % 2:
            scale = rng.uniform(0.38, 0.55)
            frac = rng.uniform(0.08, 0.3) if rng.random() < 0.6 else rng.uniform(0.65, 0.85)
        else:
            scale = rng.uniform(0.7, 0.95)
            frac = rng.uniform(0.35, 0.6)
    return np.array([x * big_w, world.horizon + (0.5 - frac) * scale * h]), scale


# --- animals ------------------------------------------------------------------------------------------------


def _draw_bird(
    d: ImageDraw.ImageDraw, x: float, y: float, span: float, phase: float, fill: RGB | int, width: int
) -> None:
    """A bird seen from afar, `span` pixels wing to wing, its wings at `phase` of a beat."""
    tip = 0.35 * span * math.sin(phase)
    pts = [
        (x - span / 2, y - tip),
        (x - span / 5, y - 0.08 * span - 0.3 * tip),
        (x, y),
        (x + span / 5, y - 0.08 * span - 0.3 * tip),
        (x + span / 2, y - tip),
    ]
    d.line(pts, fill=fill, width=width, joint="curve")
    if span > 12:
        r = 0.07 * span
        d.ellipse((x - 1.6 * r, y - r, x + 1.6 * r, y + r), fill=fill)


def _draw_near_bird(d: ImageDraw.ImageDraw, x: float, y: float, span: float, phase: float, fill: RGB | int) -> None:
    """A bird close to the lens, coming at it: broad wings `span` pixels across at `phase` of a beat."""
    lift = 0.3 * span * math.sin(phase)
    chord = 0.14 * span
    for side in (-1.0, 1.0):
        d.polygon(
            [
                (x + side * 0.04 * span, y - 0.3 * chord),
                (x + side * 0.25 * span, y - 0.45 * lift - 0.25 * chord),
                (x + side * 0.5 * span, y - lift),
                (x + side * 0.38 * span, y - 0.7 * lift + 0.5 * chord),
                (x + side * 0.2 * span, y - 0.4 * lift + 0.9 * chord),
                (x + side * 0.04 * span, y + chord),
            ],
            fill=fill,
        )
    r = 0.06 * span
    d.ellipse((x - r, y - 1.6 * r, x + r, y + 2.2 * r), fill=fill)
    d.ellipse((x - 0.7 * r, y - 2.6 * r, x + 0.7 * r, y - 1.2 * r), fill=fill)
    d.polygon(
        [(x - r, y + 2 * r), (x + r, y + 2 * r), (x + 1.4 * r, y + 3.6 * r), (x - 1.4 * r, y + 3.6 * r)], fill=fill
    )


def _draw_fish(
    d: ImageDraw.ImageDraw, x: float, y: float, length: float, facing: float, phase: float, fill: RGB | int
) -> None:
    """A fish at (x, y), `length` pixels long, facing right (+1) or left (-1), its tail at `phase`."""
    half = length / 2
    d.ellipse((x - half * 0.8, y - 0.2 * length, x + half * 0.8, y + 0.2 * length), fill=fill)
    tail = x - facing * half * 0.75
    swing = 0.08 * length * math.sin(phase)
    d.polygon(
        [
            (tail, y),
            (tail - facing * 0.3 * length, y - 0.18 * length + swing),
            (tail - facing * 0.3 * length, y + 0.18 * length + swing),
        ],
        fill=fill,
    )


def _draw_quadruped(
    d: ImageDraw.ImageDraw,
    x: float,
    y: float,
    hp: float,
    facing: float,
    phase: float,
    graze: bool,
    fill: RGB | int,
    kind: str,
) -> None:
    """A four-legged animal whose feet are at (x, y), `hp` pixels tall, walking at `phase` (0: standing),
    its head down to graze or up."""
    half = 0.5 * hp
    by, bh = y - 0.62 * hp, 0.17 * hp
    d.ellipse((x - half, by - bh, x + half, by + bh), fill=fill)
    if kind == "camel":
        d.ellipse((x - 0.3 * half, by - 2.1 * bh, x + 0.3 * half, by), fill=fill)
    legw = max(1, round(0.07 * hp))
    for k, lx in enumerate((-0.8, -0.6, 0.6, 0.8)):
        sw = 0.12 * hp * math.sin(phase + (0.0 if k in (0, 3) else math.pi)) if phase else 0.0
        d.line([(x + lx * half * facing, by + 0.5 * bh), (x + lx * half * facing + sw, y)], fill=fill, width=legw)
    neck = (x + facing * 0.8 * half, by - 0.3 * bh)
    head = (x + facing * 1.3 * half, y - 0.15 * hp) if graze else (x + facing * 1.2 * half, by - 0.5 * hp)
    d.line([neck, head], fill=fill, width=max(1, round(0.12 * hp)))
    r = 0.07 * hp
    d.ellipse((head[0] - 1.4 * r, head[1] - r, head[0] + 1.4 * r, head[1] + r), fill=fill)
    d.line(
        [(x - facing * half, by - 0.2 * bh), (x - facing * 1.12 * half, by + 0.8 * bh)],
        fill=fill,
        width=max(1, legw // 2),
    )
    if kind in ("deer", "reindeer") and not graze:
        for s in (-1.0, 1.0):
            a = (head[0], head[1] - r)
            b = (head[0] + s * 0.12 * hp, head[1] - 0.3 * hp)
            d.line([a, b, (b[0] + s * 0.06 * hp, b[1] - 0.08 * hp)], fill=fill, width=max(1, legw // 2))
    if kind == "goat":
        d.line(
            [(head[0], head[1] - r), (head[0] - facing * 0.1 * hp, head[1] - 0.2 * hp)],
            fill=fill,
            width=max(1, legw // 2),
        )


_FAUNA_COLOURS: dict[str, tuple[RGB, ...]] = {
    "deer": ((140, 95, 60), (120, 80, 50)),
    "cattle": ((90, 60, 40), (40, 38, 36), (225, 218, 205)),
    "camel": ((190, 150, 100), (170, 130, 85)),
    "reindeer": ((110, 95, 80), (90, 80, 70)),
    "goat": ((205, 200, 190), (120, 100, 80)),
}


@dataclass
class _Walker:
    x: float
    y: float
    vx: float
    hp: float
    colour: RGB
    graze: bool
    phase: float


# --- drawing a shot -----------------------------------------------------------------------------------------


class _ShotRenderer:
    """Draws one shot's frames: the world's layers as the camera sees them, life, weather and effects."""

    def __init__(
        self,
        world: _World,
        shot: PlannedShot,
        p: NaturePlan,
        rng: np.random.Generator,
        work: tuple[int, int],
        view_rng: np.random.Generator,
        sun_out: bool,
    ) -> None:
        self.world, self.shot, self.size, self.fps, self.style = world, shot, work, p.fps, p.style
        w, h = work
        style = p.style
        n = shot.last - shot.first
        seconds = n / p.fps
        centre, scale = _view(view_rng, world, shot.view, work)
        whip = next((fx for fx in shot.effects if fx.name == "whip"), None)
        self.rig = _make_rig(rng, shot.camera, work, world.size, centre, scale, seconds, style, p.fps, whip)
        _fit(self.rig, n, work, world.size)
        c0, s0, _ = self.rig.pose(0)
        self.anchor = c0
        self.timelapse = shot.camera == "timelapse"
        life = style.life
        speed = rng.uniform(0.15, 0.4) if self.timelapse else rng.uniform(0.004, 0.02)
        self.cloud_speed = float(rng.choice([-1.0, 1.0]) * speed * w * s0 * life)
        self.underwater = world.kind == "underwater"
        # life
        self.birds: list[tuple[float, float, float, float, float]] = []  # (dx, dy, flap Hz, phase, span)
        self.flock = (np.zeros(2), np.zeros(2))
        self.bird_colour: RGB = world.grade.colour((235, 235, 235) if world.kind == "sea" else (30, 30, 34))
        if life > 0 and not self.underwater and not self.timelapse and rng.random() < 0.55:
            start = c0 + np.array([rng.uniform(-0.3, 0.3) * w, -rng.uniform(0.1, 0.4) * h]) * s0
            vel = np.array([rng.choice([-1.0, 1.0]) * rng.uniform(0.02, 0.08) * w, rng.uniform(-0.01, 0.01) * h]) * s0
            self.flock = (start, vel * life)
            spread = rng.uniform(0.03, 0.12) * w * s0
            for _ in range(int(rng.integers(3, 20))):
                self.birds.append(
                    (
                        float(rng.normal(0, spread)),
                        float(rng.normal(0, spread * 0.4)),
                        float(rng.uniform(2.0, 5.0)),
                        float(rng.uniform(0, 2 * math.pi)),
                        float(rng.uniform(0.006, 0.016) * w),
                    )
                )
        self.walkers: list[_Walker] = []
        if life > 0 and world.fauna and not self.timelapse and rng.random() < 0.6:
            lo = max(world.ground[0], c0[1] - 0.2 * s0 * h)
            hi = min(world.ground[1], c0[1] + 0.5 * s0 * h)
            colours = _FAUNA_COLOURS[world.fauna]
            for _ in range(int(rng.integers(1, 6)) if hi > lo else 0):
                y = rng.uniform(lo, hi)
                hp = 0.3 * (y - world.horizon)
                graze = bool(rng.random() < 0.45)
                vx = 0.0 if graze else float(rng.choice([-1.0, 1.0]) * rng.uniform(0.1, 0.4) * hp * life)
                colour = world.grade.colour(np.array(colours[int(rng.integers(len(colours)))]) * rng.uniform(0.85, 1.1))
                x = c0[0] + rng.uniform(-0.45, 0.45) * w * s0
                self.walkers.append(
                    _Walker(float(x), float(y), vx, float(hp), colour, graze, float(rng.uniform(0, 6.3)))
                )
            self.walkers.sort(key=lambda a: a.y)
        self.fish: list[tuple[float, float, float, float, RGB]] = []  # (dx, dy, length, phase, colour)
        self.school = (np.zeros(2), np.zeros(2))
        if life > 0 and self.underwater:
            facing = float(rng.choice([-1.0, 1.0]))
            start = c0 + np.array([rng.uniform(-0.3, 0.3) * w, rng.uniform(-0.25, 0.2) * h]) * s0
            self.school = (start, np.array([facing * rng.uniform(0.02, 0.07) * w * s0 * life, 0.0]))
            spread = rng.uniform(0.05, 0.15) * w * s0
            palette = [(190, 200, 210), (240, 140, 60), (235, 215, 80), (120, 150, 200)]
            base = palette[int(rng.integers(len(palette)))]
            for _ in range(int(rng.integers(6, 28))):
                self.fish.append(
                    (
                        float(rng.normal(0, spread)),
                        float(rng.normal(0, spread * 0.5)),
                        float(rng.uniform(0.012, 0.03) * w),
                        float(rng.uniform(0, 6.3)),
                        world.grade.colour(np.array(base) * rng.uniform(0.8, 1.1)),
                    )
                )
        self.ripple = (
            (float(rng.uniform(1.0, 3.0) * w / 480), float(rng.uniform(0.5, 1.2)), float(rng.uniform(2, 5) * life))
            if life > 0
            else None
        )
        # weather
        self.fog: tuple[np.ndarray, np.ndarray, float, float] | None = None
        if world.weather == "fog":
            field_ = _noise(rng, h, 2 * w, 1.8, shrink=4)
            self.fog = (field_, world.haze, float(rng.uniform(0.3, 0.55)), float(rng.uniform(0.01, 0.04) * w * life))
        self.rain: tuple[np.ndarray, float, float] | None = None
        if world.weather in ("rain", "storm") and style.weather > 0 and not self.timelapse:
            self.rain = (
                self._rain_texture(rng),
                float(rng.uniform(1.5, 3.0) * h * style.weather),
                float(rng.uniform(-0.3, 0.3)),
            )
        self.flakes: tuple[np.ndarray, ...] | None = None
        self.flake_look = (np.array([245, 246, 250], np.float32), 0.85)
        if (world.weather == "snow" and style.weather > 0 and not self.timelapse) or (self.underwater and life > 0):
            count = int(rng.integers(150, 500) * w * h / (480 * 270))
            big = rng.random(count) ** 2
            fall = (0.06 + 0.3 * big) * h * (style.weather if not self.underwater else 0.15 * life)
            self.flakes = (
                rng.uniform(0, w, count),
                rng.uniform(0, h, count),
                fall,
                rng.uniform(2, 8, count),
                rng.uniform(0.3, 1.0, count),
                rng.uniform(0, 6.3, count),
                (1 + 2 * big).astype(np.int64),
                np.full(count, rng.uniform(-0.05, 0.05) * w),
            )
            if self.underwater:
                self.flake_look = (np.array([190, 215, 215], np.float32), 0.35)
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        self.rays: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
        if self.underwater:
            slant = rng.uniform(-0.5, 0.5)
            u = xx + slant * yy
            u -= u.min()
            self.rays = (u.astype(np.int64), rng.uniform(0.01, 0.04, 3) * 2 * math.pi, rng.uniform(0, 6.3, 3))
            self.ray_fall = np.clip(1.2 - yy / h, 0, 1)
        self.shadows: np.ndarray | None = None
        if self.timelapse and not self.underwater:
            blot = _noise(rng, h, 3 * w, 1.8, shrink=4)
            self.shadows = np.clip((blot - 0.5) / 0.15, 0, 1) * rng.uniform(0.15, 0.35)
        self.drift = (rng.uniform(0, style.drift), rng.uniform(6, 20), rng.uniform(0, 2 * math.pi))
        # effects
        self.xx, self.yy = xx, yy
        self.flash: dict[int, float] = {}
        self.bolt: list[Point] = []
        self.sun: tuple[Effect, float, bool] | None = None
        self.steps: list[tuple[Effect, float]] = []
        self.shadow_sweep: tuple[Effect, dict[str, float]] | None = None
        self.occluders: list[tuple[Effect, dict[str, float], np.ndarray]] = []
        self.branch: np.ndarray | None = None
        for fx in shot.effects:
            if fx.name == "lightning":
                for k in range(fx.a, fx.b):
                    self.flash[k] = float(rng.uniform(0.6, 0.9) if k == fx.a else rng.uniform(0.35, 0.9))
                x = rng.uniform(0.15, 0.85) * w
                y = 0.0
                bottom = rng.uniform(0.35, 0.6) * h
                self.bolt = [(x, y)]
                while y < bottom:
                    y += rng.uniform(0.04, 0.1) * h
                    x += rng.uniform(-0.05, 0.05) * w
                    self.bolt.append((x, y))
            elif fx.name == "sun":
                self.sun = (fx, float(rng.uniform(0.62, 0.8)), sun_out)
            elif fx.name == "exposure":
                f = rng.uniform(0.7, 0.85) if rng.random() < 0.5 else rng.uniform(1.15, 1.35)
                self.steps.append((fx, float(f)))
            elif fx.name == "cloud_shadow":
                width = rng.uniform(0.4, 0.8) * w
                params = {
                    "dir": float(rng.choice([-1.0, 1.0])),
                    "dark": float(rng.uniform(0.3, 0.5)),
                    "width": float(width),
                    "soft": float(rng.uniform(0.15, 0.35) * width),
                    "slant": float(rng.uniform(-0.6, 0.6)),
                }
                self.shadow_sweep = (fx, params)
            elif fx.name in ("branch", "bird", "animal", "fish"):
                tints = {
                    "branch": (28, 38, 22),
                    "bird": (26, 25, 28),
                    "animal": (75, 55, 38),
                    "fish": (60, 80, 92),
                }
                params = {
                    "dir": float(rng.choice([-1.0, 1.0])),
                    "blur": float(rng.uniform(2.0, 6.0) * w / 480),
                    "size": float(rng.uniform(0.45, 0.9) if fx.name == "bird" else rng.uniform(1.0, 1.5)),
                    "y": float(rng.uniform(0.25, 0.7)),
                    "phase": float(rng.uniform(0, 6.3)),
                }
                tone = np.array(world.grade.colour(tints[fx.name]), np.float32)
                self.occluders.append((fx, params, tone))
                if fx.name == "branch":
                    self.branch = self._branch_mask(rng, params["blur"])

    def _rain_texture(self, rng: np.random.Generator) -> np.ndarray:
        w, h = self.size
        im = Image.new("L", (w, h), 0)
        d = ImageDraw.Draw(im)
        slant = rng.uniform(-0.25, 0.25)
        for _ in range(int(w * h / 300)):
            x, y = rng.uniform(0, w), rng.uniform(0, h)
            n = rng.uniform(0.03, 0.09) * h
            d.line([(x, y), (x + slant * n, y + n)], fill=int(rng.integers(60, 200)), width=1)
        tex = np.asarray(im, np.float32) / 255
        out: np.ndarray = np.tile(tex, (2, 2))
        return out

    def _branch_mask(self, rng: np.random.Generator, blur: float) -> np.ndarray:
        """A leafy branch, out of focus, as a mask wider than the frame."""
        w, h = self.size
        mw, mh = round(1.5 * w), round(1.5 * h)  # room for the blur all round
        im = Image.new("L", (mw, mh), 0)
        d = ImageDraw.Draw(im)
        y0, y1 = rng.uniform(0.3, 0.7) * mh, rng.uniform(0.3, 0.7) * mh
        pts = [
            (x, y0 + (y1 - y0) * x / mw + 0.05 * mh * math.sin(x / mw * 5 + y0))
            for x in np.linspace(0.1 * mw, 0.9 * mw, 12)
        ]
        d.line(pts, fill=255, width=max(2, round(0.03 * h)), joint="curve")
        for x, y in pts[1:]:
            for _ in range(int(rng.integers(8, 14))):
                lx, ly = x + rng.uniform(-0.05, 0.05) * mw, y + rng.uniform(-0.14, 0.14) * mh
                d.line([(x, y), (lx, ly)], fill=255, width=max(1, round(0.01 * h)))
                r = rng.uniform(0.05, 0.1) * h
                d.ellipse((lx - r, ly - 0.5 * r, lx + r, ly + 0.5 * r), fill=255)
        im = im.filter(ImageFilter.GaussianBlur(blur))
        out: np.ndarray = np.asarray(im, np.float32) / 255
        return out

    # the camera's view of the layers

    def _layer_view(
        self, parallax: float, tiled: bool, c: np.ndarray, s: float, angle: float, t: float
    ) -> tuple[np.ndarray, float, float, float]:
        """(layer centre, layer scale, cos, sin) of a layer at `parallax` for the pose (c, s, angle)."""
        cl = self.anchor + parallax * (c - self.anchor)
        sl = s / math.exp(self.rig.glide * self.rig.motion * t * parallax * parallax)
        if tiled:
            big_w = self.world.size[0]
            cl = np.array([(cl[0] + self.cloud_speed * t) % big_w + big_w, cl[1]])
        return cl, sl, math.cos(angle), math.sin(angle)

    def _coeffs(self, lv: tuple[np.ndarray, float, float, float]) -> tuple[float, float, float, float, float, float]:
        cl, sl, cos, sin = lv
        w, h = self.size
        a, b, d, e = sl * cos, -sl * sin, sl * sin, sl * cos
        return (a, b, cl[0] - a * w / 2 - b * h / 2, d, e, cl[1] - d * w / 2 - e * h / 2)

    def _look(self, image: Image.Image, lv: tuple[np.ndarray, float, float, float]) -> Image.Image:
        """The part of a layer's `image` in view, scaled to the frame (a crop when the camera does not roll)."""
        cl, sl, _, sin = lv
        if sin == 0:
            w, h = self.size
            x0, y0, x1, y1 = cl[0] - sl * w / 2, cl[1] - sl * h / 2, cl[0] + sl * w / 2, cl[1] + sl * h / 2
            if x0 >= 0 and y0 >= 0 and x1 <= image.width and y1 <= image.height:
                return image.resize(self.size, Image.Resampling.BILINEAR, box=(x0, y0, x1, y1))
        return image.transform(self.size, Image.Transform.AFFINE, self._coeffs(lv), resample=Image.Resampling.BILINEAR)

    def _to_view(self, lv: tuple[np.ndarray, float, float, float], x: float, y: float) -> Point:
        cl, sl, cos, sin = lv
        dx, dy = (x - cl[0]) / sl, (y - cl[1]) / sl
        w, h = self.size
        return (w / 2 + cos * dx + sin * dy, h / 2 - sin * dx + cos * dy)

    def _compose(self, jf: float, j: int) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """The frame's picture (float RGB), how much of each pixel is land (0-1) and where water ripples."""
        t = jf / self.fps
        c, s, angle = self.rig.pose(jf)
        base: Image.Image | None = None
        land: np.ndarray | None = None
        water: np.ndarray | None = None
        for layer in self.world.layers:
            lv = self._layer_view(layer.parallax, layer.tiled, c, s, angle, t)
            img = self._look(layer.image, lv)
            if base is None:
                base = img.convert("RGBA")
                continue
            img = img.convert("RGBA")
            base.alpha_composite(img)
            if layer.land:
                a = np.asarray(img.getchannel("A"))
                land = a if land is None else np.maximum(land, a)
            if layer.water is not None and self.ripple is not None:
                water = np.asarray(self._look(layer.water, lv)) > 128
        assert base is not None
        d = ImageDraw.Draw(base)
        self._draw_life(d, t, c, s, angle)
        w, h = self.size
        whip = next((fx for fx in self.shot.effects if fx.name == "whip" and fx.a <= j < fx.b), None)
        if whip is not None:  # the bird (or fish) the camera follows
            k = (jf - whip.a) / self.fps
            x, y = w * (0.5 + 0.04 * math.sin(7 * k)), h * (0.4 + 0.05 * math.sin(5 * k))
            if self.underwater:
                _draw_fish(
                    d,
                    x,
                    y,
                    0.12 * w,
                    1.0 if self.rig.whip is not None and self.rig.whip[2][0] > 0 else -1.0,
                    12 * k,
                    self.bird_colour,
                )
            else:
                _draw_near_bird(d, x, y, 0.12 * w, 2 * math.pi * 4 * k, self.bird_colour)
        if j in self.flash and self.bolt:
            d.line(self.bolt, fill=(240, 240, 255, 255), width=max(1, round(w / 240)))
        pic = np.asarray(base, np.float32)[..., :3].copy()
        land_f = (land.astype(np.float32) / 255) if land is not None else np.zeros((h, w), np.float32)
        return pic, land_f, water

    def _draw_life(self, d: ImageDraw.ImageDraw, t: float, c: np.ndarray, s: float, angle: float) -> None:
        w, h = self.size
        if self.walkers:
            lv = self._layer_view(1.0, False, c, s, angle, t)
            for a in self.walkers:
                x = a.x + a.vx * t
                u, v = self._to_view(lv, x, a.y)
                hp = a.hp / lv[1]
                if -hp < u < w + hp and v - hp < h:
                    phase = (a.phase + 2 * math.pi * 1.6 * abs(a.vx) / max(a.hp, 1) * 4 * t) if a.vx else 0.0
                    facing = 1.0 if a.vx >= 0 else -1.0
                    if not a.vx:
                        facing = 1.0 if a.phase > 3.1 else -1.0
                    graze = a.graze and math.sin(0.5 * t + a.phase) > -0.6
                    _draw_quadruped(d, u, v, hp, facing, phase, graze, a.colour, self.world.fauna)
        if self.birds:
            lv = self._layer_view(0.45, False, c, s, angle, t)
            start, vel = self.flock
            for dx, dy, hz, ph, span in self.birds:
                x = start[0] + vel[0] * t + dx + 3 * math.sin(0.7 * t + ph)
                y = start[1] + vel[1] * t + dy + 2 * math.sin(0.9 * t + 2 * ph)
                u, v = self._to_view(lv, x, y)
                sv = span / lv[1]
                if -sv < u < w + sv and -sv < v < h + sv:
                    _draw_bird(d, u, v, sv, 2 * math.pi * hz * t + ph, self.bird_colour, max(1, round(sv / 8)))
        if self.fish:
            lv = self._layer_view(0.7, False, c, s, angle, t)
            start, vel = self.school
            facing = 1.0 if vel[0] >= 0 else -1.0
            for dx, dy, length, ph, colour in self.fish:
                x = start[0] + vel[0] * t + dx + 4 * math.sin(0.8 * t + ph)
                y = start[1] + dy + 3 * math.sin(0.6 * t + 2 * ph)
                u, v = self._to_view(lv, x, y)
                lvw = length / lv[1]
                if -lvw < u < w + lvw and -lvw < v < h + lvw:
                    _draw_fish(d, u, v, lvw, facing, 10 * t + ph, colour)

    # the frame

    def frame(self, j: int) -> np.ndarray:
        """Frame `j` of the shot, float RGB at the working size."""
        w, h = self.size
        t = j / self.fps
        whip = self.rig.whip
        if whip is not None and whip[0] <= j < whip[1]:  # motion blur
            views = [self._compose(j + dt, j) for dt in (-0.33, 0.0, 0.33)]
            pic = np.mean(np.stack([v[0] for v in views]), axis=0)
            land, water = views[1][1], views[1][2]
        else:
            pic, land, water = self._compose(float(j), j)
        if water is not None and self.ripple is not None:
            self._ripple(pic, water, t)
        if self.rays is not None:
            idx, freq, phase = self.rays
            n = int(idx.max()) + 1
            u = np.arange(n, dtype=np.float32)
            live = self.style.life
            prof = sum(np.sin(u * freq[k] + phase[k] + 0.6 * live * t * (k + 1)) for k in range(3)) / 3
            beams = np.clip(prof, 0, 1) ** 2
            pic *= (1 + 0.35 * beams[idx] * self.ray_fall)[..., None]
        if self.shadows is not None:
            c, s, _ = self.rig.pose(j)
            off = int(self.cloud_speed * t / max(s, 1e-3)) % w
            shade = self.shadows[:, w - off : 2 * w - off] if off else self.shadows[:, w : 2 * w]
            pic *= (1 - shade * land)[..., None]
        if self.shadow_sweep is not None:
            fx, prm = self.shadow_sweep
            if fx.a <= j < fx.b:
                q = (j - fx.a + 0.5) / (fx.b - fx.a)
                reach = prm["width"] / 2 + prm["soft"] + abs(prm["slant"]) * h / 2
                pos = -reach + q * (w + 2 * reach)
                if prm["dir"] < 0:
                    pos = w - pos
                dist = np.abs(self.xx + prm["slant"] * (self.yy - h / 2) - pos)
                band = 1 - _smooth((dist - prm["width"] / 2) / prm["soft"] + 0.5)
                pic *= (1 - prm["dark"] * band * np.maximum(land, 0.15))[..., None]
        if self.fog is not None:
            field_, colour, amount, speed = self.fog
            off = int(speed * t) % w
            a = amount * (0.55 + 0.45 * field_[:, off : off + w])
            pic += (colour - pic) * a[..., None]
        if self.rain is not None:
            tex, speed, wind = self.rain
            oy = int(speed * t) % h
            ox = int(wind * speed * t) % w
            streaks = tex[oy : oy + h, ox : ox + w]
            pic += (np.float32(205) - pic) * (0.45 * streaks)[..., None]
        if self.flakes is not None:
            self._snow(pic, t)
        gain = np.ones(3, np.float32)
        amp, period, ph = self.drift
        gain *= 1 + amp * math.sin(2 * math.pi * t / period + ph)
        if self.sun is not None:
            fx, g0, out = self.sun
            q = _smoothstep((j - fx.a + 1) / (fx.b - fx.a))
            lit = q if out else 1 - q
            gain *= (g0 + (1 - g0) * lit) * np.array([1 + 0.04 * lit, 1.0, 1 - 0.05 * lit], np.float32)
        for fx, f in self.steps:
            if j >= fx.a:
                gain *= 1 + (f - 1) * min(1.0, (j - fx.a + 1) / (fx.b - fx.a))
        if (gain != 1).any():
            pic *= gain
        for fx, prm, colour in self.occluders:
            if fx.a <= j < fx.b:
                alpha = self._occluder(fx, prm, j)
                pic += (colour - pic) * (0.95 * alpha)[..., None]
        if j in self.flash:
            pic += (np.array([235, 238, 255], np.float32) - pic) * np.float32(self.flash[j])
        return pic

    def _ripple(self, pic: np.ndarray, water: np.ndarray, t: float) -> None:
        """Rows of water swing sideways, more near the camera."""
        assert self.ripple is not None
        amp, k, omega = self.ripple
        rows = np.nonzero(water.any(axis=1))[0]
        if not len(rows):
            return
        h, w = water.shape
        r0 = int(rows[0])
        v = np.arange(r0, h, dtype=np.float32)
        depth = (v - r0) / max(h - r0, 1)
        dx = amp * (0.15 + depth) * np.sin(k * v / (0.25 + depth) + omega * t)
        idx = np.clip(np.arange(w)[None, :] + np.round(dx)[:, None].astype(np.int64), 0, w - 1)
        sub = pic[r0:]
        moved = np.take_along_axis(sub, idx[..., None], axis=1)
        pic[r0:] = np.where(water[r0:, :, None], moved, sub)

    def _snow(self, pic: np.ndarray, t: float) -> None:
        assert self.flakes is not None
        x0, y0, fall, sway, hz, ph, size, wind = self.flakes
        h, w = pic.shape[:2]
        y = ((y0 + fall * t) % h).astype(np.int64)
        x = ((x0 + wind * t + sway * np.sin(2 * math.pi * hz * t + ph)) % w).astype(np.int64)
        colour, alpha = self.flake_look
        for dy, dx, least in ((0, 0, 1), (0, 1, 2), (1, 0, 2), (1, 1, 3)):
            keep = size >= least
            yy, xx = np.minimum(y[keep] + dy, h - 1), np.minimum(x[keep] + dx, w - 1)
            pic[yy, xx] += (colour - pic[yy, xx]) * alpha

    def _occluder(self, fx: Effect, prm: dict[str, float], j: int) -> np.ndarray:
        """Where something right in front of the lens covers the frame (0-1), out of focus."""
        w, h = self.size
        q = (j - fx.a + 0.5) / (fx.b - fx.a)
        if fx.name == "branch":
            assert self.branch is not None
            mask = self.branch
            mh, mw = mask.shape
            x = round(w - q * (w + mw)) if prm["dir"] > 0 else round(-mw + q * (w + mw))
            y = round((h - mh) / 2 + 0.06 * h * math.sin(2 * math.pi * q + prm["phase"]))
            out = np.zeros((h, w), np.float32)
            sx0, sx1 = max(0, -x), min(mw, w - x)
            sy0, sy1 = max(0, -y), min(mh, h - y)
            if sx1 > sx0 and sy1 > sy0:
                out[sy0 + y : sy1 + y, sx0 + x : sx1 + x] = mask[sy0:sy1, sx0:sx1]
            return out
        im = Image.new("L", (w, h), 0)
        d = ImageDraw.Draw(im)
        if fx.name == "bird":
            span = prm["size"] * w
            x = -span / 2 + q * (w + span)
            x = w - x if prm["dir"] < 0 else x
            by = h * (prm["y"] + 0.15 * (q - 0.5) ** 2)
            _draw_near_bird(d, x, by, span, prm["phase"] + 2 * math.pi * 3 * q, 255)
        elif fx.name == "fish":
            length = prm["size"] * 0.7 * w
            x = -length / 2 + q * (w + length)
            x = w - x if prm["dir"] < 0 else x
            _draw_fish(d, x, h * prm["y"], length, prm["dir"], prm["phase"] + 8 * q, 255)
        else:  # an animal walking close past the camera
            hp = prm["size"] * h
            half = 0.5 * hp
            x = -1.3 * half + q * (w + 2.6 * half)
            x = w - x if prm["dir"] < 0 else x
            _draw_quadruped(
                d,
                x,
                h * (1.05 + 0.2 * prm["y"]),
                hp,
                prm["dir"],
                prm["phase"] + 2 * math.pi * 2 * q,
                False,
                255,
                "deer",
            )
        out2: np.ndarray = np.asarray(im.filter(ImageFilter.GaussianBlur(prm["blur"])), np.float32) / 255
        return out2


# --- the video -----------------------------------------------------------------------------------------


def make_nature_video(
    path: str | os.PathLike[str],
    seed: int = 0,
    *,
    duration: float = 60.0,
    size: tuple[int, int] | None = None,
    fps: int | None = None,
    shot_s: tuple[float, float] = (1.5, 10.0),
    plan: Sequence[tuple[str | None, str | None]] | None = None,
    style: NatureStyle = NatureStyle(),
    encoding: Encoding | None = None,
) -> GroundTruth:
    """Write a `nature` video of about `duration` seconds and return its ground truth.

    Size, frame rate and encoding are drawn from the seed unless given. `plan` fixes the shots
    instead: one (transition into the shot, effect in it) pair per shot, the first transition None,
    each effect a key of `NATURE_EFFECTS`; the video is then as long as the plan makes it.
    """
    p = plan_nature_video(
        seed, duration=duration, size=size, fps=fps, shot_s=shot_s, plan=plan, style=style, encoding=encoding
    )
    write_video(path, p.encoding, p.size, p.fps, _frames(p))
    return p.truth(path)


def _frames(p: NaturePlan) -> Iterator[np.ndarray]:
    """The video's frames at the working size, RGB uint8, in order."""
    seed, style = p.seed, p.style
    width, height = p.size
    work_w = min(width, _WORK_WIDTH)
    work_h = 2 * max(1, round(work_w * height / width / 2))
    work = (work_w, work_h)
    world_size = (round(_WORLD[0] * work_w), round(_WORLD[1] * work_h))
    worlds: dict[int, _World] = {}
    last_use = {s: max(sh.last for sh in p.shots if sh.scene == s) for s in range(len(p.scenes))}
    noise_rng = np.random.default_rng([_SALT, seed, 4])
    noise = [noise_rng.standard_normal((work_h, work_w, 3), dtype=np.float32) for _ in range(_NOISE_FIELDS)]
    sigmas = [float(noise_rng.uniform(*style.noise)) * (1.4 if sh.camera == "handheld" else 1.0) for sh in p.shots]
    renderers: dict[int, _ShotRenderer] = {}
    for i, (parts, fill, fill_w) in enumerate(_timeline(p.shots)):
        acc = np.full((work_h, work_w, 3), fill * fill_w, np.float32)
        for k, weight in parts:
            if k not in renderers:
                shot = p.shots[k]
                if shot.scene not in worlds:
                    scene_rng = np.random.default_rng([_SALT, seed, 2, shot.scene])
                    worlds[shot.scene] = _build_world(scene_rng, p.scenes[shot.scene], world_size)
                renderers[k] = _ShotRenderer(
                    worlds[shot.scene],
                    shot,
                    p,
                    np.random.default_rng([_SALT, seed, 1, k]),
                    work,
                    np.random.default_rng([_SALT, seed, 3, shot.scene]),
                    p.sun_out.get(k, True),
                )
            acc += renderers[k].frame(i - p.shots[k].first) * np.float32(weight)
        sigma = max((sigmas[k] for k, _ in parts), default=0.0)
        if sigma > 0:
            acc += noise[i % _NOISE_FIELDS] * np.float32(sigma)
        acc += 0.5
        yield np.clip(acc, 0, 255, out=acc).astype(np.uint8)
        for k in [k for k in renderers if p.shots[k].last <= i + 1]:
            del renderers[k]
        for s in [s for s in worlds if last_use[s] <= i + 1]:
            del worlds[s]
