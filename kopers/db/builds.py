"""Builds, their per-chroot tasks, built packages and buildroot manifests.

Every state change is guarded by the table in `transitions`: a method that
changes a state returns whether it applied, and leaves the row as it was when
the row's state does not allow it (a task the user canceled stays canceled).
`start_task` and `cancel_build` raise `TransitionRefused` instead, since their
callers must not go on as if they had applied.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from kopers.db.chains import ChainSpec, ChainStore, start_state
from kopers.db.transitions import ATTEMPT_STATES, TransitionRefused, source_from, task_from
from kopers.errors import NotFound
from kopers.models import Build, BuildState, BuildTask, Nevra, SourceType, TaskStep
from kopers.worker.steps import steps_from_json, steps_json


@dataclass(frozen=True, slots=True)
class NewBuild:
    """What a submission knows before the build has an id."""

    project_id: int
    submitter_id: int
    source_type: SourceType
    source: dict[str, Any]
    package_name: str | None
    package_version: str | None
    srpm_name: str | None
    source_state: BuildState
    timeout: int
    chroots: tuple[str, ...]
    task_state: BuildState
    chain: ChainSpec = field(default_factory=ChainSpec)
    priority: int = 0  # lower runs first
    is_background: bool = False


class BuildStore(ChainStore):
    async def create_build(
        self, new: NewBuild, on_created: Callable[[int], Awaitable[None]] | None = None
    ) -> Build:
        """Insert a build and its tasks in one transaction.

        `on_created(build_id)` runs inside the transaction, so moving the uploaded
        file into its final place either happens together with the rows or not at all.
        """
        async with self.atomic() as conn:
            build_id = await conn.fetchval(
                self.q.create_build,
                new.project_id,
                new.submitter_id,
                str(new.source_type),
                new.source,
                new.package_name,
                new.package_version,
                new.srpm_name,
                str(new.source_state),
                new.timeout,
            )
            await conn.execute(self.q.set_build_priority, build_id, new.priority, new.is_background)
            if new.package_name is not None:
                # Its package (kopers/db/packages.py), made from this build if new.
                await conn.execute(self.q.link_build_package, build_id)
            for chroot in new.chroots:
                await conn.execute(self.q.add_task, build_id, chroot, str(new.task_state))
            if not new.chain.empty:
                deps = await self._link(conn, build_id, new.chroots, new.chain)
                for chroot, chroot_deps in deps.items():
                    start = start_state(new.task_state, chroot, chroot_deps)
                    if start.state == BuildState.SKIPPED:
                        await conn.execute(
                            self.q.skip_task, build_id, chroot, start.reason, task_from(start.state)
                        )
                    elif start.state != new.task_state:
                        await conn.execute(
                            self.q.set_task_state,
                            build_id,
                            chroot,
                            str(start.state),
                            task_from(start.state),
                        )
                await self._end_if_done(conn, build_id)
            if on_created is not None:
                await on_created(build_id)
        return await self.get_build(build_id)

    async def get_build(self, build_id: int) -> Build:
        row = await self.db.fetchrow(self.q.get_build, build_id)
        if row is None:
            raise NotFound(f"Build {build_id} does not exist.")
        return (await self._with_tasks([row]))[0]

    async def list_builds(
        self, project_id: int, package: str | None, limit: int | None, offset: int
    ) -> list[Build]:
        rows = await self.db.fetch(self.q.list_builds, project_id, package, limit, offset)
        return await self._with_tasks(rows)

    async def _with_tasks(self, rows: Iterable[asyncpg.Record]) -> list[Build]:
        rows = list(rows)
        tasks: dict[int, list[BuildTask]] = {}
        if rows:
            for t in await self.db.fetch(self.q.tasks_of_builds, [r["id"] for r in rows]):
                tasks.setdefault(t["build_id"], []).append(_task(t))
        return [_build(r, tasks.get(r["id"], [])) for r in rows]

    async def unfinished_graph(self) -> list[asyncpg.Record]:
        """Every unfinished task with its owner and source state, for the scheduler."""
        return list(await self.db.fetch(self.q.unfinished_graph))

    async def skip_orphan_sources(self) -> list[int]:
        """Skip source steps not begun whose builds' tasks have all ended; their build ids."""
        return [r["id"] for r in await self.db.fetch(self.q.skip_orphan_sources)]

    async def skip_task(self, build_id: int, chroot: str, reason: str) -> bool:
        """Skip a task that has not started; False if it had (or had ended)."""
        skipped = BuildState.SKIPPED
        async with self.atomic() as conn:
            done = await conn.fetchval(
                self.q.skip_task, build_id, chroot, reason, task_from(skipped)
            )
            if done is None:
                return False
            await self._end_if_done(conn, build_id)
        return True

    async def set_source(
        self, build_id: int, name: str, version: str, srpm_name: str, state: BuildState
    ) -> bool:
        """Record the source package the source step made; False if the step was ended.

        The build then gets its package by name (made from its source if new).
        """
        async with self.atomic() as conn:
            done = await conn.fetchval(
                self.q.set_source,
                build_id,
                name,
                version,
                srpm_name,
                str(state),
                source_from(state),
            )
            if done is not None:
                await conn.execute(self.q.link_build_package, build_id)
        return done is not None

    async def set_source_state(self, build_id: int, state: BuildState) -> bool:
        """Move the source step on; False if its current state does not allow `state`."""
        done = await self.db.fetchval(
            self.q.set_source_state, build_id, str(state), source_from(state)
        )
        return done is not None

    async def start_task(self, build_id: int, chroot: str, state: BuildState) -> None:
        """Begin an attempt: `state` is starting, or running for a runner that says so at once.

        Raises TransitionRefused when the task may not start: it was canceled,
        skipped or has ended. No attempt may then run for it.
        """
        if state not in ATTEMPT_STATES:
            raise ValueError(f"an attempt does not begin {state}")
        async with self.atomic() as conn:
            done = await conn.fetchval(
                self.q.start_task, build_id, chroot, str(state), task_from(state)
            )
            if done is None:
                raise await self._refused(conn, build_id, chroot, state)
            await conn.execute(self.q.mark_build_started, build_id)

    async def set_task_state(self, build_id: int, chroot: str, state: BuildState) -> bool:
        """Move a task on (waiting, pending, running); False if its state does not allow it."""
        done = await self.db.fetchval(
            self.q.set_task_state, build_id, chroot, str(state), task_from(state)
        )
        return done is not None

    async def add_task_steps(self, build_id: int, chroot: str, steps: Sequence[TaskStep]) -> None:
        """Append steps timed after the task ended (a VM released meanwhile)."""
        await self.db.execute(self.q.add_task_steps, build_id, chroot, steps_json(steps))

    async def finish_task(
        self,
        build_id: int,
        chroot: str,
        state: BuildState,
        reason: str | None,
        result_dir: str | None,
        built: Sequence[Nevra] = (),
        manifest: Sequence[str] = (),
        steps: Sequence[TaskStep] = (),
    ) -> bool:
        """Record a task's end, its packages, buildroot manifest and step times, atomically.

        False, and nothing recorded, when the task had already ended: above all
        when the user canceled it while it ran.
        """
        async with self.atomic() as conn:
            # The guarded update first: it locks the row, so a cancel running
            # at the same moment either lands before (and this refuses) or waits.
            done = await conn.fetchval(
                self.q.finish_task,
                build_id,
                chroot,
                str(state),
                reason,
                result_dir,
                task_from(state),
                steps_json(steps),
            )
            if done is None:
                return False
            await conn.execute(self.q.clear_task_results, build_id, chroot)
            await conn.execute(self.q.clear_task_manifest, build_id, chroot)
            for n in built:
                await conn.execute(
                    self.q.add_built_package,
                    build_id,
                    chroot,
                    n.name,
                    n.epoch,
                    n.version,
                    n.release,
                    n.arch,
                )
            if manifest:
                await conn.executemany(
                    self.q.add_buildroot_package, [(build_id, chroot, m) for m in manifest]
                )
            await self._end_if_done(conn, build_id)
        return True

    async def cancel_build(self, build_id: int) -> list[str]:
        """Cancel a build's unfinished tasks and mark it canceled; return their chroots.

        Raises TransitionRefused when no task was left to cancel (the build
        ended, or was canceled, first: it keeps that result), NotFound when
        there is no such build.
        """
        canceled = BuildState.CANCELED
        async with self.atomic() as conn:
            await conn.execute(self.q.lock_tasks, build_id)
            rows = await conn.fetch(self.q.cancel_unfinished_tasks, build_id, task_from(canceled))
            if not rows:
                if not await conn.fetch(self.q.existing_builds, [build_id]):
                    raise NotFound(f"Build {build_id} does not exist.")
                raise TransitionRefused(f"Cannot cancel build {build_id}: it has already ended.")
            await conn.execute(self.q.cancel_build, build_id, source_from(canceled))
            await self._end_if_done(conn, build_id)
        return [r["chroot"] for r in rows]

    async def _end_if_done(self, conn: asyncpg.Connection, build_id: int) -> None:
        """Set the build's end once all its tasks have ended (in `conn`'s transaction).

        The build row is locked first, after this transaction's task update: the
        check then runs on a snapshot taken after any other transaction that
        ended a task of this build has committed.
        """
        await conn.execute(self.q.lock_build, build_id)
        await conn.execute(self.q.finish_build_if_done, build_id)

    async def _refused(
        self, conn: asyncpg.Connection, build_id: int, chroot: str, target: BuildState
    ) -> TransitionRefused | NotFound:
        """The error for a task update the table refused, naming the task's state."""
        current = await conn.fetchval(self.q.task_state, build_id, chroot)
        if current is None:
            return NotFound(f"Build {build_id} has no task for chroot {chroot}.")
        return TransitionRefused(
            f"Task {build_id}/{chroot} is {current}; it cannot become {target}."
        )

    async def delete_builds(self, build_ids: Sequence[int]) -> list[int]:
        rows = await self.db.fetch(self.q.delete_builds, list(build_ids))
        return [r["id"] for r in rows]

    async def existing_builds(self, build_ids: Sequence[int]) -> set[int]:
        """Which of `build_ids` still have a row."""
        rows = await self.db.fetch(self.q.existing_builds, list(build_ids))
        return {r["id"] for r in rows}

    async def sources_of_project(self, project_id: int) -> list[tuple[int, BuildState]]:
        """(build id, source state) of every build of a project, for storage accounting."""
        rows = await self.db.fetch(self.q.sources_of_project, project_id)
        return [(r["id"], BuildState(r["source_state"])) for r in rows]

    async def built_packages(self, build_id: int) -> dict[str, list[Nevra]]:
        out: dict[str, list[Nevra]] = {}
        for r in await self.db.fetch(self.q.built_packages, build_id):
            out.setdefault(r["chroot"], []).append(
                Nevra(r["name"], r["epoch"], r["version"], r["release"], r["arch"])
            )
        return out

    async def buildroot_packages(self, build_id: int) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for r in await self.db.fetch(self.q.buildroot_packages, build_id):
            out.setdefault(r["chroot"], []).append(r["nevra"])
        return out


def _task(row: asyncpg.Record) -> BuildTask:
    return BuildTask(
        build_id=row["build_id"],
        chroot=row["chroot"],
        state=BuildState(row["state"]),
        started_on=row["started_on"],
        ended_on=row["ended_on"],
        result_dir=row["result_dir"],
        reason=row["reason"],
        attempts=row["attempts"],
        steps=steps_from_json(row["steps"]),
    )


def _build(row: asyncpg.Record, tasks: list[BuildTask]) -> Build:
    return Build(
        id=row["id"],
        project_id=row["project_id"],
        owner=row["owner"],
        project=row["project"],
        submitter=row["submitter"],
        source_type=SourceType(row["source_type"]),
        source=row["source"],
        package_name=row["package_name"],
        package_version=row["package_version"],
        srpm_name=row["srpm_name"],
        source_state=BuildState(row["source_state"]),
        canceled=row["canceled"],
        timeout=row["timeout"],
        submitted_on=row["submitted_on"],
        started_on=row["started_on"],
        ended_on=row["ended_on"],
        tasks=tuple(tasks),
        priority=row["priority"],
        is_background=row["is_background"],
    )
