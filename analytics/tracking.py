"""Tracks within one stream: regions matched frame to frame by box overlap and appearance.

Each frame's regions are assigned to the live tracks with the Hungarian method on a score of
embedding cosine plus weighted IoU; a pair is allowed only if the boxes overlap or their centres
are close, and either the embeddings are similar enough or the boxes overlap well (the latter only
for a track seen in the previous frame). A track's embedding is an exponential moving
average of its regions' embeddings. A track is confirmed after `min_hits` frames and ends after
`max_misses` frames without a region.

    >>> tracker = Tracker()
    >>> seen = tracker.update(regions, seq=rec.seq, pts=rec.pts, ts=rec.ts, s=settings).seen
    >>> [t.track_id for t in seen if t.confirmed]
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.optimize import linear_sum_assignment

from dinostream.analytics.regions import Region, box_iou, unit_rows
from dinostream.analytics.track_colour import colours_from_state, colours_to_state
from dinostream.core.records import Box
from dinostream.core.settings import ReidSettings

_FORBIDDEN = -1e6


@dataclass
class Track:
    """One object followed within a stream. `track_id` is "<first seq>.<k>": unique for the
    stream's lifetime (seq numbers only grow), readable, and the same after a restore."""

    track_id: str
    box: Box
    embedding: np.ndarray  # (D,) float32, unit length
    first_seq: int
    first_pts: float
    first_ts: float
    last_seq: int
    last_pts: float
    last_ts: float
    hits: int = 1
    misses: int = 0
    confirmed: bool = False
    # Sums of region embeddings of full views (not touching the frame's edge) and of partial ones.
    full_total: np.ndarray | None = None
    full_views: int = 0
    partial_total: np.ndarray | None = None
    partial_views: int = 0
    velocity: tuple[float, float] = (0.0, 0.0)  # box motion per seq, frame units (x, y), smoothed
    # Pixels of its latest views in the thumbnails (`dinostream.analytics.track_colour`).
    colours: np.ndarray | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # owner's JSON-serialisable annotations

    @property
    def leaving(self) -> bool:
        """The last box touched an edge of the frame and the track was moving out through it."""
        b, (vx, vy) = self.box, self.velocity
        return (b.x0 <= 0 and vx < 0) or (b.x1 >= 1 and vx > 0) or (b.y0 <= 0 and vy < 0) or (b.y1 >= 1 and vy > 0)

    def predicted_box(self, seq: int) -> Box:
        """Where the track's box should be at `seq`: moved on by its velocity, kept in the frame."""
        k = seq - self.last_seq
        dx, dy = self.velocity[0] * k, self.velocity[1] * k
        b = self.box
        return Box(
            x0=float(np.clip(b.x0 + dx, 0.0, 1.0)),
            y0=float(np.clip(b.y0 + dy, 0.0, 1.0)),
            x1=float(np.clip(b.x1 + dx, 0.0, 1.0)),
            y1=float(np.clip(b.y1 + dy, 0.0, 1.0)),
        )

    def move(self, box: Box, seq: int) -> None:
        """Take `box` as the track's position at `seq` and fold the motion since the last one into
        the velocity (half the newest step, half the history)."""
        dx, dy = box_motion(self.box, box, max(seq - self.last_seq, 1))
        self.velocity = (dx, dy) if self.hits <= 1 else (0.5 * (self.velocity[0] + dx), 0.5 * (self.velocity[1] + dy))
        self.box = box

    @property
    def appearance(self) -> np.ndarray:
        """What the track looks like over its whole life, for finding it elsewhere: the unit mean of
        its full views (a partial view at the frame's edge shows part of the object), or of every
        view while it has no full one. `embedding` instead follows recent frames, for matching."""
        total = self.full_total if self.full_views else self.partial_total
        return self.embedding if total is None else unit_rows(total)

    def observe(self, region: Region) -> None:
        """Add one region's embedding to the appearance sums."""
        if region.at_border:
            self.partial_total = (
                region.embedding.copy() if self.partial_total is None else self.partial_total + region.embedding
            )
            self.partial_views += 1
        else:
            self.full_total = region.embedding.copy() if self.full_total is None else self.full_total + region.embedding
            self.full_views += 1

    def to_state(self) -> dict[str, Any]:
        return {
            "track_id": self.track_id,
            "box": self.box.to_dict(),
            "embedding": self.embedding.tolist(),
            "first_seq": self.first_seq,
            "first_pts": self.first_pts,
            "first_ts": self.first_ts,
            "last_seq": self.last_seq,
            "last_pts": self.last_pts,
            "last_ts": self.last_ts,
            "hits": self.hits,
            "misses": self.misses,
            "confirmed": self.confirmed,
            "full_total": None if self.full_total is None else self.full_total.tolist(),
            "full_views": self.full_views,
            "partial_total": None if self.partial_total is None else self.partial_total.tolist(),
            "partial_views": self.partial_views,
            "velocity": list(self.velocity),
            "colours": colours_to_state(self.colours),
            "extra": self.extra,
        }

    @classmethod
    def from_state(cls, d: dict[str, Any]) -> Track:
        return cls(
            track_id=str(d["track_id"]),
            box=Box(**d["box"]),
            embedding=np.asarray(d["embedding"], dtype=np.float32),
            first_seq=int(d["first_seq"]),
            first_pts=float(d["first_pts"]),
            first_ts=float(d["first_ts"]),
            last_seq=int(d["last_seq"]),
            last_pts=float(d["last_pts"]),
            last_ts=float(d["last_ts"]),
            hits=int(d["hits"]),
            misses=int(d["misses"]),
            confirmed=bool(d["confirmed"]),
            full_total=None if d.get("full_total") is None else np.asarray(d["full_total"], dtype=np.float32),
            full_views=int(d.get("full_views", 0)),
            partial_total=None if d.get("partial_total") is None else np.asarray(d["partial_total"], dtype=np.float32),
            partial_views=int(d.get("partial_views", 0)),
            velocity=(float(d.get("velocity", (0, 0))[0]), float(d.get("velocity", (0, 0))[1])),
            colours=colours_from_state(d.get("colours")),
            extra=dict(d.get("extra", {})),
        )


def seen_well(track: Track, s: ReidSettings) -> bool:
    """Seen enough for its appearance to be trusted: confirmed, and `link_min_views` full views
    (or three times as many frames, for an object that is never seen whole)."""
    return track.confirmed and (track.full_views >= s.link_min_views or track.hits >= 3 * s.link_min_views)


def _edge_step(a0: float, a1: float, b0: float, b1: float, steps: int) -> float:
    """Motion along one axis from interval (a0, a1) to (b0, b1): the mean shift of the ends that
    the frame's edge did not cut in either (an object walking out keeps its trailing end), else
    of the centre."""
    shifts = []
    if a0 > 0 and b0 > 0:
        shifts.append(b0 - a0)
    if a1 < 1 and b1 < 1:
        shifts.append(b1 - a1)
    if not shifts:
        shifts.append((b0 + b1 - a0 - a1) / 2)
    return float(np.mean(shifts)) / steps


def box_motion(a: Box, b: Box, steps: int = 1) -> tuple[float, float]:
    """How far a box moved per step from `a` to `b` (frame units, x and y), edge cuts discounted."""
    return _edge_step(a.x0, a.x1, b.x0, b.x1, steps), _edge_step(a.y0, a.y1, b.y0, b.y1, steps)


def _centre_distance(a: Box, b: Box) -> float:
    return float(np.hypot((a.x0 + a.x1 - b.x0 - b.x1) / 2, (a.y0 + a.y1 - b.y0 - b.y1) / 2))


def match_scores(tracks: Sequence[Track], regions: Sequence[Region], s: ReidSettings) -> np.ndarray:
    """(tracks, regions) scores: cosine + iou_weight·IoU, or a forbidden value where the gates fail."""
    scores = np.full((len(tracks), len(regions)), _FORBIDDEN, dtype=np.float64)
    if not tracks or not regions:
        return scores
    sims = np.stack([t.embedding for t in tracks]) @ np.stack([r.embedding for r in regions]).T
    for i, t in enumerate(tracks):
        for j, r in enumerate(regions):
            iou = box_iou(t.box, r.box)
            near = iou > 0 or _centre_distance(t.box, r.box) <= s.track_max_jump
            # Overlap alone vouches only from one frame to the next: after a miss the region must
            # also look like the track (another object may have come in where this one left).
            overlaps = iou >= s.track_min_iou and t.misses == 0
            if near and (sims[i, j] >= s.track_min_similarity or overlaps):
                scores[i, j] = float(sims[i, j]) + s.track_iou_weight * iou
    return scores


def assign(scores: np.ndarray) -> list[tuple[int, int]]:
    """The (track, region) pairs of the highest-scoring one-to-one assignment, forbidden pairs left out."""
    if scores.size == 0:
        return []
    rows, cols = linear_sum_assignment(scores, maximize=True)
    return [(int(i), int(j)) for i, j in zip(rows, cols, strict=True) if scores[i, j] > _FORBIDDEN / 2]


@dataclass
class TrackerUpdate:
    """What one frame did to the tracks."""

    seen: list[Track]  # tracks matched or born in this frame, confirmed or not
    ended: list[Track]  # tracks that ended with this frame (too many misses)


class Tracker:
    """Per-stream tracker. Feed each frame's regions in order."""

    def __init__(self) -> None:
        self.tracks: list[Track] = []

    def update(self, regions: Sequence[Region], *, seq: int, pts: float, ts: float, s: ReidSettings) -> TrackerUpdate:
        pairs = assign(match_scores(self.tracks, regions, s))
        matched_tracks = {i for i, _ in pairs}
        matched_regions = {j for _, j in pairs}
        seen: list[Track] = []
        for i, j in pairs:
            t, r = self.tracks[i], regions[j]
            t.embedding = unit_rows((1 - s.track_ema) * t.embedding + s.track_ema * r.embedding)
            t.move(r.box, seq)
            t.hits += 1
            t.misses = 0
            t.last_seq, t.last_pts, t.last_ts = seq, pts, ts
            t.confirmed = t.confirmed or t.hits >= s.min_hits
            t.observe(r)
            seen.append(t)
        ended: list[Track] = []
        kept: list[Track] = []
        for i, t in enumerate(self.tracks):
            if i not in matched_tracks:
                t.misses += 1
                if t.misses > s.max_misses or t.leaving:
                    ended.append(t)
                    continue
            kept.append(t)
        k = 0
        for j, r in enumerate(regions):
            if j in matched_regions:
                continue
            t = Track(
                track_id=f"{seq}.{k}",
                box=r.box,
                embedding=r.embedding.astype(np.float32, copy=True),
                first_seq=seq,
                first_pts=pts,
                first_ts=ts,
                last_seq=seq,
                last_pts=pts,
                last_ts=ts,
                confirmed=s.min_hits <= 1,
            )
            t.observe(r)
            k += 1
            kept.append(t)
            seen.append(t)
        self.tracks = kept
        return TrackerUpdate(seen=seen, ended=ended)

    def priors(self, seq: int) -> list[Box]:
        """Where the confirmed tracks seen in the last frame should be at `seq`: what
        `BackgroundModel.observe` cuts a component between when objects touch or cross."""
        return [t.predicted_box(seq) for t in self.tracks if t.confirmed and t.misses == 0]

    def end_all(self) -> list[Track]:
        """The stream ended: every live track ends now."""
        ended, self.tracks = self.tracks, []
        return ended

    def to_state(self) -> dict[str, Any]:
        return {"tracks": [t.to_state() for t in self.tracks]}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Tracker:
        tracker = cls()
        tracker.tracks = [Track.from_state(d) for d in state.get("tracks", [])]
        return tracker
