"""The new-build page: `/coprs/<owner>/<project>/add_build/` and its forms.

One page, one form per source: an SRPM upload, SRPMs by URL, a git
repository, a spec file upload. Each form carries the build options the API
takes (chroots, timeout, background, a batch to join or follow) and posts to
its own route below the page; a new build answers 303 to its page.

The forms are a second door to the API's gates, not a second
implementation: the text fields become the JSON body the API would parse
(kopers.api.bodies), an upload streams through the upload cap and spooler
(kopers.api.formupload), and the builds are made by the submission code
through `Kopers.submit`. A refusal (400, 413, 501) shows the form again
with the one-line message and the values sent; a caller who may not build
in the project gets the 403 page, and a signed-out browser is sent to sign
in from the page.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from multidict import MultiDict, MultiDictProxy

from kopers import access
from kopers.api import bodies, websession
from kopers.api.formupload import read_form_upload
from kopers.api.keys import KOPERS
from kopers.api.pages import page, page_project, project_url, render_status
from kopers.buildrequest import BuildRequest
from kopers.errors import BadRequest, KopersError
from kopers.models import Build, Project, User
from kopers.sourcekinds import SCM_METHODS

routes = web.RouteTableDef()

SECTIONS = ("upload", "url", "scm", "spec")
# Statuses a form answers by showing itself again; others (403, 404, ...) are error pages.
FORM_STATUSES = frozenset({400, 409, 413, 415, 501})
# The fields of the build options, as the API names them.
OPTION_FIELDS = ("timeout", "after_build_id", "with_build_id")


@dataclass(frozen=True, slots=True)
class Sent:
    """What one section's form sent, shown again with its error (values escaped by the page)."""

    section: str = ""
    fields: MultiDictProxy[str] = field(default_factory=lambda: MultiDictProxy(MultiDict()))

    def value(self, section: str, name: str, default: str = "") -> str:
        return self.fields.get(name, default) if section == self.section else default

    def checked(self, section: str, name: str, value: str, default: bool) -> bool:
        if section != self.section:
            return default
        return value in self.fields.getall(name, [])


def build_request(form: MultiDictProxy[str]) -> BuildRequest:
    """A form's build options -> the API's BuildRequest, through the API's parser.

    The chroot checkboxes are a list (none ticked: none wanted, which the
    submission refuses); an empty text field is "not given", as the API takes "".
    """
    data: dict[str, Any] = {key: form.get(key) for key in OPTION_FIELDS}
    data["chroots"] = form.getall("chroots", [])
    data["background"] = form.get("background") or None
    return bodies.build_request(data)


def new_build_path(project: Project, builds: Sequence[Build]) -> str:
    """Where a form's builds are shown: the build's page, or the builds list for several."""
    base = project_url(project.owner, project.name)
    return f"{base}build/{builds[0].id}/" if len(builds) == 1 else f"{base}builds/"


def sign_in_first(request: web.Request) -> web.HTTPSeeOther:
    return web.HTTPSeeOther("/login/?next=" + urllib.parse.quote(request.path, safe="/@+"))


async def builder_of(request: web.Request, user: User) -> Project:
    """The project the URL names, if `user` may build in it (the 403 page otherwise)."""
    store = request.app[KOPERS].store
    project = await page_project(request)
    await access.authorize(store, user, access.Action.BUILD, access.Target.of(project))
    return project


async def _form_page(
    request: web.Request,
    user: User,
    project: Project,
    status: int = 200,
    sent: Sent | None = None,
    error: str | None = None,
) -> web.StreamResponse:
    config = request.app[KOPERS].config
    response = render_status(
        "add_build.html",
        status,
        user=user,
        project=project,
        tab="builds",
        csrf=websession.csrf_token(request),
        sent=sent or Sent(),
        error=error,
        methods=SCM_METHODS,
        max_upload_mib=config.server.max_upload_mib,
        max_upload_bytes=config.server.max_upload_mib << 20,
    )
    return websession.private(response)


@routes.get("/coprs/g/{group}/{project}/add_build/")
@routes.get("/coprs/{owner}/{project}/add_build/")
@page
async def add_build_page(request: web.Request) -> web.StreamResponse:
    user = await websession.web_user(request)
    if user is None:
        raise sign_in_first(request)
    return await _form_page(request, user, await builder_of(request, user))


async def _submitted(
    request: web.Request,
    user: User,
    project: Project,
    sent: Sent,
    make: Callable[[], Awaitable[Build | list[Build]]],
) -> web.StreamResponse:
    """Run `make()` (parse and submit); 303 to what it built, or the form with its error."""
    try:
        builds = await make()
    except KopersError as exc:
        if exc.status not in FORM_STATUSES:
            raise
        return await _form_page(request, user, project, exc.status, sent, exc.message)
    listed = [builds] if isinstance(builds, Build) else list(builds)
    raise web.HTTPSeeOther(new_build_path(project, listed))


def _via_web() -> dict[str, str]:
    return {"via": "web"}


@routes.post("/coprs/g/{group}/{project}/add_build/url/")
@routes.post("/coprs/{owner}/{project}/add_build/url/")
@page
async def submit_url(request: web.Request) -> web.StreamResponse:
    form = await websession.checked_form(request)
    user = await websession.require_web_user(request)
    project = await builder_of(request, user)
    kopers = request.app[KOPERS]

    async def make() -> list[Build]:
        options = build_request(form)
        urls = bodies.package_urls({"pkgs": form.get("pkgs", "")})
        return await kopers.submit(
            user,
            request.remote,
            lambda: kopers.submissions.from_urls(user, project.owner, project.name, options, urls),
            _via_web,
        )

    return await _submitted(request, user, project, Sent("url", form), make)


@routes.post("/coprs/g/{group}/{project}/add_build/scm/")
@routes.post("/coprs/{owner}/{project}/add_build/scm/")
@page
async def submit_scm(request: web.Request) -> web.StreamResponse:
    form = await websession.checked_form(request)
    user = await websession.require_web_user(request)
    project = await builder_of(request, user)
    kopers = request.app[KOPERS]

    async def make() -> Build:
        options = build_request(form)
        keys = ("clone_url", "committish", "subdirectory", "spec", "source_build_method")
        scm = bodies.scm_source({"scm_type": "git", **{k: form.get(k) for k in keys}})
        return await kopers.submit(
            user,
            request.remote,
            lambda: kopers.submissions.from_scm(user, project.owner, project.name, options, scm),
            _via_web,
        )

    return await _submitted(request, user, project, Sent("scm", form), make)


@routes.post("/coprs/g/{group}/{project}/add_build/upload/")
@routes.post("/coprs/{owner}/{project}/add_build/upload/")
@page
async def submit_upload(request: web.Request) -> web.StreamResponse:
    """An SRPM or a spec file. Who is asking is known before a byte of the body is read."""
    kopers = request.app[KOPERS]
    websession.check_origin(request)
    user = await websession.require_web_user(request)
    project = await builder_of(request, user)
    try:
        upload = await read_form_upload(
            request,
            kopers.paths.incoming,
            kopers.config,
            lambda sent: websession.token_matches(request, sent),
        )
    except KopersError as exc:
        if exc.status == 413:
            request.protocol.close()  # the rest of the body is not wanted
        if exc.status not in FORM_STATUSES:
            raise
        return await _form_page(request, user, project, exc.status, Sent(), exc.message)
    form = upload.fields
    section = "spec" if form.get("section") == "spec" else "upload"

    async def make() -> Build:
        try:
            options = build_request(form)
            package = upload.package
            if package is None:
                raise BadRequest("choose a file to upload")
            if (section == "spec") != package.name.endswith(".spec"):
                raise BadRequest(
                    "a spec file's name ends in .spec; upload it in the spec file section"
                    if section == "upload"
                    else "the spec file's name must end in .spec"
                )
        except KopersError:
            upload.discard()
            raise
        return await kopers.submit(
            user,
            request.remote,
            lambda: kopers.submissions.from_upload(
                user, project.owner, project.name, options, package
            ),
            _via_web,
        )

    try:
        return await _submitted(request, user, project, Sent(section, form), make)
    finally:
        upload.discard()  # the submission moved the file into place, or it goes


def add_routes(app: web.Application) -> None:
    app.add_routes(routes)
