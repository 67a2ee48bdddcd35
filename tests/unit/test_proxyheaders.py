"""The client's address and scheme behind a trusted reverse proxy (kopers.api.proxyheaders)."""

from __future__ import annotations

import ipaddress
from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from kopers import config
from kopers.api.proxyheaders import (
    MAX_HOPS,
    client_address,
    client_scheme,
    proxy_headers_middleware,
)
from kopers.errors import ConfigError

LOCAL = (ipaddress.ip_network("127.0.0.1/32"), ipaddress.ip_network("::1/128"))
CHAIN = (ipaddress.ip_network("127.0.0.1/32"), ipaddress.ip_network("10.0.0.0/8"))


def test_nobody_is_trusted_by_default() -> None:
    assert config.parse(config.DEFAULTS).server.trusted_proxies == ()
    assert client_address("127.0.0.1", ["203.0.113.7"], ()) == "127.0.0.1"


def test_a_peer_that_is_no_trusted_proxy_cannot_name_another_address() -> None:
    assert client_address("198.51.100.2", ["203.0.113.7"], LOCAL) == "198.51.100.2"
    assert client_address("198.51.100.2", ["127.0.0.1"], LOCAL) == "198.51.100.2"


def test_the_address_the_proxy_saw_is_the_client() -> None:
    assert client_address("127.0.0.1", ["203.0.113.7"], LOCAL) == "203.0.113.7"


def test_no_header_from_a_proxy_leaves_the_proxy() -> None:
    # A request made on the proxy's host straight to Kopers.
    assert client_address("127.0.0.1", [], LOCAL) == "127.0.0.1"


def test_spoofed_entries_left_of_the_proxys_own_are_ignored() -> None:
    # The client sent "X-Forwarded-For: 1.1.1.1"; the proxy appended what it saw.
    assert client_address("127.0.0.1", ["1.1.1.1, 203.0.113.7"], LOCAL) == "203.0.113.7"
    # A client on a trusted address itself: still what the proxy saw, not its claim.
    assert client_address("127.0.0.1", ["1.1.1.1, 10.9.9.9"], LOCAL) == "10.9.9.9"


def test_a_chain_of_trusted_proxies_is_walked_from_the_right() -> None:
    header = ["6.6.6.6, 203.0.113.7, 10.0.0.2, 10.0.0.3"]
    assert client_address("127.0.0.1", header, CHAIN) == "203.0.113.7"


def test_several_header_lines_read_as_one_list_in_order() -> None:
    assert client_address("127.0.0.1", ["6.6.6.6", "203.0.113.7"], LOCAL) == "203.0.113.7"
    assert client_address("127.0.0.1", ["203.0.113.7", "10.0.0.2"], CHAIN) == "203.0.113.7"


def test_a_chain_of_nothing_but_proxies_gives_the_first_of_them() -> None:
    assert client_address("127.0.0.1", ["10.0.0.9, 10.0.0.2"], CHAIN) == "10.0.0.9"


@pytest.mark.parametrize(
    "header",
    [
        "",
        " ",
        ",",
        "unknown",
        "203.0.113.7,",  # an empty rightmost entry
        "203.0.113.7, garbage",
        "203.0.113.7, 999.1.1.1",
        "203.0.113.7, 010.0.0.1",  # leading zeros: octal to some parsers
        "203.0.113.7, 1.2.3",
        "203.0.113.7, fe80::1%eth0",  # a zone names an interface of the proxy's host
        "203.0.113.7, [2001:db8::1",
        "203.0.113.7, 2001:db8::1]",
        "203.0.113.7, [203.0.113.9]",  # brackets are for IPv6 only
        "203.0.113.7, 203.0.113.9:99999",
        "203.0.113.7, 203.0.113.9:",
        "203.0.113.7, _gazonk",
        "203.0.113.7, \u0661.\u0662.\u0663.\u0664",  # Arabic-Indic digits
        "203.0.113.7, " + "1" * 300,
        "203.0.113.7, 10.0.0.2 10.0.0.3",
    ],
)
def test_a_malformed_entry_where_the_client_should_be_keeps_the_peer(header: str) -> None:
    assert client_address("127.0.0.1", [header], CHAIN) == "127.0.0.1"


def test_garbage_left_of_the_client_is_never_read() -> None:
    header = ["<script>, unknown, 999.9.9.9, 203.0.113.7"]
    assert client_address("127.0.0.1", header, LOCAL) == "203.0.113.7"


@pytest.mark.parametrize(
    ("entry", "address"),
    [
        ("2001:db8::1", "2001:db8::1"),
        ("2001:DB8:0:0:0:0:0:1", "2001:db8::1"),
        ("[2001:db8::1]", "2001:db8::1"),
        ("[2001:db8::1]:443", "2001:db8::1"),
        ("::ffff:203.0.113.7", "203.0.113.7"),
        ("203.0.113.7:5555", "203.0.113.7"),
        ("\t203.0.113.7 ", "203.0.113.7"),
    ],
)
def test_address_forms_proxies_write(entry: str, address: str) -> None:
    assert client_address("127.0.0.1", [f"6.6.6.6, {entry}"], LOCAL) == address


def test_ipv6_proxies_and_mapped_peers_are_recognised() -> None:
    assert client_address("::1", ["2001:db8::7"], LOCAL) == "2001:db8::7"
    assert client_address("::ffff:127.0.0.1", ["2001:db8::7"], LOCAL) == "2001:db8::7"
    assert client_address("::2", ["2001:db8::7"], LOCAL) == "::2"


def test_a_peer_that_is_no_ip_address_is_kept() -> None:
    assert client_address(None, ["203.0.113.7"], LOCAL) is None
    assert client_address("", ["203.0.113.7"], LOCAL) == ""


def test_many_hops_are_bounded() -> None:
    # More trusted hops than any real deployment has: the header is not believed.
    many = ", ".join(["10.0.0.1"] * (MAX_HOPS + 1))
    assert client_address("127.0.0.1", [f"203.0.113.7, {many}"], CHAIN) == "127.0.0.1"
    # Up to the bound they are walked.
    few = ", ".join(["10.0.0.1"] * (MAX_HOPS - 1))
    assert client_address("127.0.0.1", [f"203.0.113.7, {few}"], CHAIN) == "203.0.113.7"
    # A client's own long list left of what the proxy saw costs nothing and is ignored.
    spoofed = ", ".join(["6.6.6.6"] * 5000)
    assert client_address("127.0.0.1", [f"{spoofed}, 203.0.113.7"], LOCAL) == "203.0.113.7"


def test_the_scheme_is_taken_from_a_trusted_proxy_only() -> None:
    assert client_scheme("127.0.0.1", "http", ["https"], LOCAL) == "https"
    assert client_scheme("127.0.0.1", "http", ["HTTPS"], LOCAL) == "https"
    assert client_scheme("198.51.100.2", "http", ["https"], LOCAL) == "http"
    assert client_scheme("127.0.0.1", "http", ["https"], ()) == "http"
    assert client_scheme("127.0.0.1", "http", [], LOCAL) == "http"


@pytest.mark.parametrize("value", ["javascript", "", "https, http, ftp", "ht tp", "h\u0442tps"])
def test_an_odd_scheme_is_ignored(value: str) -> None:
    assert client_scheme("127.0.0.1", "http", [value], LOCAL) == "http"


def test_the_nearest_proxys_scheme_wins() -> None:
    assert client_scheme("127.0.0.1", "http", ["http, https"], LOCAL) == "https"
    assert client_scheme("127.0.0.1", "https", ["https", "http"], LOCAL) == "http"


# The setting -------------------------------------------------------------------------


def settings(**server: object) -> dict[str, object]:
    return config.merge(config.DEFAULTS, {"server": server})


def test_the_setting_takes_networks() -> None:
    parsed = config.parse(settings(trusted_proxies=["127.0.0.1", "10.1.0.0/16", "::1"]))
    assert parsed.server.trusted_proxies == (
        ipaddress.ip_network("127.0.0.1/32"),
        ipaddress.ip_network("10.1.0.0/16"),
        ipaddress.ip_network("::1/128"),
    )


def test_the_setting_comes_from_the_environment_too() -> None:
    env = {"KOPERS_SERVER_TRUSTED_PROXIES": "127.0.0.1/32, ::1/128"}
    parsed = config.load(None, env)
    assert [str(n) for n in parsed.server.trusted_proxies] == ["127.0.0.1/32", "::1/128"]


@pytest.mark.parametrize(
    "value",
    [["0.0.0.0/0"], ["::/0"], ["10.0.0.0/8", "0.0.0.0/0"], ["not a network"], "127.0.0.1", [1]],
)
def test_a_setting_that_would_trust_everyone_or_nothing_sensible_is_refused(
    value: object,
) -> None:
    with pytest.raises(ConfigError, match=r"server\.trusted_proxies"):
        config.parse(settings(trusted_proxies=value))


# The middleware, on a real socket ----------------------------------------------------


async def echo(request: web.Request) -> web.Response:
    return web.json_response({"remote": request.remote, "scheme": request.scheme})


async def client_for(
    trusted: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...],
) -> TestClient:
    app = web.Application(middlewares=[proxy_headers_middleware(trusted)])
    app.router.add_get("/", echo)
    client = TestClient(TestServer(app, host="127.0.0.1"))
    await client.start_server()
    return client


@pytest.fixture
async def behind_proxy() -> AsyncIterator[TestClient]:
    client = await client_for(LOCAL)
    yield client
    await client.close()


@pytest.fixture
async def trusting_nobody() -> AsyncIterator[TestClient]:
    client = await client_for(())
    yield client
    await client.close()


async def test_handlers_see_the_forwarded_client(behind_proxy: TestClient) -> None:
    headers = {"X-Forwarded-For": "6.6.6.6, 203.0.113.7", "X-Forwarded-Proto": "https"}
    resp = await behind_proxy.get("/", headers=headers)
    assert await resp.json() == {"remote": "203.0.113.7", "scheme": "https"}


async def test_a_malformed_header_is_no_error(behind_proxy: TestClient) -> None:
    resp = await behind_proxy.get("/", headers={"X-Forwarded-For": "203.0.113.7, ]:[, ::::"})
    assert resp.status == 200
    assert await resp.json() == {"remote": "127.0.0.1", "scheme": "http"}


async def test_without_trusted_proxies_the_headers_are_ignored(
    trusting_nobody: TestClient,
) -> None:
    headers = {"X-Forwarded-For": "203.0.113.7", "X-Forwarded-Proto": "https"}
    resp = await trusting_nobody.get("/", headers=headers)
    assert await resp.json() == {"remote": "127.0.0.1", "scheme": "http"}
