"""The audit trail under /api/events: who did what, from where, when.

`GET /api/events?project=o/p&user=name&limit=N` lists events newest first.
`project` matches the project itself and its builds and roles; `user` is the
actor. Any authenticated user may read the log (it is a small team's shared
record); anonymous callers get Copr's 401. Build events carry a link to the
build's buildroot manifest, so the log says what each build was built against.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from kopers import access
from kopers.access import Action, Target
from kopers.api.auth import require_user
from kopers.api.keys import KOPERS
from kopers.errors import BadRequest

routes = web.RouteTableDef()
DEFAULT_LIMIT = 100
MAX_LIMIT = 1000


def _limit(value: str | None) -> int:
    if not value:
        return DEFAULT_LIMIT
    try:
        limit = int(value)
    except ValueError:
        raise BadRequest(f"limit must be a whole number, got {value!r}") from None
    if not 1 <= limit <= MAX_LIMIT:
        raise BadRequest(f"limit must be between 1 and {MAX_LIMIT}")
    return limit


def event_json(row: dict[str, Any], public_url: str) -> dict[str, Any]:
    """One stored event -> its JSON form, with a buildroot link for build events. Pure."""
    out = {
        "id": row["id"],
        "at": row["at"].isoformat(),
        "user": row["username"],
        "address": row["address"],
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
    k = request.app[KOPERS]
    user = await require_user(request)
    project = request.query.get("project") or None
    actor = request.query.get("user") or None
    limit = _limit(request.query.get("limit"))
    await access.authorize(k.store, user, Action.READ_EVENTS, Target(project or "this server"))
    rows = await k.store.events(project, limit, user=actor)
    url = k.config.server.public_url
    return web.json_response(
        {
            "items": [event_json(r, url) for r in rows],
            "meta": {"limit": limit, "project": project, "user": actor},
        }
    )


def add_routes(app: web.Application) -> None:
    app.add_routes(routes)
