"""Comparing a processor's state saved by a release with the state a run makes now.

A release's fixture was written with the numpy and BLAS it ran on; a later install may round the
last float bits differently (a running mean, a matrix product) while every event stays the same.
States are compared key by key: integers and strings exactly, floats and arrays to 1e-4 (floats
near zero, differences of near-equal distances, to 1e-5).
"""

from __future__ import annotations

import numpy as np
import pytest

from dinostream.analytics.state_codec import decode_array


def assert_states_close(saved: object, now: object, where: str = "state") -> None:
    """`saved` (by a release, with the numpy and BLAS it ran on) is `now` but for the last float
    bits: the same keys, the same integers and strings, floats and arrays equal to 1e-4."""
    if isinstance(saved, dict) and isinstance(now, dict):
        assert saved.keys() == now.keys(), where
        if "b64" in saved:
            a, b = decode_array(saved), decode_array(now)
            assert a.dtype == b.dtype and a.shape == b.shape, where
            # A quantised or float16 value may round the other way: one step of it.
            tol = 1 if a.dtype.kind in "iu" else 1e-5 if a.dtype == np.float16 else 1e-6
            rtol = 1e-3 if a.dtype == np.float16 else 1e-4
            np.testing.assert_allclose(a.astype(float), b.astype(float), rtol=rtol, atol=tol, err_msg=where)
            return
        for k in saved:
            assert_states_close(saved[k], now[k], f"{where}/{k}")
    elif isinstance(saved, list) and isinstance(now, list):
        assert len(saved) == len(now), where
        for i, (a, b) in enumerate(zip(saved, now, strict=True)):
            assert_states_close(a, b, f"{where}[{i}]")
    elif isinstance(saved, float) or isinstance(now, float):
        assert saved == pytest.approx(now, rel=1e-4, abs=1e-5), where
    else:
        assert saved == now, where
