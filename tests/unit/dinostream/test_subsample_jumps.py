"""Records kept at a higher rate and taken at a lower one (the Engine's own subsampling) keep the
decoder's jumps of the whole span."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np
import pytest

from dinostream.api import _subsample as api_subsample
from dinostream.core.records import FrameEmbedding, Jump

SUBSAMPLERS = {"engine": api_subsample}


def _records(fps: float, n: int) -> list[FrameEmbedding]:
    v = np.ones(8, np.float16)
    base = FrameEmbedding("cam", 0, 0.0, 0.0, "m", True, v, v, np.ones((1, 1, 8), np.float16))
    out = []
    for i in range(n):
        t = i / fps
        jump = Jump(t - 0.5 / fps, 2.0, 1.5) if i else None  # noise steps
        out.append(dataclasses.replace(base, seq=i, pts=t, jump=jump))
    return out


@pytest.mark.parametrize("subsample", SUBSAMPLERS.values(), ids=SUBSAMPLERS.keys())
def test_a_cut_in_a_dropped_records_span_is_kept(subsample: Callable[..., list[FrameEmbedding]]) -> None:
    recs = _records(5.0, 11)  # 0.0 .. 2.0 s at 5 fps
    recs[3] = dataclasses.replace(recs[3], jump=Jump(0.5, 60.0, 2.0))  # a cut at 0.5 s, in the span of 0.6 s
    at1 = subsample(recs, 1.0)
    assert [r.pts for r in at1] == [0.0, 1.0, 2.0] and [r.seq for r in at1] == [0, 1, 2]
    assert at1[0].jump is None
    assert at1[1].jump == Jump(0.5, 60.0, 2.0)  # the span 0.2 .. 1.0 s: the cut, then the noise
    assert at1[1].jump.dominates(2.0)
    assert at1[2].jump is not None  # noise only: the first of five equal steps, not dominant
    assert (at1[2].jump.t, at1[2].jump.size, at1[2].jump.runner_up) == pytest.approx((1.1, 2.0, 2.0))
    assert not at1[2].jump.dominates(2.0)


@pytest.mark.parametrize("subsample", SUBSAMPLERS.values(), ids=SUBSAMPLERS.keys())
def test_an_unknown_span_makes_the_kept_jump_unknown(subsample: Callable[..., list[FrameEmbedding]]) -> None:
    recs = _records(5.0, 6)
    recs[2] = dataclasses.replace(recs[2], jump=None)  # the decoder did not see that span whole
    at1 = subsample(recs, 1.0)
    assert [r.pts for r in at1] == [0.0, 1.0] and at1[1].jump is None


def test_records_given_new_times_drop_their_jumps() -> None:
    """A jump's time is on the records' old clock: records re-timed (fps= or timestamps=, or
    renumbered at 1 fps) do not keep it (it could even fall after the new pts)."""
    from dinostream.api import _timed_records

    recs = _records(5.0, 4)
    for retimed in (_timed_records(recs, 0.5, None), _timed_records(recs, None, [0.0, 0.1, 0.2, 0.3])):
        assert [r.jump for r in retimed] == [None] * 4
    assert [r.jump for r in _timed_records(recs, None, None)] == [r.jump for r in recs]  # times kept
