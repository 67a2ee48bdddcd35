"""A full Kopers app served over TCP from a thread with its own event loop.

Synchronous HTTP clients (schemathesis, requests) can call it from the test's
thread while the server keeps answering. Kopers is opened without VMs and its
scheduler loop is not started, so nothing submitted is fetched or built: a
build stays a row. Users alice, bob (plain) and root (site admin) each get a
token. alice owns project `alice/proj`, where carol (no token) is an approved
builder, and bob owns `bob/mine`; each project has two builds (one waiting,
one canceled), made as rows.
"""

from __future__ import annotations

import asyncio
import base64
import socket
import threading
from collections.abc import Coroutine, Iterator, Mapping
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from kopers import config as config_mod
from kopers import tokens
from kopers.access import Grant, PermState
from kopers.api.app import create_app
from kopers.server import listening
from kopers.service import Kopers, open_kopers
from tests.integration.conftest import waiting_build

REPO = Path(__file__).resolve().parents[2]
CHROOT = "debian-12-x86_64"
T = TypeVar("T")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def basic(login: str, secret: str) -> str:
    return "Basic " + base64.b64encode(f"{login}:{secret}".encode()).decode()


@dataclass
class LiveServer:
    """What the tests know of the running server: its URL, credentials and objects."""

    url: str
    loop: asyncio.AbstractEventLoop
    kopers: Kopers
    auth: dict[str, str] = field(default_factory=dict)  # user -> Authorization header
    logins: dict[str, str] = field(default_factory=dict)  # user -> token login
    builds: dict[str, list[int]] = field(default_factory=dict)  # owner -> build ids

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 60) -> T:
        """Run `coro` on the server's loop (where the database pool lives)."""
        future: Future[T] = asyncio.run_coroutine_threadsafe(coro, self.loop)
        return future.result(timeout)


async def _populate(kopers: Kopers, server: LiveServer) -> None:
    store = kopers.store
    for name in ("alice", "bob", "root"):
        user = await store.create_user(name, name == "root")
        new = tokens.generate()
        await store.create_token(user.id, new.login, new.digest, None)
        server.auth[name] = basic(new.login, new.secret)
        server.logins[name] = new.login
    for owner, name in (("alice", "proj"), ("bob", "mine")):
        user = await store.get_user(owner)
        project = await kopers.projects.create(
            user, owner, {"name": name, "chroots": [CHROOT], "description": "d"}
        )
        if owner == "alice":
            await store.create_user("carol", False)

            def plan(current: Mapping[str, Grant]) -> dict[str, Grant]:
                return {"carol": Grant(builder=PermState.APPROVED)}

            await store.update_grants(project.id, plan)
        server.builds[owner] = []
        for finished in (False, True):
            build_id = await waiting_build(store, project.id, user.id, finished)
            server.builds[owner].append(build_id)


@contextmanager
def live_server(dsn: str, data_dir: Path) -> Iterator[LiveServer]:
    """Serve Kopers on 127.0.0.1 from a thread until the block ends."""
    port = free_port()
    cfg = config_mod.load(
        str(REPO / "kopers.toml"),
        env={
            "KOPERS_DATA_DIR": str(data_dir),
            "KOPERS_DATABASE_DSN": dsn,
            "KOPERS_LISTEN": f"127.0.0.1:{port}",
        },
    )
    loop = asyncio.new_event_loop()
    ready: Future[LiveServer] = Future()
    stop = asyncio.Event()

    async def main() -> None:
        kopers = await open_kopers(cfg, with_vms=False)
        try:
            server = LiveServer(f"http://127.0.0.1:{port}", loop, kopers)
            await _populate(kopers, server)
            # What `kopers serve` listens with (the connection guard included), minus its loops.
            async with listening(create_app(kopers), "127.0.0.1", port, cfg.limits):
                ready.set_result(server)
                await stop.wait()
        finally:
            await kopers.close()

    def thread_main() -> None:
        try:
            loop.run_until_complete(main())
        except BaseException as exc:
            if not ready.done():
                ready.set_exception(exc)
        finally:
            loop.close()

    thread = threading.Thread(target=thread_main, name="kopers-live", daemon=True)
    thread.start()
    try:
        yield ready.result(timeout=120)
    finally:
        if not loop.is_closed():
            loop.call_soon_threadsafe(stop.set)
        thread.join(60)
