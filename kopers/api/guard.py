"""Slow and greedy clients: what one connection may hold, and for how long.

Three limits from `[limits]`:

- A request head must arrive within `head_timeout` seconds of the connection
  opening or of the previous response ending. This is aiohttp's own
  keep-alive timer (`keepalive_timeout`, which kopers.server sets to
  head_timeout): it closes a connection whose handler is still waiting for a
  complete request, so it covers a head trickled byte by byte and an idle
  keep-alive connection alike, and never a request being served (a long
  download, a websocket, a live log).
- A request body must average `min_body_rate_kib` KiB/s once `body_grace`
  seconds have passed (`BodyClock`, run by `body_clock_middleware`). Only the
  receiving of a body is timed, and only while the server is reading: time
  the server spends with its buffer full, the handler busy elsewhere, is not
  the client's. A body under the floor loses its connection without an answer.
- One client address may hold `connections_per_address` connections
  (`ConnectionGuard`, wrapped around aiohttp's protocol factory). One over the
  cap is answered a minimal 503 JSON and closed before aiohttp sees it.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
from collections import Counter
from collections.abc import Callable

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from kopers.limits import LimitsConfig
from kopers.redact import redact_path

log = logging.getLogger(__name__)


TICK_S = 1.0  # how often a body in progress is looked at
REFUSED_LINGER_S = 2.0  # how long a refused connection is drained so it can read its 503
# Refused connections drained at once, all addresses together; past it a refusal
# is an abort: a client connecting fast must not turn refusals into open files.
MAX_LINGERING = 128


def client_key(address: str) -> str:
    """What the per-address cap counts by: the address, or an IPv6 address's /64. Pure.

    One IPv6 subscriber holds a whole /64: counting single addresses would
    give them 2^64 caps.
    """
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return address


class BodyClock:
    """How fast one request body arrives, on the client's time. Pure: the caller passes the clock.

    The interval since the previous look counts only if the server was reading
    at this look: while the server's buffer is full the client cannot send.
    """

    __slots__ = ("_last", "elapsed", "grace_s", "min_bytes_per_s")

    def __init__(self, grace_s: float, min_bytes_per_s: float, started: float) -> None:
        self.grace_s = grace_s
        self.min_bytes_per_s = min_bytes_per_s
        self.elapsed = 0.0  # the client's time so far
        self._last = started

    def too_slow(self, now: float, received: int, reading: bool) -> bool:
        """Whether `received` bytes by `now` average under the floor, the grace being over."""
        if reading:
            self.elapsed += max(0.0, now - self._last)
        self._last = now
        if not self.min_bytes_per_s or self.elapsed < self.grace_s:
            return False
        return received < self.min_bytes_per_s * self.elapsed


class _BodyWatch:
    """Looks at one request's body every TICK_S until it is received, and cuts it if too slow."""

    def __init__(self, request: web.Request, clock: BodyClock) -> None:
        self._request = request
        self._clock = clock
        self._loop = asyncio.get_running_loop()
        self.cut = False
        self._handle: asyncio.TimerHandle | None = self._loop.call_later(TICK_S, self._look)

    def _look(self) -> None:
        self._handle = None
        content = self._request.content
        transport = self._request.transport
        if content.is_eof() or transport is None:
            return
        # Bytes off the wire: a compressed body must not pass for a fast one.
        received = getattr(content, "total_raw_bytes", content.total_bytes)
        if self._clock.too_slow(self._loop.time(), received, transport.is_reading()):
            self.cut = True
            log.info(
                "%s %s from %s: the body arrived at under %d B/s; connection dropped",
                self._request.method,
                redact_path(self._request.path),
                self._request.remote,
                self._clock.min_bytes_per_s,
            )
            self._request.protocol.force_close()
            return
        self._handle = self._loop.call_later(TICK_S, self._look)

    def stop(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None


def body_clock_middleware(limits: LimitsConfig) -> Middleware:
    """Time the receiving of each request body against the rate floor."""
    floor = limits.min_body_rate_kib << 10

    @web.middleware
    async def body_clock(request: web.Request, handler: Handler) -> web.StreamResponse:
        if not floor or not request.body_exists or request.content.is_eof():
            return await handler(request)
        started = asyncio.get_running_loop().time()
        watch = _BodyWatch(request, BodyClock(limits.body_grace_s, floor, started))
        try:
            return await handler(request)
        except Exception:
            if watch.cut:  # whatever failed, failed because the connection is gone
                raise web.HTTPRequestTimeout(reason="request body too slow") from None
            raise
        finally:
            watch.stop()

    return body_clock


class AddressSlots:
    """Open connections per client address, up to a cap (0: no cap). Pure."""

    __slots__ = ("_cap", "_open")

    def __init__(self, cap: int) -> None:
        self._cap = cap
        self._open: Counter[str] = Counter()

    def take(self, address: str) -> bool:
        if self._cap and self._open[address] >= self._cap:
            return False
        self._open[address] += 1
        return True

    def give(self, address: str) -> None:
        self._open[address] -= 1
        if self._open[address] <= 0:
            del self._open[address]  # an address with nothing open takes no memory

    def count(self, address: str) -> int:
        return self._open.get(address, 0)

    def __len__(self) -> int:
        return len(self._open)


class ConnectionGuard:
    """Wraps a protocol factory so each client address holds at most `cap` connections."""

    def __init__(self, cap: int) -> None:
        self.slots = AddressSlots(cap)
        self.lingering = 0  # refused connections being drained
        message = f"too many connections from this address (limits.connections_per_address = {cap})"
        body = json.dumps({"error": message}).encode()
        self.busy = (
            b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(body), body)
        )

    def wrap(self, factory: Callable[[], asyncio.Protocol]) -> Callable[[], asyncio.Protocol]:
        return lambda: _GuardedConnection(self, factory)


class _GuardedConnection(asyncio.Protocol):
    """One connection: handed to aiohttp's protocol once its address has a slot."""

    def __init__(self, guard: ConnectionGuard, factory: Callable[[], asyncio.Protocol]) -> None:
        self._guard = guard
        self._factory = factory
        self._inner: asyncio.Protocol | None = None
        self._address: str | None = None
        self._linger: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        peer = transport.get_extra_info("peername")
        address = client_key(str(peer[0])) if isinstance(peer, tuple) and peer else None
        if address is not None and not self._guard.slots.take(address):
            self._refuse(transport, address)
            return
        self._address = address
        self._inner = self._factory()
        self._inner.connection_made(transport)

    def _refuse(self, transport: asyncio.BaseTransport, address: str) -> None:
        log.info("refused a connection from %s: it has too many open", address)
        assert isinstance(transport, asyncio.Transport)
        if self._guard.lingering >= MAX_LINGERING:
            transport.abort()
            return
        self._guard.lingering += 1
        transport.write(self._guard.busy)
        if transport.can_write_eof():
            transport.write_eof()
        # Closing with the client's request unread would reset the connection
        # and could lose the answer: read and drop until it hangs up, briefly.
        loop = asyncio.get_running_loop()
        self._linger = loop.call_later(REFUSED_LINGER_S, transport.abort)

    def data_received(self, data: bytes) -> None:
        if self._inner is not None:
            self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        if self._inner is not None:
            return self._inner.eof_received()
        return None  # refused: close

    def connection_lost(self, exc: Exception | None) -> None:
        if self._linger is not None:
            self._linger.cancel()
            self._guard.lingering -= 1
        if self._inner is not None:
            if self._address is not None:
                self._guard.slots.give(self._address)
            self._inner.connection_lost(exc)

    def pause_writing(self) -> None:
        if self._inner is not None:
            self._inner.pause_writing()

    def resume_writing(self) -> None:
        if self._inner is not None:
            self._inner.resume_writing()
