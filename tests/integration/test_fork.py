"""`copr-cli fork`: a new project with the source's settings, packages and latest builds.

The source's builds are made the way the publisher tests make them: RPMs
from rpmbuild, published (signed with the source project's key) and
recorded as succeeded, without a VM. The fork's copies are then checked
by a second read: the fork's project, its builds (succeeded, one per
package per chroot, the newest success only), the signatures of its RPMs
(the fork's key, not the source's), its repodata, and dnf installing from
it with gpgcheck=1. The copy runs in the copier's burst mode
(`Forks.copy_pending`), as the supervised loop runs it.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import createrepo_c as cr
import pytest

from kopers.db.store import NewBuild
from kopers.fork import Forks
from kopers.models import BuildState, Nevra, SourceType
from kopers.publish.layout import Layout
from kopers.publish.publisher import Publisher
from kopers.publish.signing import Signer
from tests.dnfroot import dnf
from tests.integration.conftest import CHROOT, Api, create, table_rows
from tests.integration.rawhttp import send
from tests.integration.test_audit import refuse_events
from tests.integration.test_copr_clients_unsupported import client_config
from tests.integration.test_openapi import checker, fetch_document
from tests.rpms import noarch_rpm

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        not all(shutil.which(t) for t in ("gpg", "rpmbuild", "rpmsign", "rpm", "dnf")),
        reason="needs gpg, rpmbuild, rpmsign, rpm and dnf",
    ),
]

C2 = "fedora-40-x86_64"  # a second chroot, added to the source by hand (disabled in kopers.toml)
S = BuildState
COPR_CLI = Path(sys.executable).with_name("copr-cli")
FORK = "/api_3/project/fork/{owner}/{name}?ownername={owner}&projectname={name}"


def fork_path(owner: str, name: str) -> str:
    return FORK.format(owner=owner.replace("@", "%40"), name=name)


async def fork(
    api: Api, user: str | None, src: str, name: Any, owner: Any, confirm: Any = False
) -> tuple[int, Any]:
    src_owner, src_name = src.split("/")
    body = {"name": name, "ownername": owner, "confirm": confirm}
    return await api.call("POST", fork_path(src_owner, src_name), user, json=body)


async def published_build(
    api: Api,
    tmp: Path,
    project: str,
    package: str,
    release: int,
    states: dict[str, BuildState],
) -> int:
    """A build of `package`-1.0-`release`, published and ended in each chroot as `states` says."""
    kopers = api.kopers
    owner, name = project.split("/")
    proj = await kopers.store.get_project(owner, name)
    alice = await kopers.store.get_user("alice")
    rpm, srpm = noarch_rpm(
        tmp / f"{project.replace('/', '-')}-{package}-{release}", package, "1.0", release
    )
    build = await kopers.store.create_build(
        NewBuild(
            project_id=proj.id,
            submitter_id=alice.id,
            source_type=SourceType.UPLOAD,
            source={"pkg": srpm.name},
            package_name=package,
            package_version=f"1.0-{release}",
            srpm_name=srpm.name,
            source_state=S.SUCCEEDED,
            timeout=3600,
            chroots=tuple(sorted(states)),
            task_state=S.PENDING,
        )
    )
    stored = kopers.paths.source_dir(build.id)
    stored.mkdir(parents=True)
    shutil.copy2(srpm, stored / srpm.name)
    log = tmp / f"build-{build.id}.log"
    log.write_text(f"build {build.id}\n")
    for chroot, state in states.items():
        await kopers.store.start_task(build.id, chroot, S.STARTING)
        if state == S.SUCCEEDED:
            build_dir = await kopers.publisher.publish(
                owner, name, chroot, build.id, package, [rpm, srpm, log]
            )
            built = [Nevra(package, 0, "1.0", str(release), "noarch")]
            await kopers.store.finish_task(build.id, chroot, state, None, str(build_dir), built)
        else:
            await kopers.store.finish_task(build.id, chroot, state, "it broke", None)
    return build.id


async def source_project(api: Api, tmp: Path, name: str = "src") -> dict[str, int]:
    """alice/<name> with settings, two chroots and builds; returns the build ids by label."""
    body = {
        "name": name,
        "chroots": [CHROOT],
        "description": "the source",
        "instructions": "dnf install hello",
        "homepage": "https://example.org/home",
        "contact": "alice@example.org",
        "additional_repos": ["https://example.org/extra/"],
        "enable_net": True,
    }
    status, _ = await api.call(
        "POST", "/api_3/project/add/alice?ownername=alice&exist_ok=False", "alice", json=body
    )
    assert status == 200
    status, _ = await api.call(
        "PATCH",
        f"/api/projects/alice/{name}",
        "alice",
        json={"keep_builds": 3, "build_timeout": 7200},
    )
    assert status == 200
    options = {
        "unlisted_on_hp": True,
        "module_hotfixes": True,
        "repo_priority": "5",
        "runtime_dependencies": ["https://example.org/dep/"],
        "packit_forge_projects_allowed": ["github.com/alice/src"],
        "follow_fedora_branching": False,
    }
    edit = f"/api_3/project/edit/alice/{name}?ownername=alice&projectname={name}"
    status, body = await api.call("PUT", edit, "alice", json=options)
    assert status == 200, body
    # What only a site admin sets stays behind in a fork (as upstream).
    status, body = await api.call("PUT", edit, "root", json={"auto_prune": False})
    assert status == 200 and body["auto_prune"] is False, body
    project = await api.kopers.store.get_project("alice", name)
    await api.kopers.store.pool.execute(
        "UPDATE projects SET persistent = true WHERE id = $1", project.id
    )
    await api.kopers.store.pool.execute(
        "INSERT INTO project_chroots (project_id, chroot) VALUES ($1, $2)", project.id, C2
    )
    await api.kopers.store.set_chroot_repos(project.id, CHROOT, ["https://example.org/c1/"])
    await api.kopers.publisher.init_project("alice", name, [CHROOT, C2])
    src = f"alice/{name}"
    return {
        "hello-1": await published_build(
            api, tmp, src, "hello", 1, {CHROOT: S.SUCCEEDED, C2: S.SUCCEEDED}
        ),
        "hello-2": await published_build(
            api, tmp, src, "hello", 2, {CHROOT: S.SUCCEEDED, C2: S.FAILED}
        ),
        "hello-3": await published_build(
            api, tmp, src, "hello", 3, {CHROOT: S.FAILED, C2: S.FAILED}
        ),
        "other-1": await published_build(api, tmp, src, "other", 1, {CHROOT: S.SUCCEEDED}),
    }


async def builds_of(api: Api, project: str) -> list[dict[str, Any]]:
    owner, name = project.split("/")
    status, body = await api.call("GET", f"/api_3/build/list?ownername={owner}&projectname={name}")
    assert status == 200
    return sorted(body["items"], key=lambda b: b["id"])


async def chroots_of(api: Api, build_id: int) -> dict[str, dict[str, Any]]:
    status, body = await api.call("GET", f"/api_3/build-chroot/list?build_id={build_id}")
    assert status == 200
    return {c["name"]: c for c in body["items"]}


def run(*argv: str | Path) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([str(a) for a in argv], capture_output=True, text=True)
    assert result.returncode == 0, f"{argv}: {result.stdout}{result.stderr}"
    return result


def key_id(pubkey: Path) -> str:
    """The long key id of an armoured public key file."""
    out = run("gpg", "--batch", "--with-colons", "--show-keys", pubkey).stdout
    return next(line.split(":")[4] for line in out.splitlines() if line.startswith("pub:")).lower()


def signer_of(rpm: Path) -> str:
    """The long key id an RPM's header signature names."""
    out = run("rpm", "-qp", "--qf", "%{RSAHEADER:pgpsig}", rpm).stdout
    return out.rsplit("Key ID ", 1)[1].strip().lower()


def repo_files(chroot_dir: Path) -> set[str]:
    md = cr.Metadata()
    md.locate_and_load_xml(str(chroot_dir))
    keys = md.keys()
    return {md.get(key).location_href for key in keys}


async def snapshot(api: Api) -> dict[str, Any]:
    out: dict[str, Any] = await table_rows(api.kopers.store.pool)
    for d in (api.kopers.paths.results, api.kopers.paths.keys, api.kopers.paths.sources):
        out[f"files:{d.name}"] = sorted(str(p) for p in d.rglob("*"))
    return out


# The fork itself ----------------------------------------------------------------------


async def test_a_fork_has_the_settings_packages_and_newest_builds_signed_with_its_own_key(
    api: Api, tmp_path: Path
) -> None:
    ids = await source_project(api, tmp_path)
    status, body = await fork(api, "bob", "alice/src", "mine", "bob")
    assert status == 200, body
    assert body["full_name"] == "bob/mine" and body["ownername"] == "bob"

    # Before the copy: the builds are there, forked, with no results to claim.
    pending = await builds_of(api, "bob/mine")
    assert [b["state"] for b in pending] == ["forked"] * 3
    for b in pending:
        for chroot in (await chroots_of(api, b["id"])).values():
            assert chroot["state"] == "forked" and chroot["result_url"] is None
        status, packages = await api.call("GET", f"/api_3/build/built-packages/{b['id']}")
        assert status == 200 and packages == {}

    copied = await api.kopers.forks.copy_pending()
    assert len(copied) == 3 and {c.state for c in copied} == {S.SUCCEEDED}

    # The project, read again.
    status, project = await api.call("GET", "/api_3/project?ownername=bob&projectname=mine")
    assert status == 200
    assert project["description"] == "the source"
    assert project["instructions"] == "dnf install hello"
    assert project["homepage"] == "https://example.org/home"
    assert project["contact"] is None  # as upstream: a contact is the source owner's own
    assert project["additional_repos"] == ["https://example.org/extra/"]
    assert project["enable_net"] is True
    assert sorted(project["chroot_repos"]) == sorted([CHROOT, C2])
    assert project["unlisted_on_hp"] is True and project["module_hotfixes"] is True
    assert project["repo_priority"] == 5
    assert project["runtime_dependencies"] == ["https://example.org/dep/"]
    assert project["packit_forge_projects_allowed"] == ["github.com/alice/src"]
    assert project["follow_fedora_branching"] is False
    assert project["persistent"] is False and project["auto_prune"] is True
    secrets = await api.kopers.store.pool.fetch(
        "SELECT DISTINCT webhook_secret FROM projects WHERE name IN ('src', 'mine')"
    )
    assert len(secrets) == 2  # a fork's webhooks are its own
    status, settings = await api.call("GET", "/api/projects/bob/mine")
    assert status == 200
    assert settings["keep_builds"] == 3 and settings["build_timeout"] == 7200
    fork_project = await api.kopers.store.get_project("bob", "mine")
    assert await api.kopers.store.chroot_repos(fork_project.id, CHROOT) == [
        "https://example.org/c1/"
    ]
    assert fork_project.created_by == (await api.kopers.store.get_user("bob")).id

    # Its builds: the newest success of each package in each chroot, succeeded.
    builds = await builds_of(api, "bob/mine")
    shape = [
        (b["source_package"]["name"], b["source_package"]["version"], b["chroots"]) for b in builds
    ]
    assert shape == [
        ("hello", "1.0-1", [C2]),
        ("hello", "1.0-2", [CHROOT]),
        ("other", "1.0-1", [CHROOT]),
    ]
    assert [b["state"] for b in builds] == ["succeeded"] * 3
    assert all(b["ended_on"] is not None for b in builds)
    assert all(b["id"] not in ids.values() for b in builds)
    status, packages = await api.call("GET", "/api_3/package/list?ownername=bob&projectname=mine")
    assert status == 200
    assert sorted(p["name"] for p in packages["items"]) == ["hello", "other"]

    # Their files: copied, re-signed with the fork's key; the source's left as they were.
    layout = api.kopers.layout
    fork_key = key_id(layout.pubkey_path("bob", "mine"))
    source_key = key_id(layout.pubkey_path("alice", "src"))
    assert fork_key != source_key
    for b in builds:
        ((chroot, result),) = (await chroots_of(api, b["id"])).items()
        package = b["source_package"]["name"]
        build_dir = layout.build_dir("bob", "mine", chroot, b["id"], package)
        assert result["state"] == "succeeded"
        assert result["result_url"] == layout.result_url("bob", "mine", chroot, b["id"], package)
        rpms = sorted(build_dir.glob("*.rpm"))
        assert len(rpms) == 2  # the package and its SRPM
        assert {signer_of(r) for r in rpms} == {fork_key}
        status, built = await api.call("GET", f"/api_3/build/built-packages/{b['id']}")
        release = b["source_package"]["version"].split("-")[1]
        assert built == {
            chroot: {
                "packages": [
                    {
                        "name": package,
                        "epoch": 0,
                        "version": "1.0",
                        "release": release,
                        "arch": "noarch",
                    }
                ]
            }
        }
    for rpm in layout.project_dir("alice", "src").rglob("*.rpm"):
        assert signer_of(rpm) == source_key

    # The repodata lists exactly the copies.
    by_chroot: dict[str, set[str]] = {CHROOT: set(), C2: set()}
    for b in builds:
        for chroot in b["chroots"]:
            name = layout.build_dir(
                "bob", "mine", chroot, b["id"], b["source_package"]["name"]
            ).name
            version = b["source_package"]["version"]
            pkg = b["source_package"]["name"]
            by_chroot[chroot] |= {
                f"{name}/{pkg}-{version}.noarch.rpm",
                f"{name}/{pkg}-{version}.src.rpm",
            }
    for chroot, expected in by_chroot.items():
        assert repo_files(layout.chroot_dir("bob", "mine", chroot)) == expected

    # dnf installs from the fork with gpgcheck=1 against the fork's key, not the source's.
    chroot_dir = layout.chroot_dir("bob", "mine", CHROOT)
    for key_owner, ok in ((("bob", "mine"), True), (("alice", "src"), False)):
        root = tmp_path / f"root-{key_owner[0]}"
        reposdir = tmp_path / f"repos-{key_owner[0]}"
        reposdir.mkdir()
        (reposdir / "fork.repo").write_text(
            "[fork]\nname=fork\n"
            f"baseurl={chroot_dir.as_uri()}/\n"
            f"gpgcheck=1\ngpgkey={layout.pubkey_path(*key_owner).as_uri()}\n"
        )
        result = dnf(root, reposdir, "--setopt=install_weak_deps=False", "install", "hello")
        if ok:
            assert result.returncode == 0, result.stdout + result.stderr
            assert run("rpm", "--root", root, "-q", "hello").stdout.startswith("hello-1.0-2")
        else:
            assert result.returncode != 0, result.stdout + result.stderr

    # One audit event, by bob, committed with the rows.
    events = await api.kopers.store.pool.fetch(
        "SELECT e.*, u.name AS username FROM events e JOIN users u ON u.id = e.user_id"
        " WHERE action = 'project.fork'"
    )
    assert [(e["username"], e["object"]) for e in events] == [("bob", "bob/mine")]


async def test_a_group_member_forks_into_the_group(api: Api, tmp_path: Path) -> None:
    await source_project(api, tmp_path)
    store = api.kopers.store
    group = await store.create_group("sig")
    await store.add_group_member(group, await store.get_user("bob"), False)
    status, body = await fork(api, "bob", "alice/src", "sigfork", "@sig")
    assert status == 200, body
    assert body["full_name"] == "@sig/sigfork"
    await api.kopers.forks.copy_pending()
    assert [b["state"] for b in await builds_of(api, "@sig/sigfork")] == ["succeeded"] * 3


async def test_forking_into_an_existing_project_needs_confirm_and_then_brings_it_up_to_date(
    api: Api, tmp_path: Path
) -> None:
    await source_project(api, tmp_path)
    assert (await fork(api, "alice", "alice/src", "copy", "alice"))[0] == 200
    await api.kopers.forks.copy_pending()
    first = await builds_of(api, "alice/copy")
    await api.kopers.store.pool.execute(
        "UPDATE projects SET description = 'my own' WHERE owner = 'alice' AND name = 'copy'"
    )
    newer = await published_build(api, tmp_path, "alice/src", "hello", 4, {CHROOT: S.SUCCEEDED})

    before = await snapshot(api)
    status, body = await fork(api, "alice", "alice/src", "copy", "alice")
    assert status == 400 and "confirm" in body["error"]
    assert await snapshot(api) == before

    status, body = await fork(api, "alice", "alice/src", "copy", "alice", confirm=True)
    assert status == 200 and body["full_name"] == "alice/copy"
    assert body["description"] == "my own"  # its settings stay its own
    await api.kopers.forks.copy_pending()
    builds = await builds_of(api, "alice/copy")
    assert builds[: len(first)] == first
    added = builds[len(first) :]
    assert [(b["source_package"]["version"], b["chroots"], b["state"]) for b in added] == [
        ("1.0-4", [CHROOT], "succeeded")
    ]
    assert newer not in [b["id"] for b in builds]
    # Forking again with nothing new copies nothing.
    assert (await fork(api, "alice", "alice/src", "copy", "alice", confirm=True))[0] == 200
    assert await builds_of(api, "alice/copy") == builds


# Refusals -----------------------------------------------------------------------------


async def test_refused_forks_change_nothing(api: Api, tmp_path: Path) -> None:
    await source_project(api, tmp_path)
    assert (await create(api, "bob", "bob", "taken"))[0] == 200
    store = api.kopers.store
    await store.create_group("sig")  # bob is no member
    cases: list[tuple[str, str | None, str, Any, Any, Any, int, str]] = [
        ("anonymous", None, "alice/src", "x", "alice", False, 401, "authentication"),
        ("wrong credentials", "wrong", "alice/src", "x", "alice", False, 401, "Login invalid"),
        ("no such source", "bob", "alice/none", "x", "bob", False, 404, "alice/none"),
        ("no such source owner", "bob", "nobody/src", "x", "bob", False, 404, "nobody/src"),
        ("another user's namespace", "bob", "alice/src", "x", "alice", False, 403, "alice"),
        ("a group bob is not in", "bob", "alice/src", "x", "@sig", False, 403, "@sig"),
        ("into itself", "alice", "alice/src", "src", "alice", True, 400, "same"),
        ("existing without confirm", "bob", "alice/src", "taken", "bob", False, 400, "confirm"),
        ("name missing", "bob", "alice/src", None, "bob", False, 400, "name"),
        ("name empty", "bob", "alice/src", "", "bob", False, 400, "name"),
        ("name with a slash", "bob", "alice/src", "a/b", "bob", False, 400, "name"),
        ("name with a space", "bob", "alice/src", "a b", "bob", False, 400, "name"),
        ("name dot dot", "bob", "alice/src", "..", "bob", False, 400, "name"),
        ("name leading dash", "bob", "alice/src", "-x", "bob", False, 400, "name"),
        ("name NUL", "bob", "alice/src", "a\x00b", "bob", False, 400, "name"),
        ("name too long", "bob", "alice/src", "x" * 300, "bob", False, 400, "name"),
        ("name a number", "bob", "alice/src", 12, "bob", False, 400, "name"),
        ("owner invalid", "bob", "alice/src", "x", "b o b", False, 400, "ownername"),
        ("owner a list", "bob", "alice/src", "x", ["bob"], False, 400, "ownername"),
        ("confirm not a flag", "bob", "alice/src", "x", "bob", "maybe", 400, "confirm"),
    ]
    for label, user, src, name, owner, confirm, want, says in cases:
        before = await snapshot(api)
        status, body = await fork(api, user, src, name, owner, confirm)
        assert status == want, (label, body)
        assert says.lower() in body["error"].lower(), (label, body)
        assert "\n" not in body["error"], label
        assert await snapshot(api) == before, label
    for raw in (b"[]", b"not json", b'"x"'):
        before = await snapshot(api)
        status, body = await api.call("POST", fork_path("alice", "src"), "bob", data=raw)
        assert status == 400 and "error" in body, raw
        assert await snapshot(api) == before


async def test_the_supervised_copier_wakes_on_a_fork_and_copr_cli_s_watcher_would_end(
    api: Api, tmp_path: Path
) -> None:
    """With the copier's loop running (as `kopers serve` runs it), a fork ends succeeded."""
    await source_project(api, tmp_path)
    loop = asyncio.create_task(api.kopers.forks.run())
    try:
        await asyncio.sleep(0.1)  # its first pass finds nothing and it waits
        assert (await fork(api, "bob", "alice/src", "mine", "bob"))[0] == 200
        for _ in range(600):
            states = [b["state"] for b in await builds_of(api, "bob/mine")]
            # What copr-cli's watcher stops on: succeeded, not forked.
            if all(s == "succeeded" for s in states):
                break
            assert set(states) <= {"forked", "succeeded"}, states
            await asyncio.sleep(0.1)
        assert states == ["succeeded"] * 3
    finally:
        loop.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await loop


async def test_a_fork_whose_audit_event_fails_leaves_no_project_key_or_build(
    api: Api, tmp_path: Path
) -> None:
    await source_project(api, tmp_path)
    await refuse_events(api, "project.fork")
    before = await snapshot(api)
    status, body = await fork(api, "bob", "alice/src", "mine", "bob")
    assert status == 500, body
    after = await snapshot(api)
    for key in before:
        if key.startswith("files:"):
            # The owner's (empty) directory may stay, as after a refused create.
            new = set(after[key]) - set(before[key])
            assert all(Path(p).is_dir() and not any(Path(p).iterdir()) for p in new), new
        else:
            assert after[key] == before[key], key
    assert await api.kopers.forks.copy_pending() == []
    assert (await api.call("GET", "/api_3/project?ownername=bob&projectname=mine"))[0] == 404


# The copy, interrupted and refused ------------------------------------------------------


class StopsAfter(Publisher):
    """A publisher whose process stops (the task is cancelled) after `n` publishes."""

    def __init__(self, layout: Layout, keys: Path, n: int) -> None:
        super().__init__(layout, Signer(keys))
        self.left = n

    async def publish(self, *args: Any, **kw: Any) -> Path:
        if self.left == 0:
            raise asyncio.CancelledError
        self.left -= 1
        return await super().publish(*args, **kw)


async def test_a_stop_halfway_leaves_copies_forked_and_the_next_start_finishes_them(
    api: Api, tmp_path: Path
) -> None:
    await source_project(api, tmp_path)
    assert (await fork(api, "bob", "alice/src", "mine", "bob"))[0] == 200
    kopers = api.kopers
    stopping = Forks(kopers.store, StopsAfter(kopers.layout, kopers.paths.keys, 1), kopers.paths)
    with pytest.raises(asyncio.CancelledError):
        await stopping.copy_pending()

    # One task copied; the others claim nothing yet.
    states = []
    for b in await builds_of(api, "bob/mine"):
        for chroot, c in (await chroots_of(api, b["id"])).items():
            states.append(c["state"])
            if c["state"] == "forked":
                assert c["result_url"] is None
                assert b["state"] == "forked"
                package = b["source_package"]["name"]
                assert not kopers.layout.build_dir("bob", "mine", chroot, b["id"], package).exists()
    assert sorted(states) == ["forked", "forked", "succeeded"]

    # What the next start does: the supervised copier takes up what is left.
    restarted = Forks(kopers.store, kopers.publisher, kopers.paths)
    await restarted.copy_pending()
    assert [b["state"] for b in await builds_of(api, "bob/mine")] == ["succeeded"] * 3


async def test_a_copy_whose_source_results_are_gone_fails_and_claims_nothing(
    api: Api, tmp_path: Path
) -> None:
    ids = await source_project(api, tmp_path)
    assert (await fork(api, "bob", "alice/src", "mine", "bob"))[0] == 200
    # The source's newest hello is deleted before the copy gets to it (by a
    # server admin: the source project is persistent).
    status, _ = await api.call(
        "DELETE", "/api_3/build/delete/list", "root", json={"builds": [ids["hello-2"]]}
    )
    assert status == 200
    await api.kopers.forks.copy_pending()
    builds = {
        b["source_package"]["version"] + b["source_package"]["name"]: b
        for b in await builds_of(api, "bob/mine")
    }
    gone = builds["1.0-2hello"]
    assert gone["state"] == "failed"
    (chroot,) = (await chroots_of(api, gone["id"])).values()
    assert chroot["result_url"] is None and str(ids["hello-2"]) in chroot["reason"]
    assert builds["1.0-1hello"]["state"] == "succeeded"
    assert builds["1.0-1other"]["state"] == "succeeded"


async def test_a_fork_deleted_before_its_copy_leaves_no_files(api: Api, tmp_path: Path) -> None:
    await source_project(api, tmp_path)
    assert (await fork(api, "bob", "alice/src", "mine", "bob"))[0] == 200
    status, _ = await api.call(
        "DELETE", "/api_3/project/delete/bob/mine", "bob", json={"verify": True}
    )
    assert status == 200
    assert await api.kopers.forks.copy_pending() == []
    assert not api.kopers.layout.project_dir("bob", "mine").exists()
    assert not (api.kopers.paths.keys / "bob" / "mine").exists()


# The unmodified clients --------------------------------------------------------------


async def copr_cli(api: Api, tmp_path: Path, user: str, *args: str) -> tuple[int, str]:
    conf = tmp_path / f"copr-{user}.conf"
    conf.write_text(
        "[copr-cli]\n" + "".join(f"{k} = {v}\n" for k, v in client_config(api, user).items())
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
    assert proc.returncode is not None
    return proc.returncode, (out + err).decode()


async def test_copr_cli_forks_and_updates_with_confirm(api: Api, tmp_path: Path) -> None:
    await source_project(api, tmp_path)
    code, said = await copr_cli(api, tmp_path, "bob", "fork", "alice/src", "bob/clifork")
    assert code == 0, said
    assert "Forking project alice/src for you into bob/clifork" in said
    await api.kopers.forks.copy_pending()
    assert [b["state"] for b in await builds_of(api, "bob/clifork")] == ["succeeded"] * 3

    code, said = await copr_cli(api, tmp_path, "bob", "fork", "alice/src", "clifork")
    assert code == 1 and "--confirm" in said, said
    code, said = await copr_cli(api, tmp_path, "bob", "fork", "alice/src", "clifork", "--confirm")
    assert code == 0 and "Updating packages in bob/clifork from alice/src" in said, said

    code, said = await copr_cli(api, tmp_path, "bob", "fork", "alice/src", "alice/stolen")
    assert code != 0 and "may not" in said, said
    assert (await api.call("GET", "/api_3/project?ownername=alice&projectname=stolen"))[0] == 404


async def test_hostile_values_anywhere_in_a_fork_request_never_answer_5xx(
    api: Api, tmp_path: Path
) -> None:
    """Each path placeholder, the Host header and each body field, with hostile values."""
    await source_project(api, tmp_path)
    hostile_path = ["%00", "%C2%B2", "x" * 300, "1" * 5000, "%FF", "a%2Fb", "..", "@", "%40"]
    hostile_body: list[Any] = [
        None, "", "\x00", "\ud800", "x" * 5000, "../..", "@", "@@x", 2**64, -1, 1.5, True,
        [], {}, ["bob"], {"a": 1}, "a\nb", "%00", "alice/src",
    ]  # fmt: skip
    failures = []
    for value in hostile_path:
        for path in (
            f"/api_3/project/fork/{value}/src",
            f"/api_3/project/fork/alice/{value}",
            f"/api_3/project/fork/alice/src?ownername={value}",
        ):
            status, _ = await send(api, "POST", path, user="bob", body={"name": "n"})
            if status >= 500 and status != 501:
                failures.append((path[:80], status))
    for host in ("a]b", "[::1", "x" * 300, ""):
        status, _ = await send(
            api, "POST", fork_path("alice", "src"), user="bob", body={"name": "h"},
            headers={"Host": host},
        )  # fmt: skip
        if status >= 500:
            failures.append((host[:40], status))
    for key in ("name", "ownername", "confirm"):
        for value in hostile_body:
            body = {"name": "h", "ownername": "bob", "confirm": False, key: value}
            status, answer = await send(
                api, "POST", fork_path("alice", "src"), user="bob", body=body
            )
            if status >= 500 or (status == 200 and key != "confirm"):
                failures.append((f"{key}={value!r}"[:60], status))
            elif status != 200:
                assert isinstance(answer, dict) and "\n" not in answer["error"], (key, value)
    assert failures == []
    # Only the well-formed requests made projects: the query is not read, a flag-like confirm is.
    forks = await api.kopers.store.pool.fetch("SELECT name FROM projects WHERE owner = 'bob'")
    assert {r["name"] for r in forks} <= {"h", "n"}


async def test_the_fork_answers_match_their_documented_schemas(api: Api, tmp_path: Path) -> None:
    doc = await fetch_document(api)
    check, seen = checker(doc)
    template = "/api_3/project/fork/{ownername}/{projectname}"
    await source_project(api, tmp_path)
    for user, name, owner, confirm in (
        ("bob", "mine", "bob", False),  # 200
        ("bob", "mine", "bob", False),  # 400: exists, no confirm
        (None, "x", "bob", False),  # 401
        ("bob", "x", "alice", False),  # 403
    ):
        status, body = await fork(api, user, "alice/src", name, owner, confirm)
        check("POST", template, status, body)
    status, body = await fork(api, "bob", "alice/nothing", "x", "bob")
    check("POST", template, status, body)  # 404
    assert {s for *_, s in seen} == {200, 400, 401, 403, 404}
