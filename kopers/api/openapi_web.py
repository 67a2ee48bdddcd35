"""The /api/ page and its token forms as OpenAPI operations. Pure.

The handlers are in apipage.py. These are HTML pages and browser forms, not
JSON calls: a browser session (the `kopers_session` cookie, made by signing
in at /login/) authorises the forms, each with the session's CSRF token, and
HTTP Basic credentials authorise none of them. They are described here
because they live under /api/.
"""

from __future__ import annotations

from typing import Any

from kopers.api.openapi_ops import op, p
from kopers.api.openapi_schemas import PATH_NAME, Schema

SESSION = "session"
SESSION_SCHEME: Schema = {
    "type": "apiKey",
    "in": "cookie",
    "name": "kopers_session",
    "description": (
        "A browser session, made by signing in at /login/. Its forms also need the"
        " page's `csrf_token`, and are refused from another origin."
    ),
}
PAGE: Schema = {"type": "string", "description": "An HTML page."}
FORM: Schema = {
    "required": True,
    "content": {
        "application/x-www-form-urlencoded": {
            "schema": {
                "type": "object",
                "required": ["csrf_token"],
                "properties": {
                    "csrf_token": {
                        "type": "string",
                        "description": "The token of the page's forms.",
                    }
                },
            }
        }
    },
}


def _page_op(summary: str, **kw: Any) -> dict[str, Any]:
    operation = op(summary, "kopers", PAGE, media="text/html", **kw)
    # Signed out, the page explains; the forms need a session (a 403 otherwise).
    operation["security"] = [{}, {SESSION: []}] if "body" not in kw else [{SESSION: []}]
    return operation


def web_paths() -> dict[str, dict[str, Any]]:
    return {
        "/api/": {
            "get": _page_op(
                "The API tokens page",
                description=(
                    "Signed out: what copr-cli needs in `~/.config/copr`, and a link to sign in."
                    " Signed in: the user's tokens, with forms to make and revoke them."
                ),
            )
        },
        "/api/tokens/new/": {
            "post": _page_op(
                "Make a token (a form of the tokens page)",
                body=FORM,
                errors=(400, 403),
                description=(
                    "The tokens page again, with the new token's complete copr-cli config,"
                    " shown this once. The token lasts `server.token_days`."
                ),
            )
        },
        "/api/tokens/{login}/revoke/": {
            "post": _page_op(
                "Revoke one of one's tokens (a form of the tokens page)",
                params=(p("login", PATH_NAME, "The token's login (copr-cli's `login =`)."),),
                body=FORM,
                errors=(400, 403, 404, 409),
                description="The tokens page again; the token's next use fails.",
            )
        },
    }
