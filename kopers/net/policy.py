"""The address policy: which IP addresses Kopers may connect to for a user. Pure.

URL imports, additional repositories and the egress proxy of network-enabled
builds all connect where a user says. Left alone, that reaches this host's own
services (loopback, the API itself), the cloud metadata service (link-local
169.254.169.254) and the private network around the host. So every address a
name resolves to is checked here first, and refused when it is one of those,
unless the operator allow-listed a network that holds it (`[network] allow`).

IPv6 forms that carry an IPv4 address (IPv4-mapped, NAT64, 6to4) are judged by
the IPv4 address inside: `::ffff:127.0.0.1` is loopback too.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

from kopers.errors import BadRequest

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# RFC 1918 and unique local IPv6 (RFC 4193). Python's is_private also counts
# documentation and benchmark ranges; those get the plainer "reserved" below.
_PRIVATE = tuple(
    ipaddress.ip_network(n) for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7")
)
_SHARED = ipaddress.ip_network("100.64.0.0/10")  # RFC 6598, carrier-grade NAT
_NAT64 = ipaddress.ip_network("64:ff9b::/96")  # RFC 6052 well-known prefix


class AddressRefused(BadRequest):
    """A host resolves to an address the policy refuses."""

    def __init__(self, host: str, category: str, message: str | None = None) -> None:
        super().__init__(message or f"{host} is refused by the address policy ({category})")
        self.host = host
        self.category = category


@dataclass(frozen=True, slots=True)
class AddressPolicy:
    """Refuse local, private and this host's own addresses, except allow-listed networks."""

    allow: tuple[IPNetwork, ...] = ()
    own: frozenset[IPAddress] = frozenset()  # this host's addresses (kopers.net.local)

    def refusal(self, address: IPAddress) -> str | None:
        """Why `address` may not be used (a short category), or None when it may."""
        inner, form = embedded_ipv4(address)
        if address in self.own and self._allowed(address) and not self._named(address):
            # An allow-listed LAN must not open this host's own services on it:
            # only a network of this one address allows one of them.
            return "this host's own address"
        if self._allowed(address) or (inner is not None and self._allowed(inner)):
            return None
        if inner is not None:
            category = self.refusal(inner)
            return f"{category}, {form}" if category else None
        category = _category(address)
        if category is None and address in self.own:
            category = "this host's own address"
        return category

    def check(self, host: str, addresses: Iterable[IPAddress]) -> tuple[IPAddress, ...]:
        """All of `addresses`, or AddressRefused naming `host` if any one is refused.

        One refused address refuses the host: a name that also points inside
        is not one to connect to, whichever address a client would pick.
        """
        checked = tuple(addresses)
        for address in checked:
            category = self.refusal(address)
            if category is not None:
                raise AddressRefused(host, category)
        return checked

    def _allowed(self, address: IPAddress) -> bool:
        return any(address in network for network in self.allow)

    def _named(self, address: IPAddress) -> bool:
        """Whether the allow-list holds exactly this address (a /32 or /128)."""
        return any(n.num_addresses == 1 and address in n for n in self.allow)


def embedded_ipv4(address: IPAddress) -> tuple[ipaddress.IPv4Address | None, str]:
    """The IPv4 address an IPv6 address stands for, and the name of that form."""
    if isinstance(address, ipaddress.IPv4Address):
        return None, ""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped, "IPv4-mapped"
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF), "NAT64"
    if address.sixtofour is not None:
        return address.sixtofour, "6to4"
    return None, ""


def _category(address: IPAddress) -> str | None:
    """The refused kind of address this is, by its own value alone."""
    if address.is_unspecified:
        return "unspecified"
    if address.is_loopback:
        return "loopback"
    if address.is_link_local:
        return "link-local"
    if address.is_multicast:
        return "multicast"
    if any(address in network for network in _PRIVATE):
        return "private"
    if address in _SHARED:
        return "shared (carrier-grade NAT)"
    if isinstance(address, ipaddress.IPv6Address) and address.is_site_local:
        return "site-local"
    # Documentation, benchmarking, broadcast, 0/8, 240/4, protocol assignments...
    if address.is_reserved or not address.is_global:
        return "reserved"
    return None
