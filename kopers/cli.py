"""The `kopers` command: serve, migrate, user/group/token admin, template builds.

Admin commands open the same database as a running `kopers serve` (the
embedded server is shared between processes), so they work while it runs.
Any error is one line on stderr and a non-zero exit.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import getpass
import logging
import signal
import sys
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from typing import Any

from kopers import config as config_mod
from kopers import passwords, tokens
from kopers.config import Config
from kopers.db.database import open_database
from kopers.db.migrations import migrate
from kopers.db.store import Store
from kopers.errors import KopersError, NotFound


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="kopers", description="Kopers: build and host RPMs.")
    p.add_argument(
        "--config", help="path to kopers.toml (default: $KOPERS_CONFIG or ./kopers.toml)"
    )
    p.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("serve", help="run the service")
    sub.add_parser("migrate", help="apply pending database migrations and exit")
    sub.add_parser(
        "doctor",
        help="check the host, libvirt, disk, templates, Postgres and the public URL "
        "(exit status 1 if any check FAILs)",
    )
    show = sub.add_parser("config", help="print the effective configuration")
    show.add_argument("--get", metavar="KEY", help="print one value: data_dir, public_url, listen")

    user = sub.add_parser("user", help="manage users").add_subparsers(dest="action", required=True)
    add = user.add_parser("add", help="create a user")
    add.add_argument("name")
    add.add_argument("--admin", action="store_true", help="make the user a site admin")
    add.add_argument("--exist-ok", action="store_true", help="succeed if the user already exists")
    passwd = user.add_parser(
        "passwd",
        help="set the password a user signs in with on the web (read from stdin if not a terminal)",
    )
    passwd.add_argument("name")

    token = sub.add_parser("token", help="manage API tokens").add_subparsers(
        dest="action", required=True
    )
    create = token.add_parser("create", help="make a token; print a copr-cli config on stdout")
    create.add_argument("name", help="the user the token belongs to")
    create.add_argument(
        "--days",
        type=float,
        default=None,
        help="lifetime in days, fractions allowed (0: never expires; default: server.token_days)",
    )
    listing = token.add_parser("list", help="show a user's tokens (never their secrets)")
    listing.add_argument("name", help="the user whose tokens to show")
    revoke = token.add_parser("revoke", help="revoke a token: its next use fails")
    revoke.add_argument("login", help="the token's login (the `login =` of its copr-cli config)")

    group = sub.add_parser("group", help="manage groups (SIGs) that own projects as @NAME")
    groups = group.add_subparsers(dest="action", required=True)
    groups.add_parser("add", help="create a group").add_argument("name")
    groups.add_parser("list", help="show the groups and their members (* marks admins)")
    member = groups.add_parser("member", help="manage a group's members").add_subparsers(
        dest="member_action", required=True
    )
    madd = member.add_parser("add", help="add a member (again: change the admin flag)")
    madd.add_argument("group")
    madd.add_argument("user")
    madd.add_argument(
        "--admin",
        action="store_true",
        help="group admin: may also change and delete the group's projects and their roles",
    )
    mremove = member.add_parser("remove", help="remove a member")
    mremove.add_argument("group")
    mremove.add_argument("user")

    tmpl = sub.add_parser("template", help="builder VM templates").add_subparsers(
        dest="action", required=True
    )
    build = tmpl.add_parser("build", help="build a template image (all used ones by default)")
    build.add_argument("name", nargs="?")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    # asyncssh logs every channel and pgserver every command at INFO: noise.
    for chatty in ("asyncssh", "pgserver"):
        logging.getLogger(chatty).setLevel(logging.DEBUG if args.verbose else logging.WARNING)
    try:
        cfg = config_mod.load(args.config)
        handler = _COMMANDS[(args.command, getattr(args, "action", None))]
        return asyncio.run(handler(cfg, args))
    except KopersError as exc:
        print(f"kopers: error: {exc.message}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


async def _serve(cfg: Config, args: argparse.Namespace) -> int:
    from kopers.api.app import create_app
    from kopers.server import serve
    from kopers.service import open_kopers

    task = asyncio.current_task()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, task.cancel)  # type: ignore[union-attr]

    def ready() -> None:
        print(f"Kopers is running at {cfg.server.public_url}/", flush=True)

    with contextlib.suppress(asyncio.CancelledError):
        kopers = await open_kopers(cfg)
        await serve(kopers, create_app(kopers), ready)
    return 0


async def _with_store(cfg: Config, fn: Callable[[Store], Coroutine[Any, Any, int]]) -> int:
    db = await open_database(cfg.database.dsn, cfg.data_dir, max_size=2)
    try:
        await migrate(db.pool)
        store = Store(db.pool)
        # A command's change and its audit event commit together, or neither does.
        async with store.atomic():
            return await fn(store)
    finally:
        await db.close()


async def _migrate(cfg: Config, args: argparse.Namespace) -> int:
    async def run(store: Store) -> int:
        return 0

    return await _with_store(cfg, run)


async def _doctor(cfg: Config, args: argparse.Namespace) -> int:
    from kopers.doctor import exit_status
    from kopers.doctorchecks import run_checks

    checks = await run_checks(cfg)
    for check in checks:
        print(check.line(), flush=True)
    return exit_status(checks)


async def _show_config(cfg: Config, args: argparse.Namespace) -> int:
    values = {
        "data_dir": str(cfg.data_dir),
        "public_url": cfg.server.public_url,
        "listen": f"{cfg.server.host}:{cfg.server.port}",
        "cache_dir": str(cfg.vm.cache_dir),
    }
    if args.get is None:
        for key, value in values.items():
            print(f"{key} = {value}")
        print(f"chroots = {', '.join(c.name for c in cfg.enabled_chroots)}")
    elif args.get in values:
        print(values[args.get])
    else:
        raise KopersError(f"unknown key {args.get}; known: {', '.join(values)}")
    return 0


async def _user_add(cfg: Config, args: argparse.Namespace) -> int:
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

    return await _with_store(cfg, run)


async def _user_passwd(cfg: Config, args: argparse.Namespace) -> int:
    digest = await asyncio.to_thread(passwords.hash_password, _read_password())

    async def run(store: Store) -> int:
        user = await store.get_user(args.name)
        await store.set_password(user, digest)  # which also signs them out everywhere
        await store.add_event(None, "cli", "user.password", user.name, _by())
        print(f"set the password of {user.name}; their web sessions have ended", file=sys.stderr)
        return 0

    return await _with_store(cfg, run)


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


async def _token_create(cfg: Config, args: argparse.Namespace) -> int:
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

    return await _with_store(cfg, run)


async def _token_list(cfg: Config, args: argparse.Namespace) -> int:
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

    return await _with_store(cfg, run)


def _when(value: datetime | None, none: str = "-") -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC") if value else none


async def _token_revoke(cfg: Config, args: argparse.Namespace) -> int:
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

    return await _with_store(cfg, run)


def _by() -> dict[str, str]:
    """Who ran an admin command, for the audit trail (the CLI has no API user)."""
    try:
        return {"os_user": getpass.getuser()}
    except (KeyError, OSError):
        return {}


async def _group_add(cfg: Config, args: argparse.Namespace) -> int:
    async def run(store: Store) -> int:
        group = await store.create_group(args.name)
        await store.add_event(None, "cli", "group.create", f"@{group.name}", _by())
        print(
            f"created group {group.name}; its projects are owned by @{group.name}", file=sys.stderr
        )
        return 0

    return await _with_store(cfg, run)


async def _group_list(cfg: Config, args: argparse.Namespace) -> int:
    async def run(store: Store) -> int:
        for group in await store.list_groups():
            members = " ".join(m.name + ("*" if m.is_admin else "") for m in group.members)
            print(f"@{group.name}: {members}".rstrip())
        return 0

    return await _with_store(cfg, run)


async def _group_member(cfg: Config, args: argparse.Namespace) -> int:
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

    return await _with_store(cfg, run)


async def _template_build(cfg: Config, args: argparse.Namespace) -> int:
    from kopers.vm.template import build_template, default_templates_root

    names = [args.name] if args.name else sorted({c.template for c in cfg.enabled_chroots})
    for name in names:
        image = await build_template(
            name,
            default_templates_root(),
            cfg.vm.cache_dir,
            lambda line: print(line, file=sys.stderr),
        )
        print(f"template {name}: {image.dir}", file=sys.stderr)
    return 0


_COMMANDS: dict[
    tuple[str, str | None], Callable[[Config, argparse.Namespace], Coroutine[Any, Any, int]]
] = {
    ("serve", None): _serve,
    ("migrate", None): _migrate,
    ("doctor", None): _doctor,
    ("config", None): _show_config,
    ("user", "add"): _user_add,
    ("user", "passwd"): _user_passwd,
    ("token", "create"): _token_create,
    ("token", "list"): _token_list,
    ("token", "revoke"): _token_revoke,
    ("group", "add"): _group_add,
    ("group", "list"): _group_list,
    ("group", "member"): _group_member,
    ("template", "build"): _template_build,
}
