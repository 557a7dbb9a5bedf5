"""The four roles of a distributed deployment, one process each, and the pieces `up` shares.

`dinostream ingest|worker|index|gateway` run one of these; `dinostream up` (`dinostream.stack`)
runs all of them in one process from the same helpers. The roles talk only through Kafka (and
Qdrant): they need `kafka.bootstrap` and never start an embedded broker.

- ingest: the model, the streams of the streams-topic partitions this node owns
  (`dinostream.ingest.stream_ownership`), frame records to the embeddings topic.
- worker: the Faust analytics app (embeddings in, events out), its consumer group shares out
  the embeddings topic's partitions.
- index: embeddings and events into the vector index (Qdrant), in consumer group
  `<app_id>-index`.
- gateway: the dashboard, HTTP API and websockets; streams through `dinostream.ingest.stream_directory`;
  alerts. It loads the model only when an image query first needs it. WHIP stays on `up`.

Every role serves `GET /api/v1/health` (200 ok, 503 degraded) and `GET /metrics` on
`settings.http.host:port`, and stops with a non-zero exit when a long-lived task dies.

    await run_worker(settings, stop_event, on_ready=print)
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import os
import socket
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import uvicorn
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from fastapi import FastAPI
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric

from dinostream.analytics.gallery import open_gallery
from dinostream.analytics.watchlist import Exemplar, Watchlist
from dinostream.analytics.watchlist_feed import WatchlistFeed, exemplar_message
from dinostream.analytics.worker import WorkerStats, build_app, control_message
from dinostream.core.errors import BrokerError, DinostreamError
from dinostream.core.kafka_io import ensure_topics, make_producer
from dinostream.core.records import FrameEmbedding
from dinostream.core.settings import KafkaSettings, ModelSettings, Settings
from dinostream.dashboard.analytics_control import AnalyticsControl
from dinostream.dashboard.app import create_app
from dinostream.dashboard.live_feed import LiveFeed
from dinostream.dashboard.live_hub import LiveHub
from dinostream.dashboard.metrics import Families, component_families, stream_families
from dinostream.dashboard.recent_frames import RecentFrames
from dinostream.dashboard.role_app import create_role_app
from dinostream.dashboard.streams_api import StreamCatalog
from dinostream.dashboard.watchlist_api import watchlist_router
from dinostream.embedding.model_loader import RANDOM_ARCHS, LoadedModel
from dinostream.embedding.stage import EmbeddingStage, load_model_async
from dinostream.ingest.stream_directory import StreamDirectory
from dinostream.ingest.stream_manager import StreamManager
from dinostream.ingest.stream_ownership import StreamOwnership
from dinostream.sinks.alert_service import AlertService
from dinostream.sinks.index_factory import open_index
from dinostream.sinks.index_sink import IndexSink
from dinostream.sinks.vector_index import VectorIndex

log = logging.getLogger(__name__)

ROLES = ("ingest", "worker", "index", "gateway")
_PROBLEM_WINDOW_S = 30.0  # a Kafka delivery failure this recent makes the ingest role degraded


class RoleFailed(DinostreamError):
    """A long-lived task of a role (or of `up`) died."""


def require_bootstrap(settings: Settings, role: str) -> str:
    """The Kafka bootstrap a role needs; DinostreamError (one line) when none is configured."""
    if not settings.kafka.bootstrap:
        raise DinostreamError(
            f"`dinostream {role}` needs a Kafka cluster: pass --kafka HOST:PORT or set DINOSTREAM_KAFKA__BOOTSTRAP "
            "(the separate roles never start an embedded broker; `dinostream up` does)"
        )
    return settings.kafka.bootstrap


# -- shared pieces (`up` uses them too) ---------------------------------------------------------


class RecordProducer:
    """The model stage's sink: frame records to the embeddings topic, keyed by stream.

    A record over `max_message_bytes` is counted and not sent. With `drop_on_error`, a batch Kafka
    does not take within the producer's request timeout (the broker is away) is counted as
    `failed` and dropped, like a live frame the model fell behind on: the stage never stops for
    an outage, and the frame queues before it stay bounded (they drop the oldest and count).
    """

    def __init__(self, kafka: KafkaSettings, *, drop_on_error: bool = False) -> None:
        self.kafka = kafka
        self.drop_on_error = drop_on_error
        self.producer: AIOKafkaProducer | None = None
        self.produced = 0
        self.oversize = 0
        self.failed = 0
        self.last_failure: float | None = None  # wall clock
        self.last_error: str | None = None

    async def __call__(self, batch: list[FrameEmbedding]) -> None:
        producer = self.producer
        assert producer is not None, "the stage starts after the producer"
        futures = []
        try:
            for rec in batch:
                data = rec.encode()
                if len(data) > self.kafka.max_message_bytes:
                    self.oversize += 1
                    log.error(
                        "stream %s frame %d: record of %d bytes exceeds max_message_bytes %d; not sent",
                        rec.stream,
                        rec.seq,
                        len(data),
                        self.kafka.max_message_bytes,
                    )
                    continue
                futures.append(await producer.send(self.kafka.embeddings_topic, data, key=rec.key))
            await asyncio.gather(*futures)
        except KafkaError as e:
            if not self.drop_on_error:
                raise
            delivered = 0
            for f in futures:
                if f.done() and not f.cancelled() and f.exception() is None:
                    delivered += 1
                else:
                    f.add_done_callback(_retrieve)  # a late outcome is not an "unretrieved exception"
            self.produced += delivered
            self.failed += len(batch) - delivered
            self.last_failure, self.last_error = time.time(), f"{type(e).__name__}: {e}"
            log.warning(
                "embeddings not delivered (%s); %d frame records dropped", self.last_error, len(batch) - delivered
            )
            return
        self.produced += len(futures)

    def stats(self) -> dict[str, Any]:
        return {
            "produced": self.produced,
            "oversize_dropped": self.oversize,
            "failed_dropped": self.failed,
            "last_error": self.last_error,
        }

    def problems(self) -> list[str]:
        if self.last_failure is not None and time.time() - self.last_failure < _PROBLEM_WINDOW_S:
            return [f"Kafka did not take frame records in the last {_PROBLEM_WINDOW_S:g} s: {self.last_error}"]
        return []


def _retrieve(f: asyncio.Future[Any]) -> None:
    if not f.cancelled():
        f.exception()


async def start_producer(bootstrap: str, kafka: KafkaSettings, stack: contextlib.AsyncExitStack) -> AIOKafkaProducer:
    """An acks=all producer (`kafka_io.make_producer`), started; stopped by `stack`. BrokerError in
    one line when the cluster refuses it (e.g. an idempotent producer on a broker without support)."""
    producer = make_producer(bootstrap, kafka, embedded=False)
    try:
        await producer.start()
    except KafkaError as e:
        with contextlib.suppress(Exception):
            await producer.stop()
        hint = "; set kafka.idempotent = false if the broker does not support idempotent producers"
        raise BrokerError(f"Kafka at {bootstrap} refused the producer: {type(e).__name__}: {e}{hint}") from None
    stack.push_async_callback(producer.stop)
    return producer


def make_stage(loaded: LoadedModel, settings: Settings, sink: RecordProducer) -> EmbeddingStage:
    """The model stage of `up` and ingest (refuses settings whose records would exceed the Kafka
    message limit, loads a fitted patch PCA)."""
    return EmbeddingStage(
        loaded,
        settings.model,
        settings.ingest,
        sink,
        max_message_bytes=settings.kafka.max_message_bytes,
        data_dir=settings.data_dir,
    )


async def start_worker(bootstrap: str, settings: Settings, stack: contextlib.AsyncExitStack) -> tuple[Any, WorkerStats]:
    """The Faust analytics app with its re-identification gallery, started; stopped by `stack`.

    The gallery is a collection on the Qdrant server when there is one (shared by every worker),
    else an Edge shard under the data dir (this process's own)."""
    s = settings
    gallery = open_gallery(s.index.qdrant_url, s.index.qdrant_api_key, s.index.collection_prefix, s.data_dir)
    stack.callback(gallery.close)
    stats = WorkerStats()
    app = build_app(bootstrap, s.kafka, s.analytics, gallery=gallery, stats=stats)
    await app.start()
    stack.push_async_callback(app.stop)
    return app, stats


def worker_failure(app: Any, stats: WorkerStats) -> str | None:
    """Why the analytics worker is dead, or None while it runs."""
    if stats.failure or app.crashed:
        return str(stats.failure or app.crash_reason)
    return None


EmbedImages = Callable[[list[np.ndarray]], Awaitable[np.ndarray]]
EmbedRecord = Callable[[np.ndarray], Awaitable[FrameEmbedding]]


@dataclasses.dataclass
class GatewayParts:
    """What the dashboard shows and serves, fed from Kafka: `up` and the gateway role build it
    alike (`start_gateway`), then serve `app`; `tasks` are the long-lived ones to supervise."""

    app: FastAPI
    hub: LiveHub
    feed: LiveFeed
    watchlist: Watchlist
    alerts: AlertService | None
    tasks: dict[str, asyncio.Task[Any]]

    async def stop(self) -> None:
        if self.alerts is not None:
            await self.alerts.stop()  # lets queued alerts drain, within its time limit
        for t in self.tasks.values():
            t.cancel()
        await asyncio.gather(*self.tasks.values(), return_exceptions=True)


async def start_gateway(
    settings: Settings,
    bootstrap: str,
    *,
    embedded: bool,
    producer: AIOKafkaProducer,
    index: VectorIndex | None,
    embed_images: EmbedImages | None,
    embed_image_record: EmbedRecord,
    manager: StreamCatalog | None,
    health: Callable[[], dict[str, Any]],
    metrics: Sequence[Families] = (),
) -> GatewayParts:
    """The live feed, the watchlist copy, alerts and the dashboard app, started.

    `health()` is the caller's report; the parts' own (watchlist, alerts) are merged into it."""
    s = settings
    hub = LiveHub(s.http.ws_queue_size, resume_memory=s.http.ws_resume_memory)
    recent = RecentFrames()  # whole records of the last frames: clicks on live frames
    feed = LiveFeed(hub, bootstrap, s.kafka, on_frame_record=recent.add)
    await feed.start()
    watchlist = Watchlist()  # the gateway's copy (the workers follow the same topic)
    watchlist_feed = WatchlistFeed(watchlist, bootstrap, s.kafka)
    await watchlist_feed.start()
    alerts = AlertService(s.alerts, bootstrap, s.kafka, embedded=embedded) if s.alerts.rules else None

    async def send_control(stream: str, processor: str, changes: dict[str, Any]) -> None:
        await producer.send_and_wait(
            s.kafka.control_topic, control_message(stream, processor, changes), key=stream.encode()
        )

    async def publish_exemplar(exemplar_id: str, exemplar: Exemplar | None) -> None:
        value = None if exemplar is None else exemplar_message(exemplar)  # None: a tombstone
        await producer.send_and_wait(s.kafka.watchlist_topic, value, key=exemplar_id.encode())

    def full_health() -> dict[str, Any]:
        return {
            **health(),
            "watchlist": {"exemplars": len(watchlist)},
            "alerts": alerts.stats() if alerts is not None else None,
        }

    app = create_app(
        settings=s.http,
        hub=hub,
        index=index,
        embed_images=embed_images,
        health=full_health,
        analytics=AnalyticsControl(s.analytics, send_control),
        manager=manager,
        event_log=feed.event_log,
        metrics=[
            *metrics,
            component_families("websocket", hub.stats),
            *([alerts.metric_families] if alerts is not None else []),
        ],
        index_settings=s.index,
    )
    app.include_router(
        watchlist_router(
            watchlist, publish_exemplar, recent, embed_image_record, s.analytics.reid, s.http.max_upload_bytes
        )
    )
    tasks = {
        "live-feed": asyncio.create_task(feed.run(), name="live-feed"),
        "watchlist-feed": asyncio.create_task(watchlist_feed.run(), name="watchlist-feed"),
    }
    if alerts is not None:
        tasks["alerts"] = asyncio.create_task(alerts.run(), name="alerts")
    return GatewayParts(app, hub, feed, watchlist, alerts, tasks)


async def serve_http(app: FastAPI, settings: Settings, critical: dict[str, asyncio.Task[Any]]) -> uvicorn.Server:
    """Start uvicorn on settings.http.host:port (port 0: any) as `critical["http"]`; return once it listens."""
    s = settings.http
    server = uvicorn.Server(
        uvicorn.Config(
            app, host=s.host, port=s.port, ws="auto", ws_per_message_deflate=False, log_level="warning", lifespan="off"
        )
    )
    task = critical["http"] = asyncio.create_task(server.serve(), name="http")
    while not server.started:
        if task.done():
            task.result()
            raise RoleFailed(f"HTTP server could not listen on {s.host}:{s.port}")
        await asyncio.sleep(0.05)
    return server


def server_url(server: uvicorn.Server, settings: Settings) -> str:
    port = server.servers[0].sockets[0].getsockname()[1]
    return f"http://{settings.http.host}:{port}/"


async def supervise(
    stop: asyncio.Event, critical: dict[str, asyncio.Task[Any]], check: Callable[[], str | None] = lambda: None
) -> None:
    """Wait for `stop`; raise RoleFailed when a critical task ends or `check()` names a failure."""
    stopper = asyncio.create_task(stop.wait())
    try:
        while True:
            done, _ = await asyncio.wait(
                [stopper, *critical.values()], timeout=1.0, return_when=asyncio.FIRST_COMPLETED
            )
            if stopper in done:
                return
            for name, task in critical.items():
                if task in done:
                    exc = task.exception() if not task.cancelled() else None
                    log.error("%s stopped unexpectedly: %s", name, exc, exc_info=exc)
                    raise RoleFailed(f"{name} stopped unexpectedly: {exc or 'no error given'}")
            failure = check()
            if failure:
                raise RoleFailed(failure)
    finally:
        stopper.cancel()


async def _stop_tasks(server: uvicorn.Server | None, critical: dict[str, asyncio.Task[Any]]) -> None:
    if server is not None:
        server.should_exit = True
    for name, t in critical.items():
        if name != "http":
            t.cancel()
    await asyncio.gather(*critical.values(), return_exceptions=True)


def model_dims(model: ModelSettings) -> tuple[int, int | None]:
    """(vector size, patch vector size or None = the same) of the records the model produces,
    read from its configuration without loading weights (`random:SIZE`, a checkpoint directory,
    a Hub id in the cache or on the Hub); DinostreamError when it cannot be read."""
    spec = model.model
    dim: int | None = None
    try:
        if spec.startswith("random:"):
            size = spec.removeprefix("random:")
            arch = RANDOM_ARCHS.get(size) or RANDOM_ARCHS.get({"vits16plus": "vitsplus16"}.get(size, ""))
            dim = int(arch["hidden_size"]) if arch else None
        else:
            path = Path(spec).expanduser()
            if (path / "config.json").is_file():
                dim = int(json.loads((path / "config.json").read_text())["hidden_size"])
            elif not path.exists():
                from huggingface_hub import hf_hub_download

                dim = int(json.loads(Path(hf_hub_download(spec, "config.json")).read_text())["hidden_size"])
    except Exception as e:  # noqa: BLE001 - any way of failing names the model
        raise DinostreamError(f"cannot read the vector size of model {spec!r} from its config: {e}") from None
    if dim is None:
        raise DinostreamError(
            f"cannot read the vector size of model {spec!r} without loading it: use a checkpoint directory, a Hub "
            "id or random:SIZE for the index and gateway roles"
        )
    return dim, model.patch_pca_dims


def node_name(settings: Settings) -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


# -- the roles ---------------------------------------------------------------------------------

Ready = Callable[[str], None] | None


async def run_ingest(settings: Settings, stop: asyncio.Event, on_ready: Ready = None) -> None:
    """Decode the streams this node owns, run the model, produce frame records."""
    s = settings
    bootstrap = require_bootstrap(s, "ingest")
    if s.sources:
        raise DinostreamError(
            "`dinostream ingest` takes its streams from the streams topic, not from `sources`: add them through a "
            "gateway (`dinostream streams add URL --api http://GATEWAY:8000`)"
        )
    await ensure_topics(bootstrap, s.kafka)
    loaded = await load_model_async(s.model)
    sink = RecordProducer(s.kafka, drop_on_error=True)
    stage = make_stage(loaded, s, sink)
    started = time.time()
    node = node_name(s)
    async with contextlib.AsyncExitStack() as stack:
        producer = sink.producer = await start_producer(bootstrap, s.kafka, stack)
        manager = StreamManager(stage, s.ingest, registry=None)
        ownership = StreamOwnership(
            manager, bootstrap, s.kafka, group=f"{s.analytics.app_id}-ingest", producer=producer, node=node
        )
        stage.start()

        def health() -> dict[str, Any]:
            healths = manager.healths()
            return {
                "uptime_s": round(time.time() - started, 1),
                "node": node,
                "model": {"id": loaded.model_id, "untrained": loaded.untrained, "device": str(loaded.device)},
                "kafka": {"bootstrap": bootstrap, **sink.stats()},
                "embedding": dataclasses.asdict(stage.batcher.stats()),
                "ownership": ownership.health(),
                # A failing camera is not a failing node (503 would restart it and move its streams):
                # per-stream health is on the stream-health topic, /metrics and the gateway.
                "streams": _stream_summary(healths),
                "problems": sink.problems(),
            }

        app = create_role_app(
            "ingest",
            health=health,
            metrics=[
                stream_families(manager.healths),
                _ingest_families(sink, stage),
                component_families("embedding", stage.batcher.stats),
            ],
        )
        critical: dict[str, asyncio.Task[Any]] = {}
        assert stage.batcher.task is not None
        critical["model-stage"] = stage.batcher.task
        server: uvicorn.Server | None = None
        try:
            server = await serve_http(app, s, critical)
            await ownership.start()
            critical["ownership"] = asyncio.create_task(ownership.run(), name="ownership")
            if on_ready:
                on_ready(server_url(server, s))
            await supervise(stop, critical)
        finally:
            await _cancel(critical.pop("ownership", None))
            await ownership.stop()  # stops the streams and leaves the group: the others take over
            await manager.stop()
            await stage.stop()
            critical.pop("model-stage", None)
            await _stop_tasks(server, critical)


async def _cancel(task: asyncio.Task[Any] | None) -> None:
    if task is None:
        return
    task.cancel()
    with contextlib.suppress(BaseException):
        await task


def _stream_summary(healths: dict[str, dict[str, Any]]) -> dict[str, Any]:
    states: dict[str, int] = {}
    for h in healths.values():
        states[str(h.get("state"))] = states.get(str(h.get("state")), 0) + 1
    return {
        "count": len(healths),
        "states": states,
        "failing": sorted(sid for sid, h in healths.items() if h.get("failed")),
        "drops": sum(int(h.get("drops") or 0) for h in healths.values()),
    }


def _ingest_families(sink: RecordProducer, stage: EmbeddingStage) -> Families:
    def build() -> list[Metric]:
        out = CounterMetricFamily("dinostream_records_produced", "Frame records Kafka acknowledged.")
        out.add_metric([], sink.produced)
        dropped = CounterMetricFamily(
            "dinostream_records_dropped", "Frame records not sent, by reason.", labels=["reason"]
        )
        dropped.add_metric(["oversize"], sink.oversize)
        dropped.add_metric(["kafka"], sink.failed)
        queued = GaugeMetricFamily("dinostream_model_queue_frames", "Frames waiting for the model.")
        queued.add_metric([], stage.batcher.stats().queued)
        return [out, dropped, queued]

    return build


async def run_worker(settings: Settings, stop: asyncio.Event, on_ready: Ready = None) -> None:
    """The Faust analytics app; Kafka shares the embeddings topic's partitions among the workers."""
    s = settings
    bootstrap = require_bootstrap(s, "worker")
    await ensure_topics(bootstrap, s.kafka)
    started = time.time()
    async with contextlib.AsyncExitStack() as stack:
        s.data_dir.mkdir(parents=True, exist_ok=True)
        app, stats = await start_worker(bootstrap, s, stack)

        def health() -> dict[str, Any]:
            failure = worker_failure(app, stats)
            return {
                "uptime_s": round(time.time() - started, 1),
                "kafka": {"bootstrap": bootstrap},
                "analytics": vars(stats),
                "problems": [f"analytics worker failed: {failure}"] if failure else [],
            }

        critical: dict[str, asyncio.Task[Any]] = {}
        server: uvicorn.Server | None = None
        try:
            families = [component_families("analytics", lambda: stats)]
            server = await serve_http(create_role_app("worker", health=health, metrics=families), s, critical)
            if on_ready:
                on_ready(server_url(server, s))
            await supervise(stop, critical, lambda: _failed("analytics worker", worker_failure(app, stats)))
        finally:
            await _stop_tasks(server, critical)


def _failed(what: str, why: str | None) -> str | None:
    return f"{what} failed: {why}" if why else None


async def run_index(settings: Settings, stop: asyncio.Event, on_ready: Ready = None) -> None:
    """Frames and events into the vector index, in consumer group `<app_id>-index`."""
    s = settings
    bootstrap = require_bootstrap(s, "index")
    dim, patch_dim = await asyncio.to_thread(model_dims, s.model)
    await ensure_topics(bootstrap, s.kafka)
    if s.index.qdrant_url is None:
        log.warning(
            "index: no index.qdrant_url; writing to a Qdrant Edge shard under %s that only this process reads",
            s.data_dir,
        )
    started = time.time()
    async with contextlib.AsyncExitStack() as stack:
        s.data_dir.mkdir(parents=True, exist_ok=True)
        index = await asyncio.to_thread(open_index, s.index, s.data_dir, dim, patch_dim)
        stack.callback(index.close)
        sink = IndexSink(index, bootstrap, s.kafka, s.index, group=f"{s.analytics.app_id}-index")

        def health() -> dict[str, Any]:
            return {
                "uptime_s": round(time.time() - started, 1),
                "kafka": {"bootstrap": bootstrap},
                "index": {**vars(sink.stats), "dim": dim, "qdrant_url": s.index.qdrant_url},
            }

        critical: dict[str, asyncio.Task[Any]] = {"index-sink": asyncio.create_task(sink.run(), name="index-sink")}
        server: uvicorn.Server | None = None
        try:
            families = [component_families("index", sink.metrics)]
            server = await serve_http(create_role_app("index", health=health, metrics=families), s, critical)
            if on_ready:
                on_ready(server_url(server, s))
            await supervise(stop, critical)
        finally:
            await _stop_tasks(server, critical)


class LazyModel:
    """The model stage of a gateway, loaded when an image query first needs it (search by
    picture, watchlist crops), so a gateway without a GPU starts at once."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.stage: EmbeddingStage | None = None
        self.loaded: LoadedModel | None = None
        self._lock = asyncio.Lock()

    async def _ready(self) -> EmbeddingStage:
        async with self._lock:
            if self.stage is None:
                log.info("gateway: loading the model for image queries")
                self.loaded = await load_model_async(self.settings.model)
                stage = make_stage(self.loaded, self.settings, RecordProducer(self.settings.kafka))
                stage.start()
                self.stage = stage
            return self.stage

    async def embed_images(self, images: list[np.ndarray]) -> np.ndarray:
        return await (await self._ready()).embed_images(images)

    async def embed_image_record(self, image: np.ndarray) -> FrameEmbedding:
        return await (await self._ready()).embed_image_record(image)

    def health(self) -> dict[str, Any]:
        if self.loaded is None:
            return {"id": self.settings.model.model, "loaded": False}
        return {"id": self.loaded.model_id, "loaded": True, "device": str(self.loaded.device)}

    async def close(self) -> None:
        if self.stage is not None:
            await self.stage.stop()


async def run_gateway(settings: Settings, stop: asyncio.Event, on_ready: Ready = None) -> None:
    """The dashboard, HTTP API, websockets and alerts; streams through the streams topic."""
    s = settings
    bootstrap = require_bootstrap(s, "gateway")
    await ensure_topics(bootstrap, s.kafka)
    started = time.time()
    async with contextlib.AsyncExitStack() as stack:
        s.data_dir.mkdir(parents=True, exist_ok=True)
        index: VectorIndex | None = None
        if s.index.qdrant_url is not None:
            dim, patch_dim = await asyncio.to_thread(model_dims, s.model)
            index = await asyncio.to_thread(open_index, s.index, s.data_dir, dim, patch_dim)
            stack.callback(index.close)
        else:
            log.warning("gateway: no index.qdrant_url; search answers 503 (the index role's Edge shard is its own)")
        producer = await start_producer(bootstrap, s.kafka, stack)
        model = LazyModel(s)
        stack.push_async_callback(model.close)
        directory = StreamDirectory(bootstrap, s.kafka, s.ingest, producer)
        await directory.start()

        def health() -> dict[str, Any]:
            healths = directory.healths()
            return {
                "uptime_s": round(time.time() - started, 1),
                "model": model.health(),
                "kafka": {"bootstrap": bootstrap, "embedded": False},
                "streams": _stream_summary(healths),
                "index": {"qdrant_url": s.index.qdrant_url},
            }

        parts = await start_gateway(
            s,
            bootstrap,
            embedded=False,
            producer=producer,
            index=index,
            embed_images=model.embed_images,
            embed_image_record=model.embed_image_record,
            manager=directory,
            health=health,
        )
        critical = {**parts.tasks, "streams-directory": asyncio.create_task(directory.run(), name="streams-directory")}
        server: uvicorn.Server | None = None
        try:
            server = await serve_http(parts.app, s, critical)
            if on_ready:
                on_ready(server_url(server, s))
            await supervise(stop, critical)
        finally:
            if parts.alerts is not None:
                await parts.alerts.stop()
            await _stop_tasks(server, critical)


RUNNERS: dict[str, Callable[[Settings, asyncio.Event, Ready], Awaitable[None]]] = {
    "ingest": run_ingest,
    "worker": run_worker,
    "index": run_index,
    "gateway": run_gateway,
}
