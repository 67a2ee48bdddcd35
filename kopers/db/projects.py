"""Projects and their chroots: the project part of the store."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime

import asyncpg

from kopers.db.base import StoreBase
from kopers.errors import Conflict, NotFound
from kopers.models import Project, ProjectOptions

DEFAULT_OPTIONS = ProjectOptions()


class ProjectStore(StoreBase):
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
        delete_after: datetime | None = None,
        on_created: Callable[[Project], Awaitable[None]] | None = None,
        options: ProjectOptions = DEFAULT_OPTIONS,
        webhook_secret: str | None = None,
    ) -> Project:
        """Insert a project; `on_created` runs inside the transaction (e.g. to make its key).

        Without a `webhook_secret`, Postgres makes a random one.
        """
        async with self.atomic() as conn:
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
                    *_option_values(options),
                    webhook_secret,
                )
            except asyncpg.UniqueViolationError:
                raise Conflict(f"project {owner}/{name} already exists") from None
            for chroot in chroots:
                await conn.execute(self.q.add_project_chroot, pid, chroot)
            if delete_after is not None:
                await conn.execute(self.q.set_project_storage, pid, None, None, delete_after)
            project = _project(await conn.fetchrow(self.q.get_project_by_id, pid))
            if on_created is not None:
                await on_created(project)
        return project

    async def get_project(self, owner: str, name: str) -> Project:
        row = await self.db.fetchrow(self.q.get_project, owner, name)
        if row is None:
            raise NotFound(f"Project {owner}/{name} does not exist.")
        return _project(row)

    async def project_by_id(self, project_id: int) -> Project:
        row = await self.db.fetchrow(self.q.get_project_by_id, project_id)
        if row is None:
            raise NotFound(f"project {project_id} does not exist")
        return _project(row)

    async def list_projects(
        self, owner: str | None, query: str | None = None, limit: int | None = None, offset: int = 0
    ) -> list[Project]:
        rows = await self.db.fetch(self.q.list_projects, owner, query, limit, offset)
        return [_project(r) for r in rows]

    async def chroot_repos(self, project_id: int, chroot: str) -> list[str]:
        repos = await self.db.fetchval(self.q.chroot_repos, project_id, chroot)
        return list(repos or [])

    async def set_chroot_repos(self, project_id: int, chroot: str, repos: Sequence[str]) -> None:
        await self.db.execute(self.q.set_chroot_repos, project_id, chroot, list(repos))

    async def update_project(
        self,
        project_id: int,
        *,
        description: str,
        instructions: str,
        homepage: str | None,
        contact: str | None,
        additional_repos: Sequence[str],
        enable_net: bool,
        delete_after: datetime | None,
        options: ProjectOptions,
    ) -> None:
        """Set a project's text, repositories, network, expiry and options."""
        await self.db.execute(
            self.q.update_project,
            project_id,
            description,
            instructions,
            homepage,
            contact,
            list(additional_repos),
            enable_net,
            delete_after,
            *_option_values(options),
        )

    async def set_project_chroots(self, project_id: int, chroots: Sequence[str]) -> None:
        """Offer exactly `chroots`: others are switched off (rows and results kept)."""
        async with self.atomic() as conn:
            await conn.execute(self.q.disable_project_chroots, project_id, list(chroots))
            for chroot in chroots:
                await conn.execute(self.q.add_project_chroot, project_id, chroot)

    async def set_webhook_secret(self, project_id: int, secret: str) -> None:
        await self.db.execute(self.q.set_project_webhook_secret, project_id, secret)

    async def set_project_storage(
        self,
        project_id: int,
        keep_builds: int | None,
        quota_mib: int | None,
        delete_after: datetime | None,
    ) -> None:
        await self.db.execute(
            self.q.set_project_storage, project_id, keep_builds, quota_mib, delete_after
        )

    async def set_project_timeout(self, project_id: int, timeout: int | None) -> None:
        await self.db.execute(self.q.set_project_timeout, project_id, timeout)

    async def expired_projects(self) -> list[Project]:
        return [
            await self.project_by_id(r["id"]) for r in await self.db.fetch(self.q.expired_projects)
        ]

    async def delete_project(self, project_id: int) -> list[int]:
        """Delete a project and its builds; return the ids of the builds deleted.

        The caller removes what those builds keep outside Postgres (their
        stored sources, see `kopers.builds.remove_sources`).
        """
        async with self.atomic() as conn:
            rows = await conn.fetch(self.q.delete_builds_of_project, project_id)
            await conn.execute(self.q.delete_project, project_id)
        return [r["id"] for r in rows]


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
        retention=row["keep_builds"],
        quota_mib=row["quota_mib"],
        delete_after=row["delete_after"],
        build_timeout=row["build_timeout"],
        options=ProjectOptions(
            persistent=row["persistent"],
            unlisted_on_hp=row["unlisted_on_hp"],
            auto_prune=row["auto_prune"],
            module_hotfixes=row["module_hotfixes"],
            repo_priority=row["repo_priority"],
            runtime_dependencies=tuple(row["runtime_dependencies"]),
            follow_fedora_branching=row["follow_fedora_branching"],
            packit_forge_projects_allowed=tuple(row["packit_forge_projects_allowed"]),
        ),
        webhook_secret=str(row["webhook_secret"]),
        rebuild_dependents=row["rebuild_dependents"],
    )


def _option_values(o: ProjectOptions) -> tuple[object, ...]:
    """The options in the order create_project ($10..$17) and update_project ($9..$16) take."""
    return (
        o.persistent,
        o.unlisted_on_hp,
        o.auto_prune,
        o.module_hotfixes,
        o.repo_priority,
        list(o.runtime_dependencies),
        o.follow_fedora_branching,
        list(o.packit_forge_projects_allowed),
    )
