"""The `kopers` command: serve, migrate, user/group/token admin, template builds.

This module parses the command line and dispatches; the admin commands that
open the database (migrate, user, token, group) live in kopers.cliadmin.
Any error is one line on stderr and a non-zero exit.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import Callable, Coroutine
from typing import Any

from kopers import cliadmin, logformat
from kopers import config as config_mod
from kopers.config import Config
from kopers.errors import KopersError


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
    dump = sub.add_parser(
        "backup", help="write a backup (database, keys, results) to DEST; see docs/backup.md"
    )
    dump.add_argument("dest", help="a new or empty directory")
    dump.add_argument(
        "--no-results", action="store_true", help="leave out the results tree (copy it apart)"
    )
    restore = sub.add_parser("restore", help="restore a backup into an empty data directory")
    restore.add_argument("src", help="a directory written by `kopers backup`")

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
        format=logformat.TEXT_FORMAT,
        stream=sys.stderr,
    )
    # asyncssh logs every channel and pgserver every command at INFO: noise.
    for chatty in ("asyncssh", "pgserver"):
        logging.getLogger(chatty).setLevel(logging.DEBUG if args.verbose else logging.WARNING)
    try:
        cfg = config_mod.load(args.config)
        logformat.use(cfg.server.log_format)
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


async def _doctor(cfg: Config, args: argparse.Namespace) -> int:
    from kopers.doctor import exit_status
    from kopers.doctorchecks import run_checks

    checks = await run_checks(cfg)
    for check in checks:
        print(check.line(), flush=True)
    return exit_status(checks)


async def _backup(cfg: Config, args: argparse.Namespace) -> int:
    from pathlib import Path

    from kopers.backup import describe
    from kopers.backupio import take_backup

    def say(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    manifest = await take_backup(cfg, Path(args.dest), results=not args.no_results, say=say)
    say(f"backup written to {args.dest}: {describe(manifest)}")
    return 0


async def _restore(cfg: Config, args: argparse.Namespace) -> int:
    from pathlib import Path

    from kopers.restoreio import restore_backup

    def say(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    manifest = await restore_backup(cfg, Path(args.src), say)
    say(f"restored into {cfg.data_dir} (schema version {manifest.schema_version})")
    return 0


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
    ("migrate", None): cliadmin.run_migrations,
    ("doctor", None): _doctor,
    ("config", None): _show_config,
    ("backup", None): _backup,
    ("restore", None): _restore,
    ("user", "add"): cliadmin.user_add,
    ("user", "passwd"): cliadmin.user_passwd,
    ("token", "create"): cliadmin.token_create,
    ("token", "list"): cliadmin.token_list,
    ("token", "revoke"): cliadmin.token_revoke,
    ("group", "add"): cliadmin.group_add,
    ("group", "list"): cliadmin.group_list,
    ("group", "member"): cliadmin.group_member,
    ("template", "build"): _template_build,
}
