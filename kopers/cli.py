"""The `kopers` command: serve, migrate, user/token admin, template builds.

Admin commands open the same database as a running `kopers serve` (the
embedded server is shared between processes), so they work while it runs.
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
from datetime import UTC, datetime, timedelta
from typing import Any

from kopers import config as config_mod
from kopers import tokens
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
    show = sub.add_parser("config", help="print the effective configuration")
    show.add_argument("--get", metavar="KEY", help="print one value: data_dir, public_url, listen")

    user = sub.add_parser("user", help="manage users").add_subparsers(dest="action", required=True)
    add = user.add_parser("add", help="create a user")
    add.add_argument("name")
    add.add_argument("--admin", action="store_true", help="make the user a site admin")
    add.add_argument("--exist-ok", action="store_true", help="succeed if the user already exists")

    token = sub.add_parser("token", help="manage API tokens").add_subparsers(
        dest="action", required=True
    )
    create = token.add_parser("create", help="make a token; print a copr-cli config on stdout")
    create.add_argument("name", help="the user the token belongs to")
    create.add_argument("--days", type=int, default=180, help="lifetime in days (0: never expires)")

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
    from kopers.service import serve

    task = asyncio.current_task()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, task.cancel)  # type: ignore[union-attr]

    def ready(_: Any) -> None:
        print(f"Kopers is running at {cfg.server.public_url}/", flush=True)

    with contextlib.suppress(asyncio.CancelledError):
        await serve(cfg, ready)
    return 0


async def _with_store(cfg: Config, fn: Callable[[Store], Coroutine[Any, Any, int]]) -> int:
    db = await open_database(cfg.database.dsn, cfg.data_dir, max_size=2)
    try:
        await migrate(db.pool)
        return await fn(Store(db.pool))
    finally:
        await db.close()


async def _migrate(cfg: Config, args: argparse.Namespace) -> int:
    async def run(store: Store) -> int:
        return 0

    return await _with_store(cfg, run)


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
        await store.add_event(None, "cli", "user.create", user.name, {"admin": user.is_admin})
        print(f"created user {user.name}" + (" (admin)" if user.is_admin else ""), file=sys.stderr)
        return 0

    return await _with_store(cfg, run)


async def _token_create(cfg: Config, args: argparse.Namespace) -> int:
    if args.days < 0:
        raise KopersError("--days must not be negative")

    async def run(store: Store) -> int:
        user = await store.get_user(args.name)
        new = tokens.generate()
        expires = datetime.now(UTC) + timedelta(days=args.days) if args.days else None
        await store.create_token(user.id, new.login, new.digest, expires)
        await store.add_event(user.id, "cli", "token.create", user.name, {"login": new.login})
        sys.stdout.write(tokens.copr_cli_config(cfg.server.public_url, user.name, new))
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
    ("config", None): _show_config,
    ("user", "add"): _user_add,
    ("token", "create"): _token_create,
    ("template", "build"): _template_build,
}
