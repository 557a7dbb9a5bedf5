"""WHIP endpoints (RFC 9725): publishers POST an SDP offer, get the answer and a session URL to DELETE.

A thin shell over `dinostream.ingest.whip_sessions.WhipSessions`; errors use the dashboard's one JSON
shape through `ApiError`. Where tokens are configured, publishers send an operator token as
`Authorization: Bearer <token>` (RFC 9725 section 4.5), checked by the app's guard for every route.
Non-trickle: the offer must carry its candidates (wait for ICE gathering to complete), so PATCH
answers 405.

    app = create_app(...)
    app.include_router(whip_router(sessions))

    POST   /api/v1/whip/{stream}               Content-Type: application/sdp -> 201, SDP answer, Location
    DELETE /api/v1/whip/{stream}/{session_id}  -> 200 (the publisher ends its session)
    DELETE /api/v1/whip/{stream}               -> 200 (an operator ends whatever publishes the stream)
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from dinostream.core.records import RecordError, check_stream_id
from dinostream.dashboard.http_common import ApiError
from dinostream.ingest.whip_sessions import WhipError, WhipSessions

WHIP_PATH = "/api/v1/whip/{stream}"
WHIP_SESSION_PATH = "/api/v1/whip/{stream}/{session_id}"
_SDP = "application/sdp"


def whip_router(sessions: WhipSessions) -> APIRouter:
    """The WHIP routes for `sessions`; include it in the dashboard app."""
    router = APIRouter(tags=["whip"])
    max_bytes = sessions.settings.max_offer_bytes

    @router.post(WHIP_PATH, status_code=201, openapi_extra=_OFFER_OPENAPI)
    async def publish(stream: str, request: Request) -> Response:
        check_stream(stream)
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type != _SDP:
            raise ApiError(
                415,
                "unsupported_media_type",
                f"send the SDP offer with Content-Type: application/sdp, not {content_type or 'none'}",
            )
        sdp = await _read_offer(request, max_bytes)
        try:
            session_id, answer = await sessions.offer(stream, sdp)
        except WhipError as e:
            raise ApiError(e.status, e.code, str(e), headers=_retry(e)) from None
        location = WHIP_SESSION_PATH.format(stream=stream, session_id=session_id)
        return Response(answer, status_code=201, media_type=_SDP, headers={"Location": location})

    @router.delete(WHIP_SESSION_PATH)
    async def end_session(stream: str, session_id: str) -> Response:
        check_stream(stream)
        try:
            await sessions.delete(stream, session_id)
        except WhipError as e:
            raise ApiError(e.status, e.code, str(e)) from None
        return Response(status_code=200)

    @router.delete(WHIP_PATH)
    async def end_stream(stream: str) -> Response:
        check_stream(stream)
        try:
            await sessions.delete_stream(stream)
        except WhipError as e:
            raise ApiError(e.status, e.code, str(e)) from None
        return Response(status_code=200)

    @router.patch(WHIP_SESSION_PATH, include_in_schema=False)
    async def trickle(stream: str, session_id: str) -> Response:
        raise ApiError(
            405,
            "trickle_not_supported",
            "trickle ICE is not supported: wait for ICE gathering to complete and send the whole offer in the POST",
            headers={"Allow": "DELETE"},
        )

    return router


def check_stream(stream: str) -> None:
    try:
        check_stream_id(stream)
    except RecordError as e:
        raise ApiError(422, "invalid_stream", str(e)) from None


async def _read_offer(request: Request, max_bytes: int) -> str:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        raise _too_large(max_bytes)
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > max_bytes:
            raise _too_large(max_bytes)
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        raise ApiError(400, "bad_offer", "the SDP offer is not UTF-8 text") from None


def _too_large(max_bytes: int) -> ApiError:
    return ApiError(413, "offer_too_large", f"the SDP offer is larger than the {max_bytes}-byte limit")


def _retry(e: WhipError) -> dict[str, str] | None:
    return {"Retry-After": "5"} if e.status == 503 else None


_OFFER_OPENAPI = {
    "requestBody": {"required": True, "content": {_SDP: {"schema": {"type": "string", "description": "SDP offer"}}}},
    "responses": {"201": {"description": "SDP answer", "content": {_SDP: {"schema": {"type": "string"}}}}},
}
