"""Where published results live on disk, and the URLs they are served at.

Pure: nothing here touches the filesystem. The layout mirrors Copr's, so
clients that build URLs themselves still find things::

    <results_dir>/<owner>/<project>/pubkey.gpg
    <results_dir>/<owner>/<project>/<chroot>/repodata/
    <results_dir>/<owner>/<project>/<chroot>/<build_id:08d>-<package>/

and the same below `<public_url>/results/`. Group owners keep their literal
`@` (`@sig`) in both paths and URLs, as upstream does.

Every name is validated before it becomes a path component, so no input can
make a path escape `results_dir`: names are made of a small character set,
cannot start with a dot (the publisher's own temporary directories are
hidden dot-directories) and cannot contain `..`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from kopers.errors import BadRequest

# Long enough for any real owner/project/package, short enough that a build
# directory name stays far below the 255-byte file name limit.
MAX_NAME_LENGTH = 128

_OWNER = re.compile(r"@?[A-Za-z0-9_][A-Za-z0-9_.-]*")
_PROJECT = re.compile(r"[A-Za-z0-9_+][A-Za-z0-9_.+-]*")
_PACKAGE = re.compile(r"[A-Za-z0-9_+][A-Za-z0-9_.+-]*")
# distro-version-arch, the same shape kopers.config accepts for chroots.
_CHROOT = re.compile(r"[a-z0-9][a-z0-9.+_]*-[a-z0-9.+_]+-[a-z0-9_]+")


def _check(kind: str, value: str, pattern: re.Pattern[str]) -> str:
    if (
        not isinstance(value, str)
        or len(value) > MAX_NAME_LENGTH
        or ".." in value
        or not pattern.fullmatch(value)
    ):
        raise BadRequest(f"invalid {kind} name: {value!r}")
    return value


def validate_owner(owner: str) -> str:
    """A user name, or a group as `@name`."""
    return _check("owner", owner, _OWNER)


def validate_project(project: str) -> str:
    return _check("project", project, _PROJECT)


def validate_chroot(chroot: str) -> str:
    return _check("chroot", chroot, _CHROOT)


def validate_package(package: str) -> str:
    return _check("package", package, _PACKAGE)


def validate_build_id(build_id: int) -> int:
    # bool is an int subclass; True must not become build 00000001.
    if isinstance(build_id, bool) or not isinstance(build_id, int) or build_id <= 0:
        raise BadRequest(f"invalid build id: {build_id!r}")
    return build_id


def build_dir_name(build_id: int, package: str) -> str:
    """`00001234-hello`: Copr's name for one build's results in one chroot."""
    return f"{validate_build_id(build_id):08d}-{validate_package(package)}"


_BUILD_DIR = re.compile(r"(\d{8,})-(.+)")


def parse_build_dir_name(name: str) -> tuple[int, str] | None:
    """`00001234-hello` -> (1234, "hello"); None for any other name.

    The inverse of `build_dir_name`: only names it could have made parse.
    """
    match = _BUILD_DIR.fullmatch(name)
    if match is None:
        return None
    build_id, package = int(match.group(1)), match.group(2)
    try:
        if build_dir_name(build_id, package) != name:
            return None  # e.g. 000000001-x: a zero too many
    except BadRequest:
        return None
    return build_id, package


@dataclass(frozen=True, slots=True)
class Layout:
    """Maps (owner, project, chroot, build) to directories and public URLs.

    `public_url` is the server's base URL; a trailing slash is dropped. The
    results directory is served at `<public_url>/results/`.
    """

    results_dir: Path
    public_url: str

    def __post_init__(self) -> None:
        # Normalise once so every URL below can simply join with "/".
        object.__setattr__(self, "public_url", self.public_url.rstrip("/"))
        object.__setattr__(self, "results_dir", Path(self.results_dir))

    @property
    def results_url(self) -> str:
        return f"{self.public_url}/results"

    # -- paths --------------------------------------------------------------

    def project_dir(self, owner: str, project: str) -> Path:
        return self.results_dir / validate_owner(owner) / validate_project(project)

    def pubkey_path(self, owner: str, project: str) -> Path:
        return self.project_dir(owner, project) / "pubkey.gpg"

    def chroot_dir(self, owner: str, project: str, chroot: str) -> Path:
        return self.project_dir(owner, project) / validate_chroot(chroot)

    def build_dir(self, owner: str, project: str, chroot: str, build_id: int, package: str) -> Path:
        return self.chroot_dir(owner, project, chroot) / build_dir_name(build_id, package)

    # -- URLs ---------------------------------------------------------------

    def repo_url(self, owner: str, project: str) -> str:
        """The project's repository root, without a trailing slash (Copr's `repo_url`)."""
        return f"{self.results_url}/{validate_owner(owner)}/{validate_project(project)}"

    def chroot_repo_url(self, owner: str, project: str, chroot: str) -> str:
        """One chroot's yum repository (`baseurl`), with a trailing slash."""
        return f"{self.repo_url(owner, project)}/{validate_chroot(chroot)}/"

    def result_url(self, owner: str, project: str, chroot: str, build_id: int, package: str) -> str:
        """One build's result directory in one chroot, with a trailing slash."""
        return f"{self.chroot_repo_url(owner, project, chroot)}{build_dir_name(build_id, package)}/"

    def pubkey_url(self, owner: str, project: str) -> str:
        return f"{self.repo_url(owner, project)}/pubkey.gpg"
