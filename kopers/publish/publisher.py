"""Putting a build's results online: stage, sign, move into place, index.

`Publisher.publish()` is the one entry point the build runner uses. The order
of its steps is what keeps clients from ever seeing a half-done build:
1. copy the result files into a hidden staging directory inside the chroot
   directory (hidden names are never indexed, see `repo.py`);
2. sign every RPM there, SRPM included, with the project's key;
3. rename the staging directory to `<build_id:08d>-<package>/`: one atomic
   step on the same filesystem;
4. regenerate the chroot's repodata and sign `repomd.xml`.

Removal runs the other way round: the build directory is renamed to a hidden
name first (so it leaves the index), the repodata is regenerated, and only
then are the files deleted.
"""

from __future__ import annotations

import asyncio
import functools
import os
import secrets
import shutil
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path

from kopers.errors import BadRequest, InfrastructureError
from kopers.publish import repo
from kopers.publish.layout import Layout, build_dir_name
from kopers.publish.signing import Signer

_STAGING_PREFIX = ".incoming-"
_TRASH_PREFIX = ".removing-"


class Publisher:
    """Publishes build results under a `Layout`, signed by a `Signer`."""

    def __init__(
        self, layout: Layout, signer: Signer, updater: repo.RepoUpdater | None = None
    ) -> None:
        self._layout = layout
        self._signer = signer
        # One updater per process, so its per-directory locks cover everyone.
        self._update = updater.update if updater is not None else repo.update_repodata

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
    ) -> Path:
        """Publish one build's results in one chroot; return its build directory.

        `files` (RPMs, the SRPM, logs; directories are copied whole) are
        copied, so the caller keeps and cleans up its own copies. Publishing
        the same build again replaces its directory.
        """
        build_dir = self._layout.build_dir(owner, project, chroot, build_id, package)
        chroot_dir = build_dir.parent
        await self._ensure_project(owner, project)
        async with self._signer.session(owner, project):  # one gpg-agent for all
            staging = await asyncio.to_thread(
                _stage, chroot_dir, build_dir_name(build_id, package), list(files)
            )
            try:
                rpms = await asyncio.to_thread(lambda: sorted(staging.glob("*.rpm")))
                await self._signer.sign_rpms(owner, project, rpms)
                await asyncio.to_thread(_move_into_place, staging, build_dir)
            except BaseException:
                await asyncio.to_thread(shutil.rmtree, staging, True)
                raise
            await self._update(chroot_dir, sign=self._repomd_signer(owner, project))
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

        Nothing is signed and repodata is left alone. RPMs among `files` are
        skipped: every RPM in a visible build directory would be indexed by
        the next repodata run, and a failed build must not ship packages.
        """
        build_dir = self._layout.build_dir(owner, project, chroot, build_id, package)
        logs = [f for f in files if not f.name.endswith(".rpm")]
        staging = await asyncio.to_thread(
            _stage, build_dir.parent, build_dir_name(build_id, package), logs
        )
        try:
            await asyncio.to_thread(_move_into_place, staging, build_dir)
        except BaseException:
            await asyncio.to_thread(shutil.rmtree, staging, True)
            raise
        return build_dir

    async def remove_build(
        self, owner: str, project: str, build_id: int, chroot: str, package: str
    ) -> None:
        """Drop one build from a chroot and its repodata; missing is fine."""
        build_dir = self._layout.build_dir(owner, project, chroot, build_id, package)
        trash = await asyncio.to_thread(_hide, build_dir)
        if not await asyncio.to_thread(build_dir.parent.is_dir):
            return  # no such chroot: nothing to re-index
        await self._update(build_dir.parent, sign=self._repomd_signer(owner, project))
        if trash is not None:
            await asyncio.to_thread(shutil.rmtree, trash, True)

    async def remove_project(self, owner: str, project: str) -> None:
        """Delete the project's results tree and its signing key."""
        trash = await asyncio.to_thread(_hide, self._layout.project_dir(owner, project))
        if trash is not None:
            await asyncio.to_thread(shutil.rmtree, trash, True)
        await self._signer.delete_key(owner, project)

    # -- internals ---------------------------------------------------------

    async def _ensure_project(self, owner: str, project: str) -> None:
        # Projects made before the publisher knew them still get a key.
        if not await asyncio.to_thread(self._layout.pubkey_path(owner, project).is_file):
            await self.init_project(owner, project)

    def _repomd_signer(self, owner: str, project: str) -> repo.SignFn:
        return functools.partial(self._signer.sign_detached, owner, project)


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


def _move_into_place(staging: Path, build_dir: Path) -> None:
    old = _hide(build_dir)  # a republish replaces the earlier result
    os.rename(staging, build_dir)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


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
