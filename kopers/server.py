"""Serving: a Kopers and the HTTP application in front of it, until cancelled.

The CLI composes the two (`open_kopers`, then `create_app`) and hands both
here, so neither the service nor the API has to know about the other's
construction.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from aiohttp import web

from kopers.service import Kopers

log = logging.getLogger(__name__)


async def serve(
    kopers: Kopers, app: web.Application, ready: Callable[[], None] | None = None
) -> None:
    """Run Kopers' loops and serve `app` until cancelled (SIGINT/SIGTERM in the CLI)."""
    config = kopers.config
    runner = web.AppRunner(app, access_log=None)
    try:
        await kopers.start()
        await runner.setup()
        site = web.TCPSite(runner, config.server.host, config.server.port)
        await site.start()
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
        await runner.cleanup()
        await kopers.close()
