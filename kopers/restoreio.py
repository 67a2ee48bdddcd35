"""`kopers restore SRC`: check a backup, then bring it back into an empty data directory.

The steps, each refusing with one line before anything is left behind:
1. read the manifest and hold the backup tree to it (kopers.backup): every
   entry a plain directory or regular file, exactly the files it lists;
2. check the data directory is empty, the dump's migrations are this
   Kopers' own, a pg_restore that reads the dump is here, and an external
   database is empty;
3. copy every file into `<data_dir>/.kopers-restore/`, hashing what is
   read, and compare with the manifest;
4. load the database (kopers.restoredb): into the configured external one,
   or into a new embedded server whose files are made in that same
   directory; schema and data, the migration version check and the build id
   sequence all commit in one transaction;
5. stop that server and move each part into place: renames inside one
   directory, the only step not undone by a failure (it does not fail).

The backup is read through directory file descriptors, never following a
symbolic link, so a tree changed under restore still cannot make it read a
file outside the backup. Files get their modes from their area (keys 0700
and 0600, everything else 0755 and 0644) and belong to the user restoring.
Any failure or interruption removes what was made, and a data directory
restore created.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import hashlib
import os
import shutil
import stat
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from kopers import backup
from kopers.backup import (
    DATA,
    DUMP,
    MANIFEST,
    MAX_MANIFEST_BYTES,
    STAGING,
    Area,
    BackupRefused,
    Manifest,
    check_migrations,
    check_tree,
    data_dir_refusal,
    mode_for,
    parse_manifest,
)
from kopers.backupio import check_stop, in_thread
from kopers.config import Config
from kopers.db.database import embedded_dsn
from kopers.db.migrations import discover
from kopers.errors import BackupError
from kopers.paths import DataPaths
from kopers.pgtools import find_tool
from kopers.restoredb import check_empty, load_database

Say = Callable[[str], None]
CHUNK = 1 << 20
# Never follow a link; never wait on a FIFO put where a file was.
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW


async def restore_backup(cfg: Config, src: Path, say: Say) -> Manifest:
    """Restore the backup in `src` into `cfg`'s (empty) data directory and database."""
    data_dir = cfg.data_dir.absolute()
    manifest = await asyncio.to_thread(verify_source, src)
    if data_dir.exists() and not data_dir.is_dir():
        raise BackupError(f"data directory {data_dir} is not a directory")
    names = os.listdir(data_dir) if data_dir.is_dir() else []
    refusal = data_dir_refusal(str(data_dir), names, results_in_backup=manifest.results)
    if refusal is not None:
        raise BackupError(refusal)
    check_migrations(manifest, [(m.version, m.name) for m in discover()])
    tool = await find_tool("pg_restore", manifest.pg_dump_major)
    if cfg.database.dsn:
        await check_empty(cfg.database.dsn)
    say(f"restoring {backup.describe(manifest)} into {data_dir}")

    created = not data_dir.exists()
    data_dir.mkdir(mode=0o755, parents=True, exist_ok=True)
    staging = data_dir / STAGING
    staging.mkdir(mode=0o700)
    server: Any = None
    moved: list[Path] = []
    try:
        await in_thread(lambda stop: copy_verified(src, staging, manifest, stop))
        highest = await asyncio.to_thread(_highest_build_id, manifest, data_dir)
        dsn = cfg.database.dsn
        if not dsn:
            say("starting a new embedded Postgres")
            starting = asyncio.ensure_future(asyncio.to_thread(embedded_dsn, staging))
            try:
                dsn, server = await asyncio.shield(starting)
            except asyncio.CancelledError:
                with contextlib.suppress(BaseException):
                    server = (await starting)[1]  # stopped below, not left running
                raise
        say(f"loading the database with {tool.path}")
        await load_database(dsn, staged_dump(staging), tool, manifest, highest, staging)
        if server is not None:
            await asyncio.to_thread(server.cleanup)
            server = None
        await asyncio.to_thread(_move_into_place, staging, data_dir, moved)
    except BaseException:
        # Not in threads: this must also run when the task is being cancelled.
        if server is not None:
            with contextlib.suppress(Exception):
                server.cleanup()
        shutil.rmtree(staging, ignore_errors=True)
        for path in moved:
            shutil.rmtree(path, ignore_errors=True)
        if created:
            with contextlib.suppress(OSError):
                data_dir.rmdir()
        raise
    return manifest


def staged_dump(staging: Path) -> Path:
    return staging / DUMP


def _highest_build_id(m: Manifest, data_dir: Path) -> int:
    """The highest build id of the restored files and of a results tree synced beforehand."""
    restored = (place for f in m.files if (place := backup.data_file(f.path)) is not None)
    return backup.highest_build_id([*restored, *_results_on_disk(data_dir / Area.RESULTS)])


def _results_on_disk(results: Path) -> Iterator[tuple[Area, tuple[str, ...]]]:
    """Build directories of a results tree synced in beforehand (owner/project/chroot/build)."""

    def below(path: Path, depth: int, parts: tuple[str, ...]) -> Iterator[tuple[str, ...]]:
        if depth == 4:
            yield parts
            return
        with contextlib.suppress(OSError):
            for entry in os.scandir(path):
                if entry.is_dir(follow_symlinks=False):
                    yield from below(Path(entry.path), depth + 1, (*parts, entry.name))

    for parts in below(results, 0, ()):
        yield Area.RESULTS, parts


# -- reading the backup (blocking) --------------------------------------------


def verify_source(src: Path) -> Manifest:
    """The backup's manifest, once the tree has been held to it."""
    root = _open_root(src)
    try:
        manifest = parse_manifest(_read_manifest(root))
        files, dirs = _scan(root)
    finally:
        os.close(root)
    check_tree(manifest, files, dirs)
    return manifest


def _open_root(src: Path) -> int:
    try:
        return os.open(src, os.O_RDONLY | os.O_DIRECTORY)
    except (FileNotFoundError, NotADirectoryError):
        raise BackupRefused(f"{src} is not a directory") from None
    except OSError as exc:
        raise BackupRefused(f"cannot open {src}: {exc.strerror}") from None


def _read_manifest(root: int) -> bytes:
    try:
        fd = os.open(MANIFEST, _FILE_FLAGS, dir_fd=root)
    except FileNotFoundError:
        raise BackupRefused(f"the backup has no manifest ({MANIFEST})") from None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise BackupRefused("the backup's manifest is a symbolic link") from None
        raise BackupRefused(f"cannot read the backup's manifest: {exc.strerror}") from None
    with os.fdopen(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
            raise BackupRefused("the backup's manifest is not a regular file")
        raw = f.read(MAX_MANIFEST_BYTES + 1)
    if len(raw) > MAX_MANIFEST_BYTES:
        raise BackupRefused("the backup's manifest is too large")
    return raw


def _scan(root: int) -> tuple[dict[str, int], set[str]]:
    """Every file (path -> size) and directory below `root`, refusing links and the like."""
    files: dict[str, int] = {}
    dirs: set[str] = set()
    stack = [(os.dup(root), "")]
    while stack:
        fd, prefix = stack.pop()
        try:
            with os.scandir(fd) as entries:
                listed = list(entries)
            for entry in listed:
                rel = f"{prefix}{entry.name}"
                if entry.is_symlink():
                    raise BackupRefused(f"the backup's {rel!r} is a symbolic link")
                if entry.is_dir(follow_symlinks=False):
                    dirs.add(rel)
                    stack.append((_open_dir(fd, entry.name, rel), f"{rel}/"))
                elif entry.is_file(follow_symlinks=False):
                    if rel != MANIFEST:
                        files[rel] = entry.stat(follow_symlinks=False).st_size
                else:
                    raise BackupRefused(f"the backup's {rel!r} is not a regular file")
        except BaseException:
            for other, _ in stack:
                os.close(other)
            raise
        finally:
            os.close(fd)
    return files, dirs


def _open_dir(parent: int, name: str, rel: str) -> int:
    try:
        return os.open(name, _DIR_FLAGS, dir_fd=parent)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR):
            raise BackupRefused(f"the backup's {rel!r} is a symbolic link") from None
        raise BackupRefused(f"cannot read the backup's {rel!r}: {exc.strerror}") from None


def copy_verified(
    src: Path, staging: Path, manifest: Manifest, stop: threading.Event | None = None
) -> None:
    """Copy each file to `staging/<its path>`, refusing any whose bytes are not the manifest's."""
    root = _open_root(src)
    try:
        for entry in manifest.files:
            check_stop(stop)
            place = backup.data_file(entry.path)
            target = staging / entry.path
            mode = mode_for(place[0], is_dir=False) if place else 0o600
            try:
                _make_parents(staging, entry.path, place[0] if place else None)
                size, digest = _copy_one(root, entry.path, target, mode, stop)
            except OSError as exc:
                raise BackupError(
                    f"cannot copy {entry.path!r} to {staging}: {exc.strerror}"
                ) from None
            if size != entry.size or digest != entry.sha256:
                raise BackupRefused(f"the backup's {entry.path!r} does not match its checksum")
    finally:
        os.close(root)


def _make_parents(staging: Path, rel: str, area: Area | None) -> None:
    parts = rel.split("/")[:-1]
    for depth in range(1, len(parts) + 1):
        folder = staging.joinpath(*parts[:depth])
        if folder.is_dir():
            continue
        # data/ itself is private; an area's directories take the area's mode.
        mode = 0o700 if depth == 1 or area is None else mode_for(area, is_dir=True)
        folder.mkdir(mode=mode)
        os.chmod(folder, mode)  # mkdir's mode is reduced by the umask


def _copy_one(
    root: int, rel: str, target: Path, mode: int, stop: threading.Event | None
) -> tuple[int, str]:
    parts = rel.split("/")
    fds = [os.dup(root)]
    try:
        for i, name in enumerate(parts[:-1]):
            fds.append(_open_dir(fds[-1], name, "/".join(parts[: i + 1])))
        try:
            fd = os.open(parts[-1], _FILE_FLAGS, dir_fd=fds[-1])
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise BackupRefused(f"the backup's {rel!r} is a symbolic link") from None
            raise BackupRefused(f"cannot read the backup's {rel!r}: {exc.strerror}") from None
    finally:
        for one in fds:
            os.close(one)
    digest = hashlib.sha256()
    size = 0
    with os.fdopen(fd, "rb") as source:
        if not stat.S_ISREG(os.fstat(source.fileno()).st_mode):
            raise BackupRefused(f"the backup's {rel!r} is not a regular file")
        with open(os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode), "wb") as out:
            os.fchmod(out.fileno(), mode)
            while chunk := source.read(CHUNK):
                check_stop(stop)
                digest.update(chunk)
                out.write(chunk)
                size += len(chunk)
    return size, digest.hexdigest()


def _move_into_place(staging: Path, data_dir: Path, moved: list[Path]) -> None:
    """Rename the restored parts into the data directory, then remove the staging directory."""
    data = staging / DATA
    parts = [data / name for name in sorted(os.listdir(data))] if data.is_dir() else []
    parts += [staging / "pg"] if (staging / "pg").is_dir() else []
    for part in parts:
        target = data_dir / part.name
        if target.exists():
            raise BackupError(f"{target} appeared during the restore; nothing was restored")
        os.rename(part, target)
        moved.append(target)
    shutil.rmtree(staging)
    DataPaths(data_dir).ensure()
