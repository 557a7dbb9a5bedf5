"""The streams API on the dashboard app (`create_app(manager=...)`), over httpx's ASGI transport.

Real parts: the StreamManager, its StreamRegistry on disk, StreamSupervisor tasks, PyAV decoding
a real video file, the URL policy. The model stage is a small collector of the frames it is
handed (the stage's `put`); the embedding itself is tested elsewhere.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import socket
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from dinostream.core.errors import DinostreamError
from dinostream.core.settings import AnalyticsSettings, HttpSettings, IngestSettings
from dinostream.dashboard.analytics_control import AnalyticsControl
from dinostream.dashboard.app import create_app
from dinostream.dashboard.live_hub import LiveHub
from dinostream.demo_video import make_video
from dinostream.ingest.source import Frame
from dinostream.ingest.stream_manager import StreamManager
from dinostream.ingest.stream_registry import REGISTRY_FILE, StreamConfig, StreamRegistry


class CollectingStage:
    """The ModelStage contract: remembers frames per stream; 512 is the largest resolution it takes."""

    def __init__(self) -> None:
        self.input_sizes: dict[str, tuple[int, int]] = {}
        self.frames: dict[str, list[Frame]] = {}

    def check_resolution(self, resolution: int | None) -> None:
        if resolution is not None and resolution > 512:
            raise DinostreamError(f"resolution {resolution}: records would exceed the message limit")

    async def resize_target(self, spec: Any, resolution: int | None = None) -> tuple[int, int]:
        side = resolution or 224
        return (side, side)

    async def put(self, frame: Frame) -> None:
        self.frames.setdefault(frame.stream, []).append(frame)


@pytest.fixture(scope="module")
def video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("video") / "clip.mp4"
    make_video(path, shots=2, shot_s=1.0, fps=10, size=(64, 48))
    return path


class World:
    def __init__(self, tmp: Path, video: Path) -> None:
        self.media = tmp / "media"
        self.media.mkdir()
        shutil.copy(video, self.media / "clip.mp4")
        (self.media / "broken.mp4").write_bytes(b"\0not a video\0" * 1000)
        self.registry_path = tmp / "data" / REGISTRY_FILE
        self.settings = IngestSettings(
            media_roots=[self.media],
            allow_loopback=True,
            open_timeout_s=1.0,
            read_timeout_s=1.0,
            backoff_initial_s=0.2,
            backoff_max_s=0.5,
        )
        self.stage = CollectingStage()
        self.manager = StreamManager(self.stage, self.settings, StreamRegistry(self.registry_path))
        self.hub = LiveHub(16)
        self.sent: list[tuple[str, str, dict[str, Any]]] = []  # what went to the control topic
        self.analytics = AnalyticsControl(AnalyticsSettings(), self.send_control, self.manager)
        self.app = self.make_app(self.manager, self.analytics)

    async def send_control(self, stream: str, processor: str, changes: dict[str, Any]) -> None:
        self.sent.append((stream, processor, changes))

    def make_app(self, manager: StreamManager, analytics: AnalyticsControl) -> Any:
        return create_app(
            settings=HttpSettings(),
            hub=self.hub,
            index=None,
            embed_images=None,
            health=lambda: {"streams": manager.healths()},
            analytics=analytics,
            manager=manager,
            ingest_settings=self.settings,
        )


@pytest.fixture
async def world(tmp_path: Path, video: Path) -> AsyncIterator[World]:
    w = World(tmp_path, video)
    await w.manager.start()
    yield w
    await w.manager.stop()


@pytest.fixture
async def http(world: World) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=world.app), base_url="http://localhost") as client:
        yield client


def assert_error(r: httpx.Response, status: int, code: str, *needles: str) -> None:
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert err["code"] == code, err
    for needle in needles:
        assert needle in err["message"], err


async def wait_for_state(http: httpx.AsyncClient, stream: str, *states: str) -> dict[str, Any]:
    async with asyncio.timeout(30):
        while True:
            body = (await http.get(f"/api/v1/streams/{stream}")).json()
            if body["health"]["state"] in states:
                return body
            await asyncio.sleep(0.05)


async def test_add_a_file_stream_it_runs_and_is_persisted(world: World, http: httpx.AsyncClient) -> None:
    r = await http.post("/api/v1/streams", json={"url": "clip.mp4", "sample_fps": 4, "resolution": 448})
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["id"] == "clip" and body["persistent"] is True
    assert body["config"] == {
        "id": "clip",
        "url": "clip.mp4",
        "sample_fps": 4.0,
        "resolution": 448,
        "decode": None,
        "realtime": None,
    }
    assert body["health"]["state"] in ("connecting", "live", "ended")

    done = await wait_for_state(http, "clip", "ended")
    frames = world.stage.frames["clip"]
    assert done["health"]["frames_out"] == len(frames) == 8  # 2 s at 4 fps
    assert done["health"]["frames_in"] >= 8, "the decoder's counters reach the health report"
    assert {f.image.shape for f in frames} == {(448, 448, 3)}, "the per-stream resolution reaches the decoder"
    assert done["input_size"] == [448, 448] and done["health"]["failed"] is False

    listed = (await http.get("/api/v1/streams")).json()["streams"]
    assert list(listed) == ["clip"] and listed["clip"]["health"]["frames_out"] == 8
    saved = json.loads(world.registry_path.read_text())["streams"]
    assert saved == [{"id": "clip", "url": "clip.mp4", "sample_fps": 4.0, "resolution": 448}]


async def test_refused_url_is_422_with_the_reason_and_nothing_is_kept(world: World, http: httpx.AsyncClient) -> None:
    outside = world.media.parent / "outside.mp4"
    shutil.copy(world.media / "clip.mp4", outside)
    assert_error(
        await http.post("/api/v1/streams", json={"url": str(outside)}), 422, "url_refused", "outside the media roots"
    )
    assert_error(
        await http.post("/api/v1/streams", json={"url": "rtsp://169.254.169.254/latest"}),
        422,
        "url_refused",
        "link-local",
    )
    assert_error(await http.post("/api/v1/streams", json={"url": "concat:a.mp4|b.mp4"}), 422, "url_refused", "concat")
    assert (await http.get("/api/v1/streams")).json() == {"streams": {}}
    assert not world.registry_path.exists() and world.stage.frames == {}


async def test_a_missing_file_is_refused_422_before_it_is_added(world: World, http: httpx.AsyncClient) -> None:
    (world.media / "folder.mp4").mkdir()
    for url in ("missing.mp4", str(world.media / "sub" / "gone.mp4"), "folder.mp4"):
        r = await http.post("/api/v1/streams", json={"url": url, "id": "cam"})
        assert_error(r, 422, "file_not_found", "nothing was added")
        assert r.json()["error"]["details"]["url"].endswith(url.rpartition("/")[2])
        assert str(world.media) not in r.text, "no absolute server path in the answer"
    assert (await http.get("/api/v1/streams")).json() == {"streams": {}}
    assert not world.registry_path.exists() and world.manager.list() == []
    health = await http.get("/api/v1/health")
    assert health.status_code == 200 and health.json()["status"] == "ok"
    assert (await http.post("/api/v1/streams", json={"url": "clip.mp4", "id": "cam"})).status_code == 201


@pytest.mark.parametrize(
    "body, needle",
    [
        pytest.param({"url": "clip.mp4", "resolution": 300}, "resolution", id="resolution-not-multiple-of-16"),
        pytest.param({"url": "clip.mp4", "fps": 3}, "fps", id="unknown-field"),
        pytest.param({"sample_fps": 3}, "url", id="no-url"),
        pytest.param({"url": "clip.mp4", "id": "a/b"}, "invalid stream id", id="bad-id"),
    ],
)
async def test_invalid_fields_are_422(http: httpx.AsyncClient, body: dict[str, Any], needle: str) -> None:
    assert_error(await http.post("/api/v1/streams", json=body), 422, "invalid_request", needle)


async def test_a_resolution_the_model_refuses_is_422(http: httpx.AsyncClient) -> None:
    r = await http.post("/api/v1/streams", json={"url": "clip.mp4", "resolution": 1024})
    assert_error(r, 422, "invalid_stream_config", "message limit")


async def test_duplicate_id_is_409(world: World, http: httpx.AsyncClient) -> None:
    assert (await http.post("/api/v1/streams", json={"url": "clip.mp4", "id": "cam"})).status_code == 201
    assert_error(
        await http.post("/api/v1/streams", json={"url": "clip.mp4", "id": "cam"}), 409, "duplicate_stream", "'cam'"
    )


async def test_delete_stops_and_forgets_the_stream(world: World, http: httpx.AsyncClient) -> None:
    assert (await http.post("/api/v1/streams", json={"url": "clip.mp4", "realtime": True})).status_code == 201
    await wait_for_state(http, "clip", "live")
    supervisor = world.manager.tasks()["clip"]
    r = await http.delete("/api/v1/streams/clip")
    assert r.status_code == 200 and r.json()["removed"] is True
    assert supervisor.done(), "the 2 s realtime clip was stopped, not left to end"
    assert_error(await http.get("/api/v1/streams/clip"), 404, "stream_not_found")
    assert_error(await http.delete("/api/v1/streams/clip"), 404, "stream_not_found")
    assert (await http.get("/api/v1/streams")).json() == {"streams": {}}
    assert json.loads(world.registry_path.read_text())["streams"] == []
    assert "clip" not in world.manager.tasks()
    decoders = [t for t in threading.enumerate() if t.name == "decode-clip"]
    for t in decoders:  # signalled its end to the loop; exits right after
        t.join(10)
    assert not any(t.is_alive() for t in decoders), "the decode thread is gone"


async def test_a_camera_that_is_down_is_accepted_and_backs_off(world: World, http: httpx.AsyncClient) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"rtsp://127.0.0.1:{port}/live"
    r = await http.post("/api/v1/streams", json={"url": url, "id": "cam"})
    assert r.status_code == 201, r.text
    assert r.json()["health"]["state"] == "connecting"
    body = await wait_for_state(http, "cam", "backoff")
    assert str(port) in body["health"]["last_error"] and body["health"]["failed"] is False
    assert (await http.get("/api/v1/health")).json()["status"] == "ok"


async def test_a_failed_stream_shows_in_its_health_and_metrics_only(world: World, http: httpx.AsyncClient) -> None:
    assert (await http.post("/api/v1/streams", json={"url": "broken.mp4"})).status_code == 201
    body = await wait_for_state(http, "broken", "failed")
    assert "broken.mp4" in body["health"]["last_error"]
    r = await http.get("/api/v1/health")
    health = r.json()
    # That camera's failure, not the service's: any caller could otherwise flip the load balancer's probe.
    assert r.status_code == 200 and health["status"] == "ok" and health["streams"]["broken"]["failed"] is True

    assert (await http.post("/api/v1/streams", json={"url": "clip.mp4"})).status_code == 201
    await wait_for_state(http, "clip", "ended")
    r = await http.get("/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    text = r.text
    assert 'dinostream_stream_state{state="failed",stream="broken"} 1.0' in text
    assert 'dinostream_stream_state{state="live",stream="broken"} 0.0' in text
    assert 'dinostream_stream_state{state="ended",stream="clip"} 1.0' in text
    assert 'dinostream_stream_frames_out_total{stream="clip"} 4.0' in text  # 2 s at the default 2 fps
    assert 'dinostream_stream_reconnects_total{stream="clip"} 0.0' in text


async def test_streams_come_back_after_a_restart_and_refused_ones_are_kept(world: World) -> None:
    await world.manager.add(StreamConfig(url=str(world.media / "clip.mp4")))
    await world.manager.add(StreamConfig(url="broken.mp4"))
    await world.manager.stop()

    again = StreamManager(CollectingStage(), world.settings, StreamRegistry(world.registry_path))
    await again.start()
    try:
        assert [(s.config.id, s.persistent) for s in again.list()] == [("clip", True), ("broken", True)]
    finally:
        await again.stop()

    tighter = world.settings.model_copy(update={"media_roots": [world.media / "nowhere"]})
    refused = StreamManager(CollectingStage(), tighter, StreamRegistry(world.registry_path))
    await refused.start()
    try:
        healths = refused.healths()
        assert healths["clip"]["state"] == "failed" and "outside the media roots" in healths["clip"]["last_error"]
        assert [c.id for c in StreamRegistry(world.registry_path).list()] == ["clip", "broken"], "nothing is dropped"
        await refused.remove("clip")
        assert [c.id for c in StreamRegistry(world.registry_path).list()] == ["broken"]
    finally:
        await refused.stop()


async def test_analytics_settings_are_kept_with_the_stream_and_survive_a_restart(
    world: World, http: httpx.AsyncClient
) -> None:
    assert (await http.post("/api/v1/streams", json={"url": "clip.mp4", "realtime": True})).status_code == 201
    await wait_for_state(http, "clip", "live")
    supervisor = world.manager.tasks()["clip"]
    path = "/api/v1/streams/clip/analytics"

    r = await http.patch(f"{path}/anomaly", json={"threshold": 1.5})
    assert r.status_code == 202, r.text
    assert r.json()["settings"]["threshold"] == 1.5
    assert world.sent == [("clip", "anomaly", {"threshold": 1.5})]
    assert world.manager.tasks()["clip"] is supervisor, "an analytics change does not restart the stream"
    saved = json.loads(world.registry_path.read_text())["streams"]
    assert saved == [{"id": "clip", "url": "clip.mp4", "realtime": True, "analytics": {"anomaly": {"threshold": 1.5}}}]
    config = (await http.get("/api/v1/streams/clip")).json()["config"]
    assert config["analytics"] == {"anomaly": {"threshold": 1.5}} and config["realtime"] is True

    before = world.registry_path.read_bytes()
    assert_error(await http.patch(f"{path}/anomaly", json={"threshold": -1}), 422, "invalid_settings", "threshold")
    # Issue 17's request that stopped every camera (the worker raised on the stream's next record): refused here.
    bad = {"seed": -1, "warmup_frames": 2}
    assert_error(await http.patch(f"{path}/anomaly", json=bad), 422, "invalid_settings", "seed")
    assert_error(await http.patch(f"{path}/anomaly", json={"treshold": 2}), 422, "invalid_settings", "treshold")
    assert_error(await http.patch(f"{path}/nope", json={}), 404, "unknown_processor")
    assert world.registry_path.read_bytes() == before and len(world.sent) == 1, "refused: nothing kept or sent"
    await world.manager.stop()

    # A restart: a new manager and gateway over the same registry file.
    manager = StreamManager(CollectingStage(), world.settings, StreamRegistry(world.registry_path))
    sent: list[tuple[str, str, dict[str, Any]]] = []

    async def send(stream: str, processor: str, changes: dict[str, Any]) -> None:
        sent.append((stream, processor, changes))

    analytics = AnalyticsControl(AnalyticsSettings(), send, manager)
    await manager.start()
    try:
        app = world.make_app(manager, analytics)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://localhost") as again:
            settings = (await again.get(path)).json()["settings"]
            assert settings["anomaly"]["threshold"] == 1.5 and settings["scene_change"] == (
                AnalyticsSettings().scene_change.model_dump(mode="json")
            )
        assert await analytics.republish() == 1
        assert sent == [("clip", "anomaly", {"threshold": 1.5})], "the workers of `up` start empty: sent again"
    finally:
        await manager.stop()


async def test_a_stream_added_with_analytics_settings_sends_them(world: World, http: httpx.AsyncClient) -> None:
    body = {"url": "clip.mp4", "analytics": {"scene_change": {"min_shot_s": 3}}}
    r = await http.post("/api/v1/streams", json=body)
    assert r.status_code == 201, r.text
    assert r.json()["config"]["analytics"] == {"scene_change": {"min_shot_s": 3.0}}
    assert world.sent == [("clip", "scene_change", {"min_shot_s": 3.0})]
    bad = {"url": "clip.mp4", "id": "other", "analytics": {"scene_change": {"min_shot_s": -3}}}
    assert_error(await http.post("/api/v1/streams", json=bad), 422, "invalid_request", "scene_change.min_shot_s")


async def test_command_line_and_unknown_streams_keep_their_analytics_settings_in_memory(
    world: World, http: httpx.AsyncClient
) -> None:
    await world.manager.add(StreamConfig(url=str(world.media / "clip.mp4")), trusted=True, persist=False)
    r = await http.patch("/api/v1/streams/clip/analytics/phase", json={"window": 4})
    assert r.status_code == 202, r.text
    assert (await http.get("/api/v1/streams/clip")).json()["config"]["analytics"] == {"phase": {"window": 4}}
    registry = json.loads(world.registry_path.read_text())  # only its progress as a file is kept (issue 17)
    assert registry["streams"] == [] and set(registry["files"]) == {"clip"}, "a command-line source is not persisted"

    r = await http.patch("/api/v1/streams/elsewhere/analytics/phase", json={"window": 5})
    assert r.status_code == 202, r.text  # a stream this gateway does not list (as before)
    assert (await http.get("/api/v1/streams/elsewhere/analytics")).json()["settings"]["phase"]["window"] == 5
    assert [s[0] for s in world.sent] == ["clip", "elsewhere"]


async def test_without_a_manager_the_hub_endpoint_stays(tmp_path: Path) -> None:
    hub = LiveHub(16)
    app = create_app(settings=HttpSettings(), hub=hub, index=None, embed_images=None, health=dict)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://localhost") as client:
        assert (await client.get("/api/v1/streams")).json() == {"streams": {}}
        assert_error(await client.post("/api/v1/streams", json={"url": "a.mp4"}), 405, "method_not_allowed")
        assert (await client.get("/metrics")).status_code == 200
