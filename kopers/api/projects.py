"""Kopers' own project settings under /api: storage, retention, expiry and timeout.

Copr's API has no place for these: how many builds of each package to keep,
a storage quota, and when a temporary project goes away. The storage a
project takes is reported here too, and, to those who may edit the project,
its webhook secret.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aiohttp import web

from kopers import access
from kopers.api import fields
from kopers.api.auth import current_user, require_user
from kopers.api.keys import KOPERS
from kopers.api.params import json_body, path_name
from kopers.errors import AuthenticationError
from kopers.models import Project, User
from kopers.projects import SETTING_BOUNDS, SettingsChange

if TYPE_CHECKING:
    from kopers.service import Kopers

routes = web.RouteTableDef()


def parse_settings(body: dict[str, Any]) -> SettingsChange:
    """A settings change's body -> SettingsChange; a 400 naming the first bad field. Pure.

    Every field is checked before anything is written. Keys Kopers does not
    know are ignored, as everywhere in the API, and never reach the log.
    """
    sent: dict[str, int | None] = {}
    for key in SETTING_BOUNDS:
        if key in body:
            value = body[key]
            # copr-style: numbers may come as strings; null or "" clears.
            sent[key] = None if value is None or value == "" else fields.integer(value, key)
    rebuild = body.get("rebuild_dependents")
    return SettingsChange(
        sent, None if rebuild is None else fields.boolean(rebuild, "rebuild_dependents")
    )


async def settings_json(kopers: Kopers, project: Project, user: User | None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "full_name": project.full_name,
        # The setting; with auto_prune off, no retention is in force whatever it says.
        "keep_builds": project.retention,
        "quota_mib": project.quota_mib,
        "delete_after": project.delete_after.isoformat() if project.delete_after else None,
        "build_timeout": project.build_timeout,
        # After a package changes, rebuild what BuildRequires it (kopers.rebuilds).
        "rebuild_dependents": project.rebuild_dependents,
        "storage_bytes": (await kopers.submissions.usage(project)).total,
    }
    facts = await kopers.store.access_facts(user, access.Target.of(project))
    if access.may(facts, access.Action.EDIT_PROJECT):
        out["webhook_secret"] = project.webhook_secret
    return out


@routes.get("/api/projects/{owner}/{project}")
async def get_settings(request: web.Request) -> web.Response:
    kopers = request.app[KOPERS]
    project = await kopers.store.get_project(
        path_name(request, "owner"), path_name(request, "project")
    )
    try:
        user = await current_user(request)
    except AuthenticationError:
        user = None  # a read needs no credentials: bad ones just show what anyone sees
    return web.json_response(await settings_json(kopers, project, user))


@routes.patch("/api/projects/{owner}/{project}")
async def update_settings(request: web.Request) -> web.Response:
    """`{"keep_builds": N, "quota_mib": M, "delete_after_days": D, "build_timeout": S,
    "rebuild_dependents": true}`.

    A key that is left out keeps its value; null (or "") clears it. Numbers
    may be sent as strings of digits. Every field is checked (a whole number
    in its range: keep_builds and quota_mib up to 2^31-1, delete_after_days up
    to 36500, build_timeout 60 s to 48 h; rebuild_dependents true or false) before
    anything is written; a bad
    one is a 400 naming it. The change and its audit event commit together.
    """
    kopers = request.app[KOPERS]
    user = await require_user(request)
    project = await kopers.store.get_project(
        path_name(request, "owner"), path_name(request, "project")
    )
    change = parse_settings(await json_body(request))
    async with kopers.atomic():
        project = await kopers.projects.update_settings(user, project, change)
        await kopers.audit(
            user, request.remote, "project.storage", project.full_name, change.details()
        )
    return web.json_response(await settings_json(kopers, project, user))


def add_routes(app: web.Application) -> None:
    app.add_routes(routes)
