"""`kopers backup DEST`: dump the database, copy the data directory's state, write the manifest.

Consistency with a running server. The database is dumped first, from one
snapshot, and the files are copied after it. Whatever the server does in
between can then only leave the copy with more than the dump knows of, never
less: a build published after the dump is an extra directory in the results
(restore moves the build id sequence past it, so no new build takes its
name), a project made after it is an extra key. The other order could not
be recovered from: a build published between a file copy and a later dump
would be in the database as succeeded with no packages anywhere, and only a
rebuild would bring them back. What is lost the first way is a deletion made
during the backup: the restored database still has the build, its files are
gone, and it can simply be deleted again.

Each chroot of the results tree is copied `repodata/` first, then its build
directories, and its `repomd.xml` is compared before and after: if a publish
or a removal swapped the repodata meanwhile, the chroot is copied again. So
the copied repodata lists only packages the copy holds (a package added
after it is picked up by the restored server's first publish there).

Atomic output. Everything is written into a hidden temporary directory
beside DEST (mode 700: the backup holds the signing keys) and renamed to
DEST at the end; DEST must not exist or be empty. On any failure the
temporary directory is removed.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import hashlib
import logging
import os
import shutil
import stat
import tempfile
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

from kopers import __version__
from kopers.backup import (
    DATA,
    DUMP,
    MANIFEST,
    Area,
    FileEntry,
    Manifest,
    encode_manifest,
    keep,
    plan_backup,
)
from kopers.config import Config
from kopers.db.database import Database, open_database
from kopers.errors import BackupError
from kopers.pgtools import find_tool, run_tool, server_major, tool_env, without_password

log = logging.getLogger(__name__)
Say = Callable[[str], None]
T = TypeVar("T")
CHUNK = 1 << 20
CHROOT_ATTEMPTS = 5
_REPODATA = "repodata"
# Never follow a link; never wait on a FIFO put where a file was.
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK


def check_destination(dest: Path) -> None:
    """DEST must not exist (its parent must) or be an empty directory."""
    try:
        info = dest.lstat()
    except FileNotFoundError:
        if not dest.parent.is_dir():
            raise BackupError(f"{dest.parent} does not exist") from None
        return
    if stat.S_ISLNK(info.st_mode) or not stat.S_ISDIR(info.st_mode):
        raise BackupError(f"{dest} exists and is not a directory")
    if any(dest.iterdir()):
        raise BackupError(f"{dest} is not empty; give a new or empty directory")


async def take_backup(cfg: Config, dest: Path, *, results: bool, say: Say) -> Manifest:
    """Write a backup of `cfg`'s install to `dest`; return its manifest."""
    dest = dest.absolute()
    check_destination(dest)
    data_dir = cfg.data_dir
    if not data_dir.is_dir():
        raise BackupError(f"data directory {data_dir} does not exist: nothing to back up")
    if dest.resolve().is_relative_to(data_dir.resolve()):
        raise BackupError(f"{dest} is inside the data directory; give a place outside it")
    if not cfg.database.dsn and not (data_dir / "pg" / "PG_VERSION").is_file():
        raise BackupError(f"there is no embedded database in {data_dir / 'pg'}")
    plan = plan_backup(os.listdir(data_dir), results=results)
    for item in plan.left_out:
        say(f"leaving out {item.name}: {item.reason}")
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.partial-", dir=dest.parent))
    try:
        db = await open_database(cfg.database.dsn, data_dir, max_size=1)
        try:
            migrations, server_version, dump_major = await _dump(db, tmp / DUMP, say)
        finally:
            await db.close()
        say("copying " + ", ".join(plan.areas))
        files = await in_thread(lambda stop: copy_areas(data_dir, tmp, plan.areas, say, stop))
        dump = await in_thread(lambda stop: _digest(tmp / DUMP, stop))
        manifest = Manifest(
            kopers_version=__version__,
            created=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            migrations=migrations,
            server_version=server_version,
            pg_dump_major=dump_major,
            results=results,
            files=(dump, *files),
        )
        text = encode_manifest(manifest)
        await in_thread(lambda stop: _finish(tmp, dest, text, stop))
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)  # not in a thread: it must run when cancelled too
        raise
    return manifest


async def _dump(
    db: Database, target: Path, say: Say
) -> tuple[tuple[tuple[int, str], ...], str, int]:
    """pg_dump from one exported snapshot; (migrations, server version, pg_dump major)."""
    async with (
        db.pool.acquire() as conn,
        conn.transaction(isolation="repeatable_read", readonly=True),
    ):
        # The snapshot stays valid while this transaction is open: pg_dump and
        # the migration rows below see exactly the same database.
        snapshot = await conn.fetchval("SELECT pg_export_snapshot()")
        version_num = int(await conn.fetchval("SHOW server_version_num"))
        server_version = str(await conn.fetchval("SHOW server_version"))
        if not await conn.fetchval("SELECT to_regclass('public.schema_migrations') IS NOT NULL"):
            raise BackupError("the database holds no Kopers schema; nothing to back up")
        rows = await conn.fetch("SELECT version, name FROM schema_migrations ORDER BY version")
        if not rows:
            raise BackupError("the database holds no Kopers schema; nothing to back up")
        tool = await find_tool("pg_dump", server_major(version_num))
        say(f"dumping the database (PostgreSQL {server_version}) with {tool.path}")
        dsn, password = without_password(db.dsn)
        await run_tool(
            [
                tool.path,
                "--format=custom",
                f"--file={target}",
                f"--snapshot={snapshot}",
                "--no-password",
                f"--dbname={dsn}",
            ],
            tool_env(password),
            "pg_dump",
        )
    migrations = tuple((int(r["version"]), str(r["name"])) for r in rows)
    return migrations, server_version, tool.major


# -- files (blocking, run in a thread) ----------------------------------------


async def in_thread(work: Callable[[threading.Event], T]) -> T:
    """Run blocking `work(stop)` in a thread; when cancelled, set `stop` and wait for it.

    The caller cleans up after a cancel, and must not race a thread that is
    still writing files. Work checks `stop` often and raises when it is set.
    """
    stop = threading.Event()
    future = asyncio.ensure_future(asyncio.to_thread(work, stop))
    try:
        return await asyncio.shield(future)
    except asyncio.CancelledError:
        stop.set()
        with contextlib.suppress(BaseException):
            await future
        raise


def check_stop(stop: threading.Event | None) -> None:
    if stop is not None and stop.is_set():
        raise BackupError("interrupted")


def copy_areas(
    data_dir: Path,
    tmp: Path,
    areas: tuple[Area, ...],
    say: Say,
    stop: threading.Event | None = None,
) -> list[FileEntry]:
    """Copy the areas' state into `tmp/data/`; the files copied, as manifest entries."""
    copy = _TreeCopy(say, stop)
    files: list[FileEntry] = []
    for area in areas:
        source = data_dir / area
        if source.is_dir() and not source.is_symlink():
            copy.directory(source, tmp / DATA / area, area, (), files)
    return files


class _TreeCopy:
    def __init__(self, say: Say, stop: threading.Event | None) -> None:
        self.say = say
        self.stop = stop

    def directory(
        self, src: Path, dst: Path, area: Area, parts: tuple[str, ...], files: list[FileEntry]
    ) -> None:
        """Copy what `keep` takes below `src` to `dst`, adding each file to `files`."""
        try:
            entries = sorted(os.scandir(src), key=lambda e: e.name)
        except FileNotFoundError:
            return  # removed after the dump: nothing the dump needs
        if area == Area.RESULTS and any(e.name == _REPODATA and e.is_dir() for e in entries):
            self.chroot(src, dst, parts, files)
            return
        for entry in entries:
            self.entry(entry, dst, area, (*parts, entry.name), files)

    def entry(
        self,
        entry: os.DirEntry[str],
        dst: Path,
        area: Area,
        below: tuple[str, ...],
        files: list[FileEntry],
    ) -> None:
        if entry.is_dir(follow_symlinks=False):
            if keep(area, below, True):
                self.directory(Path(entry.path), dst / entry.name, area, below, files)
        elif entry.is_file(follow_symlinks=False) and keep(area, below, False):
            copied = self.file(Path(entry.path), dst / entry.name, _rel(area, below))
            if copied is not None:
                files.append(copied)
        # Symbolic links, sockets (gpg-agent's) and the like are not state.

    def chroot(self, src: Path, dst: Path, parts: tuple[str, ...], files: list[FileEntry]) -> None:
        """A chroot's repository: repodata first, then the builds; again if it changed meanwhile."""
        repomd = src / _REPODATA / "repomd.xml"
        copied: list[FileEntry] = []
        for _attempt in range(CHROOT_ATTEMPTS):
            before = _identity(repomd)
            copied = []
            shutil.rmtree(dst, ignore_errors=True)
            self.directory(
                src / _REPODATA, dst / _REPODATA, Area.RESULTS, (*parts, _REPODATA), copied
            )
            try:
                entries = sorted(os.scandir(src), key=lambda e: e.name)
            except FileNotFoundError:
                shutil.rmtree(dst, ignore_errors=True)
                return  # the project was deleted after the dump
            for entry in entries:
                if entry.name != _REPODATA:
                    self.entry(entry, dst, Area.RESULTS, (*parts, entry.name), copied)
            if _identity(repomd) == before:
                files.extend(copied)
                return
        files.extend(copied)
        self.say(
            f"warning: {'/'.join(parts)} changed each time it was copied; its repodata may name "
            "packages the backup lacks until the restored server publishes there again"
        )

    def file(self, src: Path, dst: Path, rel: str) -> FileEntry | None:
        """Copy one file, hashing what is read; None if it went away (or is not a file now)."""
        check_stop(self.stop)
        try:
            fd = os.open(src, _FILE_FLAGS)
        except (FileNotFoundError, NotADirectoryError):
            return None  # removed after the dump
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                return None  # replaced by a symbolic link: not state
            raise BackupError(f"cannot read {src}: {exc.strerror}") from None
        with os.fdopen(fd, "rb") as source:
            if not stat.S_ISREG(os.fstat(source.fileno()).st_mode):
                return None
            dst.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            digest = hashlib.sha256()
            size = 0
            with open(os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as out:
                while chunk := source.read(CHUNK):
                    check_stop(self.stop)
                    digest.update(chunk)
                    out.write(chunk)
                    size += len(chunk)
        return FileEntry(rel, size, digest.hexdigest())


def _identity(path: Path) -> tuple[int, int, int] | None:
    try:
        info = path.stat()
    except FileNotFoundError:
        return None
    return info.st_ino, info.st_mtime_ns, info.st_size


def _rel(area: Area, parts: tuple[str, ...]) -> str:
    return "/".join((DATA, area, *parts))


def _digest(path: Path, stop: threading.Event) -> FileEntry:
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as f:
        while chunk := f.read(CHUNK):
            check_stop(stop)
            digest.update(chunk)
            size += len(chunk)
    os.chmod(path, 0o600)
    return FileEntry(DUMP, size, digest.hexdigest())


def _finish(tmp: Path, dest: Path, manifest: bytes, stop: threading.Event) -> None:
    """Write the manifest, flush everything, and rename the directory into place."""
    path = tmp / MANIFEST
    with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as out:
        out.write(manifest)
    os.sync()  # one flush for all the files, rather than one fsync each
    check_stop(stop)  # the last moment to give up: after the rename, DEST is the backup
    try:
        os.rename(tmp, dest)  # replaces DEST if it is an empty directory
    except OSError as exc:
        raise BackupError(f"cannot move the backup into {dest}: {exc.strerror}") from None
    fd = os.open(dest.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
