"""What tests feed the pipeline: unique Kafka topics per test, synthetic frame records."""

from __future__ import annotations

import uuid
from typing import Any

import numpy as np

from dinostream.core.records import FrameEmbedding
from dinostream.core.settings import KafkaSettings


def unique_kafka(**overrides: Any) -> KafkaSettings:
    """Kafka settings whose every topic name is unique, so tests sharing one broker never meet."""
    tag = uuid.uuid4().hex[:8]
    topics = {
        "embeddings_topic": f"emb-{tag}",
        "events_topic": f"ev-{tag}",
        "control_topic": f"ctl-{tag}",
        "watchlist_topic": f"wl-{tag}",
        "streams_topic": f"streams-{tag}",
        "stream_health_topic": f"health-{tag}",
    }
    return KafkaSettings(**{**topics, **overrides})


def shots(stream: str, lengths: list[int], seed: int) -> list[FrameEmbedding]:
    """Frame records of shots of `lengths` frames (2 per media second): a cut starts each shot."""
    rng = np.random.default_rng(seed)
    out: list[FrameEmbedding] = []
    for n in lengths:
        base = rng.normal(size=32)
        for _ in range(n):
            seq = len(out)
            v = base + 0.05 * rng.normal(size=32)
            out.append(
                FrameEmbedding(
                    stream=stream,
                    seq=seq,
                    pts=seq / 2,
                    ts=1e9 + seq,
                    model="t",
                    untrained=True,
                    cls=v,
                    pooled=v,
                    patches=np.zeros((2, 2, 32)),
                )
            )
    return out
