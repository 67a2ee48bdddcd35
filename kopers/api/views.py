"""The HTML pages: the page families' routes, and the pages' own scripts and styles.

The pages live by family: kopers.api.pages_home (home, users, groups),
kopers.api.pages_project (a project's overview, builds, packages, monitor)
and kopers.api.pages_build (one build); what they share (rendering, URLs,
error pages) is in kopers.api.pages.
"""

from __future__ import annotations

from aiohttp import web

from kopers import resources
from kopers.api import (
    forms_build,
    forms_integrations,
    forms_permissions,
    forms_project,
    forms_submit,
    pages_audit,
    pages_build,
    pages_home,
    pages_project,
)
from kopers.api.pages import render, render_status

__all__ = ["STATIC_DIR", "add_routes", "render", "render_status"]

routes = web.RouteTableDef()
STATIC_DIR = resources.static_dir()


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
    # The build page first: /coprs/build/<id> is no user's project page.
    pages_build.add_routes(app)
    # The forms before the project pages: a group's project named like a page is no page.
    forms_build.add_routes(app)
    forms_submit.add_routes(app)
    # /coprs/<owner>/add/ is the new project form, no project called "add".
    forms_project.add_routes(app)
    forms_permissions.add_routes(app)
    forms_integrations.add_routes(app)
    pages_audit.add_routes(app)
    pages_home.add_routes(app)
    pages_project.add_routes(app)
    app.add_routes(routes)
