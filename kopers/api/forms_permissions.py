"""A project's roles in the browser: `/coprs/<owner>/<project>/permissions/`.

Copr's per-project roles (builder, admin) as kopers.api.permissions serves
them to copr-cli, through the same rules: any signed-in user may ask for a
role or give one up (`access.plan_request`); those who may change the
project see who has what and approve or change anyone's roles
(`access.plan_set`); the rows and their audit event are written as the API
writes them. Everyone else sees their own roles only: who holds which role
is the project's editors' list (permissions/get is theirs too).

The same under /coprs/g/<group>/<project>/.
"""

from __future__ import annotations

from collections.abc import Mapping

from aiohttp import web

from kopers import access
from kopers.access import Action, Grant, PermState, Role, Target
from kopers.api import fields
from kopers.api.forms_project import back_to, form_user, shown, viewer
from kopers.api.keys import KOPERS
from kopers.api.pages import page, page_project, project_url

# The API's own write of the roles: the same rows, the same audit event.
from kopers.api.permissions import update_grants
from kopers.errors import BadRequest
from kopers.models import Project, User

routes = web.RouteTableDef()


async def _page(
    request: web.Request,
    user: User,
    project: Project,
    error: str | None = None,
) -> web.Response:
    facts = await request.app[KOPERS].store.access_facts(user, Target.of(project))
    editor = access.may(facts, Action.SET_PERMISSIONS)
    return shown(
        request,
        "permissions.html",
        400 if error else 200,
        tab="permissions",
        project=project,
        user=user,
        editor=editor,
        grants=sorted(facts.grants.items()) if editor else [],
        mine=facts.grants.get(user.name, Grant()),
        is_owner=project.owner == user.name,
        roles=list(Role),
        states=list(PermState),
        error=error,
    )


@routes.get("/coprs/g/{group}/{project}/permissions/")
@routes.get("/coprs/{owner}/{project}/permissions/")
@page
async def permissions_page(request: web.Request) -> web.StreamResponse:
    user = await viewer(request)
    return await _page(request, user, await page_project(request))


def wanted_roles(form: Mapping[str, str], current: Grant) -> dict[Role, PermState]:
    """The request form's ticked roles -> what to ask for (or give up). Pure.

    A ticked role already approved is kept as it is; an unticked one held or
    asked for is given up; the rest asks for nothing.
    """
    wanted: dict[Role, PermState] = {}
    for role in Role:
        held = current.state(role)
        if form.get(str(role)) is not None:
            if held is not PermState.APPROVED:
                wanted[role] = PermState.REQUEST
        elif held is not PermState.NOTHING:
            wanted[role] = PermState.NOTHING
    return wanted


@routes.post("/coprs/g/{group}/{project}/permissions/request/")
@routes.post("/coprs/{owner}/{project}/permissions/request/")
@page
async def request_roles(request: web.Request) -> web.StreamResponse:
    form, user = await form_user(request)
    project = await page_project(request)
    kopers = request.app[KOPERS]
    target = Target.of(project)
    facts = await access.authorize(kopers.store, user, Action.REQUEST_PERMISSIONS, target)
    wanted = wanted_roles(form, facts.grants.get(user.name, Grant()))

    def plan(current: Mapping[str, Grant]) -> dict[str, Grant]:
        mine = current.get(user.name, Grant())
        return {user.name: access.plan_request(target, user.name, mine, wanted)}

    if wanted:
        try:
            await update_grants(request, kopers, user, project, plan, "permission.request")
        except BadRequest as exc:
            return await _page(request, user, project, exc.message)
    return back_to(project_url(project.owner, project.name) + "permissions/")


@routes.post("/coprs/g/{group}/{project}/permissions/set/")
@routes.post("/coprs/{owner}/{project}/permissions/set/")
@page
async def set_roles(request: web.Request) -> web.StreamResponse:
    form, user = await form_user(request)
    project = await page_project(request)
    kopers = request.app[KOPERS]
    target = Target.of(project)
    await access.authorize(kopers.store, user, Action.SET_PERMISSIONS, target)
    try:
        name = fields.name(form.get("user", "").strip(), "user name")
        # The API's body {user: {role: state}}, checked by the API's parser.
        roles = {str(r): form.get(str(r), str(PermState.NOTHING)) for r in Role}
        changes = access.parse_set({name: roles})[name]
        if name not in await kopers.store.users_by_name([name]):
            raise BadRequest(f"user '{name}' doesn't exist")

        def plan(current: Mapping[str, Grant]) -> dict[str, Grant]:
            return {name: access.plan_set(target, name, current.get(name, Grant()), changes)}

        await update_grants(request, kopers, user, project, plan, "permission.set")
    except BadRequest as exc:
        return await _page(request, user, project, exc.message)
    return back_to(project_url(project.owner, project.name) + "permissions/")


def add_routes(app: web.Application) -> None:
    app.add_routes(routes)
