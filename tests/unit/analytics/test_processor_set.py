"""The worker's sans-I/O host: record bytes in, events and state-table writes out."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest

from dinostream.analytics.anomaly import AnomalyDetector
from dinostream.analytics.processor_set import (
    HostOutput,
    ProcessorHost,
    ProcessorSet,
    StateWrite,
    WorkerStats,
    control_message,
)
from dinostream.analytics.scene_change import SceneChangeDetector
from dinostream.analytics.state_chunks import chunk_count, join_chunks
from dinostream.core.records import Event, FrameEmbedding
from dinostream.core.settings import AnomalySettings, SceneChangeSettings, StreamOverrides, StreamUpdate
from tests.records import shots


class Table(dict[str, Any]):
    """The state table as the worker keeps it: values go through JSON (the changelog)."""

    def apply(self, writes: list[StateWrite]) -> None:
        for w in writes:
            if w.value is None:
                del self[w.key]
            else:
                self[w.key] = json.loads(json.dumps(w.value))


def host(table: Table, **kw: Any) -> ProcessorHost:
    kw = {"snapshot_every_s": 10.0, "chunk_chars": 1_000_000, **kw}
    return ProcessorHost(ProcessorSet([SceneChangeDetector(SceneChangeSettings())]), table.get, **kw)


def feed(h: ProcessorHost, table: Table, records: list[FrameEmbedding], t0: float = 0.0) -> list[Event]:
    """One record a second of the host's clock; writes applied as the worker does."""
    events = []
    for i, r in enumerate(records):
        out = h.receive_record(r.encode(), now=t0 + i)
        events += out.events
        table.apply(out.writes)
    return events


def cuts(events: list[Event]) -> list[tuple[str, float]]:
    return [(e.stream, e.t) for e in events if e.type == "scene_change"]


def test_a_second_host_resumes_from_the_table_the_first_wrote() -> None:
    recs = shots("cam-r", [6, 6, 6], 5)
    whole = cuts(feed(host(Table()), Table(), recs))
    assert whole == [("cam-r", 2.75), ("cam-r", 5.75)]
    table = Table()
    first = host(table, snapshot_every_s=1.0)
    assert cuts(feed(first, table, recs[:6])) == []
    assert set(table) == {"cam-r/scene_change", "cam-r/@seq"} and first.stats.snapshots == 6
    second = host(table)  # a restarted worker, reading the table the first left
    events = feed(second, table, recs[6:])
    assert cuts(events) == whole
    assert second.stats.restored == 1 and second.stats.records == 12
    assert second.stats.events == 0  # made, not yet sent
    for ev in events:
        second.sent(ev)
    assert second.stats.events == len(events) and second.stats.events_by_type["scene_change"] == 2


def test_state_is_saved_every_snapshot_interval_of_the_clock() -> None:
    table = Table()
    h = host(table, snapshot_every_s=5.0)
    feed(h, table, shots("cam", [12], 1))  # at t = 0..11: saved at 0, 5 and 10
    assert h.stats.snapshots == 3


def test_a_big_state_is_written_in_chunks_before_its_head_and_stale_chunks_go() -> None:
    table = Table()
    recs = shots("cam", [30], 2)
    h = host(table, snapshot_every_s=0.0, chunk_chars=2_000)
    writes = []
    for i, r in enumerate(recs):
        out = h.receive_record(r.encode(), now=float(i))
        writes.append([w.key for w in out.writes])
        table.apply(out.writes)
    assert writes[0] == ["cam/scene_change", "cam/@seq"]  # one frame's state fits: no chunks
    n = chunk_count(table["cam/scene_change"])
    assert n > 1 and writes[-1][-2:] == ["cam/scene_change", "cam/@seq"]  # the head after its chunks
    sent = writes[-1][:-2]  # chunks the table did not hold as they are now (see the next test)
    assert sent and sent == sorted(sent, key=lambda k: int(k.split("#")[1]))
    assert set(sent) <= {f"cam/scene_change#{i}" for i in range(n)}
    assert join_chunks(table["cam/scene_change"], lambda i: table.get(f"cam/scene_change#{i}")) is not None
    h.chunk_chars = 1_000_000  # now it fits in one message: the chunks are deleted after the head
    out = h.receive_record(dataclasses.replace(shots("cam", [1], 3)[0], seq=30).encode(), now=99.0)
    assert [(w.key, w.value is None) for w in out.writes] == [("cam/scene_change", False)] + [
        (f"cam/scene_change#{i}", True) for i in range(n)
    ] + [("cam/@seq", False)]
    table.apply(out.writes)
    assert set(table) == {"cam/scene_change", "cam/@seq"}


def test_a_large_part_that_did_not_change_is_not_sent_again() -> None:
    """After the anomaly's warm-up its model of normal stays as it is: its chunks are in the table
    already, so a later save sends the head and the chunks of what changed; a second host restores
    exactly the state the first had, and goes on as the first does."""
    settings = AnomalySettings(warmup_frames=12, seed=3)
    recs = shots("cam", [40], 4)

    def anomaly_host(table: Table) -> ProcessorHost:
        procs = ProcessorSet([AnomalyDetector(settings)])
        return ProcessorHost(procs, table.get, snapshot_every_s=0.0, chunk_chars=4_000)

    table = Table()
    h = anomaly_host(table)
    sent: list[list[str]] = []
    for i, r in enumerate(recs[:30]):
        out = h.receive_record(r.encode(), now=float(i))
        sent.append([w.key for w in out.writes if "#" in w.key and w.value is not None])
        table.apply(out.writes)
    n = chunk_count(table["cam/anomaly"])
    assert n >= 3 and h.stats.state_chunks_kept > 0
    assert 0 < len(sent[-1]) < n  # the model's chunks were not sent again; the rest was
    state = h.processors.state("cam", "anomaly")
    assert join_chunks(table["cam/anomaly"], lambda i: table.get(f"cam/anomaly#{i}")) == json.loads(json.dumps(state))
    other = Table(table)
    second = anomaly_host(other)  # a restarted worker, on what the table held
    rest = [e.to_dict() for e in feed(second, other, recs[30:], t0=30.0)]
    assert second.stats.restored == 1
    assert rest == [e.to_dict() for e in feed(h, table, recs[30:], t0=30.0)]
    assert second.processors.state("cam", "anomaly") == h.processors.state("cam", "anomaly")


def test_a_state_over_the_chunk_limit_is_not_saved_but_counted() -> None:
    table = Table()
    h = host(table, snapshot_every_s=0.0, chunk_chars=100, max_chunks=2)
    feed(h, table, shots("cam", [3], 4))
    assert table == {} and h.stats.oversize_state == 3


def test_frames_at_or_before_the_last_analysed_one_are_skipped_after_a_restart_too() -> None:
    """A redelivered record, or a file read again under the same frame numbers after a restart, is
    not analysed twice: the last analysed frame is saved with the state and read back with it."""
    recs = shots("cam", [6, 6, 6], 5)
    whole = cuts(feed(host(Table()), Table(), recs))
    table = Table()
    first = host(table, snapshot_every_s=0.0)
    feed(first, table, recs[:9])
    assert table["cam/@seq"] == {"seq": 8}
    second = host(table)  # restarted: the file is read again from its start
    events = feed(second, table, recs)
    assert second.stats.replayed == 9 and second.stats.records == 18
    assert cuts(events) == [c for c in whole if c[1] > recs[8].pts], "each cut once, none from the replay"
    again = feed(second, table, recs[10:12])  # redelivered within one run
    assert again == [] and second.stats.replayed == 11
    # A stream whose states are all too big to save keeps no position either (it relearns from scratch).
    big = Table()
    feed(host(big, snapshot_every_s=0.0, chunk_chars=100, max_chunks=2), big, recs[:3])
    assert big == {}


def test_malformed_records_are_skipped_and_counted() -> None:
    table = Table()
    h = host(table)
    assert h.receive_record(b"garbage", now=0.0, where="at p0 offset 7").events == []
    assert h.stats.malformed == 1 and h.stats.records == 0


class Fragile(SceneChangeDetector):
    """Raises on the records of streams whose settings say min_distance 1.5, as a processor bug might."""

    def process(self, record: FrameEmbedding) -> list[Event]:
        if self.settings_for(record.stream).min_distance == 1.5:
            raise RuntimeError("processor bug")
        return super().process(record)


def test_a_processor_raising_on_one_of_two_streams_quarantines_it_there_only() -> None:
    table = Table()
    stats = WorkerStats()
    h = ProcessorHost(
        ProcessorSet([Fragile(SceneChangeSettings())]), table.get, snapshot_every_s=0.0, chunk_chars=10**6, stats=stats
    )
    table.apply(h.receive_control(control_message("cam-bad", "scene_change", {"min_distance": 1.5}), now=0.0).writes)
    good, bad = shots("cam-ok", [6, 6, 6], 1), shots("cam-bad", [6, 6, 6], 1)
    events: list[Event] = []
    for i, (g, b) in enumerate(zip(good, bad, strict=True)):  # interleaved, as a worker sees them
        for r in (b, g):
            out = h.receive_record(r.encode(), now=float(i))
            events += out.events
            table.apply(out.writes)
    errors = [e for e in events if e.type == "error"]
    assert len(errors) == 1, "one error event, at the first record that raised; then the processor is out"
    assert errors[0].stream == "cam-bad" and errors[0].frames == (0,)
    assert errors[0].details == {
        "processor": "scene_change",
        "error": "RuntimeError: processor bug",
        "quarantined": True,
    }
    assert cuts(events) == [("cam-ok", 2.75), ("cam-ok", 5.75)], "the other stream goes on"
    assert stats.failure is None and stats.records == 36 and stats.processor_failures == 1
    assert stats.quarantined == {"cam-bad/scene_change": "frame 0: RuntimeError: processor bug"}
    assert h.quarantined("cam-bad") == {"scene_change": "frame 0: RuntimeError: processor bug"}
    assert h.quarantined("cam-ok") == {}
    # A good setting for that stream lifts the quarantine; its state starts afresh.
    out = h.receive_control(control_message("cam-bad", "scene_change", {"min_distance": 0.3}), now=20.0)
    table.apply(out.writes)
    assert out.events == [] and stats.quarantined == {}
    later = []
    for i, r in enumerate(shots("cam-bad", [6, 6], 2)):  # the stream's next frames (numbers go on)
        later += h.receive_record(dataclasses.replace(r, seq=r.seq + 18).encode(), now=21.0 + i).events
    assert [e.type for e in later] == ["scene_change"]


def test_a_processor_that_cannot_restore_a_stream_is_quarantined_for_it() -> None:
    table = Table({"cam-x/scene_change": {"state": {}, "settings": {"no_such_field": 1}}})
    h = host(table)
    out = h.receive_record(shots("cam-x", [1], 3)[0].encode(), now=0.0)
    assert [e.type for e in out.events] == ["error"] and "cam-x/scene_change" in h.stats.quarantined
    assert h.receive_record(shots("cam-y", [1], 3)[0].encode(), now=0.0).events == []


def test_control_messages_change_one_stream_and_are_saved() -> None:
    table = Table()
    h = host(table)
    table.apply(h.receive_control(control_message("cam-q", "scene_change", {"min_distance": 1.99}), now=0.0).writes)
    assert table["cam-q/scene_change"]["settings"]["min_distance"] == 1.99
    for bad in (control_message("cam-q", "nope", {}), b"{not json", control_message("cam-q", "scene_change", {"x": 1})):
        assert h.receive_control(bad, now=1.0) == HostOutput()
    assert h.stats.control == 1
    recs = shots("cam-q", [6, 6], 6)
    assert cuts(feed(h, table, recs)) == []  # nothing is a cut at that distance
    assert cuts(feed(host(Table()), Table(), shots("cam-q", [6, 6], 6))) == [("cam-q", 2.75)]
    restarted = host(table)  # the saved settings come back with the state, at first sight of the stream
    assert restarted.processors.settings("cam-q")["scene_change"]["min_distance"] != 1.99
    restarted.receive_record(recs[0].encode(), now=0.0)
    assert restarted.processors.settings("cam-q")["scene_change"]["min_distance"] == 1.99


def test_a_setting_the_processor_would_raise_on_is_refused_before_it_is_accepted() -> None:
    """Issue 17: {"seed": -1} was accepted (202) and the anomaly detector raised on the stream's next record."""
    procs = ProcessorSet([AnomalyDetector(AnomalySettings())])
    with pytest.raises(ValueError, match="seed"):
        procs.configure("cam", "anomaly", {"seed": -1, "warmup_frames": 2})
    with pytest.raises(ValueError, match="seed"):  # what PATCH /api/v1/streams/{id}/analytics/anomaly applies
        StreamOverrides().apply(StreamUpdate.analytics("anomaly", seed=-1, warmup_frames=2))
    assert procs.settings("cam")["anomaly"]["seed"] == 0


def test_frames_missing_between_a_streams_records_are_counted() -> None:
    """Frames that never reached the worker (ingest dropped them, or a worker that died analysed them
    after its last save) show in `frames_missed`; consecutive and replayed records add nothing."""
    recs = shots("cam", [6, 6], 5)
    h = host(Table())
    feed(h, Table(), recs[:4])
    assert h.stats.frames_missed == 0
    feed(h, Table(), recs[7:9] + recs[2:3])  # frames 4-6 missed; frame 2 again is a replay
    assert h.stats.frames_missed == 3 and h.stats.replayed == 1
