"""Fault injection on the separate roles: real `python -m dinostream <role>` processes on loopback,
the embedded broker, a tiny DINOv3; every test kills or freezes something and checks that nothing
a user would miss is lost.

- kill -9 one of two analytics workers: the other takes its partitions, every expected event
  arrives, duplicates only under the same event id;
- kill -9 one of two ingest nodes: its streams move to the other within a stated bound;
- freeze the broker for 10 s (SIGSTOP/SIGCONT): the ingest node drops (and counts) frames instead
  of queueing them, its queues stay bounded, and records flow again afterwards;
- kill -9 the index sink mid-stream and start it again: the index holds each frame once.

A gateway restart with websocket resume is covered by tests/integration/test_ws_resume.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.partitioner import murmur2

from dinostream.core.embedded_broker import EmbeddedBroker
from dinostream.core.kafka_io import ensure_topics
from dinostream.core.records import Event, FrameEmbedding, FrameHeader
from dinostream.demo_video import make_video
from dinostream.ingest.stream_ownership import encode_config
from dinostream.ingest.stream_registry import StreamConfig
from dinostream.sinks.qdrant_edge_index import QdrantEdgeIndex
from tests.records import committed_to_end, shots, unique_kafka
from tests.waiting import wait_for

pytestmark = pytest.mark.integration

SESSION_TIMEOUT_S = 4.0
PARTITIONS = 2


class Role:
    """One `python -m dinostream <role>` process; its stderr goes to a file printed if it fails."""

    def __init__(self, role: str, env: dict[str, str], log: Path) -> None:
        self.role, self.env, self.log = role, env, log
        self.proc: asyncio.subprocess.Process | None = None
        self.url = ""

    async def start(self, timeout_s: float = 90.0) -> Role:
        with open(self.log, "ab") as err:
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "dinostream", self.role, stdout=asyncio.subprocess.PIPE, stderr=err, env=self.env
            )
        assert self.proc.stdout is not None
        try:
            async with asyncio.timeout(timeout_s):
                line = (await self.proc.stdout.readline()).decode()
        except TimeoutError:
            line = ""
        if "is up: " not in line:
            self.kill()
            raise AssertionError(f"{self.role} did not start: {line!r}\n{self.stderr()}")
        self.url = line.split("is up: ", 1)[1].strip()
        return self

    def stderr(self, lines: int = 40) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    async def health(self) -> dict[str, Any]:
        async with httpx.AsyncClient(base_url=self.url, timeout=10) as http:
            r = await http.get("/api/v1/health")
        assert r.status_code in (200, 503), r.text
        return dict(r.json())

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.proc is not None and self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.proc.pid, sig)

    async def wait(self) -> int:
        assert self.proc is not None
        return await self.proc.wait()


class Deployment:
    """Unique topics and app id on one broker; the roles started through it are killed at the end."""

    def __init__(self, bootstrap: str, tmp: Path, model_dir: Path, **extra: str) -> None:
        tag = uuid.uuid4().hex[:8]
        self.tmp = tmp
        self.kafka = unique_kafka(
            bootstrap=bootstrap,
            partitions=PARTITIONS,
            session_timeout_s=SESSION_TIMEOUT_S,
            idempotent=False,  # Tansu's memory storage has no idempotent producers
        )
        self.app_id = f"faults-{tag}"
        self.env = {
            **os.environ,
            "HF_HUB_OFFLINE": "1",
            "DINOSTREAM_MODEL__MODEL": str(model_dir),
            "DINOSTREAM_MODEL__DEVICE": "cpu",
            "DINOSTREAM_MODEL__IMAGE_SIZE": "64",
            "DINOSTREAM_HTTP__PORT": "0",
            "DINOSTREAM_ANALYTICS__APP_ID": self.app_id,
            "DINOSTREAM_INGEST__MEDIA_ROOTS": json.dumps([str(tmp)]),
            # None as settings_from_env spells it ("null"): the optional Kafka settings keep their meaning.
            **{
                f"DINOSTREAM_KAFKA__{k.upper()}": "null" if v is None else str(v)
                for k, v in self.kafka.model_dump().items()
            },
            **extra,
        }
        self.env["DINOSTREAM_KAFKA__IDEMPOTENT"] = "false"
        self.roles: list[Role] = []

    def role(self, role: str, name: str, **env: str) -> Role:
        data = self.tmp / name
        data.mkdir(exist_ok=True)
        r = Role(role, {**self.env, "DINOSTREAM_DATA_DIR": str(data), **env}, self.tmp / f"{name}.stderr")
        self.roles.append(r)
        return r

    def kill_all(self) -> None:
        for r in self.roles:
            r.kill()


@contextlib.asynccontextmanager
async def deployment(bootstrap: str, tmp: Path, model_dir: Path, **extra: str) -> AsyncIterator[Deployment]:
    d = Deployment(bootstrap, tmp, model_dir, **extra)
    await ensure_topics(bootstrap, d.kafka)
    try:
        yield d
    finally:
        d.kill_all()
        for r in d.roles:
            if r.proc is not None:
                await r.wait()


@contextlib.asynccontextmanager
async def producer(bootstrap: str) -> AsyncIterator[AIOKafkaProducer]:
    p = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=False, linger_ms=5)
    await p.start()
    try:
        yield p
    finally:
        await p.stop()


@contextlib.asynccontextmanager
async def consumer(bootstrap: str, *topics: str, offset: str = "earliest") -> AsyncIterator[AIOKafkaConsumer]:
    c = AIOKafkaConsumer(*topics, bootstrap_servers=bootstrap, group_id=None, auto_offset_reset=offset)
    await c.start()
    try:
        yield c
    finally:
        await c.stop()


_COUNTS = ("records", "replayed", "frames_missed", "restored", "snapshots")


def partition_of(key: str, partitions: int = PARTITIONS) -> int:
    """The partition aiokafka's default partitioner gives a key."""
    return (murmur2(key.encode()) & 0x7FFFFFFF) % partitions


# -- workers ------------------------------------------------------------------------------------


async def test_killing_a_worker_loses_no_event(broker: EmbeddedBroker, tmp_path: Path, tiny_model_dir: Path) -> None:
    lengths = [8, 8, 8, 8]  # cuts at frames 8, 16, 24: t = 3.75, 7.75, 11.75 s (half way to the new frame)
    streams = {f"cam-{i}": shots(f"cam-{i}", lengths, seed=i) for i in range(6)}
    assert {partition_of(s) for s in streams} == set(range(PARTITIONS))
    expected = {(s, t) for s in streams for t in (3.75, 7.75, 11.75)}
    async with (
        deployment(broker.bootstrap, tmp_path, tiny_model_dir, DINOSTREAM_ANALYTICS__SNAPSHOT_EVERY_S="0.5") as d,
        producer(broker.bootstrap) as prod,
        consumer(broker.bootstrap, d.kafka.events_topic) as events_in,
    ):
        workers = await asyncio.gather(d.role("worker", "w1").start(), d.role("worker", "w2").start())

        async def send(upto: slice) -> None:
            for recs in streams.values():
                for r in recs[upto]:
                    await prod.send(d.kafka.embeddings_topic, r.encode(), key=r.key)
            await prod.flush()

        events: list[Event] = []

        async def until(pred: Any, what: str, timeout_s: float = 120.0) -> None:
            try:
                async with asyncio.timeout(timeout_s):
                    while not pred():
                        batch = await events_in.getmany(timeout_ms=500)
                        events.extend(Event.decode(m.value) for msgs in batch.values() for m in msgs)
            except TimeoutError:
                logs = "\n".join(f"--- {w.role} {w.pid}\n{w.stderr(15)}" for w in workers)
                # What the live workers counted: records read, replays skipped, frames missing between a
                # stream's records (a loss under load was Faust clearing fetched records on a resume,
                # `_KeepFlowingQueues` in analytics/worker.py), states restored.
                counts = []
                for w in workers:
                    with contextlib.suppress(Exception):  # the killed one answers nothing
                        a = (await w.health())["analytics"]
                        counts.append(f"{w.pid}: " + ", ".join(f"{k} {a.get(k)}" for k in _COUNTS))
                raise AssertionError(f"{what}; got {sorted(cuts())}\n{'; '.join(counts)}\n{logs}") from None

        def cuts() -> set[tuple[str, float]]:
            return {(e.stream, e.t) for e in events if e.type == "scene_change"}

        # Both workers take part before the kill: the group shares the partitions out.
        await send(slice(0, 12))
        await until(lambda: {(s, 3.75) for s in streams} <= cuts(), "the first cuts did not arrive")
        healths = [await w.health() for w in workers]
        busy = [w for w, h in zip(workers, healths, strict=True) if h["analytics"]["records"] > 0]
        assert len(busy) == 2, f"only {len(busy)} worker got records: {healths}"
        await wait_for(  # a commit goes by (Faust writes the state snapshots out before it commits)
            lambda: committed_to_end(broker.bootstrap, d.app_id, d.kafka.embeddings_topic, PARTITIONS),
            60,
            "the workers to commit every record sent so far",
            interval=0.5,
        )
        victim, survivor = busy
        victim.kill(signal.SIGKILL)
        assert await victim.wait() == -signal.SIGKILL

        await send(slice(12, None))
        await until(lambda: expected <= cuts(), "events were lost after a worker was killed")
        assert cuts() == expected  # nothing invented by the redelivery either
        by_id: dict[str, set[tuple[str, str, float]]] = {}
        for e in events:
            by_id.setdefault(e.id, set()).add((e.stream, e.type, e.t))
        assert all(len(v) == 1 for v in by_id.values()), "one event id stands for one occurrence"
        scene_ids = {e.id for e in events if e.type == "scene_change"}
        assert len(scene_ids) == len(expected)  # a redelivered event repeats its id, never a new one
        assert (await survivor.health())["status"] == "ok"


# -- ingest nodes -------------------------------------------------------------------------------


async def health_reports(c: AIOKafkaConsumer, seen: dict[str, dict[str, Any]]) -> None:
    batch = await c.getmany(timeout_ms=500)
    for msgs in batch.values():
        for m in msgs:
            sid = m.key.decode()
            if m.value:
                seen[sid] = json.loads(m.value)
            else:
                seen.pop(sid, None)


async def test_killing_an_ingest_node_moves_its_streams(
    broker: EmbeddedBroker, tmp_path: Path, tiny_model_dir: Path
) -> None:
    video = tmp_path / "long.mp4"
    make_video(video, shots=4, shot_s=60.0, fps=5, size=(64, 64), seed=3)  # 4 minutes: outlives the test
    ids = [s for s in (f"cam-{i}" for i in range(20)) if partition_of(s) == 0][:2]
    ids += [s for s in (f"cam-{i}" for i in range(20)) if partition_of(s) == 1][:2]
    async with (
        deployment(broker.bootstrap, tmp_path, tiny_model_dir, DINOSTREAM_INGEST__SAMPLE_FPS="1") as d,
        producer(broker.bootstrap) as prod,
        consumer(broker.bootstrap, d.kafka.stream_health_topic) as reports,
    ):
        for sid in ids:  # registered through the streams topic, as a gateway does
            config = StreamConfig(id=sid, url=str(video), realtime=True)
            await prod.send_and_wait(d.kafka.streams_topic, encode_config(config), key=sid.encode())
        nodes = await asyncio.gather(d.role("ingest", "i1").start(), d.role("ingest", "i2").start())
        name = {n.pid: n for n in nodes}
        seen: dict[str, dict[str, Any]] = {}

        def owner(sid: str) -> int | None:
            h = seen.get(sid)
            return int(h["node"].rsplit(":", 1)[1]) if h and h.get("state") == "live" else None

        try:
            async with asyncio.timeout(120):
                while {owner(s) for s in ids} != set(name):  # every stream live, both nodes busy
                    await health_reports(reports, seen)
        except TimeoutError:
            raise AssertionError(f"streams not shared out: {seen}\n{nodes[0].stderr()}\n{nodes[1].stderr()}") from None
        victim = name[owner(ids[0])]  # type: ignore[index]
        survivor = next(n for n in nodes if n is not victim)
        moved = [s for s in ids if owner(s) == victim.pid]
        victim.kill(signal.SIGKILL)
        killed_at = time.time()
        await victim.wait()

        bound_s = SESSION_TIMEOUT_S + 20  # the group notices the death, then the survivor starts them
        try:
            async with asyncio.timeout(bound_s):
                while not all(
                    owner(s) == survivor.pid and seen[s]["published"] > killed_at and seen[s]["frames_out"] > 0
                    for s in ids
                ):
                    await health_reports(reports, seen)
        except TimeoutError:
            raise AssertionError(
                f"streams {moved} did not move to the survivor within {bound_s:g} s: {seen}\n{survivor.stderr()}"
            ) from None
        h = await survivor.health()
        assert sorted(h["ownership"]["streams"]) == sorted(ids) and h["ownership"]["partitions"] == [0, 1]


# -- the broker freezes -------------------------------------------------------------------------


async def test_a_frozen_broker_costs_frames_not_memory(tmp_path: Path, tiny_model_dir: Path) -> None:
    frozen = EmbeddedBroker(tmp_path / "frozen-broker.log")
    await frozen.start()
    video = tmp_path / "clip.mp4"
    make_video(video, shots=4, shot_s=40.0, fps=10, size=(64, 64), seed=4)
    queue = 2
    try:
        async with deployment(
            frozen.bootstrap,
            tmp_path,
            tiny_model_dir,
            DINOSTREAM_INGEST__SAMPLE_FPS="5",
            DINOSTREAM_INGEST__QUEUE_SIZE=str(queue),
            DINOSTREAM_MODEL__QUEUE_SIZE=str(queue),
            DINOSTREAM_MODEL__MAX_BATCH="2",
        ) as d:
            async with producer(frozen.bootstrap) as prod:
                for sid in ("cam-a", "cam-b"):
                    config = StreamConfig(id=sid, url=str(video), realtime=True)
                    await prod.send_and_wait(d.kafka.streams_topic, encode_config(config), key=sid.encode())
            node = await d.role("ingest", "i1").start()
            async with consumer(frozen.bootstrap, d.kafka.embeddings_topic, offset="latest") as records:

                async def new_records(after: float) -> int:
                    """Wait for records captured after `after` (wall clock) to arrive; their count."""
                    async with asyncio.timeout(90):
                        while True:
                            batch = await records.getmany(timeout_ms=500)
                            ts = [FrameHeader.decode(m.value).ts for v in batch.values() for m in v]
                            if any(t > after for t in ts):
                                return len(ts)

                await new_records(0)
                before = await node.health()
                assert frozen._proc is not None
                os.kill(frozen._proc.pid, signal.SIGSTOP)
                try:
                    paused_at = time.time()
                    peak_queued = 0
                    while time.time() - paused_at < 10:  # the node keeps answering, and holds little
                        h = await node.health()
                        peak_queued = max(peak_queued, h["embedding"]["queued"])
                        await asyncio.sleep(0.5)
                finally:
                    os.kill(frozen._proc.pid, signal.SIGCONT)
                resumed_at = time.time()
                during = await node.health()
                assert peak_queued <= 2 * queue  # the model stage's queues: per stream, bounded
                assert during["streams"]["drops"] > before["streams"]["drops"]  # dropped and counted
                assert await new_records(resumed_at) > 0  # and it goes on afterwards
                assert node.proc is not None and node.proc.returncode is None
    finally:
        await frozen.stop()


# -- the index sink restarts --------------------------------------------------------------------


async def test_restarting_the_index_sink_indexes_each_frame_once(
    broker: EmbeddedBroker, tmp_path: Path, tiny_model_dir: Path
) -> None:
    records = [r for i in range(3) for r in shots(f"cam-{i}", [100, 100], seed=10 + i)]
    async with (
        deployment(broker.bootstrap, tmp_path, tiny_model_dir, DINOSTREAM_INDEX__BATCH_SIZE="16") as d,
        producer(broker.bootstrap) as prod,
    ):
        # Frames of the tiny model's size (64) for the index that reads it from the model's config.
        records = [
            FrameEmbedding(
                stream=r.stream,
                seq=r.seq,
                pts=r.pts,
                ts=r.ts,
                model="t",
                untrained=True,
                cls=np.resize(r.cls, 64),
                pooled=np.resize(r.pooled, 64),
                patches=np.zeros((2, 2, 64)),
            )
            for r in records
        ]
        for r in records:
            await prod.send(d.kafka.embeddings_topic, r.encode(), key=r.key)
        await prod.flush()
        first = await d.role("index", "index").start()
        async with asyncio.timeout(90):
            while (await first.health())["index"]["frames"] < len(records) // 4:
                await asyncio.sleep(0.1)
        first.kill(signal.SIGKILL)  # mid-stream: its last batch is written but not committed
        await first.wait()

        second = await Role("index", first.env, first.log).start()
        d.roles.append(second)
        group = AIOKafkaConsumer(bootstrap_servers=broker.bootstrap, group_id=f"{d.app_id}-index")
        await group.start()
        try:
            tps = [TopicPartition(d.kafka.embeddings_topic, p) for p in range(PARTITIONS)]
            ends = await group.end_offsets(tps)

            async def behind() -> bool:
                for tp in tps:
                    if ((await group.committed(tp)) or 0) < ends[tp]:
                        return True
                return False

            async with asyncio.timeout(90):
                while await behind():  # the restarted sink commits up to the end
                    await asyncio.sleep(0.2)
        finally:
            await group.stop()
        second.kill(signal.SIGTERM)
        assert await second.wait() == 0, second.stderr()
        index = QdrantEdgeIndex(tmp_path / "index" / "qdrant", 64)
        try:
            assert index.count_frames() == len({(r.stream, r.seq) for r in records}) == len(records)
        finally:
            index.close()


def _children(pid: int) -> list[int]:
    """The child processes of `pid` (every thread's), from /proc."""
    kids: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):
            kids += [int(k) for k in (task / "children").read_text().split()]
    return kids


def _state(pid: int) -> str | None:
    """The process's state letter (Z: a zombie nobody reaped), None once it is gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return None


async def test_killing_the_embedded_broker_stops_up_with_a_clear_error(tmp_path: Path, tiny_model_dir: Path) -> None:
    """kill -9 of `up`'s embedded broker: seen within 10 s (health 503, or `up` already gone), the
    broker reaped, and `up` exits non-zero naming the broker, in bounded time (not minutes of retries).
    The topics were in memory: stopping is the honest answer (a restarted empty broker would hold
    none of the offsets, state or watchlist the running nodes refer to)."""
    video = tmp_path / "long.mp4"
    make_video(video, shots=4, shot_s=60.0, fps=5, size=(64, 64), seed=5)
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "DINOSTREAM_MODEL__MODEL": str(tiny_model_dir),
        "DINOSTREAM_MODEL__DEVICE": "cpu",
        "DINOSTREAM_MODEL__IMAGE_SIZE": "64",
        "DINOSTREAM_HTTP__PORT": "0",
        "DINOSTREAM_DATA_DIR": str(tmp_path / "data"),
        "DINOSTREAM_SOURCES": json.dumps([str(video)]),
        "DINOSTREAM_INGEST__SAMPLE_FPS": "2",
    }
    up = Role("up", env, tmp_path / "up.stderr")
    await up.start(timeout_s=120)
    try:
        up.url = up.url.removeprefix("dashboard ").strip()
        broker_pids = [k for k in _children(up.pid) if b"--storage-engine" in Path(f"/proc/{k}/cmdline").read_bytes()]
        assert len(broker_pids) == 1, f"one embedded broker child, got {broker_pids}"
        (broker_pid,) = broker_pids
        assert (await up.health())["status"] == "ok"  # the probe watches a live broker first
        os.kill(broker_pid, signal.SIGKILL)
        killed = time.monotonic()

        async def lost_seen() -> bool:
            if up.proc is not None and up.proc.returncode is not None:
                return True
            try:
                return (await up.health())["status"] == "degraded"
            except httpx.HTTPError:  # the server is already stopping
                return True

        await wait_for(lost_seen, timeout=10, what="the broker loss seen by health or up's exit")
        assert time.monotonic() - killed < 10
        if up.proc is not None and up.proc.returncode is None:  # up still stopping: it has reaped its child
            assert _state(broker_pid) is None, "the broker was reaped, not left a zombie"
        code = await asyncio.wait_for(up.wait(), 60)
        assert code != 0
        assert "embedded Kafka broker exited unexpectedly" in up.stderr(200)
    finally:
        up.kill()
        await up.wait()
