"""Stored assets: pictures and videos uploaded once and referred to by `asset_id` afterwards.

Each asset is a folder under the store's root: `data` (the bytes as uploaded) and `meta.json`
(what the upload was: kind, media type, size, sha256, times, and what the caller learned by
opening it, such as a picture's size or a video's duration). The type is told by the content's
first bytes (`sniff`), never by the file name; the caller still opens the file to prove it.
Assets expire `retention_days` after they were stored (`expire`, run on every store and
listing: no background task), and the store holds at most `max_total_bytes` (the oldest go
first to make room, never the asset being stored).

    >>> store = AssetStore(data_dir / "assets", max_bytes=200_000_000, retention_days=7)
    >>> meta = store.put(b"...jpeg bytes...", filename="cat.jpg")
    >>> store.path(meta.id)          # the data file, for a decoder
"""

from __future__ import annotations

import builtins  # `list` below the method AssetStore.list means that method in annotations
import contextlib
import hashlib
import io
import json
import os
import re
import secrets
import shutil
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Literal

from dinostream.core.errors import DinostreamError

Kind = Literal["image", "video"]
_ID = re.compile(r"a_[0-9a-f]{24}")
_UNSAFE = re.compile(r"[^\w.\- ]+")
_HEAD = 512  # bytes read to tell the type
_CHUNK = 1 << 20


class AssetError(DinostreamError):
    """An asset the store will not take; `code` says which kind of refusal."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class Sniffed:
    kind: Kind
    media_type: str
    format: str


# (offset, magic, what): checked in order on the first bytes.
_SIGNATURES: tuple[tuple[int, bytes, Sniffed], ...] = (
    (0, b"\x89PNG\r\n\x1a\n", Sniffed("image", "image/png", "png")),
    (0, b"\xff\xd8\xff", Sniffed("image", "image/jpeg", "jpeg")),
    (0, b"GIF87a", Sniffed("image", "image/gif", "gif")),
    (0, b"GIF89a", Sniffed("image", "image/gif", "gif")),
    (0, b"BM", Sniffed("image", "image/bmp", "bmp")),
    (0, b"II*\x00", Sniffed("image", "image/tiff", "tiff")),
    (0, b"MM\x00*", Sniffed("image", "image/tiff", "tiff")),
    (0, b"\x1a\x45\xdf\xa3", Sniffed("video", "video/x-matroska", "matroska")),
)


def sniff(head: bytes) -> Sniffed | None:
    """What the first bytes of a file say it is (pictures and the usual video containers), or None."""
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return Sniffed("image", "image/webp", "webp")
    if head[:4] == b"RIFF" and head[8:12] == b"AVI ":
        return Sniffed("video", "video/x-msvideo", "avi")
    if head[4:8] == b"ftyp":
        brand = head[8:12]
        if brand in (b"avif", b"avis", b"heic", b"heix", b"mif1"):
            return None  # still-image containers this service does not decode as video
        return Sniffed("video", "video/quicktime" if brand == b"qt  " else "video/mp4", "mp4")
    if len(head) >= 189 and head[0] == 0x47 and head[188] == 0x47:
        return Sniffed("video", "video/mp2t", "mpegts")
    for offset, magic, what in _SIGNATURES:
        if head[offset : offset + len(magic)] == magic:
            return what
    return None


@dataclass(frozen=True)
class AssetMeta:
    id: str
    kind: Kind
    media_type: str
    format: str
    bytes: int
    sha256: str
    filename: str | None
    created_at: float  # unix seconds
    expires_at: float
    info: dict[str, Any] = field(default_factory=dict)  # picture size, video duration, ...

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> AssetMeta:
        return cls(**d)


def check_asset_id(asset_id: str) -> str:
    """`asset_id` if it has the shape this store issues (so it can name no other path); else AssetError."""
    if not isinstance(asset_id, str) or not _ID.fullmatch(asset_id):
        raise AssetError("invalid_asset_id", f"{asset_id!r} is not an asset id (a_ and 24 hex digits)")
    return asset_id


class AssetStore:
    """Assets on disk under `root`; safe to call from several threads."""

    def __init__(
        self, root: Path, *, max_bytes: int, retention_days: float, max_total_bytes: int | None = None
    ) -> None:
        self.root = Path(root)
        self.max_bytes = max_bytes
        self.retention_s = retention_days * 86400.0
        self.max_total_bytes = max_total_bytes
        self._lock = threading.Lock()

    def put(
        self, data: bytes, *, filename: str | None = None, info: dict[str, Any] | None = None, now: float | None = None
    ) -> AssetMeta:
        """Store `data` (see `put_stream`)."""
        return self.put_stream(io.BytesIO(data), filename=filename, info=info, now=now)

    def put_stream(
        self,
        src: BinaryIO,
        *,
        filename: str | None = None,
        info: dict[str, Any] | None = None,
        now: float | None = None,
    ) -> AssetMeta:
        """Store what `src` holds, copied in chunks (a video is never all in memory); AssetError
        `asset_too_large` past `max_bytes`, `unsupported_asset` when its content is neither a
        picture nor a video container, `empty_asset` when empty."""
        head = src.read(_HEAD)
        if not head:
            raise AssetError("empty_asset", "the uploaded file is empty")
        what = sniff(head)
        if what is None:
            raise AssetError(
                "unsupported_asset",
                "the file is neither a picture (PNG, JPEG, GIF, WebP, BMP, TIFF) nor a video (MP4/MOV, "
                "Matroska/WebM, AVI, MPEG-TS), judged by its content",
            )
        now = time.time() if now is None else now
        asset_id = "a_" + secrets.token_hex(12)
        folder = self.root / asset_id
        folder.mkdir(parents=True)
        digest, size = hashlib.sha256(), 0
        try:
            with open(folder / "data", "wb") as out:
                chunk = head
                while chunk:
                    size += len(chunk)
                    if size > self.max_bytes:
                        raise AssetError("asset_too_large", f"the asset is larger than the {self.max_bytes}-byte limit")
                    digest.update(chunk)
                    out.write(chunk)
                    chunk = src.read(_CHUNK)
            meta = AssetMeta(
                id=asset_id,
                kind=what.kind,
                media_type=what.media_type,
                format=what.format,
                bytes=size,
                sha256=digest.hexdigest(),
                filename=_safe_name(filename),
                created_at=now,
                expires_at=now + self.retention_s,
                info=dict(info or {}),
            )
            with self._lock:
                self._expire(now)
                self._make_room(size, now, keep=asset_id)
                self._write_meta(meta)
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        return meta

    def update_info(self, asset_id: str, info: dict[str, Any]) -> AssetMeta:
        """Merge `info` into the asset's metadata (what the caller learned by opening it)."""
        with self._lock:
            meta = self._read_meta(check_asset_id(asset_id))
            if meta is None:
                raise AssetError("asset_not_found", f"no asset {asset_id!r}")
            meta = AssetMeta(**{**meta.to_dict(), "info": {**meta.info, **info}})
            self._write_meta(meta)
            return meta

    def get(self, asset_id: str, now: float | None = None) -> AssetMeta | None:
        """The asset's metadata; None when unknown or expired (an expired one is deleted)."""
        check_asset_id(asset_id)
        with self._lock:
            meta = self._read_meta(asset_id)
            if meta is not None and meta.expires_at <= (time.time() if now is None else now):
                self._remove(asset_id)
                return None
            return meta

    def path(self, asset_id: str) -> Path:
        """The asset's data file (AssetError `asset_not_found` when unknown or expired)."""
        if self.get(asset_id) is None:
            raise AssetError("asset_not_found", f"no asset {asset_id!r} (never stored, deleted or expired)")
        return self.root / asset_id / "data"

    def read(self, asset_id: str) -> tuple[AssetMeta, bytes]:
        meta = self.get(asset_id)
        if meta is None:
            raise AssetError("asset_not_found", f"no asset {asset_id!r} (never stored, deleted or expired)")
        return meta, (self.root / asset_id / "data").read_bytes()

    def delete(self, asset_id: str) -> bool:
        """Delete the asset; False when there was none."""
        check_asset_id(asset_id)
        with self._lock:
            return self._remove(asset_id)

    def list(self, now: float | None = None) -> list[AssetMeta]:
        """Every live asset, oldest first (expired ones are deleted on the way)."""
        with self._lock:
            self._expire(time.time() if now is None else now)
            return self._all()

    def expire(self, now: float | None = None) -> builtins.list[str]:
        """Delete the assets past their retention; their ids."""
        with self._lock:
            return self._expire(time.time() if now is None else now)

    def stats(self) -> dict[str, Any]:
        metas = self.list()
        return {
            "count": len(metas),
            "bytes": sum(m.bytes for m in metas),
            "images": sum(m.kind == "image" for m in metas),
            "videos": sum(m.kind == "video" for m in metas),
        }

    # ---------- under the lock ----------

    def _all(self) -> builtins.list[AssetMeta]:
        if not self.root.is_dir():
            return []
        metas = [m for p in self.root.iterdir() if _ID.fullmatch(p.name) and (m := self._read_meta(p.name))]
        return sorted(metas, key=lambda m: (m.created_at, m.id))

    def _expire(self, now: float) -> builtins.list[str]:
        gone = [m.id for m in self._all() if m.expires_at <= now]
        for asset_id in gone:
            self._remove(asset_id)
        return gone

    def _make_room(self, incoming: int, now: float, keep: str) -> None:
        if self.max_total_bytes is None:
            return
        if incoming > self.max_total_bytes:
            raise AssetError(
                "asset_too_large", f"the asset is larger than the store's {self.max_total_bytes}-byte capacity"
            )
        metas = [m for m in self._all() if m.id != keep]
        total = sum(m.bytes for m in metas)
        for m in metas:  # oldest first
            if total + incoming <= self.max_total_bytes:
                break
            self._remove(m.id)
            total -= m.bytes

    def _read_meta(self, asset_id: str) -> AssetMeta | None:
        try:
            return AssetMeta.from_dict(json.loads((self.root / asset_id / "meta.json").read_text()))
        except (OSError, ValueError, TypeError):
            return None

    def _write_meta(self, meta: AssetMeta) -> None:
        folder = self.root / meta.id
        tmp = folder / "meta.json.tmp"
        tmp.write_text(json.dumps(meta.to_dict()))
        os.replace(tmp, folder / "meta.json")

    def _remove(self, asset_id: str) -> bool:
        folder = self.root / asset_id
        if not folder.exists():
            return False
        with contextlib.suppress(FileNotFoundError):
            shutil.rmtree(folder)
        return True


def _safe_name(filename: str | None) -> str | None:
    """The upload's file name without folders or odd characters, for display only."""
    if not filename:
        return None
    name = _UNSAFE.sub("_", filename.replace("\\", "/").rpartition("/")[2]).strip()[:200]
    return name or None
