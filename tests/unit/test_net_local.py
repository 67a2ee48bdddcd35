"""This host's own addresses, read from the kernel's tables."""

from __future__ import annotations

import ipaddress

from kopers.config import NetworkConfig
from kopers.net.local import address_policy, local_addresses, parse_fib_trie, parse_if_inet6

ip = ipaddress.ip_address

FIB_TRIE = """\
Main:
  +-- 0.0.0.0/0 3 0 5
     |-- 0.0.0.0
        /0 universe UNICAST
     +-- 127.0.0.0/8 2 0 2
        +-- 127.0.0.0/31 1 0 0
           |-- 127.0.0.0
              /8 host LOCAL
           |-- 127.0.0.1
              /32 host LOCAL
        |-- 127.255.255.255
           /32 link BROADCAST
     +-- 203.0.113.0/24 2 0 2
        |-- 203.0.113.0
           /24 link UNICAST
        |-- 203.0.113.7
           /32 host LOCAL
Local:
  +-- 0.0.0.0/0 3 0 5
     |-- 198.51.100.4
        /32 host LOCAL
"""

IF_INET6 = """\
00000000000000000000000000000001 01 80 10 80       lo
fe8000000000000000fc00fffe000001 04 40 20 80     eth0
2a010000000000000000000000000005 04 40 00 80     eth0
garbage line
"""


def test_fib_trie_gives_the_local_ipv4_addresses_only() -> None:
    assert parse_fib_trie(FIB_TRIE) == {ip("127.0.0.1"), ip("203.0.113.7"), ip("198.51.100.4")}


def test_if_inet6_gives_every_interface_address() -> None:
    assert parse_if_inet6(IF_INET6) == {ip("::1"), ip("fe80::fc:ff:fe00:1"), ip("2a01::5")}


def test_this_host_has_loopback_among_its_addresses() -> None:
    assert ip("127.0.0.1") in local_addresses()


def test_the_policy_takes_the_allow_list_from_the_config() -> None:
    allow = (ipaddress.ip_network("10.1.0.0/16"),)
    policy = address_policy(NetworkConfig(allow))
    assert policy.allow == allow and ip("127.0.0.1") in policy.own
