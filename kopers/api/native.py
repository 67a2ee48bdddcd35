"""Kopers' own API under /api: what Copr's contract has no place for."""

from __future__ import annotations

from typing import Any

from aiohttp import web

import kopers
from kopers.api.auth import current_user
from kopers.api.keys import KOPERS
from kopers.api.params import path_id

routes = web.RouteTableDef()


@routes.get("/api/status")
async def status(request: web.Request) -> web.Response:
    """The server's state; how its hosts are reached only for its admins."""
    k = request.app[KOPERS]
    user = await current_user(request)
    vm = k.vms.status()
    if user is None or not user.is_admin:
        vm = public_vm_status(vm)
    return web.json_response(
        {
            "version": kopers.__version__,
            "public_url": k.config.server.public_url,
            "chroots": [c.name for c in k.config.enabled_chroots],
            "vm": vm,
            "scheduler": {
                "queued": len(k.scheduler.graph.nodes),
                "running": sorted(str(key) for key in k.scheduler.running),
            },
        }
    )


# What only admins see: libvirt URIs, SSH tunnels, host errors, image paths.
_HOST_PRIVATE = ("uri", "tunnel", "error")


def public_vm_status(vm: dict[str, Any]) -> dict[str, Any]:
    """The VM status without how the hosts are reached or where images live. Pure."""
    hosts = [{k: v for k, v in h.items() if k not in _HOST_PRIVATE} for h in vm["hosts"]]
    templates = {
        name: {k: v for k, v in t.items() if k != "image"} for name, t in vm["templates"].items()
    }
    return {**vm, "hosts": hosts, "templates": templates}


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
