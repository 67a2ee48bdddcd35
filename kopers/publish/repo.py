"""Repodata of one chroot directory, kept up to date incrementally.

`RepoUpdater.update(chroot_dir)` indexes every RPM in the chroot's build
directories (SRPMs included, as Copr does) into `<chroot_dir>/repodata/`.
Which RPMs belong to the repository: every `*.rpm` directly inside a visible
(not dot-named) subdirectory other than `repodata/`. The publisher stages
builds in hidden directories, so packages still being signed are never
indexed.

Incremental. Per-package metadata lives in a persisted index
(`repoindex`, `.kopers-index/` in the chroot directory); only new RPMs are
parsed, and the metadata files are written from pre-compressed blocks
(`repodata`). `update(..., rebuild=True)` discards the index first and
re-reads every RPM: the recovery path.

Nothing half-written is ever visible. The new files are written into a
work directory inside the hidden index directory (same filesystem, so
renames are atomic), then swapped in the way yum repositories are meant to
be updated:
1. the new metadata files, whose names carry their checksums, are renamed
   into `repodata/` beside the old ones (nothing refers to them yet);
2. `repomd.xml.asc`, already signed in the work directory, and then
   `repomd.xml` are renamed over the old ones, back to back: the second
   rename is the moment the new repodata goes live;
3. files named by neither the new nor the previous `repomd.xml` are deleted,
   so a client that fetched the previous `repomd.xml` can still finish.

The signature window. With `repo_gpgcheck=1` a client fetches `repomd.xml`
and then `repomd.xml.asc`; a swap between its two requests hands it a pair
that does not match, and dnf fails that refresh ("Bad GPG signature").
Signing before the swap shrinks the server's part to two adjacent renames
(microseconds; a crash exactly between them leaves a mismatched pair until
the next update of the chroot). The client's part, the time between its
two requests, cannot be closed with two static files and one signature:
any order of the renames serves some client a mismatch. An `.asc` holding
signatures of both the old and the new `repomd.xml` would close it if
clients accepted any good signature, but they do not: tested with Debian
dnf 4.14 (librepo/gpgme), only the first signature counts, and librepo's
rpm-sequoia backend (Fedora) rejects a signature file with more than one
packet. So each `.asc` holds exactly one signature. Closing the rest needs
the HTTP server to hand out the pair consistently, e.g. serve `repomd.xml`
and `repomd.xml.asc` of one generation per connection.

Calls for one directory are serialised and coalesced: while a run is going,
any number of further requests cause exactly one more run, which covers all
of them (their `changed` build names are merged).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
import xml.etree.ElementTree as ET
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from kopers.errors import InfrastructureError
from kopers.publish import repoindex
from kopers.publish.repodata import Compression, CrashFn, Written, write_generation

# Signs a file, writing `<file>.asc` beside it (Signer.sign_detached, bound).
SignFn = Callable[[Path], Awaitable[Path]]

REPODATA = "repodata"
INDEX_DIR = repoindex.INDEX_DIR
REMOVED_MARKER = repoindex.REMOVED_MARKER
_WORK_PREFIX = "work-"
_REPO_NS = "{http://linux.duke.edu/metadata/repo}"


def _no_crash(point: str) -> None:
    pass


@dataclass(eq=False)
class _DirState:
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    requested: int = 0  # ticket of the newest request
    completed: int = 0  # newest ticket covered by a finished run
    users: int = 0
    sign: SignFn | None = None
    changed: set[str] = field(default_factory=set)  # build dirs to re-read
    scan: bool = False  # some request did not say what changed
    rebuild: bool = False


class RepoUpdater:
    """Owns the per-directory locks and coalescing state of repodata runs.

    `compression` is `gz` (every yum and dnf reads it) or `zstd`.
    `_crash_point` is for crash tests only: it is called with the name of
    each step (`parse`, `index`, `indexed`, `write`, `swap`) and may kill
    the process there.
    """

    def __init__(self, *, compression: str = "gz", _crash_point: CrashFn | None = None) -> None:
        self._compression = Compression(compression)
        self._crash = _crash_point or _no_crash
        self._dirs: dict[Path, _DirState] = {}

    async def update(
        self,
        chroot_dir: Path,
        *,
        sign: SignFn | None = None,
        changed: Iterable[str] | None = None,
        rebuild: bool = False,
    ) -> None:
        """Bring `<chroot_dir>/repodata` up to date with the RPMs on disk now.

        When this returns, a run that started after the call has finished,
        so every package that was in place before the call is indexed.
        `changed` names the build directories that changed (added, replaced,
        marked removed or gone); only those are looked at. Without it, every
        build directory is compared with the index (a scan, no re-parsing).
        `rebuild` discards the index and re-reads every RPM. With `sign`,
        `repomd.xml` gets a detached `repomd.xml.asc`.
        """
        key = Path(os.path.abspath(chroot_dir))
        state = self._dirs.setdefault(key, _DirState())
        state.requested += 1
        ticket = state.requested
        state.users += 1
        if changed is None:
            state.scan = True
        else:
            state.changed.update(changed)
        state.rebuild = state.rebuild or rebuild
        if sign is not None:
            state.sign = sign
        try:
            async with state.lock:
                if state.completed >= ticket:
                    return  # a run that began after our request covered it
                covers = state.requested
                names, state.changed = state.changed, set()
                scan, state.scan = state.scan, False
                rebuild, state.rebuild = state.rebuild, False
                try:
                    await self._run(key, state.sign, names, scan or rebuild, rebuild)
                except BaseException:
                    # Not done: the next run must still do what these asked.
                    state.changed |= names
                    state.scan = state.scan or scan
                    state.rebuild = state.rebuild or rebuild
                    raise
                state.completed = covers
        finally:
            state.users -= 1
            if state.users == 0:
                del self._dirs[key]  # idle: no state kept per directory

    async def _run(
        self, chroot_dir: Path, sign: SignFn | None, changed: set[str], scan: bool, rebuild: bool
    ) -> None:
        work = await asyncio.to_thread(_make_work_dir, chroot_dir)
        try:
            written = await asyncio.to_thread(
                self._prepare, chroot_dir, work, changed, scan, rebuild
            )
            if sign is not None:
                await sign(work / REPODATA / written.repomd)
            await asyncio.to_thread(
                _swap_in, work, chroot_dir / REPODATA, written, sign is not None, self._crash
            )
        finally:
            await asyncio.to_thread(shutil.rmtree, work, True)

    def _prepare(
        self, chroot_dir: Path, work: Path, changed: set[str], scan: bool, rebuild: bool
    ) -> Written:
        """Refresh the index and write a generation into `work` (in a thread)."""
        if rebuild:
            repoindex.discard(chroot_dir)
        scratch = work / "scratch"
        scratch.mkdir()
        snapshot = repoindex.refresh(
            chroot_dir, changed, self._compression, scratch, self._crash, scan=scan
        )
        out = work / REPODATA
        out.mkdir()
        return write_generation(out, snapshot, self._compression, crash=self._crash)


_default = RepoUpdater()


async def update_repodata(
    chroot_dir: Path,
    *,
    sign: SignFn | None = None,
    changed: Iterable[str] | None = None,
    rebuild: bool = False,
) -> None:
    """Update a chroot's repodata; see `RepoUpdater.update`.

    Uses one process-wide updater, so every caller shares the same locks.
    """
    await _default.update(chroot_dir, sign=sign, changed=changed, rebuild=rebuild)


def note_changed(chroot_dir: Path, names: Iterable[str]) -> None:
    """Durably ask the next update to re-read these build directories (blocking).

    For changes an update cannot see by itself, such as a build marked
    removed: noted before the change, they survive a crash before the update.
    """
    repoindex.note_changed(chroot_dir, names)


def read_repomd_locations(repomd: Path) -> set[str]:
    """File names (within repodata/) that a repomd.xml refers to; empty if absent."""
    try:
        root = ET.parse(repomd).getroot()
    except (FileNotFoundError, ET.ParseError):
        return set()
    names = set()
    for location in root.iter(f"{_REPO_NS}location"):
        href = location.get("href", "")
        if href:
            names.add(os.path.basename(href))
    return names


# -- blocking helpers, run in threads ----------------------------------------


def _make_work_dir(chroot_dir: Path) -> Path:
    # Inside the index directory: hidden, on the chroot's filesystem (so the
    # swap's renames are atomic), and small to list, unlike the chroot
    # directory with its thousands of builds.
    parent = chroot_dir / INDEX_DIR
    parent.mkdir(mode=0o755, parents=True, exist_ok=True)
    # Only one run per directory is active (the caller holds its lock), so any
    # work directory still here was left by a crash.
    with os.scandir(parent) as entries:
        for entry in entries:
            if entry.name.startswith(_WORK_PREFIX):
                shutil.rmtree(entry.path, ignore_errors=True)
    return Path(tempfile.mkdtemp(prefix=_WORK_PREFIX, dir=parent))


def _swap_in(work: Path, live: Path, written: Written, signed: bool, crash: CrashFn) -> None:
    new = work / REPODATA
    live.mkdir(mode=0o755, exist_ok=True)
    previous = read_repomd_locations(live / "repomd.xml")
    missing = [name for name in written.files if not (new / name).is_file()]
    if missing:
        raise InfrastructureError(f"repodata output lacks {', '.join(sorted(missing))}")
    for name in written.files:
        os.replace(new / name, live / name)
    _fsync_dir(live)  # the files' names are durable before anything names them
    crash("swap")
    asc = work / REPODATA / (written.repomd + ".asc")
    if signed:
        os.replace(asc, live / "repomd.xml.asc")
    os.replace(new / written.repomd, live / "repomd.xml")  # the switch-over
    if not signed:
        # A signature of an older repomd.xml would be wrong, not just stale.
        (live / "repomd.xml.asc").unlink(missing_ok=True)
    keep = set(written.files) | previous | {"repomd.xml", "repomd.xml.asc"}
    for entry in live.iterdir():
        if entry.name not in keep and entry.is_file():
            entry.unlink(missing_ok=True)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
