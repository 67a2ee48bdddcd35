"""A project's outgoing webhooks: `/api/projects/{owner}/{project}/hooks`.

    GET    .../hooks                        the hooks (id, url, when, by whom)
    POST   .../hooks  {"url": ..., "secret": optional}
                                            a new hook; its secret is in this answer only
    DELETE .../hooks/{hook_id}              the hook and its deliveries
    GET    .../hooks/{hook_id}/deliveries?limit=N
                                            its deliveries, newest event first

Each of them is for those who may edit the project (its owner, its admins, a
group's admins, site admins): a hook's URL may itself be a credential (many
receivers put a token in it), so the list is no more public than the secret.
The secret is shown once, when the hook is made; a lost one means a new hook.
Hook changes are audited with the hook's host, never its URL.

The URL is checked here for its form only (http or https, at most 2000
characters, no user:password@, a host that is a DNS name or an IP address
written the one way a connection takes it: `2130706433`, `127.1` or `0x7f.1`
are refused, as a URL parser reads them as addresses and aiohttp refuses
them); where it may lead is the address policy's to decide at each delivery
(kopers.hooksender), since a name may resolve elsewhere later.
"""

from __future__ import annotations

import ipaddress
import re
import secrets
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from aiohttp import web

from kopers.api import fields
from kopers.api.auth import editable_project
from kopers.api.keys import KOPERS
from kopers.api.params import json_body, path_id, query_int
from kopers.errors import BadRequest
from kopers.models import Project, User
from kopers.notifications import Delivery, Hook

if TYPE_CHECKING:
    from kopers.service import Kopers

routes = web.RouteTableDef()
BASE = "/api/projects/{owner}/{project}/hooks"
MAX_URL_CHARS = 2000
MIN_SECRET, MAX_SECRET = 16, 256
DEFAULT_LIMIT, MAX_LIMIT = 100, 1000
_LABEL = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)")
# A last label that is a number (decimal, or 0x and hex) makes the host an IPv4
# address to URL parsers and resolvers (WHATWG URL, inet_aton), never a name.
_NUMBER = re.compile(r"[0-9]+|0[xX][0-9A-Fa-f]*")


@dataclass(frozen=True, slots=True)
class NewHook:
    url: str
    secret: str | None  # None: make one


def parse_hook(body: dict[str, Any]) -> NewHook:
    """A new hook's body -> NewHook; a 400 naming what is wrong. Pure."""
    secret = body.get("secret")
    return NewHook(hook_url(body.get("url")), None if secret is None else hook_secret(secret))


def hook_url(value: Any) -> str:
    """An http(s) URL to POST events to: bounded, without credentials, with a valid host."""
    if isinstance(value, str) and len(value) > MAX_URL_CHARS:
        raise BadRequest(f"url is longer than {MAX_URL_CHARS} characters")
    url = fields.url(value, "url", ("http", "https"))
    parts = urlsplit(url)
    if "@" in parts.netloc:
        raise BadRequest("url must not hold credentials (user:password@); sign with the secret")
    if parts.port == 0:
        raise BadRequest("url has port 0")
    host = parts.hostname
    if not host or not valid_host(host, bracketed="[" in parts.netloc):
        raise BadRequest(
            "url must name a host: a DNS name, or an IP address written as 192.0.2.1"
            f" or [2001:db8::1], got {fields.shown(url)}"
        )
    return url


def valid_host(host: str, bracketed: bool = False) -> bool:
    """A DNS name (IDNA allowed) or an IP address; an IPv6 one only in brackets. Pure.

    An IPv4 address only as four decimal numbers without leading zeros, and an
    IPv6 one without a zone (`%eth0` names an interface of this host).
    """
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        address = None
    if address is not None or bracketed:
        if isinstance(address, ipaddress.IPv6Address) and address.scope_id is not None:
            return False
        return address is not None and bracketed == (address.version == 6)
    try:
        name = host.encode("idna").decode("ascii")
    except UnicodeError:  # an empty label, one over 63 characters
        return False
    name = name.removesuffix(".")
    labels = name.split(".")
    if _NUMBER.fullmatch(labels[-1]):  # an address in another spelling
        return False
    return 0 < len(name) <= 253 and all(_LABEL.fullmatch(label) for label in labels)


def hook_secret(value: Any) -> str:
    if not isinstance(value, str):
        raise BadRequest(f"secret must be a string, got {fields.shown(value)}")
    if not MIN_SECRET <= len(value) <= MAX_SECRET:
        raise BadRequest(f"secret must be {MIN_SECRET} to {MAX_SECRET} characters long")
    if not value.isascii() or not value.isprintable():
        raise BadRequest("secret must be printable ASCII")
    return value


def hook_json(hook: Hook) -> dict[str, Any]:
    return {
        "id": hook.id,
        "url": hook.url,
        "created_at": hook.created_at.isoformat(),
        "created_by": hook.created_by,
    }


def delivery_json(d: Delivery) -> dict[str, Any]:
    n = d.notification
    return {
        "id": d.id,
        "notification": n.id,
        "event": str(n.kind),
        "build": n.build_id,
        "chroot": n.chroot,
        "event_state": n.state,
        "state": str(d.state),
        "attempts": d.attempts,
        "last_status": d.last_status,
        "last_answer": d.last_answer,
        "last_error": d.last_error,
        "created_at": n.at.isoformat(),
        "last_at": d.last_at.isoformat() if d.last_at else None,
        "next_at": d.next_at.isoformat() if d.state == "pending" else None,
        "delivered_at": d.delivered_at.isoformat() if d.delivered_at else None,
    }


async def _editable(request: web.Request) -> tuple[Kopers, User, Project]:
    """The caller, who must be signed in and may edit the project in the path."""
    user, project = await editable_project(request)
    return request.app[KOPERS], user, project


def _host(url: str) -> str:
    return urlsplit(url).hostname or ""


@routes.get(BASE)
async def list_hooks(request: web.Request) -> web.Response:
    kopers, _, project = await _editable(request)
    hooks = await kopers.store.hooks_of(project.id)
    return web.json_response({"items": [hook_json(h) for h in hooks]})


@routes.post(BASE)
async def create_hook(request: web.Request) -> web.Response:
    kopers, user, project = await _editable(request)
    new = parse_hook(await json_body(request))
    secret = new.secret or secrets.token_urlsafe(32)
    async with kopers.atomic():
        hook = await kopers.store.create_hook(project.id, new.url, secret, user.id)
        details = {"hook": hook.id, "host": _host(hook.url)}
        await kopers.audit(user, request.remote, "hook.create", project.full_name, details)
    return web.json_response({**hook_json(hook), "secret": secret})


@routes.delete(BASE + "/{hook_id}")
async def delete_hook(request: web.Request) -> web.Response:
    kopers, user, project = await _editable(request)
    hook_id = path_id(request, "hook_id")
    async with kopers.atomic():
        hook = await kopers.store.get_hook(project.id, hook_id)
        await kopers.store.delete_hook(project.id, hook.id)
        details = {"hook": hook.id, "host": _host(hook.url)}
        await kopers.audit(user, request.remote, "hook.delete", project.full_name, details)
    return web.json_response({"id": hook.id, "deleted": True})


@routes.get(BASE + "/{hook_id}/deliveries")
async def list_deliveries(request: web.Request) -> web.Response:
    kopers, _, project = await _editable(request)
    hook = await kopers.store.get_hook(project.id, path_id(request, "hook_id"))
    limit = query_int(request, "limit", DEFAULT_LIMIT, lo=1, hi=MAX_LIMIT)
    items = await kopers.store.deliveries_of(hook.id, limit)
    return web.json_response(
        {"items": [delivery_json(d) for d in items], "meta": {"limit": limit, "hook": hook.id}}
    )


def add_routes(app: web.Application) -> None:
    app.add_routes(routes)
