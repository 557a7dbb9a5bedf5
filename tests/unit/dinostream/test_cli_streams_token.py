"""`dinostream streams` sends the access token (--token, or DINOSTREAM_TOKEN) as Authorization: Bearer."""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Iterator

import pytest

from dinostream import cli


class _Api(http.server.BaseHTTPRequestHandler):
    seen: list[str | None] = []

    def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
        auth = self.headers.get("Authorization")
        self.seen.append(auth)
        ok = auth == "Bearer s3cret"
        body = json.dumps({"streams": {}} if ok else {"error": {"code": "unauthorized", "message": "token"}})
        self.send_response(200 if ok else 401)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(body.encode())

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def api() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Api)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()


def test_streams_sends_the_token_from_the_flag_or_the_environment(
    api: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("DINOSTREAM_TOKEN", raising=False)
    assert cli.main(["streams", "list", "--api", api]) != 0
    err = capsys.readouterr().err
    assert "401" in err and "pass --token or set DINOSTREAM_TOKEN" in err
    assert cli.main(["streams", "list", "--api", api, "--token", "s3cret"]) == 0
    assert json.loads(capsys.readouterr().out) == {"streams": {}}
    monkeypatch.setenv("DINOSTREAM_TOKEN", "s3cret")
    assert cli.main(["streams", "list", "--api", api]) == 0
    assert _Api.seen[-3:] == [None, "Bearer s3cret", "Bearer s3cret"]
