"""Who is looking at a page: the browser session, its cookie, and the one CSRF check.

A session is a row in Postgres (kopers.db.websessions) found by the SHA-256
digest of the `kopers_session` cookie: 256 random bits, HttpOnly,
SameSite=Lax, Path=/, and Secure when the public URL is https. It ends when
signed out, idle too long, or too old (kopers.loginpolicy); an ended or
unknown cookie is simply no one. A session authorises pages and their forms
only: the API (/api_3, /api) reads HTTP Basic tokens and never this cookie.

Every form a page route takes that changes anything goes through
`checked_form`, which refuses (403) a form whose `csrf_token` is missing or
not this browser's, and one sent from another origin (an `Origin` header
other than the public URL's). The token is an HMAC of a secret: the
session's own, kept on the server; or, for a browser not signed in (the
sign-in form), the random value of its `kopers_login` cookie. One token
serves every form of a page.

Pages call `web_user(request)` first, then `csrf_token(request)` for their forms.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from base64 import urlsafe_b64encode
from datetime import UTC, datetime
from http.cookies import SimpleCookie
from urllib.parse import urlsplit

from aiohttp import hdrs, web
from multidict import MultiDict, MultiDictProxy

from kopers import loginpolicy
from kopers.api.keys import KOPERS
from kopers.db.websessions import WebSession
from kopers.errors import BadRequest, Forbidden
from kopers.models import User

COOKIE = "kopers_session"
LOGIN_COOKIE = "kopers_login"  # the CSRF secret of a browser that is not signed in
FIELD = "csrf_token"
_VALUE = re.compile(r"[A-Za-z0-9_-]{43}")  # 32 random bytes, base64url without padding
_PURPOSE = b"kopers form"
_FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")

# Per request: the session looked up (None: not signed in), and a new login secret to send.
_SESSION: web.RequestKey[WebSession | None] = web.RequestKey("kopers_web_session")
_NEW_LOGIN_SECRET: web.RequestKey[str] = web.RequestKey("kopers_new_login_secret", str)


def digest(value: str) -> str:
    """A cookie's value -> the session's id in Postgres."""
    return hashlib.sha256(value.encode()).hexdigest()


def new_secret() -> str:
    return secrets.token_urlsafe(32)


def _token(secret: bytes) -> str:
    mac = hmac.new(secret, _PURPOSE, hashlib.sha256).digest()
    return urlsafe_b64encode(mac).rstrip(b"=").decode()


# Who is signed in ---------------------------------------------------------------------


async def current_session(request: web.Request) -> WebSession | None:
    """The live session of this request's browser, looked up once per request."""
    if _SESSION in request:
        return request[_SESSION]
    session = await _lookup(request)
    request[_SESSION] = session
    return session


async def _lookup(request: web.Request) -> WebSession | None:
    value = request.cookies.get(COOKIE)
    if value is None or not _VALUE.fullmatch(value):
        return None
    kopers = request.app[KOPERS]
    session = await kopers.store.web_session(digest(value))
    if session is None:
        return None
    now = datetime.now(UTC)
    config = kopers.config.web
    if not loginpolicy.session_alive(session.last_seen, session.expires_on, now, config):
        await kopers.store.delete_web_session(session.id)
        return None
    if loginpolicy.due_touch(session.last_seen, now):
        await kopers.store.touch_web_session(session.id, now)
    return session


async def web_user(request: web.Request) -> User | None:
    """The user signed in on this page request's browser, or None."""
    session = await current_session(request)
    return session.user if session is not None else None


async def require_web_user(request: web.Request) -> User:
    """The signed-in user of a form route; 403 for a browser not signed in."""
    user = await web_user(request)
    if user is None:
        raise Forbidden("sign in first: this form is for signed-in users")
    return user


# CSRF ------------------------------------------------------------------------------------


def csrf_token(request: web.Request) -> str:
    """The token this request's forms carry; call `web_user(request)` (or checked_form) first.

    A browser that is neither signed in nor holds a login cookie gets one
    with the response.
    """
    if _SESSION not in request:
        raise RuntimeError("csrf_token() needs the session: await web_user(request) first")
    session = request[_SESSION]
    if session is not None:
        return _token(session.csrf_secret)
    secret = _login_secret(request)
    if secret is None:
        secret = request.setdefault(_NEW_LOGIN_SECRET, new_secret())
    return _token(secret.encode())


def _login_secret(request: web.Request) -> str | None:
    value = request.cookies.get(LOGIN_COOKIE)
    return value if value is not None and _VALUE.fullmatch(value) else None


async def checked_form(request: web.Request) -> MultiDictProxy[str]:
    """The fields of a state-changing form POST, once it is known to come from this site.

    403 for a foreign `Origin`, or a `csrf_token` that is missing or not
    this browser's (another session's, or one from before signing in or out).
    """
    check_origin(request)
    form = await _fields(request)
    sent = form.get(FIELD)
    session = await current_session(request)
    if session is not None:
        expected: str | None = _token(session.csrf_secret)
    else:
        secret = _login_secret(request)
        expected = _token(secret.encode()) if secret is not None else None
    # As bytes: compare_digest refuses str with non-ASCII characters, which a client may send.
    if (
        expected is None
        or sent is None
        or not hmac.compare_digest(sent.encode(), expected.encode())
    ):
        raise Forbidden("the form has expired or did not come from this site: load the page again")
    return form


def check_origin(request: web.Request) -> None:
    """403 for a form sent with an `Origin` other than this server's public URL's."""
    origin = request.headers.get("Origin")
    if origin is not None and not same_origin(origin, request.app[KOPERS].config.server.public_url):
        raise Forbidden("refused a form sent from another origin than this server's")


def token_matches(request: web.Request, sent: str) -> bool:
    """Whether `sent` is this browser's form token (see checked_form)."""
    # As bytes: compare_digest refuses str with non-ASCII characters, which a client may send.
    return hmac.compare_digest(sent.encode(), csrf_token(request).encode())


async def _fields(request: web.Request) -> MultiDictProxy[str]:
    """The text fields of a form body (files are no field of any form here)."""
    fields: MultiDict[str] = MultiDict()
    if request.content_type in _FORM_TYPES:
        try:
            posted = await request.post()
            texts = [(k, v) for k, v in posted.items() if isinstance(v, str)]
            # A charset such as UTF-7 decodes to lone surrogates, which no page can show.
            for k, v in texts:
                k.encode()
                v.encode()
        except (ValueError, LookupError):  # undecodable text, or a charset Python lacks
            raise BadRequest("the form is not valid UTF-8 text") from None
        fields.extend(texts)
    return MultiDictProxy(fields)


def same_origin(origin: str, public_url: str) -> bool:
    """Whether an `Origin` header names the public URL's origin (scheme, host, port). Pure."""
    return _origin(origin) is not None and _origin(origin) == _origin(public_url)


def _origin(url: str) -> tuple[str, str, int] | None:
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    default = 443 if parts.scheme == "https" else 80
    return parts.scheme, parts.hostname.lower(), port or default


# Cookies --------------------------------------------------------------------------------


def secure(request: web.Request) -> bool:
    return request.app[KOPERS].config.server.public_url.startswith("https://")


def set_session_cookie(request: web.Request, response: web.StreamResponse, value: str) -> None:
    max_age = int(request.app[KOPERS].config.web.absolute.total_seconds())
    response.set_cookie(
        COOKIE,
        value,
        max_age=max_age,
        path="/",
        httponly=True,
        samesite="Lax",
        secure=secure(request),
    )


def clear_session_cookie(request: web.Request, response: web.StreamResponse) -> None:
    response.del_cookie(COOKIE, path="/", httponly=True, samesite="Lax", secure=secure(request))


def forget_session(request: web.Request) -> None:
    """This request's session has ended (signed out): later lookups find no one."""
    request[_SESSION] = None


def private(response: web.StreamResponse) -> web.StreamResponse:
    """A page for one browser's eyes: never cached, never framed by another site."""
    response.headers["Cache-Control"] = "no-store"
    response.headers["Content-Security-Policy"] = "frame-ancestors 'none'"
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Referrer-Policy"] = "same-origin"
    return response


async def _send_login_secret(request: web.Request, response: web.StreamResponse) -> None:
    """A login secret made while rendering this request goes out as its cookie."""
    secret = request.get(_NEW_LOGIN_SECRET)
    if secret is None:
        return
    # The response's own cookies are serialised before this hook: add the header itself.
    cookie: SimpleCookie = SimpleCookie()
    cookie[LOGIN_COOKIE] = secret
    morsel = cookie[LOGIN_COOKIE]
    morsel["path"] = "/"
    morsel["httponly"] = True
    morsel["samesite"] = "Lax"
    morsel["secure"] = secure(request)
    response.headers.add(hdrs.SET_COOKIE, morsel.OutputString())


def setup(app: web.Application) -> None:
    app.on_response_prepare.append(_send_login_secret)
