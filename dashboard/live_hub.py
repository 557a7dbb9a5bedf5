"""In-process fan-out of live data (events, frame notices) to dashboard clients.

Publishers call `publish_event` / `publish_frame` synchronously from the event loop; each
message is encoded to JSON once and put on every subscriber's bounded queue. A subscriber
whose queue is full is dropped on the spot (its `dropped` event is set and the drop counted):
a stalled browser never slows the pipeline or the other clients. No sockets here; the
websocket handler in `dashboard.app` only moves the queued text out.

    >>> hub = LiveHub(queue_size=256)
    >>> with hub.subscribe("127.0.0.1:50000") as sub:
    ...     hub.publish_event(event)
    ...     text = await sub.get()        # '{"kind":"event","event":{...}}'

Not thread-safe: call it from the event loop's thread (use `loop.call_soon_threadsafe`
from elsewhere).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import OrderedDict
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from dinostream.records import Event, RecordError, check_stream_id

log = logging.getLogger(__name__)

# Served by `dashboard.app`; `seq` busts browser caches so a tile refetches on each new frame.
LATEST_THUMBNAIL_PATH = "/api/v1/streams/{stream}/thumbnail.jpg"


def latest_thumbnail_url(stream: str, seq: int) -> str:
    """URL of a stream's latest thumbnail, unique per frame so browsers do not show a stale one."""
    return LATEST_THUMBNAIL_PATH.format(stream=stream) + f"?seq={seq}"


def _dumps(obj: Any) -> str:
    # allow_nan=False: browsers reject NaN/Infinity in JSON, so fail at the publisher instead.
    try:
        return json.dumps(obj, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as e:
        raise RecordError(f"cannot send to the dashboard, not plain JSON: {e}") from None


@dataclass
class StreamInfo:
    """What the dashboard knows about one stream. Fields are None until a frame has been seen."""

    stream: str
    seq: int | None = None  # latest sampled frame
    t: float | None = None  # its media time, seconds
    frames: int = 0  # frame notices seen since the hub started
    model: str | None = None
    untrained: bool = False
    has_thumbnail: bool = False
    last_event_t: float | None = None  # media seconds of the latest event
    last_event_ts: float | None = None  # wall-clock unix seconds of the latest event

    def to_dict(self) -> dict[str, Any]:
        return {
            "stream": self.stream,
            "seq": self.seq,
            "t": self.t,
            "frames": self.frames,
            "model": self.model,
            "untrained": self.untrained,
            "thumbnail_url": (
                latest_thumbnail_url(self.stream, self.seq) if self.has_thumbnail and self.seq is not None else None
            ),
            "last_event_t": self.last_event_t,
            "last_event_ts": self.last_event_ts,
        }


class Subscription:
    """One client's bounded view of the hub; use as a context manager to unsubscribe on exit.

    `initial` holds the messages to send first (hello, then recent events, oldest first),
    snapshotted atomically with the subscription so nothing is missed or sent twice.
    """

    def __init__(self, hub: LiveHub, name: str, queue_size: int, initial: list[str]) -> None:
        self.name = name
        self.initial = initial
        self._hub = hub
        self._queue: asyncio.Queue[str] = asyncio.Queue(maxsize=queue_size)
        self._dropped = asyncio.Event()

    @property
    def queue_size(self) -> int:
        return self._queue.maxsize

    @property
    def pending(self) -> int:
        """Messages queued and not yet taken."""
        return self._queue.qsize()

    @property
    def dropped(self) -> bool:
        """True once the hub dropped this client for falling `queue_size` messages behind."""
        return self._dropped.is_set()

    async def get(self) -> str:
        """Next live message (JSON text). Keeps returning what was queued before a drop."""
        return await self._queue.get()

    async def wait_dropped(self) -> None:
        """Return when the hub drops this client (its queue overflowed)."""
        await self._dropped.wait()

    def close(self) -> None:
        """Stop receiving; idempotent."""
        self._hub.unsubscribe(self)

    def _offer(self, text: str) -> bool:
        try:
            self._queue.put_nowait(text)
        except asyncio.QueueFull:
            return False
        return True

    def _drop(self) -> None:
        self._dropped.set()

    def __enter__(self) -> Subscription:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


class LiveHub:
    """Latest state per stream, a ring of recent events, and bounded fan-out to subscribers.

    `queue_size` bounds each subscriber's queue; `recent` bounds the ring of recent events
    replayed to a client on connect (an update of an event with the same id replaces it).
    """

    def __init__(self, queue_size: int, recent: int = 200) -> None:
        if queue_size < 1:
            raise ValueError(f"queue_size must be >= 1, got {queue_size}")
        if recent < 0:
            raise ValueError(f"recent must be >= 0, got {recent}")
        self.queue_size = queue_size
        self.recent_limit = recent
        self._subs: set[Subscription] = set()
        self._recent: OrderedDict[str, str] = OrderedDict()  # event id -> encoded message
        self._streams: dict[str, StreamInfo] = {}
        self._thumbnails: dict[str, bytes] = {}
        self._events = 0
        self._frames = 0
        self._dropped_clients = 0

    # -- publishing -------------------------------------------------------------------------

    def publish_event(self, event: Event) -> None:
        """Record `event` in the recent ring and the stream's info, and send it to every client.

        Raises RecordError (before changing anything) when `event.details` is not plain JSON
        (NaN, infinities, objects), so a feed can skip the record like any malformed one.
        """
        text = _dumps({"kind": "event", "event": event.to_dict()})
        info = self._info(event.stream)
        info.last_event_t = event.t
        info.last_event_ts = event.ts
        self._events += 1
        if self.recent_limit:
            self._recent.pop(event.id, None)
            self._recent[event.id] = text
            while len(self._recent) > self.recent_limit:
                self._recent.popitem(last=False)
        self._broadcast(text)

    def publish_frame(self, stream: str, seq: int, t: float, thumbnail: bytes, *, model: str, untrained: bool) -> None:
        """Keep `thumbnail` (JPEG) as the stream's latest and notify clients without the bytes.

        An empty `thumbnail` keeps the previous one. Clients fetch the image from the
        `thumbnail_url` in the notice.
        """
        check_stream_id(stream)
        info = self._info(stream)
        info.seq = seq
        info.t = t
        info.frames += 1
        info.model = model
        info.untrained = untrained
        if thumbnail:
            self._thumbnails[stream] = thumbnail
            info.has_thumbnail = True
        self._frames += 1
        msg = {
            "kind": "frame",
            "stream": stream,
            "seq": seq,
            "t": t,
            "thumbnail_url": latest_thumbnail_url(stream, seq) if info.has_thumbnail else None,
            "model": model,
            "untrained": untrained,
        }
        self._broadcast(_dumps(msg))

    # -- subscribing ------------------------------------------------------------------------

    def subscribe(self, name: str = "") -> Subscription:
        """A new client: its `initial` messages (hello + recent events) and a bounded live queue."""
        initial = [self.hello(), *self._recent.values()]
        sub = Subscription(self, name, self.queue_size, initial)
        self._subs.add(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        self._subs.discard(sub)

    def _broadcast(self, text: str) -> None:
        for sub in list(self._subs):
            if not sub._offer(text):
                self._subs.discard(sub)
                self._dropped_clients += 1
                sub._drop()
                log.warning(
                    "dashboard client %s dropped: more than %d messages behind", sub.name or "?", sub.queue_size
                )

    # -- state ------------------------------------------------------------------------------

    def hello(self) -> str:
        """The first message a client gets: every stream's info."""
        return _dumps({"kind": "hello", "streams": self.streams()})

    def streams(self) -> dict[str, dict[str, Any]]:
        """Per-stream info, keyed by stream id (a snapshot; safe to serialize)."""
        return {name: info.to_dict() for name, info in sorted(self._streams.items())}

    def latest_thumbnail(self, stream: str) -> bytes | None:
        """The latest JPEG thumbnail published for `stream`, or None."""
        return self._thumbnails.get(stream)

    @property
    def untrained(self) -> bool:
        """True when any stream's features come from random weights."""
        return any(info.untrained for info in self._streams.values())

    @property
    def clients(self) -> int:
        return len(self._subs)

    @property
    def dropped_clients(self) -> int:
        """Clients disconnected so far because their queue overflowed."""
        return self._dropped_clients

    def stats(self) -> dict[str, int]:
        return {
            "clients": len(self._subs),
            "dropped_clients": self._dropped_clients,
            "events": self._events,
            "frames": self._frames,
            "streams": len(self._streams),
            "queue_size": self.queue_size,
        }

    def _info(self, stream: str) -> StreamInfo:
        info = self._streams.get(stream)
        if info is None:
            info = self._streams[stream] = StreamInfo(stream)
        return info
