"""Summaries: k keyframes that represent a time window, chosen for coverage and diversity.

The distance between two frames is the cosine distance of their global embeddings plus
`time_weight` times their distance in time as a fraction of the window, so that a long unchanging
stretch is still sampled at its start and its end. Farthest-point (k-center greedy) selection
picks frames that cover everything that was seen, however briefly; a few k-medoids steps then
move each pick to the middle of what it covers, so a keyframe is typical of its part rather than
its most unusual frame. Pure numpy and deterministic (ties go to the earlier frame).

    >>> idx = summarize(vectors, k=5, times=pts)          # indices into vectors, in time order
    >>> keyframes = summarize_records(records, k=5, start=60.0, end=180.0)
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from dinostream.analytics.regions import unit_rows
from dinostream.analytics.scene_change import global_vector
from dinostream.core.records import FrameEmbedding

_MEDOID_STEPS = 5
_MEDOID_SAMPLE = 2000  # a medoid is chosen among at most this many members of its part


class _Distances:
    """Distances on demand: n frames need not fit an n x n matrix."""

    def __init__(self, vectors: np.ndarray, times: np.ndarray, time_weight: float) -> None:
        self.x = unit_rows(vectors).astype(np.float64)
        span = float(times.max() - times.min()) if times.size else 0.0
        self.t = (times - times.min()) / span if span > 0 else np.zeros_like(times)
        self.w = time_weight

    def to(self, j: int, rows: np.ndarray | slice = slice(None)) -> np.ndarray:
        """Distances of frames `rows` to frame j."""
        return 1.0 - self.x[rows] @ self.x[j] + self.w * np.abs(self.t[rows] - self.t[j])

    def among(self, rows: np.ndarray) -> np.ndarray:
        """The distance matrix of frames `rows`."""
        x, t = self.x[rows], self.t[rows]
        return 1.0 - x @ x.T + self.w * np.abs(t[:, None] - t[None, :])


def summarize(
    vectors: np.ndarray | Sequence[np.ndarray],
    k: int,
    *,
    times: np.ndarray | Sequence[float] | None = None,
    time_weight: float = 0.25,
) -> list[int]:
    """Indices of `k` keyframes among `vectors` (n, D), in increasing order; all of them when
    k >= n. `times` default to the frame order."""
    x = np.asarray(vectors, dtype=np.float64)
    n = 0 if x.size == 0 else x.shape[0]
    if k < 0:
        raise ValueError(f"k must be non-negative, got {k}")
    if time_weight < 0:
        raise ValueError(f"time_weight must be non-negative, got {time_weight}")
    if k == 0 or n == 0:
        return []
    if k >= n:
        return list(range(n))
    t = np.arange(n, dtype=np.float64) if times is None else np.asarray(times, dtype=np.float64)
    if t.shape != (n,):
        raise ValueError(f"need one time per vector: {n} vectors, times of shape {t.shape}")
    dist = _Distances(x, t, time_weight)
    # The first pick is the frame nearest the mean (in embedding and in time): central, not extreme.
    centre = unit_rows(dist.x.mean(axis=0))
    first = int(np.argmin(1.0 - dist.x @ centre + time_weight * np.abs(dist.t - dist.t.mean())))
    picks = [first]
    nearest = dist.to(first)
    while len(picks) < k:
        nxt = int(np.argmax(nearest))  # first of equals: deterministic
        picks.append(nxt)
        nearest = np.minimum(nearest, dist.to(nxt))
    return sorted(_medoid_steps(dist, picks, n))


def _medoid_steps(dist: _Distances, picks: list[int], n: int) -> list[int]:
    for _ in range(_MEDOID_STEPS):
        owner = np.argmin(np.stack([dist.to(p) for p in picks]), axis=0)
        moved = []
        for c, p in enumerate(picks):
            members = np.flatnonzero(owner == c)
            if members.size > _MEDOID_SAMPLE:  # evenly spaced members, deterministic
                members = members[np.linspace(0, members.size - 1, _MEDOID_SAMPLE).astype(int)]
            if members.size == 0:
                moved.append(p)
                continue
            cost = dist.among(members).sum(axis=1)
            moved.append(int(members[int(np.argmin(cost))]))
        if len(set(moved)) < len(moved) or moved == picks:
            break  # a duplicate would lose a keyframe; stop at the last distinct set
        picks = moved
    return picks


def summarize_records(
    records: Sequence[FrameEmbedding],
    k: int,
    *,
    start: float | None = None,
    end: float | None = None,
    time_weight: float = 0.25,
) -> list[FrameEmbedding]:
    """The `k` keyframes of the records whose media time is within [start, end] (either bound
    optional), in time order."""
    chosen = [r for r in records if (start is None or r.pts >= start) and (end is None or r.pts <= end)]
    if not chosen:
        return []
    vectors = np.stack([global_vector(r) for r in chosen])
    idx = summarize(vectors, k, times=[r.pts for r in chosen], time_weight=time_weight)
    return [chosen[i] for i in idx]
