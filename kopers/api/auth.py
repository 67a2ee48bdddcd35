"""Who is calling: HTTP Basic credentials -> User, the Copr way; token revocation.

copr-cli sends credentials only on mutating calls (and permissions/get);
every other read is anonymous, so reads must not require them. A wrong,
revoked or expired token gets Copr's 401 JSON error, which copr-cli prints.

`DELETE /api/tokens/<login>` lets a token's owner (or a site admin) revoke
it; the admin's CLI equivalent is `kopers token revoke LOGIN`.
"""

from __future__ import annotations

import base64
import binascii
from datetime import UTC, datetime

from aiohttp import web

from kopers import access, tokens
from kopers.api import fields
from kopers.api.keys import KOPERS
from kopers.api.params import path_name
from kopers.errors import AuthenticationError, BadRequest, Conflict, NotFound
from kopers.models import Project, User


def invalid_login(public_url: str) -> AuthenticationError:
    return AuthenticationError(
        f"Login invalid/expired. Please visit {public_url}/api to get or renew your API token."
    )


def parse_basic(header: str) -> tuple[str, str] | None:
    """`Basic base64(login:token)` -> (login, token); None if not Basic or not a login. Pure.

    A login or token that no token could have (control characters, NUL among
    them, or over 255 bytes) is a wrong login like any other, and never
    reaches the database.
    """
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic" or not value:
        return None
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode()
    except (binascii.Error, ValueError):  # ValueError: non-ASCII text, which b64decode refuses
        return None
    login, sep, secret = decoded.partition(":")
    if not sep:
        return None
    try:
        return fields.name(login, "login"), fields.line(secret, "token", fields.MAX_NAME_BYTES)
    except BadRequest:
        return None


async def current_user(request: web.Request) -> User | None:
    """The authenticated user, None when no credentials were sent."""
    header = request.headers.get("Authorization")
    if not header:
        return None
    kopers = request.app[KOPERS]
    url = kopers.config.server.public_url
    creds = parse_basic(header)
    if creds is None:
        raise invalid_login(url)
    login, secret = creds
    record = await kopers.store.token(login)
    if record is None or record.revoked or not tokens.matches(secret, record.secret_hash):
        raise invalid_login(url)
    if tokens.expired(record.expires_on, datetime.now(UTC)):
        raise invalid_login(url)
    await kopers.store.touch_token(login)
    return record.user


async def require_user(request: web.Request) -> User:
    user = await current_user(request)
    if user is None:
        raise AuthenticationError("This operation requires API authentication (a login and token).")
    return user


routes = web.RouteTableDef()


async def editable_project(
    request: web.Request, owner_key: str = "owner", project_key: str = "project"
) -> tuple[User, Project]:
    """The signed-in caller and the project the path names, which the caller may edit."""
    kopers = request.app[KOPERS]
    user = await require_user(request)
    project = await kopers.store.get_project(
        path_name(request, owner_key), path_name(request, project_key)
    )
    await access.authorize(
        kopers.store, user, access.Action.EDIT_PROJECT, access.Target.of(project)
    )
    return user, project


@routes.delete("/api/tokens/{login}")
async def revoke_token(request: web.Request) -> web.Response:
    kopers = request.app[KOPERS]
    user = await require_user(request)
    login = path_name(request, "login")
    record = await kopers.store.token(login)
    if record is None:
        raise NotFound(f"token {login} does not exist")
    owner = access.Target(record.user.name)
    await access.authorize(kopers.store, user, access.Action.REVOKE_TOKEN, owner)
    async with kopers.atomic():
        if not await kopers.store.revoke_token(login):
            raise Conflict(f"token {login} is already revoked")
        await kopers.audit(user, request.remote, "token.revoke", record.user.name, {"login": login})
    return web.json_response({"login": login, "revoked": True})


def add_routes(app: web.Application) -> None:
    app.add_routes(routes)
