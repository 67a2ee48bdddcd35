"""What every HTML page shares: the jinja2 environment, page URLs, the project a URL names,
and the HTML error page.

Every template ending in .html is autoescaped: user text (descriptions,
package names, reasons, search terms) reaches the page only as text. A user
link (a homepage) is a link only when it is http(s); path segments in links
are percent-encoded.

Errors reach a page's client through the one place that maps them to HTTP
(kopers.api.app): `error_page` tells it which answers of a page are HTML. A
page's 404 always is (a browser shows it, a script reads the status); its
other errors are when the client asks for HTML, as browsers do, and stay
JSON for the rest, as on every other route.

Every page shows the account bar (base.html): `page` looks up who is signed
in (once per request, kopers.api.websession keeps it) and `render` hands it
to the template as `account`; the sign-in and API token pages, which look
their user up themselves, pass `user` and `csrf` instead.
"""

from __future__ import annotations

import contextvars
import functools
import urllib.parse
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar, cast

import jinja2
from aiohttp import web

from kopers.api import websession
from kopers.api.keys import KOPERS
from kopers.api.params import path_name
from kopers.models import Project, User

H = TypeVar("H", bound=Callable[[web.Request], Awaitable[web.StreamResponse]])
PAGE_MARK = "kopers_page"
PAGE_PREFIX = "/coprs/"  # an unrouted path under it is a page's 404 too

_env = jinja2.Environment(
    loader=jinja2.PackageLoader("kopers", "templates"),
    autoescape=jinja2.select_autoescape(["html"]),
)


def segment(value: object) -> str:
    """One path segment of a link, percent-encoded ('@' and '+' stay, as in owner names)."""
    return urllib.parse.quote(str(value), safe="@+")


def owner_path(owner: str) -> str:
    """`alice` -> `alice`, a group `@sig` -> `g/sig`: the owner's part of a page URL."""
    return "g/" + segment(owner[1:]) if owner.startswith("@") else segment(owner)


def owner_url(owner: str) -> str:
    return f"/coprs/{owner_path(owner)}/"


def project_url(owner: str, name: str) -> str:
    return f"/coprs/{owner_path(owner)}/{segment(name)}/"


def web_link(url: str | None) -> str | None:
    """A user's URL as a link target: http(s) only (never javascript: or data:)."""
    if not url:
        return None
    scheme = urllib.parse.urlsplit(url.strip()).scheme.lower()
    return url.strip() if scheme in ("http", "https") else None


def when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S UTC") if value is not None else ""


def took(start: datetime | None, end: datetime | None) -> str:
    """How long from start to end, as `1 h 02 min`, `3 min 05 s` or `7 s`."""
    if start is None or end is None:
        return ""
    seconds = max(0, int((end - start).total_seconds()))
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes:02d} min"
    return f"{minutes} min {seconds:02d} s" if minutes else f"{seconds} s"


_env.filters.update(segment=segment, weblink=web_link, when=when)
_env.globals.update(owner_url=owner_url, project_url=project_url, took=took)


# The account bar (base.html) -------------------------------------------------------------

# The page request being answered: render() finds its viewer here, whatever page it renders.
_SHOWN: contextvars.ContextVar[web.Request | None] = contextvars.ContextVar(
    "kopers_shown_page", default=None
)
_VIEWER: web.RequestKey[User | None] = web.RequestKey("kopers_page_viewer")


def login_url(here: str | None) -> str:
    """The sign-in page, coming back to `here` (a path and query of this server) after."""
    if not here:
        return "/login/"
    return "/login/?next=" + urllib.parse.quote(here, safe="/")


@dataclass(frozen=True, slots=True)
class Account:
    """What the account bar shows: who is signed in (None: no one), the token of its
    sign-out form, and the page to come back to after signing in (None: the home page)."""

    user: User | None
    csrf: str | None
    here: str | None

    @property
    def sign_in_url(self) -> str:
        return login_url(self.here)


def account_of(request: web.Request) -> Account | None:
    """The account bar of a page request whose viewer `page` looked up; None if it did not."""
    if _VIEWER not in request:
        return None
    user = request[_VIEWER]
    # Signed out, no token: the bar has no form then, and no login cookie is made for it.
    csrf = websession.csrf_token(request) if user is not None else None
    return Account(user, csrf, request.raw_path)


def _account(context: dict[str, Any]) -> Account | None:
    request = _SHOWN.get()
    if request is not None:
        return account_of(request)
    if "user" in context and "csrf" in context:
        # The sign-in and API token pages look their user up themselves and say so.
        user = context["user"]
        return Account(user, context["csrf"] if user is not None else None, None)
    return None


def render(name: str, **context: Any) -> web.Response:
    return render_status(name, 200, **context)


def render_status(name: str, http_status: int, **context: Any) -> web.Response:
    if "account" not in context:
        context["account"] = _account(context)
    text = _env.get_template(name).render(**context)
    response = web.Response(text=text, status=http_status, content_type="text/html")
    account = context["account"]
    if account is not None and account.csrf is not None:
        # The bar's sign-out form holds the session's token, good for every form.
        websession.private(response)
    return response


def page(handler: H) -> H:
    """Mark a handler as an HTML page: its errors are answered as pages (see error_page).

    The viewer is looked up first (once per request: kopers.api.websession
    keeps it), so that every page's account bar shows who is signed in.
    """

    @functools.wraps(handler)
    async def shown(request: web.Request) -> web.StreamResponse:
        request[_VIEWER] = await websession.web_user(request)
        token = _SHOWN.set(request)
        try:
            return await handler(request)
        finally:
            _SHOWN.reset(token)

    setattr(shown, PAGE_MARK, True)
    return cast(H, shown)


def is_page(request: web.Request) -> bool:
    """Whether the request went to a page, or to no route at all under /coprs/."""
    info = request.match_info
    if info.http_exception is not None:
        return request.path.startswith(PAGE_PREFIX)
    return bool(getattr(info.handler, PAGE_MARK, False))


def wants_html(request: web.Request) -> bool:
    accept = request.headers.get("Accept", "")
    return any(part.split(";", 1)[0].strip().lower() == "text/html" for part in accept.split(","))


def error_page(request: web.Request, status: int, message: str) -> web.Response | None:
    """The HTML answer to a page's error; None where the JSON error answer stays."""
    if not is_page(request) or not (status == 404 or wants_html(request)):
        return None
    titles = {400: "Bad request", 403: "Forbidden", 404: "Not found"}
    return render_status(
        "error.html",
        status,
        status=status,
        title=titles.get(status, "Error"),
        message=message,
        account=account_of(request),
    )


async def page_project(request: web.Request) -> Project:
    """The project a page URL names: `/coprs/<owner>/<name>/...`, `/coprs/g/<group>/<name>/...`."""
    if "group" in request.match_info:
        owner = "@" + path_name(request, "group")
    else:
        owner = path_name(request, "owner")
    return await request.app[KOPERS].store.get_project(owner, path_name(request, "project"))
