"""The pure core of stream ownership: which streams an ingest node runs, from its partitions of
the streams topic and what they hold."""

from __future__ import annotations

import pytest

from dinostream.ingest.stream_ownership import OwnershipTable, Start, Stop, decode_config, encode_config
from dinostream.ingest.stream_registry import StreamConfig


def cfg(sid: str, **kw: object) -> StreamConfig:
    return StreamConfig.model_validate({"id": sid, "url": f"rtsp://cam.example.com/{sid}", **kw})


def test_a_partition_is_read_whole_before_its_streams_start() -> None:
    table = OwnershipTable()
    assert table.assigned({0: 3}) == []
    assert table.message(0, 0, "a", cfg("a")) == []
    assert table.message(0, 1, "b", cfg("b")) == []
    # The last message before the end offset seen at assignment: "a" was removed, never started.
    assert table.message(0, 2, "a", None) == [Start(cfg("b"))]
    assert set(table.running) == {"b"}


def test_an_empty_partition_is_live_at_once_and_follows_changes() -> None:
    table = OwnershipTable()
    assert table.assigned({1: 0}) == []
    assert table.message(1, 0, "a", cfg("a")) == [Start(cfg("a"))]
    assert table.message(1, 1, "a", cfg("a")) == []  # the same config again: nothing to do
    changed = cfg("a", sample_fps=5)
    assert table.message(1, 2, "a", changed) == [Stop("a"), Start(changed)]
    assert table.message(1, 3, "a", None) == [Stop("a")]
    assert table.running == {}


def test_revocation_stops_only_the_streams_of_the_partitions_taken_away() -> None:
    table = OwnershipTable()
    table.assigned({0: 0, 1: 0})
    table.message(0, 0, "a", cfg("a"))
    table.message(1, 0, "b", cfg("b"))
    assert table.revoked([0]) == [Stop("a")]
    assert set(table.running) == {"b"} and table.partitions == {1}


def test_messages_of_partitions_not_owned_are_ignored() -> None:
    table = OwnershipTable()
    table.assigned({0: 0})
    assert table.message(1, 0, "x", cfg("x")) == []  # fetched before a rebalance took it away
    assert table.running == {}


def test_caught_up_by_position_starts_what_was_read() -> None:
    table = OwnershipTable()
    table.assigned({0: 5})  # e.g. the end offset counts records we will not see one by one
    table.message(0, 0, "a", cfg("a"))
    assert table.caught_up(0) == [Start(cfg("a"))]
    assert table.caught_up(0) == []  # twice is harmless


def test_configs_round_trip_and_bad_messages_name_the_problem() -> None:
    c = cfg("cam-1", sample_fps=4)
    assert decode_config(b"cam-1", encode_config(c)) == ("cam-1", c)
    assert decode_config(b"cam-1", None) == ("cam-1", None)
    with pytest.raises(ValueError, match="another id"):
        decode_config(b"cam-2", encode_config(c))
    with pytest.raises(ValueError, match="invalid config"):
        decode_config(b"cam-1", b'{"url": ""}')
    with pytest.raises(ValueError, match="without a key"):
        decode_config(None, encode_config(c))


def test_a_change_of_analytics_settings_only_does_not_restart_the_stream() -> None:
    table = OwnershipTable()
    table.assigned({0: 0})
    assert table.message(0, 0, "a", cfg("a", sample_fps=2)) == [Start(cfg("a", sample_fps=2))]
    tuned = cfg("a", sample_fps=2, analytics={"anomaly": {"threshold": 1.5}})
    assert table.message(0, 1, "a", tuned) == [], "the workers apply it; the source runs on"
    assert table.running["a"] == tuned
    faster = cfg("a", sample_fps=4, analytics={"anomaly": {"threshold": 1.5}})
    assert table.message(0, 2, "a", faster) == [Stop("a"), Start(faster)]


def test_analytics_settings_round_trip_through_the_topic() -> None:
    c = cfg("cam-1", analytics={"scene_change": {"min_shot_s": 2.5}})
    assert decode_config(b"cam-1", encode_config(c)) == ("cam-1", c)
    with pytest.raises(ValueError, match=r"analytics\.scene_change\.min_shot_s"):
        decode_config(b"cam-1", b'{"url": "a.mp4", "id": "cam-1", "analytics": {"scene_change": {"min_shot_s": -1}}}')
