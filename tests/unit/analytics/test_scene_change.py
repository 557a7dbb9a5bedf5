"""Scene-change detector on synthetic embedding sequences with known cuts."""

from __future__ import annotations

import numpy as np
import pytest

from analytics.scene_change import SceneChangeDetector
from dinostream.records import FrameEmbedding
from dinostream.settings import SceneChangeSettings

DIM = 64
FPS = 2.0


def _records(shots: list[int], *, jitter: float = 0.05, stream: str = "cam", seed: int = 0) -> list[FrameEmbedding]:
    """`shots` lists frames per shot; each shot has its own base vector plus per-frame jitter."""
    rng = np.random.default_rng(seed)
    out, seq = [], 0
    for n in shots:
        base_cls, base_pool = rng.normal(size=DIM), rng.normal(size=DIM)
        for _ in range(n):
            cls = base_cls + jitter * rng.normal(size=DIM)
            pooled = base_pool + jitter * rng.normal(size=DIM)
            out.append(
                FrameEmbedding(
                    stream=stream,
                    seq=seq,
                    pts=seq / FPS,
                    ts=1e9 + seq / FPS,
                    model="test",
                    untrained=True,
                    cls=cls,
                    pooled=pooled,
                    patches=np.zeros((1, 1, DIM)),
                )
            )
            seq += 1
    return out


def _cut_times(shots: list[int]) -> list[float]:
    return [sum(shots[:i]) / FPS for i in range(1, len(shots))]


def _run(det: SceneChangeDetector, records: list[FrameEmbedding]) -> list[float]:
    return [e.t for r in records for e in det.process(r)]


CASES = {
    "four-hard-cuts": ([8, 8, 8, 8], 0.05),
    "static-single-shot": ([40], 0.05),
    "noisy-shots": ([10, 12, 9], 0.2),
    "short-then-long": ([3, 20, 6], 0.05),
}


@pytest.mark.parametrize("shots,jitter", CASES.values(), ids=CASES.keys())
def test_detects_known_cuts_and_nothing_else(shots: list[int], jitter: float) -> None:
    found = _run(SceneChangeDetector(SceneChangeSettings()), _records(shots, jitter=jitter))
    assert found == pytest.approx(_cut_times(shots))


def test_min_shot_length_suppresses_flicker() -> None:
    # Shots of 2 frames (1 s) with min_shot_s = 2.5: at most one cut every 2.5 s.
    found = _run(SceneChangeDetector(SceneChangeSettings(min_shot_s=2.5)), _records([2] * 10))
    assert found, "some cuts must still be reported"
    assert all(b - a >= 2.5 for a, b in zip([0.0, *found], found, strict=False))


def test_streams_are_independent() -> None:
    det = SceneChangeDetector(SceneChangeSettings())
    a = _records([6, 6], stream="a", seed=1)
    b = _records([12], stream="b", seed=2)
    events = [e for pair in zip(a, b, strict=True) for r in pair for e in det.process(r)]
    assert [(e.stream, e.t) for e in events] == [("a", 3.0)]


def test_event_fields() -> None:
    det = SceneChangeDetector(SceneChangeSettings())
    recs = _records([6, 6])
    (ev,) = [e for r in recs for e in det.process(r)]
    assert ev.type == "scene_change"
    assert ev.frames == (5, 6)
    assert ev.t_start == 2.5 and ev.t_end == ev.t == 3.0
    assert ev.score > ev.details["threshold"]
    # Deterministic id: the same input gives the same event id (redelivery dedupes).
    fresh = SceneChangeDetector(SceneChangeSettings())
    (again,) = [e for r in recs for e in fresh.process(r)]
    assert again.id == ev.id


def test_snapshot_restore_resumes_identically() -> None:
    shots = [7, 9, 8]
    recs = _records(shots)
    full = _run(SceneChangeDetector(SceneChangeSettings()), recs)
    first = SceneChangeDetector(SceneChangeSettings())
    found = _run(first, recs[:10])
    resumed = SceneChangeDetector(SceneChangeSettings())
    resumed.restore("cam", first.snapshot("cam"))
    found += _run(resumed, recs[10:])
    assert found == full == pytest.approx(_cut_times(shots))


def test_restore_empty_resets_stream() -> None:
    det = SceneChangeDetector(SceneChangeSettings())
    _run(det, _records([5]))
    det.restore("cam", {})
    assert det.snapshot("cam") == {}


def test_per_stream_settings_at_run_time() -> None:
    det = SceneChangeDetector(SceneChangeSettings())
    det.configure("quiet", {"min_distance": 1.9})  # nothing in this stream can be a cut any more
    assert _run(det, _records([6, 6], stream="quiet")) == []
    assert _run(det, _records([6, 6], stream="loud")) == [3.0]
    with pytest.raises(ValueError, match="min_distance"):
        det.configure("quiet", {"min_distance": -1})
