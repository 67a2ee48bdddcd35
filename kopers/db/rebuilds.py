"""Automatic rebuilds in the store: the project switch, why each rebuild exists.

See sql/0011_rebuilds.sql and kopers.rebuilds.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from kopers.db.base import StoreBase


@dataclass(frozen=True, slots=True)
class RebuildRecord:
    """Why a build was submitted automatically, and the chain it belongs to."""

    build_id: int
    trigger_build_id: int | None
    trigger_package: str
    source_build_id: int
    origin_build_id: int  # the build (not a rebuild) the source first came with
    generation: int  # appended to the forced %dist: newer than what it replaces
    chain: tuple[int, ...]
    because: tuple[dict[str, Any], ...]  # {"package", "chroot", "provides": [...]}
    broken: tuple[tuple[str, str], ...]  # dependencies dropped to break cycles

    def as_json(self) -> dict[str, Any]:
        return {
            "generation": self.generation,
            "trigger": {"build": self.trigger_build_id, "package": self.trigger_package},
            "source_build": self.source_build_id,
            "chain": list(self.chain),
            "because": list(self.because),
            "broken_cycles": [list(edge) for edge in self.broken],
        }


@dataclass(frozen=True, slots=True)
class PackageBuild:
    """A package's newest build on one chroot."""

    build_id: int
    package: str
    srpm_name: str | None
    chroot: str
    origin: int  # the build (not a rebuild) its source came with; its own id if none
    generation: int  # 0: not an automatic rebuild

    @property
    def recency(self) -> tuple[int, int, int]:
        """Newer sources first, then later rebuilds of the same source."""
        return (self.origin, self.generation, self.build_id)


class RebuildStore(StoreBase):
    async def set_rebuild_dependents(self, project_id: int, on: bool) -> None:
        await self.db.execute(self.q.set_rebuild_dependents, project_id, on)

    async def add_rebuild(self, record: RebuildRecord) -> None:
        await self.db.execute(
            self.q.add_rebuild,
            record.build_id,
            record.trigger_build_id,
            record.trigger_package,
            record.source_build_id,
            record.origin_build_id,
            record.generation,
            list(record.chain),
            list(record.because),
            [list(edge) for edge in record.broken],
        )

    async def set_rebuild_chain(self, chain: tuple[int, ...]) -> None:
        await self.db.execute(self.q.set_rebuild_chain, list(chain), list(chain))

    async def get_rebuild(self, build_id: int) -> RebuildRecord | None:
        row = await self.db.fetchrow(self.q.get_rebuild, build_id)
        if row is None:
            return None
        return RebuildRecord(
            build_id=row["build_id"],
            trigger_build_id=row["trigger_build_id"],
            trigger_package=row["trigger_package"],
            source_build_id=row["source_build_id"],
            origin_build_id=row["origin_build_id"],
            generation=row["generation"],
            chain=tuple(row["chain"]),
            because=tuple(row["because"]),
            broken=tuple((a, b) for a, b in row["broken"]),
        )

    async def queued_rebuilds(self, project_id: int) -> int:
        return int(await self.db.fetchval(self.q.queued_rebuilds, project_id))

    async def latest_package_builds(self, project_id: int) -> list[PackageBuild]:
        rows = await self.db.fetch(self.q.latest_package_builds, project_id)
        return [
            PackageBuild(
                build_id=row["id"],
                package=row["package_name"],
                srpm_name=row["srpm_name"],
                chroot=row["chroot"],
                origin=row["origin"],
                generation=row["generation"],
            )
            for row in rows
        ]
