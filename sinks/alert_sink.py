"""The alert extension point: an `Alert` (an event a rule chose for a target) and the `AlertSink` ABC.

Every target (webhook, Slack, MQTT) is an `AlertSink`. `send` only accepts the alert into the
target's own bounded queue and returns at once; the target's worker task delivers it, so one
slow or dead target never delays another or the Kafka consumer. A full queue drops its oldest
alert and counts it.

    sink = WebhookAlertSink(target_settings, dead_letter=service.dead_letter)
    await sink.send(Alert(rule="intrusion", target="ops", event=ev))
    ...
    await sink.close()            # waits a bounded time for queued alerts, then stops
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from dinostream.core.records import ID_NAMESPACE, Event

log = logging.getLogger(__name__)


def delivery_id(event: Event, target: str) -> str:
    """Deterministic id of one delivery (event occurrence, its message, the target): the same for a
    redelivered Kafka message, so receivers can drop duplicates we could not (e.g. after a restart)."""
    part = f"{event.status}/{event.t_end!r}" if event.status == "update" else event.status
    return str(uuid.uuid5(ID_NAMESPACE, f"alert/{event.id}/{part}/{target}"))


@dataclass(frozen=True)
class Alert:
    """One event to deliver to one target because of one rule."""

    rule: str
    target: str
    event: Event
    created: float = field(default_factory=time.time)  # wall-clock unix seconds it was matched

    @property
    def delivery_id(self) -> str:
        return delivery_id(self.event, self.target)

    def to_dict(self, dashboard_url: str | None = None) -> dict[str, Any]:
        """The JSON document targets send: the rule, the event, and links when the dashboard URL is known."""
        d: dict[str, Any] = {"rule": self.rule, "delivery_id": self.delivery_id, "event": self.event.to_dict()}
        if dashboard_url:
            d["links"] = links(self.event, dashboard_url)
        return d


def links(event: Event, dashboard_url: str) -> dict[str, Any]:
    """Dashboard links for an event: the stream's page and the thumbnails of its frames."""
    base = dashboard_url.rstrip("/")
    return {
        "dashboard": f"{base}/?stream={event.stream}",
        "thumbnails": [f"{base}/api/v1/frames/{event.stream}/{seq}" for seq in event.frames],
    }


@dataclass
class AlertSinkStats:
    """Counters of one target, for metrics. `retried` counts attempts after the first."""

    sent: int = 0
    failed: int = 0
    retried: int = 0
    dead_lettered: int = 0
    dropped: int = 0


class DeliveryError(Exception):
    """A target gave up on an alert; the message names the target and why."""

    def __init__(self, message: str, attempts: int) -> None:
        super().__init__(message)
        self.attempts = attempts


# Called with (alert, error message, attempts) for an alert that was not delivered.
DeadLetter = Callable[[Alert, str, int], Awaitable[None]]


class AlertSink(ABC):
    """A destination for alerts. `send` accepts (never waits on the network); `close` stops."""

    name: str
    stats: AlertSinkStats

    @abstractmethod
    async def send(self, alert: Alert) -> None:
        """Accept `alert` for delivery; returns once it is queued."""

    @abstractmethod
    async def close(self) -> None:
        """Deliver what is queued within the drain timeout, then release connections."""

    @property
    def pending(self) -> int:
        """Alerts accepted but not yet delivered (or given up)."""
        return 0


class QueuedAlertSink(AlertSink):
    """An `AlertSink` with its own bounded queue and worker task; subclasses implement `deliver`.

    `deliver` raises `DeliveryError` when it gives up: the alert is counted as failed and handed
    to `dead_letter` (if given). Any other exception is logged with the target's name and the
    worker goes on with the next alert: a target never dies silently.
    """

    def __init__(
        self, name: str, *, queue_size: int, dead_letter: DeadLetter | None = None, drain_timeout_s: float = 10.0
    ) -> None:
        if queue_size < 1:
            raise ValueError(f"queue_size must be at least 1, got {queue_size}")
        self.name = name
        self.stats = AlertSinkStats()
        self.dead_letter = dead_letter
        self.drain_timeout_s = drain_timeout_s
        self._queue: asyncio.Queue[Alert] = asyncio.Queue(queue_size)
        self._worker: asyncio.Task[None] | None = None
        self._closed = False
        self._delivering = 0

    @property
    def pending(self) -> int:
        return self._queue.qsize() + self._delivering

    @property
    def alive(self) -> bool:
        """Liveness: the worker runs (or has not been needed yet)."""
        return not self._closed and (self._worker is None or not self._worker.done())

    async def send(self, alert: Alert) -> None:
        if self._closed:
            raise RuntimeError(f"alert target {self.name!r} is closed")
        if self._worker is None or self._worker.done():
            self._worker = asyncio.create_task(self._work(), name=f"alert-target:{self.name}")
        if self._queue.full():
            oldest = self._queue.get_nowait()
            self._queue.task_done()
            self.stats.dropped += 1
            log.warning(
                "alert target %s: queue full (%d), dropped the oldest alert (event %s, stream %s)",
                self.name,
                self._queue.maxsize,
                oldest.event.id,
                oldest.event.stream,
            )
            await self._dead_letter(oldest, f"dropped: queue of {self._queue.maxsize} full", 0)
        self._queue.put_nowait(alert)

    async def _work(self) -> None:
        while True:
            alert = await self._queue.get()
            self._delivering = 1
            try:
                await self.deliver(alert)
                self.stats.sent += 1
            except DeliveryError as e:
                self.stats.failed += 1
                log.error("alert target %s: event %s not delivered: %s", self.name, alert.event.id, e)
                await self._dead_letter(alert, str(e), e.attempts)
            except asyncio.CancelledError:
                raise
            except Exception as e:  # a bug in a target must not stop its worker
                self.stats.failed += 1
                log.exception("alert target %s: delivering event %s crashed", self.name, alert.event.id)
                await self._dead_letter(alert, f"{type(e).__name__}: {e}", 1)
            finally:
                self._delivering = 0
                self._queue.task_done()

    async def _dead_letter(self, alert: Alert, error: str, attempts: int) -> None:
        if self.dead_letter is None:
            return
        try:
            await self.dead_letter(alert, error, attempts)
            self.stats.dead_lettered += 1
        except Exception:  # the dead-letter topic is best effort; the failure was logged already
            log.exception("alert target %s: could not dead-letter event %s", self.name, alert.event.id)

    async def close(self) -> None:
        self._closed = True
        worker, self._worker = self._worker, None
        if worker is not None:
            if not worker.done():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._queue.join(), self.drain_timeout_s)
            worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await worker
        left = self._queue.qsize()
        if left:
            log.warning("alert target %s: closed with %d undelivered alerts", self.name, left)
        await self.aclose_transport()

    @abstractmethod
    async def deliver(self, alert: Alert) -> None:
        """Deliver one alert (retrying as the target sees fit); raise `DeliveryError` to give up."""

    async def aclose_transport(self) -> None:
        """Release connections; called once by `close` after the worker stopped."""
