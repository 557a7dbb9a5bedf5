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


def test_the_text_is_json_dumps_and_a_large_value_keeps_its_chunks_when_the_rest_changes() -> None:
    bank = "q" * 2300  # a large value deep inside (an anomaly model's memory bank)
    before = {"v": 3, "model": {"grid": [14, 14], "memory": {"data": bank}}, "recent": "r" * 50}
    after = {**before, "recent": "s" * 80}  # the part that changes every frame, longer this time
    odd = {**before, 7: "a key json.dumps turns into a string"}  # this object is cut as one value
    for state in (before, after, odd):
        head, chunks = split_chunks(state, 500)
        assert "".join(chunks) == json.dumps(state, separators=(",", ":"))  # what the digest was taken of
        assert join_chunks(head, lambda i, c=chunks: c[i]) == json.loads(json.dumps(state))
        assert all(len(c) <= 500 for c in chunks)
    _, a = split_chunks(before, 500)
    _, b = split_chunks(after, 500)
    assert len(a) == len(b) == 7
    glue = '{"v":3,"model":{"grid":[14,14],"memory":{"data":'
    assert a[:6] == b[:6] == [glue, *(json.dumps(bank)[i : i + 500] for i in range(0, 2302, 500))]
    assert a[6] != b[6] and a[6].startswith("}}")  # what changed, packed after the bank
