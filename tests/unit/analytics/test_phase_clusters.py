"""k phases: the frames' k clusters as contiguous phases, short runs merged away, labels in order
of first appearance and repeated when a cluster comes back."""

from __future__ import annotations

import numpy as np
import pytest

from dinostream.analytics.phase_clusters import cluster_phases


def frames(plan: list[tuple[int, int]], dim: int = 32) -> np.ndarray:
    """`plan`: (look, frames) in order; each look a random direction, each frame it plus noise."""
    rng = np.random.default_rng(0)
    looks = {k: rng.normal(size=dim) for k, _ in plan}
    return np.concatenate([looks[k] + 0.15 * rng.normal(size=(n, dim)) for k, n in plan])


def test_k_clusters_give_k_contiguous_phases_at_the_changes() -> None:
    runs = cluster_phases(frames([(0, 20), (1, 15), (2, 25)]), 3)
    assert runs == [(0, 19, 0), (20, 34, 1), (35, 59, 2)]


def test_a_one_frame_flash_joins_the_phase_around_it() -> None:
    runs = cluster_phases(frames([(0, 10), (1, 1), (0, 10), (2, 10)]), 3)
    assert runs == [(0, 20, 0), (21, 30, 1)]


def test_a_cluster_that_comes_back_keeps_its_label() -> None:
    runs = cluster_phases(frames([(0, 10), (1, 10), (0, 10)]), 2)
    assert runs == [(0, 9, 0), (10, 19, 1), (20, 29, 0)]


@pytest.mark.parametrize(
    ("k", "message"), [(0, ">= 1"), (2.5, "whole number"), (True, "whole number"), (11, "at least 11 frames")]
)
def test_a_bad_k_is_refused_by_name(k: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        cluster_phases(frames([(0, 10)]), k)  # type: ignore[arg-type]
