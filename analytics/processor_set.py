"""The processors a deployment runs, as one unit, and the sans-I/O host a worker wraps around them.

`ProcessorSet` routes records to the processors, computing the per-frame work they share
(`Processor.passes`: regions and tracks) once before it calls them, and saves and restores
per-stream state. Pure like the processors; the Faust worker and `dinostream analyze` use it.

    procs = ProcessorSet([SceneChangeDetector(s.scene_change)])
    events = procs.process(record)
    saved = procs.state(record.stream, "scene_change")   # JSON-serialisable: state and settings overrides
    ProcessorSet([...]).load(record.stream, "scene_change", saved)

`ProcessorHost` is what a worker runs (websockets' sans-I/O protocol, for processors): message
bytes in (embedding records, control messages), events to send and writes to the state table out.
It reads the table through a lookup and never touches it; the worker applies the writes.

    host = ProcessorHost(procs, table.get, snapshot_every_s=10.0, chunk_chars=450_000)
    out = host.receive_record(value, now=time.monotonic())
    # send out.events (counting each with host.sent), then apply out.writes to the table in order
    # (a processor that raises on one stream is quarantined there: an "error" event among out.events)
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Container, Sequence
from dataclasses import dataclass, field
from typing import Any

from dinostream.analytics.processor import FramePass, Processor
from dinostream.analytics.state_chunks import chunk_count, join_chunks, split_chunks
from dinostream.core.records import Event, FrameEmbedding, RecordError, check_stream_id, event_id

log = logging.getLogger(__name__)


class ProcessorSet:
    def __init__(self, processors: Sequence[Processor[Any]]) -> None:
        names = [p.name for p in processors]
        if len(set(names)) != len(names):
            raise ValueError(f"processor names must be unique, got {names}")
        self.processors = list(processors)
        self._by_name = {p.name: p for p in processors}
        # Each shared pass once, however many processors read it.
        self.passes: list[FramePass] = list({id(x): x for p in processors for x in p.passes}.values())

    @property
    def names(self) -> list[str]:
        return list(self._by_name)

    def process(self, record: FrameEmbedding) -> list[Event]:
        for shared in self.passes:
            shared.observe(record)
        return [ev for p in self.processors for ev in p.process(record)]

    def process_isolated(
        self, record: FrameEmbedding, skip: Container[str] = ()
    ) -> tuple[list[Event], dict[str, Exception]]:
        """`process`, but a processor that raises (or whose shared pass raises) is left out and
        named with its exception instead of stopping the others; processors in `skip` are not
        called (nor the passes only they read)."""
        active = [p for p in self.processors if p.name not in skip]
        failed: dict[str, Exception] = {}
        for shared in self.passes:
            readers = [p for p in active if any(x is shared for x in p.passes)]
            if not readers:
                continue
            try:
                shared.observe(record)
            except Exception as e:
                failed.update((p.name, e) for p in readers)
        events: list[Event] = []
        for p in active:
            if p.name in failed:
                continue
            try:
                events += p.process(record)
            except Exception as e:
                failed[p.name] = e
        return events, failed

    def flush(self, stream: str) -> list[Event]:
        for shared in self.passes:
            shared.end(stream)
        return [ev for p in self.processors for ev in p.flush(stream)]

    def configure(self, stream: str, processor: str, changes: dict[str, Any]) -> dict[str, Any]:
        """Override one processor's settings for one stream; ValueError names what is wrong."""
        proc = self._by_name.get(processor)
        if proc is None:
            raise ValueError(f"unknown processor {processor!r}; known: {', '.join(self._by_name)}")
        return proc.configure(stream, changes).model_dump(mode="json")

    def settings(self, stream: str) -> dict[str, dict[str, Any]]:
        return {p.name: p.settings_for(stream).model_dump(mode="json") for p in self.processors}

    def state(self, stream: str, processor: str) -> dict[str, Any]:
        """One processor's state and settings overrides for one stream."""
        proc = self._by_name[processor]
        overrides = proc.overrides(stream)
        return {
            "state": proc.snapshot(stream),
            "settings": None if overrides is None else overrides.model_dump(mode="json"),
        }

    def reset(self, stream: str, processor: str) -> None:
        """Start one processor's state for one stream afresh (its settings overrides stay)."""
        self._by_name[processor].restore(stream, {})

    def load(self, stream: str, processor: str, saved: dict[str, Any]) -> None:
        proc = self._by_name.get(processor)
        if proc is None:  # a processor that was removed from the deployment: nothing to restore
            return
        if saved.get("settings") is not None:
            proc.configure(stream, saved["settings"])
        proc.restore(stream, saved.get("state") or {})


# --- the worker's host ------------------------------------------------------------------------------


@dataclass
class WorkerStats:
    records: int = 0
    events: int = 0
    events_by_type: dict[str, int] = field(default_factory=dict)
    malformed: int = 0
    snapshots: int = 0
    restored: int = 0
    replayed: int = 0  # records at or before the last analysed frame of their stream: skipped
    # frames missing between a stream's consecutive records: sampled frames ingest dropped, or records
    # analysed after the last state save of a worker that died (restored from the save before them)
    frames_missed: int = 0
    oversize_state: int = 0
    state_chunks_kept: int = 0  # chunks of a saved state the table held already as they were: not sent again
    control: int = 0
    processor_failures: int = 0  # times a processor raised on a stream's record, state or settings
    quarantined: dict[str, str] = field(default_factory=dict)  # "stream/processor" -> why, until reconfigured
    failure: str | None = None  # set when the worker itself failed (not one stream's processor)


def control_message(stream: str, processor: str, changes: dict[str, Any]) -> bytes:
    """The control-topic message that changes `processor`'s settings for `stream`."""
    check_stream_id(stream)
    return json.dumps({"stream": stream, "processor": processor, "changes": changes}).encode()


@dataclass(frozen=True)
class StateWrite:
    """One write to the state table: `value` under `key`, or delete `key` when `value` is None."""

    key: str
    value: Any


@dataclass
class HostOutput:
    events: list[Event] = field(default_factory=list)  # to send, in order
    writes: list[StateWrite] = field(default_factory=list)  # to apply after them, in order


class ProcessorHost:
    """Records in, events and state writes out, for the processors of one worker.

    Records are keyed by stream, so a stream's records arrive in order at one worker, which keeps
    its state. The state (and per-stream settings) is saved every `snapshot_every_s` under
    "<stream>/<processor>", and read back the first time the host sees the stream, so a restarted
    or rebalanced worker resumes where the last one stopped. A state bigger than `chunk_chars` of
    JSON (an anomaly warm-up holds megabytes) is saved as a head naming numbered chunks under
    "<key>#<i>"; one that needs more than `max_chunks` is not saved (counted, relearned after a
    restart). Control messages change a processor's settings for one stream
    (`control_message`) and save its state at once.

    The number of the last frame analysed is saved with the state (under "<stream>/@seq"): a record
    at or before it — redelivered after a restart, or a file read again under the same frame numbers —
    is skipped (`stats.replayed`), so no processor sees a frame twice or time running backwards. A
    stream's frame numbers only grow: a new session starts from the wall clock in ms
    (`dinostream.ingest.source.session_first_seq`), a file read again re-uses its own.

    A processor that raises on one stream (on a record, or restoring, saving or reconfiguring
    that stream's state) is quarantined for that stream only: an "error" event for the stream
    says which and why, `stats.quarantined` lists it (health shows it under the stream) and
    `stats.processor_failures` counts it; the stream's other processors and every other stream
    go on. It stays out until a control message reconfigures it for that stream (which starts
    its state afresh), or the worker restarts.

    `saved(key)` reads the table as it is (None when the key is absent); `now` is a monotonic clock.
    """

    def __init__(
        self,
        processors: ProcessorSet,
        saved: Callable[[str], Any],
        *,
        snapshot_every_s: float,
        chunk_chars: int,
        max_chunks: int = 64,
        stats: WorkerStats | None = None,
    ) -> None:
        self.processors = processors
        self._saved = saved
        self.snapshot_every_s = snapshot_every_s
        self.chunk_chars = chunk_chars
        self.max_chunks = max_chunks
        self.stats = stats if stats is not None else WorkerStats()
        self._seen: set[str] = set()  # streams whose saved state was checked since this host started
        self._last_save: dict[str, float] = {}
        self._last_seq: dict[str, int] = {}  # the last frame analysed, per stream

    def receive_record(self, value: bytes, now: float, *, where: str = "") -> HostOutput:
        """One embedding record's bytes: the events it produced (an "error" event for each
        processor quarantined on it) and the state writes due. A malformed record is skipped and
        counted (`where` says where it came from, for the log)."""
        try:
            record = FrameEmbedding.decode(value)
        except RecordError as e:
            self.stats.malformed += 1
            log.error("skipping malformed record %s: %s", where, e)
            return HostOutput()
        self.stats.records += 1
        stream = record.stream
        out = HostOutput(self._ensure_restored(stream, record))
        last = self._last_seq.get(stream, -1)
        if record.seq <= last:
            self.stats.replayed += 1
            return out
        if last >= 0 and record.seq > last + 1:
            self.stats.frames_missed += record.seq - last - 1
        self._last_seq[stream] = record.seq
        events, failed = self.processors.process_isolated(record, self._quarantined_on(stream))
        out.events += events
        for name, exc in failed.items():
            out.events.append(self._quarantine(stream, name, exc, record))
        if now - self._last_save.get(stream, float("-inf")) >= self.snapshot_every_s:
            out.writes, errors = self._save(stream, now, record)
            out.events += errors
        return out

    def quarantined(self, stream: str) -> dict[str, str]:
        """The processors quarantined on `stream`, with why."""
        prefix = f"{stream}/"
        return {k[len(prefix) :]: why for k, why in self.stats.quarantined.items() if k.startswith(prefix)}

    def _quarantined_on(self, stream: str) -> set[str]:
        return set(self.quarantined(stream))

    def _quarantine(self, stream: str, processor: str, exc: Exception, record: FrameEmbedding | None) -> Event:
        """Leave `processor` out for `stream` from now on; the "error" event that says so."""
        where = f"frame {record.seq}" if record is not None else "settings"
        why = f"{type(exc).__name__}: {exc}"[:500]
        log.error(
            "analytics: %s failed on stream %s (%s) and is quarantined for that stream: %s",
            processor,
            stream,
            where,
            why,
            exc_info=exc,
        )
        self.stats.processor_failures += 1
        self.stats.quarantined[f"{stream}/{processor}"] = f"{where}: {why}"
        t = record.pts if record is not None else 0.0
        return Event(
            id=event_id(stream, "error", f"{processor}/{record.seq if record is not None else time.time_ns()}"),
            type="error",
            stream=stream,
            t=t,
            t_start=t,
            t_end=t,
            ts=record.ts if record is not None else time.time(),
            score=1.0,
            frames=(record.seq,) if record is not None else (),
            details={"processor": processor, "error": why, "quarantined": True},
        )

    def sent(self, event: Event) -> None:
        """Count an event the worker has handed to the events topic (`stats.events`: sent, not just made)."""
        self.stats.events += 1
        self.stats.events_by_type[event.type] = self.stats.events_by_type.get(event.type, 0) + 1

    def receive_control(self, value: bytes, now: float) -> HostOutput:
        """One control message's bytes: the state writes that save its change. A message that
        names an unknown processor or a bad setting is logged and ignored. A change to a processor
        quarantined on that stream lifts the quarantine, with its state started afresh."""
        try:
            msg = json.loads(value)
            target = check_stream_id(msg["stream"])
            processor, changes = msg["processor"], msg["changes"]
            if processor not in self.processors.names or not isinstance(changes, dict):
                raise ValueError(f"unknown processor {processor!r} or changes not an object")
        except (ValueError, KeyError, TypeError, RecordError) as e:
            log.error("ignoring control message %r: %s", value[:200], e)
            return HostOutput()
        out = HostOutput(self._ensure_restored(target, None))
        lifted = self.stats.quarantined.pop(f"{target}/{processor}", None) is not None
        try:
            if lifted:
                self.processors.reset(target, processor)
            applied = self.processors.configure(target, processor, changes)
        except ValueError as e:
            log.error("ignoring control message %r: %s", value[:200], e)
            if lifted:  # still not running: say so again
                out.events.append(self._quarantine(target, processor, e, None))
            return out
        except Exception as e:  # the processor's own code raised: that stream's problem only
            out.events.append(self._quarantine(target, processor, e, None))
            return out
        self.stats.control += 1
        log.info("stream %s: %s settings now %s%s", target, processor, applied, " (quarantine lifted)" * lifted)
        out.writes, errors = self._save(target, now, None)
        out.events += errors
        return out

    def _ensure_restored(self, stream: str, record: FrameEmbedding | None) -> list[Event]:
        if stream in self._seen:
            return []
        self._seen.add(stream)
        errors = []
        position = self._saved(_position_key(stream))
        if isinstance(position, dict) and isinstance(position.get("seq"), int):
            self._last_seq[stream] = position["seq"]
        for name in self.processors.names:
            key = f"{stream}/{name}"
            try:
                # mypy cannot infer a lambda with a default argument
                saved = join_chunks(self._saved(key), lambda i, key=key: self._saved(f"{key}#{i}"))  # type: ignore[misc]
                if saved:
                    self.processors.load(stream, name, saved)
                    self.stats.restored += 1
                    log.info("restored %s state of stream %s", name, stream)
            except Exception as e:  # a saved state or setting the processor now refuses
                errors.append(self._quarantine(stream, name, e, record))
        return errors

    def _save(self, stream: str, now: float, record: FrameEmbedding | None) -> tuple[list[StateWrite], list[Event]]:
        writes: list[StateWrite] = []
        errors: list[Event] = []
        skip = self._quarantined_on(stream)  # their last good state stays in the table
        for name in self.processors.names:
            if name in skip:
                continue
            key = f"{stream}/{name}"
            try:
                head, chunks = split_chunks(self.processors.state(stream, name), self.chunk_chars)
            except Exception as e:
                errors.append(self._quarantine(stream, name, e, record))
                continue
            if len(chunks) > self.max_chunks:
                self.stats.oversize_state += 1
                log.warning(
                    "%s state of stream %s needs %d chunks (limit %d): not saved; it is relearned after a restart",
                    name,
                    stream,
                    len(chunks),
                    self.max_chunks,
                )
                continue
            # Chunks first, then the head that names them, so a crash between the two leaves the
            # previous head pointing at chunks that fail its digest, never at a mix that passes.
            # A chunk the table holds already as it is (a large part that did not change) is not
            # sent again.
            before = chunk_count(self._saved(key))
            for i, chunk in enumerate(chunks):
                if self._saved(f"{key}#{i}") == chunk:
                    self.stats.state_chunks_kept += 1
                else:
                    writes.append(StateWrite(f"{key}#{i}", chunk))
            writes.append(StateWrite(key, head))
            writes += [StateWrite(f"{key}#{i}", None) for i in range(len(chunks), before)]
        if stream in self._last_seq and writes:  # after the states it goes with (none saved: none)
            writes.append(StateWrite(_position_key(stream), {"seq": self._last_seq[stream]}))
        self._last_save[stream] = now
        self.stats.snapshots += 1
        return writes, errors


def _position_key(stream: str) -> str:
    """Where a stream's last analysed frame number is saved ('@' is in no processor name or stream id)."""
    return f"{stream}/@seq"
