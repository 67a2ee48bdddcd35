"""The base every part of the store shares: the pool and the named queries."""

from __future__ import annotations

import asyncpg

from kopers.db.queries import Queries


class StoreBase:
    def __init__(self, pool: asyncpg.Pool, queries: Queries | None = None) -> None:
        self.pool = pool
        self.q = queries or Queries()
