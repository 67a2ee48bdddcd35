"""Copr API v3 under /api_3: what the unmodified copr-cli and python-copr call.

The contract (paths, query parameters sent alongside path placeholders,
anonymous reads, multipart layout) is ../shared/docs/copr-api-v3.md.
Handlers only parse the request, call one operation and serialize the answer.
"""

from __future__ import annotations

import shutil

from aiohttp import web

from kopers import access
from kopers.api import bodies, fields
from kopers.api import copr_json as cj
from kopers.api.auth import require_user
from kopers.api.keys import KOPERS
from kopers.api.params import (
    json_body,
    max_text,
    need_id,
    need_name,
    paging,
    path_id,
    path_name,
    query_bool,
    query_name,
    query_text,
    require_multipart,
)
from kopers.api.upload import read_upload
from kopers.errors import BadRequest

routes = web.RouteTableDef()
# One request deletes at most this many builds: each is a transaction's worth of work.
MAX_DELETE = 1000


# general --------------------------------------------------------------------


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


# projects -------------------------------------------------------------------


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


@routes.put("/api_3/project/regenerate-repos/{ownername}/{projectname}")
async def regenerate_repos(request: web.Request) -> web.Response:
    """The recovery path: rebuild every chroot's repodata from the files on disk."""
    kopers = request.app[KOPERS]
    user = await require_user(request)
    project = await kopers.store.get_project(
        path_name(request, "ownername"), path_name(request, "projectname")
    )
    await access.authorize(
        kopers.store, user, access.Action.EDIT_PROJECT, access.Target.of(project)
    )
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

    async def cancel_unfinished() -> None:
        # Only once deleting is allowed: a refused delete must change nothing.
        for build in await kopers.store.list_builds(project.id, None, None, 0):
            if not build.state.finished:
                await kopers.builds.cancel(user, build.id)

    async with kopers.atomic():
        await kopers.projects.delete(user, project, before=cancel_unfinished)
        await kopers.audit(user, request.remote, "project.delete", project.full_name, {})
    return web.json_response(cj.project_json(project, kopers.layout))


# builds ---------------------------------------------------------------------


@routes.post("/api_3/build/check-before-build")
async def check_before_build(request: web.Request) -> web.Response:
    kopers = request.app[KOPERS]
    user = await require_user(request)
    body = bodies.build_body(await json_body(request))
    project = await kopers.submissions.check(user, body.owner, body.project, body.request)
    return web.json_response({"message": f"OK to build in {project.full_name}"})


@routes.post("/api_3/build/create/upload")
async def create_from_upload(request: web.Request) -> web.Response:
    kopers = request.app[KOPERS]
    # Authenticate from the header before reading a possibly large body.
    user = await require_user(request)
    require_multipart(request)
    upload = await read_upload(request, kopers.paths.incoming, kopers.config)
    spooled, data = upload.package, upload.options
    spool_dir = spooled.parent
    try:
        body = bodies.build_body(data, "the json part")
    except BadRequest:
        shutil.rmtree(spool_dir, ignore_errors=True)
        raise
    build = await kopers.submit(
        user,
        request.remote,
        lambda: kopers.submissions.from_upload(
            user, body.owner, body.project, body.request, spooled
        ),
    )
    return web.json_response(cj.build_json(build, kopers.layout))


@routes.post("/api_3/build/create/url")
async def create_from_url(request: web.Request) -> web.Response:
    kopers = request.app[KOPERS]
    user = await require_user(request)
    data = await json_body(request)
    body = bodies.build_body(data)
    urls = bodies.package_urls(data)
    builds = await kopers.submit(
        user,
        request.remote,
        lambda: kopers.submissions.from_urls(user, body.owner, body.project, body.request, urls),
    )
    return web.json_response(
        {"items": [cj.build_json(b, kopers.layout) for b in builds], "meta": {}}
    )


@routes.post("/api_3/build/create/scm")
async def create_from_scm(request: web.Request) -> web.Response:
    kopers = request.app[KOPERS]
    user = await require_user(request)
    data = await json_body(request)
    body = bodies.build_body(data)
    scm = bodies.scm_source(data)
    build = await kopers.submit(
        user,
        request.remote,
        lambda: kopers.submissions.from_scm(user, body.owner, body.project, body.request, scm),
    )
    return web.json_response(cj.build_json(build, kopers.layout))


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
    async with kopers.atomic():
        deleted = await kopers.builds.delete(user, ids)
        for build_id in deleted:
            b = builds[build_id]
            await kopers.audit(
                user, request.remote, "build.delete", f"{b.owner}/{b.project}", {"build": b.id}
            )
    return web.json_response({"builds": deleted})


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


@routes.get("/api_3/build-chroot")
async def get_build_chroot(request: web.Request) -> web.Response:
    kopers = request.app[KOPERS]
    build = await kopers.store.get_build(need_id(request, "build_id"))
    chroot = need_name(request, "chrootname")
    task = next((t for t in build.tasks if t.chroot == chroot), None)
    if task is None:
        raise BadRequest(f"build {build.id} has no chroot {chroot}")
    return web.json_response(cj.build_chroot_json(build, task, kopers.layout))


# packages -------------------------------------------------------------------


@routes.get("/api_3/package/list")
async def list_packages(request: web.Request) -> web.Response:
    kopers = request.app[KOPERS]
    project = await kopers.store.get_project(
        need_name(request, "ownername"), need_name(request, "projectname")
    )
    limit, offset = paging(request)
    # Every package carries its latest builds anyway; the flags are only checked.
    query_bool(request, "with_latest_build")
    query_bool(request, "with_latest_succeeded_build")
    builds = await kopers.store.list_builds(project.id, None, None, 0)
    names = sorted({b.package_name for b in builds if b.package_name})
    items = []
    for i, name in enumerate(names[offset : None if limit is None else offset + limit], offset):
        mine = [b for b in builds if b.package_name == name]  # newest first
        ok = [b for b in mine if b.state == "succeeded"]
        items.append(
            {
                "id": i + 1,
                "name": name,
                "ownername": project.owner,
                "projectname": project.name,
                "source_type": str(mine[0].source_type),
                "source_dict": dict(mine[0].source),
                "auto_rebuild": False,
                "builds": {
                    "latest": cj.build_json(mine[0], kopers.layout),
                    "latest_succeeded": cj.build_json(ok[0], kopers.layout) if ok else None,
                },
            }
        )
    return web.json_response(cj.page(items, limit, offset, order="name", order_type="ASC"))


def add_routes(app: web.Application) -> None:
    app.add_routes(routes)
