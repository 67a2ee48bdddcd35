"""Accepting a build: check the request, store the source, write the rows.

Everything that can be wrong with a submission is found before a row is
written, and the rows and the stored source package commit together, so a
rejected or failed submission leaves nothing behind. The request's values
arrive parsed (`BuildRequest`, `ScmSource`, `ChainStep`, made by
kopers.api.bodies); what is checked here is what needs the project: its
chroots, the submitter's rights, the batch, the quota.

A project's storage quota covers its results and its builds' stored source
packages (`usage`). A submission is refused when the project is at its quota,
or when the uploaded source package would take it over.
"""

from __future__ import annotations

import fnmatch
import secrets
import shutil
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kopers import access
from kopers.buildrequest import BuildOptions, BuildRequest
from kopers.config import Config
from kopers.db.chains import ChainSpec
from kopers.db.store import NewBuild, Store
from kopers.errors import BadRequest, Forbidden, NotFound
from kopers.forkplan import FORKED_FROM
from kopers.models import Build, BuildState, Project, SourceType, User
from kopers.paths import DataPaths
from kopers.publish.publisher import Publisher
from kopers.publish.usage import SourceSizes, StorageUsage
from kopers.rpmfile import read_srpm
from kopers.submitsources import SourceSubmissions
from kopers.worker.scm import SOURCE_REF, RefPin

MAX_TIMEOUT = 48 * 3600
# Source states after which nothing writes to a build's source directory. Not
# canceled: a canceled source step may still be stopping.
_SOURCE_ENDED = frozenset({BuildState.SUCCEEDED, BuildState.FAILED})


@dataclass(frozen=True, slots=True)
class ScmSource:
    """A git repository to make the SRPM from (checked by kopers.worker.scm's rules)."""

    clone_url: str
    committish: str = ""
    subdirectory: str = ""
    spec: str = ""
    method: str = "rpkg"  # source_build_method (kopers.sourcekinds.SCM_METHODS)
    # The branch or tag the committish must be on (a forge's push); None: any commit.
    on: RefPin | None = None

    def as_source(self) -> dict[str, Any]:
        source = {
            "clone_url": self.clone_url,
            "committish": self.committish,
            "subdirectory": self.subdirectory,
            "spec": self.spec,
            "source_build_method": self.method,
        }
        if self.on is not None:
            source[SOURCE_REF] = self.on.full
        return source


def parse_options(request: BuildRequest, project: Project, default_timeout: int) -> BuildOptions:
    """A build request -> BuildOptions, validated against the project. Pure."""
    chroots = select_chroots(project, request.chroots, request.exclude_chroots)
    timeout = default_timeout if request.timeout is None else request.timeout
    if not 0 < timeout <= MAX_TIMEOUT:
        raise BadRequest(f"timeout must be between 1 and {MAX_TIMEOUT} seconds")
    after, with_ = request.after_build_id, request.with_build_id
    if after is not None and with_ is not None:
        raise BadRequest("--after-build-id and --with-build-id cannot be used together")
    return BuildOptions(
        chroots=chroots,
        timeout=timeout,
        background=request.background,
        chain=ChainSpec(after_build_id=after, with_build_id=with_),
    )


def select_chroots(
    project: Project, wanted: Sequence[str] | None, excluded: Sequence[str] | None
) -> tuple[str, ...]:
    """`chroots` (names or fnmatch patterns; None = all) minus `exclude_chroots`."""
    enabled = list(project.chroots)
    if wanted is None:
        chosen = enabled
    else:
        chosen = []
        for pattern in wanted:
            matched = [c for c in enabled if fnmatch.fnmatchcase(c, pattern)]
            if not matched:
                raise BadRequest(
                    f"Chroot {pattern} is not enabled in project {project.full_name}; "
                    f"enabled chroots: {', '.join(enabled) or 'none'}"
                )
            chosen.extend(c for c in matched if c not in chosen)
    if excluded:
        chosen = [c for c in chosen if not any(fnmatch.fnmatchcase(c, p) for p in excluded)]
    if not chosen:
        raise BadRequest(f"no chroot of {project.full_name} is left to build for")
    return tuple(chosen)


class Submissions(SourceSubmissions):
    def __init__(
        self, config: Config, paths: DataPaths, store: Store, publisher: Publisher
    ) -> None:
        self.config = config
        self.paths = paths
        self.store = store
        self.publisher = publisher
        self.source_sizes = SourceSizes(paths.source_dir)

    async def check(
        self,
        user: User,
        owner: str,
        name: str,
        request: BuildRequest,
        *,
        incoming_bytes: int = 0,
    ) -> Project:
        """Copr's check-before-build: project exists, user may build, options are valid.

        The project must also have room for `incoming_bytes` (an uploaded source).
        """
        project = await self.store.get_project(owner, name)
        await access.authorize(self.store, user, access.Action.BUILD, access.Target.of(project))
        options = self._options(request, project)
        await self._check_batch(user, project, options.chain)
        await self._check_quota(project, incoming_bytes)
        return project

    async def usage(self, project: Project) -> StorageUsage:
        """The bytes a project stores: its results tree and its builds' sources."""
        results = await self.publisher.usage(project.owner, project.name)
        builds = await self.store.sources_of_project(project.id)
        sources = await self.source_sizes.total(
            project.id, [(b, state in _SOURCE_ENDED) for b, state in builds]
        )
        return StorageUsage(results, sources)

    async def _check_batch(self, user: User, project: Project, chain: ChainSpec) -> None:
        """A batch joins or follows only builds the submitter may build next to.

        Joining another project's batch would change when its builds run, and a
        failure on this side would skip them; so the other build must be in this
        project, or in one where the user may build anyway.
        """
        for other_id in (chain.after_build_id, chain.with_build_id):
            if other_id is None:
                continue
            try:
                other = await self.store.get_build(other_id)
            except NotFound:
                raise BadRequest(f"build {other_id} does not exist") from None
            if other.project_id == project.id:
                continue
            theirs = await self.store.project_by_id(other.project_id)
            try:
                await access.authorize(
                    self.store, user, access.Action.BUILD, access.Target.of(theirs)
                )
            except Forbidden:
                raise BadRequest(
                    f"build {other_id} belongs to {theirs.full_name}, where you may not build; "
                    "a batch stays inside projects you build in"
                ) from None

    def _options(self, request: BuildRequest, project: Project) -> BuildOptions:
        """Build options, the timeout defaulting to the project's, then the server's."""
        return parse_options(request, project, project.build_timeout or self.config.build.timeout_s)

    async def _check_quota(self, project: Project, incoming: int) -> None:
        """Refuse a build the project has no room for.

        A source fetched from a URL or made from git has no size yet (0): it is
        refused only when the project is already at its quota, since it adds
        bytes of its own. Its step is bounded by the server's upload limit.
        """
        if project.quota_mib is None:
            return
        limit = project.quota_mib << 20
        used = (await self.usage(project)).total
        advice = "delete builds or raise the quota before building again."
        if used >= limit:
            raise BadRequest(
                f"Project {project.full_name} is over its storage quota "
                f"({_mib(used)} MiB used of {project.quota_mib} MiB); {advice}"
            )
        if used + incoming > limit:
            raise BadRequest(
                f"This build would take project {project.full_name} over its storage quota: "
                f"its source package takes {_mib(incoming)} MiB and "
                f"{_mib(used)} MiB of {project.quota_mib} MiB are used; {advice}"
            )

    async def from_upload(
        self, user: User, owner: str, name: str, request: BuildRequest, spooled: Path
    ) -> Build:
        """A build from an uploaded SRPM (or .spec) that has been spooled to `spooled`."""
        if spooled.name.endswith(".spec"):
            return await self.from_spec(user, owner, name, request, spooled)
        try:
            size = spooled.stat().st_size
            project = await self.check(user, owner, name, request, incoming_bytes=size)
            options = self._options(request, project)
            info = await read_srpm(spooled)
            new = NewBuild(
                project_id=project.id,
                submitter_id=user.id,
                source_type=SourceType.UPLOAD,
                source={"filename": spooled.name},
                package_name=info.nevra.name,
                package_version=f"{info.nevra.version}-{info.nevra.release}",
                srpm_name=info.nevra.filename,
                source_state=BuildState.SUCCEEDED,
                timeout=options.timeout,
                chroots=options.chroots,
                task_state=BuildState.PENDING,
                chain=options.chain,
                priority=options.priority,
                is_background=options.background,
            )

            async def keep_source(build_id: int) -> None:
                dest = self.paths.source_dir(build_id)
                dest.mkdir(parents=True, exist_ok=True)
                shutil.move(spooled, dest / info.nevra.filename)

            return await self.store.create_build(new, on_created=keep_source)
        finally:
            shutil.rmtree(spooled.parent, ignore_errors=True)

    async def from_urls(
        self, user: User, owner: str, name: str, request: BuildRequest, urls: Sequence[str]
    ) -> list[Build]:
        """Builds from SRPM URLs (http or https, parsed); each is fetched by its source step."""
        project = await self.check(user, owner, name, request)
        options = self._options(request, project)
        if not urls:
            raise BadRequest("no package URL given")
        return [await self._url_build(user, project, options, url) for url in urls]

    async def from_scm(
        self, user: User, owner: str, name: str, request: BuildRequest, scm: ScmSource
    ) -> Build:
        """A build from a git repository: a source step makes the SRPM in a VM first."""
        project = await self.check(user, owner, name, request)
        options = self._options(request, project)
        return await self._deferred(user, project, options, SourceType.SCM, scm.as_source())

    async def chain(
        self,
        user: User,
        owner: str,
        name: str,
        request: BuildRequest,
        steps: Sequence[ChainStep],
    ) -> list[Build]:
        """A whole chain in one request; every step is checked before any is stored."""
        project = await self.check(user, owner, name, request)
        options = self._options(request, project)
        builds: list[Build] = []
        for step in steps:
            depends = tuple(builds[i].id for i in step.after)
            chained = BuildOptions(
                options.chroots, options.timeout, options.background, ChainSpec(depends_on=depends)
            )
            builds.append(await self._url_build(user, project, chained, step.url))
        return builds

    async def resubmit(self, user: User, build_id: int) -> Build:
        """A new build with the same source and chroots as an ended one."""
        old = await self.store.get_build(build_id)
        project = await self.store.project_by_id(old.project_id)
        await access.authorize(self.store, user, access.Action.BUILD, access.Target.of(project))
        if not old.state.finished:
            raise BadRequest(f"build {build_id} is still {old.state}; only ended builds resubmit")
        chroots = tuple(c for c in old.chroots if c in project.chroots)
        if not chroots:
            raise BadRequest(
                f"none of build {build_id}'s chroots is enabled in {project.full_name}"
            )
        options = BuildOptions(chroots, old.timeout, old.is_background)
        if old.source_type in (SourceType.RPM_UPLOAD, SourceType.SPEC):
            raise BadRequest(
                f"build {build_id} was made from an uploaded {old.source_type}: upload it again"
            )
        if old.source_type != SourceType.UPLOAD:
            # Its source is fetched or made again, and counts like a new one's.
            await self._check_quota(project, 0)
            # A copy made by a fork names its original; a new build is no copy.
            fresh = {k: v for k, v in old.source.items() if k != FORKED_FROM}
            return await self._deferred(user, project, options, old.source_type, fresh)
        source = self.paths.source_dir(old.id) / str(old.srpm_name)
        if not source.is_file():
            raise BadRequest(f"the source package of build {build_id} is no longer stored")
        spool = self.paths.incoming / f"resubmit-{old.id}-{secrets.token_hex(4)}"
        spool.mkdir(parents=True)
        copy = spool / source.name
        shutil.copyfile(source, copy)
        again = BuildRequest(chroots=chroots, timeout=old.timeout, background=old.is_background)
        return await self.from_upload(user, project.owner, project.name, again, copy)

    async def _url_build(
        self, user: User, project: Project, options: BuildOptions, url: str
    ) -> Build:
        return await self._deferred(user, project, options, SourceType.URL, {"url": url})

    async def _deferred(
        self,
        user: User,
        project: Project,
        options: BuildOptions,
        source_type: SourceType,
        source: dict[str, Any],
        *,
        on_created: Callable[[int], Awaitable[None]] | None = None,
        package: tuple[str, str, str] | None = None,
    ) -> Build:
        """A build whose SRPM a source step makes first; its chroot tasks wait for it.

        `on_created` stores an uploaded source with the rows; `package` is the
        (name, version, file name) when the upload tells them already.
        """
        name, version, filename = package or (None, None, None)
        new = NewBuild(
            project_id=project.id,
            submitter_id=user.id,
            source_type=source_type,
            source=source,
            package_name=name,
            package_version=version,
            srpm_name=filename,
            source_state=BuildState.PENDING,
            timeout=options.timeout,
            chroots=options.chroots,
            task_state=BuildState.WAITING,
            chain=options.chain,
            priority=options.priority,
            is_background=options.background,
        )
        return await self.store.create_build(new, on_created=on_created)


def _mib(size: int) -> str:
    return f"{size / 2**20:.1f}"


@dataclass(frozen=True, slots=True)
class ChainStep:
    """One build of a chain: its source URL and the steps (by index) it waits for."""

    url: str
    after: tuple[int, ...]
