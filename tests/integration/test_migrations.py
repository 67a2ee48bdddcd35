"""Migrations apply from an empty database and from the previous release's, to the same schema.

The previous release's database is its migrations (sql/released.txt pins
them) with the data of an install that was used: users, a group, tokens, a
web session, a project with packages and a finished build
(data/release-0.1.0.sql). After migrating, Kopers serves that data: the old
token still authenticates, the build still reads as it was.
"""

from __future__ import annotations

import base64
import shutil
from pathlib import Path

import asyncpg
import pytest

from kopers import config as config_mod
from kopers.db.migrations import SQL_DIR, discover, migrate, releases
from tests.conftest import PgServer, fresh_database
from tests.integration.conftest import REPO, serving

pytestmark = pytest.mark.integration
DATA = Path(__file__).parent / "data" / "release-0.1.0.sql"
# The copr-cli token alice made on that install (the dump holds only its digest).
OLD_TOKEN = ("5a9b532364ba5b1c39098c8a", "jC3gn6jDlu9yDxqDgO2q-To4rhhhrwnnHi6TaNJo1SY")

SCHEMA = """
SELECT 'column ' || c.relname || '.' || a.attname || ' ' || format_type(a.atttypid, a.atttypmod)
       || CASE WHEN a.attnotnull THEN ' not null' ELSE '' END
       || coalesce(' default ' || pg_get_expr(d.adbin, d.adrelid), '')
  FROM pg_attribute a
  JOIN pg_class c ON c.oid = a.attrelid
  JOIN pg_namespace n ON n.oid = c.relnamespace AND n.nspname = 'public'
  LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
 WHERE c.relkind = 'r' AND a.attnum > 0 AND NOT a.attisdropped
UNION ALL
SELECT 'constraint ' || c.relname || ' ' || pg_get_constraintdef(k.oid)
  FROM pg_constraint k
  JOIN pg_class c ON c.oid = k.conrelid
  JOIN pg_namespace n ON n.oid = c.relnamespace AND n.nspname = 'public'
UNION ALL
SELECT 'index ' || indexdef FROM pg_indexes WHERE schemaname = 'public'
UNION ALL
SELECT 'function ' || p.proname || ' ' || md5(p.prosrc)
  FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace AND n.nspname = 'public'
UNION ALL
SELECT 'trigger ' || tgname || ' ' || pg_get_triggerdef(t.oid)
  FROM pg_trigger t
  JOIN pg_class c ON c.oid = t.tgrelid
  JOIN pg_namespace n ON n.oid = c.relnamespace AND n.nspname = 'public'
 WHERE NOT t.tgisinternal
"""


async def schema_of(pool: asyncpg.Pool) -> list[str]:
    """What the schema is (tables, columns, constraints, indexes, functions, triggers)."""
    return sorted(r[0] for r in await pool.fetch(SCHEMA))


async def load_release(pool: asyncpg.Pool, sql_dir: Path) -> None:
    """The previous release's schema from its own migration files, then its data."""
    last = releases()[-1]
    sql_dir.mkdir()
    for name in last.files:
        shutil.copy(SQL_DIR / name, sql_dir / name)
    applied = await migrate(pool, sql_dir)
    assert {m.path.name for m in applied} == set(last.files)
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute(DATA.read_text())


async def test_from_empty_and_from_the_previous_release_to_the_same_schema(
    pg_server: PgServer, tmp_path: Path
) -> None:
    last = releases()[-1]
    async with fresh_database(pg_server) as empty, fresh_database(pg_server) as old:
        async with asyncpg.create_pool(empty, min_size=1, max_size=2) as pool:
            applied = await migrate(pool)
            assert [m.version for m in applied] == [m.version for m in discover()]
            assert await migrate(pool) == []  # a second run has nothing to do
            want = await schema_of(pool)
        async with asyncpg.create_pool(old, min_size=1, max_size=2) as pool:
            await load_release(pool, tmp_path / "sql")
            applied = await migrate(pool)
            assert all(m.version > last.version for m in applied)
            assert await schema_of(pool) == want


async def test_kopers_serves_the_previous_release_s_data_after_migrating(
    pg_server: PgServer, tmp_path: Path
) -> None:
    async with fresh_database(pg_server) as url:
        async with asyncpg.create_pool(url, min_size=1, max_size=2) as pool:
            await load_release(pool, tmp_path / "sql")
        cfg = config_mod.load(
            str(REPO / "kopers.toml"),
            env={"KOPERS_DATA_DIR": str(tmp_path / "data"), "KOPERS_DATABASE_DSN": url},
        )
        async with serving(cfg, users=False) as api:
            api.auth["alice"] = "Basic " + base64.b64encode(":".join(OLD_TOKEN).encode()).decode()
            status, me = await api.call("GET", "/api_3/auth-check", "alice")
            assert (status, me["name"]) == (200, "alice")
            status, build = await api.call("GET", "/api_3/build/1")
            assert status == 200, build
            assert (build["state"], build["source_package"]["name"]) == (
                "succeeded",
                "kopers-rel-hello",
            )
            status, project = await api.call(
                "GET", "/api_3/project?ownername=alice&projectname=hello"
            )
            assert (status, project["description"]) == (200, "A project from release 0.1.0")
            status, packages = await api.call(
                "GET", "/api_3/package/list?ownername=alice&projectname=hello"
            )
            assert sorted(p["name"] for p in packages["items"]) == [
                "kopers-rel-hello",
                "kopers-scm",
            ]
            # New rows still get fresh ids after the release's own.
            status, made = await api.call(
                "POST",
                "/api_3/project/add/alice?ownername=alice",
                "alice",
                json={"name": "after", "chroots": ["debian-12-x86_64"]},
            )
            assert status == 200, made
            assert made["id"] > project["id"]
