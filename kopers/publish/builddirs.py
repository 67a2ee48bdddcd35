"""Build directories on disk: which ones there are, and their RPMs' metadata.

A chroot directory holds one visible subdirectory per build
(`<build_id:08d>-<package>`) besides `repodata/`; hidden (dot) names are the
publisher's staging and trash directories and the package index, and are
never builds. The packages of a build are the `*.rpm` files directly in its
directory, SRPMs included, unless the directory holds `.kopers-removed`:
the publisher's mark for a build on its way out.

Blocking (directory reads, createrepo_c): run in a thread.
"""

from __future__ import annotations

import logging
import os
import stat
from dataclasses import dataclass
from pathlib import Path

import createrepo_c as cr

from kopers.publish.repodata import CrashFn

log = logging.getLogger(__name__)

REMOVED_MARKER = ".kopers-removed"
REPODATA = "repodata"


@dataclass(frozen=True, slots=True)
class Parsed:
    """One RPM's metadata: its primary, filelists and other XML elements."""

    location: str  # `<build>/<file>.rpm`, the location_href in the repodata
    build: str
    xml: tuple[bytes, bytes, bytes]


def scan(chroot_dir: Path) -> dict[str, int]:
    """Visible build directories of the chroot and their inode numbers."""
    found = {}
    with os.scandir(chroot_dir) as entries:
        for entry in entries:
            # d_type and d_ino come with the entry: no stat per build.
            if entry.name.startswith(".") or entry.name == REPODATA:
                continue
            if entry.is_dir(follow_symlinks=False):
                found[entry.name] = entry.inode()
    return found


def inode(chroot_dir: Path, name: str) -> int | None:
    """Inode number of a visible build directory; None if there is none."""
    if not name or name.startswith(".") or name == REPODATA or "/" in name:
        return None
    try:
        info = os.lstat(chroot_dir / name)
    except (FileNotFoundError, NotADirectoryError):
        return None
    return info.st_ino if stat.S_ISDIR(info.st_mode) else None


def parse(chroot_dir: Path, name: str, crash: CrashFn) -> list[Parsed] | None:
    """Metadata of every RPM in one build directory; None if it is gone."""
    build_dir = chroot_dir / name
    try:
        with os.scandir(build_dir) as entries:
            files = sorted(
                entry.name
                for entry in entries
                if entry.name.endswith(".rpm") and entry.is_file(follow_symlinks=False)
            )
            if (build_dir / REMOVED_MARKER).exists():
                return []
    except (FileNotFoundError, NotADirectoryError):
        return None
    parsed = []
    for filename in files:
        location = f"{name}/{filename}"
        try:
            pkg = cr.package_from_rpm(str(build_dir / filename), cr.SHA256, location, None, 10)
        except OSError as exc:
            if not (build_dir / filename).exists():
                return None  # the build is being removed under us
            # As createrepo_c does: an unreadable package is left out, not fatal.
            log.warning("skipping unreadable package %s: %s", build_dir / filename, exc)
            continue
        primary, filelists, other = cr.xml_dump(pkg)
        parsed.append(
            Parsed(location, name, (primary.encode(), filelists.encode(), other.encode()))
        )
        crash("parse")
    return parsed
