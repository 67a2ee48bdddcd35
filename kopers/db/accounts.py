"""Users, tokens and the audit trail: the account half of the store."""

from __future__ import annotations

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


class AccountStore(StoreBase):
    async def create_user(self, name: str, is_admin: bool = False) -> User:
        try:
            row = await self.pool.fetchrow(self.q.create_user, name, is_admin)
        except asyncpg.UniqueViolationError:
            raise Conflict(f"user {name} already exists") from None
        except asyncpg.CheckViolationError:
            raise Conflict(f"invalid user name {name!r}") from None
        return _user(row)

    async def get_user(self, name: str) -> User:
        row = await self.pool.fetchrow(self.q.get_user, name)
        if row is None:
            raise NotFound(f"user {name} does not exist")
        return _user(row)

    async def create_token(
        self, user_id: int, login: str, secret_hash: str, expires_on: datetime | None
    ) -> None:
        await self.pool.execute(self.q.create_token, user_id, login, secret_hash, expires_on)

    async def token(self, login: str) -> TokenRecord | None:
        row = await self.pool.fetchrow(self.q.token_by_login, login)
        if row is None:
            return None
        return TokenRecord(
            user=User(row["id"], row["name"], row["is_admin"]),
            secret_hash=row["secret_hash"],
            expires_on=row["expires_on"],
            revoked=row["revoked"],
        )

    async def touch_token(self, login: str) -> None:
        await self.pool.execute(self.q.touch_token, login)

    async def add_event(
        self,
        user_id: int | None,
        address: str | None,
        action: str,
        obj: str,
        details: dict[str, Any],
    ) -> None:
        await self.pool.execute(self.q.add_event, user_id, address, action, obj, details)

    async def events(self, obj: str | None, limit: int = 100) -> list[dict[str, Any]]:
        return [dict(r) for r in await self.pool.fetch(self.q.list_events, obj, limit)]


def _user(row: asyncpg.Record) -> User:
    return User(id=row["id"], name=row["name"], is_admin=row["is_admin"])
