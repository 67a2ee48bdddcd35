"""The build routes python-copr calls one at a time, against a real Postgres.

`build.delete` (one build, the list delete's rules and audit), the source
step (`get_source_chroot`, `get_source_build_config`), one chroot of a build
(`build_chroot.get_build_config`, `get_built_packages`) and
`project.can_build_in`. Refused calls come first: another user's build, an
unknown chroot, a build that still runs, a user or project that does not
exist; each leaves every table as it was. No VM runs: finished builds are
made through the store, as the runner records them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from copr.v3 import Client
from copr.v3.exceptions import CoprNoResultException

from kopers.models import BuildState, Nevra
from kopers.sched.graph import SOURCE
from tests.integration.conftest import CHROOT, Api, create, table_rows, waiting_build
from tests.integration.test_copr_clients_unsupported import client_config

pytestmark = pytest.mark.integration
HELLO = Nevra("hello", 0, "2.5", "1.deb12.kopers", "noarch")


async def project(api: Api, owner: str = "alice", name: str = "p") -> int:
    assert (await create(api, owner, owner, name))[0] == 200
    return (await api.kopers.store.get_project(owner, name)).id


async def finished_build(api: Api, make_srpm: Callable[..., Path]) -> int:
    """alice's upload of hello 2.5, built in CHROOT as the runner records it."""
    opts = {"ownername": "alice", "projectname": "p", "chroots": None, "timeout": "1234"}
    status, build = await api.upload("alice", make_srpm("hello", "2.5"), opts)
    assert status == 200, build
    store = api.kopers.store
    await store.start_task(build["id"], CHROOT, BuildState.STARTING)
    assert await store.finish_task(build["id"], CHROOT, BuildState.SUCCEEDED, None, "/x", [HELLO])
    return int(build["id"])


async def unchanged(api: Api, call: Any) -> Any:
    """Run `call`; assert no table changed; return its result."""
    before = await table_rows(api.kopers.store.pool)
    result = await call
    assert await table_rows(api.kopers.store.pool) == before
    return result


# DELETE /api_3/build/delete/{build_id} ------------------------------------------------


async def test_deleting_one_build_is_refused_to_others_and_while_it_runs(
    api: Api, make_srpm: Callable[..., Path]
) -> None:
    await project(api)
    done = await finished_build(api, make_srpm)
    alice = (await api.kopers.store.get_user("alice")).id
    running = await waiting_build(
        api.kopers.store, (await api.kopers.store.get_project("alice", "p")).id, alice, False
    )
    path = f"/api_3/build/delete/{done}"
    status, body = await unchanged(api, api.call("DELETE", path))
    assert status == 401 and "error" in body
    status, body = await unchanged(api, api.call("DELETE", path, "bob"))
    assert status == 403 and "may not delete builds in alice/p" in body["error"]
    status, body = await unchanged(api, api.call("DELETE", path, "wrong"))
    assert status == 401
    status, body = await unchanged(
        api, api.call("DELETE", f"/api_3/build/delete/{running}", "alice")
    )
    assert status == 400 and "cancel it first" in body["error"]
    status, body = await unchanged(api, api.call("DELETE", "/api_3/build/delete/999999", "alice"))
    assert status == 404 and "999999" in body["error"]
    status, body = await unchanged(api, api.call("DELETE", f"/api_3/build/delete/{2**63}", "alice"))
    assert status == 400 and "build_id" in body["error"]


async def test_one_build_deleted_with_python_copr_is_gone_and_audited(
    api: Api, make_srpm: Callable[..., Path]
) -> None:
    await project(api)
    build_id = await finished_build(api, make_srpm)
    client = Client(client_config(api, "alice"))
    deleted = await asyncio.to_thread(client.build_proxy.delete, build_id)
    assert deleted.id == build_id and deleted.projectname == "p"
    assert deleted.state == "succeeded"
    status, _ = await api.call("GET", f"/api_3/build/{build_id}")
    assert status == 404
    events = await api.kopers.store.events("alice/p")
    assert next((e["action"], e["username"], e["details"]) for e in events) == (
        "build.delete",
        "alice",
        {"build": build_id},
    )
    with pytest.raises(CoprNoResultException):
        await asyncio.to_thread(client.build_proxy.delete, build_id)  # the second time: 404


# The source step -------------------------------------------------------------------------


async def test_source_routes_refuse_unknown_and_malformed_builds(api: Api) -> None:
    for route in ("source-chroot", "source-build-config"):
        status, body = await api.call("GET", f"/api_3/build/{route}/999999")
        assert status == 404 and "999999" in body["error"], route
        status, body = await api.call("GET", f"/api_3/build/{route}/{2**63}")
        assert status == 400 and "build_id" in body["error"], route
    status, body = await api.call("GET", "/api/builds/999999/source-log")
    assert status == 404


async def test_source_chroot_of_an_upload_and_of_a_url_import(
    api: Api, make_srpm: Callable[..., Path]
) -> None:
    await project(api)
    uploaded = await finished_build(api, make_srpm)
    client = Client(client_config(api, "alice"))
    source = await asyncio.to_thread(client.build_proxy.get_source_chroot, uploaded)
    # An upload's source step is done when the build exists, and has no log of its own.
    assert source.state == "succeeded"
    assert source.srpm == "hello-2.5-1.src.rpm"
    assert source.result_url is None and source.log_url is None
    config = await asyncio.to_thread(client.build_proxy.get_source_build_config, uploaded)
    assert config.source_type == "upload" and config.timeout == 1234
    assert config.is_background is False and "filename" in config.source_dict

    opts = {"ownername": "alice", "projectname": "p", "chroots": None}
    url = "http://127.0.0.1:1/hello-1.0-1.src.rpm"
    status, page = await api.call(
        "POST", "/api_3/build/create/url", "alice", json={**opts, "pkgs": [url]}
    )
    assert status == 200, page
    linked = page["items"][0]["id"]
    status, source_json = await api.call("GET", f"/api_3/build/source-chroot/{linked}")
    assert status == 200 and source_json["state"] == "pending" and source_json["srpm"] is None
    status, config_json = await api.call("GET", f"/api_3/build/source-build-config/{linked}")
    assert config_json["source_type"] == "link" and config_json["source_dict"]["url"] == url


async def test_the_source_steps_log_is_linked_and_served_once_it_exists(
    api: Api, make_srpm: Callable[..., Path]
) -> None:
    await project(api)
    build_id = await finished_build(api, make_srpm)
    channel = api.kopers.hub.open(build_id, SOURCE)
    await channel.say("cloning https://example.org/x.git")
    channel.close(BuildState.SUCCEEDED, None)
    status, source = await api.call("GET", f"/api_3/build/source-chroot/{build_id}")
    assert status == 200
    log_url = source["log_url"]
    assert log_url == f"{api.kopers.config.server.public_url}/api/builds/{build_id}/source-log"
    status, text = await api.call("GET", f"/api/builds/{build_id}/source-log")
    assert status == 200 and "kopers: cloning https://example.org/x.git" in text


# One chroot of a build ------------------------------------------------------------------------


async def test_build_chroot_routes_refuse_unknown_chroots_and_builds(
    api: Api, make_srpm: Callable[..., Path]
) -> None:
    await project(api)
    build_id = await finished_build(api, make_srpm)
    for route in ("build-config", "built-packages"):
        base = f"/api_3/build-chroot/{route}"
        status, body = await api.call("GET", f"{base}?build_id={build_id}&chrootname=fedora-1-x")
        assert status == 404 and "fedora-1-x" in body["error"], route
        status, body = await api.call("GET", f"{base}?build_id=999999&chrootname={CHROOT}")
        assert status == 404 and "999999" in body["error"], route
        status, body = await api.call("GET", f"{base}?chrootname={CHROOT}")
        assert status == 400 and "build_id" in body["error"], route
        status, body = await api.call("GET", f"{base}?build_id={build_id}")
        assert status == 400 and "chrootname" in body["error"], route
        status, body = await api.call("GET", f"{base}?build_id=x&chrootname={CHROOT}")
        assert status == 400 and "build_id" in body["error"], route
    client = Client(client_config(api, "alice"))
    with pytest.raises(CoprNoResultException):
        await asyncio.to_thread(client.build_chroot_proxy.get_build_config, build_id, "nope-1-x")


async def test_build_chroot_config_and_packages_through_python_copr(
    api: Api, make_srpm: Callable[..., Path]
) -> None:
    await project(api)
    extra = "http://127.0.0.1:9/extra/"
    edit = f"/api_3/project-chroot/edit/alice/p/{CHROOT}"
    assert (await api.call("PUT", edit, "alice", json={"additional_repos": [extra]}))[0] == 200
    build_id = await finished_build(api, make_srpm)
    client = Client(client_config(api, "alice"))
    config = await asyncio.to_thread(client.build_chroot_proxy.get_build_config, build_id, CHROOT)
    public = api.kopers.config.server.public_url
    baseurls = [r["baseurl"] for r in config.repos]
    assert baseurls == [f"{public}/results/alice/p/{CHROOT}/", extra]
    assert config.additional_repos == [extra]
    assert config.timeout == 1234 and config.enable_net is False and config.is_background is False
    # The macros every package of this build in this chroot was forced to carry.
    assert config.macros == {
        "dist": ".deb12.kopers",
        "vendor": "Kopers alice/p",
        "packager": f"alice via Kopers <{public}>",
    }
    packages = await asyncio.to_thread(
        client.build_chroot_proxy.get_built_packages, build_id, CHROOT
    )
    assert [dict(n) for n in packages.packages] == [
        {
            "name": "hello",
            "epoch": 0,
            "version": "2.5",
            "release": "1.deb12.kopers",
            "arch": "noarch",
        }
    ]
    status, raw = await api.call(
        "GET", f"/api_3/build-chroot/built-packages?build_id={build_id}&chrootname={CHROOT}"
    )
    assert status == 200 and set(raw) == {"packages"}


# can_build_in -------------------------------------------------------------------------------------


async def test_can_build_in_needs_credentials_and_real_names(api: Api) -> None:
    await project(api)
    base = "/api_3/project/permissions/can_build_in"
    status, body = await unchanged(api, api.call("GET", f"{base}/bob/alice/p"))
    assert status == 401 and "error" in body
    status, body = await unchanged(api, api.call("GET", f"{base}/nobody/alice/p", "bob"))
    assert status == 404 and "nobody" in body["error"]
    status, body = await unchanged(api, api.call("GET", f"{base}/bob/alice/nope", "bob"))
    assert status == 404 and "nope" in body["error"]
    status, body = await unchanged(api, api.call("GET", f"{base}/b%00b/alice/p", "bob"))
    assert status == 400 and "who" in body["error"]


async def test_can_build_in_answers_as_a_submission_would_be_decided(api: Api) -> None:
    await project(api)
    bob = Client(client_config(api, "bob"))
    alice = Client(client_config(api, "alice"))

    def ask(client: Client, who: str) -> bool:
        return bool(client.project_proxy.can_build_in(who, "alice", "p"))

    assert await asyncio.to_thread(ask, bob, "alice") is True
    assert await asyncio.to_thread(ask, bob, "bob") is False
    assert await asyncio.to_thread(ask, alice, "root") is True  # site admins may build anywhere
    status, body = await api.call(
        "GET", "/api_3/project/permissions/can_build_in/bob/alice/p", "alice"
    )
    assert body == {"who": "bob", "ownername": "alice", "projectname": "p", "can_build_in": False}
    grant = {"bob": {"builder": "approved"}}
    path = "/api_3/project/permissions/set/alice/p"
    assert (await api.call("PUT", path, "alice", json=grant))[0] == 200
    assert await asyncio.to_thread(ask, bob, "bob") is True
    # And the submission agrees with the answer.
    opts = {"ownername": "alice", "projectname": "p", "chroots": None}
    status, _ = await api.call("POST", "/api_3/build/check-before-build", "bob", json=opts)
    assert status == 200
    with pytest.raises(CoprNoResultException):
        await asyncio.to_thread(bob.project_proxy.can_build_in, "bob", "alice", "missing")


# Answers against the OpenAPI document ---------------------------------------------------------


async def test_answers_match_their_documented_schemas(
    api: Api, make_srpm: Callable[..., Path]
) -> None:
    status, doc = await api.call("GET", "/api/openapi.json")
    assert status == 200
    await project(api)
    build_id = await finished_build(api, make_srpm)
    chroot = f"?build_id={build_id}&chrootname={CHROOT}"
    calls = [
        ("GET", "/api_3/build/source-chroot/{build_id}", f"/{build_id}", None, 200),
        ("GET", "/api_3/build/source-chroot/{build_id}", "/999999", None, 404),
        ("GET", "/api_3/build/source-build-config/{build_id}", f"/{build_id}", None, 200),
        ("GET", "/api_3/build-chroot/build-config", chroot, None, 200),
        (
            "GET",
            "/api_3/build-chroot/build-config",
            f"?build_id={build_id}&chrootname=x-1-y",
            None,
            404,
        ),
        ("GET", "/api_3/build-chroot/built-packages", chroot, None, 200),
        (
            "GET",
            "/api_3/project/permissions/can_build_in/{who}/{ownername}/{projectname}",
            "/bob/alice/p",
            "bob",
            200,
        ),
        (
            "GET",
            "/api_3/project/permissions/can_build_in/{who}/{ownername}/{projectname}",
            "/bob/alice/p",
            None,
            401,
        ),
        ("DELETE", "/api_3/build/delete/{build_id}", f"/{build_id}", "bob", 403),
        ("DELETE", "/api_3/build/delete/{build_id}", f"/{build_id}", "alice", 200),
        ("POST", "/api_3/api-token", "", None, 401),
        ("POST", "/api_3/api-token", "", "bob", 200),
    ]
    for method, template, tail, user, want in calls:
        path = template.split("/{", 1)[0] + tail if "{" in template else template + tail
        status, body = await api.call(method, path, user)
        assert status == want, (method, path, body)
        answer = doc["paths"][template][method.lower()]["responses"][str(status)]
        if "$ref" in answer:
            answer = doc["components"]["responses"][answer["$ref"].rsplit("/", 1)[-1]]
        schema = answer["content"]["application/json"]["schema"]
        jsonschema.validate(body, {**schema, "components": doc["components"]})
