"""Copr API v3 packages under /api_3/package, and the monitor under /api_3/monitor.

Requests as python-copr 2.7 and copr-cli 2.6 send them: add and edit carry
the source type in the path and the definition as flat body keys; reset,
delete and build name the package in the body; reads are anonymous. Every
write and its audit event commit together; a build from a package goes
through `Kopers.submit` like any other build.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aiohttp import web

from kopers.api import bodies
from kopers.api import copr_json as cj
from kopers.api import package_bodies as pb
from kopers.api.auth import require_user
from kopers.api.keys import KOPERS
from kopers.api.params import (
    json_body,
    max_text,
    need_name,
    paging,
    path_name,
    query_bool,
    query_name,
)
from kopers.errors import BadRequest
from kopers.models import (
    Build,
    BuildState,
    BuildTask,
    Package,
    PackageSource,
    PackageSourceType,
    Project,
    User,
)
from kopers.package_sources import source_json
from kopers.packages import PackageChanges, latest, latest_succeeded, monitor_rows
from kopers.publish.layout import Layout

if TYPE_CHECKING:
    from kopers.service import Kopers

routes = web.RouteTableDef()

# Copr's integer codes of the states (its `status`), which the monitor shows.
STATUS_CODES = {
    BuildState.FAILED: 0,
    BuildState.SUCCEEDED: 1,
    BuildState.CANCELED: 2,
    BuildState.RUNNING: 3,
    BuildState.PENDING: 4,
    BuildState.SKIPPED: 5,
    BuildState.STARTING: 6,
    BuildState.IMPORTING: 7,
    BuildState.FORKED: 8,
    BuildState.WAITING: 9,
    BuildState.UNKNOWN: 1000,
}
MONITOR_FIELDS = ("url_build_log", "url_backend_log", "url_build")


# -- reads --------------------------------------------------------------------


@routes.get("/api_3/package")
async def get_package(request: web.Request) -> web.Response:
    kopers = request.app[KOPERS]
    project = await _project(kopers, request)
    name = pb.package_name(need_name(request, "packagename"), "packagename")
    package = await kopers.store.get_package(project.id, name)
    builds = await kopers.store.package_builds(package.id)
    return web.json_response(_package_json(kopers, package, builds, request))


@routes.get("/api_3/package/list")
async def list_packages(request: web.Request) -> web.Response:
    kopers = request.app[KOPERS]
    project = await _project(kopers, request)
    limit, offset = paging(request)
    packages = await kopers.store.list_packages(project.id, limit, offset)
    builds = await kopers.store.builds_by_package(project.id) if packages else {}
    items = [_package_json(kopers, p, builds.get(p.id, []), request) for p in packages]
    return web.json_response(cj.page(items, limit, offset, order="name", order_type="ASC"))


@routes.get("/api_3/monitor")
async def monitor(request: web.Request) -> web.Response:
    kopers = request.app[KOPERS]
    project = await _project(kopers, request)
    bodies.same_dir(project.name, query_name(request, "project_dirname"))
    wanted = request.query.getall("additional_fields[]", [])
    unknown = sorted({f for f in wanted if f not in MONITOR_FIELDS})
    if unknown:
        shown = ", ".join(repr(f)[:40] for f in unknown[:5])
        raise BadRequest(
            f"additional_fields[] has unknown fields: {shown}; use {', '.join(MONITOR_FIELDS)}"
        )
    packages = await kopers.store.list_packages(project.id, None, 0)
    builds = await kopers.store.builds_by_package(project.id) if packages else {}
    base = kopers.config.server.public_url
    rows = [
        {
            "name": row.package,
            "chroots": {
                chroot: _monitor_cell(kopers.layout, base, build, task, set(wanted))
                for chroot, (build, task) in row.chroots.items()
            },
        }
        for row in monitor_rows(packages, builds)
    ]
    return web.json_response(
        {"output": "ok", "message": "Project monitor request successful", "packages": rows}
    )


# -- writes -------------------------------------------------------------------


@routes.post("/api_3/package/add/{ownername}/{projectname}/{package_name}/{source_type_text}")
async def add_package(request: web.Request) -> web.Response:
    kopers = request.app[KOPERS]
    user = await require_user(request)
    owner, project_name = path_name(request, "ownername"), path_name(request, "projectname")
    name = pb.package_name(request.match_info["package_name"])
    kind = pb.source_type(request.match_info["source_type_text"])
    data = await json_body(request)
    pb.check_body_name(data, name)
    project = await kopers.packages.project_to_manage(user, owner, project_name)
    source = pb.parse_source(kind, pb.given_source_fields(data), max_text(request))
    changes = _changes(data, source)
    async with kopers.atomic():
        package = await kopers.packages.add(project, name, changes)
        await _audit(kopers, request, user, "package.add", package)
    return web.json_response(_package_json(kopers, package, [], None))


@routes.post("/api_3/package/edit/{ownername}/{projectname}/{package_name}/{source_type_text}")
@routes.post("/api_3/package/edit/{ownername}/{projectname}/{package_name}")
async def edit_package(request: web.Request) -> web.Response:
    kopers = request.app[KOPERS]
    user = await require_user(request)
    owner, project_name = path_name(request, "ownername"), path_name(request, "projectname")
    name = pb.package_name(request.match_info["package_name"])
    text = request.match_info.get("source_type_text")
    # python-copr puts None in the path when no source type is given.
    kind = None if text in (None, "None") else pb.source_type(text)
    data = await json_body(request)
    pb.check_body_name(data, name)
    project = await kopers.packages.project_to_manage(user, owner, project_name)
    async with kopers.atomic():
        package = await kopers.store.get_package(project.id, name)
        changes = _changes(data, _edited_source(kind, package, data, max_text(request)))
        package = await kopers.packages.edit(package, changes)
        await _audit(kopers, request, user, "package.edit", package)
    builds = await kopers.store.package_builds(package.id)
    return web.json_response(_package_json(kopers, package, builds, None))


@routes.put("/api_3/package/reset")
@routes.post("/api_3/package/reset")
async def reset_package(request: web.Request) -> web.Response:
    kopers = request.app[KOPERS]
    user = await require_user(request)
    ref = pb.package_ref(await json_body(request))
    project = await kopers.packages.project_to_manage(user, ref.owner, ref.project)
    async with kopers.atomic():
        package = await kopers.packages.reset(await kopers.store.get_package(project.id, ref.name))
        await _audit(kopers, request, user, "package.reset", package)
    return web.json_response(_package_json(kopers, package, [], None))


@routes.delete("/api_3/package/delete")
async def delete_package(request: web.Request) -> web.Response:
    kopers = request.app[KOPERS]
    user = await require_user(request)
    ref = pb.package_ref(await json_body(request))
    project = await kopers.packages.project_to_manage(user, ref.owner, ref.project)
    async with kopers.atomic():
        package = await kopers.store.get_package(project.id, ref.name)
        deleted = await kopers.packages.delete(user, package)
        await _audit(kopers, request, user, "package.delete", package, {"builds": deleted})
    return web.json_response(_package_json(kopers, package, [], None))


@routes.post("/api_3/package/build")
async def build_package(request: web.Request) -> web.Response:
    kopers = request.app[KOPERS]
    user = await require_user(request)
    data = await json_body(request)
    ref = pb.package_ref(data)
    options = bodies.build_body(data).request
    project = await kopers.store.get_project(ref.owner, ref.project)
    bodies.same_dir(project.name, data.get("project_dirname"))
    package = await kopers.store.get_package(project.id, ref.name)
    submission = await kopers.packages.submission_for(user, project, package, options)
    build = await kopers.submit(user, request.remote, submission)
    return web.json_response(cj.build_json(build, kopers.layout))


# -- helpers ------------------------------------------------------------------


async def _project(kopers: Kopers, request: web.Request) -> Project:
    return await kopers.store.get_project(
        need_name(request, "ownername"), need_name(request, "projectname")
    )


def _changes(data: dict[str, Any], source: PackageSource | None) -> PackageChanges:
    options = pb.package_options(data)
    return PackageChanges(
        source=source,
        webhook_rebuild=options.webhook_rebuild,
        max_builds=options.max_builds,
        timeout=options.timeout,
        chroot_denylist=options.chroot_denylist,
    )


def _edited_source(
    kind: PackageSourceType | None, package: Package, data: dict[str, Any], max_text: int
) -> PackageSource | None:
    """The definition after an edit: the stored keys, then the body's given ones.

    Editing a package whose source was reset needs a source type; without one
    and without source keys, only the settings change.
    """
    given = pb.given_source_fields(data)
    kind = kind or package.source_type
    if not given and kind == package.source_type:
        return None  # only the settings change
    if kind == PackageSourceType.UNSET:
        if given:
            raise BadRequest(f"package {package.name} has no source type: name one in the path")
        return None
    stored = source_json(package.source) if kind == package.source_type else {}
    stored.pop("type", None)  # shown beside scm_type, which is the one kept
    return pb.parse_source(kind, {**stored, **given}, max_text)


async def _audit(
    kopers: Kopers,
    request: web.Request,
    user: User,
    action: str,
    package: Package,
    extra: dict[str, Any] | None = None,
) -> None:
    details: dict[str, Any] = {"package": package.name, "source_type": str(package.source_type)}
    await kopers.audit(
        user, request.remote, action, f"{package.owner}/{package.project}", details | (extra or {})
    )


def _package_json(
    kopers: Kopers, package: Package, builds: list[Build], request: web.Request | None
) -> dict[str, Any]:
    """Copr's package object; `builds` holds the newest builds the query asked for."""
    with_latest = request is not None and query_bool(request, "with_latest_build")
    with_succeeded = request is not None and query_bool(request, "with_latest_succeeded_build")
    newest = latest(builds) if with_latest else None
    succeeded = latest_succeeded(builds) if with_succeeded else None
    return {
        "id": package.id,
        "name": package.name,
        "ownername": package.owner,
        "projectname": package.project,
        "source_type": str(package.source_type),
        "source_dict": source_json(package.source),
        "auto_rebuild": package.webhook_rebuild,
        "webhook_rebuild": package.webhook_rebuild,
        "max_builds": package.max_builds,
        "timeout": package.timeout,
        "chroot_denylist": list(package.chroot_denylist),
        "builds": {
            "latest": cj.build_json(newest, kopers.layout) if newest else None,
            "latest_succeeded": cj.build_json(succeeded, kopers.layout) if succeeded else None,
        },
    }


def _monitor_cell(
    layout: Layout, base: str, build: Build, task: BuildTask, wanted: set[str]
) -> dict[str, Any]:
    cell: dict[str, Any] = {
        "state": str(task.state),
        "status": STATUS_CODES.get(task.state, 1000),
        "build_id": build.id,
        "pkg_version": build.package_version,
    }
    log_url = None
    if task.result_dir is not None and build.package_name:
        log_url = (
            layout.result_url(build.owner, build.project, task.chroot, build.id, build.package_name)
            + "build.log"
        )
    # One log per task holds both Kopers' own lines and the builder's.
    if "url_build_log" in wanted:
        cell["url_build_log"] = log_url
    if "url_backend_log" in wanted:
        cell["url_backend_log"] = log_url
    if "url_build" in wanted:
        cell["url_build"] = f"{base}/coprs/build/{build.id}/"
    return cell


def add_routes(app: web.Application) -> None:
    app.add_routes(routes)
