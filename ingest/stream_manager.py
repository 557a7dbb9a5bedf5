"""The streams a running service ingests: added and removed at run time, each kept alive by its
own `StreamSupervisor` task, persisted in a `StreamRegistry`.

`add` checks the URL against the policy (`dinostream.ingest.url_policy.check_url`) before anything
connects, then returns: the supervisor connects in the background, so a camera that is down
shows up as connecting/backoff in `list()`, not as an error of the call that added it.
`attach` runs a source that arrived by itself (a WHIP publisher's track) the same way: its own
supervisor, frame numbers, health and failures, listed with the others.

    manager = StreamManager(stage, settings.ingest, StreamRegistry(data_dir / "streams.json"))
    await manager.start()                                    # the registry's streams
    await manager.add(StreamConfig(url=url), trusted=True, persist=False)   # a command-line source
    status = await manager.add(StreamConfig(url="rtsp://cam.example.com/live"))   # from the API
    manager.list()                                           # [StreamStatus(config, health, ...)]
    await manager.remove("cam.example.com-live")
    await manager.attach("lobby", whip_source, url="whip:lobby")   # until the publisher leaves
    await manager.stop()
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from dinostream.core.errors import DinostreamError, SourceError
from dinostream.core.settings import IngestSettings, StreamOverrides, StreamUpdate
from dinostream.ingest.av_source import VideoInfo, make_source
from dinostream.ingest.source import Frame, Source, session_first_seq
from dinostream.ingest.stream_registry import (
    DuplicateStreamError,
    FileRun,
    RegistryError,
    StreamConfig,
    StreamRegistry,
    UnknownStreamError,
    file_stamp,
)
from dinostream.ingest.stream_supervisor import StreamState, StreamSupervisor
from dinostream.ingest.url_policy import CheckedUrl, check_url

log = logging.getLogger(__name__)

_STOP_GRACE_S = 10.0  # how long stop()/remove() wait for a supervisor to finish after stop()


class ModelStage(Protocol):
    """What the manager needs from the model stage (`dinostream.embedding.stage.EmbeddingStage`)."""

    def check_resolution(self, resolution: int | None) -> None: ...

    async def resize_target(self, spec: Any, resolution: int | None = None) -> tuple[int, int]: ...

    async def put(self, frame: Frame) -> None: ...


@dataclass(frozen=True)
class _Spec:
    """The shape `ModelStage.resize_target` reads (see `dinostream.ingest.source_plan.SourceSpec`)."""

    stream: str
    url: str
    info: VideoInfo | None = None
    trusted: bool = True  # probed under the same URL policy as it is decoded (API-added: untrusted)


@dataclass(frozen=True)
class StreamStatus:
    """One stream as the API shows it: its configuration and its health now."""

    config: StreamConfig
    health: dict[str, Any]
    persistent: bool  # in the registry (added through the API); False for command-line sources
    input_size: tuple[int, int] | None  # the model input (width, height), once known

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.config.id,
            "config": self.config.model_dump(mode="json"),
            "health": self.health,
            "persistent": self.persistent,
            "input_size": list(self.input_size) if self.input_size else None,
        }


class _SizedSource(Source):
    """A source whose decoder target size is found when it is first iterated (the probe opens the
    source, which may block for the open timeout: off the event loop, and not in `open_source`)."""

    def __init__(
        self,
        stream: str,
        target: str,
        settings: IngestSettings,
        size: Callable[[], Awaitable[tuple[int, int]]],
        *,
        trusted: bool,
    ):
        super().__init__(stream)
        self._target = target
        self._trusted = trusted  # every reopen is checked as strictly as the add was
        self._settings = settings
        self._size = size
        self._inner: Source | None = None
        self._closed = False

    async def frames(self) -> AsyncIterator[Frame]:
        size = await self._size()
        if self._closed:
            return
        inner = self._inner = make_source(self._target, self.stream, self._settings, size, trusted=self._trusted)
        inner.stats = self.stats  # one set of counters: the supervisor holds ours
        async for frame in inner.frames():
            yield frame

    async def close(self) -> None:
        self._closed = True
        if self._inner is not None:
            await self._inner.close()


@dataclass(eq=False)
class _Entry:
    config: StreamConfig
    persistent: bool
    supervisor: StreamSupervisor | None = None
    task: asyncio.Task[None] | None = None
    checked: CheckedUrl | None = None
    info: VideoInfo | None = None  # the header read when a command-line source was checked
    size: tuple[int, int] | None = None
    refused: str | None = None  # a persisted stream whose URL the policy refuses now: not started
    refused_since: float = 0.0
    attached: bool = False  # a source that arrived by itself (`attach`), not one the manager opens
    size_of: Callable[[], tuple[int, int] | None] | None = None  # an attached source's size, once known
    run: FileRun | None = None  # a file source's progress, kept in the registry across restarts


class StreamManager:
    """Registry plus one supervisor task per stream, feeding `stage.put`."""

    def __init__(
        self,
        stage: ModelStage,
        settings: IngestSettings,
        registry: StreamRegistry | None = None,
        *,
        configured: Mapping[str, StreamOverrides] | None = None,
    ) -> None:
        self.stage = stage
        self.settings = settings
        self.registry = registry
        self.configured = configured or {}  # the settings file's per-stream overrides (`Settings.streams`)
        self._entries: dict[str, _Entry] = {}
        self._reserved: set[str] = set()  # ids being added (the URL check awaits)
        self._started = False
        self._stopped = False

    # -- lifecycle ----------------------------------------------------------------------------

    async def start(self) -> None:
        """Start every stream in the registry. A persisted stream the URL policy refuses now (the
        media roots changed, say) is listed as failed with the reason, and kept in the registry."""
        self._started = True
        if self.registry is None:
            return
        for config in self.registry.list():
            if config.id in self._entries:
                log.error(
                    "stream %s of the registry %s is not started: a command-line source has the same id",
                    config.id,
                    self.registry.path,
                )
                continue
            try:
                await self._add(config, trusted=False, write=False, persistent=True, info=None)
            except DinostreamError as e:
                log.error("stream %s of the registry %s is not started: %s", config.id, self.registry.path, e)
                self._entries[config.id] = _Entry(config, True, refused=str(e), refused_since=time.time())

    async def stop(self) -> None:
        """Stop every supervisor (the registry is kept: the streams come back at the next start)."""
        self._stopped = True
        entries = list(self._entries.values())
        await asyncio.gather(*(self._stop_entry(e) for e in entries))

    # -- changes ------------------------------------------------------------------------------

    async def add(
        self,
        config: StreamConfig,
        *,
        trusted: bool = False,
        persist: bool = True,
        info: VideoInfo | None = None,
    ) -> StreamStatus:
        """Check `config.url` against the policy, persist it (with `persist`), start its supervisor.

        Raises `UrlRefused` (a SourceError) naming the reason, `DuplicateStreamError` when the id
        is taken, `InvalidStreamConfig` (a DinostreamError) for a resolution the model cannot use,
        `RegistryError` when the registry cannot be written. Nothing connects before the checks.
        `info`: the source's header if the caller already read it (command-line sources).
        """
        persist = persist and self.registry is not None
        return await self._add(config, trusted=trusted, write=persist, persistent=persist, info=info)

    async def _add(
        self, config: StreamConfig, *, trusted: bool, write: bool, persistent: bool, info: VideoInfo | None
    ) -> StreamStatus:
        if self._stopped:
            raise RuntimeError("the stream manager is stopped")
        sid = config.id
        if sid in self._entries or sid in self._reserved:
            raise DuplicateStreamError(f"stream {sid!r} already exists; remove it first or choose another id")
        self._reserved.add(sid)
        try:
            checked = await asyncio.to_thread(check_url, config.url, self.settings, trusted=trusted)
            own = config.overrides.over(self.configured.get(sid))  # the stream's own over the settings file's
            resolution = own.model.get("image_size")
            self.stage.check_resolution(resolution)
            settings = own.section_over("ingest", self.settings)
            run = self._file_run(sid, config.url, checked)
            if write and self.registry is not None:
                self.registry.add(config)
            entry = _Entry(config, persistent, run=run)
            entry.checked, entry.info = checked, info
            if entry.run is not None and entry.run.ended is not None:
                # Read to its end by an earlier run, and unchanged since: not read (or indexed) again.
                self._entries[sid] = entry
                log.info(
                    "stream %s: %s was read to its end before (%d frames) and is unchanged: not read again "
                    "(remove and add the stream to read it again)",
                    sid,
                    checked.display,
                    entry.run.ended,
                )
                return self._status(entry)
            # A file path is opened as the policy resolved it (absolute, symlinks followed).
            target = checked.target if checked.kind == "file" else config.url

            async def size() -> tuple[int, int]:
                if entry.size is None:
                    spec = _Spec(sid, target, entry.info, trusted)
                    try:
                        entry.size = await self.stage.resize_target(spec, resolution)
                    except ValueError as e:  # a source size the model cannot fit
                        raise SourceError(f"stream {sid}: {e}") from e
                    log.info("stream %s: model input %dx%d", sid, *entry.size)
                return entry.size

            entry.supervisor = StreamSupervisor(
                sid,
                lambda: _SizedSource(sid, target, settings, size, trusted=trusted),
                self.stage.put,
                settings,
                live=checked.is_live,
                # A new session never reuses an earlier one's frame ids; a file replayed re-uses its own.
                first_seq=entry.run.first_seq if entry.run is not None else session_first_seq(),
            )
            entry.task = asyncio.create_task(entry.supervisor.run(), name=f"stream:{sid}")
            entry.task.add_done_callback(lambda t: _log_end(sid, t))
            entry.task.add_done_callback(lambda t: self._file_ended(entry))
            self._entries[sid] = entry
        finally:
            self._reserved.discard(sid)
        log.info("stream %s added: %s", sid, checked.display)
        return self._status(entry)

    def _file_run(self, sid: str, url: str, checked: CheckedUrl) -> FileRun | None:
        """The progress of a file source (kept in the registry, so `up` without one keeps none):
        the earlier run's when it read this very file (same URL, size and modification time),
        else a new one numbered from now on."""
        if checked.kind != "file" or self.registry is None:
            return None
        stamp = file_stamp(checked.target)
        run = self.registry.file_run(sid)
        if run is not None and run.same_file(url, stamp):
            return run
        if stamp is None:  # unreadable: its source fails with the reason
            return None
        run = FileRun(url, stamp, session_first_seq())
        self.registry.set_file_run(sid, run)
        return run

    def _file_ended(self, entry: _Entry) -> None:
        """A file's supervisor finished: if the file was read to its end, remember it."""
        if entry.run is None or entry.supervisor is None or self.registry is None:
            return
        health = entry.supervisor.health()
        if health.state != StreamState.ENDED or self._entries.get(entry.config.id) is not entry:
            return
        entry.run = dataclasses.replace(entry.run, ended=health.frames_out, ended_at=time.time())
        try:
            self.registry.set_file_run(entry.config.id, entry.run)
        except RegistryError as e:  # it is read again after a restart (same frame ids: nothing duplicated)
            log.error("stream %s: cannot remember that the file ended: %s", entry.config.id, e)

    async def remove(self, stream_id: str) -> StreamConfig:
        """Stop the stream, free what it held, and delete it from the registry.

        Raises `UnknownStreamError` when there is no such stream."""
        entry = self._entries.get(stream_id)
        if entry is None:
            raise UnknownStreamError(f"no stream {stream_id!r}")
        if entry.persistent and self.registry is not None and stream_id in self.registry:
            self.registry.remove(stream_id)  # first: if the write fails, the stream keeps running
        self._entries.pop(stream_id, None)
        await self._stop_entry(entry)
        log.info("stream %s removed", stream_id)
        return entry.config

    async def attach(
        self,
        stream: str,
        source: Source,
        *,
        url: str,
        size: Callable[[], tuple[int, int] | None] | None = None,
    ) -> None:
        """Run `source`, which arrived by itself (a WHIP publisher's track), until it ends, fails,
        stalls or the stream is removed: one supervisor like any stream's (not reopened: a file's
        rules), frames numbered from a new session's first id. The stream stays listed, ended or
        failed, until it is removed or attached again. `url` is what `list()` shows as its URL;
        `size()` its model input once known.

        Raises `DuplicateStreamError` when a stream the manager opens has this id."""
        if self._stopped:
            raise RuntimeError("the stream manager is stopped")
        old = self._entries.get(stream)
        if stream in self._reserved or (old is not None and not old.attached):
            raise DuplicateStreamError(f"stream {stream!r} is fed by a configured source")
        if old is not None:  # an earlier publisher of this stream: replaced
            self._entries.pop(stream, None)
            await self._stop_entry(old)
        entry = _Entry(StreamConfig(id=stream, url=url), False, attached=True, size_of=size)
        entry.supervisor = StreamSupervisor(
            stream, lambda: source, self.stage.put, self.settings, live=False, first_seq=session_first_seq()
        )
        task = entry.task = asyncio.create_task(entry.supervisor.run(), name=f"stream:{stream}")
        task.add_done_callback(lambda t: _log_end(stream, t))
        self._entries[stream] = entry
        log.info("stream %s attached: %s", stream, url)
        await asyncio.wait({task})  # not cancelled with the caller: closing the source ends it

    def opens(self, stream_id: str) -> bool:
        """Whether a stream the manager opens itself (not an attached one) has this id."""
        entry = self._entries.get(stream_id)
        return stream_id in self._reserved or (entry is not None and not entry.attached)

    async def update(self, stream_id: str, update: StreamUpdate) -> StreamConfig:
        """Apply a typed change to the stream's settings (persisted for a registry stream); return
        the new config. Only settings the running source does not read (analytics) change here:
        ValueError names a bad field, or says to add the stream again. UnknownStreamError if absent."""
        entry = self._entries.get(stream_id)
        if entry is None:
            raise UnknownStreamError(f"no stream {stream_id!r}")
        config = entry.config.apply(update)
        if not config.runs_like(entry.config):
            raise ValueError(f"stream {stream_id!r}: {update.section} settings apply when it is added; add it again")
        if entry.persistent and self.registry is not None and stream_id in self.registry:
            config = self.registry.update(stream_id, update)
        entry.config = config
        return config

    async def _stop_entry(self, entry: _Entry) -> None:
        if entry.supervisor is None or entry.task is None:
            return
        await entry.supervisor.stop()
        done, _ = await asyncio.wait({entry.task}, timeout=_STOP_GRACE_S)
        if not done:
            log.warning("stream %s: supervisor did not stop within %g s; cancelling it", entry.config.id, _STOP_GRACE_S)
            entry.task.cancel()
            with contextlib.suppress(BaseException):
                await entry.task

    # -- reporting ----------------------------------------------------------------------------

    def get(self, stream_id: str) -> StreamStatus | None:
        entry = self._entries.get(stream_id)
        return self._status(entry) if entry is not None else None

    def list(self) -> list[StreamStatus]:
        return [self._status(e) for e in self._entries.values()]

    def healths(self) -> dict[str, dict[str, Any]]:
        """Health per stream id; `"failed": true` marks a stream that gave up (the service is degraded)."""
        return {sid: self._health(e) for sid, e in self._entries.items()}

    def tasks(self) -> dict[str, asyncio.Task[None]]:
        """The supervisor tasks by stream id (a task ends with an exception only when the model stage failed)."""
        return {sid: e.task for sid, e in self._entries.items() if e.task is not None}

    def _status(self, entry: _Entry) -> StreamStatus:
        size = entry.size if entry.size_of is None else entry.size_of()
        return StreamStatus(entry.config, self._health(entry), entry.persistent, size)

    def _health(self, entry: _Entry) -> dict[str, Any]:
        if entry.supervisor is None and entry.run is not None and entry.run.ended is not None:
            return {  # read to its end by an earlier run
                "stream": entry.config.id,
                "state": str(StreamState.ENDED),
                "last_error": None,
                "frames_in": 0,
                "frames_out": entry.run.ended,
                "drops": 0,
                "reconnects": 0,
                "since": entry.run.ended_at,
                "last_frame_ts": None,
                "failed": False,
                "ended_before": True,
            }
        if entry.supervisor is None:
            return {
                "stream": entry.config.id,
                "state": "failed",
                "last_error": entry.refused,
                "frames_in": 0,
                "frames_out": 0,
                "drops": 0,
                "reconnects": 0,
                "since": entry.refused_since,
                "last_frame_ts": None,
                "failed": True,
            }
        h = dataclasses.asdict(entry.supervisor.health())
        h["state"] = str(h["state"])
        h["failed"] = h["state"] == "failed"
        return h


def _log_end(stream: str, task: asyncio.Task[None]) -> None:
    if task.cancelled():
        return
    exc = task.exception()
    if exc is not None:
        log.error("stream %s: supervisor ended with an error: %s", stream, exc, exc_info=exc)
