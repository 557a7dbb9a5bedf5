"""`dinostream up`: every role in one process on one machine.

Order matters for the promise that bad input leaves nothing half-written: sources, model and
an external `--kafka` are checked before the data dir is touched. Then: the broker (embedded
Tansu unless `--kafka`), topics, the index, the Faust analytics app, the index sink, the live
feed and HTTP server, and last the streams: the command-line sources, then those of the
stream registry (`<data_dir>/streams.json`, streams added through `POST /api/v1/streams`), each
run by its own supervisor in the `StreamManager`, which reconnects live sources. A crashed
long-lived task is logged with its name and stops the whole stack with a non-zero exit; a
failing source only fails its stream.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections.abc import Callable
from typing import Any

import uvicorn
from aiokafka import AIOKafkaProducer

from analytics.gallery import open_gallery
from analytics.watchlist import Exemplar, Watchlist
from analytics.watchlist_feed import WatchlistFeed, exemplar_message
from analytics.worker import WorkerStats, build_app, control_message
from dashboard.analytics_control import AnalyticsControl
from dashboard.app import create_app
from dashboard.live_feed import LiveFeed
from dashboard.live_hub import LiveHub
from dashboard.recent_frames import RecentFrames
from dashboard.watchlist_api import watchlist_router
from dashboard.whip_api import whip_router
from dinostream.embedded_broker import EmbeddedBroker
from dinostream.errors import DinostreamError, SourceError
from dinostream.kafka_io import ensure_topics, make_producer
from dinostream.pipeline import EmbeddingStage, load_model_async, plan_sources
from dinostream.records import FrameEmbedding
from dinostream.settings import Settings
from ingest.source import Source
from ingest.stream_manager import StreamManager
from ingest.stream_registry import REGISTRY_FILE, StreamConfig, StreamRegistry
from ingest.whip_sessions import WhipSessions
from sinks.alert_service import AlertService
from sinks.index_factory import open_index
from sinks.index_sink import IndexSink

log = logging.getLogger(__name__)


class StackFailed(DinostreamError):
    """A long-lived task of the stack died."""


class Stack:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.url: str | None = None
        self.started = time.time()
        self.oversize = 0
        self.produced = 0
        self._producer: AIOKafkaProducer | None = None
        self.manager: StreamManager | None = None

    async def run(self, stop: asyncio.Event, on_ready: Callable[[str], None] | None = None) -> None:
        s = self.settings
        # 1. Check everything the user gave us before writing anything.
        specs = await plan_sources(s.sources, s.ingest)
        registry = StreamRegistry(s.data_dir / REGISTRY_FILE)  # reads only; a corrupt file stops us here
        loaded = await load_model_async(s.model)
        if s.kafka.bootstrap:
            await ensure_topics(s.kafka.bootstrap, s.kafka)

        async def produce(batch: list[FrameEmbedding]) -> None:
            producer = self._producer
            assert producer is not None, "the stage starts after the producer"
            futures = []
            for rec in batch:
                data = rec.encode()
                if len(data) > s.kafka.max_message_bytes:
                    self.oversize += 1
                    log.error(
                        "stream %s frame %d: record of %d bytes exceeds max_message_bytes %d; not sent",
                        rec.stream,
                        rec.seq,
                        len(data),
                        s.kafka.max_message_bytes,
                    )
                    continue
                futures.append(await producer.send(s.kafka.embeddings_topic, data, key=rec.key))
            await asyncio.gather(*futures)
            self.produced += len(futures)

        # Refuses a configuration whose records would exceed the Kafka message limit, and loads
        # a fitted patch PCA: still before anything is written.
        stage = EmbeddingStage(
            loaded, s.model, s.ingest, produce, max_message_bytes=s.kafka.max_message_bytes, data_dir=s.data_dir
        )

        async with contextlib.AsyncExitStack() as stack:
            s.data_dir.mkdir(parents=True, exist_ok=True)
            if s.kafka.bootstrap:
                bootstrap, embedded = s.kafka.bootstrap, False
            else:
                broker = await stack.enter_async_context(EmbeddedBroker(s.data_dir / "logs" / "broker.log"))
                bootstrap, embedded = broker.bootstrap, True
                await ensure_topics(bootstrap, s.kafka)
            self.bootstrap, self.embedded = bootstrap, embedded

            index = await asyncio.to_thread(
                open_index, s.index, s.data_dir, loaded.hidden_size, patch_dim=s.model.patch_pca_dims
            )
            stack.callback(index.close)

            producer = self._producer = make_producer(bootstrap, s.kafka, embedded=embedded)
            await producer.start()
            stack.push_async_callback(producer.stop)

            # Re-identification meets other streams' tracks here: an Edge shard under the data dir,
            # or a collection on the Qdrant server when there is one.
            gallery = open_gallery(s.index.qdrant_url, s.index.qdrant_api_key, s.index.collection_prefix, s.data_dir)
            stack.callback(gallery.close)
            worker_stats = WorkerStats()
            app = build_app(bootstrap, s.kafka, s.analytics, gallery=gallery, stats=worker_stats)
            await app.start()
            stack.push_async_callback(app.stop)

            sink = IndexSink(index, bootstrap, s.kafka, s.index)
            hub = LiveHub(s.http.ws_queue_size, resume_memory=s.http.ws_resume_memory)
            recent = RecentFrames()  # whole records of the last frames: clicks on live frames
            feed = LiveFeed(hub, bootstrap, s.kafka, on_frame_record=recent.add)
            await feed.start()
            # The gateway's copy of the watchlist (the workers follow the same topic).
            watchlist = Watchlist()
            watchlist_feed = WatchlistFeed(watchlist, bootstrap, s.kafka)
            await watchlist_feed.start()
            alerts = AlertService(s.alerts, bootstrap, s.kafka, embedded=embedded) if s.alerts.rules else None

            stage.start()

            def health() -> dict[str, Any]:
                return {
                    "uptime_s": round(time.time() - self.started, 1),
                    "model": {"id": loaded.model_id, "untrained": loaded.untrained, "device": str(loaded.device)},
                    "kafka": {
                        "bootstrap": bootstrap,
                        "embedded": embedded,
                        "produced": self.produced,
                        "oversize_dropped": self.oversize,
                    },
                    "analytics": vars(worker_stats),
                    "index": vars(sink.stats),
                    "embedding": dataclasses.asdict(stage.batcher.stats()),
                    "streams": manager.healths(),
                    "whip": whip.stats(),
                    "watchlist": {"exemplars": len(watchlist)},
                    "alerts": alerts.stats() if alerts is not None else None,
                }

            async def send_control(stream: str, processor: str, changes: dict[str, Any]) -> None:
                await producer.send_and_wait(
                    s.kafka.control_topic, control_message(stream, processor, changes), key=stream.encode()
                )

            async def publish_exemplar(exemplar_id: str, exemplar: Exemplar | None) -> None:
                value = None if exemplar is None else exemplar_message(exemplar)  # None: a tombstone
                await producer.send_and_wait(s.kafka.watchlist_topic, value, key=exemplar_id.encode())

            control = AnalyticsControl(s.analytics, send_control)
            manager = self.manager = StreamManager(stage, s.ingest, registry)

            async def on_whip_source(stream: str, source: Source) -> None:
                """A WHIP publisher's video, into the model stage like any other stream."""
                stage.sources[stream] = source
                stage.failures.pop(stream, None)
                try:
                    async for frame in source.frames():
                        await stage.put(frame)
                    log.info("WHIP stream %s ended after %d sampled frames", stream, source.stats.sampled)
                except SourceError as e:
                    stage.failures[stream] = str(e)
                    log.error("WHIP stream %s failed: %s", stream, e)

            def whip_size(stream: str, wh: tuple[int, int]) -> tuple[int, int]:
                size = stage.input_sizes[stream] = stage.embedder.input_size(wh)
                return size

            whip = WhipSessions(
                s.whip, s.ingest, whip_size, on_source=on_whip_source, taken=lambda sid: manager.get(sid) is not None
            )
            http_app = create_app(
                settings=s.http,
                hub=hub,
                index=index,
                embed_images=stage.embed_images,
                health=health,
                analytics=control,
                manager=manager,
                event_log=feed.event_log,
                index_settings=s.index,
                metrics=[alerts.metric_families] if alerts is not None else [],
            )
            http_app.include_router(whip_router(whip))
            watchlist_api = watchlist_router(
                watchlist, publish_exemplar, recent, stage.embed_image_record, s.analytics.reid, s.http.max_upload_bytes
            )
            http_app.include_router(watchlist_api)
            server = uvicorn.Server(
                uvicorn.Config(
                    http_app, host=s.http.host, port=s.http.port, ws="auto", log_level="warning", lifespan="off"
                )
            )
            assert stage.batcher.task is not None
            critical: dict[str, asyncio.Task[Any]] = {
                "model-stage": stage.batcher.task,
                "index-sink": asyncio.create_task(sink.run(), name="index-sink"),
                "live-feed": asyncio.create_task(feed.run(), name="live-feed"),
                "watchlist-feed": asyncio.create_task(watchlist_feed.run(), name="watchlist-feed"),
                "http": asyncio.create_task(server.serve(), name="http"),
            }
            if alerts is not None:
                critical["alerts"] = asyncio.create_task(alerts.run(), name="alerts")
            try:
                while not server.started:
                    if critical["http"].done():
                        critical["http"].result()
                        raise StackFailed(f"HTTP server could not listen on {s.http.host}:{s.http.port}")
                    await asyncio.sleep(0.05)
                port = server.servers[0].sockets[0].getsockname()[1]
                self.url = f"http://{s.http.host}:{port}/"
                if on_ready:
                    on_ready(self.url)
                for spec in specs:  # checked above; the policy trusts the operator's own sources
                    await manager.add(
                        StreamConfig(id=spec.stream, url=spec.url), trusted=True, persist=False, info=spec.info
                    )
                await manager.start()
                await self._supervise(stop, critical, app, worker_stats)
            finally:
                await whip.close_all()
                await manager.stop()
                await stage.stop()
                if alerts is not None:
                    await alerts.stop()  # lets queued alerts drain, within its time limit
                server.should_exit = True
                for name, t in critical.items():
                    if name not in ("http", "model-stage"):  # those two stop by themselves above
                        t.cancel()
                await asyncio.gather(*critical.values(), return_exceptions=True)

    async def _supervise(
        self, stop: asyncio.Event, critical: dict[str, asyncio.Task[Any]], app: Any, worker_stats: WorkerStats
    ) -> None:
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
                        raise StackFailed(f"{name} stopped unexpectedly: {exc or 'no error given'}")
                if worker_stats.failure or app.crashed:
                    raise StackFailed(f"analytics worker failed: {worker_stats.failure or app.crash_reason}")
        finally:
            stopper.cancel()
