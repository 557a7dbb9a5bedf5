"""The fast float16 conversions give numpy's bits for every float16 value, every tie between
two of them and the floats either side of each tie, and for subnormals, overflow, inf and NaN."""

from __future__ import annotations

import numpy as np
import pytest

from dinostream.core.half import round_half, to_f32


def _all_halves() -> np.ndarray:
    return np.arange(65536, dtype=np.uint32).astype(np.uint16).view(np.float16)


def _same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    return a.dtype == b.dtype and a.shape == b.shape and np.array_equal(a.view(np.uint32), b.view(np.uint32))


def test_to_f32_is_astype_for_every_float16() -> None:
    h = _all_halves().reshape(256, 256)
    assert _same_bits(to_f32(h), h.astype(np.float32))
    assert _same_bits(to_f32(h[:, ::3]), h[:, ::3].astype(np.float32))  # not contiguous


def test_to_f32_refuses_other_dtypes() -> None:
    with pytest.raises(TypeError, match="float32"):
        to_f32(np.zeros(3, np.float32))


def test_round_half_is_numpy_s_rounding_everywhere() -> None:
    finite = np.unique(_all_halves()[np.isfinite(_all_halves())].astype(np.float32))
    ties = ((finite[1:].astype(np.float64) + finite[:-1]) / 2).astype(np.float32)
    rng = np.random.default_rng(0)
    x = np.concatenate(
        [
            finite,
            ties,
            np.nextafter(ties, np.float32(np.inf)),
            np.nextafter(ties, np.float32(-np.inf)),
            rng.normal(size=50_000).astype(np.float32) * np.float32(1e-5),  # subnormal territory
            rng.normal(size=50_000).astype(np.float32),
            np.array([65504, 65519.99, 65520, 70000, 1e30, -1e30, np.inf, -np.inf, 0.0, -0.0], np.float32),
            np.array([0x7F800001, 0xFFC00000, 0x7FC00001], np.uint32).view(np.float32),  # NaNs
        ]
    )
    with np.errstate(over="ignore"):
        want = x.astype(np.float16).astype(np.float32)
    got = round_half(x)
    nan = np.isnan(want)
    assert np.array_equal(np.isnan(got), nan)
    assert np.array_equal(got[~nan].view(np.uint32), want[~nan].view(np.uint32))


def test_round_half_keeps_the_shape_and_leaves_its_input_alone() -> None:
    x = np.random.default_rng(1).normal(size=(3, 4, 5)).astype(np.float32)
    before = x.copy()
    out = round_half(x)
    assert out.shape == x.shape and out.dtype == np.float32 and np.array_equal(x, before)
    assert _same_bits(out, x.astype(np.float16).astype(np.float32))


def test_zero_dimensional_arrays_stay_zero_dimensional() -> None:
    assert round_half(np.float32(1 / 3)).shape == () and round_half(np.float32(1 / 3)) == np.float16(1 / 3)
    assert to_f32(np.array(np.float16(0.1))).shape == ()
