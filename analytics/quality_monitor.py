"""Camera health: a `quality` event while a stream's picture is blurred, dark or covered.

The analytics worker sees embeddings and each frame's JPEG thumbnail (`FrameEmbedding.thumbnail`,
at most `ModelSettings.thumbnail_size` pixels, 160 by default), never the decoded frame, so the
pixels measured are the thumbnail's (`dinostream.analytics.quality.measure_jpeg`). At that size
a defocus of a few pixels at 1080p does not show; a lens that is out of focus, smeared, fogged,
covered or in the dark does. The thumbnail's own JPEG blockiness and noise are not the camera's,
so only three conditions count here:

- blurred: Laplacian variance under `blur_enter` (and until it is back over `blur_exit`);
- dark: mean brightness under `dark_enter` (until over `dark_exit`);
- covered: RMS contrast under `covered_enter`, a uniform view whatever its brightness (until
  over `covered_exit`).

Each condition has its own hysteresis band, so a value that hovers at a threshold does not flap.
An event opens once some condition has held for `min_duration_s` (a hand passing the lens is no
alert), is re-sent every `update_every_s`, and closes once every condition has been gone for
`clear_s`; its t_start is when the first condition began, its t_end the last bad frame. Frames
are measured at most every `every_s` media seconds (a thumbnail decode and the three measures,
about 0.6 ms here; all five, for the event's score, only while a condition holds). A frame
without a thumbnail is skipped.

    >>> mon = QualityMonitor(QualitySettings())
    >>> for rec in records:
    ...     for event in mon.process(rec):
    ...         print(event.status, event.details["conditions"])   # open ['covered', 'dark']
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from dinostream.analytics.processor import Processor
from dinostream.analytics.quality import Health, Quality, jpeg_grey, measure_health, measure_quality
from dinostream.core.records import Event, FrameEmbedding, event_id
from dinostream.core.settings import QualitySettings

CONDITIONS = ("covered", "dark", "blurred")  # most telling first: a covered lens is dark and blurred too


def conditions_of(q: Health | Quality, s: QualitySettings, held: frozenset[str] = frozenset()) -> frozenset[str]:
    """The conditions a measured frame shows, given those already `held` (which leave only past
    their exit thresholds)."""
    values = {"blurred": q.sharpness, "dark": q.brightness, "covered": q.contrast}
    out = set()
    for name, value in values.items():
        limit = getattr(s, f"{'blur' if name == 'blurred' else name}_{'exit' if name in held else 'enter'}")
        if value < limit:
            out.add(name)
    return frozenset(out)


@dataclass
class _Stream:
    last_measured: float | None = None  # pts of the last measured frame
    held: list[str] = field(default_factory=list)  # the conditions in force
    bad_since: float | None = None  # pts where the current run of bad frames began
    bad_seq: int = 0
    good_since: float | None = None  # pts of the first good frame after bad ones, while an event is open
    open_id: str | None = None  # the open event's id
    t_start: float = 0.0
    start_seq: int = 0
    last_bad_pts: float = 0.0
    last_bad_seq: int = 0
    worst: float = 1.0  # lowest quality score in the event
    seen: list[str] = field(default_factory=list)  # every condition the event has shown
    measures: dict[str, float] = field(default_factory=dict)  # the last bad frame's
    sent_pts: float = 0.0
    ts: float = 0.0


class QualityMonitor(Processor[QualitySettings]):
    """Per-stream camera health (blurred, dark, covered) from the thumbnails, with hysteresis."""

    name = "quality"

    def __init__(self, settings: QualitySettings) -> None:
        super().__init__(settings)
        self._streams: dict[str, _Stream] = {}

    def process(self, record: FrameEmbedding) -> list[Event]:
        s = self.settings_for(record.stream)
        st = self._streams.setdefault(record.stream, _Stream())
        if (
            st.last_measured is not None
            and record.pts - st.last_measured < s.every_s
            and record.pts >= st.last_measured
        ):
            return []
        grey = jpeg_grey(record.thumbnail)
        if grey is None:
            return []
        st.last_measured = record.pts
        st.ts = record.ts
        held = conditions_of(measure_health(grey), s, frozenset(st.held))
        st.held = sorted(held, key=CONDITIONS.index)
        events: list[Event] = []
        if held:
            q = measure_quality(grey)  # all of it (the event's score) only for a bad frame
            if st.bad_since is None:
                st.bad_since, st.bad_seq = record.pts, record.seq
            st.good_since = None
            st.last_bad_pts, st.last_bad_seq = record.pts, record.seq
            if st.open_id is not None:
                st.worst = min(st.worst, q.score)
                st.seen = sorted(set(st.seen) | held, key=CONDITIONS.index)
                st.measures = _measures(q)
                if record.pts - st.sent_pts >= s.update_every_s:
                    st.sent_pts = record.pts
                    events.append(self._event(record.stream, st, "update"))
            elif record.pts - st.bad_since >= s.min_duration_s:
                st.open_id = event_id(record.stream, self.name, st.bad_seq)
                st.t_start, st.start_seq = st.bad_since, st.bad_seq
                st.worst, st.seen, st.measures = q.score, list(st.held), _measures(q)
                st.sent_pts = record.pts
                events.append(self._event(record.stream, st, "open"))
        else:
            st.bad_since = None
            if st.open_id is not None:
                if st.good_since is None:
                    st.good_since = record.pts
                if record.pts - st.good_since >= s.clear_s:
                    events.append(self._close(record.stream, st))
        return events

    def flush(self, stream: str) -> list[Event]:
        st = self._streams.get(stream)
        if st is None or st.open_id is None:
            return []
        return [self._close(stream, st)]

    def _close(self, stream: str, st: _Stream) -> Event:
        event = self._event(stream, st, "closed")
        st.open_id, st.good_since, st.seen, st.worst = None, None, [], 1.0
        return event

    def _event(self, stream: str, st: _Stream, status: str) -> Event:
        assert st.open_id is not None
        return Event(
            id=st.open_id,
            type="quality",
            stream=stream,
            t=st.t_start,
            t_start=st.t_start,
            t_end=max(st.last_bad_pts, st.t_start),
            ts=st.ts,
            score=round(1.0 - st.worst, 4),
            frames=(st.start_seq, st.last_bad_seq),
            details={
                "condition": st.seen[0] if st.seen else "",
                "conditions": list(st.seen),
                "now": list(st.held),
                **st.measures,
            },
            status=status,
        )

    def snapshot(self, stream: str) -> dict[str, Any]:
        st = self._streams.get(stream)
        return {} if st is None else asdict(st)

    def restore(self, stream: str, state: dict[str, Any]) -> None:
        if not state:
            self._streams.pop(stream, None)
            return
        self._streams[stream] = _Stream(**state)


def _measures(q: Quality) -> dict[str, float]:
    """What the event says of the last bad frame: the three measures and its quality score."""
    return {
        "sharpness": round(q.sharpness, 2),
        "brightness": round(q.brightness, 4),
        "contrast": round(q.contrast, 4),
        "quality_score": round(q.score, 4),
    }
