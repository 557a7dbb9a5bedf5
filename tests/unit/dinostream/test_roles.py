"""The role commands' start-up checks: no Kafka is one clear line, and the index and gateway read
the vector size from the model's config without loading it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dinostream.cli import main
from dinostream.core.errors import DinostreamError
from dinostream.core.settings import ModelSettings
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
