"""Repodata of one chroot directory, regenerated with createrepo_c.

`update_repodata(chroot_dir)` indexes every RPM in the chroot's build
directories (SRPMs included, as Copr does) into `<chroot_dir>/repodata/`.

Nothing half-written is ever visible. createrepo_c's own swap is not enough:
it renames `repodata/` away and then `.repodata/` into place, so for a moment
there is no repodata at all, and a client that has just read the old
`repomd.xml` finds the files it names gone. Instead, createrepo_c writes into
a hidden work directory inside the chroot directory (same filesystem, so
renames are atomic), and the result is swapped in the way yum repositories
are meant to be updated:
1. the new metadata files, whose names carry their checksums, are renamed
   into `repodata/` beside the old ones (nothing refers to them yet);
2. the optional `repomd.xml.asc` and then `repomd.xml` are renamed over the
   old ones: this single rename is the moment the new repodata goes live;
3. files named by neither the new nor the previous `repomd.xml` are deleted,
   so a client that fetched the previous `repomd.xml` can still finish.

Which RPMs belong to the repository is decided here, not by createrepo_c's
directory walk: every `*.rpm` directly inside a visible (not dot-named)
subdirectory other than `repodata/`. The publisher stages builds in hidden
directories, so packages that are still being signed are never indexed.

Calls for one directory are serialised and coalesced: while a run is going,
any number of further requests cause exactly one more run, which covers all
of them. The whole repository is re-read on each run for now; the interface
stays when this becomes incremental.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
import tempfile
import xml.etree.ElementTree as ET
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

from kopers.errors import InfrastructureError
from kopers.publish import run_tool

# Signs a file, writing `<file>.asc` beside it (Signer.sign_detached, bound).
SignFn = Callable[[Path], Awaitable[Path]]

REPODATA = "repodata"
_WORK_PREFIX = ".repodata-new-"
_REPO_NS = "{http://linux.duke.edu/metadata/repo}"
_ATTEMPTS = 3


def _createrepo_binary() -> str:
    """Prefer the venv's createrepo_c, the same version as the bindings."""
    beside = Path(sys.executable).parent / "createrepo_c"
    if beside.is_file():
        return str(beside)
    return shutil.which("createrepo_c") or "createrepo_c"


@dataclass(eq=False)
class _DirState:
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    requested: int = 0  # ticket of the newest request
    completed: int = 0  # newest ticket covered by a finished run
    users: int = 0
    sign: SignFn | None = None


class RepoUpdater:
    """Owns the per-directory locks and coalescing state of repodata runs."""

    def __init__(self, createrepo: str | None = None) -> None:
        self._createrepo = createrepo  # looked up on first use, not at import
        self._dirs: dict[Path, _DirState] = {}

    async def update(self, chroot_dir: Path, *, sign: SignFn | None = None) -> None:
        """Bring `<chroot_dir>/repodata` up to date with the RPMs on disk now.

        When this returns, a run that started after the call has finished,
        so every package that was in place before the call is indexed.
        With `sign`, `repomd.xml` gets a detached `repomd.xml.asc`.
        """
        key = Path(os.path.abspath(chroot_dir))
        state = self._dirs.setdefault(key, _DirState())
        state.requested += 1
        ticket = state.requested
        state.users += 1
        if sign is not None:
            state.sign = sign
        try:
            async with state.lock:
                if state.completed >= ticket:
                    return  # a run that began after our request covered it
                covers = state.requested
                await self._regenerate(key, state.sign)
                state.completed = covers
        finally:
            state.users -= 1
            if state.users == 0:
                del self._dirs[key]  # idle: no state kept per directory

    async def _regenerate(self, chroot_dir: Path, sign: SignFn | None) -> None:
        work = await asyncio.to_thread(_make_work_dir, chroot_dir)
        try:
            for attempt in range(1, _ATTEMPTS + 1):
                packages = await asyncio.to_thread(_list_packages, chroot_dir)
                try:
                    await self._createrepo_into(work, chroot_dir, packages)
                    break
                except InfrastructureError:
                    # A build removed while createrepo_c read it; list again.
                    vanished = await asyncio.to_thread(_any_missing, chroot_dir, packages)
                    if not vanished or attempt == _ATTEMPTS:
                        raise
            new = work / REPODATA
            if sign is not None:
                await sign(new / "repomd.xml")
            await asyncio.to_thread(_swap_in, new, chroot_dir / REPODATA, sign is not None)
        finally:
            await asyncio.to_thread(shutil.rmtree, work, True)

    async def _createrepo_into(self, work: Path, chroot_dir: Path, packages: list[str]) -> None:
        await asyncio.to_thread(_write_pkglist, work, packages)
        if self._createrepo is None:
            self._createrepo = await asyncio.to_thread(_createrepo_binary)
        await run_tool(
            [
                self._createrepo,
                "--quiet",
                # gzip and no sqlite: readable by every yum/dnf, old ones too.
                "--general-compress-type=gz",
                "--no-database",
                "--pkglist", str(work / "pkglist"),
                "--outputdir", str(work),
                str(chroot_dir),
            ],
            what=f"createrepo_c for {chroot_dir}",
        )  # fmt: skip


_default = RepoUpdater()


async def update_repodata(chroot_dir: Path, *, sign: SignFn | None = None) -> None:
    """Regenerate a chroot's repodata; see `RepoUpdater.update`.

    Uses one process-wide updater, so every caller shares the same locks.
    """
    await _default.update(chroot_dir, sign=sign)


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
    chroot_dir.mkdir(mode=0o755, parents=True, exist_ok=True)
    # Only one run per directory is active (the caller holds its lock), so any
    # work directory still here was left by a crash.
    for stale in chroot_dir.glob(_WORK_PREFIX + "*"):
        shutil.rmtree(stale, ignore_errors=True)
    return Path(tempfile.mkdtemp(prefix=_WORK_PREFIX, dir=chroot_dir))


def _list_packages(chroot_dir: Path) -> list[str]:
    """RPM paths relative to `chroot_dir`, in published build directories only."""
    found = []
    with os.scandir(chroot_dir) as builds:
        for build in builds:
            if build.name.startswith(".") or build.name == REPODATA:
                continue
            if not build.is_dir(follow_symlinks=False):
                continue
            with os.scandir(build.path) as files:
                for entry in files:
                    if entry.name.endswith(".rpm") and entry.is_file(follow_symlinks=False):
                        found.append(f"{build.name}/{entry.name}")
    return sorted(found)


def _any_missing(chroot_dir: Path, packages: list[str]) -> bool:
    return any(not (chroot_dir / rel).is_file() for rel in packages)


def _write_pkglist(work: Path, packages: list[str]) -> None:
    (work / "pkglist").write_text("".join(f"{p}\n" for p in packages))


def _swap_in(new: Path, live: Path, signed: bool) -> None:
    live.mkdir(mode=0o755, exist_ok=True)
    previous = read_repomd_locations(live / "repomd.xml")
    current = read_repomd_locations(new / "repomd.xml")
    missing = [name for name in current if not (new / name).is_file()]
    if missing:
        raise InfrastructureError(f"createrepo_c output lacks {', '.join(sorted(missing))}")
    for name in current:
        os.replace(new / name, live / name)
    if signed:
        os.replace(new / "repomd.xml.asc", live / "repomd.xml.asc")
    os.replace(new / "repomd.xml", live / "repomd.xml")  # the switch-over
    if not signed:
        # A signature of an older repomd.xml would be wrong, not just stale.
        (live / "repomd.xml.asc").unlink(missing_ok=True)
    keep = current | previous | {"repomd.xml", "repomd.xml.asc"}
    for entry in live.iterdir():
        if entry.name not in keep and entry.is_file():
            entry.unlink(missing_ok=True)
