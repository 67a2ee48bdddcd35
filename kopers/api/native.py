"""Kopers' own API under /api: what Copr's contract has no place for."""

from __future__ import annotations

from aiohttp import web

import kopers
from kopers.api.keys import KOPERS
from kopers.api.params import path_id

routes = web.RouteTableDef()


@routes.get("/api/status")
async def status(request: web.Request) -> web.Response:
    k = request.app[KOPERS]
    return web.json_response(
        {
            "version": kopers.__version__,
            "public_url": k.config.server.public_url,
            "chroots": [c.name for c in k.config.enabled_chroots],
            "vm": k.vms.status(),
            "scheduler": {
                "queued": len(k.scheduler.graph.nodes),
                "running": sorted(str(key) for key in k.scheduler.running),
            },
        }
    )


@routes.get(r"/api/builds/{build_id:\d+}/buildroot")
async def buildroot(request: web.Request) -> web.Response:
    """The packages installed in each chroot's buildroot: what the build was built against."""
    k = request.app[KOPERS]
    build_id = path_id(request, "build_id")
    await k.store.get_build(build_id)
    return web.json_response(
        {"build_id": build_id, "chroots": await k.store.buildroot_packages(build_id)}
    )


def add_routes(app: web.Application) -> None:
    app.add_routes(routes)
