"""Loading a backup's dump into an empty database, as data only, in one transaction.

The schema is made by this Kopers' own migrations, up to the dump's version;
the dump gives only rows and sequence values, read by kopers.dumpscript and
sent with COPY FROM STDIN and setval() (so nothing the archive says runs as
SQL). While the rows go in, the tables' own triggers are off: they would
announce every restored task as a new event. Then, still in the same
transaction: the restored `schema_migrations` must be exactly the manifest's
migrations, and the build id sequence is moved past every build id the
restored files name. A failure anywhere rolls all of it back.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg

from kopers.backup import BackupRefused, Manifest
from kopers.db.migrations import _LOCK_KEY, discover
from kopers.dumpscript import (
    CopyStart,
    check_copy,
    is_end_of_data,
    load_order,
    parse_line,
    parse_toc,
    restore_list,
)
from kopers.errors import BackupError
from kopers.pgtools import Tool, last_line, run_tool, tool_env

COPY_BATCH = 256 << 10  # bytes of rows sent to Postgres at once
# The bookkeeping table kopers.db.migrations makes, the same way.
MIGRATIONS_TABLE = """CREATE TABLE IF NOT EXISTS schema_migrations (
    version integer PRIMARY KEY,
    name text NOT NULL,
    applied_on timestamptz NOT NULL DEFAULT now())"""

_NOT_EMPTY = """
SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp%'
"""
_COLUMNS = """
SELECT c.relname AS table, a.attname AS column
FROM pg_attribute a
JOIN pg_class c ON c.oid = a.attrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p')
  AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = ''
"""
_FOREIGN_KEYS = """
SELECT child.relname AS child, parent.relname AS parent
FROM pg_constraint k
JOIN pg_class child ON child.oid = k.conrelid
JOIN pg_class parent ON parent.oid = k.confrelid
JOIN pg_namespace n ON n.oid = child.relnamespace
WHERE k.contype = 'f' AND n.nspname = 'public'
"""
_SEQUENCES = """
SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = 'public' AND c.relkind = 'S'
"""
_TRIGGERED = """
SELECT DISTINCT c.relname FROM pg_trigger t
JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = 'public' AND NOT t.tgisinternal
"""


async def check_empty(dsn: str) -> None:
    """BackupError unless the database at `dsn` holds no tables (checked again when loading)."""
    try:
        conn = await asyncpg.connect(dsn)
    except (OSError, asyncpg.PostgresError) as exc:
        raise BackupError(f"cannot connect to Postgres: {exc}") from exc
    try:
        await _require_empty(conn)
    finally:
        await conn.close()


async def _require_empty(conn: asyncpg.Connection) -> None:
    if await conn.fetchval(_NOT_EMPTY):
        raise BackupError("the configured database is not empty; restore only into an empty one")


async def load_database(
    dsn: str, dump: Path, tool: Tool, manifest: Manifest, highest_build: int, workdir: Path
) -> None:
    """Make the schema and load the dump's data at `dsn`, or nothing at all."""
    entries = parse_toc(
        await run_tool([tool.path, "--list", str(dump)], tool_env(None), "pg_restore")
    )
    try:
        conn = await asyncpg.connect(dsn)
    except (OSError, asyncpg.PostgresError) as exc:
        raise BackupError(f"cannot connect to Postgres: {exc}") from exc
    try:
        async with conn.transaction():
            schema = await _make_schema(conn, manifest.schema_version)
            listing = workdir / "restore.list"
            listing.write_text(restore_list(entries, load_order(schema.columns, schema.references)))
            await _set_triggers(conn, schema.triggered, "DISABLE")
            script = [tool.path, "--use-list", str(listing), "--file=-", str(dump)]
            try:
                await _load(conn, script, schema)
            except asyncpg.PostgresError as exc:
                raise BackupRefused(f"the database dump's data does not load: {exc}") from exc
            await _set_triggers(conn, schema.triggered, "ENABLE")
            await _check_migrations(conn, manifest)
            await _advance_build_ids(conn, highest_build)
    except asyncpg.PostgresError as exc:
        raise BackupError(f"restoring the database failed: {exc}") from exc
    finally:
        await conn.close()


@dataclass(frozen=True, slots=True)
class _Schema:
    """What the migrations made, as restore needs it."""

    columns: dict[str, frozenset[str]]  # table -> its columns (COPY's, generated ones left out)
    references: list[tuple[str, str]]  # (referring table, referred table)
    sequences: frozenset[str]
    triggered: list[str]  # tables with triggers of their own


async def _make_schema(conn: asyncpg.Connection, version: int) -> _Schema:
    """Run this Kopers' migrations up to `version` (without their bookkeeping rows)."""
    # The lock `kopers migrate` takes: a server starting meanwhile waits for the commit.
    await conn.execute("SELECT pg_advisory_xact_lock($1)", _LOCK_KEY)
    await _require_empty(conn)
    try:
        await conn.execute(MIGRATIONS_TABLE)
        for migration in discover():
            if migration.version <= version:
                await conn.execute(migration.path.read_text())
    except asyncpg.PostgresError as exc:
        raise BackupError(f"cannot make the schema in the database: {exc}") from exc
    columns: dict[str, set[str]] = {}
    for row in await conn.fetch(_COLUMNS):
        columns.setdefault(row["table"], set()).add(row["column"])
    return _Schema(
        columns={table: frozenset(names) for table, names in columns.items()},
        references=[(r["child"], r["parent"]) for r in await conn.fetch(_FOREIGN_KEYS)],
        sequences=frozenset(r["relname"] for r in await conn.fetch(_SEQUENCES)),
        triggered=[r["relname"] for r in await conn.fetch(_TRIGGERED)],
    )


async def _set_triggers(conn: asyncpg.Connection, tables: list[str], how: str) -> None:
    for table in tables:
        await conn.execute(f"ALTER TABLE public.{_quote(table)} {how} TRIGGER USER")


async def _load(conn: asyncpg.Connection, argv: list[str], schema: _Schema) -> None:
    """Run pg_restore for the data script and send what it says to Postgres."""
    proc = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=tool_env(None),
    )
    assert proc.stdout is not None and proc.stderr is not None
    errors = asyncio.ensure_future(proc.stderr.read())
    try:
        lines = _Lines(proc.stdout)
        loaded: set[str] = set()
        while (line := await lines.next()) is not None:
            statement = parse_line(line)
            if isinstance(statement, CopyStart):
                check_copy(statement, schema.columns)
                if statement.table in loaded:
                    raise BackupRefused(f"the database dump holds table {statement.table} twice")
                loaded.add(statement.table)
                await conn.copy_to_table(
                    statement.table,
                    schema_name="public",
                    columns=list(statement.columns),
                    source=_rows(lines, statement.table),
                    format="text",
                )
            elif statement is not None:
                if statement.sequence not in schema.sequences:
                    raise BackupRefused(
                        f"the database dump sets sequence {statement.sequence}, "
                        "which is not part of the Kopers schema"
                    )
                await conn.execute(
                    "SELECT pg_catalog.setval($1::regclass, $2, $3)",
                    f"public.{_quote(statement.sequence)}",
                    statement.value,
                    statement.called,
                )
        await proc.wait()
        if proc.returncode != 0:
            raise BackupError(f"pg_restore failed: {last_line(await errors)}")
    finally:
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
        errors.cancel()


class _Lines:
    """Lines of a stream without their "\\n", however long; None at its end."""

    def __init__(self, stream: asyncio.StreamReader) -> None:
        self._stream = stream
        self._buffer = bytearray()
        self._eof = False

    async def next(self) -> bytes | None:
        while True:
            end = self._buffer.find(b"\n")
            if end >= 0:
                line = bytes(self._buffer[:end])
                del self._buffer[: end + 1]
                return line
            if self._eof:
                if self._buffer:
                    raise BackupRefused("the database dump's script ends in the middle of a line")
                return None
            chunk = await self._stream.read(COPY_BATCH)
            if chunk:
                self._buffer += chunk
            else:
                self._eof = True


async def _rows(lines: _Lines, table: str) -> AsyncIterator[bytes]:
    """A COPY block's rows, in batches, up to its `\\.` line."""
    batch = bytearray()
    while (line := await lines.next()) is not None:
        if is_end_of_data(line):
            if batch:
                yield bytes(batch)
            return
        batch += line + b"\n"
        if len(batch) >= COPY_BATCH:
            yield bytes(batch)
            batch.clear()
    raise BackupRefused(f"the database dump's data of table {table} has no end")


async def _check_migrations(conn: asyncpg.Connection, manifest: Manifest) -> None:
    rows = await conn.fetch("SELECT version, name FROM schema_migrations ORDER BY version")
    restored = tuple((int(r["version"]), str(r["name"])) for r in rows)
    if restored != manifest.migrations:
        version = restored[-1][0] if restored else 0
        raise BackupRefused(
            f"the dumped database is at schema version {version}, "
            f"its manifest says {manifest.schema_version}"
        )


async def _advance_build_ids(conn: asyncpg.Connection, highest: int) -> None:
    """Make the next build id larger than any the restored files name."""
    row = await conn.fetchrow("SELECT last_value, is_called FROM public.builds_id_seq")
    used = row["last_value"] if row["is_called"] else row["last_value"] - 1
    if highest > used:
        await conn.execute("SELECT setval('public.builds_id_seq', $1, true)", highest)


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'
