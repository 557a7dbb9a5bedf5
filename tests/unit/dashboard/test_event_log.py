"""Cursors and which offsets a replay reads (the Kafka part runs in tests/integration/test_ws_resume.py)."""

from __future__ import annotations

import pytest

from dinostream.dashboard.event_log import Cursor, plan_replay


@pytest.mark.parametrize(
    ("text", "positions"),
    [("0:12", {0: 12}), ("1:8,0:12", {0: 12, 1: 8}), ("0:0,3:99999", {0: 0, 3: 99999})],
)
def test_cursor_round_trip(text: str, positions: dict[int, int]) -> None:
    cursor = Cursor.parse(text)
    assert cursor is not None and dict(cursor.positions) == positions
    assert Cursor.parse(str(cursor)) == cursor


@pytest.mark.parametrize("text", ["", "0", "0:", "a:1", "0:1,", "6f1c7f0e-3c1a-4b8e-9a55-d1e05c0a7d3b", "0:-1"])
def test_what_is_not_a_cursor(text: str) -> None:
    assert Cursor.parse(text) is None


def test_plan_reads_from_the_cursor_to_the_live_position() -> None:
    plan = plan_replay({0: 5, 1: 9}, begin={0: 0, 1: 0, 2: 0}, stop={0: 8, 1: 9, 2: 2}, limit=100)
    assert plan.ranges == {0: (5, 8), 1: (9, 9), 2: (0, 2)}  # a partition the cursor lacks: from its start
    assert plan.lost == 0 and plan.reason is None


def test_plan_reports_what_retention_removed() -> None:
    plan = plan_replay({0: 5}, begin={0: 20}, stop={0: 30}, limit=100)
    assert plan.ranges == {0: (20, 30)} and plan.lost == 15 and plan.reason == "retention"


def test_plan_keeps_the_newest_when_over_the_limit() -> None:
    plan = plan_replay({0: 0, 1: 0}, begin={0: 0, 1: 0}, stop={0: 300, 1: 100}, limit=40)
    assert plan.ranges == {0: (270, 300), 1: (90, 100)}
    assert plan.lost == 360 and plan.reason == "too_far_behind"
