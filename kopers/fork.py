"""Forking a project: its settings, packages and newest builds, into a project of the caller.

`Forks.fork()` is the request's part, all in the caller's transaction
(with the audit event): the new project's rows (its settings and chroots
copied, see kopers/db/forks.py), its signing key, its packages, and one
build per source build to copy (kopers/forkplan.py) whose tasks are
`forked`. Forking into an existing project needs `confirm`; it then gets
the packages it lacks and the builds it has no copy of yet, and keeps its
own settings, as in upstream Copr.

The copier (`run()`, a supervised loop; `copy_pending()` is one pass) does
the file work after the commit: for each `forked` task it copies the
source build's results in that chroot, re-signs every RPM with the fork's
key, publishes them with repodata, and only then marks the task
`succeeded`, with the source task's packages. The results are copied, not
hard-linked: rpmsign re-signs a file in place, and a link would re-sign
the source's RPM too. A process that stops halfway leaves tasks `forked`,
which claim no results (no result URL, no built packages, not finished for
copr-cli's watcher), and the next pass publishes them again from the start.
A copy that cannot be made (the source build was deleted meanwhile)
fails with the reason; forking again with `confirm` tries it again.

A copied build keeps the original's source, package, version, timeout and
priority; its submitter is the user who forked (who put it in this
project), and its times are those of the copy.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from kopers import access
from kopers.db.forks import PendingCopy
from kopers.db.store import NewBuild, Store
from kopers.errors import BadRequest, KopersError, NotFound
from kopers.forkplan import copied_pairs, forked_from, plan_copies, with_origin
from kopers.models import Build, BuildState, Project, User
from kopers.paths import DataPaths
from kopers.publish import repo
from kopers.publish.layout import validate_owner, validate_project
from kopers.publish.publisher import Publisher

log = logging.getLogger(__name__)

# The copier looks for work this often even when nobody wakes it.
RECHECK_S = 300.0
_PROJECT_NAME = re.compile(r"[A-Za-z0-9_.+-]+")


@dataclass(frozen=True, slots=True)
class ForkRequest:
    """Where to fork to: `owner/name`; `confirm` allows an existing project."""

    owner: str
    name: str
    confirm: bool = False

    def __post_init__(self) -> None:
        try:
            validate_owner(self.owner)
        except BadRequest:
            raise BadRequest("ownername is not a user name or an @group name") from None
        try:
            if not _PROJECT_NAME.fullmatch(self.name):
                raise BadRequest(self.name)
            validate_project(self.name)
        except BadRequest:
            raise BadRequest(
                "name is not a valid project name: use up to 128 letters, digits and _.+-,"
                " not starting with . or -"
            ) from None


@dataclass(frozen=True, slots=True)
class Forked:
    """What a fork request did: the project, and the builds made in it to copy."""

    project: Project
    source: Project
    created: bool
    builds: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class Copied:
    """How one task's copy ended."""

    build_id: int
    chroot: str
    state: BuildState


class Forks:
    def __init__(self, store: Store, publisher: Publisher, paths: DataPaths) -> None:
        self.store = store
        self.publisher = publisher
        self.paths = paths
        self._wake = asyncio.Event()
        self._pass = asyncio.Lock()  # one copier pass at a time

    async def fork(
        self, user: User, source_owner: str, source_name: str, request: ForkRequest
    ) -> Forked:
        """Fork `source_owner/source_name` as `request` says, in the caller's transaction."""
        source = await self.store.get_project(source_owner, source_name)
        target = access.Target(request.owner)
        await access.authorize(self.store, user, access.Action.CREATE_PROJECT, target)
        async with self.store.atomic():
            project = await self._existing(request.owner, request.name)
            created = project is None
            if project is not None:
                if project.id == source.id:
                    raise BadRequest("the source and the destination are the same project")
                if not request.confirm:
                    raise BadRequest(
                        f"project {project.full_name} exists already; fork into it with"
                        " confirm (copr-cli fork --confirm) to bring it up to date"
                    )
                await access.authorize(
                    self.store, user, access.Action.BUILD, access.Target.of(project)
                )
            else:
                project = await self._new_project(user, source, request)
            await self.store.copy_packages(source.id, project.id)
            builds = await self._copy_builds(user, source, project)
            await self.store.after_commit(self._poke)
        return Forked(project, source, created, tuple(b.id for b in builds))

    async def _existing(self, owner: str, name: str) -> Project | None:
        try:
            return await self.store.get_project(owner, name)
        except NotFound:
            return None

    async def _new_project(self, user: User, source: Project, request: ForkRequest) -> Project:
        project_id = await self.store.fork_project(source.id, request.owner, request.name, user.id)
        project = await self.store.project_by_id(project_id)
        # As at creation: a key made for rows that roll back goes with them.
        self.store.on_rollback(lambda: self.publisher.remove_project(project.owner, project.name))
        await self.publisher.init_project(project.owner, project.name, project.chroots)
        return project

    async def _copy_builds(self, user: User, source: Project, project: Project) -> list[Build]:
        originals = {b.id: b for b in await self.store.list_builds(source.id, None, None, 0)}
        mine = await self.store.list_builds(project.id, None, None, 0)
        plan = plan_copies(originals.values(), project.chroots, copied_pairs(mine))
        made = []
        for copy in plan:
            original = originals[copy.source_build]
            made.append(
                await self.store.create_build(
                    NewBuild(
                        project_id=project.id,
                        submitter_id=user.id,
                        source_type=original.source_type,
                        source=with_origin(original.source, original.id, source.full_name),
                        package_name=original.package_name,
                        package_version=original.package_version,
                        srpm_name=original.srpm_name,
                        source_state=BuildState.FORKED,
                        timeout=original.timeout,
                        chroots=copy.chroots,
                        task_state=BuildState.FORKED,
                        priority=original.priority,
                        is_background=original.is_background,
                    )
                )
            )
        return made

    # -- the copier ----------------------------------------------------------

    async def _poke(self) -> None:
        self._wake.set()

    async def run(self) -> None:
        """The loop: copy whatever is pending, then wait for the next fork."""
        while True:
            self._wake.clear()
            await self.copy_pending()
            with contextlib.suppress(TimeoutError):  # see EventBus.run
                async with asyncio.timeout(RECHECK_S):
                    await self._wake.wait()

    async def copy_pending(self) -> list[Copied]:
        """One pass: copy the results of every `forked` task (also those a stop interrupted)."""
        async with self._pass:
            done = [await self._copy(task) for task in await self.store.pending_fork_copies()]
            return [c for c in done if c is not None]

    async def _copy(self, task: PendingCopy) -> Copied | None:
        """Copy one task's results; None if its build was deleted meanwhile."""
        origin = forked_from(task.source)
        try:
            if not await self.store.fork_copy_pending(task.build_id, task.chroot):
                return None
            if origin is None:
                raise _Gone("it does not name the build it was copied from")
            result_dir = await self._publish(task, origin)
        except asyncio.CancelledError:
            raise  # stopping is not failing: the next start copies it again
        except Exception as exc:
            reason = exc.message if isinstance(exc, KopersError) else type(exc).__name__
            if not isinstance(exc, _Gone):
                log.exception("copying task %d/%s failed", task.build_id, task.chroot)
            await self.store.fail_fork_copy(
                task.build_id, task.chroot, f"the results could not be copied: {reason}"
            )
            return Copied(task.build_id, task.chroot, BuildState.FAILED)
        assert origin is not None
        if await self.store.finish_fork_copy(task.build_id, task.chroot, origin, str(result_dir)):
            return Copied(task.build_id, task.chroot, BuildState.SUCCEEDED)
        await self._withdraw(task)
        return None

    async def _publish(self, task: PendingCopy, origin: int) -> Path:
        """Copy, re-sign and publish the origin's results in the task's chroot."""
        try:
            original = await self.store.get_build(origin)
        except NotFound:
            raise _Gone(f"build {origin} was deleted") from None
        done = [t for t in original.tasks if t.chroot == task.chroot]
        if not done or done[0].state != BuildState.SUCCEEDED or not original.package_name:
            raise _Gone(f"build {origin} has no results in {task.chroot}")
        results = self.publisher.layout.build_dir(
            original.owner, original.project, task.chroot, origin, original.package_name
        )
        files = await asyncio.to_thread(_result_files, results)
        if not files:
            raise _Gone(f"the results of build {origin} in {task.chroot} are gone")
        build_dir = await self.publisher.publish(
            task.owner, task.project, task.chroot, task.build_id, task.package, files
        )
        # Its stored source too, so the copy can be built again (resubmit).
        await asyncio.to_thread(
            _copy_tree, self.paths.source_dir(origin), self.paths.source_dir(task.build_id)
        )
        project = await self.store.project_by_id(task.project_id)
        if project.keep_builds is not None:
            await self.publisher.prune(task.owner, task.project, task.chroot, project.keep_builds)
        return build_dir

    async def _withdraw(self, task: PendingCopy) -> None:
        """The copy's build (or project) was deleted while it was published: its files go."""
        await asyncio.to_thread(shutil.rmtree, self.paths.source_dir(task.build_id), True)
        try:
            await self.store.get_project(task.owner, task.project)
        except NotFound:
            # Publishing made the project's key and tree again; they go with it.
            await self.publisher.remove_project(task.owner, task.project)
            return
        await self.publisher.remove_build(
            task.owner, task.project, task.build_id, task.chroot, task.package
        )


class _Gone(KopersError):
    """The results to copy are not there (any more)."""


def _result_files(build_dir: Path) -> list[Path]:
    """The regular files of a published build directory; none if it is gone or removed."""
    try:
        entries = list(os.scandir(build_dir))
    except (FileNotFoundError, NotADirectoryError):
        return []
    if any(e.name == repo.REMOVED_MARKER for e in entries):
        return []  # on its way out of the repository
    return sorted(
        Path(e.path)
        for e in entries
        if not e.name.startswith(".") and e.is_file(follow_symlinks=False)
    )


def _copy_tree(source: Path, target: Path) -> None:
    if source.is_dir():
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(source, target, symlinks=True)
