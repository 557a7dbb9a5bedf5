"""Keyframe summaries: coverage of everything seen, diversity, determinism."""

from __future__ import annotations

import numpy as np
import pytest

from dinostream.analytics.summary import summarize, summarize_records
from dinostream.core.records import FrameEmbedding

DIM = 24


def clustered(sizes: list[int], seed: int = 0, noise: float = 0.1) -> tuple[np.ndarray, np.ndarray]:
    """Consecutive runs of frames, one per cluster, each around its own direction; returns (vectors, labels)."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(len(sizes), DIM))
    labels = np.repeat(np.arange(len(sizes)), sizes)
    return centres[labels] + noise * rng.normal(size=(len(labels), DIM)), labels


CASES = {
    "four-even": [20, 20, 20, 20],
    "one-brief-moment": [60, 3, 40],  # something seen for three frames must still be in the summary
    "many-small": [5, 5, 5, 5, 5, 5],
    "long-then-short": [200, 10, 10],
}


@pytest.mark.parametrize("sizes", CASES.values(), ids=CASES.keys())
def test_k_keyframes_cover_k_distinct_clusters(sizes: list[int]) -> None:
    vectors, labels = clustered(sizes)
    picked = summarize(vectors, k=len(sizes))
    assert sorted(labels[picked]) == list(range(len(sizes)))
    assert picked == sorted(picked)


def test_keyframes_are_typical_of_their_part_not_its_extremes() -> None:
    vectors, labels = clustered([30, 30], noise=0.05)
    vectors[0] += 0.5 * np.random.default_rng(1).normal(size=DIM)  # one odd frame in cluster 0
    picked = summarize(vectors, k=2)
    assert 0 not in picked
    assert sorted(labels[picked]) == [0, 1]


def test_deterministic() -> None:
    vectors, _ = clustered([15, 25, 10], seed=3)
    times = np.arange(len(vectors)) * 0.5
    assert summarize(vectors, k=4, times=times) == summarize(vectors.copy(), k=4, times=times.copy())


def test_an_unchanging_stretch_is_sampled_across_time() -> None:
    vectors = np.ones((90, DIM))  # nothing changes at all
    picked = summarize(vectors, k=3, times=np.arange(90.0))
    assert picked[0] < 20 and 35 < picked[1] < 55 and picked[2] > 70


@pytest.mark.parametrize(("n", "k", "expected"), [(5, 8, 5), (5, 5, 5), (0, 3, 0), (5, 0, 0)], ids=str)
def test_small_inputs(n: int, k: int, expected: int) -> None:
    vectors = np.random.default_rng(0).normal(size=(n, DIM))
    picked = summarize(vectors, k=k)
    assert len(picked) == expected and picked == sorted(set(picked))


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="one time per vector"):
        summarize(np.ones((4, DIM)), k=2, times=[0.0, 1.0])
    with pytest.raises(ValueError, match="k must be"):
        summarize(np.ones((4, DIM)), k=-1)


def test_summarize_records_of_a_time_window() -> None:
    vectors, labels = clustered([20, 20, 20], seed=5)
    records = [
        FrameEmbedding(
            stream="or-1",
            seq=i,
            pts=float(i),
            ts=1e9 + i,
            model="test",
            untrained=True,
            cls=v,
            pooled=v,
            patches=np.zeros((1, 1, DIM)),
        )
        for i, v in enumerate(vectors)
    ]
    keys = summarize_records(records, k=2, start=20.0, end=59.0)  # the second and third parts only
    assert sorted(labels[[r.seq for r in keys]]) == [1, 2]
    assert summarize_records(records, k=2, start=100.0) == []
