"""Every project option Copr's clients send is kept and acts, or is refused with a 400.

`copr-cli create` and `copr-cli modify` (python-copr's `project.add` and
`project.edit`) send every option on every call; null means "not given".
Each option set here is read back with a second GET and its effect checked
where it has one: the `.repo` file `dnf copr enable` downloads, the home
page, a refused delete, retention that does not prune, the chroots a build
may target. Requests go out shaped as copr-cli sends them (raw JSON bodies),
through python-copr's own Client, and through copr-cli itself.
"""

from __future__ import annotations

import asyncio
import base64
import configparser
import dataclasses
import json
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import jsonschema
import pytest
from aiohttp.test_utils import TestClient, TestServer
from copr.v3 import Client
from copr.v3.exceptions import CoprRequestException

from kopers import config as config_mod
from kopers import tokens
from kopers.api.app import create_app
from kopers.service import open_kopers
from tests.integration.conftest import CHROOT, REPO, Api, basic, waiting_build
from tests.integration.rawhttp import snapshot

pytestmark = pytest.mark.integration

OTHER = "fedora-40-x86_64"  # enabled in this file's server, beside CHROOT
COPR_CLI = Path(sys.executable).with_name("copr-cli")
ADD = "/api_3/project/add/{owner}?ownername={owner}&exist_ok=False"
EDIT = "/api_3/project/edit/{owner}/{name}?ownername={owner}&projectname={name}"


@pytest.fixture
async def api(dsn: str, tmp_path: Path) -> AsyncIterator[Api]:
    """The integration server, with a second chroot enabled (to add and remove chroots)."""
    cfg = config_mod.load(
        str(REPO / "kopers.toml"),
        env={"KOPERS_DATA_DIR": str(tmp_path / "data"), "KOPERS_DATABASE_DSN": dsn},
    )
    chroots = tuple(
        dataclasses.replace(c, enabled=True) if c.name == OTHER else c for c in cfg.chroots
    )
    cfg = dataclasses.replace(cfg, chroots=chroots)
    kopers = await open_kopers(cfg, with_vms=False)
    auth = {}
    for name, admin in (("alice", False), ("bob", False), ("root", True)):
        user = await kopers.store.create_user(name, admin)
        new = tokens.generate()
        await kopers.store.create_token(user.id, new.login, new.digest, None)
        auth[name] = basic(new.login, new.secret)
    client = TestClient(TestServer(create_app(kopers)))
    await client.start_server()
    try:
        yield Api(client, kopers, auth)
    finally:
        await client.close()
        await kopers.close()


def cli_create(name: str, **over: Any) -> dict[str, Any]:
    """`copr-cli create NAME --chroot CHROOT`'s body: every key, its defaults."""
    body = {
        "name": name,
        "chroots": [CHROOT],
        "description": None,
        "instructions": None,
        "homepage": None,
        "contact": None,
        "additional_repos": None,
        "unlisted_on_hp": None,
        "enable_net": False,
        "persistent": False,
        "auto_prune": True,
        "bootstrap": "default",
        "bootstrap_image": None,
        "isolation": "default",
        "follow_fedora_branching": True,
        "devel_mode": None,
        "delete_after_days": None,
        "multilib": False,
        "module_hotfixes": False,
        "fedora_review": False,
        "appstream": False,
        "runtime_dependencies": None,
        "packit_forge_projects_allowed": None,
        "repo_priority": None,
        "storage": None,
    }
    return {**body, **over}


def cli_modify(**over: Any) -> dict[str, Any]:
    """`copr-cli modify P`'s body with no option given: null everywhere but bootstrap."""
    body: dict[str, Any] = {
        key: None
        for key in [
            "chroots",
            "description",
            "instructions",
            "homepage",
            "contact",
            "repos",
            "unlisted_on_hp",
            "enable_net",
            "auto_prune",
            "isolation",
            "follow_fedora_branching",
            "bootstrap_image",
            "devel_mode",
            "delete_after_days",
            "multilib",
            "module_hotfixes",
            "fedora_review",
            "appstream",
            "runtime_dependencies",
            "packit_forge_projects_allowed",
            "repo_priority",
        ]
    }
    body["bootstrap"] = "default"
    return {**body, **over}


async def add(
    api: Api, user: str, body: dict[str, Any], owner: str | None = None
) -> tuple[int, Any]:
    """Create a project; root creates alice's, the others their own."""
    owner = owner or ("alice" if user == "root" else user)
    return await api.call("POST", ADD.format(owner=owner), user, json=body)


async def modify(
    api: Api, user: str, body: dict[str, Any], name: str = "p", owner: str = "alice"
) -> tuple[int, Any]:
    return await api.call("PUT", EDIT.format(owner=owner, name=name), user, json=body)


async def get(api: Api, name: str = "p", owner: str = "alice") -> dict[str, Any]:
    status, body = await api.call("GET", f"/api_3/project?ownername={owner}&projectname={name}")
    assert status == 200, body
    return dict(body)


async def repo_file(api: Api, name: str = "p", osver: str = "debian-12") -> tuple[int, str, Any]:
    async with api.client.get(f"/coprs/alice/{name}/repo/{osver}/dnf.repo?arch=x86_64") as resp:
        return resp.status, await resp.text(), resp.headers.get("Copr-Error-Data")


def sections(text: str) -> configparser.RawConfigParser:
    parser = configparser.RawConfigParser()
    parser.read_string(text)
    return parser


def client_config(api: Api, user: str) -> dict[str, str]:
    login, _, token = base64.b64decode(api.auth[user].split()[1]).decode().partition(":")
    url = str(api.client.make_url("")).rstrip("/")
    return {"login": login, "username": user, "token": token, "copr_url": url, "encrypted": "false"}


async def events(api: Api, action: str) -> list[dict[str, Any]]:
    rows = await api.kopers.store.pool.fetch(
        "SELECT * FROM events WHERE action = $1 ORDER BY id", action
    )
    return [dict(r) for r in rows]


async def schema_of(api: Api, method: str, template: str) -> dict[str, Any]:
    status, doc = await api.call("GET", "/api/openapi.json")
    assert status == 200
    answer = doc["paths"][template][method]["responses"]["200"]
    schema = answer["content"]["application/json"]["schema"]
    return {**schema, "components": doc["components"]}


# Bad values: each refused, naming the option, changing nothing --------------------------

CREATE_REFUSED = [
    ("storage pulp", {"storage": "pulp"}, "storage", 400),
    ("storage other", {"storage": "s3"}, "storage", 400),
    ("multilib", {"multilib": True}, "multilib", 400),
    ("devel_mode", {"devel_mode": True}, "devel_mode", 400),
    ("fedora_review", {"fedora_review": True}, "fedora_review", 400),
    ("appstream", {"appstream": True}, "appstream", 400),
    ("bootstrap on", {"bootstrap": "on"}, "bootstrap", 400),
    ("bootstrap image", {"bootstrap": "image"}, "bootstrap", 400),
    ("bootstrap_image", {"bootstrap_image": "registry/x:1"}, "bootstrap_image", 400),
    ("isolation nspawn", {"isolation": "nspawn"}, "isolation", 400),
    ("isolation simple", {"isolation": "simple"}, "isolation", 400),
    ("repo_priority word", {"repo_priority": "high"}, "repo_priority", 400),
    ("repo_priority zero", {"repo_priority": "0"}, "repo_priority", 400),
    ("repo_priority huge", {"repo_priority": str(2**40)}, "repo_priority", 400),
    ("runtime dep ftp", {"runtime_dependencies": ["ftp://h.example/r/"]}, "runtime_dep", 400),
    ("runtime dep spaces", {"runtime_dependencies": "http://a\x01b"}, "runtime_dep", 400),
    ("runtime dep no host", {"runtime_dependencies": ["http:///r/"]}, "runtime_dep", 400),
    ("runtime dep missing copr", {"runtime_dependencies": ["copr://bob/none"]}, "bob/none", 400),
    ("runtime dep bad copr", {"runtime_dependencies": ["copr://bob"]}, "runtime_dep", 400),
    ("packit list of numbers", {"packit_forge_projects_allowed": [5]}, "packit_forge", 400),
    ("unlisted word", {"unlisted_on_hp": "perhaps"}, "unlisted_on_hp", 400),
    ("module_hotfixes word", {"module_hotfixes": "perhaps"}, "module_hotfixes", 400),
    ("follow word", {"follow_fedora_branching": [1]}, "follow_fedora_branching", 400),
    ("persistent word", {"persistent": "perhaps"}, "persistent", 400),
    ("persistent by a user", {"persistent": True}, "persistent", 403),
    ("auto_prune off by a user", {"auto_prune": False}, "auto_prune", 403),
]


@pytest.mark.parametrize(
    ("body", "field", "status"),
    [pytest.param(b, f, s, id=i) for i, b, f, s in CREATE_REFUSED],
)
async def test_create_refuses(api: Api, body: dict[str, Any], field: str, status: int) -> None:
    before = await snapshot(api)
    got, answer = await add(api, "alice", cli_create("p", **body))
    assert got == status, answer
    assert field in answer["error"], answer
    assert await snapshot(api) == before


async def test_create_refuses_persistent_with_an_expiry(api: Api) -> None:
    before = await snapshot(api)
    body = cli_create("p", persistent=True, delete_after_days="3")
    status, answer = await add(api, "root", body)
    assert status == 400 and "persistent" in answer["error"], answer
    assert await snapshot(api) == before


MODIFY_REFUSED = [
    *[
        (i, b, f, s)
        for i, b, f, s in CREATE_REFUSED
        if "persistent" not in b and "storage" not in b
    ],
    ("unknown chroot", {"chroots": ["nosuch-1-x86_64"]}, "nosuch-1-x86_64", 400),
    ("no chroots", {"chroots": []}, "chroots", 400),
    ("chroots a number", {"chroots": 5}, "chroots", 400),
    ("repos a number", {"repos": 5}, "repos", 400),
    ("delete_after_days word", {"delete_after_days": "soon"}, "delete_after_days", 400),
    ("delete_after_days zero", {"delete_after_days": "0"}, "delete_after_days", 400),
    ("description NUL", {"description": "a\x00b"}, "description", 400),
    ("persistent later", {"persistent": True}, "persistent", 400),
]


@pytest.mark.parametrize(
    ("body", "field", "status"),
    [pytest.param(b, f, s, id=i) for i, b, f, s in MODIFY_REFUSED],
)
async def test_modify_refuses(api: Api, body: dict[str, Any], field: str, status: int) -> None:
    assert (await add(api, "alice", cli_create("p")))[0] == 200
    before = await snapshot(api)
    got, answer = await modify(api, "alice", cli_modify(**body))
    assert got == status, answer
    assert field in answer["error"], answer
    assert await snapshot(api) == before


async def test_modify_is_for_editors_only(api: Api) -> None:
    assert (await add(api, "alice", cli_create("p")))[0] == 200
    before = await snapshot(api)
    status, answer = await modify(api, "bob", cli_modify(description="mine now"))
    assert status == 403, answer
    status, answer = await api.call("PUT", EDIT.format(owner="alice", name="p"), None, json={})
    assert status == 401, answer
    status, answer = await modify(api, "alice", cli_modify(), name="none")
    assert status == 404, answer
    status, answer = await api.call("PUT", EDIT.format(owner="alice", name="p"), "alice", json=[])
    assert status == 400 and "request body" in answer["error"], answer
    assert await snapshot(api) == before


async def test_modify_refuses_an_expiry_for_a_persistent_project(api: Api) -> None:
    assert (await add(api, "root", cli_create("p", persistent=True)))[0] == 200
    before = await snapshot(api)
    status, answer = await modify(api, "root", cli_modify(delete_after_days="3"))
    assert status == 400 and "persistent" in answer["error"], answer
    status, answer = await api.call(
        "PATCH", "/api/projects/alice/p", "root", json={"delete_after_days": 3}
    )
    assert status == 400 and "persistent" in answer["error"], answer
    assert await snapshot(api) == before


async def test_a_user_may_not_switch_auto_prune_off_by_modify(api: Api) -> None:
    assert (await add(api, "alice", cli_create("p")))[0] == 200
    before = await snapshot(api)
    status, answer = await modify(api, "alice", cli_modify(auto_prune=False))
    assert status == 403 and "auto_prune" in answer["error"], answer
    assert await snapshot(api) == before


async def test_the_owner_cannot_delete_a_persistent_project(api: Api) -> None:
    assert (await add(api, "root", cli_create("p", persistent=True)))[0] == 200
    before = await snapshot(api)
    status, answer = await api.call(
        "DELETE", "/api_3/project/delete/alice/p", "alice", json={"verify": True}
    )
    assert status == 403 and "persistent" in answer["error"], answer
    assert await snapshot(api) == before
    status, answer = await api.call(
        "DELETE", "/api_3/project/delete/alice/p", "root", json={"verify": True}
    )
    assert status == 200, answer
    status, _ = await api.call("GET", "/api_3/project?ownername=alice&projectname=p")
    assert status == 404


async def test_a_persistent_projects_builds_are_kept_from_their_owner(api: Api) -> None:
    assert (await add(api, "root", cli_create("p", persistent=True)))[0] == 200
    project = await api.kopers.store.get_project("alice", "p")
    alice = await api.kopers.store.get_user("alice")
    build_id = await waiting_build(api.kopers.store, project.id, alice.id, True)
    before = await snapshot(api)
    for path, kw in (
        (f"/api_3/build/delete/{build_id}", {}),
        ("/api_3/build/delete/list", {"json": {"builds": [build_id]}}),
    ):
        status, answer = await api.call("DELETE", path, "alice", **kw)
        assert status == 403 and "persistent" in answer["error"], answer
    assert await snapshot(api) == before
    status, answer = await api.call("DELETE", f"/api_3/build/delete/{build_id}", "root")
    assert status == 200, answer


EDIT_CHROOT_REFUSED = [
    ("bootstrap on", {"bootstrap": "on"}, "bootstrap"),
    ("bootstrap custom image", {"bootstrap": "custom_image"}, "bootstrap"),
    ("bootstrap_image", {"bootstrap_image": "registry/x:1"}, "bootstrap_image"),
    ("isolation nspawn", {"isolation": "nspawn"}, "isolation"),
    ("reset unknown", {"reset_fields": ["nonexisting"]}, "nonexisting"),
    ("reset a name", {"reset_fields": ["mock_chroot"]}, "mock_chroot"),
    ("with_opts", {"with_opts": "tests"}, "with_opts"),
    ("without_opts list", {"without_opts": ["docs"]}, "without_opts"),
    ("modules", {"additional_modules": "m:1,!n:2"}, "additional_modules"),
    ("packages", {"additional_packages": "gcc make"}, "additional_packages"),
    ("delete_after_days", {"delete_after_days": 5}, "delete_after_days"),
    ("comps", {"comps": "comps.xml"}, "comps"),
]


@pytest.mark.parametrize(
    ("body", "field"), [pytest.param(b, f, id=i) for i, b, f in EDIT_CHROOT_REFUSED]
)
async def test_edit_chroot_refuses(api: Api, body: dict[str, Any], field: str) -> None:
    assert (await add(api, "alice", cli_create("p")))[0] == 200
    before = await snapshot(api)
    form = aiohttp.FormData()
    form.add_field("json", json.dumps(body), filename="json", content_type="application/json")
    path = f"/api_3/project-chroot/edit/alice/p/{CHROOT}"
    status, answer = await api.call("PUT", path, "alice", data=form)
    assert status == 400, answer
    assert field in answer["error"], answer
    assert await snapshot(api) == before


# What is accepted is kept, shown and acts ---------------------------------------------


async def test_create_keeps_every_option_and_shows_it_twice(api: Api) -> None:
    assert (await add(api, "bob", cli_create("base")))[0] == 200
    body = cli_create(
        "p",
        description="desc",
        instructions="inst",
        homepage="https://home.example/",
        contact="alice@example.org",
        additional_repos=["http://repo.example/r/"],
        unlisted_on_hp=True,
        enable_net=True,
        module_hotfixes=True,
        follow_fedora_branching=False,
        delete_after_days="30",
        runtime_dependencies=["https://deps.example/$chroot/", "copr://bob/base"],
        packit_forge_projects_allowed=["github.com/alice/p"],
        repo_priority="5",
        storage="backend",
        bootstrap="default",
        isolation="default",
    )
    status, made = await add(api, "alice", body)
    assert status == 200, made
    jsonschema.validate(made, await schema_of(api, "post", "/api_3/project/add/{ownername}"))
    for shown in (made, await get(api), await get(api)):
        assert shown["description"] == "desc" and shown["instructions"] == "inst"
        assert shown["homepage"] == "https://home.example/"
        assert shown["contact"] == "alice@example.org"
        assert shown["additional_repos"] == ["http://repo.example/r/"]
        assert shown["unlisted_on_hp"] is True and shown["enable_net"] is True
        assert shown["module_hotfixes"] is True and shown["follow_fedora_branching"] is False
        assert shown["persistent"] is False and shown["auto_prune"] is True
        assert shown["repo_priority"] == 5
        assert shown["runtime_dependencies"] == ["https://deps.example/$chroot/", "copr://bob/base"]
        assert shown["packit_forge_projects_allowed"] == ["github.com/alice/p"]
        assert shown["storage"] == "backend" and shown["bootstrap"] == "default"
        assert shown["isolation"] == "default" and shown["appstream"] is False
        assert shown["devel_mode"] is False
        assert "webhook_secret" not in shown
    status, settings = await api.call("GET", "/api/projects/alice/p")
    assert status == 200 and settings["delete_after"] is not None


async def test_the_repo_file_carries_priority_hotfixes_and_runtime_dependencies(
    api: Api,
) -> None:
    assert (await add(api, "bob", cli_create("base", repo_priority="7")))[0] == 200
    assert (await add(api, "bob", cli_create("deeper")))[0] == 200
    status, _ = await modify(
        api, "bob", cli_modify(runtime_dependencies=["copr://bob/deeper"]), "base", "bob"
    )
    assert status == 200
    deps = ["http://deps.example/$chroot/", "copr://bob/base"]
    body = cli_create("p", module_hotfixes=True, repo_priority="20", runtime_dependencies=deps)
    assert (await add(api, "alice", body))[0] == 200

    status, text, _ = await repo_file(api)
    assert status == 200, text
    ini = sections(text)
    host = api.client.server.host
    own = f"copr:{host}:alice:p"
    assert text.startswith(f"[{own}]\n")
    assert ini.get(own, "priority") == "20" and ini.get(own, "module_hotfixes") == "1"
    external = [s for s in ini.sections() if s.startswith("coprdep:") and "deps" in s]
    assert len(external) == 1
    assert ini.get(external[0], "baseurl") == f"http://deps.example/{CHROOT}/"
    base = f"coprdep:{host}:bob:base"
    assert ini.get(base, "baseurl").endswith(f"/results/bob/base/{CHROOT}/")
    assert ini.get(base, "priority") == "7"
    # Transitively: base depends on deeper.
    assert f"coprdep:{host}:bob:deeper" in ini.sections()

    # Without the options there is no priority, no hotfixes line, no dependency.
    assert (await add(api, "alice", cli_create("plain")))[0] == 200
    status, text, _ = await repo_file(api, "plain")
    assert status == 200
    assert "priority" not in text and "module_hotfixes" not in text and "coprdep" not in text

    # build-config (copr-cli mock-config) carries them too.
    query = f"?ownername=alice&projectname=p&chrootname={CHROOT}"
    status, cfg = await api.call("GET", "/api_3/project-chroot/build-config" + query)
    assert status == 200, cfg
    assert cfg["repos"][0]["priority"] == 20 and cfg["repos"][0]["module_hotfixes"] is True


async def test_a_dependency_deleted_later_becomes_a_comment(api: Api) -> None:
    assert (await add(api, "bob", cli_create("base")))[0] == 200
    body = cli_create("p", runtime_dependencies="copr://bob/base")
    assert (await add(api, "alice", body))[0] == 200
    status, _ = await api.call("DELETE", "/api_3/project/delete/bob/base", "bob", json={})
    assert status == 200
    status, text, _ = await repo_file(api)
    assert status == 200
    assert [s for s in sections(text).sections() if s.startswith("coprdep")] == []
    assert "# This repository is configured to have a runtime dependency" in text
    assert (await get(api))["runtime_dependencies"] == ["copr://bob/base"]


async def test_an_unlisted_project_is_off_the_home_page_but_reachable(api: Api) -> None:
    assert (await add(api, "alice", cli_create("hidden", unlisted_on_hp=True)))[0] == 200
    assert (await add(api, "alice", cli_create("shown")))[0] == 200
    status, page = await api.call("GET", "/")
    assert status == 200
    assert "alice/shown" in page and "hidden" not in page
    status, page = await api.call("GET", "/coprs/alice/hidden/")
    assert status == 200 and "hidden" in page
    status, listed = await api.call("GET", "/api_3/project/list?ownername=alice")
    assert status == 200 and {p["name"] for p in listed["items"]} == {"hidden", "shown"}
    assert (await repo_file(api, "hidden"))[0] == 200
    # Listed again once modify says so.
    assert (await modify(api, "alice", cli_modify(unlisted_on_hp=False), name="hidden"))[0] == 200
    status, page = await api.call("GET", "/")
    assert "alice/hidden" in page


async def publish_three(api: Api, name: str, tmp_path: Path) -> Path:
    """Three builds of one package in `name`'s chroot, as the runner publishes them."""
    for build_id in (1, 2, 3):
        log = tmp_path / f"{name}-{build_id}" / "build.log"
        log.parent.mkdir(parents=True)
        log.write_text("built\n")
        await api.kopers.publisher.publish("alice", name, CHROOT, build_id, "pkg", [log])
    return api.kopers.paths.results / "alice" / name / CHROOT


def build_dirs(chroot_dir: Path) -> list[str]:
    return sorted(p.name for p in chroot_dir.iterdir() if p.name[0].isdigit())


async def test_auto_prune_off_keeps_builds_past_the_retention(api: Api, tmp_path: Path) -> None:
    assert (await add(api, "root", cli_create("kept", auto_prune=False)))[0] == 200
    assert (await add(api, "alice", cli_create("pruned")))[0] == 200
    assert (await get(api, "kept"))["auto_prune"] is False
    kept = await publish_three(api, "kept", tmp_path)
    pruned = await publish_three(api, "pruned", tmp_path)
    for name in ("kept", "pruned"):
        status, body = await api.call(
            "PATCH", f"/api/projects/alice/{name}", "alice", json={"keep_builds": 1}
        )
        assert status == 200 and body["keep_builds"] == 1, body
    assert build_dirs(kept) == ["00000001-pkg", "00000002-pkg", "00000003-pkg"]
    assert build_dirs(pruned) == ["00000003-pkg"]
    # The project the runner reads after a build: no retention in force while auto_prune is off.
    assert (await api.kopers.store.get_project("alice", "kept")).keep_builds is None
    assert (await api.kopers.store.get_project("alice", "pruned")).keep_builds == 1
    # An admin switches it back on: the retention applies from then on.
    assert (await modify(api, "root", cli_modify(auto_prune=True), name="kept"))[0] == 200
    assert (await api.kopers.store.get_project("alice", "kept")).keep_builds == 1


async def test_modify_changes_each_option_and_records_it(api: Api) -> None:
    assert (await add(api, "alice", cli_create("p", description="old")))[0] == 200
    assert (await add(api, "bob", cli_create("base")))[0] == 200
    change = cli_modify(
        description="new",
        instructions="use it",
        homepage="https://h.example/",
        contact="me@example.org",
        repos=["http://r.example/x/"],
        unlisted_on_hp=True,
        enable_net=True,
        module_hotfixes=True,
        follow_fedora_branching=False,
        delete_after_days="10",
        runtime_dependencies=["copr://bob/base"],
        packit_forge_projects_allowed=["https://github.com/alice/p"],
        repo_priority="9",
        isolation="default",
        multilib=False,
        fedora_review=False,
        appstream=False,
        devel_mode=False,
    )
    status, changed = await modify(api, "alice", change)
    assert status == 200, changed
    jsonschema.validate(
        changed, await schema_of(api, "put", "/api_3/project/edit/{ownername}/{projectname}")
    )
    for shown in (changed, await get(api)):
        assert shown["description"] == "new" and shown["instructions"] == "use it"
        assert shown["homepage"] == "https://h.example/" and shown["contact"] == "me@example.org"
        assert shown["additional_repos"] == ["http://r.example/x/"]
        assert shown["unlisted_on_hp"] and shown["enable_net"] and shown["module_hotfixes"]
        assert shown["follow_fedora_branching"] is False and shown["repo_priority"] == 9
        assert shown["runtime_dependencies"] == ["copr://bob/base"]
        assert shown["packit_forge_projects_allowed"] == ["github.com/alice/p"]
    status, settings = await api.call("GET", "/api/projects/alice/p")
    assert settings["delete_after"] is not None
    [event] = await events(api, "project.edit")
    assert event["object"] == "alice/p" and event["details"]["description"] == "new"

    # null leaves everything as it is; -1 takes the expiry away.
    status, same = await modify(api, "alice", cli_modify(delete_after_days="-1"))
    assert status == 200 and same == changed
    status, settings = await api.call("GET", "/api/projects/alice/p")
    assert settings["delete_after"] is None


async def test_modify_replaces_the_chroots(api: Api, tmp_path: Path) -> None:
    assert (await add(api, "alice", cli_create("p")))[0] == 200
    await publish_three(api, "p", tmp_path)
    results = api.kopers.paths.results / "alice" / "p"

    status, body = await modify(api, "alice", cli_modify(chroots=[CHROOT, OTHER]))
    assert status == 200, body
    assert set(body["chroot_repos"]) == {CHROOT, OTHER}
    assert (results / OTHER / "repodata" / "repomd.xml").is_file()  # an empty, signed repo
    assert (results / OTHER / "repodata" / "repomd.xml.asc").is_file()
    assert (await repo_file(api, osver="fedora-40"))[0] == 200

    status, body = await modify(api, "alice", cli_modify(chroots=[OTHER]))
    assert status == 200, body
    assert set((await get(api))["chroot_repos"]) == {OTHER}
    status, _, error_data = await repo_file(api)
    assert status == 404 and error_data is not None
    assert json.loads(base64.b64decode(error_data)) == {"available chroots": [OTHER]}
    opts = {"ownername": "alice", "projectname": "p", "chroots": [CHROOT]}
    status, answer = await api.call("POST", "/api_3/build/check-before-build", "alice", json=opts)
    assert status == 400 and CHROOT in answer["error"], answer
    assert build_dirs(results / CHROOT) == ["00000001-pkg", "00000002-pkg", "00000003-pkg"]

    # Back again: its per-chroot repositories were kept.
    form = aiohttp.FormData()
    form.add_field(
        "json",
        json.dumps({"additional_repos": "http://x.example/r/"}),
        filename="json",
        content_type="application/json",
    )
    status, _ = await api.call(
        "PUT", f"/api_3/project-chroot/edit/alice/p/{OTHER}", "alice", data=form
    )
    assert status == 200
    assert (await modify(api, "alice", cli_modify(chroots=[CHROOT, OTHER])))[0] == 200
    query = f"?ownername=alice&projectname=p&chrootname={OTHER}"
    status, chroot = await api.call("GET", "/api_3/project-chroot" + query)
    assert status == 200 and chroot["additional_repos"] == ["http://x.example/r/"]


async def test_edit_chroot_accepts_defaults_and_resets_fields(api: Api) -> None:
    assert (await add(api, "alice", cli_create("p")))[0] == 200
    path = f"/api_3/project-chroot/edit/alice/p/{CHROOT}"
    query = f"?ownername=alice&projectname=p&chrootname={CHROOT}"
    for body in (
        {"additional_repos": "http://x.example/r/", "bootstrap": "unchanged", "isolation": None},
        {"bootstrap": "default", "isolation": "default", "bootstrap_image": None},
        {"with_opts": "", "without_opts": None, "additional_packages": [], "delete_comps": False},
    ):
        form = aiohttp.FormData()
        form.add_field("json", json.dumps(body), filename="json", content_type="application/json")
        status, answer = await api.call("PUT", path, "alice", data=form)
        assert status == 200, (body, answer)
    status, chroot = await api.call("GET", "/api_3/project-chroot" + query)
    assert chroot["additional_repos"] == ["http://x.example/r/"]
    assert chroot["isolation"] == "default"
    reset = {"reset_fields": ["additional_repos", "isolation", "additional_packages", "with_opts"]}
    status, answer = await api.call("PUT", path, "alice", json=reset)
    assert status == 200, answer
    status, chroot = await api.call("GET", "/api_3/project-chroot" + query)
    assert chroot["additional_repos"] == []


async def test_webhook_secret_generated_rotated_and_kept_from_others(api: Api) -> None:
    assert (await add(api, "alice", cli_create("p")))[0] == 200
    first = (await api.kopers.store.get_project("alice", "p")).webhook_secret
    assert uuid.UUID(first).version == 4
    path = "/api_3/webhook/generate/alice/p?ownername=alice&projectname=p"
    before = await snapshot(api)
    status, answer = await api.call("POST", path, "bob")
    assert status == 403, answer
    status, answer = await api.call("POST", path)
    assert status == 401, answer
    assert await snapshot(api) == before

    status, answer = await api.call("POST", path, "alice")
    assert status == 200, answer
    jsonschema.validate(
        answer, await schema_of(api, "post", "/api_3/webhook/generate/{ownername}/{projectname}")
    )
    assert answer["full_name"] == "alice/p" and answer["webhook_secret"] != first
    assert uuid.UUID(answer["webhook_secret"]).version == 4
    assert (await api.kopers.store.get_project("alice", "p")).webhook_secret == answer[
        "webhook_secret"
    ]
    [event] = await events(api, "project.webhook-secret")
    assert answer["webhook_secret"] not in json.dumps(dict(event), default=str)
    # Shown to editors in the native settings, to nobody else.
    status, mine = await api.call("GET", "/api/projects/alice/p", "alice")
    assert status == 200 and mine["webhook_secret"] == answer["webhook_secret"]
    for user in (None, "bob"):
        status, theirs = await api.call("GET", "/api/projects/alice/p", user)
        assert status == 200 and "webhook_secret" not in theirs


async def test_native_settings_keep_working(api: Api) -> None:
    assert (await add(api, "alice", cli_create("p")))[0] == 200
    status, body = await api.call(
        "PATCH", "/api/projects/alice/p", "alice", json={"keep_builds": 2, "build_timeout": "600"}
    )
    assert status == 200 and body["keep_builds"] == 2 and body["build_timeout"] == 600
    status, body = await api.call("GET", "/api/projects/alice/p")
    assert status == 200 and body["keep_builds"] == 2


# The unmodified clients ------------------------------------------------------------------


async def test_python_copr_create_edit_get(api: Api) -> None:
    client = Client(client_config(api, "alice"))
    assert (await add(api, "bob", cli_create("base")))[0] == 200

    def run() -> tuple[Any, Any, Any]:
        made = client.project_proxy.add(
            "alice",
            "lib",
            [CHROOT],
            description="from python-copr",
            unlisted_on_hp=True,
            module_hotfixes=True,
            runtime_dependencies=["copr://bob/base"],
            repo_priority=3,
            packit_forge_projects_allowed=["github.com/a/b"],
            follow_fedora_branching=False,
        )
        edited = client.project_proxy.edit(
            "alice", "lib", description="edited", repo_priority=4, chroots=[CHROOT, OTHER]
        )
        return made, edited, client.project_proxy.get("alice", "lib")

    made, edited, got = await asyncio.to_thread(run)
    assert made.unlisted_on_hp is True and made.module_hotfixes is True
    assert made.repo_priority == 3 and made.follow_fedora_branching is False
    assert edited.description == "edited" and edited.repo_priority == 4
    assert got.description == "edited" and got.repo_priority == 4 and got.unlisted_on_hp is True
    assert got.runtime_dependencies == ["copr://bob/base"]
    assert got.packit_forge_projects_allowed == ["github.com/a/b"]
    assert set(got.chroot_repos) == {CHROOT, OTHER}

    def refused() -> None:
        client.project_proxy.edit("alice", "lib", multilib=True)

    with pytest.raises(CoprRequestException, match="multilib"):
        await asyncio.to_thread(refused)

    def rotate() -> Any:
        return client.webhook_proxy.generate("alice", "lib")

    secret = await asyncio.to_thread(rotate)
    assert uuid.UUID(secret.webhook_secret).version == 4


async def run_cli(conf: Path, *args: str) -> tuple[int, str]:
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


async def test_copr_cli_create_modify_and_refusals(api: Api, tmp_path: Path) -> None:
    conf = tmp_path / "copr.conf"
    conf.write_text(
        "[copr-cli]\n" + "".join(f"{k} = {v}\n" for k, v in client_config(api, "alice").items())
    )
    code, said = await run_cli(
        conf,
        "create",
        "alice/cli",
        "--chroot",
        CHROOT,
        "--unlisted-on-hp",
        "on",
        "--module-hotfixes",
        "on",
        "--repo-priority",
        "11",
        "--runtime-repo-dependency",
        "http://deps.example/r/",
        "--follow-fedora-branching",
        "off",
    )
    assert code == 0, said
    shown = await get(api, "cli")
    assert shown["unlisted_on_hp"] and shown["module_hotfixes"] and shown["repo_priority"] == 11
    assert shown["runtime_dependencies"] == ["http://deps.example/r/"]
    assert shown["follow_fedora_branching"] is False

    code, said = await run_cli(
        conf, "modify", "alice/cli", "--repo-priority", "12", "--unlisted-on-hp", "off"
    )
    assert code == 0, said
    shown = await get(api, "cli")
    assert shown["repo_priority"] == 12 and shown["unlisted_on_hp"] is False
    assert shown["module_hotfixes"] is True  # not given: unchanged

    code, said = await run_cli(conf, "modify", "alice/cli", "--multilib", "on")
    assert code != 0 and "multilib" in said, said
    code, said = await run_cli(conf, "create", "alice/x", "--chroot", CHROOT, "--persistent")
    assert code != 0 and "persistent" in said, said
    code, said = await run_cli(conf, "edit-chroot", f"alice/cli/{CHROOT}", "--isolation", "nspawn")
    assert code != 0 and "isolation" in said, said
    code, said = await run_cli(conf, "edit-chroot", f"alice/cli/{CHROOT}", "--reset", "bogus")
    assert code != 0 and "bogus" in said, said
