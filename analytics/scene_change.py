"""Scene-change detection: an adaptive threshold over consecutive cosine distances.

A cut is declared when the distance between a frame's global embedding and the previous one
exceeds a robust, per-stream threshold (median + k·MAD of the recent distances within the
shot, never below an absolute floor) and at least `min_shot_s` media seconds have passed
since the last cut. Pure: no I/O; the Faust agent and `dinostream analyze` both call it.

    >>> det = SceneChangeDetector(SceneChangeSettings())
    >>> for rec in records:            # FrameEmbedding, in stream order
    ...     for event in det.process(rec):
    ...         print(event.t, event.score)
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from analytics.processor import Processor
from dinostream.records import Event, FrameEmbedding, event_id
from dinostream.settings import SceneChangeSettings

_MAD_TO_SIGMA = 1.4826  # MAD of a normal distribution times this is its standard deviation
_MIN_SPREAD = 0.005  # floor on the spread so a perfectly static shot does not make noise a cut


def global_vector(record: FrameEmbedding) -> np.ndarray:
    """The frame's global descriptor: unit CLS and unit mean-patch vectors, concatenated and rescaled
    to unit length, so the cosine distance is the mean of the two distances."""
    cls = _unit(record.cls.astype(np.float32))
    pooled = _unit(record.pooled.astype(np.float32))
    return np.concatenate([cls, pooled]) / np.sqrt(2.0)


def _unit(v: np.ndarray) -> np.ndarray:
    n = float(np.linalg.norm(v))
    return v / n if n > 0 else v


@dataclass
class _StreamState:
    prev: np.ndarray | None = None
    prev_seq: int = -1
    prev_pts: float = 0.0
    shot_start: float | None = None  # media time of the current shot's first frame
    distances: deque[float] = field(default_factory=deque)


class SceneChangeDetector(Processor[SceneChangeSettings]):
    """Per-stream adaptive cut detector. Feed each stream's records in order."""

    name = "scene_change"

    def __init__(self, settings: SceneChangeSettings) -> None:
        super().__init__(settings)
        self._streams: dict[str, _StreamState] = {}

    def threshold(self, distances: deque[float] | list[float], settings: SceneChangeSettings | None = None) -> float:
        """The distance above which the next frame is a cut, given the shot's recent distances."""
        s = settings or self.settings
        if len(distances) < 2:
            return max(s.min_distance, 2 * s.min_distance)
        d = np.fromiter(distances, dtype=np.float64)
        med = float(np.median(d))
        spread = max(_MAD_TO_SIGMA * float(np.median(np.abs(d - med))), _MIN_SPREAD)
        return max(s.min_distance, med + s.sensitivity * spread)

    def process(self, record: FrameEmbedding) -> list[Event]:
        st = self._streams.setdefault(record.stream, _StreamState(distances=deque(maxlen=self.settings.window)))
        s = self.settings_for(record.stream)
        v = global_vector(record)
        events: list[Event] = []
        if st.prev is None:
            st.shot_start = record.pts
        else:
            dist = float(1.0 - np.dot(v, st.prev))
            thr = self.threshold(st.distances, s)
            long_enough = st.shot_start is None or record.pts - st.shot_start >= s.min_shot_s
            if dist > thr and long_enough:
                events.append(
                    Event(
                        id=event_id(record.stream, self.name, record.seq),
                        type="scene_change",
                        stream=record.stream,
                        t=record.pts,
                        t_start=st.prev_pts,
                        t_end=record.pts,
                        ts=record.ts,
                        score=dist,
                        frames=(st.prev_seq, record.seq),
                        details={"distance": dist, "threshold": thr, "model": record.model},
                    )
                )
                st.shot_start = record.pts
                st.distances.clear()  # the new shot builds its own statistics
            else:
                st.distances.append(dist)
        st.prev, st.prev_seq, st.prev_pts = v, record.seq, record.pts
        return events

    def snapshot(self, stream: str) -> dict[str, Any]:
        st = self._streams.get(stream)
        if st is None:
            return {}
        return {
            "prev": None if st.prev is None else st.prev.tolist(),
            "prev_seq": st.prev_seq,
            "prev_pts": st.prev_pts,
            "shot_start": st.shot_start,
            "distances": list(st.distances),
        }

    def restore(self, stream: str, state: dict[str, Any]) -> None:
        if not state:
            self._streams.pop(stream, None)
            return
        self._streams[stream] = _StreamState(
            prev=None if state["prev"] is None else np.asarray(state["prev"], dtype=np.float32),
            prev_seq=int(state["prev_seq"]),
            prev_pts=float(state["prev_pts"]),
            shot_start=state["shot_start"],
            distances=deque(state["distances"], maxlen=self.settings.window),
        )
