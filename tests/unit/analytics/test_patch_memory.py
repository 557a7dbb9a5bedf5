"""The anomaly memory's neighbour distances are the brute-force ones: every cell against the
candidates of each cell within reach, inf outside the grid and for empty slots."""

from __future__ import annotations

import numpy as np
import pytest

from dinostream.analytics.patch_memory import neighbour_d2, neighbour_values


def _brute_force(x: np.ndarray, cand: np.ndarray, sq_ok: np.ndarray, reach: int) -> np.ndarray:
    gh, gw, m, _ = cand.shape
    side = 2 * reach + 1
    out = np.full((gh, gw, side * side, m), np.inf)
    for i in range(gh):
        for j in range(gw):
            k = 0
            for di in range(-reach, reach + 1):
                for dj in range(-reach, reach + 1):
                    a, b = i + di, j + dj
                    if 0 <= a < gh and 0 <= b < gw:
                        for c in range(m):
                            if sq_ok[a, b, c]:
                                out[i, j, k, c] = float(((x[i, j].astype(float) - cand[a, b, c]) ** 2).sum())
                    k += 1
    return out


@pytest.mark.parametrize(("gh", "gw", "m", "reach"), [(5, 7, 3, 1), (4, 6, 2, 2), (3, 3, 1, 1), (1, 4, 2, 1)])
def test_neighbour_distances_are_the_brute_force_ones(gh: int, gw: int, m: int, reach: int) -> None:
    rng = np.random.default_rng(gh * 100 + gw * 10 + m)
    x = rng.standard_normal((gh, gw, 8)).astype(np.float32)
    cand = np.moveaxis(rng.standard_normal((m, gh, gw, 8)).astype(np.float32), 0, 2)  # not contiguous, as calibration's
    ok = rng.random((gh, gw, m)) > 0.2  # some slots empty
    sq = np.where(ok, np.einsum("ijmd,ijmd->ijm", cand, cand), np.inf).astype(np.float32)
    expected = _brute_force(x, cand, ok, reach)
    for seen in (None, neighbour_values(x, reach, 0.0)):
        got = neighbour_d2(x, cand, neighbour_values(sq, reach, np.inf), reach, seen)
        assert got.shape == expected.shape
        assert np.array_equal(np.isinf(got), np.isinf(expected))
        finite = np.isfinite(expected)
        np.testing.assert_allclose(got[finite], expected[finite], rtol=1e-4, atol=1e-4)


def test_no_candidates_give_no_distances() -> None:
    x = np.ones((2, 3, 4), np.float32)
    cand = np.zeros((2, 3, 0, 4), np.float32)
    got = neighbour_d2(x, cand, neighbour_values(np.zeros((2, 3, 0), np.float32), 1, np.inf), 1)
    assert got.shape == (2, 3, 9, 0)
