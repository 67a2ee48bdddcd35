"""Kopers' own build submission under /api: whole chains, and resubmits.

Copr's API submits one build per call and chains them with batch options;
here a whole chain (an ordered list, or explicit dependencies between its
steps) goes in with one request, and an ended build can be submitted again.
"""

from __future__ import annotations

from datetime import datetime

from aiohttp import web

from kopers.api import bodies
from kopers.api import copr_json as cj
from kopers.api.auth import require_user
from kopers.api.keys import KOPERS
from kopers.api.params import json_body, path_id, path_name
from kopers.worker.steps import steps_json

routes = web.RouteTableDef()


@routes.post("/api/projects/{owner}/{project}/chains")
async def submit_chain(request: web.Request) -> web.Response:
    kopers = request.app[KOPERS]
    user = await require_user(request)
    owner, project = path_name(request, "owner"), path_name(request, "project")
    data = await json_body(request)
    options, steps = bodies.build_request(data), bodies.chain_steps(data)
    builds = await kopers.submit(
        user,
        request.remote,
        lambda: kopers.submissions.chain(user, owner, project, options, steps),
    )
    return web.json_response({"builds": [cj.build_json(b, kopers.layout) for b in builds]})


@routes.post(r"/api/builds/{build_id:\d+}/resubmit")
async def resubmit(request: web.Request) -> web.Response:
    kopers = request.app[KOPERS]
    user = await require_user(request)
    build_id = path_id(request, "build_id")
    build = await kopers.submit(
        user, request.remote, lambda: kopers.submissions.resubmit(user, build_id)
    )
    return web.json_response(cj.build_json(build, kopers.layout))


@routes.get(r"/api/builds/{build_id:\d+}")
async def build_detail(request: web.Request) -> web.Response:
    """A build with exact (ISO 8601, microsecond) task timestamps, reasons and step times."""
    kopers = request.app[KOPERS]
    build = await kopers.store.get_build(path_id(request, "build_id"))

    def iso(value: datetime | None) -> str | None:
        return value.isoformat() if value else None

    body = cj.build_json(build, kopers.layout) | {
        "tasks": [
            {
                "chroot": t.chroot,
                "state": str(t.state),
                "reason": t.reason,
                "attempts": t.attempts,
                "started_on": iso(t.started_on),
                "ended_on": iso(t.ended_on),
                "steps": steps_json(t.steps),
            }
            for t in build.tasks
        ],
    }
    # An automatic rebuild: its chain, and why it is in it (kopers.rebuilds).
    rebuild = await kopers.store.get_rebuild(build.id)
    body["rebuild"] = rebuild.as_json() if rebuild is not None else None
    return web.json_response(body)


def add_routes(app: web.Application) -> None:
    app.add_routes(routes)
