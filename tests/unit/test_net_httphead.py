"""What the egress proxy reads from a client's request head, and what it sends on."""

from __future__ import annotations

import pytest

from kopers.net.httphead import MAX_HEADERS, BadProxyRequest, parse_head, reply


def head(*lines: str) -> bytes:
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def test_connect_names_host_and_port() -> None:
    request = parse_head(head("CONNECT Files.Example.org:443 HTTP/1.1", "Host: x"))
    assert (request.method, request.host, request.port) == ("CONNECT", "files.example.org", 443)
    assert request.tunnel and request.upstream_head == b""


def test_connect_to_an_ipv6_literal() -> None:
    request = parse_head(head("CONNECT [::ffff:127.0.0.1]:8080 HTTP/1.1"))
    assert (request.host, request.port) == ("::ffff:7f00:1", 8080)


def test_an_absolute_uri_request_is_rewritten_for_the_origin() -> None:
    request = parse_head(
        head(
            "GET http://mirror.example.org:8080/repo/x.rpm?a=1#frag HTTP/1.1",
            "Host: elsewhere.example",
            "User-Agent: dnf",
            "Proxy-Authorization: Basic c2VjcmV0",
            "Proxy-Connection: keep-alive",
            "Connection: keep-alive, X-Private",
            "X-Private: dropped",
            "Content-Length: 0",
        )
    )
    assert (request.method, request.host, request.port) == ("GET", "mirror.example.org", 8080)
    assert not request.tunnel
    assert request.upstream_head.decode() == (
        "GET /repo/x.rpm?a=1 HTTP/1.1\r\n"
        "Host: mirror.example.org:8080\r\n"
        "User-Agent: dnf\r\n"
        "Content-Length: 0\r\n"
        "Connection: close\r\n\r\n"
    )


def test_a_url_without_a_path_asks_for_the_root() -> None:
    request = parse_head(head("HEAD http://example.org HTTP/1.0"))
    assert request.port == 80
    assert request.upstream_head.startswith(b"HEAD / HTTP/1.0\r\nHost: example.org\r\n")


def test_body_framing_survives_a_connection_header_naming_it() -> None:
    request = parse_head(
        head("POST http://example.org/ HTTP/1.1", "Connection: Content-Length", "Content-Length: 3")
    )
    assert b"Content-Length: 3\r\n" in request.upstream_head


@pytest.mark.parametrize(
    ("lines", "status"),
    [
        (("GET /relative HTTP/1.1",), 400),
        (("GET https://example.org/ HTTP/1.1",), 400),
        (("GET ftp://example.org/ HTTP/1.1",), 400),
        (("GET http://user@example.org/ HTTP/1.1",), 400),
        (("GET http://exa mple.org/ HTTP/1.1",), 400),
        (("GET http://example.org/ HTTP/2",), 400),
        (("get http://example.org/ HTTP/1.1",), 400),
        (("CONNECT example.org HTTP/1.1",), 400),
        (("CONNECT example.org:0 HTTP/1.1",), 400),
        (("CONNECT example.org:65536 HTTP/1.1",), 400),
        (("CONNECT [zz::1]:443 HTTP/1.1",), 400),
        (("CONNECT exa_mple.org:443 HTTP/1.1", " folded: line"), 400),
        (("CONNECT example.org:443 HTTP/1.1", "no colon"), 400),
        (("GET http://example.org/ HTTP/1.1", "X: a\nHost: internal"), 400),
        (("GET http://example.org/ HTTP/1.1", "X: a\rb"), 400),
        (("GET http://example.org/ HTTP/1.1", "X: a\x00b"), 400),
        (("CONNECT example.org:443 HTTP/1.1", *["X: y"] * (MAX_HEADERS + 1)), 431),
    ],
)
def test_malformed_requests_are_refused(lines: tuple[str, ...], status: int) -> None:
    with pytest.raises(BadProxyRequest) as caught:
        parse_head(head(*lines))
    assert caught.value.reply_status == status
    assert "\n" not in caught.value.message


def test_a_non_ascii_head_is_refused() -> None:
    with pytest.raises(BadProxyRequest, match="ASCII"):
        parse_head("GET http://exämple.org/ HTTP/1.1\r\n\r\n".encode())


def test_the_proxys_own_answers_are_one_line() -> None:
    answer = reply(403, "127.0.0.1 is refused by the address policy (loopback)")
    status, _, rest = answer.partition(b"\r\n")
    headers, _, body = rest.partition(b"\r\n\r\n")
    assert status == b"HTTP/1.1 403 Forbidden"
    assert b"Content-Length: 54" in headers and b"Connection: close" in headers
    assert body == b"127.0.0.1 is refused by the address policy (loopback)\n"
