"""The Faust analytics app: embeddings topic in, events topic out.

The agents only move bytes: each message goes to the worker's `ProcessorHost`
(`dinostream.analytics.processor_set`), which runs the pure processors, and what it returns is
sent (events) or written to a Faust table (processor state; a changelog topic). A processor that
raises on one stream's record is quarantined for that stream (an "error" event); the agent and
every other stream go on. Records are keyed
by stream, so each stream's records arrive in order on one partition and its state lives on one
worker; the host saves it every `snapshot_every_s` and reads it back the first time it sees the
stream, so a restarted or rebalanced worker resumes where the last one stopped.

Run-time settings arrive on the control topic, keyed by stream (so they reach the worker that
owns the stream): `{"stream": ..., "processor": "scene_change", "changes": {...}}`.

    app = build_app(bootstrap, kafka_settings, analytics_settings)
    await app.start()
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import faust
from mode.utils.objects import cached_property
from mode.utils.queues import FlowControlEvent
from mode.utils.times import want_seconds

from dinostream.analytics.anomaly import AnomalyDetector
from dinostream.analytics.gallery import MemoryTrackGallery, TrackGallery
from dinostream.analytics.gallery_guard import GuardedTrackGallery
from dinostream.analytics.phases import PhaseSegmenter
from dinostream.analytics.processor import Processor
from dinostream.analytics.processor_set import (
    HostOutput,
    ProcessorHost,
    ProcessorSet,
    StateWrite,
    WorkerStats,
    control_message,
)
from dinostream.analytics.quality_monitor import QualityMonitor
from dinostream.analytics.reid import ReidProcessor
from dinostream.analytics.scene_change import SceneChangeDetector
from dinostream.analytics.watchlist import Watchlist, WatchlistProcessor
from dinostream.analytics.watchlist_feed import WatchlistFeed
from dinostream.core.kafka_io import TopicSpec, base_topic_configs, ensure_topic_specs, kafka_ssl_context, topic_spec
from dinostream.core.settings import AnalyticsSettings, KafkaSettings

__all__ = [
    "WorkerStats",
    "build_app",
    "control_message",
    "default_processors",
    "faust_topic_specs",
    "worker_session_timeout_s",
]

log = logging.getLogger(__name__)


def default_processors(
    settings: AnalyticsSettings, *, gallery: TrackGallery | None = None, watchlist: Watchlist | None = None
) -> list[Processor[Any]]:
    """The processors every deployment runs, in the order they see each record.

    `gallery` is where re-identification meets the tracks of other streams: shared by every
    worker (see `dinostream.analytics.gallery.open_gallery`); an in-process one by default. `watchlist` is
    the list of exemplars the watchlist processor looks for (kept current by a WatchlistFeed).
    The watchlist reads the regions and tracks re-identification computes (one pass per frame,
    saved with re-identification's state, following the stream's reid settings).
    """
    reid = ReidProcessor(settings.reid, gallery if gallery is not None else MemoryTrackGallery())
    return [
        SceneChangeDetector(settings.scene_change),
        AnomalyDetector(settings.anomaly),
        PhaseSegmenter(settings.phase),
        reid,
        WatchlistProcessor(settings.reid, watchlist if watchlist is not None else Watchlist(), objects=reid.objects),
        QualityMonitor(settings.quality),
    ]


def worker_session_timeout_s(kafka: KafkaSettings) -> float:
    """The workers' consumer-group session timeout: `worker_session_timeout_s` (45 s, Kafka's default,
    in the shipped deployments: a worker busy in a CPU-heavy processor or a blocking Qdrant call keeps
    its partitions instead of setting off a rebalance), else `session_timeout_s`. Heartbeats go every
    min(3 s, a fifth of it)."""
    return kafka.session_timeout_s if kafka.worker_session_timeout_s is None else kafka.worker_session_timeout_s


def faust_topic_specs(app: faust.App, kafka: KafkaSettings) -> list[TopicSpec]:
    """The topics Faust creates for `app` (each table's changelog, the leader assignor's topic),
    as dinostream creates them before Faust would: the settings' replication, min.insync.replicas
    and max.message.bytes, and the cleanup policy and retention Faust gives them."""
    topics: list[Any] = [table.changelog_topic for table in app.tables.values()]
    leader: Any = app._leader_assignor  # Faust names and sizes the assignor topic there
    topics.append(leader._leader_topic)
    specs = []
    for topic in topics:
        configs = {}
        policy = ",".join(p for p, on in (("compact", topic.compacting), ("delete", topic.deleting)) if on)
        if policy:
            configs["cleanup.policy"] = policy
        if topic.retention:
            configs["retention.ms"] = str(int(want_seconds(topic.retention) * 1000))
        configs.update({k: str(v) for k, v in (topic.config or {}).items()})
        partitions = topic.partitions or app.conf.topic_partitions
        specs.append(topic_spec(kafka, topic.get_topic_name(), partitions, configs=configs))
    return specs


class _KeepFlowingQueues(FlowControlEvent):
    """Faust's flow control of the agents' buffers, without one way of losing records after a rebalance.

    `resume` clears every buffer (what was fetched before a rebalance must not be processed after
    it). But after a rebalance Faust's table recovery resumes the flow at several steps (to read
    the changelogs, to start the standbys, and at its end, after seeking the stream partitions to
    their committed offsets), and the fetcher runs in between: it puts records in the buffers and
    moves its read offset past them, overwriting the offset a seek had just set when a record was
    on its way. A later resume then cleared those records, and the fetch from the committed offset
    dropped them again as already read: records that were never analysed. A killed worker's
    successor skipped 3-7 frames of a stream this way (the fault test lost a cut in ~1 of 3 runs
    under load).

    So a resume of a flow that is running keeps the buffers: what they hold was fetched in this
    generation, for partitions this worker owns, and any of it fetched again is skipped by
    `ProcessorHost` as a replay. A resume after `suspend` (a rebalance starting) clears them as
    before."""

    def resume(self) -> None:
        if self.is_active():
            return
        super().resume()


class _AnalyticsApp(faust.App):
    """faust.App that creates Faust's own topics with dinostream's topic settings before it starts
    (Faust would create them with a fixed replication factor and no limits), and checks existing
    ones like `ensure_topics` does (BrokerError: the worker does not start)."""

    dinostream_kafka: tuple[str, KafkaSettings]  # set by build_app

    async def on_first_start(self) -> None:
        await super().on_first_start()
        bootstrap, kafka = self.dinostream_kafka
        await ensure_topic_specs(bootstrap, kafka, faust_topic_specs(self, kafka), client_id=f"{self.conf.id}-admin")

    @cached_property
    def flow_control(self) -> FlowControlEvent:
        return _KeepFlowingQueues(loop=self.loop)


class _StateTable(faust.Table):
    """The processor-state table, keeping the changelog sends of its writes until they are awaited.

    A table write only queues its changelog record in Faust's producer buffer. Faust acks the
    record being handled when the agent asks for the next one, and its commit (periodic, and at
    stop) flushes the buffer for at most 0.1 s of no progress before committing the acked
    offsets; at stop the buffer's unsent records are then dropped ("Cannot flush: Producer not
    Running"). So a state write still queued when a worker stopped was lost while its record
    counted as done: the replacement restored the state before it (a flaky test saw a cut timed
    from the frame before the last). The buffer's size is no measure of what was sent either: the
    buffer's sender takes a record out of the queue (the size drops) before the Kafka client has
    it. `delivered` waits for the sends themselves."""

    def __init__(self, app: faust.App, **kwargs: Any) -> None:
        super().__init__(app, **kwargs)
        self._unsent: list[asyncio.Future[Any]] = []

    def send_changelog(self, *args: Any, **kwargs: Any) -> Any:
        fut = super().send_changelog(*args, **kwargs)
        self._unsent.append(fut)
        return fut

    async def delivered(self) -> None:
        """Wait until every changelog write made so far has been delivered (or failed, which the
        producer logs). Holding the agent here holds the ack of the record being handled until
        its state is in the changelog. It costs one round trip to the broker per state save (every
        `snapshot_every_s` per stream), and a broker that stops taking writes holds the agent
        rather than losing them."""
        # Every send made so far, the other agent's too: the caller's own are among them.
        pending = list(self._unsent)
        if pending:
            await asyncio.wait(pending)
        self._unsent = [f for f in self._unsent if not f.done()]


def broker_credentials(kafka: KafkaSettings) -> faust.SASLCredentials | faust.SSLCredentials | None:
    """The Faust app's `broker_credentials` from the same settings as every other Kafka client
    (`client_security`): SASL (over TLS for SASL_SSL), TLS, or None for PLAINTEXT."""
    tls = kafka_ssl_context(kafka) if kafka.security_protocol in ("SSL", "SASL_SSL") else None
    if kafka.sasl_mechanism is not None:
        assert kafka.sasl_password is not None  # the settings require it with a mechanism
        return faust.SASLCredentials(
            username=kafka.sasl_username,
            password=kafka.sasl_password.get_secret_value(),
            ssl_context=tls,
            mechanism=kafka.sasl_mechanism,
        )
    return faust.SSLCredentials(tls) if tls is not None else None


def build_app(
    bootstrap: str,
    kafka: KafkaSettings,
    analytics: AnalyticsSettings,
    *,
    processors: Callable[[AnalyticsSettings], list[Processor[Any]]] | None = None,
    gallery: TrackGallery | None = None,
    stats: WorkerStats | None = None,
    datadir: Path | None = None,
) -> faust.App:
    """A Faust app whose agents run `processors` (default: `default_processors` with `gallery`
    and the watchlist topic's exemplars) over the embeddings topic.

    `datadir`: where Faust keeps its local files (the RocksDB table with `analytics.table_store`
    "rocksdb"); the worker passes `data_dir / "faust"`. Default: Faust's, "<app_id>-data" in the
    current directory.

    With the default processors the app also follows the watchlist topic (every worker reads all
    of it), before its agents start."""
    session_s = worker_session_timeout_s(kafka)
    app = _AnalyticsApp(
        analytics.app_id,
        broker=f"kafka://{bootstrap.replace(',', ';kafka://')}",
        store=f"{analytics.table_store}://",
        # Typed as Any: mypy matches a dict[str, str] against every keyword of Faust's App.__init__.
        **cast("dict[str, Any]", {"datadir": str(datadir)} if datadir is not None else {}),
        autodiscover=False,
        web_enabled=False,
        topic_partitions=kafka.partitions,
        # Faust's own topics are created before it starts (`faust_topic_specs`, the cluster's default
        # replication unless set); Faust creates none with this.
        topic_replication_factor=kafka.replication_factor or 1,
        consumer_auto_offset_reset="earliest",
        producer_max_request_size=kafka.max_message_bytes,
        broker_request_timeout=max(90.0, kafka.connect_timeout_s * 3),
        broker_session_timeout=session_s,
        broker_heartbeat_interval=min(3.0, session_s / 5),
        broker_credentials=broker_credentials(kafka),
    )
    app.dinostream_kafka = (bootstrap, kafka)
    raw: dict[str, Any] = {"key_type": bytes, "value_type": bytes, "value_serializer": "raw", "key_serializer": "raw"}
    embeddings = app.topic(kafka.embeddings_topic, **raw)
    events_topic = app.topic(kafka.events_topic, **raw)
    control = app.topic(kafka.control_topic, **raw)
    # Key: "stream/processor" so one big processor state never shares a message with another.
    state_table = _StateTable(  # JSON values
        app,
        name="processor-state",
        default=dict,
        beacon=app.tables.beacon,
        partitions=kafka.partitions,
        extra_topic_configs=base_topic_configs(kafka),
    )
    app.tables.add(state_table)
    counters = stats if stats is not None else WorkerStats()
    if gallery is not None:
        # A Qdrant outage pauses cross-stream links (shown in health) and never stops the worker.
        gallery = GuardedTrackGallery(gallery)
        counters.gallery = gallery.stats  # type: ignore[attr-defined]
    watchlist = Watchlist()
    if processors is None:
        procs = ProcessorSet(default_processors(analytics, gallery=gallery, watchlist=watchlist))
        feed = WatchlistFeed(watchlist, bootstrap, kafka)

        @app.task(on_leader=False)
        async def follow_watchlist() -> None:
            try:
                await feed.start()
                await feed.run()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # not silent: the owner's supervisor watches stats.failure
                log.exception("the watchlist feed failed")
                counters.failure = f"watchlist feed: {type(exc).__name__}: {exc}"

    else:
        procs = ProcessorSet(processors(analytics))
    # A state bigger than a Kafka message is saved in chunks, JSON-escaped in the changelog: room to spare.
    host = ProcessorHost(
        procs,
        state_table.get,
        snapshot_every_s=analytics.snapshot_every_s,
        chunk_chars=int(kafka.max_message_bytes * 0.45),
        stats=counters,
    )

    def write(writes: list[StateWrite]) -> None:
        for w in writes:
            if w.value is None:
                del state_table[w.key]
            else:
                state_table[w.key] = w.value

    async def deliver(out: HostOutput) -> None:
        for ev in out.events:
            await events_topic.send(key=ev.key, value=ev.encode())
            host.sent(ev)
        write(out.writes)
        if out.writes:
            await state_table.delivered()

    @app.agent(embeddings)
    async def analyse(stream: faust.StreamT[bytes]) -> None:
        async for event in stream.events():
            where = f"at {event.message.tp} offset {event.message.offset}"
            # A processor that raises is quarantined for that stream only (an "error" event in out).
            await deliver(host.receive_record(event.value, time.monotonic(), where=where))

    @app.agent(control)
    async def configure(stream: faust.StreamT[bytes]) -> None:
        async for value in stream:
            await deliver(host.receive_control(value, time.monotonic()))

    app.dinostream_stats = counters  # type: ignore[attr-defined]
    app.dinostream_processors = procs  # type: ignore[attr-defined]
    return app
