"""The streams a service runs, persisted as one JSON file in the data dir (`streams.json`).

A stream added through the HTTP API survives a restart: the registry is written atomically
(a temporary file in the same directory, then `os.replace`) on every change, so a crash leaves
either the old or the new file, never half of one. A file that cannot be read back is an error
naming the file, never an empty registry: silently dropping streams is worse than not starting.

    >>> reg = StreamRegistry(data_dir / "streams.json")
    >>> reg.add(StreamConfig(url="rtsp://cam1.local/live"))      # id derived: "cam1.local-live"
    >>> [c.id for c in reg.list()]
    ['cam1.local-live']
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from dinostream.core.errors import DinostreamError
from dinostream.core.records import RecordError, check_stream_id
from dinostream.core.settings import IngestSettings, describe_validation_error
from dinostream.ingest.av_source import stream_id_for

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


class StreamConfig(BaseModel):
    """One stream: where it comes from and its per-stream overrides of the service defaults.

    Fields left None take the service's settings (`IngestSettings`, `ModelSettings.image_size`).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(  # type: ignore[assignment]
        None,  # filled from the URL before validation; stays None only when the URL is missing (an error anyway)
        description="Stream id (1-64 of letters, digits, '_', '.', '-'); derived from the URL when left out.",
    )
    url: str = Field(
        min_length=1, max_length=MAX_URL_LENGTH, description="Video file path, file://, rtsp(s):// or http(s):// URL."
    )
    sample_fps: float | None = Field(
        None, gt=0, le=120, description="Frames sampled per second (overrides the default)."
    )
    resolution: int | None = Field(
        None, ge=16, le=1024, description="Model resolution preset for this stream (224, 448, 512; a multiple of 16)."
    )
    decode: Literal["auto", "all", "keyframes"] | None = Field(
        None, description="Which frames are decoded: all, keyframes only, or auto."
    )
    realtime: bool | None = Field(None, description="Play a file at its native rate instead of as fast as possible.")

    @model_validator(mode="before")
    @classmethod
    def _derive_id(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("id") is None and isinstance(data.get("url"), str) and data["url"]:
            data = {**data, "id": stream_id_for(data["url"])}
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

    @field_validator("resolution")
    @classmethod
    def _multiple_of_16(cls, v: int | None) -> int | None:
        if v is not None and v % 16:
            raise ValueError(f"resolution must be a multiple of 16 (DINOv3 patch size), got {v}")
        return v

    def ingest_settings(self, base: IngestSettings) -> IngestSettings:
        """`base` with this stream's overrides applied (validated again, so bad combinations fail)."""
        overrides = {
            k: v
            for k, v in (("sample_fps", self.sample_fps), ("decode", self.decode), ("realtime", self.realtime))
            if v is not None and k in IngestSettings.model_fields
        }
        if not overrides:
            return base
        return IngestSettings.model_validate({**base.model_dump(), **overrides})


class StreamRegistry:
    """The persisted set of streams, keyed by id, in insertion order.

    Not thread-safe: use it from one event loop (the `StreamManager`'s). The file is read once,
    at construction; every change rewrites it before returning.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
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
        return streams

    def _write(self, streams: dict[str, StreamConfig]) -> None:
        doc = {
            "version": FORMAT_VERSION,
            "streams": [c.model_dump(mode="json", exclude_none=True) for c in streams.values()],
        }
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
        self._write(streams)
        return self._streams.pop(stream_id)

    def get(self, stream_id: str) -> StreamConfig | None:
        return self._streams.get(stream_id)

    def list(self) -> list[StreamConfig]:
        return list(self._streams.values())

    def __contains__(self, stream_id: object) -> bool:
        return stream_id in self._streams

    def __len__(self) -> int:
        return len(self._streams)
