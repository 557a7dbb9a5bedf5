"""`/ws/events`: the live feed over a websocket, with an Origin allowlist, a token, filters and resume.

The protocol, from the client's side:

1. Connect. A browser's `Origin` must be the page's own (same host and port) or listed in
   `HttpSettings.allowed_origins`; any other is refused at the handshake (HTTP 403). Clients
   that send no Origin (not browsers) are not checked.
2. Optionally offer the subprotocol `dinostream.v1` (echoed back) and, to authenticate without a
   message, `dinostream.token.<token>` (the token never goes in the query string); clients that can
   set headers may send `Authorization: Bearer <token>` instead (checked by the app's guard).
3. Send one JSON text message first (all fields optional):
   `{"token": "...", "streams": ["cam1"], "types": ["anomaly"], "min_score": 0.5,
   "resume_from": "<cursor or event id>", "batch": true}`. A client that sends nothing within
   `ws_first_message_timeout_s` gets everything from now on, if no token is required; when
   tokens are configured (`HttpSettings.tokens`, `api_token`; any role may watch) it is closed
   with 4408. Send `{}` to start at once.
4. Receive `hello` (stream info), then recent events (or, with `resume_from`, every event after
   that point, exactly once and in order per stream, or a `resume_gap` message saying what can
   no longer be replayed), then live `event` and `frame` messages. Every event message carries
   a `cursor`: keep the last one and send it as `resume_from` when reconnecting.
5. With `"batch": true`, several messages may come as one: `{"kind": "batch", "messages": [...]}`,
   each message inside unchanged and in order. It adapts by itself: a client that keeps up gets one
   message per websocket message; when messages queue up (a busy gateway, many clients, a burst,
   the initial and replayed events) they go out together, up to about `MAX_BATCH_CHARS` each,
   which costs the gateway one send instead of one per message. Clients that do not ask get one
   message per websocket message, as before.

Close codes: 4400 bad subscribe message, 4401 missing or wrong token, 4408 no subscribe message
in time, 1013 the client fell `ws_queue_size` messages behind (reconnect and resume), 1011 the
missed events could not be read back. Later client messages are ignored.

    >>> app.include_router(ws_router(settings=settings.http, hub=hub, event_log=feed.event_log))
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import MutableMapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from fastapi import APIRouter, WebSocket
from starlette.websockets import WebSocketDisconnect, WebSocketDisconnected

from dinostream.core.errors import BrokerError
from dinostream.core.records import Event, RecordError
from dinostream.core.settings import HttpSettings
from dinostream.dashboard.auth import Authenticator
from dinostream.dashboard.event_log import EventLog, format_positions
from dinostream.dashboard.guard import identity_of, origin_allowed
from dinostream.dashboard.live_hub import (
    EVERYTHING,
    Filter,
    LiveHub,
    Subscription,
    batches,
    event_message,
    resume_gap_message,
)

log = logging.getLogger(__name__)

WS_PATH = "/ws/events"
WS_PROTOCOL = "dinostream.v1"
TOKEN_PROTOCOL_PREFIX = "dinostream.token."

CLOSE_TOO_SLOW = 1013  # "Try Again Later": dropped for reading too slowly
CLOSE_REPLAY_FAILED = 1011
CLOSE_BAD_REQUEST = 4400
CLOSE_UNAUTHORIZED = 4401
CLOSE_TIMEOUT = 4408

MAX_SUBSCRIBE_BYTES = 64 * 1024
# A batch holds messages up to about this many characters (JSON is ASCII: bytes) so it stays under
# the 1 MiB message limit that clients such as `websockets` apply by default.
MAX_BATCH_CHARS = 512 * 1024
_FIELDS = ("token", "streams", "types", "min_score", "resume_from", "batch")


@dataclass(frozen=True)
class SubscribeRequest:
    """A client's first message, validated."""

    token: str | None = None
    filter: Filter = field(default=EVERYTHING)
    resume_from: str | None = None
    batch: bool = False


def parse_subscribe(text: str) -> SubscribeRequest:
    """Validate a subscribe message; raises RecordError with one line naming the problem."""
    if len(text) > MAX_SUBSCRIBE_BYTES:
        raise RecordError(f"the subscribe message is larger than {MAX_SUBSCRIBE_BYTES} bytes")
    try:
        obj = json.loads(text)
    except ValueError as e:
        raise RecordError(f"the subscribe message is not JSON: {e}") from None
    if not isinstance(obj, dict):
        raise RecordError("the subscribe message must be a JSON object")
    unknown = sorted(set(obj) - set(_FIELDS))
    if unknown:
        raise RecordError(f"unknown field {unknown[0]!r} in the subscribe message; known: {', '.join(_FIELDS)}")
    token = obj.get("token")
    if token is not None and not isinstance(token, str):
        raise RecordError("token must be a string")
    resume_from = obj.get("resume_from")
    if resume_from is not None and (not isinstance(resume_from, str) or not 1 <= len(resume_from) <= 4096):
        raise RecordError("resume_from must be a cursor or an event id (a non-empty string)")
    batch = obj.get("batch", False)
    if not isinstance(batch, bool):
        raise RecordError(f"batch must be true or false, got {batch!r}")
    return SubscribeRequest(token, Filter.from_request(obj), resume_from, batch)


def pick_subprotocol(offered: Sequence[str]) -> tuple[str | None, str | None]:
    """The subprotocol to echo (browsers require one of those offered) and the token offered, if any."""
    token = next((p[len(TOKEN_PROTOCOL_PREFIX) :] for p in offered if p.startswith(TOKEN_PROTOCOL_PREFIX)), None)
    if WS_PROTOCOL in offered:
        return WS_PROTOCOL, token
    if token is not None:
        return TOKEN_PROTOCOL_PREFIX + token, token
    return None, None


class _Close(Exception):
    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


async def _close(websocket: WebSocket, code: int, reason: str) -> None:
    reason_b = reason.encode()[:123]  # a close frame's reason is at most 123 bytes
    with contextlib.suppress(WebSocketDisconnect, WebSocketDisconnected, OSError, RuntimeError):
        await websocket.close(code=code, reason=reason_b.decode(errors="ignore"))


def ws_router(*, settings: HttpSettings, hub: LiveHub, event_log: EventLog | None = None) -> APIRouter:
    """The `/ws/events` endpoint. Without `event_log`, resuming from before what the hub holds in
    memory yields a `resume_gap` message instead of the missed events."""
    router = APIRouter()
    auth = Authenticator.from_settings(settings)

    @router.websocket(WS_PATH)
    async def ws_events(websocket: WebSocket) -> None:
        client = websocket.client
        name = f"{client.host}:{client.port}" if client else "?"
        origin = websocket.headers.get("origin")
        if not origin_allowed(origin, websocket.headers.get("host"), settings.allowed_origins):
            log.warning("dashboard websocket from %s refused: Origin %r is not allowed", name, origin)
            await websocket.close(code=1008)  # before accept: the server answers HTTP 403
            return
        chosen, proto_token = pick_subprotocol(websocket.scope.get("subprotocols") or [])
        await websocket.accept(subprotocol=chosen)
        authed = not auth.required or identity_of(websocket.scope) is not None  # the guard read its header
        if not authed and proto_token is not None:
            if auth.identify(proto_token) is None:
                await _close(websocket, CLOSE_UNAUTHORIZED, "invalid token")
                return
            authed = True

        try:
            first: MutableMapping[str, Any] | None = await asyncio.wait_for(
                websocket.receive(), settings.ws_first_message_timeout_s
            )
        except TimeoutError:
            first = None
        if first is not None and first["type"] == "websocket.disconnect":
            return
        if first is None:
            if not authed:
                await _close(
                    websocket,
                    CLOSE_TIMEOUT,
                    f"no subscribe message within {settings.ws_first_message_timeout_s:g} s: send "
                    '{"token": "..."} first',
                )
                return
            req = SubscribeRequest()
        else:
            text = first.get("text")
            if text is None:
                await _close(websocket, CLOSE_BAD_REQUEST, "the subscribe message must be JSON text, not binary")
                return
            try:
                req = parse_subscribe(text)
            except RecordError as e:
                await _close(websocket, CLOSE_BAD_REQUEST, str(e))
                return
            if not authed:
                if req.token is None:
                    await _close(websocket, CLOSE_UNAUTHORIZED, 'missing token: send {"token": ...} first')
                    return
                if auth.identify(req.token) is None:
                    await _close(websocket, CLOSE_UNAUTHORIZED, "invalid token")
                    return

        with hub.subscribe(name, req.filter, req.resume_from) as sub:
            await _serve(websocket, sub, hub, event_log, settings.ws_replay_limit, req.batch)

    return router


async def _serve(
    websocket: WebSocket,
    sub: Subscription,
    hub: LiveHub,
    event_log: EventLog | None,
    replay_limit: int,
    batch: bool,
) -> None:
    """Send the initial messages, any replay, then live ones until the client leaves or falls behind."""
    out = _Out(websocket, sub, batch)
    sender = asyncio.create_task(_send_all(out, sub, hub, event_log, replay_limit))
    receiver = asyncio.create_task(_until_disconnect(websocket))
    dropped = asyncio.create_task(sub.wait_dropped())
    tasks = (sender, receiver, dropped)
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    for task in (sender, receiver):
        exc = None if task.cancelled() else task.exception()
        if isinstance(exc, _Close):
            await _close(websocket, exc.code, exc.reason)
            return
        # RuntimeError: starlette's "send after close" when the client vanished mid-send.
        if exc is not None and not isinstance(exc, (WebSocketDisconnect, WebSocketDisconnected, OSError, RuntimeError)):
            log.error("dashboard websocket %s failed", sub.name or "?", exc_info=exc)
    if dropped in done and receiver not in done:
        # The server bounds the closing handshake itself (close timeout, keepalive).
        await _close(websocket, CLOSE_TOO_SLOW, f"too slow: more than {sub.queue_size} messages behind; reconnect")


class _Out:
    """Writes messages to one client: one websocket message each, or joined into batches."""

    def __init__(self, websocket: WebSocket, sub: Subscription, batch: bool) -> None:
        self.websocket = websocket
        self.sub = sub
        self.batch = batch

    async def send(self, texts: list[str]) -> None:
        if self.batch:
            for text, n in batches(texts, MAX_BATCH_CHARS):
                await self.websocket.send_text(text)
                self.sub.sent(n)
        else:
            for text in texts:
                await self.websocket.send_text(text)
                self.sub.sent()


async def _send_all(out: _Out, sub: Subscription, hub: LiveHub, event_log: EventLog | None, replay_limit: int) -> None:
    # The hello alone first (clients wait for it), then the backlog, then live messages: all that
    # queued while the previous send was under way goes out in one wake-up.
    await out.send(sub.initial[:1])
    await out.send(sub.initial[1:])
    sub.initial = []
    if sub.replay_plan is not None:
        await _replay(out, sub, hub, event_log, replay_limit)
    while True:
        await out.send(await sub.get_many())


async def _replay(out: _Out, sub: Subscription, hub: LiveHub, event_log: EventLog | None, limit: int) -> None:
    """Send the events the hub no longer holds, from the event log, while live ones queue up."""
    plan = sub.replay_plan
    assert plan is not None
    if event_log is None:
        hub.note_resume_gap()
        await out.send(
            [resume_gap_message("no_store", "missed events cannot be replayed: this gateway keeps no event log", None)]
        )
        sub.replayed(plan.start.positions)
        return
    try:
        replay = await event_log.read(plan.start, plan.until, limit)
    except BrokerError as e:
        raise _Close(CLOSE_REPLAY_FAILED, f"cannot replay missed events: {e}") from None
    texts: list[str] = []  # sent together: in batches to a client that asked for them
    if replay.lost:
        hub.note_resume_gap()
        why = "removed by the topic's retention" if replay.reason == "retention" else f"over the {limit}-event limit"
        texts.append(
            resume_gap_message(
                replay.reason or "retention",
                f"{replay.lost} events after the cursor are {why}; the oldest still stored follow",
                replay.lost,
            )
        )
    positions = {p: a for p, (a, _) in replay.ranges.items()}
    for rec in replay.records:
        positions[rec.partition] = rec.offset + 1
        try:
            event = Event.decode(rec.value)
        except RecordError as e:
            log.error("replay: skipping malformed event at %d:%d: %s", rec.partition, rec.offset, e)
            continue
        if not sub.filter.accepts(event.stream, event.type, event.score):
            continue
        with contextlib.suppress(RecordError):
            texts.append(event_message(event, format_positions(positions)))
    await out.send(texts)
    sub.replayed(plan.start.positions)
    sub.replayed(replay.end)


async def _until_disconnect(websocket: WebSocket) -> None:
    # After the subscribe message clients have nothing to say; reading is how a disconnect is noticed.
    while (await websocket.receive())["type"] != "websocket.disconnect":
        pass
