"""The address policy: which addresses Kopers may connect to on a user's behalf."""

from __future__ import annotations

import ipaddress

import pytest

from kopers.errors import BadRequest
from kopers.net.policy import AddressPolicy, AddressRefused, embedded_ipv4

ip = ipaddress.ip_address
STRICT = AddressPolicy()

REFUSED = [
    ("0.0.0.0", "unspecified"),
    ("::", "unspecified"),
    ("127.0.0.1", "loopback"),
    ("127.255.255.254", "loopback"),
    ("::1", "loopback"),
    ("169.254.169.254", "link-local"),  # the cloud metadata service
    ("169.254.0.1", "link-local"),
    ("fe80::1", "link-local"),
    ("224.0.0.1", "multicast"),
    ("239.255.255.250", "multicast"),
    ("ff02::1", "multicast"),
    ("10.0.2.2", "private"),  # QEMU's guest-side host address
    ("10.255.255.255", "private"),
    ("172.16.0.1", "private"),
    ("172.31.255.254", "private"),
    ("192.168.1.1", "private"),
    ("fd00::2", "private"),
    ("fc00::1", "private"),
    ("100.64.0.1", "shared (carrier-grade NAT)"),
    ("100.127.255.254", "shared (carrier-grade NAT)"),
    ("fec0::1", "site-local"),
    ("0.1.2.3", "reserved"),
    ("192.0.0.1", "reserved"),
    ("192.0.2.1", "reserved"),  # documentation
    ("198.18.0.1", "reserved"),  # benchmarking
    ("198.51.100.7", "reserved"),
    ("203.0.113.9", "reserved"),
    ("240.0.0.1", "reserved"),
    ("255.255.255.255", "reserved"),
    ("2001:db8::1", "reserved"),
    ("::127.0.0.1", "reserved"),  # IPv4-compatible, deprecated
    ("100::1", "reserved"),  # discard-only
    ("::ffff:127.0.0.1", "loopback, IPv4-mapped"),
    ("::ffff:169.254.169.254", "link-local, IPv4-mapped"),
    ("::ffff:10.0.2.2", "private, IPv4-mapped"),
    ("64:ff9b::7f00:1", "loopback, NAT64"),
    ("64:ff9b::a9fe:a9fe", "link-local, NAT64"),
    ("2002:7f00:1::1", "loopback, 6to4"),
    ("2002:a00:1::1", "private, 6to4"),
]

PERMITTED = [
    "8.8.8.8",
    "1.1.1.1",
    "151.101.1.140",
    "100.63.255.255",  # just below the shared range
    "100.128.0.0",  # just above it
    "172.15.255.255",
    "172.32.0.1",
    "192.169.0.1",
    "2001:4860:4860::8888",
    "2a00:1450:4001:80b::200e",
    "::ffff:8.8.8.8",
    "64:ff9b::808:808",  # NAT64 of a public address
    "2002:808:808::1",  # 6to4 of a public address
]


@pytest.mark.parametrize(("address", "category"), REFUSED)
def test_local_private_and_special_addresses_are_refused(address: str, category: str) -> None:
    assert STRICT.refusal(ip(address)) == category


@pytest.mark.parametrize("address", PERMITTED)
def test_public_addresses_are_permitted(address: str) -> None:
    assert STRICT.refusal(ip(address)) is None


def test_the_hosts_own_public_address_is_refused() -> None:
    policy = AddressPolicy(own=frozenset({ip("203.0.113.1"), ip("8.8.4.4"), ip("2a01::5")}))
    assert policy.refusal(ip("8.8.4.4")) == "this host's own address"
    assert policy.refusal(ip("2a01::5")) == "this host's own address"
    assert policy.refusal(ip("::ffff:8.8.4.4")) == "this host's own address, IPv4-mapped"
    assert policy.refusal(ip("8.8.8.8")) is None
    # An address that is also of a refused kind is named by its kind.
    assert policy.refusal(ip("203.0.113.1")) == "reserved"


def test_allow_listed_networks_win_over_every_rule_but_the_hosts_own() -> None:
    policy = AddressPolicy(
        allow=(
            ipaddress.ip_network("127.0.0.2/32"),
            ipaddress.ip_network("192.168.10.0/24"),
            ipaddress.ip_network("fd00::/64"),
        ),
        own=frozenset({ip("192.168.10.5"), ip("127.0.0.2")}),
    )
    assert policy.refusal(ip("127.0.0.2")) is None  # own, but allowed by itself (/32)
    assert policy.refusal(ip("::ffff:127.0.0.2")) is None
    # An allowed LAN does not open the host's own services on its LAN address.
    assert policy.refusal(ip("192.168.10.5")) == "this host's own address"
    assert policy.refusal(ip("192.168.10.6")) is None
    assert policy.refusal(ip("fd00::2")) is None
    assert policy.refusal(ip("127.0.0.1")) == "loopback"
    assert policy.refusal(ip("192.168.11.1")) == "private"
    assert policy.refusal(ip("fd00:0:0:1::2")) == "private"


def test_one_refused_answer_refuses_the_whole_name() -> None:
    answers = [ip("93.184.215.14"), ip("127.0.0.1")]
    with pytest.raises(AddressRefused) as caught:
        STRICT.check("rebind.example", answers)
    assert isinstance(caught.value, BadRequest)
    assert caught.value.message == "rebind.example is refused by the address policy (loopback)"
    assert (caught.value.host, caught.value.category) == ("rebind.example", "loopback")
    assert "\n" not in caught.value.message
    good = (ip("93.184.215.14"), ip("2606:2800:21f:cb07:6820:80da:af6b:8b2c"))
    assert STRICT.check("example.org", good) == good


def test_embedded_ipv4_forms() -> None:
    assert embedded_ipv4(ip("127.0.0.1")) == (None, "")
    assert embedded_ipv4(ip("::ffff:1.2.3.4")) == (ip("1.2.3.4"), "IPv4-mapped")
    assert embedded_ipv4(ip("64:ff9b::102:304")) == (ip("1.2.3.4"), "NAT64")
    assert embedded_ipv4(ip("2002:102:304::")) == (ip("1.2.3.4"), "6to4")
    assert embedded_ipv4(ip("2001:4860::1")) == (None, "")
