"""The buttons of a build's and a package's pages: cancel, resubmit, delete, rebuild.

Each is a small form posted with the page's CSRF token (kopers.api.websession)
to a route of its own, and does what the API's call does, through the same
domain operation: `Builds.cancel` and `Builds.delete` (with their audit
events, in one transaction), `Submissions.resubmit` and the package's build
(`Packages.submission_for`) through `Kopers.submit`. A form answers 303:
back to the build's page, to the new build's page, or, after a delete, to
the project's builds. Deleting needs its confirmation box ticked.

The pages show a button only to those the API lets use it (kopers.access),
and only while it can work (cancel while the build runs, resubmit and
delete once it ended); the routes check everything again.
"""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from kopers import access
from kopers.api import websession
from kopers.api.forms_submit import new_build_path
from kopers.api.keys import KOPERS
from kopers.api.pages import page, page_project, project_url
from kopers.api.params import path_id, path_name
from kopers.buildrequest import BuildRequest
from kopers.errors import BadRequest
from kopers.models import Build, Project, SourceType

routes = web.RouteTableDef()

# Sources a resubmit cannot take again: their upload is not kept to build from.
NOT_RESUBMITTED = frozenset({SourceType.RPM_UPLOAD, SourceType.SPEC})


@dataclass(frozen=True, slots=True)
class BuildActions:
    """The build page's buttons for its viewer, and the token their forms carry."""

    csrf: str
    cancel: bool
    resubmit: bool
    delete: bool


@dataclass(frozen=True, slots=True)
class ProjectActions:
    """What a project page offers its viewer: building (the new-build link, a rebuild)."""

    csrf: str
    build: bool


def plan_build_actions(
    csrf: str, build: Build, may: frozenset[access.Action], persistent: bool, admin: bool
) -> BuildActions:
    """Which buttons a build's page shows, from what its viewer may do. Pure."""
    ended = build.state.finished
    return BuildActions(
        csrf=csrf,
        cancel=access.Action.CANCEL_BUILD in may and not ended,
        resubmit=access.Action.BUILD in may and ended and build.source_type not in NOT_RESUBMITTED,
        delete=access.Action.DELETE_BUILD in may and ended and (admin or not persistent),
    )


async def build_actions(request: web.Request, build: Build) -> BuildActions | None:
    """The build page's buttons; None for a browser not signed in."""
    user = await websession.web_user(request)
    if user is None:
        return None
    store = request.app[KOPERS].store
    facts = await store.access_facts(
        user, access.Target(build.owner, build.project, build.project_id)
    )
    wanted = (access.Action.BUILD, access.Action.CANCEL_BUILD, access.Action.DELETE_BUILD)
    may = frozenset(a for a in wanted if access.may(facts, a))
    project = await store.project_by_id(build.project_id)
    return plan_build_actions(
        websession.csrf_token(request), build, may, project.options.persistent, user.is_admin
    )


async def project_actions(request: web.Request, project: Project) -> ProjectActions | None:
    """A project page's build links and buttons; None for a browser not signed in."""
    user = await websession.web_user(request)
    if user is None:
        return None
    facts = await request.app[KOPERS].store.access_facts(user, access.Target.of(project))
    return ProjectActions(websession.csrf_token(request), access.may(facts, access.Action.BUILD))


def build_page_path(build: Build) -> str:
    return f"{project_url(build.owner, build.project)}build/{build.id}/"


@routes.post(r"/coprs/build/{build_id:\d+}/cancel/")
@page
async def cancel(request: web.Request) -> web.StreamResponse:
    await websession.checked_form(request)
    user = await websession.require_web_user(request)
    kopers = request.app[KOPERS]
    build_id = path_id(request, "build_id")
    async with kopers.atomic():
        build = await kopers.builds.cancel(user, build_id)
        await kopers.audit(
            user,
            request.remote,
            "build.cancel",
            f"{build.owner}/{build.project}",
            {"build": build.id, "via": "web"},
        )
    raise web.HTTPSeeOther(build_page_path(build))


@routes.post(r"/coprs/build/{build_id:\d+}/resubmit/")
@page
async def resubmit(request: web.Request) -> web.StreamResponse:
    await websession.checked_form(request)
    user = await websession.require_web_user(request)
    kopers = request.app[KOPERS]
    build_id = path_id(request, "build_id")
    build = await kopers.submit(
        user,
        request.remote,
        lambda: kopers.submissions.resubmit(user, build_id),
        lambda: {"via": "web"},
    )
    raise web.HTTPSeeOther(build_page_path(build))


@routes.post(r"/coprs/build/{build_id:\d+}/delete/")
@page
async def delete(request: web.Request) -> web.StreamResponse:
    form = await websession.checked_form(request)
    user = await websession.require_web_user(request)
    kopers = request.app[KOPERS]
    build = await kopers.store.get_build(path_id(request, "build_id"))
    if form.get("confirm") != "yes":
        raise BadRequest(f"tick the box to confirm that build {build.id} is to be deleted")
    async with kopers.atomic():
        deleted = await kopers.builds.delete(user, [build.id])
        for build_id in deleted:
            await kopers.audit(
                user,
                request.remote,
                "build.delete",
                f"{build.owner}/{build.project}",
                {"build": build_id, "via": "web"},
            )
    raise web.HTTPSeeOther(f"{project_url(build.owner, build.project)}builds/")


@routes.post("/coprs/g/{group}/{project}/package/{package_name}/rebuild/")
@routes.post("/coprs/{owner}/{project}/package/{package_name}/rebuild/")
@page
async def rebuild(request: web.Request) -> web.StreamResponse:
    """A build of the package from its stored source, in the project's chroots (as the API's)."""
    await websession.checked_form(request)
    user = await websession.require_web_user(request)
    kopers = request.app[KOPERS]
    project = await page_project(request)
    package = await kopers.store.get_package(project.id, path_name(request, "package_name"))
    submission = await kopers.packages.submission_for(user, project, package, BuildRequest())
    build = await kopers.submit(user, request.remote, submission, lambda: {"via": "web"})
    raise web.HTTPSeeOther(new_build_path(project, [build]))


def add_routes(app: web.Application) -> None:
    app.add_routes(routes)
