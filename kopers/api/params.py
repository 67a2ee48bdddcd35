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


def int_param(value: str | None, name: str, default: int | None = None) -> int | None:
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError:
        raise BadRequest(f"{name} must be a whole number, got {value!r}") from None


def paging(request: web.Request) -> tuple[int | None, int]:
    limit = int_param(request.query.get("limit"), "limit")
    offset = int_param(request.query.get("offset"), "offset", 0) or 0
    if (limit is not None and limit < 0) or offset < 0:
        raise BadRequest("limit and offset must not be negative")
    return limit, offset


async def json_body(request: web.Request) -> dict[str, Any]:
    if not request.can_read_body:
        return {}
    data = await request.json(loads=json.loads)
    if not isinstance(data, dict):
        raise BadRequest("the request body must be a JSON object")
    return data


def need(request: web.Request, name: str) -> str:
    value = request.query.get(name) or request.match_info.get(name)
    if not value:
        raise BadRequest(f"missing parameter {name}")
    return value
