"""The OpenAPI operation listing a project's webhook deliveries, and its schema. Pure.

The handler is in webhooks_in.py. The webhook URLs themselves (/webhooks/...)
are called by forges, not API clients, and are described in the README.
"""

from __future__ import annotations

from typing import Any

from kopers.api.openapi_ops import WRITE, op, p, q
from kopers.api.openapi_schemas import ID, PATH_NAME, STRING, Schema, nullable, obj, ref

KEEP = 500  # kopers.db.webhooks.KEEP, repeated: the OpenAPI modules import no domain code
FORGES = ["github", "gitlab", "bitbucket", "pagure", "custom"]


def webhook_paths() -> dict[str, dict[str, Any]]:
    return {
        "/api/projects/{owner}/{project}/webhooks/received": {
            "get": op(
                "The webhook deliveries a project received",
                "projects",
                ref("WebhookReceipts"),
                params=(
                    p("owner", PATH_NAME, "The owner: a user name, or @group."),
                    p("project", PATH_NAME, "The project's name."),
                    q(
                        "limit",
                        {"type": "integer", "minimum": 1, "maximum": KEEP},
                        description="At most this many, newest first (100 if not given).",
                    ),
                ),
                errors=(400, 403, 404),
                auth=WRITE,
                description=(
                    "For those who may edit the project. Each delivery from a forge or a custom"
                    " webhook that reached the project (its URL had the right project id and"
                    " secret), accepted or refused: the answer's status and message, the"
                    " forge's event and delivery id, the SHA-256 of the body, and the builds it"
                    " started. The newest 400 accepted and 100 refused ones are kept."
                ),
            )
        }
    }


def webhook_schemas() -> dict[str, Schema]:
    receipt = obj(
        {
            "id": ID,
            "received_on": {"type": "string", "format": "date-time"},
            "forge": {"type": "string", "enum": FORGES},
            "event": STRING,
            "delivery_id": nullable(STRING),
            "status": {"type": "integer", "minimum": 200, "maximum": 599},
            "accepted": {"type": "boolean", "description": "answered 2xx"},
            "reason": {"type": "string", "maxLength": 500},
            "digest": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
            "builds": {"type": "array", "items": ID},
        }
    )
    return {
        "WebhookReceipt": receipt,
        "WebhookReceipts": obj(
            {
                "items": {"type": "array", "items": ref("WebhookReceipt")},
                "meta": obj(
                    {
                        "limit": {"type": "integer", "minimum": 1, "maximum": KEEP},
                        "project": STRING,
                    }
                ),
            }
        ),
    }
