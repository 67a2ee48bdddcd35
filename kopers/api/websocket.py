"""Live build logs over a websocket: `GET /ws/builds/{id}/{chroot}/log[?from=N]`.

The server sends JSON text messages; the client sends nothing.

    {"type": "hello", "build_id": 7, "chroot": "...", "from": N}
    {"type": "waiting", "state": "pending"}        the task has not started yet
    {"type": "lines", "first": N, "lines": [...]}  lines N, N+1, ... (1-based)
    {"type": "end", "state": "succeeded", "reason": null, "next": M}

The backlog comes first, from line 1 or from `?from=N`, then live lines as
the builder prints them; the numbers continue across attempts (and across a
restart of Kopers), so a client that reconnects with `?from=<last + 1>` gets
no gap and no duplicate. After "end" the server closes with 1000. A client
that cannot keep up is dropped with close code 4000 and the reason
"too slow; resume with ?from=M"; a late joiner after the end gets the whole
log from the task's file, then "end".
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from aiohttp import WSCloseCode, web

from kopers.api.app import KOPERS
from kopers.errors import BadRequest, KopersError, NotFound
from kopers.logs.hub import LogChannel, LogEnd, LogLine, SlowViewer
from kopers.models import BuildState
from kopers.sched.graph import SOURCE

log = logging.getLogger(__name__)
routes = web.RouteTableDef()

CLOSE_TOO_SLOW = 4000
BATCH = 500  # lines per message of backlog
WAIT_POLL_S = 1.0  # how often a viewer of a task that has not started looks again
HEARTBEAT_S = 30.0


@routes.get(r"/ws/builds/{build_id:\d+}/{chroot}/log")
async def build_log(request: web.Request) -> web.StreamResponse:
    k = request.app[KOPERS]
    build_id = int(request.match_info["build_id"])
    chroot = request.match_info["chroot"]
    first = _from_line(request.query.get("from"))
    build = await k.store.get_build(build_id)  # 404 before the upgrade
    if chroot != SOURCE and chroot not in build.chroots:
        raise NotFound(f"build {build_id} has no chroot {chroot}")
    ws = web.WebSocketResponse(heartbeat=HEARTBEAT_S)
    await ws.prepare(request)
    sender = asyncio.create_task(_send_log(request, ws, build_id, chroot, first))
    try:
        async for _ in ws:  # nothing is expected; this notices the client leaving
            pass
    finally:
        sender.cancel()
        await asyncio.gather(sender, return_exceptions=True)
    return ws


def _from_line(text: str | None) -> int:
    if text is None:
        return 1
    if not text.isdigit() or int(text) < 1:
        raise BadRequest("from must be a line number, 1 or more")
    return int(text)


async def _send_log(
    request: web.Request, ws: web.WebSocketResponse, build_id: int, chroot: str, first: int
) -> None:
    try:
        await _stream(request, ws, build_id, chroot, first)
    except KopersError as exc:  # e.g. the build was deleted meanwhile
        await ws.close(
            code=WSCloseCode.INTERNAL_ERROR, message=exc.message.encode("ascii", "replace")[:120]
        )
    except ConnectionError:
        pass  # the client went away mid-send
    except Exception:
        log.exception("live log %d/%s", build_id, chroot)
        await ws.close(code=WSCloseCode.INTERNAL_ERROR, message=b"internal error")


async def _stream(
    request: web.Request, ws: web.WebSocketResponse, build_id: int, chroot: str, first: int
) -> None:
    k = request.app[KOPERS]
    await ws.send_json({"type": "hello", "build_id": build_id, "chroot": chroot, "from": first})
    waiting_sent = False
    while (channel := k.hub.get(build_id, chroot)) is None:
        state, reason = await _task_state(request, build_id, chroot)
        if state.finished:
            # Ended, and the hub no longer holds it (or it never ran): the file is the log.
            lines = await k.hub.read_lines(build_id, chroot, first)
            await _send_lines(ws, lines, first)
            await _end(ws, str(state), reason, first + len(lines))
            return
        if not waiting_sent:
            await ws.send_json({"type": "waiting", "state": str(state)})
            waiting_sent = True
        await asyncio.sleep(WAIT_POLL_S)
    await _follow(ws, channel, first)


async def _follow(ws: web.WebSocketResponse, channel: LogChannel, first: int) -> None:
    """Backlog from `first`, then live lines until the end or until the client is too slow."""
    backlog, viewer = channel.subscribe(first)
    next_line = await _send_lines(ws, backlog, first)
    if viewer is None:
        assert channel.end is not None
        await _end(ws, channel.end.state, channel.end.reason, next_line)
        return
    try:
        while True:
            items = [await viewer.next(), *viewer.pending()]
            lines = [i for i in items if isinstance(i, LogLine)]
            next_line = await _send_lines(ws, lines, next_line)
            end = next((i for i in items if isinstance(i, LogEnd)), None)
            if end is not None:
                await _end(ws, end.state, end.reason, next_line)
                return
    except SlowViewer:
        await ws.close(
            code=CLOSE_TOO_SLOW, message=f"too slow; resume with ?from={next_line}".encode()
        )
    finally:
        channel.unsubscribe(viewer)


async def _send_lines(ws: web.WebSocketResponse, lines: list[LogLine], next_line: int) -> int:
    """Send the lines numbered next_line and up, in batches; return the next number."""
    fresh = [ln for ln in lines if ln.number >= next_line]
    for start in range(0, len(fresh), BATCH):
        batch = fresh[start : start + BATCH]
        message: dict[str, Any] = {
            "type": "lines",
            "first": batch[0].number,
            "lines": [ln.text for ln in batch],
        }
        await ws.send_json(message)
        next_line = batch[-1].number + 1
    return next_line


async def _end(ws: web.WebSocketResponse, state: str, reason: str | None, next_line: int) -> None:
    await ws.send_json({"type": "end", "state": state, "reason": reason, "next": next_line})
    await ws.close(code=WSCloseCode.OK, message=b"build ended")


async def _task_state(
    request: web.Request, build_id: int, chroot: str
) -> tuple[BuildState, str | None]:
    build = await request.app[KOPERS].store.get_build(build_id)
    if build.canceled:
        return BuildState.CANCELED, "canceled by the user"
    if chroot == SOURCE:
        return build.source_state, None
    task = next((t for t in build.tasks if t.chroot == chroot), None)
    if task is None:
        raise NotFound(f"build {build_id} has no chroot {chroot}")
    return task.state, task.reason


def add_routes(app: web.Application) -> None:
    app.add_routes(routes)
