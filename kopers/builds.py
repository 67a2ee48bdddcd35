"""Canceling and deleting builds.

Cancel marks the rows first, then stops the running tasks: a VM that is
torn down mid-build can then never publish. Delete takes the packages out of
the repositories before the rows go, so repodata never points at nothing.
"""

from __future__ import annotations

from collections.abc import Sequence

from kopers import access
from kopers.db.store import Store
from kopers.errors import BadRequest, Conflict
from kopers.models import Build, User
from kopers.publish.publisher import Publisher
from kopers.sched.scheduler import Scheduler


class Builds:
    def __init__(self, store: Store, scheduler: Scheduler, publisher: Publisher) -> None:
        self.store = store
        self.scheduler = scheduler
        self.publisher = publisher

    async def cancel(self, user: User, build_id: int) -> Build:
        build = await self.store.get_build(build_id)
        target = access.Target(build.owner, build.project, build.project_id)
        await access.authorize(self.store, user, access.Action.CANCEL_BUILD, target)
        if build.state.finished:
            raise Conflict(f"Cannot cancel build {build_id}: it has already ended {build.state}.")
        await self.store.cancel_build(build_id)
        await self.scheduler.cancel(build_id)
        return await self.store.get_build(build_id)

    async def delete(self, user: User, build_ids: Sequence[int]) -> list[int]:
        builds = [await self.store.get_build(int(i)) for i in build_ids]
        for build in builds:
            target = access.Target(build.owner, build.project, build.project_id)
            await access.authorize(self.store, user, access.Action.DELETE_BUILD, target)
            if not build.state.finished:
                raise BadRequest(f"Build {build.id} is still {build.state}; cancel it first.")
        for build in builds:
            if build.package_name:
                for task in build.tasks:
                    await self.publisher.remove_build(
                        build.owner, build.project, build.id, task.chroot, build.package_name
                    )
        return await self.store.delete_builds([b.id for b in builds])
