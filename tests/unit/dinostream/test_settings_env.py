"""Settings from DINOSTREAM_* environment variables (containers, Kubernetes)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from dinostream.core.settings import Settings, describe_validation_error, settings_from_env


def test_nested_sections_text_and_json_values() -> None:
    env = {
        "DINOSTREAM_KAFKA__BOOTSTRAP": "kafka-0:9092,kafka-1:9092",
        "DINOSTREAM_INGEST__SAMPLE_FPS": "4",
        "DINOSTREAM_INDEX__QDRANT_API_KEY": "12345",  # digits stay text where text is wanted
        "DINOSTREAM_ANALYTICS__ANOMALY__THRESHOLD": "1.5",  # any depth
        "DINOSTREAM_SOURCES": '["rtsp://cam-1/live", "rtsp://cam-2/live"]',
        "DINOSTREAM_INDEX__QDRANT_URL": "null",
        "PATH": "/usr/bin",
    }
    s = Settings.model_validate(settings_from_env(env))
    assert s.kafka.bootstrap == "kafka-0:9092,kafka-1:9092"
    assert s.ingest.sample_fps == 4.0
    assert s.index.qdrant_api_key == "12345" and s.index.qdrant_url is None
    assert s.analytics.anomaly.threshold == 1.5
    assert s.sources == ["rtsp://cam-1/live", "rtsp://cam-2/live"]


BAD = {
    "unknown-field": ({"DINOSTREAM_KAFKA__BOOTSTRAPP": "x"}, "kafka.bootstrapp"),
    "bad-number": ({"DINOSTREAM_INGEST__SAMPLE_FPS": "fast"}, "ingest.sample_fps"),
}


@pytest.mark.parametrize(("env", "field"), BAD.values(), ids=BAD.keys())
def test_a_bad_variable_is_named(env: dict[str, str], field: str) -> None:
    with pytest.raises(ValidationError) as e:
        Settings.model_validate(settings_from_env(env))
    assert field in describe_validation_error(e.value)


@pytest.mark.parametrize(
    "env",
    [
        {"DINOSTREAM_KAFKA____X": "1"},
        {"DINOSTREAM_SOURCES": "[not json"},
        {"DINOSTREAM_A": "1", "DINOSTREAM_A__B": "2"},
        {"DINOSTREAM_A__B": "2", "DINOSTREAM_A": "1"},
    ],
    ids=["empty-part", "broken-json", "value-then-section", "section-then-value"],
)
def test_malformed_variables_are_refused_with_their_name(env: dict[str, str]) -> None:
    with pytest.raises(ValueError, match="DINOSTREAM_"):
        settings_from_env(env)
