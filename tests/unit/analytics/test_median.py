"""`median` gives np.median's value bit for bit, on the inputs the processors give it."""

from __future__ import annotations

import numpy as np
import pytest

from dinostream.analytics.median import column_median, median


def _same(a: float, b: float) -> bool:
    return (a == b and np.signbit(a) == np.signbit(b)) or (np.isnan(a) and np.isnan(b))


@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.float16], ids=["f8", "f4", "f2"])
def test_median_equals_numpys_bit_for_bit(dtype: type) -> None:
    rng = np.random.default_rng(7)
    for n in range(1, 41):
        for trial in range(25):
            a = (rng.normal(size=n) * 10.0 ** int(rng.integers(-3, 4))).astype(dtype)
            if trial % 3 == 0:  # ties, signed zeros among them
                a = np.round(a) * np.where(rng.random(n) < 0.5, -1, 1).astype(dtype)
            shaped = a.reshape(2, -1) if n % 2 == 0 and trial % 4 == 1 else a
            assert _same(median(shaped), float(np.median(shaped))), (shaped, median(shaped))
            assert _same(median(a.tolist()), float(np.median(a.tolist())))


def test_median_of_values_with_nan_or_inf_and_odd_inputs() -> None:
    assert np.isnan(median([1.0, np.nan, 3.0]))
    assert np.isnan(median(np.array([np.nan, 0.0], dtype=np.float32)))
    assert median([1.0, np.inf, 3.0]) == 3.0 and median([-np.inf, np.inf]) != median([-np.inf, np.inf])  # nan
    assert median([-0.0]) == 0.0 and not np.signbit(median([-0.0, -0.0]))  # as numpy: a sum from +0.0
    assert median(np.array([3, 1, 2])) == 2.0  # integers: np.median itself
    assert median(iter([4.0, 1.0, 2.0, 3.0])) == 2.5
    with pytest.warns(RuntimeWarning):
        assert np.isnan(median([]))


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
@pytest.mark.parametrize("shape", [(196, 128), (195, 7), (1, 3), (2, 5), (4, 1)], ids=str)
def test_column_median_equals_numpys_bit_for_bit(dtype: type, shape: tuple[int, int]) -> None:
    a = np.random.default_rng(5).normal(size=shape).astype(dtype)
    a[0, 0] = -0.0
    a[-1, 0] = -0.0  # both middle values -0.0 where n is 2: numpy gives +0.0
    if shape[1] > 2:
        a[0, 2] = np.nan
    with np.errstate(invalid="ignore"):
        want = np.median(a, axis=0)
    got = column_median(a)
    assert got.dtype == want.dtype and np.array_equal(np.isnan(got), np.isnan(want))
    assert got[~np.isnan(got)].tobytes() == want[~np.isnan(want)].tobytes()
