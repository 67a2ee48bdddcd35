"""Groups, roles and tokens end to end: the unmodified copr-cli against a real Kopers.

A SIG's member creates `@sig/tools` and builds into it (one real VM build),
an outsider is refused until a group admin grants the builder role through
copr-cli's permission commands, and revoked or expired tokens get Copr's
401 error. Tests in this file share the session server and run in order.
"""

from __future__ import annotations

import base64
import configparser
import json
import re
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.server import CHROOT, Server

pytestmark = pytest.mark.e2e
GROUP = "kopers-sig"
PROJECT = f"@{GROUP}/tools"
ADMIN, MEMBER, OUTSIDER = "sig-admin", "sig-member", "outsider"


@pytest.fixture(scope="module")
def sig(server: Server) -> Server:
    server.kopers("group", "add", GROUP)
    for name in (ADMIN, MEMBER, OUTSIDER):
        server.user(name)
    server.kopers("group", "member", "add", GROUP, ADMIN, "--admin")
    server.kopers("group", "member", "add", GROUP, MEMBER)
    return server


def build_id_of(output: str) -> int:
    match = re.search(r"Created builds: (\d+)", output)
    assert match, output
    return int(match.group(1))


def new_config(server: Server, user: str, key: str, *days: str) -> str:
    """Another token for `user`, usable as `server.copr(key, ...)`; returns its login."""
    conf = server.data_dir.parent / f"copr-{key}.conf"
    conf.write_text(server.kopers("token", "create", user, *days).stdout)
    server.configs[key] = conf
    return login_of(server, key)


def login_of(server: Server, key: str) -> str:
    cp = configparser.ConfigParser()
    cp.read(server.configs[key])
    return cp["copr-cli"]["login"]


def api(server: Server, key: str, method: str, path: str) -> tuple[int, Any]:
    """A native API call with the Basic credentials of config `key`."""
    cp = configparser.ConfigParser()
    cp.read(server.configs[key])
    creds = f"{cp['copr-cli']['login']}:{cp['copr-cli']['token']}"
    request = urllib.request.Request(
        server.url + path,
        method=method,
        headers={"Authorization": "Basic " + base64.b64encode(creds.encode()).decode()},
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def events(server: Server, **query: str) -> list[dict[str, Any]]:
    qs = "&".join(f"{k}={urllib.request.quote(v)}" for k, v in query.items())
    status, page = api(server, ADMIN, "GET", f"/api/events?{qs}")
    assert status == 200, page
    items: list[dict[str, Any]] = page["items"]
    return items


def test_groups_are_listed(sig: Server) -> None:
    out = sig.kopers("group", "list").stdout
    assert f"@{GROUP}: {ADMIN}* {MEMBER}" in out.splitlines()


def test_a_member_creates_a_group_project_and_an_outsider_cannot(sig: Server) -> None:
    r = sig.copr(MEMBER, "create", PROJECT, "--chroot", CHROOT, "--description", "SIG tools")
    assert r.returncode == 0, r.stderr
    assert f"/coprs/g/{GROUP}/tools/" in r.stdout
    r = sig.copr(MEMBER, "get", PROJECT)
    assert r.returncode == 0 and f"/results/@{GROUP}/tools/{CHROOT}/" in r.stdout

    r = sig.copr(OUTSIDER, "create", f"@{GROUP}/mine", "--chroot", CHROOT)
    assert r.returncode == 7, r.stdout + r.stderr
    assert f"may not create projects owned by @{GROUP}" in r.stderr
    assert sig.copr(OUTSIDER, "get", f"@{GROUP}/mine").returncode == 1


def test_a_member_builds_in_the_group_project(sig: Server, make_srpm: Callable[..., Path]) -> None:
    r = sig.copr(MEMBER, "build", PROJECT, str(make_srpm("kopers-sig-hello", "1.0")), "--nowait")
    assert r.returncode == 0, r.stdout + r.stderr
    build_id = build_id_of(r.stdout)
    build = sig.wait_build(build_id, timeout=1800)
    assert build["state"] == "succeeded", build

    # The audit trail says who submitted it and links what it was built against.
    [event] = [e for e in events(sig, project=PROJECT) if e["action"] == "build.submit"]
    assert event["user"] == MEMBER and event["details"]["build"] == build_id
    manifest = sig.get(event["buildroot_url"].removeprefix(sig.url))
    assert manifest["build_id"] == build_id and manifest["chroots"][CHROOT]


def test_an_outsider_is_refused_with_a_clear_message(
    sig: Server, make_srpm: Callable[..., Path]
) -> None:
    before = sig.get(f"/api_3/build/list?ownername=%40{GROUP}&projectname=tools")["items"]
    r = sig.copr(OUTSIDER, "build", PROJECT, str(make_srpm("kopers-intruder", "1")), "--nowait")
    assert r.returncode == 7, r.stdout + r.stderr
    assert f"User '{OUTSIDER}' may not build in {PROJECT}." in r.stderr
    assert f"members of group {GROUP}" in r.stderr and "request-permissions" in r.stderr
    assert sig.get(f"/api_3/build/list?ownername=%40{GROUP}&projectname=tools")["items"] == before


def test_permissions_are_requested_listed_and_granted_with_copr_cli(
    sig: Server, make_srpm: Callable[..., Path]
) -> None:
    r = sig.copr(ADMIN, "list-permissions", PROJECT)
    assert r.returncode == 1 and f"No permissions set on {PROJECT} project" in r.stderr

    r = sig.copr(OUTSIDER, "request-permissions", PROJECT, "--builder")
    assert r.returncode == 0 and r.stdout.strip() == "success", r.stderr
    r = sig.copr(OUTSIDER, "list-permissions", PROJECT)
    assert r.returncode == 7 and "may not see the permissions of" in r.stderr

    r = sig.copr(ADMIN, "list-permissions", PROJECT)
    assert r.returncode == 0, r.stderr
    assert f"{OUTSIDER}:\n  admin: nothing\n  builder: request\n" in r.stdout

    # A plain member may build but not hand out roles.
    r = sig.copr(MEMBER, "edit-permissions", PROJECT, "--builder", OUTSIDER)
    assert r.returncode == 7 and "may not change the permissions of" in r.stderr

    r = sig.copr(ADMIN, "edit-permissions", PROJECT, "--builder", OUTSIDER)
    assert r.returncode == 0 and r.stdout.strip() == "success", r.stderr
    r = sig.copr(ADMIN, "list-permissions", PROJECT)
    assert f"{OUTSIDER}:\n  admin: nothing\n  builder: approved\n" in r.stdout

    # Now the outsider passes the permission check; the unknown chroot then
    # stops the submission before a build (and a VM) is made.
    srpm = make_srpm("kopers-granted", "1")
    r = sig.copr(OUTSIDER, "build", PROJECT, str(srpm), "--nowait", "-r", "fedora-40-x86_64")
    assert r.returncode == 1 and "not enabled in project" in r.stderr, r.stderr

    trail = {(e["action"], e["user"]) for e in events(sig, project=PROJECT)}
    assert {("permission.request", OUTSIDER), ("permission.set", ADMIN)} <= trail


def test_a_revoked_token_fails_like_copr(sig: Server) -> None:
    login = new_config(sig, ADMIN, "sig-admin-2")
    assert sig.copr("sig-admin-2", "list-permissions", PROJECT).returncode == 0
    listing = sig.kopers("token", "list", ADMIN).stdout
    row = next(line for line in listing.splitlines() if line.startswith(login))
    assert row.endswith(" no") and "never" not in row  # not revoked; last use recorded

    r = sig.kopers("token", "revoke", login)
    assert r.returncode == 0, r.stderr
    r = sig.copr("sig-admin-2", "list-permissions", PROJECT)
    assert r.returncode == 1 and "Login invalid/expired" in r.stderr
    row = next(
        line for line in sig.kopers("token", "list", ADMIN).stdout.splitlines() if login in line
    )
    assert row.endswith("UTC")  # the REVOKED column shows when
    assert sig.kopers("token", "revoke", login, check=False).returncode == 1

    # The owner revokes through the API; nobody else may.
    login3 = new_config(sig, ADMIN, "sig-admin-3")
    status, body = api(sig, OUTSIDER, "DELETE", f"/api/tokens/{login3}")
    assert status == 403 and f"may not revoke the tokens of {ADMIN}" in body["error"]
    assert sig.copr("sig-admin-3", "list-permissions", PROJECT).returncode == 0
    status, body = api(sig, ADMIN, "DELETE", f"/api/tokens/{login3}")
    assert status == 200 and body == {"login": login3, "revoked": True}
    r = sig.copr("sig-admin-3", "list-permissions", PROJECT)
    assert r.returncode == 1 and "Login invalid/expired" in r.stderr

    trail = [e for e in events(sig, user=ADMIN) if e["action"] == "token.revoke"]
    assert [e["details"]["login"] for e in trail] == [login3]


def test_an_expired_token_fails_like_copr(sig: Server) -> None:
    lifetime = 20.0  # seconds: long enough to be used once, short enough to wait out
    new_config(sig, ADMIN, "sig-admin-short", "--days", f"{lifetime / 86400:.8f}")
    created = time.monotonic()
    r = sig.copr("sig-admin-short", "list-permissions", PROJECT)
    assert r.returncode == 0, r.stderr
    time.sleep(max(0.0, created + lifetime + 1 - time.monotonic()))
    r = sig.copr("sig-admin-short", "list-permissions", PROJECT)
    assert r.returncode == 1 and "Login invalid/expired" in r.stderr
    assert "(expired)" in sig.kopers("token", "list", ADMIN).stdout


def test_a_removed_member_loses_the_group_rights(
    sig: Server, make_srpm: Callable[..., Path]
) -> None:
    sig.kopers("group", "member", "remove", GROUP, MEMBER)
    assert f"@{GROUP}: {ADMIN}*" in sig.kopers("group", "list").stdout.splitlines()
    srpm = make_srpm("kopers-removed", "1")
    r = sig.copr(MEMBER, "build", PROJECT, str(srpm), "--nowait", "-r", "fedora-40-x86_64")
    assert r.returncode == 7 and f"may not build in {PROJECT}" in r.stderr
    r = sig.kopers("group", "member", "remove", GROUP, MEMBER, check=False)
    assert r.returncode == 1 and "is not a member" in r.stderr
    trail = [(e["action"], e["details"].get("user")) for e in events(sig, project=f"@{GROUP}")]
    assert ("group.member.remove", MEMBER) in trail and ("group.member.add", ADMIN) in trail
