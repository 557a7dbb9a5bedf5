"""Per-stream settings: a stream's overrides layered over the global settings (the settings file's
`streams.<id>`, then the stream's own), each value checked by its section's own model, changed
by typed updates that return a new object."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from dinostream.core.settings import (
    Settings,
    StreamOverrides,
    StreamUpdate,
    describe_validation_error,
    settings_from_env,
    stream_settings,
)


def test_a_stream_runs_with_the_global_settings_under_its_own() -> None:
    settings = Settings(
        ingest={"sample_fps": 1.0, "queue_size": 7},
        analytics={"anomaly": {"threshold": 2.0, "cooldown_s": 9.0}},
        streams={"cam1": {"ingest": {"sample_fps": 4}, "analytics": {"anomaly": {"threshold": 1.5}}}},
    )
    own = StreamOverrides(analytics={"anomaly": {"cooldown_s": 1.0}, "scene_change": {"min_shot_s": 3}})

    cam1 = stream_settings(settings, "cam1", own)
    assert (cam1.ingest.sample_fps, cam1.ingest.queue_size) == (4.0, 7)  # file's value; the rest global
    assert (cam1.analytics.anomaly.threshold, cam1.analytics.anomaly.cooldown_s) == (1.5, 1.0)
    assert cam1.analytics.scene_change.min_shot_s == 3.0
    other = stream_settings(settings, "cam2")
    assert other == settings, "a stream without overrides runs with the global settings"

    # Only what differs is stored: a new global default reaches every stream that left it alone.
    raised = settings.model_copy(update={"ingest": settings.ingest.model_copy(update={"queue_size": 64})})
    assert stream_settings(raised, "cam1", own).ingest.queue_size == 64


def test_the_stream_s_own_value_beats_the_settings_file_s() -> None:
    settings = Settings(streams={"cam1": {"analytics": {"anomaly": {"threshold": 1.5}}}})
    own = StreamOverrides(analytics={"anomaly": {"threshold": 3.0}})
    assert stream_settings(settings, "cam1", own).analytics.anomaly.threshold == 3.0


def test_updates_return_a_new_validated_object_and_reset_to_the_layer_below() -> None:
    empty = StreamOverrides()
    once = empty.apply(StreamUpdate.analytics("anomaly", {"threshold": "1.5"}, cooldown_s=2))
    assert once.analytics == {"anomaly": {"threshold": 1.5, "cooldown_s": 2.0}}, "values normalised by the model"
    assert empty.analytics == {}, "the original is left as it was"

    twice = once.apply(StreamUpdate(section="ingest", changes={"sample_fps": 5}))
    assert twice.ingest == {"sample_fps": 5.0} and twice.analytics == once.analytics

    back = twice.apply(StreamUpdate(section="analytics.anomaly", reset=("threshold",)))
    assert back.analytics == {"anomaly": {"cooldown_s": 2.0}}
    gone = back.apply(StreamUpdate(section="analytics.anomaly", reset=("cooldown_s",)))
    assert gone.analytics == {}, "a processor without overrides is dropped"
    assert (
        stream_settings(Settings(), "cam", gone).analytics.anomaly.threshold == Settings().analytics.anomaly.threshold
    )


BAD_OVERRIDES = {
    "out-of-range": ({"ingest": {"sample_fps": 0}}, "ingest.sample_fps", "greater than 0"),
    "unknown-field": ({"analytics": {"anomaly": {"treshold": 1}}}, "analytics.anomaly.treshold", "unknown setting"),
    "global-only": ({"ingest": {"media_roots": ["/"]}}, "ingest.media_roots", "all streams only"),
    "unknown-processor": ({"analytics": {"colour": {"x": 1}}}, "analytics.colour", "unknown settings section"),
    "processor-validator": (
        {"analytics": {"anomaly": {"warmup_frames": 1}}},
        "analytics.anomaly.warmup_frames",
        "at least 2",
    ),
    "resolution": ({"model": {"image_size": 300}}, "model.image_size", "multiple of 16"),
    "resolution-too-big": ({"model": {"image_size": 2048}}, "model.image_size", "at most 1024"),
}


@pytest.mark.parametrize(("data", "field", "why"), BAD_OVERRIDES.values(), ids=BAD_OVERRIDES.keys())
def test_every_override_is_checked_by_its_section_s_model(data: dict, field: str, why: str) -> None:
    with pytest.raises(ValidationError) as e:
        StreamOverrides.model_validate(data)
    message = describe_validation_error(e.value)
    assert field in message and why in message, message

    section, values = next(iter(data.items()))
    if section == "analytics":
        processor, values = next(iter(values.items()))
        section = f"analytics.{processor}"
    with pytest.raises(ValueError, match=field.replace(".", r"\.")):
        StreamOverrides().apply(StreamUpdate.model_construct(section=section, changes=values, reset=()))


def test_an_override_that_breaks_a_global_combination_names_the_field() -> None:
    settings = Settings(model={"image_size": 224, "patch_pool": 4})
    with pytest.raises(ValueError, match=r"model\.patch_pool: patch_pool 4 pools more"):
        stream_settings(settings, "cam", StreamOverrides(model={"image_size": 32}))


def test_an_update_of_an_unknown_section_is_refused() -> None:
    with pytest.raises(ValidationError, match="unknown settings section 'analytics.nope'"):
        StreamUpdate.analytics("nope", threshold=1)


def test_settings_file_streams_are_checked_and_named() -> None:
    with pytest.raises(ValidationError) as e:
        Settings.model_validate({"streams": {"cam1": {"analytics": {"phase": {"window": 1}}}}})
    assert "streams.cam1: analytics.phase.window: Input should be greater than or equal to 2" in (
        describe_validation_error(e.value)
    )
    with pytest.raises(ValidationError, match="invalid stream id"):
        Settings.model_validate({"streams": {"a b": {}}})


def test_retention_per_stream_is_a_view_of_the_streams_retention() -> None:
    old_spelling = Settings.model_validate({"index": {"retention_days": 7, "retention_per_stream": {"cam1": 30}}})
    assert old_spelling.streams["cam1"].index == {"retention_days": 30.0}
    assert stream_settings(old_spelling, "cam1").index.retention_days == 30.0
    assert stream_settings(old_spelling, "cam2").index.retention_days == 7.0

    new_spelling = Settings.model_validate({"streams": {"cam1": {"index": {"retention_days": None}}}})
    assert new_spelling.index.retention_per_stream == {"cam1": None}, "None: cam1 is kept forever"
    assert Settings.model_validate(new_spelling.model_dump()) == new_spelling

    same = {"index": {"retention_per_stream": {"cam1": 3}}, "streams": {"cam1": {"index": {"retention_days": 3.0}}}}
    assert Settings.model_validate(same).index.retention_per_stream == {"cam1": 3.0}
    clash = {"index": {"retention_per_stream": {"cam1": 3}}, "streams": {"cam1": {"index": {"retention_days": 4}}}}
    with pytest.raises(ValidationError, match="retention of stream 'cam1' is set twice"):
        Settings.model_validate(clash)


def test_per_stream_settings_from_the_environment() -> None:
    env = {"DINOSTREAM_STREAMS__CAM1__ANALYTICS__ANOMALY__THRESHOLD": "1.5"}
    s = Settings.model_validate(settings_from_env(env))
    assert stream_settings(s, "cam1").analytics.anomaly.threshold == 1.5
