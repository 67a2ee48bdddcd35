"""Copr API v3 projects under /api_3/project: get, list, search, add, edit, delete, regenerate.

Also the project's webhook secret (python-copr's `webhook.generate`, copr-cli
`new-webhook-secret`), under /api_3/webhook.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

from kopers.api import bodies
from kopers.api import copr_json as cj
from kopers.api.auth import editable_project, require_user
from kopers.api.keys import KOPERS
from kopers.api.params import (
    json_body,
    max_text,
    need_name,
    paging,
    path_name,
    query_bool,
    query_name,
    query_text,
)

if TYPE_CHECKING:
    from kopers.models import Project, User
    from kopers.service import Kopers

routes = web.RouteTableDef()


@routes.get("/api_3/project")
async def get_project(request: web.Request) -> web.Response:
    kopers = request.app[KOPERS]
    project = await kopers.store.get_project(
        need_name(request, "ownername"), need_name(request, "projectname")
    )
    return web.json_response(cj.project_json(project, kopers.layout))


@routes.get("/api_3/project/list")
async def list_projects(request: web.Request) -> web.Response:
    kopers = request.app[KOPERS]
    limit, offset = paging(request)
    owner = query_name(request, "ownername")
    projects = await kopers.store.list_projects(owner, None, limit, offset)
    items = [cj.project_json(p, kopers.layout) for p in projects]
    return web.json_response(cj.page(items, limit, offset, order_type="ASC"))


@routes.get("/api_3/project/search")
async def search_projects(request: web.Request) -> web.Response:
    kopers = request.app[KOPERS]
    limit, offset = paging(request)
    query = query_text(request, "query", max_text(request)) or ""
    projects = await kopers.store.list_projects(None, query, limit, offset)
    items = [cj.project_json(p, kopers.layout) for p in projects]
    return web.json_response(cj.page(items, limit, offset, order_type="ASC"))


@routes.post("/api_3/project/add/{ownername}")
async def add_project(request: web.Request) -> web.Response:
    kopers = request.app[KOPERS]
    user = await require_user(request)
    owner = path_name(request, "ownername")
    data = bodies.new_project(await json_body(request), max_text(request))
    if query_bool(request, "exist_ok"):
        existing = await kopers.store.list_projects(owner, None)
        match = [p for p in existing if p.name == data["name"]]
        if match:
            return web.json_response(cj.project_json(match[0], kopers.layout))
    async with kopers.atomic():
        project = await kopers.projects.create(user, owner, data)
        await kopers.audit(
            user, request.remote, "project.create", project.full_name, {"chroots": project.chroots}
        )
    return web.json_response(cj.project_json(project, kopers.layout))


@routes.put("/api_3/project/edit/{ownername}/{projectname}")
async def edit_project(request: web.Request) -> web.Response:
    """copr-cli modify: null leaves a field as it is; a chroot list replaces the set."""
    kopers = request.app[KOPERS]
    user = await require_user(request)
    project = await kopers.store.get_project(
        path_name(request, "ownername"), path_name(request, "projectname")
    )
    given = bodies.project_edit(await json_body(request), max_text(request))
    async with kopers.atomic():
        project = await kopers.projects.edit(user, project, given)
        await kopers.audit(user, request.remote, "project.edit", project.full_name, given.details())
    return web.json_response(cj.project_json(project, kopers.layout))


@routes.post("/api_3/webhook/generate/{ownername}/{projectname}")
async def new_webhook_secret(request: web.Request) -> web.Response:
    """A new webhook secret for the project; the old one stops working."""
    kopers = request.app[KOPERS]
    user = await require_user(request)
    project = await kopers.store.get_project(
        path_name(request, "ownername"), path_name(request, "projectname")
    )
    async with kopers.atomic():
        secret = await kopers.projects.new_webhook_secret(user, project)
        # The event says that it changed, never what to.
        await kopers.audit(user, request.remote, "project.webhook-secret", project.full_name, {})
    return web.json_response(
        {
            "id": project.id,
            "name": project.name,
            "ownername": project.owner,
            "full_name": project.full_name,
            "webhook_secret": secret,
        }
    )


@routes.put("/api_3/project/regenerate-repos/{ownername}/{projectname}")
async def regenerate_repos(request: web.Request) -> web.Response:
    """The recovery path: rebuild every chroot's repodata from the files on disk."""
    kopers = request.app[KOPERS]
    user, project = await editable_project(request, "ownername", "projectname")
    for chroot in project.chroots:
        await kopers.publisher.regenerate(project.owner, project.name, chroot)
    await kopers.audit(user, request.remote, "project.regenerate-repos", project.full_name, {})
    return web.json_response(cj.project_json(project, kopers.layout))


@routes.delete("/api_3/project/delete/{ownername}/{projectname}")
async def delete_project(request: web.Request) -> web.Response:
    kopers = request.app[KOPERS]
    user = await require_user(request)
    project = await kopers.store.get_project(
        path_name(request, "ownername"), path_name(request, "projectname")
    )
    await remove_project(kopers, user, project, request.remote)
    return web.json_response(cj.project_json(project, kopers.layout))


async def remove_project(kopers: Kopers, user: User, project: Project, remote: str | None) -> None:
    """Delete a project, its unfinished builds canceled first; audited. (API and form alike.)"""

    async def cancel_unfinished() -> None:
        # Only once deleting is allowed: a refused delete must change nothing.
        for build in await kopers.store.list_builds(project.id, None, None, 0):
            if not build.state.finished:
                await kopers.builds.cancel(user, build.id)

    async with kopers.atomic():
        await kopers.projects.delete(user, project, before=cancel_unfinished)
        await kopers.audit(user, remote, "project.delete", project.full_name, {})


def add_routes(app: web.Application) -> None:
    app.add_routes(routes)
