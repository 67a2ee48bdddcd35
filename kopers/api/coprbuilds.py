"""Copr API v3 builds under /api_3/build and /api_3/build-chroot: reads, cancel, delete.

A build's chroot that does not exist is a 404, as upstream answers it:
python-copr then raises CoprNoResultException. The source step's calls
(source-chroot, source-build-config) are in kopers.api.buildsource.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

from kopers.api import buildconfig, fields
from kopers.api import copr_json as cj
from kopers.api.auth import require_user
from kopers.api.keys import KOPERS
from kopers.api.params import (
    json_body,
    need_id,
    need_name,
    paging,
    path_id,
    query_name,
)
from kopers.errors import BadRequest, NotFound
from kopers.models import Build, BuildTask, User

if TYPE_CHECKING:
    from kopers.service import Kopers

routes = web.RouteTableDef()


# One request deletes at most this many builds: each is a transaction's worth of work.
MAX_DELETE = 1000


@routes.get(r"/api_3/build/{build_id:\d+}")
async def get_build(request: web.Request) -> web.Response:
    kopers = request.app[KOPERS]
    build = await kopers.store.get_build(path_id(request, "build_id"))
    return web.json_response(cj.build_json(build, kopers.layout))


@routes.get("/api_3/build/list")
async def list_builds(request: web.Request) -> web.Response:
    kopers = request.app[KOPERS]
    project = await kopers.store.get_project(
        need_name(request, "ownername"), need_name(request, "projectname")
    )
    limit, offset = paging(request)
    builds = await kopers.store.list_builds(
        project.id, query_name(request, "packagename"), limit, offset
    )
    status = query_name(request, "status")
    items = [cj.build_json(b, kopers.layout) for b in builds if not status or b.state == status]
    return web.json_response(cj.page(items, limit, offset))


@routes.put(r"/api_3/build/cancel/{build_id:\d+}")
async def cancel_build(request: web.Request) -> web.Response:
    kopers = request.app[KOPERS]
    user = await require_user(request)
    async with kopers.atomic():
        build = await kopers.builds.cancel(user, path_id(request, "build_id"))
        await kopers.audit(
            user,
            request.remote,
            "build.cancel",
            f"{build.owner}/{build.project}",
            {"build": build.id},
        )
    return web.json_response(cj.build_json(build, kopers.layout))


@routes.delete("/api_3/build/delete/list")
async def delete_builds(request: web.Request) -> web.Response:
    kopers = request.app[KOPERS]
    user = await require_user(request)
    ids = fields.id_list((await json_body(request)).get("builds"), "builds")
    if len(ids) > MAX_DELETE:
        raise BadRequest(f"builds lists more than {MAX_DELETE} ids; delete them in parts")
    ids = list(dict.fromkeys(ids))  # each build once, in the order given
    builds = {i: await kopers.store.get_build(i) for i in ids}
    deleted = await _delete(request, kopers, user, builds)
    return web.json_response({"builds": deleted})


@routes.delete(r"/api_3/build/delete/{build_id:\d+}")
async def delete_build(request: web.Request) -> web.Response:
    """python-copr's `build.delete`: one build, the list's rules; answers the build as it was."""
    kopers = request.app[KOPERS]
    user = await require_user(request)
    build = await kopers.store.get_build(path_id(request, "build_id"))
    if not await _delete(request, kopers, user, {build.id: build}):
        raise NotFound(f"Build {build.id} does not exist.")  # deleted meanwhile by another call
    return web.json_response(cj.build_json(build, kopers.layout))


async def _delete(
    request: web.Request, kopers: Kopers, user: User, builds: dict[int, Build]
) -> list[int]:
    """Delete `builds` (all or none), one audit event each, in one transaction."""
    async with kopers.atomic():
        deleted = await kopers.builds.delete(user, list(builds))
        for build_id in deleted:
            b = builds[build_id]
            await kopers.audit(
                user, request.remote, "build.delete", f"{b.owner}/{b.project}", {"build": b.id}
            )
    return deleted


@routes.get(r"/api_3/build/built-packages/{build_id:\d+}")
async def built_packages(request: web.Request) -> web.Response:
    kopers = request.app[KOPERS]
    build_id = path_id(request, "build_id")
    await kopers.store.get_build(build_id)  # 404 for an unknown build
    return web.json_response(cj.built_packages_json(await kopers.store.built_packages(build_id)))


@routes.get("/api_3/build-chroot/list")
async def list_build_chroots(request: web.Request) -> web.Response:
    kopers = request.app[KOPERS]
    build = await kopers.store.get_build(need_id(request, "build_id"))
    limit, offset = paging(request)
    tasks = list(build.tasks)[offset : None if limit is None else offset + limit]
    items = [cj.build_chroot_json(build, t, kopers.layout) for t in tasks]
    return web.json_response(cj.page(items, limit, offset, order="name", order_type="ASC"))


async def _build_task(request: web.Request) -> tuple[Build, BuildTask]:
    """The build and chroot named by `build_id` and `chrootname`; 404 for either unknown."""
    build_id = need_id(request, "build_id")
    chroot = need_name(request, "chrootname")
    build = await request.app[KOPERS].store.get_build(build_id)
    task = next((t for t in build.tasks if t.chroot == chroot), None)
    if task is None:
        raise NotFound(f"Build {build.id} has no chroot {chroot}")
    return build, task


@routes.get("/api_3/build-chroot")
async def get_build_chroot(request: web.Request) -> web.Response:
    build, task = await _build_task(request)
    return web.json_response(cj.build_chroot_json(build, task, request.app[KOPERS].layout))


@routes.get("/api_3/build-chroot/build-config")
async def build_chroot_config(request: web.Request) -> web.Response:
    """The repositories, options and forced macros of one build in one chroot."""
    kopers = request.app[KOPERS]
    build, task = await _build_task(request)
    project = await kopers.store.project_by_id(build.project_id)
    extra = await kopers.store.chroot_repos(project.id, task.chroot)
    config = kopers.config
    body = buildconfig.build_chroot_config(
        build,
        project,
        task.chroot,
        extra,
        config.chroot(task.chroot),
        config.build.repo_tag,
        config.server.public_url,
    )
    return web.json_response(body)


@routes.get("/api_3/build-chroot/built-packages")
async def build_chroot_packages(request: web.Request) -> web.Response:
    """What one build built in one chroot: `{"packages": [NEVRA, ...]}`."""
    kopers = request.app[KOPERS]
    build, task = await _build_task(request)
    built = await kopers.store.built_packages(build.id)
    shaped = cj.built_packages_json({task.chroot: built.get(task.chroot, [])})
    return web.json_response(shaped[task.chroot])


def add_routes(app: web.Application) -> None:
    app.add_routes(routes)
