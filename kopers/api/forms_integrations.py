"""A project's integrations in the browser: `/coprs/<owner>/<project>/integrations/`.

The webhook URLs a forge (GitHub, GitLab, Bitbucket, Pagure) or any script
(custom) sends its deliveries to, exactly as kopers.api.webhooks_in routes
them: each carries the project's id and its webhook secret. A form makes a
new secret (the old URLs stop working), as `copr-cli new-webhook-secret`
does. Below, the project's outgoing hooks (kopers.api.hooks): a form adds
one (its secret shown in that one answer only), another deletes one.

The secret is a credential: the page is for those who may edit the project
(403 for others), is never cached, and its forms go through the same
checks and operations as the API's calls, with the same audit events.
The same under /coprs/g/<group>/<project>/.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from urllib.parse import urlsplit

from aiohttp import web

from kopers.api import hooks, webhooks_in
from kopers.api.forms_project import back_to, editable, form_user, shown, viewer
from kopers.api.keys import KOPERS
from kopers.api.pages import page, project_url, segment
from kopers.api.params import path_id
from kopers.errors import BadRequest, Conflict
from kopers.forgehook import Forge
from kopers.models import Project
from kopers.notifications import Hook

routes = web.RouteTableDef()
PACKAGE = "PACKAGE_NAME"  # the custom URL's last part: the package to build


@dataclass(frozen=True, slots=True)
class WebhookUrl:
    forge: str
    url: str


def webhook_urls(public_url: str, project: Project) -> list[WebhookUrl]:
    """Each forge's webhook URL of the project, as the server routes them. Pure."""
    out = []
    for forge, path in webhooks_in.paths():
        if not path.endswith("/"):
            continue  # each route is there with and without the slash: show one
        package = PACKAGE if forge is Forge.CUSTOM else ""
        filled = path.format(
            project_id=project.id, uuid=segment(project.webhook_secret), package_name=package
        )
        out.append(WebhookUrl(str(forge), public_url + filled))
    return out


async def _page(
    request: web.Request,
    project: Project,
    *,
    new_hook: tuple[Hook, str] | None = None,
    hook_url: str = "",
    error: str | None = None,
) -> web.Response:
    kopers = request.app[KOPERS]
    response = shown(
        request,
        "integrations.html",
        400 if error else 200,
        tab="integrations",
        project=project,
        webhooks=webhook_urls(kopers.config.server.public_url, project),
        package=PACKAGE,
        hooks=await kopers.store.hooks_of(project.id),
        new_hook=new_hook,
        hook_url=hook_url,
        error=error,
    )
    return response


def _here(project: Project) -> str:
    return project_url(project.owner, project.name) + "integrations/"


@routes.get("/coprs/g/{group}/{project}/integrations/")
@routes.get("/coprs/{owner}/{project}/integrations/")
@page
async def integrations_page(request: web.Request) -> web.StreamResponse:
    user = await viewer(request)
    project, _ = await editable(request, user)
    return await _page(request, project)


@routes.post("/coprs/g/{group}/{project}/integrations/secret/")
@routes.post("/coprs/{owner}/{project}/integrations/secret/")
@page
async def new_secret(request: web.Request) -> web.StreamResponse:
    _, user = await form_user(request)
    project, _ = await editable(request, user)
    kopers = request.app[KOPERS]
    async with kopers.atomic():
        await kopers.projects.new_webhook_secret(user, project)
        # The event says that it changed, never what to (as the API's).
        await kopers.audit(user, request.remote, "project.webhook-secret", project.full_name, {})
    return back_to(_here(project))


@routes.post("/coprs/g/{group}/{project}/integrations/hooks/")
@routes.post("/coprs/{owner}/{project}/integrations/hooks/")
@page
async def add_hook(request: web.Request) -> web.StreamResponse:
    form, user = await form_user(request)
    project, _ = await editable(request, user)
    kopers = request.app[KOPERS]
    url = form.get("url", "").strip()
    secret = form.get("secret", "").strip()
    try:
        new = hooks.parse_hook({"url": url, "secret": secret or None})
        secret = new.secret or secrets.token_urlsafe(32)
        async with kopers.atomic():
            hook = await kopers.store.create_hook(project.id, new.url, secret, user.id)
            details = {"hook": hook.id, "host": urlsplit(hook.url).hostname or ""}
            await kopers.audit(user, request.remote, "hook.create", project.full_name, details)
    except (BadRequest, Conflict) as exc:
        return await _page(request, project, hook_url=url, error=exc.message)
    # The secret is shown in this answer only: no redirect, as the API answers it once.
    return await _page(request, project, new_hook=(hook, secret))


@routes.post("/coprs/g/{group}/{project}/integrations/hooks/{hook_id}/delete/")
@routes.post("/coprs/{owner}/{project}/integrations/hooks/{hook_id}/delete/")
@page
async def delete_hook(request: web.Request) -> web.StreamResponse:
    _, user = await form_user(request)
    project, _ = await editable(request, user)
    kopers = request.app[KOPERS]
    hook_id = path_id(request, "hook_id")
    async with kopers.atomic():
        hook = await kopers.store.get_hook(project.id, hook_id)
        await kopers.store.delete_hook(project.id, hook.id)
        details = {"hook": hook.id, "host": urlsplit(hook.url).hostname or ""}
        await kopers.audit(user, request.remote, "hook.delete", project.full_name, details)
    return back_to(_here(project))


def add_routes(app: web.Application) -> None:
    app.add_routes(routes)
