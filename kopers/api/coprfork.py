"""Copr API v3 `project/fork`: copr-cli fork and python-copr's `project_proxy.fork`.

`POST /api_3/project/fork/<owner>/<project>` with `{name, ownername, confirm}`:
the path names the source, the body the destination. copr-cli first reads the
destination with `GET /api_3/project` and takes a 404 to mean it is new. The
answer is the destination project at once; its builds are `forked` until the
copier has published their results (kopers/fork.py).
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from kopers.api import copr_json as cj
from kopers.api import fields
from kopers.api.auth import require_user
from kopers.api.keys import KOPERS
from kopers.api.params import json_body, path_name
from kopers.fork import ForkRequest
from kopers.models import User

routes = web.RouteTableDef()


def fork_request(body: dict[str, Any], user: User) -> ForkRequest:
    """The fork body -> where to fork to; the owner defaults to the caller, as upstream."""
    owner = body.get("ownername")
    confirm = fields.optional(fields.boolean, body.get("confirm"), "confirm")
    return ForkRequest(
        owner=user.name if owner is None else fields.name(owner, "ownername"),
        name=fields.name(body.get("name"), "name"),
        confirm=bool(confirm),
    )


@routes.post("/api_3/project/fork/{ownername}/{projectname}")
async def fork_project(request: web.Request) -> web.Response:
    kopers = request.app[KOPERS]
    user = await require_user(request)
    source_owner = path_name(request, "ownername")
    source_name = path_name(request, "projectname")
    wanted = fork_request(await json_body(request), user)
    async with kopers.atomic():
        forked = await kopers.forks.fork(user, source_owner, source_name, wanted)
        await kopers.audit(
            user,
            request.remote,
            "project.fork",
            forked.project.full_name,
            {
                "source": forked.source.full_name,
                "created": forked.created,
                "builds": list(forked.builds),
            },
        )
    return web.json_response(cj.project_json(forked.project, kopers.layout))


def add_routes(app: web.Application) -> None:
    app.add_routes(routes)
