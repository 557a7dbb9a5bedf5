"""How the CLI builds its settings: defaults < --config file < DINOSTREAM_* environment < flags."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from dinostream.cli import build_parser, settings_from_args
from dinostream.core.errors import DinostreamError
from dinostream.core.settings import describe_validation_error, stream_settings


def _args(*argv: str):  # type: ignore[no-untyped-def]
    return build_parser().parse_args(["up", *argv])


def test_file_then_environment_then_flags(tmp_path: Path) -> None:
    cfg = tmp_path / "dinostream.toml"
    cfg.write_text(
        '[ingest]\nsample_fps = 1.0\nqueue_size = 8\n\n[kafka]\nbootstrap = "file:9092"\n\n'
        '[[alerts.targets]]\nkind = "mqtt"\nname = "ops"\nhost = "mqtt.local"\n'
    )
    env = {"DINOSTREAM_INGEST__SAMPLE_FPS": "3", "DINOSTREAM_KAFKA__BOOTSTRAP": "env:9092"}
    s = settings_from_args(_args("--config", str(cfg), "--kafka", "flag:9092", "--media-root", "/srv/video"), env)
    assert s.ingest.queue_size == 8  # from the file only
    assert s.ingest.sample_fps == 3.0  # the environment beats the file
    assert s.kafka.bootstrap == "flag:9092"  # a flag beats both
    assert [str(p) for p in s.ingest.media_roots] == ["/srv/video"]
    assert s.alerts.targets[0].name == "ops"
    assert not s.ingest.allow_loopback
    assert settings_from_args(_args("--allow-loopback"), {}).ingest.allow_loopback


def test_json_config_works_too(tmp_path: Path) -> None:
    cfg = tmp_path / "s.json"
    cfg.write_text('{"http": {"port": 0}}')
    assert settings_from_args(_args("--config", str(cfg)), {}).http.port == 0


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("missing.toml", None, "cannot read settings file"),
        ("bad.toml", "[ingest\nx=", "is not valid TOML"),
        ("bad.json", "{", "is not valid JSON"),
        ("list.json", "[1]", "must hold an object"),
    ],
    ids=["missing", "broken-toml", "broken-json", "not-an-object"],
)
def test_bad_config_files_are_named(tmp_path: Path, name: str, text: str | None, message: str) -> None:
    cfg = tmp_path / name
    if text is not None:
        cfg.write_text(text)
    with pytest.raises(DinostreamError, match=message) as e:
        settings_from_args(_args("--config", str(cfg)), {})
    assert name in str(e.value)


def test_a_malformed_environment_variable_is_a_clear_error() -> None:
    with pytest.raises(DinostreamError, match="DINOSTREAM_SOURCES"):
        settings_from_args(_args(), {"DINOSTREAM_SOURCES": "[oops"})


def test_per_stream_settings_in_the_file_layer_over_the_global_ones(tmp_path: Path) -> None:
    cfg = tmp_path / "dinostream.toml"
    cfg.write_text(
        "[analytics.anomaly]\nthreshold = 2.0\n\n[index]\nretention_days = 7\nretention_per_stream = { cam2 = 3 }\n\n"
        "[streams.cam1.analytics.anomaly]\nthreshold = 1.5\n\n[streams.cam1.ingest]\nsample_fps = 4\n"
    )
    env = {"DINOSTREAM_STREAMS__CAM1__INGEST__SAMPLE_FPS": "5"}
    s = settings_from_args(_args("--config", str(cfg)), env)
    cam1 = stream_settings(s, "cam1")
    assert (cam1.analytics.anomaly.threshold, cam1.ingest.sample_fps) == (1.5, 5.0)  # the environment beats the file
    assert stream_settings(s, "other").analytics.anomaly.threshold == 2.0
    assert stream_settings(s, "cam2").index.retention_days == 3.0, "the older spelling still works"


def test_a_bad_per_stream_setting_in_the_file_is_named(tmp_path: Path) -> None:
    cfg = tmp_path / "dinostream.toml"
    cfg.write_text("[streams.cam1.analytics.anomaly]\nthreshold = -1\n")
    with pytest.raises(ValidationError) as e:
        settings_from_args(_args("--config", str(cfg)), {})
    assert "streams.cam1: analytics.anomaly.threshold: Input should be greater than 0" in (
        describe_validation_error(e.value)
    )
