"""Putting a build's results online: stage, sign, move into place, index.

`Publisher.publish()` is the one entry point the build runner uses. The order
of its steps is what keeps clients from ever seeing a half-done build:
1. copy the result files into a hidden staging directory inside the chroot
   directory (hidden names are never indexed, see `repo.py`);
2. sign every RPM there, SRPM included, with the project's key;
3. rename the staging directory to `<build_id:08d>-<package>/`: one atomic
   step on the same filesystem;
4. add the build's packages to the chroot's repodata (incrementally: only
   this build's RPMs are parsed) and sign `repomd.xml`.

Removal runs the other way round, so a package leaves the repodata before
its files leave the disk: the build directory gets a `.kopers-removed`
marker (a marked build has no packages), the repodata is updated, and only
then is the directory renamed to a hidden name and deleted. `prune()`
removes many builds of a retention policy the same way, with one repodata
update for all of them.

`regenerate()` rebuilds a chroot's repodata from the files on disk,
discarding the package index: the recovery path. `usage()` reports the
bytes a project's results take, from a cache the publisher keeps current.
"""

from __future__ import annotations

import asyncio
import functools
import os
import secrets
import shutil
import tempfile
from collections.abc import Awaitable, Callable, Iterable, Sequence
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path

from kopers.errors import BadRequest, InfrastructureError
from kopers.publish import repo
from kopers.publish.layout import Layout, build_dir_name
from kopers.publish.retention import BuildDir, plan_prune
from kopers.publish.signing import Signer
from kopers.publish.usage import UsageCache

_STAGING_PREFIX = ".incoming-"
Timer = Callable[[str], AbstractContextManager[None]]
_TRASH_PREFIX = ".removing-"


def _untimed(name: str) -> AbstractContextManager[None]:
    return nullcontext()


class Publisher:
    """Publishes build results under a `Layout`, signed by a `Signer`."""

    def __init__(
        self, layout: Layout, signer: Signer, updater: repo.RepoUpdater | None = None
    ) -> None:
        self._layout = layout
        self._signer = signer
        # One updater per process, so its per-directory locks cover everyone.
        self._update = updater.update if updater is not None else repo.update_repodata
        self._usage = UsageCache()

    @property
    def layout(self) -> Layout:
        return self._layout

    async def init_project(self, owner: str, project: str, chroots: Iterable[str] = ()) -> str:
        """Create the project's key, write `pubkey.gpg`; return the fingerprint.

        Idempotent. Each chroot given also gets an (empty) repository, so dnf
        finds valid repodata before the first build.
        """
        fingerprint = await self._signer.create_key(owner, project)
        armored = await self._signer.public_key(owner, project)
        await asyncio.to_thread(_write_atomic, self._layout.pubkey_path(owner, project), armored)
        self._usage.invalidate(self._layout.project_dir(owner, project))
        for chroot in chroots:
            chroot_dir = self._layout.chroot_dir(owner, project, chroot)
            if not await asyncio.to_thread((chroot_dir / repo.REPODATA / "repomd.xml").is_file):
                await self._update(chroot_dir, sign=self._repomd_signer(owner, project))
        return fingerprint

    async def publish(
        self,
        owner: str,
        project: str,
        chroot: str,
        build_id: int,
        package: str,
        files: Sequence[Path],
        timed: Timer = _untimed,
    ) -> Path:
        """Publish one build's results in one chroot; return its build directory.

        `files` (RPMs, the SRPM, logs; directories are copied whole) are
        copied, so the caller keeps and cleans up its own copies. Publishing
        the same build again replaces its directory. `timed(name)` times the
        steps: "staging", "signing", "publish" (into place, and the repodata).
        """
        build_dir = self._layout.build_dir(owner, project, chroot, build_id, package)
        chroot_dir = build_dir.parent
        await self._ensure_project(owner, project)
        try:
            async with self._signer.session(owner, project):  # one gpg-agent for all
                with timed("staging"):
                    staging = await asyncio.to_thread(
                        _stage, chroot_dir, build_dir_name(build_id, package), list(files)
                    )

                async def sign() -> None:
                    with timed("signing"):
                        rpms = await asyncio.to_thread(lambda: sorted(staging.glob("*.rpm")))
                        await self._signer.sign_rpms(owner, project, rpms)

                await _install(staging, build_dir, before=sign)
                with timed("publish"):
                    await self._update(
                        chroot_dir,
                        sign=self._repomd_signer(owner, project),
                        changed=[build_dir.name],
                    )
        finally:
            self._usage.invalidate(chroot_dir)
        return build_dir

    async def publish_logs(
        self,
        owner: str,
        project: str,
        chroot: str,
        build_id: int,
        package: str,
        files: Sequence[Path],
    ) -> Path:
        """Publish a failed build's logs in its build directory; return it.

        Nothing is signed. RPMs among `files` are skipped: every RPM in a
        visible build directory would be indexed by the next repodata run,
        and a failed build must not ship packages. The repodata is left
        alone, unless these logs replace an earlier result of the same build
        that had packages: those leave the repodata.
        """
        build_dir = self._layout.build_dir(owner, project, chroot, build_id, package)
        chroot_dir = build_dir.parent
        logs = [f for f in files if not f.name.endswith(".rpm")]
        try:
            staging = await asyncio.to_thread(
                _stage, chroot_dir, build_dir_name(build_id, package), logs
            )
            replaced = await _install(staging, build_dir)
            if replaced:
                await self._update(
                    chroot_dir, sign=self._repomd_signer(owner, project), changed=[build_dir.name]
                )
        finally:
            self._usage.invalidate(chroot_dir)
        return build_dir

    async def replace_logs(
        self,
        owner: str,
        project: str,
        chroot: str,
        build_id: int,
        package: str,
        files: Sequence[Path],
    ) -> None:
        """Replace log files in a published build directory, each by one rename.

        For a build.log that has grown since its build was published. RPMs are
        never taken (they would change the repository behind its repodata);
        a build directory that is not there gets nothing.
        """
        build_dir = self._layout.build_dir(owner, project, chroot, build_id, package)
        logs = [f for f in files if not f.name.endswith(".rpm")]
        try:
            await asyncio.to_thread(_replace_files, build_dir, logs)
        finally:
            self._usage.invalidate(build_dir.parent)

    async def remove_build(
        self, owner: str, project: str, build_id: int, chroot: str, package: str
    ) -> None:
        """Drop one build from a chroot's repodata, then from disk; missing is fine."""
        build_dir = self._layout.build_dir(owner, project, chroot, build_id, package)
        if not await asyncio.to_thread(build_dir.parent.is_dir):
            return  # no such chroot: nothing to re-index
        await self._remove(owner, project, build_dir.parent, [build_dir.name])

    async def prune(self, owner: str, project: str, chroot: str, keep: int) -> list[str]:
        """Keep the newest `keep` builds of each package in a chroot; remove the rest.

        Newest means the highest build id. If none of the kept builds of a
        package has RPMs (all failed), its newest build with RPMs is kept
        too, so pruning never takes a package out of the repository. Returns
        the names of the removed build directories, oldest first.
        """
        chroot_dir = self._layout.chroot_dir(owner, project, chroot)
        builds = await asyncio.to_thread(_list_builds, chroot_dir)
        doomed = plan_prune(builds, keep)
        if doomed:
            await self._remove(owner, project, chroot_dir, doomed)
        return doomed

    async def regenerate(self, owner: str, project: str, chroot: str) -> None:
        """Rebuild a chroot's repodata from the RPMs on disk, discarding its index."""
        await self._ensure_project(owner, project)
        chroot_dir = self._layout.chroot_dir(owner, project, chroot)
        try:
            await self._update(chroot_dir, sign=self._repomd_signer(owner, project), rebuild=True)
        finally:
            self._usage.invalidate(chroot_dir)

    async def usage(self, owner: str, project: str) -> int:
        """Bytes taken by the project's results tree (cached; see `usage.py`)."""
        return await self._usage.usage(self._layout.project_dir(owner, project))

    async def remove_project(self, owner: str, project: str) -> None:
        """Delete the project's results tree and its signing key."""
        project_dir = self._layout.project_dir(owner, project)
        try:
            trash = await asyncio.to_thread(_hide, project_dir)
            if trash is not None:
                await asyncio.to_thread(shutil.rmtree, trash, True)
        finally:
            self._usage.invalidate(project_dir)
        await self._signer.delete_key(owner, project)

    # -- internals ---------------------------------------------------------

    async def _ensure_project(self, owner: str, project: str) -> None:
        # Projects made before the publisher knew them still get a key.
        if not await asyncio.to_thread(self._layout.pubkey_path(owner, project).is_file):
            await self.init_project(owner, project)

    def _repomd_signer(self, owner: str, project: str) -> repo.SignFn:
        return functools.partial(self._signer.sign_detached, owner, project)

    async def _remove(self, owner: str, project: str, chroot_dir: Path, names: list[str]) -> None:
        """Take builds out of the repodata first, then delete their files."""
        try:
            await asyncio.to_thread(repo.note_changed, chroot_dir, names)
            await asyncio.to_thread(_mark_removed, chroot_dir, names)
            await self._update(chroot_dir, sign=self._repomd_signer(owner, project), changed=names)
            # Out of the repodata now: hide (one rename each), then delete.
            for name in names:
                trash = await asyncio.to_thread(_hide, chroot_dir / name)
                if trash is not None:
                    await asyncio.to_thread(shutil.rmtree, trash, True)
        finally:
            self._usage.invalidate(chroot_dir)


async def _install(
    staging: Path, build_dir: Path, before: Callable[[], Awaitable[None]] | None = None
) -> bool:
    """Move a staged build directory into place; True if it replaced one.

    `before` (signing) runs on the staged copy first. The change is noted
    durably before it appears, so a crash before the repodata update loses
    nothing (see repoindex). On any failure the staged copy is removed.
    """
    try:
        if before is not None:
            await before()
        await asyncio.to_thread(repo.note_changed, build_dir.parent, [build_dir.name])
        return await asyncio.to_thread(_move_into_place, staging, build_dir)
    except BaseException:
        await asyncio.to_thread(shutil.rmtree, staging, True)
        raise


# -- blocking helpers, run in threads ----------------------------------------


def _stage(chroot_dir: Path, name: str, files: list[Path]) -> Path:
    """Copy `files` into a fresh hidden directory inside `chroot_dir`."""
    names = [f.name for f in files]
    if len(set(names)) != len(names):
        raise BadRequest(f"result file names are not unique: {sorted(names)}")
    for f in files:
        if f.name.startswith(".") or not f.name or any(c in f.name for c in "\r\n\0"):
            raise BadRequest(f"invalid result file name: {f.name!r}")
        if not f.exists():
            raise InfrastructureError(f"result file {f} does not exist")
    chroot_dir.mkdir(mode=0o755, parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f"{_STAGING_PREFIX}{name}-", dir=chroot_dir))
    try:
        for f in files:
            if f.is_dir():
                shutil.copytree(f, staging / f.name)
            else:
                shutil.copy2(f, staging / f.name)
                os.chmod(staging / f.name, 0o644)  # served to anyone
        os.chmod(staging, 0o755)  # mkdtemp makes 0700
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return staging


def _replace_files(build_dir: Path, files: list[Path]) -> None:
    """Copy `files` into an existing `build_dir`, each replacing its namesake atomically."""
    if not build_dir.is_dir():
        return
    for f in files:
        if f.name.startswith(".") or not f.name or any(c in f.name for c in "\r\n\0/"):
            raise BadRequest(f"invalid result file name: {f.name!r}")
        fd, tmp = tempfile.mkstemp(prefix=f".{f.name}.", dir=build_dir)
        os.close(fd)
        try:
            shutil.copyfile(f, tmp)
            os.chmod(tmp, 0o644)  # served to anyone
            os.replace(tmp, build_dir / f.name)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


def _move_into_place(staging: Path, build_dir: Path) -> bool:
    """Rename `staging` to `build_dir`; True if an earlier result was replaced."""
    old = _hide(build_dir)  # a republish replaces the earlier result
    os.rename(staging, build_dir)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    return old is not None


def _list_builds(chroot_dir: Path) -> list[BuildDir]:
    """The visible build directories of a chroot, and whether they hold RPMs."""
    found = []
    try:
        entries = list(os.scandir(chroot_dir))
    except FileNotFoundError:
        return []
    for entry in entries:
        if entry.name.startswith(".") or entry.name == repo.REPODATA:
            continue
        if not entry.is_dir(follow_symlinks=False):
            continue
        try:
            names = os.listdir(entry.path)
        except FileNotFoundError:
            continue
        marked = repo.REMOVED_MARKER in names
        has_rpms = not marked and any(n.endswith(".rpm") for n in names)
        found.append(BuildDir(entry.name, has_rpms))
    return found


def _mark_removed(chroot_dir: Path, names: list[str]) -> None:
    """Mark builds as having no packages (see repoindex); missing ones are skipped."""
    for name in names:
        try:
            (chroot_dir / name / repo.REMOVED_MARKER).touch()
        except (FileNotFoundError, NotADirectoryError):
            continue


def _hide(path: Path) -> Path | None:
    """Rename `path` to a hidden sibling (out of the index); None if absent."""
    hidden = path.with_name(f"{_TRASH_PREFIX}{path.name}-{secrets.token_hex(4)}")
    try:
        os.rename(path, hidden)
    except FileNotFoundError:
        return None
    return hidden


def _write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as out:
            out.write(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
