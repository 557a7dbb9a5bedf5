"""The service's declaration: which nodes `up` and each role run, and the consumer groups they
read in (the same in `up` as in the separate roles). Nothing is started here."""

from __future__ import annotations

import pytest

from dinostream.analytics.worker import build_app
from dinostream.core.settings import Settings
from dinostream.node import ROLES, consumer_groups, merge_health
from dinostream.nodes import WorkerNode
from dinostream.service import Service


def _settings(**kafka: str) -> Settings:
    return Settings.model_validate({"analytics": {"app_id": "site-7"}, "kafka": kafka})


def groups(service: Service) -> dict[str, str]:
    return {node.name: node.group for node in service.nodes if node.group is not None}


def test_up_and_the_roles_read_in_the_same_consumer_groups() -> None:
    settings = _settings(bootstrap="kafka:9092")
    up = groups(Service(settings))
    by_role = {role: groups(Service(settings, [role])) for role in ROLES}
    assert up["index"] == by_role["index"]["index"] == "site-7-index"
    assert up["worker"] == by_role["worker"]["worker"] == "site-7"
    assert by_role["ingest"] == {"streams": "site-7-ingest"}  # `up` runs its streams itself, in no group
    assert "streams" not in up
    for role_groups in by_role.values():
        for node, group in role_groups.items():
            assert up.get(node, group) == group == consumer_groups(settings)[node]


def test_each_role_runs_its_nodes_and_up_runs_them_all() -> None:
    settings = _settings(bootstrap="kafka:9092")
    names = {role: [n.name for n in Service(settings, [role]).nodes] for role in ROLES}
    assert names == {
        "ingest": ["model", "http", "streams"],
        "worker": ["worker", "http"],
        "index": ["index", "http"],
        "gateway": ["gateway", "http"],  # alerts only with rules
    }
    assert [n.name for n in Service(settings).nodes] == ["model", "worker", "index", "gateway", "http", "streams"]
    with_rules = Settings.model_validate(
        {
            "kafka": {"bootstrap": "kafka:9092"},
            "alerts": {
                "targets": [{"kind": "webhook", "name": "ops", "url": "http://ops.example/hook", "secret": "s" * 16}],
                "rules": [{"name": "cuts", "types": ["scene_change"], "targets": ["ops"]}],
            },
        }
    )
    assert [n.name for n in Service(with_rules, ["gateway"]).nodes] == ["alerts", "gateway", "http"]
    assert groups(Service(with_rules))["alerts"] == with_rules.alerts.group_id


def test_unknown_roles_are_refused() -> None:
    with pytest.raises(ValueError, match="roles must be some of"):
        Service(_settings(), ["indexer"])


def test_a_quarantined_processor_shows_under_its_stream_not_as_a_service_failure() -> None:
    service = Service(Settings(), ["worker"])
    worker = service.node("worker")
    assert isinstance(worker, WorkerNode)
    worker.stats.quarantined["cam-x/anomaly"] = "frame 3: ValueError: boom"
    worker.stats.processor_failures = 1
    health = merge_health({"streams": {"cam-x": {"state": "live", "frames_out": 4}}}, worker.health())
    assert health["streams"]["cam-x"] == {
        "state": "live",
        "frames_out": 4,
        "analytics": {"quarantined": {"anomaly": "frame 3: ValueError: boom"}},
    }
    assert health["problems"] == [] and worker.failure() is None


def test_a_failed_worker_makes_the_service_unready_and_not_alive() -> None:
    """Issue 17: health said 200 "ok" until `up` exited. A worker failure (the watchlist feed died)
    is a problem of the process's health at once (readiness 503: dashboard.app treats any problem
    so) and what /livez reports; the supervisor stops the process on it within a second."""
    service = Service(Settings(), ["worker"])
    worker = service.node("worker")
    assert isinstance(worker, WorkerNode)
    s = service.settings
    worker.app = build_app("127.0.0.1:1", s.kafka, s.analytics, processors=lambda _a: [])  # built, not started
    assert service.health().get("problems", []) == [] and service.alive() is None  # what is watched runs
    worker.stats.failure = "watchlist feed: KafkaError: gone"
    assert service.health()["problems"] == ["analytics worker failed: watchlist feed: KafkaError: gone"]
    assert service.alive() == "analytics worker failed: watchlist feed: KafkaError: gone"
