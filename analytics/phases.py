"""Phases: online segmentation of a long stream into phases, with recurring phases labelled alike.

Change points: for every frame, the cosine distance between the mean global embedding of the
last `window` frames and of the `window` frames before them. Inside a phase that distance is
noise; at a change it rises to a peak where the split sits on the boundary. A change is found
at the peak when it exceeds both `min_distance` and the phase's usual distance by `sensitivity`
robust σ. What follows it becomes a phase only once it has lasted `min_phase_s`: a shorter blip
(someone walking through the view) ends with a change back and its frames stay with the phase
around it. Phases are reported `min_phase_s` plus about `window` frames late, but each boundary
is placed where the change happened.

Labels: a new phase takes the label of the nearest phase cluster (the mean of the phases that
had that label) when the mean of its first frames is closer to it than what counted as a change
(times `revisit_factor`), else a new label; when it ends its frames join its cluster. So a phase
that comes back (a surgical step repeated) gets the label it had before, on the same scale of
distances the change points use, whatever the model.

A phase is one `phase` event: "open" once its first frames are seen, "update" every
`update_every_s`, "closed" at the next change (or the end of the stream).

    >>> seg = PhaseSegmenter(PhaseSettings())
    >>> for rec in records:
    ...     for event in seg.process(rec):
    ...         print(event.status, event.t_start, event.details["phase_label"])
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from dinostream.analytics.median import median
from dinostream.analytics.processor import Processor
from dinostream.analytics.regions import unit_rows
from dinostream.analytics.scene_change import global_vector
from dinostream.analytics.state_codec import decode_array, encode_array
from dinostream.core.records import Event, FrameEmbedding, event_id
from dinostream.core.settings import PhaseSettings

_MAD_TO_SIGMA = 1.4826
_MIN_SPREAD = 0.005
_SCORES_KEPT = 64


@dataclass
class _Frame:
    vector: np.ndarray
    seq: int
    pts: float
    ts: float


@dataclass
class _Phase:
    start_seq: int
    start_pts: float
    last_seq: int
    last_pts: float
    total: np.ndarray  # sum of the phase's global vectors
    count: int
    cluster: int = -1  # -1 until the phase is opened
    similarity: float = 1.0  # to the cluster it took its label from, at opening
    boundary: float = 0.0  # the change distance that started it (0 for a stream's first phase)
    sent_pts: float = 0.0
    prev_seq: int = -1  # the frame before it (where the phase it follows ends)
    prev_pts: float = 0.0
    revisit: float = 0.0  # distance within which it takes an earlier phase's label

    @property
    def mean(self) -> np.ndarray:
        return unit_rows(self.total / max(self.count, 1))

    def add(self, f: _Frame) -> None:
        self.total = self.total + f.vector
        self.count += 1
        self.last_seq, self.last_pts = f.seq, f.pts

    def to_state(self) -> dict[str, Any]:
        return {**self.__dict__, "total": encode_array(self.total, "<f8")}

    @classmethod
    def from_state(cls, d: dict[str, Any]) -> _Phase:
        return cls(**{**d, "total": _vector(d["total"])})


@dataclass
class _Stream:
    frames: deque[_Frame] = field(default_factory=deque)  # the last 2·window frames, oldest first
    phase: _Phase | None = None  # the open phase
    pending: _Phase | None = None  # a change found but not yet min_phase_s long (its frames are in both)
    scores: deque[float] = field(default_factory=lambda: deque(maxlen=_SCORES_KEPT))
    peak: tuple[float, int] | None = None  # (distance, seq of the first frame after the split)
    falling: int = 0  # frames since the peak
    clusters: list[tuple[np.ndarray, int]] = field(default_factory=list)  # (mean vector, frames), per label


def window_distance(vectors: list[np.ndarray], window: int) -> float:
    """Cosine distance between the means of the first and the last `window` of 2·window vectors."""
    a = unit_rows(np.mean(vectors[:window], axis=0))
    b = unit_rows(np.mean(vectors[window:], axis=0))
    return float(1.0 - a @ b)


def change_threshold(scores: deque[float] | list[float], s: PhaseSettings) -> float:
    """The distance a change must exceed, given the current phase's usual distances."""
    if len(scores) < 2:
        return s.min_distance
    d = np.fromiter(scores, dtype=np.float64)
    med = median(d)
    spread = max(_MAD_TO_SIGMA * median(np.abs(d - med)), _MIN_SPREAD)
    return max(s.min_distance, med + s.sensitivity * spread)


def nearest_cluster(clusters: list[tuple[np.ndarray, int]], vector: np.ndarray) -> tuple[int, float]:
    """Index and similarity of the most similar cluster with frames in it; (-1, -inf) if none."""
    best, best_sim = -1, -np.inf
    for k, (mean, count) in enumerate(clusters):
        if count == 0:
            continue
        sim = float(unit_rows(mean) @ vector)
        if sim > best_sim:
            best, best_sim = k, sim
    return best, best_sim


def phase_label(cluster: int) -> str:
    return f"P{cluster + 1}"


class PhaseSegmenter(Processor[PhaseSettings]):
    """Per-stream online phase segmentation and labelling."""

    name = "phase"

    def __init__(self, settings: PhaseSettings) -> None:
        super().__init__(settings)
        self._streams: dict[str, _Stream] = {}

    def process(self, record: FrameEmbedding) -> list[Event]:
        s = self.settings_for(record.stream)
        st = self._streams.setdefault(record.stream, _Stream())
        frame = _Frame(global_vector(record), record.seq, record.pts, record.ts)
        events: list[Event] = []
        st.frames.append(frame)
        while len(st.frames) > 2 * s.window:
            st.frames.popleft()
        if st.phase is None:
            st.phase = _Phase(frame.seq, frame.pts, frame.seq, frame.pts, frame.vector.copy(), 1)
        else:
            st.phase.add(frame)
        if st.pending is not None:
            st.pending.add(frame)
        if st.phase.cluster < 0 and st.phase.count >= s.window:
            self._open(st, st.phase, s.revisit_factor * change_threshold(st.scores, s), s.max_clusters)
            events.append(self._event(record.stream, st.phase, "open", record.ts, record.model))
        elif len(st.frames) == 2 * s.window:
            self._detect(st, s)
        pending = st.pending
        if pending is not None and pending.last_pts - pending.start_pts >= s.min_phase_s:
            events.extend(self._confirm(record, st))
        phase = st.phase
        if phase.cluster >= 0 and not events and record.pts - phase.sent_pts >= s.update_every_s:
            phase.sent_pts = record.pts
            events.append(self._event(record.stream, phase, "update", record.ts, record.model))
        return events

    def _detect(self, st: _Stream, s: PhaseSettings) -> None:
        """Follow the window distance; at a confirmed peak, split there."""
        frames = list(st.frames)
        split = frames[s.window]
        d = window_distance([f.vector for f in frames], s.window)
        assert st.phase is not None
        # A change inside a pending one is always looked at: it may be the way back (a blip).
        long_enough = st.pending is not None or split.pts - st.phase.start_pts >= s.min_phase_s
        if st.peak is None:
            if d <= change_threshold(st.scores, s):
                st.scores.append(d)  # the phase's usual distance
            elif long_enough and st.phase.cluster >= 0:
                st.peak, st.falling = (d, split.seq), 0
            return
        if d > st.peak[0]:
            st.peak, st.falling = (d, split.seq), 0
            return
        st.falling += 1
        if st.falling < max(1, s.window // 2) and d > change_threshold(st.scores, s):
            return
        self._split(st, s)

    def _split(self, st: _Stream, s: PhaseSettings) -> None:
        """A change at the peak: what follows becomes the pending phase, unless it looks like the
        open phase again (a blip shorter than min_phase_s is over), in which case nothing changed."""
        assert st.phase is not None and st.peak is not None
        distance, split_seq = st.peak
        after = [f for f in st.frames if f.seq >= split_seq]
        before = [f for f in st.frames if f.seq < split_seq]
        revisit = s.revisit_factor * change_threshold(st.scores, s)
        prev = before[-1] if before else None
        candidate = _Phase(
            start_seq=after[0].seq,
            start_pts=after[0].pts,
            last_seq=after[-1].seq,
            last_pts=after[-1].pts,
            total=np.sum([f.vector for f in after], axis=0),
            count=len(after),
            boundary=distance,
            prev_seq=prev.seq if prev else st.phase.start_seq,
            prev_pts=prev.pts if prev else st.phase.start_pts,
            revisit=revisit,
        )
        open_part = st.phase.total - (st.pending.total if st.pending is not None else 0.0)
        back = 1.0 - float(unit_rows(open_part) @ candidate.mean) <= revisit
        st.pending = None if back else candidate
        st.peak, st.falling = None, 0
        st.frames = deque(after)
        st.scores.clear()

    def _confirm(self, record: FrameEmbedding, st: _Stream) -> list[Event]:
        """The pending phase lasted min_phase_s: close the open phase where it began, open it."""
        assert st.phase is not None and st.pending is not None
        old, new = st.phase, st.pending
        old.total = old.total - new.total
        old.count -= new.count
        old.last_seq, old.last_pts = new.prev_seq, new.prev_pts
        events = [self._event(record.stream, old, "closed", record.ts, record.model)]
        self._join(st, old)
        self._open(st, new, new.revisit, self.settings_for(record.stream).max_clusters)
        st.phase, st.pending = new, None
        events.append(self._event(record.stream, new, "open", record.ts, record.model))
        return events

    def _join(self, st: _Stream, phase: _Phase) -> None:
        mean, count = st.clusters[phase.cluster]
        st.clusters[phase.cluster] = ((mean * count + phase.total) / (count + phase.count), count + phase.count)

    def _open(self, st: _Stream, phase: _Phase, revisit: float, max_clusters: int) -> None:
        """Label the phase: the nearest cluster within `revisit` (cosine distance), else a new one
        (or the nearest anyway once the stream has `max_clusters` labels)."""
        k, sim = nearest_cluster(st.clusters, phase.mean)
        if k < 0 or (1.0 - sim > revisit and len(st.clusters) < max_clusters):
            st.clusters.append((np.zeros_like(phase.total), 0))
            k, sim = len(st.clusters) - 1, 1.0
        phase.cluster, phase.similarity, phase.sent_pts = k, sim, phase.last_pts

    def flush(self, stream: str) -> list[Event]:
        """Close the open phase; a change not yet min_phase_s long stays part of it."""
        st = self._streams.get(stream)
        if st is None or st.phase is None:
            return []
        phase = st.phase
        if phase.cluster < 0:
            s = self.settings_for(stream)
            self._open(st, phase, s.revisit_factor * change_threshold(st.scores, s), s.max_clusters)
        self._join(st, phase)
        last_ts = st.frames[-1].ts if st.frames else 0.0
        st.phase, st.pending, st.peak, st.falling = None, None, None, 0
        st.frames.clear()
        st.scores.clear()
        return [self._event(stream, phase, "closed", last_ts, "")]

    def _event(self, stream: str, phase: _Phase, status: str, ts: float, model: str) -> Event:
        details: dict[str, Any] = {
            "phase_label": phase_label(phase.cluster),
            "cluster": phase.cluster,
            "frames": phase.count,
            "boundary_distance": round(phase.boundary, 4),
        }
        if model:
            details["model"] = model
        return Event(
            id=event_id(stream, self.name, f"start-{phase.start_seq}"),
            type="phase",
            stream=stream,
            t=phase.start_pts if status == "open" else phase.last_pts,
            t_start=phase.start_pts,
            t_end=phase.last_pts,
            ts=ts,
            score=float(phase.similarity),
            frames=(phase.start_seq, phase.last_seq),
            details=details,
            status=status,
        )

    def labels(self, stream: str) -> int:
        """How many phase labels the stream has so far."""
        st = self._streams.get(stream)
        return 0 if st is None else len(st.clusters)

    def snapshot(self, stream: str) -> dict[str, Any]:
        st = self._streams.get(stream)
        if st is None:
            return {}
        return {
            "frames": [
                {"vector": encode_array(f.vector, "<f4"), "seq": f.seq, "pts": f.pts, "ts": f.ts} for f in st.frames
            ],
            "phase": None if st.phase is None else st.phase.to_state(),
            "pending": None if st.pending is None else st.pending.to_state(),
            "scores": list(st.scores),
            "peak": None if st.peak is None else list(st.peak),
            "falling": st.falling,
            "clusters": [{"mean": encode_array(m, "<f8"), "count": c} for m, c in st.clusters],
        }

    def restore(self, stream: str, state: dict[str, Any]) -> None:
        if not state:
            self._streams.pop(stream, None)
            return
        peak = state["peak"]
        self._streams[stream] = _Stream(
            frames=deque(
                _Frame(decode_array(f["vector"]), int(f["seq"]), float(f["pts"]), float(f["ts"]))
                for f in state["frames"]
            ),
            phase=None if state["phase"] is None else _Phase.from_state(state["phase"]),
            pending=None if state["pending"] is None else _Phase.from_state(state["pending"]),
            scores=deque(state["scores"], maxlen=_SCORES_KEPT),
            peak=None if peak is None else (float(peak[0]), int(peak[1])),
            falling=int(state["falling"]),
            clusters=[(_vector(c["mean"]), int(c["count"])) for c in state["clusters"]],
        )


def _vector(saved: dict[str, Any] | list[float]) -> np.ndarray:
    """A saved float64 vector: encoded (exact, a few times cheaper to write than a list of floats)
    or, as states before it saved them, a list."""
    return decode_array(saved).astype(np.float64) if isinstance(saved, dict) else np.asarray(saved, dtype=np.float64)
