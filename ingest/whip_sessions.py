"""WHIP (RFC 9725) publishing sessions: one aiortc peer connection per publisher.

A publisher POSTs an SDP offer for a stream; `offer()` answers it (non-trickle: the answer
carries every host candidate, plus server-reflexive/relay ones when ICE servers are set) and
returns a session id for the resource URL. The first received video track becomes a
`WhipSource`, read at once and handed to `on_source` when its first frame is decoded; audio
and extra tracks are read and discarded, since an unread aiortc track queues frames without
bound (aiortc #554).

A session ends on DELETE, when its video track ends, when the connection goes `failed` or
`closed` (or stays `disconnected` past a grace period), or when video has not started within
`connect_timeout_s`. Ending closes the peer connection, the source (whose `frames()` ends
cleanly), every task, and calls `on_end`.

One publisher per stream: a second offer for a stream that has a live session is refused with
`StreamBusy` (HTTP 409) rather than replacing it, so nobody can take over a camera's stream
by POSTing; the publisher DELETEs its session first (or waits until a vanished one is noticed).

    sessions = WhipSessions(WhipSettings(), IngestSettings(), (224, 224), on_source=pump)
    session_id, answer_sdp = await sessions.offer("cam1", offer_sdp)
    ...
    await sessions.delete("cam1", session_id)
    await sessions.close_all()

In the service each publisher is a stream of the `StreamManager` (`whip_streams`): supervised,
numbered, listed and reported like a file or camera.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiortc import RTCConfiguration, RTCIceServer, RTCPeerConnection, RTCRtpReceiver, RTCSessionDescription
from aiortc.exceptions import InvalidAccessError, OperationError
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from aiortc.sdp import SessionDescription

from dinostream.core.errors import DinostreamError
from dinostream.core.records import RecordError, check_stream_id
from dinostream.core.settings import IngestSettings, WhipSettings
from dinostream.ingest.source import Source
from dinostream.ingest.stream_manager import StreamManager
from dinostream.ingest.whip_source import SizeSpec, WhipSource

log = logging.getLogger(__name__)

OnSource = Callable[[str, Source], Awaitable[None]]
OnEnd = Callable[[str, str, str], Awaitable[None]]  # (stream, session id, reason)

_VIDEO_CAPABILITIES = RTCRtpReceiver.getCapabilities("video")
_VIDEO_CODECS = {  # mime types aiortc decodes, lower case: video/vp8, video/h264
    c.mimeType.lower() for c in (_VIDEO_CAPABILITIES.codecs if _VIDEO_CAPABILITIES else []) if "/rtx" not in c.mimeType
}
_HOOK_GRACE_S = 5.0  # how long a closing session waits for on_source to return before cancelling it


class WhipError(DinostreamError):
    """A WHIP request that cannot be served; `status` and `code` are its HTTP answer."""

    status = 400
    code = "whip_error"


class BadOffer(WhipError):
    status, code = 400, "bad_offer"


class InvalidStream(WhipError):
    status, code = 422, "invalid_stream"


class StreamBusy(WhipError):
    status, code = 409, "stream_busy"


class TooManySessions(WhipError):
    status, code = 503, "too_many_sessions"


class UnknownSession(WhipError):
    status, code = 404, "session_not_found"


@dataclass(eq=False)
class _Session:
    id: str
    stream: str
    pc: RTCPeerConnection
    created: float = field(default_factory=time.monotonic)
    source: WhipSource | None = None
    tasks: set[asyncio.Task[Any]] = field(default_factory=set)
    hook: asyncio.Task[None] | None = None
    closing: asyncio.Task[None] | None = None  # the task ending the session, once it is ending
    state: str = "new"


class WhipSessions:
    """The live WHIP sessions of a process, bounded by `settings.max_sessions`.

    `on_source(stream, source)` runs as the session's own task once video flows (it may
    iterate `source.frames()` for the session's life); `on_end(stream, session_id, reason)` is
    awaited when a session has ended. Both are logged with the stream id if they fail.
    `size` is the frames' resize target: fixed, or `(stream, (w, h)) -> (w, h)` at the first frame.
    `taken(stream)` says a stream id belongs to another source (offers for it get 409).
    """

    def __init__(
        self,
        settings: WhipSettings,
        ingest: IngestSettings,
        size: SizeSpec,
        *,
        on_source: OnSource | None = None,
        on_end: OnEnd | None = None,
        taken: Callable[[str], bool] | None = None,
    ) -> None:
        self.settings = settings
        self.ingest = ingest
        self.size = size
        self.on_source = on_source
        self.on_end = on_end
        self.taken = taken  # streams fed by something else (a configured file or camera): refused with 409
        self.sessions: dict[str, _Session] = {}  # by session id
        self._by_stream: dict[str, str] = {}  # stream -> session id (reserved while the offer is answered)
        self._closers: set[asyncio.Task[None]] = set()
        self._closed = False
        self.opened = 0  # sessions answered since start
        self.refused = 0  # offers refused (limits, conflicts, bad SDP)

    # -- public API -------------------------------------------------------------------------

    async def offer(self, stream: str, sdp: str) -> tuple[str, str]:
        """Answer a publisher's SDP offer for `stream`; return (session id, SDP answer)."""
        try:
            self._admit(stream, sdp)
        except WhipError:
            self.refused += 1
            raise
        session_id = secrets.token_urlsafe(16)
        self._by_stream[stream] = session_id  # reserved before the first await
        pc = RTCPeerConnection(self._rtc_configuration())
        session = _Session(session_id, stream, pc)
        self.sessions[session_id] = session
        self._wire(session)
        try:
            await pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="offer"))
            answer = await pc.createAnswer()
            await pc.setLocalDescription(answer)  # gathers candidates: the answer is complete
        except asyncio.CancelledError:  # the publisher hung up mid-offer: nothing may be left behind
            self._schedule_close(session, "offer cancelled", notify=False)
            raise
        except Exception as exc:
            self.refused += 1
            await asyncio.shield(self._schedule_close(session, f"offer rejected: {exc}", notify=False))
            if isinstance(exc, ValueError | AssertionError | InvalidAccessError | OperationError):
                raise BadOffer(f"cannot use the SDP offer for stream {stream}: {exc}") from None
            raise
        if session.closing is not None:  # closed while answering (close_all, a failed connection)
            raise UnknownSession(f"WHIP session for stream {stream} ended while it was being set up")
        self.opened += 1
        session.tasks.add(asyncio.create_task(self._watchdog(session), name=f"whip-watchdog-{stream}"))
        log.info("stream %s: WHIP session %s answered", stream, session_id)
        return session_id, pc.localDescription.sdp

    async def delete(self, stream: str, session_id: str, *, reason: str = "deleted by the publisher") -> None:
        """End a session (the publisher's DELETE); UnknownSession if there is none."""
        session = self.sessions.get(session_id)
        if session is None or session.stream != stream or session.closing is not None:
            raise UnknownSession(f"no WHIP session {session_id!r} for stream {stream!r}")
        await asyncio.shield(self._schedule_close(session, reason))

    async def delete_stream(self, stream: str) -> str:
        """End whatever session publishes `stream` (an operator's DELETE); return its id; UnknownSession if none."""
        session_id = self._by_stream.get(stream)
        if session_id is None:
            raise UnknownSession(f"stream {stream!r} has no WHIP session")
        await self.delete(stream, session_id, reason="stream deleted")
        return session_id

    async def close_all(self) -> None:
        """End every session and refuse new offers (service shutdown)."""
        self._closed = True
        for session in list(self.sessions.values()):
            self._schedule_close(session, "service stopping")
        while self._closers:
            await asyncio.gather(*list(self._closers), return_exceptions=True)

    def stats(self) -> dict[str, Any]:
        """For health: the live sessions and counters."""
        return {
            "sessions": {
                s.stream: {
                    "session": s.id,
                    "state": s.state,
                    "age_s": round(time.monotonic() - s.created, 1),
                    **(vars(s.source.stats) if s.source else {}),
                }
                for s in self.sessions.values()
            },
            "opened": self.opened,
            "refused": self.refused,
        }

    def session_for(self, stream: str) -> str | None:
        return self._by_stream.get(stream)

    # -- internals --------------------------------------------------------------------------

    def _admit(self, stream: str, sdp: str) -> None:
        """Raise the WhipError that refuses this offer, if any (checked before any await)."""
        try:
            check_stream_id(stream)
        except RecordError as e:
            raise InvalidStream(str(e)) from None
        if self._closed:
            raise TooManySessions("WHIP publishing is shutting down")
        _check_offer(sdp)
        if self.taken is not None and self.taken(stream):
            raise StreamBusy(f"stream {stream} is fed by a configured source; publish under another stream id")
        if stream in self._by_stream:
            raise StreamBusy(
                f"stream {stream} already has a WHIP publisher (session {self._by_stream[stream]}); "
                "DELETE that session first"
            )
        if len(self.sessions) >= self.settings.max_sessions:
            raise TooManySessions(
                f"too many WHIP sessions: the limit of {self.settings.max_sessions} is reached; try again later"
            )

    def _rtc_configuration(self) -> RTCConfiguration:
        return RTCConfiguration(
            iceServers=[
                RTCIceServer(urls=list(s.urls), username=s.username, credential=s.credential)
                for s in self.settings.ice_servers
            ]
        )

    def _wire(self, session: _Session) -> None:
        pc = session.pc

        @pc.on("track")
        def on_track(track: MediaStreamTrack) -> None:
            if session.closing is not None:
                return
            if track.kind == "video" and session.source is None:
                source = session.source = WhipSource(session.stream, track, self.ingest, self.size)
                source.start()
                session.tasks.add(
                    asyncio.create_task(self._until_ended(session, source), name=f"whip-ended-{session.stream}")
                )
                if self.on_source is not None:
                    session.hook = asyncio.create_task(
                        self._run_hook(session, source), name=f"whip-source-{session.stream}"
                    )
            else:  # audio, or a second video track: read and discard
                session.tasks.add(asyncio.create_task(_drain(track), name=f"whip-drain-{session.stream}"))

        @pc.on("connectionstatechange")
        def on_state() -> None:
            state = session.state = pc.connectionState
            log.info("stream %s: WHIP session %s connection %s", session.stream, session.id, state)
            if state in ("failed", "closed"):
                self._schedule_close(session, f"connection {state}")
            elif state == "disconnected":  # aiortc does not report it today; browsers' peers do
                session.tasks.add(asyncio.create_task(self._disconnect_grace(session)))

    async def _until_ended(self, session: _Session, source: WhipSource) -> None:
        await source.ended.wait()
        self._schedule_close(session, "video track ended")

    async def _run_hook(self, session: _Session, source: WhipSource) -> None:
        assert self.on_source is not None
        # aiortc announces the track with the offer; the service hears of it once video flows.
        receiving = asyncio.create_task(source.receiving.wait())
        ended = asyncio.create_task(source.ended.wait())
        try:
            await asyncio.wait([receiving, ended], return_when=asyncio.FIRST_COMPLETED)
        finally:
            receiving.cancel()
            ended.cancel()
            await asyncio.gather(receiving, ended, return_exceptions=True)
        if not source.receiving.is_set():
            return
        try:
            await self.on_source(session.stream, source)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("stream %s: on_source failed; ending the WHIP session", session.stream)
            self._schedule_close(session, "on_source failed")

    async def _disconnect_grace(self, session: _Session) -> None:
        await asyncio.sleep(self.settings.disconnect_grace_s)
        if session.pc.connectionState == "disconnected":
            self._schedule_close(session, f"disconnected for {self.settings.disconnect_grace_s:g} s")

    async def _watchdog(self, session: _Session) -> None:
        """Close a session whose video has not started in time (a publisher gone before ICE)."""
        await asyncio.sleep(self.settings.connect_timeout_s)
        source = session.source
        if source is None or source.stats.decoded == 0:
            self._schedule_close(session, f"no video within {self.settings.connect_timeout_s:g} s")

    def _schedule_close(self, session: _Session, reason: str, *, notify: bool = True) -> asyncio.Task[None]:
        """The task that ends `session`, started on the first call; later calls get the same one."""
        if session.closing is None:
            task = asyncio.create_task(self._close(session, reason, notify), name=f"whip-close-{session.stream}")
            session.closing = task
            self._closers.add(task)
            task.add_done_callback(self._closers.discard)
        return session.closing

    async def _close(self, session: _Session, reason: str, notify: bool) -> None:
        """Free everything a session holds: peer connection, source, tasks, on_source."""
        log.info("stream %s: WHIP session %s ending: %s", session.stream, session.id, reason)
        self.sessions.pop(session.id, None)
        if self._by_stream.get(session.stream) == session.id:
            del self._by_stream[session.stream]
        try:
            try:
                await session.pc.close()  # ends the remote tracks: the reader and drains finish
            except Exception:
                log.exception("stream %s: closing the peer connection failed", session.stream)
            if session.source is not None:
                await session.source.stop()  # frames already queued are still delivered
            for t in session.tasks:
                t.cancel()
            await asyncio.gather(*session.tasks, return_exceptions=True)
            session.tasks.clear()
            hook = session.hook
            if hook is not None and not hook.done():
                done, _ = await asyncio.wait([hook], timeout=_HOOK_GRACE_S)
                if not done:
                    log.warning("stream %s: on_source still running after the session ended; cancelled", session.stream)
                    hook.cancel()
                    await asyncio.gather(hook, return_exceptions=True)
            if session.source is not None:
                await session.source.close()
            if notify and self.on_end is not None:
                try:
                    await self.on_end(session.stream, session.id, reason)
                except Exception:
                    log.exception("stream %s: on_end failed", session.stream)
        finally:
            session.pc.remove_all_listeners()


def whip_streams(manager: StreamManager, settings: WhipSettings, size: SizeSpec) -> WhipSessions:
    """WHIP sessions whose video tracks are streams of `manager` (`StreamManager.attach`, under
    a supervisor like any stream's, sampled by `manager.settings`); an id the manager opens
    itself (a configured file or camera) is refused with 409."""

    async def attach(stream: str, source: Source) -> None:
        url = f"whip:{stream}"
        await manager.attach(stream, source, url=url, size=lambda: getattr(source, "size", None))

    return WhipSessions(settings, manager.settings, size, on_source=attach, taken=manager.opens)


def _check_offer(sdp: str) -> None:
    """Raise BadOffer unless `sdp` parses as an SDP offer with a video section aiortc can use."""
    if not sdp.strip():
        raise BadOffer("empty SDP offer: send the complete offer as the request body")
    if not sdp.lstrip().startswith("v="):
        raise BadOffer("the body is not an SDP offer: it must start with 'v=0'")
    try:
        parsed = SessionDescription.parse(sdp)
    except Exception as e:
        raise BadOffer(f"cannot parse the SDP offer: {type(e).__name__}: {e}") from None
    kinds = [m.kind for m in parsed.media]
    if "video" not in kinds:
        raise BadOffer(f"the SDP offer has no video section (found: {', '.join(kinds) or 'none'})")
    video = [m for m in parsed.media if m.kind == "video"]
    if not any(m.direction in ("sendonly", "sendrecv", None) for m in video):
        raise BadOffer("the SDP offer sends no video: its video sections are recvonly or inactive")
    if not any(m.ice is not None and m.ice.usernameFragment for m in video):  # session-level ones are copied in
        raise BadOffer("the SDP offer has no ICE credentials (a=ice-ufrag/a=ice-pwd)")
    if not any(m.dtls is not None and m.dtls.fingerprints for m in video):
        raise BadOffer("the SDP offer has no DTLS fingerprint (a=fingerprint)")
    offered = {c.mimeType.lower() for m in video for c in m.rtp.codecs}
    if not offered & _VIDEO_CODECS:
        names = ", ".join(sorted(c.split("/")[-1].upper() for c in _VIDEO_CODECS))
        found = ", ".join(sorted({c.split("/")[-1].upper() for c in offered})) or "none"
        raise BadOffer(f"the SDP offer has no video codec this server decodes ({names}); it offers: {found}")


async def _drain(track: MediaStreamTrack) -> None:
    """Read and discard a track until it ends."""
    with contextlib.suppress(MediaStreamError):
        while True:
            await track.recv()
