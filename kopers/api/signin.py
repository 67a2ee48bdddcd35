"""Signing in and out in the browser: /login/ and /logout/.

`POST /login/` takes a user name and password (set with `kopers user
passwd`). A wrong password, an unknown user and a user without a password all
get the same answer: the form again with one line of error. Before the
password is checked, the attempt is counted and may be refused (429 with
Retry-After, whatever the password) under kopers.loginpolicy's limits. On
success the browser gets a new session (any session it had ends, so a
session id planted before signing in is worth nothing) and goes to `next`,
if that is a path on this server.

`GET /logout/` shows a confirmation form; `POST /logout/` ends the session.
"""

from __future__ import annotations

import asyncio
import re
import secrets
from datetime import UTC, datetime

from aiohttp import web

from kopers import loginpolicy, passwords
from kopers.api import websession
from kopers.api.guard import client_key
from kopers.api.keys import KOPERS
from kopers.api.views import render
from kopers.models import User

routes = web.RouteTableDef()

FAILED = "Wrong user name or password."
_USER_NAME = re.compile(r"[A-Za-z0-9_.-]{1,255}")  # sql/0001_init.sql: what a user name may be
_ECHO_CHARS = 255  # of a user name shown back in the form


@routes.get("/login")
@routes.get("/logout")
async def add_slash(request: web.Request) -> web.Response:
    query = request.rel_url.raw_query_string
    raise web.HTTPPermanentRedirect(request.path + "/" + (f"?{query}" if query else ""))


@routes.get("/login/")
async def login_page(request: web.Request) -> web.StreamResponse:
    user = await websession.web_user(request)
    target = loginpolicy.local_target(request.query.get("next"))
    return _form(request, user, target)


def _form(
    request: web.Request,
    user: User | None,
    target: str,
    username: str = "",
    error: str | None = None,
) -> web.StreamResponse:
    page = render(
        "login.html",
        user=user,
        csrf=websession.csrf_token(request),
        next=target,
        username=username[:_ECHO_CHARS],
        error=error,
        signing_out=False,
    )
    return websession.private(page)


@routes.post("/login/")
async def login(request: web.Request) -> web.StreamResponse:
    form = await websession.checked_form(request)
    kopers = request.app[KOPERS]
    store, config = kopers.store, kopers.config.web
    username, password = form.get("username", ""), form.get("password", "")
    target = loginpolicy.local_target(form.get("next"))
    current = await websession.web_user(request)
    if not _USER_NAME.fullmatch(username):
        # No account can have this name: nothing to guess at, nothing to count.
        return _form(request, current, target, username, FAILED)
    address = client_key(request.remote or "")
    now = datetime.now(UTC)
    async with kopers.atomic():
        await store.lock_login_attempts()
        failures = await store.login_failures(
            username, address, now - config.window, config.account_failures, config.address_failures
        )
        wait = loginpolicy.retry_after(failures, config, now)
        attempt = await store.add_login_attempt(username, address, now) if wait is None else 0
    if wait is not None:
        return _too_many(wait)
    record = await store.password_of(username)
    stored = record.password_hash if record is not None else None
    # Verified even for an unknown user (against a dummy hash): the answer takes
    # as long either way, so its time does not tell who has an account.
    verified = await asyncio.to_thread(passwords.verify, stored, password)
    if record is None or not verified:
        return _form(request, current, target, username, FAILED)
    return await _start_session(request, record.user, attempt, target)


def _too_many(wait: int) -> web.Response:
    return web.Response(
        status=429,
        text=f"Too many failed sign-in attempts: try again in {wait} seconds.\n",
        headers={"Retry-After": str(wait)},
    )


async def _start_session(
    request: web.Request, user: User, attempt: int, target: str
) -> web.StreamResponse:
    kopers = request.app[KOPERS]
    store, config = kopers.store, kopers.config.web
    value = websession.new_secret()
    now = datetime.now(UTC)
    old = await websession.current_session(request)
    async with kopers.atomic():
        await store.login_succeeded(attempt)
        if old is not None:
            await store.delete_web_session(old.id)
        await store.create_web_session(
            websession.digest(value),
            user,
            secrets.token_bytes(32),
            now,
            loginpolicy.session_end(now, config),
            request.remote,
        )
        await kopers.audit(user, request.remote, "user.signin", user.name, {})
        # Tidy up here rather than in a loop of its own: sign-ins are when rows are made.
        await store.purge_web_sessions(now, now - config.idle)
        await store.purge_login_attempts(now - config.window)
    response = web.Response(status=303, headers={"Location": target})
    websession.set_session_cookie(request, response, value)
    return websession.private(response)


@routes.get("/logout/")
async def logout_page(request: web.Request) -> web.StreamResponse:
    user = await websession.web_user(request)
    page = render("login.html", user=user, csrf=websession.csrf_token(request), signing_out=True)
    return websession.private(page)


@routes.post("/logout/")
async def logout(request: web.Request) -> web.StreamResponse:
    await websession.checked_form(request)
    kopers = request.app[KOPERS]
    session = await websession.current_session(request)
    if session is not None:
        async with kopers.atomic():
            if await kopers.store.delete_web_session(session.id):
                await kopers.audit(
                    session.user, request.remote, "user.signout", session.user.name, {}
                )
        websession.forget_session(request)
    response = web.Response(status=303, headers={"Location": "/"})
    websession.clear_session_cookie(request, response)
    return websession.private(response)


def add_routes(app: web.Application) -> None:
    app.add_routes(routes)
