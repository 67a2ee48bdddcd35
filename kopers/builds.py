"""Canceling and deleting builds, and the source packages stored for them.

Each operation is one store transaction, which the caller may widen to take
in the audit event. Cancel marks the rows, and stops the running tasks once
that has committed: a VM that is torn down mid-build can then never publish,
and a cancel that is rolled back stops nothing. Delete takes the packages out
of the repositories as the last step before the rows' deletion commits: a
failure before that leaves the repositories alone, and one after it leaves
rows whose delete can simply be asked again. A build's stored source goes
after its row: a crash in between leaves a directory no row owns, which
`sweep_orphan_sources` removes at start-up, never a build whose source is
missing.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
from collections.abc import Iterable, Sequence
from pathlib import Path

from kopers import access
from kopers.db.store import Store
from kopers.db.transitions import TransitionRefused
from kopers.errors import BadRequest, Conflict, Forbidden
from kopers.models import Build, User
from kopers.paths import DataPaths
from kopers.publish.publisher import Publisher
from kopers.sched.scheduler import Scheduler

log = logging.getLogger(__name__)


class Builds:
    def __init__(
        self,
        store: Store,
        scheduler: Scheduler,
        publisher: Publisher,
        paths: DataPaths | None = None,
    ) -> None:
        self.store = store
        self.scheduler = scheduler
        self.publisher = publisher
        # Where the builds' sources are stored; without it a delete leaves them
        # for sweep_orphan_sources.
        self.paths = paths

    async def cancel(self, user: User, build_id: int) -> Build:
        build = await self.store.get_build(build_id)
        target = access.Target(build.owner, build.project, build.project_id)
        await access.authorize(self.store, user, access.Action.CANCEL_BUILD, target)
        if build.state.finished:
            raise Conflict(f"Cannot cancel build {build_id}: it has already ended {build.state}.")
        try:
            await self.store.cancel_build(build_id)
        except TransitionRefused:
            # It ended between the read above and the cancel: it keeps its result.
            ended = await self.store.get_build(build_id)
            raise Conflict(
                f"Cannot cancel build {build_id}: it has already ended {ended.state}."
            ) from None
        await self.store.after_commit(lambda: self.scheduler.cancel(build_id))
        return await self.store.get_build(build_id)

    async def delete(self, user: User, build_ids: Sequence[int]) -> list[int]:
        builds = [await self.store.get_build(int(i)) for i in build_ids]
        for build in builds:
            target = access.Target(build.owner, build.project, build.project_id)
            await access.authorize(self.store, user, access.Action.DELETE_BUILD, target)
            project = await self.store.get_project(build.owner, build.project)
            if project.options.persistent and not user.is_admin:
                # As in Copr: a persistent project keeps its builds as it keeps itself.
                raise Forbidden(
                    f"Build {build.id} is in the persistent project {project.full_name}: "
                    "only a server admin may delete it."
                )
            if not build.state.finished:
                raise BadRequest(f"Build {build.id} is still {build.state}; cancel it first.")
        async with self.store.atomic():
            deleted = await self.store.delete_builds([b.id for b in builds])
            await self.store.before_commit(lambda: self._unpublish(builds))
            if self.paths is not None:
                paths = self.paths
                await self.store.after_commit(lambda: remove_sources(paths, deleted))
        return deleted

    async def _unpublish(self, builds: Sequence[Build]) -> None:
        """Take the builds' packages out of their repositories."""
        for build in builds:
            if build.package_name:
                for task in build.tasks:
                    await self.publisher.remove_build(
                        build.owner, build.project, build.id, task.chroot, build.package_name
                    )


async def remove_sources(paths: DataPaths, build_ids: Iterable[int]) -> None:
    """Delete the stored source packages of builds whose rows are gone."""
    dirs = [paths.source_dir(build_id) for build_id in build_ids]
    await asyncio.to_thread(_remove_all, dirs)


def _remove_all(dirs: Iterable[Path]) -> None:
    for folder in dirs:
        shutil.rmtree(folder, ignore_errors=True)


async def sweep_orphan_sources(store: Store, paths: DataPaths) -> list[int]:
    """Delete stored sources no build row owns; return their build ids.

    Only before Kopers accepts submissions: an upload's source is moved into
    place inside the transaction that creates its row, so while one is under
    way its directory exists before its row can be seen.
    """
    found = await asyncio.to_thread(_source_dir_ids, paths)
    if not found:
        return []
    orphans = sorted(set(found) - await store.existing_builds(found))
    if orphans:
        log.info("removing the stored sources of %d deleted builds", len(orphans))
        await remove_sources(paths, orphans)
    return orphans


def _source_dir_ids(paths: DataPaths) -> list[int]:
    """The build ids that have a source directory (names Kopers did not make are left alone)."""
    try:
        names = [p.name for p in paths.sources.iterdir() if p.is_dir() and not p.is_symlink()]
    except FileNotFoundError:
        return []
    return [
        int(n) for n in names if n.isascii() and n.isdigit() and paths.source_dir(int(n)).name == n
    ]
