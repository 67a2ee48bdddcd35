"""One build's page: per-chroot state, times and attempts, its live logs, what it built and against.

The same page answers at `/coprs/build/<id>/` and under its project,
`/coprs/<owner>/<project>/build/<id>/` (and `/coprs/g/<group>/...`); a build
of another project is not there (404). Each chroot's log follows the build
live over its websocket (static/buildlog.js); states follow the project's
event stream (static/live.js).
"""

from __future__ import annotations

import contextlib

from aiohttp import web

from kopers.api import websession
from kopers.api.forms_build import build_actions
from kopers.api.keys import KOPERS
from kopers.api.pages import page, page_project, render
from kopers.api.params import path_id
from kopers.errors import BadRequest, NotFound
from kopers.models import Build
from kopers.publish.layout import Layout

routes = web.RouteTableDef()
# What the page shows of a build's source (the keys Copr's source_dict has for them).
SOURCE_KEYS = ("url", "clone_url", "committish", "subdirectory", "spec", "filename", "pkg")


def result_urls(layout: Layout, build: Build) -> dict[str, str]:
    """Each chroot's result directory; none while the package name is unknown or unusable."""
    urls = {}
    for t in build.tasks:
        if not build.package_name:
            continue
        # A name no directory can have: the page shows no links, not an error.
        with contextlib.suppress(BadRequest):
            urls[t.chroot] = layout.result_url(
                build.owner, build.project, t.chroot, build.id, build.package_name
            )
    return urls


def source_summary(build: Build) -> list[tuple[str, str]]:
    return [
        (key, str(build.source[key]))
        for key in SOURCE_KEYS
        if isinstance(build.source.get(key), str | int) and build.source[key] != ""
    ]


async def _render(request: web.Request, build: Build) -> web.Response:
    k = request.app[KOPERS]
    actions = await build_actions(request, build)  # the buttons (kopers.api.forms_build)
    response = render(
        "build.html",
        build=build,
        result_urls=result_urls(k.layout, build),
        source=source_summary(build),
        packages=await k.store.built_packages(build.id),
        buildroot=await k.store.buildroot_packages(build.id),
        actions=actions,
    )
    if actions is not None:
        websession.private(response)  # it carries the session's form token
    return response


@routes.get(r"/coprs/build/{build_id:\d+}")
@routes.get(r"/coprs/build/{build_id:\d+}/")
@page
async def build_page(request: web.Request) -> web.Response:
    build = await request.app[KOPERS].store.get_build(path_id(request, "build_id"))
    return await _render(request, build)


@routes.get(r"/coprs/g/{group}/{project}/build/{build_id:\d+}/")
@routes.get(r"/coprs/{owner}/{project}/build/{build_id:\d+}/")
@page
async def project_build_page(request: web.Request) -> web.Response:
    project = await page_project(request)
    build_id = path_id(request, "build_id")
    build = await request.app[KOPERS].store.get_build(build_id)
    if build.project_id != project.id:
        raise NotFound(f"Build {build_id} is not a build of {project.full_name}.")
    return await _render(request, build)


def add_routes(app: web.Application) -> None:
    app.add_routes(routes)
