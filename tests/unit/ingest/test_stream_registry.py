"""The persisted stream registry: what is added survives a reopen, duplicates and corrupt files
are refused with an error naming the problem, and writes never leave a half-written file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from dinostream.core.settings import IngestSettings, StreamUpdate
from dinostream.ingest.stream_registry import (
    DuplicateStreamError,
    RegistryError,
    StreamConfig,
    StreamRegistry,
    UnknownStreamError,
)


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "data" / "streams.json"  # the data dir does not exist yet


def test_streams_persist_across_reopen_in_order(path: Path) -> None:
    reg = StreamRegistry(path)
    assert reg.list() == [] and not path.exists()
    cam = StreamConfig(url="rtsp://cam1.local/live", sample_fps=5, resolution=448, decode="keyframes")
    clip = StreamConfig(id="clip", url="/media/a.mp4", realtime=True)
    reg.add(cam)
    reg.add(clip)

    again = StreamRegistry(path)
    assert [c.id for c in again.list()] == ["cam1.local-live", "clip"]
    assert again.get("cam1.local-live") == cam and again.get("clip") == clip
    assert again.get("nope") is None

    assert again.remove("cam1.local-live") == cam
    assert [c.id for c in StreamRegistry(path).list()] == ["clip"]
    assert [p.name for p in path.parent.iterdir()] == ["streams.json"], "no temporary files left behind"


def test_duplicate_id_is_refused_and_nothing_changes(path: Path) -> None:
    reg = StreamRegistry(path)
    reg.add(StreamConfig(id="cam", url="rtsp://a.example/live"))
    before = path.read_bytes()
    with pytest.raises(DuplicateStreamError, match="'cam' already exists"):
        reg.add(StreamConfig(id="cam", url="rtsp://b.example/live"))
    assert path.read_bytes() == before
    assert StreamRegistry(path).get("cam") == StreamConfig(id="cam", url="rtsp://a.example/live")


def test_removing_an_unknown_stream_names_it(path: Path) -> None:
    with pytest.raises(UnknownStreamError, match="no stream 'ghost'"):
        StreamRegistry(path).remove("ghost")


@pytest.mark.parametrize(
    "content, needle",
    [
        pytest.param("{not json", "corrupt", id="not-json"),
        pytest.param('{"version": 1, "streams": {}}', "'streams' list", id="wrong-shape"),
        pytest.param('{"version": 9, "streams": []}', "version 9", id="future-version"),
        pytest.param('{"version": 1, "streams": [{"url": "a.mp4", "fps": 3}]}', "stream #0", id="unknown-field"),
        pytest.param('{"version": 1, "streams": [{"id": "a b", "url": "a.mp4"}]}', "invalid stream id", id="bad-id"),
        pytest.param(
            '{"version": 1, "streams": [{"id": "a", "url": "x.mp4"}, {"id": "a", "url": "y.mp4"}]}',
            "appears twice",
            id="duplicate-id",
        ),
    ],
)
def test_a_corrupt_file_is_an_error_naming_the_file(path: Path, content: str, needle: str) -> None:
    path.parent.mkdir(parents=True)
    path.write_text(content)
    with pytest.raises(RegistryError) as info:
        StreamRegistry(path)
    assert str(path) in str(info.value) and needle in str(info.value)
    assert path.read_text() == content, "a corrupt registry is left for the user to inspect"


def test_file_is_plain_json_without_unset_overrides(path: Path) -> None:
    StreamRegistry(path).add(StreamConfig(id="cam", url="rtsp://a.example/live", sample_fps=1.5))
    assert json.loads(path.read_text()) == {
        "version": 1,
        "streams": [{"id": "cam", "url": "rtsp://a.example/live", "sample_fps": 1.5}],
    }


def test_an_unwritable_data_dir_is_a_registry_error(path: Path) -> None:
    reg = StreamRegistry(path)
    path.parent.write_text("")  # the data dir's place is taken by a file
    with pytest.raises(RegistryError, match="cannot write the stream registry"):
        reg.add(StreamConfig(id="cam", url="a.mp4"))
    assert reg.list() == []


@pytest.mark.parametrize(
    "fields, needle",
    [
        pytest.param({"url": ""}, "url", id="empty-url"),
        pytest.param({"url": "a.mp4", "id": "has space"}, "invalid stream id", id="bad-id"),
        pytest.param({"url": "a.mp4", "resolution": 300}, "multiple of 16", id="resolution"),
        pytest.param({"url": "a.mp4", "sample_fps": 0}, "sample_fps", id="fps"),
        pytest.param({"url": "a.mp4", "decode": "some"}, "decode", id="decode"),
        pytest.param({"url": "a.mp4", "colour": "red"}, "colour", id="extra-field"),
    ],
)
def test_invalid_configs_are_refused(fields: dict, needle: str) -> None:
    with pytest.raises(ValidationError, match=needle):
        StreamConfig.model_validate(fields)


def test_id_is_derived_from_the_url_like_command_line_sources() -> None:
    assert StreamConfig(url="/videos/or-2.mp4").id == "or-2"
    assert StreamConfig(url="rtsp://user:pw@cam1.local:8554/live").id == "cam1.local-8554-live"


def test_overrides_apply_on_top_of_the_service_settings() -> None:
    base = IngestSettings(sample_fps=2.0, queue_size=7)
    same = StreamConfig(url="a.mp4")
    assert same.ingest_settings(base) is base
    got = StreamConfig(url="a.mp4", sample_fps=10, realtime=True, decode="all").ingest_settings(base)
    assert (got.sample_fps, got.realtime, got.queue_size, got.decode) == (10, True, 7, "all")


def test_a_registry_file_of_today_s_format_loads_and_keeps_its_shape(path: Path) -> None:
    path.parent.mkdir(parents=True)
    entry = {
        "id": "cam",
        "url": "rtsp://cam1.local/live",
        "sample_fps": 5.0,
        "resolution": 448,
        "decode": "keyframes",
        "realtime": True,
    }
    path.write_text(json.dumps({"version": 1, "streams": [entry, {"id": "clip", "url": "/media/a.mp4"}]}, indent=2))

    reg = StreamRegistry(path)
    cam = reg.get("cam")
    assert cam is not None
    assert (cam.sample_fps, cam.resolution, cam.decode, cam.realtime) == (5.0, 448, "keyframes", True)
    assert cam.overrides.ingest == {"sample_fps": 5.0, "decode": "keyframes", "realtime": True}
    assert cam.overrides.model == {"image_size": 448} and cam.analytics == {}

    reg.update("clip", StreamUpdate.analytics("scene_change", min_shot_s=2.5))
    saved = json.loads(path.read_text())
    assert saved["version"] == 1
    assert saved["streams"] == [
        entry,
        {"id": "clip", "url": "/media/a.mp4", "analytics": {"scene_change": {"min_shot_s": 2.5}}},
    ]


def test_a_stream_s_analytics_settings_survive_a_restart(path: Path) -> None:
    reg = StreamRegistry(path)
    reg.add(StreamConfig(id="cam", url="rtsp://a.example/live", sample_fps=3))
    reg.add(StreamConfig(id="other", url="rtsp://b.example/live"))
    got = reg.update("cam", StreamUpdate.analytics("anomaly", threshold=1.5))
    assert got.analytics == {"anomaly": {"threshold": 1.5}} and got.sample_fps == 3.0
    reg.update("cam", StreamUpdate.analytics("anomaly", {"cooldown_s": 1}))

    again = StreamRegistry(path)
    assert [c.id for c in again.list()] == ["cam", "other"], "an update keeps the stream's place"
    cam = again.get("cam")
    assert cam is not None and cam.analytics == {"anomaly": {"threshold": 1.5, "cooldown_s": 1.0}}
    assert cam.sample_fps == 3.0

    before = path.read_bytes()
    with pytest.raises(ValueError, match=r"analytics\.anomaly\.threshold: Input should be greater than 0"):
        again.update("cam", StreamUpdate.analytics("anomaly", threshold=-1))
    with pytest.raises(UnknownStreamError, match="no stream 'ghost'"):
        again.update("ghost", StreamUpdate.analytics("anomaly", threshold=2))
    assert path.read_bytes() == before, "a refused change writes nothing"


def test_analytics_settings_are_checked_by_the_processor_s_model_when_added() -> None:
    with pytest.raises(ValidationError, match=r"analytics\.scene_change\.min_shot_s"):
        StreamConfig.model_validate({"url": "a.mp4", "analytics": {"scene_change": {"min_shot_s": -1}}})
    with pytest.raises(ValidationError, match="retention per stream is a setting of the service"):
        StreamConfig.model_validate({"url": "a.mp4", "overrides": {"index": {"retention_days": 3}}})


def test_analytics_changes_leave_the_source_as_it_runs() -> None:
    cam = StreamConfig(id="cam", url="rtsp://a.example/live", sample_fps=2)
    assert cam.runs_like(cam.apply(StreamUpdate.analytics("phase", window=4)))
    assert not cam.runs_like(cam.apply(StreamUpdate(section="ingest", changes={"sample_fps": 4})))
