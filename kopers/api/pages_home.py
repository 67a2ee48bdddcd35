"""The home page (recent builds, projects, a search), and a user's and a group's projects.

What is shown is what the JSON API shows anyone: Kopers has no private
projects. A project marked `unlisted_on_hp` is left off the home page (its
list and its recent builds) and nowhere else: a search finds it, as
/api_3/project/search does, and so does its owner's page, as
/api_3/project/list does.
"""

from __future__ import annotations

import asyncio

from aiohttp import web

from kopers import listing
from kopers.api.keys import KOPERS
from kopers.api.pages import page, render
from kopers.api.params import path_name
from kopers.models import Build, Project

routes = web.RouteTableDef()
RECENT_BUILDS = 10


async def recent_builds(request: web.Request, projects: list[Project]) -> list[Build]:
    """The newest builds of these projects, newest first."""
    store = request.app[KOPERS].store
    found = await asyncio.gather(
        *(store.list_builds(p.id, None, RECENT_BUILDS, 0) for p in projects)
    )
    merged = [b for builds in found for b in builds]
    return sorted(merged, key=lambda b: b.id, reverse=True)[:RECENT_BUILDS]


@routes.get("/")
@page
async def index(request: web.Request) -> web.Response:
    k = request.app[KOPERS]
    win = listing.window(request.query.get("page"), request.query.get("per_page"))
    everything = await k.store.list_projects(None)
    listed = [p for p in everything if not p.options.unlisted_on_hp]
    q = listing.search_text(request.query.get("q"))
    if q:
        return render(
            "index.html",
            q=q,
            projects=listing.slice_page(listing.search(everything, q), win),
            builds=[],
            link=lambda page: listing.query(q=q, page=page, per_page=win.size_param),
        )
    return render(
        "index.html",
        q="",
        projects=listing.slice_page(listed, win),
        builds=await recent_builds(request, listed),
        link=lambda page: listing.query(page=page, per_page=win.size_param),
    )


async def _owner_page(request: web.Request, owner: str, kind: str) -> web.Response:
    k = request.app[KOPERS]
    win = listing.window(request.query.get("page"), request.query.get("per_page"))
    fetched = await k.store.list_projects(owner, None, win.fetch, win.offset)
    return render(
        "owner.html",
        owner=owner,
        kind=kind,
        projects=listing.page_of(fetched, win),
        link=lambda page: listing.query(page=page, per_page=win.size_param),
    )


@routes.get("/coprs/g/{group}/")
@page
async def group_page(request: web.Request) -> web.Response:
    group = await request.app[KOPERS].store.get_group(path_name(request, "group"))
    return await _owner_page(request, "@" + group.name, "group")


@routes.get("/coprs/{owner}/")
@page
async def user_page(request: web.Request) -> web.Response:
    name = path_name(request, "owner")
    store = request.app[KOPERS].store
    if name.startswith("@"):  # a group by its owner name, as copr-cli prints it
        group = await store.get_group(name[1:])
        return await _owner_page(request, "@" + group.name, "group")
    user = await store.get_user(name)
    return await _owner_page(request, user.name, "user")


def add_routes(app: web.Application) -> None:
    app.add_routes(routes)
