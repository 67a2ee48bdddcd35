"""Copr API v3 packages under /api_3/package."""

from __future__ import annotations

from aiohttp import web

from kopers.api import copr_json as cj
from kopers.api.keys import KOPERS
from kopers.api.params import (
    need_name,
    paging,
    query_bool,
)

routes = web.RouteTableDef()


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
