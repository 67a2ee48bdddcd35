"""Serving: a Kopers and the HTTP application in front of it, until cancelled.

The CLI composes the two (`open_kopers`, then `create_app`) and hands both
here, so neither the service nor the API has to know about the other's
construction. Connections reach aiohttp through the slow-client guard
(kopers.api.guard): a request head must arrive within `limits.head_timeout`,
and one client address holds at most `limits.connections_per_address`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable

from aiohttp import web

from kopers.api.guard import ConnectionGuard
from kopers.limits import LimitsConfig
from kopers.service import Kopers

log = logging.getLogger(__name__)


async def serve(
    kopers: Kopers, app: web.Application, ready: Callable[[], None] | None = None
) -> None:
    """Run Kopers' loops and serve `app` until cancelled (SIGINT/SIGTERM in the CLI)."""
    config = kopers.config
    try:
        await kopers.start()
        async with listening(app, config.server.host, config.server.port, config.limits):
            log.info(
                "Kopers is serving on http://%s:%d (public URL %s)",
                config.server.host,
                config.server.port,
                config.server.public_url,
            )
            if ready is not None:
                ready()
            await asyncio.Event().wait()
    finally:
        await kopers.close()


@contextlib.asynccontextmanager
async def listening(
    app: web.Application, host: str, port: int, limits: LimitsConfig
) -> AsyncIterator[asyncio.AbstractServer]:
    """Serve `app` on host:port, behind the connection guard, until the block ends."""
    # aiohttp's keep-alive timer closes a connection whose handler is still
    # waiting for a complete request: that is the head timeout, for a new
    # connection and between two requests alike.
    runner = web.AppRunner(app, access_log=None, keepalive_timeout=limits.head_timeout_s)
    try:
        await runner.setup()
        assert runner.server is not None
        guard = ConnectionGuard(limits.connections_per_address)
        loop = asyncio.get_running_loop()
        server = await loop.create_server(guard.wrap(runner.server), host, port)
        try:
            yield server
        finally:
            server.close()
    finally:
        await runner.cleanup()
