"""A project's audit events in the browser: `/coprs/<owner>/<project>/audit/`.

What `GET /api/events?project=<owner>/<project>` answers the same user, in
the same order (newest first), through the same policy and query: any
signed-in user may read a project's events; the client's address is shown
to site admins only. A browser that is signed out is sent to sign in.
The same under /coprs/g/<group>/<project>/.
"""

from __future__ import annotations

import json

from aiohttp import web

from kopers import access
from kopers.access import Action, Target
from kopers.api.events import DEFAULT_LIMIT, MAX_LIMIT, event_json
from kopers.api.forms_project import shown, viewer
from kopers.api.keys import KOPERS
from kopers.api.pages import page, page_project
from kopers.api.params import query_int

routes = web.RouteTableDef()


@routes.get("/coprs/g/{group}/{project}/audit/")
@routes.get("/coprs/{owner}/{project}/audit/")
@page
async def audit_page(request: web.Request) -> web.StreamResponse:
    k = request.app[KOPERS]
    user = await viewer(request)
    project = await page_project(request)
    limit = query_int(request, "limit", DEFAULT_LIMIT, lo=1, hi=MAX_LIMIT)
    await access.authorize(k.store, user, Action.READ_EVENTS, Target(project.full_name))
    reader = None if user.is_admin else user
    rows = await k.store.events(project.full_name, limit, reader=reader)
    url = k.config.server.public_url
    events = [event_json(r, url, address=user.is_admin) for r in rows]
    return shown(
        request,
        "audit.html",
        tab="audit",
        project=project,
        events=events,
        # Details as the API shows them: JSON text, shown escaped.
        details=lambda e: json.dumps(e["details"], sort_keys=True, ensure_ascii=False),
        limit=limit,
        full=len(events) == limit,
        admin=user.is_admin,
    )


def add_routes(app: web.Application) -> None:
    app.add_routes(routes)
