"""Access control on every surface of the gateway (issue 17, part 1): tokens and roles on REST and
WHIP, a wrong Authorization header, the Host allowlist (DNS rebinding), Origin on changes, what
health shows, /metrics and /docs, the audit log, and `up` on a public address without a token.

HTTP-layer attacks go to the app in-process (httpx's ASGI transport); the websocket, a raw
handshake and TLS go to uvicorn on a loopback port (marked integration).
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.routing import APIWebSocketRoute
from starlette.routing import Mount
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from dinostream import cli
from dinostream.core.settings import HttpSettings
from dinostream.dashboard.auth import check_exposure
from dinostream.dashboard.guard import route_rule, tls_options
from tests.pictures import picture
from tests.security.gateway import (
    ADMIN_TOKEN,
    TOKENS,
    Gateway,
    bearer,
    error_of,
    self_signed_certificate,
    token_settings,
)
from tests.serving import serve

PUBLIC = {("GET", "/"), ("GET", "/static/app.js"), ("GET", "/api/v1/health"), ("GET", "/livez")}
F1 = {"stream": "cam1", "seq": 1}
PARAMS = {"seq": "1", "session_id": "abc", "exemplar_id": "ex1", "processor": "anomaly"}


def every_request(gw: Gateway) -> list[tuple[str, str]]:
    """(method, concrete path) for every route of the app, websocket as method "WEBSOCKET"."""
    out: list[tuple[str, str]] = []
    for path, methods, websocket in _routes(gw.app.routes):
        path = re.sub(r"\{(\w+)(?::\w+)?\}", lambda m: PARAMS.get(m.group(1), "cam1"), path)
        out.extend([("WEBSOCKET", path)] if websocket else [(m, path) for m in sorted(methods)])
    return out


def _routes(routes: Any) -> Iterator[tuple[str, set[str], bool]]:
    """(path, methods, is a websocket) of every route, those of included routers too."""
    for route in routes:
        nested = getattr(route, "effective_candidates", None)  # FastAPI 0.16x keeps an included router whole
        if callable(nested):
            nested = nested()
        if nested is not None:
            for ctx in nested:
                inner = ctx.starlette_route or ctx.original_route
                yield (
                    ctx.path or inner.path,
                    set(ctx.methods or getattr(inner, "methods", None) or ()),
                    isinstance(inner, APIWebSocketRoute),
                )
        elif isinstance(route, Mount):
            yield f"{route.path}/app.js", {"GET"}, False
        else:
            yield route.path, set(getattr(route, "methods", None) or ()), isinstance(route, APIWebSocketRoute)


# ---------- tokens and roles ----------


async def test_with_tokens_configured_no_route_answers_without_one(tmp_path: Path) -> None:
    async with Gateway(tmp_path, token_settings()) as gw, gw.client() as http:
        requests = every_request(gw)
        assert {("POST", "/api/v1/streams"), ("DELETE", "/api/v1/whip/cam1/abc"), ("WEBSOCKET", "/ws/events")} <= set(
            requests
        )
        assert len(requests) > 25
        for method, path in requests:
            if method == "WEBSOCKET":
                continue  # over a real server: test_websocket_needs_a_token_too
            r = await http.request(method, path, json={} if method in ("POST", "PATCH") else None)
            if (method, path) in PUBLIC or (method == "HEAD" and ("GET", path) in PUBLIC):
                assert r.status_code == 200, (method, path, r.text)
                continue
            assert r.status_code == 401, (method, path, r.status_code, r.text)
            if method != "HEAD":
                error_of(r, 401, "missing_token")
            assert r.headers["www-authenticate"].startswith("Bearer")
        assert gw.manager.list() == [] and gw.published == [] and gw.sent == []  # nothing changed


async def test_health_shows_only_its_status_without_a_token(tmp_path: Path) -> None:
    async with Gateway(tmp_path, token_settings()) as gw, gw.client() as http:
        anonymous = await http.get("/api/v1/health")
        assert anonymous.status_code == 200 and anonymous.json() == {"status": "ok"}
        viewer = (await http.get("/api/v1/health", headers=bearer("viewer"))).json()
        assert viewer["status"] == "ok" and "dashboard" in viewer


@pytest.mark.parametrize(
    "header",
    [f"Bearer {TOKENS['viewer']}x", "Bearer", "Basic dmlld2VyOnNlY3JldA==", TOKENS["viewer"], "Bearer a b"],
    ids=["wrong-token", "empty-bearer", "basic", "no-scheme", "two-words"],
)
async def test_a_wrong_authorization_header_is_never_ignored(tmp_path: Path, header: str) -> None:
    async with Gateway(tmp_path, token_settings()) as gw, gw.client({"Authorization": header}) as http:
        for path in ("/api/v1/streams", "/api/v1/health", "/"):  # even where no token is needed
            error_of(await http.get(path), 401, "invalid_token")
        error_of(await http.post("/api/v1/streams", json={"url": "clip.mp4"}), 401, "invalid_token")
        assert gw.manager.list() == []


async def test_roles_viewer_reads_operator_manages_admin_does_all(tmp_path: Path) -> None:
    async with Gateway(tmp_path, token_settings()) as gw, gw.client() as http:
        gw.app.get("/api/v2/not-in-the-table")(lambda: {"ok": True})  # a route added later, never listed
        viewer, operator, admin = bearer("viewer"), bearer("operator"), bearer("admin")
        # viewer: reads events, thumbnails, search
        assert (await http.get("/api/v1/streams", headers=viewer)).status_code == 200
        assert (await http.get("/api/v1/streams/cam1/thumbnail.jpg", headers=viewer)).status_code == 200
        files = [("images", ("a.jpg", picture((200, 20, 20)), "image/jpeg"))]
        assert (await http.post("/api/v1/images/embed", files=files, headers=viewer)).status_code == 200
        for method, path, body in [
            ("POST", "/api/v1/streams", {"url": "clip.mp4"}),
            ("DELETE", "/api/v1/streams/clip", None),
            ("PATCH", "/api/v1/streams/clip/analytics/phase", {"window": 4}),
            (
                "POST",
                "/api/v1/watchlist",
                {"label": "x", "frame": {"stream": "cam1", "seq": 1}, "point": {"x": 0, "y": 0}},
            ),
            ("DELETE", "/api/v1/watchlist/ex1", None),
            ("DELETE", "/api/v1/whip/cam1", None),
        ]:
            r = await http.request(method, path, json=body, headers=viewer)
            assert "is a viewer; this needs operator" in error_of(r, 403, "forbidden"), (method, path)
        # operator: streams, analytics settings, watchlist, WHIP
        r = await http.post("/api/v1/streams", json={"url": "clip.mp4"}, headers=operator)
        assert r.status_code == 201, r.text
        r = await http.patch("/api/v1/streams/clip/analytics/phase", json={"window": 4}, headers=operator)
        assert r.status_code == 202, r.text
        error_of(await http.delete("/api/v1/whip/cam1", headers=operator), 404, "session_not_found")  # past the guard
        error_of(await http.get("/api/v2/not-in-the-table", headers=operator), 403, "forbidden")
        # admin (http.api_token): everything, the unlisted route too
        assert (await http.get("/api/v2/not-in-the-table", headers=admin)).json() == {"ok": True}
        assert (await http.delete("/api/v1/streams/clip", headers=admin)).status_code == 200
        assert route_rule("GET", "/api/v2/not-in-the-table").role == "admin"


async def test_whip_publishing_and_ending_needs_an_operator_token(tmp_path: Path) -> None:
    async with Gateway(tmp_path, token_settings()) as gw, gw.client() as http:
        sdp = {"Content-Type": "application/sdp"}
        error_of(await http.post("/api/v1/whip/cam1", content="v=0", headers=sdp), 401, "missing_token")
        error_of(await http.delete("/api/v1/whip/cam1/some-session"), 401, "missing_token")  # anyone's session
        error_of(await http.delete("/api/v1/whip/cam1"), 401, "missing_token")
        garbage = await http.post("/api/v1/whip/cam1", content="hello", headers={**sdp, **bearer("operator")})
        error_of(garbage, 400, "bad_offer")  # the operator's offer reaches WHIP
        assert gw.whip.opened == 0


# ---------- Host and Origin ----------


@pytest.mark.parametrize("configured", [False, True], ids=["no-tokens", "tokens"])
async def test_a_foreign_host_is_refused(tmp_path: Path, configured: bool) -> None:
    http_settings = token_settings() if configured else HttpSettings()
    async with Gateway(tmp_path, http_settings) as gw:
        for host in ("evil.example", "evil.example:8000", "localhost.evil.example", "127.0.0.1.nip.io"):
            async with gw.client(bearer("admin"), host=host) as http:
                assert "add it to http.allowed_hosts" in error_of(
                    await http.get("/api/v1/streams"), 421, "host_not_allowed"
                )
                error_of(await http.post("/api/v1/streams", json={"url": "clip.mp4"}), 421, "host_not_allowed")
        for host in ("localhost:8000", "127.0.0.1:8000", "[::1]:8000", "192.168.1.20:8000"):  # names, IP literals
            async with gw.client(bearer("admin"), host=host) as http:
                assert (await http.get("/api/v1/streams")).status_code == 200, host
        assert gw.manager.list() == []
    async with Gateway(tmp_path, HttpSettings(allowed_hosts=["dash.example.com"])) as gw:
        async with gw.client(host="dash.example.com") as http:
            assert (await http.get("/api/v1/streams")).status_code == 200


async def test_a_cross_site_multipart_post_to_the_watchlist_is_refused(tmp_path: Path) -> None:
    form = {"label": "bag"}
    files = {"image": ("bag.jpg", picture((20, 200, 20)), "image/jpeg")}
    async with Gateway(tmp_path, HttpSettings()) as gw, gw.client() as http:  # no tokens: loopback as today
        r = await http.post("/api/v1/watchlist", data=form, files=files, headers={"Origin": "http://evil.example"})
        assert "http.allowed_origins" in error_of(r, 403, "origin_not_allowed")
        r = await http.post("/api/v1/watchlist", data=form, files=files, headers={"Origin": "null"})
        error_of(r, 403, "origin_not_allowed")
        assert gw.published == [] and len(gw.watchlist) == 0
        same = await http.post("/api/v1/watchlist", data=form, files=files, headers={"Origin": "http://localhost"})
        assert same.status_code == 201, same.text
        no_origin = await http.post("/api/v1/watchlist", data=form, files=files)  # not a browser
        assert no_origin.status_code == 201
        for method, path in [
            ("POST", "/api/v1/streams"),
            ("DELETE", "/api/v1/streams/x"),
            ("PATCH", "/api/v1/streams/x/analytics/phase"),
        ]:
            r = await http.request(method, path, json={"url": "clip.mp4"}, headers={"Origin": "https://evil.example"})
            error_of(r, 403, "origin_not_allowed")
    async with Gateway(tmp_path, HttpSettings(allowed_origins=["https://ops.example.com"])) as gw, gw.client() as http:
        r = await http.post("/api/v1/watchlist", data=form, files=files, headers={"Origin": "https://ops.example.com"})
        assert r.status_code == 201


# ---------- what health, /metrics and /docs show ----------


INSIDER_HEALTH = {
    "kafka": {"bootstrap": "127.0.0.1:39092", "embedded": True},
    "whip": {"sessions": {"cam9": {"session": "Zx8-secret-session-id", "state": "connected"}}, "opened": 1},
    "model": {"model": "/home/operator/models/dinov3-vits16", "device": "cpu"},
    "index": {"qdrant_url": "http://10.1.2.3:6333", "frames": 5},
    "problems": [],
}


@pytest.mark.parametrize("configured", [False, True], ids=["no-tokens", "tokens"])
async def test_health_shows_no_session_ids_kafka_address_or_absolute_paths(tmp_path: Path, configured: bool) -> None:
    settings = token_settings() if configured else HttpSettings()
    async with Gateway(tmp_path, settings, health=lambda: INSIDER_HEALTH) as gw, gw.client(bearer("viewer")) as http:
        r = await http.get("/api/v1/health")
    assert r.status_code == 200
    text = r.text
    for secret in ("Zx8-secret-session-id", "39092", "/home/operator", "10.1.2.3"):
        assert secret not in text, secret
    body = r.json()
    assert body["whip"]["sessions"]["cam9"]["state"] == "connected" and body["model"]["model"].endswith("dinov3-vits16")
    assert body["index"]["frames"] == 5 and body["kafka"]["embedded"] is True


async def test_metrics_and_docs_need_a_token_unless_a_setting_opens_them(tmp_path: Path) -> None:
    async with Gateway(tmp_path, token_settings()) as gw, gw.client() as http:
        for path in ("/metrics", "/docs", "/openapi.json"):
            error_of(await http.get(path), 401, "missing_token")
            assert (await http.get(path, headers=bearer("viewer"))).status_code == 200
    async with Gateway(tmp_path, token_settings(metrics_public=True, docs_public=True)) as gw, gw.client() as http:
        for path in ("/metrics", "/docs", "/openapi.json"):
            assert (await http.get(path)).status_code == 200
        error_of(await http.get("/api/v1/streams"), 401, "missing_token")


# ---------- audit log ----------


async def test_every_change_is_in_the_audit_log_with_who_what_and_when(tmp_path: Path, caplog: Any) -> None:
    caplog.set_level(logging.INFO, logger="dinostream.audit")
    async with Gateway(tmp_path, token_settings()) as gw, gw.client() as http:
        assert (
            await http.post("/api/v1/streams", json={"url": "clip.mp4"}, headers=bearer("operator"))
        ).status_code == 201
        await http.patch("/api/v1/streams/clip/analytics/phase", json={"window": 4}, headers=bearer("operator"))
        await http.delete("/api/v1/streams/clip", headers=bearer("admin"))
        await http.delete("/api/v1/streams/clip")  # refused: logged too
        await http.get("/api/v1/streams", headers=bearer("viewer"))  # a read: not a change
    lines = [r.getMessage() for r in caplog.records if r.name == "dinostream.audit"]
    when = r"at \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ"
    assert re.fullmatch(rf"audit: POST /api/v1/streams by operator-1 \(operator\) {when} -> 201", lines[0]), lines
    assert re.fullmatch(
        rf"audit: PATCH /api/v1/streams/clip/analytics/phase by operator-1 \(operator\) {when} -> 202", lines[1]
    )
    assert re.fullmatch(rf"audit: DELETE /api/v1/streams/clip by api_token \(admin\) {when} -> 200", lines[2])
    assert lines[3].startswith("refused: DELETE /api/v1/streams/clip by anonymous (127.0.0.1)") and lines[3].endswith(
        "401 missing_token"
    )
    assert len(lines) == 4


# ---------- up on a public address ----------


def test_up_on_a_public_address_without_a_token_refuses_to_start(capsys: Any) -> None:
    assert cli.main(["up", "--http", "0.0.0.0:0", "--model", "random:vits16"]) == 2
    err = capsys.readouterr().err
    assert "refusing to serve the dashboard and API on 0.0.0.0 without an access token" in err and "--insecure" in err
    check_exposure(HttpSettings(host="0.0.0.0"), insecure=True)
    check_exposure(HttpSettings(host="::1"), insecure=False)
    check_exposure(token_settings(host="0.0.0.0"), insecure=False)
    check_exposure(HttpSettings(host="10.0.0.5", api_token=ADMIN_TOKEN), insecure=False)


# ---------- over a real server: the websocket, a raw handshake, TLS ----------


def ws_url(base: str) -> str:
    return re.sub(r"^http", "ws", base) + "/ws/events"


@pytest.mark.integration
async def test_websocket_needs_a_token_too(tmp_path: Path) -> None:
    async with Gateway(tmp_path, token_settings(ws_first_message_timeout_s=0.5)) as gw, serve(gw.app) as base:
        url = ws_url(base)
        async with connect(url) as ws:
            await ws.send("{}")
            with pytest.raises(ConnectionClosed) as closed:
                await asyncio.wait_for(ws.recv(), 5)
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 4401
        with pytest.raises(InvalidStatus) as refused:  # a wrong header is never ignored
            await connect(url, additional_headers={"Authorization": "Bearer nope"})
        assert refused.value.response.status_code == 403
        async with connect(url, additional_headers=bearer("viewer")) as ws:  # a header instead of a message
            await ws.send("{}")
            assert json.loads(await asyncio.wait_for(ws.recv(), 5))["kind"] == "hello"
        async with connect(url) as ws:
            await ws.send(json.dumps({"token": TOKENS["viewer"]}))
            assert json.loads(await asyncio.wait_for(ws.recv(), 5))["kind"] == "hello"


async def raw_status(base: str, request: str) -> int:
    """Send a raw HTTP/1.1 request to the server at `base`; the status code of its answer."""
    host, port = base.split("//")[1].split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(request.encode())
        await writer.drain()
        status_line = await asyncio.wait_for(reader.readline(), 5)
    finally:
        writer.close()
    return int(status_line.split()[1])


@pytest.mark.integration
async def test_dns_rebinding_cannot_reach_the_websocket(tmp_path: Path) -> None:
    handshake = (
        "GET /ws/events HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nOrigin: http://{host}\r\n\r\n"
    )
    async with Gateway(tmp_path, HttpSettings()) as gw, serve(gw.app) as base:
        port = base.rsplit(":", 1)[1]
        # The attacker's page at http://rebind.evil.example:<port>, its name now resolving to 127.0.0.1.
        assert await raw_status(base, handshake.format(host=f"rebind.evil.example:{port}")) == 403
        assert await raw_status(base, handshake.format(host=f"127.0.0.1:{port}")) == 101


@pytest.mark.integration
async def test_tls_by_certificate_and_key_settings(tmp_path: Path) -> None:
    certfile, keyfile = self_signed_certificate(tmp_path)
    settings = token_settings(ssl_certfile=certfile, ssl_keyfile=keyfile)
    context = ssl.create_default_context(cafile=str(certfile))
    async with Gateway(tmp_path, settings) as gw, serve(gw.app, **tls_options(settings)) as base:
        assert base.startswith("https://")
        async with httpx.AsyncClient(base_url=base, verify=context) as http:
            assert (await http.get("/api/v1/streams", headers=bearer("viewer"))).status_code == 200
            error_of(await http.get("/api/v1/streams"), 401, "missing_token")
        async with connect(ws_url(base), ssl=context, additional_headers=bearer("viewer")) as ws:
            await ws.send("{}")
            assert json.loads(await asyncio.wait_for(ws.recv(), 5))["kind"] == "hello"
        async with httpx.AsyncClient(base_url=base.replace("https://", "http://")) as plain:
            with pytest.raises(httpx.HTTPError):
                await plain.get("/api/v1/health")  # no plain HTTP on the TLS port
