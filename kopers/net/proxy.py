"""The egress proxy: the only way out of a network-enabled builder VM.

Builder VMs keep QEMU's `restrict=on` whatever the project says, so a build
with network access reaches the world only through this HTTP proxy, which the
pipeline forwards into the VM over the build's SSH connection (the same path
repositories take). It listens on 127.0.0.1 of the Kopers host, one port per
build, and serves
`CONNECT host:port` (https and other TLS) and absolute-URI requests
(`GET http://host/...`). Every target is resolved once and checked against the
address policy; the connection goes to a checked address, so neither the
guest's 10.0.2.2 nor a DNS answer that changes its mind leads back to the host
or its private network.

One request per client connection: after the (rewritten) head the proxy only
relays bytes, and an upstream `Connection: close` ends the exchange. This keeps
the proxy out of HTTP framing and bodies. Heads are capped in size and time,
an exchange ends after a quiet spell, and a cap on open connections answers
503 past it. Refused targets get a one-line 403, failed ones a one-line 502.

Each build gets a session of its own (`EgressProxy.session`): a listener on an
ephemeral port of 127.0.0.1 with a cap of its own under the global one, so a
build that holds all it may hold shuts out only itself; closing the session
ends every exchange it carried. There is no listener for anyone else: a port
that no build needs is only one more door on the host.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass

from kopers.errors import InfrastructureError
from kopers.net.connect import open_checked, resolve_checked
from kopers.net.httphead import BadProxyRequest, ProxyRequest, parse_head, reply
from kopers.net.policy import AddressPolicy, AddressRefused, IPAddress

log = logging.getLogger(__name__)

MAX_HEAD = 16 << 10  # bytes of request line and headers
CHUNK = 1 << 16


@dataclass(frozen=True, slots=True)
class ProxyLimits:
    """What one client may hold of the proxy; builds share it, so none may take it all."""

    max_connections: int = 128  # all builds together
    per_build_connections: int = 16  # one build's session
    head_timeout_s: float = 30.0  # to send the request head
    connect_timeout_s: float = 30.0  # per upstream address tried
    idle_timeout_s: float = 300.0  # no byte either way: the exchange ends


class _Activity:
    """When a byte last crossed an exchange, in either direction."""

    def __init__(self, now: float) -> None:
        self.last = now


class _Door:
    """One listener's share of the proxy: the exchanges it carries, against its cap."""

    def __init__(self, label: str, cap: int) -> None:
        self.label = label
        self.cap = cap
        self.tasks: set[asyncio.Task[None]] = set()  # one per client connection
        self.active = 0  # exchanges under way (the cap counts these)
        self.turned_away = 0  # connections past a cap, being answered 503

    async def end(self) -> None:
        """End every exchange that came in through this door."""
        tasks = list(self.tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


class ProxySession:
    """One build's own listener on the egress proxy; see EgressProxy.session."""

    def __init__(self, proxy: EgressProxy, door: _Door, server: asyncio.Server) -> None:
        self._proxy = proxy
        self._door = door
        self._server: asyncio.Server | None = server
        self.port = int(server.sockets[0].getsockname()[1])

    @property
    def label(self) -> str:
        return self._door.label

    @property
    def address(self) -> tuple[str, int]:
        """Where the session listens; InfrastructureError once it is closed."""
        if self._server is None:
            raise InfrastructureError(f"the egress proxy session of {self.label} is closed")
        return self._proxy.host, self.port

    @property
    def exchanges(self) -> int:
        """This session's client connections being served now."""
        return self._door.active

    async def close(self) -> None:
        """Stop listening and end every exchange of this session; again is harmless."""
        server, self._server = self._server, None
        if server is None:
            return
        self._proxy._sessions.discard(self)
        # Everything is told to stop before the first await, so a close that is
        # itself cancelled still leaves no listener or exchange running.
        server.close()
        await self._door.end()
        await server.wait_closed()


class EgressProxy:
    """An HTTP proxy on 127.0.0.1 that connects only where the policy permits."""

    def __init__(
        self, policy: AddressPolicy, limits: ProxyLimits | None = None, host: str = "127.0.0.1"
    ) -> None:
        self.policy = policy
        self.limits = limits or ProxyLimits()
        self.host = host
        self._sessions: set[ProxySession] = set()
        self._active = 0  # exchanges under way through any door (the global cap)
        self._turned_away = 0  # connections past a cap through any door

    @property
    def exchanges(self) -> int:
        """Client connections being served now, through any door."""
        return self._active

    async def open_session(self, label: str) -> ProxySession:
        """A listener of one build's own, on an ephemeral port; `label` names it in logs."""
        door = _Door(label, self.limits.per_build_connections)

        async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await self._accept(door, reader, writer)

        try:
            server = await asyncio.start_server(accept, self.host, 0, limit=MAX_HEAD)
        except OSError as exc:
            raise InfrastructureError(f"cannot open an egress proxy session: {exc}") from exc
        session = ProxySession(self, door, server)
        self._sessions.add(session)
        return session

    @contextlib.asynccontextmanager
    async def session(self, label: str) -> AsyncIterator[ProxySession]:
        """open_session for the length of a block, closed on every way out of it."""
        session = await self.open_session(label)
        try:
            yield session
        finally:
            await session.close()

    async def close(self) -> None:
        """Close every session, ending every open exchange."""
        await asyncio.gather(*(s.close() for s in list(self._sessions)))

    # -- one client connection ---------------------------------------------------

    async def _accept(
        self, door: _Door, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        task = asyncio.current_task()
        assert task is not None
        door.tasks.add(task)
        try:
            if door.active >= door.cap or self._active >= self.limits.max_connections:
                await self._turn_away(door, reader, writer)
            else:
                door.active += 1
                self._active += 1
                try:
                    await self._exchange(door, reader, writer)
                finally:
                    door.active -= 1
                    self._active -= 1
        except asyncio.CancelledError:
            # close() ends the exchange. This task is asyncio's callback task, which
            # nobody else awaits: ending quietly keeps asyncio from logging it.
            pass
        except (ConnectionError, OSError):
            pass  # the client went away; nothing to tell anyone
        except Exception:
            log.exception("egress proxy: an exchange failed")
        finally:
            door.tasks.discard(task)
            writer.close()

    async def _turn_away(
        self, door: _Door, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        """Past a cap: a 503, unless even the connections turned away are too many."""
        if door.turned_away >= door.cap or self._turned_away >= self.limits.max_connections:
            return
        if not door.turned_away:  # once per burst: a build hammering the cap floods no log
            log.info(
                "egress proxy busy for %s: %d of its %d and %d of all %d connections open",
                *(door.label, door.active, door.cap, self._active, self.limits.max_connections),
            )
        door.turned_away += 1
        self._turned_away += 1
        try:
            await self._answer(reader, writer, 503, "the egress proxy is busy; try again")
        finally:
            door.turned_away -= 1
            self._turned_away -= 1

    async def _answer(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, status: int, text: str
    ) -> None:
        """The proxy's own one-line answer, then the end of the connection."""
        writer.write(reply(status, text))
        with contextlib.suppress(ConnectionError, OSError, TimeoutError):
            await writer.drain()
            if writer.can_write_eof():
                writer.write_eof()
            # Read what the client still sends: closing on unread bytes resets the
            # connection, which can destroy the answer before the client reads it.
            async with asyncio.timeout(self.limits.head_timeout_s):
                while await reader.read(CHUNK):
                    pass

    async def _exchange(
        self, door: _Door, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        try:
            async with asyncio.timeout(self.limits.head_timeout_s):
                head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.LimitOverrunError:
            too_large = f"the request head is larger than {MAX_HEAD} bytes"
            await self._answer(reader, writer, 431, too_large)
            return
        except (asyncio.IncompleteReadError, TimeoutError):
            return
        try:
            request = parse_head(head)
        except BadProxyRequest as exc:
            await self._answer(reader, writer, exc.reply_status, exc.message)
            return
        try:
            addresses = await self._checked(request)
        except AddressRefused as exc:
            refused = (*_target(request), door.label, exc.category)
            log.info("egress proxy refused %s %s:%d for %s: %s", *refused)
            await self._answer(reader, writer, 403, exc.message)
            return
        except OSError:
            await self._answer(reader, writer, 502, f"cannot resolve {request.host}")
            return
        try:
            up_reader, up_writer = await open_checked(
                addresses, request.port, self.limits.connect_timeout_s
            )
        except OSError as exc:
            where = f"{request.host}:{request.port}"
            failed = f"cannot connect to {where}: {_category(exc)}"
            await self._answer(reader, writer, 502, failed)
            return
        try:
            if request.tunnel:
                writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
            else:
                up_writer.write(request.upstream_head)
            await self._relay(reader, writer, up_reader, up_writer)
        finally:
            up_writer.close()

    async def _checked(self, request: ProxyRequest) -> tuple[IPAddress, ...]:
        addresses = await resolve_checked(request.host, request.port, self.policy)
        # Only reachable when loopback is allow-listed: the proxy must not loop into
        # itself, through any build's session.
        own_ports = {s.port for s in self._sessions}
        if request.port in own_ports and any(
            a.is_loopback or a.is_unspecified or a in self.policy.own for a in addresses
        ):
            raise AddressRefused(request.host, "the egress proxy itself")
        return addresses

    async def _relay(
        self,
        client_reader: asyncio.StreamReader,
        client_writer: asyncio.StreamWriter,
        up_reader: asyncio.StreamReader,
        up_writer: asyncio.StreamWriter,
    ) -> None:
        """Copy bytes both ways until the upstream side ends or all is quiet too long.

        The upstream side decides the end: a client that finished sending may
        still be reading the answer.
        """
        activity = _Activity(asyncio.get_running_loop().time())
        outbound = asyncio.create_task(self._pump(client_reader, up_writer, activity, None))
        try:
            await self._pump(up_reader, client_writer, activity, self.limits.idle_timeout_s)
        finally:
            outbound.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await outbound

    async def _pump(
        self,
        src: asyncio.StreamReader,
        dst: asyncio.StreamWriter,
        activity: _Activity,
        idle_s: float | None,
    ) -> None:
        loop = asyncio.get_running_loop()
        try:
            while True:
                try:
                    async with asyncio.timeout(idle_s):
                        data = await src.read(CHUNK)
                except TimeoutError:
                    if idle_s is not None and loop.time() - activity.last < idle_s:
                        continue  # the other direction is busy
                    return
                if not data:
                    if dst.can_write_eof():
                        dst.write_eof()
                    return
                activity.last = loop.time()
                dst.write(data)
                await dst.drain()
        except (ConnectionError, OSError):
            return


def _target(request: ProxyRequest) -> tuple[str, str, int]:
    return request.method, request.host, request.port


def _category(exc: OSError) -> str:
    if isinstance(exc, TimeoutError):
        return "timed out"
    if exc.errno == errno.ECONNREFUSED:
        return "connection refused"
    return "unreachable"
