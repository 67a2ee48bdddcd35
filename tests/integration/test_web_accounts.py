"""Accounts in the browser: signing in and out, sessions, CSRF, throttling and the /api/ page.

Each browser is its own HTTP client with its own cookie jar, against the app
on a real Postgres. Passwords are set through the store (one test sets one
with `kopers user passwd`, as an admin would).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import re
import sys
from collections.abc import AsyncIterator
from html import unescape
from pathlib import Path

import pytest

from kopers import config as config_mod
from kopers import passwords
from tests.integration.conftest import REPO, Api, serving
from tests.integration.webclient import PASSWORD, Browser, csrf_of

pytestmark = pytest.mark.integration

FAILED = "Wrong user name or password."
FORM_TYPE = {"Content-Type": "application/x-www-form-urlencoded"}


@pytest.fixture
async def browsers(api: Api) -> AsyncIterator[list[Browser]]:
    """Three browsers; alice and bob have the password PASSWORD."""
    for name in ("alice", "bob"):
        user = await api.kopers.store.get_user(name)
        await api.kopers.store.set_password(user, passwords.hash_password(PASSWORD))
    made = [Browser(api) for _ in range(3)]
    try:
        yield made
    finally:
        for b in made:
            await b.close()


async def session_rows(api: Api) -> int:
    return await api.count("web_sessions")


async def token_count(api: Api, user: str) -> int:
    return int(
        await api.kopers.store.pool.fetchval(
            "SELECT count(*) FROM tokens t JOIN users u ON u.id = t.user_id WHERE u.name = $1",
            user,
        )
    )


# The sign-in page and its cookie --------------------------------------------------


async def test_the_sign_in_form_has_labelled_fields_a_csrf_token_and_the_target(
    api: Api, browsers: list[Browser]
) -> None:
    b = browsers[0]
    status, page, headers = await b.get("/login/?next=/api/")
    assert status == 200 and headers["Content-Type"].startswith("text/html")
    for field in ("username", "password"):
        assert re.search(rf'<label for="{field}">', page), field
        assert re.search(rf'<input[^>]* id="{field}" name="{field}"', page), field
    assert re.search(r'<input type="hidden" name="csrf_token" value="[^"]{20,}"', page)
    assert '<input type="hidden" name="next" value="/api/"' in page
    assert 'action="/login/"' in page and 'method="post"' in page
    assert headers["Cache-Control"] == "no-store"
    assert "frame-ancestors 'none'" in headers["Content-Security-Policy"]
    for path in ("/login", "/logout"):
        status, _, headers = await b.get(path + "?next=/api/")
        assert status in (301, 308) and headers["Location"] == path + "/?next=/api/"


async def test_signing_in_sets_a_hardened_cookie_whose_digest_alone_is_stored(
    api: Api, browsers: list[Browser]
) -> None:
    b = browsers[0]
    status, _, headers = await b.sign_in("alice", next_="/api/")
    assert status == 303 and headers["Location"] == "/api/"
    [cookie] = [c for c in headers.getall("Set-Cookie") if c.startswith("kopers_session=")]
    attrs = {a.strip().split("=")[0].lower(): a for a in cookie.split(";")}
    assert {"httponly", "path", "samesite"} <= set(attrs)
    assert attrs["path"].strip() == "Path=/" and attrs["samesite"].strip() == "SameSite=Lax"
    assert "secure" not in attrs  # the public URL is http
    value = b.cookie()
    assert value is not None and len(base64.urlsafe_b64decode(value + "=")) == 32
    rows = await api.kopers.store.pool.fetch("SELECT id FROM web_sessions")
    assert [r["id"] for r in rows] == [hashlib.sha256(value.encode()).hexdigest()]
    status, page, _ = await b.get("/api/")
    assert status == 200 and "alice" in page and "Sign out" in page
    # Signing in again (as bob) replaces the session: the old cookie is nobody now.
    status, _, _ = await b.sign_in("bob")
    assert status == 303 and b.cookie() != value and await session_rows(api) == 1
    event = await api.kopers.store.pool.fetchval(
        "SELECT count(*) FROM events WHERE action = 'user.signin'"
    )
    assert event == 2


async def test_an_https_public_url_makes_the_cookie_secure(api: Api, tmp_path: Path) -> None:
    cfg = config_mod.load(
        str(REPO / "kopers.toml"),
        env={
            "KOPERS_DATA_DIR": str(api.kopers.config.data_dir),
            "KOPERS_DATABASE_DSN": api.kopers.config.database.dsn,
            "KOPERS_PUBLIC_URL": "https://kopers.example",
        },
    )
    user = await api.kopers.store.get_user("alice")
    await api.kopers.store.set_password(user, passwords.hash_password(PASSWORD))
    async with serving(cfg, users=False) as secure:
        b = Browser(secure)
        try:
            status, page, headers = await b.get("/login/")
            [login_cookie] = headers.getall("Set-Cookie")
            assert "Secure" in login_cookie and "HttpOnly" in login_cookie
            # The jar keeps a Secure cookie away from http: send it by hand.
            nonce = re.search(r"kopers_login=([^;]+)", login_cookie)
            assert nonce is not None
            form = {"csrf_token": csrf_of(page), "username": "alice", "password": PASSWORD}
            cookie = {"Cookie": f"kopers_login={nonce.group(1)}"}
            status, _, headers = await b.post(
                "/login/", form, headers={**cookie, "Origin": "https://kopers.example"}
            )
            assert status == 303
            [session] = [c for c in headers.getall("Set-Cookie") if "kopers_session=" in c]
            assert "Secure" in session and "HttpOnly" in session and "SameSite=Lax" in session
        finally:
            await b.close()


async def test_a_wrong_password_and_an_unknown_user_get_the_same_answer(
    api: Api, browsers: list[Browser]
) -> None:
    b = browsers[0]
    answers = []
    for user, password in (("alice", "wrong"), ("nobody", PASSWORD), ("root", PASSWORD)):
        status, page, _ = await b.sign_in(user, password)
        assert status == 200 and b.cookie() is None
        errors = re.findall(r'<p class="error"[^>]*>([^<]*)</p>', page)
        answers.append(errors)
        assert f'name="username" value="{user}"' in page
    # root exists but has no password: the same answer as a wrong one.
    assert answers == [[FAILED]] * 3
    assert await session_rows(api) == 0


async def test_the_echoed_user_name_is_escaped(api: Api, browsers: list[Browser]) -> None:
    b = browsers[0]
    hostile = '"><script>alert(1)</script>'
    status, page, _ = await b.sign_in(hostile, "x")
    assert status == 200
    assert "<script>alert(1)" not in page and '"><script' not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    status, page, _ = await b.get('/login/?next=/"><script>alert(2)</script>')
    assert status == 200 and "<script>alert(2)" not in page


# CSRF and origins --------------------------------------------------------------------


async def test_a_form_post_without_the_csrf_token_is_refused(
    api: Api, browsers: list[Browser]
) -> None:
    a = browsers[0]
    await a.token()  # a login cookie, but no token in the form
    status, body, _ = await a.post("/login/", {"username": "alice", "password": PASSWORD})
    assert status == 403 and "form" in body and a.cookie() is None
    await a.sign_in("alice")
    before = await token_count(api, "alice")
    for path in ("/api/tokens/new/", "/logout/"):
        status, body, _ = await a.post(path, {})
        assert status == 403 and "\n" not in body.strip(), path
        for forged in ("x" * 43, "\u00e9" * 43, ""):
            status, body, _ = await a.post(path, {"csrf_token": forged})
            assert status == 403, (path, forged)
        async with a.http.post(path, data=b"csrf_token=%FF%FE", headers=FORM_TYPE) as resp:
            assert resp.status in (400, 403), path
    assert await token_count(api, "alice") == before
    assert await session_rows(api) == 1  # still signed in


async def test_the_csrf_token_of_another_session_is_refused(
    api: Api, browsers: list[Browser]
) -> None:
    alice, bob, anonymous = browsers
    await alice.sign_in("alice")
    await bob.sign_in("bob")
    alices = await alice.token("/api/")
    bobs = await bob.token("/api/")
    assert alices != bobs
    status, _, _ = await bob.post("/api/tokens/new/", {"csrf_token": alices})
    assert status == 403
    # Nor does a signed-out browser's token, or a signed-out form's token, pass in a session.
    status, _, _ = await bob.post("/api/tokens/new/", {"csrf_token": await anonymous.token()})
    assert status == 403
    assert await token_count(api, "bob") == 1
    # A session's token is one for every form of it.
    status, page, _ = await bob.post("/api/tokens/new/", {"csrf_token": bobs})
    assert status == 200 and '<pre id="copr-config"' in page
    assert await token_count(api, "bob") == 2


async def test_a_session_cookie_sent_from_another_origin_is_refused(
    api: Api, browsers: list[Browser]
) -> None:
    a = browsers[0]
    await a.sign_in("alice")
    token = await a.token("/api/")
    for origin in (
        "https://evil.example",
        "null",
        "http://127.0.0.1:8081",
        "http://localhost:8080",
    ):
        status, body, _ = await a.post(
            "/api/tokens/new/", {"csrf_token": token}, headers={"Origin": origin}
        )
        assert status == 403 and "origin" in body, origin
    assert await token_count(api, "alice") == 1
    # The public URL's own origin (kopers.toml: http://127.0.0.1:8080) passes.
    status, _, _ = await a.post(
        "/api/tokens/new/", {"csrf_token": token}, headers={"Origin": "http://127.0.0.1:8080"}
    )
    assert status == 200 and await token_count(api, "alice") == 2
    # Signing in from another origin is refused too (login CSRF).
    b = browsers[1]
    form = {"csrf_token": await b.token(), "username": "bob", "password": PASSWORD}
    status, _, _ = await b.post("/login/", form, headers={"Origin": "https://evil.example"})
    assert status == 403 and b.cookie() is None


# Signing out and expiry -----------------------------------------------------------------


async def test_a_signed_out_session_cookie_is_signed_out(api: Api, browsers: list[Browser]) -> None:
    a, thief = browsers[0], browsers[1]
    await a.sign_in("alice")
    cookie, token = a.cookie(), await a.token("/api/")
    status, page, _ = await a.get("/logout/")
    assert status == 200 and 'action="/logout/"' in page and csrf_of(page) == token
    status, _, headers = await a.post("/logout/", {"csrf_token": token})
    assert status == 303 and headers["Location"] == "/"
    assert await session_rows(api) == 0 and a.cookie() is None
    # The old cookie, replayed, is nobody: signed-out page, and no form passes with it.
    replay = {"Cookie": f"kopers_session={cookie}"}
    status, page, _ = await thief.get("/api/", headers=replay)
    assert status == 200 and "/login/?next=/api/" in page and "Sign out" not in page
    status, _, _ = await thief.post("/api/tokens/new/", {"csrf_token": token}, headers=replay)
    assert status == 403 and await token_count(api, "alice") == 1


async def test_an_idle_or_too_old_session_has_ended(api: Api, browsers: list[Browser]) -> None:
    a = browsers[0]
    pool = api.kopers.store.pool
    await a.sign_in("alice")
    await pool.execute("UPDATE web_sessions SET last_seen = now() - interval '8 hours 1 second'")
    status, page, _ = await a.get("/api/")
    assert "Sign out" not in page and await session_rows(api) == 0
    await a.sign_in("alice")
    status, page, _ = await a.get("/api/")
    assert "Sign out" in page
    # Busy all along, but past its absolute end.
    await pool.execute("UPDATE web_sessions SET expires_on = now() - interval '1 second'")
    status, page, _ = await a.get("/api/")
    assert status == 200 and "Sign out" not in page and await session_rows(api) == 0


# Throttling ------------------------------------------------------------------------------


async def test_brute_force_is_throttled_per_account_even_for_the_right_password(
    api: Api, browsers: list[Browser]
) -> None:
    a = browsers[0]
    for _ in range(5):
        status, _, _ = await a.sign_in("alice", "guess")
        assert status == 200
    status, body, headers = await a.sign_in("alice", PASSWORD)
    assert status == 429 and body.count("\n") <= 1 and "try again" in body
    assert 0 < int(headers["Retry-After"]) <= 15 * 60
    assert a.cookie() is None and await session_rows(api) == 0
    # Other accounts from the same address still may (5 < 20 failures from it).
    status, _, _ = await browsers[1].sign_in("bob")
    assert status == 303
    # The counts are in Postgres: a restarted server still refuses.
    async with serving(api.kopers.config, users=False) as again:
        b = Browser(again)
        try:
            status, _, headers = await b.sign_in("alice", PASSWORD)
            assert status == 429 and "Retry-After" in headers
        finally:
            await b.close()


async def test_brute_force_is_throttled_per_address_and_a_success_does_not_reset_it(
    api: Api, browsers: list[Browser]
) -> None:
    a = browsers[0]
    # 19 failures over several names (unknown ones count too), under each account's limit.
    for i in range(19):
        status, _, _ = await a.sign_in(f"user{i % 5}", "guess")
        assert status == 200
    status, _, _ = await a.sign_in("bob")  # a success of the attacker's own account
    assert status == 303
    status, _, _ = await a.sign_in("user0", "guess")  # the 20th failure
    assert status == 200
    status, body, headers = await browsers[1].sign_in("alice", PASSWORD)
    assert status == 429 and "try again" in body and int(headers["Retry-After"]) > 0
    failures = await api.kopers.store.pool.fetchval(
        "SELECT count(*) FROM login_attempts WHERE NOT succeeded"
    )
    assert failures == 20  # a refused attempt is not counted again


async def test_a_success_starts_the_accounts_count_again(api: Api, browsers: list[Browser]) -> None:
    a = browsers[0]
    for _ in range(4):
        await a.sign_in("alice", "typo")
    assert (await a.sign_in("alice"))[0] == 303
    for _ in range(4):
        assert (await a.sign_in("alice", "typo"))[0] == 200
    assert (await a.sign_in("alice"))[0] == 303


# Where signing in leads ------------------------------------------------------------------


@pytest.mark.parametrize(
    "target",
    [
        "//evil.example/",
        "https://evil.example/",
        "/\\evil.example",
        "\\\\evil.example",
        "/\\/evil.example",
        "javascript:alert(1)",
        "/x\r\nSet-Cookie: a=b",
    ],
)
async def test_next_never_leads_off_the_site(
    api: Api, browsers: list[Browser], target: str
) -> None:
    status, _, headers = await browsers[0].sign_in("alice", next_=target)
    assert status == 303 and headers["Location"] == "/"


async def test_next_keeps_a_local_path_with_its_query(api: Api, browsers: list[Browser]) -> None:
    status, _, headers = await browsers[0].sign_in("alice", next_="/coprs/alice/p/?page=2")
    assert status == 303 and headers["Location"] == "/coprs/alice/p/?page=2"


# The API keeps token authentication only ---------------------------------------------------


async def test_a_session_authorises_no_api_call(api: Api, browsers: list[Browser]) -> None:
    a = browsers[0]
    await a.sign_in("alice")
    token = await a.token("/api/")
    same_origin = {"Origin": "http://127.0.0.1:8080"}
    body = {"name": "p", "chroots": ["debian-12-x86_64"], "description": "", "additional_repos": []}
    async with a.http.post(
        "/api_3/project/add/alice?ownername=alice", json=body, headers=same_origin
    ) as resp:
        assert resp.status == 401
    async with a.http.get("/api_3/auth-check") as resp:
        assert resp.status == 401
    [login] = [
        t.login
        for t in await api.kopers.store.list_tokens(await api.kopers.store.get_user("alice"))
    ]
    async with a.http.delete(f"/api/tokens/{login}", headers=same_origin) as resp:
        assert resp.status == 401
    async with a.http.post(
        "/api/builds/1/resubmit", data={"csrf_token": token}, headers=same_origin
    ) as resp:
        assert resp.status == 401
    assert await api.count("projects") == 0
    assert not (await api.kopers.store.token(login)).revoked  # type: ignore[union-attr]
    # A session cookie beside wrong credentials does not rescue them either.
    async with a.http.get("/api_3/auth-check", headers={"Authorization": api.auth["wrong"]}) as r:
        assert r.status == 401


# The /api/ page ------------------------------------------------------------------------------


async def test_signed_out_the_api_page_says_what_copr_cli_needs(
    api: Api, browsers: list[Browser]
) -> None:
    b = browsers[0]
    status, page, _ = await b.get("/api/")
    assert status == 200
    assert "~/.config/copr" in page and 'href="/login/?next=/api/"' in page
    status, _, headers = await b.get("/api")
    assert status in (301, 308) and headers["Location"] == "/api/"
    # The JSON routes below /api/ are still there.
    for path in ("/api/status", "/api/openapi.json"):
        async with b.http.get(path) as resp:
            assert resp.status == 200 and resp.content_type == "application/json", path


async def test_passwd_from_stdin_then_sign_in_make_a_token_and_use_it(
    api: Api, browsers: list[Browser]
) -> None:
    cfg = api.kopers.config
    status, _, err = await kopers_cli(cfg, ["user", "passwd", "alice"], b"s3cret pass\n")
    assert status == 0, err
    b = browsers[2]
    assert (await b.sign_in("alice", PASSWORD))[0] == 200  # the old one no longer works
    status, _, headers = await b.sign_in("alice", "s3cret pass", next_="/api/")
    assert status == 303 and headers["Location"] == "/api/"
    status, page, _ = await b.get("/api/")
    [old] = await api.kopers.store.list_tokens(await api.kopers.store.get_user("alice"))
    assert old.login in page and 'id="copr-config"' not in page
    status, page, headers = await b.post("/api/tokens/new/", {"csrf_token": csrf_of(page)})
    assert status == 200 and headers["Cache-Control"] == "no-store"
    config = unescape(re.search(r"<pre[^>]*>(.*?)</pre>", page, re.S).group(1))  # type: ignore[union-attr]
    values = dict(re.findall(r"^(\w+) = (.*)$", config, re.M))
    assert config.startswith("[copr-cli]\n")
    assert values["username"] == "alice" and values["copr_url"] == cfg.server.public_url
    auth = "Basic " + base64.b64encode(f"{values['login']}:{values['token']}".encode()).decode()
    async with b.http.get("/api_3/auth-check", headers={"Authorization": auth}) as resp:
        assert resp.status == 200 and (await resp.json())["name"] == "alice"
    # The secret is shown once: the page lists the token, never its secret again.
    status, page, _ = await b.get("/api/")
    assert values["login"] in page and values["token"] not in page
    # Revoked from the page, it no longer authenticates.
    form = {"csrf_token": csrf_of(page)}
    status, page, _ = await b.post(f"/api/tokens/{values['login']}/revoke/", form)
    assert status == 200 and "revoked" in page
    async with b.http.get("/api_3/auth-check", headers={"Authorization": auth}) as resp:
        assert resp.status == 401
    actions = await api.kopers.store.pool.fetch(
        "SELECT action FROM events WHERE object = 'alice' ORDER BY id"
    )
    assert [r["action"] for r in actions] == [
        "user.password",
        "user.signin",
        "token.create",
        "token.revoke",
    ]


async def test_passwd_refuses_an_empty_or_too_long_password(api: Api) -> None:
    cfg = api.kopers.config
    for stdin, message in ((b"\n", "empty"), (b"", "empty"), (b"x" * 1025 + b"\n", "1024")):
        status, _, err = await kopers_cli(cfg, ["user", "passwd", "alice"], stdin)
        assert status != 0 and message in err and err.count("\n") == 1, err
    status, _, err = await kopers_cli(cfg, ["user", "passwd", "nobody"], b"pw\n")
    assert status != 0 and "nobody" in err
    assert (
        await api.kopers.store.pool.fetchval(
            "SELECT count(*) FROM users WHERE password_hash IS NOT NULL"
        )
        == 0
    )


async def test_no_one_revokes_another_users_token_from_the_page(
    api: Api, browsers: list[Browser]
) -> None:
    a = browsers[0]
    await a.sign_in("alice")
    [bobs] = await api.kopers.store.list_tokens(await api.kopers.store.get_user("bob"))
    status, _, _ = await a.post(
        f"/api/tokens/{bobs.login}/revoke/", {"csrf_token": await a.token("/api/")}
    )
    assert status == 404
    async with a.http.get("/api_3/auth-check", headers={"Authorization": api.auth["bob"]}) as r:
        assert r.status == 200


async def kopers_cli(cfg: config_mod.Config, args: list[str], stdin: bytes) -> tuple[int, str, str]:
    """`kopers ARGS` on the test's database, with `stdin` as its standard input (no terminal)."""
    env = {
        **os.environ,
        "KOPERS_DATA_DIR": str(cfg.data_dir),
        "KOPERS_DATABASE_DSN": cfg.database.dsn,
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "kopers",
        "--config",
        str(REPO / "kopers.toml"),
        *args,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
        cwd=REPO,
    )
    out, err = await proc.communicate(stdin)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


@pytest.mark.parametrize(
    "content_type, body",
    [
        # A charset Python does not know.
        ("application/x-www-form-urlencoded; charset=bogus", b"csrf_token=x&username=a"),
        # UTF-7 decodes "+2AA-" to a lone surrogate, which no page can show.
        ("application/x-www-form-urlencoded; charset=utf-7", b"csrf_token=%2B2AA-&username=a"),
        (
            "multipart/form-data; boundary=XX",
            b'--XX\r\nContent-Disposition: form-data; name="csrf_token"\r\n'
            b"Content-Type: text/plain; charset=bogus\r\n\r\nabc\r\n--XX--\r\n",
        ),
    ],
)
async def test_a_form_in_a_hostile_charset_is_a_400_not_a_500(
    api: Api, browsers: list[Browser], content_type: str, body: bytes
) -> None:
    b = browsers[0]
    await b.token()  # the sign-in form's cookie
    status, text, _ = await b.post("/login/", body, headers={"Content-Type": content_type})
    assert status == 400 and "not valid UTF-8" in text, (status, text[:200])
    assert await session_rows(api) == 0


async def test_an_unknown_user_costs_a_password_check_too(
    api: Api, browsers: list[Browser], monkeypatch: pytest.MonkeyPatch
) -> None:
    """So the answer's time does not tell who has an account."""
    checked: list[str | None] = []
    real = passwords.verify

    def counting(stored: str | None, password: str) -> bool:
        checked.append(stored)
        return real(stored, password)

    monkeypatch.setattr(passwords, "verify", counting)
    status, page, _ = await browsers[0].sign_in("nobody-at-all")
    assert status == 200 and FAILED in page
    assert checked == [None]  # the dummy hash was checked, as for a user without a password
