"""The aiohttp application: routes, and the one place errors become HTTP.

Every `KopersError` becomes a JSON object with an `error` key and the error's
status. copr-cli decides success by the absence of `error`, so no success
body may carry that key, and every /api_3 answer, even a 404 for an unknown
route, must be JSON.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from aiohttp import web

from kopers.api.bodycaps import BodyCaps, body_caps_middleware
from kopers.api.guard import body_clock_middleware
from kopers.api.keys import KOPERS
from kopers.api.metrics import ERROR_KIND, metrics_middleware
from kopers.api.pages import error_page
from kopers.api.proxyheaders import proxy_headers_middleware
from kopers.errors import KopersError
from kopers.redact import host_roots, redact_path, scrub

if TYPE_CHECKING:
    from kopers.service import Kopers

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def error_response(status: int, message: str) -> web.Response:
    return web.json_response({"output": "notok", "error": message}, status=status)


@web.middleware
async def errors_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except KopersError as exc:
        request[ERROR_KIND] = type(exc).__name__  # counted by kind (kopers.api.metrics)
        if exc.status >= 500:
            log.error("%s %s: %s", request.method, redact_path(request.path), exc.message)
        message = scrub(exc.message, host_roots(request.app[KOPERS].config))
        # A page's error is a page (kopers.api.pages); everything else answers JSON.
        return error_page(request, exc.status, message) or error_response(exc.status, message)
    except json.JSONDecodeError as exc:
        return error_response(400, f"the request body is not valid JSON: {exc}")
    except (web.HTTPNotFound, web.HTTPMethodNotAllowed) as exc:
        if request.path.startswith("/api_3") and _unrouted(request):
            # python-copr reads a 404 as "no such project/build": a route this
            # server lacks must not look like a missing thing.
            return error_response(
                501, f"{request.method} {request.path} is not supported by this Kopers server"
            )
        if request.path.startswith(("/api_3", "/api/")):
            return error_response(exc.status, exc.reason or "error")
        if exc.status == 404 and (page := error_page(request, 404, "There is no such page.")):
            return page
        raise
    except web.HTTPException as exc:
        if request.path.startswith(("/api_3", "/api/")) and exc.status >= 400:
            return error_response(exc.status, exc.reason or "error")
        raise
    except ConnectionError:
        # The client hung up mid-request (an upload it gave up on): nobody is
        # left to answer, and it is not the server's fault.
        log.info("%s %s: the client went away", request.method, redact_path(request.path))
        return error_response(400, "the client closed the connection")
    except Exception:
        request[ERROR_KIND] = "unhandled"
        log.exception("unhandled error in %s %s", request.method, redact_path(request.path))
        return error_response(500, "internal server error; see the server log")


def _unrouted(request: web.Request) -> bool:
    """Whether no route of the app answers this method and path (the router's own 404/405)."""
    info = request.match_info
    return info.http_exception is not None


def create_app(kopers: Kopers) -> web.Application:
    from kopers.api import (
        apipage,
        auth,
        buildsource,
        chroots,
        coprbuilds,
        coprfork,
        coprpackages,
        coprprojects,
        coprsubmit,
        coprtokens,
        coprv3,
        dnfrepo,
        events,
        eventstream,
        hooks,
        hub,
        metrics,
        native,
        openapi,
        permissions,
        projects,
        results,
        signin,
        submit,
        views,
        webhooks_in,
        websession,
        websocket,
    )

    app = web.Application(
        middlewares=[
            # First: every other middleware and handler sees the client behind a proxy.
            proxy_headers_middleware(kopers.config.server.trusted_proxies),
            # Outermost after it: it counts the status the client gets, errors mapped.
            metrics_middleware(kopers.metrics),
            errors_middleware,
            body_caps_middleware(BodyCaps.of(kopers.config)),
            body_clock_middleware(kopers.config.limits),
        ],
        # A body read whole (JSON, a form, a multipart field) stops at the JSON
        # cap; an upload streams through kopers.api.upload under its own cap.
        client_max_size=kopers.config.limits.max_json_bytes,
    )
    app[KOPERS] = kopers
    coprv3.add_routes(app)
    coprprojects.add_routes(app)
    coprsubmit.add_routes(app)
    coprbuilds.add_routes(app)
    buildsource.add_routes(app)
    coprtokens.add_routes(app)
    coprpackages.add_routes(app)
    coprfork.add_routes(app)
    chroots.add_routes(app)
    permissions.add_routes(app)
    auth.add_routes(app)
    events.add_routes(app)
    eventstream.add_routes(app)
    hooks.add_routes(app)
    native.add_routes(app)
    submit.add_routes(app)
    projects.add_routes(app)
    openapi.add_routes(app)
    dnfrepo.add_routes(app)
    hub.add_routes(app)
    results.add_routes(app)
    views.add_routes(app)
    webhooks_in.add_routes(app)
    websocket.add_routes(app)
    websession.setup(app)
    signin.add_routes(app)
    apipage.add_routes(app)
    metrics.add_routes(app)
    return app
