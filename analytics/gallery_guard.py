"""A track gallery whose outages degrade re-identification instead of stopping it.

The shared gallery lives in a Qdrant server; re-identification calls it on the worker's path for
every confirmed track. When the server is down (or refuses, or two workers race to create its
collection), `GuardedTrackGallery` logs it once, says so in `stats` (the worker's health), finds no
cross-stream candidates meanwhile, keeps the tracks it could not write (the latest entry per track,
bounded) and writes them when a retry after `retry_s` succeeds. Calls are not repeated while it is
down, so a hung server costs one timeout per `retry_s`, not one per frame.

    gallery = GuardedTrackGallery(open_gallery(url, key, prefix, data_dir))
    gallery.stats  # {"ok": True, "problem": None, "pending": 0, "failures": 0, "dropped": 0}
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import numpy as np

from dinostream.analytics.gallery import GalleryHit, TrackEntry, TrackGallery

log = logging.getLogger(__name__)


class GuardedTrackGallery:
    """`inner` with its failures contained (see the module docstring). Blocking, like `inner`."""

    def __init__(
        self,
        inner: TrackGallery,
        *,
        retry_s: float = 10.0,
        max_pending: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if retry_s <= 0:
            raise ValueError(f"retry_s must be positive, got {retry_s}")
        if max_pending < 1:
            raise ValueError(f"max_pending must be at least 1, got {max_pending}")
        self.inner = inner
        self.retry_s = retry_s
        self.max_pending = max_pending
        self._clock = clock
        self._pending: OrderedDict[str, TrackEntry] = OrderedDict()
        self._next_try = 0.0
        self.stats: dict[str, Any] = {"ok": True, "problem": None, "pending": 0, "failures": 0, "dropped": 0}

    def add(self, entry: TrackEntry) -> None:
        self._pending.pop(entry.point_id, None)
        self._pending[entry.point_id] = entry  # the latest of each track, written in order
        if len(self._pending) > self.max_pending:
            self._pending.popitem(last=False)
            self.stats["dropped"] += 1
        self.stats["pending"] = len(self._pending)
        self._flush()

    def search(self, embedding: np.ndarray, *, exclude_stream: str, since_ts: float, limit: int) -> list[GalleryHit]:
        if not self._flush():
            return []  # no cross-stream candidates while the gallery is away
        try:
            return self.inner.search(embedding, exclude_stream=exclude_stream, since_ts=since_ts, limit=limit)
        except Exception as e:  # noqa: BLE001 - any failure of the store degrades, none stops the worker
            self._failed("search", e)
            return []

    def prune(self, before_ts: float) -> int:
        if not self._flush():
            return 0
        try:
            return self.inner.prune(before_ts)
        except Exception as e:  # noqa: BLE001
            self._failed("prune", e)
            return 0

    def __len__(self) -> int:
        if not self.stats["ok"]:
            return 0
        try:
            return len(self.inner)
        except Exception as e:  # noqa: BLE001
            self._failed("count", e)
            return 0

    def close(self) -> None:
        self.inner.close()

    def _flush(self) -> bool:
        """Write what is pending; False while the gallery is down (or failed now)."""
        if not self.stats["ok"] and self._clock() < self._next_try:
            return False
        while self._pending:
            key, entry = next(iter(self._pending.items()))
            try:
                self.inner.add(entry)
            except Exception as e:  # noqa: BLE001
                self._failed(f"write track {entry.stream}/{entry.track_id}", e)
                return False
            del self._pending[key]
            self.stats["pending"] = len(self._pending)
        if not self.stats["ok"]:
            log.warning("the track gallery is back: re-identification across streams resumes")
            self.stats.update(ok=True, problem=None)
        return True

    def _failed(self, what: str, e: Exception) -> None:
        problem = f"track gallery: cannot {what}: {type(e).__name__}: {' '.join(str(e).split())[:300]}"
        if self.stats["ok"]:
            log.warning("%s; cross-stream re-identification paused, retrying every %g s", problem, self.retry_s)
        self.stats.update(ok=False, problem=problem, pending=len(self._pending))
        self.stats["failures"] += 1
        self._next_try = self._clock() + self.retry_s
