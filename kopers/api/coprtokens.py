"""`POST /api_3/api-token`: copr-cli's new-api-token, which replaces the caller's token.

As upstream, the call "generates a new API token and destroys the old one":
the token the request is authenticated with is revoked, a new one of the
same user is made with the server's lifetime for new tokens
(`server.token_days`), and both happen in one transaction with their audit
event. The user's other tokens are left alone. copr-cli writes `api_login`
and `api_token` into its config, and `expiration` into its
`# expiration date:` comment.
"""

from __future__ import annotations

from datetime import UTC, datetime

from aiohttp import web

from kopers import tokens
from kopers.api.auth import invalid_login, parse_basic, require_user
from kopers.api.keys import KOPERS

routes = web.RouteTableDef()


@routes.post("/api_3/api-token")
async def new_api_token(request: web.Request) -> web.Response:
    kopers = request.app[KOPERS]
    user = await require_user(request)
    # require_user accepted these credentials, so they parse.
    creds = parse_basic(request.headers["Authorization"])
    assert creds is not None
    old_login = creds[0]
    new = tokens.generate()
    expires = tokens.expires_on(datetime.now(UTC), kopers.config.server.token_days)
    async with kopers.atomic():
        if not await kopers.store.replace_token(old_login, user.id, new.login, new.digest, expires):
            # Revoked since it was checked: by another replacement of the same token.
            raise invalid_login(kopers.config.server.public_url)
        await kopers.audit(
            user,
            request.remote,
            "token.rotate",
            user.name,
            {"login": new.login, "replaces": old_login},
        )
    return web.json_response(
        {
            "api_login": new.login,
            "api_token": new.secret,
            "expiration": tokens.expiration_date(expires),
        }
    )


def add_routes(app: web.Application) -> None:
    app.add_routes(routes)
