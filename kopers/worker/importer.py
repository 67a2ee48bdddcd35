"""The source step of a build submitted by URL: fetch the SRPM and check it.

Copr calls this importing. The download runs on the host; the file is only
stored and read by `rpm -qp`, never unpacked or built here.
"""

from __future__ import annotations

import logging
from pathlib import Path

import aiohttp

from kopers.errors import BadRequest, InfrastructureError
from kopers.rpmfile import RpmInfo, read_srpm

log = logging.getLogger(__name__)

CHUNK = 1 << 16


async def fetch_srpm(url: str, dest_dir: Path, max_bytes: int) -> tuple[Path, RpmInfo]:
    """Download `url` into dest_dir and verify it is a source RPM."""
    dest_dir.mkdir(parents=True, exist_ok=True)
    part = dest_dir / "download.part"
    size = 0
    timeout = aiohttp.ClientTimeout(total=3600, sock_connect=30, sock_read=300)
    try:
        async with aiohttp.ClientSession(timeout=timeout) as session, session.get(url) as resp:
            if resp.status != 200:
                raise BadRequest(f"fetching {url} gave HTTP {resp.status}")
            with part.open("wb") as fh:
                async for chunk in resp.content.iter_chunked(CHUNK):
                    size += len(chunk)
                    if size > max_bytes:
                        raise BadRequest(f"{url} is larger than {max_bytes} bytes")
                    fh.write(chunk)
    except aiohttp.ClientError as exc:
        part.unlink(missing_ok=True)
        raise InfrastructureError(f"cannot fetch {url}: {exc}") from exc
    except BaseException:
        part.unlink(missing_ok=True)
        raise
    try:
        info = await read_srpm(part)
    except BadRequest:
        part.unlink(missing_ok=True)
        raise
    final = dest_dir / info.nevra.filename
    part.rename(final)
    return final, info
