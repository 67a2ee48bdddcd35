"""Reading a request's values: path placeholders, query parameters, bodies, headers.

Copr's clients send path placeholders again as query parameters, numbers
may arrive as strings, and bodies must be JSON objects. Each reader here
takes the raw value from the request and hands it to a parser of
`kopers.api.fields`, so every problem is a BadRequest (400) with a one-line
message naming the parameter, and nothing unparsed reaches a handler.
"""

from __future__ import annotations

import json
import re
from typing import Any, overload

from aiohttp import web

from kopers.api import fields
from kopers.api.keys import KOPERS
from kopers.errors import BadRequest

MAX_INT = fields.MAX_INT

# RFC 3986 host (a registered name or a bracketed IP literal) with an optional port.
_HOST = re.compile(r"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._~-]+)(:[0-9]{1,5})?")


def int_param(value: str | None, name: str, default: int | None = None) -> int | None:
    """A whole number given as text, bounded to bigint; `default` when absent or empty."""
    if value is None or value == "":
        return default
    return fields.integer(value, name)


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def parse_json(raw: bytes | str) -> Any:
    """A client's JSON text; BadRequest with a one-line reason for anything else.

    Python's json would take NaN and Infinity, which no JSON client sends and
    Postgres and the schema cannot hold; and nesting deep enough to exhaust the
    parser's recursion is refused like any other malformed body.
    """
    try:
        text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
        return json.loads(text, parse_constant=_no_constant)
    except UnicodeDecodeError:
        raise BadRequest("the request body is not valid JSON: it is not UTF-8") from None
    except RecursionError:
        raise BadRequest("the request body is not valid JSON: it is nested too deeply") from None
    except ValueError as exc:  # JSONDecodeError is a ValueError
        reason = str(exc).splitlines()[0][:120]
        raise BadRequest(f"the request body is not valid JSON: {reason}") from None


def paging(request: web.Request) -> tuple[int | None, int]:
    """Copr's `limit` (None: no limit) and `offset` (0 when absent)."""
    limit = query_int(request, "limit", lo=0)
    return limit, query_int(request, "offset", 0, lo=0)


async def json_body(request: web.Request) -> dict[str, Any]:
    """The request's JSON object body; {} when there is no body."""
    if not request.can_read_body:
        return {}
    return fields.body_object(parse_json(await request.read()), "the request body")


async def json_or_none(request: web.Request) -> Any:
    """The request's JSON value of any kind, None when there is no body."""
    if not request.can_read_body:
        return None
    return parse_json(await request.read())


def need(request: web.Request, name: str) -> str:
    """A required value, from the query or else the path (copr-cli sends both)."""
    value = request.query.get(name) or request.match_info.get(name)
    if not value:
        raise BadRequest(f"missing parameter {name}")
    return value


# -- typed readers ------------------------------------------------------------


def path_id(request: web.Request, name: str) -> int:
    """A positive id from a path placeholder: ASCII digits, at most bigint.

    Route patterns like `{build_id:\\d+}` also match other scripts' digits
    ("٣"), which int() would read as a number: they are refused here.
    """
    return fields.positive_id(request.match_info[name], name)


def path_name(request: web.Request, name: str) -> str:
    """A name from a path placeholder (owner, project, chroot, login)."""
    return fields.name(request.match_info[name], name)


def need_name(request: web.Request, name: str) -> str:
    """A required name from the query or else the path."""
    return fields.name(need(request, name), name)


def need_id(request: web.Request, name: str) -> int:
    """A required positive id from the query or else the path."""
    return fields.positive_id(need(request, name), name)


def query_name(request: web.Request, name: str) -> str | None:
    """An optional name from the query; None when absent or empty."""
    return fields.optional(fields.name, request.query.get(name), name)


def query_text(request: web.Request, name: str, max_bytes: int) -> str | None:
    """Optional free text from the query (a search); None when absent or empty."""
    return fields.optional(fields.text, request.query.get(name), name, max_bytes)


@overload
def query_int(
    request: web.Request, name: str, default: int, *, lo: int | None = ..., hi: int | None = ...
) -> int: ...


@overload
def query_int(
    request: web.Request,
    name: str,
    default: None = ...,
    *,
    lo: int | None = ...,
    hi: int | None = ...,
) -> int | None: ...


def query_int(
    request: web.Request,
    name: str,
    default: int | None = None,
    *,
    lo: int | None = None,
    hi: int | None = None,
) -> int | None:
    """An optional whole number from the query, in [lo, hi]; `default` when absent or empty."""
    value = request.query.get(name)
    if value is None or value == "":
        return default
    return fields.integer(value, name, lo=lo, hi=hi)


def query_bool(request: web.Request, name: str, default: bool = False) -> bool:
    """A flag from the query: python-copr sends `True`/`False`."""
    value = request.query.get(name)
    if value is None or value == "":
        return default
    return fields.boolean(value, name)


def max_text(request: web.Request) -> int:
    """The configured cap of one free-text field, in bytes."""
    return request.app[KOPERS].config.limits.max_text_bytes


def request_host(request: web.Request) -> str:
    """The Host the client asked for, when it is a host name or address with a port.

    It goes into URLs and .repo files; a URL parser refuses garbage like `a]b`.
    """
    host = request.host
    if not _HOST.fullmatch(host):
        raise BadRequest(f"the Host header is not a valid host name: {fields.shown(host)}")
    return host


def require_multipart(request: web.Request) -> None:
    """Refuse a body that is not multipart/form-data before anything reads it as one."""
    if request.content_type != "multipart/form-data":
        got = fields.shown(request.content_type)
        raise BadRequest(f"the request body must be multipart/form-data, got {got}")
