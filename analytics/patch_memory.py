"""The numeric memory behind the anomaly detector: patch features, kNN and per-cell distances,
greedy coresets, and banks of vectors kept as int8 with a per-row scale.

Pure numpy, no state of its own: `analytics/anomaly.py` decides what to remember and when; these
functions say how vectors are compared and stored.

    >>> x = patch_features(record.patches, pool=2)        # (gh', gw', D) unit vectors
    >>> bank = QuantisedBank.quantise(rows[greedy_coreset(rows, 256)])
    >>> knn_distance(x.reshape(-1, x.shape[-1]), bank.vectors, k=3)
"""

from __future__ import annotations

import functools
import math
from typing import Any

import numpy as np

from dinostream.analytics.median import column_median
from dinostream.analytics.state_codec import decode_array, encode_array
from dinostream.core.records import FrameEmbedding


def patch_features(
    patches: np.ndarray, *, pool: int = 1, neighbourhood: int = 1, unit: np.ndarray | None = None
) -> np.ndarray:
    """Unit patch vectors, (gh', gw', D) float32: each patch L2-normalised, average-pooled by `pool`,
    averaged with its `neighbourhood` x `neighbourhood` neighbours (edges use the neighbours that
    exist), normalised again. Normalising first keeps a few large-norm tokens from dominating.
    `unit`: `unit_rows(patches)` when the caller has it already (`FrameEmbedding.unit_patches`)."""
    x = unit_rows(np.asarray(patches, dtype=np.float32)) if unit is None else unit
    if pool > 1:
        x = unit_rows(block_mean(x, pool))
    if neighbourhood > 1:
        x = unit_rows(box_mean(x, neighbourhood))
    return x


def centred_features(grid: np.ndarray) -> np.ndarray:
    """Unit vectors (gh, gw, D) minus the frame's coordinate-wise median vector: what the whole view
    shares (a change of light moves every vector alike) is taken away, and the distance between two
    frames' vectors is what differs beyond that; the median ignores whatever covers less than half
    of the view. Not normalised again: a cell like the median (a blank wall, the sky) stays near
    zero instead of becoming noise blown up to unit length."""
    med = column_median(grid.reshape(-1, grid.shape[-1]))
    return (grid - med).astype(np.float32)


def global_feature(record: FrameEmbedding) -> np.ndarray:
    """Unit CLS and unit mean-patch vectors concatenated, rescaled to unit length (2D float32)."""
    cls = unit_rows(record.cls.astype(np.float32))
    pooled = unit_rows(record.pooled.astype(np.float32))
    return np.concatenate([cls, pooled]) / np.float32(math.sqrt(2.0))


def knn_distance(x: np.ndarray, bank: np.ndarray, k: int) -> np.ndarray:
    """Mean Euclidean distance of each unit row of `x` to its `k` nearest unit rows of `bank`."""
    sims = x @ bank.T
    k = min(k, bank.shape[0])
    if k == 1:
        top = sims.max(axis=1, keepdims=True)
    else:
        top = np.partition(sims, sims.shape[1] - k, axis=1)[:, -k:]
    return np.sqrt(np.maximum(2.0 - 2.0 * top, 0.0)).mean(axis=1)


def neighbour_d2(
    x: np.ndarray, cand: np.ndarray, cand_sq_nb: np.ndarray, reach: int, seen: np.ndarray | None = None
) -> np.ndarray:
    """Squared distances of each cell's vector `x` (gh, gw, D) to the candidates `cand` (gh, gw, m, D)
    of every cell within `reach` (Chebyshev): (gh, gw, (2 reach + 1)^2, m). `cand_sq_nb` holds the
    candidates' squared norms as each cell sees them (`neighbour_values(norms, reach, inf)`, inf for
    a neighbour outside the grid or an empty slot), which makes those distances inf. `seen`:
    `neighbour_values(x, reach, 0.0)`, when the caller compares `x` with several candidate sets.

    One small product per cell, its candidates times the vectors of the cells around it (each
    candidate is read once, not once per neighbour), then every cell takes its distances from its
    neighbours' products: no full cross product."""
    gh, gw, m, _ = cand.shape
    if seen is None:
        seen = neighbour_values(x, reach, 0.0)
    around = np.matmul(cand, np.swapaxes(seen, 2, 3))  # (gh, gw, m, side^2): candidate at c . x at c + offset
    dots = around.reshape(-1)[_neighbour_products(gh, gw, m, reach)]
    x_sq = np.einsum("ijd,ijd->ij", x, x)[..., None, None]
    return np.maximum(x_sq + cand_sq_nb - 2.0 * dots, 0.0)


@functools.lru_cache(maxsize=32)
def _neighbour_products(gh: int, gw: int, m: int, reach: int) -> np.ndarray:
    """Where `neighbour_d2` finds, in the flat (gh, gw, m, side^2) products of each cell's
    candidates with the vectors around it, cell c's product with candidate j of the cell at offset
    o: the product at c + o with offset -o. Outside the grid it points at a clipped cell; those
    distances are made inf by `cand_sq_nb`."""
    side = 2 * reach + 1
    ii, jj = np.meshgrid(np.arange(gh), np.arange(gw), indexing="ij")
    out = np.empty((gh, gw, side * side, m), dtype=np.intp)
    k = 0
    for di in range(-reach, reach + 1):
        for dj in range(-reach, reach + 1):
            cell = np.clip(ii + di, 0, gh - 1) * gw + np.clip(jj + dj, 0, gw - 1)
            out[:, :, k, :] = ((cell * m)[..., None] + np.arange(m)) * (side * side) + (side * side - 1 - k)
            k += 1
    out.flags.writeable = False
    return out


def neighbour_values(a: np.ndarray, reach: int, fill: float) -> np.ndarray:
    """`a` (gh, gw, m, ...) seen from each cell: (gh, gw, (2 reach + 1)^2, m, ...) in `neighbour_d2`'s
    order, `fill` outside the grid."""
    gh, gw = a.shape[:2]
    side = 2 * reach + 1
    out = np.full((gh, gw, side * side, *a.shape[2:]), fill, dtype=a.dtype)
    k = 0
    for di in range(-reach, reach + 1):
        for dj in range(-reach, reach + 1):
            i0, i1 = max(0, -di), min(gh, gh - di)
            j0, j1 = max(0, -dj), min(gw, gw - dj)
            if i1 > i0 and j1 > j0:
                out[i0:i1, j0:j1, k] = a[i0 + di : i1 + di, j0 + dj : j1 + dj]
            k += 1
    return out


def cell_distance(d2: np.ndarray, k: int) -> np.ndarray:
    """Mean distance to the `k` nearest candidates of each cell: squared distances (gh, gw, ...) ->
    (gh, gw); a cell with fewer than `k` candidates averages those it has."""
    flat = d2.reshape(d2.shape[0], d2.shape[1], -1)
    k = min(k, flat.shape[-1])
    near = flat.min(axis=-1, keepdims=True) if k == 1 else np.partition(flat, k - 1, axis=-1)[..., :k]
    dist = np.sqrt(near)
    finite = np.isfinite(dist)
    return (np.where(finite, dist, 0.0).sum(axis=-1) / np.maximum(finite.sum(axis=-1), 1)).astype(np.float32)


def greedy_coreset(x: np.ndarray, m: int, projection: np.ndarray | None = None) -> np.ndarray:
    """Indices of `m` rows of `x` chosen by greedy k-center selection (each pick is the row farthest
    from those already picked), so the bank covers rare normal patterns instead of only frequent
    ones. Distances are computed on `x @ projection` when given (a random projection: same
    geometry, a fraction of the cost). Deterministic; O(len(x) * m * dims)."""
    n = x.shape[0]
    if m >= n:
        return np.arange(n)
    z = x @ projection if projection is not None else x
    z = np.ascontiguousarray(z, dtype=np.float32)
    sq = np.einsum("ij,ij->i", z, z)
    start = int(np.argmax(sq - 2.0 * (z @ z.mean(axis=0))))  # the row farthest from the mean
    chosen = np.empty(m, dtype=np.int64)
    chosen[0] = start
    mind = sq - 2.0 * (z @ z[start]) + sq[start]
    for i in range(1, m):
        j = int(np.argmax(mind))
        chosen[i] = j
        np.minimum(mind, sq - 2.0 * (z @ z[j]) + sq[j], out=mind)
    return chosen


def cell_coresets(x: np.ndarray, m: int) -> np.ndarray:
    """Greedy k-center selection in every cell at once: x (T, gh, gw, D) vectors over time ->
    (gh, gw, m) indices into T; each cell's first pick is its vector farthest from its mean."""
    t = x.shape[0]
    m = min(m, t)
    cells = np.moveaxis(x, 0, 2)  # (gh, gw, T, D)
    gram = np.matmul(cells, np.swapaxes(cells, -1, -2))  # (gh, gw, T, T)
    diag = np.diagonal(gram, axis1=-2, axis2=-1)
    d2 = diag[..., :, None] + diag[..., None, :] - 2.0 * gram
    start = np.argmax(d2.mean(axis=-1), axis=-1)  # farthest from the rest
    chosen = np.empty((*x.shape[1:3], m), dtype=np.int64)
    chosen[..., 0] = start
    mind = np.take_along_axis(d2, start[..., None, None], axis=-2)[..., 0, :]
    for i in range(1, m):
        j = np.argmax(mind, axis=-1)
        chosen[..., i] = j
        np.minimum(mind, np.take_along_axis(d2, j[..., None, None], axis=-2)[..., 0, :], out=mind)
    return chosen


def unit_rows(x: np.ndarray) -> np.ndarray:
    n = np.linalg.norm(x, axis=-1, keepdims=True)
    return (x / np.maximum(n, 1e-12)).astype(np.float32, copy=False)


def block_mean(x: np.ndarray, p: int) -> np.ndarray:
    """Average over p x p blocks of the grid; edge blocks average what they have."""
    gh, gw, _ = x.shape
    rows, cols = np.arange(0, gh, p), np.arange(0, gw, p)
    s = np.add.reduceat(np.add.reduceat(x, rows, axis=0), cols, axis=1)
    nr = np.minimum(rows + p, gh) - rows
    nc = np.minimum(cols + p, gw) - cols
    return s / (nr[:, None] * nc[None, :])[..., None]


def box_mean(x: np.ndarray, n: int) -> np.ndarray:
    """Average of each cell's n x n neighbourhood (integral image; edges average what exists)."""
    gh, gw, d = x.shape
    r = n // 2
    c = np.zeros((gh + 1, gw + 1, d), dtype=np.float64)
    c[1:, 1:] = x.cumsum(axis=0).cumsum(axis=1)
    i0, i1 = np.clip(np.arange(gh) - r, 0, gh), np.clip(np.arange(gh) + r + 1, 0, gh)
    j0, j1 = np.clip(np.arange(gw) - r, 0, gw), np.clip(np.arange(gw) + r + 1, 0, gw)
    s = c[i1][:, j1] - c[i0][:, j1] - c[i1][:, j0] + c[i0][:, j0]
    count = ((i1 - i0)[:, None] * (j1 - j0)[None, :]).astype(np.float64)
    return (s / count[..., None]).astype(np.float32)


def quantise_rows(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows as int8 with a per-row scale (exact to save), see `_dequantise`."""
    scale = (np.maximum(np.abs(x).max(axis=-1), 1e-12) / 127.0).astype(np.float32)
    return np.clip(np.round(x / scale[..., None]), -127, 127).astype(np.int8), scale


def dequantise_rows(q: np.ndarray, scale: np.ndarray, unit: bool = True) -> np.ndarray:
    x = q.astype(np.float32) * scale[..., None]
    return unit_rows(x) if unit else x


class QuantisedBank:
    """Vectors stored as int8 with a per-row scale (a quarter of fp32, saved exactly in snapshots);
    `vectors` is the dequantised float32 matrix that is searched, renormalised when `unit`."""

    def __init__(self, q: np.ndarray, scale: np.ndarray, unit: bool = True) -> None:
        self.q = q.astype(np.int8, copy=False)
        self.scale = scale.astype(np.float32, copy=False)
        self.vectors = dequantise_rows(self.q, self.scale, unit)

    @classmethod
    def quantise(cls, x: np.ndarray, unit: bool = True) -> QuantisedBank:
        return cls(*quantise_rows(x), unit=unit)

    def __len__(self) -> int:
        return int(self.q.shape[0])

    def to_dict(self) -> dict[str, Any]:
        return {"q": encode_array(self.q), "scale": encode_array(self.scale)}

    @classmethod
    def from_dict(cls, d: dict[str, Any], unit: bool = True) -> QuantisedBank:
        return cls(decode_array(d["q"]), decode_array(d["scale"]), unit)
