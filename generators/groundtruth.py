"""Ground-truth videos for shot-boundary detection: real pictures, real camera work, known answers.

A video is a sequence of shots. Each shot looks at one still image through a moving virtual
camera (a slow pan and zoom). Shots are joined by hard cuts, dissolves or fades through black,
and some shots contain a distractor that is *not* a shot change: a camera flash, a fast (whip)
pan, an object crossing the view, or a slow lighting drift. The generator returns where every
transition and distractor is, in media seconds. Everything is deterministic for a seed.

The pictures are scikit-image's bundled samples (`sample_images`, needs the `bench` extra) or
numpy-drawn stand-ins (`synthetic_images`, no extra dependency) for the unit tests.

    >>> truth = make_groundtruth_video("gt.mp4", sample_images(), seed=3)  # doctest: +SKIP
    >>> [(t.kind, t.start, t.end) for t in truth.transitions][:2]  # doctest: +SKIP
    [('cut', 4.2, 4.2), ('dissolve', 9.0, 10.2)]
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from typing import Any, Literal

import av
import numpy as np
from PIL import Image, ImageDraw, ImageFilter

TransitionKind = Literal["cut", "dissolve", "fade"]
DistractorKind = Literal["flash", "fast_pan", "occluder", "drift"]
TRANSITION_KINDS: tuple[TransitionKind, ...] = ("cut", "dissolve", "fade")
DISTRACTOR_KINDS: tuple[DistractorKind, ...] = ("flash", "fast_pan", "occluder", "drift")

# scikit-image samples that ship inside the wheel (no download) and are different enough from
# each other to be different shots. `cat` is `chelsea`, the stereo pair is one picture twice.
SKIMAGE_SAMPLES = (
    "astronaut",
    "coffee",
    "chelsea",
    "rocket",
    "camera",
    "coins",
    "hubble_deep_field",
    "immunohistochemistry",
    "retina",
    "moon",
    "clock",
    "colorwheel",
    "brick",
    "grass",
    "page",
    "logo",
    "motorcycle",
)

_MARGIN_S = 1.0  # distractors keep this far from any transition, so neither is mistaken for the other


@dataclass(frozen=True)
class Transition:
    """A shot change. `start`: time of the first frame that is no longer purely the outgoing shot;
    `end`: time of the first frame that is purely the incoming shot. A cut has start == end."""

    kind: TransitionKind
    start: float
    end: float
    before: int  # index of the outgoing shot
    after: int  # index of the incoming shot


@dataclass(frozen=True)
class Distractor:
    """Something inside one shot that changes the picture without changing the shot."""

    kind: DistractorKind
    start: float
    end: float
    shot: int


@dataclass(frozen=True)
class ShotInfo:
    image: str
    start: float  # first frame showing any of it
    end: float  # first frame not showing any of it (or the video's end)


@dataclass(frozen=True)
class GroundTruth:
    path: str
    seed: int
    fps: int
    frames: int
    size: tuple[int, int]  # (width, height)
    shots: list[ShotInfo] = field(default_factory=list)
    transitions: list[Transition] = field(default_factory=list)
    distractors: list[Distractor] = field(default_factory=list)

    @property
    def duration(self) -> float:
        return self.frames / self.fps

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Score:
    """Detections scored against a video's transitions (see `score_detections`)."""

    matched: list[tuple[int, int]]  # (detection index, transition index)
    false_alarms: list[int]  # detection indices
    missed: list[int]  # transition indices

    @property
    def tp(self) -> int:
        return len(self.matched)

    @property
    def fp(self) -> int:
        return len(self.false_alarms)

    @property
    def fn(self) -> int:
        return len(self.missed)


def score_detections(times: Sequence[float], truth: GroundTruth, tolerance: float = 0.5) -> Score:
    """Match detection times to transitions one to one. A detection at `t` can match a transition
    when start - tolerance <= t <= end + tolerance (a cut has start == end); closer pairs (by
    distance from `t` to the transition's interval) are matched first. Unmatched detections are
    false alarms, unmatched transitions are misses."""
    pairs = []
    for i, t in enumerate(times):
        for j, tr in enumerate(truth.transitions):
            if tr.start - tolerance <= t <= tr.end + tolerance:
                pairs.append((max(tr.start - t, 0.0, t - tr.end), i, j))
    used_d: set[int] = set()
    used_t: set[int] = set()
    matched: list[tuple[int, int]] = []
    for _, i, j in sorted(pairs):
        if i not in used_d and j not in used_t:
            used_d.add(i)
            used_t.add(j)
            matched.append((i, j))
    false_alarms = [i for i in range(len(times)) if i not in used_d]
    missed = [j for j in range(len(truth.transitions)) if j not in used_t]
    return Score(sorted(matched), false_alarms, missed)


def distractor_near(t: float, truth: GroundTruth, tolerance: float = 0.5) -> DistractorKind | None:
    """The kind of distractor within `tolerance` of time `t`, to explain a false alarm."""
    for d in truth.distractors:
        if d.start - tolerance <= t <= d.end + tolerance:
            return d.kind
    return None


def sample_images(names: Sequence[str] = SKIMAGE_SAMPLES) -> dict[str, np.ndarray]:
    """scikit-image's bundled sample pictures as RGB uint8 arrays (install the `bench` extra)."""
    try:
        import skimage.data
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError("sample_images needs scikit-image: pip install 'dinostream[bench]'") from e
    out: dict[str, np.ndarray] = {}
    for name in names:
        if name == "motorcycle":
            img = skimage.data.stereo_motorcycle()[0]
        else:
            img = getattr(skimage.data, name)()
        out[name] = _to_rgb8(np.asarray(img))
    return out


def synthetic_images(n: int, *, seed: int = 0, size: tuple[int, int] = (640, 480)) -> dict[str, np.ndarray]:
    """`n` distinct numpy-drawn pictures (smooth colour field plus shapes with edges), for tests that
    must not depend on scikit-image. Each has its own palette, so any two differ clearly."""
    rng = np.random.default_rng(seed)
    width, height = size
    hues = (rng.permutation(n) + rng.random()) / n
    out: dict[str, np.ndarray] = {}
    for k in range(n):
        coarse = rng.random((4, 5, 3)) * 0.5 + 0.25
        base = _hsv(hues[k], 0.7, 0.8)
        field_ = np.asarray(
            Image.fromarray((coarse * 255).astype(np.uint8)).resize((width, height), Image.Resampling.BICUBIC),
            dtype=np.float32,
        )
        img = Image.fromarray(np.clip(field_ * 0.6 + base * 0.6, 0, 255).astype(np.uint8))
        draw = ImageDraw.Draw(img)
        for _ in range(14):
            x0, y0 = rng.uniform(0, width), rng.uniform(0, height)
            w, h = rng.uniform(0.05, 0.25) * width, rng.uniform(0.05, 0.25) * height
            colour = tuple(int(c) for c in _hsv((hues[k] + rng.uniform(-0.15, 0.15)) % 1.0, rng.uniform(0.3, 1), 1.0))
            shade = tuple(int(c * rng.uniform(0.2, 1.0)) for c in colour)
            box = (x0, y0, x0 + w, y0 + h)
            (draw.ellipse if rng.random() < 0.5 else draw.rectangle)(box, fill=shade, outline=(0, 0, 0), width=2)
        out[f"synthetic-{k}"] = np.asarray(img)
    return out


def make_groundtruth_video(
    path: str | os.PathLike[str],
    images: Mapping[str, np.ndarray],
    *,
    seed: int = 0,
    shots: int = 8,
    fps: int = 25,
    size: tuple[int, int] = (320, 240),
    shot_s: tuple[float, float] = (3.5, 6.0),
    transition_kinds: Sequence[TransitionKind] = TRANSITION_KINDS,
    transition_weights: Sequence[float] | None = (0.5, 0.25, 0.25),
    distractor_kinds: Sequence[DistractorKind] = DISTRACTOR_KINDS,
    distractor_rate: float = 0.7,
    plan: Sequence[tuple[TransitionKind | None, DistractorKind | None]] | None = None,
) -> GroundTruth:
    """Write an H.264 (yuv420p) mp4 and return its ground truth.

    Shots draw pictures from `images` without repeating one until all are used. `shot_s` bounds
    the time each shot is seen on its own (transitions add to it). Each join draws a kind from
    `transition_kinds` (with `transition_weights`); each shot gets a distractor with probability
    `distractor_rate`. `plan` fixes both instead: one (transition into this shot, distractor in
    this shot) pair per shot, the first transition being None.
    """
    width, height = size
    if width < 32 or height < 32 or width % 2 or height % 2:
        raise ValueError(f"size must be even and at least 32x32, got {width}x{height}")
    if not images:
        raise ValueError("need at least one picture")
    if plan is not None:
        shots = len(plan)
    if shots < 1 or fps < 5 or not 0 < shot_s[0] <= shot_s[1]:
        raise ValueError(f"need shots >= 1, fps >= 5 and 0 < shot_s[0] <= shot_s[1], got {shots}, {fps}, {shot_s}")
    rng = np.random.default_rng(seed)
    names = list(images)
    planned = plan is not None  # a distractor that does not fit is an error, not skipped
    if plan is None:
        weights = None if transition_weights is None else np.asarray(transition_weights, dtype=float)
        if weights is not None:
            weights = weights / weights.sum()
        plan = []
        for k in range(shots):
            tkind: TransitionKind | None = None
            if k:
                tkind = transition_kinds[rng.choice(len(transition_kinds), p=weights)]
            dkind: DistractorKind | None = None
            if distractor_kinds and rng.random() < distractor_rate:
                dkind = distractor_kinds[int(rng.integers(len(distractor_kinds)))]
            plan.append((tkind, dkind))
    if plan[0][0] is not None:
        raise ValueError("the first shot has no transition into it")

    # Timeline, in frames. Shot k is alone on screen for `solo[k]` frames; the transition into
    # shot k+1 starts right after that and may overlap both shots (dissolve) or neither (fade).
    order = _picture_order(rng, names, shots)
    solo = [round(rng.uniform(*shot_s) * fps) for _ in range(shots)]
    transitions: list[Transition] = []
    timeline: list[list[tuple[int, float]]] = []  # per frame: (shot, weight) layers; weight sum < 1 = black
    shot_first: list[int] = [0] * shots
    shot_last: list[int] = [0] * shots
    for k in range(shots):
        timeline.extend([[(k, 1.0)] for _ in range(solo[k])])
        shot_last[k] = len(timeline)
        if k + 1 == shots:
            break
        tkind = plan[k + 1][0]
        if tkind is None:
            raise ValueError(f"plan[{k + 1}] needs a transition kind")
        start = len(timeline)
        if tkind == "cut":
            pass
        elif tkind == "dissolve":
            n = round(rng.uniform(0.5, 2.0) * fps)
            for i in range(n):
                mix = (i + 1) / (n + 1)
                timeline.append([(k, 1 - mix), (k + 1, mix)])
            shot_last[k] = len(timeline)
        elif tkind == "fade":
            n_out, hold, n_in = (round(rng.uniform(*r) * fps) for r in ((0.4, 1.0), (0.0, 0.5), (0.4, 1.0)))
            timeline.extend([[(k, 1 - (i + 1) / (n_out + 1))] for i in range(n_out)])
            shot_last[k] = len(timeline)
            timeline.extend([[] for _ in range(hold)])
            shot_first[k + 1] = len(timeline)
            timeline.extend([[(k + 1, (i + 1) / (n_in + 1))] for i in range(n_in)])
        else:
            raise ValueError(f"unknown transition kind {tkind!r}")
        if tkind != "fade":
            shot_first[k + 1] = start
        transitions.append(Transition(tkind, start / fps, len(timeline) / fps, k, k + 1))
    frames = len(timeline)

    # Shots: camera paths and distractors, placed in the part of the shot seen on its own,
    # at least _MARGIN_S away from transitions.
    rendered: list[_Shot] = []
    distractors: list[Distractor] = []
    for k in range(shots):
        solo_start = shot_first[k] if k == 0 else _solo_start(transitions[k - 1], fps)
        solo_end = solo_start + solo[k]
        dkind = plan[k][1]
        shot = _Shot(rng, images[order[k]], shot_first[k], shot_last[k], fps, size)
        if dkind is not None:
            lo, hi = solo_start + round(_MARGIN_S * fps), solo_end - round(_MARGIN_S * fps)
            if dkind == "drift":
                a, b = solo_start, solo_end  # the whole time it is seen alone
            else:
                if dkind == "flash":
                    dur = int(rng.integers(1, 4))  # frames
                elif dkind == "fast_pan":
                    dur = round(rng.uniform(0.4, 0.8) * fps)
                else:
                    dur = round(rng.uniform(0.8, 1.6) * fps)
                if hi - lo < dur:
                    if planned:
                        raise ValueError(f"shot {k} is too short for a {dkind} ({solo[k] / fps:.2f} s seen alone)")
                    dkind = None
                else:
                    a = int(rng.integers(lo, hi - dur + 1))
                    b = a + dur
            if dkind is not None:
                shot.add_distractor(rng, dkind, a, b)
                distractors.append(Distractor(dkind, a / fps, b / fps, k))
        rendered.append(shot)

    flashes = [(round(d.start * fps), round(d.end * fps)) for d in distractors if d.kind == "flash"]
    with av.open(os.fspath(path), mode="w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        # Same seed, same bytes: x264's macroblock-tree rate control made the output vary with
        # whatever the process's memory held before (two encodes of one seed differed), so it is off.
        stream.options = {"preset": "veryfast", "crf": "18", "x264-params": "mbtree=0"}
        for i, layers in enumerate(timeline):
            acc = np.zeros((height, width, 3), dtype=np.float32)
            for k, w in layers:
                acc += w * rendered[k].render(i)
            for a, b in flashes:
                if a <= i < b:
                    strength = (0.85, 0.55, 0.3)[i - a]
                    acc += strength * (255.0 - acc)
            frame = av.VideoFrame.from_ndarray(np.clip(acc + 0.5, 0, 255).astype(np.uint8), format="rgb24")
            frame = frame.reformat(format="yuv420p")
            frame.pts, frame.time_base = i, Fraction(1, fps)
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))

    infos = [ShotInfo(order[k], shot_first[k] / fps, shot_last[k] / fps) for k in range(shots)]
    return GroundTruth(os.fspath(path), seed, fps, frames, size, infos, transitions, distractors)


def _solo_start(into: Transition, fps: int) -> int:
    return round(into.end * fps)


def _picture_order(rng: np.random.Generator, names: list[str], shots: int) -> list[str]:
    order: list[str] = []
    while len(order) < shots:
        batch = [names[i] for i in rng.permutation(len(names))]
        if order and len(batch) > 1 and batch[0] == order[-1]:
            batch[0], batch[-1] = batch[-1], batch[0]
        order.extend(batch)
    return order[:shots]


class _Shot:
    """A virtual camera on one picture: a crop window that pans and zooms linearly, plus at most
    one distractor (fast pan, occluder, lighting drift; flashes are applied to the whole frame)."""

    def __init__(
        self,
        rng: np.random.Generator,
        picture: np.ndarray,
        first: int,
        last: int,
        fps: int,
        size: tuple[int, int],
    ) -> None:
        self.size = size
        self.first, self.last, self.fps = first, max(last, first + 1), fps
        width, height = size
        aspect = width / height
        img = _to_rgb8(picture)
        ih, iw = img.shape[:2]
        # Upscale small pictures so the crop window has room to move and is never upsampled a lot.
        scale = max(1.0, 1.6 * width / iw, 1.6 * height / ih)
        if scale > 1.0:
            size_up = (round(iw * scale), round(ih * scale))
            img = np.asarray(Image.fromarray(img).resize(size_up, Image.Resampling.LANCZOS))
        self.image = Image.fromarray(img)
        self.iw, self.ih = self.image.size
        max_cw = min(self.iw, self.ih * aspect)
        cw0 = max_cw * rng.uniform(0.55, 0.75)
        cw1 = cw0 * rng.uniform(0.85, 1.15)  # slow zoom in or out
        self.cw = (cw0, min(cw1, max_cw))
        span = self.last - self.first
        # Slow pan: at most ~6% of the picture per second.
        self.c0 = np.array([rng.uniform(0.3, 0.7) * self.iw, rng.uniform(0.3, 0.7) * self.ih])
        drift = rng.uniform(-1, 1, 2) * 0.06 * np.array([self.iw, self.ih]) * span / fps
        self.c1 = self.c0 + drift
        self.jump: tuple[int, int, np.ndarray] | None = None  # fast pan: (from frame, to frame, offset)
        self.occluder: tuple[int, int, Image.Image, Image.Image, int, bool] | None = None
        self.gain: tuple[int, int, np.ndarray] | None = None  # drift: (from, to, final RGB gain)

    def add_distractor(self, rng: np.random.Generator, kind: DistractorKind, a: int, b: int) -> None:
        width, height = self.size
        if kind == "fast_pan":
            # A whip pan across ~45-65% of the picture; the slow path is re-centred so both ends fit.
            direction = rng.choice([-1.0, 1.0])
            dx = direction * rng.uniform(0.45, 0.65) * self.iw
            self.c0[0] -= dx / 2
            self.c1[0] -= dx / 2
            self.jump = (a, b, np.array([dx, rng.uniform(-0.1, 0.1) * self.ih]))
        elif kind == "occluder":
            h = round(rng.uniform(0.5, 0.8) * height)
            w = round(rng.uniform(0.25, 0.4) * width)
            colour = tuple(int(c) for c in rng.integers(20, 236, 3))
            body = Image.new("RGB", (w, h), colour)
            draw = ImageDraw.Draw(body)
            for _ in range(6):  # some texture, like a person's clothes
                x0, y0 = rng.uniform(0, w), rng.uniform(0, h)
                draw.rectangle((x0, y0, x0 + w / 3, y0 + h / 6), fill=tuple(int(c) for c in rng.integers(0, 256, 3)))
            mask = Image.new("L", (w, h), 0)
            ImageDraw.Draw(mask).rounded_rectangle((0, 0, w - 1, h - 1), radius=min(w, h) // 3, fill=255)
            y = int(rng.integers(0, height - h + 1))
            self.occluder = (a, b, body, mask.filter(ImageFilter.GaussianBlur(1.5)), y, bool(rng.random() < 0.5))
        elif kind == "drift":
            brighter = rng.random() < 0.5
            g = rng.uniform(1.25, 1.4) if brighter else rng.uniform(0.65, 0.78)
            tint = 1 + rng.uniform(-0.08, 0.08, 3)  # light gets warmer or cooler too
            self.gain = (a, b, g * tint)
        elif kind != "flash":
            raise ValueError(f"unknown distractor kind {kind!r}")

    def render(self, i: int) -> np.ndarray:
        """The shot's picture at frame `i` of the video, float32 RGB."""
        width, height = self.size
        u = min(max((i - self.first) / (self.last - self.first), 0.0), 1.0)
        c = self.c0 + u * (self.c1 - self.c0)
        cw = self.cw[0] + u * (self.cw[1] - self.cw[0])
        if self.jump is not None:
            a, b, off = self.jump
            s = min(max((i - a) / max(b - a, 1), 0.0), 1.0)
            c = c + off * (s * s * (3 - 2 * s))  # smoothstep: accelerates, then brakes
        ch = cw * height / width
        cx = min(max(c[0], cw / 2), self.iw - cw / 2)
        cy = min(max(c[1], ch / 2), self.ih - ch / 2)
        box = (cx - cw / 2, cy - ch / 2, cx + cw / 2, cy + ch / 2)
        view = self.image.transform(self.size, Image.Transform.EXTENT, box, Image.Resampling.BILINEAR)
        if self.occluder is not None:
            a, b, body, mask, y, leftwards = self.occluder
            if a <= i < b:
                s = (i - a + 0.5) / (b - a)
                x = round(-body.width + s * (width + body.width))
                view.paste(body, (width - body.width - x if leftwards else x, y), mask)
        out: np.ndarray = np.asarray(view, dtype=np.float32)
        if self.gain is not None:
            a, b, g = self.gain
            s = min(max((i - a) / max(b - a, 1), 0.0), 1.0)
            out = out * (1 + s * (g - 1))
        return out


def _to_rgb8(img: np.ndarray) -> np.ndarray:
    a = np.asarray(img)
    if a.dtype == bool:
        a = a.astype(np.uint8) * 255
    elif a.dtype != np.uint8:
        a = np.asarray(np.clip(a.astype(np.float64) * (255.0 if a.max() <= 1.0 else 1.0), 0, 255), dtype=np.uint8)
    if a.ndim == 2:
        a = np.repeat(a[..., None], 3, axis=2)
    if a.shape[2] == 4:  # composite on white
        alpha = a[..., 3:4].astype(np.float32) / 255
        a = (a[..., :3] * alpha + 255 * (1 - alpha)).astype(np.uint8)
    return np.ascontiguousarray(a[..., :3])


def _hsv(h: float, s: float, v: float) -> np.ndarray:
    i = int(h * 6) % 6
    f = h * 6 - int(h * 6)
    p, q, t = v * (1 - s), v * (1 - s * f), v * (1 - s * (1 - f))
    rgb = [(v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q)][i]
    return np.array(rgb, dtype=np.float32) * 255
