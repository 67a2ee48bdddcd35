"""Copr's per-project roles under /api_3/project/permissions: get, set and request.

The contract is section 5 of ../shared/docs/copr-api-v3.md and upstream's
behaviour: all three need credentials; `get` and `set` are for those who may
change the project, `request` for any user; `get` answers 404 with an error
while the project has no permission rows at all. Every change is audited.
`can_build_in` asks kopers.access the question a build submission asks.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from aiohttp import web

from kopers import access
from kopers.access import Action, Grant, Role, Target
from kopers.api.auth import require_user
from kopers.api.bodies import permission_users
from kopers.api.keys import KOPERS
from kopers.api.params import json_or_none, path_name
from kopers.errors import BadRequest, NotFound
from kopers.models import Project, User

if TYPE_CHECKING:
    from kopers.service import Kopers

routes = web.RouteTableDef()
_PATH = "/api_3/project/permissions/{verb}/{ownername}/{projectname}"


def _changes(changed: dict[str, tuple[Grant, Grant]]) -> dict[str, dict[str, list[str]]]:
    """{user: (old, new)} -> {user: {role: [old, new]}} for the roles that changed."""
    out: dict[str, dict[str, list[str]]] = {}
    for name, (old, new) in changed.items():
        out[name] = {
            str(r): [str(old.state(r)), str(new.state(r))]
            for r in Role
            if old.state(r) != new.state(r)
        }
    return out


async def _authorized(
    request: web.Request, action: Action
) -> tuple[Kopers, User, Project, access.Facts]:
    """The caller, the project named in the path, and the facts that allowed `action`."""
    kopers = request.app[KOPERS]
    user = await require_user(request)
    project = await kopers.store.get_project(
        path_name(request, "ownername"), path_name(request, "projectname")
    )
    facts = await access.authorize(kopers.store, user, action, Target.of(project))
    return kopers, user, project, facts


@routes.get(_PATH.replace("{verb}", "get"))
async def get_permissions(request: web.Request) -> web.Response:
    _, _, project, facts = await _authorized(request, Action.READ_PERMISSIONS)
    if not facts.grants:
        raise NotFound(f"No permissions set on {project.full_name} project")
    return web.json_response(
        {"permissions": {name: g.as_json() for name, g in facts.grants.items()}}
    )


@routes.get("/api_3/project/permissions/can_build_in/{who}/{ownername}/{projectname}")
async def can_build_in(request: web.Request) -> web.Response:
    """Whether `who` may build in the project: the rule a submission by `who` meets.

    python-copr sends credentials, and any user may ask about any user (as
    upstream answers anyone); who holds which role is no secret from users.
    """
    kopers = request.app[KOPERS]
    await require_user(request)
    who = await kopers.store.get_user(path_name(request, "who"))
    project = await kopers.store.get_project(
        path_name(request, "ownername"), path_name(request, "projectname")
    )
    facts = await kopers.store.access_facts(who, Target.of(project))
    return web.json_response(
        {
            "who": who.name,
            "ownername": project.owner,
            "projectname": project.name,
            "can_build_in": access.may(facts, Action.BUILD),
        }
    )


@routes.put(_PATH.replace("{verb}", "set"))
async def set_permissions(request: web.Request) -> web.Response:
    kopers, user, project, _ = await _authorized(request, Action.SET_PERMISSIONS)
    target = Target.of(project)
    wanted = access.parse_set(permission_users(await json_or_none(request)))
    known = await kopers.store.users_by_name(list(wanted))
    for name in wanted:
        if name not in known:
            raise BadRequest(f"user '{name}' doesn't exist")

    def plan(current: Mapping[str, Grant]) -> dict[str, Grant]:
        return {
            name: access.plan_set(target, name, current.get(name, Grant()), roles)
            for name, roles in wanted.items()
        }

    changed = await update_grants(request, kopers, user, project, plan, "permission.set")
    return web.json_response({"updated": sorted(changed)})


@routes.put(_PATH.replace("{verb}", "request"))
async def request_permissions(request: web.Request) -> web.Response:
    kopers, user, project, _ = await _authorized(request, Action.REQUEST_PERMISSIONS)
    target = Target.of(project)
    wanted = access.parse_request(await json_or_none(request))

    def plan(current: Mapping[str, Grant]) -> dict[str, Grant]:
        return {
            user.name: access.plan_request(
                target, user.name, current.get(user.name, Grant()), wanted
            )
        }

    changed = await update_grants(request, kopers, user, project, plan, "permission.request")
    return web.json_response({"updated": bool(changed)})


async def update_grants(
    request: web.Request,
    kopers: Kopers,
    user: User,
    project: Project,
    plan: Callable[[Mapping[str, Grant]], dict[str, Grant]],
    action: str,
) -> dict[str, tuple[Grant, Grant]]:
    """Apply `plan` to the project's grants; the change and its event commit together."""
    async with kopers.atomic():
        changed = await kopers.store.update_grants(project.id, plan)
        if changed:
            details = {"changes": _changes(changed)}
            await kopers.audit(user, request.remote, action, project.full_name, details)
    return changed


def add_routes(app: web.Application) -> None:
    app.add_routes(routes)
