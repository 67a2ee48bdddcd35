"""Domain objects: frozen dataclasses and StrEnum states, in Copr's vocabulary.

Nothing here does I/O. The store turns rows into these objects and the API
turns these objects into Copr-shaped JSON.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime


class BuildState(enum.StrEnum):
    """Build and build-chroot states, exactly as Copr's API spells them."""

    PENDING = "pending"
    STARTING = "starting"
    RUNNING = "running"
    IMPORTING = "importing"
    WAITING = "waiting"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELED = "canceled"
    SKIPPED = "skipped"
    FORKED = "forked"
    UNKNOWN = "unknown"

    @property
    def finished(self) -> bool:
        return self in FINISHED_STATES


FINISHED_STATES = frozenset(
    {
        BuildState.SUCCEEDED,
        BuildState.FAILED,
        BuildState.CANCELED,
        BuildState.SKIPPED,
        BuildState.FORKED,
    }
)

# Upstream's precedence when a build's state is derived from its chroots.
_CHROOT_PRECEDENCE = (
    BuildState.RUNNING,
    BuildState.STARTING,
    BuildState.PENDING,
    BuildState.FAILED,
    BuildState.SUCCEEDED,
    BuildState.SKIPPED,
    BuildState.FORKED,
)


def derive_build_state(
    canceled: bool,
    source_state: BuildState,
    chroot_states: Iterable[BuildState],
) -> BuildState:
    """Compute a build's overall state from its source and chroot states, as Copr does."""
    if canceled:
        return BuildState.CANCELED
    if source_state in (
        BuildState.PENDING,
        BuildState.STARTING,
        BuildState.RUNNING,
        BuildState.IMPORTING,
        BuildState.FAILED,
    ):
        return source_state
    states = set(chroot_states)
    if not states:
        return BuildState.WAITING
    for state in _CHROOT_PRECEDENCE:
        if state in states:
            return state
    return BuildState.PENDING


class SourceType(enum.StrEnum):
    """Where a build's source package comes from."""

    UPLOAD = "upload"
    URL = "link"
    SCM = "scm"
    SPEC = "spec_upload"  # an uploaded .spec: the SRPM is made in a VM
    CUSTOM = "custom"  # a script run in a VM leaves a spec and sources
    PYPI = "pypi"  # a spec generated from a Python package index (pyp2spec)
    RPM_UPLOAD = "rpm_upload"  # a built binary RPM, published without building

    @property
    def in_vm(self) -> bool:
        """Whether the source step makes the SRPM in a builder VM (and takes a slot)."""
        return self in (SourceType.SCM, SourceType.SPEC, SourceType.CUSTOM, SourceType.PYPI)


@dataclass(frozen=True, slots=True)
class User:
    id: int
    name: str
    is_admin: bool


@dataclass(frozen=True, slots=True)
class ProjectOptions:
    """A project's Copr options beyond its text, repositories and chroots.

    What `copr-cli create`/`modify` set and a fork copies. Options Kopers can
    hold only at their default (multilib, appstream, mock's bootstrap and
    isolation, pulp storage) are not here: other values are refused.
    """

    persistent: bool = False  # only a server admin may delete the project
    unlisted_on_hp: bool = False  # left off the home page
    auto_prune: bool = True  # False: retention removes nothing
    module_hotfixes: bool = False  # .repo: module_hotfixes=1
    repo_priority: int | None = None  # .repo: priority=N
    runtime_dependencies: tuple[str, ...] = ()  # http(s) URLs, copr://owner/project
    follow_fedora_branching: bool = True
    packit_forge_projects_allowed: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Project:
    id: int
    owner: str
    name: str
    description: str
    instructions: str
    homepage: str | None
    contact: str | None
    chroots: tuple[str, ...]
    additional_repos: tuple[str, ...]
    enable_net: bool
    created_by: int
    created_on: datetime
    retention: int | None = None  # the keep_builds setting: newest N builds per package, chroot
    quota_mib: int | None = None
    delete_after: datetime | None = None  # temporary projects
    build_timeout: int | None = None  # seconds; None: the server's default
    options: ProjectOptions = ProjectOptions()
    webhook_secret: str = ""  # for the owner and admins only: never in a public answer
    rebuild_dependents: bool = False  # rebuild what depends on a package once it changed

    @property
    def full_name(self) -> str:
        return f"{self.owner}/{self.name}"

    @property
    def keep_builds(self) -> int | None:
        """The retention in force: None (keep every build) without one, or with auto_prune off."""
        return self.retention if self.options.auto_prune else None


class StepSource(enum.StrEnum):
    """Who timed a step: Kopers on the host, or the builder's own output (untrusted)."""

    KOPERS = "kopers"
    BUILDER = "builder"


@dataclass(frozen=True, slots=True)
class TaskStep:
    """One timed step of a task's run (VM claim, upload, rpmbuild, signing, ...).

    `offset` is when the step began, in seconds after the run began (about the
    task's started_on). A BUILDER step is timed on the host between lines the
    builder printed, so it is only as true as the build's output.
    """

    name: str
    seconds: float
    source: StepSource = StepSource.KOPERS
    offset: float = 0.0


@dataclass(frozen=True, slots=True)
class BuildTask:
    """One chroot's part of a build: the unit the scheduler runs in one VM."""

    build_id: int
    chroot: str
    state: BuildState
    started_on: datetime | None = None
    ended_on: datetime | None = None
    result_dir: str | None = None
    reason: str | None = None
    attempts: int = 0
    steps: tuple[TaskStep, ...] = ()


@dataclass(frozen=True, slots=True)
class Build:
    id: int
    project_id: int
    owner: str
    project: str
    submitter: str
    source_type: SourceType
    source: dict[str, object]
    package_name: str | None
    package_version: str | None
    srpm_name: str | None
    source_state: BuildState
    canceled: bool
    timeout: int
    submitted_on: datetime
    started_on: datetime | None
    ended_on: datetime | None
    tasks: tuple[BuildTask, ...] = field(default=())
    priority: int = 0  # lower runs first; background builds run after the others
    is_background: bool = False

    @property
    def state(self) -> BuildState:
        return derive_build_state(self.canceled, self.source_state, (t.state for t in self.tasks))

    @property
    def chroots(self) -> tuple[str, ...]:
        return tuple(t.chroot for t in self.tasks)


@dataclass(frozen=True, slots=True)
class Nevra:
    """A built package's identity, as Copr's built-packages endpoint reports it."""

    name: str
    epoch: int
    version: str
    release: str
    arch: str

    @property
    def filename(self) -> str:
        return f"{self.name}-{self.version}-{self.release}.{self.arch}.rpm"


# Packages ---------------------------------------------------------------------


class PackageSourceType(enum.StrEnum):
    """Where a package's builds come from, in Copr's words; UNSET after a reset."""

    UNSET = "unset"
    SCM = "scm"
    PYPI = "pypi"
    RUBYGEMS = "rubygems"
    CUSTOM = "custom"
    DISTGIT = "distgit"
    UPLOAD = "upload"
    LINK = "link"


class ScmType(enum.StrEnum):
    GIT = "git"
    SVN = "svn"


class SrpmBuildMethod(enum.StrEnum):
    """How Copr makes the SRPM of an SCM package (its `source_build_method`)."""

    RPKG = "rpkg"
    TITO = "tito"
    TITO_TEST = "tito_test"
    MAKE_SRPM = "make_srpm"


class SpecGenerator(enum.StrEnum):
    PYP2RPM = "pyp2rpm"
    PYP2SPEC = "pyp2spec"


@dataclass(frozen=True, slots=True)
class ScmPackageSource:
    clone_url: str
    committish: str = ""
    subdirectory: str = ""
    spec: str = ""
    scm_type: ScmType = ScmType.GIT
    source_build_method: SrpmBuildMethod = SrpmBuildMethod.RPKG


@dataclass(frozen=True, slots=True)
class PypiPackageSource:
    pypi_package_name: str
    pypi_package_version: str | None = None
    spec_generator: SpecGenerator = SpecGenerator.PYP2SPEC
    spec_template: str = ""
    python_versions: tuple[str, ...] = ("3",)


@dataclass(frozen=True, slots=True)
class RubyGemsPackageSource:
    gem_name: str


@dataclass(frozen=True, slots=True)
class CustomPackageSource:
    """A script that makes the sources in a chroot (Copr's "custom" method)."""

    script: str
    chroot: str | None = None
    builddeps: tuple[str, ...] = ()
    resultdir: str | None = None
    repos: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class DistGitPackageSource:
    distgit: str | None = None  # the DistGit instance, e.g. "fedora"
    namespace: str | None = None
    committish: str | None = None


@dataclass(frozen=True, slots=True)
class UploadPackageSource:
    """The package came from an uploaded SRPM: there is nothing to build again from."""

    pkg: str | None = None


@dataclass(frozen=True, slots=True)
class LinkPackageSource:
    url: str


PackageSource = (
    ScmPackageSource
    | PypiPackageSource
    | RubyGemsPackageSource
    | CustomPackageSource
    | DistGitPackageSource
    | UploadPackageSource
    | LinkPackageSource
)


@dataclass(frozen=True, slots=True)
class Package:
    """A project's package: its name, how to build it, and what to keep of its builds."""

    id: int
    project_id: int
    owner: str
    project: str
    name: str
    source_type: PackageSourceType
    source: PackageSource | None  # None exactly when source_type is UNSET
    webhook_rebuild: bool = False
    max_builds: int | None = None  # keep the newest N builds; None: all
    timeout: int | None = None  # seconds for its builds; None: the project's default
    chroot_denylist: tuple[str, ...] = ()  # fnmatch patterns its builds leave out
