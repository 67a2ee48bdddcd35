"""Helpers for the VM pool, live log and failure e2e tests (and bench/dispatch.py).

- `extra_server`: a second `kopers serve` with its own data dir, port and
  KOPERS_* overrides, side by side with the session server.
- `LiveLog`: a websocket client of /ws/builds/<id>/<chroot>/log.
- `Browser`: headless Chromium driven over the DevTools protocol (aiohttp).
- `leftovers`, `qemu_pid`: what a server left in libvirt and its overlay dir.
"""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp

from kopers.vm.domain import domain_prefix, instance_tag
from tests.e2e.server import Server, virsh_domain_names

CHROOT = "debian-12-x86_64"


def extra_server(base: Path, **overrides: str) -> Server:
    """A started Kopers server in `base`; overrides are KOPERS_* environment settings."""
    base.mkdir(parents=True, exist_ok=True)
    srv = Server.create(base, **overrides)
    srv.start()
    return srv


def build_id_of(output: str) -> int:
    match = re.search(r"Created builds: (\d+)", output)
    assert match, output
    return int(match.group(1))


def submit(server: Server, user: str, project: str, srpm: Path, *args: str) -> int:
    r = server.copr(user, "build", project, str(srpm), "--nowait", *args)
    assert r.returncode == 0, r.stdout + r.stderr
    return build_id_of(r.stdout)


def ensure_project(server: Server, user: str, project: str) -> None:
    server.user(user)
    r = server.copr(user, "create", project, "--chroot", CHROOT)
    assert r.returncode == 0 or "already" in r.stderr, r.stderr


def instance_prefix(server: Server) -> str:
    return domain_prefix(instance_tag(str(server.data_dir.resolve())))


def leftovers(server: Server) -> tuple[list[str], list[str]]:
    """This server's libvirt domains and overlay-directory files."""
    prefix = instance_prefix(server)
    domains = [d for d in virsh_domain_names() if d.startswith(prefix)]
    overlays = server.data_dir / "overlays"
    files = sorted(p.name for p in overlays.iterdir()) if overlays.is_dir() else []
    return domains, files


def wait_until(check: Callable[[], Any], timeout: float, what: str, step: float = 0.5) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(step)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def qemu_pid(domain: str) -> int:
    """The pid of the qemu process running a domain (qemu:///system)."""
    return int(Path(f"/run/libvirt/qemu/{domain}.pid").read_text().strip())


def live_text(server: Server, build_id: int) -> str:
    """The task's log so far, through the websocket backlog (works while it runs)."""
    return "\n".join(asyncio.run(LiveLog(server.url, build_id).backlog()))


class LiveLog:
    """A websocket client of one task's live log."""

    def __init__(self, base_url: str, build_id: int, chroot: str = CHROOT) -> None:
        self.url = base_url.replace("http://", "ws://") + f"/ws/builds/{build_id}/{chroot}/log"

    async def backlog(self, first: int = 1) -> list[str]:
        """The lines there are now (waits for none)."""
        lines: list[str] = []
        async with (
            aiohttp.ClientSession() as session,
            session.ws_connect(f"{self.url}?from={first}") as ws,
        ):
            while True:
                try:
                    msg = await ws.receive_json(timeout=1.0)
                except (TimeoutError, TypeError):
                    return lines
                if msg["type"] == "lines":
                    lines += msg["lines"]
                elif msg["type"] == "end":
                    return lines

    async def follow(
        self, first: int = 1, stop: Callable[[int, str], bool] | None = None, timeout: float = 600
    ) -> tuple[list[tuple[int, str]], dict[str, Any] | None]:
        """(number, text) of each line from `first` until `stop(n, text)` or the end message."""
        got: list[tuple[int, str]] = []
        async with (
            asyncio.timeout(timeout),
            aiohttp.ClientSession() as session,
            session.ws_connect(f"{self.url}?from={first}") as ws,
        ):
            async for raw in ws:
                msg = json.loads(raw.data)
                if msg["type"] == "lines":
                    for i, text in enumerate(msg["lines"]):
                        got.append((msg["first"] + i, text))
                        if stop is not None and stop(*got[-1]):
                            return got, None
                elif msg["type"] == "end":
                    return got, msg
        return got, None


class Browser:
    """Headless Chromium with one page, driven over the DevTools protocol."""

    def __init__(self, profile: Path) -> None:
        self.profile = profile
        self.proc: subprocess.Popen[bytes] | None = None
        self.session: aiohttp.ClientSession | None = None
        self.ws: aiohttp.ClientWebSocketResponse | None = None
        self._id = 0

    async def __aenter__(self) -> Browser:
        exe = shutil.which("chromium")
        assert exe, "chromium is not installed (apt-get install -y chromium)"
        self.proc = subprocess.Popen(
            [
                exe,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
                f"--user-data-dir={self.profile}",
                "--remote-debugging-port=0",
                "about:blank",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        port_file = self.profile / "DevToolsActivePort"
        port = wait_until(
            lambda: port_file.is_file() and port_file.read_text().split("\n")[0], 60, "chromium"
        )
        self.session = aiohttp.ClientSession()
        async with self.session.get(f"http://127.0.0.1:{port}/json/list") as resp:
            targets = await resp.json()
        page = next(t for t in targets if t["type"] == "page")
        self.ws = await self.session.ws_connect(page["webSocketDebuggerUrl"], max_msg_size=0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self.ws is not None:
            await self.ws.close()
        if self.session is not None:
            await self.session.close()
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    async def call(self, method: str, **params: Any) -> dict[str, Any]:
        assert self.ws is not None
        self._id += 1
        await self.ws.send_json({"id": self._id, "method": method, "params": params})
        while True:
            msg = await self.ws.receive_json(timeout=60)
            if msg.get("id") == self._id:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return dict(msg["result"])

    async def goto(self, url: str) -> None:
        await self.call("Page.navigate", url=url)

    async def eval(self, expression: str) -> Any:
        result = await self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        return result.get("result", {}).get("value")

    async def wait_for(self, expression: str, timeout: float, what: str) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = await self.eval(expression)
            if value:
                return value
            await asyncio.sleep(0.25)
        raise AssertionError(f"the page did not show {what} within {timeout:.0f} s")
