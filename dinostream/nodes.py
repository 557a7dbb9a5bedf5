"""The nodes of the service's data path: the model stage, the streams, the analytics worker, the
index sink and the alert service (the gateway and the HTTP server are in `dinostream.gateway_node`).

Each is built once, here, and run by `dinostream.service` in `up` and in the role processes
alike; what differs between them is what the `Runtime` says (one process or several).
"""

from __future__ import annotations

import asyncio
import dataclasses
import importlib
import logging
import os
import socket
from typing import TYPE_CHECKING, Any

from dinostream.analytics.gallery import TrackGallery, open_gallery
from dinostream.analytics.worker import WorkerStats, build_app, faust_topic_specs
from dinostream.core.errors import DinostreamError
from dinostream.core.kafka_io import TopicSpec
from dinostream.core.record_producer import RecordProducer
from dinostream.dashboard.metrics import Families, component_families, stream_families
from dinostream.embedding.model_dims import model_dims
from dinostream.ingest.source_plan import SourceSpec, plan_sources
from dinostream.ingest.stream_manager import StreamManager
from dinostream.ingest.stream_ownership import StreamOwnership
from dinostream.ingest.stream_registry import REGISTRY_FILE, StreamConfig, StreamRegistry
from dinostream.ingest.whip_sessions import WhipSessions, whip_streams
from dinostream.node import Node, Runtime, cancel
from dinostream.sinks.alert_service import AlertService
from dinostream.sinks.index_factory import open_index
from dinostream.sinks.index_sink import IndexSink
from dinostream.sinks.vector_index import VectorIndex

if TYPE_CHECKING:  # torch and transformers load with the model, not with every role
    from dinostream.embedding.model_loader import LoadedModel
    from dinostream.embedding.stage import EmbeddingStage

log = logging.getLogger(__name__)


class ModelNode(Node):
    """The model, and the stage that embeds the streams' frames into records for the embeddings
    topic. In `up` a Kafka error stops the stage; an ingest node drops and counts instead."""

    name = "model"

    def __init__(self, runtime: Runtime) -> None:
        super().__init__(runtime)
        self.sink = RecordProducer(self.settings.kafka, drop_on_error=not runtime.local)
        self.loaded: LoadedModel | None = None
        self._stage: EmbeddingStage | None = None

    @property
    def stage(self) -> EmbeddingStage:
        assert self._stage is not None, "prepared first"
        return self._stage

    async def prepare(self) -> None:
        await asyncio.to_thread(importlib.import_module, "dinostream.embedding.stage")  # torch: seconds
        from dinostream.embedding.stage import EmbeddingStage, load_model_async

        self.loaded = await load_model_async(self.settings.model)
        # Refuses settings whose records would exceed the Kafka message limit; loads a fitted patch PCA.
        self._stage = EmbeddingStage.from_settings(self.loaded, self.settings, self.sink)

    async def start(self) -> None:
        self.sink.producer = await self.runtime.producer(frames=True)
        self.stage.start()

    def tasks(self) -> dict[str, asyncio.Task[Any]]:
        task = self.stage.batcher.task
        return {"model-stage": task} if task is not None else {}

    def health(self) -> dict[str, Any]:
        loaded = self.stage.loaded
        return {
            "model": {"id": loaded.model_id, "untrained": loaded.untrained, "device": str(loaded.device)},
            "kafka": self.sink.stats(),
            "embedding": dataclasses.asdict(self.stage.batcher.stats()),
            "problems": self.sink.problems(),
        }

    def metrics(self) -> list[Families]:
        return [
            self.sink.metric_families,
            self.stage.metric_families,
            component_families("embedding", self.stage.batcher.stats),
        ]

    async def stop(self) -> None:
        await self.stage.stop()  # closes nothing the streams node owns; delivers what it accepted


def stream_summary(healths: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Counts over streams' healths, for a node's health (per-stream detail is elsewhere)."""
    states: dict[str, int] = {}
    for h in healths.values():
        states[str(h.get("state"))] = states.get(str(h.get("state")), 0) + 1
    return {
        "count": len(healths),
        "states": states,
        "failing": sorted(sid for sid, h in healths.items() if h.get("failed")),
        "drops": sum(int(h.get("drops") or 0) for h in healths.values()),
    }


class StreamsNode(Node):
    """The streams this process decodes into the model stage, each under its own supervisor.

    In `up` (`runtime.local`): the command-line sources, the registry file's streams, and WHIP
    publishers. In an ingest node: the streams of the streams-topic partitions Kafka gives it
    (`StreamOwnership`, in the ingest consumer group)."""

    name = "streams"

    def __init__(self, runtime: Runtime, model: ModelNode) -> None:
        super().__init__(runtime)
        self.model = model
        self.group = None if runtime.local else runtime.groups["streams"]
        self.node = f"{socket.gethostname()}:{os.getpid()}"
        self.specs: list[SourceSpec] = []
        self.registry: StreamRegistry | None = None
        self.whip: WhipSessions | None = None
        self.ownership: StreamOwnership | None = None
        self._manager: StreamManager | None = None
        self._tasks: dict[str, asyncio.Task[Any]] = {}

    @property
    def manager(self) -> StreamManager:
        assert self._manager is not None, "prepared first"
        return self._manager

    async def prepare(self) -> None:
        s = self.settings
        if self.runtime.local:
            self.specs = await plan_sources(s.sources, s.ingest)
            self.registry = StreamRegistry(s.data_dir / REGISTRY_FILE)  # reads only; a corrupt file stops us here
        elif s.sources:
            raise DinostreamError(
                "`dinostream ingest` takes its streams from the streams topic, not from `sources`: add them through "
                "a gateway (`dinostream streams add URL --api http://GATEWAY:8000`)"
            )
        stage = self.model.stage
        manager = self._manager = StreamManager(stage, s.ingest, self.registry, configured=s.streams)
        if self.runtime.local:
            self.whip = whip_streams(manager, s.whip, lambda stream, wh: stage.input_size_for(wh))

    async def start(self) -> None:
        s = self.settings
        if self.runtime.local:
            for spec in self.specs:  # checked in prepare; the policy trusts the operator's own sources
                config = StreamConfig(id=spec.stream, url=spec.url)
                await self.manager.add(config, trusted=True, persist=False, info=spec.info)
            await self.manager.start()
            return
        assert self.group is not None
        self.ownership = StreamOwnership(
            self.manager,
            self.runtime.kafka,
            s.kafka,
            group=self.group,
            producer=await self.runtime.producer(),
            node=self.node,
        )
        await self.ownership.start()
        self._tasks["ownership"] = asyncio.create_task(self.ownership.run(), name="ownership")

    def tasks(self) -> dict[str, asyncio.Task[Any]]:
        return dict(self._tasks)

    def health(self) -> dict[str, Any]:
        healths = self.manager.healths()
        if self.runtime.local:
            return {"streams": healths, "whip": self.whip.stats() if self.whip is not None else None}
        return {
            "node": self.node,
            "ownership": self.ownership.health() if self.ownership is not None else None,
            # A failing camera is not a failing node (503 would restart it and move its streams):
            # per-stream health is on the stream-health topic, /metrics and the gateway.
            "streams": stream_summary(healths),
        }

    def metrics(self) -> list[Families]:
        # In `up` the dashboard exports the streams it lists (`create_app(manager=...)`).
        return [] if self.runtime.local else [stream_families(self.manager.healths)]

    async def stop(self) -> None:
        await cancel(self._tasks.values())
        if self.ownership is not None:
            await self.ownership.stop()  # stops the streams and leaves the group: the others take over
        if self.whip is not None:
            await self.whip.close_all()
        await self.manager.stop()


class WorkerNode(Node):
    """The Faust analytics app (embeddings in, events out) with its re-identification gallery: a
    collection on the Qdrant server when there is one (shared by every worker), else an Edge
    shard under the data dir (this process's own)."""

    name = "worker"

    def __init__(self, runtime: Runtime) -> None:
        super().__init__(runtime)
        self.group = runtime.groups["worker"]
        self.stats = WorkerStats()
        self.app: Any = None
        self.gallery: TrackGallery | None = None

    async def start(self) -> None:
        s = self.settings
        s.data_dir.mkdir(parents=True, exist_ok=True)
        gallery = open_gallery(
            s.index.qdrant_url, s.index.qdrant_api_key, s.index.collection_prefix, s.data_dir, layout=s.index
        )
        assert self.group == s.analytics.app_id  # Faust names its consumer group after the app
        app = build_app(
            self.runtime.kafka, s.kafka, s.analytics, gallery=gallery, stats=self.stats, datadir=s.data_dir / "faust"
        )
        try:
            await app.start()
        except BaseException:
            gallery.close()
            raise
        self.app, self.gallery = app, gallery

    def state_topics(self) -> list[TopicSpec]:
        """The changelogs of the app's tables (the processors' saved state), as Faust names them:
        read from an app built for the purpose (no processors, never started)."""
        s = self.settings
        app = build_app(
            self.runtime.kafka, s.kafka, s.analytics, processors=lambda _settings: [], datadir=s.data_dir / "faust"
        )
        return [spec for spec in faust_topic_specs(app, s.kafka) if "compact" in spec.configs.get("cleanup.policy", "")]

    def failure(self) -> str | None:
        if self.app is not None and (self.stats.failure or self.app.crashed):
            return f"analytics worker failed: {self.stats.failure or self.app.crash_reason}"
        return None

    def health(self) -> dict[str, Any]:
        failure = self.failure()
        # A processor quarantined on one stream is that stream's (not a failed worker): shown under it.
        quarantined: dict[str, dict[str, str]] = {}
        for key, why in self.stats.quarantined.items():
            stream, _, processor = key.partition("/")
            quarantined.setdefault(stream, {})[processor] = why
        return {
            "analytics": vars(self.stats),
            "streams": {sid: {"analytics": {"quarantined": q}} for sid, q in quarantined.items()},
            "problems": [failure] if failure else [],
        }

    def metrics(self) -> list[Families]:
        return [component_families("analytics", lambda: self.stats)]

    async def stop(self) -> None:
        if self.app is not None:
            await self.app.stop()
        if self.gallery is not None:
            self.gallery.close()


class IndexNode(Node):
    """Frames and events from Kafka into the vector index (Qdrant), in the index consumer group."""

    name = "index"

    def __init__(self, runtime: Runtime, model: ModelNode | None) -> None:
        super().__init__(runtime)
        self.model = model
        self.group: str = runtime.groups["index"]
        self.dims: tuple[int, int | None] | None = None
        self.index: VectorIndex | None = None
        self.sink: IndexSink | None = None
        self._task: asyncio.Task[None] | None = None

    async def prepare(self) -> None:
        self.dims = await index_dims(self.runtime, self.model)
        if self.settings.index.qdrant_url is None and not self.runtime.local:
            log.warning(
                "index: no index.qdrant_url; writing to a Qdrant Edge shard under %s that only this process reads",
                self.settings.data_dir,
            )

    async def start(self) -> None:
        s = self.settings
        assert self.dims is not None
        dim, patch_dim = self.dims
        s.data_dir.mkdir(parents=True, exist_ok=True)
        self.index = await asyncio.to_thread(open_index, s.index, s.data_dir, dim, patch_dim, reid=s.analytics.reid)
        self.sink = IndexSink(self.index, self.runtime.kafka, s.kafka, s.index, group=self.group)
        self._task = asyncio.create_task(self.sink.run(), name="index-sink")

    def tasks(self) -> dict[str, asyncio.Task[Any]]:
        return {"index-sink": self._task} if self._task is not None else {}

    def health(self) -> dict[str, Any]:
        assert self.sink is not None and self.dims is not None
        return {"index": {**vars(self.sink.stats), "dim": self.dims[0], "qdrant_url": self.settings.index.qdrant_url}}

    def metrics(self) -> list[Families]:
        assert self.sink is not None
        return [component_families("index", self.sink.metrics)]

    async def stop(self) -> None:
        if self._task is not None:
            await cancel([self._task])
        if self.index is not None:
            self.index.close()


async def index_dims(runtime: Runtime, model: ModelNode | None) -> tuple[int, int | None]:
    """(vector size, patch vector size) of the records: the loaded model's when this process has
    one (prepared first), else `index.vector_dims` when set (no Hub needed), else read from the
    model's config without loading it."""
    s = runtime.settings
    if model is not None and model.loaded is not None:
        dim = model.loaded.hidden_size
        if s.index.vector_dims is not None and s.index.vector_dims != dim:
            raise DinostreamError(
                f"index.vector_dims is {s.index.vector_dims} but model {s.model.model!r} makes {dim}-d vectors"
            )
        return dim, s.model.patch_pca_dims
    if s.index.vector_dims is not None:
        return s.index.vector_dims, s.model.patch_pca_dims
    return await asyncio.to_thread(model_dims, s.model)


class AlertsNode(Node):
    """Events to alert targets by rules (`settings.alerts`), in the alerts consumer group."""

    name = "alerts"

    def __init__(self, runtime: Runtime) -> None:
        super().__init__(runtime)
        self.group = runtime.groups["alerts"]
        self.service: AlertService | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        s = self.settings
        assert self.group == s.alerts.group_id  # the service reads it from its settings
        self.service = AlertService(s.alerts, self.runtime.kafka, s.kafka, embedded=self.runtime.embedded)
        self._task = asyncio.create_task(self.service.run(), name="alerts")

    def tasks(self) -> dict[str, asyncio.Task[Any]]:
        return {"alerts": self._task} if self._task is not None else {}

    def health(self) -> dict[str, Any]:
        return {"alerts": self.service.stats() if self.service is not None else None}

    def metrics(self) -> list[Families]:
        return [self.service.metric_families] if self.service is not None else []

    async def stop(self) -> None:
        if self.service is not None:
            await self.service.stop()  # lets queued alerts drain, within its time limit
        if self._task is not None:
            await cancel([self._task])
