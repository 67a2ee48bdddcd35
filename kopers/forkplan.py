"""Which builds a fork copies: the latest successful build of each package per chroot. Pure.

As in Copr, a fork gets, for every package of the source project and every
chroot, the newest build whose task in that chroot succeeded: one copied
build per source build, holding the chroots in which that build is the
newest success. A task still being copied into the source (itself a fork,
`forked`) has no results yet and is not a success. Chroots the destination
does not build for are left out, and so are (build, chroot) pairs an
earlier fork into the same destination copied already: forking again with
`confirm` brings the destination up to date instead of duplicating builds.

A copied build names the build it was copied from in its source, under
`forked_from`, so the copier knows where its results are and a later fork
knows what was copied.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from kopers.models import Build, BuildState

FORKED_FROM = "forked_from"

# A copied task in one of these states holds (or will hold) the source's
# results; one that failed may be copied again by the next fork.
_KEPT = frozenset({BuildState.FORKED, BuildState.SUCCEEDED})


@dataclass(frozen=True, slots=True)
class BuildCopy:
    """One build to make in the fork: a copy of `source_build` in `chroots`."""

    source_build: int
    package: str
    chroots: tuple[str, ...]


def forked_from(source: Mapping[str, Any]) -> int | None:
    """The id of the build a build's `source` says it was copied from, or None."""
    origin = source.get(FORKED_FROM)
    if not isinstance(origin, Mapping):
        return None
    build_id = origin.get("build_id")
    if isinstance(build_id, bool) or not isinstance(build_id, int) or build_id <= 0:
        return None
    return build_id


def with_origin(source: Mapping[str, Any], build_id: int, project: str) -> dict[str, Any]:
    """A copied build's source: the original's, naming the build it was copied from."""
    return {**source, FORKED_FROM: {"build_id": build_id, "project": project}}


def copied_pairs(destination_builds: Iterable[Build]) -> set[tuple[int, str]]:
    """(source build, chroot) pairs the destination holds copies of, done or under way."""
    pairs = set()
    for build in destination_builds:
        origin = forked_from(build.source)
        if origin is None:
            continue
        pairs |= {(origin, t.chroot) for t in build.tasks if t.state in _KEPT}
    return pairs


def plan_copies(
    source_builds: Iterable[Build],
    chroots: Iterable[str],
    copied: Iterable[tuple[int, str]] = (),
) -> list[BuildCopy]:
    """The builds to copy into a destination that builds for `chroots`, oldest first.

    Oldest first, so the copies' ids keep the originals' order: retention
    and "latest build" read the highest id as the newest.
    """
    wanted = set(chroots)
    done = set(copied)
    newest: dict[tuple[str, str], Build] = {}
    for build in source_builds:
        if not build.package_name:
            continue  # its source never produced a package: nothing was published
        for task in build.tasks:
            if task.chroot not in wanted or task.state != BuildState.SUCCEEDED:
                continue
            key = (build.package_name, task.chroot)
            if key not in newest or build.id > newest[key].id:
                newest[key] = build
    by_build: dict[int, list[str]] = {}
    packages: dict[int, str] = {}
    for (package, chroot), build in newest.items():
        if (build.id, chroot) in done:
            continue
        by_build.setdefault(build.id, []).append(chroot)
        packages[build.id] = package
    return [
        BuildCopy(build_id, packages[build_id], tuple(sorted(by_build[build_id])))
        for build_id in sorted(by_build)
    ]
