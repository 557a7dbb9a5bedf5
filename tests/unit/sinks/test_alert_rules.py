"""Alert rules: filters, cooldown per occurrence, dedup of redelivered messages, bounded memory."""

from __future__ import annotations

from typing import Any

import pytest

from dinostream.core.records import Event, event_id
from dinostream.core.settings import AlertRuleSettings, AlertSettings
from dinostream.sinks.alert_rules import AlertRules, TtlLru

NOW = 1_700_000_000.0


def ev(
    *,
    stream: str = "cam-1",
    type: str = "anomaly",
    status: str = "open",
    score: float = 2.0,
    ts: float = NOW,
    key: int = 1,
    t_end: float = 10.0,
) -> Event:
    return Event(
        id=event_id(stream, type, key),
        type=type,
        stream=stream,
        t=10.0,
        t_start=10.0,
        t_end=t_end,
        ts=ts,
        score=score,
        status=status,
    )


def rule(**kw: Any) -> AlertRuleSettings:
    return AlertRuleSettings(**{"name": "r", "targets": ["ops"], **kw})


def targets(rules: AlertRules, event: Event, now: float = NOW) -> list[tuple[str, str]]:
    return [(r.name, t) for r, t in rules.match(event, now)]


FILTER_CASES = [
    pytest.param(rule(), ev(), True, id="defaults-match-open"),
    pytest.param(rule(), ev(status="update"), False, id="defaults-skip-update"),
    pytest.param(rule(), ev(status="closed"), False, id="defaults-skip-closed"),
    pytest.param(rule(statuses=["closed"]), ev(type="scene_change", status="closed"), True, id="status-closed"),
    pytest.param(rule(types=["anomaly"]), ev(type="anomaly"), True, id="type-listed"),
    pytest.param(rule(types=["anomaly", "reid"]), ev(type="scene_change"), False, id="type-not-listed"),
    pytest.param(rule(streams=["cam-1"]), ev(stream="cam-1"), True, id="stream-listed"),
    pytest.param(rule(streams=["cam-1"]), ev(stream="cam-2"), False, id="stream-not-listed"),
    pytest.param(rule(min_score=2.0), ev(score=2.0), True, id="score-at-minimum"),
    pytest.param(rule(min_score=2.0), ev(score=1.99), False, id="score-below-minimum"),
]


@pytest.mark.parametrize(("r", "event", "alerts"), FILTER_CASES)
def test_filters(r: AlertRuleSettings, event: Event, alerts: bool) -> None:
    assert targets(AlertRules([r]), event) == ([("r", "ops")] if alerts else [])


def test_redelivered_message_alerts_once() -> None:
    rules = AlertRules([rule(statuses=["open", "update", "closed"])])
    opened = ev(status="open")
    assert targets(rules, opened) == [("r", "ops")]
    assert targets(rules, opened, NOW + 5) == []  # the same message again (Kafka redelivery)
    assert rules.stats.duplicates == 1
    # The later messages of the occurrence are new deliveries; each update is its own.
    assert targets(rules, ev(status="update", t_end=11.0)) == [("r", "ops")]
    assert targets(rules, ev(status="update", t_end=12.0)) == [("r", "ops")]
    assert targets(rules, ev(status="update", t_end=12.0)) == []
    assert targets(rules, ev(status="closed", t_end=13.0)) == [("r", "ops")]
    assert targets(rules, ev(status="closed", t_end=13.0)) == []


def test_two_rules_for_one_target_alert_it_once() -> None:
    rules = AlertRules([rule(name="any"), rule(name="anomalies", types=["anomaly"], targets=["ops", "pager"])])
    assert targets(rules, ev()) == [("any", "ops"), ("anomalies", "pager")]


def test_dedup_forgets_after_ttl_so_memory_is_bounded_in_time() -> None:
    rules = AlertRules([rule()], dedup_ttl_s=60)
    assert targets(rules, ev(), NOW) == [("r", "ops")]
    assert targets(rules, ev(), NOW + 59) == []
    assert targets(rules, ev(), NOW + 61) == [("r", "ops")]


def test_dedup_memory_is_bounded_in_size() -> None:
    rules = AlertRules([rule()], dedup_size=3)
    for k in range(10):
        assert targets(rules, ev(key=k)) == [("r", "ops")]
    assert len(rules._seen) == 3
    assert targets(rules, ev(key=9)) == []  # recent ones are still remembered
    assert targets(rules, ev(key=0)) == [("r", "ops")]  # the oldest was evicted


COOLDOWN_CASES = [
    pytest.param(ev(key=2, ts=NOW + 5), False, id="same-stream-type-within-cooldown"),
    pytest.param(ev(key=2, ts=NOW + 30), True, id="same-stream-type-after-cooldown"),
    pytest.param(ev(key=2, ts=NOW + 5, stream="cam-2"), True, id="other-stream"),
    pytest.param(ev(key=2, ts=NOW + 5, type="reid"), True, id="other-type"),
]


@pytest.mark.parametrize(("second", "alerts"), COOLDOWN_CASES)
def test_cooldown_per_rule_stream_type(second: Event, alerts: bool) -> None:
    rules = AlertRules([rule(cooldown_s=30)])
    assert targets(rules, ev(key=1, ts=NOW)) == [("r", "ops")]
    assert targets(rules, second) == ([("r", "ops")] if alerts else [])


def test_cooldown_uses_capture_time_not_arrival_time() -> None:
    rules = AlertRules([rule(cooldown_s=30)])
    # A backlog replayed within one second of wall time: capture times 40 s apart both alert.
    assert targets(rules, ev(key=1, ts=NOW), now=NOW + 1000) == [("r", "ops")]
    assert targets(rules, ev(key=2, ts=NOW + 40), now=NOW + 1000.5) == [("r", "ops")]
    assert targets(rules, ev(key=3, ts=NOW + 45), now=NOW + 1000.6) == []
    assert rules.stats.cooled_down == 1


def test_cooldown_decides_per_occurrence() -> None:
    rules = AlertRules([rule(cooldown_s=30, statuses=["open", "closed"])])
    assert targets(rules, ev(key=1, ts=NOW)) == [("r", "ops")]
    held = ev(key=2, ts=NOW + 5)
    assert targets(rules, held) == []
    # Its own close does not alert either; the close of the occurrence that alerted does, even late.
    assert targets(rules, ev(key=2, ts=NOW + 50, status="closed")) == []
    assert targets(rules, ev(key=1, ts=NOW + 60, status="closed")) == [("r", "ops")]


def test_rules_from_settings_validate_targets() -> None:
    with pytest.raises(ValueError, match=r"names unknown targets \['nowhere'\]"):
        AlertSettings(rules=[{"name": "r", "targets": ["nowhere"]}])
    with pytest.raises(ValueError, match="unknown event types"):
        AlertRuleSettings(name="r", types=["fire"], targets=["ops"])


def test_ttl_lru_expires_and_evicts() -> None:
    lru: TtlLru[str, int] = TtlLru(2, ttl=10)
    lru.put("a", 1, 0)
    lru.put("b", 2, 1)
    assert lru.get("a", 5) == 1
    lru.put("c", 3, 2)
    assert lru.get("a", 5) is None and lru.get("b", 5) == 2
    assert lru.get("c", 12) is None
