"""PCA of patch vectors, fitted once per deployment, to make patch grids smaller on the wire.

A DINOv3 patch vector has as many dimensions as the model (384 for ViT-S, 1024 for ViT-L), but
the patches of one deployment's cameras span far fewer directions. A PCA fitted on sample
frames keeps most of their variance in k dimensions; the embedder projects every patch on the
device before the record is written (the record's header then says "pdim": k). CLS and the
mean-patch vector keep the model's full dimension.

    >>> pca = fit_patch_pca(records, k=64)           # FrameEmbedding records, patch grids or frames
    >>> pca.save(data_dir / "patch_pca.npz")
    >>> PatchPCA.load(data_dir / "patch_pca.npz").dims
    64

From the command line, on sample videos (the same model and patch_pool as the deployment):

    python -m dinostream.embedding.pca_fit cam1.mp4 cam2.mp4 --model random:vits16 --dims 64 \
        --out dinostream-data/patch_pca.npz
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from dinostream.core.errors import DinostreamError
from dinostream.core.records import FrameEmbedding
from dinostream.ingest.source import Frame

if TYPE_CHECKING:
    from dinostream.embedding.embedder import Embedder

FORMAT = "dinostream-patch-pca/1"


class PatchPCAError(DinostreamError, ValueError):
    """A PCA file cannot be used (missing, malformed, or for another model width); the message says why."""


@dataclass(frozen=True, eq=False)
class PatchPCA:
    """Mean and principal directions of patch vectors: `transform(x) = (x - mean) @ components.T`."""

    mean: np.ndarray  # (D,) float32
    components: np.ndarray  # (k, D) float32, orthonormal rows, by decreasing variance
    explained_variance: np.ndarray  # (k,) float32, variance along each component
    total_variance: float  # sum of the variances of all D dimensions of the fitted vectors
    model: str = ""  # model id the vectors came from
    patch_pool: int = 1  # patch pooling factor of the fitted vectors
    samples: int = 0  # vectors fitted on

    def __post_init__(self) -> None:
        mean = np.asarray(self.mean, dtype=np.float32)
        comps = np.asarray(self.components, dtype=np.float32)
        var = np.asarray(self.explained_variance, dtype=np.float32)
        if mean.ndim != 1 or comps.ndim != 2 or comps.shape[1] != mean.shape[0] or var.shape != (comps.shape[0],):
            raise PatchPCAError(
                f"inconsistent PCA shapes: mean {mean.shape}, components {comps.shape}, var {var.shape}"
            )
        if not comps.shape[0] or comps.shape[0] > comps.shape[1]:
            raise PatchPCAError(f"a PCA needs 1 to {comps.shape[1]} components, got {comps.shape[0]}")
        if not (np.isfinite(mean).all() and np.isfinite(comps).all() and np.isfinite(var).all()):
            raise PatchPCAError("PCA arrays contain NaN or infinite values")
        object.__setattr__(self, "mean", mean)
        object.__setattr__(self, "components", comps)
        object.__setattr__(self, "explained_variance", var)

    @property
    def dims(self) -> int:
        """k, the output dimension."""
        return int(self.components.shape[0])

    @property
    def in_dim(self) -> int:
        """D, the patch vector dimension it was fitted on (the model's width)."""
        return int(self.components.shape[1])

    @property
    def explained_ratio(self) -> float:
        """Fraction of the fitted vectors' variance the k components keep."""
        return float(self.explained_variance.sum() / self.total_variance) if self.total_variance > 0 else 1.0

    def truncated(self, k: int) -> PatchPCA:
        """The first k components (a PCA fitted with more dimensions serves any smaller k)."""
        if not 1 <= k <= self.dims:
            raise PatchPCAError(f"the PCA has {self.dims} components; cannot use {k}")
        return PatchPCA(
            self.mean,
            self.components[:k],
            self.explained_variance[:k],
            self.total_variance,
            self.model,
            self.patch_pool,
            self.samples,
        )

    def transform(self, x: np.ndarray) -> np.ndarray:
        """Project (..., D) vectors to (..., k), float32."""
        x = np.asarray(x, dtype=np.float32)
        if x.shape[-1] != self.in_dim:
            raise PatchPCAError(f"vectors of dimension {x.shape[-1]} given to a PCA of dimension {self.in_dim}")
        return (x - self.mean) @ self.components.T

    def save(self, path: Path) -> None:
        """Write a .npz (atomically: a crash leaves the old file or none)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        with open(tmp, "wb") as f:
            np.savez(
                f,
                format=np.array(FORMAT),
                mean=self.mean,
                components=self.components,
                explained_variance=self.explained_variance,
                total_variance=np.array(self.total_variance, dtype=np.float64),
                model=np.array(self.model),
                patch_pool=np.array(self.patch_pool),
                samples=np.array(self.samples),
            )
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: Path) -> PatchPCA:
        """Read a file written by `save`; raise PatchPCAError naming the file and the problem."""
        try:
            with np.load(Path(path), allow_pickle=False) as data:
                fmt = str(data["format"]) if "format" in data else None
                arrays = {k: data[k] for k in data.files}
        except FileNotFoundError:
            raise PatchPCAError(
                f"no patch PCA at {path}: fit one with "
                f"`python -m dinostream.embedding.pca_fit VIDEO --dims K --out {path}`"
            ) from None
        except (OSError, ValueError) as e:
            raise PatchPCAError(f"{path}: not a readable patch PCA file ({e})") from None
        if fmt != FORMAT:
            raise PatchPCAError(f"{path}: not a {FORMAT} file")
        try:
            return cls(
                mean=arrays["mean"],
                components=arrays["components"],
                explained_variance=arrays["explained_variance"],
                total_variance=float(arrays["total_variance"]),
                model=str(arrays["model"]),
                patch_pool=int(arrays["patch_pool"]),
                samples=int(arrays["samples"]),
            )
        except (KeyError, TypeError, ValueError) as e:
            raise PatchPCAError(f"{path}: malformed patch PCA ({e})") from None


Sample = FrameEmbedding | np.ndarray | Frame


def fit_patch_pca(
    samples: Iterable[Sample],
    k: int,
    *,
    embedder: Embedder | None = None,
    model: str = "",
    patch_pool: int | None = None,
    max_vectors: int = 200_000,
    seed: int = 0,
) -> PatchPCA:
    """Fit a k-dimensional PCA on patch vectors.

    `samples` are `FrameEmbedding` records (their patch grids), arrays of patch vectors
    ((grid_h, grid_w, D) or (N, D)), or `Frame`s, which `embedder` (one without a PCA) embeds
    first. At most `max_vectors` vectors are kept, sampled uniformly. Components are signed so
    that each one's largest coefficient is positive, so refits on the same data agree.
    """
    chunks: list[np.ndarray] = []
    frames: list[Frame] = []
    for s in samples:
        if isinstance(s, FrameEmbedding):
            if s.patch_dim != s.dim:
                raise PatchPCAError(f"record {s.stream}#{s.seq} is already PCA-reduced ({s.patch_dim} of {s.dim} dims)")
            chunks.append(s.patches.reshape(-1, s.patch_dim))
            model = model or s.model
        elif isinstance(s, Frame):
            frames.append(s)
        else:
            a = np.asarray(s)
            if a.ndim < 2:
                raise PatchPCAError(f"patch vectors must be (N, D) or (H, W, D), got shape {a.shape}")
            chunks.append(a.reshape(-1, a.shape[-1]))
    if frames:
        if embedder is None:
            raise PatchPCAError("frames need an embedder (without a PCA) to turn them into patch vectors")
        if embedder.patch_pca is not None:
            raise PatchPCAError("fit the PCA with an embedder that does not already apply one")
        model = model or embedder.loaded.model_id
        patch_pool = patch_pool or embedder.settings.patch_pool
        by_shape: dict[tuple[int, ...], list[Frame]] = {}
        for f in frames:
            by_shape.setdefault(f.image.shape, []).append(f)
        for group in by_shape.values():
            for i in range(0, len(group), embedder.settings.max_batch):
                for rec in embedder.embed(group[i : i + embedder.settings.max_batch]):
                    chunks.append(rec.patches.reshape(-1, rec.patch_dim))
    if not chunks:
        raise PatchPCAError("no samples to fit a PCA on")
    dims = {c.shape[1] for c in chunks}
    if len(dims) != 1:
        raise PatchPCAError(f"patch vectors of different dimensions: {sorted(dims)}")
    (d,) = dims
    x = np.concatenate(chunks).astype(np.float64)
    if len(x) > max_vectors:
        x = x[np.sort(np.random.default_rng(seed).choice(len(x), max_vectors, replace=False))]
    if not 1 <= k <= d:
        raise PatchPCAError(f"k must be between 1 and the patch dimension {d}, got {k}")
    if len(x) < 2:
        raise PatchPCAError(f"a PCA needs at least 2 patch vectors, got {len(x)}")
    mean = x.mean(axis=0)
    xc = x - mean
    cov = xc.T @ xc / (len(x) - 1)
    values, vectors = np.linalg.eigh(cov)  # ascending
    order = np.argsort(values)[::-1][:k]
    comps = vectors[:, order].T
    signs = np.sign(comps[np.arange(k), np.abs(comps).argmax(axis=1)])
    comps *= np.where(signs == 0, 1.0, signs)[:, None]
    return PatchPCA(
        mean=mean.astype(np.float32),
        components=comps.astype(np.float32),
        explained_variance=np.clip(values[order], 0, None).astype(np.float32),
        total_variance=float(np.clip(values, 0, None).sum()),
        model=model,
        patch_pool=patch_pool or 1,
        samples=len(x),
    )
