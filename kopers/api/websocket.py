"""Live build logs over a websocket: `GET /ws/builds/{id}/{chroot}/log[?from=N]`.

The server sends JSON text messages; the client sends nothing.

    {"type": "hello", "build_id": 7, "chroot": "...", "from": N}
    {"type": "waiting", "state": "pending"}        the task has not started yet
    {"type": "lines", "first": N, "lines": [...], "kopers": [i, ...]}
                                                   lines N, N+1, ... (1-based); "kopers"
                                                   lists the indexes in "lines" of
                                                   Kopers' own lines (the rest are the build's)
    {"type": "end", "state": "succeeded", "reason": null, "next": M}

A line's text is as the log file holds it (kopers.logs.logfile explains how a
build line that could pass for Kopers' is stored); the "kopers" list, not the
text, says whose a line is. The backlog comes first, from line 1 or from
`?from=N`, paged from the task's file, then live lines as the builder prints
them; the numbers continue across attempts (and across a restart of Kopers),
so a client that reconnects with `?from=<last + 1>` gets no gap and no
duplicate. A client that falls behind is not dropped: it reads on at its own
pace (from the file once its place has left the hub's memory). After "end"
the server closes with 1000; a late joiner after the end gets the whole log
from the task's file, then "end".

Messages are not compressed: permessage-deflate would keep a zlib state of
some hundreds of KiB per viewer and compress every message once per viewer,
while an uncompressed message is encoded once for all the viewers at the
same place in the log.
"""

from __future__ import annotations

import asyncio
import json
import logging
import weakref

from aiohttp import WSCloseCode, web

from kopers.api.keys import KOPERS
from kopers.api.params import path_id, path_name, query_int
from kopers.errors import KopersError, NotFound
from kopers.logs.hub import LogEnd, LogPage, LogReader
from kopers.models import BuildState
from kopers.sched.graph import SOURCE

log = logging.getLogger(__name__)
routes = web.RouteTableDef()

WAIT_POLL_S = 1.0  # how often a viewer of a task that has not started looks again
HEARTBEAT_S = 30.0
MAX_LINE = 10**12 - 1  # far past any log's length


@routes.get(r"/ws/builds/{build_id:\d+}/{chroot}/log")
async def build_log(request: web.Request) -> web.StreamResponse:
    k = request.app[KOPERS]
    build_id = path_id(request, "build_id")
    chroot = path_name(request, "chroot")
    first = query_int(request, "from", 1, lo=1, hi=MAX_LINE)
    build = await k.store.get_build(build_id)  # 404 before the upgrade
    if chroot != SOURCE and chroot not in build.chroots:
        raise NotFound(f"build {build_id} has no chroot {chroot}")
    ws = web.WebSocketResponse(heartbeat=HEARTBEAT_S, compress=False)
    await ws.prepare(request)
    sender = asyncio.create_task(_send_log(request, ws, build_id, chroot, first))
    try:
        async for _ in ws:  # nothing is expected; this notices the client leaving
            pass
    finally:
        sender.cancel()
        await asyncio.gather(sender, return_exceptions=True)
    return ws


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
            reader = k.hub.replay(build_id, chroot, first)
            while isinstance(page := await reader.read(), LogPage):
                await ws.send_str(_message(page))
            await _end(ws, str(state), reason, reader.next)
            return
        if not waiting_sent:
            await ws.send_json({"type": "waiting", "state": str(state)})
            waiting_sent = True
        await asyncio.sleep(WAIT_POLL_S)
    await _follow(ws, channel.follow(first))


async def _follow(ws: web.WebSocketResponse, reader: LogReader) -> None:
    """The backlog, then live lines, until the end.

    A slow client only holds up its own sends (each waits for the socket to
    drain), and the reader keeps its place in the log, not the lines.
    """
    while True:
        item = await reader.read()
        if isinstance(item, LogEnd):
            await _end(ws, item.state, item.reason, reader.next)
            return
        assert item is not None  # a channel's reader ends with LogEnd
        await ws.send_str(_message(item))


# A page's message, for as long as the page is in use: readers at the same
# place in a log get the same page, and its message is encoded once for all.
_messages: weakref.WeakKeyDictionary[LogPage, str] = weakref.WeakKeyDictionary()


def _message(page: LogPage) -> str:
    message = _messages.get(page)
    if message is None:
        message = _messages[page] = json.dumps(
            {
                "type": "lines",
                "first": page.first,
                "lines": [ln.text for ln in page.lines],
                "kopers": [i for i, ln in enumerate(page.lines) if ln.kopers],
            }
        )
    return message


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
