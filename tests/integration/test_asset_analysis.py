"""A generated video uploaded as an asset and analysed in the background, through uvicorn on
port 0: the analysis, polled to its end, finds the transitions the video was made with.

Real parts: the asset store, the gateway app, `dinostream.asset_analysis` (analyze's decoding,
the model stage and the service's processors) with a tiny random DINOv3 (tests/conftest.py)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import pytest

from dinostream.asset_analysis import analysis_runner
from dinostream.core.records import Event
from dinostream.core.settings import HttpSettings, IngestSettings, ModelSettings, Settings
from dinostream.dashboard.app import create_app
from dinostream.dashboard.live_hub import LiveHub
from dinostream.embedding.model_loader import LoadedModel
from dinostream.embedding.stage import load_model_async
from dinostream.sinks.asset_store import AssetStore
from generators.groundtruth import make_groundtruth_video, score_detections, synthetic_images
from tests.pictures import picture
from tests.serving import serve

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]


async def poll(http: httpx.AsyncClient, url: str, deadline_s: float = 180) -> list[dict[str, Any]]:
    """Every state the analysis showed until it ended."""
    seen: list[dict[str, Any]] = []
    async with asyncio.timeout(deadline_s):
        while True:
            r = await http.get(url)
            assert r.status_code == 200, r.text
            seen.append(r.json())
            if seen[-1]["state"] in ("done", "failed"):
                return seen
            await asyncio.sleep(0.1)


async def test_an_uploaded_video_is_analysed_and_its_cuts_found(tmp_path: Path, tiny_model_dir: Path) -> None:
    path = tmp_path / "made.mp4"
    plan = [(None, None), ("cut", None), ("dissolve", None), ("cut", None)]
    truth = make_groundtruth_video(
        path, synthetic_images(4, seed=4), seed=2, fps=25, size=(224, 160), shot_s=(3.0, 3.5), plan=plan
    )
    settings = Settings(ingest=IngestSettings(sample_fps=2.0), model=ModelSettings(model=str(tiny_model_dir)))
    loaded: list[LoadedModel] = []
    emitted: list[Event] = []

    async def emit(event: Event) -> None:  # the gateway sends them to the events topic
        emitted.append(event)

    async def model() -> LoadedModel:
        if not loaded:
            loaded.append(await load_model_async(settings.model))
        return loaded[0]

    app = create_app(
        settings=HttpSettings(max_asset_bytes=20_000_000),
        hub=LiveHub(16),
        index=None,
        embed_images=None,
        health=dict,
        assets=AssetStore(tmp_path / "assets", max_bytes=20_000_000, retention_days=1.0),
        analyze_video=analysis_runner(settings, model, emit),
    )
    async with serve(app) as base, httpx.AsyncClient(base_url=base, timeout=30) as http:
        asset = (await http.post("/api/v1/assets", files={"file": ("made.mp4", path.read_bytes())})).json()
        url = f"/api/v1/assets/{asset['id']}/analysis"
        assert (await http.get(url)).json()["error"]["code"] == "analysis_not_found"
        started = await http.post(url)
        again = await http.post(url)
        states = await poll(http, url)
        stats = (await http.get("/api/v1/stats")).json()

    assert started.status_code == 202 and started.json()["state"] in ("queued", "running")
    assert again.json()["created_at"] == started.json()["created_at"], "one analysis per asset at a time"
    final = states[-1]
    assert final["state"] == "done", final["error"]
    assert final["progress"] == 1.0 and all(0 <= s["progress"] <= 1 for s in states)
    result = final["result"]
    score = score_detections(result["cuts"], truth, tolerance=0.5)
    want = [t.start for t in truth.transitions]
    assert (score.tp, score.fp, score.fn) == (3, 0, 0), (want, result["cuts"])

    shots = result["shots"]
    assert [s["began_with"] for s in shots] == ["start", "cut", "gradual", "cut"]
    assert shots[0]["start"] == 0.0 and shots[-1]["end"] == pytest.approx(result["duration_s"])
    for before, after in zip(shots, shots[1:], strict=False):
        assert before["end"] == after["start"]
    for shot in shots:
        assert shot["frames"] >= 4 and shot["start"] <= shot["keyframe"]["t"] < shot["end"]
        assert 0 <= shot["quality"]["score"] <= 1 and shot["quality"]["frames_measured"] == shot["frames"]
    assert result["frames_analysed"] == sum(s["frames"] for s in shots)
    assert result["model"] == {"id": tiny_model_dir.name, "untrained": False}  # a saved (random) checkpoint
    assert isinstance(result["phases"], list) and isinstance(result["anomalies"], list)
    assert stats["analyses"]["done"] == 1 and stats["assets"]["videos"] == 1
    # Its events go where a stream's go, as stream <asset id>, each once in its final state.
    assert result["stream"] == asset["id"] and {e.stream for e in emitted} == {asset["id"]}
    assert sorted(e.t for e in emitted if e.type == "scene_change") == result["cuts"]
    assert len({e.id for e in emitted}) == len(emitted) and sum(result["event_counts"].values()) == len(emitted)


async def test_a_failed_analysis_says_why_and_pictures_are_not_analysed(tmp_path: Path) -> None:
    video = tmp_path / "one.mp4"
    make_groundtruth_video(video, synthetic_images(1, seed=1), seed=1, fps=10, size=(64, 48), shot_s=(1.0, 1.0))
    settings = Settings(model=ModelSettings(model=str(tmp_path / "no-such-model")))

    async def model() -> LoadedModel:
        return await load_model_async(settings.model)  # raises: the directory does not exist

    store = AssetStore(tmp_path / "assets", max_bytes=20_000_000, retention_days=1.0)
    app = create_app(
        settings=HttpSettings(),
        hub=LiveHub(16),
        index=None,
        embed_images=None,
        health=dict,
        assets=store,
        analyze_video=analysis_runner(settings, model),
    )
    without = create_app(
        settings=HttpSettings(), hub=LiveHub(16), index=None, embed_images=None, health=dict, assets=store
    )
    async with serve(app) as base, httpx.AsyncClient(base_url=base, timeout=30) as http:
        vid = (await http.post("/api/v1/assets", files={"file": ("v.mp4", video.read_bytes())})).json()["id"]
        pic = (await http.post("/api/v1/assets", files={"file": ("p.png", picture((1, 2, 3), fmt="PNG"))})).json()["id"]
        states = await poll(http, (await http.post(f"/api/v1/assets/{vid}/analysis")).url.path)
        on_picture = await http.post(f"/api/v1/assets/{pic}/analysis")
        deleted = await http.delete(f"/api/v1/assets/{vid}")
        after = await http.get(f"/api/v1/assets/{vid}/analysis")
    async with serve(without) as base, httpx.AsyncClient(base_url=base, timeout=30) as http:
        unavailable = await http.post(f"/api/v1/assets/{pic}/analysis")

    final = states[-1]
    assert final["state"] == "failed" and final["result"] is None and "no-such-model" in final["error"]
    assert str(tmp_path) not in final["error"], "no absolute server path in the answer"
    assert on_picture.status_code == 422 and on_picture.json()["error"]["code"] == "wrong_asset_kind"
    assert deleted.status_code == 200 and after.json()["error"]["code"] == "asset_not_found"
    assert unavailable.status_code == 503 and unavailable.json()["error"]["code"] == "analysis_unavailable"


async def test_a_whip_pan_shows_in_its_shots_camera_motion(tmp_path: Path, tiny_model_dir: Path) -> None:
    path = tmp_path / "whip.mp4"
    plan = [(None, "fast_pan"), ("cut", None)]
    truth = make_groundtruth_video(
        path, synthetic_images(2, seed=1), seed=1, fps=25, size=(320, 240), shot_s=(4.0, 4.5), plan=plan
    )
    settings = Settings(ingest=IngestSettings(sample_fps=5.0), model=ModelSettings(model=str(tiny_model_dir)))

    async def model() -> LoadedModel:
        return await load_model_async(settings.model)

    store = AssetStore(tmp_path / "assets", max_bytes=20_000_000, retention_days=1.0)
    asset = store.put(path.read_bytes(), filename="whip.mp4").id
    app = create_app(
        settings=HttpSettings(),
        hub=LiveHub(16),
        index=None,
        embed_images=None,
        health=dict,
        assets=store,
        analyze_video=analysis_runner(settings, model),
    )
    async with serve(app) as base, httpx.AsyncClient(base_url=base, timeout=30) as http:
        url = (await http.post(f"/api/v1/assets/{asset}/analysis")).url.path
        final = (await poll(http, url))[-1]

    assert final["state"] == "done", final["error"]
    shots = final["result"]["shots"]
    assert len(shots) == 2 and shots[1]["start"] == pytest.approx(truth.transitions[0].start, abs=0.5)
    panned, steady = shots[0]["camera_motion"], shots[1]["camera_motion"]
    assert panned["kind"] == "whip" and steady["kind"] != "whip", (panned, steady)
    assert panned["largest_step"] > 3 * steady["largest_step"]
    assert steady["steps"] == shots[1]["frames"] - 1, "the step across the cut is the transition's, not the shot's"
