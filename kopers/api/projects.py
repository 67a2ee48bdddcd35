"""Kopers' own project settings under /api: storage, retention, expiry and timeout.

Copr's API has no place for these: how many builds of each package to keep,
a storage quota, and when a temporary project goes away. The storage a
project takes is reported here too.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aiohttp import web

from kopers.api.auth import require_user
from kopers.api.keys import KOPERS
from kopers.api.params import json_body
from kopers.models import Project

if TYPE_CHECKING:
    from kopers.service import Kopers

routes = web.RouteTableDef()


async def settings_json(kopers: Kopers, project: Project) -> dict[str, Any]:
    return {
        "full_name": project.full_name,
        "keep_builds": project.keep_builds,
        "quota_mib": project.quota_mib,
        "delete_after": project.delete_after.isoformat() if project.delete_after else None,
        "build_timeout": project.build_timeout,
        "storage_bytes": (await kopers.submissions.usage(project)).total,
    }


@routes.get("/api/projects/{owner}/{project}")
async def get_settings(request: web.Request) -> web.Response:
    kopers = request.app[KOPERS]
    project = await kopers.store.get_project(
        request.match_info["owner"], request.match_info["project"]
    )
    return web.json_response(await settings_json(kopers, project))


@routes.patch("/api/projects/{owner}/{project}")
async def update_settings(request: web.Request) -> web.Response:
    """`{"keep_builds": N, "quota_mib": M, "delete_after_days": D, "build_timeout": S}`.

    A key that is left out keeps its value; null clears it.
    """
    kopers = request.app[KOPERS]
    user = await require_user(request)
    project = await kopers.store.get_project(
        request.match_info["owner"], request.match_info["project"]
    )
    data = await json_body(request)
    project = await kopers.projects.update_settings(user, project, data)
    await kopers.audit(user, request.remote, "project.storage", project.full_name, dict(data))
    return web.json_response(await settings_json(kopers, project))


def add_routes(app: web.Application) -> None:
    app.add_routes(routes)
