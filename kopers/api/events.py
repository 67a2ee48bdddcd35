"""The audit trail under /api/events: who did what, from where, when.

Build events carry a link to the build's buildroot manifest, so the log says
what each build was built against. The log is private to a degree: see
`list_events` for who sees which events and which fields.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from kopers import access
from kopers.access import Action, Target
from kopers.api import fields
from kopers.api.auth import require_user
from kopers.api.keys import KOPERS
from kopers.api.params import query_int, query_name
from kopers.errors import BadRequest

routes = web.RouteTableDef()
DEFAULT_LIMIT = 100
MAX_LIMIT = 1000


def _object(request: web.Request) -> str | None:
    """`project=`: an owner (`alice`, `@group`) or a project (`alice/p`); None if absent."""
    value = request.query.get("project")
    if not value:
        return None
    parts = value.split("/")
    if len(parts) > 2:
        raise BadRequest("project must be an owner or owner/project")
    return "/".join(fields.name(part, "project") for part in parts)


def event_json(row: dict[str, Any], public_url: str, *, address: bool) -> dict[str, Any]:
    """One stored event -> its JSON form, with a buildroot link for build events. Pure.

    `address`: whether the reader may see the client's address; if not, it is null.
    """
    out = {
        "id": row["id"],
        "at": row["at"].isoformat(),
        "user": row["username"],
        "address": row["address"] if address else None,
        "action": row["action"],
        "object": row["object"],
        "details": row["details"],
    }
    build = row["details"].get("build") if isinstance(row["details"], dict) else None
    if isinstance(build, int) and str(row["action"]).startswith("build."):
        out["buildroot_url"] = f"{public_url}/api/builds/{build}/buildroot"
    return out


@routes.get("/api/events")
async def list_events(request: web.Request) -> web.Response:
    """`GET /api/events?project=o/p&user=name&limit=N`: events newest first.

    `project` matches the project itself and its builds and roles; `user` is
    the actor; `limit` is 1 to 1000 (100 if not given). Anonymous callers get
    Copr's 401. What a caller sees:
    - a site admin: every event, with the client address it came from;
    - any other user: the events of projects they may read (every project:
      Kopers has no private projects), the events they caused, and the events
      about their own account (e.g. a revoked token). Not the server-wide
      events about groups or other accounts. `address` is always null for
      them: clients' addresses are for the server's admins only.
    The filters narrow what the caller may see; they never widen it.
    """
    k = request.app[KOPERS]
    user = await require_user(request)
    project = _object(request)
    actor = query_name(request, "user")
    limit = query_int(request, "limit", DEFAULT_LIMIT, lo=1, hi=MAX_LIMIT) or DEFAULT_LIMIT
    await access.authorize(k.store, user, Action.READ_EVENTS, Target(project or "this server"))
    reader = None if user.is_admin else user
    rows = await k.store.events(project, limit, user=actor, reader=reader)
    url = k.config.server.public_url
    return web.json_response(
        {
            "items": [event_json(r, url, address=user.is_admin) for r in rows],
            "meta": {"limit": limit, "project": project, "user": actor},
        }
    )


def add_routes(app: web.Application) -> None:
    app.add_routes(routes)
