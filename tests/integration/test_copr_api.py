"""The /api_3 contract against a real Postgres, gpg and rpm (no VMs: nothing is built).

Requests are shaped the way copr-cli sends them (see ../shared/docs/copr-api-v3.md):
Basic auth only on mutating calls, the multipart `json` part after the file.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from pathlib import Path

import aiohttp
import pytest

from tests.integration.conftest import CHROOT, Api, create

pytestmark = pytest.mark.integration


async def test_project_lifecycle_and_anonymous_reads(api: Api) -> None:
    status, project = await create(api, "alice", "alice", "tools")
    assert status == 200, project
    assert project["full_name"] == "alice/tools"
    assert project["chroot_repos"][CHROOT].endswith(f"/results/alice/tools/{CHROOT}/")
    assert "error" not in project
    pubkey = api.kopers.paths.results / "alice" / "tools" / "pubkey.gpg"
    assert pubkey.read_text().startswith("-----BEGIN PGP PUBLIC KEY BLOCK-----")

    status, got = await api.call("GET", "/api_3/project?ownername=alice&projectname=tools")
    assert status == 200 and got["name"] == "tools"
    status, listed = await api.call("GET", "/api_3/project/list?ownername=alice")
    assert [p["name"] for p in listed["items"]] == ["tools"] and "meta" in listed
    status, chroots = await api.call("GET", "/api_3/mock-chroots/list")
    assert chroots == {CHROOT: "Debian 12 builder with rpmbuild and dnf"}

    status, again = await create(api, "alice", "alice", "tools")
    assert status == 409 and "already exists" in again["error"]

    status, gone = await api.call(
        "DELETE", "/api_3/project/delete/alice/tools", "alice", json={"verify": True}
    )
    assert status == 200 and gone["name"] == "tools"
    status, missing = await api.call("GET", "/api_3/project?ownername=alice&projectname=tools")
    assert status == 404 and "does not exist" in missing["error"]
    assert not pubkey.exists()


async def test_project_creation_errors_store_nothing(api: Api) -> None:
    status, body = await create(api, "wrong", "alice", "x")
    assert status == 401 and "Login invalid/expired" in body["error"]
    status, body = await create(api, "alice", "bob", "x")
    assert status == 403 and "may not" in body["error"]
    status, body = await create(api, "alice", "alice", "x", ["fedora-99-x86_64"])
    assert status == 400 and "not available" in body["error"]
    status, body = await create(api, "alice", "alice", "../x")
    assert status == 400
    assert await api.count("projects") == 0
    status, body = await create(api, "root", "bob", "adminmade")
    assert status == 200, body


async def test_build_submission_rejections_leave_nothing(
    api: Api, make_srpm: Callable[..., Path], tmp_path: Path
) -> None:
    assert (await create(api, "alice", "alice", "p"))[0] == 200
    srpm = make_srpm("hello")
    opts = {"ownername": "alice", "projectname": "p", "project_dirname": "p", "chroots": None}

    not_rpm = tmp_path / "notes.src.rpm"
    not_rpm.write_text("this is not an rpm\n")
    status, body = await api.upload("alice", not_rpm, opts)
    assert status == 400 and "not an RPM" in body["error"]

    status, body = await api.upload(
        "alice", srpm, {**opts, "projectname": "nope", "project_dirname": "nope"}
    )
    assert status == 404 and "does not exist" in body["error"]

    status, body = await api.upload("alice", srpm, {**opts, "chroots": ["fedora-40-x86_64"]})
    assert status == 400 and "not enabled in project alice/p" in body["error"]

    status, body = await api.upload("bob", srpm, opts)
    assert status == 403

    status, body = await api.upload("wrong", srpm, opts)
    assert status == 401

    status, body = await api.call("POST", "/api_3/build/check-before-build", "bob", json=opts)
    assert status == 403

    # A side directory (`copr-cli build p:custom:x`) would land in the main repository.
    side = {**opts, "project_dirname": "p:custom:x"}
    status, body = await api.upload("alice", srpm, side)
    assert status == 501 and "project directories" in body["error"]
    url = {**side, "pkgs": ["https://example.org/x.src.rpm"]}
    status, body = await api.call("POST", "/api_3/build/create/url", "alice", json=url)
    assert status == 501 and "project directories" in body["error"]

    assert await api.count("builds") == 0
    assert list(api.kopers.paths.incoming.iterdir()) == []
    assert list(api.kopers.paths.sources.iterdir()) == []


async def test_upload_creates_a_pending_build_that_can_be_canceled_and_deleted(
    api: Api, make_srpm: Callable[..., Path]
) -> None:
    assert (await create(api, "alice", "alice", "p"))[0] == 200
    opts = {
        "ownername": "alice",
        "projectname": "p",
        "project_dirname": "p",
        "chroots": None,
        "timeout": "3600",
        "isolation": "unchanged",
        "background": False,
    }
    status, ok = await api.call("POST", "/api_3/build/check-before-build", "alice", json=opts)
    assert status == 200 and "error" not in ok

    status, build = await api.upload("alice", make_srpm("hello", "2.5"), opts)
    assert status == 200, build
    assert build["state"] == "pending" and build["projectname"] == "p"
    assert build["source_package"]["name"] == "hello"
    assert build["chroots"] == [CHROOT]
    stored = api.kopers.paths.source_dir(build["id"]) / "hello-2.5-1.src.rpm"
    assert stored.is_file()

    status, same = await api.call("GET", f"/api_3/build/{build['id']}")
    assert same["state"] == "pending"
    status, page = await api.call(
        "GET", "/api_3/build/list?ownername=alice&projectname=p&limit=1000"
    )
    assert [b["id"] for b in page["items"]] == [build["id"]]
    status, page2 = await api.call(
        "GET", "/api_3/build/list?ownername=alice&projectname=p&limit=1000&offset=1000"
    )
    assert page2["items"] == [] and page2["meta"]["offset"] == 1000
    status, chroots = await api.call("GET", f"/api_3/build-chroot/list?build_id={build['id']}")
    assert chroots["items"][0]["name"] == CHROOT and chroots["items"][0]["state"] == "pending"
    status, pkgs = await api.call("GET", f"/api_3/build/built-packages/{build['id']}")
    assert status == 200 and pkgs == {}

    status, body = await api.call(
        "DELETE", "/api_3/build/delete/list", "alice", json={"builds": [build["id"]]}
    )
    assert status == 400 and "cancel it first" in body["error"]
    status, body = await api.call("PUT", f"/api_3/build/cancel/{build['id']}", "bob")
    assert status == 403
    status, canceled = await api.call("PUT", f"/api_3/build/cancel/{build['id']}", "alice")
    assert status == 200 and canceled["state"] == "canceled"
    status, body = await api.call("PUT", f"/api_3/build/cancel/{build['id']}", "alice")
    assert status == 409

    status, deleted = await api.call(
        "DELETE", "/api_3/build/delete/list", "alice", json={"builds": [build["id"]]}
    )
    assert status == 200 and deleted == {"builds": [build["id"]]}
    status, body = await api.call("GET", f"/api_3/build/{build['id']}")
    assert status == 404

    events = [e["action"] for e in await api.kopers.store.events("alice/p")]
    assert events == ["build.delete", "build.cancel", "build.submit", "project.create"]


async def test_url_build_waits_for_its_source_step(api: Api) -> None:
    assert (await create(api, "alice", "alice", "p"))[0] == 200
    opts = {
        "ownername": "alice",
        "projectname": "p",
        "project_dirname": "p",
        "pkgs": ["http://127.0.0.1:1/hello.src.rpm"],
        "chroots": None,
    }
    status, body = await api.call("POST", "/api_3/build/create/url", "alice", json=opts)
    assert status == 200, body
    build = body["items"][0]
    assert build["state"] == "pending" and build["source_package"]["url"].endswith("hello.src.rpm")
    status, body = await api.call(
        "POST", "/api_3/build/create/url", "alice", json={**opts, "pkgs": ["file:///etc/passwd"]}
    )
    assert status == 400 and "http" in body["error"]


async def test_dnf_repo_file_for_dnf_copr_enable(api: Api) -> None:
    assert (await create(api, "alice", "alice", "p"))[0] == 200
    status, text = await api.call("GET", "/coprs/alice/p/repo/debian-12/dnf.repo?arch=x86_64")
    assert status == 200
    first, *rest = text.split("\n")
    assert first == "[copr:127.0.0.1:alice:p]"
    assert "gpgcheck=1" in rest and any(
        r.startswith("gpgkey=") and r.endswith("/pubkey.gpg") for r in rest
    )
    async with api.client.get("/coprs/alice/p/repo/epel-9/dnf.repo?arch=x86_64") as resp:
        assert resp.status == 404
        data = json.loads(base64.b64decode(resp.headers["Copr-Error-Data"]))
        assert data == {"available chroots": [CHROOT]}
    status, _ = await api.call("GET", "/coprs/alice/none/repo/debian-12/dnf.repo?arch=x86_64")
    assert status == 404


async def test_an_unsupported_copr_route_says_so_apart_from_a_missing_thing(api: Api) -> None:
    """python-copr turns a 404 into "no result": an unsupported route is a 501 instead."""
    for method, path in (
        ("GET", "/api_3/no/such/thing"),
        ("POST", "/api_3/module/build/alice/p"),
        ("DELETE", "/api_3/build/1"),  # a known path, not with this method
    ):
        status, body = await api.call(method, path)
        assert status == 501, (method, path, status, body)
        assert body["error"] == f"{method} {path} is not supported by this Kopers server"
    # A missing project stays a 404.
    status, body = await api.call("GET", "/api_3/project?ownername=alice&projectname=none")
    assert status == 404 and "does not exist" in body["error"]


@pytest.mark.parametrize(
    "body",
    [b"\xff\xfe not utf-8", b"[" * 100_000 + b"]" * 100_000, b'{"a": NaN}', b"{"],
)
async def test_a_json_body_that_is_not_json_is_a_400(api: Api, body: bytes) -> None:
    headers = {"Authorization": api.auth["alice"], "Content-Type": "application/json"}
    async with api.client.post("/api_3/project/add/alice", data=body, headers=headers) as resp:
        status, answer = resp.status, json.loads(await resp.text())
    assert status == 400, answer
    assert answer["error"].startswith("the request body is not valid JSON")
    assert "\n" not in answer["error"]


async def test_edit_chroot_repos_and_build_config(api: Api) -> None:
    assert (await create(api, "alice", "alice", "p"))[0] == 200
    form = aiohttp.FormData()
    body = {
        "additional_repos": "copr://bob/base http://127.0.0.1:9/r/",
        "additional_packages": None,
        "with_opts": "",
        "bootstrap": None,
        "reset_fields": None,
    }
    form.add_field("json", json.dumps(body), filename="json", content_type="application/json")
    path = f"/api_3/project-chroot/edit/alice/p/{CHROOT}"
    status, got = await api.call("PUT", path, "alice", data=form)
    assert status == 200, got
    assert got["additional_repos"] == ["copr://bob/base", "http://127.0.0.1:9/r/"]

    status, cfg = await api.call(
        "GET",
        f"/api_3/project-chroot/build-config?ownername=alice&projectname=p&chrootname={CHROOT}",
    )
    assert status == 200 and cfg["chroot"] == CHROOT
    urls = [r["baseurl"] for r in cfg["repos"]]
    assert urls[0].endswith(f"/results/alice/p/{CHROOT}/")
    assert urls[1].endswith(f"/results/bob/base/{CHROOT}/")
    assert urls[2] == "http://127.0.0.1:9/r/"

    form = aiohttp.FormData()
    form.add_field(
        "json",
        json.dumps({"additional_packages": "gcc"}),
        filename="json",
        content_type="application/json",
    )
    status, err = await api.call("PUT", path, "alice", data=form)
    assert status == 400 and "not supported" in err["error"]
    status, err = await api.call("PUT", path, "bob", data=aiohttp.FormData({"json": "{}"}))
    assert status == 403


async def test_resubmit_an_ended_build(api: Api, make_srpm: Callable[..., Path]) -> None:
    assert (await create(api, "alice", "alice", "p"))[0] == 200
    opts = {"ownername": "alice", "projectname": "p", "chroots": None}
    status, build = await api.upload("alice", make_srpm("again", "1.5"), opts)
    assert status == 200
    status, body = await api.call("POST", f"/api/builds/{build['id']}/resubmit", "alice")
    assert status == 400 and "only ended builds" in body["error"]
    assert (await api.call("PUT", f"/api_3/build/cancel/{build['id']}", "alice"))[0] == 200
    status, body = await api.call("POST", f"/api/builds/{build['id']}/resubmit", "bob")
    assert status == 403
    status, again = await api.call("POST", f"/api/builds/{build['id']}/resubmit", "alice")
    assert status == 200, again
    assert again["id"] != build["id"] and again["state"] == "pending"
    assert again["source_package"] == build["source_package"]
    assert (api.kopers.paths.source_dir(again["id"]) / "again-1.5-1.src.rpm").is_file()
    assert (api.kopers.paths.source_dir(build["id"]) / "again-1.5-1.src.rpm").is_file()


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (str(1 << 63), "limit is out of range"),
        ("\u00b2", "whole number"),
        ("1" * 30, "whole number"),
    ],
)
async def test_a_number_postgres_cannot_hold_is_a_400(api: Api, value: str, message: str) -> None:
    assert (await create(api, "alice", "alice", "p"))[0] == 200
    status, body = await api.call(
        "GET", f"/api_3/build/list?ownername=alice&projectname=p&limit={value}"
    )
    assert status == 400 and message in body["error"], body
