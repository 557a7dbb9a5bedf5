"""The streams a service runs, persisted as one JSON file in the data dir (`streams.json`).

A stream added through the HTTP API survives a restart: the registry is written atomically
(a temporary file in the same directory, then `os.replace`) on every change, so a crash leaves
either the old or the new file, never half of one. A file that cannot be read back is an error
naming the file, never an empty registry: silently dropping streams is worse than not starting.

    >>> reg = StreamRegistry(data_dir / "streams.json")
    >>> reg.add(StreamConfig(url="rtsp://cam1.local/live"))      # id derived: "cam1.local-live"
    >>> [c.id for c in reg.list()]
    ['cam1.local-live']
    >>> reg.update("cam1.local-live", StreamUpdate.analytics("anomaly", threshold=1.5))  # persisted too

Each entry is a `StreamConfig` written flat (`{"id", "url", "sample_fps", ..., "analytics"}`),
the format of version 1 files from before the per-stream analytics settings.

Beside the streams the file keeps how far each file source got (`FileRun`, under `"files"`, which
readers before it ignore): where its frame numbers start, so a file replayed after a restart gives
its frames the ids they had (the index overwrites instead of duplicating), and whether it ended, so
a file read to its end is not read again while it is unchanged (same size and modification time).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializationInfo,
    SerializerFunctionWrapHandler,
    ValidationError,
    field_validator,
    model_serializer,
    model_validator,
)

from dinostream.core.errors import DinostreamError
from dinostream.core.records import RecordError, check_stream_id
from dinostream.core.settings import (
    MAX_STREAM_IMAGE_SIZE,
    IngestSettings,
    StreamOverrides,
    StreamUpdate,
    describe_validation_error,
    section_model,
    validate_overrides,
)
from dinostream.ingest.av_source import stream_id_for

log = logging.getLogger(__name__)

REGISTRY_FILE = "streams.json"
FORMAT_VERSION = 1
MAX_URL_LENGTH = 4096


class RegistryError(DinostreamError):
    """The registry file cannot be read or written."""


class DuplicateStreamError(RegistryError):
    """A stream with this id is already registered."""


class UnknownStreamError(RegistryError, KeyError):
    """No stream with this id is registered."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else "unknown stream"


# The per-stream settings' names in the HTTP API and the registry file (one flat object, as
# before `StreamOverrides`) -> their section and field there.
FLAT_NAMES: dict[str, tuple[str, str]] = {
    "sample_fps": ("ingest", "sample_fps"),
    "resolution": ("model", "image_size"),
    "decode": ("ingest", "decode"),
    "realtime": ("ingest", "realtime"),
}


def _flat_schema(schema: dict[str, Any]) -> None:
    """The JSON schema shows the flat names the API takes, each described by its section's model."""
    props = schema.setdefault("properties", {})
    props.pop("overrides", None)
    for name, (section, field) in FLAT_NAMES.items():
        owner = {
            k: v
            for k, v in section_model(section).model_json_schema()["properties"][field].items()
            if k not in ("default", "title")  # the service's default applies, not the model's
        }
        props[name] = {"anyOf": [owner, {"type": "null"}], "default": None, "description": owner.get("description")}
    props["resolution"]["description"] = (
        f"Model resolution preset for this stream (224, 448, 512; a multiple of 16, at most {MAX_STREAM_IMAGE_SIZE})."
    )
    props["analytics"] = {
        "type": "object",
        "additionalProperties": {"type": "object"},
        "description": "Per-processor analytics settings of this stream: {processor: {field: value}}.",
    }


def _always(name: str) -> Callable[[str], str]:
    return lambda _field: name


class StreamConfig(BaseModel):
    """One stream: where it comes from and its own settings (a `StreamOverrides`) over the service's.

    Written and read as one flat object, as the API and the registry file always had it:
    `{"id", "url", "sample_fps", "resolution", "decode", "realtime", "analytics"}`; a name left out
    (or null) takes the service's setting (`IngestSettings`, `ModelSettings.image_size`, the
    processors' settings). `resolution` is `model.image_size`; `analytics` is changed at run time
    with `PATCH /api/v1/streams/{id}/analytics/{processor}`.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, json_schema_extra=_flat_schema)

    id: str = Field(  # type: ignore[assignment]
        None,  # filled from the URL before validation; stays None only when the URL is missing (an error anyway)
        description="Stream id (1-64 of letters, digits, '_', '.', '-'); derived from the URL when left out.",
    )
    url: str = Field(
        min_length=1, max_length=MAX_URL_LENGTH, description="Video file path, file://, rtsp(s):// or http(s):// URL."
    )
    overrides: StreamOverrides = Field(
        default_factory=StreamOverrides, description="This stream's settings (the flat names are views of it)."
    )

    @model_validator(mode="before")
    @classmethod
    def _from_flat(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        data = dict(data)
        if data.get("id") is None and isinstance(data.get("url"), str) and data["url"]:
            data["id"] = stream_id_for(data["url"])
        flat = {name: data.pop(name) for name in FLAT_NAMES if name in data}
        analytics = data.pop("analytics", None)
        if not any(v is not None for v in flat.values()) and analytics is None:
            return data
        given = data.get("overrides")
        sections = given.model_dump() if isinstance(given, StreamOverrides) else dict(given or {})
        problems = []
        for name, value in flat.items():
            if value is None:  # null: the service's setting
                continue
            section, field = FLAT_NAMES[name]
            try:  # checked under its own name, so the message names what the caller wrote
                checked = validate_overrides(section, {field: value}, name=_always(name))
            except ValueError as e:
                problems.append(str(e))
                continue
            sections[section] = {**(sections.get(section) or {}), **checked}
        if problems:
            raise ValueError("; ".join(problems))
        if analytics is not None:
            sections["analytics"] = analytics
        data["overrides"] = sections
        return data

    @field_validator("id")
    @classmethod
    def _valid_id(cls, v: str) -> str:
        try:
            return check_stream_id(v)
        except RecordError as e:
            raise ValueError(str(e)) from None

    @field_validator("url")
    @classmethod
    def _no_blank_url(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("url is empty: give a video file path or an rtsp://, rtsps://, http(s):// URL")
        if any(c in v for c in "\r\n\0"):
            raise ValueError("url must not contain line breaks or NUL characters")
        return v

    @field_validator("overrides")
    @classmethod
    def _kept_with_the_stream(cls, v: StreamOverrides) -> StreamOverrides:
        if v.index:  # the index sink reads retention from the settings, not from the registry
            raise ValueError(
                "retention per stream is a setting of the service: streams.<id>.index.retention_days (or "
                "index.retention_per_stream) in the settings file"
            )
        return v

    @model_serializer(mode="wrap")
    def _flat(self, handler: SerializerFunctionWrapHandler, info: SerializationInfo) -> dict[str, Any]:
        out: dict[str, Any] = handler(self)
        sections = out.pop("overrides", None) or {}
        for name, (section, field) in FLAT_NAMES.items():
            value = (sections.get(section) or {}).get(field)
            if value is not None or not info.exclude_none:
                out[name] = value
        if sections.get("analytics"):
            out["analytics"] = sections["analytics"]
        return out

    # -- views of `overrides` under the flat names --------------------------------------------

    @property
    def sample_fps(self) -> float | None:
        return self.overrides.ingest.get("sample_fps")

    @property
    def resolution(self) -> int | None:
        return self.overrides.model.get("image_size")

    @property
    def decode(self) -> str | None:
        return self.overrides.ingest.get("decode")

    @property
    def realtime(self) -> bool | None:
        return self.overrides.ingest.get("realtime")

    @property
    def analytics(self) -> dict[str, dict[str, Any]]:
        return self.overrides.analytics

    def ingest_settings(self, base: IngestSettings) -> IngestSettings:
        """`base` with this stream's overrides applied (validated again, so bad combinations fail)."""
        return self.overrides.section_over("ingest", base)

    def apply(self, update: StreamUpdate) -> StreamConfig:
        """This stream with `update` applied to its settings, validated; ValueError names a bad field."""
        try:
            return StreamConfig(id=self.id, url=self.url, overrides=self.overrides.apply(update))
        except ValidationError as e:
            raise ValueError(describe_validation_error(e)) from None

    def runs_like(self, other: StreamConfig) -> bool:
        """Whether a stream running with `other` runs as with this config: the same source, ingest
        and model settings (analytics settings do not touch the source)."""
        mine, theirs = self.overrides, other.overrides
        return (self.id, self.url, mine.ingest, mine.model) == (other.id, other.url, theirs.ingest, theirs.model)


@dataclass(frozen=True)
class FileRun:
    """A file source's progress, kept across restarts: the file it read (`url`, and `stamp`: size and
    modification time in ns), the number its first frame got (a replay numbers frames the same) and,
    once the file was read to its end, how many frames it gave (`ended`) and when (`ended_at`)."""

    url: str
    stamp: tuple[int, int]
    first_seq: int
    ended: int | None = None
    ended_at: float | None = None

    def same_file(self, url: str, stamp: tuple[int, int] | None) -> bool:
        return self.url == url and self.stamp == stamp

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"url": self.url, "stamp": list(self.stamp), "first_seq": self.first_seq}
        if self.ended is not None:
            out["ended"], out["ended_at"] = self.ended, self.ended_at
        return out

    @classmethod
    def from_json(cls, raw: Any) -> FileRun:
        """ValueError when `raw` is not a run this module wrote."""
        try:
            stamp = raw["stamp"]
            run = cls(
                url=str(raw["url"]),
                stamp=(int(stamp[0]), int(stamp[1])),
                first_seq=int(raw["first_seq"]),
                ended=None if raw.get("ended") is None else int(raw["ended"]),
                ended_at=None if raw.get("ended_at") is None else float(raw["ended_at"]),
            )
        except (KeyError, TypeError, ValueError, IndexError) as e:
            raise ValueError(f"not a file run: {raw!r:.200}") from e
        if len(stamp) != 2 or run.first_seq < 0 or (run.ended is not None and run.ended < 0):
            raise ValueError(f"not a file run: {raw!r:.200}")
        return run


def file_stamp(path: str | os.PathLike[str]) -> tuple[int, int] | None:
    """(size, modification time in ns) of a file, what tells a replay of it from a new file at the
    same path; None when it cannot be read (the source's own open reports why)."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_size, st.st_mtime_ns


class StreamRegistry:
    """The persisted set of streams, keyed by id, in insertion order.

    Not thread-safe: use it from one event loop (the `StreamManager`'s). The file is read once,
    at construction; every change rewrites it before returning.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._runs: dict[str, FileRun] = {}
        self._streams: dict[str, StreamConfig] = self._read()

    def _read(self) -> dict[str, StreamConfig]:
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return {}
        except (OSError, UnicodeDecodeError) as e:
            raise RegistryError(f"cannot read the stream registry {self.path}: {e}") from e
        fix = "fix or remove the file (streams added through the API are lost with it)"
        try:
            doc = json.loads(text)
        except json.JSONDecodeError as e:
            raise RegistryError(f"stream registry {self.path} is corrupt: {e}; {fix}") from e
        if not isinstance(doc, dict) or not isinstance(doc.get("streams"), list):
            raise RegistryError(
                f"stream registry {self.path} is corrupt: expected an object with a 'streams' list; {fix}"
            )
        version = doc.get("version")
        if version != FORMAT_VERSION:
            raise RegistryError(
                f"stream registry {self.path} has format version {version!r}; this dinostream reads version "
                f"{FORMAT_VERSION}"
            )
        streams: dict[str, StreamConfig] = {}
        for i, raw in enumerate(doc["streams"]):
            try:
                config = StreamConfig.model_validate(raw)
            except ValidationError as e:
                raise RegistryError(
                    f"stream registry {self.path} is corrupt: stream #{i}: {describe_validation_error(e)}; {fix}"
                ) from e
            if config.id in streams:
                raise RegistryError(f"stream registry {self.path} is corrupt: stream id {config.id!r} appears twice")
            streams[config.id] = config
        runs = doc.get("files") or {}
        if not isinstance(runs, dict):
            raise RegistryError(f"stream registry {self.path} is corrupt: 'files' is not an object; {fix}")
        for sid, raw in runs.items():
            try:
                self._runs[check_stream_id(sid)] = FileRun.from_json(raw)
            except (ValueError, RecordError) as e:  # bookkeeping only: the file is read again from its start
                log.warning("stream registry %s: forgetting the progress of file stream %r: %s", self.path, sid, e)
        return streams

    def _write(self, streams: dict[str, StreamConfig], runs: dict[str, FileRun] | None = None) -> None:
        doc: dict[str, Any] = {
            "version": FORMAT_VERSION,
            "streams": [c.model_dump(mode="json", exclude_none=True) for c in streams.values()],
        }
        runs = self._runs if runs is None else runs
        if runs:
            doc["files"] = {sid: run.to_json() for sid, run in runs.items()}
        data = json.dumps(doc, indent=2) + "\n"
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".tmp", dir=self.path.parent)
            try:
                with os.fdopen(fd, "w", encoding="utf-8") as f:
                    f.write(data)
                    f.flush()
                    os.fsync(f.fileno())
                os.replace(tmp, self.path)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
                raise
        except OSError as e:
            raise RegistryError(f"cannot write the stream registry {self.path}: {e}") from e

    def add(self, config: StreamConfig) -> None:
        """Register and persist `config`; raise DuplicateStreamError when its id is taken."""
        if config.id in self._streams:
            raise DuplicateStreamError(f"stream {config.id!r} already exists; remove it first or choose another id")
        streams = {**self._streams, config.id: config}
        self._write(streams)
        self._streams = streams

    def remove(self, stream_id: str) -> StreamConfig:
        """Unregister and persist; return the removed config. Raise UnknownStreamError if absent."""
        if stream_id not in self._streams:
            raise UnknownStreamError(f"no stream {stream_id!r} in the registry")
        streams = {k: v for k, v in self._streams.items() if k != stream_id}
        runs = {k: v for k, v in self._runs.items() if k != stream_id}  # added again, it is read afresh
        self._write(streams, runs)
        self._runs = runs
        return self._streams.pop(stream_id)

    def update(self, stream_id: str, update: StreamUpdate) -> StreamConfig:
        """Apply `update` to the stream's settings and persist; return the new config. Raises
        UnknownStreamError if absent, ValueError (naming the field) for an invalid change."""
        config = self._streams.get(stream_id)
        if config is None:
            raise UnknownStreamError(f"no stream {stream_id!r} in the registry")
        new = config.apply(update)
        streams = {**self._streams, stream_id: new}  # same place in the order
        self._write(streams)
        self._streams = streams
        return new

    def get(self, stream_id: str) -> StreamConfig | None:
        return self._streams.get(stream_id)

    def file_run(self, stream_id: str) -> FileRun | None:
        """The progress kept for a file stream with this id (registered or a command-line source)."""
        return self._runs.get(stream_id)

    def set_file_run(self, stream_id: str, run: FileRun) -> None:
        """Persist a file stream's progress (RegistryError when the file cannot be written)."""
        runs = {**self._runs, stream_id: run}
        self._write(self._streams, runs)
        self._runs = runs

    def list(self) -> list[StreamConfig]:
        return list(self._streams.values())

    def __contains__(self, stream_id: object) -> bool:
        return stream_id in self._streams

    def __len__(self) -> int:
        return len(self._streams)
