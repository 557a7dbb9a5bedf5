"""The service, declared once: which nodes a process runs for its roles (`DECLARATION`), and the
one routine that prepares, starts, supervises and stops them (`Service.run`).

`dinostream up` runs every role in one process (with the embedded broker unless `--kafka`);
`dinostream ingest|worker|index|gateway` runs one role and what it needs, talking to the others
only through Kafka (and Qdrant). Every process serves `GET /api/v1/health` (200 ok, 503
degraded) and `GET /metrics` on `settings.http.host:port`, and stops with a non-zero exit when a
long-lived task dies; a failing source only fails its stream.

Order matters for the promise that bad input leaves nothing half-written: Kafka (an external
cluster), the sources, the stream registry and the model are checked (`Node.prepare`) before
the data dir is touched. Then the broker, the nodes in declaration order, and last the streams.

    await Service(settings).run(stop, on_ready=print)                 # up
    await Service(settings, ["index"]).run(stop, on_ready=print)      # dinostream index

What a restart of `up` keeps (its embedded broker keeps topics in memory only): the compacted topics
that hold state — the watchlist, the streams and their health, the processors' saved state (the
worker's table changelogs) — are archived under the data dir as they are written
(`dinostream.core.topic_archive`) and written back into the new broker before any node starts; a
file source keeps its frame numbers and is not read again once read to its end (the stream
registry); the index is on disk. The data topics are not kept: their consumers' positions would
point into nothing, and what they carried is in the index (frames and events, by deterministic
ids). Against a Kafka cluster (`--kafka`) the cluster keeps everything, positions included.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Collection
from typing import Any

from dinostream.core.blas import limit_blas_threads
from dinostream.core.embedded_broker import EmbeddedBroker
from dinostream.core.kafka_io import TopicFollower, TopicSpec, ensure_topics, topic_specs
from dinostream.core.settings import Settings
from dinostream.core.topic_archive import TopicArchive
from dinostream.dashboard.metrics import Families
from dinostream.gateway_node import GatewayNode, HttpNode, families_of
from dinostream.node import ROLES, Node, RoleFailed, Runtime, dead_task, merge_health, require_bootstrap
from dinostream.nodes import AlertsNode, IndexNode, ModelNode, StreamsNode, WorkerNode

log = logging.getLogger(__name__)

# How long each node may take to stop once the embedded broker is gone.
BROKER_LOST_STOP_S = 5.0
# Where `up` keeps the compacted topics of its embedded broker, under the data dir.
ARCHIVE_FILE = "state/topics.sqlite3"
# How long a clean stop waits for the archive to take the topics' last writes.
ARCHIVE_DRAIN_S = 10.0

__all__ = ["DECLARATION", "ROLES", "RoleFailed", "Service", "build_nodes", "require_bootstrap"]

# The nodes of the service, in start order (stop is the reverse), with the roles that run each.
DECLARATION: tuple[tuple[str, frozenset[str]], ...] = (
    ("model", frozenset({"ingest"})),  # the model stage; a gateway alone loads a model lazily, for image queries
    ("worker", frozenset({"worker"})),
    ("index", frozenset({"index"})),
    ("alerts", frozenset({"gateway"})),  # when alert rules are set
    ("gateway", frozenset({"gateway"})),
    ("http", frozenset(ROLES)),  # the dashboard, or a role's health and metrics
    ("streams", frozenset({"ingest"})),  # last: frames flow once everything downstream runs
)


def build_nodes(
    runtime: Runtime,
    health: Callable[[], dict[str, Any]],
    metrics: Families,
    alive: Callable[[], str | None] | None = None,
) -> list[Node]:
    """The nodes `runtime.roles` need, in declaration order. `health`, `metrics` and `alive` (for
    `/livez`) are the whole process's, which the HTTP node (and the dashboard) serve."""
    wanted = {name for name, roles in DECLARATION if roles & runtime.roles}
    if not runtime.settings.alerts.rules:
        wanted.discard("alerts")
    model = ModelNode(runtime) if "model" in wanted else None
    streams = StreamsNode(runtime, model) if model is not None and "streams" in wanted else None
    index = IndexNode(runtime, model) if "index" in wanted else None
    alerts = AlertsNode(runtime) if "alerts" in wanted else None
    gateway = None
    if "gateway" in wanted:
        gateway = GatewayNode(
            runtime, model=model, streams=streams, index=index, alerts=alerts, health=health, metrics=metrics,
            alive=alive,
        )  # fmt: skip
    built: dict[str, Node | None] = {
        "model": model,
        "worker": WorkerNode(runtime) if "worker" in wanted else None,
        "index": index,
        "alerts": alerts,
        "gateway": gateway,
        "http": HttpNode(runtime, gateway=gateway, health=health, metrics=metrics, alive=alive),
        "streams": streams,
    }
    return [node for name, _ in DECLARATION if (node := built[name]) is not None]


class Service:
    """One process of the service: the nodes of `roles` (default: all, as `dinostream up`)."""

    def __init__(self, settings: Settings, roles: Collection[str] = ROLES) -> None:
        unknown = set(roles) - set(ROLES)
        if unknown or not roles:
            raise ValueError(f"roles must be some of {', '.join(ROLES)}; got {sorted(roles)}")
        self.runtime = Runtime(settings, roles)
        self.nodes: list[Node] = []
        self.nodes.extend(build_nodes(self.runtime, self.health, families_of(self.nodes), self.alive))
        self.url: str | None = None
        self._broker: EmbeddedBroker | None = None
        self._archive: TopicArchive | None = None
        self._archiving: asyncio.Task[None] | None = None
        self._archive_stop = asyncio.Event()

    @property
    def settings(self) -> Settings:
        return self.runtime.settings

    def node(self, name: str) -> Node | None:
        return next((n for n in self.nodes if n.name == name), None)

    def health(self) -> dict[str, Any]:
        """The process's health: its uptime and Kafka, and every node's sections."""
        rt = self.runtime
        out: dict[str, Any] = {
            "uptime_s": round(time.time() - rt.started, 1),
            "kafka": {"bootstrap": rt.bootstrap, "embedded": rt.embedded},
        }
        for node in self.nodes:
            merge_health(out, node.health())
        if self._archive is not None:
            out["kafka"]["archive"] = {"restored": self._archive.restored, "written": self._archive.written}
        if self.broker_lost:  # readiness: 503 from the next probe on
            merge_health(out, {"kafka": {"ok": False}, "problems": ["the embedded Kafka broker exited"]})
        return out

    def alive(self) -> str | None:
        """`/livez`: why the process should be restarted (a node's long-lived task ended, a node
        reports a failure, the embedded broker exited), or None. The supervisor stops the process
        on the same; this answers in the meantime, and while a stop hangs."""
        problem = dead_task(self.nodes) or next((f for node in self.nodes if (f := node.failure())), None)
        if problem is None and self.broker_lost:
            problem = "the embedded Kafka broker exited"
        return problem

    async def run(self, stop: asyncio.Event, on_ready: Callable[[str], None] | None = None) -> None:
        """Prepare, start, and supervise the nodes until `stop` is set; RoleFailed (or the error
        that stopped a start) when something dies."""
        rt, s = self.runtime, self.settings
        limit_blas_threads(s.blas_threads)
        require_bootstrap(s, rt.roles)
        if rt.bootstrap is not None:  # a dead cluster fails before the model loads
            await ensure_topics(rt.bootstrap, s.kafka)
        for node in self.nodes:
            await node.prepare()
        async with contextlib.AsyncExitStack() as stack:
            if rt.bootstrap is None:
                s.data_dir.mkdir(parents=True, exist_ok=True)
                broker = await stack.enter_async_context(EmbeddedBroker(s.data_dir / "logs" / "broker.log"))
                await ensure_topics(broker.bootstrap, s.kafka)
                rt.bootstrap, rt.embedded = broker.bootstrap, True
                self._broker = broker
                await self._open_archive(stack)
            stack.push_async_callback(self._close_runtime)
            started: list[Node] = []
            try:
                for node in self.nodes:
                    started.append(node)
                    await node.start()
                for node in self.nodes:
                    await node.ready()
                http = self.node("http")
                assert isinstance(http, HttpNode) and http.url is not None
                self.url = http.url
                if on_ready:
                    on_ready(self.url)
                await self._supervise(stop)
            except BaseException:
                await self._stop(started, raise_errors=False)
                raise
            await self._stop(started, raise_errors=True)

    def state_topics(self) -> list[TopicSpec]:
        """The compacted topics of the process: the service's own and its nodes' state topics."""
        compacted = [spec for spec in topic_specs(self.settings.kafka) if spec.configs["cleanup.policy"] == "compact"]
        return [*compacted, *(spec for node in self.nodes for spec in node.state_topics())]

    async def _open_archive(self, stack: contextlib.AsyncExitStack) -> None:
        """Write the archived state topics back into the new embedded broker, then follow them
        into the archive until the nodes have stopped (before the broker stops)."""
        s, bootstrap = self.settings, self.runtime.kafka
        specs = self.state_topics()
        archive = TopicArchive(s.data_dir / ARCHIVE_FILE)
        stack.callback(archive.close)
        restored = await archive.restore(bootstrap, s.kafka, specs)
        follower = TopicFollower([spec.name for spec in specs], bootstrap, s.kafka, "dinostream-archive", archive.apply)
        await follower.start()
        self._archive = archive
        self._archiving = asyncio.create_task(follower.run(until=self._archive_stop), name="topic-archive")
        stack.push_async_callback(self._close_archive)
        log.info("embedded broker: %d records of %d state topics restored from the data dir", restored, len(specs))

    async def _close_archive(self) -> None:
        """Take the state topics' last writes (the nodes have stopped), within ARCHIVE_DRAIN_S."""
        task = self._archiving
        if task is None:
            return
        self._archive_stop.set()
        if self.broker_lost:
            task.cancel()
        done, _ = await asyncio.wait({task}, timeout=ARCHIVE_DRAIN_S)
        if not done:
            log.error("the topic archive did not take the last writes within %g s", ARCHIVE_DRAIN_S)
            task.cancel()
        with contextlib.suppress(BaseException):
            await task

    async def _supervise(self, stop: asyncio.Event) -> None:
        """Wait for `stop`; RoleFailed when a long-lived task ends or a node reports a failure."""
        critical = {name: task for node in self.nodes for name, task in node.tasks().items()}
        if self._broker is not None:  # its exit (kill -9) is seen within a second, not at the next Kafka timeout
            critical["embedded-broker"] = asyncio.create_task(self._broker.watch(), name="embedded-broker")
        if self._archiving is not None:
            critical["topic-archive"] = self._archiving
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
                failure = next((f for node in self.nodes if (f := node.failure())), None)
                if failure:
                    raise RoleFailed(failure)
        finally:
            stopper.cancel()
            if "embedded-broker" in critical:
                critical["embedded-broker"].cancel()

    @property
    def broker_lost(self) -> bool:
        """The embedded broker was started and its process has exited."""
        return self._broker is not None and self._broker.exited

    async def _close_runtime(self) -> None:
        if self.broker_lost:  # nothing to flush to: bounded, not Kafka's minutes of retries
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.runtime.close(), BROKER_LOST_STOP_S)
            return
        await self.runtime.close()

    async def _stop(self, started: list[Node], *, raise_errors: bool) -> None:
        """Stop the started nodes, last first; each is stopped even when another's stop fails.
        With the embedded broker gone each stop is bounded (their Kafka clients would retry for minutes)."""
        errors = []
        for node in reversed(started):
            try:
                if self.broker_lost:
                    await asyncio.wait_for(node.stop(), BROKER_LOST_STOP_S)
                else:
                    await node.stop()
            except Exception as e:
                log.error("%s did not stop cleanly: %s", node.name, e, exc_info=e)
                errors.append(f"{node.name}: {type(e).__name__}: {e}")
        if errors and raise_errors:
            raise RoleFailed(f"did not stop cleanly: {'; '.join(errors)}")
