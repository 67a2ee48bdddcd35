"""Copr's packages and monitor, as python-copr and copr-cli call them, on a real Postgres.

Requests are made the way python-copr 2.7 sends them (path placeholders
repeated in the query, flat bodies, `True`/`False` flags), then through
python-copr's `Client` and the real copr-cli binary. No VM runs: a build
from a package is checked as the row it submits.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from copr.v3 import Client

from kopers.models import BuildState
from kopers.sched.graph import TaskKey
from kopers.worker.runner import Runner
from tests.fakevm import FakeVmPool
from tests.integration.conftest import CHROOT, Api, create, table_rows
from tests.integration.test_copr_clients_unsupported import client_config
from tests.integration.test_openapi import checker, fetch_document
from tests.integration.test_runner_limits import run_task

pytestmark = pytest.mark.integration

COPR_CLI = Path(sys.executable).with_name("copr-cli")
WHERE = "ownername=alice&projectname=p"
SCM_BODY = {
    "package_name": "hello",
    "clone_url": "https://example.org/hello.git",
    "committish": "v1.0",
    "subdirectory": "pkg",
    "spec": "hello.spec",
    "scm_type": "git",
    "source_build_method": "rpkg",
    "max_builds": "3",
    "timeout": "7200",
    "chroot_denylist": None,
    "webhook_rebuild": None,
}


def add_path(name: str = "hello", kind: str = "scm", project: str = "p") -> str:
    base = f"/api_3/package/add/alice/{project}/{name}/{kind}"
    return (
        f"{base}?ownername=alice&projectname={project}&package_name={name}&source_type_text={kind}"
    )


def edit_path(name: str = "hello", kind: str = "scm") -> str:
    base = f"/api_3/package/edit/alice/p/{name}/{kind}"
    return f"{base}?ownername=alice&projectname=p&package_name={name}&source_type_text={kind}"


def ref(name: str = "hello") -> dict[str, str]:
    return {"ownername": "alice", "projectname": "p", "package_name": name}


async def get_package(api: Api, name: str = "hello", flags: str = "") -> tuple[int, Any]:
    return await api.call("GET", f"/api_3/package?{WHERE}&packagename={name}{flags}")


@pytest.fixture
async def project(api: Api) -> Api:
    assert (await create(api, "alice", "alice", "p"))[0] == 200
    return api


# -- bad input first: each refused with a 4xx naming the field, nothing stored --


async def test_bad_requests_are_refused_and_store_nothing(project: Api) -> None:
    api = project
    before = await table_rows(api.kopers.store.pool)
    bad: list[tuple[str, str, str | None, dict[str, Any], int, str]] = [
        ("POST", add_path("-x"), "alice", {**SCM_BODY, "package_name": None}, 400, "package_name"),
        ("POST", add_path("a..b"), "alice", {}, 400, "package_name"),
        ("POST", add_path(kind="foo"), "alice", SCM_BODY, 400, "source_type_text"),
        ("POST", add_path(kind="upload"), "alice", SCM_BODY, 400, "source_type_text"),
        (
            "POST",
            add_path(),
            "alice",
            {**SCM_BODY, "clone_url": "file:///etc/passwd"},
            400,
            "clone_url",
        ),
        ("POST", add_path(), "alice", {**SCM_BODY, "clone_url": "no url"}, 400, "clone_url"),
        ("POST", add_path(), "alice", {**SCM_BODY, "committish": "--x"}, 400, "committish"),
        ("POST", add_path(), "alice", {**SCM_BODY, "subdirectory": "../.."}, 400, "subdirectory"),
        ("POST", add_path(), "alice", {**SCM_BODY, "max_builds": "1000"}, 400, "max_builds"),
        ("POST", add_path(), "alice", {**SCM_BODY, "timeout": "5"}, 400, "timeout"),
        ("POST", add_path(), "alice", {**SCM_BODY, "package_name": "other"}, 400, "package_name"),
        (
            "POST",
            add_path(kind="pypi"),
            "alice",
            {"package_name": "hello"},
            400,
            "pypi_package_name",
        ),
        (
            "POST",
            add_path(kind="custom"),
            "alice",
            {"script": "x", "script_chroot": "nowhere-1-x86_64"},
            400,
            "nowhere-1-x86_64",
        ),
        ("POST", add_path(project="nope"), "alice", SCM_BODY, 404, "nope"),
        # A foreign project: bob has no role in alice's.
        ("POST", add_path(), "bob", SCM_BODY, 403, "bob"),
        ("POST", add_path(), None, SCM_BODY, 401, "authentication"),
        # A package that does not exist.
        ("POST", edit_path("ghost"), "alice", {**SCM_BODY, "package_name": "ghost"}, 404, "ghost"),
        ("PUT", "/api_3/package/reset", "alice", ref("ghost"), 404, "ghost"),
        ("DELETE", "/api_3/package/delete", "alice", ref("ghost"), 404, "ghost"),
        ("POST", "/api_3/package/build", "alice", ref("ghost"), 404, "ghost"),
        ("DELETE", "/api_3/package/delete", "alice", ref("../x"), 400, "package_name"),
        ("PUT", "/api_3/package/reset", "alice", {"ownername": "alice"}, 400, "projectname"),
    ]
    for method, path, user, body, status, word in bad:
        got, answer = await api.call(method, path, user, json=body)
        assert got == status, (method, path, answer)
        assert word.lower() in answer["error"].lower(), (path, answer)
    status, answer = await get_package(api, "ghost")
    assert status == 404 and "ghost" in answer["error"]
    status, answer = await api.call("GET", f"/api_3/package?{WHERE}&packagename=a%2Fb")
    assert status == 400 and "packagename" in answer["error"]
    status, answer = await api.call("GET", f"/api_3/monitor?{WHERE}&additional_fields[]=x")
    assert status == 400 and "additional_fields" in answer["error"]
    assert await table_rows(api.kopers.store.pool) == before


async def test_a_second_add_of_a_name_is_a_conflict(project: Api) -> None:
    api = project
    assert (await api.call("POST", add_path(), "alice", json=SCM_BODY))[0] == 200
    status, answer = await api.call(
        "POST", add_path(kind="rubygems"), "alice", json={"gem_name": "x"}
    )
    assert status == 409 and "hello" in answer["error"]


# -- the calls as python-copr sends them ----------------------------------------


async def test_add_get_edit_list_reset_delete_an_scm_package(project: Api) -> None:
    api = project
    status, added = await api.call("POST", add_path(), "alice", json=SCM_BODY)
    assert status == 200, added
    status, package = await get_package(api)
    assert status == 200
    assert package["id"] == added["id"]
    assert (package["name"], package["ownername"], package["projectname"]) == (
        "hello",
        "alice",
        "p",
    )
    assert package["source_type"] == "scm"
    assert package["source_dict"] == {
        "clone_url": "https://example.org/hello.git",
        "committish": "v1.0",
        "subdirectory": "pkg",
        "spec": "hello.spec",
        "type": "git",
        "scm_type": "git",
        "source_build_method": "rpkg",
    }
    assert package["auto_rebuild"] is False and package["max_builds"] == 3
    assert package["timeout"] == 7200 and package["chroot_denylist"] == []
    assert package["builds"] == {"latest": None, "latest_succeeded": None}

    # Null leaves a field as it was; a given one changes.
    edit = {"package_name": "hello", "committish": "v2", "max_builds": None, "spec": None}
    edit |= {"chroot_denylist": "epel-*"}
    status, edited = await api.call("POST", edit_path(), "alice", json=edit)
    assert status == 200, edited
    status, package = await get_package(api)
    assert package["source_dict"]["committish"] == "v2"
    assert package["source_dict"]["spec"] == "hello.spec"
    assert package["source_dict"]["clone_url"] == "https://example.org/hello.git"
    assert package["max_builds"] == 3 and package["chroot_denylist"] == ["epel-*"]

    # python-copr puts None in the path when no source type is given.
    none_path = "/api_3/package/edit/alice/p/hello/None?ownername=alice&projectname=p"
    status, edited = await api.call("POST", none_path, "alice", json={"max_builds": "0"})
    assert status == 200 and edited["max_builds"] is None and edited["source_type"] == "scm"

    gem = {"package_name": "rake", "gem_name": "rake"}
    assert (await api.call("POST", add_path("rake", "rubygems"), "alice", json=gem))[0] == 200
    status, page = await api.call("GET", f"/api_3/package/list?{WHERE}&limit=1000")
    assert [p["name"] for p in page["items"]] == ["hello", "rake"]
    status, page = await api.call("GET", f"/api_3/package/list?{WHERE}&limit=1000&offset=1000")
    assert page["items"] == [] and page["meta"]["offset"] == 1000

    status, reset = await api.call("PUT", "/api_3/package/reset", "alice", json=ref())
    assert status == 200 and reset["source_type"] == "unset" and reset["source_dict"] == {}
    status, package = await get_package(api)
    assert package["source_type"] == "unset" and package["source_dict"] == {}
    status, answer = await api.call("POST", "/api_3/package/build", "alice", json=ref())
    assert status == 400 and "Unset" in answer["error"]

    status, deleted = await api.call("DELETE", "/api_3/package/delete", "alice", json=ref())
    assert status == 200 and deleted["name"] == "hello"
    assert (await get_package(api))[0] == 404
    events = await api.kopers.store.pool.fetch(
        "SELECT action FROM events WHERE action LIKE 'package.%' ORDER BY id"
    )
    assert [e["action"] for e in events] == [
        "package.add",
        "package.edit",
        "package.edit",
        "package.add",
        "package.reset",
        "package.delete",
    ]


async def test_build_package_submits_a_build_from_the_stored_definition(project: Api) -> None:
    api = project
    body = {**SCM_BODY, "chroot_denylist": None}
    assert (await api.call("POST", add_path(), "alice", json=body))[0] == 200
    opts = {**ref(), "project_dirname": "p", "chroots": None, "background": True}
    status, build = await api.call("POST", "/api_3/package/build", "alice", json=opts)
    assert status == 200, build
    assert build["state"] == "pending" and build["chroots"] == [CHROOT]
    stored = await api.kopers.store.get_build(build["id"])
    assert str(stored.source_type) == "scm"
    assert stored.source == {
        "clone_url": "https://example.org/hello.git",
        "committish": "v1.0",
        "subdirectory": "pkg",
        "spec": "hello.spec",
        "source_build_method": "rpkg",
    }
    assert stored.timeout == 7200  # the package's
    assert stored.is_background
    package = await api.kopers.store.get_package(stored.project_id, "hello")
    assert await api.kopers.store.package_of_build(build["id"]) == package.id
    status, shown = await get_package(api, flags="&with_latest_build=True")
    assert shown["builds"]["latest"]["id"] == build["id"]
    assert shown["builds"]["latest_succeeded"] is None
    status, page = await api.call(
        "GET", f"/api_3/package/list?{WHERE}&with_latest_build=False&limit=10"
    )
    assert page["items"][0]["builds"]["latest"] is None

    # A project directory (p:suffix) is not kept apart here: said so, nothing built.
    status, answer = await api.call(
        "POST", "/api_3/package/build", "alice", json={**opts, "project_dirname": "p:pr:1"}
    )
    assert status == 501 and "p:<suffix>" in answer["error"]
    # A denylisted chroot is left out; with nothing left there is no build.
    edit = {"chroot_denylist": "debian-*"}
    assert (await api.call("POST", edit_path(), "alice", json=edit))[0] == 200
    status, answer = await api.call("POST", "/api_3/package/build", "alice", json=opts)
    assert status == 400 and "no chroot" in answer["error"]
    # bob may not build in alice's project.
    status, answer = await api.call("POST", "/api_3/package/build", "bob", json=opts)
    assert status == 403
    assert await api.count("builds") == 1


async def test_pypi_packages_build_and_what_cannot_build_says_so(project: Api) -> None:
    api = project
    pypi = {"package_name": "python-x", "pypi_package_name": "x", "python_versions": [3]}
    assert (await api.call("POST", add_path("python-x", "pypi"), "alice", json=pypi))[0] == 200
    status, build = await api.call("POST", "/api_3/package/build", "alice", json=ref("python-x"))
    assert status == 200, build
    stored = await api.kopers.store.get_build(build["id"])
    assert str(stored.source_type) == "pypi" and stored.source["pypi_package_name"] == "x"
    svn = {**SCM_BODY, "package_name": "s", "scm_type": "svn"}
    assert (await api.call("POST", add_path("s"), "alice", json=svn))[0] == 200
    status, answer = await api.call("POST", "/api_3/package/build", "alice", json=ref("s"))
    assert status == 501 and "git" in answer["error"]
    tito = {**SCM_BODY, "package_name": "t", "source_build_method": "tito"}
    assert (await api.call("POST", add_path("t"), "alice", json=tito))[0] == 200
    status, answer = await api.call("POST", "/api_3/package/build", "alice", json=ref("t"))
    assert status == 400 and "tito" in answer["error"]
    assert await api.count("builds") == 1


async def test_an_upload_creates_its_package_and_delete_takes_its_builds(
    project: Api, make_srpm: Callable[..., Path]
) -> None:
    api = project
    opts = {"ownername": "alice", "projectname": "p", "project_dirname": "p", "chroots": None}
    status, build = await api.upload("alice", make_srpm("hello", "1.0"), opts)
    assert status == 200, build
    status, again = await api.upload("alice", make_srpm("hello", "1.1"), opts)
    assert status == 200
    status, package = await get_package(api, flags="&with_latest_build=True")
    assert status == 200, package
    assert package["source_type"] == "upload"
    assert package["source_dict"] == {"pkg": "hello-1.0-1.src.rpm"}  # the first build's
    assert package["builds"]["latest"]["id"] == again["id"]

    status, mon = await api.call(
        "GET",
        f"/api_3/monitor?{WHERE}&additional_fields[]=url_build_log&additional_fields[]=url_build",
    )
    assert status == 200, mon
    cell = mon["packages"][0]["chroots"][CHROOT]
    assert mon["packages"][0]["name"] == "hello"
    assert cell["build_id"] == again["id"] and cell["state"] == "pending"
    assert cell["status"] == 4 and cell["pkg_version"] == "1.1-1"
    assert cell["url_build_log"] is None  # no results yet
    assert cell["url_build"].endswith(f"/coprs/build/{again['id']}/")

    # A build still pending refuses the delete; canceled, both go with the package.
    status, answer = await api.call("DELETE", "/api_3/package/delete", "alice", json=ref())
    assert status == 400 and "cancel" in answer["error"]
    for b in (build, again):
        assert (await api.call("PUT", f"/api_3/build/cancel/{b['id']}", "alice"))[0] == 200
    status, answer = await api.call("DELETE", "/api_3/package/delete", "alice", json=ref())
    assert status == 200, answer
    assert await api.count("builds") == 0 and await api.count("packages") == 0
    assert not api.kopers.paths.source_dir(build["id"]).exists()
    delete = await api.kopers.store.pool.fetchrow(
        "SELECT details FROM events WHERE action = 'package.delete'"
    )
    assert sorted(delete["details"]["builds"]) == sorted([build["id"], again["id"]])


async def test_max_builds_deletes_the_oldest_ended_builds(
    project: Api, make_srpm: Callable[..., Path]
) -> None:
    api = project
    opts = {"ownername": "alice", "projectname": "p", "project_dirname": "p", "chroots": None}
    ids = []
    for version in ("1", "2", "3"):
        status, build = await api.upload("alice", make_srpm("hello", version), opts)
        ids.append(build["id"])
    for build_id in ids[:2]:
        assert (await api.call("PUT", f"/api_3/build/cancel/{build_id}", "alice"))[0] == 200
    edit = "/api_3/package/edit/alice/p/hello?ownername=alice&projectname=p"
    status, answer = await api.call("POST", edit, "alice", json={"max_builds": 1})
    assert status == 200, answer
    deleted = await api.kopers.packages.prune_after(ids[2])
    assert deleted == ids[:2]
    assert await api.kopers.store.existing_builds(ids) == {ids[2]}
    prune = await api.kopers.store.pool.fetchrow(
        "SELECT details FROM events WHERE action = 'build.prune'"
    )
    assert prune["details"]["builds"] == ids[:2]


async def test_a_build_whose_package_name_becomes_known_gets_its_package(project: Api) -> None:
    api = project
    opts = {"ownername": "alice", "projectname": "p", "pkgs": ["https://example.org/w-1-1.src.rpm"]}
    status, page = await api.call("POST", "/api_3/build/create/url", "alice", json=opts)
    build_id = page["items"][0]["id"]
    assert await api.count("packages") == 0  # the name is not known yet
    store = api.kopers.store
    assert await store.set_source_state(build_id, BuildState.RUNNING)
    assert await store.set_source(build_id, "w", "1-1", "w-1-1.src.rpm", BuildState.SUCCEEDED)
    status, package = await get_package(api, "w")
    assert status == 200 and package["source_type"] == "link"
    assert package["source_dict"] == {"url": "https://example.org/w-1-1.src.rpm"}
    # A build from the package's own definition (a URL package builds again).
    status, build = await api.call("POST", "/api_3/package/build", "alice", json=ref("w"))
    assert status == 200, build
    assert await store.package_of_build(build["id"]) == package["id"]


async def test_the_migration_makes_packages_of_earlier_builds(project: Api) -> None:
    api = project
    opts = {"ownername": "alice", "projectname": "p", "pkgs": ["https://example.org/w-1-1.src.rpm"]}
    status, page = await api.call("POST", "/api_3/build/create/url", "alice", json=opts)
    build_id = page["items"][0]["id"]
    pool = api.kopers.store.pool
    await pool.execute("UPDATE builds SET package_name = 'old' WHERE id = $1", build_id)
    migration = (Path(__file__).resolve().parents[2] / "sql" / "0008_packages.sql").read_text()
    backfill = migration[migration.index("INSERT INTO packages") :]
    await pool.execute(backfill)
    status, package = await get_package(api, "old")
    assert status == 200 and package["source_type"] == "link"
    assert await api.kopers.store.package_of_build(build_id) == package["id"]


# -- python-copr's Client and copr-cli --------------------------------------------


async def test_python_copr_client_adds_gets_and_lists_packages(project: Api) -> None:
    api = project
    client = Client(client_config(api, "alice"))
    pp = client.package_proxy

    def calls() -> tuple[Any, ...]:
        pp.add(
            "alice",
            "p",
            "python-req",
            "pypi",
            {
                "pypi_package_name": "requests",
                "pypi_package_version": "2.31",
                "spec_generator": "pyp2rpm",
                "spec_template": "fedora",
                "python_versions": ["3"],
            },
        )
        pp.add(
            "alice",
            "p",
            "tool",
            "custom",
            {
                "script": "#!/bin/sh\necho\n",
                "chroot": CHROOT,
                "builddeps": "make",
                "resultdir": "out",
                "repos": "https://example.org/r/",
            },
        )
        pp.edit("alice", "p", "tool", "custom", {"builddeps": "make gcc"})
        one = pp.get("alice", "p", "python-req")
        tool = pp.get("alice", "p", "tool")
        listed = pp.get_list("alice", "p", pagination={"limit": 1})
        return one, tool, listed

    one, tool, listed = await asyncio.to_thread(calls)
    assert one.source_type == "pypi"
    assert one.source_dict == {
        "pypi_package_name": "requests",
        "pypi_package_version": "2.31",
        "spec_generator": "pyp2rpm",
        "spec_template": "fedora",
        "python_versions": ["3"],
    }
    assert tool.source_dict == {
        "script": "#!/bin/sh\necho\n",
        "chroot": CHROOT,
        "builddeps": ["make", "gcc"],
        "resultdir": "out",
        "repos": ["https://example.org/r/"],
    }
    assert [p.name for p in listed] == ["python-req"]


async def run_cli(api: Api, tmp_path: Path, *args: str) -> tuple[int, str]:
    conf = tmp_path / "copr.conf"
    conf.write_text(
        "[copr-cli]\n" + "".join(f"{k} = {v}\n" for k, v in client_config(api, "alice").items())
    )
    proc = await asyncio.create_subprocess_exec(
        str(COPR_CLI),
        "--config",
        str(conf),
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    return int(proc.returncode or 0), (out + err).decode()


async def test_copr_cli_package_commands_and_monitor(project: Api, tmp_path: Path) -> None:
    api = project
    url = "https://example.org/hello.git"
    code, said = await run_cli(
        api,
        tmp_path,
        "add-package-scm",
        "alice/p",
        "--name",
        "hello",
        "--clone-url",
        url,
        "--commit",
        "main",
        "--max-builds",
        "4",
        "--timeout",
        "3600",
    )
    assert code == 0 and "successful" in said, said
    code, said = await run_cli(
        api,
        tmp_path,
        "edit-package-scm",
        "alice/p",
        "--name",
        "hello",
        "--clone-url",
        url,
        "--commit",
        "next",
        "--chroot-denylist",
        "epel-*",
    )
    assert code == 0, said
    code, said = await run_cli(api, tmp_path, "get-package", "alice/p", "--name", "hello")
    assert code == 0, said
    assert '"committish": "next"' in said and '"clone_url": "https://example.org/hello.git"' in said
    stored = await api.kopers.store.get_package(
        (await api.kopers.store.get_project("alice", "p")).id, "hello"
    )
    assert (stored.max_builds, stored.timeout, stored.chroot_denylist) == (4, 3600, ("epel-*",))

    code, said = await run_cli(
        api, tmp_path, "build-package", "alice/p", "--name", "hello", "--nowait"
    )
    assert code == 0 and "Created builds" in said, said
    code, said = await run_cli(api, tmp_path, "list-package-names", "alice/p")
    assert code == 0 and said.split() == ["hello"], said
    code, said = await run_cli(api, tmp_path, "list-packages", "alice/p", "--with-latest-build")
    assert code == 0 and '"latest_build"' in said and '"state": "pending"' in said, said
    code, said = await run_cli(api, tmp_path, "monitor", "alice/p", "--output-format", "json")
    assert code == 0, said
    assert '"name": "hello"' in said and f'"chroot": "{CHROOT}"' in said, said
    code, said = await run_cli(api, tmp_path, "reset-package", "alice/p", "--name", "hello")
    assert code == 0 and "reseted" in said, said
    build_id = await api.kopers.store.pool.fetchval("SELECT max(id) FROM builds")
    assert (await api.call("PUT", f"/api_3/build/cancel/{build_id}", "alice"))[0] == 200
    code, said = await run_cli(api, tmp_path, "delete-package", "alice/p", "--name", "hello")
    assert code == 0 and "deleted" in said, said
    assert await api.count("packages") == 0 and await api.count("builds") == 0


# -- the answers are what the OpenAPI document says --------------------------------


async def test_package_answers_match_the_documented_schemas(
    project: Api, make_srpm: Callable[..., Path]
) -> None:
    api = project
    check, seen = checker(await fetch_document(api))
    where = {"ownername": "alice", "projectname": "p"}
    add = "/api_3/package/add/{ownername}/{projectname}/{package_name}/{source_type_text}"
    edit = "/api_3/package/edit/{ownername}/{projectname}/{package_name}/{source_type_text}"

    async def call(user: str | None, method: str, template: str, **kw: Any) -> Any:
        path = template.format(**kw.pop("path", {}))
        status, body = await api.call(method, path + kw.pop("query", ""), user, **kw)
        check(method, template, status, body)
        return status

    scm = {**where, "package_name": "hello", "source_type_text": "scm"}
    assert await call("alice", "POST", add, path=scm, json=SCM_BODY) == 200
    assert await call("alice", "POST", add, path=scm, json=SCM_BODY) == 409
    assert await call("bob", "POST", add, path=scm, json=SCM_BODY) == 403
    assert await call("alice", "POST", add, path={**scm, "source_type_text": "x"}, json={}) == 400
    assert await call("alice", "POST", edit, path=scm, json={"committish": "v3"}) == 200
    pypi = {**where, "package_name": "python-x", "source_type_text": "pypi"}
    assert await call("alice", "POST", add, path=pypi, json={"pypi_package_name": "x"}) == 200
    opts = {"ownername": "alice", "projectname": "p", "chroots": None}
    assert (await api.upload("alice", make_srpm("other", "1"), opts))[0] == 200
    flags = f"?{WHERE}&with_latest_build=True&with_latest_succeeded_build=True"
    assert await call(None, "GET", "/api_3/package", query=f"{flags}&packagename=other") == 200
    assert await call(None, "GET", "/api_3/package", query=f"{flags}&packagename=no") == 404
    assert await call(None, "GET", "/api_3/package/list", query=f"{flags}&limit=2") == 200
    fields = "&additional_fields[]=url_build_log&additional_fields[]=url_backend_log"
    assert await call(None, "GET", "/api_3/monitor", query=f"?{WHERE}{fields}") == 200
    assert await call(None, "GET", "/api_3/monitor", query=f"?{WHERE}&project_dirname=p:x") == 501
    build = {**ref(), "chroots": None}
    assert await call("alice", "POST", "/api_3/package/build", json=build) == 200
    assert await call("alice", "POST", "/api_3/package/build", json=ref("python-x")) == 200
    pending = await api.kopers.store.pool.fetchval("SELECT max(id) FROM builds")
    assert (await api.call("PUT", f"/api_3/build/cancel/{pending}", "alice"))[0] == 200
    side = {**ref("python-x"), "project_dirname": "p:custom:x"}
    assert await call("alice", "POST", "/api_3/package/build", json=side) == 501
    assert await call("alice", "PUT", "/api_3/package/reset", json=ref("python-x")) == 200
    assert await call("alice", "DELETE", "/api_3/package/delete", json=ref("python-x")) == 200
    assert await call("alice", "DELETE", "/api_3/package/delete", json=ref("python-x")) == 404
    assert len(seen) >= 15


async def test_a_succeeded_build_prunes_its_package_beyond_max_builds(
    api: Api, make_srpm: Callable[..., Path], tmp_path: Path
) -> None:
    """The real Runner on a FakeVm: publishing build 2 deletes build 1 and its results."""
    assert (await create(api, "alice", "alice", "limits"))[0] == 200
    opts = {"ownername": "alice", "projectname": "limits", "chroots": [CHROOT]}

    async def submit(version: str) -> int:
        status, build = await api.upload("alice", make_srpm("kopers-maxb", version), opts)
        assert status == 200, build
        return int(build["id"])

    first = await submit("1")
    pool = FakeVmPool(tmp_path)
    assert await run_task(api, pool, first) == BuildState.SUCCEEDED
    assert list(api.kopers.paths.results.rglob(f"{first:08d}-kopers-maxb"))
    edit = "/api_3/package/edit/alice/limits/kopers-maxb?ownername=alice&projectname=limits"
    assert (await api.call("POST", edit, "alice", json={"max_builds": "1"}))[0] == 200

    second = await submit("2")
    k = api.kopers
    runner = Runner(k.config, k.paths, k.store, k.hub, k.publisher, pool)  # type: ignore[arg-type]
    runner.pipeline.on_succeeded = [k.packages.prune_after]  # as kopers.service wires it
    async with asyncio.timeout(120):
        assert await runner.run(TaskKey(second, CHROOT)) == BuildState.SUCCEEDED
    assert await k.store.existing_builds([first, second]) == {second}
    assert not list(k.paths.results.rglob(f"{first:08d}-kopers-maxb"))
    assert list(k.paths.results.rglob(f"{second:08d}-kopers-maxb"))
    primary = next(k.paths.results.rglob(f"{CHROOT}/repodata/*primary.xml*"))
    assert primary.exists()
    status, built = await api.call("GET", f"/api_3/build/built-packages/{second}")
    assert status == 200 and built[CHROOT]["packages"][0]["version"] == "2"
