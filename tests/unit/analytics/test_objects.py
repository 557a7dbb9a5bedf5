"""The shared per-frame pass (regions and tracks): computed once per frame, read by re-identification
and the watchlist, saved once, and restoring what the earlier release saved."""

from __future__ import annotations

import json
import zlib
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from dinostream.analytics.gallery import MemoryTrackGallery
from dinostream.analytics.processor_set import ProcessorSet
from dinostream.analytics.regions import BackgroundModel
from dinostream.analytics.reid import ReidProcessor
from dinostream.analytics.tracking import Tracker
from dinostream.analytics.watchlist import Exemplar, Watchlist, WatchlistProcessor, exemplar_from_patches
from dinostream.core.records import Box, Event, FrameEmbedding
from dinostream.core.settings import ReidSettings

DIM = 32
GRID = (8, 10)
T0 = 1_700_000_000.0
FPS = 2.0
STATES = Path(__file__).parent / "states"


def _seed(name: str) -> int:
    return zlib.crc32(name.encode())


def _look(obj: str) -> np.ndarray:
    return np.random.default_rng(_seed(obj)).normal(size=DIM)


def _grid(stream: str, seq: int, obj: str | None, col: int) -> np.ndarray:
    x = np.random.default_rng(_seed(stream)).normal(size=(*GRID, DIM))
    rng = np.random.default_rng([_seed(stream), seq])
    x = x + 0.05 * rng.normal(size=x.shape)
    if obj is not None:
        c0, c1 = max(col, 0), min(col + 3, GRID[1])
        if c1 > c0:
            x[3:6, c0:c1] = _look(obj) + 0.2 * rng.normal(size=(3, c1 - c0, DIM))
    return x


def _camera(name: str, visits: list[tuple[str, int]], frames: int) -> list[FrameEmbedding]:
    """Records of one camera; `visits` are (object, first frame): it walks across, a cell a frame."""
    out = []
    for seq in range(frames):
        obj, col = None, 0
        for o, start in visits:
            if start <= seq < start + GRID[1] + 3:
                obj, col = o, seq - start - 2
        p = _grid(name, seq, obj, col)
        out.append(
            FrameEmbedding(name, seq, seq / FPS, T0 + seq / FPS, "test", True, p.mean((0, 1)), p.mean((0, 1)), p)
        )
    return out


def scene() -> list[FrameEmbedding]:
    """A suitcase crosses cam-a, then cam-b (a re-identification, a watchlist match on each)."""
    a = _camera("cam-a", [("suitcase", 5)], 40)
    b = _camera("cam-b", [("suitcase", 22)], 40)
    return [r for pair in zip(a, b, strict=True) for r in pair]


def watchlist() -> Watchlist:
    """The suitcase, a box drawn around it on a frame of a third camera."""
    frame = _grid("cam-z", 0, "suitcase", 4)
    vector = exemplar_from_patches(frame, Box(0.4, 3 / 8, 0.7, 6 / 8), centering=ReidSettings().feature_centering)
    return Watchlist([Exemplar("suitcase-7", "red suitcase", vector)])


def hosted(gallery: MemoryTrackGallery | None = None) -> ProcessorSet:
    """Re-identification and the watchlist as a deployment runs them: one pass, reid's."""
    reid = ReidProcessor(ReidSettings(), gallery if gallery is not None else MemoryTrackGallery())
    return ProcessorSet([reid, WatchlistProcessor(ReidSettings(), watchlist(), objects=reid.objects)])


def replay(procs: ProcessorSet, records: list[FrameEmbedding]) -> list[Event]:
    events = [e for r in records for e in procs.process(r)]
    for name in dict.fromkeys(r.stream for r in records):
        events += procs.flush(name)
    return events


def alone(records: list[FrameEmbedding]) -> dict[str, list[dict[str, Any]]]:
    """The events of each processor run on its own, with its own pass (as before it was shared)."""
    reid = ReidProcessor(ReidSettings(), MemoryTrackGallery())
    watch = WatchlistProcessor(ReidSettings(), watchlist())
    return {p.name: [e.to_dict() for e in replay(ProcessorSet([p]), records)] for p in (reid, watch)}


def by_type(events: list[Event]) -> dict[str, list[dict[str, Any]]]:
    return {t: [e.to_dict() for e in events if e.type == t] for t in ("reid", "watchlist")}


@pytest.fixture
def computed(monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    """How often the regions and the tracks were computed."""
    calls: Counter[str] = Counter()
    observe, update = BackgroundModel.observe, Tracker.update

    def counted_observe(self: BackgroundModel, *args: Any, **kwargs: Any) -> Any:
        calls["regions"] += 1
        return observe(self, *args, **kwargs)

    def counted_update(self: Tracker, *args: Any, **kwargs: Any) -> Any:
        calls["tracks"] += 1
        return update(self, *args, **kwargs)

    monkeypatch.setattr(BackgroundModel, "observe", counted_observe)
    monkeypatch.setattr(Tracker, "update", counted_update)
    return calls


def test_reid_and_the_watchlist_read_one_pass_per_frame(computed: Counter[str]) -> None:
    records = scene()
    expected = alone(records)
    assert computed == {"regions": 2 * len(records), "tracks": 2 * len(records)}  # a pass each
    assert expected["reid"] and expected["watchlist"]
    assert {e["stream"] for e in expected["watchlist"]} == {"cam-a", "cam-b"}
    computed.clear()
    events = replay(hosted(), records)
    assert computed == {"regions": len(records), "tracks": len(records)}
    assert by_type(events) == expected


def test_the_pass_is_saved_once_and_restores_mid_stream() -> None:
    records = scene()
    expected = by_type(replay(hosted(), records))
    cut = 60  # cam-b: the suitcase's track is linked and its watchlist occurrence open
    gallery = MemoryTrackGallery()
    first = hosted(gallery)
    events = [e for r in records[:cut] for e in first.process(r)]
    saved = {(s, n): json.loads(json.dumps(first.state(s, n))) for s in ("cam-a", "cam-b") for n in first.names}
    assert "objects" in saved[("cam-b", "reid")]["state"]
    assert "objects" not in saved[("cam-b", "watchlist")]["state"]  # read from reid's, not saved twice
    second = hosted(gallery)  # the restarted worker; the gallery lives on
    for (stream, name), state in saved.items():
        second.load(stream, name, state)
    events += replay(second, records[cut:])
    assert by_type(events) == expected


def test_restores_the_separate_passes_the_previous_release_saved(computed: Counter[str]) -> None:
    # Saved by the release at ac29143 (a background and tracks in each of reid's and the
    # watchlist's states) from these very records, after the first `cut` of them.
    fixture = json.loads((STATES / "reid_watchlist_v1.json").read_text())
    cut = fixture["cut"]
    records = scene()
    whole = replay(hosted(), records)
    gallery = MemoryTrackGallery()  # what the gallery held then (it is not processor state)
    first = hosted(gallery)
    before = [e for r in records[:cut] for e in first.process(r)]
    assert "background" in fixture["reid"]["cam-b"] and "background" in fixture["watchlist"]["cam-b"]
    resumed = hosted(gallery)
    for name in ("reid", "watchlist"):
        for stream, state in fixture[name].items():
            resumed.load(stream, name, {"state": state, "settings": None})
    computed.clear()
    after = replay(resumed, records[cut:])
    assert computed["regions"] == len(records) - cut
    assert by_type(before + after) == by_type(whole)
    # What was open at the cut (a link, a watchlist occurrence) went on after it and closed.
    assert {(e.type, e.status) for e in after} >= {("reid", "closed"), ("watchlist", "closed")}
    assert {e.id for e in after} <= {e.id for e in before}


def test_a_watchlist_with_its_own_pass_restores_its_old_state_alone() -> None:
    fixture = json.loads((STATES / "reid_watchlist_v1.json").read_text())
    cut, records = fixture["cut"], scene()
    expected = [e.to_dict() for e in replay(ProcessorSet([WatchlistProcessor(ReidSettings(), watchlist())]), records)]
    proc = WatchlistProcessor(ReidSettings(), watchlist())
    events = [e for r in records[:cut] for e in proc.process(r)]
    resumed = WatchlistProcessor(ReidSettings(), watchlist())
    for stream, state in fixture["watchlist"].items():
        resumed.restore(stream, state)
    events += replay(ProcessorSet([resumed]), records[cut:])
    assert [e.to_dict() for e in events] == expected
    assert "objects" in resumed.snapshot("cam-b")  # its own pass: saved with its state


def test_the_end_of_a_stream_closes_both_once() -> None:
    procs = hosted()
    for r in scene()[:62]:  # cam-b: the suitcase's track is linked and its occurrence open
        procs.process(r)
    closing = procs.flush("cam-b")
    assert sorted((e.type, e.status) for e in closing) == [("reid", "closed"), ("watchlist", "closed")]
    assert procs.flush("cam-b") == []  # ended once, though both processors read the end


def test_restores_the_shared_pass_the_release_before_calibration_saved() -> None:
    # Saved by the release at e88540e (state version 2: the shared pass without the similarities
    # between different tracks, which start empty) from these very records, after the first `cut`.
    fixture = json.loads((STATES / "reid_watchlist_v2.json").read_text())
    cut, records = fixture["cut"], scene()
    whole = replay(hosted(), records)
    gallery = MemoryTrackGallery()
    first = hosted(gallery)
    before = [e for r in records[:cut] for e in first.process(r)]
    assert fixture["reid"]["cam-b"]["version"] == 2 and "non_matches" not in fixture["reid"]["cam-b"]["objects"]
    resumed = hosted(gallery)
    for name in ("reid", "watchlist"):
        for stream, state in fixture[name].items():
            resumed.load(stream, name, {"state": state, "settings": None})
    after = replay(resumed, records[cut:])
    assert by_type(before + after) == by_type(whole)
    assert {(e.type, e.status) for e in after} >= {("reid", "closed"), ("watchlist", "closed")}
    assert resumed.state("cam-b", "reid")["state"]["version"] == 3
