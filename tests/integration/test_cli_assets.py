"""`dinostream assets add|list|rm|analyze` against the gateway app through uvicorn on port 0
(issue 16): a generated video uploaded and analysed from the CLI, polled to the end, its shots
starting at the cuts it was made with; a bad or deleted id is the API's error and exit 2."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from dinostream.asset_analysis import analysis_runner
from dinostream.cli import main
from dinostream.core.records import Event
from dinostream.core.settings import HttpSettings, IngestSettings, ModelSettings, Settings
from dinostream.dashboard.app import create_app
from dinostream.dashboard.live_hub import LiveHub
from dinostream.embedding.model_loader import LoadedModel
from dinostream.embedding.stage import load_model_async
from dinostream.sinks.asset_store import AssetStore
from tests.serving import serve

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]


async def test_cli_uploads_analyses_lists_and_removes_an_asset(
    tmp_path: Path, tiny_model_dir: Path, cut_video: tuple[Path, list[float]], capsys: pytest.CaptureFixture[str]
) -> None:
    video, cuts = cut_video
    settings = Settings(ingest=IngestSettings(sample_fps=2.0), model=ModelSettings(model=str(tiny_model_dir)))
    loaded: list[LoadedModel] = []

    async def emit(event: Event) -> None:
        pass

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

    async def cli(*argv: str) -> tuple[int, str, str]:
        code = await asyncio.to_thread(main, [*argv, "--api", base])
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    async with serve(app) as base:
        code, out, err = await cli("assets", "add", str(video), "--analyze", "--no-progress")
        assert code == 0, err
        result = json.loads(out)
        code, out, _ = await cli("assets", "list")
        listed = json.loads(out)
        code_bad, _, err_bad = await cli("assets", "analyze", "no-such-asset", "--no-progress")
        code_rm, out_rm, _ = await cli("assets", "rm", result["asset_id"])
        code_again, _, err_again = await cli("assets", "rm", result["asset_id"])

    shots = result["shots"]
    assert [round(s["start"]) for s in shots[1:]] == [round(t) for t in cuts]
    assert [round(t) for t in result["cuts"]] == [round(t) for t in cuts]
    assert all(s["keyframe"] and s["quality"] and s["camera_motion"] for s in shots)
    assert code == 0 and result["asset_id"] in json.dumps(listed)
    assert code_bad == 2 and "422: 'no-such-asset' is not an asset id" in err_bad
    assert code_rm == 0 and json.loads(out_rm) == {"id": result["asset_id"], "deleted": True}
    assert code_again == 2 and f"404: no asset '{result['asset_id']}'" in err_again
