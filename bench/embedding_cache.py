"""Embeddings of video files cached on disk, so a processor can be re-run without the model.

The records are what the live path makes (`dinostream.analyze.embed_file`: PyAV ingest sampled at
the given rate, then the DINOv3 stage); they are stored one `.npz` per (file content, sampling
rate, model, image size) and read back as `FrameEmbedding`s. Used by `bench/scenecut.py --cache`.

    >>> cache = EmbeddingCache(Path("/tmp/scenecut-cache"), settings)  # doctest: +SKIP
    >>> records = cache.records(Path("video.mp4"), fps=2.0)            # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from dinostream.core.records import FrameEmbedding, Jump
from dinostream.core.settings import IngestSettings, Settings


class EmbeddingCache:
    """Records of each (video, rate), computed once with the model in `settings` and kept in `root`."""

    def __init__(self, root: Path | None, settings: Settings) -> None:
        self.root = root
        self.settings = settings
        self._loaded: Any = None  # the model, loaded at the first cache miss
        self.embedded_frames = 0  # frames that had to go through the model (cache misses)
        self.embed_seconds = 0.0

    def records(self, path: Path, fps: float) -> list[FrameEmbedding]:
        """The records of `path` sampled at `fps`, from the cache when there. Each rate is decoded
        on its own: a lower rate is not taken from a higher one's records, since keyframes-only
        decoding (and so the frames taken and the decoder's jumps) depends on the rate."""
        file = self._file(path, fps)
        if file is not None and file.exists():
            return _load(file)
        t0 = time.perf_counter()
        recs = asyncio.run(self._embed(path, fps))
        self.embed_seconds += time.perf_counter() - t0
        self.embedded_frames += len(recs)
        if file is not None:
            file.parent.mkdir(parents=True, exist_ok=True)
            _save(file.with_suffix(".tmp.npz"), recs)
            file.with_suffix(".tmp.npz").replace(file)
        return recs

    def _file(self, path: Path, fps: float) -> Path | None:
        if self.root is None:
            return None
        m = self.settings.model
        h = hashlib.sha256(path.read_bytes())
        # "jump2": records carry the decoder's jumps (`Jump`; none for one-step spans since "jump2").
        h.update(json.dumps([fps, m.model, m.image_size, m.aspect, m.patch_pool, m.patch_pca_dims, "jump2"]).encode())
        return self.root / f"{path.stem}-{fps:g}fps-{h.hexdigest()[:16]}.npz"

    async def _embed(self, path: Path, fps: float) -> list[FrameEmbedding]:
        from dinostream.analyze import embed_file  # the model's stack only when something is not cached
        from dinostream.embedding.stage import load_model_async

        if self._loaded is None:
            self._loaded = await load_model_async(self.settings.model)
        ingest = IngestSettings(**{**self.settings.ingest.model_dump(), "sample_fps": fps})
        settings = self.settings.model_copy(update={"ingest": ingest})
        out: list[FrameEmbedding] = []
        await embed_file(str(path), settings, self._loaded, out.append)
        return out


def _save(file: Path, recs: list[FrameEmbedding]) -> None:
    head = [[r.stream, r.seq, r.pts, r.ts, r.model, r.untrained, r.jump and r.jump.to_list()] for r in recs]
    thumbs = [r.thumbnail for r in recs]
    np.savez(
        file,
        head=np.asarray(json.dumps(head)),
        cls=np.stack([r.cls for r in recs]),
        pooled=np.stack([r.pooled for r in recs]),
        patches=np.stack([r.patches for r in recs]),
        thumb_len=np.asarray([len(t) for t in thumbs], dtype=np.int64),
        thumbs=np.frombuffer(b"".join(thumbs), dtype=np.uint8),
    )


def _load(file: Path) -> list[FrameEmbedding]:
    with np.load(file) as z:
        head = json.loads(str(z["head"]))
        ends = np.cumsum(z["thumb_len"])
        raw = z["thumbs"].tobytes()
        cls, pooled, patches = z["cls"], z["pooled"], z["patches"]
    starts = [0, *ends[:-1].tolist()]
    return [
        FrameEmbedding(
            s,
            q,
            p,
            t,
            m,
            u,
            cls[i],
            pooled[i],
            patches[i],
            raw[starts[i] : ends[i]],
            jump=Jump.from_list(j) if j else None,
        )
        for i, (s, q, p, t, m, u, j) in enumerate(head)
    ]
