"""Reading request parameters the way Copr's clients send them.

Path placeholders arrive again as query parameters, numbers may arrive as
strings, and bodies must be JSON objects; every problem is a BadRequest
with a message naming the parameter.
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from kopers.errors import BadRequest

# Postgres' bigint: a larger number would reach the database and fail there.
MAX_INT = (1 << 63) - 1


def int_param(value: str | None, name: str, default: int | None = None) -> int | None:
    if value is None or value == "":
        return default
    if len(value) > 20 or not value.lstrip("-").isascii() or not value.lstrip("-").isdecimal():
        raise BadRequest(f"{name} must be a whole number, got {value[:40]!r}")
    number = int(value)
    if abs(number) > MAX_INT:
        raise BadRequest(f"{name} is out of range")
    return number


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
    limit = int_param(request.query.get("limit"), "limit")
    offset = int_param(request.query.get("offset"), "offset", 0) or 0
    if (limit is not None and limit < 0) or offset < 0:
        raise BadRequest("limit and offset must not be negative")
    return limit, offset


async def json_body(request: web.Request) -> dict[str, Any]:
    if not request.can_read_body:
        return {}
    data = parse_json(await request.read())
    if not isinstance(data, dict):
        raise BadRequest("the request body must be a JSON object")
    return data


def need(request: web.Request, name: str) -> str:
    value = request.query.get(name) or request.match_info.get(name)
    if not value:
        raise BadRequest(f"missing parameter {name}")
    return value
