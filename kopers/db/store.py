"""The store: every read and write of Kopers' state goes through here.

It is the only caller of SQL. It turns rows into the frozen dataclasses of
`kopers.models` and translates database errors into `KopersError`s.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from kopers.db.queries import Queries
from kopers.errors import Conflict, NotFound
from kopers.models import Build, BuildState, BuildTask, Nevra, Project, SourceType, User


@dataclass(frozen=True, slots=True)
class TokenRecord:
    user: User
    secret_hash: str
    expires_on: datetime | None
    revoked: bool


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


class Store:
    def __init__(self, pool: asyncpg.Pool, queries: Queries | None = None) -> None:
        self.pool = pool
        self.q = queries or Queries()

    # accounts -------------------------------------------------------------

    async def create_user(self, name: str, is_admin: bool = False) -> User:
        try:
            row = await self.pool.fetchrow(self.q.create_user, name, is_admin)
        except asyncpg.UniqueViolationError:
            raise Conflict(f"user {name} already exists") from None
        except asyncpg.CheckViolationError:
            raise Conflict(f"invalid user name {name!r}") from None
        return _user(row)

    async def get_user(self, name: str) -> User:
        row = await self.pool.fetchrow(self.q.get_user, name)
        if row is None:
            raise NotFound(f"user {name} does not exist")
        return _user(row)

    async def create_token(
        self, user_id: int, login: str, secret_hash: str, expires_on: datetime | None
    ) -> None:
        await self.pool.execute(self.q.create_token, user_id, login, secret_hash, expires_on)

    async def token(self, login: str) -> TokenRecord | None:
        row = await self.pool.fetchrow(self.q.token_by_login, login)
        if row is None:
            return None
        return TokenRecord(
            user=User(row["id"], row["name"], row["is_admin"]),
            secret_hash=row["secret_hash"],
            expires_on=row["expires_on"],
            revoked=row["revoked"],
        )

    async def touch_token(self, login: str) -> None:
        await self.pool.execute(self.q.touch_token, login)

    async def add_event(
        self,
        user_id: int | None,
        address: str | None,
        action: str,
        obj: str,
        details: dict[str, Any],
    ) -> None:
        await self.pool.execute(self.q.add_event, user_id, address, action, obj, details)

    async def events(self, obj: str | None, limit: int = 100) -> list[dict[str, Any]]:
        return [dict(r) for r in await self.pool.fetch(self.q.list_events, obj, limit)]

    # projects -------------------------------------------------------------

    async def create_project(
        self,
        owner: str,
        name: str,
        *,
        description: str,
        instructions: str,
        homepage: str | None,
        contact: str | None,
        chroots: Sequence[str],
        additional_repos: Sequence[str],
        enable_net: bool,
        created_by: int,
        on_created: Callable[[Project], Awaitable[None]] | None = None,
    ) -> Project:
        """Insert a project; `on_created` runs inside the transaction (e.g. to make its key)."""
        async with self.pool.acquire() as conn, conn.transaction():
            try:
                pid = await conn.fetchval(
                    self.q.create_project,
                    owner,
                    name,
                    description,
                    instructions,
                    homepage,
                    contact,
                    list(additional_repos),
                    enable_net,
                    created_by,
                )
            except asyncpg.UniqueViolationError:
                raise Conflict(f"project {owner}/{name} already exists") from None
            for chroot in chroots:
                await conn.execute(self.q.add_project_chroot, pid, chroot)
            project = _project(await conn.fetchrow(self.q.get_project_by_id, pid))
            if on_created is not None:
                await on_created(project)
        return project

    async def get_project(self, owner: str, name: str) -> Project:
        row = await self.pool.fetchrow(self.q.get_project, owner, name)
        if row is None:
            raise NotFound(f"Project {owner}/{name} does not exist.")
        return _project(row)

    async def project_by_id(self, project_id: int) -> Project:
        row = await self.pool.fetchrow(self.q.get_project_by_id, project_id)
        if row is None:
            raise NotFound(f"project {project_id} does not exist")
        return _project(row)

    async def list_projects(
        self, owner: str | None, query: str | None = None, limit: int | None = None, offset: int = 0
    ) -> list[Project]:
        rows = await self.pool.fetch(self.q.list_projects, owner, query, limit, offset)
        return [_project(r) for r in rows]

    async def delete_project(self, project_id: int) -> None:
        await self.pool.execute(self.q.delete_project, project_id)

    # builds ---------------------------------------------------------------

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
            for chroot in new.chroots:
                await conn.execute(self.q.add_task, build_id, chroot, str(new.task_state))
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


def _user(row: asyncpg.Record) -> User:
    return User(id=row["id"], name=row["name"], is_admin=row["is_admin"])


def _project(row: asyncpg.Record) -> Project:
    return Project(
        id=row["id"],
        owner=row["owner"],
        name=row["name"],
        description=row["description"],
        instructions=row["instructions"],
        homepage=row["homepage"],
        contact=row["contact"],
        chroots=tuple(row["chroots"]),
        additional_repos=tuple(row["additional_repos"]),
        enable_net=row["enable_net"],
        created_by=row["created_by"],
        created_on=row["created_on"],
    )


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
    )
