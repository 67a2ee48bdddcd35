"""`POST /api_3/api-token` (copr-cli new-api-token): the caller's token is replaced.

Upstream Copr "generates a new token and destroys the old one": the token the
request came with stops working, the new one works, and the change is in the
audit log. Refused first: no credentials, wrong, revoked or expired ones; a
refused call makes no token. The real copr-cli then rewrites its config.
"""

from __future__ import annotations

import asyncio
import base64
import configparser
import sys
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from kopers import tokens
from tests.integration.conftest import Api, basic, table_rows

pytestmark = pytest.mark.integration
COPR_CLI = Path(sys.executable).with_name("copr-cli")


def login_of(header: str) -> str:
    """The login half of a Basic Authorization header."""
    return base64.b64decode(header.split()[1]).decode().partition(":")[0]


async def extra_token(api: Api, user: str, expires: datetime | None = None) -> str:
    """Another token of `user`; its Authorization header."""
    u = await api.kopers.store.get_user(user)
    new = tokens.generate()
    await api.kopers.store.create_token(u.id, new.login, new.digest, expires)
    return basic(new.login, new.secret)


async def rotate(api: Api, header: str | None) -> tuple[int, dict[str, object]]:
    headers = {"Authorization": header} if header else {}
    async with api.client.post("/api_3/api-token", headers=headers) as resp:
        return resp.status, await resp.json()


async def test_a_token_that_does_not_work_cannot_make_a_new_one(api: Api) -> None:
    revoked = await extra_token(api, "alice")
    login = login_of(revoked)
    assert await api.kopers.store.revoke_token(login)
    expired = await extra_token(api, "alice", datetime.now(UTC) - timedelta(seconds=1))
    pool = api.kopers.store.pool
    for header in (None, api.auth["wrong"], revoked, expired, "Basic !!!"):
        before = await table_rows(pool)
        status, body = await rotate(api, header)
        assert status == 401 and "error" in body and "api_token" not in body, header
        assert await table_rows(pool) == before, header


async def test_the_old_token_stops_working_and_the_new_one_works(api: Api) -> None:
    other = await extra_token(api, "alice")  # a second token of alice's, e.g. for CI
    old_login = login_of(api.auth["alice"])
    status, body = await rotate(api, api.auth["alice"])
    assert status == 200, body
    assert set(body) == {"api_login", "api_token", "expiration"}
    new = basic(str(body["api_login"]), str(body["api_token"]))
    days = api.kopers.config.server.token_days
    assert body["expiration"] == (date.today() + timedelta(days=days)).isoformat()

    status, _ = await api.call("GET", "/api_3/auth-check", "alice")
    assert status == 401  # the old token
    async with api.client.get("/api_3/auth-check", headers={"Authorization": new}) as resp:
        assert resp.status == 200 and (await resp.json())["name"] == "alice"
    async with api.client.get("/api_3/auth-check", headers={"Authorization": other}) as resp:
        assert resp.status == 200  # only the token the call came with is replaced

    [event] = [e for e in await api.kopers.store.events("alice") if e["action"] == "token.rotate"]
    assert event["username"] == "alice" and event["object"] == "alice"
    assert event["details"] == {"login": body["api_login"], "replaces": old_login}
    assert "api_token" not in str(event["details"])
    # The secret itself is stored only as its digest.
    stored = await api.kopers.store.token(str(body["api_login"]))
    assert stored is not None and stored.secret_hash != body["api_token"]

    status, _ = await rotate(api, api.auth["alice"])
    assert status == 401  # a replaced token cannot replace itself a second time


async def test_two_rotations_with_one_token_at_once_make_one_new_token(api: Api) -> None:
    header = await extra_token(api, "bob")
    before = await api.count("tokens")
    results = await asyncio.gather(*(rotate(api, header) for _ in range(4)))
    assert sorted(status for status, _ in results) == [200, 401, 401, 401]
    assert await api.count("tokens") == before + 1


async def test_copr_cli_new_api_token_rewrites_its_config(api: Api, tmp_path: Path) -> None:
    login, _, secret = base64.b64decode(api.auth["bob"].split()[1]).decode().partition(":")
    url = str(api.client.make_url("")).rstrip("/")
    conf = tmp_path / "copr.conf"
    conf.write_text(
        "[copr-cli]\n"
        f"copr_url = {url}\nlogin = {login}\ntoken = {secret}\nusername = bob\nencrypted = false\n"
    )

    async def copr_cli(*args: str) -> tuple[int, str]:
        proc = await asyncio.create_subprocess_exec(
            str(COPR_CLI),
            "--config",
            str(conf),
            *args,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        out, _ = await asyncio.wait_for(proc.communicate(), 120)
        assert proc.returncode is not None
        return proc.returncode, out.decode()

    code, said = await copr_cli("new-api-token")
    assert code == 0, said
    ini = configparser.ConfigParser()
    ini.read(conf)
    assert ini["copr-cli"]["login"] != login and ini["copr-cli"]["token"] != secret
    assert "# expiration date: " in conf.read_text()
    # The rewritten config works for a call that needs credentials; the old one does not.
    code, said = await copr_cli("create", "fresh", "--chroot", "debian-12-x86_64")
    assert code == 0, said
    status, _ = await api.call("GET", "/api_3/auth-check", "bob")
    assert status == 401
