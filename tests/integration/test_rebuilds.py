"""Automatic rebuilds of dependents, through the real scheduler, runner and publisher.

The builds run on FakeVms (rpmbuild on the host), so their RPMs are real and
published into real repositories whose index the planner reads; what a VM
adds (installing the BuildRequires) is the e2e test's part.
"""

from __future__ import annotations

import asyncio
import dataclasses
import shutil
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from kopers import rebuilds as rebuilds_mod
from kopers.automation import RebuildConfig
from kopers.db.rebuilds import RebuildRecord
from kopers.db.store import NewBuild
from kopers.models import BuildState, Project, SourceType
from kopers.publish import capabilities
from kopers.publish.capabilities import Capabilities
from kopers.rebuildplan import Plan, plan
from kopers.rebuilds import Change
from kopers.worker.runner import Runner
from tests.fakevm import FakeVmPool
from tests.integration.conftest import CHROOT, Api, create

SETTINGS = "/api/projects/alice/libs"
OPTS = {"ownername": "alice", "projectname": "libs", "chroots": [CHROOT]}


@pytest.fixture
async def running(api: Api, tmp_path: Path) -> AsyncIterator[Api]:
    """The api's Kopers with its scheduler and rebuild planner running on FakeVms."""
    k = api.kopers
    runner = Runner(k.config, k.paths, k.store, k.hub, k.publisher, FakeVmPool(tmp_path))  # type: ignore[arg-type]
    runner.pipeline.on_succeeded = [k.packages.prune_after]  # as the service wires them
    runner.pipeline.on_published = [k.rebuilds.changed]
    k.scheduler.runner = runner
    k.supervise("scheduler", k.scheduler.run)
    k.supervise("rebuild-planner", k.rebuilds.run)
    assert (await create(api, "alice", "alice", "libs"))[0] == 200
    yield api


def settle(api: Api, ms: int, cap: int = 50) -> None:
    k = api.kopers
    k.rebuilds.config = dataclasses.replace(
        k.config, rebuild=RebuildConfig(settle_ms=ms, max_queued_per_project=cap)
    )


async def upload(api: Api, srpm: Path) -> int:
    status, build = await api.upload("alice", srpm, OPTS)
    assert status == 200, build
    return int(build["id"])


async def set_rebuilds(api: Api, on: bool) -> None:
    status, body = await api.call("PATCH", SETTINGS, "alice", json={"rebuild_dependents": on})
    assert status == 200 and body["rebuild_dependents"] is on, body


async def finished(api: Api, build_id: int, timeout: float = 120) -> BuildState:
    async with asyncio.timeout(timeout):
        while not (build := await api.kopers.store.get_build(build_id)).state.finished:
            await asyncio.sleep(0.1)
    return build.state


async def all_builds(api: Api) -> list[int]:
    rows = await api.kopers.store.pool.fetch("SELECT id FROM builds ORDER BY id")
    return [r["id"] for r in rows]


async def quiet(api: Api, seconds: float) -> list[int]:
    """Wait until every build has ended and `seconds` passed with no new one; all build ids."""
    seen = await all_builds(api)
    deadline = asyncio.get_running_loop().time() + seconds
    async with asyncio.timeout(300):
        while True:
            for build_id in seen:
                await finished(api, build_id)
            await asyncio.sleep(0.2)
            now = await all_builds(api)
            if now != seen:
                seen, deadline = now, asyncio.get_running_loop().time() + seconds
            elif asyncio.get_running_loop().time() > deadline:
                return seen


async def library_set(api: Api, make_srpm: Callable[..., Path]) -> dict[str, int]:
    """a; b needs a; c needs b; d needs nothing of them: built, with rebuilds off."""
    specs = {
        "kopers-a": "Provides: kopers-a-abi = 1",
        "kopers-b": "BuildRequires: kopers-a-abi\nProvides: kopers-b-devel",
        "kopers-c": "BuildRequires: kopers-b-devel",
        "kopers-d": "BuildRequires: zlib-devel",
    }
    ids = {name: await upload(api, make_srpm(name, "1", requires=r)) for name, r in specs.items()}
    for build_id in ids.values():
        assert await finished(api, build_id) == BuildState.SUCCEEDED
    return ids


async def test_a_new_library_rebuilds_its_dependents_in_order(
    running: Api, make_srpm: Callable[..., Path]
) -> None:
    api = running
    first = await library_set(api, make_srpm)
    await set_rebuilds(api, True)
    settle(api, 200)
    a2 = await upload(api, make_srpm("kopers-a", "2", requires="Provides: kopers-a-abi = 2"))
    builds = await quiet(api, 2.0)
    rebuilt = [b for b in builds if b > a2]
    assert len(rebuilt) == 2, builds
    store = api.kopers.store
    b2, c2 = [await store.get_build(i) for i in rebuilt]
    assert (b2.package_name, c2.package_name) == ("kopers-b", "kopers-c")
    assert b2.state == c2.state == BuildState.SUCCEEDED
    # C waited for B: it started after B's task had ended, so it built against the new B.
    assert c2.tasks[0].started_on is not None and b2.tasks[0].ended_on is not None
    assert c2.tasks[0].started_on >= b2.tasks[0].ended_on

    status, detail = await api.call("GET", f"/api/builds/{b2.id}")
    assert status == 200
    submitted = await store.pool.fetchval(
        "SELECT details FROM events WHERE action = 'build.submit' AND details->>'build' = $1",
        str(b2.id),
    )
    assert (submitted["via"], submitted["trigger"]) == ("rebuild", a2)
    assert detail["rebuild"] == {
        "generation": 1,
        "trigger": {"build": a2, "package": "kopers-a"},
        "source_build": first["kopers-b"],
        "chain": [b2.id, c2.id],
        "because": [{"package": "kopers-a", "chroot": CHROOT, "provides": ["kopers-a-abi"]}],
        "broken_cycles": [],
    }
    c_why = (await api.call("GET", f"/api/builds/{c2.id}"))[1]["rebuild"]["because"]
    assert c_why == [{"package": "kopers-b", "chroot": CHROOT, "provides": ["kopers-b-devel"]}]
    # The rebuilt packages are newer than what they replace: the release carries the generation.
    status, built = await api.call("GET", f"/api_3/build/built-packages/{b2.id}")
    releases = {p["release"] for p in built[CHROOT]["packages"]}
    assert releases == {"1.deb12.kopers.1"}, releases
    log = next(api.kopers.paths.results.rglob(f"{b2.id:08d}-kopers-b/build.log")).read_text()
    assert f"in a chain started by build {a2} of kopers-a" in log
    assert "rebuilt because kopers-a now provides kopers-a-abi" in log
    # d needs nothing of a (not rebuilt), and the rebuilds' own successes started nothing.

    await set_rebuilds(api, False)
    a3 = await upload(api, make_srpm("kopers-a", "3", requires="Provides: kopers-a-abi = 3"))
    assert await finished(api, a3) == BuildState.SUCCEEDED
    assert await quiet(api, 1.5) == [*builds, a3]


async def test_a_rebuild_of_a_rebuild_counts_the_generation_up(
    running: Api, make_srpm: Callable[..., Path]
) -> None:
    api = running
    await library_set(api, make_srpm)
    await set_rebuilds(api, True)
    settle(api, 100)
    for version in ("2", "3"):
        await upload(api, make_srpm("kopers-a", version, requires="Provides: kopers-a-abi"))
        await quiet(api, 1.5)
    rows = await api.kopers.store.pool.fetch(
        "SELECT b.package_name, r.generation FROM rebuilds r JOIN builds b ON b.id = r.build_id"
        " ORDER BY r.build_id"
    )
    assert [(r["package_name"], r["generation"]) for r in rows] == [
        ("kopers-b", 1),
        ("kopers-c", 1),
        ("kopers-b", 2),
        ("kopers-c", 2),
    ]


async def test_a_burst_of_changes_makes_one_chain(
    running: Api, make_srpm: Callable[..., Path]
) -> None:
    api = running
    await library_set(api, make_srpm)
    e = await upload(api, make_srpm("kopers-e", "1", requires="BuildRequires: kopers-d"))
    assert await finished(api, e) == BuildState.SUCCEEDED
    await set_rebuilds(api, True)
    settle(api, 4000)  # longer than a build takes: the two changes settle together
    await upload(api, make_srpm("kopers-a", "2", requires="Provides: kopers-a-abi"))
    await upload(api, make_srpm("kopers-d", "2"))
    await quiet(api, 6.0)
    chains = await api.kopers.store.pool.fetch("SELECT DISTINCT chain FROM rebuilds")
    assert len(chains) == 1
    names = [(await api.kopers.store.get_build(i)).package_name for i in chains[0]["chain"]]
    assert sorted(names) == ["kopers-b", "kopers-c", "kopers-e"]


async def test_the_cap_on_queued_automatic_builds_refuses_a_storm(
    running: Api, make_srpm: Callable[..., Path]
) -> None:
    api = running
    first = await library_set(api, make_srpm)
    await set_rebuilds(api, True)
    settle(api, 100, cap=1)  # the chain would be b and c: two
    a2 = await upload(api, make_srpm("kopers-a", "2", requires="Provides: kopers-a-abi"))
    assert await quiet(api, 1.5) == [*first.values(), a2]
    events = await api.kopers.store.pool.fetch(
        "SELECT details FROM events WHERE action = 'rebuild.refused'"
    )
    assert len(events) == 1
    assert "past 1 queued automatic builds" in events[0]["details"]["reason"]


@pytest.mark.parametrize("value", ["maybe", 2, [True]])
async def test_the_setting_takes_only_a_boolean(api: Api, value: object) -> None:
    assert (await create(api, "alice", "alice", "libs"))[0] == 200
    status, body = await api.call("PATCH", SETTINGS, "alice", json={"rebuild_dependents": value})
    assert status == 400 and "rebuild_dependents" in str(body)
    assert (await api.call("GET", SETTINGS))[1]["rebuild_dependents"] is False
    status, _ = await api.call("PATCH", SETTINGS, "bob", json={"rebuild_dependents": True})
    assert status == 403


# -- the planner against the store, the repository index stood in for ---------

C2 = "fedora-40-x86_64"


def libx_and_usey(_chroot_dir: Path, names: list[str]) -> dict[str, Capabilities]:
    """libx provides libx-devel; usey BuildRequires it (by build directory name)."""
    return {
        n: Capabilities(frozenset({"libx-devel"}), frozenset())
        if n.endswith("-libx")
        else Capabilities(frozenset(), frozenset({"libx-devel"}))
        for n in names
    }


async def project_with_rebuilds(api: Api, chroots: list[str]) -> Project:
    store = api.kopers.store
    alice = await store.get_user("alice")
    p = await store.create_project(
        "alice",
        "p",
        description="",
        instructions="",
        homepage=None,
        contact=None,
        chroots=chroots,
        additional_repos=[],
        enable_net=False,
        created_by=alice.id,
    )
    await store.set_rebuild_dependents(p.id, True)
    return await store.project_by_id(p.id)


async def built(
    api: Api,
    p: Project,
    package: str,
    ok: dict[str, bool],
    user: str = "alice",
    srpm: Path | None = None,
) -> int:
    """A build of `package` whose tasks ended (succeeded where `ok` says so)."""
    store = api.kopers.store
    submitter = await store.get_user(user)
    name = srpm.name if srpm else f"{package}-1-1.src.rpm"
    b = await store.create_build(
        NewBuild(
            project_id=p.id,
            submitter_id=submitter.id,
            source_type=SourceType.UPLOAD,
            source={},
            package_name=package,
            package_version="1-1",
            srpm_name=name,
            source_state=BuildState.SUCCEEDED,
            timeout=3600,
            chroots=tuple(ok),
            task_state=BuildState.PENDING,
        )
    )
    if srpm is not None:
        api.kopers.paths.source_dir(b.id).mkdir(parents=True)
        shutil.copy(srpm, api.kopers.paths.source_dir(b.id) / name)
    for chroot, good in ok.items():
        await store.start_task(b.id, chroot, BuildState.STARTING)
        state = BuildState.SUCCEEDED if good else BuildState.FAILED
        await store.finish_task(b.id, chroot, state, None, None)
    return b.id


def rebuild_of(build_id: int, source: int, origin: int, generation: int = 1) -> RebuildRecord:
    return RebuildRecord(build_id, None, "other", source, origin, generation, (build_id,), (), ())


def plans(monkeypatch: pytest.MonkeyPatch) -> list[Plan]:
    """Every plan the planner makes from now on."""
    seen: list[Plan] = []

    def recording(*args: Any) -> Plan:
        seen.append(plan(*args))
        return seen[-1]

    monkeypatch.setattr(capabilities, "read", libx_and_usey)
    monkeypatch.setattr(rebuilds_mod, "plan", recording)
    return seen


async def test_a_package_rebuilt_in_one_chroot_is_still_a_dependent_in_the_other(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    p = await project_with_rebuilds(api, [CHROOT, C2])
    await built(api, p, "libx", {CHROOT: True, C2: True})
    y1 = await built(api, p, "usey", {CHROOT: True, C2: True})
    # An earlier chain rebuilt usey on CHROOT only: C2 still serves y1.
    y2 = await built(api, p, "usey", {CHROOT: True})
    await api.kopers.store.add_rebuild(rebuild_of(y2, y1, y1))
    x2 = await built(api, p, "libx", {CHROOT: True, C2: True})
    seen = plans(monkeypatch)
    await api.kopers.rebuilds.plan_and_submit(p.id, [Change(p.id, x2, C2)])
    assert [(s.package, s.chroots, s.source_build) for s in seen[0].steps] == [("usey", (C2,), y1)]


async def test_a_new_version_ending_after_a_rebuild_of_the_old_one_still_counts(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    p = await project_with_rebuilds(api, [CHROOT])
    x1 = await built(api, p, "libx", {CHROOT: True})
    await built(api, p, "usey", {CHROOT: True})
    x2 = await built(api, p, "libx", {})  # libx 2 is submitted, still building, when ...
    x1r = await built(api, p, "libx", {CHROOT: True})  # ... a rebuild of libx 1 ends first
    await api.kopers.store.add_rebuild(rebuild_of(x1r, x1, x1))
    newest = {b.package: b for b in await api.kopers.store.latest_package_builds(p.id)}
    assert newest["libx"].build_id == x1r  # before libx 2 ends
    seen = plans(monkeypatch)
    await api.kopers.rebuilds.plan_and_submit(p.id, [Change(p.id, x2, CHROOT)])
    assert [s.package for s in seen[0].steps] == ["usey"], "libx 2's change was dropped"


async def test_the_chain_is_not_submitted_for_a_user_who_may_no_longer_build_there(
    api: Api, monkeypatch: pytest.MonkeyPatch, make_srpm: Callable[..., Path]
) -> None:
    p = await project_with_rebuilds(api, [CHROOT])
    await built(api, p, "usey", {CHROOT: True}, srpm=make_srpm("usey", "1"))
    # bob's build got in (he was a builder then); bob may not build in alice/p now.
    x = await built(api, p, "libx", {CHROOT: True}, user="bob")
    seen = plans(monkeypatch)
    chain = await api.kopers.rebuilds.plan_and_submit(p.id, [Change(p.id, x, CHROOT)])
    assert [s.package for s in seen[0].steps] == ["usey"] and chain == []
    events = await api.kopers.store.pool.fetch(
        "SELECT details FROM events WHERE action = 'rebuild.refused'"
    )
    assert [e["details"]["reason"] for e in events] == [
        f"bob, who submitted build {x}, may not build in alice/p any more"
    ]
    # The project's own user gets the chain.
    x2 = await built(api, p, "libx", {CHROOT: True})
    chain = await api.kopers.rebuilds.plan_and_submit(p.id, [Change(p.id, x2, CHROOT)])
    assert [(b.package_name, b.submitter) for b in chain] == [("usey", "alice")]


async def test_a_deleted_build_leaves_the_rest_of_its_burst(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    p = await project_with_rebuilds(api, [CHROOT])
    await built(api, p, "usey", {CHROOT: True})
    x = await built(api, p, "libx", {CHROOT: True})
    seen = plans(monkeypatch)
    await api.kopers.rebuilds.plan_and_submit(
        p.id, [Change(p.id, x + 1000, CHROOT), Change(p.id, x, CHROOT)]
    )
    assert [s.package for s in seen[0].steps] == ["usey"]
