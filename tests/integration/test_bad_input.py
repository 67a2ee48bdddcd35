"""Hostile input through the real app: a 4xx naming the field, never a 500, nothing changed.

Each case is a request that once reached Postgres, the file system or a
parser unchecked and came back as a 500: ids past bigint or in another
script's digits, NUL and control characters in names and logins, lists
where objects belong, non-strings and oversized values in free text, a
non-multipart upload, a 256-byte path component, a Host that is no host.
Requests go out as raw HTTP (tests/integration/rawhttp.py), so the path,
the headers and the body are exactly what a hostile client sends. For every
case, the database and the data directory are compared before and after.

test_route_sweep.py does the same for every route and hostile value at once.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.integration.conftest import CHROOT, Api, basic, create
from tests.integration.rawhttp import send, snapshot, world

pytestmark = pytest.mark.integration

BIG = str(2**63)
ARABIC_3 = "%D9%A3"  # "٣", which \d matches and int() reads as 3
SUPER_2 = "%C2%B2"  # "²"
MANY = "1" * 5000
CHR = CHROOT


@dataclass(frozen=True)
class Case:
    name: str
    method: str
    target: str  # path and query, percent-encoded as sent
    field: str  # what the error message must name
    user: str | None = "alice"
    body: Any = None  # JSON value to send, or bytes as they are
    headers: dict[str, str] = field(default_factory=dict)
    status: tuple[int, ...] = (400,)
    world: bool | None = None  # whether alice/p and a build must exist; default: not for a GET

    @property
    def needs_world(self) -> bool:
        return self.method != "GET" if self.world is None else self.world


def _project(**extra: Any) -> dict[str, Any]:
    return {"name": "q", "chroots": [CHR], "description": "d", **extra}


def _build(**extra: Any) -> dict[str, Any]:
    return {"ownername": "alice", "projectname": "p", "chroots": None, **extra}


_URL_BUILD = _build(pkgs=["http://example.invalid/x.src.rpm"])
_ADD = "/api_3/project/add/alice?ownername=alice&exist_ok=False"
_EDIT_CHROOT = f"/api_3/project-chroot/edit/alice/p/{CHR}"

CASES = [
    # ids past bigint, in other scripts' digits, with thousands of digits
    Case("build id 2^63", "GET", f"/api_3/build/{BIG}", "build_id", None),
    Case("build id arabic digit", "GET", f"/api_3/build/{ARABIC_3}", "build_id", None),
    Case("built-packages 5000 digits", "GET", f"/api_3/build/built-packages/{MANY}", "build_id"),
    Case("cancel 2^63", "PUT", f"/api_3/build/cancel/{BIG}", "build_id"),
    Case("native build 2^63", "GET", f"/api/builds/{BIG}", "build_id", None),
    Case("buildroot 2^63", "GET", f"/api/builds/{BIG}/buildroot", "build_id", None),
    Case("resubmit 2^63", "POST", f"/api/builds/{BIG}/resubmit", "build_id"),
    Case("build page 2^63", "GET", f"/coprs/build/{BIG}/", "build_id", None),
    Case("build page arabic", "GET", f"/coprs/build/{ARABIC_3}", "build_id", None),
    Case("websocket 2^63", "GET", f"/ws/builds/{BIG}/{CHR}/log", "build_id", None),
    Case(
        "build-chroot abc", "GET", f"/api_3/build-chroot?build_id=abc&chrootname={CHR}", "build_id"
    ),
    Case("build-chroot list 2^63", "GET", f"/api_3/build-chroot/list?build_id={BIG}", "build_id"),
    Case(
        "limit 2^63",
        "GET",
        f"/api_3/build/list?ownername=alice&projectname=p&limit={BIG}",
        "limit",
        None,
        world=True,
    ),
    Case(
        "offset 2^63",
        "GET",
        f"/api_3/build/list?ownername=alice&projectname=p&offset={BIG}",
        "offset",
        None,
        world=True,
    ),
    Case(
        "delete builds 2^63",
        "DELETE",
        "/api_3/build/delete/list",
        "builds",
        body={"builds": [2**63]},
    ),
    Case("websocket from superscript", "GET", f"/ws/builds/1/{CHR}/log?from={SUPER_2}", "from"),
    Case("websocket from 5000 digits", "GET", f"/ws/builds/1/{CHR}/log?from={MANY}", "from"),
    # NUL and control characters in names
    Case("get project NUL owner", "GET", "/api_3/project?ownername=%00&projectname=p", "ownername"),
    Case("list projects NUL owner", "GET", "/api_3/project/list?ownername=a%00", "ownername"),
    Case("search NUL", "GET", "/api_3/project/search?query=%00", "query", None),
    Case(
        "add project NUL owner", "POST", "/api_3/project/add/al%00ice", "ownername", body=_project()
    ),
    Case("add project NUL name", "POST", _ADD, "name", body=_project(name="q\x00")),
    Case("add project NUL chroot", "POST", _ADD, "chroots", body=_project(chroots=["c\x00"])),
    Case("delete project NUL", "DELETE", "/api_3/project/delete/alice/p%00", "projectname"),
    Case("regenerate NUL", "PUT", "/api_3/project/regenerate-repos/%00/p", "ownername"),
    Case("permissions NUL owner", "GET", "/api_3/project/permissions/get/%00/p", "ownername"),
    Case(
        "permissions set NUL user",
        "PUT",
        "/api_3/project/permissions/set/alice/p",
        "user name",
        body={"bo\x00b": {"builder": "approved"}},
    ),
    Case(
        "get chroot NUL",
        "GET",
        "/api_3/project-chroot?ownername=alice&projectname=p&chrootname=%00",
        "chrootname",
        world=True,
    ),
    Case("edit chroot NUL owner", "PUT", f"/api_3/project-chroot/edit/%00/p/{CHR}", "ownername"),
    Case(
        "package list NUL",
        "GET",
        "/api_3/package/list?ownername=alice&projectname=%01",
        "projectname",
    ),
    Case(
        "build list NUL package",
        "GET",
        "/api_3/build/list?ownername=alice&projectname=p&packagename=%00",
        "packagename",
        world=True,
    ),
    Case("chain NUL owner", "POST", "/api/projects/%00/p/chains", "owner", body={"builds": []}),
    Case(
        "url build NUL owner",
        "POST",
        "/api_3/build/create/url",
        "ownername",
        body={**_URL_BUILD, "ownername": "\x00"},
    ),
    Case(
        "check NUL project",
        "POST",
        "/api_3/build/check-before-build",
        "projectname",
        body=_build(projectname="p\x00"),
    ),
    Case("revoke NUL login", "DELETE", "/api/tokens/%00", "login"),
    Case("project page NUL", "GET", "/coprs/%00/p/", "owner", None),
    Case("group page NUL", "GET", "/coprs/g/grp/%00/", "project", None),
    Case("dnf repo NUL", "GET", "/coprs/alice/p%00/repo/debian-12/dnf.repo", "project", None),
    Case(
        "dnf repo NUL arch", "GET", "/coprs/alice/p/repo/debian-12/dnf.repo?arch=%00", "arch", None
    ),
    Case("websocket NUL chroot", "GET", "/ws/builds/1/%00/log", "chroot", None),
    Case(
        "name of 256 bytes",
        "GET",
        f"/api_3/project?ownername=alice&projectname={'x' * 256}",
        "projectname",
    ),
    # lists where objects belong, wrong types, values too big
    Case("add project list body", "POST", _ADD, "request body", body=["q"]),
    Case("add project homepage number", "POST", _ADD, "homepage", body=_project(homepage=5)),
    Case("add project contact list", "POST", _ADD, "contact", body=_project(contact=["a"])),
    Case(
        "add project huge delete_after_days",
        "POST",
        _ADD,
        "delete_after_days",
        body=_project(delete_after_days=10**30),
    ),
    Case(
        "add project delete_after_days digits",
        "POST",
        _ADD,
        "delete_after_days",
        body=_project(delete_after_days="9" * 40),
    ),
    Case(
        "add project description NUL",
        "POST",
        _ADD,
        "description",
        body=_project(description="a\x00b"),
    ),
    Case(
        "add project surrogate",
        "POST",
        _ADD,
        "instructions",
        body=b'{"name": "q", "chroots": ["' + CHR.encode() + b'"], "instructions": "\\ud800"}',
    ),
    Case(
        "add project enable_net word",
        "POST",
        _ADD,
        "enable_net",
        body=_project(enable_net="perhaps"),
    ),
    Case(
        "add project exist_ok word",
        "POST",
        _ADD.replace("False", "maybe"),
        "exist_ok",
        body=_project(),
    ),
    Case(
        "edit chroot reset_fields number",
        "PUT",
        _EDIT_CHROOT,
        "reset_fields",
        body={"reset_fields": 5},
    ),
    Case(
        "edit chroot list body",
        "PUT",
        _EDIT_CHROOT,
        "request body",
        body=[{"additional_repos": []}],
    ),
    Case(
        "edit chroot repos object",
        "PUT",
        _EDIT_CHROOT,
        "additional_repos",
        body={"additional_repos": {"a": 1}},
    ),
    Case(
        "edit chroot repo bad URL",
        "PUT",
        _EDIT_CHROOT,
        "additional_repos",
        body={"additional_repos": ["http://[x"]},
    ),
    Case(
        "url build after 2^63",
        "POST",
        "/api_3/build/create/url",
        "after_build_id",
        body={**_URL_BUILD, "after_build_id": 2**63},
    ),
    Case(
        "url build with arabic digit",
        "POST",
        "/api_3/build/create/url",
        "with_build_id",
        body={**_URL_BUILD, "with_build_id": "\u0663"},
    ),
    Case(
        "url build list of objects",
        "POST",
        "/api_3/build/create/url",
        "pkgs",
        body={**_URL_BUILD, "pkgs": [{"url": "x"}]},
    ),
    Case(
        "url build chroots object",
        "POST",
        "/api_3/build/create/url",
        "chroots",
        body={**_URL_BUILD, "chroots": {"a": 1}},
    ),
    Case(
        "check timeout superscript",
        "POST",
        "/api_3/build/check-before-build",
        "timeout",
        body=_build(timeout="\u00b2"),
    ),
    Case(
        "scm bad clone URL",
        "POST",
        "/api_3/build/create/scm",
        "clone_url",
        body=_build(clone_url="http://[x"),
    ),
    Case(
        "chain list item",
        "POST",
        "/api/projects/alice/p/chains",
        "builds[0]",
        body={"builds": [[]]},
    ),
    Case(
        "chain after 2^63",
        "POST",
        "/api/projects/alice/p/chains",
        "after",
        body={"builds": [{"url": "http://h/a.src.rpm", "after": [2**63]}]},
    ),
    Case(
        "package list flag",
        "GET",
        "/api_3/package/list?ownername=alice&projectname=p&with_latest_build=maybe",
        "with_latest_build",
        None,
        world=True,
    ),
    Case("upload not multipart", "POST", "/api_3/build/create/upload", "multipart", body=_build()),
    Case(
        "upload plain text",
        "POST",
        "/api_3/build/create/upload",
        "multipart",
        body=b"hello",
        headers={"Content-Type": "text/plain"},
    ),
    Case(
        "edit chroot json part a list",
        "PUT",
        _EDIT_CHROOT,
        "json part",
        body=b'--b\r\nContent-Disposition: form-data; name="json"\r\n\r\n[1]\r\n--b--\r\n',
        headers={"Content-Type": "multipart/form-data; boundary=b"},
    ),
    Case(
        "edit chroot multipart without boundary",
        "PUT",
        _EDIT_CHROOT,
        "multipart",
        body=b"x",
        headers={"Content-Type": "multipart/form-data"},
    ),
    # the results tree and the Host header
    Case("results NUL", "GET", "/results/alice/p%00", "path", None),
    Case("results 256-byte name", "GET", "/results/" + "x" * 256, "path", None),
    Case(
        "results 5000 digits",
        "GET",
        f"/results/alice/p/{CHR}/{MANY}-hello/builder-live.log",
        "path",
        None,
    ),
    Case(
        "dnf repo host",
        "GET",
        "/coprs/alice/p/repo/debian-12/dnf.repo",
        "Host",
        None,
        headers={"Host": "a]b"},
        world=True,
    ),
    # the Basic-auth login: Copr's 401, never a 500
    Case(
        "login with NUL",
        "GET",
        "/api_3/auth-check",
        "Login invalid",
        None,
        headers={"Authorization": basic("ali\x00ce", "secret")},
        status=(401,),
    ),
    Case(
        "login of 300 bytes",
        "GET",
        "/api_3/auth-check",
        "Login invalid",
        None,
        headers={"Authorization": basic("x" * 300, "secret")},
        status=(401,),
    ),
    Case(
        "token with control",
        "POST",
        _ADD,
        "Login invalid",
        None,
        headers={"Authorization": basic("abc", "se\x1bcret")},
        body=_project(),
        status=(401,),
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
async def test_hostile_value_is_a_4xx_naming_the_field(
    api: Api, make_srpm: Callable[..., Path], case: Case
) -> None:
    if case.needs_world:
        await world(api, make_srpm)
    before = await snapshot(api)
    status, body = await send(
        api, case.method, case.target, user=case.user, body=case.body, headers=case.headers
    )
    assert status in case.status, (status, body)
    assert isinstance(body, dict) and isinstance(body.get("error"), str), body
    assert case.field in body["error"], body["error"]
    assert "\n" not in body["error"] and len(body["error"]) < 300, body["error"]
    assert await snapshot(api) == before


async def test_the_same_requests_done_right_succeed(
    api: Api, make_srpm: Callable[..., Path]
) -> None:
    """The parsers refuse the hostile values, not the ordinary ones next to them."""
    build_id = await world(api, make_srpm)
    for method, target, user, body in [
        ("GET", f"/api_3/build/{build_id}", None, None),
        ("GET", f"/api_3/build-chroot?build_id={build_id}&chrootname={CHR}", None, None),
        ("GET", "/api_3/build/list?ownername=alice&projectname=p&limit=1000&offset=0", None, None),
        (
            "GET",
            "/api_3/package/list?ownername=alice&projectname=p&with_latest_build=True",
            None,
            None,
        ),
        ("GET", "/api_3/project/search?query=p", None, None),
        ("GET", "/coprs/alice/p/repo/debian-12/dnf.repo?arch=x86_64", None, None),
        (
            "POST",
            "/api_3/build/check-before-build",
            "alice",
            _build(timeout="3600", background=False),
        ),
        (
            "PUT",
            _EDIT_CHROOT,
            "alice",
            {"additional_repos": "http://repo.example/x/", "reset_fields": None},
        ),
        ("POST", _ADD.replace("False", "True"), "alice", _project(name="p")),
        (
            "POST",
            _ADD,
            "alice",
            _project(homepage="https://h.example", delete_after_days="3", enable_net="on"),
        ),
    ]:
        status, got = await send(api, method, target, user=user, body=body)
        assert status == 200, (target, got)
        assert not (isinstance(got, dict) and "error" in got), got


async def test_free_text_over_the_configured_cap_is_refused(
    api: Api, make_srpm: Callable[..., Path]
) -> None:
    await world(api, make_srpm)
    cap = api.kopers.config.limits.max_text_bytes
    before = await snapshot(api)
    for key in ("description", "instructions", "homepage", "contact"):
        status, body = await send(
            api, "POST", _ADD, user="alice", body=_project(**{key: "é" * cap})
        )
        assert status == 400 and key in body["error"] and str(cap) in body["error"], body
    assert await snapshot(api) == before
    status, body = await send(
        api, "POST", _ADD, user="alice", body=_project(description="é" * (cap // 2))
    )
    assert status == 200, body


async def test_a_live_log_url_of_a_build_past_bigint_is_not_found(
    api: Api, make_srpm: Callable[..., Path]
) -> None:
    await world(api, make_srpm)
    for build_dir in (f"{BIG}-hello", f"{'9' * 200}-hello", "\u0663" * 8 + "-hello"):
        path = f"/results/alice/p/{CHR}/{urllib.parse.quote(build_dir)}/builder-live.log"
        status, body = await send(api, "GET", path)
        assert status == 404, (build_dir, status, body)


async def test_a_hostile_host_on_the_repo_file_changes_nothing_else(api: Api) -> None:
    assert (await create(api, "alice", "alice", "p"))[0] == 200
    path = "/coprs/alice/p/repo/debian-12/dnf.repo"
    status, text = await send(api, "GET", path, headers={"Host": "copr.example:8080"})
    assert status == 200 and "[copr:copr.example:alice:p]" in text, text
    for host in ("a]b", "a b", "[::1", "h:99999999"):
        status, body = await send(api, "GET", path, headers={"Host": host})
        assert status == 400 and "Host" in body["error"], (host, body)
