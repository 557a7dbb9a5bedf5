"""Every HTTP request FFmpeg makes for an untrusted source goes through the URL policy.

Checking a URL before FFmpeg opens it leaves holes: FFmpeg fetches an HLS playlist again (the copy
it reads can differ from the one checked), reloads a live playlist every few seconds, follows a
segment's redirects (its `max_redirects` does not reach the HLS demuxer's nested opens) and
resolves host names again (DNS rebinding). So FFmpeg reaches untrusted http(s) sources only
through `EgressGuard`, a forward proxy on loopback (FFmpeg's `http_proxy` option, which the HLS
demuxer passes to every playlist, segment and key it opens): each request's host is checked as an
untrusted source's and the connection goes to the address that was checked. A redirect goes back
to FFmpeg, whose next request comes through here again. A refused request is answered 403 with the
reason, logged, and kept in `refused`.

    guard = egress_guard(settings)          # one per URL policy, started on first use
    options["http_proxy"] = guard.url
"""

from __future__ import annotations

import collections
import http.client
import logging
import select
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

from dinostream.core.settings import IngestSettings
from dinostream.ingest.url_policy import UrlRefused, checked_addresses, redact

log = logging.getLogger(__name__)

_CHUNK = 64 * 1024
# Request headers not passed on: hop-by-hop ones and the proxy's own.
_HOP = {
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
}
_PORTS = {"http": 80, "https": 443}


class EgressGuard:
    """The proxy: a threaded HTTP server on 127.0.0.1 (a thread per connection, daemon)."""

    def __init__(self, settings: IngestSettings) -> None:
        self.settings = settings
        self.refused: collections.deque[str] = collections.deque(maxlen=100)
        self.forwarded = 0
        guard = self

        class Handler(_Handler):
            pass

        Handler.guard = guard
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, name="egress-guard", daemon=True)
        self._thread.start()

    def check(self, host: str, port: int, shown: str) -> tuple[str, int]:
        """The address to connect to for `host`, checked as an untrusted source's; UrlRefused."""
        addresses = checked_addresses(host, shown, self.settings, trusted=False)
        return str(addresses[0]), port

    def refuse(self, why: str) -> None:
        self.refused.append(why)
        log.warning("egress guard: %s", why)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


class _Handler(BaseHTTPRequestHandler):
    guard: EgressGuard
    protocol_version = "HTTP/1.0"  # one request per connection: nothing to keep in step

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the http.server API
        return None

    def do_GET(self) -> None:  # noqa: N802 - the http.server API
        self._forward()

    def do_HEAD(self) -> None:  # noqa: N802
        self._forward()

    def do_CONNECT(self) -> None:  # noqa: N802 - https through the proxy (FFmpeg's httpproxy protocol)
        host, _, port_text = self.path.rpartition(":")
        host = host.strip("[]")
        try:
            port = int(port_text)
            address = self.guard.check(host, port, f"https://{self.path}")
        except (ValueError, UrlRefused) as e:
            self._refused(str(e))
            return
        try:
            upstream = socket.create_connection(address, timeout=self.guard.settings.open_timeout_s)
        except OSError as e:
            self.send_error(502, f"cannot connect to {host}:{port}: {e}")
            return
        self.guard.forwarded += 1
        self.send_response(200, "Connection established")
        self.end_headers()
        _tunnel(self.connection, upstream, self.guard.settings.read_timeout_s)

    def _forward(self) -> None:
        parts = urlsplit(self.path)
        scheme = parts.scheme.lower()
        if scheme != "http" or not parts.hostname:
            self._refused(f"refused request {redact(self.path)!r}: only absolute http:// URLs go through the proxy")
            return
        try:
            port = parts.port or _PORTS[scheme]
            address = self.guard.check(parts.hostname, port, redact(self.path))
        except (ValueError, UrlRefused) as e:
            self._refused(str(e))
            return
        target = parts.path or "/"
        if parts.query:
            target += "?" + parts.query
        headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP}
        headers["Connection"] = "close"
        timeout = self.guard.settings.read_timeout_s
        upstream = http.client.HTTPConnection(address[0], address[1], timeout=timeout)
        try:
            upstream.request(self.command, target, headers=headers)  # Host: the name FFmpeg asked for
            response = upstream.getresponse()
        except OSError as e:
            upstream.close()
            self.send_error(502, f"cannot reach {parts.hostname}: {e}")
            return
        self.guard.forwarded += 1
        try:
            self.send_response(response.status, response.reason)
            for k, v in response.getheaders():
                if k.lower() not in _HOP:
                    self.send_header(k, v)
            self.send_header("Connection", "close")
            self.end_headers()
            if self.command != "HEAD":
                while chunk := response.read(_CHUNK):  # streamed: a live MJPEG or a long file never ends
                    self.wfile.write(chunk)
        except OSError:  # FFmpeg closed its end (it had read what it wanted)
            pass
        finally:
            upstream.close()

    def _refused(self, why: str) -> None:
        self.guard.refuse(why)
        body = why.encode()
        self.send_response(403, "Refused by the URL policy")
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def _tunnel(client: socket.socket, upstream: socket.socket, idle_s: float) -> None:
    """Copy bytes both ways until one side closes or nothing moves for `idle_s`."""
    sockets = [client, upstream]
    try:
        while True:
            ready, _, _ = select.select(sockets, [], [], idle_s)
            if not ready:
                return
            for s in ready:
                data = s.recv(_CHUNK)
                if not data:
                    return
                (upstream if s is client else client).sendall(data)
    except OSError:
        return
    finally:
        upstream.close()


_GUARDS: dict[tuple[Any, ...], EgressGuard] = {}
_LOCK = threading.Lock()


def egress_guard(settings: IngestSettings) -> EgressGuard:
    """The running guard for this URL policy (the settings the host checks read), started on first use."""
    key = (settings.allow_loopback, settings.allow_private_networks, settings.open_timeout_s, settings.read_timeout_s)
    with _LOCK:
        guard = _GUARDS.get(key)
        if guard is None:
            guard = _GUARDS[key] = EgressGuard(settings)
        return guard
