"""Reading the new-build page's file form: a browser's multipart body, under the upload cap.

The same gate as the API's upload (kopers.api.upload): one cap bounds the
whole request (`server.max_upload_mib`, see kopers.api.bodycaps), the body is
read through `capped_multipart`, and the file streams to its own spool
directory below `<data_dir>/incoming` by the same spooler. What differs is
the framing a browser sends: the options are text fields, not a `json` part.

The form's `csrf_token` field comes before its file (browsers send fields in
the order of the page), and is checked as soon as it is read: no byte of a
file is written before the token is known to be this browser's. Text fields
together may hold `limits.max_json_kib`. A refusal of any kind, and a client
that goes away, removes the spool directory.
"""

from __future__ import annotations

import asyncio
import secrets
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from aiohttp import BodyPartReader, web
from aiohttp.http_exceptions import HttpProcessingError
from multidict import MultiDict, MultiDictProxy

from kopers.api.bodycaps import BodyCaps
from kopers.api.upload import MAX_PARTS, capped_multipart, spool
from kopers.errors import BadRequest, Forbidden

if TYPE_CHECKING:
    from kopers.config import Config

FILE_FIELD = "pkgs"  # the file's field, named as the API's upload part
TOKEN_FIELD = "csrf_token"
_READ = 1 << 16
EXPIRED = "the form has expired or did not come from this site: load the page again"


@dataclass(frozen=True, slots=True)
class FormUpload:
    spool: Path  # the upload's own directory below incoming/
    package: Path | None  # the spooled file in it; None: no file was chosen
    fields: MultiDictProxy[str]  # the text fields, the CSRF token among them

    def discard(self) -> None:
        """Remove the spool directory (a refusal after reading)."""
        shutil.rmtree(self.spool, ignore_errors=True)


async def read_form_upload(
    request: web.Request, incoming: Path, config: Config, token_ok: Callable[[str], bool]
) -> FormUpload:
    """The file and text fields of a file form; 403 unless `token_ok(csrf_token)` first."""
    caps = BodyCaps.of(config)
    if request.content_length is not None and request.content_length > caps.upload:
        raise caps.too_large_upload()
    if request.content_type != "multipart/form-data":
        raise BadRequest("the form must be sent as multipart/form-data")
    spool_dir = incoming / secrets.token_hex(8)
    spool_dir.mkdir(parents=True)
    try:
        return await _read(request, spool_dir, caps, token_ok)
    except (ValueError, HttpProcessingError) as exc:  # the multipart framing is broken
        await asyncio.to_thread(shutil.rmtree, spool_dir, True)
        reason = str(exc).splitlines()[0][:120] if str(exc) else type(exc).__name__
        raise BadRequest(f"the form is not a valid multipart body: {reason}") from None
    except BaseException:
        await asyncio.to_thread(shutil.rmtree, spool_dir, True)
        raise


async def _read(
    request: web.Request, spool_dir: Path, caps: BodyCaps, token_ok: Callable[[str], bool]
) -> FormUpload:
    reader = capped_multipart(request, caps.upload, caps.too_large_upload)
    fields: MultiDict[str] = MultiDict()
    text_bytes = 0
    trusted = False
    package: Path | None = None
    parts = 0
    while (part := await reader.next()) is not None:
        parts += 1
        if parts > MAX_PARTS:
            raise BadRequest(f"the form has more than {MAX_PARTS} parts")
        if not isinstance(part, BodyPartReader):
            continue  # a nested multipart: drained through the capped body
        if part.filename is None:
            value = await _text(part, caps.json - text_bytes, caps)
            text_bytes += len(value) + len(part.name or "")
            text = _decoded(value)
            if part.name == TOKEN_FIELD and not trusted:
                if not token_ok(text):
                    raise Forbidden(EXPIRED)
                trusted = True
            fields.add(part.name or "", text)
            continue
        if not trusted:
            # A file before the token: nothing of it is written for an unknown sender.
            raise Forbidden(EXPIRED)
        if part.name != FILE_FIELD or package is not None:
            while await part.read_chunk(_READ):  # another file: read and dropped
                pass
            continue
        package = await spool(part, spool_dir)
        if not part.filename and package.stat().st_size == 0:
            package.unlink()  # the browser's empty part for "no file chosen"
            package = None
    if not trusted:
        raise Forbidden(EXPIRED)
    return FormUpload(spool_dir, package, MultiDictProxy(fields))


async def _text(part: BodyPartReader, room: int, caps: BodyCaps) -> bytes:
    data = bytearray()
    while chunk := await part.read_chunk(_READ):
        data += chunk
        if len(data) > room:
            raise caps.too_large_body()
    return bytes(data)


def _decoded(value: bytes) -> str:
    try:
        return value.decode()
    except UnicodeDecodeError:
        raise BadRequest("the form is not valid UTF-8 text") from None
