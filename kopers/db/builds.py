"""Builds, their per-chroot tasks, built packages and buildroot manifests."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from kopers.db.chains import ChainSpec, ChainStore, start_state
from kopers.errors import NotFound
from kopers.models import Build, BuildState, BuildTask, Nevra, SourceType


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
        async with self.pool.acquire() as conn, conn.transaction():
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
            for chroot in new.chroots:
                await conn.execute(self.q.add_task, build_id, chroot, str(new.task_state))
            if not new.chain.empty:
                deps = await self._link(conn, build_id, new.chroots, new.chain)
                for chroot, chroot_deps in deps.items():
                    start = start_state(new.task_state, chroot, chroot_deps)
                    if start.state == BuildState.SKIPPED:
                        await conn.execute(self.q.skip_task, build_id, chroot, start.reason)
                    elif start.state != new.task_state:
                        await conn.execute(
                            self.q.set_task_state, build_id, chroot, str(start.state)
                        )
                await conn.execute(self.q.finish_build_if_done, build_id)
            if on_created is not None:
                await on_created(build_id)
        return await self.get_build(build_id)

    async def get_build(self, build_id: int) -> Build:
        row = await self.pool.fetchrow(self.q.get_build, build_id)
        if row is None:
            raise NotFound(f"Build {build_id} does not exist.")
        return (await self._with_tasks([row]))[0]

    async def list_builds(
        self, project_id: int, package: str | None, limit: int | None, offset: int
    ) -> list[Build]:
        rows = await self.pool.fetch(self.q.list_builds, project_id, package, limit, offset)
        return await self._with_tasks(rows)

    async def _with_tasks(self, rows: Iterable[asyncpg.Record]) -> list[Build]:
        rows = list(rows)
        tasks: dict[int, list[BuildTask]] = {}
        if rows:
            for t in await self.pool.fetch(self.q.tasks_of_builds, [r["id"] for r in rows]):
                tasks.setdefault(t["build_id"], []).append(_task(t))
        return [_build(r, tasks.get(r["id"], [])) for r in rows]

    async def unfinished_graph(self) -> list[asyncpg.Record]:
        """Every unfinished task with its owner and source state, for the scheduler."""
        return list(await self.pool.fetch(self.q.unfinished_graph))

    async def skip_task(self, build_id: int, chroot: str, reason: str) -> None:
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute(self.q.skip_task, build_id, chroot, reason)
            await conn.execute(self.q.finish_build_if_done, build_id)

    async def set_source(
        self, build_id: int, name: str, version: str, srpm_name: str, state: BuildState
    ) -> None:
        await self.pool.execute(self.q.set_source, build_id, name, version, srpm_name, str(state))

    async def set_source_state(self, build_id: int, state: BuildState) -> None:
        await self.pool.execute(self.q.set_source_state, build_id, str(state))

    async def start_task(self, build_id: int, chroot: str, state: BuildState) -> None:
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute(self.q.start_task, build_id, chroot, str(state))
            await conn.execute(self.q.mark_build_started, build_id)

    async def set_task_state(self, build_id: int, chroot: str, state: BuildState) -> None:
        await self.pool.execute(self.q.set_task_state, build_id, chroot, str(state))

    async def finish_task(
        self,
        build_id: int,
        chroot: str,
        state: BuildState,
        reason: str | None,
        result_dir: str | None,
        built: Sequence[Nevra] = (),
        manifest: Sequence[str] = (),
    ) -> None:
        """Record a task's end, its packages and its buildroot manifest, atomically."""
        async with self.pool.acquire() as conn, conn.transaction():
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
            await conn.execute(self.q.finish_task, build_id, chroot, str(state), reason, result_dir)
            await conn.execute(self.q.finish_build_if_done, build_id)

    async def cancel_build(self, build_id: int) -> list[str]:
        """Mark a build canceled; return the chroots whose tasks were still unfinished."""
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute(self.q.cancel_build, build_id)
            rows = await conn.fetch(self.q.cancel_unfinished_tasks, build_id)
            await conn.execute(self.q.finish_build_if_done, build_id)
        return [r["chroot"] for r in rows]

    async def delete_builds(self, build_ids: Sequence[int]) -> list[int]:
        rows = await self.pool.fetch(self.q.delete_builds, list(build_ids))
        return [r["id"] for r in rows]

    async def built_packages(self, build_id: int) -> dict[str, list[Nevra]]:
        out: dict[str, list[Nevra]] = {}
        for r in await self.pool.fetch(self.q.built_packages, build_id):
            out.setdefault(r["chroot"], []).append(
                Nevra(r["name"], r["epoch"], r["version"], r["release"], r["arch"])
            )
        return out

    async def buildroot_packages(self, build_id: int) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for r in await self.pool.fetch(self.q.buildroot_packages, build_id):
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
