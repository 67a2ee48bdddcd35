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
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any, TypeVar

import jinja2
from aiohttp import web

from kopers.api.keys import KOPERS
from kopers.api.params import path_name
from kopers.models import Project

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


def render(name: str, **context: Any) -> web.Response:
    return render_status(name, 200, **context)


def render_status(name: str, http_status: int, **context: Any) -> web.Response:
    text = _env.get_template(name).render(**context)
    return web.Response(text=text, status=http_status, content_type="text/html")


def page(handler: H) -> H:
    """Mark a handler as an HTML page: its errors are answered as pages (see error_page)."""
    setattr(handler, PAGE_MARK, True)
    return handler


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
        "error.html", status, status=status, title=titles.get(status, "Error"), message=message
    )


async def page_project(request: web.Request) -> Project:
    """The project a page URL names: `/coprs/<owner>/<name>/...`, `/coprs/g/<group>/<name>/...`."""
    if "group" in request.match_info:
        owner = "@" + path_name(request, "group")
    else:
        owner = path_name(request, "owner")
    return await request.app[KOPERS].store.get_project(owner, path_name(request, "project"))
