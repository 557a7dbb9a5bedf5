"""Processor states bigger than a Kafka message survive as a head and chunks."""

from __future__ import annotations

import json

import pytest

from dinostream.analytics.state_chunks import chunk_count, join_chunks, split_chunks


def _big() -> dict[str, object]:
    return {"bank": "x" * 2500, "scores": list(range(300)), "nested": {"a": "é" * 10}}


def test_a_small_state_is_its_own_head() -> None:
    state = {"n": 1}
    head, chunks = split_chunks(state, 100)
    assert head == state and chunks == [] and chunk_count(head) == 0
    assert join_chunks(head, lambda i: pytest.fail("no chunk is read")) == state


@pytest.mark.parametrize("size", [100, 999, 3000], ids=["many-chunks", "few-chunks", "two-chunks"])
def test_round_trip_through_chunks_of_bounded_size(size: int) -> None:
    state = _big()
    head, chunks = split_chunks(state, size)
    assert chunk_count(head) == len(chunks) >= 2
    assert all(len(c) <= size for c in chunks)
    assert join_chunks(head, lambda i: chunks[i]) == state


def test_missing_or_mismatched_chunks_give_none_not_garbage() -> None:
    head, chunks = split_chunks(_big(), 1000)
    assert join_chunks(head, lambda i: None if i == 1 else chunks[i]) is None
    _, other = split_chunks({"bank": "y" * 2500, "scores": list(range(300)), "nested": {"a": "é" * 10}}, 1000)
    assert join_chunks(head, lambda i: other[i]) is None  # a crash between chunks and head
    assert join_chunks(None, lambda i: chunks[i]) is None


def test_head_is_json_and_small() -> None:
    head, _ = split_chunks(_big(), 100)
    assert len(json.dumps(head)) < 100
