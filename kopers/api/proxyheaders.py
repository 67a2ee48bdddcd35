"""The client's address and scheme when Kopers runs behind a reverse proxy.

Behind a proxy every request comes from the proxy's address, while handlers
use `request.remote` for audit records, the per-address sign-in throttle, the
event-stream cap and the /metrics allow list. `[server] trusted_proxies`
(CIDR networks; empty by default, which trusts nobody) names the proxies
whose `X-Forwarded-For` and `X-Forwarded-Proto` headers are believed.

Only when the TCP peer is in those networks is `X-Forwarded-For` read, and
then from the right: each proxy appends the address it received the request
from, so the rightmost entry was written by the nearest proxy, and
everything to the left of an untrusted address was written by the client
and could say anything. The client is the rightmost address that is not
itself a trusted proxy (the leftmost entry if all of them are proxies).
Entries to the left of it are never parsed. If an entry that would have to
be read is malformed (not an IP address, an empty entry, a zone id), or the
chain of trusted proxies is longer than MAX_HOPS, the header is not believed
and the peer stays the client: never a 500, and never an address the
client chose. `X-Forwarded-Proto` from a trusted proxy (its last value,
`http` or `https`) becomes the request's scheme; the session cookie's Secure
flag does not depend on it (it follows `server.public_url`).

The per-address connection cap (kopers.api.guard) counts TCP peers, before a
request is read, so it still sees the proxy.

Pure functions, and one middleware that hands the handlers a clone of the
request with the address and scheme put right; it must be the outermost one.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address

# Trusted proxies one request may pass through: more is a loop or a forgery.
MAX_HOPS = 16
# The longest written form of an address with a port: "[<45 chars>]:65535".
_MAX_ENTRY = 53
# "[v6]", "[v6]:port", "v4:port": the forms proxies write besides a bare address.
_BRACKETED = re.compile(r"\[([0-9A-Fa-f:.]+)\](?::(\d{1,5}))?")
_V4_PORT = re.compile(r"([0-9.]+):(\d{1,5})")
_SCHEMES = ("http", "https")


def _address(text: str) -> Address | None:
    """An IP address as a proxy writes it, or None. Pure.

    IPv4-mapped IPv6 addresses are their IPv4 address; a zone id (`%eth0`)
    names an interface on some proxy's host and is refused.
    """
    entry = text.strip(" \t")
    if not entry or len(entry) > _MAX_ENTRY or not entry.isascii():
        return None
    port = None
    if match := _BRACKETED.fullmatch(entry):
        entry, port = match.group(1), match.group(2)
        if "." in entry and ":" not in entry:
            return None  # brackets are for IPv6 only
    elif match := _V4_PORT.fullmatch(entry):
        entry, port = match.group(1), match.group(2)
    if port is not None and not 0 < int(port) < 65536:
        return None
    if "%" in entry:
        return None
    try:
        ip = ipaddress.ip_address(entry)
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def _trusted(ip: Address, trusted: Sequence[Network]) -> bool:
    return any(ip.version == net.version and ip in net for net in trusted)


def _peer_is_proxy(peer: str | None, trusted: Sequence[Network]) -> bool:
    if not trusted or not peer:
        return False
    ip = _address(peer)
    return ip is not None and _trusted(ip, trusted)


def client_address(
    peer: str | None, forwarded_for: Sequence[str], trusted: Sequence[Network]
) -> str | None:
    """Who sent the request: `peer`, or what trusted proxies say in X-Forwarded-For. Pure.

    `forwarded_for` holds the values of every X-Forwarded-For header line, in order.
    """
    if not _peer_is_proxy(peer, trusted):
        return peer
    entries = ",".join(forwarded_for).split(",") if forwarded_for else []
    if not entries:
        return peer
    found: Address | None = None
    for hops, entry in enumerate(reversed(entries)):
        if hops >= MAX_HOPS:
            return peer
        ip = _address(entry)
        if ip is None:
            return peer
        found = ip
        if not _trusted(ip, trusted):
            break
    return str(found) if found is not None else peer


def client_scheme(
    peer: str | None, scheme: str, forwarded_proto: Sequence[str], trusted: Sequence[Network]
) -> str:
    """`scheme`, or the last X-Forwarded-Proto value if a trusted proxy sent it. Pure."""
    if not forwarded_proto or not _peer_is_proxy(peer, trusted):
        return scheme
    nearest = ",".join(forwarded_proto).rsplit(",", 1)[-1].strip(" \t").lower()
    return nearest if nearest in _SCHEMES else scheme


def proxy_headers_middleware(trusted: Sequence[Network]) -> Middleware:
    """Give handlers the client's address and scheme as trusted proxies report them."""
    networks = tuple(trusted)

    @web.middleware
    async def proxy_headers(request: web.Request, handler: Handler) -> web.StreamResponse:
        if not networks:
            return await handler(request)
        peer = request.remote
        remote = client_address(peer, request.headers.getall("X-Forwarded-For", []), networks)
        proto = request.headers.getall("X-Forwarded-Proto", [])
        scheme = client_scheme(peer, request.scheme, proto, networks)
        if remote is None or (remote == peer and scheme == request.scheme):
            return await handler(request)
        return await handler(request.clone(remote=remote, scheme=scheme))

    return proxy_headers
