"""`dinostream up`: every role in one process on one machine.

Order matters for the promise that bad input leaves nothing half-written: sources, model and
an external `--kafka` are checked before the data dir is touched. Then: the broker (embedded
Tansu unless `--kafka`), topics, the index, the Faust analytics app, the index sink, the live
feed and HTTP server, and last the sources. A crashed long-lived task is logged with its name
and stops the whole stack with a non-zero exit; a failing source only fails its stream.
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

from analytics.worker import WorkerStats, build_app, control_message
from dashboard.analytics_control import AnalyticsControl
from dashboard.app import create_app
from dashboard.live_feed import LiveFeed
from dashboard.live_hub import LiveHub
from dinostream.embedded_broker import EmbeddedBroker
from dinostream.errors import DinostreamError
from dinostream.kafka_io import ensure_topics, make_producer
from dinostream.pipeline import EmbeddingStage, SourceSpec, load_model_async, plan_sources
from dinostream.records import FrameEmbedding
from dinostream.settings import Settings
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

    async def run(self, stop: asyncio.Event, on_ready: Callable[[str], None] | None = None) -> None:
        s = self.settings
        # 1. Check everything the user gave us before writing anything.
        specs = await plan_sources(s.sources, s.ingest)
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

            index = await asyncio.to_thread(open_index, s.index, s.data_dir, loaded.hidden_size)
            stack.callback(index.close)

            producer = self._producer = make_producer(bootstrap, s.kafka, embedded=embedded)
            await producer.start()
            stack.push_async_callback(producer.stop)

            worker_stats = WorkerStats()
            app = build_app(bootstrap, s.kafka, s.analytics, stats=worker_stats)
            await app.start()
            stack.push_async_callback(app.stop)

            sink = IndexSink(index, bootstrap, s.kafka, s.index)
            hub = LiveHub(s.http.ws_queue_size)
            feed = LiveFeed(hub, bootstrap, s.kafka)
            await feed.start()

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
                    "streams": {
                        name: {**vars(src.stats), "failed": name in stage.failures}
                        for name, src in stage.sources.items()
                    },
                }

            async def send_control(stream: str, processor: str, changes: dict[str, Any]) -> None:
                await producer.send_and_wait(
                    s.kafka.control_topic, control_message(stream, processor, changes), key=stream.encode()
                )

            control = AnalyticsControl(s.analytics, send_control)
            http_app = create_app(
                settings=s.http, hub=hub, index=index, embed_images=stage.embed_images, health=health, analytics=control
            )
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
                "http": asyncio.create_task(server.serve(), name="http"),
            }
            sources: dict[str, asyncio.Task[None]] = {}
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
                sources = {
                    spec.stream: asyncio.create_task(self._pump(stage, spec), name=f"source:{spec.stream}")
                    for spec in specs
                }
                await self._supervise(stop, critical, app, worker_stats)
            finally:
                for t in sources.values():
                    t.cancel()
                await stage.stop()
                server.should_exit = True
                for name, t in critical.items():
                    if name not in ("http", "model-stage"):  # those two stop by themselves above
                        t.cancel()
                await asyncio.gather(*critical.values(), return_exceptions=True)

    async def _pump(self, stage: EmbeddingStage, spec: SourceSpec) -> None:
        with contextlib.suppress(DinostreamError):  # logged and recorded by the stage
            await stage.pump(spec)

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
