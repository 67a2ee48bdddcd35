"""A project's pages: overview (how to use it), builds, packages, one package, monitor.

Each answers under `/coprs/<owner>/<project>/...` and, for a group's project,
`/coprs/g/<group>/<project>/...`; a missing project or package is the HTML
404 page. The builds list and the monitor follow the project's event stream
(static/live.js) to show new states without a reload; rendered again, they
show the same.
"""

from __future__ import annotations

from aiohttp import web

from kopers import listing
from kopers.api import hub, websession
from kopers.api.forms_build import project_actions
from kopers.api.keys import KOPERS
from kopers.api.pages import page, page_project, render
from kopers.api.params import path_name
from kopers.db.store import Store
from kopers.listing import BuildFilter, Paged, Window
from kopers.models import Build, BuildState
from kopers.monitor import latest_cells, plan_monitor
from kopers.package_sources import source_json

routes = web.RouteTableDef()
OVERVIEW_BUILDS = 10
PACKAGE_BUILDS = 20
SCAN_CHUNK = 500


@routes.get("/coprs/g/{group}/{project}/")
@routes.get("/coprs/{owner}/{project}/")
@page
async def overview(request: web.Request) -> web.Response:
    k = request.app[KOPERS]
    project = await page_project(request)
    url = k.config.server.public_url
    return render(
        "project.html",
        tab="overview",
        project=project,
        builds=await k.store.list_builds(project.id, None, OVERVIEW_BUILDS, 0),
        layout=k.layout,
        dnf=hub.instructions(url, project, k.layout),
    )


async def filtered_builds(
    store: Store, project_id: int, flt: BuildFilter, win: Window
) -> tuple[Paged[Build], bool]:
    """One page of the project's builds under the filter; and whether the scan stopped short.

    The package filter is the store's; the state is derived from a build's
    tasks, so it is applied to the builds read, newest first, MAX_SCAN at most.
    """
    if flt.state is None:
        fetched = await store.list_builds(project_id, flt.package, win.fetch, win.offset)
        return listing.page_of(fetched, win), False
    wanted = win.offset + win.fetch
    matched: list[Build] = []
    scanned = 0
    while len(matched) < wanted:
        if scanned >= listing.MAX_SCAN:
            return listing.slice_page(matched, win), True
        chunk = await store.list_builds(project_id, flt.package, SCAN_CHUNK, scanned)
        matched += [b for b in chunk if b.state == flt.state]
        scanned += len(chunk)
        if len(chunk) < SCAN_CHUNK:
            break
    return listing.slice_page(matched, win), False


@routes.get("/coprs/g/{group}/{project}/builds/")
@routes.get("/coprs/{owner}/{project}/builds/")
@page
async def builds(request: web.Request) -> web.StreamResponse:
    k = request.app[KOPERS]
    project = await page_project(request)
    flt = listing.build_filter(request.query.get("state"), request.query.get("package"))
    win = listing.window(request.query.get("page"), request.query.get("per_page"))
    paged, short = await filtered_builds(k.store, project.id, flt, win)
    actions = await project_actions(request, project)
    response = render(
        "builds.html",
        actions=actions,
        tab="builds",
        project=project,
        builds=paged,
        flt=flt,
        states=listing.STATES,
        scan_limit=listing.MAX_SCAN if short else None,
        link=lambda page: listing.query(
            state=flt.state, package=flt.package, page=page, per_page=win.size_param
        ),
    )
    return websession.private(response) if actions is not None else response


@routes.get("/coprs/g/{group}/{project}/packages/")
@routes.get("/coprs/{owner}/{project}/packages/")
@page
async def packages(request: web.Request) -> web.StreamResponse:
    k = request.app[KOPERS]
    project = await page_project(request)
    win = listing.window(request.query.get("page"), request.query.get("per_page"))
    paged = listing.page_of(await k.store.list_packages(project.id, win.fetch, win.offset), win)
    by_package = await k.store.builds_by_package(project.id) if paged.items else {}
    actions = await project_actions(request, project)
    response = render(
        "packages.html",
        tab="packages",
        project=project,
        packages=paged,
        latest={p.id: next(iter(by_package.get(p.id, ())), None) for p in paged.items},
        link=lambda page: listing.query(page=page, per_page=win.size_param),
        actions=actions,
    )
    return websession.private(response) if actions is not None else response


@routes.get("/coprs/g/{group}/{project}/package/{package_name}/")
@routes.get("/coprs/{owner}/{project}/package/{package_name}/")
@page
async def package(request: web.Request) -> web.StreamResponse:
    k = request.app[KOPERS]
    project = await page_project(request)
    pkg = await k.store.get_package(project.id, path_name(request, "package_name"))
    every = await k.store.package_builds(pkg.id)
    actions = await project_actions(request, project)  # the rebuild button
    response = render(
        "package.html",
        actions=actions,
        tab="packages",
        project=project,
        package=pkg,
        source=source_json(pkg.source),
        chroots=project.chroots,
        cells=latest_cells(project.chroots, every),
        builds=every[:PACKAGE_BUILDS],
        more=len(every) > PACKAGE_BUILDS,
    )
    return websession.private(response) if actions is not None else response


@routes.get("/coprs/g/{group}/{project}/monitor/")
@routes.get("/coprs/{owner}/{project}/monitor/")
@page
async def monitor(request: web.Request) -> web.Response:
    k = request.app[KOPERS]
    project = await page_project(request)
    pkgs = await k.store.list_packages(project.id, None, 0)
    by_package = await k.store.builds_by_package(project.id) if pkgs else {}
    matrix = plan_monitor(project.chroots, pkgs, by_package)
    return render(
        "monitor.html",
        tab="monitor",
        project=project,
        monitor=matrix,
        summary=sorted(matrix.states().items(), key=lambda kv: list(BuildState).index(kv[0])),
    )


def add_routes(app: web.Application) -> None:
    app.add_routes(routes)
