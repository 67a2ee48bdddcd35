"""`GET /metrics` in Prometheus' text format, and the middleware that counts requests.

Who may read it: clients from the networks of `[metrics] allow` (by default
the loopback addresses only), and site admins with their API token from
anywhere. Anyone else gets 403; wrong credentials get the usual 401. Behind
a reverse proxy every client has the proxy's address, so a proxy on the same
host must not pass /metrics on (or `allow` must not list loopback).

A scrape is one pass over in-memory state (kopers.metrics); the admin check
costs the token lookup every authenticated call makes.

The middleware labels each request with its route's pattern
(`/api_3/build/{build_id}`), never the path a client chose: paths are
unbounded, and so would be the series they made. It also counts the live
log's websockets while they are open: the viewers.
"""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Iterable

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware
from prometheus_client import CONTENT_TYPE_PLAIN_0_0_4, generate_latest

from kopers.api.auth import current_user
from kopers.api.keys import KOPERS
from kopers.errors import Forbidden
from kopers.metrics import UNMATCHED, Metrics

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

routes = web.RouteTableDef()
# The live log's websocket (kopers.api.websocket): its handler runs as long as
# the viewer stays connected, so the requests under way there are the viewers.
LIVE_LOG_ROUTE = "/ws/builds/{build_id}/{chroot}/log"
# Set by the one place errors become HTTP (kopers.api.app): the error's kind,
# a KopersError class name or "unhandled"; counted here.
ERROR_KIND: web.RequestKey[str] = web.RequestKey("error_kind", str)


def address_allowed(remote: str | None, allow: Iterable[Network]) -> bool:
    """Whether a client address lies in one of the networks. Pure.

    An IPv4 client of a dual-stack socket shows as ::ffff:a.b.c.d; it is
    judged as a.b.c.d. No address (a Unix socket) is in no network.
    """
    if not remote:
        return False
    try:
        address = ipaddress.ip_address(remote.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return any(address.version == net.version and address in net for net in allow)


def route_label(request: web.Request) -> str:
    """The pattern of the route that took the request, or UNMATCHED."""
    info = request.match_info
    resource = info.route.resource
    if resource is None or info.http_exception is not None:
        return UNMATCHED
    return resource.canonical


def metrics_middleware(metrics: Metrics) -> Middleware:
    """Count every request and time it, by route pattern, method and final status.

    Outermost, so the status is the one the client gets, after errors were mapped.
    """

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        started = time.perf_counter()
        status: int | None = None  # stays None when the client went away (canceled)
        route = route_label(request)
        viewing = route == LIVE_LOG_ROUTE
        if viewing:
            metrics.live_log_viewers.inc()
        try:
            response = await handler(request)
            status = response.status
            return response
        except web.HTTPException as exc:
            status = exc.status
            raise
        except Exception:
            status = 500
            raise
        finally:
            if viewing:
                metrics.live_log_viewers.dec()
            if status is not None:
                metrics.request(route, request.method, status, time.perf_counter() - started)
            if kind := request.get(ERROR_KIND):
                metrics.error(kind)

    return middleware


@routes.get("/metrics")
async def scrape(request: web.Request) -> web.Response:
    k = request.app[KOPERS]
    if not address_allowed(request.remote, k.config.metrics.allow):
        user = await current_user(request)  # wrong credentials: 401
        if user is None or not user.is_admin:
            raise Forbidden(
                "/metrics is open to the addresses in [metrics] allow and to site admins only"
            )
    return web.Response(
        body=generate_latest(k.metrics.registry),
        headers={"Content-Type": CONTENT_TYPE_PLAIN_0_0_4},
    )


def add_routes(app: web.Application) -> None:
    app.add_routes(routes)
