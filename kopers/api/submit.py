"""Kopers' own build submission under /api: whole chains, and resubmits.

Copr's API submits one build per call and chains them with batch options;
here a whole chain (an ordered list, or explicit dependencies between its
steps) goes in with one request, and an ended build can be submitted again.
"""

from __future__ import annotations

from aiohttp import web

from kopers.api import copr_json as cj
from kopers.api.app import KOPERS
from kopers.api.auth import require_user
from kopers.errors import BadRequest

routes = web.RouteTableDef()


@routes.post("/api/projects/{owner}/{project}/chains")
async def submit_chain(request: web.Request) -> web.Response:
    kopers = request.app[KOPERS]
    user = await require_user(request)
    data = await request.json()
    if not isinstance(data, dict):
        raise BadRequest("the request body must be a JSON object")
    builds = await kopers.submissions.chain(
        user, request.match_info["owner"], request.match_info["project"], data
    )
    for build in builds:
        await kopers.submitted(user, request, build)
    return web.json_response({"builds": [cj.build_json(b, kopers.layout) for b in builds]})


@routes.post(r"/api/builds/{build_id:\d+}/resubmit")
async def resubmit(request: web.Request) -> web.Response:
    kopers = request.app[KOPERS]
    user = await require_user(request)
    build = await kopers.submissions.resubmit(user, int(request.match_info["build_id"]))
    await kopers.submitted(user, request, build)
    return web.json_response(cj.build_json(build, kopers.layout))


def add_routes(app: web.Application) -> None:
    app.add_routes(routes)
