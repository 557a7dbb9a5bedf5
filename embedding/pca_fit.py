"""Fit a patch PCA for a deployment (`ModelSettings.patch_pca_dims`) from frames of its cameras:

    python -m dinostream.embedding.pca_fit cam1.mp4 cam2.mp4 --model random:vits16 --dims 64 \
        --out dinostream-data/patch_pca.npz

The command line lives apart from `patch_pca` (the fitted transform the embedder applies) so the
embedder can import that without importing itself back.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from dinostream.core.errors import DinostreamError
from dinostream.core.settings import IngestSettings, ModelSettings
from dinostream.embedding.embedder import Embedder
from dinostream.embedding.model_loader import load_model
from dinostream.embedding.patch_pca import fit_patch_pca
from dinostream.ingest.av_source import make_source, probe_source, stream_id_for
from dinostream.ingest.source import Frame


def main(argv: Sequence[str] | None = None) -> int:
    """Fit a patch PCA on frames sampled from videos and save it; prints what it kept."""
    defaults = ModelSettings()
    p = argparse.ArgumentParser(prog="python -m dinostream.embedding.pca_fit", description=main.__doc__)
    p.add_argument("videos", nargs="+", help="sample video files of the deployment's cameras")
    p.add_argument("--dims", type=int, required=True, help="PCA dimensions to keep (patch_pca_dims)")
    p.add_argument("--out", type=Path, default=Path("dinostream-data") / defaults.patch_pca_file)
    p.add_argument("--model", default=defaults.model)
    p.add_argument("--device", default="auto")
    p.add_argument("--image-size", type=int, default=defaults.image_size)
    p.add_argument("--aspect", choices=["square", "preserve"], default=defaults.aspect)
    p.add_argument("--patch-pool", type=int, default=defaults.patch_pool)
    p.add_argument("--fps", type=float, default=1.0, help="frames sampled per second of video")
    p.add_argument("--frames", type=int, default=200, help="at most this many frames per video")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        settings = ModelSettings(
            model=args.model,
            device=args.device,
            image_size=args.image_size,
            aspect=args.aspect,
            patch_pool=args.patch_pool,
        )
        loaded = load_model(settings.model, device=settings.devices[0], seed=settings.seed)
        embedder = Embedder(loaded, settings)
        ingest = IngestSettings(sample_fps=args.fps)

        async def sample(url: str) -> list[Frame]:
            info = probe_source(url, ingest)  # resized as the stage would decode it
            size = (
                embedder.input_size(info.size, info.sample_aspect_ratio)
                if info.size
                else (settings.image_size, settings.image_size)
            )
            out: list[Frame] = []
            async for frame in make_source(url, stream_id_for(url), ingest, size).frames():
                out.append(frame)
                if len(out) >= args.frames:
                    break
            return out

        frames = [f for url in args.videos for f in asyncio.run(sample(url))]
        pca = fit_patch_pca(frames, args.dims, embedder=embedder)
        pca.save(args.out)
    except (DinostreamError, ValueError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(
        f"patch PCA: {pca.in_dim} -> {pca.dims} dims keeps {pca.explained_ratio:.1%} of the variance of "
        f"{pca.samples} patch vectors from {len(frames)} frames; saved to {args.out}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
