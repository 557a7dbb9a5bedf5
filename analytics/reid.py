"""Re-identification: tracks within each stream, identities across streams through a gallery.

Per stream, the background model turns each frame's patch grid into regions and the tracker
follows them (the tracks' expected boxes cut a region in two where objects touch or cross): the
processor's `objects` pass (`dinostream.analytics.objects`), which it saves with its state and
other processors (the watchlist) may read, following this processor's settings per stream. A
confirmed track is ready once it has been seen whole `link_min_views` times (or in twice as many
frames if never whole): from then on it is written to the shared `TrackGallery` (its signature,
i.e. the mean embedding of its full views joined with its colours under its camera's white
balance (`ObjectPass.signature`, `ReidSettings.colour_weight`), its last seen time and its
identity) on every frame it is seen, and, until it is linked, searched there first. A track that
is not ready is neither: a glimpse is no reliable appearance to link to, and a track that other
tracks link to has already had its own chance to link (else they would keep an identity it then
drops). The search: the most similar track of another stream, seen within `window_s` and not at
the same time as the searching track (for more than `COEXIST_S`: one object is not in two rooms
at once, so a look-alike crossing another camera meanwhile is no candidate), links it when the
similarity reaches the stream's threshold and beats the best track of any other identity by
`link_margin`. The threshold is calibrated on the camera: the level nearly all similarities
between the signatures of its own different tracks stay under
(`dinostream.analytics.calibration`), never below `link_threshold`, which stands alone until the
camera has seen enough tracks. A linked track takes the identity of the track it matched, and
writes that identity to the gallery, so links chain into one identity across any number of
streams and workers (each worker only sees its streams; the gallery is what they share).

A link is one `reid` event per (stream, track): "open" when it is made, "update" at most every
`update_every_s` with the latest box while the track lasts, "closed" when the track ends. Every
one names the matched track; the "open" one also says when and where it was seen
(`matched_t_start`, `matched_t_end`: media seconds on its stream; `matched_box`) and the
threshold it cleared, so whoever reads a link can check it against the other camera's video.

    >>> reid = ReidProcessor(ReidSettings(), MemoryTrackGallery())
    >>> for rec in records:                     # every stream, each in its own order
    ...     for event in reid.process(rec):
    ...         print(event.stream, event.details["identity"], event.details["matched_stream"])
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from dinostream.analytics.gallery import GalleryHit, TrackEntry, TrackGallery
from dinostream.analytics.objects import ObjectPass
from dinostream.analytics.processor import Processor
from dinostream.analytics.tracking import Track
from dinostream.core.records import Box, Event, FrameEmbedding, event_id
from dinostream.core.settings import ReidSettings

_PRUNE_EVERY = 100  # frames of a stream between two prunes of the gallery
# Wall-clock seconds two tracks of different streams may be seen at the same time and still be one
# object: the hand-over where two cameras' views meet.
COEXIST_S = 2.0
# 3: the shared pass also holds the camera's non-matching similarities (calibration); 2: the
# background and tracks under "objects" (the shared pass); 1 had them at the top level.
_STATE_VERSION = 3


@dataclass
class _Stream:
    frames: int = 0
    ended: bool = False  # flushed, and no frame since: its tracks' closings were sent


def identity_of(stream: str, track: Track) -> str:
    """The identity a track belongs to: the one it was linked to, else its own."""
    return str(track.extra.get("identity", f"{stream}/{track.track_id}"))


def ready(track: Track, s: ReidSettings) -> bool:
    """Seen enough to link and to be linked to: confirmed, and `link_min_views` full views (or
    twice as many frames, for an object that is never seen whole: its colours are those of a
    whole view, and they count in a link as much as its appearance)."""
    return track.confirmed and (track.full_views >= s.link_min_views or track.hits >= 2 * s.link_min_views)


def best_link(hits: list[GalleryHit], threshold: float, margin: float) -> GalleryHit | None:
    """The hit to link to: the most similar, if it reaches `threshold` and beats the most similar
    hit of any other identity by `margin`; None otherwise."""
    if not hits:
        return None
    best = max(hits, key=lambda h: h.score)
    if best.score < threshold:
        return None
    rivals = [h.score for h in hits if h.identity != best.identity]
    if rivals and best.score - max(rivals) < margin:
        return None
    return best


def coexisted(hit: GalleryHit, track: Track, now: float) -> bool:
    """The hit's track and `track` were seen at the same wall-clock time for more than
    `COEXIST_S` (an entry that does not say when it started never did)."""
    if hit.ts_start is None:
        return False
    return min(hit.ts, now) - max(hit.ts_start, track.first_ts) > COEXIST_S


def _seen(hit: GalleryHit) -> dict[str, Any]:
    """When and where the matched track was seen, as far as its gallery entry says."""
    out: dict[str, Any] = {"matched_t_end": hit.t}
    if hit.t_start is not None:
        out["matched_t_start"] = hit.t_start
    if hit.box is not None:
        out["matched_box"] = [round(v, 4) for v in hit.box]
    return out


class ReidProcessor(Processor[ReidSettings]):
    """Regions, tracks and cross-stream identities. The gallery is shared with other workers."""

    name = "reid"

    def __init__(self, settings: ReidSettings, gallery: TrackGallery, *, search_limit: int = 10) -> None:
        super().__init__(settings)
        self.gallery = gallery
        self.search_limit = search_limit
        self.objects = ObjectPass(self.settings_for)  # regions and tracks; saved with this processor's state
        self.passes = (self.objects,)
        self._streams: dict[str, _Stream] = {}

    def tracks(self, stream: str) -> list[Track]:
        """The stream's live tracks, confirmed or not (read-only: the objects pass owns them)."""
        return self.objects.tracks(stream)

    def process(self, record: FrameEmbedding) -> list[Event]:
        s = self.settings_for(record.stream)
        st = self._streams.setdefault(record.stream, _Stream())
        st.frames += 1
        st.ended = False
        frame = self.objects.observe(record)
        events: list[Event] = []
        for track in frame.seen:
            if not ready(track, s):
                continue
            link = track.extra.get("link")
            sig = self.objects.signature(record.stream, track)  # appearance and colours: what links compare
            if link is None:
                hits = self.gallery.search(
                    sig,
                    exclude_stream=record.stream,
                    since_ts=record.ts - s.window_s,
                    limit=self.search_limit,
                )
                hits = [h for h in hits if not coexisted(h, track, record.ts)]
                threshold = self.objects.link_threshold(s.link_threshold)
                hit = best_link(hits, threshold, s.link_margin)
                if hit is not None:
                    track.extra["identity"] = hit.identity
                    track.extra["link"] = {
                        "matched_stream": hit.stream,
                        "matched_track": hit.track_id,
                        "similarity": round(hit.score, 4),
                    }
                    track.extra["matched"] = {"threshold": round(threshold, 4), **_seen(hit)}
                    track.extra["sent_pts"] = record.pts
                    events.append(self._event(record.stream, track, record.ts, "open", record.model))
            elif record.pts - float(track.extra.get("sent_pts", 0.0)) >= s.update_every_s:
                track.extra["sent_pts"] = record.pts
                events.append(self._event(record.stream, track, record.ts, "update", record.model))
            self.gallery.add(
                TrackEntry(
                    stream=record.stream,
                    track_id=track.track_id,
                    identity=identity_of(record.stream, track),
                    embedding=sig,
                    t=record.pts,
                    ts=record.ts,
                    t_start=track.first_pts,
                    box=(track.box.x0, track.box.y0, track.box.x1, track.box.y1),
                    ts_start=track.first_ts,
                )
            )
        for track in frame.ended:
            if "link" in track.extra:
                events.append(self._event(record.stream, track, record.ts, "closed", record.model))
        if st.frames % _PRUNE_EVERY == 0:
            self.gallery.prune(record.ts - s.window_s)  # nobody searches that far back: keep the gallery small
        return events

    def flush(self, stream: str) -> list[Event]:
        st = self._streams.get(stream)
        if st is None or st.ended:
            return []
        st.ended = True
        return [self._event(stream, t, t.last_ts, "closed", "") for t in self.objects.end(stream) if "link" in t.extra]

    def _event(self, stream: str, track: Track, ts: float, status: str, model: str) -> Event:
        link = track.extra["link"]
        identity = identity_of(stream, track)
        box = track.box
        details: dict[str, Any] = {"identity": identity, "track": track.track_id, **link}
        if status == "open":  # what the link was made on: the threshold, when and where the match was seen
            details.update(track.extra.get("matched", {}))
        if model:
            details["model"] = model
        return Event(
            id=event_id(stream, self.name, f"track-{track.track_id}"),
            type="reid",
            stream=stream,
            t=track.last_pts,
            t_start=track.first_pts,
            t_end=track.last_pts,
            ts=ts,
            score=float(link["similarity"]),
            frames=(track.first_seq, track.last_seq),
            details=details,
            status=status,
            boxes=(Box(box.x0, box.y0, box.x1, box.y1, score=float(link["similarity"]), label=identity),),
        )

    def snapshot(self, stream: str) -> dict[str, Any]:
        st = self._streams.get(stream)
        if st is None:
            return {}
        return {"version": _STATE_VERSION, "objects": self.objects.snapshot(stream), "frames": st.frames}

    def restore(self, stream: str, state: dict[str, Any]) -> None:
        if not state:
            self._streams.pop(stream, None)
            self.objects.restore(stream, {})
            return
        if state.get("version", 1) == 1:  # saved before the pass was shared: its fields at the top
            objects = {"background": state["background"], "tracker": state["tracker"]}
        else:
            objects = state["objects"]
        self.objects.restore(stream, objects)
        self._streams[stream] = _Stream(frames=int(state.get("frames", 0)))
