"""Task and source state changes are guarded in SQL, against a real Postgres.

Each state-changing statement names the states it may start from (the table
in kopers.db.transitions), so a late write cannot undo a newer one: a finish
after a cancel leaves the task canceled, a finished task never starts again.
The flows the pipeline, the source step and the scheduler use still work.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from kopers.db.database import open_database
from kopers.db.migrations import migrate
from kopers.db.store import NewBuild, Store
from kopers.db.transitions import SOURCE_FROM, TASK_FROM, TransitionRefused
from kopers.errors import NotFound
from kopers.models import BuildState, Nevra, SourceType

pytestmark = pytest.mark.integration
S = BuildState
C1, C2 = "debian-12-x86_64", "fedora-40-x86_64"
PKG = Nevra("pkg", 0, "1", "1", "noarch")


@pytest.fixture
async def store(dsn: str, tmp_path: Path) -> AsyncIterator[Store]:
    db = await open_database(dsn, tmp_path)
    await migrate(db.pool)
    yield Store(db.pool)
    await db.close()


async def build(store: Store, chroots: tuple[str, ...] = (C1,), *, url: bool = False) -> int:
    """A build as a submission makes it: an upload's tasks pending, a URL's waiting."""
    user = await store.create_user(f"u-{secrets.token_hex(4)}")
    project = await store.create_project(
        user.name,
        "p",
        description="",
        instructions="",
        homepage=None,
        contact=None,
        chroots=(C1, C2),
        additional_repos=(),
        enable_net=False,
        created_by=user.id,
    )
    new = NewBuild(
        project_id=project.id,
        submitter_id=user.id,
        source_type=SourceType.URL if url else SourceType.UPLOAD,
        source={"url": "https://example.org/pkg.src.rpm"} if url else {},
        package_name=None if url else "pkg",
        package_version=None if url else "1-1",
        srpm_name=None if url else "pkg-1-1.src.rpm",
        source_state=S.PENDING if url else S.SUCCEEDED,
        timeout=600,
        chroots=chroots,
        task_state=S.WAITING if url else S.PENDING,
    )
    return (await store.create_build(new)).id


async def task(store: Store, build_id: int, chroot: str = C1) -> tuple[S, str | None, int]:
    b = await store.get_build(build_id)
    t = next(t for t in b.tasks if t.chroot == chroot)
    return t.state, t.reason, t.attempts


def test_no_update_leaves_a_finished_state() -> None:
    for table in (TASK_FROM, SOURCE_FROM):
        for target, sources in table.items():
            assert not any(s.finished for s in sources), target


async def test_the_pipelines_flow_with_a_retry_succeeds(store: Store) -> None:
    b = await build(store)
    await store.start_task(b, C1, S.STARTING)
    assert await store.set_task_state(b, C1, S.RUNNING)
    # An infrastructure failure: attempt 2 starts on a fresh VM.
    await store.start_task(b, C1, S.STARTING)
    assert await store.set_task_state(b, C1, S.RUNNING)
    assert await store.finish_task(b, C1, S.SUCCEEDED, None, "/r", [PKG], ["bash-5"])
    assert await task(store, b) == (S.SUCCEEDED, None, 2)
    done = await store.get_build(b)
    assert done.state == S.SUCCEEDED and done.ended_on is not None
    assert await store.built_packages(b) == {C1: [PKG]}


async def test_a_task_fails_before_any_attempt(store: Store) -> None:
    b = await build(store)
    assert await store.finish_task(b, C1, S.FAILED, "chroot is not configured", None)
    assert await task(store, b) == (S.FAILED, "chroot is not configured", 0)


async def test_a_task_interrupted_by_a_stop_is_resumed(store: Store) -> None:
    b = await build(store)
    await store.start_task(b, C1, S.STARTING)
    assert await store.set_task_state(b, C1, S.RUNNING)
    # What the scheduler does at start-up with a task that was running.
    assert await store.set_task_state(b, C1, S.PENDING)
    await store.start_task(b, C1, S.STARTING)
    assert await store.finish_task(b, C1, S.FAILED, "boom", None)
    assert await task(store, b) == (S.FAILED, "boom", 2)


async def test_a_finish_after_a_cancel_leaves_the_task_canceled(store: Store) -> None:
    b = await build(store, (C1, C2))
    await store.start_task(b, C1, S.STARTING)
    assert await store.set_task_state(b, C1, S.RUNNING)
    assert sorted(await store.cancel_build(b)) == [C1, C2]
    assert not await store.finish_task(b, C1, S.SUCCEEDED, None, "/r", [PKG], ["bash-5"])
    assert not await store.finish_task(b, C2, S.FAILED, "late", None)
    assert await task(store, b, C1) == (S.CANCELED, "canceled by the user", 1)
    assert (await task(store, b, C2))[:2] == (S.CANCELED, "canceled by the user")
    assert await store.built_packages(b) == {}
    assert await store.buildroot_packages(b) == {}
    assert (await store.get_build(b)).state == S.CANCELED


async def test_a_canceled_build_stays_canceled(store: Store) -> None:
    b = await build(store)
    await store.cancel_build(b)
    assert not await store.set_task_state(b, C1, S.PENDING)  # no resume
    assert not await store.set_task_state(b, C1, S.RUNNING)
    assert not await store.skip_task(b, C1, "dependency failed")
    with pytest.raises(TransitionRefused, match="is canceled"):
        await store.start_task(b, C1, S.STARTING)
    with pytest.raises(TransitionRefused, match="already ended"):
        await store.cancel_build(b)
    assert await task(store, b) == (S.CANCELED, "canceled by the user", 0)


async def test_a_finished_task_never_starts_again(store: Store) -> None:
    b = await build(store)
    await store.start_task(b, C1, S.STARTING)
    assert await store.finish_task(b, C1, S.SUCCEEDED, None, "/r", [PKG])
    with pytest.raises(TransitionRefused, match="is succeeded"):
        await store.start_task(b, C1, S.STARTING)
    assert not await store.set_task_state(b, C1, S.PENDING)
    assert not await store.finish_task(b, C1, S.FAILED, "late", None)
    assert await task(store, b) == (S.SUCCEEDED, None, 1)
    assert await store.built_packages(b) == {C1: [PKG]}


async def test_an_ended_build_cannot_be_canceled(store: Store) -> None:
    b = await build(store)
    await store.start_task(b, C1, S.RUNNING)
    assert await store.finish_task(b, C1, S.SUCCEEDED, None, "/r")
    with pytest.raises(TransitionRefused):
        await store.cancel_build(b)
    done = await store.get_build(b)
    assert not done.canceled and done.state == S.SUCCEEDED
    with pytest.raises(NotFound):
        await store.cancel_build(b + 1000)
    with pytest.raises(NotFound):
        await store.start_task(b, "no-such-chroot", S.STARTING)


async def test_only_a_task_that_has_not_started_is_skipped(store: Store) -> None:
    b = await build(store, (C1, C2), url=True)
    assert await store.skip_task(b, C1, "source import failed")  # waiting
    await store.set_task_state(b, C2, S.PENDING)
    await store.start_task(b, C2, S.STARTING)
    assert not await store.skip_task(b, C2, "dependency failed")
    assert await task(store, b, C1) == (S.SKIPPED, "source import failed", 0)
    assert (await task(store, b, C2))[0] == S.STARTING


async def test_a_waiting_task_is_promoted_before_it_starts(store: Store) -> None:
    b = await build(store, url=True)
    with pytest.raises(TransitionRefused, match="is waiting"):
        await store.start_task(b, C1, S.STARTING)
    assert not await store.set_task_state(b, C1, S.RUNNING)
    assert await store.set_task_state(b, C1, S.PENDING)
    await store.start_task(b, C1, S.STARTING)
    assert not await store.set_task_state(b, C1, S.WAITING)  # only at submission
    with pytest.raises(ValueError):
        await store.start_task(b, C1, S.SUCCEEDED)  # not a state an attempt begins in


async def test_the_source_step_flow_and_its_restart(store: Store) -> None:
    b = await build(store, url=True)
    assert await store.set_source_state(b, S.IMPORTING)
    assert await store.set_source_state(b, S.IMPORTING)  # again after a restart
    assert await store.set_source(b, "pkg", "1-1", "pkg-1-1.src.rpm", S.SUCCEEDED)
    assert not await store.set_source_state(b, S.IMPORTING)  # a made source is not made again
    assert not await store.set_source_state(b, S.FAILED)
    got = await store.get_build(b)
    assert (got.source_state, got.srpm_name) == (S.SUCCEEDED, "pkg-1-1.src.rpm")


async def test_a_source_step_ended_by_a_cancel_stays_canceled(store: Store) -> None:
    b = await build(store, url=True)
    assert await store.set_source_state(b, S.IMPORTING)
    await store.cancel_build(b)
    assert not await store.set_source(b, "pkg", "1-1", "pkg-1-1.src.rpm", S.SUCCEEDED)
    assert not await store.set_source_state(b, S.FAILED)
    got = await store.get_build(b)
    assert (got.source_state, got.srpm_name, got.state) == (S.CANCELED, None, S.CANCELED)


async def test_an_uploaded_source_keeps_its_state_when_canceled(store: Store) -> None:
    b = await build(store)
    await store.cancel_build(b)
    assert (await store.get_build(b)).source_state == S.SUCCEEDED


async def test_a_cancel_racing_finishes_is_settled_one_way(store: Store) -> None:
    """Whatever lands first wins, for every task; nothing deadlocks."""
    for _ in range(20):
        b = await build(store, (C1, C2))
        for chroot in (C1, C2):
            await store.start_task(b, chroot, S.RUNNING)

        async def cancel(build_id: int = b) -> list[str]:
            try:
                return await store.cancel_build(build_id)
            except TransitionRefused:
                return []

        canceled, *finished = await asyncio.gather(
            cancel(),
            store.finish_task(b, C1, S.SUCCEEDED, None, "/r", [PKG]),
            store.finish_task(b, C2, S.SUCCEEDED, None, "/r", [PKG]),
        )
        got = await store.get_build(b)
        states = {t.chroot: t.state for t in got.tasks}
        for chroot, applied in zip((C1, C2), finished, strict=True):
            assert (chroot in canceled) != applied
            assert states[chroot] == (S.SUCCEEDED if applied else S.CANCELED)
        assert got.canceled == bool(canceled) and got.ended_on is not None
        assert sorted(await store.built_packages(b)) == [
            c for c, applied in zip((C1, C2), finished, strict=True) if applied
        ]
