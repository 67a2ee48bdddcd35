"""The /api/ page: what copr-cli needs, and the signed-in user's API tokens.

Signed out, the page says what goes into ~/.config/copr and links to sign
in. Signed in, it lists the user's tokens (login, dates, state; never a
secret) with a form to revoke each, and a form to make one. A new token is
made as `kopers token create` makes it (kopers.tokens, the store), with the
server's lifetime (`server.token_days`), and its complete copr-cli config is
shown in that one answer only: the secret is stored only as a digest.

The forms are page forms: a browser session and its CSRF token authorise
them (kopers.api.websession), never HTTP Basic. The JSON routes under /api/
are other paths and keep token authentication only.
"""

from __future__ import annotations

from datetime import UTC, datetime

from aiohttp import web

from kopers import tokens
from kopers.api import websession
from kopers.api.keys import KOPERS
from kopers.api.params import path_name
from kopers.api.views import render
from kopers.errors import Conflict, NotFound
from kopers.models import User

routes = web.RouteTableDef()


@routes.get("/api")
async def add_slash(request: web.Request) -> web.Response:
    raise web.HTTPPermanentRedirect("/api/")


@routes.get("/api/")
async def api_page(request: web.Request) -> web.StreamResponse:
    return await _page(request, await websession.web_user(request))


async def _page(
    request: web.Request,
    user: User | None,
    *,
    config: str | None = None,
    notice: str | None = None,
) -> web.StreamResponse:
    kopers = request.app[KOPERS]
    listed = await kopers.store.list_tokens(user) if user is not None else []
    page = render(
        "api_page.html",
        user=user,
        csrf=websession.csrf_token(request),
        url=kopers.config.server.public_url,
        token_days=kopers.config.server.token_days,
        tokens=list(reversed(listed)),  # newest first
        now=datetime.now(UTC),
        expired=tokens.expired,
        when=_when,
        config=config,
        notice=notice,
    )
    return websession.private(page)


def _when(value: datetime | None, none: str = "never") -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC") if value else none


@routes.post("/api/tokens/new/")
async def new_token(request: web.Request) -> web.StreamResponse:
    await websession.checked_form(request)
    user = await websession.require_web_user(request)
    kopers = request.app[KOPERS]
    new = tokens.generate()
    expires = tokens.expires_on(datetime.now(UTC), kopers.config.server.token_days)
    async with kopers.atomic():
        await kopers.store.create_token(user.id, new.login, new.digest, expires)
        await kopers.audit(
            user, request.remote, "token.create", user.name, {"login": new.login, "via": "web"}
        )
    config = tokens.copr_cli_config(kopers.config.server.public_url, user.name, new)
    return await _page(request, user, config=config)


@routes.post("/api/tokens/{login}/revoke/")
async def revoke_token(request: web.Request) -> web.StreamResponse:
    await websession.checked_form(request)
    user = await websession.require_web_user(request)
    kopers = request.app[KOPERS]
    login = path_name(request, "login")
    record = await kopers.store.token(login)
    if record is None or record.user.id != user.id:
        # Another user's token is no business of this page: as if it did not exist.
        raise NotFound(f"you have no token {login}")
    async with kopers.atomic():
        if not await kopers.store.revoke_token(login):
            raise Conflict(f"token {login} is already revoked")
        await kopers.audit(
            user, request.remote, "token.revoke", user.name, {"login": login, "via": "web"}
        )
    return await _page(request, user, notice=f"Token {login} is revoked.")


def add_routes(app: web.Application) -> None:
    app.add_routes(routes)
