"""Shared fixtures: the real embedded broker, a tiny DINOv3 checkpoint saved by the test, videos
with known cuts. Each test that touches Kafka gets its own topic and group names."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from dinostream.core.embedded_broker import EmbeddedBroker
from dinostream.core.settings import KafkaSettings
from tests.records import unique_kafka


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedBroker]:
    """One Tansu broker for the session; its log is printed if it fails to start."""
    b = EmbeddedBroker(tmp_path_factory.mktemp("broker") / "broker.log")
    try:
        asyncio.run(b.start())
    except Exception:
        print(b.log_tail(50))
        raise
    yield b
    asyncio.run(b.stop())


@pytest.fixture
def kafka_settings() -> KafkaSettings:
    """Unique topic names per test."""
    return unique_kafka(partitions=2)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny DINOv3 ViT with seeded random weights, saved the way a real checkpoint is."""
    import torch
    from transformers import DINOv3ViTConfig, DINOv3ViTModel

    torch.manual_seed(0)
    config = DINOv3ViTConfig(
        hidden_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=128,
        patch_size=16,
        num_register_tokens=4,
        layerscale_value=1.0,
    )
    path = tmp_path_factory.mktemp("tiny-dinov3")
    DINOv3ViTModel(config).eval().save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def cut_video(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[float]]:
    """A generated video with 4 distinct shots of 3 s; returns (path, cut times in seconds)."""
    from dinostream.demo_video import make_video

    path = tmp_path_factory.mktemp("video") / "cuts.mp4"
    cuts = make_video(path, shots=4, shot_s=3.0, seed=7)
    return path, cuts
