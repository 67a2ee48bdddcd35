"""Raw HTTP for the hostile-input tests, and a snapshot of everything a request could change.

`send` writes the request line, headers and body exactly as given (no
client library normalises the path or refuses a header), so a test sends
what a hostile client would. `snapshot` is every table's rows but the
tokens' (whose `last_used` every authenticated call touches) and the names
of the files in the data directory.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.integration.conftest import Api, create


async def send(
    api: Api,
    method: str,
    target: str,
    *,
    user: str | None = None,
    body: Any = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, Any]:
    """One raw HTTP/1.1 request; (status, JSON body or text)."""
    head = {"Host": "kopers", "Connection": "close"}
    if user is not None:
        head["Authorization"] = api.auth[user]
    payload = b""
    if body is not None:
        payload = body if isinstance(body, bytes) else json.dumps(body).encode()
        head["Content-Type"] = "application/json"
    head.update(headers or {})
    head["Content-Length"] = str(len(payload))
    lines = [f"{method} {target} HTTP/1.1", *(f"{k}: {v}" for k, v in head.items())]
    server = api.client.server
    reader, writer = await asyncio.open_connection(server.host, server.port)
    try:
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + payload)
        raw = await asyncio.wait_for(reader.read(), 30)
    finally:
        writer.close()
    head_bytes, _, content = raw.partition(b"\r\n\r\n")
    status = int(head_bytes.split(b" ", 2)[1])
    if b"transfer-encoding: chunked" in head_bytes.lower():
        content = _unchunk(content)
    try:
        return status, json.loads(content)
    except ValueError:
        return status, content.decode("utf-8", "replace")


def _unchunk(data: bytes) -> bytes:
    out = b""
    while data:
        size_line, _, data = data.partition(b"\r\n")
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            break
        out, data = out + data[:size], data[size + 2 :]
    return out


async def snapshot(api: Api) -> dict[str, Any]:
    """Every table's rows (but the tokens') and the data directory's files."""
    pool = api.kopers.store.pool
    tables = [
        r["tablename"]
        for r in await pool.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        if r["tablename"] not in ("tokens", "schema_migrations")
    ]
    state: dict[str, Any] = {}
    for table in sorted(tables):
        rows = await pool.fetch(f"SELECT * FROM {table}")
        state[table] = sorted(repr(sorted(dict(r).items())) for r in rows)
    root = api.kopers.config.data_dir
    state["files"] = sorted(str(p.relative_to(root)) for p in Path(root).rglob("*"))
    return state


_SRPM: dict[str, Path] = {}


async def world(api: Api, make_srpm: Callable[..., Path]) -> int:
    """alice/p with one build: something for a slipped-through request to change."""
    assert (await create(api, "alice", "alice", "p"))[0] == 200
    srpm = _SRPM.setdefault("hello", make_srpm("hello"))
    status, build = await api.upload("alice", srpm, {"ownername": "alice", "projectname": "p"})
    assert status == 200, build
    return int(build["id"])
