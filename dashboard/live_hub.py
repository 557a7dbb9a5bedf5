"""In-process fan-out of live data (events, frame notices) to dashboard clients.

Publishers call `publish_event` / `publish_frame` synchronously from the event loop; each
message is encoded to JSON once and the same text put on the bounded queue of every subscriber
whose `Filter` accepts it (no per-client encoding; `batch_message` joins queued texts as they
are). A subscriber whose queue is full is dropped on the spot (its `dropped` event is set and the
drop counted): a stalled browser never slows the pipeline or the other clients. No sockets here;
the websocket handler in `dinostream.dashboard.ws_api` only moves the text out (`Subscription.get_many`
takes all that queued up in one wake-up, so a lagging client costs fewer sends, not more).

Every event message carries a `cursor` (see `dinostream.dashboard.event_log.Cursor`): the events-topic
offsets after it. A client that resumes from a cursor gets what it missed from the hub's
memory when it still holds it, or else (`Subscription.replay_plan`) from the events topic.

    >>> hub = LiveHub(queue_size=256)
    >>> with hub.subscribe("127.0.0.1:50000") as sub:
    ...     hub.publish_event(event, partition=0, offset=41)
    ...     text = await sub.get()        # '{"kind":"event","cursor":"0:42","event":{...}}'

Not thread-safe: call it from the event loop's thread (use `loop.call_soon_threadsafe`
from elsewhere).
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
from collections import OrderedDict, deque
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, NamedTuple

from dinostream.core.records import EVENT_TYPES, Event, RecordError, check_stream_id
from dinostream.dashboard.event_log import Cursor, format_positions

log = logging.getLogger(__name__)

# Served by `dinostream.dashboard.app`; `seq` busts browser caches so a tile refetches on each new frame.
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


def event_message(event: Event, cursor: str) -> str:
    """The JSON text a client gets for `event` at `cursor` (raises RecordError if not plain JSON)."""
    return '{"kind":"event","cursor":' + _dumps(cursor) + ',"event":' + event.to_json() + "}"


def resume_gap_message(reason: str, message: str, missed: int | None) -> str:
    """Tells a resuming client that events are missing (`missed`: how many, None if unknown)."""
    return _dumps({"kind": "resume_gap", "reason": reason, "missed": missed, "message": message})


def batch_message(texts: Sequence[str]) -> str:
    """Several messages as one: `{"kind":"batch","messages":[...]}`, each message unchanged inside.

    Messages are JSON texts already, so this only joins strings: no parsing, no re-encoding.
    """
    return '{"kind":"batch","messages":[' + ",".join(texts) + "]}"


def batches(texts: Sequence[str], max_chars: int) -> Iterator[tuple[str, int]]:
    """`texts` in order as few messages as possible, each with how many it holds: runs joined by
    `batch_message` up to about `max_chars` each (a longer message goes alone), a lone one unchanged."""
    if len(texts) < 2 or sum(map(len, texts)) + len(texts) <= max_chars:  # the common case: one run
        if texts:
            yield _joined(texts), len(texts)
        return
    start = size = 0
    for i, text in enumerate(texts):
        if i > start and size + len(text) > max_chars:
            yield _joined(texts[start:i]), i - start
            start, size = i, 0
        size += len(text) + 1
    if start < len(texts):
        yield _joined(texts[start:]), len(texts) - start


def _joined(texts: Sequence[str]) -> str:
    return texts[0] if len(texts) == 1 else batch_message(texts)


@dataclass(frozen=True)
class Filter:
    """What one client wants: events of these streams and types with at least `min_score`, and
    frame notices of these streams. None means no restriction.

    >>> Filter.from_request({"streams": ["cam1"], "types": ["anomaly"], "min_score": 0.5})
    """

    streams: frozenset[str] | None = None
    types: frozenset[str] | None = None
    min_score: float | None = None

    @classmethod
    def from_request(cls, req: Mapping[str, Any]) -> Filter:
        """Validate the `streams`, `types` and `min_score` fields of a subscribe message."""
        streams = req.get("streams")
        types = req.get("types")
        min_score = req.get("min_score")
        if streams is not None:
            if not isinstance(streams, list) or len(streams) > 1000:
                raise RecordError("streams must be a list of at most 1000 stream ids")
            streams = frozenset(check_stream_id(x) for x in streams)
        if types is not None:
            if not isinstance(types, list) or not all(isinstance(x, str) for x in types):
                raise RecordError(f"types must be a list of event types ({', '.join(EVENT_TYPES)})")
            unknown = sorted(set(types) - set(EVENT_TYPES))
            if unknown:
                raise RecordError(f"unknown event type {unknown[0]!r}; known: {', '.join(EVENT_TYPES)}")
            types = frozenset(types)
        if min_score is not None and (
            isinstance(min_score, bool) or not isinstance(min_score, (int, float)) or not math.isfinite(min_score)
        ):
            raise RecordError(f"min_score must be a finite number, got {min_score!r}")
        return cls(streams, types, None if min_score is None else float(min_score))

    @property
    def everything(self) -> bool:
        return self.streams is None and self.types is None and self.min_score is None

    def accepts(self, stream: str, type_: str | None, score: float | None) -> bool:
        """For an event pass its type and score; for a frame notice pass None for both."""
        if self.streams is not None and stream not in self.streams:
            return False
        if type_ is None:
            return True
        if self.types is not None and type_ not in self.types:
            return False
        return self.min_score is None or (score is not None and score >= self.min_score)


EVERYTHING = Filter()


class _Item(NamedTuple):
    """A queued message: its text, and for events the topic position it came from (else -1, -1)."""

    text: str
    partition: int
    offset: int


class _Logged(NamedTuple):
    partition: int
    offset: int
    text: str
    stream: str
    type: str
    score: float


@dataclass(frozen=True)
class ReplayPlan:
    """Events to fetch from the event log for a resuming client: after `start`, before `until`."""

    start: Cursor
    until: dict[int, int]


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

    `initial` holds the messages to send first (hello, then recent or missed events, oldest
    first), snapshotted atomically with the subscription so nothing is missed or sent twice.
    When the hub no longer holds what a resuming client missed, `replay_plan` says what to
    read from the event log; send that, then call `replayed(end)` before taking live messages.
    """

    def __init__(
        self, hub: LiveHub, name: str, queue_size: int, initial: list[str], filter: Filter = EVERYTHING
    ) -> None:
        self.name = name
        self.initial = initial
        self.filter = filter
        self._everything = filter.everything
        self.replay_plan: ReplayPlan | None = None
        self._hub = hub
        self._queue_size = queue_size
        # A deque and one waiter (one reader per subscription) instead of an asyncio.Queue:
        # `get_many` takes everything queued in one wake-up, and a publish to a client that is
        # already due to wake costs an append.
        self._items: deque[_Item] = deque()
        self._waiter: asyncio.Future[None] | None = None
        self._dropped = asyncio.Event()
        self._skip_before: dict[int, int] = {}

    @property
    def queue_size(self) -> int:
        return self._queue_size

    @property
    def pending(self) -> int:
        """Messages queued and not yet taken."""
        return len(self._items)

    @property
    def dropped(self) -> bool:
        """True once the hub dropped this client for falling `queue_size` messages behind."""
        return self._dropped.is_set()

    async def get(self) -> str:
        """Next live message (JSON text). Keeps returning what was queued before a drop.
        Skips events the client already got from a replay (see `replayed`)."""
        while True:
            await self._wait()
            item = self._items.popleft()
            if self._wanted(item):
                return item.text

    async def get_many(self) -> list[str]:
        """Every live message queued now, oldest first (at least one: waits for it), as `get` would
        return them one by one. A client that keeps up gets one at a time; one that lags gets all
        it missed in one wake-up, to send together (see `batch_message`)."""
        while True:
            await self._wait()
            items = list(self._items)
            self._items.clear()
            if self._skip_before:
                texts = [item.text for item in items if self._wanted(item)]
                if not texts:
                    continue
                return texts
            return [item.text for item in items]

    async def _wait(self) -> None:
        while not self._items:
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None

    def _wanted(self, item: _Item) -> bool:
        return item.partition < 0 or item.offset >= self._skip_before.get(item.partition, 0)

    def replayed(self, end: Mapping[int, int]) -> None:
        """The client got every event before `end` (next offset per partition) from the event log:
        live messages before it are duplicates and are skipped."""
        for p, o in end.items():
            self._skip_before[p] = max(o, self._skip_before.get(p, 0))
        self.replay_plan = None

    def sent(self, n: int = 1) -> None:
        """Count `n` messages written to the client (for `LiveHub.stats`)."""
        self._hub._sent += n

    async def wait_dropped(self) -> None:
        """Return when the hub drops this client (its queue overflowed)."""
        await self._dropped.wait()

    def close(self) -> None:
        """Stop receiving; idempotent."""
        self._hub.unsubscribe(self)

    def _offer(self, item: _Item) -> bool:
        if len(self._items) >= self._queue_size:
            return False
        self._items.append(item)
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
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
    sent to a new client on connect (an update of an event with the same id replaces it);
    `resume_memory` bounds the log of event messages (updates included) a resuming client is
    served from without reading the events topic.
    """

    def __init__(self, queue_size: int, recent: int = 200, resume_memory: int = 10_000) -> None:
        if queue_size < 1:
            raise ValueError(f"queue_size must be >= 1, got {queue_size}")
        if recent < 0:
            raise ValueError(f"recent must be >= 0, got {recent}")
        if resume_memory < 0:
            raise ValueError(f"resume_memory must be >= 0, got {resume_memory}")
        self.queue_size = queue_size
        self.recent_limit = recent
        self.resume_memory = resume_memory
        self._subs: set[Subscription] = set()
        self._recent: OrderedDict[str, _Logged] = OrderedDict()  # event id -> its latest message
        self._log: deque[_Logged] = deque()  # every event message, oldest first, bounded
        self._positions: dict[int, int] = {}  # events-topic partition -> next offset
        self._covered: dict[int, int] = {}  # partition -> first offset still in `_log` (or its start)
        self._last_cursor: OrderedDict[str, str] = OrderedDict()  # event id -> cursor after its last message
        self._streams: dict[str, StreamInfo] = {}
        self._thumbnails: dict[str, bytes] = {}
        self._events = 0
        self._frames = 0
        self._dropped_clients = 0
        self._sent = 0
        self._resumes = 0
        self._resume_gaps = 0

    # -- publishing -------------------------------------------------------------------------

    def start_positions(self, positions: Mapping[int, int]) -> None:
        """Where the feed starts reading each events-topic partition (call before publishing):
        cursors then name every partition, and resuming from before them reads the topic."""
        for p, o in positions.items():
            if p not in self._positions:
                self._positions[p] = o
                self._covered[p] = o

    def skip(self, partition: int, offset: int) -> None:
        """The record at `offset` was not an event (malformed): move past it."""
        self._advance(partition, offset)

    def publish_event(self, event: Event, *, partition: int = 0, offset: int | None = None) -> None:
        """Record `event` in the recent ring and the stream's info, and send it to every client.

        `partition`/`offset` locate the Kafka record it came from; without an offset the hub
        numbers events itself (a hub fed without Kafka). Raises RecordError (before changing
        anything) when `event.details` is not plain JSON, so a feed can skip the record.
        """
        if offset is None:
            offset = self._positions.get(partition, 0)
        positions = {**self._positions, partition: max(offset + 1, self._positions.get(partition, 0))}
        cursor = format_positions(positions)
        text = event_message(event, cursor)
        self._advance(partition, offset)
        info = self._info(event.stream)
        info.last_event_t = event.t
        info.last_event_ts = event.ts
        self._events += 1
        logged = _Logged(partition, offset, text, event.stream, event.type, event.score)
        if self.recent_limit:
            self._recent.pop(event.id, None)
            self._recent[event.id] = logged
            while len(self._recent) > self.recent_limit:
                self._recent.popitem(last=False)
        if self.resume_memory:
            self._log.append(logged)
            while len(self._log) > self.resume_memory:
                old = self._log.popleft()
                self._covered[old.partition] = old.offset + 1
            self._last_cursor.pop(event.id, None)
            self._last_cursor[event.id] = cursor
            while len(self._last_cursor) > self.resume_memory:
                self._last_cursor.popitem(last=False)
        else:
            self._covered[partition] = offset + 1
        item = _Item(text, partition, offset)
        self._broadcast(item, event.stream, event.type, event.score)

    def _advance(self, partition: int, offset: int) -> None:
        if partition not in self._positions:
            self._covered[partition] = offset
        self._positions[partition] = max(offset + 1, self._positions.get(partition, 0))

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
        frame_msg = {
            "kind": "frame",
            "stream": stream,
            "seq": seq,
            "t": t,
            "thumbnail_url": latest_thumbnail_url(stream, seq) if info.has_thumbnail else None,
            "model": model,
            "untrained": untrained,
        }
        self._broadcast(_Item(_dumps(frame_msg), -1, -1), stream, None, None)

    # -- subscribing ------------------------------------------------------------------------

    def subscribe(self, name: str = "", filter: Filter = EVERYTHING, resume_from: str | None = None) -> Subscription:
        """A new client: its `initial` messages and a bounded live queue, from this moment.

        Without `resume_from`: hello + recent events. With a cursor (or an event id, meaning
        after that event's last message): hello + every event after it, from memory when the
        hub still holds them all, else `replay_plan` says what to read from the event log. An
        unknown event id yields a `resume_gap` message, then the recent events.
        """
        initial = [self.hello(filter)]
        sub = Subscription(self, name, self.queue_size, initial, filter)
        if resume_from is None:
            initial += self._matching(self._recent.values(), filter)
        else:
            self._resumes += 1
            cursor = Cursor.parse(resume_from)
            if cursor is None and resume_from in self._last_cursor:
                cursor = Cursor.parse(self._last_cursor[resume_from])
            if cursor is None:
                self._resume_gaps += 1
                initial.append(
                    resume_gap_message(
                        "unknown_event",
                        f"cannot resume after {resume_from[:80]!r}: not a cursor and not an event this gateway "
                        "remembers; sending recent events instead",
                        None,
                    )
                )
                initial += self._matching(self._recent.values(), filter)
            elif self._in_memory(cursor):
                start = cursor.positions
                initial += self._matching((m for m in self._log if m.offset >= start.get(m.partition, 0)), filter)
            else:
                sub.replay_plan = ReplayPlan(cursor, dict(self._positions))
        self._subs.add(sub)
        return sub

    def _in_memory(self, cursor: Cursor) -> bool:
        # Everything after the cursor is in `_log` iff, in every partition the hub has seen, the
        # cursor lies between the first offset the log still holds and the hub's position (a
        # cursor past it comes from elsewhere: the event log decides).
        return all(
            first <= cursor.positions.get(p, 0) <= self._positions[p] for p, first in self._covered.items()
        ) and all(p in self._positions for p in cursor.positions)

    @staticmethod
    def _matching(messages: Iterable[_Logged], filter: Filter) -> list[str]:
        if filter.everything:
            return [m.text for m in messages]
        return [m.text for m in messages if filter.accepts(m.stream, m.type, m.score)]

    def note_resume_gap(self) -> None:
        self._resume_gaps += 1

    def unsubscribe(self, sub: Subscription) -> None:
        self._subs.discard(sub)

    def _broadcast(self, item: _Item, stream: str, type_: str | None, score: float | None) -> None:
        for sub in list(self._subs):
            if not sub._everything and not sub.filter.accepts(stream, type_, score):
                continue
            if not sub._offer(item):
                self._subs.discard(sub)
                self._dropped_clients += 1
                sub._drop()
                log.warning(
                    "dashboard client %s dropped: more than %d messages behind", sub.name or "?", sub.queue_size
                )

    # -- state ------------------------------------------------------------------------------

    def hello(self, filter: Filter = EVERYTHING) -> str:
        """The first message a client gets: the info of every stream it asked for."""
        streams = self.streams()
        if filter.streams is not None:
            streams = {k: v for k, v in streams.items() if k in filter.streams}
        return _dumps({"kind": "hello", "streams": streams})

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

    @property
    def positions(self) -> dict[int, int]:
        """Next events-topic offset per partition (what a cursor made now would say)."""
        return dict(self._positions)

    def stats(self) -> dict[str, int]:
        """Counters for /metrics: clients now, clients dropped for falling behind, messages sent."""
        return {
            "clients": len(self._subs),
            "dropped_clients": self._dropped_clients,
            "messages_sent": self._sent,
            "events": self._events,
            "frames": self._frames,
            "streams": len(self._streams),
            "queue_size": self.queue_size,
            "resumes": self._resumes,
            "resume_gaps": self._resume_gaps,
        }

    def _info(self, stream: str) -> StreamInfo:
        info = self._streams.get(stream)
        if info is None:
            info = self._streams[stream] = StreamInfo(stream)
        return info
