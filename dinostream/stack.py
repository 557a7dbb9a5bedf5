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

from dinostream.analytics.worker import WorkerStats
from dinostream.core.embedded_broker import EmbeddedBroker
from dinostream.core.errors import SourceError
from dinostream.core.kafka_io import ensure_topics, make_producer
from dinostream.core.settings import Settings
from dinostream.dashboard.metrics import component_families
from dinostream.dashboard.whip_api import whip_router
from dinostream.embedding.stage import load_model_async
from dinostream.ingest.source import Source, session_first_seq
from dinostream.ingest.source_plan import plan_sources
from dinostream.ingest.stream_manager import StreamManager
from dinostream.ingest.stream_registry import REGISTRY_FILE, StreamConfig, StreamRegistry
from dinostream.ingest.whip_sessions import WhipSessions
from dinostream.roles import (
    RecordProducer,
    RoleFailed,
    make_stage,
    serve_http,
    server_url,
    start_gateway,
    start_worker,
    supervise,
    worker_failure,
)
from dinostream.sinks.index_factory import open_index
from dinostream.sinks.index_sink import IndexSink

log = logging.getLogger(__name__)


class StackFailed(RoleFailed):
    """A long-lived task of the stack died."""


class Stack:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.url: str | None = None
        self.started = time.time()
        self.records = RecordProducer(settings.kafka)
        self.manager: StreamManager | None = None

    @property
    def produced(self) -> int:
        return self.records.produced

    @property
    def oversize(self) -> int:
        return self.records.oversize

    async def run(self, stop: asyncio.Event, on_ready: Callable[[str], None] | None = None) -> None:
        s = self.settings
        # 1. Check everything the user gave us before writing anything.
        specs = await plan_sources(s.sources, s.ingest)
        registry = StreamRegistry(s.data_dir / REGISTRY_FILE)  # reads only; a corrupt file stops us here
        loaded = await load_model_async(s.model)
        if s.kafka.bootstrap:
            await ensure_topics(s.kafka.bootstrap, s.kafka)

        # Refuses a configuration whose records would exceed the Kafka message limit, and loads
        # a fitted patch PCA: still before anything is written.
        stage = make_stage(loaded, s, self.records)

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

            producer = self.records.producer = make_producer(bootstrap, s.kafka, embedded=embedded)
            await producer.start()
            stack.push_async_callback(producer.stop)

            # Re-identification meets other streams' tracks in the gallery: an Edge shard under the
            # data dir, or a collection on the Qdrant server when there is one.
            app, worker_stats = await start_worker(bootstrap, s, stack)

            sink = IndexSink(index, bootstrap, s.kafka, s.index)
            stage.start()
            manager = self.manager = StreamManager(stage, s.ingest, registry)

            async def on_whip_source(stream: str, source: Source) -> None:
                """A WHIP publisher's video, into the model stage like any other stream."""
                stage.sources[stream] = source
                stage.failures.pop(stream, None)
                first = session_first_seq()  # a new publishing session never reuses frame ids
                try:
                    async for frame in source.frames():
                        await stage.put(dataclasses.replace(frame, seq=first + frame.seq))
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

            def health() -> dict[str, Any]:
                return {
                    "uptime_s": round(time.time() - self.started, 1),
                    "model": {"id": loaded.model_id, "untrained": loaded.untrained, "device": str(loaded.device)},
                    "kafka": {
                        "bootstrap": bootstrap,
                        "embedded": embedded,
                        "produced": self.records.produced,
                        "oversize_dropped": self.records.oversize,
                    },
                    "analytics": vars(worker_stats),
                    "index": vars(sink.stats),
                    "embedding": dataclasses.asdict(stage.batcher.stats()),
                    "streams": manager.healths(),
                    "whip": whip.stats(),
                }

            gateway = await start_gateway(
                s,
                bootstrap,
                embedded=embedded,
                producer=producer,
                index=index,
                embed_images=stage.embed_images,
                embed_image_record=stage.embed_image_record,
                manager=manager,
                health=health,
                metrics=[
                    component_families("embedding", stage.batcher.stats),
                    component_families("analytics", lambda: worker_stats),
                    component_families("index", sink.metrics),
                ],
            )
            gateway.app.include_router(whip_router(whip))  # WHIP needs the model stage: `up` only
            assert stage.batcher.task is not None
            critical: dict[str, asyncio.Task[Any]] = {
                "model-stage": stage.batcher.task,
                "index-sink": asyncio.create_task(sink.run(), name="index-sink"),
                **gateway.tasks,
            }
            server: uvicorn.Server | None = None
            try:
                server = await serve_http(gateway.app, s, critical)
                self.url = server_url(server, s)
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
                if gateway.alerts is not None:
                    await gateway.alerts.stop()  # lets queued alerts drain, within its time limit
                critical.pop("model-stage", None)  # stopped above
                if server is not None:
                    server.should_exit = True
                for name, t in critical.items():
                    if name != "http":  # stops by itself above
                        t.cancel()
                await asyncio.gather(*critical.values(), return_exceptions=True)

    async def _supervise(
        self, stop: asyncio.Event, critical: dict[str, asyncio.Task[Any]], app: Any, worker_stats: WorkerStats
    ) -> None:
        def check() -> str | None:
            failure = worker_failure(app, worker_stats)
            return f"analytics worker failed: {failure}" if failure else None

        try:
            await supervise(stop, critical, check)
        except RoleFailed as e:
            raise StackFailed(str(e)) from None
