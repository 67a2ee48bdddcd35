"""HTML pages: projects, a project's builds, one build. Rendered with jinja2."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jinja2
from aiohttp import web

from kopers.api import hub
from kopers.api.keys import KOPERS
from kopers.api.params import path_id, path_name

routes = web.RouteTableDef()
STATIC_DIR = Path(__file__).resolve().parents[2] / "static"
_env = jinja2.Environment(
    loader=jinja2.PackageLoader("kopers", "templates"),
    autoescape=jinja2.select_autoescape(["html"]),
)


def render(name: str, **context: Any) -> web.Response:
    return web.Response(text=_env.get_template(name).render(**context), content_type="text/html")


@routes.get("/")
async def index(request: web.Request) -> web.Response:
    k = request.app[KOPERS]
    # Unlisted projects stay reachable by their URL and the API, just not listed here.
    listed = [p for p in await k.store.list_projects(None) if not p.options.unlisted_on_hp]
    return render("index.html", projects=listed, url=k.config.server.public_url)


async def _project_page(request: web.Request, owner: str) -> web.Response:
    k = request.app[KOPERS]
    project = await k.store.get_project(owner, path_name(request, "project"))
    builds = await k.store.list_builds(project.id, None, 100, 0)
    url = k.config.server.public_url
    return render(
        "project.html",
        project=project,
        builds=builds,
        layout=k.layout,
        url=url,
        dnf=hub.instructions(url, project, k.layout),
    )


@routes.get("/coprs/g/{group}/{project}/")
async def group_project_page(request: web.Request) -> web.Response:
    return await _project_page(request, "@" + path_name(request, "group"))


@routes.get(r"/coprs/build/{build_id:\d+}")
@routes.get(r"/coprs/build/{build_id:\d+}/")
async def build_page(request: web.Request) -> web.Response:
    """One build: per-chroot state, the live log of each chroot, what it built and against."""
    k = request.app[KOPERS]
    build = await k.store.get_build(path_id(request, "build_id"))
    result_urls = {
        t.chroot: k.layout.result_url(build.owner, build.project, t.chroot, build.id, pkg)
        for t in build.tasks
        if (pkg := build.package_name)
    }
    return render(
        "build.html",
        build=build,
        result_urls=result_urls,
        packages=await k.store.built_packages(build.id),
        buildroot=await k.store.buildroot_packages(build.id),
    )


@routes.get("/coprs/{owner}/{project}/")
async def project_page(request: web.Request) -> web.Response:
    return await _project_page(request, path_name(request, "owner"))


@routes.get("/static/{name}")
async def static_file(request: web.Request) -> web.FileResponse:
    """The pages' own scripts and styles: a flat directory of known names.

    Not aiohttp's static route: a name too long for the OS made it raise, a 500.
    """
    name = request.match_info["name"]
    path = STATIC_DIR / name
    if name not in _static_names():
        raise web.HTTPNotFound()
    return web.FileResponse(path)


def _static_names() -> frozenset[str]:
    if not STATIC_DIR.is_dir():
        return frozenset()
    return frozenset(p.name for p in STATIC_DIR.iterdir() if p.is_file())


def add_routes(app: web.Application) -> None:
    app.add_routes(routes)
