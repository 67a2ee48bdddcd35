"""Live events as server-sent events: `GET /api/events/stream[?project=owner/name]`.

Every notification (kopers.notifications: task, source step and build state
changes, and publishes) of one project, or of all, as it commits:

    id: 42
    event: task.state
    data: {"id": 42, "delivery": null, "kind": "task.state", ...}

Build states are public in Kopers, so the stream needs no credentials; a
project that does not exist is a 404. Since anyone may open one, one client
address (an IPv6 /64, as the connection guard counts) may hold only a few at
once, past them a 429 (`streams_per_address`: 8 with the default
`limits.connections_per_address`, which is raised behind a reverse proxy, where
every client has the proxy's address); all clients together MAX_SUBSCRIBERS
(kopers.eventbus), past it a 503. The client must ask for the stream
(`Accept: text/event-stream`, as EventSource does): anything else gets a 406
at once, so a client that reads an answer to its end is not left hanging.

A client that comes back with `Last-Event-ID` (EventSource sends it by
itself), or `?since=<id>`, first gets the stored events after that id, in
order, then the live ones, without a gap or a repeat: ids follow commit
order, and the live subscription is opened before the stored events are
read. At most MAX_REPLAY events are replayed per connection; with more
waiting, the stream ends after them and the reconnect goes on from there. A
client too slow to keep up with the live events is dropped the same way.
A comment line every HEARTBEAT_S seconds keeps proxies from closing an idle
stream. The server's slow-client guards never cut it: they time request
heads and bodies, not answers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from aiohttp import web

from kopers.api import fields
from kopers.api.guard import client_key
from kopers.api.keys import KOPERS
from kopers.errors import BadRequest, KopersError
from kopers.eventbus import Subscription
from kopers.notifications import sse_message

log = logging.getLogger(__name__)
routes = web.RouteTableDef()

PATH = "/api/events/stream"
MEDIA = "text/event-stream"
HEARTBEAT_S = 15.0
LIVENESS_S = 1.0  # how often a quiet stream checks that its client is still there
MAX_REPLAY = 1000
REPLAY_PAGE = 200
RETRY_MS = 3000  # what EventSource waits before reconnecting
STREAMS_PER_ADDRESS = 8  # at least; a browser's tabs on a few projects
CONNECTIONS_PER_STREAM = 8  # an address's connections per stream it may hold


class NotAcceptable(KopersError):
    status = 406


def parse_project(value: str) -> tuple[str, str]:
    """`owner/name` -> (owner, name); a 400 for anything else. Pure."""
    parts = value.split("/")
    if len(parts) != 2:
        raise BadRequest("project must be owner/name")
    return fields.name(parts[0], "project owner"), fields.name(parts[1], "project name")


def parse_last_id(value: str | None, field: str) -> int | None:
    """An event id to go on after: 0 to bigint's maximum; None when absent. Pure."""
    if value is None or value == "":
        return None
    return fields.integer(value, field, lo=0)


def streams_per_address(connections_per_address: int) -> int:
    """How many streams one client address may hold; 0 (no cap) if its connections have none.

    An eighth of its connections, and at least STREAMS_PER_ADDRESS: the cap
    follows `limits.connections_per_address`, so raising that behind a reverse
    proxy raises this too. Pure.
    """
    if connections_per_address <= 0:
        return 0
    return max(STREAMS_PER_ADDRESS, connections_per_address // CONNECTIONS_PER_STREAM)


def accepts_stream(accept: str) -> bool:
    """Whether an Accept header asks for server-sent events. Pure."""
    return any(part.split(";", 1)[0].strip().lower() == MEDIA for part in accept.split(","))


@routes.get(PATH)
async def event_stream(request: web.Request) -> web.StreamResponse:
    k = request.app[KOPERS]
    project_id = None
    if request.query.get("project"):
        owner, name = parse_project(request.query["project"])
        project_id = (await k.store.get_project(owner, name)).id
    since = parse_last_id(request.headers.get("Last-Event-ID"), "Last-Event-ID")
    if since is None:
        since = parse_last_id(request.query.get("since"), "since")
    if not accepts_stream(request.headers.get("Accept", "")):
        raise NotAcceptable(f"this is a stream of server-sent events: send Accept: {MEDIA}")
    cap = streams_per_address(k.config.limits.connections_per_address)
    # Before the replay: nothing falls between.
    sub = await k.events.subscribe(
        project_id, client=client_key(request.remote or ""), client_cap=cap
    )
    resp = web.StreamResponse(
        headers={
            "Content-Type": f"{MEDIA}; charset=utf-8",
            "Cache-Control": "no-cache",
            "X-Accel-Buffering": "no",  # nginx: pass each event on at once
        }
    )
    try:
        await resp.prepare(request)
        await resp.write(f"retry: {RETRY_MS}\n\n".encode())
        last = since
        if since is not None:
            last, more = await _replay(request, resp, since, project_id)
            if more:
                return resp  # the client reconnects after `last` for the rest
        await _follow(request, resp, sub, last)
    except ConnectionError:
        pass  # the client went away
    finally:
        sub.close()
    return resp


async def _replay(
    request: web.Request, resp: web.StreamResponse, after: int, project_id: int | None
) -> tuple[int, bool]:
    """The stored events after `after`, up to MAX_REPLAY; (last id sent, whether more wait)."""
    k = request.app[KOPERS]
    url = k.config.server.public_url
    sent = 0
    while sent < MAX_REPLAY:
        size = min(REPLAY_PAGE, MAX_REPLAY - sent)
        page = await k.store.notifications_after(after, project_id, size)
        for n in page:
            await resp.write(sse_message(n, url))
            after = n.id
        sent += len(page)
        if len(page) < size:
            return after, False
    return after, bool(await k.store.notifications_after(after, project_id, 1))


async def _follow(
    request: web.Request, resp: web.StreamResponse, sub: Subscription, last: int | None
) -> None:
    """Live events (skipping any the replay sent) until the client or the server goes."""
    url = request.app[KOPERS].config.server.public_url
    idle = 0.0
    # One pending get at a time, never cancelled by a timeout: a notification
    # taken off the queue is always sent.
    getter = asyncio.ensure_future(sub.get())
    try:
        while True:
            done, _ = await asyncio.wait({getter}, timeout=LIVENESS_S)
            if not done:
                transport = request.transport
                if transport is None or transport.is_closing():
                    return
                idle += LIVENESS_S
                if idle >= HEARTBEAT_S:
                    await resp.write(b": keep-alive\n\n")
                    idle = 0.0
                continue
            n = getter.result()
            if n is None:
                return  # dropped for falling behind, or the server is stopping
            getter = asyncio.ensure_future(sub.get())
            if last is not None and n.id <= last:
                continue
            await resp.write(sse_message(n, url))
            last = n.id
            idle = 0.0
    finally:
        getter.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await getter


async def _end_streams(app: web.Application) -> None:
    """The server is stopping: every open stream ends, so its handler returns."""
    app[KOPERS].events.end_subscribers()


def add_routes(app: web.Application) -> None:
    app.add_routes(routes)
    app.on_shutdown.append(_end_streams)
