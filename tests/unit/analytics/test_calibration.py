"""Thresholds calibrated from how alike different tracks of a camera look."""

from __future__ import annotations

import json

import numpy as np
import pytest

from dinostream.analytics.calibration import MIN_PAIRS, NonMatches, calibrated_threshold, non_match_level

DIM = 16


def looks(n: int, alike: float, seed: int = 0) -> list[np.ndarray]:
    """`n` appearances sharing `alike` of one direction: their pairwise cosine is about alike²."""
    rng = np.random.default_rng(seed)
    common = rng.normal(size=DIM)
    common /= np.linalg.norm(common)
    out = []
    for _ in range(n):
        own = rng.normal(size=DIM)
        own -= (own @ common) * common
        out.append(alike * common + np.sqrt(1 - alike**2) * own / np.linalg.norm(own))
    return out


def test_the_configured_threshold_stands_alone_until_enough_pairs() -> None:
    null = NonMatches()
    for v in looks(4, 0.98):  # 6 pairs, all very alike
        null.add(v)
    assert len(null) == 6 < MIN_PAIRS
    assert non_match_level([null]) is None and calibrated_threshold(0.7, [null]) == 0.7


@pytest.mark.parametrize(("alike", "raised"), [(0.3, False), (0.97, True)], ids=["different-objects", "look-alikes"])
def test_look_alike_tracks_raise_the_threshold_and_different_ones_do_not(alike: float, raised: bool) -> None:
    null = NonMatches()
    for v in looks(8, alike):
        null.add(v)
    level = non_match_level([null])
    assert level is not None
    assert (calibrated_threshold(0.7, [null]) > 0.9) is raised
    assert calibrated_threshold(0.7, [null]) == max(0.7, level)


def test_samples_are_bounded_and_restore_exactly() -> None:
    small = NonMatches(keep_tracks=5, keep_pairs=7)
    for v in looks(9, 0.6):
        small.add(v)
    assert len(small) == 7
    null = NonMatches()
    for v in looks(9, 0.6):
        null.add(v)
    again = NonMatches.from_state(json.loads(json.dumps(null.to_state())))
    assert again.pairs == null.pairs
    nxt = looks(1, 0.6, seed=3)[0]
    null.add(nxt)
    again.add(nxt)
    assert again.pairs == null.pairs  # the restored one goes on identically
    assert NonMatches.from_state(None).pairs == [] and NonMatches.from_state({}).pairs == []


def test_vectors_of_another_model_start_the_sample_again() -> None:
    null = NonMatches()
    for v in looks(5, 0.5):
        null.add(v)
    null.add(np.ones(DIM + 1))
    assert len(null) == 0
