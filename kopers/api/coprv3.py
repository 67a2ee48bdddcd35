"""Copr API v3 under /api_3: the general routes; the rest are in copr*.py.

The contract (paths, query parameters sent alongside path placeholders,
anonymous reads, multipart layout) is ../shared/docs/copr-api-v3.md.
Handlers only parse the request, call one operation and serialize the answer:
projects in coprprojects.py, build submission in coprsubmit.py, build reads
and removal in coprbuilds.py, packages in coprpackages.py.
"""

from __future__ import annotations

from aiohttp import web

from kopers.api.auth import require_user
from kopers.api.keys import KOPERS

routes = web.RouteTableDef()


@routes.get("/api_3")
@routes.get("/api_3/")
async def root(request: web.Request) -> web.Response:
    return web.json_response({"version": 3})


@routes.get("/api_3/auth-check")
async def auth_check(request: web.Request) -> web.Response:
    user = await require_user(request)
    return web.json_response({"id": user.id, "name": user.name})


@routes.get("/api_3/mock-chroots/list")
async def mock_chroots(request: web.Request) -> web.Response:
    kopers = request.app[KOPERS]
    return web.json_response({c.name: c.comment for c in kopers.config.enabled_chroots})


def add_routes(app: web.Application) -> None:
    app.add_routes(routes)
