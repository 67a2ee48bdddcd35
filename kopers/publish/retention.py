"""Which builds a retention policy removes from a chroot. Pure.

The policy is Copr-like: keep the newest `keep` builds of each package name,
newest meaning the highest build id in the `<build_id:08d>-<package>`
directory name. One exception keeps a repository from losing a package to
a run of failures: if none of the kept builds of a package has RPMs (they
all failed, so they hold logs only), the newest build that does have RPMs
is kept as well.

Directories whose names are not build directory names are never touched.

A project whose auto_prune is off has no retention in force
(`Project.keep_builds` is None whatever its setting), so nothing prunes it.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from kopers.errors import BadRequest
from kopers.publish.layout import parse_build_dir_name


@dataclass(frozen=True, slots=True)
class BuildDir:
    """One build directory of a chroot, as retention sees it."""

    name: str
    has_packages: bool


def plan_prune(builds: Iterable[BuildDir], keep: int) -> list[str]:
    """Names of the build directories to remove, oldest first."""
    if isinstance(keep, bool) or not isinstance(keep, int) or keep < 1:
        raise BadRequest(f"keep must be a positive number of builds, not {keep!r}")
    by_package: dict[str, list[tuple[int, BuildDir]]] = defaultdict(list)
    for build in builds:
        parsed = parse_build_dir_name(build.name)
        if parsed is not None:
            build_id, package = parsed
            by_package[package].append((build_id, build))
    doomed: list[tuple[int, str]] = []
    for entries in by_package.values():
        entries.sort(key=lambda entry: entry[0], reverse=True)
        kept, rest = entries[:keep], entries[keep:]
        if not any(build.has_packages for _, build in kept):
            # Keep the newest build that still ships the package.
            rest = [entry for i, entry in enumerate(rest) if i != _first_with_packages(rest)]
        doomed.extend((build_id, build.name) for build_id, build in rest)
    return [name for _, name in sorted(doomed)]


def _first_with_packages(entries: list[tuple[int, BuildDir]]) -> int:
    for i, (_, build) in enumerate(entries):
        if build.has_packages:
            return i
    return -1
