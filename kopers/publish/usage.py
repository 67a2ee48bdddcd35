"""Storage accounting: bytes a project's results tree and stored sources take, cached.

Usage is the apparent size (`st_size`) of every regular file below the
project directory, hidden ones included: the package index, staging and
trash directories take real space too. Symbolic links are not followed.

Walking a chroot of thousands of builds costs tens of milliseconds, too much
per API request, so totals are cached per direct child of the project
directory (each chroot, plus the loose files such as `pubkey.gpg`). The
publisher invalidates a chroot whenever it changes it; an entry also
expires after `ttl` seconds, which covers changes made behind Kopers' back.
A cache hit costs one `scandir` of the project directory.

A project also stores the source package of each of its builds, outside the
results tree (`DataPaths.source_dir`). `SourceSizes` counts those; together
they are the project's `StorageUsage`, which its quota limits.
"""

from __future__ import annotations

import asyncio
import os
import stat
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, slots=True)
class _Entry:
    size: int
    at: float  # monotonic time of the walk's start


@dataclass(frozen=True, slots=True)
class StorageUsage:
    """What a project stores: its results tree and its builds' source packages."""

    results: int
    sources: int

    @property
    def total(self) -> int:
        return self.results + self.sources


class SourceSizes:
    """Bytes of the source packages stored for each build, cached per project.

    A build's stored source never changes once its source step has ended (an
    upload's is in place before its row commits), so it is walked once and
    kept. One still being fetched or made is walked on every count. Each count
    replaces the project's entries, so deleted builds drop out of the cache
    (a deleted project's few entries stay until restart: ids are not reused).
    """

    def __init__(self, source_dir: Callable[[int], Path]) -> None:
        self._source_dir = source_dir
        self._known: dict[int, dict[int, int]] = {}  # project id -> build id -> bytes

    async def total(self, project_id: int, builds: Iterable[tuple[int, bool]]) -> int:
        """Bytes below the source directories of `builds`: (build id, source is final)."""
        builds = list(builds)
        known = self._known.get(project_id, {})
        walk = [build_id for build_id, final in builds if not (final and build_id in known)]
        sizes = {b: known[b] for b, _ in builds if b in known}
        if walk:
            walked = await asyncio.to_thread(lambda: [tree_size(self._source_dir(b)) for b in walk])
            sizes.update(zip(walk, walked, strict=True))
        self._known[project_id] = {b: sizes[b] for b, final in builds if final}
        return sum(sizes.values())


class UsageCache:
    """Cached per-project byte counts; owned by one Publisher."""

    def __init__(self, ttl: float = 600.0) -> None:
        self._ttl = ttl
        self._entries: dict[Path, _Entry] = {}
        # Bumped by every invalidate(): a walk that raced one is not cached,
        # since it may have counted a tree half-changed.
        self._generation = 0

    async def usage(self, project_dir: Path) -> int:
        """Bytes below `project_dir`; 0 if it does not exist."""
        children = await asyncio.to_thread(_children, project_dir)
        total = 0
        for path, is_dir, size in children:
            total += await self._dir_size(path) if is_dir else size
        return total

    def invalidate(self, path: Path) -> None:
        """Forget what is cached for `path` (a chroot dir) or anything below `path`."""
        self._generation += 1
        for key in [k for k in self._entries if k == path or path in k.parents]:
            del self._entries[key]

    async def _dir_size(self, path: Path) -> int:
        now = time.monotonic()
        entry = self._entries.get(path)
        if entry is not None and now - entry.at < self._ttl:
            return entry.size
        generation = self._generation
        size = await asyncio.to_thread(tree_size, path)
        if self._generation == generation:
            self._entries[path] = _Entry(size, now)
        return size


def _children(project_dir: Path) -> list[tuple[Path, bool, int]]:
    """(path, is a real directory, size if a file) of each direct child."""
    found = []
    try:
        with os.scandir(project_dir) as entries:
            for entry in entries:
                try:
                    info = entry.stat(follow_symlinks=False)
                except FileNotFoundError:
                    continue
                if stat.S_ISDIR(info.st_mode):
                    found.append((Path(entry.path), True, 0))
                elif stat.S_ISREG(info.st_mode):
                    found.append((Path(entry.path), False, info.st_size))
    except (FileNotFoundError, NotADirectoryError):
        return []
    return found


def tree_size(root: Path) -> int:
    """Apparent size of the regular files below `root` (blocking)."""
    total = 0
    stack = [str(root)]
    while stack:
        try:
            entries = os.scandir(stack.pop())
        except (FileNotFoundError, NotADirectoryError, PermissionError):
            continue  # removed while we walked
        with entries:
            for entry in entries:
                try:
                    if entry.is_dir(follow_symlinks=False):
                        stack.append(entry.path)
                    elif entry.is_file(follow_symlinks=False):
                        total += entry.stat(follow_symlinks=False).st_size
                except FileNotFoundError:
                    continue
    return total
