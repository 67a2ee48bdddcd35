"""The `kopers` admin commands that open the database: migrate, user, token, group.

They open the same database as a running `kopers serve` (the embedded server
is shared between processes), so they work while it runs. Each command's
change and its audit event commit together. kopers.cli parses the command
line and dispatches here; an error raised here is its one line on stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import sys
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from typing import Any

from kopers import passwords, tokens
from kopers.config import Config
from kopers.db.database import open_database
from kopers.db.migrations import migrate
from kopers.db.store import Store
from kopers.errors import KopersError, NotFound


async def with_store(cfg: Config, fn: Callable[[Store], Coroutine[Any, Any, int]]) -> int:
    """Run `fn` on the migrated database in one transaction, then close the connections."""
    db = await open_database(cfg.database.dsn, cfg.data_dir, max_size=2)
    try:
        await migrate(db.pool)
        store = Store(db.pool)
        # A command's change and its audit event commit together, or neither does.
        async with store.atomic():
            return await fn(store)
    finally:
        await db.close()


async def run_migrations(cfg: Config, args: argparse.Namespace) -> int:
    """`kopers migrate`: opening the database (with_store) applies what is pending."""

    async def run(store: Store) -> int:
        return 0

    return await with_store(cfg, run)


async def user_add(cfg: Config, args: argparse.Namespace) -> int:
    async def run(store: Store) -> int:
        if args.exist_ok:
            try:
                await store.get_user(args.name)
                return 0
            except NotFound:
                pass
        user = await store.create_user(args.name, args.admin)
        await store.add_event(
            None, "cli", "user.create", user.name, {"admin": user.is_admin, **_by()}
        )
        print(f"created user {user.name}" + (" (admin)" if user.is_admin else ""), file=sys.stderr)
        return 0

    return await with_store(cfg, run)


async def user_passwd(cfg: Config, args: argparse.Namespace) -> int:
    digest = await asyncio.to_thread(passwords.hash_password, _read_password())

    async def run(store: Store) -> int:
        user = await store.get_user(args.name)
        await store.set_password(user, digest)  # which also signs them out everywhere
        await store.add_event(None, "cli", "user.password", user.name, _by())
        print(f"set the password of {user.name}; their web sessions have ended", file=sys.stderr)
        return 0

    return await with_store(cfg, run)


def _read_password() -> str:
    """A new password: one line of stdin (newline stripped), or typed twice at a terminal."""
    if sys.stdin is None:
        raise KopersError("no standard input to read the password from")
    if not sys.stdin.isatty():
        try:
            # Two characters past the cap: a longer line is refused, not cut to size.
            line = sys.stdin.readline(passwords.MAX_BYTES + 2)
        except UnicodeDecodeError:
            raise KopersError("the password on standard input is not UTF-8 text") from None
        return passwords.check_new(line.removesuffix("\n").removesuffix("\r"))
    first = getpass.getpass("New password: ")
    passwords.check_new(first)
    if getpass.getpass("The same again: ") != first:
        raise KopersError("the two passwords differ; nothing was changed")
    return first


async def token_create(cfg: Config, args: argparse.Namespace) -> int:
    if args.days is None:
        args.days = cfg.server.token_days
    if args.days < 0:
        raise KopersError("--days must not be negative")

    async def run(store: Store) -> int:
        user = await store.get_user(args.name)
        new = tokens.generate()
        expires = tokens.expires_on(datetime.now(UTC), args.days)
        await store.create_token(user.id, new.login, new.digest, expires)
        await store.add_event(
            user.id, "cli", "token.create", user.name, {"login": new.login, **_by()}
        )
        sys.stdout.write(tokens.copr_cli_config(cfg.server.public_url, user.name, new))
        return 0

    return await with_store(cfg, run)


async def token_list(cfg: Config, args: argparse.Namespace) -> int:
    async def run(store: Store) -> int:
        user = await store.get_user(args.name)
        now = datetime.now(UTC)
        rows = [("LOGIN", "CREATED", "EXPIRES", "LAST USED", "REVOKED")]
        for t in await store.list_tokens(user):
            rows.append(
                (
                    t.login,
                    _when(t.created_on),
                    _when(t.expires_on, "never")
                    + (" (expired)" if tokens.expired(t.expires_on, now) else ""),
                    _when(t.last_used, "never"),
                    _when(t.revoked_on, "yes") if t.revoked else "no",
                )
            )
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        for r in rows:
            print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())
        return 0

    return await with_store(cfg, run)


def _when(value: datetime | None, none: str = "-") -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC") if value else none


async def token_revoke(cfg: Config, args: argparse.Namespace) -> int:
    async def run(store: Store) -> int:
        record = await store.token(args.login)
        if record is None:
            raise NotFound(f"token {args.login} does not exist")
        if not await store.revoke_token(args.login):
            raise KopersError(f"token {args.login} is already revoked")
        await store.add_event(
            None, "cli", "token.revoke", record.user.name, {"login": args.login, **_by()}
        )
        print(f"revoked token {args.login} of {record.user.name}", file=sys.stderr)
        return 0

    return await with_store(cfg, run)


def _by() -> dict[str, str]:
    """Who ran an admin command, for the audit trail (the CLI has no API user)."""
    try:
        return {"os_user": getpass.getuser()}
    except (KeyError, OSError):
        return {}


async def group_add(cfg: Config, args: argparse.Namespace) -> int:
    async def run(store: Store) -> int:
        group = await store.create_group(args.name)
        await store.add_event(None, "cli", "group.create", f"@{group.name}", _by())
        print(
            f"created group {group.name}; its projects are owned by @{group.name}", file=sys.stderr
        )
        return 0

    return await with_store(cfg, run)


async def group_list(cfg: Config, args: argparse.Namespace) -> int:
    async def run(store: Store) -> int:
        for group in await store.list_groups():
            members = " ".join(m.name + ("*" if m.is_admin else "") for m in group.members)
            print(f"@{group.name}: {members}".rstrip())
        return 0

    return await with_store(cfg, run)


async def group_member(cfg: Config, args: argparse.Namespace) -> int:
    async def run(store: Store) -> int:
        group = await store.get_group(args.group)
        user = await store.get_user(args.user)
        obj = f"@{group.name}"
        if args.member_action == "add":
            was = await store.add_group_member(group, user, args.admin)
            if was is None or was != args.admin:
                details = {"user": user.name, "admin": args.admin, **_by()}
                await store.add_event(None, "cli", "group.member.add", obj, details)
            role = "admin" if args.admin else "member"
            print(f"{user.name} is now {role} of group {group.name}", file=sys.stderr)
        else:
            if not await store.remove_group_member(group, user):
                raise NotFound(f"{user.name} is not a member of group {group.name}")
            details = {"user": user.name, **_by()}
            await store.add_event(None, "cli", "group.member.remove", obj, details)
            print(f"removed {user.name} from group {group.name}", file=sys.stderr)
        return 0

    return await with_store(cfg, run)
