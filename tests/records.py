"""What tests feed the pipeline: unique Kafka topics per test, synthetic frame records, and how far a
consumer group has read."""

from __future__ import annotations

import uuid
from typing import Any

import numpy as np
from aiokafka import AIOKafkaConsumer, TopicPartition

from dinostream.core.records import FrameEmbedding
from dinostream.core.settings import KafkaSettings


def unique_kafka(**overrides: Any) -> KafkaSettings:
    """Kafka settings whose every topic name is unique, so tests sharing one broker never meet."""
    tag = uuid.uuid4().hex[:8]
    topics = {
        "embeddings_topic": f"emb-{tag}",
        "previews_topic": f"prev-{tag}",
        "events_topic": f"ev-{tag}",
        "control_topic": f"ctl-{tag}",
        "watchlist_topic": f"wl-{tag}",
        "streams_topic": f"streams-{tag}",
        "stream_health_topic": f"health-{tag}",
    }
    return KafkaSettings(**{**topics, **overrides})


def shots(stream: str, lengths: list[int], seed: int) -> list[FrameEmbedding]:
    """Frame records of shots of `lengths` frames (2 per media second): a cut starts each shot (its
    event is half way between the two shots' frames, 0.25 s before the first new one)."""
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


async def committed_to_end(bootstrap: str, group: str, topic: str, partitions: int) -> bool:
    """Whether consumer group `group` has committed every record now on `topic` (it does not join
    the group: no rebalance for its members)."""
    probe = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    await probe.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(partitions)]
        ends = await probe.end_offsets(tps)
        for tp in tps:
            if ((await probe.committed(tp)) or 0) < ends[tp]:
                return False
        return True
    finally:
        await probe.stop()
