"""Automatic rebuilds: when a package changes, rebuild what depends on it.

A project with `rebuild_dependents` on reacts to every task of a build whose
results were published (at once, not once its VM is gone): the packages of
the project whose newest build BuildRequires something the new RPMs provide
(read from the chroot's repository index, kopers.publish.capabilities) are
rebuilt as one chain in dependency order (kopers.rebuildplan), each step
waiting for the steps it depends on, so it installs their new results, as
any chain does.

- A burst of changes coalesces: the planner loop waits `rebuild.settle_ms`
  after a change for more (at most ten times that in all), then plans once
  per project for everything that changed.
- A rebuild never starts rebuilds itself: a chain's own successes are not
  changes. A change whose build is no longer its package's newest is dropped.
- Storms are capped: a project holds at most `rebuild.max_queued_per_project`
  automatic builds that have not ended; a chain that would pass it is not
  submitted, and the audit log says so. Fair share between owners is the
  scheduler's, as for any build.
- Each rebuild builds the source package its package's newest build was
  built from, with the forced %dist followed by `.<generation>`, so the
  result is newer than what it replaces. `rebuilds` records why.

Changes wait in memory: a change whose settle window a crash cuts short
starts no rebuild (submitting the same build again does).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import shutil
from collections import defaultdict
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kopers import access
from kopers.builds import remove_sources
from kopers.config import Config
from kopers.db.chains import ChainSpec
from kopers.db.rebuilds import PackageBuild, RebuildRecord
from kopers.db.store import NewBuild, Store
from kopers.errors import KopersError, NotFound
from kopers.models import Build, BuildState, Project, SourceType, User
from kopers.paths import DataPaths
from kopers.publish import capabilities
from kopers.publish.layout import Layout
from kopers.rebuildplan import Latest, Plan, PlanTooLarge, Step, plan
from kopers.rpmfile import read_srpm

log = logging.getLogger(__name__)

MAX_SETTLE_FACTOR = 10  # a burst is planned at the latest this many settle windows after it began

# Kopers.submit: records the builds with their audit events, then schedules them.
SubmitFn = Callable[
    [
        User,
        str | None,
        Callable[[], Awaitable[list[Build]]],
        Callable[[], Mapping[str, Any]] | None,
    ],
    Awaitable[list[Build]],
]
AuditFn = Callable[[str, str, dict[str, object]], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Change:
    """A task whose results were published: its package changed on that chroot."""

    project_id: int
    build_id: int
    chroot: str


class Rebuilds:
    def __init__(self, config: Config, paths: DataPaths, store: Store, layout: Layout) -> None:
        self.config = config
        self.paths = paths
        self.store = store
        self.layout = layout
        self.changes: asyncio.Queue[Change] = asyncio.Queue()
        # Set by the composition root once the service that records submissions exists.
        self.submit: SubmitFn | None = None
        self.audit: AuditFn | None = None

    async def changed(self, build_id: int, chroot: str) -> None:
        """The hook after a task's results were published: note the change, if the project wants."""
        build = await self.store.get_build(build_id)
        if build.package_name is None:
            return
        project = await self.store.project_by_id(build.project_id)
        if not project.rebuild_dependents:
            return
        if await self.store.get_rebuild(build_id) is not None:
            return  # a rebuild's success is no change: chains never feed themselves
        self.changes.put_nowait(Change(project.id, build_id, chroot))

    async def run(self) -> None:
        """The planner loop: collect a burst of changes, then plan per project."""
        while True:
            burst = await self._burst()
            by_project: dict[int, list[Change]] = defaultdict(list)
            for change in burst:
                by_project[change.project_id].append(change)
            for project_id, changes in sorted(by_project.items()):
                try:
                    await self.plan_and_submit(project_id, changes)
                except Exception:
                    log.exception("automatic rebuilds of project %d failed", project_id)

    async def _burst(self) -> list[Change]:
        burst = [await self.changes.get()]
        loop = asyncio.get_running_loop()
        settle = self.config.rebuild.settle_ms / 1000
        end = loop.time() + settle * MAX_SETTLE_FACTOR
        while True:
            wait = min(settle, end - loop.time())
            try:
                if wait <= 0:
                    burst.append(self.changes.get_nowait())
                else:
                    burst.append(await asyncio.wait_for(self.changes.get(), wait))
            except (TimeoutError, asyncio.QueueEmpty):
                return burst

    async def plan_and_submit(self, project_id: int, changes: list[Change]) -> list[Build]:
        """Plan the rebuilds that `changes` call for and submit them as one chain."""
        try:
            project = await self.store.project_by_id(project_id)
        except NotFound:
            return []
        if not project.rebuild_dependents:
            return []
        newest = {
            (b.package, b.chroot): b for b in await self.store.latest_package_builds(project.id)
        }
        changed: dict[str, set[str]] = defaultdict(set)
        triggers: list[Build] = []
        for change in sorted(changes, key=lambda c: c.build_id):
            try:
                build = await self.store.get_build(change.build_id)
            except NotFound:
                continue  # deleted while it settled
            if build.package_name is None:
                continue
            # Published, though its task has not ended yet: the store does not count
            # it. A change is never a rebuild: its source is its own.
            mine = PackageBuild(
                build.id, build.package_name, build.srpm_name, change.chroot, build.id, 0
            )
            current = newest.get((mine.package, mine.chroot))
            if current is not None and current.recency > mine.recency:
                continue  # a newer source of the package came meanwhile; it counts instead
            newest[(mine.package, mine.chroot)] = mine
            changed[change.chroot].add(mine.package)
            triggers.append(build)
        if not triggers:
            return []
        latest = await self._latest_per_chroot(project, newest)
        try:
            # CPU work on what builds provide: off the event loop.
            result = await asyncio.to_thread(plan, changed, latest)
        except PlanTooLarge as exc:
            return await self._refuse(project, f"after {_names(triggers)}: {exc}")
        if result.empty:
            log.info("%s: nothing depends on %s", project.full_name, _names(triggers))
            return []
        queued = await self.store.queued_rebuilds(project.id)
        limit = self.config.rebuild.max_queued_per_project
        if queued + len(result.steps) > limit:
            return await self._refuse(
                project,
                f"{len(result.steps)} rebuilds after {_names(triggers)} would take the project "
                f"past {limit} queued automatic builds ({queued} are queued)",
            )
        trigger = triggers[-1]
        user = await self._submitter(project, trigger)
        if user is None:
            return await self._refuse(
                project,
                f"{trigger.submitter}, who submitted build {trigger.id}, may not build "
                f"in {project.full_name} any more",
            )
        for needed, needing in result.broken:
            log.info(
                "%s: dependency cycle broken: %s does not wait for %s",
                project.full_name,
                needing,
                needed,
            )
        by_build = {b.build_id: b for b in newest.values()}
        assert self.submit is not None, "Rebuilds.submit is wired by the service"
        return await self.submit(
            user,
            None,
            lambda: self._create_chain(project, user, trigger, result, by_build),
            # The audit log tells an automatic build from one its user asked for.
            lambda: {"via": "rebuild", "trigger": trigger.id},
        )

    async def _refuse(self, project: Project, reason: str) -> list[Build]:
        log.warning("%s: no automatic rebuilds: %s", project.full_name, reason)
        if self.audit is not None:
            await self.audit("rebuild.refused", project.full_name, {"reason": reason})
        return []

    async def _latest_per_chroot(
        self, project: Project, newest: dict[tuple[str, str], PackageBuild]
    ) -> dict[str, list[Latest]]:
        out: dict[str, list[Latest]] = {}
        for chroot in project.chroots:
            present = {
                self.layout.build_dir(
                    project.owner, project.name, chroot, b.build_id, b.package
                ).name: b
                for (_, where), b in newest.items()
                if where == chroot
            }
            chroot_dir = self.layout.chroot_dir(project.owner, project.name, chroot)
            caps = await asyncio.to_thread(capabilities.read, chroot_dir, list(present))
            out[chroot] = [
                Latest(
                    b.package,
                    b.build_id,
                    caps[name].provides,
                    caps[name].build_requires,
                    b.recency,
                )
                for name, b in present.items()
                if name in caps
            ]
        return out

    async def _submitter(self, project: Project, trigger: Build) -> User | None:
        """Whoever submitted the change, if they may still build in the project."""
        try:
            user = await self.store.get_user(trigger.submitter)
            await access.authorize(self.store, user, access.Action.BUILD, access.Target.of(project))
        except KopersError:
            return None
        return user

    async def _create_chain(
        self,
        project: Project,
        user: User,
        trigger: Build,
        result: Plan,
        by_build: dict[int, PackageBuild],
    ) -> list[Build]:
        """The chain's build rows and their reasons (inside Kopers.submit's transaction)."""
        ids: dict[str, int] = {}
        builds: list[Build] = []
        for step in result.steps:
            source = by_build[step.source_build]
            chroots = tuple(c for c in step.chroots if c in project.chroots)
            depends = tuple(ids[name] for name in step.after if name in ids)
            build = await self._create_step(project, user, source, chroots, depends)
            if build is None:
                continue
            await self.store.add_rebuild(
                RebuildRecord(
                    build_id=build.id,
                    trigger_build_id=trigger.id,
                    trigger_package=str(trigger.package_name),
                    source_build_id=source.build_id,
                    origin_build_id=source.origin,
                    generation=source.generation + 1,
                    chain=(),
                    because=tuple(_because(step)),
                    broken=result.broken,
                )
            )
            ids[step.package] = build.id
            builds.append(build)
        await self.store.set_rebuild_chain(tuple(b.id for b in builds))
        return builds

    async def _create_step(
        self,
        project: Project,
        user: User,
        source: PackageBuild,
        chroots: tuple[str, ...],
        depends: tuple[int, ...],
    ) -> Build | None:
        """One rebuild; None (and a log line) when its source is gone: the rest go on."""
        srpm = self.paths.source_dir(source.build_id) / str(source.srpm_name)
        try:
            if not chroots or source.srpm_name is None:
                raise FileNotFoundError(srpm.name)
            old = await self.store.get_build(source.build_id)
            info = await read_srpm(srpm)
        except (OSError, KopersError) as exc:
            log.warning(
                "%s: %s is not rebuilt: the source of build %d is not usable (%s)",
                project.full_name,
                source.package,
                source.build_id,
                exc,
            )
            return None
        spool = self.paths.incoming / f"rebuild-{source.build_id}-{secrets.token_hex(4)}"
        spool.mkdir(parents=True)
        copy = spool / info.nevra.filename
        await asyncio.to_thread(shutil.copyfile, srpm, copy)
        self.store.on_rollback(lambda: _remove(spool))

        async def keep_source(build_id: int) -> None:
            dest = self.paths.source_dir(build_id)
            dest.mkdir(parents=True, exist_ok=True)
            shutil.move(copy, dest / info.nevra.filename)
            shutil.rmtree(spool, ignore_errors=True)
            # A later step of the chain may fail: the whole chain goes, sources too.
            self.store.on_rollback(lambda: remove_sources(self.paths, [build_id]))

        return await self.store.create_build(
            NewBuild(
                project_id=project.id,
                submitter_id=user.id,
                source_type=SourceType.UPLOAD,
                source={"filename": info.nevra.filename, "rebuild_of": source.build_id},
                package_name=info.nevra.name,
                package_version=f"{info.nevra.version}-{info.nevra.release}",
                srpm_name=info.nevra.filename,
                source_state=BuildState.SUCCEEDED,
                timeout=old.timeout,
                chroots=chroots,
                task_state=BuildState.PENDING,
                chain=ChainSpec(depends_on=depends),
                is_background=old.is_background,
            ),
            on_created=keep_source,
        )


def _because(step: Step) -> list[dict[str, object]]:
    return [
        {"package": b.package, "chroot": b.chroot, "provides": list(b.provides)}
        for b in step.because
    ]


def _names(builds: list[Build]) -> str:
    return ", ".join(f"{b.package_name} (build {b.id})" for b in builds)


async def _remove(path: Path) -> None:
    with contextlib.suppress(OSError):
        await asyncio.to_thread(shutil.rmtree, path)
