"""The request head a client sends the egress proxy: parsed, checked, rewritten. Pure.

Two forms are accepted: `CONNECT host:port` (a tunnel, what clients use for
https) and a request with an absolute `http://` URL. The latter is rewritten
for the origin server: origin-form target, `Host` from the URL, hop-by-hop
headers dropped, and `Connection: close`, because the proxy serves one
request per connection and then relays bytes (see kopers.net.proxy).
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

from kopers.errors import BadRequest

MAX_HEADERS = 100
VERSIONS = ("HTTP/1.0", "HTTP/1.1")
_METHOD = re.compile(r"[A-Z]{1,16}")
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_AUTHORITY = re.compile(r"(\[[^\[\]]+\]|[^:\[\]]+)(?::([0-9]{1,5}))?")
_NAME = re.compile(r"[A-Za-z0-9_](?:[A-Za-z0-9_.-]{0,252})")
_TARGET = re.compile(r"([^/?#]*)([^#]*)")
# Meant for this hop only (RFC 9110 7.6.1); the proxy speaks for itself here.
_HOP_BY_HOP = {
    "connection",
    "proxy-connection",
    "keep-alive",
    "proxy-authorization",
    "proxy-authenticate",
    "te",
    "trailer",
    "upgrade",
}


class BadProxyRequest(BadRequest):
    """A request head the proxy cannot serve; `reply_status` is what it answers."""

    def __init__(self, message: str, reply_status: int = 400) -> None:
        super().__init__(message)
        self.reply_status = reply_status


@dataclass(frozen=True, slots=True)
class ProxyRequest:
    """Where a client wants to go, and what to send there first."""

    method: str
    host: str  # a name, or an IP address without brackets
    port: int
    upstream_head: bytes = b""  # empty for CONNECT: the client speaks for itself

    @property
    def tunnel(self) -> bool:
        return self.method == "CONNECT"


def parse_head(head: bytes) -> ProxyRequest:
    """The request in `head` (request line and headers, up to the blank line)."""
    try:
        text = head.decode("ascii")
    except UnicodeDecodeError:
        raise BadProxyRequest("the request head is not ASCII") from None
    lines = text.split("\r\n")
    while lines and not lines[-1]:
        lines.pop()
    if not lines:
        raise BadProxyRequest("empty request")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not _METHOD.fullmatch(parts[0]) or parts[2] not in VERSIONS:
        raise BadProxyRequest("malformed request line")
    method, target, version = parts
    headers = _headers(lines[1:])
    if method == "CONNECT":
        host, port = _authority(target, None)
        return ProxyRequest(method, host, port)
    scheme, sep, rest = target.partition("://")
    if not sep or scheme.lower() != "http":
        if scheme.lower() == "https" and sep:
            raise BadProxyRequest("https goes through CONNECT")
        raise BadProxyRequest("a proxy request needs an absolute http:// URL")
    match = _TARGET.fullmatch(rest.partition("#")[0])  # a fragment is the client's alone
    if match is None or "@" in match.group(1):
        raise BadProxyRequest("malformed URL")
    authority, path = match.group(1), match.group(2)
    host, port = _authority(authority, 80)
    if not path.startswith("/"):
        path = "/" + path
    return ProxyRequest(method, host, port, _upstream(method, path, version, authority, headers))


def reply(status: int, message: str) -> bytes:
    """A complete one-line plain-text answer from the proxy itself."""
    body = (message + "\n").encode("ascii", "replace")
    return (
        f"HTTP/1.1 {status} {_REASONS.get(status, 'Error')}\r\n"
        "Content-Type: text/plain; charset=us-ascii\r\n"
        f"Content-Length: {len(body)}\r\n"
        "Connection: close\r\n\r\n"
    ).encode("ascii") + body


_REASONS = {
    400: "Bad Request",
    403: "Forbidden",
    431: "Request Header Fields Too Large",
    502: "Bad Gateway",
    503: "Service Unavailable",
}


def _headers(lines: list[str]) -> list[tuple[str, str]]:
    if len(lines) > MAX_HEADERS:
        raise BadProxyRequest(f"more than {MAX_HEADERS} header fields", 431)
    out = []
    for line in lines:
        name, sep, value = line.partition(":")
        # Folded lines (leading whitespace) are obsolete and a smuggling aid: refused.
        if not sep or not _TOKEN.fullmatch(name):
            raise BadProxyRequest("malformed header field")
        # A bare LF or CR (or any control but tab) in a value would be passed on
        # as a line break of its own by a lenient upstream.
        if any((ord(c) < 0x20 and c != "\t") or c == "\x7f" for c in value):
            raise BadProxyRequest("control character in a header field")
        out.append((name, value.strip()))
    return out


def _authority(text: str, default_port: int | None) -> tuple[str, int]:
    match = _AUTHORITY.fullmatch(text)
    if match is None:
        raise BadProxyRequest("malformed host:port")
    host, port_text = match.group(1), match.group(2)
    port = int(port_text) if port_text else default_port
    if port is None or not 0 < port < 65536:
        raise BadProxyRequest("missing or invalid port")
    if host.startswith("["):
        try:
            return str(ipaddress.IPv6Address(host[1:-1])), port
        except ValueError:
            raise BadProxyRequest("malformed IPv6 address") from None
    if not _NAME.fullmatch(host):
        raise BadProxyRequest("malformed host name")
    return host.lower(), port


def _upstream(
    method: str, path: str, version: str, authority: str, headers: list[tuple[str, str]]
) -> bytes:
    dropped = set(_HOP_BY_HOP) | {"host"}
    for name, value in headers:
        if name.lower() in ("connection", "proxy-connection"):
            dropped |= {token.strip().lower() for token in value.split(",")}
    # The body's framing stays whatever Connection names: the proxy relays the body as is.
    dropped -= {"content-length", "transfer-encoding"}
    lines = [f"{method} {path} {version}", f"Host: {authority}"]
    lines += [f"{name}: {value}" for name, value in headers if name.lower() not in dropped]
    lines += ["Connection: close", "", ""]
    return "\r\n".join(lines).encode("ascii")
