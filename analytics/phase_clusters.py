"""Phases by k clusters: a recording's frames grouped into `k` clusters of their global embeddings
(k-means on unit vectors, cosine), and the clusters' runs in time as contiguous phases, the way
the surgical-recap notebooks ask for `n_clusters` phases.

Runs shorter than `min_frames` (a flash, someone crossing the view) join the run before them (the
first run, the one after it), so a phase is never a frame or two. A cluster that comes back later
gives a phase with the same label: there can be more phases than clusters, never more labels.
Labels are numbered in order of first appearance (P1 is where the recording starts). Deterministic
for a given `seed`. Pure: no model, no I/O. The online alternative, which needs no k, is
`dinostream.analytics.phases.PhaseSegmenter`.

    >>> runs = cluster_phases(unit_cls_vectors, k=5)   # [(first, last, cluster), ...] frame indices
"""

from __future__ import annotations

import numpy as np

from dinostream.analytics.regions import unit_rows


def kmeans(vectors: np.ndarray, k: int, *, seed: int = 0, iterations: int = 100) -> np.ndarray:
    """Cluster index of each row of `vectors` (unit rows, cosine k-means with k-means++ starts)."""
    x = unit_rows(np.asarray(vectors, dtype=np.float64))
    n = len(x)
    rng = np.random.default_rng(seed)
    centres = [x[int(rng.integers(n))]]
    for _ in range(1, k):
        d = np.min(1.0 - x @ np.stack(centres).T, axis=1).clip(0)
        total = float(d.sum())
        centres.append(x[int(rng.choice(n, p=d / total))] if total > 1e-12 else x[int(rng.integers(n))])
    c = np.stack(centres)
    labels = np.full(n, -1)
    for _ in range(iterations):
        new = np.argmax(x @ c.T, axis=1)
        if np.array_equal(new, labels):
            break
        labels = new
        for j in range(k):
            members = x[labels == j]
            if len(members):
                c[j] = unit_rows(members.mean(axis=0))
    return labels


def cluster_phases(vectors: np.ndarray, k: int, *, min_frames: int = 2, seed: int = 0) -> list[tuple[int, int, int]]:
    """Contiguous runs (first index, last index, label 0..) of `vectors`' k-means clusters, in
    order, covering every frame; runs under `min_frames` merged away. ValueError names a bad k."""
    v = np.asarray(vectors)
    n = len(v)
    if not isinstance(k, (int, np.integer)) or isinstance(k, bool) or k < 1:
        raise ValueError(f"k must be a whole number of phases >= 1, got {k!r}")
    if n == 0:
        return []
    if k > n:
        raise ValueError(f"k={k} phases need at least {k} frames, got {n}")
    labels = kmeans(v, int(k), seed=seed)
    runs = _runs(labels)
    while len(runs) > 1:
        short = [i for i, (a, b, _) in enumerate(runs) if b - a + 1 < min_frames]
        if not short:
            break
        i = short[0]
        a, b, _ = runs[i]
        if i > 0:
            pa, _, lab = runs[i - 1]
            runs[i - 1 : i + 1] = [(pa, b, lab)]
        else:
            _, nb, lab = runs[1]
            runs[0:2] = [(a, nb, lab)]
        runs = _joined(runs)
    order: dict[int, int] = {}
    for _, _, lab in runs:
        order.setdefault(lab, len(order))
    return [(a, b, order[lab]) for a, b, lab in runs]


def _runs(labels: np.ndarray) -> list[tuple[int, int, int]]:
    out: list[tuple[int, int, int]] = []
    start = 0
    for i in range(1, len(labels) + 1):
        if i == len(labels) or labels[i] != labels[start]:
            out.append((start, i - 1, int(labels[start])))
            start = i
    return out


def _joined(runs: list[tuple[int, int, int]]) -> list[tuple[int, int, int]]:
    """Neighbouring runs of one label as one."""
    out: list[tuple[int, int, int]] = []
    for a, b, lab in runs:
        if out and out[-1][2] == lab:
            out[-1] = (out[-1][0], b, lab)
        else:
            out.append((a, b, lab))
    return out
