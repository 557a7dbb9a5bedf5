"""What every node of the service is (`Node`), and what the nodes of one process share (`Runtime`).

A node goes through `prepare` (checks and loading, before anything is written: bad input
fails there with nothing half-made), `start`, then reports `health`, `metrics`, its long-lived
`tasks` (one that ends stops the process) and `failure`, and finally `stop`. `dinostream.service`
declares which nodes a process runs and drives them; the nodes are in `dinostream.nodes` and
`dinostream.gateway_node`.
"""

from __future__ import annotations

import asyncio
import time
from abc import ABC, abstractmethod
from collections.abc import Collection, Iterable
from typing import TYPE_CHECKING, Any

from dinostream.core.errors import DinostreamError
from dinostream.core.settings import Settings

if TYPE_CHECKING:  # light to import: the CLI checks its arguments with this module before torch loads
    from aiokafka import AIOKafkaProducer

    from dinostream.core.kafka_io import TopicSpec
    from dinostream.dashboard.metrics import Families

ROLES = ("ingest", "worker", "index", "gateway")


def require_bootstrap(settings: Settings, roles: Collection[str]) -> None:
    """DinostreamError (one line) when a process of separate roles has no Kafka to talk through
    (only `up`, every role in one process, starts an embedded broker)."""
    if settings.kafka.bootstrap or set(roles) == set(ROLES):
        return
    role = "+".join(sorted(roles))
    raise DinostreamError(
        f"`dinostream {role}` needs a Kafka cluster: pass --kafka HOST:PORT or set DINOSTREAM_KAFKA__BOOTSTRAP "
        "(the separate roles never start an embedded broker; `dinostream up` does)"
    )


class RoleFailed(DinostreamError):
    """A long-lived task of the service (`up` or a role) died, or a node reports a failure."""


def consumer_groups(settings: Settings) -> dict[str, str]:
    """The Kafka consumer group of each node that consumes in one, by node name: the only place
    they are named, so `dinostream up` and the separate roles always share them."""
    app = settings.analytics.app_id
    return {
        "worker": app,  # Faust's group is its app id
        "streams": f"{app}-ingest",  # the ingest nodes share the streams topic's partitions
        "index": f"{app}-index",
        "alerts": settings.alerts.group_id,
    }


class Runtime:
    """What the nodes of one process share: the settings, the roles it runs, its Kafka (the
    `--kafka` cluster, or `up`'s embedded broker once started) and its producers: one for frame
    records, one for everything else."""

    def __init__(self, settings: Settings, roles: Collection[str]) -> None:
        self.settings = settings
        self.roles = frozenset(roles)
        self.started = time.time()
        self.bootstrap: str | None = settings.kafka.bootstrap
        self.embedded = False
        self.groups = consumer_groups(settings)
        self._producers: dict[bool, AIOKafkaProducer] = {}  # by `frames`
        self._producer_lock = asyncio.Lock()

    @property
    def local(self) -> bool:
        """Streams and the dashboard in one process (`up`): streams come from the command line,
        the registry file and WHIP publishers, not from the streams topic."""
        return {"ingest", "gateway"} <= self.roles

    @property
    def kafka(self) -> str:
        assert self.bootstrap is not None, "Kafka is opened before the nodes start"
        return self.bootstrap

    async def producer(self, *, frames: bool = False) -> AIOKafkaProducer:
        """The process's producer (acks=all), started on first use; stopped by `close`. `frames`:
        the one for frame records and their previews, whose batches grow to max_message_bytes (see
        `make_producer` for why only theirs)."""
        from dinostream.core.kafka_io import start_producer

        async with self._producer_lock:
            if frames not in self._producers:
                batch = self.settings.kafka.max_message_bytes if frames else None
                self._producers[frames] = await start_producer(
                    self.kafka, self.settings.kafka, embedded=self.embedded, batch_bytes=batch
                )
            return self._producers[frames]

    async def close(self) -> None:
        producers, self._producers = list(self._producers.values()), {}
        for producer in producers:
            await producer.stop()


class Node(ABC):
    """One piece of the service in a process. Only `start` is required."""

    name: str = "node"
    group: str | None = None  # the consumer group it reads in, from `consumer_groups`

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.settings = runtime.settings

    async def prepare(self) -> None:
        """Checks and loading before anything is written (data dir, broker, topics' contents)."""
        return None

    @abstractmethod
    async def start(self) -> None: ...

    async def ready(self) -> None:
        """Every node of the process has started (e.g. the streams are known)."""
        return None

    def health(self) -> dict[str, Any]:
        """Sections merged into the process's health (dicts merge, lists add up)."""
        return {}

    def metrics(self) -> list[Families]:
        return []

    def tasks(self) -> dict[str, asyncio.Task[Any]]:
        """Long-lived tasks by name, after `start`: one that ends stops the process non-zero."""
        return {}

    def failure(self) -> str | None:
        """Why the node is dead although its tasks run (a crashed Faust app), or None."""
        return None

    def state_topics(self) -> list[TopicSpec]:
        """The compacted topics that hold this node's state (not its data), as they are created:
        what `up` keeps across restarts of its embedded broker (`dinostream.core.topic_archive`)."""
        return []

    async def stop(self) -> None:
        """Stop what `start` started; called once `start` was called, even if it raised."""
        return None


def dead_task(nodes: Iterable[Node]) -> str | None:
    """The first of the nodes' long-lived tasks that has ended, as `/livez` names it, or None."""
    for node in nodes:
        for name, task in node.tasks().items():
            if task.done():
                exc = task.exception() if not task.cancelled() else None
                return f"{name} stopped: {'cancelled' if task.cancelled() else exc or 'ended'}"
    return None


async def cancel(tasks: Collection[asyncio.Task[Any]]) -> None:
    """Cancel tasks and wait until they have ended (their errors are not re-raised)."""
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


def merge_health(into: dict[str, Any], part: dict[str, Any]) -> dict[str, Any]:
    """`part`'s sections into `into`: dicts merge all the way down (a stream's section gets the
    worker's analytics beside the streams node's state), lists add up, the rest replaces."""
    for key, value in part.items():
        old = into.get(key)
        if isinstance(old, dict) and isinstance(value, dict):
            into[key] = merge_health(dict(old), value)
        elif isinstance(old, list) and isinstance(value, list):
            into[key] = old + value
        else:
            into[key] = value
    return into
