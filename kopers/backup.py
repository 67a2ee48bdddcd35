"""What a backup of a Kopers install holds, its manifest, and how restore checks it. Pure.

A backup is a directory:

    manifest.json       this module's `Manifest`: versions, and every file with its size and SHA-256
    database.dump       pg_dump --format=custom of the whole database
    data/<area>/...     the parts of the data directory a restored server needs

The areas are `keys` (each project's GnuPG home: its signing key), `results`
(the published repositories, repodata included), `sources` (the source
packages of builds, for builds still to run and for resubmits) and `logs`
(the live logs, the only copy of each task's `builder-live.log`). Left out:
the embedded Postgres' own files (the dump stands in for them), VM overlays,
half-received uploads and task scratch space, all of which a server clears or
rebuilds at start-up; and inside the results tree, each chroot's package
index (`.kopers-index`, rebuilt from the RPMs on the first publish after a
restore: its inode numbers would not match the restored files anyway) and the
publisher's hidden staging and temporary files.

A backup is untrusted input to restore: it may have been tampered with. So
the manifest is checked field by field (`parse_manifest`), every path in it
must be one a backup could hold (no `..`, no absolute path, nothing outside
the areas, nothing `keep` would have left out), the files on disk must be
exactly the manifest's (`check_tree`), and modes come from the area
(`mode_for`), never from the backup. kopers.backupio takes backups,
kopers.restoreio restores them; the database side of restore reads the dump
as data only (kopers.dumpscript).
"""

from __future__ import annotations

import enum
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeGuard

from kopers.errors import BackupError
from kopers.publish.builddirs import REMOVED_MARKER
from kopers.publish.layout import parse_build_dir_name

FORMAT = "kopers-backup"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
DUMP = "database.dump"
DATA = "data"
STAGING = ".kopers-restore"  # restore's work directory inside the data directory
MAX_MANIFEST_BYTES = 512 << 20


class BackupRefused(BackupError):
    """A backup that restore will not take: malformed, incomplete or tampered with."""

    status = 400


class Area(enum.StrEnum):
    """A directory below the data directory that a backup holds."""

    KEYS = "keys"
    LOGS = "logs"
    RESULTS = "results"
    SOURCES = "sources"


# What else a data directory holds, and why a backup does without it.
LEFT_OUT = {
    "pg": "the embedded Postgres' files; the database is in the dump instead",
    "overlays": "VM disks of builds under way; a restarted server retries those builds",
    "incoming": "uploads still being received; cleared when a server starts",
    "work": "task scratch space; cleared when a server starts",
}
_UNKNOWN = "not known to this Kopers version"
_NO_RESULTS = "left out with --no-results; copy it separately (see docs/backup.md)"

# What a running gpg keeps in a project's home: lock files and agent sockets.
_GPG_TEMPORARY = re.compile(r"(\.#lk.*|.*\.lock|S\..*)")
_SHA256 = re.compile(r"[0-9a-f]{64}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")  # in no name Kopers makes
_BUILD_ID_DIR = re.compile(r"[0-9]{8,}")


@dataclass(frozen=True, slots=True)
class LeftOut:
    name: str
    reason: str


@dataclass(frozen=True, slots=True)
class Plan:
    areas: tuple[Area, ...]
    left_out: tuple[LeftOut, ...]


def plan_backup(names: Iterable[str], *, results: bool) -> Plan:
    """Which areas to copy, and what of the data directory's `names` stays out and why."""
    areas = tuple(a for a in sorted(Area) if results or a != Area.RESULTS)
    left = [LeftOut(Area.RESULTS, _NO_RESULTS)] if not results else []
    for name in sorted(names):
        if name in LEFT_OUT:
            left.append(LeftOut(name, LEFT_OUT[name]))
        elif name not in Area.__members__.values():
            left.append(LeftOut(name, _UNKNOWN))
    return Plan(areas, tuple(left))


def keep(area: Area, parts: Sequence[str], is_dir: bool) -> bool:
    """Whether `<area>/<parts...>` belongs in a backup (its parents assumed kept)."""
    name = parts[-1]
    if area == Area.RESULTS:
        # Hidden names are the index, staging, trash and temporary files.
        return not name.startswith(".") or (name == REMOVED_MARKER and not is_dir)
    if area == Area.KEYS:
        return not _GPG_TEMPORARY.fullmatch(name)
    return True


def mode_for(area: Area, *, is_dir: bool) -> int:
    """The mode a restored file or directory gets: keys private, the rest world-readable."""
    if area == Area.KEYS:
        return 0o700 if is_dir else 0o600
    return 0o755 if is_dir else 0o644


# -- the manifest -----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FileEntry:
    path: str  # relative to the backup directory, "/"-separated
    size: int
    sha256: str


@dataclass(frozen=True, slots=True)
class Manifest:
    kopers_version: str
    created: str  # ISO 8601, UTC
    migrations: tuple[tuple[int, str], ...]  # (version, name) applied in the dumped database
    server_version: str
    pg_dump_major: int
    results: bool  # False: made with --no-results
    files: tuple[FileEntry, ...]

    @property
    def schema_version(self) -> int:
        return self.migrations[-1][0]


def encode_manifest(m: Manifest) -> bytes:
    data = {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "kopers_version": m.kopers_version,
        "created": m.created,
        "schema_version": m.schema_version,
        "migrations": [list(pair) for pair in m.migrations],
        "database": {
            "file": DUMP,
            "format": "custom",
            "server_version": m.server_version,
            "pg_dump_major": m.pg_dump_major,
        },
        "results": m.results,
        "files": [{"path": f.path, "size": f.size, "sha256": f.sha256} for f in m.files],
    }
    return (json.dumps(data, indent=1) + "\n").encode()


def parse_manifest(raw: bytes) -> Manifest:
    """The manifest, checked field by field; BackupRefused for anything off."""
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise BackupRefused("the backup's manifest is not valid JSON") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise BackupRefused(f"the backup's manifest is not a {FORMAT} manifest")
    version = data.get("version")
    if not _is_int(version) or version < 1:
        raise BackupRefused("the backup's manifest has no valid format version")
    if version > FORMAT_VERSION:
        raise BackupRefused(f"the backup was made by a newer Kopers (manifest version {version})")
    database = _field(data, "database", dict)
    m = Manifest(
        kopers_version=_field(data, "kopers_version", str),
        created=_field(data, "created", str),
        migrations=_migrations(data.get("migrations")),
        server_version=_field(database, "server_version", str),
        pg_dump_major=_field(database, "pg_dump_major", int),
        results=_field(data, "results", bool),
        files=_files(data.get("files")),
    )
    if data.get("schema_version") != m.schema_version:
        raise BackupRefused("the backup's manifest: schema_version is not its last migration")
    if not any(f.path == DUMP for f in m.files):
        raise BackupRefused("the backup holds no database dump")
    if not m.results and any(f.path.startswith(f"{DATA}/{Area.RESULTS}/") for f in m.files):
        raise BackupRefused("the backup was made without results but lists results files")
    return m


def _is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _field(data: Mapping[str, Any], key: str, kind: type) -> Any:
    value = data.get(key)
    ok = _is_int(value) and value >= 0 if kind is int else isinstance(value, kind)
    if not ok:
        raise BackupRefused(f"the backup's manifest has no valid {key!r}")
    return value


def _migrations(value: object) -> tuple[tuple[int, str], ...]:
    if not isinstance(value, list) or not value:
        raise BackupRefused("the backup's manifest has no valid 'migrations'")
    pairs = []
    for item in value:
        if not (isinstance(item, list) and len(item) == 2 and _is_int(item[0])):
            raise BackupRefused("the backup's manifest has no valid 'migrations'")
        if not isinstance(item[1], str):
            raise BackupRefused("the backup's manifest has no valid 'migrations'")
        pairs.append((item[0], item[1]))
    versions = [v for v, _ in pairs]
    if versions != sorted(set(versions)):
        raise BackupRefused("the backup's manifest lists migrations out of order or twice")
    return tuple(pairs)


def _files(value: object) -> tuple[FileEntry, ...]:
    if not isinstance(value, list):
        raise BackupRefused("the backup's manifest has no valid 'files'")
    entries = []
    seen: set[str] = set()
    for item in value:
        if not isinstance(item, dict):
            raise BackupRefused("the backup's manifest has no valid 'files'")
        path = _field(item, "path", str)
        entry = FileEntry(path, _field(item, "size", int), _field(item, "sha256", str))
        if not _SHA256.fullmatch(entry.sha256):
            raise BackupRefused(f"the backup's manifest has no valid checksum for {path!r}")
        if path != DUMP:
            data_file(path)  # refuses what a backup never holds
        if path in seen:
            raise BackupRefused(f"the backup's manifest lists {path!r} twice")
        seen.add(path)
        entries.append(entry)
    for path in seen:
        for parent in _parents(path):
            if parent in seen:
                raise BackupRefused(f"the backup lists {parent!r} as a file and as a directory")
    return tuple(entries)


def data_file(path: str) -> tuple[Area, tuple[str, ...]] | None:
    """Where a backup file goes: (area, parts below it); None for the dump.

    BackupRefused for a path no backup holds: absolute, with `.`, `..` or
    empty parts, outside `data/<area>/`, or one that `keep` leaves out.
    """
    if path == DUMP:
        return None
    parts = path.split("/")
    if any(p in ("", ".", "..") or _CONTROL.search(p) for p in parts):
        raise BackupRefused(f"the backup holds a path that is not plain: {path!r}")
    if len(parts) < 3 or parts[0] != DATA or parts[1] not in Area.__members__.values():
        raise BackupRefused(f"the backup holds {path!r}, which no backup holds")
    area, below = Area(parts[1]), tuple(parts[2:])
    for depth in range(1, len(below) + 1):
        if not keep(area, below[:depth], depth < len(below)):
            raise BackupRefused(f"the backup holds {path!r}, which no backup holds")
    return area, below


def _parents(path: str) -> list[str]:
    parts = path.split("/")
    return ["/".join(parts[:i]) for i in range(1, len(parts))]


def check_tree(m: Manifest, files: Mapping[str, int], dirs: Iterable[str]) -> None:
    """The files found (path -> size) and directories must be the manifest's exactly."""
    listed = {f.path: f.size for f in m.files}
    missing = sorted(set(listed) - set(files))
    if missing:
        raise BackupRefused(f"the backup is missing {missing[0]!r} (and {len(missing) - 1} more)")
    extra = sorted(set(files) - set(listed))
    if extra:
        raise BackupRefused(f"the backup holds {extra[0]!r}, which is not in its manifest")
    for path, size in sorted(files.items()):
        if listed[path] != size:
            raise BackupRefused(f"the backup's {path!r} does not have the size its manifest says")
    known_dirs = {parent for path in listed for parent in _parents(path)}
    stray = sorted(set(dirs) - known_dirs)
    if stray:
        raise BackupRefused(
            f"the backup holds directory {stray[0]!r}, which is not in its manifest"
        )


def check_migrations(m: Manifest, known: Sequence[tuple[int, str]]) -> None:
    """The dump's migrations must be exactly this Kopers' own up to the dump's version."""
    if not known or m.schema_version > known[-1][0]:
        raise BackupRefused(
            f"the backup's database is at schema version {m.schema_version}, made by a newer "
            f"Kopers than this one (schema version {known[-1][0] if known else 0})"
        )
    ours = [pair for pair in known if pair[0] <= m.schema_version]
    if list(m.migrations) != ours:
        theirs, mine = dict(m.migrations), dict(ours)
        version = min(v for v in theirs.keys() | mine.keys() if theirs.get(v) != mine.get(v))
        raise BackupRefused(
            f"the backup's database has migration {_migration(version, theirs)} where this "
            f"Kopers has {_migration(version, mine)}: it was made by a different Kopers"
        )


def _migration(version: int, names: Mapping[int, str]) -> str:
    return f"{version:04d}_{names[version]}" if version in names else f"no {version:04d}"


def describe(m: Manifest) -> str:
    data = [f for f in m.files if f.path != DUMP]
    size = sum(f.size for f in m.files)
    return f"schema version {m.schema_version}, database dump and {len(data)} files, {_size(size)}"


def _size(n: int) -> str:
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} bytes"


# -- restore's other decisions ---------------------------------------------


def data_dir_refusal(shown: str, names: Iterable[str], *, results_in_backup: bool) -> str | None:
    """Why restore will not write into a data directory holding `names`; None if it may.

    Only an empty one is taken, except that a backup made with --no-results
    takes one holding only `results/`: the tree synced separately beforehand.
    """
    present = sorted(names)
    if STAGING in present:
        return f"a restore into {shown} was interrupted: remove {shown}/{STAGING} and try again"
    allowed = set() if results_in_backup else {Area.RESULTS.value}
    others = [n for n in present if n not in allowed]
    if not others:
        return None
    return (
        f"data directory {shown} is not empty (it holds {', '.join(others[:5])}); "
        "restore only into an empty one"
    )


def highest_build_id(paths: Iterable[tuple[Area, Sequence[str]]]) -> int:
    """The highest build id named by a results, logs or sources directory; 0 if none.

    Restore moves the build id sequence past it: files of builds that were
    made after the dump must not be taken for a new build's.
    """
    highest = 0
    for area, parts in paths:
        if area == Area.RESULTS and len(parts) >= 4:
            parsed = parse_build_dir_name(parts[3])
            if parsed is not None:
                highest = max(highest, parsed[0])
        elif area in (Area.LOGS, Area.SOURCES) and parts:
            name = parts[0]
            if _BUILD_ID_DIR.fullmatch(name) and f"{int(name):08d}" == name:
                highest = max(highest, int(name))
    return highest
