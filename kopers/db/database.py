"""The Postgres server Kopers talks to: embedded (pgserver) or given by a DSN.

With no DSN, the embedded server lives in `<data_dir>/pg`. pgserver counts the
processes that use a data directory, so `kopers serve` and an admin command
run side by side share one server, and the last one out stops it.
"""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg

from kopers.errors import InfrastructureError

log = logging.getLogger(__name__)

START_ATTEMPTS = 4
PGSERVER_USER = "pgserver"  # the account pgserver runs Postgres as when started by root


@dataclass(slots=True)
class Database:
    """An open connection pool plus, when embedded, the server handle that keeps it alive."""

    pool: asyncpg.Pool
    dsn: str
    embedded: Any = None

    async def close(self) -> None:
        await self.pool.close()


def embedded_dsn(data_dir: Path) -> tuple[str, Any]:
    """Start (or join) the embedded server under data_dir/pg and return its DSN."""
    import pgserver  # imported lazily: only the embedded mode needs it

    pgdata = data_dir / "pg"
    pgdata.mkdir(parents=True, exist_ok=True)
    if os.geteuid() == 0:
        # As root, pgserver runs Postgres as its own "pgserver" user, which must
        # be able to reach the data directory (e.g. below a mode-700 parent).
        from pgserver.utils import ensure_user_exists

        from kopers.hostaccess import ensure_traversable

        ensure_user_exists(PGSERVER_USER)
        ensure_traversable(pgdata.parent, PGSERVER_USER, set())
    # pgserver gives `pg_ctl start` a fixed 10 s; on a loaded host Postgres may
    # need longer and then comes up anyway, so joining again usually works.
    # pgserver caches the handle of a failed start, so drop it before retrying.
    for attempt in range(1, START_ATTEMPTS + 1):
        try:
            server = pgserver.get_server(pgdata, cleanup_mode="stop")
            server.psql("SELECT 1;")  # fails loudly now rather than at the first query
            break
        except (subprocess.TimeoutExpired, subprocess.CalledProcessError):
            pgserver.PostgresServer._instances.pop(pgdata.resolve(), None)
            if attempt == START_ATTEMPTS:
                raise
            log.warning("the embedded Postgres is slow to start; waiting for it (%d)", attempt)
            time.sleep(5)
    return server.get_uri(), server


async def open_database(
    dsn: str, data_dir: Path, min_size: int = 1, max_size: int = 10
) -> Database:
    """Connect to `dsn`, or to the embedded server when `dsn` is empty."""
    server = None
    if not dsn:
        try:
            dsn, server = await asyncio.to_thread(embedded_dsn, data_dir)
        except Exception as exc:  # pgserver raises plain exceptions with the pg log
            raise InfrastructureError(f"cannot start the embedded Postgres: {exc}") from exc
        log.info("using the embedded Postgres in %s", data_dir / "pg")
    try:
        pool = await asyncpg.create_pool(dsn, min_size=min_size, max_size=max_size, init=_init_conn)
    except (OSError, asyncpg.PostgresError) as exc:
        raise InfrastructureError(f"cannot connect to Postgres: {exc}") from exc
    assert pool is not None
    return Database(pool=pool, dsn=dsn, embedded=server)


async def _init_conn(conn: asyncpg.Connection) -> None:
    import json

    await conn.set_type_codec("jsonb", encoder=json.dumps, decoder=json.loads, schema="pg_catalog")
