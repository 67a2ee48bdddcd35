"""Packages: a project's named packages, their source definitions, and their builds.

A package row holds Copr's `source_dict` for its source type as JSON, written
from and read into the typed definitions of `kopers.models`
(kopers.package_sources). Builds point at their package by `package_id`:
`link_build` gives a build whose package name has become known its package,
making one from the build's own source when the project has none of that name.
"""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg

from kopers.db.builds import BuildStore
from kopers.errors import Conflict, NotFound
from kopers.models import Build, Package, PackageSource, PackageSourceType
from kopers.package_sources import source_from_json, source_json, source_type_of


@dataclass(frozen=True, slots=True)
class PackageSettings:
    """What a package holds besides its name: written whole by add and edit."""

    source: PackageSource | None
    webhook_rebuild: bool = False
    max_builds: int | None = None
    timeout: int | None = None
    chroot_denylist: tuple[str, ...] = ()

    @classmethod
    def of(cls, package: Package) -> PackageSettings:
        return cls(
            package.source,
            package.webhook_rebuild,
            package.max_builds,
            package.timeout,
            package.chroot_denylist,
        )

    def _args(self) -> tuple[object, ...]:
        return (
            str(source_type_of(self.source)),
            source_json(self.source),
            self.webhook_rebuild,
            self.max_builds,
            self.timeout,
            list(self.chroot_denylist),
        )


class PackageStore(BuildStore):
    async def create_package(
        self, project_id: int, name: str, settings: PackageSettings
    ) -> Package:
        """A new package; Conflict when the project has one of that name."""
        package_id = await self.db.fetchval(
            self.q.create_package, project_id, name, *settings._args()
        )
        if package_id is None:
            raise Conflict(f"Package {name} already exists in this project.")
        return await self.package_by_id(package_id)

    async def get_package(self, project_id: int, name: str) -> Package:
        row = await self.db.fetchrow(self.q.get_package, project_id, name)
        if row is None:
            raise NotFound(f"No package with name {name} in this project.")
        return _package(row)

    async def package_by_id(self, package_id: int) -> Package:
        row = await self.db.fetchrow(self.q.get_package_by_id, package_id)
        if row is None:
            raise NotFound(f"package {package_id} does not exist")
        return _package(row)

    async def list_packages(self, project_id: int, limit: int | None, offset: int) -> list[Package]:
        """A project's packages by name."""
        rows = await self.db.fetch(self.q.list_packages, project_id, limit, offset)
        return [_package(r) for r in rows]

    async def update_package(self, package_id: int, settings: PackageSettings) -> Package:
        done = await self.db.fetchval(self.q.update_package, package_id, *settings._args())
        if done is None:
            raise NotFound(f"package {package_id} does not exist")
        return await self.package_by_id(package_id)

    async def delete_package(self, package_id: int) -> None:
        await self.db.execute(self.q.delete_package, package_id)

    async def link_build(self, build_id: int) -> None:
        """Give the build its package by name, making the package if the project has none."""
        await self.db.execute(self.q.link_build_package, build_id)

    async def attach_build(self, build_id: int, package_id: int) -> None:
        """Make the build one of the package's (a build from its stored definition)."""
        await self.db.execute(self.q.attach_build, build_id, package_id)

    async def package_of_build(self, build_id: int) -> int | None:
        """The id of the build's package; None when it has none (or is gone)."""
        value = await self.db.fetchval(self.q.package_of_build, build_id)
        return int(value) if value is not None else None

    async def package_builds(self, package_id: int) -> list[Build]:
        """Every build of the package, newest first."""
        rows = await self.db.fetch(self.q.builds_of_package, package_id)
        return await self._with_tasks(rows)

    async def builds_by_package(self, project_id: int) -> dict[int, list[Build]]:
        """package id -> its builds, newest first, for every package of the project."""
        pairs = await self.db.fetch(self.q.package_builds_of_project, project_id)
        if not pairs:
            return {}
        builds = {b.id: b for b in await self.list_builds(project_id, None, None, 0)}
        out: dict[int, list[Build]] = {}
        for row in pairs:
            build = builds.get(row["id"])
            if build is not None:
                out.setdefault(row["package_id"], []).append(build)
        return out

    async def copy_packages(self, src_project_id: int, dst_project_id: int) -> list[int]:
        """Copy every package (definition and settings, not builds) to another project.

        Names the destination has already keep their own package. Returns the new ids.
        """
        rows = await self.db.fetch(self.q.copy_packages, src_project_id, dst_project_id)
        return [r["id"] for r in rows]


def _package(row: asyncpg.Record) -> Package:
    kind = PackageSourceType(row["source_type"])
    return Package(
        id=row["id"],
        project_id=row["project_id"],
        owner=row["owner"],
        project=row["project"],
        name=row["name"],
        source_type=kind,
        source=source_from_json(kind, row["source"]),
        webhook_rebuild=row["webhook_rebuild"],
        max_builds=row["max_builds"],
        timeout=row["timeout"],
        chroot_denylist=tuple(row["chroot_denylist"]),
    )
