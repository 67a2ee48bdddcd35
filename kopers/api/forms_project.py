"""A project's forms in the browser: a new project, its settings, and deleting it.

    /coprs/<owner>/add/                     (and /coprs/g/<group>/add/)
    /coprs/<owner>/<project>/edit/          description, chroots, repos, settings
    /coprs/<owner>/<project>/delete/        deleting, once confirmed

and the same under /coprs/g/<group>/<project>/. The forms are another door to
the gates of the API, never other gates: a form's fields become the body the
JSON API takes, parsed by the same parsers (kopers.api.bodies,
kopers.api.projects), and the change is made by the same operations
(kopers.projects), allowed by the same policy (kopers.access), with the same
audit events. A refused form (bad input, a name taken) is shown again with
its values and one line saying why, and nothing is written.

Each form POST first passes `websession.checked_form` (the CSRF and origin
check), then needs a signed-in user; a page of a form sends a browser that
is signed out to sign in first (303), coming back after.

Also the helpers the project's other form pages share (kopers.api.forms_permissions,
kopers.api.forms_integrations, kopers.api.pages_audit).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from multidict import MultiDictProxy

from kopers import access
from kopers.api import bodies, websession
from kopers.api.coprprojects import remove_project
from kopers.api.keys import KOPERS
from kopers.api.pages import login_url, owner_url, page, page_project, project_url, render_status
from kopers.api.params import max_text, path_name
from kopers.api.projects import parse_settings
from kopers.errors import BadRequest, Conflict
from kopers.models import Project, User
from kopers.projects import ProjectInput, SettingsChange

routes = web.RouteTableDef()
_SETTINGS = ("keep_builds", "quota_mib")  # the numbers of the settings form


# What the project's form pages share ----------------------------------------------------


async def viewer(request: web.Request) -> User:
    """The signed-in user looking at a form page; a signed-out browser is sent to sign in."""
    user = await websession.web_user(request)
    if user is None:
        raise web.HTTPSeeOther(login_url(request.raw_path))
    return user


async def form_user(request: web.Request) -> tuple[MultiDictProxy[str], User]:
    """A form POST's fields and its signed-in user: CSRF and origin are checked first."""
    form = await websession.checked_form(request)
    return form, await websession.require_web_user(request)


async def editable(request: web.Request, user: User) -> tuple[Project, access.Facts]:
    """The project the path names, which `user` must be allowed to edit (else 403)."""
    project = await page_project(request)
    store = request.app[KOPERS].store
    facts = await access.authorize(
        store, user, access.Action.EDIT_PROJECT, access.Target.of(project)
    )
    return project, facts


def shown(request: web.Request, template: str, status: int = 200, **context: Any) -> web.Response:
    """A form page, for this browser only (it carries the session's token)."""
    response = render_status(template, status, csrf=websession.csrf_token(request), **context)
    websession.private(response)
    return response


def back_to(url: str) -> web.Response:
    """After a form that worked: 303 to the page that shows the result."""
    return web.Response(status=303, headers={"Location": url})


def page_owner(request: web.Request) -> str:
    """The owner a `/coprs/<owner>/...` or `/coprs/g/<group>/...` URL names."""
    if "group" in request.match_info:
        return "@" + path_name(request, "group")
    return path_name(request, "owner")


# The form's values ----------------------------------------------------------------------


def _flag(form: MultiDictProxy[str], key: str) -> bool:
    # A checkbox is sent when ticked, whatever its value says.
    return form.get(key) is not None


def _text(form: MultiDictProxy[str], key: str) -> str:
    # Browsers send a textarea's line breaks as CRLF; the API's clients send LF.
    return form.get(key, "").replace("\r\n", "\n")


@dataclass(frozen=True, slots=True)
class ProjectForm:
    """A project form's values as typed: shown again, escaped, when the form is refused."""

    name: str = ""
    description: str = ""
    instructions: str = ""
    homepage: str = ""
    contact: str = ""
    chroots: tuple[str, ...] = ()
    repos: str = ""  # one URL a line (any white space parts them)
    enable_net: bool = False
    unlisted_on_hp: bool = False
    rebuild_dependents: bool = False
    keep_builds: str = ""
    quota_mib: str = ""

    @classmethod
    def posted(cls, form: MultiDictProxy[str]) -> ProjectForm:
        return cls(
            name=form.get("name", "").strip(),
            description=_text(form, "description"),
            instructions=_text(form, "instructions"),
            homepage=form.get("homepage", "").strip(),
            contact=form.get("contact", "").strip(),
            chroots=tuple(form.getall("chroots", [])),
            repos=_text(form, "repos"),
            enable_net=_flag(form, "enable_net"),
            unlisted_on_hp=_flag(form, "unlisted_on_hp"),
            rebuild_dependents=_flag(form, "rebuild_dependents"),
            keep_builds=form.get("keep_builds", "").strip(),
            quota_mib=form.get("quota_mib", "").strip(),
        )

    @classmethod
    def of(cls, project: Project) -> ProjectForm:
        return cls(
            name=project.name,
            description=project.description,
            instructions=project.instructions,
            homepage=project.homepage or "",
            contact=project.contact or "",
            chroots=project.chroots,
            repos="\n".join(project.additional_repos),
            enable_net=project.enable_net,
            unlisted_on_hp=project.options.unlisted_on_hp,
            rebuild_dependents=project.rebuild_dependents,
            keep_builds="" if project.retention is None else str(project.retention),
            quota_mib="" if project.quota_mib is None else str(project.quota_mib),
        )

    def body(self) -> dict[str, Any]:
        """The JSON body the API would get for these values (Copr's create and modify)."""
        return {
            "name": self.name,
            "description": self.description,
            "instructions": self.instructions,
            "homepage": self.homepage,
            "contact": self.contact,
            "chroots": list(self.chroots),
            "additional_repos": self.repos.split(),
            "repos": self.repos.split(),
            "enable_net": self.enable_net,
            "unlisted_on_hp": self.unlisted_on_hp,
        }

    def settings(self) -> SettingsChange:
        """The settings body the API would get (PATCH /api/projects/...), parsed as it is there."""
        sent: dict[str, Any] = {key: getattr(self, key) for key in _SETTINGS}
        return parse_settings({**sent, "rebuild_dependents": self.rebuild_dependents})


def _changes(
    values: ProjectForm, project: Project, limit: int
) -> tuple[ProjectInput, SettingsChange]:
    """What the settings form changes: only the fields whose value differs. Pure.

    Everything is parsed (as the API parses it) before anything is compared,
    so a bad value is refused even where it would change nothing. A form
    sends every field: an emptied text is cleared, where the API's `""`
    would leave it be.
    """
    given = bodies.project_edit(values.body(), limit)
    settings = values.settings()
    changed: dict[str, Any] = {}
    for key in bodies.PROJECT_TEXT:
        new = getattr(given, key) or ""
        if new != (getattr(project, key) or ""):
            changed[key] = new
    repos = given.additional_repos or ()
    if repos != project.additional_repos:
        changed["additional_repos"] = repos
    chroots = given.chroots or ()
    if set(chroots) != set(project.chroots):
        changed["chroots"] = chroots
    if given.enable_net != project.enable_net:
        changed["enable_net"] = given.enable_net
    if given.unlisted_on_hp != project.options.unlisted_on_hp:
        changed["unlisted_on_hp"] = given.unlisted_on_hp
    current = {"keep_builds": project.retention, "quota_mib": project.quota_mib}
    sent = {k: v for k, v in settings.sent.items() if v != current[k]}
    rebuild = settings.rebuild_dependents
    return ProjectInput(**changed), SettingsChange(
        sent, None if rebuild == project.rebuild_dependents else rebuild
    )


def _given(change: ProjectInput) -> bool:
    return any(getattr(change, f.name) is not None for f in dataclasses.fields(change))


# A new project ---------------------------------------------------------------------------


def _add_form(
    request: web.Request, owner: str, values: ProjectForm, error: str | None = None
) -> web.Response:
    config = request.app[KOPERS].config
    return shown(
        request,
        "project_add.html",
        400 if error else 200,
        owner=owner,
        action=owner_url(owner) + "add/",
        values=values,
        chroots=[c.name for c in config.enabled_chroots],
        error=error,
    )


async def _may_create(request: web.Request, user: User, owner: str) -> None:
    store = request.app[KOPERS].store
    await access.authorize(store, user, access.Action.CREATE_PROJECT, access.Target(owner))


@routes.get("/coprs/g/{group}/add/")
@routes.get("/coprs/{owner}/add/")
@page
async def add_page(request: web.Request) -> web.StreamResponse:
    user = await viewer(request)
    owner = page_owner(request)
    await _may_create(request, user, owner)
    config = request.app[KOPERS].config
    # Every chroot on offer is ticked at first, as Copr's form has them.
    values = ProjectForm(chroots=tuple(c.name for c in config.enabled_chroots))
    return _add_form(request, owner, values)


@routes.post("/coprs/g/{group}/add/")
@routes.post("/coprs/{owner}/add/")
@page
async def add(request: web.Request) -> web.StreamResponse:
    form, user = await form_user(request)
    owner = page_owner(request)
    await _may_create(request, user, owner)
    kopers = request.app[KOPERS]
    values = ProjectForm.posted(form)
    try:
        data = bodies.new_project(values.body(), max_text(request))
        settings = values.settings()
        async with kopers.atomic():
            project = await kopers.projects.create(user, owner, data)
            await kopers.audit(
                user,
                request.remote,
                "project.create",
                project.full_name,
                {"chroots": project.chroots},
            )
            if settings.rebuild_dependents:
                # What PATCH /api/projects/... would do next, in the same transaction.
                only = SettingsChange({}, True)
                project = await kopers.projects.update_settings(user, project, only)
                await kopers.audit(
                    user, request.remote, "project.storage", project.full_name, only.details()
                )
    except (BadRequest, Conflict) as exc:
        return _add_form(request, owner, values, exc.message)
    return back_to(project_url(project.owner, project.name))


# Settings ------------------------------------------------------------------------------


def _edit_form(
    request: web.Request,
    project: Project,
    facts: access.Facts,
    values: ProjectForm,
    error: str | None = None,
) -> web.Response:
    config = request.app[KOPERS].config
    offered = [c.name for c in config.enabled_chroots]
    return shown(
        request,
        "project_edit.html",
        400 if error else 200,
        tab="settings",
        project=project,
        values=values,
        # A chroot no longer on offer stays listed while the project has it.
        chroots=offered + [c for c in project.chroots if c not in offered],
        may_delete=_may_delete(project, facts),
        confirming=False,
        error=error,
    )


def _may_delete(project: Project, facts: access.Facts) -> bool:
    user = facts.user
    if not access.may(facts, access.Action.DELETE_PROJECT) or user is None:
        return False
    return user.is_admin or not project.options.persistent


@routes.get("/coprs/g/{group}/{project}/edit/")
@routes.get("/coprs/{owner}/{project}/edit/")
@page
async def edit_page(request: web.Request) -> web.StreamResponse:
    user = await viewer(request)
    project, facts = await editable(request, user)
    return _edit_form(request, project, facts, ProjectForm.of(project))


@routes.post("/coprs/g/{group}/{project}/edit/")
@routes.post("/coprs/{owner}/{project}/edit/")
@page
async def edit(request: web.Request) -> web.StreamResponse:
    form, user = await form_user(request)
    project, facts = await editable(request, user)
    kopers = request.app[KOPERS]
    values = dataclasses.replace(ProjectForm.posted(form), name=project.name)
    try:
        given, settings = _changes(values, project, max_text(request))
        # The API's two calls (PUT project/edit, PATCH settings) as one change.
        async with kopers.atomic():
            if _given(given):
                project = await kopers.projects.edit(user, project, given)
                await kopers.audit(
                    user, request.remote, "project.edit", project.full_name, given.details()
                )
            if settings.details():
                project = await kopers.projects.update_settings(user, project, settings)
                await kopers.audit(
                    user, request.remote, "project.storage", project.full_name, settings.details()
                )
    except (BadRequest, Conflict) as exc:
        return _edit_form(request, project, facts, values, exc.message)
    return back_to(project_url(project.owner, project.name))


# Deleting ------------------------------------------------------------------------------


async def _deletable(request: web.Request, user: User) -> Project:
    project = await page_project(request)
    store = request.app[KOPERS].store
    await access.authorize(store, user, access.Action.DELETE_PROJECT, access.Target.of(project))
    return project


def _confirm_form(request: web.Request, project: Project, error: str | None = None) -> web.Response:
    return shown(
        request,
        "project_edit.html",
        400 if error else 200,
        tab="settings",
        project=project,
        confirming=True,
        error=error,
    )


@routes.get("/coprs/g/{group}/{project}/delete/")
@routes.get("/coprs/{owner}/{project}/delete/")
@page
async def delete_page(request: web.Request) -> web.StreamResponse:
    user = await viewer(request)
    return _confirm_form(request, await _deletable(request, user))


@routes.post("/coprs/g/{group}/{project}/delete/")
@routes.post("/coprs/{owner}/{project}/delete/")
@page
async def delete(request: web.Request) -> web.StreamResponse:
    form, user = await form_user(request)
    project = await _deletable(request, user)
    if form.get("confirm", "").strip() != project.name:
        return _confirm_form(
            request, project, "Type the project's name to confirm: nothing was deleted."
        )
    await remove_project(request.app[KOPERS], user, project, request.remote)
    return back_to(owner_url(project.owner))


def add_routes(app: web.Application) -> None:
    app.add_routes(routes)
