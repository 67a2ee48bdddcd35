"""Receiving a source package upload: the multipart body of /api_3/build/create/upload.

One cap bounds the whole request, every part and the multipart framing
included (`server.max_upload_mib`, see kopers.api.bodycaps): a Content-Length
over it is refused before anything is read, and a body that streams past it
(chunked) is cut where it passes the cap, whichever part it is in. The `json`
part is read into memory up to `limits.max_json_kib`. The package part streams
to its own spool directory below `<data_dir>/incoming`, written by a thread in
blocks so a slow disk never stalls the event loop. A refusal of any kind, and a
client that goes away, removes the spool directory: nothing of a refused upload
stays on disk. Unknown parts are read and dropped, and count against the cap.
"""

from __future__ import annotations

import asyncio
import re
import secrets
import shutil
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from aiohttp import BodyPartReader, MultipartReader, StreamReader, web
from aiohttp.http_exceptions import HttpProcessingError

from kopers.api.bodycaps import BodyCaps
from kopers.api.params import parse_json
from kopers.errors import BadRequest, KopersError

if TYPE_CHECKING:
    from kopers.config import Config

_SAFE_FILENAME = re.compile(r"[^A-Za-z0-9._+-]")
_MAX_NAME = 200  # bytes; the OS allows 255, and the name is shown in messages
_READ = 1 << 16  # one read from the body
MAX_PARTS = 64  # multipart parts of one upload
# One write to the spool file, in a thread. Measured on loopback: inline 64 KiB
# writes stalled the loop up to 16 ms each; 1 MiB blocks in a thread kept its
# longest stall lower, and 4 MiB blocks were slower.
_WRITE = 1 << 20


@dataclass(frozen=True, slots=True)
class Upload:
    package: Path  # the spooled file, alone in its directory below incoming/
    options: dict[str, Any]  # the `json` part: the build options


async def read_upload(request: web.Request, incoming: Path, config: Config) -> Upload:
    """The package and options of an upload, or a 4xx error with nothing left on disk."""
    caps = BodyCaps.of(config)
    if request.content_length is not None and request.content_length > caps.upload:
        raise caps.too_large_upload()
    if not request.content_type.startswith("multipart/"):
        raise BadRequest("the upload must be a multipart/form-data body")
    spool_dir = incoming / secrets.token_hex(8)
    spool_dir.mkdir(parents=True)
    try:
        return await _read_parts(request, spool_dir, caps)
    except (ValueError, HttpProcessingError) as exc:  # the multipart framing is broken
        await asyncio.to_thread(shutil.rmtree, spool_dir, True)
        reason = str(exc).splitlines()[0][:120] if str(exc) else type(exc).__name__
        raise BadRequest(f"the upload is not a valid multipart body: {reason}") from None
    except BaseException:
        await asyncio.to_thread(shutil.rmtree, spool_dir, True)
        raise


async def _read_parts(request: web.Request, spool_dir: Path, caps: BodyCaps) -> Upload:
    reader = capped_multipart(request, caps.upload, caps.too_large_upload)
    package: Path | None = None
    options: dict[str, Any] | None = None
    parts = 0
    while (part := await reader.next()) is not None:
        parts += 1
        if parts > MAX_PARTS:
            # Copr's clients send two; a million empty ones would cost minutes of parsing.
            raise BadRequest(f"the upload has more than {MAX_PARTS} multipart parts")
        if not isinstance(part, BodyPartReader):
            continue  # a nested multipart: drained through the capped body
        if part.name == "pkgs":
            package = await spool(part, spool_dir)
        elif part.name == "json":
            options = await _read_json(part, caps)
    if package is None:
        raise BadRequest("no package file (multipart part 'pkgs') was uploaded")
    if options is None:
        raise BadRequest("no build options (multipart part 'json') were sent")
    return Upload(package, options)


def spool_name(sent: str | None) -> str:
    """A file name for an uploaded package, from the client's: safe characters, short. Pure."""
    name = _SAFE_FILENAME.sub("_", Path(sent or "").name)[-_MAX_NAME:].lstrip(".")
    return name or "upload.src.rpm"


async def spool(part: BodyPartReader, spool_dir: Path) -> Path:
    path = spool_dir / spool_name(part.filename)
    with path.open("wb") as fh:
        block = bytearray()
        while chunk := await part.read_chunk(_READ):
            block += chunk
            if len(block) >= _WRITE:
                await asyncio.to_thread(fh.write, block)
                block = bytearray()  # the thread owned the last one
        if block:
            await asyncio.to_thread(fh.write, block)
    return path


async def _read_json(part: BodyPartReader, caps: BodyCaps) -> dict[str, Any]:
    data = bytearray()
    while chunk := await part.read_chunk(_READ):
        data += chunk
        if len(data) > caps.json:
            raise caps.too_large_json_part()
    loaded = parse_json(bytes(data))
    if not isinstance(loaded, dict):
        raise BadRequest("the json part must be a JSON object")
    return loaded


def capped_multipart(
    request: web.Request, cap: int, too_large: Callable[[], KopersError]
) -> MultipartReader:
    """A multipart reader of `request` that raises `too_large()` once `cap` bytes arrived."""
    # aiohttp's reader takes the stream as a StreamReader; it calls only what
    # _CappedBody forwards (read, readline, at_eof, unread_data).
    body = cast(StreamReader, _CappedBody(request.content, cap, too_large))
    return MultipartReader(request.headers, body)


class _CappedBody:
    """The request body as the multipart reader sees it: every read checks the total.

    The count is the stream's own (bytes received, after dechunking and
    decompression), so the multipart framing, skipped parts and a preamble
    that never reaches a boundary all count.
    """

    __slots__ = ("_cap", "_stream", "_too_large")

    def __init__(
        self, stream: StreamReader, cap: int, too_large: Callable[[], KopersError]
    ) -> None:
        self._stream = stream
        self._cap = cap
        self._too_large = too_large

    def _check(self) -> None:
        if self._stream.total_bytes > self._cap:
            raise self._too_large()

    async def read(self, n: int = -1) -> bytes:
        self._check()
        data = await self._stream.read(n)
        self._check()
        return data

    async def readline(self, *, max_line_length: int | None = None) -> bytes:
        self._check()
        line = await self._stream.readline(max_line_length=max_line_length)
        self._check()
        return line

    def at_eof(self) -> bool:
        return self._stream.at_eof()

    def unread_data(self, data: bytes) -> None:
        # aiohttp's own multipart reader uses it; its deprecation is aiohttp's business.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            self._stream.unread_data(data)
