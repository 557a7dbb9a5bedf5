"""Phase segmentation on synthetic global-embedding sequences with known phases."""

from __future__ import annotations

import json

import numpy as np
import pytest

from dinostream.analytics.phases import PhaseSegmenter
from dinostream.analytics.state_codec import decode_array
from dinostream.core.records import Event, FrameEmbedding
from dinostream.core.settings import PhaseSettings

DIM = 48
FPS = 1.0


def records(
    plan: list[tuple[str, int]], *, noise: float = 0.3, stream: str = "or-1", seed: int = 0
) -> list[FrameEmbedding]:
    """Frames of phases (kind, frames); a kind has its own base vectors, so a repeated kind looks alike."""
    rng = np.random.default_rng(seed)
    bases = {k: (rng.normal(size=DIM), rng.normal(size=DIM)) for k in sorted({k for k, _ in plan})}
    out = []
    for kind, n in plan:
        cls, pooled = bases[kind]
        for _ in range(n):
            seq = len(out)
            out.append(
                FrameEmbedding(
                    stream=stream,
                    seq=seq,
                    pts=seq / FPS,
                    ts=1e9 + seq / FPS,
                    model="test",
                    untrained=True,
                    cls=cls + noise * rng.normal(size=DIM),
                    pooled=pooled + noise * rng.normal(size=DIM),
                    patches=np.zeros((1, 1, DIM)),
                )
            )
    return out


def run(seg: PhaseSegmenter, recs: list[FrameEmbedding]) -> list[Event]:
    return [e for r in recs for e in seg.process(r)] + seg.flush(recs[0].stream)


def phases(events: list[Event]) -> list[tuple[float, float, str]]:
    """(start, end, label) of every closed phase, in order."""
    return [(e.t_start, e.t_end, e.details["phase_label"]) for e in events if e.status == "closed"]


CASES = {
    "three-phases-one-revisit": ([("A", 30), ("B", 30), ("C", 30), ("B", 30)], ["P1", "P2", "P3", "P2"]),
    "back-and-forth": ([("A", 25), ("B", 25), ("A", 25), ("B", 25)], ["P1", "P2", "P1", "P2"]),
    "uneven-lengths": ([("A", 15), ("B", 50), ("C", 20)], ["P1", "P2", "P3"]),
    "one-long-phase": ([("A", 80)], ["P1"]),
}


@pytest.mark.parametrize(("plan", "labels"), CASES.values(), ids=CASES.keys())
def test_boundaries_near_truth_and_revisits_keep_their_label(plan: list[tuple[str, int]], labels: list[str]) -> None:
    found = phases(run(PhaseSegmenter(PhaseSettings()), records(plan)))
    starts = [sum(n for _, n in plan[:i]) / FPS for i in range(len(plan))]
    assert [label for _, _, label in found] == labels
    assert [s for s, _, _ in found] == pytest.approx(starts, abs=2.0)
    assert found[-1][1] == (sum(n for _, n in plan) - 1) / FPS


def test_a_phase_is_one_event_id_open_updates_closed() -> None:
    plan = [("A", 70), ("B", 40)]
    events = run(PhaseSegmenter(PhaseSettings(update_every_s=20)), records(plan))
    by_id: dict[str, list[Event]] = {}
    for e in events:
        by_id.setdefault(e.id, []).append(e)
    assert len(by_id) == 2
    first, second = by_id.values()
    assert [e.status for e in first] == ["open", "update", "update", "update", "closed"]
    assert [e.status for e in second][0] == "open" and second[-1].status == "closed"
    assert all(e.type == "phase" and e.details["phase_label"] == "P1" for e in first)
    assert first[0].t_start == 0.0 and first[-1].t_end == pytest.approx(69.0, abs=2.0)
    assert [e.t_end for e in first] == sorted(e.t_end for e in first)


def test_a_blip_shorter_than_the_minimum_phase_is_not_a_phase() -> None:
    plan = [("A", 30), ("B", 3), ("A", 30)]
    found = phases(run(PhaseSegmenter(PhaseSettings(window=4)), records(plan, noise=0.1)))
    assert [label for _, _, label in found] == ["P1"]


def test_streams_are_segmented_independently() -> None:
    seg = PhaseSegmenter(PhaseSettings())
    a = records([("A", 30), ("B", 30)], stream="or-1", seed=1)
    b = records([("A", 60)], stream="or-2", seed=2)
    events = [e for pair in zip(a, b, strict=True) for r in pair for e in seg.process(r)]
    events += seg.flush("or-1") + seg.flush("or-2")
    assert [len(phases([e for e in events if e.stream == s])) for s in ("or-1", "or-2")] == [2, 1]
    assert seg.labels("or-1") == 2 and seg.labels("or-2") == 1


def test_snapshot_and_restore_mid_phase_continue_identically() -> None:
    recs = records([("A", 30), ("B", 30), ("A", 30)])
    expected = run(PhaseSegmenter(PhaseSettings()), recs)
    before = PhaseSegmenter(PhaseSettings())
    events = [e for r in recs[:45] for e in before.process(r)]
    after = PhaseSegmenter(PhaseSettings())
    after.restore("or-1", json.loads(json.dumps(before.snapshot("or-1"))))
    events += run(after, recs[45:])
    assert [e.to_dict() for e in events] == [e.to_dict() for e in expected]
    after.restore("or-1", {})
    assert after.snapshot("or-1") == {} and after.flush("or-1") == []


def test_a_state_with_vectors_as_lists_restores_and_continues_identically() -> None:
    # Releases before the vectors were encoded saved phase totals and cluster means as lists of
    # floats: such a state (made from today's by writing them as lists, exact for float64) goes on
    # as the uninterrupted run does, and saves them encoded again.
    recs = records([("A", 30), ("B", 30), ("A", 30)])
    expected = run(PhaseSegmenter(PhaseSettings()), recs)
    before = PhaseSegmenter(PhaseSettings())
    events = [e for r in recs[:45] for e in before.process(r)]
    state = json.loads(json.dumps(before.snapshot("or-1")))
    assert state["phase"] is not None and state["clusters"], "the cut must hold a phase and labels"
    for part in (state["phase"], state["pending"]):
        if part is not None:
            part["total"] = decode_array(part["total"]).tolist()
    for c in state["clusters"]:
        c["mean"] = decode_array(c["mean"]).tolist()
    old = json.loads(json.dumps(state))
    after = PhaseSegmenter(PhaseSettings())
    after.restore("or-1", old)
    assert json.loads(json.dumps(after.snapshot("or-1"))) == json.loads(json.dumps(before.snapshot("or-1")))
    events += run(after, recs[45:])
    assert [e.to_dict() for e in events] == [e.to_dict() for e in expected]


def test_a_stream_shorter_than_a_window_still_gets_its_phase_on_flush() -> None:
    seg = PhaseSegmenter(PhaseSettings())
    events = run(seg, records([("A", 3)]))
    assert [(e.status, e.t_start, e.t_end, e.details["phase_label"]) for e in events] == [("closed", 0.0, 2.0, "P1")]


def test_a_streams_own_label_limit_applies_to_it_only() -> None:
    plan = [("A", 30), ("B", 30), ("C", 30)]
    seg = PhaseSegmenter(PhaseSettings())
    seg.configure("few", {"max_clusters": 2})  # a third kind of phase takes the nearest label
    few = phases(run(seg, records(plan, stream="few")))
    assert len({label for _, _, label in few}) == 2 and len(few) == 3
    assert [label for _, _, label in phases(run(seg, records(plan, stream="many")))] == ["P1", "P2", "P3"]
