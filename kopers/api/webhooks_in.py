"""Incoming webhooks under /webhooks, at Copr's URLs, and their receipts under /api.

A forge set up for Fedora Copr works by changing the host in its webhook URL:

    POST /webhooks/github/<project id>/<webhook secret>/
    POST /webhooks/gitlab/<project id>/<webhook secret>/
    POST /webhooks/bitbucket/<project id>/<webhook secret>/
    POST /webhooks/pagure/<project id>/<webhook secret>/
    POST /webhooks/custom/<project id>/<webhook secret>/<package>/

(each also without the trailing slash). The project id is `id` in
/api_3/project; the secret is the project's webhook secret (copr-cli
new-webhook-secret, or `webhook_secret` in /api/projects/<owner>/<project>
for its editors). A forge's delivery answers JSON: what it built, and why,
and the packages it would have built but could not (`skipped`, each with
the reason).
A custom webhook builds the package from its stored definition and answers
the build's id as text, as Copr does, so CI scripts can wait for it.

The body is read here, counted against `webhooks.max_body_kib` as it
arrives: a chunked body is cut where it passes the cap (kopers.api.bodycaps
refuses a larger declared length before it is read).
Everything else, the checks and the record of the delivery, is kopers.webhooks'.

`GET /api/projects/<owner>/<project>/webhooks/received` lists the
deliveries recorded for the project, newest first, to those who may edit it.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web
from aiohttp.typedefs import Handler

from kopers import webhooks
from kopers.api.auth import editable_project
from kopers.api.bodycaps import BodyCaps
from kopers.api.keys import KOPERS
from kopers.api.params import query_int
from kopers.db.webhooks import KEEP, Receipt
from kopers.forgehook import PUSH_FORGES, Forge, delivery_of

routes = web.RouteTableDef()
_READ = 1 << 16  # one read from the body
DEFAULT_LIMIT = 100


async def read_delivery(request: web.Request, caps: BodyCaps) -> bytes:
    """The whole body, refused with a 413 once it passes the webhook cap."""
    if request.content_length is not None and request.content_length > caps.webhook:
        raise caps.too_large_webhook()
    chunks: list[bytes] = []
    size = 0
    while chunk := await request.content.read(_READ):
        size += len(chunk)
        if size > caps.webhook:
            raise caps.too_large_webhook()
        chunks.append(chunk)
    return b"".join(chunks)


def _forge_handler(forge: Forge) -> Handler:
    async def receive(request: web.Request) -> web.StreamResponse:
        kopers = request.app[KOPERS]
        info = request.match_info
        project = await webhooks.find_project(kopers, info["project_id"], info["uuid"])
        body = await read_delivery(request, BodyCaps.of(kopers.config))
        delivery = delivery_of(forge, request.headers, body)
        if forge is Forge.CUSTOM:
            answer = await webhooks.receive(
                kopers, project, delivery, request.remote, info["package_name"]
            )
            return web.Response(text=f"{answer.builds[0]}\n")
        answer = await webhooks.receive(kopers, project, delivery, request.remote)
        return web.json_response(
            {
                "message": answer.message,
                "builds": list(answer.builds),
                "receipt": answer.receipt,
                "skipped": [{"package": s.package, "reason": s.why} for s in answer.skipped],
            }
        )

    receive.__name__ = f"webhook_{forge}"
    return receive


def receipt_json(receipt: Receipt) -> dict[str, Any]:
    return {
        "id": receipt.id,
        "received_on": receipt.received_on.isoformat(),
        "forge": str(receipt.forge),
        "event": receipt.event,
        "delivery_id": receipt.delivery_id,
        "status": receipt.status,
        "accepted": receipt.accepted,
        "reason": receipt.reason,
        "digest": receipt.digest,
        "builds": list(receipt.builds),
    }


@routes.get("/api/projects/{owner}/{project}/webhooks/received")
async def received(request: web.Request) -> web.Response:
    """The deliveries recorded for the project, newest first; for its editors."""
    kopers = request.app[KOPERS]
    _, project = await editable_project(request)
    limit = query_int(request, "limit", DEFAULT_LIMIT, lo=1, hi=KEEP)
    receipts = await kopers.store.webhook_receipts(project.id, limit)
    return web.json_response(
        {
            "items": [receipt_json(r) for r in receipts],
            "meta": {"limit": limit, "project": project.full_name},
        }
    )


def paths() -> list[tuple[Forge, str]]:
    """Every webhook route: each forge's, and the custom one; with and without the slash."""
    out = []
    for forge in (*PUSH_FORGES, Forge.CUSTOM):
        base = f"/webhooks/{forge}/{{project_id}}/{{uuid}}"
        if forge is Forge.CUSTOM:
            base += "/{package_name}"
        out += [(forge, base + "/"), (forge, base)]
    return out


def add_routes(app: web.Application) -> None:
    for forge, path in paths():
        app.router.add_post(path, _forge_handler(forge))
    app.add_routes(routes)
