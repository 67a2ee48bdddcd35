"""Notifications, a project's outgoing webhooks, and the outbox of their deliveries.

State changes make their notifications by themselves (triggers, see
sql/0010_notifications.sql); `add_notification` is for events Postgres does
not see, such as a publish. Each notification gets one pending delivery per
hook of its project in the same transaction, so a crash loses none: the hook
sender (kopers.hooksender) works through them, a hook's in notification order.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import asyncpg

from kopers.db.base import StoreBase
from kopers.errors import Conflict, NotFound
from kopers.notifications import (
    PUBLISHED,
    Delivery,
    DeliveryState,
    DueHook,
    EventKind,
    Hook,
    Notification,
    Outgoing,
)

MAX_HOOKS_PER_PROJECT = 20


class NotificationStore(StoreBase):
    async def add_notification(
        self,
        build_id: int,
        kind: EventKind,
        chroot: str | None,
        state: str,
        previous: str | None = None,
    ) -> int | None:
        """Record an event of a build, with a delivery to each of its project's hooks.

        Joins the caller's transaction if there is one. None when the build
        (or its project) is gone.
        """
        async with self.atomic() as conn:
            value = await conn.fetchval(
                self.q.notify_build, build_id, str(kind), chroot, state, previous
            )
        return int(value) if value is not None else None

    async def notify_published(self, build_id: int, chroot: str) -> int | None:
        """A chroot's results of the build are in its repository: `build.published`."""
        return await self.add_notification(build_id, EventKind.BUILD_PUBLISHED, chroot, PUBLISHED)

    async def notifications_after(
        self, after: int, project_id: int | None, limit: int
    ) -> list[Notification]:
        """Stored notifications with an id above `after`, oldest first (of one project)."""
        rows = await self.db.fetch(self.q.notifications_after, after, project_id, limit)
        return [_notification(r) for r in rows]

    async def last_notification_id(self) -> int:
        return int(await self.db.fetchval(self.q.last_notification))

    # -- hooks ------------------------------------------------------------------

    async def create_hook(self, project_id: int, url: str, secret: str, created_by: int) -> Hook:
        """A new hook; Conflict when the project has its fill of them."""
        async with self.atomic() as conn:
            await conn.execute(self.q.lock_project_hooks, project_id)
            if await conn.fetchval(self.q.count_hooks, project_id) >= MAX_HOOKS_PER_PROJECT:
                raise Conflict(
                    f"a project has at most {MAX_HOOKS_PER_PROJECT} webhooks; delete one first"
                )
            hook_id = await conn.fetchval(self.q.create_hook, project_id, url, secret, created_by)
            return await self.get_hook(project_id, hook_id)

    async def hooks_of(self, project_id: int) -> list[Hook]:
        return [_hook(r) for r in await self.db.fetch(self.q.list_hooks, project_id)]

    async def get_hook(self, project_id: int, hook_id: int) -> Hook:
        row = await self.db.fetchrow(self.q.get_hook, project_id, hook_id)
        if row is None:
            raise NotFound(f"webhook {hook_id} does not exist in this project")
        return _hook(row)

    async def delete_hook(self, project_id: int, hook_id: int) -> None:
        """Delete a hook and its deliveries; NotFound if the project has no such hook."""
        if await self.db.fetchval(self.q.delete_hook, project_id, hook_id) is None:
            raise NotFound(f"webhook {hook_id} does not exist in this project")

    async def deliveries_of(self, hook_id: int, limit: int) -> list[Delivery]:
        """A hook's deliveries, newest event first."""
        return [_delivery(r) for r in await self.db.fetch(self.q.list_deliveries, hook_id, limit)]

    # -- the sender's side ----------------------------------------------------------

    async def due_hooks(
        self,
        now: datetime,
        limit: int,
        hooks_besides: Sequence[int] = (),
        projects_besides: Sequence[int] = (),
    ) -> list[DueHook]:
        """Hooks whose oldest pending delivery is due at `now`, the longest due first.

        The hooks in `hooks_besides` (being sent to already) and the hooks of the
        projects in `projects_besides` are left out.
        """
        rows = await self.db.fetch(
            self.q.due_hooks, now, limit, list(hooks_besides), list(projects_besides)
        )
        return [DueHook(r["hook_id"], r["project_id"], r["next_at"]) for r in rows]

    async def next_due(
        self, hooks_besides: Sequence[int] = (), projects_besides: Sequence[int] = ()
    ) -> datetime | None:
        """When the next hook's oldest pending delivery is due, None if none is pending;
        leaving out what `due_hooks` leaves out."""
        value: datetime | None = await self.db.fetchval(
            self.q.next_due, list(hooks_besides), list(projects_besides)
        )
        return value

    async def head_delivery(self, hook_id: int) -> Outgoing | None:
        """A hook's oldest pending delivery, with where it goes; None when none is pending."""
        row = await self.db.fetchrow(self.q.head_delivery, hook_id)
        if row is None:
            return None
        return Outgoing(_delivery(row), row["url"], row["secret"])

    async def record_attempt(
        self,
        delivery_id: int,
        at: datetime,
        state: DeliveryState,
        status: int | None,
        answer: str | None,
        error: str | None,
        next_at: datetime,
    ) -> bool:
        """Record one try; False if the delivery was no longer pending (its hook went)."""
        done = await self.db.fetchval(
            self.q.record_attempt, delivery_id, at, str(state), status, answer, error, next_at
        )
        return done is not None

    async def give_up_behind(self, hook_id: int, older_than: datetime, at: datetime) -> int:
        """Fail a hook's pending deliveries of events older than `older_than`; how many."""
        reason = "gave up: the deliveries before it failed until it was too old to send"
        result = await self.db.execute(self.q.give_up_behind, hook_id, older_than, reason, at)
        return _count(result)

    async def prune_notifications(self, older_than: datetime) -> int:
        """Delete old notifications nothing waits for any more; how many."""
        return _count(await self.db.execute(self.q.prune_notifications, older_than))


def _count(status: str) -> int:
    """The row count of an asyncpg command status ("UPDATE 3", "DELETE 0")."""
    return int(status.rsplit(" ", 1)[-1])


def _notification(row: asyncpg.Record) -> Notification:
    return Notification(
        id=row["id"],
        at=row["at"],
        project_id=row["project_id"],
        project=row["project"],
        kind=EventKind(row["kind"]),
        build_id=row["build_id"],
        chroot=row["chroot"],
        state=row["state"],
        previous=row["previous"],
    )


def _hook(row: asyncpg.Record) -> Hook:
    return Hook(
        id=row["id"],
        project_id=row["project_id"],
        url=row["url"],
        secret=row["secret"],
        created_at=row["created_at"],
        created_by=row["creator"],
    )


def _delivery(row: asyncpg.Record) -> Delivery:
    return Delivery(
        id=row["delivery_id"],
        hook_id=row["hook_id"],
        notification=_notification(row),
        state=DeliveryState(row["delivery_state"]),
        attempts=row["attempts"],
        next_at=row["next_at"],
        last_at=row["last_at"],
        last_status=row["last_status"],
        last_answer=row["last_answer"],
        last_error=row["last_error"],
        delivered_at=row["delivered_at"],
    )
