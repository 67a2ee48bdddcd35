"""Copr's per-project roles, and the loader of the facts `kopers.access` decides on."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from kopers.access import Facts, Grant, PermState, Target
from kopers.db.base import StoreBase
from kopers.models import User


class PermissionStore(StoreBase):
    async def access_facts(self, user: User | None, target: Target) -> Facts:
        """Everything `access.may` needs about `user` and `target`, in two small reads."""
        groups: dict[str, bool] = {}
        if user is not None:
            rows = await self.db.fetch(self.q.user_groups, user.id)
            groups = {r["name"]: r["is_admin"] for r in rows}
        grants: dict[str, Grant] = {}
        if target.project_id is not None:
            grants = await self.project_grants(target.project_id)
        return Facts(user=user, target=target, groups=groups, grants=grants)

    async def project_grants(self, project_id: int) -> dict[str, Grant]:
        """The project's permission rows by user name (empty: none were ever set)."""
        rows = await self.db.fetch(self.q.project_grants, project_id)
        return {r["name"]: Grant(PermState(r["builder"]), PermState(r["admin"])) for r in rows}

    async def update_grants(
        self, project_id: int, plan: Callable[[Mapping[str, Grant]], Mapping[str, Grant]]
    ) -> dict[str, tuple[Grant, Grant]]:
        """Read the project's roles, apply `plan` (pure; it may raise), write the result.

        One transaction with the project row locked, so two concurrent edits
        cannot lose each other's change. Returns {user name: (old, new)} for
        the roles that changed. Every user in the plan must exist.
        """
        async with self.atomic() as conn:
            await conn.execute(self.q.lock_project, project_id)
            rows = await conn.fetch(self.q.project_grants, project_id)
            current = {
                r["name"]: Grant(PermState(r["builder"]), PermState(r["admin"])) for r in rows
            }
            changed: dict[str, tuple[Grant, Grant]] = {}
            for name, new in plan(current).items():
                old = current.get(name, Grant())
                if name in current and new == old:
                    continue
                await conn.execute(
                    self.q.upsert_grant, project_id, name, str(new.builder), str(new.admin)
                )
                if new != old:
                    changed[name] = (old, new)
        return changed
