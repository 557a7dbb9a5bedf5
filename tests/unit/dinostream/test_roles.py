"""The role commands' start-up checks: no Kafka is one clear line, and the index and gateway read
the vector size from the model's config without loading it."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from dinostream.cli import main
from dinostream.core.errors import DinostreamError
from dinostream.core.settings import ModelSettings, Settings
from dinostream.embedding.model_dims import model_dims


@pytest.mark.parametrize("role", ["ingest", "worker", "index", "gateway"])
def test_a_role_without_kafka_fails_with_one_line(
    role: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DINOSTREAM_KAFKA__BOOTSTRAP", raising=False)
    assert main([role]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "needs a Kafka cluster" in err[0] and "DINOSTREAM_KAFKA__BOOTSTRAP" in err[0]


def test_model_dims_come_from_the_config(tmp_path: Path) -> None:
    assert model_dims(ModelSettings(model="random:vits16")) == (384, None)
    assert model_dims(ModelSettings(model="random:vitb16", patch_pca_dims=64)) == (768, 64)
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "dinov3_vit", "hidden_size": 64}))
    assert model_dims(ModelSettings(model=str(tmp_path))) == (64, None)
    with pytest.raises(DinostreamError, match="random:nope"):
        model_dims(ModelSettings(model="random:nope"))


def test_the_index_role_takes_the_vector_size_from_a_setting_without_the_model(
    broker, kafka_settings, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    """A checkpoint mounted on the ingest nodes only (or a gated Hub id without a token) cannot be
    read by the index role: `index.vector_dims` opens the index and its sink without it."""
    from dinostream.node import Runtime
    from dinostream.nodes import IndexNode

    absent = str(tmp_path / "models" / "dinov3-vits16")  # no such directory here, and no Hub id

    def settings(**index: object) -> Settings:
        return Settings.model_validate(
            {
                "model": {"model": absent},
                "kafka": {**kafka_settings.model_dump(), "bootstrap": broker.bootstrap},
                "index": index,
                "data_dir": str(tmp_path / "data"),
            }
        )

    async def run(s: Settings) -> dict[str, object]:
        node = IndexNode(Runtime(s, ["index"]), None)
        await node.prepare()
        await node.start()
        try:
            return node.health()["index"]
        finally:
            await node.stop()

    with pytest.raises(DinostreamError, match="cannot read the vector size"):
        asyncio.run(run(settings()))
    health = asyncio.run(run(settings(vector_dims=384)))
    assert health["dim"] == 384
