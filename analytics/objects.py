"""Objects in view, per stream: each frame's regions and tracks, computed once and read by every
processor that needs them (re-identification, watchlists), as PySceneDetect's `StatsManager`
holds the frame metrics its detectors share.

Per stream, the background model turns the frame's patch grid into regions
(`dinostream.analytics.regions`) and the tracker follows them (`dinostream.analytics.tracking`).
The result of a frame is kept until the next one, so whoever asks first computes it and every
other reader of that frame gets the same: the host of the processors (`ProcessorSet`) asks
before it calls them, and a processor run on its own asks itself.

    >>> objects = ObjectPass(lambda stream: ReidSettings())
    >>> frame = objects.observe(record)          # the same FrameObjects for every reader
    >>> [t.track_id for t in frame.seen if t.confirmed]

The pass also keeps each track's colours and each camera's reference colour from the frames'
thumbnails (`dinostream.analytics.track_colour`; one thumbnail decode for a frame with a track in
it): `signature` is what a link compares, the track's appearance with its colours under
its camera's white balance (`ReidSettings.colour_weight`).

The pass belongs to one processor, which saves its state (`snapshot`, `restore`) with its own;
the others read it. Each stream also keeps how alike its different tracks looked, by appearance
and by signature (`non_matches`, see `dinostream.analytics.calibration`): from these the pass
tells the threshold a watchlist match (`threshold`) or a link (`link_threshold`) has to clear.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from dinostream.analytics.calibration import NonMatches, non_match_level
from dinostream.analytics.regions import BackgroundModel, Region
from dinostream.analytics.track_colour import (
    CameraColour,
    add_view,
    box_samples,
    colour_histogram,
    signature,
    thumbnail_rgb,
)
from dinostream.analytics.tracking import Track, Tracker, seen_well
from dinostream.core.records import FrameEmbedding
from dinostream.core.settings import ReidSettings


@dataclass(frozen=True, eq=False)
class FrameObjects:
    """What one frame of one stream holds: its regions and what they did to the tracks."""

    seq: int
    regions: list[Region]
    seen: list[Track]  # tracks matched or born in this frame, confirmed or not
    ended: list[Track]  # tracks that ended with this frame


@dataclass
class _Stream:
    background: BackgroundModel = field(default_factory=BackgroundModel.empty)
    tracker: Tracker = field(default_factory=Tracker)
    non_matches: NonMatches = field(default_factory=NonMatches)  # its tracks' similarities to each other
    link_non_matches: NonMatches = field(default_factory=NonMatches)  # ... of their signatures
    camera: CameraColour = field(default_factory=CameraColour)  # the camera's reference colour
    last: FrameObjects | None = None  # the latest frame's result, for its other readers
    ended: list[Track] | None = None  # the tracks the end of the stream ended, for its other readers


class ObjectPass:
    """Regions and tracks of every stream, one computation per frame whoever reads it.

    `settings_for(stream)` gives the settings in force for a stream (its region and tracking
    fields are read); the processor that owns the pass passes its own `settings_for`."""

    def __init__(self, settings_for: Callable[[str], ReidSettings]) -> None:
        self._settings_for = settings_for
        self._streams: dict[str, _Stream] = {}
        self._levels: dict[bool, tuple[int, float | None]] = {}  # link?: (changes, level) of the non-matches
        self._changes = 0

    def observe(self, record: FrameEmbedding) -> FrameObjects:
        """The regions and tracks of `record` (frames of a stream in order): computed on the first
        call for its frame, the same object for every later call until the stream's next frame."""
        st = self._streams.get(record.stream)
        if st is None:  # (not setdefault: that would build a stream's state on every frame)
            st = self._streams[record.stream] = _Stream()
        if st.last is not None and st.last.seq == record.seq:
            return st.last
        s = self._settings_for(record.stream)
        priors = st.tracker.priors(record.seq)
        regions, _ = st.background.observe(record.patches, s, priors, unit=record.unit_patches)
        update = st.tracker.update(regions, seq=record.seq, pts=record.pts, ts=record.ts, s=s)
        if s.colour_weight > 0:
            self._observe_colours(st, update.seen, record.thumbnail)
        self._calibrate(st, update.ended, s)
        st.last = FrameObjects(record.seq, regions, update.seen, update.ended)
        st.ended = None
        return st.last

    def end(self, stream: str) -> list[Track]:
        """The stream ended: its live tracks end now. Every reader of this end gets the same
        tracks (until the stream's next frame); an unknown stream has none."""
        st = self._streams.get(stream)
        if st is None:
            return []
        if st.ended is None:
            st.ended = st.tracker.end_all()
            self._calibrate(st, st.ended, self._settings_for(stream))
        return st.ended

    @staticmethod
    def _observe_colours(st: _Stream, seen: list[Track], thumbnail: bytes) -> None:
        """The pixels inside the boxes of the tracks seen in this frame, into their colours (one
        thumbnail decode per frame with a track in it)."""
        if not seen:
            return
        image = thumbnail_rgb(thumbnail)
        if image is None:
            return
        for track in seen:
            track.colours = add_view(track.colours, box_samples(image, track.box))

    def signature(self, stream: str, track: Track) -> np.ndarray:
        """What a link compares (`dinostream.analytics.track_colour.signature`): the track's
        appearance and its colours under the camera's reference, weighted by `colour_weight`."""
        return _signature(self._streams.get(stream), track, self._settings_for(stream))

    def _calibrate(self, st: _Stream, ended: list[Track], s: ReidSettings) -> None:
        for track in ended:
            if track.confirmed and track.colours is not None:
                st.camera.add(track.colours)  # each object once into the camera's reference
            if seen_well(track, s):
                st.non_matches.add(track.appearance)
                st.link_non_matches.add(_signature(st, track, s))
                self._changes += 1

    def non_matches(self, stream: str) -> NonMatches:
        """How alike the stream's different tracks looked (empty for an unknown stream)."""
        st = self._streams.get(stream)
        return st.non_matches if st else NonMatches()

    def threshold(self, floor: float) -> float:
        """The appearance similarity a watchlist match needs on these streams: above nearly all
        similarities between different tracks of each of them, never below `floor` (see
        `dinostream.analytics.calibration`)."""
        return self._threshold(floor, link=False)

    def link_threshold(self, floor: float) -> float:
        """The same for the signature similarity a link needs."""
        return self._threshold(floor, link=True)

    def _threshold(self, floor: float, *, link: bool) -> float:
        cached = self._levels.get(link)
        if cached is None or cached[0] != self._changes:  # computed again only when a sample grew
            levels = [
                v
                for st in self._streams.values()
                if (v := non_match_level([st.link_non_matches if link else st.non_matches])) is not None
            ]
            cached = self._levels[link] = (self._changes, max(levels) if levels else None)
        level = cached[1]
        return floor if level is None else max(floor, level)

    def tracks(self, stream: str) -> list[Track]:
        """The stream's live tracks, confirmed or not (read-only: the pass owns them)."""
        st = self._streams.get(stream)
        return list(st.tracker.tracks) if st else []

    def has(self, stream: str) -> bool:
        return stream in self._streams

    def snapshot(self, stream: str) -> dict[str, Any]:
        """JSON-ready state of one stream ({} when it has none): the background and the tracks."""
        st = self._streams.get(stream)
        if st is None:
            return {}
        return {
            "background": st.background.to_state(),
            "tracker": st.tracker.to_state(),
            "non_matches": st.non_matches.to_state(),
            "link_non_matches": st.link_non_matches.to_state(),
            "camera": st.camera.to_state(),
        }

    def restore(self, stream: str, state: dict[str, Any]) -> None:
        """Load what `snapshot` saved (the same two fields re-identification and the watchlist
        saved in their own state before the pass was shared, and since then the non-matching
        similarities and the camera's colour); an empty dict resets the stream."""
        self._changes += 1
        if not state:
            self._streams.pop(stream, None)
            return
        self._streams[stream] = _Stream(
            background=BackgroundModel.from_state(state["background"]),
            tracker=Tracker.from_state(state["tracker"]),
            non_matches=NonMatches.from_state(state.get("non_matches")),
            link_non_matches=NonMatches.from_state(state.get("link_non_matches")),
            camera=CameraColour.from_state(state.get("camera")),
        )


def _signature(st: _Stream | None, track: Track, s: ReidSettings) -> np.ndarray:
    weight = s.colour_weight
    colours = None if st is None or weight <= 0 else colour_histogram(track.colours, st.camera.reference)
    return signature(track.appearance, colours, weight)
