"""Creating, changing and deleting projects, with their keys and repositories.

A project's rows, its signing key and its results directory come and go
together. Each operation runs in one store transaction (`Store.atomic`), which
the caller may widen to take in the audit event: the key made for a new
project is deleted again if the transaction rolls back, and files of a
deleted project, or builds pruned by a new retention, go only once the rows'
change has committed.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
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


# The settings' bounds: Postgres' integer columns, an expiry that stays a date
# (a century ahead at most), and the build timeout's own range.
MAX_INT4 = (1 << 31) - 1
MAX_DAYS = 36500
SETTING_BOUNDS: Mapping[str, tuple[int, int, str]] = {
    "keep_builds": (1, MAX_INT4, ""),
    "quota_mib": (1, MAX_INT4, ""),
    "delete_after_days": (1, MAX_DAYS, " of days"),
    "build_timeout": (60, MAX_TIMEOUT, " of seconds"),
}


def check_setting(key: str, value: Any) -> int | None:
    """A setting's value (a whole number, or None to clear it) in its range. Pure."""
    if value is None:
        return None
    low, high, unit = SETTING_BOUNDS[key]
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        if low == 1:
            raise BadRequest(f"{key} must be a positive whole number{unit} of at most {high}")
        raise BadRequest(f"{key} must be a whole number{unit} between {low} and {high}")
    return value


def _expiry(days: int | None, now: datetime) -> datetime | None:
    """When a temporary project (copr-cli create --delete-after-days) is deleted."""
    return None if days is None else now + timedelta(days=days)


@dataclass(frozen=True, slots=True)
class SettingsChange:
    """A checked change of a project's settings: only the keys that were sent.

    A key that is absent keeps its value; None clears it.
    """

    sent: Mapping[str, int | None]

    def __post_init__(self) -> None:
        for key, value in self.sent.items():
            check_setting(key, value)

    def details(self) -> dict[str, int | None]:
        """What the audit event records: the checked values, never the raw body."""
        return dict(self.sent)

    def value(self, key: str, current: int | None) -> int | None:
        return self.sent.get(key, current)


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
            # Inside the transaction: if it (or the caller's) rolls back, the
            # key and the repositories go too, whether made in full or in part.
            self.store.on_rollback(
                lambda: self.publisher.remove_project(project.owner, project.name)
            )
            await self.publisher.init_project(project.owner, project.name, project.chroots)

        days = check_setting("delete_after_days", data.get("delete_after_days"))
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
            delete_after=_expiry(days, datetime.now(UTC)),
            on_created=make_key,
        )

    async def update_settings(
        self, user: User, project: Project, change: SettingsChange
    ) -> Project:
        """Set retention, quota, expiry and default timeout, all in one transaction.

        Builds beyond a new retention are pruned from the repositories once
        the change has committed.
        """
        await access.authorize(
            self.store, user, access.Action.EDIT_PROJECT, access.Target.of(project)
        )
        keep = change.value("keep_builds", project.keep_builds)
        quota = change.value("quota_mib", project.quota_mib)
        delete_after = project.delete_after
        if "delete_after_days" in change.sent:
            delete_after = _expiry(change.sent["delete_after_days"], datetime.now(UTC))
        timeout = change.value("build_timeout", project.build_timeout)
        async with self.store.atomic():
            await self.store.set_project_storage(project.id, keep, quota, delete_after)
            await self.store.set_project_timeout(project.id, timeout)
            if keep is not None and keep != project.keep_builds:
                await self.store.after_commit(functools.partial(self._prune, project, keep))
            return await self.store.project_by_id(project.id)

    async def _prune(self, project: Project, keep: int) -> None:
        for chroot in project.chroots:
            await self.publisher.prune(project.owner, project.name, chroot, keep)

    async def expire(self, project: Project) -> None:
        """Delete a temporary project whose time is up (no user: the server does it)."""
        async with self.store.atomic():
            gone = await self.store.delete_project(project.id)
            await self.store.after_commit(lambda: self._remove_files(project, gone))

    async def delete(
        self,
        user: User,
        project: Project,
        before: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        """Delete a project; `before` (e.g. cancel its builds) runs once that is allowed.

        `before` runs in the same transaction as the delete, so a delete that
        fails later leaves the builds as they were too.
        """
        await access.authorize(
            self.store, user, access.Action.DELETE_PROJECT, access.Target.of(project)
        )
        async with self.store.atomic():
            if before is not None:
                await before()
            gone = await self.store.delete_project(project.id)
            await self.store.after_commit(lambda: self._remove_files(project, gone))

    async def _remove_files(self, project: Project, builds: list[int]) -> None:
        """What a deleted project kept outside Postgres: results, key, stored sources."""
        try:
            await self.publisher.remove_project(project.owner, project.name)
        finally:
            await remove_sources(DataPaths(self.config.data_dir), builds)
