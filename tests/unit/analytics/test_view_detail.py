"""The share of a view's detail lost against its warm-up: a smeared or covered lens, not light."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from dinostream.analytics.view_detail import BLOCKS, detail_blocks, lost_share, measurable, reference


def _view(seed: int = 0, h: int = 45, w: int = 80) -> np.ndarray:
    """A textured grey view (noise smoothed a little, as a thumbnail's detail is)."""
    rng = np.random.default_rng(seed)
    return np.clip(ndimage.gaussian_filter(rng.uniform(0, 255, (h, w)), 0.8) * 1.6 - 80, 0, 255)


def test_a_change_of_light_leaves_the_detail_where_it_was() -> None:
    ref = detail_blocks(_view())
    for gain in (0.6, 0.8, 1.2):
        assert lost_share(detail_blocks(_view() * gain), ref) == 0.0


def test_a_smeared_or_covered_part_of_the_view_lost_its_detail() -> None:
    view = _view()
    ref = reference([detail_blocks(_view(s)) for s in range(3)] + [detail_blocks(view)])
    smeared = view.copy()
    smeared[:, :40] = ndimage.gaussian_filter(view[:, :40], 3.0)  # a film over the left half
    share = lost_share(detail_blocks(smeared), ref)
    assert 0.4 <= share <= 0.6
    covered = view.copy()
    covered[:30, 50:] = 20.0  # a hand over the top right
    assert lost_share(detail_blocks(covered), ref) >= 0.2
    assert lost_share(detail_blocks(view), ref) <= 0.05  # the view itself lost nothing


def test_blocks_without_detail_in_the_reference_are_not_counted() -> None:
    view = _view()
    view[:, :40] = 128.0  # a blank wall on the left: nothing there to lose
    ref = detail_blocks(view)
    smeared = view.copy()
    smeared[:, :40] = 30.0
    assert lost_share(detail_blocks(smeared), ref) == 0.0
    assert lost_share(detail_blocks(np.full((45, 80), 128.0)), np.zeros(BLOCKS, np.float32)) == 0.0


def test_a_picture_too_small_for_the_blocks_is_refused() -> None:
    assert measurable(np.zeros((45, 80))) and not measurable(np.zeros((5, 80)))
    with pytest.raises(ValueError, match="at least"):
        detail_blocks(np.zeros((5, 80)))
    with pytest.raises(ValueError, match="at least"):
        detail_blocks(np.zeros((45, 80, 3)))
