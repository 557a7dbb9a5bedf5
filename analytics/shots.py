"""A video's shots from the events its processors reported: where each shot starts and ends,
how it began (the first shot, a cut or a gradual transition), its keyframe (the frame nearest
the shot's mean look) and, when frames carry them, the shot's picture quality and camera motion
(from each frame's step from the one before, `FrameStep`, as `dinostream.analytics.frame_motion`
measures it on the thumbnails: "still", "moving", or "whip" when one step crosses
`WHIP_STEP` of the view).

Pure: frames in (a light `ShotFrame` per analysed frame), scene-change events in, a list of
`Shot`s out; the asset analysis (`dinostream.asset_analysis`) feeds it what `analyze` runs.

    >>> shots = split_shots(frames, [e for e in events if e.type == "scene_change"], end=12.0)
    >>> [(s.start, s.end, s.began_with) for s in shots]   # [(0.0, 4.0, 'start'), (4.0, 12.0, 'cut')]
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from dinostream.analytics.quality import Quality
from dinostream.core.records import Event

STILL_PER_S = 0.02  # the view moving less than this share of its width per second is still
WHIP_STEP = 0.15  # one step across this share of the view: a whip pan
MIN_MATCH = 0.5  # steps whose best alignment is weaker are not camera motion (a cut, an occluder)


@dataclass(frozen=True)
class FrameStep:
    """How the view moved since the previous frame: the shift of the best alignment of their
    thumbnails as shares of the view's width, its NCC, and the time between them."""

    dx: float
    dy: float
    similarity: float
    dt: float


@dataclass(frozen=True)
class ShotFrame:
    """What a shot needs of one analysed frame."""

    seq: int
    t: float  # media seconds
    vector: np.ndarray  # the frame's global descriptor (unit length)
    quality: Quality | None = None
    step: FrameStep | None = None  # from the frame before (None for the first, or no thumbnail)


@dataclass(frozen=True)
class Shot:
    index: int
    start: float  # media seconds: the first frame of the shot (for a cut, the event's t)
    end: float  # where the next shot starts, or the video's end
    began_with: str  # "start" (the first shot), "cut" or "gradual"
    transition_score: float | None  # the scene-change event's score
    transition_start: float | None  # where a gradual transition began
    frames: int
    keyframe: dict[str, Any] | None  # {"seq", "t"}; None for a shot with no analysed frame
    quality: dict[str, Any] | None = None  # mean and lowest score, reasons most of its frames share
    camera_motion: dict[str, Any] | None = None  # kind, path per second, largest step
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def duration(self) -> float:
        return self.end - self.start

    def to_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "start": self.start,
            "end": self.end,
            "duration": self.duration,
            "began_with": self.began_with,
            "transition_score": self.transition_score,
            "transition_start": self.transition_start,
            "frames": self.frames,
            "keyframe": self.keyframe,
            "quality": self.quality,
            "camera_motion": self.camera_motion,
        }


def split_shots(frames: Sequence[ShotFrame], cuts: Sequence[Event], end: float | None = None) -> list[Shot]:
    """The shots between the scene changes `cuts` (any order; other event types are ignored).
    `end` is the video's end (default: the last frame's time)."""
    changes = sorted((e for e in cuts if e.type == "scene_change"), key=lambda e: e.t)
    ordered = sorted(frames, key=lambda f: f.t)
    last = end if end is not None else (ordered[-1].t if ordered else 0.0)
    starts: list[tuple[float, Event | None]] = [(ordered[0].t if ordered else 0.0, None)]
    starts += [(e.t, e) for e in changes]
    shots: list[Shot] = []
    for i, (start, event) in enumerate(starts):
        stop = starts[i + 1][0] if i + 1 < len(starts) else max(last, start)
        inside = [f for f in ordered if start <= f.t < stop or (i + 1 == len(starts) and f.t >= start)]
        shots.append(
            Shot(
                index=i,
                start=start,
                end=stop,
                began_with="start" if event is None else str(event.details.get("kind", "cut")),
                transition_score=None if event is None else float(event.score),
                transition_start=None if event is None else float(event.t_start),
                frames=len(inside),
                keyframe=_keyframe(inside),
                quality=_quality(inside),
                camera_motion=_camera_motion(inside[1:]),  # the first frame's step crosses the transition
            )
        )
    return shots


def _keyframe(frames: Sequence[ShotFrame]) -> dict[str, Any] | None:
    """The frame nearest the shot's mean descriptor: what the shot looks like most of the time."""
    if not frames:
        return None
    vectors = np.stack([f.vector for f in frames]).astype(np.float32)
    mean = vectors.mean(axis=0)
    best = int(np.argmax(vectors @ mean))
    return {"seq": frames[best].seq, "t": frames[best].t}


def _camera_motion(frames: Sequence[ShotFrame]) -> dict[str, Any] | None:
    """The steps inside a shot summed up; None when no step could be measured."""
    steps = [f.step for f in frames if f.step is not None and f.step.dt > 0]
    if not steps:
        return None
    matched = [s for s in steps if s.similarity >= MIN_MATCH]
    sizes = [float(np.hypot(s.dx, s.dy)) for s in matched]
    duration = sum(s.dt for s in matched)
    per_s = sum(sizes) / duration if duration > 0 else 0.0
    largest = max(sizes, default=0.0)
    kind = "whip" if largest >= WHIP_STEP else "moving" if per_s >= STILL_PER_S else "still"
    return {
        "kind": kind,
        "path_per_s": per_s,
        "largest_step": largest,
        "mean_shift_per_s": [sum(s.dx for s in matched) / duration, sum(s.dy for s in matched) / duration]
        if duration > 0
        else [0.0, 0.0],
        "steps_matched": len(matched),
        "steps": len(steps),
    }


def _quality(frames: Sequence[ShotFrame]) -> dict[str, Any] | None:
    measured = [f.quality for f in frames if f.quality is not None]
    if not measured:
        return None
    scores = [q.score for q in measured]
    reasons = Counter(r for q in measured for r in q.reasons)
    return {
        "score": float(np.mean(scores)),
        "lowest": float(min(scores)),
        "reasons": sorted(r for r, n in reasons.items() if 2 * n >= len(measured)),
        "frames_measured": len(measured),
    }
