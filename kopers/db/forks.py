"""Forks: copying a project's row and chroots, and recording the copy of its builds' results.

The project row is copied column by column, every column but those in
`PROJECT_NOT_COPIED`: an option added to `projects` later comes along
without this module knowing it. The same holds for `project_chroots`.
What is left out: the identity of the new project (id, owner, name, who
made it and when), and what upstream Copr does not carry into a fork
either, because it belongs to the source's owner or only a site admin
sets it (contact, persistent, auto_prune, a webhook secret). A temporary
source's expiry stays behind too: the fork is the caller's project.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import asyncpg

from kopers.db.base import StoreBase
from kopers.errors import Conflict

PROJECT_NOT_COPIED = frozenset(
    {
        "id",
        "owner",
        "name",
        "created_by",
        "created_on",
        "contact",
        "delete_after",
        "persistent",
        "auto_prune",
        "webhook_secret",
    }
)
CHROOT_NOT_COPIED = frozenset({"project_id"})


@dataclass(frozen=True, slots=True)
class PendingCopy:
    """A task of a copied build whose results are still to be copied."""

    build_id: int
    chroot: str
    package: str
    source: dict[str, Any]  # the build's source, naming the build copied (kopers.forkplan)
    project_id: int
    owner: str
    project: str


def _quoted(names: list[str]) -> str:
    return ", ".join('"' + n.replace('"', '""') + '"' for n in names)


class ForkStore(StoreBase):
    async def fork_project(self, source_id: int, owner: str, name: str, created_by: int) -> int:
        """A new project `owner/name` with the settings and chroots of project `source_id`."""
        async with self.atomic() as conn:
            columns = await self._copied(conn, "projects", PROJECT_NOT_COPIED)
            try:
                project_id = await conn.fetchval(
                    self.q.fork_project.format(columns=columns), source_id, owner, name, created_by
                )
            except asyncpg.UniqueViolationError:
                raise Conflict(f"project {owner}/{name} already exists") from None
            columns = await self._copied(conn, "project_chroots", CHROOT_NOT_COPIED)
            await conn.execute(
                self.q.fork_project_chroots.format(columns=columns), source_id, project_id
            )
        return int(project_id)

    async def _copied(
        self, conn: asyncpg.Connection, table: str, not_copied: frozenset[str]
    ) -> str:
        rows = await conn.fetch(self.q.copied_columns, table)
        return _quoted([r["column_name"] for r in rows if r["column_name"] not in not_copied])

    async def pending_fork_copies(self) -> list[PendingCopy]:
        """Every copied task still `forked`, in build order."""
        return [
            PendingCopy(
                build_id=r["build_id"],
                chroot=r["chroot"],
                package=r["package_name"] or "unknown",
                source=dict(r["source"]),
                project_id=r["project_id"],
                owner=r["owner"],
                project=r["project"],
            )
            for r in await self.db.fetch(self.q.pending_fork_copies)
        ]

    async def fork_copy_pending(self, build_id: int, chroot: str) -> bool:
        """Whether the task is still waiting for its copy (not deleted meanwhile)."""
        return await self.db.fetchval(self.q.fork_copy_pending, build_id, chroot) is not None

    async def finish_fork_copy(
        self, build_id: int, chroot: str, source_build: int, result_dir: str
    ) -> bool:
        """The results are in place: the task succeeds with the source task's packages.

        False, and nothing recorded, when the task is no longer waiting (its
        build or project was deleted meanwhile).
        """
        async with self.atomic() as conn:
            done = await conn.fetchval(self.q.finish_fork_copy, build_id, chroot, result_dir)
            if done is None:
                return False
            await conn.execute(self.q.copy_built_packages, build_id, chroot, source_build)
            await conn.execute(self.q.copy_buildroot_packages, build_id, chroot, source_build)
            await conn.execute(self.q.lock_fork_build, build_id)
            await conn.execute(self.q.end_fork_build_if_done, build_id)
        return True

    async def fail_fork_copy(self, build_id: int, chroot: str, reason: str) -> bool:
        """The results could not be copied: the task fails, holding nothing."""
        async with self.atomic() as conn:
            done = await conn.fetchval(self.q.fail_fork_copy, build_id, chroot, reason)
            if done is None:
                return False
            await conn.execute(self.q.lock_fork_build, build_id)
            await conn.execute(self.q.end_fork_build_if_done, build_id)
        return True
