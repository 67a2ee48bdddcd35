"""Packages: define, edit, reset, delete and build them; keep only their newest builds.

A package is a project's named package and the source its builds come from
(Copr's package). Managing packages is for those who may edit the project;
building one is for those who may build in it, as in Copr. The request's
values arrive parsed (kopers.api.package_bodies); what is checked here is
what needs the project and the server: rights, chroots, what can be built.

`submission_for` is the one place that knows which source types this
server can build from a stored definition; the others are refused with
NotSupported (501), saying so.

`max_builds` (Copr's per-package garbage collector) acts when a build of the
package has succeeded: `prune_plan` (pure) picks its builds beyond the newest
N that have ended, and they are deleted like any deleted build, repositories
updated.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

from kopers import access
from kopers.builds import Builds
from kopers.config import Config
from kopers.db.packages import PackageSettings
from kopers.db.store import Store
from kopers.errors import BadRequest, NotSupported
from kopers.models import (
    Build,
    BuildState,
    BuildTask,
    CustomPackageSource,
    LinkPackageSource,
    Package,
    PackageSource,
    Project,
    PypiPackageSource,
    ScmPackageSource,
    ScmType,
    User,
)
from kopers.sourcekinds import CustomSource, PypiSource, scm_method
from kopers.submission import BuildRequest, ScmSource, Submissions
from kopers.worker.scm import RefPin

log = logging.getLogger(__name__)

# Kopers itself, as the one who deletes the builds max_builds lets go.
KOPERS_ITSELF = User(id=0, name="kopers", is_admin=True)


@dataclass(frozen=True, slots=True)
class PackageChanges:
    """An add's or edit's values; None: not given (the default, or unchanged)."""

    source: PackageSource | None
    webhook_rebuild: bool | None = None
    max_builds: int | None = None  # 0: keep every build
    timeout: int | None = None  # 0: the project's
    chroot_denylist: tuple[str, ...] | None = None


def apply_changes(old: PackageSettings, changes: PackageChanges) -> PackageSettings:
    """The settings after an add (from the defaults) or an edit. Pure."""

    def pick(new: int | None, current: int | None) -> int | None:
        if new is None:
            return current
        return new or None  # 0 clears

    return PackageSettings(
        source=changes.source if changes.source is not None else old.source,
        webhook_rebuild=old.webhook_rebuild
        if changes.webhook_rebuild is None
        else changes.webhook_rebuild,
        max_builds=pick(changes.max_builds, old.max_builds),
        timeout=pick(changes.timeout, old.timeout),
        chroot_denylist=old.chroot_denylist
        if changes.chroot_denylist is None
        else changes.chroot_denylist,
    )


def prune_plan(builds: Iterable[tuple[int, bool]], max_builds: int | None) -> list[int]:
    """Which builds (id, ended) of a package max_builds deletes. Pure.

    The newest `max_builds` by id stay, whatever their state; of the older
    ones, those that have ended go. One still running stays until a later
    prune: it cannot be deleted while it runs.
    """
    if max_builds is None or max_builds <= 0:
        return []
    ordered = sorted(builds, key=lambda b: b[0], reverse=True)
    return sorted(build_id for build_id, ended in ordered[max_builds:] if ended)


def latest(builds: Sequence[Build]) -> Build | None:
    """The newest build (builds are newest first)."""
    return builds[0] if builds else None


def latest_succeeded(builds: Sequence[Build]) -> Build | None:
    return next((b for b in builds if b.state == BuildState.SUCCEEDED), None)


@dataclass(frozen=True, slots=True)
class MonitorRow:
    """One package's line of the monitor: chroot -> its newest build there."""

    package: str
    chroots: Mapping[str, tuple[Build, BuildTask]]


def monitor_rows(
    packages: Sequence[Package], builds: Mapping[int, Sequence[Build]]
) -> list[MonitorRow]:
    """The package x chroot matrix of newest builds, as Copr's monitor shows it. Pure."""
    rows = []
    for package in packages:
        chroots: dict[str, tuple[Build, BuildTask]] = {}
        for build in builds.get(package.id, ()):  # newest first
            for task in build.tasks:
                chroots.setdefault(task.chroot, (build, task))
        rows.append(MonitorRow(package.name, dict(sorted(chroots.items()))))
    return rows


class Packages:
    def __init__(
        self, config: Config, store: Store, builds: Builds, submissions: Submissions
    ) -> None:
        self.config = config
        self.store = store
        self.builds = builds
        self.submissions = submissions

    async def project_to_manage(self, user: User, owner: str, name: str) -> Project:
        """The project, if `user` may add, edit, reset and delete its packages."""
        project = await self.store.get_project(owner, name)
        await access.authorize(
            self.store, user, access.Action.EDIT_PROJECT, access.Target.of(project)
        )
        return project

    async def add(self, project: Project, name: str, changes: PackageChanges) -> Package:
        settings = apply_changes(PackageSettings(None), changes)
        self._check(settings)
        return await self.store.create_package(project.id, name, settings)

    async def edit(self, package: Package, changes: PackageChanges) -> Package:
        settings = apply_changes(PackageSettings.of(package), changes)
        self._check(settings)
        return await self.store.update_package(package.id, settings)

    async def reset(self, package: Package) -> Package:
        """Forget the package's source definition (Copr: source type "unset")."""
        settings = dataclasses.replace(PackageSettings.of(package), source=None)
        return await self.store.update_package(package.id, settings)

    async def delete(self, user: User, package: Package) -> list[int]:
        """Delete the package and its builds (results and repositories too); their ids.

        The builds go the way any deleted build goes (kopers.builds), so one
        that is still running refuses the whole delete: cancel it first.
        """
        ids = [b.id for b in await self.store.package_builds(package.id)]
        deleted = await self.builds.delete(user, ids) if ids else []
        await self.store.delete_package(package.id)
        return deleted

    def _check(self, settings: PackageSettings) -> None:
        source = settings.source
        if isinstance(source, CustomPackageSource) and source.chroot is not None:
            chroot = self.config.chroot(source.chroot)
            if chroot is None or not chroot.enabled:
                raise BadRequest(f"chroot {source.chroot} is not a chroot of this server")

    async def submission_for(
        self,
        user: User,
        project: Project,
        package: Package,
        request: BuildRequest,
        *,
        committish: str | None = None,
        on: RefPin | None = None,
    ) -> Callable[[], Awaitable[Build]]:
        """What `Kopers.submit` runs to build the package from its stored definition.

        The one dispatch on the source type: a kind this server cannot build
        from is refused here, before anything is written. `committish` builds
        a git package at that commit instead of its stored one (a webhook's
        pushed commit); `on` is the branch or tag that commit must be on when
        it is cloned (the pushed ref).
        """
        await access.authorize(self.store, user, access.Action.BUILD, access.Target.of(project))
        request = self._package_request(package, request)
        owner, name = project.owner, project.name
        match package.source:
            case None:
                raise BadRequest(f"Unset default source for package {package.name}")
            case ScmPackageSource() as scm:
                if scm.scm_type is not ScmType.GIT:
                    raise NotSupported(
                        f"package {package.name} is from {scm.scm_type}: this Kopers server "
                        "builds from git repositories only"
                    )
                method = scm_method(str(scm.source_build_method))
                at = scm.committish if committish is None else committish
                source = ScmSource(scm.clone_url, at, scm.subdirectory, scm.spec, method, on)

                async def make() -> Build:
                    return await self.submissions.from_scm(user, owner, name, request, source)

            case PypiPackageSource() as pypi:
                if pypi.spec_template:
                    raise BadRequest("spec_template is not supported: pyp2spec has no templates")
                spec = PypiSource(
                    pypi.pypi_package_name,
                    pypi.pypi_package_version or "",
                    str(pypi.spec_generator),
                    tuple(_python_version(v) for v in pypi.python_versions) or (3,),
                )

                async def make() -> Build:
                    return await self.submissions.from_pypi(user, owner, name, request, spec)

            case CustomPackageSource() as custom:
                script = CustomSource(
                    custom.script,
                    custom.chroot,
                    custom.builddeps,
                    custom.resultdir or "",
                    custom.repos,
                )

                async def make() -> Build:
                    return await self.submissions.from_custom(user, owner, name, request, script)

            case LinkPackageSource() as link:

                async def make() -> Build:
                    builds = await self.submissions.from_urls(
                        user, owner, name, request, [link.url]
                    )
                    return builds[0]

            case _:
                raise NotSupported(
                    f"building a {package.source_type} package is not supported by this "
                    f"Kopers server yet; build {package.name} with another source instead"
                )

        async def submission() -> Build:
            build = await make()
            await self.store.attach_build(build.id, package.id)
            return build

        return submission

    @staticmethod
    def _package_request(package: Package, request: BuildRequest) -> BuildRequest:
        """The package's own timeout and chroot deny-list under the request's options."""
        return dataclasses.replace(
            request,
            timeout=request.timeout if request.timeout is not None else package.timeout,
            exclude_chroots=tuple(dict.fromkeys(request.exclude_chroots + package.chroot_denylist)),
        )

    async def prune_after(self, build_id: int, chroot: str | None = None) -> list[int]:
        """max_builds: after a build succeeded, delete its package's builds beyond the newest N.

        `chroot` (the task that succeeded) makes it a pipeline success hook; pruning
        looks at whole builds.
        """
        package_id = await self.store.package_of_build(build_id)
        if package_id is None:
            return []
        package = await self.store.package_by_id(package_id)
        if package.max_builds is None:
            return []
        builds = await self.store.package_builds(package.id)
        doomed = prune_plan(((b.id, b.state.finished) for b in builds), package.max_builds)
        if not doomed:
            return []
        async with self.store.atomic():
            deleted = await self.builds.delete(KOPERS_ITSELF, doomed)
            await self.store.add_event(
                None,
                None,
                "build.prune",
                f"{package.owner}/{package.project}",
                {"package": package.name, "max_builds": package.max_builds, "builds": deleted},
            )
        log.info("package %s: max_builds deleted builds %s", package.name, deleted)
        return deleted


def _python_version(value: str) -> int:
    """A stored python_versions entry ("3") as the pyp2spec source takes it; 400 if odd."""
    if value.isdigit() and len(value) == 1:
        return int(value)
    raise BadRequest(f"python_versions: {value[:10]!r} is not a Python major version")
