"""Submitting builds whose SRPM is made in a VM (spec, script, PyPI) or that need none.

A `.spec` upload, a custom script and a PyPI package each become a build whose
source step makes the SRPM in a builder VM; nothing of them is evaluated on
the host. An uploaded binary RPM becomes a build whose source step publishes
it as it is, through the same header gate (kopers.rpmfile) and publisher.
"""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kopers.errors import BadRequest
from kopers.models import Build, Project, SourceType, User
from kopers.rpmfile import read_binary_rpm
from kopers.sourcekinds import SPEC_NAME, CustomSource, PypiSource, check_spec_text

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from kopers.buildrequest import BuildOptions, BuildRequest
    from kopers.config import Config
    from kopers.db.store import Store
    from kopers.paths import DataPaths


class SourceSubmissions:
    """The submission kinds beyond SRPMs; mixed into kopers.submission.Submissions."""

    if TYPE_CHECKING:
        config: Config
        paths: DataPaths
        store: Store

        async def check(
            self,
            user: User,
            owner: str,
            name: str,
            request: BuildRequest,
            *,
            incoming_bytes: int = 0,
        ) -> Project: ...

        def _options(self, request: BuildRequest, project: Project) -> BuildOptions: ...

        async def _deferred(
            self,
            user: User,
            project: Project,
            options: BuildOptions,
            source_type: SourceType,
            source: dict[str, Any],
            *,
            on_created: Callable[[int], Awaitable[None]] | None = None,
            package: tuple[str, str, str] | None = None,
        ) -> Build: ...

    async def from_spec(
        self, user: User, owner: str, name: str, request: BuildRequest, spooled: Path
    ) -> Build:
        """A build from an uploaded .spec; the VM fetches its sources and makes the SRPM."""
        try:
            if not SPEC_NAME.match(spooled.name):
                raise BadRequest(f"{spooled.name[:80]!r} is not a usable .spec file name")
            data = await asyncio.to_thread(_read_head, spooled, (1 << 20) + 1)
            check_spec_text(data)
            project = await self.check(user, owner, name, request, incoming_bytes=len(data))
            options = self._options(request, project)

            async def keep_spec(build_id: int) -> None:
                dest = self.paths.source_dir(build_id)
                dest.mkdir(parents=True, exist_ok=True)
                shutil.move(spooled, dest / spooled.name)

            source = {"filename": spooled.name}
            return await self._deferred(
                user, project, options, SourceType.SPEC, source, on_created=keep_spec
            )
        finally:
            shutil.rmtree(spooled.parent, ignore_errors=True)

    async def from_rpm_upload(
        self, user: User, owner: str, name: str, request: BuildRequest, spooled: Path
    ) -> Build:
        """A build that publishes an uploaded binary RPM into its chroots, unbuilt."""
        try:
            size = spooled.stat().st_size
            project = await self.check(user, owner, name, request, incoming_bytes=size)
            options = self._options(request, project)
            info = await read_binary_rpm(spooled)
            nevra = info.nevra

            async def keep_rpm(build_id: int) -> None:
                dest = self.paths.source_dir(build_id)
                dest.mkdir(parents=True, exist_ok=True)
                shutil.move(spooled, dest / nevra.filename)

            source = {"filename": nevra.filename}
            return await self._deferred(
                user,
                project,
                options,
                SourceType.RPM_UPLOAD,
                source,
                on_created=keep_rpm,
                package=(nevra.name, f"{nevra.version}-{nevra.release}", nevra.filename),
            )
        finally:
            shutil.rmtree(spooled.parent, ignore_errors=True)

    async def from_custom(
        self, user: User, owner: str, name: str, request: BuildRequest, custom: CustomSource
    ) -> Build:
        """A build whose SRPM a script makes in a fresh VM of its chroot."""
        project = await self.check(user, owner, name, request)
        options = self._options(request, project)
        if custom.chroot is not None:
            chroot = self.config.chroot(custom.chroot)
            if chroot is None or not chroot.enabled:
                raise BadRequest(f"chroot {custom.chroot[:60]!r} is not a chroot of this server")
        return await self._deferred(user, project, options, SourceType.CUSTOM, custom.as_source())

    async def from_pypi(
        self, user: User, owner: str, name: str, request: BuildRequest, pypi: PypiSource
    ) -> Build:
        """A build whose spec pyp2spec generates in a VM from the configured index."""
        project = await self.check(user, owner, name, request)
        options = self._options(request, project)
        return await self._deferred(user, project, options, SourceType.PYPI, pypi.as_source())


def _read_head(path: Path, size: int) -> bytes:
    with path.open("rb") as handle:
        return handle.read(size)
