"""Users, groups, tokens and the audit trail: the account half of the store."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from kopers.db.base import StoreBase
from kopers.errors import Conflict, NotFound
from kopers.models import User


@dataclass(frozen=True, slots=True)
class TokenRecord:
    user: User
    secret_hash: str
    expires_on: datetime | None
    revoked: bool


@dataclass(frozen=True, slots=True)
class TokenInfo:
    """What `kopers token list` shows; never the secret or its digest."""

    login: str
    created_on: datetime
    expires_on: datetime | None
    last_used: datetime | None
    revoked: bool
    revoked_on: datetime | None


@dataclass(frozen=True, slots=True)
class GroupMember:
    name: str
    is_admin: bool


@dataclass(frozen=True, slots=True)
class Group:
    id: int
    name: str
    members: tuple[GroupMember, ...] = ()


class AccountStore(StoreBase):
    # users ------------------------------------------------------------------

    async def create_user(self, name: str, is_admin: bool = False) -> User:
        try:
            row = await self.db.fetchrow(self.q.create_user, name, is_admin)
        except asyncpg.UniqueViolationError:
            raise Conflict(f"user {name} already exists") from None
        except asyncpg.CheckViolationError:
            raise Conflict(f"invalid user name {name!r}") from None
        return _user(row)

    async def get_user(self, name: str) -> User:
        row = await self.db.fetchrow(self.q.get_user, name)
        if row is None:
            raise NotFound(f"user {name} does not exist")
        return _user(row)

    async def users_by_name(self, names: Sequence[str]) -> dict[str, User]:
        rows = await self.db.fetch(self.q.users_by_name, list(names))
        return {r["name"]: _user(r) for r in rows}

    # groups -----------------------------------------------------------------

    async def create_group(self, name: str) -> Group:
        try:
            row = await self.db.fetchrow(self.q.create_group, name)
        except asyncpg.UniqueViolationError:
            raise Conflict(f"group {name} already exists") from None
        except asyncpg.CheckViolationError:
            raise Conflict(f"invalid group name {name!r}: use letters, digits and _.-") from None
        return Group(row["id"], row["name"])

    async def get_group(self, name: str) -> Group:
        row = await self.db.fetchrow(self.q.get_group, name)
        if row is None:
            raise NotFound(f"group {name} does not exist")
        return Group(row["id"], row["name"])

    async def list_groups(self) -> list[Group]:
        groups: dict[int, Group] = {}
        for r in await self.db.fetch(self.q.list_groups):
            g = groups.setdefault(r["id"], Group(r["id"], r["name"]))
            if r["member"] is not None:
                member = GroupMember(r["member"], r["is_admin"])
                groups[g.id] = Group(g.id, g.name, (*g.members, member))
        return list(groups.values())

    async def add_group_member(self, group: Group, user: User, is_admin: bool) -> bool | None:
        """Add or update a membership; return the previous admin flag (None: was no member)."""
        row = await self.db.fetchrow(self.q.add_group_member, group.id, user.id, is_admin)
        return row["was_admin"]

    async def remove_group_member(self, group: Group, user: User) -> bool:
        """Remove a membership; False if the user was not a member."""
        return await self.db.fetchrow(self.q.remove_group_member, group.id, user.id) is not None

    # tokens -----------------------------------------------------------------

    async def create_token(
        self, user_id: int, login: str, secret_hash: str, expires_on: datetime | None
    ) -> None:
        await self.db.execute(self.q.create_token, user_id, login, secret_hash, expires_on)

    async def token(self, login: str) -> TokenRecord | None:
        row = await self.db.fetchrow(self.q.token_by_login, login)
        if row is None:
            return None
        return TokenRecord(
            user=User(row["id"], row["name"], row["is_admin"]),
            secret_hash=row["secret_hash"],
            expires_on=row["expires_on"],
            revoked=row["revoked"],
        )

    async def touch_token(self, login: str) -> None:
        await self.db.execute(self.q.touch_token, login)

    async def list_tokens(self, user: User) -> list[TokenInfo]:
        return [TokenInfo(**dict(r)) for r in await self.db.fetch(self.q.list_tokens, user.id)]

    async def revoke_token(self, login: str) -> bool:
        """Revoke a token; False if it was revoked already."""
        return await self.db.fetchrow(self.q.revoke_token, login) is not None

    async def replace_token(
        self, old_login: str, user_id: int, login: str, secret_hash: str, expires: datetime | None
    ) -> bool:
        """Revoke `old_login` and make a new token of `user_id`, together.

        False, and no new token, when `old_login` was revoked already (by a
        replacement running at the same moment, say): one token makes one.
        """
        async with self.atomic() as conn:
            if await conn.fetchrow(self.q.revoke_token, old_login) is None:
                return False
            await conn.execute(self.q.create_token, user_id, login, secret_hash, expires)
        return True

    # the audit trail ----------------------------------------------------------

    async def add_event(
        self,
        user_id: int | None,
        address: str | None,
        action: str,
        obj: str,
        details: dict[str, Any],
    ) -> None:
        await self.db.execute(self.q.add_event, user_id, address, action, obj, details)

    async def events(
        self,
        obj: str | None,
        limit: int = 100,
        *,
        user: str | None = None,
        reader: User | None = None,
    ) -> list[dict[str, Any]]:
        """Newest first; `obj` matches itself and what is below it (a project's builds).

        `reader` limits the events to those a plain user may see: the events of
        projects, the ones they did and the ones about them (their account,
        their tokens). None: every event (site admins, the CLI).
        """
        reader_id = reader.id if reader is not None else None
        reader_name = reader.name if reader is not None else None
        rows = await self.db.fetch(self.q.list_events, obj, user, limit, reader_id, reader_name)
        return [dict(r) for r in rows]


def _user(row: asyncpg.Record) -> User:
    return User(id=row["id"], name=row["name"], is_admin=row["is_admin"])
