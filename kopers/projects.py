"""Creating and deleting projects, with their keys and repositories.

A project's rows, its signing key and its results directory come and go
together: if making the key fails, the rows are rolled back.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from kopers import access
from kopers.builds import remove_sources
from kopers.config import Config
from kopers.db.store import Store
from kopers.errors import BadRequest
from kopers.models import Project, User
from kopers.paths import DataPaths
from kopers.publish.publisher import Publisher
from kopers.submission import MAX_TIMEOUT

_NAME = re.compile(r"^[A-Za-z0-9_.+-]+$")


def _text(data: Mapping[str, Any], key: str) -> str:
    value = data.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise BadRequest(f"{key} must be a string")
    return value


def _expiry(data: Mapping[str, Any]) -> datetime | None:
    """When a temporary project (copr-cli create --delete-after-days) is deleted."""
    days = _positive_or_none(data, "delete_after_days", None)
    return None if days is None else datetime.now(UTC) + timedelta(days=days)


def _positive_or_none(data: Mapping[str, Any], key: str, current: int | None) -> int | None:
    """A positive whole number (copr-cli may send it as a string), null, or absent."""
    if key not in data:
        return current
    value = data[key]
    if value is None or value == "":
        return None
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise BadRequest(f"{key} must be a positive whole number or null") from None
    if number <= 0:
        raise BadRequest(f"{key} must be a positive whole number or null")
    return number


def _list(data: Mapping[str, Any], key: str) -> list[str]:
    value = data.get(key)
    if value is None:
        return []
    if isinstance(value, str):
        return value.split()
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise BadRequest(f"{key} must be a list of strings")
    return value


class Projects:
    def __init__(self, config: Config, store: Store, publisher: Publisher) -> None:
        self.config = config
        self.store = store
        self.publisher = publisher

    async def create(self, user: User, owner: str, data: Mapping[str, Any]) -> Project:
        name = _text(data, "name")
        if not _NAME.match(name) or name in (".", ".."):
            raise BadRequest(f"invalid project name {name!r}: use letters, digits and _.+-")
        await access.authorize(self.store, user, access.Action.CREATE_PROJECT, access.Target(owner))
        chroots = _list(data, "chroots")
        if not chroots:
            raise BadRequest("At least one chroot must be selected")
        available = {c.name for c in self.config.enabled_chroots}
        unknown = [c for c in chroots if c not in available]
        if unknown:
            raise BadRequest(
                f"chroots not available on this server: {', '.join(unknown)}; "
                f"available: {', '.join(sorted(available))}"
            )

        async def make_key(project: Project) -> None:
            try:
                await self.publisher.init_project(project.owner, project.name, project.chroots)
            except BaseException:
                await self.publisher.remove_project(project.owner, project.name)
                raise

        return await self.store.create_project(
            owner,
            name,
            description=_text(data, "description"),
            instructions=_text(data, "instructions"),
            homepage=data.get("homepage") or None,
            contact=data.get("contact") or None,
            chroots=sorted(set(chroots)),
            additional_repos=_list(data, "additional_repos"),
            enable_net=bool(data.get("enable_net")),
            created_by=user.id,
            delete_after=_expiry(data),
            on_created=make_key,
        )

    async def update_settings(
        self, user: User, project: Project, data: Mapping[str, Any]
    ) -> Project:
        """Set retention, quota, expiry and default timeout.

        A key that is absent keeps its value; null clears it.
        """
        await access.authorize(
            self.store, user, access.Action.EDIT_PROJECT, access.Target.of(project)
        )
        keep = _positive_or_none(data, "keep_builds", project.keep_builds)
        quota = _positive_or_none(data, "quota_mib", project.quota_mib)
        delete_after = project.delete_after
        if "delete_after_days" in data:
            delete_after = _expiry(data)
        await self.store.set_project_storage(project.id, keep, quota, delete_after)
        if "build_timeout" in data:
            timeout = _positive_or_none(data, "build_timeout", None)
            if timeout is not None and not 60 <= timeout <= MAX_TIMEOUT:
                raise BadRequest(f"build_timeout must be between 60 and {MAX_TIMEOUT} seconds")
            await self.store.set_project_timeout(project.id, timeout)
        if keep is not None and keep != project.keep_builds:
            for chroot in project.chroots:
                await self.publisher.prune(project.owner, project.name, chroot, keep)
        return await self.store.project_by_id(project.id)

    async def expire(self, project: Project) -> None:
        """Delete a temporary project whose time is up (no user: the server does it)."""
        gone = await self.store.delete_project(project.id)
        await self.publisher.remove_project(project.owner, project.name)
        await remove_sources(DataPaths(self.config.data_dir), gone)

    async def delete(
        self,
        user: User,
        project: Project,
        before: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        """Delete a project; `before` (e.g. cancel its builds) runs once that is allowed."""
        await access.authorize(
            self.store, user, access.Action.DELETE_PROJECT, access.Target.of(project)
        )
        if before is not None:
            await before()
        gone = await self.store.delete_project(project.id)
        await self.publisher.remove_project(project.owner, project.name)
        await remove_sources(DataPaths(self.config.data_dir), gone)
