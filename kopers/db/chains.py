"""Dependencies between builds: Copr's batches and explicit chains, per chroot.

Runs inside the transaction that creates a build, so a build and the edges
that hold it back commit together. Copr's semantics: `--after-build-id N`
puts the new build in a new batch that runs after N's batch finishes;
`--with-build-id N` puts it in N's batch, so it waits for what N waits for.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import asyncpg

from kopers.db.base import StoreBase
from kopers.errors import BadRequest
from kopers.models import BuildState

_DEAD = frozenset({BuildState.FAILED, BuildState.CANCELED, BuildState.SKIPPED})


@dataclass(frozen=True, slots=True)
class ChainSpec:
    """How a new build relates to earlier ones."""

    after_build_id: int | None = None
    with_build_id: int | None = None
    depends_on: tuple[int, ...] = ()  # explicit: wait for these builds' tasks, chroot by chroot

    @property
    def empty(self) -> bool:
        return self.after_build_id is None and self.with_build_id is None and not self.depends_on


@dataclass(frozen=True, slots=True)
class TaskStart:
    """The state a new task starts in, given its dependencies."""

    state: BuildState
    reason: str | None = None


def start_state(
    default: BuildState, chroot: str, deps: Sequence[tuple[int, str, BuildState]]
) -> TaskStart:
    """Skipped if a dependency already failed, waiting if one is unfinished. Pure."""
    for dep_build, dep_chroot, state in deps:
        if state in _DEAD:
            return TaskStart(
                BuildState.SKIPPED, f"dependency build {dep_build} {state} on chroot {dep_chroot}"
            )
    if any(state != BuildState.SUCCEEDED for _, _, state in deps):
        return TaskStart(BuildState.WAITING)
    return TaskStart(default)


class ChainStore(StoreBase):
    async def _ensure_batch(self, conn: asyncpg.Connection, build_id: int) -> int:
        batch = await conn.fetchval(self.q.batch_of, build_id)
        if batch is None:
            if not await conn.fetchval("SELECT 1 FROM builds WHERE id = $1", build_id):
                raise BadRequest(f"build {build_id} does not exist")
            batch = await conn.fetchval(self.q.new_batch, None)
            await conn.execute(self.q.set_batch, build_id, batch)
        return int(batch)

    async def _link(
        self, conn: asyncpg.Connection, build_id: int, chroots: Sequence[str], chain: ChainSpec
    ) -> dict[str, list[tuple[int, str, BuildState]]]:
        """Record the new build's batch and dependency edges; return deps per chroot."""
        blocking_batch: int | None = None
        if chain.after_build_id is not None and chain.with_build_id is not None:
            raise BadRequest("after_build_id and with_build_id cannot be used together")
        if chain.after_build_id is not None:
            blocking_batch = await self._ensure_batch(conn, chain.after_build_id)
            own = await conn.fetchval(self.q.new_batch, blocking_batch)
            await conn.execute(self.q.set_batch, build_id, own)
        elif chain.with_build_id is not None:
            own = await self._ensure_batch(conn, chain.with_build_id)
            await conn.execute(self.q.set_batch, build_id, own)
            blocking_batch = await conn.fetchval(self.q.batch_after, own)
        deps: dict[str, list[tuple[int, str, BuildState]]] = {c: [] for c in chroots}
        for chroot in chroots:
            rows = []
            if blocking_batch is not None:
                rows += await conn.fetch(
                    self.q.tasks_of_batch_on_chroot, blocking_batch, chroot, build_id
                )
            for other in chain.depends_on:
                row = await conn.fetchrow(self.q.task_of_build_on_chroot, other, chroot)
                if row is not None:
                    rows.append(row)
            for row in rows:
                await conn.execute(
                    self.q.add_task_dep, build_id, chroot, row["build_id"], row["chroot"]
                )
                deps[chroot].append((row["build_id"], row["chroot"], BuildState(row["state"])))
        return deps

    async def deps_of_build(self, build_id: int) -> list[asyncpg.Record]:
        return list(await self.db.fetch(self.q.deps_of_build, build_id))

    async def unfinished_deps(self) -> list[asyncpg.Record]:
        """Dependency edges of every unfinished task, with each dependency's state."""
        return list(await self.db.fetch(self.q.unfinished_deps))
