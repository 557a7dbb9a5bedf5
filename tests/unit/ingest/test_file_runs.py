"""A file source's progress outlives the process (issue 17: restarts duplicate nothing): a file
replayed after a restart numbers its frames as before (the index overwrites instead of adding),
and a file read to its end is not read again while it is unchanged. Real decoding of a generated
video; the stage is a collector."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from dinostream.core.settings import IngestSettings
from dinostream.ingest.stream_manager import StreamManager
from dinostream.ingest.stream_registry import FileRun, StreamConfig, StreamRegistry
from tests.unit.ingest.test_stream_attach import CollectingStage
from tests.waiting import wait_for

pytestmark = pytest.mark.timeout(60)


def manager_for(data: Path, media: Path) -> tuple[StreamManager, CollectingStage]:
    stage = CollectingStage()
    settings = IngestSettings(sample_fps=2, media_roots=[media])
    return StreamManager(stage, settings, StreamRegistry(data / "streams.json")), stage


def state(manager: StreamManager, sid: str) -> str:
    status = manager.get(sid)
    assert status is not None
    return str(status.health["state"])


async def test_a_file_read_to_its_end_is_not_read_again_and_a_replay_keeps_frame_numbers(
    tmp_path: Path, cut_video: tuple[Path, list[float]]
) -> None:
    media, data = tmp_path / "media", tmp_path / "data"
    media.mkdir()
    clip = media / "clip.mp4"
    shutil.copy(cut_video[0], clip)

    # First run: stopped after a few frames (a restart in the middle of the file).
    manager, stage = manager_for(data, media)
    await manager.start()
    await manager.add(StreamConfig(url=str(clip), id="clip"))
    await wait_for(lambda: len(stage.frames) >= 3, 30, "three frames of the file")
    await manager.stop()
    first = [(f.seq, round(f.pts, 3)) for f in stage.frames]

    # Second run: the registry's stream, from the start, under the same numbers, to its end.
    manager, stage = manager_for(data, media)
    await manager.start()
    await wait_for(lambda: state(manager, "clip") == "ended", 30, "the file read to its end")
    second = [(f.seq, round(f.pts, 3)) for f in stage.frames]
    assert len(second) > len(first) and second[: len(first)] == first, (first, second)
    assert [s for s, _ in second] == list(range(second[0][0], second[0][0] + len(second)))
    await manager.stop()
    doc = json.loads((data / "streams.json").read_text())
    assert doc["files"]["clip"]["ended"] == len(second) and doc["files"]["clip"]["first_seq"] == second[0][0]

    # Third run: nothing is read; the stream is listed as ended, with the frames it gave.
    manager, stage = manager_for(data, media)
    await manager.start()
    status = manager.get("clip")
    assert status is not None and status.health["state"] == "ended", status
    assert status.health["frames_out"] == len(second) and status.health["ended_before"] is True
    assert status.health["failed"] is False and "clip" not in manager.tasks()
    await manager.stop()
    assert stage.frames == []

    # The file changes (a new recording at the same path): it is read again, under new numbers.
    shutil.copy(cut_video[0], clip)
    os.utime(clip, ns=(1, 1))
    manager, stage = manager_for(data, media)
    await manager.start()
    await wait_for(lambda: state(manager, "clip") == "ended", 30, "the changed file read to its end")
    await manager.stop()
    assert len(stage.frames) == len(second) and stage.frames[0].seq > second[-1][0]

    # Removed and added again: read afresh (its progress went with it).
    manager, stage = manager_for(data, media)
    await manager.start()
    await manager.remove("clip")
    assert "clip" not in json.loads((data / "streams.json").read_text()).get("files", {})
    await manager.add(StreamConfig(url=str(clip), id="clip"))
    await wait_for(lambda: len(stage.frames) >= 1, 30, "the re-added file read")
    await manager.stop()


async def test_command_line_files_keep_their_numbers_too(tmp_path: Path, cut_video: tuple[Path, list[float]]) -> None:
    """`up clip.mp4` twice: the source is not a registered stream, but its progress is kept."""
    media, data = tmp_path / "media", tmp_path / "data"
    media.mkdir()
    seqs = []
    for _ in range(2):
        manager, stage = manager_for(data, media)
        await manager.add(StreamConfig(url=str(cut_video[0]), id="cuts"), trusted=True, persist=False)
        await manager.start()
        await wait_for(lambda m=manager: state(m, "cuts") == "ended", 30, "the file read to its end")
        await manager.stop()
        seqs.append([f.seq for f in stage.frames])
    assert seqs[0] and seqs[1] == []  # read once
    registry = StreamRegistry(data / "streams.json")
    assert registry.list() == [] and registry.file_run("cuts") is not None


def test_file_runs_round_trip_and_bad_entries_are_forgotten(tmp_path: Path) -> None:
    path = tmp_path / "streams.json"
    registry = StreamRegistry(path)
    registry.add(StreamConfig(url="/media/a.mp4", id="a"))
    run = FileRun("/media/a.mp4", (10, 20), 1_700_000_000_000, ended=5, ended_at=1.5)
    registry.set_file_run("a", run)
    assert StreamRegistry(path).file_run("a") == run
    doc = json.loads(path.read_text())
    doc["files"]["b"] = {"url": "x", "stamp": "nope", "first_seq": 1}
    path.write_text(json.dumps(doc))
    again = StreamRegistry(path)  # a malformed progress entry: that file is read from its start again
    assert again.file_run("a") == run and again.file_run("b") is None
    assert [c.id for c in again.list()] == ["a"]
