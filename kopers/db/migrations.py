"""Apply the numbered files in sql/ in order, each exactly once.

A migration and its bookkeeping row commit in one transaction, and an
advisory lock keeps two processes starting at once from racing.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path

import asyncpg

from kopers import resources
from kopers.errors import ConfigError

log = logging.getLogger(__name__)

SQL_DIR = resources.sql_dir()
_MIGRATION = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
_LOCK_KEY = 0x6B6F70657273  # "kopers"


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    path: Path


def discover(sql_dir: Path = SQL_DIR) -> list[Migration]:
    """The migrations in sql_dir, ordered by version; duplicate versions are an error."""
    found: dict[int, Migration] = {}
    for path in sorted(sql_dir.glob("*.sql")):
        m = _MIGRATION.match(path.name)
        if not m:
            continue
        version = int(m.group(1))
        if version in found:
            raise ConfigError(f"two migrations share version {version}: {path.name}")
        found[version] = Migration(version, m.group(2), path)
    return [found[v] for v in sorted(found)]


async def migrate(pool: asyncpg.Pool, sql_dir: Path = SQL_DIR) -> list[Migration]:
    """Apply pending migrations; return the ones applied now."""
    applied_now: list[Migration] = []
    async with pool.acquire() as conn:
        await conn.execute("SELECT pg_advisory_lock($1)", _LOCK_KEY)
        try:
            await conn.execute(
                """CREATE TABLE IF NOT EXISTS schema_migrations (
                       version integer PRIMARY KEY,
                       name text NOT NULL,
                       applied_on timestamptz NOT NULL DEFAULT now())"""
            )
            done = {r["version"] for r in await conn.fetch("SELECT version FROM schema_migrations")}
            for mig in discover(sql_dir):
                if mig.version in done:
                    continue
                async with conn.transaction():
                    await conn.execute(mig.path.read_text())
                    await conn.execute(
                        "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
                        mig.version,
                        mig.name,
                    )
                log.info("applied migration %04d_%s", mig.version, mig.name)
                applied_now.append(mig)
        finally:
            await conn.execute("SELECT pg_advisory_unlock($1)", _LOCK_KEY)
    return applied_now


@dataclass(frozen=True, slots=True)
class Release:
    """The migrations one release shipped: file name → SHA-256, theirs and every earlier one's."""

    name: str
    files: dict[str, str]

    @property
    def version(self) -> int:
        """The newest migration version in this release."""
        return max(int(name[:4]) for name in self.files)


def releases(sql_dir: Path = SQL_DIR) -> list[Release]:
    """The releases in `sql_dir/released.txt`, oldest first.

    The file lists, under each "release NAME" line, the migrations that
    release added with their SHA-256 ("<sha256>  <file>").
    """
    found: list[Release] = []
    files: dict[str, str] = {}
    text = (sql_dir / "released.txt").read_text()
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("release "):
            if found:
                found[-1] = Release(found[-1].name, dict(files))
            found.append(Release(line.removeprefix("release ").strip(), {}))
            continue
        digest, _, name = line.partition("  ")
        if not found or not _MIGRATION.match(name) or len(digest) != 64:
            raise ConfigError(f"released.txt line {number} is not '<sha256>  <migration>'")
        files[name] = digest
    if found:
        found[-1] = Release(found[-1].name, dict(files))
    return found
