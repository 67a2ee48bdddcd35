"""Automatic rebuilds: when a package changes, rebuild what depends on it.

A project with `rebuild_dependents` on reacts to every task of a build that
succeeded and was published: the packages of the project whose newest build
BuildRequires something the new RPMs provide (read from the chroot's
repository index, kopers.publish.capabilities) are rebuilt as one chain in
dependency order (kopers.rebuildplan), each step waiting for the steps it
depends on, so it installs their new results, as any chain does.

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
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from kopers.builds import remove_sources
from kopers.config import Config
from kopers.db.chains import ChainSpec
from kopers.db.rebuilds import PackageBuild, RebuildRecord
from kopers.db.store import NewBuild, Store
from kopers.errors import BadRequest, NotFound
from kopers.models import Build, BuildState, Project, SourceType, User
from kopers.paths import DataPaths
from kopers.publish import capabilities
from kopers.publish.layout import Layout
from kopers.rebuildplan import Latest, Plan, Step, plan
from kopers.rpmfile import read_srpm

log = logging.getLogger(__name__)

MAX_SETTLE_FACTOR = 10  # a burst is planned at the latest this many settle windows after it began

# Kopers.submit: records the builds with their audit events, then schedules them.
SubmitFn = Callable[
    [User, str | None, Callable[[], Awaitable[list[Build]]]], Awaitable[list[Build]]
]
AuditFn = Callable[[str, str, dict[str, object]], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Change:
    """A task that succeeded and was published: its package changed on that chroot."""

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
        """The hook after a task succeeded: note the change if the project wants rebuilds."""
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
        newest = {b.package: b for b in await self.store.latest_package_builds(project.id)}
        changed: dict[str, set[str]] = defaultdict(set)
        triggers: list[Build] = []
        for change in changes:
            build = await self.store.get_build(change.build_id)
            current = newest.get(build.package_name or "")
            if current is None or current.build_id != build.id:
                continue  # a newer build of the package came meanwhile; it counts instead
            changed[change.chroot].add(current.package)
            triggers.append(build)
        if not triggers:
            return []
        result = plan(changed, await self._latest_per_chroot(project, newest))
        trigger = triggers[-1]
        if result.empty:
            log.info("%s: nothing depends on %s", project.full_name, _names(triggers))
            return []
        queued = await self.store.queued_rebuilds(project.id)
        limit = self.config.rebuild.max_queued_per_project
        if queued + len(result.steps) > limit:
            reason = (
                f"{len(result.steps)} rebuilds after {_names(triggers)} would take the project "
                f"past {limit} queued automatic builds ({queued} are queued)"
            )
            log.warning("%s: %s", project.full_name, reason)
            if self.audit is not None:
                await self.audit("rebuild.refused", project.full_name, {"reason": reason})
            return []
        for edge in result.broken:
            log.info(
                "%s: dependency cycle broken: %s does not wait for %s",
                project.full_name,
                *edge[::-1],
            )
        user = await self._submitter(trigger)
        assert self.submit is not None, "Rebuilds.submit is wired by the service"
        return await self.submit(
            user, None, lambda: self._create_chain(project, user, trigger, result, newest)
        )

    async def _latest_per_chroot(
        self, project: Project, newest: dict[str, PackageBuild]
    ) -> dict[str, list[Latest]]:
        out: dict[str, list[Latest]] = {}
        for chroot in project.chroots:
            present = {
                self.layout.build_dir(
                    project.owner, project.name, chroot, b.build_id, b.package
                ).name: b
                for b in newest.values()
                if chroot in b.chroots
            }
            chroot_dir = self.layout.chroot_dir(project.owner, project.name, chroot)
            caps = await asyncio.to_thread(capabilities.read, chroot_dir, list(present))
            out[chroot] = [
                Latest(b.package, b.build_id, caps[name].provides, caps[name].build_requires)
                for name, b in present.items()
                if name in caps
            ]
        return out

    async def _submitter(self, trigger: Build) -> User:
        """Rebuilds are submitted in the name of whoever submitted the change."""
        return await self.store.get_user(trigger.submitter)

    async def _create_chain(
        self,
        project: Project,
        user: User,
        trigger: Build,
        result: Plan,
        newest: dict[str, PackageBuild],
    ) -> list[Build]:
        """The chain's build rows and their reasons (inside Kopers.submit's transaction)."""
        ids: dict[str, int] = {}
        builds: list[Build] = []
        for step in result.steps:
            source = newest[step.package]
            chroots = tuple(c for c in step.chroots if c in project.chroots)
            srpm = self.paths.source_dir(source.build_id) / str(source.srpm_name)
            if not chroots or source.srpm_name is None or not srpm.is_file():
                log.warning(
                    "%s: %s is not rebuilt: the source of build %d is not stored",
                    project.full_name,
                    step.package,
                    source.build_id,
                )
                continue
            depends = tuple(ids[name] for name in step.after if name in ids)
            build = await self._create_step(project, user, source, srpm, chroots, depends)
            await self.store.add_rebuild(
                RebuildRecord(
                    build_id=build.id,
                    trigger_build_id=trigger.id,
                    trigger_package=str(trigger.package_name),
                    source_build_id=source.build_id,
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
        srpm: Path,
        chroots: tuple[str, ...],
        depends: tuple[int, ...],
    ) -> Build:
        old = await self.store.get_build(source.build_id)
        try:
            info = await read_srpm(srpm)
        except BadRequest as exc:
            raise BadRequest(f"the source of build {source.build_id}: {exc.message}") from exc
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
