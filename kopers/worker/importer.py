"""The source step of a build submitted by URL: fetch the SRPM and check it.

Copr calls this importing. The download runs on the host; the file is only
stored and read by `rpm -qp`, never unpacked or built here.

The host fetches where a user points it, so every connection, redirects
included, obeys the address policy (kopers.net.policy): no loopback,
link-local, private or own address unless allow-listed. A failed fetch is
reported as a fixed category (connection refused, timed out, HTTP status N,
too large), never with text the remote end chose: the reason is shown to the
user, and must not turn Kopers into a way to read other servers' answers.
"""

from __future__ import annotations

import errno
import ipaddress
import logging
from pathlib import Path

import aiohttp
from yarl import URL

from kopers.config import NetworkConfig
from kopers.errors import BadRequest, InfrastructureError, KopersError
from kopers.net.connect import policy_connector
from kopers.net.local import address_policy
from kopers.net.policy import AddressPolicy, AddressRefused
from kopers.rpmfile import RpmInfo, read_srpm

log = logging.getLogger(__name__)

CHUNK = 1 << 16


async def fetch_srpm(
    url: str, dest_dir: Path, max_bytes: int, policy: AddressPolicy | None = None
) -> tuple[Path, RpmInfo]:
    """Download `url` into dest_dir and verify it is a source RPM.

    `policy` defaults to the strict one (nothing allow-listed).
    """
    policy = policy if policy is not None else address_policy(NetworkConfig())
    dest_dir.mkdir(parents=True, exist_ok=True)
    part = dest_dir / "download.part"
    try:
        await _download(url, part, max_bytes, policy)
        info = await read_srpm(part)
    except BaseException:
        part.unlink(missing_ok=True)
        raise
    final = dest_dir / info.nevra.filename
    part.rename(final)
    return final, info


async def _download(url: str, part: Path, max_bytes: int, policy: AddressPolicy) -> None:
    size = 0
    timeout = aiohttp.ClientTimeout(total=3600, sock_connect=30, sock_read=300)
    connector = policy_connector(policy)
    try:
        async with (
            aiohttp.ClientSession(timeout=timeout, connector=connector) as session,
            session.get(url) as resp,
        ):
            if resp.status != 200:
                raise BadRequest(f"cannot fetch {url}: HTTP status {resp.status}")
            with part.open("wb") as fh:
                async for chunk in resp.content.iter_chunked(CHUNK):
                    size += len(chunk)
                    if size > max_bytes:
                        raise BadRequest(f"cannot fetch {url}: too large (over {max_bytes} bytes)")
                    fh.write(chunk)
    except AddressRefused as exc:
        raise refused(url, exc) from None
    except (aiohttp.ClientError, TimeoutError) as exc:
        log.info("fetching %s failed: %r", url, exc)
        raise _failure(url, exc) from exc


def refused(url: str, exc: AddressRefused) -> AddressRefused:
    """The refusal as the user sees it; a redirect's target is not named (the remote chose it)."""
    if _same_host(exc.host, URL(url).host or ""):
        message = f"cannot fetch {url}: {exc.message}"
    else:
        message = f"cannot fetch {url}: it redirects to an address the address policy refuses"
    return AddressRefused(exc.host, exc.category, message)


def _same_host(a: str, b: str) -> bool:
    try:
        return ipaddress.ip_address(a) == ipaddress.ip_address(b)
    except ValueError:
        return a.lower().rstrip(".") == b.lower().rstrip(".")


def _failure(url: str, exc: BaseException) -> KopersError:
    """A fixed one-line category for a failed fetch."""
    if isinstance(exc, aiohttp.ClientConnectorDNSError):
        category = "the name does not resolve"
    elif isinstance(exc, aiohttp.ClientConnectorCertificateError):
        category = "TLS certificate verification failed"
    elif isinstance(exc, aiohttp.ClientSSLError):
        category = "TLS handshake failed"
    elif isinstance(exc, aiohttp.ClientConnectorError):
        refused_ = exc.os_error.errno == errno.ECONNREFUSED
        category = "connection refused" if refused_ else "cannot connect"
    elif isinstance(exc, TimeoutError):
        category = "timed out"
    elif isinstance(exc, aiohttp.TooManyRedirects):
        category = "too many redirects"
    elif isinstance(exc, aiohttp.NonHttpUrlRedirectClientError):
        return BadRequest(f"cannot fetch {url}: it redirects to a URL that is not http(s)")
    elif isinstance(exc, aiohttp.InvalidURL):
        return BadRequest(f"cannot fetch {url}: invalid URL or redirect")
    else:
        category = "the connection failed"
    return InfrastructureError(f"cannot fetch {url}: {category}")
