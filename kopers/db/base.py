"""The base every part of the store shares: the pool, the named queries, and transactions.

`atomic()` opens a transaction and makes every store call made inside the
block *by the same asyncio task* run on that transaction's connection. So a
domain operation and the audit event that records it commit together, or
neither does, without a connection being passed through the domain code:

    async with store.atomic():
        await projects.update_settings(...)   # its store calls join
        await store.add_event(...)

An `atomic()` inside another is a savepoint: if its block raises, only its own
writes are undone and the outer block may go on. Store methods that need
several statements to be atomic open one themselves, so they join the caller's.

Work outside Postgres cannot be rolled back, so it is tied to the outcome of
the outermost transaction with three hooks:
- `before_commit`: runs inside the transaction, after the block, just before
  COMMIT; if it raises, everything rolls back (for a step that is worse to
  undo than to do last, e.g. taking packages out of a repository);
- `after_commit`: runs once the commit succeeded (stopping running tasks,
  deleting files of rows that are gone);
- `on_rollback`: runs if the transaction (or the savepoint it was registered
  in) is rolled back, e.g. to delete a key made for a project whose rows are
  gone. Outside a transaction there is nothing to roll back: it is dropped.

A task started inside the block (`asyncio.create_task`, `gather`) does not
share the connection (asyncpg connections serve one caller at a time): its
store calls use the pool, outside the transaction. Do not fan out writes to
rows the block has written, or they wait for the block's commit forever.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from kopers.db.queries import Queries

log = logging.getLogger(__name__)

Hook = Callable[[], Awaitable[None]]


@dataclass(slots=True)
class _Frame:
    """One level of `atomic()`: the hooks registered while it was the innermost."""

    before_commit: list[Hook] = field(default_factory=list)
    after_commit: list[Hook] = field(default_factory=list)
    on_rollback: list[Hook] = field(default_factory=list)

    def adopt(self, inner: _Frame) -> None:
        """A savepoint was released: its hooks now wait for this level's outcome."""
        self.before_commit += inner.before_commit
        self.after_commit += inner.after_commit
        self.on_rollback += inner.on_rollback


@dataclass(slots=True)
class _Transaction:
    pool: asyncpg.Pool
    conn: asyncpg.Connection
    task: asyncio.Task[Any] | None
    frames: list[_Frame]


# The transaction open in the current context. A task created inside the block
# inherits a copy of the context, hence the task check in `_current()`.
_CURRENT: ContextVar[_Transaction | None] = ContextVar("kopers_db_transaction", default=None)


class StoreBase:
    def __init__(self, pool: asyncpg.Pool, queries: Queries | None = None) -> None:
        self.pool = pool
        self.q = queries or Queries()

    @property
    def db(self) -> Any:
        """Where a statement runs: this task's open transaction, else the pool.

        Both offer `execute`, `fetch`, `fetchrow`, `fetchval` and `executemany`.
        """
        tx = self._current()
        return self.pool if tx is None else tx.conn

    def _current(self) -> _Transaction | None:
        tx = _CURRENT.get()
        if tx is None or tx.pool is not self.pool or tx.task is not asyncio.current_task():
            return None
        return tx

    @asynccontextmanager
    async def atomic(self) -> AsyncIterator[asyncpg.Connection]:
        """One transaction for the block (a savepoint inside another); yields its connection."""
        tx = self._current()
        if tx is not None:
            async with self._savepoint(tx) as conn:
                yield conn
            return
        frame = _Frame()
        try:
            async with self.pool.acquire() as conn:
                token = _CURRENT.set(_Transaction(self.pool, conn, asyncio.current_task(), [frame]))
                try:
                    async with conn.transaction():
                        yield conn
                        for hook in frame.before_commit:
                            await hook()
                finally:
                    _CURRENT.reset(token)
        except BaseException:
            await _undo(frame.on_rollback)
            raise
        await _run_after_commit(frame.after_commit)

    @asynccontextmanager
    async def _savepoint(self, tx: _Transaction) -> AsyncIterator[asyncpg.Connection]:
        frame = _Frame()
        tx.frames.append(frame)
        try:
            async with tx.conn.transaction():
                yield tx.conn
        except BaseException:
            tx.frames.pop()
            await _undo(frame.on_rollback)
            raise
        tx.frames.pop()
        tx.frames[-1].adopt(frame)

    async def before_commit(self, hook: Hook) -> None:
        """Run `hook` last inside this task's transaction (now, if there is none)."""
        tx = self._current()
        if tx is None:
            await hook()
        else:
            tx.frames[-1].before_commit.append(hook)

    async def after_commit(self, hook: Hook) -> None:
        """Run `hook` once this task's transaction has committed (now, if there is none)."""
        tx = self._current()
        if tx is None:
            await hook()
        else:
            tx.frames[-1].after_commit.append(hook)

    def on_rollback(self, hook: Hook) -> None:
        """Run `hook` if this task's transaction (or savepoint) is rolled back."""
        tx = self._current()
        if tx is not None:
            tx.frames[-1].on_rollback.append(hook)


async def _run_after_commit(hooks: list[Hook]) -> None:
    """Run every hook in order; then raise the first error, if any.

    After a commit the data is there whatever a hook does, so one failing
    hook does not keep the others (e.g. deleting other files) from running.
    """
    first: BaseException | None = None
    for hook in hooks:
        try:
            await hook()
        except Exception as exc:
            log.exception("a transaction hook failed")
            first = first or exc
    if first is not None:
        raise first


async def _undo(hooks: list[Hook]) -> None:
    """Run the rollback hooks, newest first; the error that caused the rollback wins."""
    for hook in reversed(hooks):
        try:
            await hook()
        except Exception:
            log.exception("cleaning up after a rolled back transaction failed")
