"""Applying watchlist-topic messages to the in-memory watchlist (the Kafka shell is covered by
tests/integration/test_analytics_events.py)."""

from __future__ import annotations

import numpy as np

from dinostream.analytics.watchlist import Exemplar, Watchlist
from dinostream.analytics.watchlist_feed import apply_message, exemplar_message


def _ex(ex_id: str, seed: int = 0) -> Exemplar:
    return Exemplar(ex_id, f"label {ex_id}", np.random.default_rng(seed).normal(size=8))


def test_add_replace_and_remove() -> None:
    wl = Watchlist()
    assert apply_message(wl, b"bag", exemplar_message(_ex("bag"))) == "added bag"
    assert apply_message(wl, b"bag", exemplar_message(_ex("bag", seed=1))) == "added bag"
    (only,) = list(wl)
    np.testing.assert_allclose(only.vector, _ex("bag", seed=1).vector, rtol=1e-6)
    assert apply_message(wl, b"bag", None) == "removed bag"
    assert len(wl) == 0


def test_bad_messages_are_skipped_and_change_nothing() -> None:
    wl = Watchlist([_ex("keep")])
    assert apply_message(wl, None, exemplar_message(_ex("x"))) is None
    assert apply_message(wl, b"x", b"not json") is None
    assert apply_message(wl, b"other-id", exemplar_message(_ex("x"))) is None  # key and id disagree
    assert apply_message(wl, b"x", b'{"id": "x", "vector": [0, 0]}') is None  # zero vector
    assert apply_message(wl, b"x", exemplar_message(Exemplar("x", "", np.ones(3)))) is None  # other dim
    assert [e.id for e in wl] == ["keep"]
