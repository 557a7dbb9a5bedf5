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
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from dinostream.analytics.processor import FramePass, Processor
from dinostream.analytics.state_chunks import chunk_count, join_chunks, split_chunks
from dinostream.core.records import Event, FrameEmbedding, RecordError, check_stream_id

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
    oversize_state: int = 0
    control: int = 0
    failure: str | None = None  # set when a processor raised; the agent is dead from then on


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

    def receive_record(self, value: bytes, now: float, *, where: str = "") -> HostOutput:
        """One embedding record's bytes: the events it produced and the state writes due. A
        malformed record is skipped and counted (`where` says where it came from, for the log).
        A processor's exception is recorded in `stats.failure` and raised."""
        try:
            record = FrameEmbedding.decode(value)
        except RecordError as e:
            self.stats.malformed += 1
            log.error("skipping malformed record %s: %s", where, e)
            return HostOutput()
        self.stats.records += 1
        try:
            self._ensure_restored(record.stream)
            out = HostOutput(self.processors.process(record))
            if now - self._last_save.get(record.stream, float("-inf")) >= self.snapshot_every_s:
                out.writes = self._save(record.stream, now)
        except Exception as exc:
            # A processor bug must not leave a silently dead agent (faust #416): record it where
            # the owner's supervisor looks (`stats.failure`) so it stops non-zero.
            log.exception("analytics failed on stream %s frame %d", record.stream, record.seq)
            self.stats.failure = f"stream {record.stream} frame {record.seq}: {type(exc).__name__}: {exc}"
            raise
        return out

    def sent(self, event: Event) -> None:
        """Count an event the worker has handed to the events topic (`stats.events`: sent, not just made)."""
        self.stats.events += 1
        self.stats.events_by_type[event.type] = self.stats.events_by_type.get(event.type, 0) + 1

    def receive_control(self, value: bytes, now: float) -> list[StateWrite]:
        """One control message's bytes: the state writes that save its change. A message that
        names an unknown processor or a bad setting is logged and ignored."""
        try:
            msg = json.loads(value)
            target = check_stream_id(msg["stream"])
            self._ensure_restored(target)
            applied = self.processors.configure(target, msg["processor"], msg["changes"])
        except (ValueError, KeyError, TypeError, RecordError) as e:
            log.error("ignoring control message %r: %s", value[:200], e)
            return []
        self.stats.control += 1
        log.info("stream %s: %s settings now %s", target, msg["processor"], applied)
        return self._save(target, now)

    def _ensure_restored(self, stream: str) -> None:
        if stream in self._seen:
            return
        self._seen.add(stream)
        for name in self.processors.names:
            key = f"{stream}/{name}"
            saved = join_chunks(self._saved(key), lambda i, key=key: self._saved(f"{key}#{i}"))
            if saved:
                self.processors.load(stream, name, saved)
                self.stats.restored += 1
                log.info("restored %s state of stream %s", name, stream)

    def _save(self, stream: str, now: float) -> list[StateWrite]:
        writes: list[StateWrite] = []
        for name in self.processors.names:
            key = f"{stream}/{name}"
            head, chunks = split_chunks(self.processors.state(stream, name), self.chunk_chars)
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
            before = chunk_count(self._saved(key))
            writes += [StateWrite(f"{key}#{i}", chunk) for i, chunk in enumerate(chunks)]
            writes.append(StateWrite(key, head))
            writes += [StateWrite(f"{key}#{i}", None) for i in range(len(chunks), before)]
        self._last_save[stream] = now
        self.stats.snapshots += 1
        return writes
