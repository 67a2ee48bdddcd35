"""The egress proxy on real sockets: what a network-enabled build can and cannot reach.

A build with network access reaches out only through this proxy. Targets on
the host (loopback, the guest's 10.0.2.2 stand-in for it), link-local metadata
and private networks are refused with a one-line 403 before any connection is
made; an allow-listed network passes, both as a CONNECT tunnel and as an
absolute-URI request. The upstream server here counts what reaches it.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from kopers.config import NetworkConfig
from kopers.errors import InfrastructureError
from kopers.net.local import address_policy
from kopers.net.policy import AddressPolicy
from kopers.net.proxy import MAX_HEAD, EgressProxy, ProxyLimits, ProxySession

pytestmark = pytest.mark.integration
ALLOWED = "127.0.0.2"  # the one loopback address the permissive proxy may reach
HANG_GUARD_S = 30  # a proxy that never answers must fail the test, not hang it


@dataclass
class Upstream:
    host: str
    port: int
    hits: list[str] = field(default_factory=list)


@asynccontextmanager
async def upstream(host: str) -> AsyncIterator[Upstream]:
    """A plain HTTP server on `host` that records every request reaching it."""
    server = Upstream(host, 0)

    async def hello(request: web.Request) -> web.Response:
        server.hits.append(request.path)
        return web.Response(text="hello from upstream")

    app = web.Application()
    app.router.add_get("/{tail:.*}", hello)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, 0)
    await site.start()
    server.port = int(runner.addresses[0][1])
    try:
        yield server
    finally:
        await runner.cleanup()


@asynccontextmanager
async def running(policy: AddressPolicy, **limits: Any) -> AsyncIterator[ProxySession]:
    """A proxy with one build's session open, as the pipeline opens it."""
    proxy = EgressProxy(policy, ProxyLimits(**limits))
    try:
        async with proxy.session("build 1/debian-12-x86_64") as session:
            yield session
    finally:
        await proxy.close()


@asynccontextmanager
async def proxy_for(policy: AddressPolicy, **limits: Any) -> AsyncIterator[EgressProxy]:
    """A proxy with no session open yet."""
    proxy = EgressProxy(policy, ProxyLimits(**limits))
    try:
        yield proxy
    finally:
        await proxy.close()


def strict() -> AddressPolicy:
    return address_policy(NetworkConfig())


def permissive() -> AddressPolicy:
    return address_policy(NetworkConfig((ipaddress.ip_network(f"{ALLOWED}/32"),)))


async def ask(proxy: ProxySession, head: str) -> tuple[int, bytes]:
    """Send one request head; the proxy's status and everything after the head."""
    async with asyncio.timeout(HANG_GUARD_S):
        reader, writer = await asyncio.open_connection(*proxy.address)
        writer.write(head.encode())
        data = await reader.read()
        writer.close()
    status_line, _, rest = data.partition(b"\r\n")
    return int(status_line.split(b" ")[1]), rest.partition(b"\r\n\r\n")[2]


@asynccontextmanager
async def tunnel(
    proxy: ProxySession, target: str
) -> AsyncIterator[tuple[asyncio.StreamReader, asyncio.StreamWriter]]:
    reader, writer = await asyncio.open_connection(*proxy.address)
    try:
        writer.write(f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n".encode())
        async with asyncio.timeout(HANG_GUARD_S):
            answer = await reader.readuntil(b"\r\n\r\n")
        assert answer.startswith(b"HTTP/1.1 200 "), answer
        yield reader, writer
    finally:
        writer.close()


def closed_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


REFUSED: list[tuple[str, Callable[[int], str]]] = [
    ("loopback", lambda p: f"CONNECT 127.0.0.1:{p} HTTP/1.1\r\n\r\n"),
    ("loopback", lambda p: f"GET http://127.0.0.1:{p}/api/status HTTP/1.1\r\n\r\n"),
    ("loopback", lambda p: f"CONNECT localhost:{p} HTTP/1.1\r\n\r\n"),
    ("loopback", lambda p: f"GET http://2130706433:{p}/ HTTP/1.1\r\n\r\n"),
    ("loopback", lambda p: f"GET http://127.1:{p}/ HTTP/1.1\r\n\r\n"),
    ("loopback, IPv4-mapped", lambda p: f"CONNECT [::ffff:127.0.0.1]:{p} HTTP/1.1\r\n\r\n"),
    ("unspecified", lambda p: f"CONNECT 0.0.0.0:{p} HTTP/1.1\r\n\r\n"),
    ("private", lambda p: "CONNECT 10.0.2.2:22 HTTP/1.1\r\n\r\n"),
    ("private", lambda p: f"GET http://10.0.2.2:{p}/ HTTP/1.1\r\n\r\n"),
    ("private", lambda p: "GET http://192.168.1.1/ HTTP/1.1\r\n\r\n"),
    ("link-local", lambda p: "GET http://169.254.169.254/latest/meta-data/ HTTP/1.1\r\n\r\n"),
    ("link-local", lambda p: "CONNECT 169.254.169.254:443 HTTP/1.1\r\n\r\n"),
]


@pytest.mark.parametrize(
    ("category", "head"), REFUSED, ids=[head(0).split(" HTTP/")[0] for _, head in REFUSED]
)
async def test_targets_on_the_host_and_inside_are_refused_with_a_one_line_403(
    category: str, head: Callable[[int], str]
) -> None:
    async with upstream("127.0.0.1") as server, running(strict()) as proxy:
        status, body = await ask(proxy, head(server.port))
    assert status == 403
    assert body.endswith(f"is refused by the address policy ({category})\n".encode())
    assert body.count(b"\n") == 1
    assert server.hits == []


async def test_the_ipv6_loopback_is_refused() -> None:
    async with running(strict()) as proxy:
        status, body = await ask(proxy, "CONNECT [::1]:22 HTTP/1.1\r\n\r\n")
    assert (status, body) == (403, b"::1 is refused by the address policy (loopback)\n")


async def test_an_allow_listed_target_passes_both_ways() -> None:
    async with upstream(ALLOWED) as server, running(permissive()) as proxy:
        status, body = await ask(
            proxy, f"GET http://{ALLOWED}:{server.port}/plain HTTP/1.1\r\nHost: x\r\n\r\n"
        )
        assert (status, body) == (200, b"hello from upstream")
        async with tunnel(proxy, f"{ALLOWED}:{server.port}") as (reader, writer):
            writer.write(b"GET /tunneled HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            async with asyncio.timeout(HANG_GUARD_S):
                answer = await reader.read()
        assert answer.startswith(b"HTTP/1.1 200 ") and answer.endswith(b"hello from upstream")
        # The same proxy still refuses the rest of loopback.
        status, _ = await ask(proxy, f"GET http://127.0.0.1:{server.port}/ HTTP/1.1\r\n\r\n")
        assert status == 403
    assert server.hits == ["/plain", "/tunneled"]


async def test_an_ordinary_http_client_works_through_it() -> None:
    async with upstream(ALLOWED) as server, running(permissive()) as proxy:
        host, port = proxy.address
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"http://{ALLOWED}:{server.port}/dnf", proxy=f"http://{host}:{port}") as r,
        ):
            assert (r.status, await r.text()) == (200, "hello from upstream")
    assert server.hits == ["/dnf"]


async def test_the_proxy_never_connects_to_itself() -> None:
    allow_all_loopback = AddressPolicy(allow=(ipaddress.ip_network("127.0.0.0/8"),))
    async with running(allow_all_loopback) as proxy:
        _, port = proxy.address
        status, body = await ask(proxy, f"CONNECT 127.0.0.1:{port} HTTP/1.1\r\n\r\n")
    assert status == 403 and b"the egress proxy itself" in body


@pytest.mark.parametrize(
    ("head", "status", "text"),
    [
        (lambda: f"CONNECT {ALLOWED}:{closed_port(ALLOWED)} HTTP/1.1\r\n\r\n", 502, b"refused"),
        (lambda: "CONNECT nothing.invalid:443 HTTP/1.1\r\n\r\n", 502, b"cannot resolve"),
        (lambda: "GET /relative HTTP/1.1\r\nHost: x\r\n\r\n", 400, b"absolute http://"),
        (lambda: "GET https://example.org/ HTTP/1.1\r\n\r\n", 400, b"CONNECT"),
        (lambda: "CONNECT a:1 HTTP/1.1\r\n" + "X: y\r\n" * 200 + "\r\n", 431, b"header"),
    ],
    ids=["closed port", "unresolvable", "relative URL", "https URL", "too many headers"],
)
async def test_failures_get_one_line_answers(
    head: Callable[[], str], status: int, text: bytes
) -> None:
    async with running(permissive()) as proxy:
        got, body = await ask(proxy, head())
    assert got == status and text in body and body.count(b"\n") == 1, body


async def test_a_head_larger_than_the_cap_gets_431() -> None:
    async with running(strict()) as proxy:
        status, body = await ask(proxy, "CONNECT a:1 HTTP/1.1\r\nX: " + "y" * MAX_HEAD)
    assert status == 431 and str(MAX_HEAD).encode() in body


async def test_connections_past_the_cap_get_503() -> None:
    async with upstream(ALLOWED) as server, running(permissive(), max_connections=2) as proxy:
        target = f"{ALLOWED}:{server.port}"
        async with tunnel(proxy, target), tunnel(proxy, target):
            status, body = await ask(proxy, f"CONNECT {target} HTTP/1.1\r\n\r\n")
            assert status == 503 and b"busy" in body
        # Once the two tunnels have ended, there is room again.
        async with asyncio.timeout(HANG_GUARD_S):
            while proxy.exchanges:
                await asyncio.sleep(0.01)
        async with tunnel(proxy, target):
            assert proxy.exchanges == 1


async def until_closed(reader: asyncio.StreamReader) -> bytes:
    async with asyncio.timeout(HANG_GUARD_S):
        return await reader.read()


async def test_a_client_that_sends_no_head_is_dropped() -> None:
    async with running(strict(), head_timeout_s=0.05) as proxy:
        reader, writer = await asyncio.open_connection(*proxy.address)
        writer.write(b"CONNECT 8.8.8.8:443 HTTP/1.1\r\n")  # and never the blank line
        assert await until_closed(reader) == b""
        writer.close()


async def test_a_quiet_tunnel_is_closed() -> None:
    async with (
        upstream(ALLOWED) as server,
        running(permissive(), idle_timeout_s=0.05) as proxy,
        tunnel(proxy, f"{ALLOWED}:{server.port}") as (reader, _),
    ):
        assert await until_closed(reader) == b""


async def test_close_ends_open_tunnels_and_stops_listening() -> None:
    async with upstream(ALLOWED) as server:
        proxy = EgressProxy(permissive())
        session = await proxy.open_session("build 1/x")
        async with tunnel(session, f"{ALLOWED}:{server.port}") as (reader, _):
            await proxy.close()
            assert await until_closed(reader) == b""
    with pytest.raises(InfrastructureError, match="is closed"):
        _ = session.address


@dataclass
class Holding:
    """A slow public server: it accepts connections and holds them, silent."""

    port: int
    held: asyncio.Queue[asyncio.StreamReader] = field(default_factory=asyncio.Queue)


@asynccontextmanager
async def holding(host: str) -> AsyncIterator[Holding]:
    server = Holding(0)
    writers: list[asyncio.StreamWriter] = []  # kept, so the connections stay open

    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.append(writer)
        await server.held.put(reader)

    listener = await asyncio.start_server(hold, host, 0)
    server.port = int(listener.sockets[0].getsockname()[1])
    try:
        yield server
    finally:
        listener.close()
        for writer in writers:
            writer.close()


async def test_a_build_at_its_own_cap_does_not_shut_out_another(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, "kopers.net.proxy")
    async with (
        holding(ALLOWED) as server,
        proxy_for(permissive(), per_build_connections=2) as proxy,
        proxy.session("build 7/debian-12-x86_64") as greedy,
        proxy.session("build 8/fedora-40-x86_64") as other,
    ):
        target = f"{ALLOWED}:{server.port}"
        assert greedy.address != other.address
        async with tunnel(greedy, target), tunnel(greedy, target):
            status, body = await ask(greedy, f"CONNECT {target} HTTP/1.1\r\n\r\n")
            assert status == 503 and b"busy" in body
            async with tunnel(other, target):
                assert (greedy.exchanges, other.exchanges, proxy.exchanges) == (2, 1, 3)
    assert "build 7/debian-12-x86_64" in caplog.text
    assert "build 8/fedora-40-x86_64" not in caplog.text


async def test_closing_a_session_ends_its_tunnels_and_its_port() -> None:
    async with (
        holding(ALLOWED) as server,
        proxy_for(permissive()) as proxy,
        proxy.session("build 9/x") as other,
    ):
        target = f"{ALLOWED}:{server.port}"
        session = await proxy.open_session("build 8/x")
        async with tunnel(session, target) as (reader, _), tunnel(other, target) as (kept, _):
            held = [await server.held.get(), await server.held.get()]
            address = session.address
            await session.close()
            assert await until_closed(reader) == b""
            # Which upstream connection was the closed session's is not known: one ended.
            reads = [asyncio.create_task(r.read()) for r in held]
            async with asyncio.timeout(HANG_GUARD_S):
                done, pending = await asyncio.wait(reads, return_when=asyncio.FIRST_COMPLETED)
            assert [t.result() for t in done] == [b""]
            assert other.exchanges == 1 and not kept.at_eof()
            for task in pending:
                task.cancel()
        with pytest.raises(OSError):
            await asyncio.open_connection(*address)
        with pytest.raises(InfrastructureError, match="closed"):
            _ = session.address
        await session.close()  # a second close is harmless


async def test_closing_the_proxy_closes_its_sessions() -> None:
    async with holding(ALLOWED) as server:
        proxy = EgressProxy(permissive())
        session = await proxy.open_session("build 10/x")
        address = session.address
        async with tunnel(session, f"{ALLOWED}:{server.port}") as (reader, _):
            await proxy.close()
            assert await until_closed(reader) == b""
        with pytest.raises(OSError):
            await asyncio.open_connection(*address)
