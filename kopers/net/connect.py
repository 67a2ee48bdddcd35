"""Resolve a name once, check every address, connect only to a checked address.

Checking a name and then letting a client library resolve it again would let
a DNS server answer differently the second time (DNS rebinding). So names are
resolved here, the policy judges every answer, and the connection goes to one
of those exact addresses.

For aiohttp (URL imports) `policy_connector` does the same from inside the
client: its resolver checks every name, including each redirect's, and its
socket factory checks the address of every socket it opens, which also covers
IP literals (aiohttp never asks a resolver about those).
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket

import aiohttp
from aiohappyeyeballs import AddrInfoType, SocketFactoryType
from aiohttp.abc import AbstractResolver, ResolveResult

from kopers.net.policy import AddressPolicy, AddressRefused, IPAddress


def _address(sockaddr: tuple[object, ...]) -> IPAddress:
    # A link-local IPv6 answer may carry a scope ("fe80::1%eth0").
    return ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])


async def resolve_checked(
    host: str, port: int, policy: AddressPolicy, family: int = socket.AF_UNSPEC
) -> tuple[IPAddress, ...]:
    """The addresses `host` resolves to, all permitted; AddressRefused or OSError."""
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, port, family=family, type=socket.SOCK_STREAM)
    except (UnicodeError, ValueError):
        # A label over 63 characters, an empty one, a NUL: no name at all.
        raise OSError(f"{host!r} is not a valid host name") from None
    unique = list(dict.fromkeys(_address(info[4]) for info in infos))
    if not unique:
        raise OSError(f"{host} has no address")
    return policy.check(host, unique)


async def open_checked(
    addresses: tuple[IPAddress, ...], port: int, timeout_s: float
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A connection to the first of `addresses` that answers; OSError if none does."""
    last: OSError = OSError("no address to connect to")
    for address in addresses:
        try:
            async with asyncio.timeout(timeout_s):
                return await asyncio.open_connection(str(address), port)
        except TimeoutError:
            last = TimeoutError(f"connecting to {address} timed out")
        except OSError as exc:
            last = exc
    raise last


class PolicyResolver(AbstractResolver):
    """aiohttp's resolver for names: resolved once, every answer checked."""

    def __init__(self, policy: AddressPolicy) -> None:
        self.policy = policy

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        addresses = await resolve_checked(host, port, self.policy, family)
        return [
            {
                "hostname": host,
                "host": str(address),
                "port": port,
                "family": socket.AF_INET6 if address.version == 6 else socket.AF_INET,
                "proto": 0,
                # Numeric: aiohttp must not look the checked address up again.
                "flags": socket.AI_NUMERICHOST | socket.AI_NUMERICSERV,
            }
            for address in addresses
        ]

    async def close(self) -> None:
        return None


def checked_socket_factory(policy: AddressPolicy) -> SocketFactoryType:
    """A socket factory that refuses to open a socket towards a refused address."""

    def factory(info: AddrInfoType) -> socket.socket:
        family, kind, proto, _, sockaddr = info
        address = _address(sockaddr)
        category = policy.refusal(address)
        if category is not None:
            raise AddressRefused(str(address), category)
        return socket.socket(family, kind, proto)

    return factory


def policy_connector(policy: AddressPolicy) -> aiohttp.TCPConnector:
    """An aiohttp connector that reaches only addresses the policy permits."""
    return aiohttp.TCPConnector(
        resolver=PolicyResolver(policy),
        socket_factory=checked_socket_factory(policy),
        # Every request resolves afresh through the policy; a cache would only save
        # lookups within one download and its redirects.
        use_dns_cache=False,
    )
