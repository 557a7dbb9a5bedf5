"""Real servers for tests: an ASGI app under uvicorn on a free loopback port."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import uvicorn


@contextlib.asynccontextmanager
async def serve(app: Any, ws: str = "auto", **options: Any) -> AsyncIterator[str]:
    """Run `app` with uvicorn (websocket implementation `ws`, more uvicorn.Config `options` such as
    ssl_certfile/ssl_keyfile) on port 0; yield its base URL (https:// with a certificate)."""
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=0,
        ws=ws,
        log_level="warning",
        lifespan="off",
        timeout_graceful_shutdown=3,
        **options,
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    async with asyncio.timeout(10):
        while not server.started:
            if task.done():
                task.result()
                raise RuntimeError("uvicorn exited before it started")
            await asyncio.sleep(0.005)
    host, port = server.servers[0].sockets[0].getsockname()[:2]
    try:
        yield f"{'https' if options.get('ssl_certfile') else 'http'}://{host}:{port}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 10)
