"""Copr API v3 under /api_3: what the unmodified copr-cli and python-copr call.

The contract (paths, query parameters sent alongside path placeholders,
anonymous reads, multipart layout) is ../shared/docs/copr-api-v3.md.
Handlers only parse the request, call one operation and serialize the answer.
"""

from __future__ import annotations

import re
import secrets
import shutil
from pathlib import Path
from typing import Any

from aiohttp import BodyPartReader, web

from kopers import access
from kopers.api import copr_json as cj
from kopers.api.auth import require_user
from kopers.api.keys import KOPERS
from kopers.api.params import json_body, need, paging, parse_json
from kopers.errors import BadRequest

routes = web.RouteTableDef()
_SAFE_FILENAME = re.compile(r"[^A-Za-z0-9._+-]")


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
        need(request, "ownername"), need(request, "projectname")
    )
    return web.json_response(cj.project_json(project, kopers.layout))


@routes.get("/api_3/project/list")
async def list_projects(request: web.Request) -> web.Response:
    kopers = request.app[KOPERS]
    limit, offset = paging(request)
    projects = await kopers.store.list_projects(request.query.get("ownername"), None, limit, offset)
    items = [cj.project_json(p, kopers.layout) for p in projects]
    return web.json_response(cj.page(items, limit, offset, order_type="ASC"))


@routes.get("/api_3/project/search")
async def search_projects(request: web.Request) -> web.Response:
    kopers = request.app[KOPERS]
    limit, offset = paging(request)
    query = request.query.get("query", "")
    projects = await kopers.store.list_projects(None, query, limit, offset)
    items = [cj.project_json(p, kopers.layout) for p in projects]
    return web.json_response(cj.page(items, limit, offset, order_type="ASC"))


@routes.post("/api_3/project/add/{ownername}")
async def add_project(request: web.Request) -> web.Response:
    kopers = request.app[KOPERS]
    user = await require_user(request)
    owner = request.match_info["ownername"]
    data = await json_body(request)
    if request.query.get("exist_ok") == "True":
        existing = await kopers.store.list_projects(owner, None)
        match = [p for p in existing if p.name == data.get("name")]
        if match:
            return web.json_response(cj.project_json(match[0], kopers.layout))
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
        request.match_info["ownername"], request.match_info["projectname"]
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
        request.match_info["ownername"], request.match_info["projectname"]
    )

    async def cancel_unfinished() -> None:
        # Only once deleting is allowed: a refused delete must change nothing.
        for build in await kopers.store.list_builds(project.id, None, None, 0):
            if not build.state.finished:
                await kopers.builds.cancel(user, build.id)

    await kopers.projects.delete(user, project, before=cancel_unfinished)
    await kopers.audit(user, request.remote, "project.delete", project.full_name, {})
    return web.json_response(cj.project_json(project, kopers.layout))


# builds ---------------------------------------------------------------------


@routes.post("/api_3/build/check-before-build")
async def check_before_build(request: web.Request) -> web.Response:
    kopers = request.app[KOPERS]
    user = await require_user(request)
    data = await json_body(request)
    project = await kopers.submissions.check(
        user, str(data.get("ownername", "")), str(data.get("projectname", "")), data
    )
    return web.json_response({"message": f"OK to build in {project.full_name}"})


@routes.post("/api_3/build/create/upload")
async def create_from_upload(request: web.Request) -> web.Response:
    kopers = request.app[KOPERS]
    # Authenticate from the header before reading a possibly large body.
    user = await require_user(request)
    spool_dir = kopers.paths.incoming / secrets.token_hex(8)
    spool_dir.mkdir(parents=True)
    spooled: Path | None = None
    data: dict[str, Any] | None = None
    try:
        reader = await request.multipart()
        async for part in reader:
            if not isinstance(part, BodyPartReader):
                continue
            if part.name == "pkgs":
                spooled = await _spool(part, spool_dir, kopers.config.server.max_upload_mib << 20)
            elif part.name == "json":
                loaded = parse_json(await part.read())
                if not isinstance(loaded, dict):
                    raise BadRequest("the json part must be a JSON object")
                data = loaded
        if spooled is None:
            raise BadRequest("no package file (multipart part 'pkgs') was uploaded")
        if data is None:
            raise BadRequest("no build options (multipart part 'json') were sent")
    except BaseException:
        shutil.rmtree(spool_dir, ignore_errors=True)
        raise
    build = await kopers.submissions.from_upload(
        user, str(data.get("ownername", "")), str(data.get("projectname", "")), data, spooled
    )
    await kopers.submitted(user, request.remote, build)
    return web.json_response(cj.build_json(build, kopers.layout))


async def _spool(part: BodyPartReader, spool_dir: Path, max_bytes: int) -> Path:
    name = _SAFE_FILENAME.sub("_", Path(part.filename or "upload.src.rpm").name) or "upload"
    path = spool_dir / name
    size = 0
    with path.open("wb") as fh:
        while chunk := await part.read_chunk(1 << 16):
            size += len(chunk)
            if size > max_bytes:
                raise BadRequest(f"the upload is larger than {max_bytes >> 20} MiB")
            fh.write(chunk)
    return path


@routes.post("/api_3/build/create/url")
async def create_from_url(request: web.Request) -> web.Response:
    kopers = request.app[KOPERS]
    user = await require_user(request)
    data = await json_body(request)
    urls = data.get("pkgs") or []
    if isinstance(urls, str):
        urls = urls.split()
    builds = await kopers.submissions.from_urls(
        user, str(data.get("ownername", "")), str(data.get("projectname", "")), data, urls
    )
    for build in builds:
        await kopers.submitted(user, request.remote, build)
    return web.json_response(
        {"items": [cj.build_json(b, kopers.layout) for b in builds], "meta": {}}
    )


@routes.post("/api_3/build/create/scm")
async def create_from_scm(request: web.Request) -> web.Response:
    kopers = request.app[KOPERS]
    user = await require_user(request)
    data = await json_body(request)
    build = await kopers.submissions.from_scm(
        user, str(data.get("ownername", "")), str(data.get("projectname", "")), data
    )
    await kopers.submitted(user, request.remote, build)
    return web.json_response(cj.build_json(build, kopers.layout))


@routes.get(r"/api_3/build/{build_id:\d+}")
async def get_build(request: web.Request) -> web.Response:
    kopers = request.app[KOPERS]
    build = await kopers.store.get_build(int(request.match_info["build_id"]))
    return web.json_response(cj.build_json(build, kopers.layout))


@routes.get("/api_3/build/list")
async def list_builds(request: web.Request) -> web.Response:
    kopers = request.app[KOPERS]
    project = await kopers.store.get_project(
        need(request, "ownername"), need(request, "projectname")
    )
    limit, offset = paging(request)
    builds = await kopers.store.list_builds(
        project.id, request.query.get("packagename"), limit, offset
    )
    status = request.query.get("status")
    items = [cj.build_json(b, kopers.layout) for b in builds if not status or b.state == status]
    return web.json_response(cj.page(items, limit, offset))


@routes.put(r"/api_3/build/cancel/{build_id:\d+}")
async def cancel_build(request: web.Request) -> web.Response:
    kopers = request.app[KOPERS]
    user = await require_user(request)
    build = await kopers.builds.cancel(user, int(request.match_info["build_id"]))
    await kopers.audit(
        user, request.remote, "build.cancel", f"{build.owner}/{build.project}", {"build": build.id}
    )
    return web.json_response(cj.build_json(build, kopers.layout))


@routes.delete("/api_3/build/delete/list")
async def delete_builds(request: web.Request) -> web.Response:
    kopers = request.app[KOPERS]
    user = await require_user(request)
    data = await json_body(request)
    ids = data.get("builds")
    if not isinstance(ids, list) or not ids or not all(isinstance(i, int) for i in ids):
        raise BadRequest("builds must be a non-empty list of build ids")
    builds = [await kopers.store.get_build(i) for i in ids]
    deleted = await kopers.builds.delete(user, ids)
    for b in builds:
        await kopers.audit(
            user, request.remote, "build.delete", f"{b.owner}/{b.project}", {"build": b.id}
        )
    return web.json_response({"builds": deleted})


@routes.get(r"/api_3/build/built-packages/{build_id:\d+}")
async def built_packages(request: web.Request) -> web.Response:
    kopers = request.app[KOPERS]
    build_id = int(request.match_info["build_id"])
    await kopers.store.get_build(build_id)  # 404 for an unknown build
    return web.json_response(cj.built_packages_json(await kopers.store.built_packages(build_id)))


@routes.get("/api_3/build-chroot/list")
async def list_build_chroots(request: web.Request) -> web.Response:
    kopers = request.app[KOPERS]
    build = await kopers.store.get_build(int(need(request, "build_id")))
    limit, offset = paging(request)
    tasks = list(build.tasks)[offset : None if limit is None else offset + limit]
    items = [cj.build_chroot_json(build, t, kopers.layout) for t in tasks]
    return web.json_response(cj.page(items, limit, offset, order="name", order_type="ASC"))


@routes.get("/api_3/build-chroot")
async def get_build_chroot(request: web.Request) -> web.Response:
    kopers = request.app[KOPERS]
    build = await kopers.store.get_build(int(need(request, "build_id")))
    chroot = need(request, "chrootname")
    task = next((t for t in build.tasks if t.chroot == chroot), None)
    if task is None:
        raise BadRequest(f"build {build.id} has no chroot {chroot}")
    return web.json_response(cj.build_chroot_json(build, task, kopers.layout))


# packages -------------------------------------------------------------------


@routes.get("/api_3/package/list")
async def list_packages(request: web.Request) -> web.Response:
    kopers = request.app[KOPERS]
    project = await kopers.store.get_project(
        need(request, "ownername"), need(request, "projectname")
    )
    limit, offset = paging(request)
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
