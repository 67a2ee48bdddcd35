"""Slow clients against the real server (`kopers.server.serve` on a real socket).

The limits are small here: a request head must arrive within 2 s, a body must
average 4 KiB/s after 1 s of grace, and one address may hold 3 connections.
Timings are asserted only coarsely: "closed well before 4x the timeout".
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from kopers import config as config_mod
from kopers import tokens
from kopers.api.app import create_app
from kopers.server import serve
from kopers.service import Kopers, open_kopers
from tests.integration.conftest import CHROOT, basic
from tests.integration.liveserver import free_port
from tests.integration.test_body_limits import (
    END,
    MULTIPART,
    part_head,
    read_response,
    request_head,
)

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
HEAD_TIMEOUT = 2
GRACE = 1
FLOOR_KIB = 4
PER_ADDRESS = 3
TOO_LATE = 4 * HEAD_TIMEOUT
OPTS = {"ownername": "alice", "projectname": "p", "project_dirname": "p", "chroots": None}


@dataclass
class Guarded:
    port: int
    kopers: Kopers
    auth: str

    async def connect(
        self, rcvbuf: int | None = None
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        sock = socket.socket()
        if rcvbuf is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", self.port))
        return await asyncio.open_connection(sock=sock)


@pytest.fixture
async def guarded(dsn: str, tmp_path: Path) -> AsyncIterator[Guarded]:
    port = free_port()
    cfg = config_mod.load(
        str(REPO / "kopers.toml"),
        env={
            "KOPERS_DATA_DIR": str(tmp_path / "data"),
            "KOPERS_DATABASE_DSN": dsn,
            "KOPERS_LISTEN": f"127.0.0.1:{port}",
            "KOPERS_VM_WARM": "0",
            "KOPERS_LIMITS_HEAD_TIMEOUT": str(HEAD_TIMEOUT),
            "KOPERS_LIMITS_BODY_GRACE": str(GRACE),
            "KOPERS_LIMITS_MIN_BODY_RATE_KIB": str(FLOOR_KIB),
            "KOPERS_LIMITS_CONNECTIONS_PER_ADDRESS": str(PER_ADDRESS),
        },
    )
    kopers = await open_kopers(cfg, with_vms=False)
    alice = await kopers.store.create_user("alice", False)
    new = tokens.generate()
    await kopers.store.create_token(alice.id, new.login, new.digest, None)
    await kopers.projects.create(alice, "alice", {"name": "p", "chroots": [CHROOT]})
    ready = asyncio.Event()
    server = asyncio.create_task(serve(kopers, create_app(kopers), ready.set))
    try:
        await asyncio.wait_for(ready.wait(), 60)
        yield Guarded(port, kopers, basic(new.login, new.secret))
    finally:
        server.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await server


async def closed(reader: asyncio.StreamReader) -> bytes:
    """Everything the server sends until it hangs up."""
    got = b""
    with contextlib.suppress(ConnectionError):
        while data := await reader.read(1 << 16):
            got += data
    return got


async def trickle(
    writer: asyncio.StreamWriter, data: bytes, every: float, until: asyncio.Task[bytes]
) -> None:
    """Send `data` a piece at a time until it is all sent or `until` is done."""
    for start in range(0, len(data), 1):
        if until.done():
            return
        with contextlib.suppress(ConnectionError):
            writer.write(data[start : start + 1])
            await writer.drain()
        await asyncio.sleep(every)


async def test_a_request_head_trickled_byte_by_byte_is_dropped(guarded: Guarded) -> None:
    reader, writer = await guarded.connect()
    head = b"GET /api_3/ HTTP/1.1\r\nHost: kopers\r\nX-Slow: " + b"s" * 40 + b"\r\n\r\n"
    started = time.monotonic()
    hangup = asyncio.create_task(closed(reader))
    sender = asyncio.create_task(trickle(writer, head, 0.5, hangup))
    try:
        got = await asyncio.wait_for(asyncio.shield(hangup), TOO_LATE)
    finally:
        sender.cancel()
        writer.close()
    assert time.monotonic() - started < TOO_LATE
    assert not got.startswith(b"HTTP/1.1 200")  # dropped, not answered


async def test_an_idle_keep_alive_connection_is_dropped(guarded: Guarded) -> None:
    reader, writer = await guarded.connect()
    try:
        writer.write(b"GET /api_3/ HTTP/1.1\r\nHost: kopers\r\n\r\n")
        status, body = await read_response(reader)
        assert status == 200 and body == {"version": 3}
        started = time.monotonic()
        assert await asyncio.wait_for(closed(reader), TOO_LATE) == b""
        assert time.monotonic() - started < TOO_LATE
    finally:
        writer.close()


@pytest.mark.parametrize("route", ["json", "upload"])
async def test_a_body_trickled_under_the_floor_is_cut(guarded: Guarded, route: str) -> None:
    if route == "json":
        head = request_head(
            "/api_3/build/check-before-build", guarded.auth, "application/json", 100_000
        )
        start = b'{"ownername": "alice", "description": "'
    else:
        head = request_head("/api_3/build/create/upload", guarded.auth, MULTIPART, 1 << 20)
        start = part_head("pkgs", "slow.src.rpm", "application/x-rpm")
    reader, writer = await guarded.connect()
    writer.write(head + start)
    started = time.monotonic()
    hangup = asyncio.create_task(closed(reader))
    # 256 bytes a second, far under 4 KiB/s.
    sender = asyncio.create_task(trickle(writer, b"x" * 4096, 1 / 256, hangup))
    try:
        got = await asyncio.wait_for(asyncio.shield(hangup), TOO_LATE)
    finally:
        sender.cancel()
        writer.close()
    assert time.monotonic() - started < TOO_LATE
    assert not got.startswith(b"HTTP/1.1 200")
    incoming = guarded.kopers.paths.incoming
    for _ in range(50):  # the handler cleans up as it sees the connection gone
        if not list(incoming.iterdir()):
            break
        await asyncio.sleep(0.1)
    assert list(incoming.iterdir()) == []


async def test_a_body_that_keeps_above_the_floor_is_not_cut(guarded: Guarded) -> None:
    body = json.dumps({**OPTS, "description": "d" * (40 << 10)}).encode()
    reader, writer = await guarded.connect()
    try:
        writer.write(
            request_head(
                "/api_3/build/check-before-build", guarded.auth, "application/json", len(body)
            )
        )
        # 16 KiB/s, four times the floor, for about 2.5 s: slow, but fine.
        for start in range(0, len(body), 1024):
            writer.write(body[start : start + 1024])
            await writer.drain()
            await asyncio.sleep(1 / 16)
        status, answer = await asyncio.wait_for(read_response(reader), 10)
    finally:
        writer.close()
    assert status == 200, answer


async def test_a_slow_download_is_not_cut(guarded: Guarded) -> None:
    """A GET that takes far longer than the head timeout to read is served in full."""
    size = 24 << 20
    target = guarded.kopers.paths.results / "alice" / "p" / "big.bin"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(os.urandom(1 << 20) * (size >> 20))
    reader, writer = await guarded.connect(rcvbuf=64 << 10)
    try:
        writer.write(b"GET /results/alice/p/big.bin HTTP/1.1\r\nHost: kopers\r\n\r\n")
        head = await reader.readuntil(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200"), head
        started, received = time.monotonic(), 0
        rate = size / (3 * HEAD_TIMEOUT)  # the whole file takes three head timeouts
        while received < size:
            data = await asyncio.wait_for(reader.read(64 << 10), 10)
            assert data, f"cut after {received} of {size} bytes"
            received += len(data)
            ahead = received / rate - (time.monotonic() - started)
            if ahead > 0:
                await asyncio.sleep(ahead)
        assert time.monotonic() - started > 2 * HEAD_TIMEOUT
    finally:
        writer.close()
    assert received == size


async def test_connections_per_address_are_capped(guarded: Guarded) -> None:
    held = [await guarded.connect() for _ in range(PER_ADDRESS)]
    try:
        reader, writer = await guarded.connect()
        writer.write(b"GET /api_3/ HTTP/1.1\r\nHost: kopers\r\n\r\n")
        status, body = await asyncio.wait_for(read_response(reader), 5)
        assert status == 503, body
        assert "connections_per_address" in body["error"]
        assert await asyncio.wait_for(closed(reader), 5) == b""
        writer.close()

        # One of the held connections goes: a new one is served again.
        held.pop()[1].close()
        for _ in range(50):
            reader, writer = await guarded.connect()
            writer.write(b"GET /api_3/ HTTP/1.1\r\nHost: kopers\r\n\r\n")
            status, body = await asyncio.wait_for(read_response(reader), 5)
            writer.close()
            if status == 200:
                break
            await asyncio.sleep(0.05)
        assert status == 200 and body == {"version": 3}
    finally:
        for _, held_writer in held:
            held_writer.close()


async def test_refused_uploads_give_their_slot_back(guarded: Guarded) -> None:
    """Connections aiohttp closes after a 413 no longer count against the address."""
    for _ in range(PER_ADDRESS * 2):
        reader, writer = await guarded.connect()
        writer.write(request_head("/api_3/build/create/upload", guarded.auth, MULTIPART, 3 << 30))
        writer.write(part_head("json") + b"{}\r\n" + END)
        status, _ = await asyncio.wait_for(read_response(reader), 5)
        assert status == 413
        writer.close()
        await asyncio.sleep(0.05)
    reader, writer = await guarded.connect()
    writer.write(b"GET /api_3/ HTTP/1.1\r\nHost: kopers\r\n\r\n")
    status, _ = await asyncio.wait_for(read_response(reader), 5)
    writer.close()
    assert status == 200
