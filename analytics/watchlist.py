"""Watchlists: query by example. Register what to look for; a match on any stream raises an event.

An exemplar is a unit vector of the kind a track's appearance is (`dinostream.analytics.exemplars`):
made from a box drawn on a frame (`exemplar_from_patches`), an uploaded crop seen as the frames
it was cut from see it (`CropExemplar`), or a click on a frame (`click_to_segment`: the patches
similar to the clicked one, the connected part containing the click, as in zero-shot
click-to-segment).

Matching reads the regions and tracks of an `ObjectPass` (`dinostream.analytics.objects`): in a
deployment the one re-identification computes and saves (`objects=reid.objects`: one pass per
frame for both, following the reid settings of each stream), else one of its own, following
its own settings, saved with its state. A confirmed track whose appearance (the mean
of its region embeddings, which is far steadier than one frame's) reaches the stream's
threshold against an exemplar is a match, and the track's box goes into the event. The
threshold is calibrated on the camera, as re-identification's is: above nearly all the
similarities between its own different tracks (`dinostream.analytics.calibration`), never below
`watch_threshold`. Something that has not moved since the camera started is part of the
background and is not looked at.

One occurrence per (stream, exemplar) is one event: "open" at the first match, "update" with the
latest box at most every `update_every_s` while it keeps matching, "closed" after
`watch_max_misses` frames without a match. A new occurrence of the same exemplar on the same
stream waits `watch_cooldown_s` after the previous one closed.

    >>> seg = click_to_segment(rec.patches, (0.4, 0.6), threshold=0.6, centering=s.feature_centering)
    >>> wl = Watchlist([Exemplar("suitcase-7", "red suitcase", seg.vector)])
    >>> proc = WatchlistProcessor(s, wl)       # s: ReidSettings
    >>> events = proc.process(next_rec)       # every stream, each in its own order
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from dinostream.analytics.exemplars import (
    CropExemplar,
    Segment,
    click_to_segment,
    exemplar_from_image_embedding,
    exemplar_from_patches,
)
from dinostream.analytics.objects import ObjectPass
from dinostream.analytics.processor import Processor
from dinostream.analytics.regions import unit_rows
from dinostream.analytics.tracking import Track
from dinostream.core.records import Box, Event, FrameEmbedding, event_id
from dinostream.core.settings import ReidSettings

# The ways to make an exemplar, where callers have always found them.
__all__ = [
    "CropExemplar",
    "Exemplar",
    "Match",
    "Segment",
    "Watchlist",
    "WatchlistProcessor",
    "click_to_segment",
    "exemplar_from_image_embedding",
    "exemplar_from_patches",
    "find_matches",
]

# 3: the pass's state (when the watchlist has its own) also holds the camera's non-matching
# similarities; 2: the background and tracks under "objects" (none when it reads another
# processor's pass); 1 had its own at the top level.
_STATE_VERSION = 3


@dataclass(frozen=True, eq=False)
class Exemplar:
    """Something to look for: an id (the key of its events), a label people read, a unit vector."""

    id: str
    label: str
    vector: np.ndarray

    def __post_init__(self) -> None:
        v = np.asarray(self.vector, dtype=np.float32).ravel()
        if v.size == 0 or not np.isfinite(v).all() or not np.linalg.norm(v) > 0:
            raise ValueError(f"exemplar {self.id!r} needs a finite, non-zero vector")
        if not self.id or len(self.id) > 128:
            raise ValueError(f"exemplar id must be 1-128 characters, got {self.id!r}")
        object.__setattr__(self, "vector", unit_rows(v))

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "label": self.label, "vector": self.vector.tolist()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Exemplar:
        return cls(str(d["id"]), str(d.get("label", "")), np.asarray(d["vector"], dtype=np.float32))


class Watchlist:
    """The exemplars every stream is compared with. Adding an id again replaces it."""

    def __init__(self, exemplars: list[Exemplar] | None = None) -> None:
        self._items: dict[str, Exemplar] = {}
        for e in exemplars or []:
            self.add(e)

    def add(self, exemplar: Exemplar) -> None:
        dims = {e.vector.shape[0] for e in self._items.values() if e.id != exemplar.id}
        if dims and exemplar.vector.shape[0] not in dims:
            raise ValueError(f"exemplar {exemplar.id!r} has dim {exemplar.vector.shape[0]}, the watchlist {dims.pop()}")
        self._items[exemplar.id] = exemplar

    def remove(self, exemplar_id: str) -> bool:
        return self._items.pop(exemplar_id, None) is not None

    def __iter__(self) -> Iterator[Exemplar]:
        return iter(list(self._items.values()))

    def __len__(self) -> int:
        return len(self._items)

    def to_state(self) -> list[dict[str, Any]]:
        return [e.to_dict() for e in self._items.values()]

    @classmethod
    def from_state(cls, state: list[dict[str, Any]]) -> Watchlist:
        return cls([Exemplar.from_dict(d) for d in state])


@dataclass(frozen=True)
class Match:
    exemplar: str
    track_id: str
    box: Box  # the track's latest box, labelled with the exemplar's label
    score: float  # cosine similarity of the track's appearance to the exemplar


def find_matches(tracks: list[Track], exemplars: list[Exemplar], threshold: float) -> list[Match]:
    """Each track goes to the exemplar it is most similar to (a track is one thing); each exemplar
    then takes the most similar of its tracks, if that reaches `threshold`."""
    usable = [ex for ex in exemplars if tracks and ex.vector.shape[0] == tracks[0].appearance.shape[0]]
    if not tracks or not usable:
        return []  # (an exemplar registered with another model never matches)
    scores = np.stack([t.appearance for t in tracks]) @ np.stack([ex.vector for ex in usable]).T
    owner = np.argmax(scores, axis=1)
    out = []
    for j, ex in enumerate(usable):
        mine = np.flatnonzero(owner == j)
        if mine.size == 0:
            continue
        i = int(mine[np.argmax(scores[mine, j])])
        if scores[i, j] >= threshold:
            b = tracks[i].box
            box = Box(b.x0, b.y0, b.x1, b.y1, score=float(scores[i, j]), label=ex.label)
            out.append(Match(ex.id, tracks[i].track_id, box, float(scores[i, j])))
    return out


@dataclass
class _Occurrence:
    event: str
    first_seq: int
    first_pts: float
    last_seq: int
    last_pts: float
    box: Box
    score: float  # best score so far
    sent_pts: float
    last_ts: float
    track_id: str
    misses: int = 0

    def to_state(self) -> dict[str, Any]:
        return {**self.__dict__, "box": self.box.to_dict()}

    @classmethod
    def from_state(cls, d: dict[str, Any]) -> _Occurrence:
        return cls(**{**d, "box": Box(**d["box"])})


@dataclass
class _Stream:
    open: dict[str, _Occurrence] = field(default_factory=dict)  # by exemplar id
    closed_at: dict[str, float] = field(default_factory=dict)  # exemplar id -> media time its last occurrence closed


class WatchlistProcessor(Processor[ReidSettings]):
    """Watchlist matches on every stream. The watchlist may change between frames."""

    name = "watchlist"

    def __init__(self, settings: ReidSettings, watchlist: Watchlist, *, objects: ObjectPass | None = None) -> None:
        """`objects`: the regions and tracks another processor computes and saves (a
        `ReidProcessor`'s `objects`); by default a pass of its own, saved with its state. With
        another's pass, this processor's region and tracking settings are not the ones used."""
        super().__init__(settings)
        self.watchlist = watchlist
        self._own_objects = objects is None
        self.objects = ObjectPass(self.settings_for) if objects is None else objects
        self.passes = (self.objects,)
        self._streams: dict[str, _Stream] = {}

    def process(self, record: FrameEmbedding) -> list[Event]:
        s = self.settings_for(record.stream)
        st = self._streams.setdefault(record.stream, _Stream())
        exemplars = {e.id: e for e in self.watchlist}
        confirmed = [t for t in self.objects.observe(record).seen if t.confirmed]
        threshold = self.objects.threshold(s.watch_threshold)
        matches = {m.exemplar: m for m in find_matches(confirmed, list(exemplars.values()), threshold)}
        events: list[Event] = []
        for ex_id, current in list(st.open.items()):
            if ex_id in matches:
                continue
            current.misses += 1
            if current.misses > s.watch_max_misses or ex_id not in exemplars:
                del st.open[ex_id]
                st.closed_at[ex_id] = current.last_pts
                events.append(self._event(record, ex_id, current, "closed"))
        for ex_id in [k for k in st.closed_at if k not in exemplars]:
            del st.closed_at[ex_id]  # removed from the watchlist: nothing to cool down
        for ex_id, m in matches.items():
            existing = st.open.get(ex_id)
            if existing is None:
                closed = st.closed_at.get(ex_id)
                if closed is not None and record.pts - closed < s.watch_cooldown_s:
                    continue
                occ = _Occurrence(
                    event=event_id(record.stream, self.name, f"{ex_id}/{record.seq}"),
                    first_seq=record.seq,
                    first_pts=record.pts,
                    last_seq=record.seq,
                    last_pts=record.pts,
                    box=m.box,
                    score=m.score,
                    sent_pts=record.pts,
                    last_ts=record.ts,
                    track_id=m.track_id,
                )
                st.open[ex_id] = occ
                events.append(self._event(record, ex_id, occ, "open"))
                continue
            occ = existing
            occ.last_seq, occ.last_pts, occ.last_ts, occ.box, occ.misses = record.seq, record.pts, record.ts, m.box, 0
            occ.track_id = m.track_id
            occ.score = max(occ.score, m.score)
            if record.pts - occ.sent_pts >= s.update_every_s:
                occ.sent_pts = record.pts
                events.append(self._event(record, ex_id, occ, "update"))
        return events

    def flush(self, stream: str) -> list[Event]:
        st = self._streams.get(stream)
        if st is None:
            return []
        self.objects.end(stream)
        events = [self._closing(stream, ex_id, occ) for ex_id, occ in st.open.items()]
        for ex_id, occ in st.open.items():
            st.closed_at[ex_id] = occ.last_pts
        st.open.clear()
        return events

    def _closing(self, stream: str, ex_id: str, occ: _Occurrence) -> Event:
        return self._make(stream, ex_id, occ, "closed", ts=occ.last_ts, model="")

    def _event(self, record: FrameEmbedding, ex_id: str, occ: _Occurrence, status: str) -> Event:
        return self._make(record.stream, ex_id, occ, status, ts=record.ts, model=record.model)

    def _make(self, stream: str, ex_id: str, occ: _Occurrence, status: str, *, ts: float, model: str) -> Event:
        label = occ.box.label
        details: dict[str, Any] = {
            "exemplar": ex_id,
            "label": label,
            "track": occ.track_id,
            "similarity": round(occ.box.score, 4),
        }
        if model:
            details["model"] = model
        return Event(
            id=occ.event,
            type="watchlist",
            stream=stream,
            t=occ.last_pts,
            t_start=occ.first_pts,
            t_end=occ.last_pts,
            ts=ts,
            score=occ.score,
            frames=(occ.first_seq, occ.last_seq),
            details=details,
            status=status,
            boxes=(occ.box,),
        )

    def snapshot(self, stream: str) -> dict[str, Any]:
        st = self._streams.get(stream)
        if st is None:
            return {}
        state: dict[str, Any] = {
            "version": _STATE_VERSION,
            "open": {k: o.to_state() for k, o in st.open.items()},
            "closed_at": dict(st.closed_at),
        }
        if self._own_objects:
            state["objects"] = self.objects.snapshot(stream)
        return state

    def restore(self, stream: str, state: dict[str, Any]) -> None:
        if not state:
            self._streams.pop(stream, None)
            if self._own_objects:
                self.objects.restore(stream, {})
            return
        if state.get("version", 1) == 1:  # saved before the pass was shared: its own at the top
            objects = {"background": state["background"], "tracker": state["tracker"]}
            # Another processor's pass is restored by that processor; this copy only stands in
            # where it has nothing for the stream (its state was not saved).
            if self._own_objects or not self.objects.has(stream):
                self.objects.restore(stream, objects)
        elif self._own_objects:
            self.objects.restore(stream, state.get("objects") or {})
        self._streams[stream] = _Stream(
            open={k: _Occurrence.from_state(d) for k, d in state.get("open", {}).items()},
            closed_at={k: float(v) for k, v in state.get("closed_at", {}).items()},
        )
