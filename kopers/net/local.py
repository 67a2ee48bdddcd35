"""This host's own addresses, and the address policy the configuration asks for.

A public address of the host itself reaches the same services as loopback
(anything bound to 0.0.0.0), so the policy refuses those addresses too. They
are listed from the kernel's tables (/proc/net/fib_trie for IPv4, if_inet6 for
IPv6), which need no extra package and no subprocess, plus whatever the host's
own name resolves to. The parsers are pure; `local_addresses` reads the files.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
from pathlib import Path

from kopers.config import NetworkConfig
from kopers.net.policy import AddressPolicy, IPAddress

log = logging.getLogger(__name__)

FIB_TRIE = Path("/proc/net/fib_trie")
IF_INET6 = Path("/proc/net/if_inet6")


def parse_fib_trie(text: str) -> set[IPAddress]:
    """IPv4 addresses the kernel delivers locally: the `/32 host LOCAL` leaves."""
    found: set[IPAddress] = set()
    leaf: str | None = None
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("|--"):
            leaf = stripped[3:].strip()
        elif stripped.startswith("+--"):
            leaf = None
        elif leaf is not None and stripped.startswith("/32 host LOCAL"):
            try:
                found.add(ipaddress.IPv4Address(leaf))
            except ValueError:
                continue
    return found


def parse_if_inet6(text: str) -> set[IPAddress]:
    """IPv6 addresses of the host's interfaces (32 hex digits, first column)."""
    found: set[IPAddress] = set()
    for line in text.splitlines():
        fields = line.split()
        if fields and len(fields[0]) == 32:
            try:
                found.add(ipaddress.IPv6Address(int(fields[0], 16)))
            except ValueError:
                continue
    return found


def local_addresses() -> frozenset[IPAddress]:
    """Every address this host answers on, as far as it can tell."""
    found: set[IPAddress] = set()
    for path, parse in ((FIB_TRIE, parse_fib_trie), (IF_INET6, parse_if_inet6)):
        try:
            found |= parse(path.read_text())
        except OSError:
            log.info("cannot read %s; this host's addresses may be incomplete", path)
    try:
        infos = socket.getaddrinfo(socket.gethostname(), None, type=socket.SOCK_STREAM)
    except OSError:
        infos = []
    for info in infos:
        try:
            found.add(ipaddress.ip_address(str(info[4][0]).split("%", 1)[0]))
        except ValueError:
            continue
    return frozenset(found)


def address_policy(network: NetworkConfig) -> AddressPolicy:
    """The policy for this host: its own addresses refused, `network.allow` allowed."""
    return AddressPolicy(allow=network.allow, own=local_addresses())
