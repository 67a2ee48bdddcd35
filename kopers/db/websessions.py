"""Passwords, browser sessions and sign-in attempts: the web half of the account store.

See sql/0012_web_accounts.sql. A session is found by the SHA-256 digest of
its cookie; whether it is still alive, and whether an attempt may be made,
is decided by kopers.loginpolicy from what these methods return.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from kopers.db.base import StoreBase
from kopers.loginpolicy import Failures
from kopers.models import User


@dataclass(frozen=True, slots=True)
class WebSession:
    id: str  # the SHA-256 digest (hex) of the cookie's value
    user: User
    csrf_secret: bytes
    created_on: datetime
    last_seen: datetime
    expires_on: datetime  # the absolute end


@dataclass(frozen=True, slots=True)
class PasswordRecord:
    user: User
    password_hash: str | None  # None: the user cannot sign in on the web


class WebSessionStore(StoreBase):
    # passwords ----------------------------------------------------------------

    async def set_password(self, user: User, password_hash: str | None) -> None:
        """Set (None: remove) a user's password, ending every session of theirs."""
        await self.db.execute(self.q.set_password, user.id, password_hash)

    async def password_of(self, name: str) -> PasswordRecord | None:
        row = await self.db.fetchrow(self.q.password_of, name)
        if row is None:
            return None
        return PasswordRecord(User(row["id"], row["name"], row["is_admin"]), row["password_hash"])

    # sessions -----------------------------------------------------------------

    async def create_web_session(
        self,
        session_id: str,
        user: User,
        csrf_secret: bytes,
        now: datetime,
        expires_on: datetime,
        address: str | None,
    ) -> None:
        await self.db.execute(
            self.q.create_web_session, session_id, user.id, csrf_secret, now, expires_on, address
        )

    async def web_session(self, session_id: str) -> WebSession | None:
        row = await self.db.fetchrow(self.q.web_session, session_id)
        if row is None:
            return None
        return WebSession(
            id=row["id"],
            user=User(row["user_id"], row["name"], row["is_admin"]),
            csrf_secret=bytes(row["csrf_secret"]),
            created_on=row["created_on"],
            last_seen=row["last_seen"],
            expires_on=row["expires_on"],
        )

    async def touch_web_session(self, session_id: str, now: datetime) -> None:
        await self.db.execute(self.q.touch_web_session, session_id, now)

    async def delete_web_session(self, session_id: str) -> bool:
        """End a session; False if there was none (ended already)."""
        return await self.db.fetchrow(self.q.delete_web_session, session_id) is not None

    async def purge_web_sessions(self, now: datetime, idle_since: datetime) -> None:
        """Delete the sessions that have ended: past their end, or unused since `idle_since`."""
        await self.db.execute(self.q.purge_web_sessions, now, idle_since)

    # sign-in attempts -----------------------------------------------------------

    async def lock_login_attempts(self) -> None:
        """Serialise counting and recording attempts until this transaction ends."""
        await self.db.execute(self.q.lock_login_attempts)

    async def login_failures(
        self, username: str, address: str, since: datetime, account_limit: int, address_limit: int
    ) -> Failures:
        row = await self.db.fetchrow(
            self.q.login_failures, username, address, since, account_limit, address_limit
        )
        return Failures(tuple(row["account"]), tuple(row["address"]))

    async def add_login_attempt(self, username: str, address: str, at: datetime) -> int:
        """Record an attempt, as failed until `login_succeeded` says otherwise; its id."""
        return int(await self.db.fetchval(self.q.add_login_attempt, at, username, address))

    async def login_succeeded(self, attempt_id: int) -> None:
        await self.db.execute(self.q.login_succeeded, attempt_id)

    async def purge_login_attempts(self, before: datetime) -> None:
        await self.db.execute(self.q.purge_login_attempts, before)
