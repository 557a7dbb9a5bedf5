"""What every request of the gateway passes before a route sees it: one ASGI middleware over the whole app.

In order: the `Host` header must name this service (DNS rebinding), a state-changing request from
a browser must come from an allowed `Origin` (cross-site forgery), the caller's token must reach the
role the route table below asks (when tokens are configured), and the body and the decoded pixels
are bounded. Every change that got through is written to the audit log (logger
`dinostream.audit`: who, what, when, answer).

The table maps (method, path prefix) to the least role and the body limit; the most specific
prefix wins, and a route it does not name needs `admin`, so a route added later is closed until
it is listed. Without any token configured every route is open, as on a loopback-only service.

    app = FastAPI()
    install_guard(app, settings.http)
    uvicorn.Config(app, host=..., port=..., **tls_options(settings.http))
"""

from __future__ import annotations

import ipaddress
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urlsplit

from fastapi import FastAPI
from starlette.datastructures import Headers
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from dinostream.core.settings import HttpSettings, Role
from dinostream.dashboard.auth import Authenticator, Identity, bearer_token
from dinostream.dashboard.http_common import ApiError, error_body
from dinostream.dashboard.uploads import pixel_budget, too_large

log = logging.getLogger(__name__)
audit_log = logging.getLogger("dinostream.audit")

PUBLIC = None  # a route anyone may read (the page, its assets, health's status)
READ = frozenset({"GET", "HEAD", "OPTIONS"})
WS = frozenset({"WEBSOCKET"})
Body = Literal["json", "upload", "asset"]


@dataclass(frozen=True)
class Rule:
    methods: frozenset[str]
    prefix: str  # matches the path itself and what lies under it ("/a" matches "/a" and "/a/b", not "/ab")
    role: Role | None
    body: Body = "json"  # "json": http.max_body_bytes; "upload": http.max_upload_bytes; "asset": max_asset_bytes
    exact: bool = False

    def matches(self, method: str, path: str) -> bool:
        if method not in self.methods:
            return False
        if self.exact or path == self.prefix:
            return path == self.prefix
        return path.startswith(self.prefix if self.prefix.endswith("/") else self.prefix + "/")


def _m(*methods: str) -> frozenset[str]:
    return frozenset(methods)


ROUTES: tuple[Rule, ...] = (
    Rule(READ, "/", PUBLIC, exact=True),  # the page asks for a token itself
    Rule(READ, "/static", PUBLIC),
    Rule(READ, "/api/v1/health", PUBLIC),  # only {"status"} without a token where tokens are required
    Rule(READ, "/livez", PUBLIC),  # liveness probes carry no token; only {"status"} without one
    Rule(READ, "/metrics", "viewer"),  # public with http.metrics_public
    Rule(READ, "/docs", "viewer"),  # public with http.docs_public, as /openapi.json
    Rule(READ, "/openapi.json", "viewer"),
    Rule(WS, "/ws/events", "viewer"),  # the token may also come in the first message (ws_api)
    # viewer: reads events, thumbnails, search
    Rule(READ, "/api/v1", "viewer"),
    Rule(_m("POST"), "/api/v1/search", "viewer", "upload"),
    Rule(_m("POST"), "/api/v1/images", "viewer", "upload"),
    Rule(_m("POST"), "/api/v1/segment", "viewer"),  # a click-to-segment preview changes nothing
    Rule(_m("POST", "DELETE"), "/api/v1/assets", "viewer", "asset"),  # pictures and videos to query with
    # operator: streams, their analytics settings, the watchlist, WHIP
    Rule(_m("POST", "DELETE", "PATCH", "PUT"), "/api/v1/streams", "operator"),
    Rule(_m("POST", "DELETE", "PATCH", "PUT"), "/api/v1/watchlist", "operator", "upload"),
    Rule(_m("POST", "DELETE", "PATCH"), "/api/v1/whip", "operator", "upload"),  # WHIP bounds the offer itself
)
DEFAULT_ROLE: Role = "admin"


def route_rule(method: str, path: str, routes: Sequence[Rule] = ROUTES) -> Rule:
    """The rule for a request: the matching one with the longest prefix, else admin-only."""
    best: Rule | None = None
    for rule in routes:
        if rule.matches(method, path) and (best is None or len(rule.prefix) > len(best.prefix)):
            best = rule
    return best or Rule(frozenset({method}), path, DEFAULT_ROLE)


def required_role(method: str, path: str, http: HttpSettings) -> Role | None:
    """The least role a request needs (None: anyone), with the settings that open /metrics and /docs."""
    role = route_rule(method, path).role
    if http.metrics_public and method in READ and path == "/metrics":
        return PUBLIC
    docs = path in ("/openapi.json", "/docs") or path.startswith("/docs/")
    if http.docs_public and method in READ and docs:
        return PUBLIC
    return role


def split_host(netloc: str, default_port: int) -> tuple[str, int] | None:
    """(host, port) of a Host header or an Origin's netloc, lower-cased; None when malformed."""
    netloc = netloc.strip().lower()
    if netloc.startswith("["):  # [v6]:port
        host, _, rest = netloc[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else ""
        if rest and not rest.startswith(":"):
            return None
    else:
        host, _, port = netloc.partition(":")
    host = host.rstrip(".")
    if not host or any(c in host for c in "/@\\ ?#"):
        return None
    if not port:
        return host, default_port
    return (host, int(port)) if port.isdigit() and int(port) <= 65535 else None


def host_allowed(host_header: str | None, http: HttpSettings) -> bool:
    """Whether a Host header names this service: an IP literal (a rebinding attack needs a name),
    localhost, the bind address, or a name in `http.allowed_hosts`."""
    if host_header is None:
        return True  # no browser sends a request without one
    if "*" in http.allowed_hosts:
        return True
    parts = split_host(host_header, 0)
    if parts is None:
        return False
    name = parts[0]
    try:
        ipaddress.ip_address(name)
        return True
    except ValueError:
        pass
    names = {"localhost", http.host.strip("[]").lower().rstrip(".")}
    names.update(h.strip().lower().rstrip(".") for h in http.allowed_hosts)
    return name in names


def origin_allowed(origin: str | None, host: str | None, allowed: Sequence[str]) -> bool:
    """Same-origin (the Origin's host and port are the Host header's), listed, or no Origin at all."""
    if origin is None:
        return True
    if "*" in allowed or origin.rstrip("/").lower() in {a.rstrip("/").lower() for a in allowed}:
        return True
    parts = urlsplit(origin)
    default = {"http": 80, "https": 443}.get(parts.scheme.lower())
    if default is None or not host:
        return False  # "null", file://, extensions: never same-origin
    return split_host(parts.netloc, default) == split_host(host, default)


def identity_of(scope: Scope) -> Identity | None:
    """The caller the guard identified by its Authorization header (None: no header, or no tokens)."""
    return scope.get("state", {}).get("identity")


def restricted(scope: Scope) -> bool:
    """True for a caller without a token where tokens are required (it may see only public things)."""
    return bool(scope.get("state", {}).get("restricted"))


def tls_options(http: HttpSettings) -> dict[str, str]:
    """uvicorn.Config keyword arguments that serve HTTPS and WSS with `http.ssl_certfile`/`ssl_keyfile`."""
    if http.ssl_certfile is None or http.ssl_keyfile is None:
        return {}
    return {"ssl_certfile": str(http.ssl_certfile), "ssl_keyfile": str(http.ssl_keyfile)}


def install_guard(app: FastAPI, http: HttpSettings) -> None:
    """Put `Guard` in front of every route of `app`, those included later too."""
    app.add_middleware(Guard, http=http)


class Guard:
    """The ASGI middleware; see the module's docstring."""

    def __init__(self, app: ASGIApp, http: HttpSettings) -> None:
        self.app = app
        self.http = http
        self.auth = Authenticator.from_settings(http)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        websocket = scope["type"] == "websocket"
        method = "WEBSOCKET" if websocket else scope["method"].upper()
        path = scope["path"]
        headers = Headers(scope=scope)
        host = headers.get("host")
        state = scope.setdefault("state", {})
        state["identity"] = None
        state["restricted"] = False

        refusal = self._refusal(method, path, headers, host, websocket, state)
        if refusal is not None:
            status, code, message = refusal
            _log_refusal(scope, method, path, 403 if websocket else status, code)  # a websocket learns only 403
            if websocket:
                await _refuse_websocket(receive, send)
            else:
                await _answer(send, status, code, message)
            return
        if websocket:
            await self.app(scope, receive, send)
            return

        rule = route_rule(method, path)
        limit = {
            "upload": self.http.max_upload_bytes,
            "asset": self.http.max_asset_bytes,
            "json": self.http.max_body_bytes,
        }[rule.body]
        declared = headers.get("content-length")
        if declared is not None and declared.strip().isdigit() and int(declared) > limit:
            await self._too_large(send, rule.body, limit)
            return
        received = 0

        async def bounded_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise _too_large_error(rule.body, limit)
            return message

        status_seen: list[int] = []

        async def watched_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                status_seen.append(message["status"])
            await send(message)

        with pixel_budget(self.http.max_request_pixels):
            try:
                await self.app(scope, bounded_receive, watched_send)
            finally:
                if method not in READ:
                    _audit(scope, method, path, state["identity"], status_seen[0] if status_seen else 500)

    def _refusal(
        self, method: str, path: str, headers: Headers, host: str | None, websocket: bool, state: dict[str, Any]
    ) -> tuple[int, str, str] | None:
        """Why the request is refused before any route sees it: (status, code, message), or None."""
        if not host_allowed(host, self.http):
            return (
                421,
                "host_not_allowed",
                f"this service does not answer for host {host!r}: add it to http.allowed_hosts",
            )
        if not websocket and method not in READ:
            origin = headers.get("origin")
            if not origin_allowed(origin, host, self.http.allowed_origins):
                return (
                    403,
                    "origin_not_allowed",
                    f"a request from the page at {origin} may not change anything here: add that origin to "
                    "http.allowed_origins if it is yours",
                )
        if not self.auth.required:
            return None
        needed = required_role(method, path, self.http)
        given = headers.get("authorization")
        identity = None
        if given is not None:  # a wrong header is never ignored, even where none is needed
            identity = self.auth.identify(bearer_token(given))
            if identity is None:
                return 401, "invalid_token", "the Authorization header holds no valid token (Authorization: Bearer ...)"
        state["identity"] = identity
        state["restricted"] = identity is None
        if needed is None or (websocket and identity is None):
            return None  # public; or a websocket that may still send its token in its first message
        if identity is None:
            return 401, "missing_token", "this endpoint needs an access token: send Authorization: Bearer <token>"
        if not identity.may(needed):
            return 403, "forbidden", f"token {identity.name!r} is a {identity.role}; this needs {needed} or above"
        return None

    async def _too_large(self, send: Send, body: Body, limit: int) -> None:
        err = _too_large_error(body, limit)
        await _answer(send, err.status_code, err.code, err.detail, err.details)


def _too_large_error(body: Body, limit: int) -> ApiError:
    if body in ("upload", "asset"):
        return too_large(limit, f"http.max_{body}_bytes")
    message = f"the request body is larger than the {limit}-byte limit (http.max_body_bytes)"
    return ApiError(413, "body_too_large", message, details={"limit_bytes": limit, "setting": "http.max_body_bytes"})


async def _answer(send: Send, status: int, code: str, message: str, details: dict[str, Any] | None = None) -> None:
    headers = {"WWW-Authenticate": 'Bearer realm="dinostream"'} if status == 401 else None
    response = JSONResponse(error_body(code, message, details), status_code=status, headers=headers)
    await response({"type": "http"}, _no_receive, send)


async def _no_receive() -> Message:
    return {"type": "http.disconnect"}


async def _refuse_websocket(receive: Receive, send: Send) -> None:
    message = await receive()  # websocket.connect
    if message["type"] == "websocket.connect":
        await send({"type": "websocket.close", "code": 1008})  # before accept: the server answers HTTP 403


def _who(scope: Scope, identity: Identity | None) -> str:
    client = scope.get("client")
    peer = f"{client[0]}" if client else "?"
    return f"{identity.name} ({identity.role})" if identity else f"anonymous ({peer})"


def _audit(scope: Scope, method: str, path: str, identity: Identity | None, status: int) -> None:
    when = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    audit_log.info("audit: %s %s by %s at %s -> %d", method, path, _who(scope, identity), when, status)


def _log_refusal(scope: Scope, method: str, path: str, status: int, code: str) -> None:
    audit_log.warning("refused: %s %s by %s -> %d %s", method, path, _who(scope, None), status, code)
