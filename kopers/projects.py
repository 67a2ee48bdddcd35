"""Creating, changing and deleting projects, with their keys and repositories.

A project's rows, its signing key and its results directory come and go
together. Its Copr options (`ProjectInput`, as create and modify send them)
are checked here against the rules a parser cannot see: who may set them,
which chroots are on offer, which `copr://` dependencies exist.

Each operation runs in one store transaction (`Store.atomic`), which the
caller may widen to take in the audit event: the key made for a new project
is deleted again if the transaction rolls back, and files of a deleted
project, or builds pruned by a new retention, go only once the rows' change
has committed.
"""

from __future__ import annotations

import dataclasses
import functools
import re
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from kopers import access
from kopers.builds import remove_sources
from kopers.config import Config
from kopers.db.store import Store
from kopers.errors import BadRequest, Forbidden, NotFound
from kopers.models import Project, ProjectOptions, User
from kopers.paths import DataPaths
from kopers.publish.publisher import Publisher
from kopers.publish.repofile import copr_repo
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


def _days(days: int | None) -> int | None:
    """A given delete_after_days in its range; None for none (not given, or NO_EXPIRY)."""
    return None if days is None or days == NO_EXPIRY else check_setting("delete_after_days", days)


def _pick(given: Any, current: Any) -> Any:
    return current if given is None else given


def _expiry(days: int | None, now: datetime) -> datetime | None:
    """When a temporary project (copr-cli create --delete-after-days) is deleted."""
    return None if days is None else now + timedelta(days=days)


@dataclass(frozen=True, slots=True)
class SettingsChange:
    """A checked change of a project's settings: only the keys that were sent.

    A key that is absent keeps its value; None clears it.
    """

    sent: Mapping[str, int | None]
    rebuild_dependents: bool | None = None  # None: not sent

    def __post_init__(self) -> None:
        for key, value in self.sent.items():
            check_setting(key, value)

    def details(self) -> dict[str, int | bool | None]:
        """What the audit event records: the checked values, never the raw body."""
        out: dict[str, int | bool | None] = dict(self.sent)
        if self.rebuild_dependents is not None:
            out["rebuild_dependents"] = self.rebuild_dependents
        return out

    def value(self, key: str, current: int | None) -> int | None:
        return self.sent.get(key, current)


NO_EXPIRY = -1  # delete_after_days: Copr's "take the expiry away"


@dataclass(frozen=True, slots=True)
class ProjectInput:
    """A project's fields as a client sent them to create or modify it; None: not given.

    Each value is parsed already (kopers.api.bodies); the rules that need
    the server (who may, what is on offer, what exists) are `Projects`'.
    """

    description: str | None = None
    instructions: str | None = None
    homepage: str | None = None
    contact: str | None = None
    additional_repos: tuple[str, ...] | None = None
    enable_net: bool | None = None
    delete_after_days: int | None = None  # NO_EXPIRY: none
    chroots: tuple[str, ...] | None = None  # modify: the whole new set
    persistent: bool | None = None
    unlisted_on_hp: bool | None = None
    auto_prune: bool | None = None
    module_hotfixes: bool | None = None
    repo_priority: int | None = None
    runtime_dependencies: tuple[str, ...] | None = None
    follow_fedora_branching: bool | None = None
    packit_forge_projects_allowed: tuple[str, ...] | None = None

    @classmethod
    def of(cls, data: Mapping[str, Any]) -> ProjectInput:
        """From a mapping of the same keys (bodies.new_project's, or a caller's own)."""
        values: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            value = data.get(f.name)
            values[f.name] = tuple(value) if isinstance(value, list) else value
        return cls(**values)

    def options(self, current: ProjectOptions) -> ProjectOptions:
        """`current` with every option that was given set."""
        sent = {
            f.name: getattr(self, f.name)
            for f in dataclasses.fields(ProjectOptions)
            if getattr(self, f.name) is not None
        }
        return dataclasses.replace(current, **sent)

    def details(self) -> dict[str, Any]:
        """What the audit event records: the given fields, as checked."""
        return {
            f.name: list(v) if isinstance(v, tuple) else v
            for f in dataclasses.fields(self)
            if (v := getattr(self, f.name)) is not None
        }


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
        """A new project from `data` (bodies.new_project's keys; missing ones: defaults)."""
        name = _text(data, "name")
        if not _NAME.match(name) or name in (".", ".."):
            raise BadRequest(f"invalid project name {name!r}: use letters, digits and _.+-")
        await access.authorize(self.store, user, access.Action.CREATE_PROJECT, access.Target(owner))
        given = ProjectInput.of(data)
        chroots = self._check_chroots(_list(data, "chroots"))
        if given.persistent and not user.is_admin:
            raise Forbidden("persistent: only a server admin may create a persistent project.")
        if given.auto_prune is False and not user.is_admin:
            raise Forbidden("auto_prune: only a server admin may switch auto-pruning off.")
        days = _days(given.delete_after_days)
        if given.persistent and days is not None:
            raise BadRequest("delete_after_days cannot be combined with persistent")
        await self._check_dependencies(given.runtime_dependencies or ())

        async def make_key(project: Project) -> None:
            # Inside the transaction: if it (or the caller's) rolls back, the
            # key and the repositories go too, whether made in full or in part.
            self.store.on_rollback(
                lambda: self.publisher.remove_project(project.owner, project.name)
            )
            await self.publisher.init_project(project.owner, project.name, project.chroots)

        return await self.store.create_project(
            owner,
            name,
            description=_text(data, "description"),
            instructions=_text(data, "instructions"),
            homepage=data.get("homepage") or None,
            contact=data.get("contact") or None,
            chroots=chroots,
            additional_repos=_list(data, "additional_repos"),
            enable_net=bool(data.get("enable_net")),
            created_by=user.id,
            delete_after=_expiry(days, datetime.now(UTC)),
            on_created=make_key,
            options=given.options(ProjectOptions()),
            webhook_secret=str(uuid.uuid4()),
        )

    async def edit(self, user: User, project: Project, given: ProjectInput) -> Project:
        """Copr's modify: set what was given, leave the rest; a new chroot set replaces the old.

        A chroot added gets its (empty, signed) repository before the change
        commits; one taken out is no longer offered, and its results stay.
        """
        await access.authorize(
            self.store, user, access.Action.EDIT_PROJECT, access.Target.of(project)
        )
        current = project.options
        if given.persistent is not None and given.persistent != current.persistent:
            raise BadRequest("persistent can only be set when a project is created")
        if given.auto_prune is False and current.auto_prune and not user.is_admin:
            raise Forbidden("auto_prune: only a server admin may switch auto-pruning off.")
        delete_after = project.delete_after
        if given.delete_after_days is not None:
            days = _days(given.delete_after_days)
            if days is not None and current.persistent:
                raise BadRequest("delete_after_days cannot be combined with persistent")
            delete_after = _expiry(days, datetime.now(UTC))
        chroots = None if given.chroots is None else self._check_chroots(given.chroots)
        await self._check_dependencies(given.runtime_dependencies or ())
        options = given.options(current)
        added = sorted(set(chroots or ()) - set(project.chroots))
        async with self.store.atomic():
            await self.store.update_project(
                project.id,
                description=_pick(given.description, project.description),
                instructions=_pick(given.instructions, project.instructions),
                homepage=project.homepage if given.homepage is None else given.homepage or None,
                contact=project.contact if given.contact is None else given.contact or None,
                additional_repos=_pick(given.additional_repos, project.additional_repos),
                enable_net=_pick(given.enable_net, project.enable_net),
                delete_after=delete_after,
                options=options,
            )
            if chroots is not None and set(chroots) != set(project.chroots):
                await self.store.set_project_chroots(project.id, chroots)
            if added:

                async def make_repos() -> None:
                    # Last before the commit: a failure here undoes the whole change.
                    await self.publisher.init_project(project.owner, project.name, added)

                await self.store.before_commit(make_repos)
            keep = project.retention
            if keep is not None and options.auto_prune and not current.auto_prune:
                # Retention applies again: what it would have removed goes now.
                await self.store.after_commit(functools.partial(self._prune, project, keep))
            return await self.store.project_by_id(project.id)

    async def new_webhook_secret(self, user: User, project: Project) -> str:
        """Replace the project's webhook secret with a new random one; return it."""
        await access.authorize(
            self.store, user, access.Action.EDIT_PROJECT, access.Target.of(project)
        )
        secret = str(uuid.uuid4())
        await self.store.set_webhook_secret(project.id, secret)
        return secret

    def _check_chroots(self, chroots: Iterable[str]) -> list[str]:
        """The chroots, each on offer here, at least one; sorted, without repeats."""
        wanted = sorted(set(chroots))
        if not wanted:
            raise BadRequest("chroots: at least one chroot must be selected")
        available = {c.name for c in self.config.enabled_chroots}
        unknown = [c for c in wanted if c not in available]
        if unknown:
            raise BadRequest(
                f"chroots not available on this server: {', '.join(unknown)}; "
                f"available: {', '.join(sorted(available))}"
            )
        return wanted

    async def _check_dependencies(self, urls: Sequence[str]) -> None:
        """Each `copr://owner/project` runtime dependency names a project that exists."""
        for url in urls:
            named = copr_repo(url)
            if named is None:
                continue
            try:
                await self.store.get_project(*named)
            except NotFound:
                raise BadRequest(
                    f"runtime_dependencies: {url}: project {named[0]}/{named[1]} does not exist"
                ) from None

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
        keep = change.value("keep_builds", project.retention)
        quota = change.value("quota_mib", project.quota_mib)
        delete_after = project.delete_after
        if "delete_after_days" in change.sent:
            days = change.sent["delete_after_days"]
            if days is not None and project.options.persistent:
                raise BadRequest("delete_after_days cannot be combined with persistent")
            delete_after = _expiry(days, datetime.now(UTC))
        timeout = change.value("build_timeout", project.build_timeout)
        async with self.store.atomic():
            await self.store.set_project_storage(project.id, keep, quota, delete_after)
            await self.store.set_project_timeout(project.id, timeout)
            if change.rebuild_dependents is not None:
                await self.store.set_rebuild_dependents(project.id, change.rebuild_dependents)
            if keep is not None and keep != project.retention and project.options.auto_prune:
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
        if project.options.persistent and not user.is_admin:
            raise Forbidden(
                f"Project {project.full_name} is persistent: only a server admin may delete it."
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
