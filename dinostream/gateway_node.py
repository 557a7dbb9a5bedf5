"""The surfaces of the service: the gateway (dashboard, HTTP API, websockets, fed from Kafka) and
the HTTP server every process runs (the dashboard, or a role's health and metrics).

In `up` the gateway uses the process's own model stage, streams and index; a gateway process
loads the model only when an image query first needs it, lists streams through the streams
topic (`StreamDirectory`) and searches the Qdrant server if there is one.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

import numpy as np
import uvicorn
from fastapi import FastAPI
from prometheus_client.metrics_core import Metric

from dinostream.analytics.watchlist import Exemplar, Watchlist
from dinostream.analytics.watchlist_feed import WatchlistFeed, exemplar_message
from dinostream.analytics.worker import control_message
from dinostream.asset_analysis import analysis_runner
from dinostream.core.kafka_io import client_security
from dinostream.core.records import Event
from dinostream.dashboard.analytics_control import AnalyticsControl
from dinostream.dashboard.app import create_app
from dinostream.dashboard.guard import tls_options
from dinostream.dashboard.live_feed import LiveFeed
from dinostream.dashboard.live_hub import LiveHub
from dinostream.dashboard.metrics import Families, component_families
from dinostream.dashboard.recent_frames import KafkaRecordReader, RecentFrames
from dinostream.dashboard.role_app import create_role_app
from dinostream.dashboard.streams_api import StreamCatalog
from dinostream.dashboard.watchlist_api import watchlist_router
from dinostream.dashboard.whip_api import whip_router
from dinostream.embedding.lazy_stage import LazyStage
from dinostream.ingest.stream_directory import StreamDirectory
from dinostream.node import Node, RoleFailed, Runtime, cancel
from dinostream.nodes import AlertsNode, IndexNode, ModelNode, StreamsNode, index_dims, stream_summary
from dinostream.sinks.asset_store import AssetStore
from dinostream.sinks.index_factory import open_index
from dinostream.sinks.vector_index import VectorIndex

if TYPE_CHECKING:  # torch and transformers load with the model, not with every role
    from dinostream.embedding.model_loader import LoadedModel

log = logging.getLogger(__name__)

_HTTP_STOP_S = 10.0  # how long the HTTP server may take to close its connections


class GatewayNode(Node):
    """The live feed, the watchlist copy and the dashboard app over the other nodes of the process."""

    name = "gateway"

    def __init__(
        self,
        runtime: Runtime,
        *,
        model: ModelNode | None,
        streams: StreamsNode | None,
        index: IndexNode | None,
        alerts: AlertsNode | None,
        health: Callable[[], dict[str, Any]],
        metrics: Families,
        alive: Callable[[], str | None] | None = None,
    ) -> None:
        super().__init__(runtime)
        self.alive = alive  # /livez
        self.model, self.streams, self.index_node, self.alerts = model, streams, index, alerts
        self._process_health, self._process_metrics = health, metrics
        self.lazy = LazyStage(self.settings) if model is None else None
        self.dims: tuple[int, int | None] | None = None
        self.index: VectorIndex | None = None
        self.directory: StreamDirectory | None = None
        self.hub = LiveHub(self.settings.http.ws_queue_size, resume_memory=self.settings.http.ws_resume_memory)
        self.watchlist = Watchlist()  # the gateway's copy (the workers follow the same topic)
        self.feed: LiveFeed | None = None
        self.recent: RecentFrames | None = None  # where the last frames are, for clicks
        self.watchlist_feed: WatchlistFeed | None = None
        self.app: FastAPI | None = None
        self.analytics: AnalyticsControl | None = None
        self._tasks: dict[str, asyncio.Task[Any]] = {}
        self._own_index = False

    async def prepare(self) -> None:
        if self.index_node is None and self.settings.index.qdrant_url is not None:
            self.dims = await index_dims(self.runtime, self.model)
        elif self.index_node is None:
            log.warning("gateway: no index.qdrant_url; search answers 503 (the index role's Edge shard is its own)")

    async def start(self) -> None:
        s, bootstrap = self.settings, self.runtime.kafka
        s.data_dir.mkdir(parents=True, exist_ok=True)
        if self.index_node is not None:
            self.index = self.index_node.index
        elif self.dims is not None:
            dim, patch_dim = self.dims
            self.index = await asyncio.to_thread(open_index, s.index, s.data_dir, dim, patch_dim, reid=s.analytics.reid)
            self._own_index = True
        producer = await self.runtime.producer()
        catalog: StreamCatalog
        if self.streams is not None:
            catalog = self.streams.manager
        else:
            catalog = self.directory = StreamDirectory(bootstrap, s.kafka, s.ingest, producer)
            await self.directory.start()
            self._tasks["streams-directory"] = asyncio.create_task(self.directory.run(), name="streams-directory")
        # Where the last minute of frames of each stream is (2 fps): a click reads its whole record back.
        reader = KafkaRecordReader(
            bootstrap,
            s.kafka.embeddings_topic,
            timeout_s=max(15.0, s.kafka.connect_timeout_s * 3),
            max_fetch_bytes=max(s.kafka.max_message_bytes * 2, 1_048_576),
            security=client_security(s.kafka),
        )
        recent = self.recent = RecentFrames(per_stream=120, read=reader.read)
        self.feed = LiveFeed(self.hub, bootstrap, s.kafka, on_preview=recent.note)
        await self.feed.start()
        self._tasks["live-feed"] = asyncio.create_task(self.feed.run(), name="live-feed")
        self.watchlist_feed = WatchlistFeed(self.watchlist, bootstrap, s.kafka)
        await self.watchlist_feed.start()
        self._tasks["watchlist-feed"] = asyncio.create_task(self.watchlist_feed.run(), name="watchlist-feed")

        async def send_control(stream: str, processor: str, changes: dict[str, Any]) -> None:
            await producer.send_and_wait(
                s.kafka.control_topic, control_message(stream, processor, changes), key=stream.encode()
            )

        async def publish_exemplar(exemplar_id: str, exemplar: Exemplar | None) -> None:
            value = None if exemplar is None else exemplar_message(exemplar)  # None: a tombstone
            await producer.send_and_wait(s.kafka.watchlist_topic, value, key=exemplar_id.encode())

        async def publish_event(event: Event) -> None:
            # An asset analysis's events go where a stream's go: the websocket, the index, alerts.
            await producer.send_and_wait(s.kafka.events_topic, event.encode(), key=event.key)

        embed = self.model.stage if self.model is not None else self.lazy
        assert embed is not None
        assets = AssetStore(
            s.data_dir / "assets",
            max_bytes=s.http.max_asset_bytes,
            retention_days=s.http.asset_retention_days,
            max_total_bytes=s.http.max_assets_total_bytes,
        )
        analytics = self.analytics = AnalyticsControl(s.analytics, send_control, catalog, configured=s.streams)
        app = self.app = create_app(
            settings=s.http,
            hub=self.hub,
            index=self.index,
            embed_images=embed.embed_images,
            health=self._process_health,
            alive=self.alive,
            analytics=analytics,
            manager=catalog,
            event_log=self.feed.event_log,
            metrics=[self._process_metrics],
            recent=recent,
            index_settings=s.index,
            ingest_settings=s.ingest,
            assets=assets,
            analyze_video=analysis_runner(s, self._loaded_model, publish_event),
        )
        app.include_router(
            watchlist_router(
                self.watchlist, publish_exemplar, recent, embed.embed_image_record, analytics.reid,
                s.http.max_upload_bytes, assets,
            )
        )  # fmt: skip
        if self.streams is not None and self.streams.whip is not None:
            app.include_router(whip_router(self.streams.whip))  # WHIP publishers feed this process's streams

    async def _loaded_model(self) -> LoadedModel:
        """The model an asset analysis runs: the process's own, or the gateway's lazily loaded one."""
        if self.model is not None:
            assert self.model.loaded is not None  # loaded in its prepare, before the gateway starts
            return self.model.loaded
        assert self.lazy is not None
        if self.lazy.loaded is None:
            await self.lazy.embed_images([np.zeros((32, 32, 3), np.uint8)])  # loads it once
        assert self.lazy.loaded is not None
        return self.lazy.loaded

    async def ready(self) -> None:
        # Each stream's analytics settings, kept with the stream (registry file, streams topic),
        # go to the workers again: `up`'s start from nothing after a restart.
        assert self.analytics is not None
        await self.analytics.republish()

    def tasks(self) -> dict[str, asyncio.Task[Any]]:
        return dict(self._tasks)

    def health(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "index": {"qdrant_url": self.settings.index.qdrant_url},
            "watchlist": {"exemplars": len(self.watchlist)},
        }
        if self.lazy is not None:
            out["model"] = self.lazy.health()
        if self.directory is not None:
            out["streams"] = stream_summary(self.directory.healths())
        if self.alerts is None:
            out["alerts"] = None
        if self.recent is not None:
            out["recent_frames"] = self.recent.stats()
        return out

    def metrics(self) -> list[Families]:
        families = [component_families("websocket", self.hub.stats)]
        if self.recent is not None:
            families.append(component_families("recent_frames", self.recent.stats, "frames a click can show:"))
        return families

    async def stop(self) -> None:
        await cancel(self._tasks.values())
        jobs = getattr(self.app.state, "analysis_jobs", None) if self.app is not None else None
        if jobs is not None:
            await jobs.close()  # analyses in progress end with the gateway
        if self.watchlist_feed is not None:
            await self.watchlist_feed.stop()
        if self.directory is not None:
            await self.directory.stop()
        if self.lazy is not None:
            await self.lazy.close()
        if self.index is not None and self._own_index:
            self.index.close()


class HttpNode(Node):
    """uvicorn on `settings.http.host:port` (port 0: any) serving the gateway's dashboard, or, in a
    process without one, `GET /api/v1/health` and `GET /metrics` for the process (`create_role_app`)."""

    name = "http"

    def __init__(
        self,
        runtime: Runtime,
        *,
        gateway: GatewayNode | None,
        health: Callable[[], dict[str, Any]],
        metrics: Families,
        alive: Callable[[], str | None] | None = None,
    ) -> None:
        super().__init__(runtime)
        self.gateway = gateway
        self.alive = alive  # /livez
        self._health, self._metrics = health, metrics
        self.server: uvicorn.Server | None = None
        self.url: str | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        if self.gateway is not None:
            assert self.gateway.app is not None
            app = self.gateway.app
        else:
            role = "+".join(sorted(self.runtime.roles))
            app = create_role_app(
                role, health=self._health, metrics=[self._metrics], http=self.settings.http, alive=self.alive
            )
        s = self.settings.http
        tls: dict[str, Any] = tls_options(s)  # Any: uvicorn.Config types each keyword apart
        config = uvicorn.Config(
            app,
            host=s.host,
            port=s.port,
            ws="auto",
            ws_per_message_deflate=False,
            log_level="warning",
            lifespan="off",
            **tls,
        )
        server = self.server = uvicorn.Server(config)
        task = self._task = asyncio.create_task(server.serve(), name="http")
        while not server.started:
            if task.done():
                task.result()
                raise RoleFailed(f"HTTP server could not listen on {s.host}:{s.port}")
            await asyncio.sleep(0.05)
        port = server.servers[0].sockets[0].getsockname()[1]
        self.url = f"{'https' if tls else 'http'}://{s.host}:{port}/"

    def tasks(self) -> dict[str, asyncio.Task[Any]]:
        return {"http": self._task} if self._task is not None else {}

    async def stop(self) -> None:
        if self.server is not None:
            self.server.should_exit = True
        if self._task is not None:
            done, _ = await asyncio.wait({self._task}, timeout=_HTTP_STOP_S)
            if not done:
                await cancel([self._task])
            elif not self._task.cancelled() and self._task.exception() is not None:
                log.error("HTTP server ended with an error: %s", self._task.exception())


def families_of(nodes: Iterable[Node]) -> Families:
    """One metric-families callable over every node's, read at each scrape."""

    def build() -> list[Metric]:
        return [m for node in nodes for families in node.metrics() for m in families()]

    return build
