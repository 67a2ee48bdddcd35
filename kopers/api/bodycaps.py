"""How large a request body may be, decided before it is read.

Three caps: an upload request (the routes in UPLOAD_ROUTES) may be as large as
`server.max_upload_mib`, all its parts together; a forge's delivery to an
incoming webhook (the routes under WEBHOOK_PREFIX, read by
kopers.api.webhooks_in) as large as `webhooks.max_body_kib`; every other body,
whatever its type (JSON, a form, the small multipart of edit-chroot), as large
as `limits.max_json_kib`. A Content-Length over the cap is refused with a 413
before a byte of the body is read. A body without a length (chunked) is cut
where it passes the cap: the application's `client_max_size` is the JSON cap,
which aiohttp applies to every body or part read whole; an upload streams
through `kopers.api.upload`, and a delivery through `kopers.api.webhooks_in`,
each counted against its own cap.

A refused request's connection is closed after the answer, so a client that
meant to send gigabytes cannot go on with the next request on the same one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from kopers.errors import PayloadTooLarge, UnsupportedMediaType

if TYPE_CHECKING:
    from kopers.config import Config


# Routes whose body is a source package upload, read by kopers.api.upload.
UPLOAD_ROUTES = frozenset(
    {
        "/api_3/build/create/upload",
        # The new-build page's file form (kopers.api.forms_submit).
        "/coprs/{owner}/{project}/add_build/upload/",
        "/coprs/g/{group}/{project}/add_build/upload/",
    }
)
# Routes that take a forge's delivery, counted against the webhook cap as they are read.
WEBHOOK_PREFIX = "/webhooks/"


def _size(cap: int) -> str:
    return f"{cap >> 20} MiB" if cap % (1 << 20) == 0 else f"{cap >> 10} KiB"


@dataclass(frozen=True, slots=True)
class BodyCaps:
    json: int  # bytes: any body but an upload, and the json part of an upload
    upload: int  # bytes: a whole upload request, every part included
    webhook: int = 1 << 20  # bytes: a delivery to an incoming webhook

    @classmethod
    def of(cls, config: Config) -> BodyCaps:
        return cls(
            json=config.limits.max_json_bytes,
            upload=config.server.max_upload_mib << 20,
            webhook=config.webhooks.max_body_bytes,
        )

    def too_large_body(self) -> PayloadTooLarge:
        return PayloadTooLarge(
            f"the request body is larger than {_size(self.json)} (limits.max_json_kib)"
        )

    def too_large_upload(self) -> PayloadTooLarge:
        return PayloadTooLarge(
            f"the upload is larger than {_size(self.upload)} (server.max_upload_mib)"
        )

    def too_large_webhook(self) -> PayloadTooLarge:
        return PayloadTooLarge(
            f"the delivery is larger than {_size(self.webhook)} (webhooks.max_body_kib)"
        )

    def too_large_json_part(self) -> PayloadTooLarge:
        return PayloadTooLarge(
            f"the json part is larger than {_size(self.json)} (limits.max_json_kib)"
        )


def is_upload(request: web.Request) -> bool:
    """Whether the route that answers `request` takes an upload."""
    resource = request.match_info.route.resource
    return resource is not None and resource.canonical in UPLOAD_ROUTES


def is_webhook(request: web.Request) -> bool:
    """Whether the route that answers `request` takes a forge's delivery."""
    resource = request.match_info.route.resource
    return resource is not None and resource.canonical.startswith(WEBHOOK_PREFIX)


def body_caps_middleware(caps: BodyCaps) -> Middleware:
    """Refuse a declared length over the route's cap; name the cap when aiohttp cuts a body."""

    @web.middleware
    async def body_caps(request: web.Request, handler: Handler) -> web.StreamResponse:
        upload, webhook = is_upload(request), is_webhook(request)
        declared = request.content_length
        encoding = request.headers.get("Content-Encoding", "identity").strip().lower()
        if encoding not in ("", "identity"):
            # A few KiB of gzip inflate past any cap, and the caps count what
            # arrives: bodies are taken as sent, or not at all.
            request.protocol.close()
            raise UnsupportedMediaType(
                "request bodies with a Content-Encoding are not accepted; send it uncompressed"
            )
        try:
            if upload and declared is not None and declared > caps.upload:
                raise caps.too_large_upload()
            if webhook and declared is not None and declared > caps.webhook:
                raise caps.too_large_webhook()
            if not (upload or webhook) and declared is not None and declared > caps.json:
                raise caps.too_large_body()
            try:
                return await handler(request)
            except web.HTTPRequestEntityTooLarge:
                # request.read() or a multipart field passed client_max_size.
                raise caps.too_large_body() from None
        except PayloadTooLarge:
            # The rest of the body is not wanted: no keep-alive after the answer.
            request.protocol.close()
            raise

    return body_caps
