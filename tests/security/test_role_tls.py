"""A role process (worker, index, ingest) serves its health and metrics over TLS when the
certificate settings are given, and behind the same guard as the gateway."""

from __future__ import annotations

import ssl
from pathlib import Path

import httpx
import pytest

from dinostream.core.settings import Settings
from dinostream.gateway_node import HttpNode
from dinostream.node import Runtime
from tests.security.gateway import bearer, self_signed_certificate, token_settings

pytestmark = pytest.mark.integration


async def test_a_role_serves_health_over_tls_with_its_tokens(tmp_path: Path) -> None:
    certfile, keyfile = self_signed_certificate(tmp_path)
    http = token_settings(ssl_certfile=certfile, ssl_keyfile=keyfile, host="127.0.0.1", port=0)
    runtime = Runtime(Settings(http=http, data_dir=tmp_path), ["worker"])
    node = HttpNode(runtime, gateway=None, health=lambda: {"worker": {"ok": True}}, metrics=lambda: [])
    await node.start()
    try:
        assert node.url is not None and node.url.startswith("https://")
        context = ssl.create_default_context(cafile=str(certfile))
        async with httpx.AsyncClient(base_url=node.url, verify=context) as client:
            assert (await client.get("/api/v1/health", headers=bearer("viewer"))).status_code == 200
            assert (await client.get("/api/v1/health", headers={"Authorization": "Bearer wrong"})).status_code == 401
            assert (await client.get("/api/v1/health", headers={"Host": "rebind.evil.example"})).status_code == 421
    finally:
        await node.stop()
