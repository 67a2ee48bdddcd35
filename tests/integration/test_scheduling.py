"""Chains, batches and fair scheduling against a real Postgres, with a fake runner.

The scheduler is the real one; only the VM work is replaced by a runner that
records the order tasks start in and ends each task the way a test says.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from kopers.db.chains import ChainSpec
from kopers.db.database import open_database
from kopers.db.migrations import migrate
from kopers.db.store import NewBuild, Store
from kopers.models import BuildState, SourceType
from kopers.sched.graph import TaskKey
from kopers.sched.scheduler import Scheduler

pytestmark = pytest.mark.integration
CHROOTS = ("fedora-40-x86_64", "debian-12-x86_64")
ONE = ("debian-12-x86_64",)


@dataclass
class FakeRunner:
    """Ends tasks as told; records start order. A task with no verdict succeeds."""

    store: Store
    hold: float = 0.0
    fail: set[TaskKey] = field(default_factory=set)
    started: list[TaskKey] = field(default_factory=list)

    async def run(self, key: TaskKey) -> BuildState:
        self.started.append(key)
        await self.store.start_task(key.build_id, key.chroot, BuildState.RUNNING)
        await asyncio.sleep(self.hold)
        state = BuildState.FAILED if key in self.fail else BuildState.SUCCEEDED
        await self.store.finish_task(key.build_id, key.chroot, state, None, None)
        return state


@pytest.fixture
async def store(dsn: str, tmp_path: Path) -> AsyncIterator[Store]:
    db = await open_database(dsn, tmp_path)
    await migrate(db.pool)
    yield Store(db.pool)
    await db.close()


async def project(store: Store, owner: str) -> int:
    user = await store.create_user(owner)
    p = await store.create_project(
        owner,
        "p",
        description="",
        instructions="",
        homepage=None,
        contact=None,
        chroots=CHROOTS,
        additional_repos=(),
        enable_net=False,
        created_by=user.id,
    )
    return p.id


async def submit(
    store: Store,
    project_id: int,
    owner_id: int,
    chain: ChainSpec | None = None,
    chroots: tuple[str, ...] = CHROOTS,
    priority: int = 0,
    kind: SourceType = SourceType.UPLOAD,
) -> int:
    """An uploaded build (its source made already); of another `kind`, one whose
    source step is still pending, from a URL nothing serves."""
    uploaded = kind == SourceType.UPLOAD
    new = NewBuild(
        project_id=project_id,
        submitter_id=owner_id,
        source_type=kind,
        source={} if uploaded else {"url": "http://127.0.0.1:1/pkg-1-1.src.rpm"},
        package_name="pkg" if uploaded else None,
        package_version="1-1" if uploaded else None,
        srpm_name="pkg-1-1.src.rpm" if uploaded else None,
        source_state=BuildState.SUCCEEDED if uploaded else BuildState.PENDING,
        timeout=600,
        chroots=chroots,
        task_state=BuildState.PENDING,
        chain=chain or ChainSpec(),
        priority=priority,
    )
    return (await store.create_build(new)).id


async def wait_all_finished(store: Store, ids: list[int], timeout: float = 30) -> None:
    async with asyncio.timeout(timeout):
        while True:
            builds = [await store.get_build(i) for i in ids]
            if all(b.state.finished for b in builds):
                return
            await asyncio.sleep(0.05)


async def test_after_build_id_waits_per_chroot_and_failure_skips(store: Store) -> None:
    pid = await project(store, "alice")
    uid = (await store.get_user("alice")).id
    a = await submit(store, pid, uid)
    b = await submit(store, pid, uid, ChainSpec(after_build_id=a))
    c = await submit(store, pid, uid, ChainSpec(with_build_id=b))
    assert {t.state for t in (await store.get_build(b)).tasks} == {BuildState.WAITING}
    assert {t.state for t in (await store.get_build(c)).tasks} == {BuildState.WAITING}

    runner = FakeRunner(store, fail={TaskKey(a, "fedora-40-x86_64")})
    sched = Scheduler(store, runner, slots=1)
    loop = asyncio.create_task(sched.run())
    try:
        await wait_all_finished(store, [a, b, c])
    finally:
        loop.cancel()
    builds = {i: await store.get_build(i) for i in (a, b, c)}
    for dependent in (b, c):
        tasks = {t.chroot: t for t in builds[dependent].tasks}
        assert tasks["debian-12-x86_64"].state == BuildState.SUCCEEDED
        assert tasks["fedora-40-x86_64"].state == BuildState.SKIPPED
        assert (
            tasks["fedora-40-x86_64"].reason
            == f"dependency build {a} failed on chroot fedora-40-x86_64"
        )
    # On debian, B and C started only after A's task there had ended.
    order = runner.started
    assert order.index(TaskKey(a, "debian-12-x86_64")) < order.index(TaskKey(b, "debian-12-x86_64"))
    assert order.index(TaskKey(a, "debian-12-x86_64")) < order.index(TaskKey(c, "debian-12-x86_64"))
    assert TaskKey(b, "fedora-40-x86_64") not in order


async def test_dependency_that_already_failed_skips_at_submission(store: Store) -> None:
    pid = await project(store, "alice")
    uid = (await store.get_user("alice")).id
    a = await submit(store, pid, uid, chroots=("debian-12-x86_64",))
    await store.finish_task(a, "debian-12-x86_64", BuildState.FAILED, "boom", None)
    b = await submit(store, pid, uid, ChainSpec(after_build_id=a), chroots=("debian-12-x86_64",))
    build = await store.get_build(b)
    assert build.state == BuildState.SKIPPED
    assert build.tasks[0].reason == f"dependency build {a} failed on chroot debian-12-x86_64"


async def test_graph_is_rebuilt_from_postgres_after_a_crash(store: Store) -> None:
    pid = await project(store, "alice")
    uid = (await store.get_user("alice")).id
    a = await submit(store, pid, uid, chroots=("debian-12-x86_64",))
    b = await submit(store, pid, uid, ChainSpec(after_build_id=a), chroots=("debian-12-x86_64",))
    # A was running when the process died.
    await store.start_task(a, "debian-12-x86_64", BuildState.RUNNING)
    runner = FakeRunner(store)
    sched = Scheduler(store, runner, slots=1)
    loop = asyncio.create_task(sched.run())
    try:
        await wait_all_finished(store, [a, b])
    finally:
        loop.cancel()
    assert runner.started == [TaskKey(a, "debian-12-x86_64"), TaskKey(b, "debian-12-x86_64")]
    assert (await store.get_build(a)).tasks[0].attempts == 2  # the interrupted run, then the retry


async def test_a_single_build_is_not_starved_by_300(store: Store) -> None:
    x_project = await project(store, "x")
    y_project = await project(store, "y")
    x_id = (await store.get_user("x")).id
    y_id = (await store.get_user("y")).id
    runner = FakeRunner(store, hold=0.01)
    sched = Scheduler(store, runner, slots=1)
    loop = asyncio.create_task(sched.run())
    try:
        for _ in range(300):
            build = await store.get_build(
                await submit(store, x_project, x_id, chroots=("debian-12-x86_64",))
            )
            await sched.submit(build)
        await asyncio.sleep(0.1)  # a few of X's tasks run
        y_build = await store.get_build(
            await submit(store, y_project, y_id, chroots=("debian-12-x86_64",))
        )
        started_before = len(runner.started)
        await sched.submit(y_build)
        async with asyncio.timeout(30):
            while TaskKey(y_build.id, "debian-12-x86_64") not in runner.started:
                await asyncio.sleep(0.005)
    finally:
        loop.cancel()
    position = runner.started.index(TaskKey(y_build.id, "debian-12-x86_64"))
    # The X task holding the slot when Y arrived finishes and Y starts next. Y's
    # registration awaits one query, during which one more turnover may happen:
    # that is the "one slot turnover" the policy allows. Unfair would be ~300.
    assert position <= started_before + 1, (position, started_before)


async def test_stopping_is_not_canceling_the_chain_resumes_at_the_next_start(
    store: Store,
) -> None:
    pid = await project(store, "alice")
    uid = (await store.get_user("alice")).id
    a = await submit(store, pid, uid, chroots=("debian-12-x86_64",))
    b = await submit(store, pid, uid, ChainSpec(after_build_id=a), chroots=("debian-12-x86_64",))
    runner = FakeRunner(store, hold=600)
    sched = Scheduler(store, runner, slots=1)
    loop = asyncio.create_task(sched.run())
    async with asyncio.timeout(30):
        while TaskKey(a, "debian-12-x86_64") not in runner.started:
            await asyncio.sleep(0.01)
    loop.cancel()  # what SIGTERM does to the scheduler: stop, not cancel builds
    await asyncio.gather(loop, return_exceptions=True)
    await asyncio.sleep(0.2)  # anything the stop would still settle, settles now

    waiting = (await store.get_build(b)).tasks[0]
    assert waiting.state == BuildState.WAITING, waiting.reason
    assert (await store.get_build(a)).tasks[0].state == BuildState.RUNNING

    again = FakeRunner(store)
    restarted = asyncio.create_task(Scheduler(store, again, slots=1).run())
    try:
        await wait_all_finished(store, [a, b])
    finally:
        restarted.cancel()
    assert [(await store.get_build(i)).state for i in (a, b)] == [BuildState.SUCCEEDED] * 2
    assert again.started == [TaskKey(a, "debian-12-x86_64"), TaskKey(b, "debian-12-x86_64")]


async def test_two_promotions_at_once_keep_the_dependency_in_the_graph(store: Store) -> None:
    """Two tasks ending together each promote the graph: a waiting task promoted by the
    first must not be dropped by the second (whose database update finds it pending
    already), or whatever waits on it would count it as done and start too early."""
    pid = await project(store, "alice")
    uid = (await store.get_user("alice")).id
    a = await submit(store, pid, uid, chroots=("debian-12-x86_64",))
    b = await submit(store, pid, uid, ChainSpec(after_build_id=a), chroots=("debian-12-x86_64",))
    sched = Scheduler(store, FakeRunner(store), slots=1)
    await sched._load()
    key_b = TaskKey(b, "debian-12-x86_64")
    sched.graph.remove(TaskKey(a, "debian-12-x86_64"))  # a succeeded: b may go on
    assert sched.graph.promotable() == [key_b]
    await asyncio.gather(sched._promote(), sched._promote())
    assert key_b in sched.graph.nodes, "a promoted task was dropped from the graph"
    assert sched.graph.nodes[key_b].state == BuildState.PENDING
    assert [t.state for t in (await store.get_build(b)).tasks] == [BuildState.PENDING]


async def test_a_build_skipped_at_submission_fetches_no_source(store: Store) -> None:
    pid = await project(store, "alice")
    uid = (await store.get_user("alice")).id
    a = await submit(store, pid, uid, chroots=ONE)
    after_a = ChainSpec(after_build_id=a)
    await store.finish_task(a, "debian-12-x86_64", BuildState.FAILED, "boom", None)
    runner = FakeRunner(store)
    sched = Scheduler(store, runner, slots=1)
    loop = asyncio.create_task(sched.run())
    try:
        await wait_all_finished(store, [a])
        b = await submit(store, pid, uid, after_a, ONE, kind=SourceType.URL)
        await sched.submit(await store.get_build(b))
        await asyncio.sleep(0.2)  # a source step, had one been started, would run now
    finally:
        loop.cancel()
    assert (await store.get_build(b)).state == BuildState.SKIPPED
    assert sched.graph.keys_of_build(b) == []
    assert runner.started == []


async def test_a_source_left_with_nothing_to_build_is_dropped_and_stays_so_after_a_restart(
    store: Store,
) -> None:
    pid = await project(store, "alice")
    uid = (await store.get_user("alice")).id
    a = await submit(store, pid, uid, chroots=ONE)
    after_a = ChainSpec(after_build_id=a)
    # A holds the only VM slot, so B's source step (made in a VM, from git)
    # waits for it; A fails meanwhile: B's only task is skipped, and nothing
    # would use B's source.
    runner = FakeRunner(store, hold=0.5, fail={TaskKey(a, "debian-12-x86_64")})
    sched = Scheduler(store, runner, slots=1)
    loop = asyncio.create_task(sched.run())
    try:
        async with asyncio.timeout(10):
            while not runner.started:
                await asyncio.sleep(0.01)
        b = await submit(store, pid, uid, after_a, ONE, kind=SourceType.SCM)
        await sched.submit(await store.get_build(b))
        await wait_all_finished(store, [a, b], timeout=10)
    finally:
        loop.cancel()
    assert (await store.get_build(b)).state == BuildState.SKIPPED
    assert all(k.build_id == a for k in runner.started)
    # A build stuck that way by an earlier version ends at the next start.
    c = await submit(store, pid, uid, after_a, ONE, kind=SourceType.URL)
    assert (await store.get_build(c)).tasks[0].state == BuildState.SKIPPED
    await store.pool.execute("UPDATE builds SET source_state = 'pending' WHERE id = $1", c)
    assert (await store.get_build(c)).state == BuildState.PENDING
    sched = Scheduler(store, FakeRunner(store), slots=1)
    loop = asyncio.create_task(sched.run())
    try:
        await wait_all_finished(store, [c], timeout=10)
    finally:
        loop.cancel()
    assert (await store.get_build(c)).state == BuildState.SKIPPED
